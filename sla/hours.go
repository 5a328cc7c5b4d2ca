package sla

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // zone data built in, so every node reads windows alike
)

// dayNames are the day names of windows, indexed by time.Weekday.
var dayNames = [7]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}

// hoursExample is shown when a window cannot be read at all.
const hoursExample = `want DAYS HH:MM-HH:MM ZONE, e.g. "Mon-Fri 08:00-18:00 Europe/Berlin"`

// ParseHours reads weekly windows. s holds one or more windows separated by
// ";" or ","; each is
//
//	DAYS HH:MM-HH:MM ZONE
//
// DAYS is a day ("Mon"), a range ("Mon-Fri"; "Fri-Mon" wraps over the
// weekend) or a "+"-joined list of days and ranges ("Mon+Wed+Fri",
// "Mon-Wed+Sat"); day names are the three-letter English ones, in any case.
// The times are local to ZONE. The end may be 24:00 (or 00:00, the same);
// an end before the start crosses midnight: "Mon-Fri 22:00-06:00 UTC" runs
// from Monday 22:00 to Tuesday 06:00, and so on to Friday 22:00 to
// Saturday 06:00. A start equal to the end is an error. On the days clocks
// change, local times that do not exist match nothing and those that
// happen twice match twice. ZONE is "UTC" or an IANA zone name such as
// "Europe/Berlin" ("Local" is refused); the zone data is built in.
//
// Each Window keeps its text as written. The error is a *FieldError for
// the field "hours".
func ParseHours(s string) (Hours, error) {
	h, msg := parseHours(s)
	if msg != "" {
		return nil, &FieldError{Field: "hours", Value: s, Msg: msg}
	}
	return h, nil
}

// parseHours is ParseHours returning the bare message, for callers that
// name the field themselves.
func parseHours(s string) (Hours, string) {
	parts := strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == ',' })
	var texts []string
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			texts = append(texts, p)
		}
	}
	if len(texts) == 0 {
		return nil, "no window; " + hoursExample
	}
	h := make(Hours, 0, len(texts))
	for _, p := range texts {
		w, msg := parseWindow(p)
		if msg != "" {
			if len(texts) > 1 {
				msg = fmt.Sprintf("window %q: %s", p, msg)
			}
			return nil, msg
		}
		h = append(h, w)
	}
	return h, ""
}

func parseWindow(text string) (Window, string) {
	f := strings.Fields(text)
	if len(f) != 3 {
		return Window{}, hoursExample
	}
	w := Window{Text: text}
	var msg string
	if w.Days, msg = parseDays(f[0]); msg != "" {
		return Window{}, msg
	}
	if w.Start, w.End, msg = parseSpan(f[1]); msg != "" {
		return Window{}, msg
	}
	if w.Loc, msg = loadZone(f[2]); msg != "" {
		return Window{}, msg
	}
	return w, ""
}

// parseDays reads "Mon", "Mon-Fri", "Fri-Mon", "Mon+Wed+Fri", "Mon-Wed+Sat".
func parseDays(s string) ([7]bool, string) {
	var days [7]bool
	for item := range strings.SplitSeq(s, "+") {
		first, last, isRange := strings.Cut(item, "-")
		a, msg := parseDay(first, s)
		if msg != "" {
			return days, msg
		}
		b := a
		if isRange {
			if b, msg = parseDay(last, s); msg != "" {
				return days, msg
			}
			if a == b {
				return days, fmt.Sprintf("day range %q starts and ends on the same day", item)
			}
		}
		for d := a; ; d = (d + 1) % 7 {
			if days[d] {
				return days, fmt.Sprintf("%s given twice in %q", dayNames[d], s)
			}
			days[d] = true
			if d == b {
				break
			}
		}
	}
	return days, ""
}

func parseDay(name, all string) (time.Weekday, string) {
	if name == "" {
		return 0, fmt.Sprintf("missing day in %q", all)
	}
	for d, n := range dayNames {
		if strings.EqualFold(n, name) {
			return time.Weekday(d), ""
		}
	}
	return 0, fmt.Sprintf("unknown day %q", name)
}

// parseSpan reads "HH:MM-HH:MM" as minutes after midnight. An end of 00:00
// is midnight at the end of the day (1440).
func parseSpan(s string) (start, end int, msg string) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Sprintf("bad times %q; want HH:MM-HH:MM", s)
	}
	if start, msg = parseClock(a, false); msg != "" {
		return 0, 0, msg
	}
	if end, msg = parseClock(b, true); msg != "" {
		return 0, 0, msg
	}
	if start == end {
		return 0, 0, fmt.Sprintf("empty window %q: the start equals the end", s)
	}
	if end == 0 {
		end = 24 * 60
	}
	return start, end, ""
}

