package sla

import (
	"math"
	"slices"
	"sort"
	"sync"
	"time"
)

// Metric names a guaranteed quantity, as in the guarantees of the
// catalogue.
type Metric string

// The metrics an SLA may guarantee.
const (
	MetricDelay  Metric = "delay_ms"  // one-way delay; lower is better
	MetricLoss   Metric = "loss_pct"  // packet loss; lower is better
	MetricJitter Metric = "jitter_ms" // interarrival jitter; lower is better
	MetricMOS    Metric = "mos"       // MOS-CQE; higher is better
	MetricASR    Metric = "asr_pct"   // answer-seizure ratio; higher is better
)

// Metrics lists the metrics in the order records give them.
func Metrics() []Metric {
	return []Metric{MetricDelay, MetricLoss, MetricJitter, MetricMOS, MetricASR}
}

// HigherIsBetter reports the metric's polarity: true for MOS and ASR,
// whose guarantee is a minimum; false for delay, loss and jitter, whose
// guarantee is a maximum.
func (m Metric) HigherIsBetter() bool { return m == MetricMOS || m == MetricASR }

// Best is the best value the metric can take: 0 for delay, loss and
// jitter, 4.5 for MOS, 100 for ASR.
func (m Metric) Best() float64 {
	switch m {
	case MetricMOS:
		return 4.5
	case MetricASR:
		return 100
	}
	return 0
}

// Limit is the metric's guaranteed limit in g; 0 is no guarantee.
func (m Metric) Limit(g Guarantees) float64 {
	switch m {
	case MetricDelay:
		return g.MaxDelayMs
	case MetricLoss:
		return g.MaxLossPct
	case MetricJitter:
		return g.MaxJitterMs
	case MetricMOS:
		return g.MinMOS
	case MetricASR:
		return g.MinASRPct
	}
	return 0
}

// Measured says which quality values a Sample carries.
type Measured uint8

// The quality values of a Sample.
const (
	HasDelay Measured = 1 << iota
	HasLoss
	HasJitter
	HasMOS
)

// Sample is one observation of an SLA's edge: the quality of an interval
// or a call (the values Has marks), call attempts for the answer-seizure
// ratio, or both.
type Sample struct {
	At time.Time
	// Weight is how many measurements the quality values summarise (calls,
	// probes); means over a window are weighted by it. 0 counts as 1.
	Weight int
	Has    Measured
	// Quality: one-way delay, loss in percent, interarrival jitter, MOS.
	DelayMs, LossPct, JitterMs, MOS float64
	// Seized calls tried the edge, Answered of them were answered.
	Seized, Answered int
}

// SampleOf is the sample a Measurement makes at a time: delay and loss are
// always measured, jitter and MOS when not zero; its weight is its sample
// count.
func SampleOf(m Measurement, at time.Time) Sample {
	s := Sample{At: at, Weight: m.Samples, Has: HasDelay | HasLoss, DelayMs: m.DelayMs, LossPct: m.LossPct, JitterMs: m.JitterMs, MOS: m.MOS}
	if m.JitterMs != 0 {
		s.Has |= HasJitter
	}
	if m.MOS != 0 {
		s.Has |= HasMOS
	}
	return s
}

// Status is a judgement of compliance.
type Status string

// The statuses, from best to worst; unknown is too few samples to judge.
const (
	StatusOK      Status = "ok"
	StatusWarn    Status = "warn"
	StatusBreach  Status = "breach"
	StatusUnknown Status = "unknown"
)

// rank orders judged statuses; unknown ranks below ok.
func (s Status) rank() int {
	switch s {
	case StatusOK:
		return 1
	case StatusWarn:
		return 2
	case StatusBreach:
		return 3
	}
	return 0
}

// MetricRecord is the compliance of one guaranteed metric over the window.
type MetricRecord struct {
	Metric Metric `json:"metric"`
	Status Status `json:"status"`
	// Value is the window's figure: the weighted mean for delay, loss,
	// jitter and MOS, answered/seized·100 for ASR; 0 without samples.
	Value float64 `json:"value"`
	Limit float64 `json:"limit"`
	// Samples is the weight of the window's samples of the metric (the
	// seizures for ASR); Breaches the transitions into breach within the
	// window.
	Samples  int           `json:"samples"`
	Breaches int           `json:"breaches"`
	Window   time.Duration `json:"window"`
}

// Record is an SLA's compliance with its guarantees, as of an evaluation.
type Record struct {
	SLA string `json:"sla"`
	// Status is the worst status of the judged metrics, or unknown when no
	// metric could be judged (none guaranteed, or too few samples).
	Status  Status         `json:"status"`
	Metrics []MetricRecord `json:"metrics,omitempty"`
	// Breaches counts the transitions into breach of every metric within
	// the window.
	Breaches int `json:"breaches"`
	// Since is when Status was first found, by the evaluations so far.
	Since time.Time `json:"since,omitzero"`
}

