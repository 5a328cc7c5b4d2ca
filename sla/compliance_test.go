package sla

import (
	"encoding/json"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func TestJudge(t *testing.T) {
	var c ComplianceConfig
	for _, tc := range []struct {
		m            Metric
		value, limit float64
		want         Status
	}{
		{MetricDelay, 50, 100, StatusOK},
		{MetricDelay, 90, 100, StatusOK},
		{MetricDelay, 90.1, 100, StatusWarn},
		{MetricDelay, 100, 100, StatusWarn},
		{MetricDelay, 100.1, 100, StatusBreach},
		{MetricLoss, 0, 1, StatusOK},
		{MetricLoss, 0.95, 1, StatusWarn},
		{MetricLoss, 1.5, 1, StatusBreach},
		{MetricJitter, 19, 20, StatusWarn},
		{MetricDelay, 500, 0, StatusUnknown},
		// MOS: best 4.5; limit 3.6 warns below 3.6 + 0.1·0.9 = 3.69.
		{MetricMOS, 4.2, 3.6, StatusOK},
		{MetricMOS, 3.69, 3.6, StatusOK},
		{MetricMOS, 3.65, 3.6, StatusWarn},
		{MetricMOS, 3.6, 3.6, StatusWarn},
		{MetricMOS, 3.59, 3.6, StatusBreach},
		// ASR: best 100; limit 40 warns below 40 + 0.1·60 = 46.
		{MetricASR, 46, 40, StatusOK},
		{MetricASR, 45.9, 40, StatusWarn},
		{MetricASR, 40, 40, StatusWarn},
		{MetricASR, 39.9, 40, StatusBreach},
		{MetricASR, 0, 40, StatusBreach},
	} {
		if got := c.Judge(tc.m, tc.value, tc.limit); got != tc.want {
			t.Errorf("%s %v against %v: %s, want %s", tc.m, tc.value, tc.limit, got, tc.want)
		}
	}
	half := ComplianceConfig{Margin: 0.5}
	if half.Judge(MetricDelay, 51, 100) != StatusWarn || half.Judge(MetricMOS, 4.0, 3.5) != StatusOK || half.Judge(MetricMOS, 3.9, 3.5) != StatusWarn {
		t.Error("margin 0.5")
	}
	for _, m := range Metrics() {
		if m.HigherIsBetter() != (m == MetricMOS || m == MetricASR) {
			t.Errorf("%s polarity", m)
		}
	}
}

// quality returns n samples a second apart ending at end, each of weight
// 1 with the given delay and loss.
func quality(end time.Time, n int, delay, loss float64) []Sample {
	out := make([]Sample, n)
	for i := range out {
		out[i] = Sample{At: end.Add(-time.Duration(n-1-i) * time.Second), Has: HasDelay | HasLoss, DelayMs: delay, LossPct: loss}
	}
	return out
}

func addAll(tr *Tracker, id string, ss []Sample) {
	for _, s := range ss {
		tr.Add(id, s)
	}
}

func metric(r Record, m Metric) (MetricRecord, bool) {
	for _, mr := range r.Metrics {
		if mr.Metric == m {
			return mr, true
		}
	}
	return MetricRecord{}, false
}

func TestTrackerMinSamples(t *testing.T) {
	g := Guarantees{MaxDelayMs: 100}
	tr := NewTracker(ComplianceConfig{})
	addAll(tr, "s", quality(t0, 19, 50, 0))
	rec, _ := tr.Evaluate("s", g, t0)
	if rec.Status != StatusUnknown || len(rec.Metrics) != 1 || rec.Metrics[0].Samples != 19 || rec.Metrics[0].Status != StatusUnknown {
		t.Fatalf("19 samples: %+v", rec)
	}
	tr.Add("s", Sample{At: t0, Has: HasDelay, DelayMs: 50})
	rec, _ = tr.Evaluate("s", g, t0)
	if rec.Status != StatusOK || rec.Metrics[0].Value != 50 || rec.Metrics[0].Limit != 100 || rec.Metrics[0].Window != 15*time.Minute {
		t.Fatalf("20 samples: %+v", rec)
	}
	// One aggregate sample of weight 20 is enough, and weighs 20.
	tr2 := NewTracker(ComplianceConfig{MinSamples: 20})
	tr2.Add("s", Sample{At: t0, Weight: 20, Has: HasDelay, DelayMs: 100})
	tr2.Add("s", Sample{At: t0, Weight: 0, Has: HasDelay, DelayMs: 0}) // weight 0 counts as 1
	rec, _ = tr2.Evaluate("s", g, t0)
	if mr := rec.Metrics[0]; mr.Samples != 21 || math.Abs(mr.Value-100*20.0/21) > 1e-9 || mr.Status != StatusWarn {
		t.Fatalf("weighted: %+v", mr)
	}
}

func TestTrackerMetrics(t *testing.T) {
	tr := NewTracker(ComplianceConfig{MinSamples: 2})
	// Zero guarantees are not judged; a metric without samples is unknown.
	tr.Add("s", Sample{At: t0, Has: HasDelay | HasLoss | HasMOS, DelayMs: 20, LossPct: 0, MOS: 4.3})
	tr.Add("s", Sample{At: t0, Has: HasDelay | HasLoss | HasMOS, DelayMs: 30, LossPct: 2, MOS: 4.1})
	rec, _ := tr.Evaluate("s", Guarantees{MaxLossPct: 1.5, MinMOS: 3.6, MaxJitterMs: 20}, t0)
	var got []string
	for _, mr := range rec.Metrics {
		got = append(got, string(mr.Metric)+"="+string(mr.Status))
	}
	if strings.Join(got, " ") != "loss_pct=ok jitter_ms=unknown mos=ok" || rec.Status != StatusOK {
		t.Fatalf("metrics %v, status %s", got, rec.Status)
	}
	if mr, _ := metric(rec, MetricMOS); math.Abs(mr.Value-4.2) > 1e-9 {
		t.Errorf("MOS mean %v", mr.Value)
	}
	// No guarantee at all: unknown, nothing listed.
	rec, ev := tr.Evaluate("s", Guarantees{}, t0)
	if rec.Status != StatusUnknown || len(rec.Metrics) != 0 || len(ev) != 0 {
		t.Errorf("no guarantees: %+v", rec)
	}
	// A never seen SLA.
	if rec, _ := tr.Evaluate("other", Guarantees{MaxDelayMs: 1}, t0); rec.Status != StatusUnknown || rec.SLA != "other" {
		t.Errorf("unseen SLA: %+v", rec)
	}
}

func TestTrackerASR(t *testing.T) {
	tr := NewTracker(ComplianceConfig{MinSamples: 10})
	g := Guarantees{MinASRPct: 40}
	for i := range 9 {
		tr.Add("s", Sample{At: t0.Add(time.Duration(i) * time.Second), Seized: 1, Answered: i % 3 / 2}) // 3 of 9 answered
	}
	rec, _ := tr.Evaluate("s", g, t0.Add(time.Minute))
	if mr := rec.Metrics[0]; mr.Status != StatusUnknown || mr.Samples != 9 {
		t.Fatalf("9 seizures: %+v", mr)
	}
	tr.Add("s", Sample{At: t0.Add(10 * time.Second), Seized: 1, Answered: 1})
	rec, ev := tr.Evaluate("s", g, t0.Add(time.Minute))
	if mr := rec.Metrics[0]; mr.Status != StatusWarn || mr.Value != 40 || len(ev) != 0 {
		t.Fatalf("4 of 10: %+v", mr)
	}
	// An interval aggregate: 10 seized, 2 answered.
	tr.Add("s", Sample{At: t0.Add(20 * time.Second), Seized: 10, Answered: 2, Has: HasDelay, DelayMs: 30})
	rec, ev = tr.Evaluate("s", g, t0.Add(time.Minute))
	if mr := rec.Metrics[0]; mr.Status != StatusBreach || mr.Value != 30 || mr.Samples != 20 || len(ev) != 1 || ev[0].Metric != MetricASR {
		t.Fatalf("6 of 20: %+v %v", mr, ev)
	}
}

func TestTrackerBreachEvents(t *testing.T) {
	g := Guarantees{MaxDelayMs: 100, MaxLossPct: 1}
	tr := NewTracker(ComplianceConfig{Window: 10 * time.Minute, MinSamples: 5})
	id := "A-p"

	addAll(tr, id, quality(t0, 10, 40, 0.2))
	rec, ev := tr.Evaluate(id, g, t0)
	if rec.Status != StatusOK || len(ev) != 0 || tr.Health(id) != 1 || tr.Breaches(id) != 0 || !rec.Since.Equal(t0) {
		t.Fatalf("healthy: %+v %v", rec, ev)
	}

	// Delay goes bad: one event on the transition, none after.
	t1 := t0.Add(time.Minute)
	addAll(tr, id, quality(t1, 40, 200, 0.2))
	rec, ev = tr.Evaluate(id, g, t1)
	want := BreachEvent{SLA: id, Metric: MetricDelay, Value: (10*40 + 40*200) / 50.0, Limit: 100, At: t1}
	if rec.Status != StatusBreach || len(ev) != 1 || ev[0] != want || !rec.Since.Equal(t1) || rec.Breaches != 1 {
		t.Fatalf("breach: %+v %+v", rec, ev)
	}
	if h := tr.Health(id); math.Abs(h-1/2.25) > 1e-9 {
		t.Errorf("health in breach %v", h)
	}
	t2 := t1.Add(30 * time.Second)
	rec, ev = tr.Evaluate(id, g, t2)
	if len(ev) != 0 || rec.Status != StatusBreach || !rec.Since.Equal(t1) {
		t.Fatalf("still in breach: %+v %v", rec, ev)
	}
	if mr, _ := metric(rec, MetricDelay); mr.Breaches != 1 {
		t.Errorf("metric breaches %d", mr.Breaches)
	}
	if mr, _ := metric(rec, MetricLoss); mr.Breaches != 0 || mr.Status != StatusOK {
		t.Errorf("loss: %+v", mr)
	}

	// Many good samples: ok again, with the breach still counted in the
	// window.
	t3 := t1.Add(5 * time.Minute)
	addAll(tr, id, quality(t3, 400, 10, 0.1))
	rec, ev = tr.Evaluate(id, g, t3)
	if rec.Status != StatusOK || len(ev) != 0 || !rec.Since.Equal(t3) || tr.Breaches(id) != 1 {
		t.Fatalf("recovered: %+v, %d breaches", rec, tr.Breaches(id))
	}
	if h := tr.Health(id); math.Abs(h-1/1.25) > 1e-9 {
		t.Errorf("health after a breach %v", h)
	}

	// Both metrics go bad: two events.
	t4 := t3.Add(time.Minute)
	addAll(tr, id, quality(t4, 400, 300, 5))
	rec, ev = tr.Evaluate(id, g, t4)
	if len(ev) != 2 || ev[0].Metric != MetricDelay || ev[1].Metric != MetricLoss || tr.Breaches(id) != 3 || rec.Breaches != 3 {
		t.Fatalf("second breach: %v, %d breaches", ev, tr.Breaches(id))
	}
	if h := tr.Health(id); math.Abs(h-1/(1+2+0.75)) > 1e-9 {
		t.Errorf("health %v", h)
	}

	// Much later, with no samples: unknown, and the breaches aged out.
	t5 := t4.Add(time.Hour)
	rec, _ = tr.Evaluate(id, g, t5)
	if rec.Status != StatusUnknown || tr.Breaches(id) != 0 || tr.Health(id) != 1 {
		t.Fatalf("aged out: %+v, %d breaches, health %v", rec, tr.Breaches(id), tr.Health(id))
	}
	// Breach from unknown is a new event.
	addAll(tr, id, quality(t5, 10, 300, 0))
	if _, ev := tr.Evaluate(id, g, t5); len(ev) != 1 {
		t.Errorf("breach after unknown: %v", ev)
	}

	tr.Forget(id)
	if tr.Breaches(id) != 0 || tr.Health(id) != 1 {
		t.Error("Forget")
	}
}

func TestTrackerWarnHealth(t *testing.T) {
	tr := NewTracker(ComplianceConfig{MinSamples: 1})
	tr.Add("s", Sample{At: t0, Has: HasDelay, DelayMs: 95})
	rec, ev := tr.Evaluate("s", Guarantees{MaxDelayMs: 100}, t0)
	if rec.Status != StatusWarn || len(ev) != 0 || math.Abs(tr.Health("s")-1/1.1) > 1e-9 {
		t.Fatalf("%+v health %v", rec, tr.Health("s"))
	}
}

func TestTrackerWindow(t *testing.T) {
	tr := NewTracker(ComplianceConfig{Window: time.Minute, MinSamples: 1})
	g := Guarantees{MaxDelayMs: 100}
	// Out of order, and around the window's edges: (now − 1m, now].
	for _, s := range []Sample{
		{At: t0.Add(30 * time.Second), Has: HasDelay, DelayMs: 10},
		{At: t0, Has: HasDelay, DelayMs: 1000},                      // exactly one window before now: out
		{At: t0.Add(time.Minute), Has: HasDelay, DelayMs: 20},       // now: in
		{At: t0.Add(90 * time.Second), Has: HasDelay, DelayMs: 999}, // future: out
		{At: t0.Add(time.Second), Has: HasDelay, DelayMs: 30},
	} {
		tr.Add("s", s)
	}
	rec, _ := tr.Evaluate("s", g, t0.Add(time.Minute))
	if mr := rec.Metrics[0]; mr.Samples != 3 || mr.Value != 20 {
		t.Fatalf("window: %+v", mr)
	}
	// The future sample counts once its time comes; the one at 30 s is
	// then a window old.
	rec, _ = tr.Evaluate("s", g, t0.Add(90*time.Second))
	if mr := rec.Metrics[0]; mr.Samples != 2 || mr.Value != (20+999)/2.0 {
		t.Fatalf("later: %+v", mr)
	}
	// Samples kept per SLA are bounded.
	small := NewTracker(ComplianceConfig{MaxSamples: 5, MinSamples: 1})
	addAll(small, "s", quality(t0, 8, 10, 0))
	rec, _ = small.Evaluate("s", g, t0)
	if rec.Metrics[0].Samples != 5 {
		t.Errorf("kept %d samples", rec.Metrics[0].Samples)
	}
	if c := small.Config(); c.Window != DefaultComplianceWindow || c.Margin != DefaultMargin || c.MaxSamples != 5 {
		t.Errorf("config %+v", c)
	}
}

func TestRecordJSON(t *testing.T) {
	tr := NewTracker(ComplianceConfig{MinSamples: 1})
	tr.Add("s", Sample{At: t0, Has: HasDelay, DelayMs: 10})
	rec, _ := tr.Evaluate("s", Guarantees{MaxDelayMs: 100}, t0)
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"sla":"s","status":"ok","metrics":[{"metric":"delay_ms","status":"ok","value":10,"limit":100,"samples":1,"breaches":0,"window":900000000000}],"breaches":0,"since":"2026-11-26T12:00:00Z"}`
	if string(b) != want {
		t.Errorf("%s\nwant %s", b, want)
	}
	if b, _ := json.Marshal(Record{SLA: "x", Status: StatusUnknown}); string(b) != `{"sla":"x","status":"unknown","breaches":0}` {
		t.Errorf("empty record %s", b)
	}
}

// attribCatalogue has two nodes on one provider, and a second provider.
const attribCatalogue = `
providers:
  - {id: p, access_points: ["sip:p.example"], services: [{type: transit, segments: [{}]}]}
  - {id: q, access_points: ["sip:q.example"], services: [{type: transit, segments: [{}]}]}
slas:
  - {id: A-p, kind: node-provider, between: [A, p]}
  - {id: p-B, kind: node-provider, between: [p, B]}
  - {id: A-q, kind: node-provider, between: [A, q]}
  - {id: A-p2, kind: node-provider, between: [A, p]}
  - {id: p-q, kind: provider-provider, between: [p, q]}
  - {id: A-B, kind: node-node, between: [A, B]}
`

func TestAttribute(t *testing.T) {
	cat, err := ParseCatalogue([]byte(attribCatalogue))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path []string
		want string // ids joined, "" if not attributable
	}{
		{[]string{"A-p"}, "A-p"},
		{[]string{"A-p", "p-B"}, "A-p p-B"},
		{[]string{"p-B", "A-p"}, "p-B A-p"},
		{[]string{"A-p", "A-q"}, ""},        // two providers
		{[]string{"A-p", "A-p2"}, ""},       // back to the same node
		{[]string{"A-p", "A-p"}, ""},        // one SLA twice
		{[]string{"A-p", "p-q"}, ""},        // an interconnect
		{[]string{"A-B", "p-B"}, ""},        // a peering
		{[]string{"A-p", "p-q", "A-q"}, ""}, // several providers
		{[]string{"A-x"}, ""},
		{[]string{"A-p", "A-x"}, ""},
		{nil, ""},
	} {
		ids, ok := Attribute(tc.path, cat)
		if got := strings.Join(ids, " "); got != tc.want || ok != (tc.want != "") {
			t.Errorf("%v: %q %v, want %q", tc.path, got, ok, tc.want)
		}
	}

	ms := AttributePath(Measurement{Path: []string{"A-p", "p-B"}, DelayMs: 70, LossPct: 1, JitterMs: 12, MOS: 4.1, Samples: 40}, cat)
	if len(ms) != 2 || ms[0].SLA != "A-p" || ms[1].SLA != "p-B" {
		t.Fatalf("%+v", ms)
	}
	for _, m := range ms {
		edge := 100 * (1 - math.Sqrt(0.99))
		if m.DelayMs != 35 || math.Abs(m.LossPct-edge) > 1e-12 || math.Abs(m.JitterMs-12/math.Sqrt2) > 1e-12 || m.MOS != 0 || m.Samples != 40 || m.Path != nil {
			t.Errorf("edge %+v", m)
		}
	}
	// The two edges compound to the path's loss.
	l := ms[0].LossPct / 100
	if got := 100 * (1 - (1-l)*(1-l)); math.Abs(got-1) > 1e-9 {
		t.Errorf("compounded %v", got)
	}
	one := AttributePath(Measurement{Path: []string{"A-q"}, DelayMs: 5, LossPct: 0.5, MOS: 4.2, Samples: 3}, cat)
	if len(one) != 1 || !sameJSON(t, one[0], Measurement{SLA: "A-q", DelayMs: 5, LossPct: 0.5, MOS: 4.2, Samples: 3}) {
		t.Errorf("single SLA path: %+v", one)
	}
	direct := Measurement{SLA: "A-q", DelayMs: 1}
	if got := AttributePath(direct, cat); len(got) != 1 || got[0].SLA != "A-q" || got[0].DelayMs != 1 {
		t.Errorf("SLA measurement: %+v", got)
	}
	if got := AttributePath(Measurement{Path: []string{"A-p", "A-q"}}, cat); got != nil {
		t.Errorf("two providers: %+v", got)
	}
	s := SampleOf(Measurement{DelayMs: 3, LossPct: 0, Samples: 7}, t0)
	if s.Has != HasDelay|HasLoss || s.Weight != 7 || !s.At.Equal(t0) {
		t.Errorf("SampleOf %+v", s)
	}
	if s := SampleOf(Measurement{JitterMs: 1, MOS: 4}, t0); s.Has != HasDelay|HasLoss|HasJitter|HasMOS {
		t.Errorf("SampleOf with jitter and MOS %+v", s)
	}
}

func TestTrackerAddPath(t *testing.T) {
	cat, err := ParseCatalogue([]byte(attribCatalogue))
	if err != nil {
		t.Fatal(err)
	}
	tr := NewTracker(ComplianceConfig{MinSamples: 10})
	s := Sample{At: t0, Weight: 10, Has: HasDelay | HasLoss | HasMOS, DelayMs: 80, LossPct: 4, MOS: 3.0, Seized: 10, Answered: 3}
	if !tr.AddPath([]string{"A-p", "p-B"}, s, cat) {
		t.Fatal("single-provider path not attributed")
	}
	if tr.AddPath([]string{"A-p", "p-q", "A-q"}, s, cat) {
		t.Fatal("three-SLA path attributed")
	}
	g := Guarantees{MaxDelayMs: 44, MaxLossPct: 3, MinMOS: 3.5, MinASRPct: 50}
	for _, id := range []string{"A-p", "p-B"} {
		rec, ev := tr.Evaluate(id, g, t0)
		d, _ := metric(rec, MetricDelay)
		l, _ := metric(rec, MetricLoss)
		m, _ := metric(rec, MetricMOS)
		a, _ := metric(rec, MetricASR)
		if d.Value != 40 || d.Status != StatusWarn || l.Status != StatusOK || math.Abs(l.Value-100*(1-math.Sqrt(0.96))) > 1e-9 ||
			m.Status != StatusUnknown || a.Value != 30 || a.Status != StatusBreach || len(ev) != 1 {
			t.Errorf("%s: %+v %v", id, rec, ev)
		}
	}
	if rec, _ := tr.Evaluate("A-q", g, t0); rec.Status != StatusUnknown {
		t.Errorf("A-q got samples: %+v", rec)
	}
	tr.AddPath([]string{"A-q"}, s, cat)
	if rec, _ := tr.Evaluate("A-q", g, t0); rec.Metrics[0].Value != 80 {
		t.Errorf("single SLA path: %+v", rec)
	}
}

func TestTrackerConcurrent(t *testing.T) {
	tr := NewTracker(ComplianceConfig{MinSamples: 1})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				at := t0.Add(time.Duration(i) * time.Second)
				tr.Add("s", Sample{At: at, Has: HasDelay, DelayMs: float64(w * i)})
				tr.Evaluate("s", Guarantees{MaxDelayMs: 100}, at)
				tr.Health("s")
				tr.Breaches("s")
			}
		}()
	}
	wg.Wait()
	if rec, _ := tr.Evaluate("s", Guarantees{MaxDelayMs: 100}, t0.Add(199*time.Second)); rec.Metrics[0].Samples != 800 {
		t.Errorf("samples %d", rec.Metrics[0].Samples)
	}
}