// parseClock reads "H:MM" or "HH:MM"; "24:00" only as an end.
func parseClock(s string, isEnd bool) (int, string) {
	bad := fmt.Sprintf("bad time %q; want HH:MM", s)
	hs, ms, ok := strings.Cut(s, ":")
	if !ok || len(hs) < 1 || len(hs) > 2 || len(ms) != 2 || !allDigits(hs) || !allDigits(ms) {
		return 0, bad
	}
	h, _ := strconv.Atoi(hs)
	m, _ := strconv.Atoi(ms)
	switch {
	case h == 24 && m == 0 && isEnd:
		return 24 * 60, ""
	case h == 24 && m == 0:
		return 0, fmt.Sprintf("bad time %q: 24:00 only ends a window", s)
	case h > 23 || m > 59:
		return 0, bad
	}
	return h*60 + m, ""
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// zones caches loaded locations by name: loading one reads the zone data.
var zones sync.Map // string → *time.Location

func loadZone(name string) (*time.Location, string) {
	switch name {
	case "UTC":
		return time.UTC, ""
	case "Local":
		return nil, `time zone "Local" depends on the machine; name a zone such as "Europe/Berlin" or "UTC"`
	}
	if l, ok := zones.Load(name); ok {
		return l.(*time.Location), ""
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Sprintf("unknown time zone %q", name)
	}
	zones.Store(name, l)
	return l, ""
}

// String returns the window's text as written, or for a window built in
// code a text ParseHours reads back to the same window.
func (w Window) String() string {
	if w.Text != "" {
		return w.Text
	}
	zone := "UTC"
	if w.Loc != nil {
		zone = w.Loc.String()
	}
	return fmt.Sprintf("%s %s-%s %s", formatDays(w.Days), formatClock(w.Start), formatClock(w.End), zone)
}

func formatClock(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

// formatDays writes days as runs from Monday on: "Mon-Fri", "Mon+Wed",
// "Sat-Mon", "Mon-Sun".
func formatDays(days [7]bool) string {
	n := 0
	for _, d := range days {
		if d {
			n++
		}
	}
	switch n {
	case 0:
		return "none"
	case 7:
		return "Mon-Sun"
	}
	var runs []string
	for i := range 7 {
		d := (i + 1) % 7 // Monday first
		if !days[d] || days[(d+6)%7] {
			continue // not the first day of a run
		}
		last := d
		for days[(last+1)%7] {
			last = (last + 1) % 7
		}
		r := dayNames[d]
		if last != d {
			r += "-" + dayNames[last]
		}
		runs = append(runs, r)
	}
	return strings.Join(runs, "+")
}

// String joins the windows' texts with "; ", which ParseHours reads back.
func (h Hours) String() string {
	return strings.Join(h.texts(), "; ")
}

func (h Hours) texts() []string {
	out := make([]string, len(h))
	for i, w := range h {
		out[i] = w.String()
	}
	return out
}

// MarshalJSON writes the windows as a list of strings, one per window.
func (h Hours) MarshalJSON() ([]byte, error) {
	if h == nil {
		return []byte("null"), nil
	}
	return json.Marshal(h.texts())
}

// UnmarshalJSON reads a list of strings, or one string, each parsed by
// ParseHours.
func (h *Hours) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*h = nil
		return nil
	}
	var texts []string
	if err := json.Unmarshal(b, &texts); err != nil {
		var one string
		if json.Unmarshal(b, &one) != nil {
			return &FieldError{Field: "hours", Msg: "want a list of strings"}
		}
		texts = []string{one}
	}
	out := Hours{}
	for _, s := range texts {
		w, err := ParseHours(s)
		if err != nil {
			return err
		}
		out = append(out, w...)
	}
	*h = out
	return nil
}

// checkWindow reports what is wrong with a window built in code.
func checkWindow(w Window) string {
	some := false
	for _, d := range w.Days {
		some = some || d
	}
	switch {
	case !some:
		return "window has no day"
	case w.Start < 0 || w.Start >= 24*60:
		return fmt.Sprintf("window start %d outside 0..1439 minutes", w.Start)
	case w.End < 1 || w.End > 24*60:
		return fmt.Sprintf("window end %d outside 1..1440 minutes", w.End)
	case w.Start == w.End:
		return "window start equals its end"
	}
	return ""
}