// BreachEvent is the transition of one metric of an SLA into breach.
type BreachEvent struct {
	SLA    string    `json:"sla"`
	Metric Metric    `json:"metric"`
	Value  float64   `json:"value"`
	Limit  float64   `json:"limit"`
	At     time.Time `json:"at"`
}

// ComplianceConfig sets how compliance is judged; zero fields take the
// defaults.
type ComplianceConfig struct {
	// Window is the span of the rolling window of samples; default 15 min.
	Window time.Duration
	// MinSamples is the weight of samples a metric needs in the window
	// before it is judged (seizures for ASR); default 20.
	MinSamples int
	// Margin places the warning line between a metric's best value and its
	// limit, as the fraction of the way from best to limit beyond which a
	// metric warns: default 0.9. With limit L and best value B, a metric
	// warns when its value lies beyond B + Margin·(L − B) but not beyond L:
	// a maximum (B = 0) above 0.9·L, a minimum MOS (B = 4.5) below
	// L + 0.1·(4.5 − L), a minimum ASR (B = 100) below L + 0.1·(100 − L).
	Margin float64
	// MaxSamples bounds the samples kept per SLA; the oldest go first.
	// Default 10000.
	MaxSamples int
}

// The defaults of ComplianceConfig.
const (
	DefaultComplianceWindow = 15 * time.Minute
	DefaultMinSamples       = 20
	DefaultMargin           = 0.9
	DefaultMaxSamples       = 10000
)

func (c ComplianceConfig) withDefaults() ComplianceConfig {
	if c.Window <= 0 {
		c.Window = DefaultComplianceWindow
	}
	if c.MinSamples <= 0 {
		c.MinSamples = DefaultMinSamples
	}
	if c.Margin <= 0 || c.Margin >= 1 || math.IsNaN(c.Margin) {
		c.Margin = DefaultMargin
	}
	if c.MaxSamples <= 0 {
		c.MaxSamples = DefaultMaxSamples
	}
	return c
}

// Judge returns the status of a value against a limit with the config's
// margin (see ComplianceConfig.Margin); unknown when the limit is 0.
func (c ComplianceConfig) Judge(m Metric, value, limit float64) Status {
	if limit <= 0 {
		return StatusUnknown
	}
	c = c.withDefaults()
	warnAt := m.Best() + c.Margin*(limit-m.Best())
	if m.HigherIsBetter() {
		switch {
		case value < limit:
			return StatusBreach
		case value < warnAt:
			return StatusWarn
		}
		return StatusOK
	}
	switch {
	case value > limit:
		return StatusBreach
	case value > warnAt:
		return StatusWarn
	}
	return StatusOK
}

// Tracker keeps each SLA's recent samples and judges its compliance over a
// rolling window. Time is an argument: samples carry theirs, evaluations
// take now. It is safe for concurrent use.
type Tracker struct {
	cfg  ComplianceConfig
	mu   sync.Mutex
	slas map[string]*slaTrack
}

type slaTrack struct {
	samples []Sample // sorted by At
	metrics map[Metric]Status
	events  []BreachEvent
	status  Status
	since   time.Time
	health  float64
}

// NewTracker returns a tracker judging with cfg (zero fields take the
// defaults).
func NewTracker(cfg ComplianceConfig) *Tracker {
	return &Tracker{cfg: cfg.withDefaults(), slas: map[string]*slaTrack{}}
}

// Config is the tracker's configuration, defaults filled in.
func (t *Tracker) Config() ComplianceConfig { return t.cfg }

func (t *Tracker) track(id string) *slaTrack {
	st := t.slas[id]
	if st == nil {
		st = &slaTrack{metrics: map[Metric]Status{}, status: StatusUnknown, health: 1}
		t.slas[id] = st
	}
	return st
}

// Add records a sample of an SLA's edge. Samples are kept while an
// evaluation may still use them: those a window older than the last
// evaluation, or two windows older than the newest sample, go, and beyond
// MaxSamples the oldest.
func (t *Tracker) Add(slaID string, s Sample) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.track(slaID)
	i := sort.Search(len(st.samples), func(i int) bool { return st.samples[i].At.After(s.At) })
	st.samples = slices.Insert(st.samples, i, s)
	st.prune(st.samples[len(st.samples)-1].At.Add(-2*t.cfg.Window), t.cfg.MaxSamples)
}

