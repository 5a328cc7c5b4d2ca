package sla

import (
	"testing"
	"time"
)

// The segment that carries a call is the matching one with the longest
// location prefix, the first of equals; an SLA without segments carries
// every call with no cap, one whose segments do not match carries none.
func TestBestSegment(t *testing.T) {
	at := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	segs := []Segment{
		{Location: "*", MaxDuration: time.Hour},
		{Location: "+49", MaxDuration: 2 * time.Hour},
		{Location: "+4930", MaxDuration: 3 * time.Hour, Quality: "gold"},
		{Location: "+49", MaxDuration: 4 * time.Hour},
	}
	for _, tc := range []struct {
		number, class string
		want          time.Duration // MaxDuration of the chosen segment
		prefix        int
	}{
		{"+4930123", "gold", 3 * time.Hour, 5},
		{"+4930123", "silver", 2 * time.Hour, 3}, // the gold segment does not serve silver; first of the two +49
		{"+33123", "", time.Hour, 0},             // only the wildcard
		{"", "", time.Hour, 0},                   // a user of the federation
	} {
		c := Call{Number: tc.number, Class: tc.class, At: at}
		seg, n, ok := BestSegment(segs, c)
		if !ok || seg.MaxDuration != tc.want || n != tc.prefix {
			t.Errorf("BestSegment(%s, %s) = %+v, %d, %v; want the %v segment, prefix %d", tc.number, tc.class, seg, n, ok, tc.want, tc.prefix)
		}
		s := &SLA{Segments: segs}
		if got, ok := s.Segment(c); !ok || got.MaxDuration != tc.want {
			t.Errorf("SLA.Segment(%s, %s) = %+v, %v", tc.number, tc.class, got, ok)
		}
	}
	c := Call{Number: "+33123", At: at}
	if _, _, ok := BestSegment(segs[1:], c); ok {
		t.Error("a +33 call matched +49 segments")
	}
	if seg, ok := (&SLA{}).Segment(c); !ok || seg.Location != "" || seg.MaxDuration != 0 {
		t.Errorf("an SLA without segments: %+v, %v; want the zero segment, true", seg, ok)
	}
	if _, ok := (&SLA{Segments: segs[1:2]}).Segment(c); ok {
		t.Error("an SLA whose only segment is +49 carries a +33 call")
	}
}
