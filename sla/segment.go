package sla

import (
	"strings"
	"time"
)

// Call is what a segment is matched against.
type Call struct {
	// Number is the destination in E.164 form ("+4930…"), or "" for a call
	// to a user of the federation.
	Number  string
	Class   string      // the call's class ("gold", …); "" matches any segment
	At      time.Time   // when the call is placed
	Service ServiceType // the service needed of the provider
}

// Contains reports whether t falls in any window; empty Hours always do.
func (h Hours) Contains(t time.Time) bool {
	if len(h) == 0 {
		return true
	}
	for _, w := range h {
		if w.Contains(t) {
			return true
		}
	}
	return false
}

// Contains reports whether t falls in the window: its local time is between
// Start and End on one of the window's days, or, for a window crossing
// midnight, after Start on one of its days or before End on the day after.
func (w Window) Contains(t time.Time) bool {
	loc := w.Loc
	if loc == nil {
		loc = time.UTC
	}
	lt := t.In(loc)
	day := lt.Weekday()
	min := lt.Hour()*60 + lt.Minute()
	if w.Start < w.End {
		return w.Days[day] && min >= w.Start && min < w.End
	}
	// Crosses midnight: [Start, 24:00) on its days, [00:00, End) the day after.
	prev := (day + 6) % 7
	return (w.Days[day] && min >= w.Start) || (w.Days[prev] && min < w.End)
}

// LocationMatch reports how well a segment's location matches a
// destination: the length of the matching prefix (0 for "*"), and whether
// it matches at all. A call to a user (no number) matches only "*".
func LocationMatch(location, number string) (length int, ok bool) {
	if location == "*" || location == "" {
		return 0, true
	}
	if number == "" {
		return 0, false
	}
	if strings.HasPrefix(number, location) {
		return len(location), true
	}
	return 0, false
}

// Matches reports whether the segment carries the call: its location
// matches the destination, its hours hold the call's time, and its quality
// class is the call's (or unset). MaxDuration is a cap, not a filter.
func (s Segment) Matches(c Call) bool {
	if _, ok := LocationMatch(s.Location, c.Number); !ok {
		return false
	}
	if s.Quality != "" && c.Class != "" && s.Quality != c.Class {
		return false
	}
	return s.Hours.Contains(c.At)
}

// Offers returns the provider's segment that carries the call for the
// service c.Service: among the matching segments of that service, the one
// with the longest location prefix (the first of equals). ok is false when
// none matches.
func (p *Provider) Offers(c Call) (seg Segment, prefix int, ok bool) {
	for _, sv := range p.Services {
		if sv.Type != c.Service {
			continue
		}
		if s, n, found := BestSegment(sv.Segments, c); found && (!ok || n > prefix) {
			seg, prefix, ok = s, n, true
		}
	}
	return seg, prefix, ok
}

// BestSegment is the segment of segs that carries the call with the
// longest location prefix (the first of equals), and that prefix's length.
func BestSegment(segs []Segment, c Call) (seg Segment, prefix int, ok bool) {
	best := -1
	for _, s := range segs {
		if !s.Matches(c) {
			continue
		}
		if n, _ := LocationMatch(s.Location, c.Number); n > best {
			best, seg = n, s
		}
	}
	if best < 0 {
		return Segment{}, 0, false
	}
	return seg, best, true
}

// HasMode reports whether the provider has an access point in mode m.
func (p *Provider) HasMode(m Mode) bool {
	for _, ap := range p.AccessPoints {
		if ap.Mode == m {
			return true
		}
	}
	return false
}

// ValidAt reports whether t lies in the SLA's validity window [From, Until).
func (s *SLA) ValidAt(t time.Time) bool { return s.Valid.Contains(t) }

// SegmentsMatch reports whether the SLA's own segments, if it has any,
// carry the call (any one of them); an SLA without segments carries all.
func (s *SLA) SegmentsMatch(c Call) bool {
	if len(s.Segments) == 0 {
		return true
	}
	for _, seg := range s.Segments {
		if seg.Matches(c) {
			return true
		}
	}
	return false
}

// Segment is the SLA's own segment that carries the call, chosen as
// Provider.Offers chooses among a provider's (BestSegment). An SLA without
// segments carries every call, with no cap: the zero Segment.
func (s *SLA) Segment(c Call) (Segment, bool) {
	if len(s.Segments) == 0 {
		return Segment{}, true
	}
	seg, _, ok := BestSegment(s.Segments, c)
	return seg, ok
}

// MaxDuration is the tightest cap among segments; 0 means no cap.
func MaxDuration(segs ...Segment) time.Duration {
	var d time.Duration
	for _, s := range segs {
		d = Tighter(d, s.MaxDuration)
	}
	return d
}

// Tighter is the tighter of two duration caps; 0 means no cap.
func Tighter(a, b time.Duration) time.Duration {
	if b > 0 && (a == 0 || b < a) {
		return b
	}
	return a
}

// Other returns the party of the SLA that is not id, and whether id is a
// party at all.
func (s *SLA) Other(id string) (string, bool) {
	switch id {
	case s.Between[0]:
		return s.Between[1], true
	case s.Between[1]:
		return s.Between[0], true
	}
	return "", false
}