// prune drops the samples at or before cutoff, and the oldest beyond
// limit.
func (st *slaTrack) prune(cutoff time.Time, limit int) {
	drop := sort.Search(len(st.samples), func(i int) bool { return st.samples[i].At.After(cutoff) })
	drop = max(drop, len(st.samples)-limit)
	if drop > 0 {
		st.samples = slices.Delete(st.samples, 0, drop)
	}
}

// AddPath records a sample measured over a whole path (its SLA ids in
// order) against the SLAs of cat it can be attributed to (Attribute), each
// edge of a single-provider path getting its share as in AttributePath, and
// reports whether it could.
func (t *Tracker) AddPath(path []string, s Sample, cat *Catalogue) bool {
	ids, ok := Attribute(path, cat)
	if !ok {
		return false
	}
	edge := s
	if len(ids) == 2 {
		edge = splitSample(s)
	}
	for _, id := range ids {
		t.Add(id, edge)
	}
	return true
}

// Forget drops everything known of an SLA.
func (t *Tracker) Forget(slaID string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.slas, slaID)
}

// Evaluate judges an SLA's compliance with its guarantees g over the
// window ending at now: the samples with now − Window < At <= now. A
// metric whose guarantee is 0 is not judged and not listed. A metric with
// less than MinSamples of sample weight in the window is unknown. It
// returns the record and a BreachEvent for each metric that went into
// breach since the previous evaluation of the SLA (an SLA never evaluated
// had no breach).
func (t *Tracker) Evaluate(slaID string, g Guarantees, now time.Time) (Record, []BreachEvent) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.track(slaID)
	from := now.Add(-t.cfg.Window)
	lo := sort.Search(len(st.samples), func(i int) bool { return st.samples[i].At.After(from) })
	hi := sort.Search(len(st.samples), func(i int) bool { return st.samples[i].At.After(now) })
	window := st.samples[lo:max(lo, hi)]
	defer st.prune(from, t.cfg.MaxSamples)

	kept := st.events[:0]
	for _, e := range st.events {
		if e.At.After(from) {
			kept = append(kept, e)
		}
	}
	st.events = kept

	rec := Record{SLA: slaID, Status: StatusUnknown}
	var events []BreachEvent
	judged := map[Metric]bool{}
	for _, m := range Metrics() {
		limit := m.Limit(g)
		if limit <= 0 {
			continue
		}
		judged[m] = true
		value, weight := aggregate(window, m)
		status := StatusUnknown
		if weight >= t.cfg.MinSamples {
			status = t.cfg.Judge(m, value, limit)
		}
		if status == StatusBreach && st.metrics[m] != StatusBreach {
			e := BreachEvent{SLA: slaID, Metric: m, Value: value, Limit: limit, At: now}
			events = append(events, e)
			st.events = append(st.events, e)
		}
		st.metrics[m] = status
		if status.rank() > rec.Status.rank() {
			rec.Status = status
		}
		rec.Metrics = append(rec.Metrics, MetricRecord{Metric: m, Status: status, Value: value, Limit: limit,
			Samples: weight, Window: t.cfg.Window})
	}
	for m := range st.metrics {
		if !judged[m] {
			delete(st.metrics, m)
		}
	}
	breached, warned := 0, 0
	for i := range rec.Metrics {
		r := &rec.Metrics[i]
		for _, e := range st.events {
			if e.Metric == r.Metric {
				r.Breaches++
			}
		}
		switch r.Status {
		case StatusBreach:
			breached++
		case StatusWarn:
			warned++
		}
	}
	rec.Breaches = len(st.events)
	if rec.Status != st.status || st.since.IsZero() {
		st.status, st.since = rec.Status, now
	}
	rec.Since = st.since
	st.health = 1 / (1 + float64(breached) + 0.1*float64(warned) + 0.25*float64(len(st.events)))
	return rec, events
}

// Breaches is the number of transitions into breach of the SLA's metrics
// within the window, as of its last evaluation; 0 for an SLA never
// evaluated.
func (t *Tracker) Breaches(slaID string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if st := t.slas[slaID]; st != nil {
		return len(st.events)
	}
	return 0
}

// Health is a factor in (0, 1] for routing to weigh an SLA by, as of its
// last evaluation: 1 for an SLA without current trouble (or never
// evaluated), and
//
//	1 / (1 + b + 0.1·w + 0.25·e)
//
// with b its metrics in breach, w its metrics in warning and e its
// transitions into breach within the window, so that an SLA that flaps is
// trusted less than one that breached once.
func (t *Tracker) Health(slaID string) float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if st := t.slas[slaID]; st != nil {
		return st.health
	}
	return 1
}

