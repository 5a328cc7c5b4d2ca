package sla

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

func berlin(t testing.TB) *time.Location {
	t.Helper()
	l, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// days returns the days of a window as a string such as "MTWTF..", Monday
// first.
func daysString(d [7]bool) string {
	var b strings.Builder
	for i := range 7 {
		wd := (i + 1) % 7
		if d[wd] {
			b.WriteByte("SMTWTFS"[wd])
		} else {
			b.WriteByte('.')
		}
	}
	return b.String()
}

func TestParseHours(t *testing.T) {
	for _, tc := range []struct {
		in         string
		days       []string // per window, Monday first
		start, end []int
		zone       []string
	}{
		{"Mon 08:00-18:00 UTC", []string{"M......"}, []int{480}, []int{1080}, []string{"UTC"}},
		{"Mon-Fri 08:00-18:00 Europe/Berlin", []string{"MTWTF.."}, []int{480}, []int{1080}, []string{"Europe/Berlin"}},
		{"Fri-Mon 00:00-24:00 UTC", []string{"M...FSS"}, []int{0}, []int{1440}, []string{"UTC"}},
		{"Sat-Sun 9:30-12:05 UTC", []string{".....SS"}, []int{570}, []int{725}, []string{"UTC"}},
		{"Mon+Wed+Fri 22:00-06:00 America/New_York", []string{"M.W.F.."}, []int{1320}, []int{360}, []string{"America/New_York"}},
		{"Mon-Wed+Sat 01:00-02:00 UTC", []string{"MTW..S."}, []int{60}, []int{120}, []string{"UTC"}},
		{"mon-FRI 08:00-18:00 UTC", []string{"MTWTF.."}, []int{480}, []int{1080}, []string{"UTC"}},
		{"Sun 22:00-00:00 UTC", []string{"......S"}, []int{1320}, []int{1440}, []string{"UTC"}},
		{"Sun-Sat 00:00-24:00 UTC", []string{"MTWTFSS"}, []int{0}, []int{1440}, []string{"UTC"}},
		{"  Mon-Fri   08:00-12:00 UTC ; Mon-Fri 13:00-17:00 UTC,Sat 10:00-12:00 UTC;", []string{"MTWTF..", "MTWTF..", ".....S."},
			[]int{480, 780, 600}, []int{720, 1020, 720}, []string{"UTC", "UTC", "UTC"}},
	} {
		h, err := ParseHours(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if len(h) != len(tc.days) {
			t.Errorf("%q: %d windows, want %d", tc.in, len(h), len(tc.days))
			continue
		}
		for i, w := range h {
			if got := daysString(w.Days); got != tc.days[i] || w.Start != tc.start[i] || w.End != tc.end[i] || w.Loc.String() != tc.zone[i] {
				t.Errorf("%q window %d: %s %d-%d %s, want %s %d-%d %s", tc.in, i, got, w.Start, w.End, w.Loc,
					tc.days[i], tc.start[i], tc.end[i], tc.zone[i])
			}
			if w.Text == "" || strings.TrimSpace(w.Text) != w.Text {
				t.Errorf("%q window %d: text %q", tc.in, i, w.Text)
			}
		}
	}
}

func TestParseHoursErrors(t *testing.T) {
	for _, tc := range []struct{ in, msg string }{
		{"", "no window"},
		{" ; , ", "no window"},
		{"Mon-Fry 08:00-18:00 UTC", `unknown day "Fry"`},
		{"Monday 08:00-18:00 UTC", `unknown day "Monday"`},
		{"Mon+ 08:00-18:00 UTC", `missing day in "Mon+"`},
		{"Mon-Mon 08:00-18:00 UTC", `day range "Mon-Mon" starts and ends on the same day`},
		{"Mon-Wed+Tue 08:00-18:00 UTC", `Tue given twice in "Mon-Wed+Tue"`},
		{"Mon 08:00-08:00 UTC", "the start equals the end"},
		{"Mon 00:00-00:00 UTC", "the start equals the end"},
		{"Mon 24:00-06:00 UTC", "24:00 only ends a window"},
		{"Mon 08:00-24:30 UTC", `bad time "24:30"`},
		{"Mon 25:00-26:00 UTC", `bad time "25:00"`},
		{"Mon 08:60-09:00 UTC", `bad time "08:60"`},
		{"Mon 8-9 UTC", `bad time "8"`},
		{"Mon 08:00 UTC", `bad times "08:00"`},
		{"Mon 08:00-18:00", "want DAYS HH:MM-HH:MM ZONE"},
		{"Mon 08:00-18:00 Europe/Berlin extra", "want DAYS HH:MM-HH:MM ZONE"},
		{"Mon 08:00-18:00 Europe/Berln", `unknown time zone "Europe/Berln"`},
		{"Mon 08:00-18:00 Local", `"Local" depends on the machine`},
		{"Mon 08:00-18:00 UTC; Tue 08:00-18:00 CEST", `window "Tue 08:00-18:00 CEST": unknown time zone "CEST"`},
	} {
		_, err := ParseHours(tc.in)
		if err == nil {
			t.Errorf("%q: accepted", tc.in)
			continue
		}
		assertFieldErr(t, err, "hours", tc.msg)
	}
}

// at parses an RFC 3339 time.
func at(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustHours(t testing.TB, s string) Hours {
	t.Helper()
	h, err := ParseHours(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHoursContains(t *testing.T) {
	for _, tc := range []struct {
		hours, at string
		want      bool
	}{
		// 2026-11-23 is a Monday; Berlin is UTC+1 in winter, UTC+2 in summer.
		{"Mon-Fri 08:00-18:00 Europe/Berlin", "2026-11-23T06:59:59Z", false},
		{"Mon-Fri 08:00-18:00 Europe/Berlin", "2026-11-23T07:00:00Z", true},
		{"Mon-Fri 08:00-18:00 Europe/Berlin", "2026-11-23T16:59:59Z", true},
		{"Mon-Fri 08:00-18:00 Europe/Berlin", "2026-11-23T17:00:00Z", false},
		{"Mon-Fri 08:00-18:00 Europe/Berlin", "2026-11-28T10:00:00Z", false}, // Saturday
		{"Mon-Fri 08:00-18:00 Europe/Berlin", "2026-07-06T06:00:00Z", true},  // Monday 08:00 CEST
		{"Mon-Fri 08:00-18:00 Europe/Berlin", "2026-07-06T05:59:00Z", false},
		{"Mon-Fri 08:00-18:00 Europe/Berlin", "2026-07-06T15:59:00Z", true},
		{"Mon-Fri 08:00-18:00 Europe/Berlin", "2026-07-06T16:00:00Z", false},
		// The zone of the time given does not matter, only the instant.
		{"Mon-Fri 08:00-18:00 Europe/Berlin", "2026-11-23T02:00:00-05:00", true},
		// Crossing midnight: Mon 22:00 to Tue 06:00, …, Fri 22:00 to Sat 06:00.
		{"Mon-Fri 22:00-06:00 UTC", "2026-11-23T21:59:00Z", false},
		{"Mon-Fri 22:00-06:00 UTC", "2026-11-23T22:00:00Z", true},
		{"Mon-Fri 22:00-06:00 UTC", "2026-11-24T05:59:00Z", true},
		{"Mon-Fri 22:00-06:00 UTC", "2026-11-24T06:00:00Z", false},
		{"Mon-Fri 22:00-06:00 UTC", "2026-11-28T05:00:00Z", true},  // Saturday morning, from Friday
		{"Mon-Fri 22:00-06:00 UTC", "2026-11-28T22:00:00Z", false}, // Saturday night
		{"Mon-Fri 22:00-06:00 UTC", "2026-11-23T03:00:00Z", false}, // Monday morning: Sunday is not a day
		{"Mon-Fri 22:00-06:00 UTC", "2026-11-29T23:00:00Z", false},
		// Sunday to Monday.
		{"Sun 22:00-02:00 UTC", "2026-11-29T23:00:00Z", true},
		{"Sun 22:00-02:00 UTC", "2026-11-30T01:59:59Z", true},
		{"Sun 22:00-02:00 UTC", "2026-11-30T02:00:00Z", false},
		{"Sun 22:00-02:00 UTC", "2026-11-29T01:00:00Z", false}, // Sunday 01:00 belongs to Saturday
		{"Fri-Mon 00:00-24:00 UTC", "2026-11-30T23:59:59Z", true},
		{"Fri-Mon 00:00-24:00 UTC", "2026-12-01T00:00:00Z", false},
		{"Fri-Mon 00:00-24:00 UTC", "2026-11-26T23:59:59Z", false},
		{"Fri-Mon 00:00-24:00 UTC", "2026-11-27T00:00:00Z", true},
		{"Sat+Sun 00:00-24:00 UTC", "2026-11-29T23:59:59Z", true},
		{"Sat+Sun 00:00-24:00 UTC", "2026-11-30T00:00:00Z", false},
		{"Mon-Sun 00:00-24:00 UTC", "2026-11-30T00:00:00Z", true},
		{"Mon-Sun 00:00-24:00 UTC", "2026-11-29T23:59:59Z", true},
		{"Sun 22:00-00:00 UTC", "2026-11-29T23:59:00Z", true},
		{"Sun 22:00-00:00 UTC", "2026-11-30T00:00:00Z", false},
		// Several windows: any.
		{"Mon 08:00-09:00 UTC; Tue 08:00-09:00 UTC", "2026-11-24T08:30:00Z", true},
		{"Mon 08:00-09:00 UTC; Tue 08:00-09:00 UTC", "2026-11-25T08:30:00Z", false},
	} {
		if got := mustHours(t, tc.hours).Contains(at(t, tc.at)); got != tc.want {
			t.Errorf("%q contains %s = %v, want %v", tc.hours, tc.at, got, tc.want)
		}
	}
	if !(Hours{}).Contains(time.Now()) || !Hours(nil).Contains(time.Time{}) {
		t.Error("empty hours must always hold")
	}
}

// minutesIn counts the minutes from from (inclusive) to to (exclusive)
// that h holds.
func minutesIn(h Hours, from, to time.Time) int {
	n := 0
	for t := from; t.Before(to); t = t.Add(time.Minute) {
		if h.Contains(t) {
			n++
		}
	}
	return n
}

// On the days the clocks change, windows are in local time: a local hour
// may not exist, or happen twice.
func TestHoursContainsDST(t *testing.T) {
	// 2026-03-29 (Sunday): Berlin goes from 02:00 CET to 03:00 CEST.
	// 2026-10-25 (Sunday): from 03:00 CEST back to 02:00 CET.
	springFrom, springTo := at(t, "2026-03-28T12:00:00Z"), at(t, "2026-03-30T12:00:00Z")
	fallFrom, fallTo := at(t, "2026-10-24T12:00:00Z"), at(t, "2026-10-26T12:00:00Z")
	for _, tc := range []struct {
		hours        string
		spring, fall int
	}{
		{"Sun 02:00-03:00 Europe/Berlin", 0, 120},
		{"Sun 00:00-24:00 Europe/Berlin", 23 * 60, 25 * 60},
		{"Sat 22:00-06:00 Europe/Berlin", 7 * 60, 9 * 60},
		{"Sun 01:00-04:00 Europe/Berlin", 2 * 60, 4 * 60},
		{"Sun 03:00-04:00 Europe/Berlin", 60, 60},
		{"Sun 02:00-03:00 UTC", 60, 60},
	} {
		h := mustHours(t, tc.hours)
		if got := minutesIn(h, springFrom, springTo); got != tc.spring {
			t.Errorf("%q: %d minutes on the spring change, want %d", tc.hours, got, tc.spring)
		}
		if got := minutesIn(h, fallFrom, fallTo); got != tc.fall {
			t.Errorf("%q: %d minutes on the autumn change, want %d", tc.hours, got, tc.fall)
		}
	}
	// 01:30 UTC on the spring day is 03:30 CEST: in a 03:00-04:00 window.
	if !mustHours(t, "Sun 03:00-04:00 Europe/Berlin").Contains(at(t, "2026-03-29T01:30:00Z")) {
		t.Error("03:30 CEST not in 03:00-04:00")
	}
}

// A week of minutes: a window of every day from 00:00 to 24:00 holds all
// of them; Mon-Fri 22:00-06:00 holds five nights of eight hours.
func TestHoursWeek(t *testing.T) {
	from := at(t, "2026-11-23T00:00:00Z")
	to := from.Add(7 * 24 * time.Hour)
	for _, tc := range []struct {
		hours string
		want  int
	}{
		{"Mon-Sun 00:00-24:00 UTC", 7 * 24 * 60},
		{"Mon-Fri 22:00-06:00 UTC", 5 * 8 * 60},
		{"Fri-Mon 00:00-24:00 UTC", 4 * 24 * 60},
		{"Sun 22:00-02:00 UTC", 4 * 60},
		{"Mon-Fri 08:00-18:00 UTC; Mon-Fri 12:00-20:00 UTC", 5 * 12 * 60},
	} {
		if got := minutesIn(mustHours(t, tc.hours), from, to); got != tc.want {
			t.Errorf("%q: %d minutes a week, want %d", tc.hours, got, tc.want)
		}
	}
}

func TestWindowString(t *testing.T) {
	l := berlin(t)
	for _, tc := range []struct {
		w    Window
		want string
	}{
		{Window{Days: [7]bool{true, true, false, false, false, false, true}, Start: 60, End: 120, Loc: l}, "Sat-Mon 01:00-02:00 Europe/Berlin"},
		{Window{Days: [7]bool{false, true, false, true, true, false, false}, Start: 0, End: 1440}, "Mon+Wed-Thu 00:00-24:00 UTC"},
		{Window{Days: [7]bool{true, true, true, true, true, true, true}, Start: 1320, End: 360, Loc: time.UTC}, "Mon-Sun 22:00-06:00 UTC"},
		{Window{Days: [7]bool{true}, Start: 5, End: 10, Loc: time.UTC}, "Sun 00:05-00:10 UTC"},
		{Window{Days: [7]bool{false, true}, Start: 480, End: 1080, Text: "mon 8:00-18:00 UTC"}, "mon 8:00-18:00 UTC"},
	} {
		if got := tc.w.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.w, got, tc.want)
		}
	}
	h := mustHours(t, "Mon-Fri 08:00-18:00 Europe/Berlin, Sat 10:00-14:00 UTC")
	if got, want := h.String(), "Mon-Fri 08:00-18:00 Europe/Berlin; Sat 10:00-14:00 UTC"; got != want {
		t.Errorf("Hours.String() = %q, want %q", got, want)
	}
	back := mustHours(t, h.String())
	if back.String() != h.String() {
		t.Errorf("round trip %q", back)
	}
}

// sameWindow compares windows by what they mean, not by their text.
func sameWindow(a, b Window) bool {
	la, lb := a.Loc, b.Loc
	if la == nil {
		la = time.UTC
	}
	if lb == nil {
		lb = time.UTC
	}
	return a.Days == b.Days && a.Start == b.Start && a.End == b.End && la.String() == lb.String()
}

// A window built in code prints as text that reads back to the same
// window, which holds the same instants.
func TestWindowStringRoundTripProperty(t *testing.T) {
	zones := []string{"UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"}
	rapid.Check(t, func(t *rapid.T) {
		var w Window
		for d := range 7 {
			w.Days[d] = rapid.Bool().Draw(t, "day")
		}
		w.Days[rapid.IntRange(0, 6).Draw(t, "oneday")] = true
		w.Start = rapid.IntRange(0, 1439).Draw(t, "start")
		w.End = rapid.IntRange(1, 1440).Draw(t, "end")
		if w.Start == w.End {
			w.End = w.Start + 1
		}
		l, err := time.LoadLocation(rapid.SampledFrom(zones).Draw(t, "zone"))
		if err != nil {
			t.Fatal(err)
		}
		w.Loc = l
		h, err := ParseHours(w.String())
		if err != nil {
			t.Fatalf("%q: %v", w.String(), err)
		}
		if len(h) != 1 || !sameWindow(h[0], w) {
			t.Fatalf("%q read back as %+v", w.String(), h)
		}
		for range 20 {
			at := time.Unix(rapid.Int64Range(1.7e9, 1.9e9).Draw(t, "at"), 0)
			if h[0].Contains(at) != w.Contains(at) {
				t.Fatalf("%q at %s: differs", w.String(), at)
			}
		}
	})
}

func TestHoursJSON(t *testing.T) {
	type holder struct {
		Hours Hours `json:"hours,omitempty"`
	}
	h := mustHours(t, "Mon-Fri 08:00-18:00 Europe/Berlin; Fri-Mon 22:00-06:00 UTC")
	b, err := json.Marshal(holder{h})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"hours":["Mon-Fri 08:00-18:00 Europe/Berlin","Fri-Mon 22:00-06:00 UTC"]}`; got != want {
		t.Fatalf("%s, want %s", got, want)
	}
	var back holder
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Hours) != 2 || !sameWindow(back.Hours[0], h[0]) || !sameWindow(back.Hours[1], h[1]) || back.Hours[1].Text != h[1].Text {
		t.Fatalf("round trip: %+v", back.Hours)
	}
	if b, _ := json.Marshal(holder{}); string(b) != `{}` {
		t.Errorf("empty hours: %s", b)
	}
	for _, tc := range []struct {
		in   string
		want int
	}{
		{`{"hours":null}`, 0},
		{`{"hours":"Mon 08:00-09:00 UTC; Tue 08:00-09:00 UTC"}`, 2},
		{`{"hours":[]}`, 0},
	} {
		var v holder
		if err := json.Unmarshal([]byte(tc.in), &v); err != nil || len(v.Hours) != tc.want {
			t.Errorf("%s: %v, %d windows", tc.in, err, len(v.Hours))
		}
	}
	for _, in := range []string{`{"hours":[1]}`, `{"hours":["Mon 08:00-09:00 Mars"]}`, `{"hours":{}}`} {
		var v holder
		if err := json.Unmarshal([]byte(in), &v); err == nil {
			t.Errorf("%s: accepted", in)
		}
	}
}
