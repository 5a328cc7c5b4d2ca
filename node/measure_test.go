package node

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/callmesh/callmesh/gossip"
)

func TestStatMeanAndBadTail(t *testing.T) {
	xs := make([]float64, 0, 100)
	for i := 100; i >= 1; i-- {
		xs = append(xs, float64(i))
	}
	// Nearest rank: the 95th of 100 values from the good end.
	if s := stat(append([]float64(nil), xs...), false); s.Mean != 50.5 || s.P95 != 95 {
		t.Errorf("delay-like stat = %+v, want mean 50.5, p95 95", s)
	}
	if s := stat(append([]float64(nil), xs...), true); s.Mean != 50.5 || s.P95 != 6 {
		t.Errorf("MOS-like stat = %+v, want mean 50.5, p95 6 (the value 95 %% are at or above)", s)
	}
	if s := stat(nil, false); s != (Stat{}) {
		t.Errorf("stat of nothing = %+v", s)
	}
	if s := stat([]float64{3}, true); s.Mean != 3 || s.P95 != 3 {
		t.Errorf("stat of one = %+v", s)
	}
}

func TestPathAccReport(t *testing.T) {
	a := &pathAcc{path: []string{"A-p", "B-p"}}
	from := time.Unix(1000, 0)
	m := &measurer{pending: map[string]*pathAcc{pathKey(a.path): a}}
	for i := range 10 {
		// Six calls carried media; the relays timed the path of four.
		m.Record(a.path, CallMeasure{Answered: i < 8, PDDMs: 200, HasQuality: i < 6, HasDelay: i < 4, DelayMs: 40, LossPct: 1, JitterMs: 3, MOS: 4.2})
	}
	r := a.report("A", from, from.Add(time.Minute))
	if r.Calls != 10 || r.Answered != 8 || r.Samples != 6 || r.DelaySamples != 4 || r.ASRPct() != 80 || r.DelayMs.Mean != 40 || r.MOS.P95 != 4.2 {
		t.Fatalf("report = %+v", r)
	}
	if err := r.check(); err != nil {
		t.Fatalf("a good report fails its check: %v", err)
	}
}

func TestPathReportCheckRejects(t *testing.T) {
	good := func() PathReport {
		return PathReport{Path: []string{"A-p", "B-p"}, Node: "A", From: time.Unix(0, 0), To: time.Unix(60, 0),
			Calls: 3, Answered: 2, Samples: 2, DelayMs: Stat{40, 50}, LossPct: Stat{1, 2}, MOS: Stat{4.1, 3.9}}
	}
	for name, edit := range map[string]func(*PathReport){
		"no path":          func(r *PathReport) { r.Path = nil },
		"long path":        func(r *PathReport) { r.Path = make([]string, maxPathSLAs+1) },
		"empty id":         func(r *PathReport) { r.Path[1] = "" },
		"separator in id":  func(r *PathReport) { r.Path[0] = "A>p" },
		"no node":          func(r *PathReport) { r.Node = "" },
		"answered > calls": func(r *PathReport) { r.Answered = 4 },
		"samples > answer": func(r *PathReport) { r.Samples = 3 },
		"negative":         func(r *PathReport) { r.Calls = -1 },
		"backwards":        func(r *PathReport) { r.To = time.Unix(-1, 0) },
		"loss over 100":    func(r *PathReport) { r.LossPct.P95 = 101 },
		"MOS NaN":          func(r *PathReport) { r.MOS.Mean = math.NaN() },
		"negative delay":   func(r *PathReport) { r.DelayMs.Mean = -1 },
	} {
		r := good()
		edit(&r)
		if err := r.check(); !errors.Is(err, gossip.ErrMalformed) {
			t.Errorf("%s: check = %v, want ErrMalformed", name, err)
		}
	}
	r := good()
	env, err := gossip.NewEnvelope(MeasureTopic, MeasureKind, "A-p>X@0", gossip.Seq{Inc: 1, Ctr: 1}, time.Time{}, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkReport(env); !errors.Is(err, gossip.ErrMalformed) {
		t.Errorf("report under another path's key: %v", err)
	}
	env, err = gossip.NewEnvelope(MeasureTopic, MeasureKind, "A-p>B-p@1", gossip.Seq{Inc: 1, Ctr: 1}, time.Time{}, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkReport(env); !errors.Is(err, gossip.ErrMalformed) {
		t.Errorf("report under another interval's key: %v", err)
	}
	env, err = gossip.NewEnvelope(MeasureTopic, MeasureKind, reportEnvKey(&r), gossip.Seq{Inc: 1, Ctr: 1}, time.Time{}, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkReport(env); err != nil {
		t.Errorf("report under its own key: %v", err)
	}
}