// aggregate is a metric's window figure and the weight behind it.
func aggregate(window []Sample, m Metric) (value float64, weight int) {
	if m == MetricASR {
		seized, answered := 0, 0
		for _, s := range window {
			seized += max(s.Seized, 0)
			answered += max(s.Answered, 0)
		}
		if seized == 0 {
			return 0, 0
		}
		return 100 * float64(min(answered, seized)) / float64(seized), seized
	}
	var flag Measured
	switch m {
	case MetricDelay:
		flag = HasDelay
	case MetricLoss:
		flag = HasLoss
	case MetricJitter:
		flag = HasJitter
	case MetricMOS:
		flag = HasMOS
	}
	sum := 0.0
	for _, s := range window {
		if s.Has&flag == 0 {
			continue
		}
		w := max(s.Weight, 1)
		var v float64
		switch m {
		case MetricDelay:
			v = s.DelayMs
		case MetricLoss:
			v = s.LossPct
		case MetricJitter:
			v = s.JitterMs
		case MetricMOS:
			v = s.MOS
		}
		sum += float64(w) * v
		weight += w
	}
	if weight == 0 {
		return 0, 0
	}
	return sum / float64(weight), weight
}

// Attribute tells which SLAs of cat a measurement over a whole path (its
// SLA ids in order) measures directly:
//   - a path of one SLA measures that SLA's edge;
//   - a path of two node-provider SLAs with the same provider, from one
//     node to another, measures that provider's two edges, one per SLA;
//   - any other path crosses several providers, and is not attributed to
//     any SLA (ok is false); nor is a path naming an SLA cat lacks.
func Attribute(path []string, cat *Catalogue) (ids []string, ok bool) {
	switch len(path) {
	case 1:
		if cat.SLA(path[0]) == nil {
			return nil, false
		}
		return []string{path[0]}, true
	case 2:
		a, b := cat.SLA(path[0]), cat.SLA(path[1])
		if a == nil || b == nil || a.ID == b.ID || a.Kind != NodeProvider || b.Kind != NodeProvider {
			return nil, false
		}
		pa, pb := providerParty(a, cat), providerParty(b, cat)
		if pa == "" || pa != pb {
			return nil, false
		}
		na, _ := a.Other(pa)
		nb, _ := b.Other(pb)
		if na == nb {
			return nil, false
		}
		return []string{a.ID, b.ID}, true
	}
	return nil, false
}

// providerParty is the party of a node-provider SLA that is a provider of
// cat, or "" unless exactly one is.
func providerParty(s *SLA, cat *Catalogue) string {
	p0, p1 := cat.Provider(s.Between[0]) != nil, cat.Provider(s.Between[1]) != nil
	switch {
	case p0 && !p1:
		return s.Between[0]
	case p1 && !p0:
		return s.Between[1]
	}
	return ""
}

// AttributePath splits a path measurement among the SLAs Attribute finds
// it measures: a path of one SLA gives that SLA the whole measurement; a
// single-provider path of two SLAs gives each of its two edges half the
// delay, the loss l_e = 1 − √(1 − l) (so that the two edges compound to
// the path's loss), jitter/√2 (independent edges add their jitter
// variances) and no MOS (a MOS is of a whole path). Each result names its
// SLA and keeps the sample count. A measurement already of one SLA is
// returned as is; an unattributable one gives nil.
func AttributePath(m Measurement, cat *Catalogue) []Measurement {
	if m.SLA != "" {
		return []Measurement{m}
	}
	ids, ok := Attribute(m.Path, cat)
	if !ok {
		return nil
	}
	if len(ids) == 1 {
		one := m
		one.SLA, one.Path = ids[0], nil
		return []Measurement{one}
	}
	s := splitSample(SampleOf(m, time.Time{}))
	out := make([]Measurement, len(ids))
	for i, id := range ids {
		out[i] = Measurement{SLA: id, DelayMs: s.DelayMs, LossPct: s.LossPct, JitterMs: s.JitterMs, Samples: m.Samples,
			DelayUnknown: m.DelayUnknown}
	}
	return out
}

// splitSample is one edge's share of a sample over a single-provider path
// of two edges: half the delay, loss 1 − √(1 − l), jitter/√2, no MOS. Call
// counts stay whole: an unanswered call is the provider's on both edges.
func splitSample(s Sample) Sample {
	e := s
	e.DelayMs = s.DelayMs / 2
	l := min(max(s.LossPct, 0), 100) / 100
	e.LossPct = 100 * (1 - math.Sqrt(1-l))
	e.JitterMs = s.JitterMs / math.Sqrt2
	e.MOS = 0
	e.Has &^= HasMOS
	return e
}
