package node

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/callmesh/callmesh/gossip"
	"github.com/callmesh/callmesh/sla"
	"github.com/libp2p/go-libp2p/core/peer"
)

// MeasureTopic carries each node's per-interval quality aggregates, keyed by
// path.
const MeasureTopic = "/callmesh/measure/1"

// MeasureKind is the envelope kind of a PathReport.
const MeasureKind = "path-report"

// maxMeasureSize bounds one report envelope.
const maxMeasureSize = 8 << 10

// maxPathSLAs bounds the SLA ids of a reported path: max_hops providers,
// each entered and left through a contract and possibly a peering.
const maxPathSLAs = 24

// CallMeasure is what a node measured of one call on one path: whether it
// was answered, its post-dial delay, and for an answered call the relay's
// quality summary of the path side (one-way delay, loss, jitter, MOS).
type CallMeasure struct {
	Answered bool
	PDDMs    float64
	// Quality is measured only when the call carried media; the delay only
	// when the relays timed the path's round trip (HasDelay).
	HasQuality bool
	HasDelay   bool
	DelayMs    float64
	LossPct    float64
	JitterMs   float64
	MOS        float64
}

// Stat is a mean and a 95th percentile. For metrics where lower is better
// (delay, loss, jitter, post-dial delay) P95 is the value 95 % of samples
// are at or below; for MOS, where higher is better, it is the value 95 % of
// samples are at or above (the 5th percentile), so that P95 is always the
// bad tail.
type Stat struct {
	Mean float64 `json:"mean"`
	P95  float64 `json:"p95"`
}

// PathReport is one node's aggregate of the calls it measured on one path
// (the ordered SLA ids) during one interval.
type PathReport struct {
	Path     []string  `json:"path"`
	Node     string    `json:"node"` // the reporting node's name
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	Calls    int       `json:"calls"`    // seizures: calls that tried the path
	Answered int       `json:"answered"` // of which answered
	Samples  int       `json:"samples"`  // calls with a quality measurement
	// DelaySamples counts the calls whose delay was measured (the relays
	// timed the path); DelayMs is over those alone.
	DelaySamples int  `json:"delay_samples"`
	DelayMs      Stat `json:"delay_ms"`
	LossPct      Stat `json:"loss_pct"`
	JitterMs     Stat `json:"jitter_ms"`
	MOS          Stat `json:"mos"`
	PDDMs        Stat `json:"pdd_ms"`
}

// ASRPct is the answer-seizure ratio of the interval, in percent.
func (r *PathReport) ASRPct() float64 {
	if r.Calls == 0 {
		return 0
	}
	return 100 * float64(r.Answered) / float64(r.Calls)
}

// check rejects a report no honest node would send.
func (r *PathReport) check() error {
	switch {
	case len(r.Path) == 0 || len(r.Path) > maxPathSLAs:
		return fmt.Errorf("%w: path of %d SLAs", gossip.ErrMalformed, len(r.Path))
	case r.Node == "":
		return fmt.Errorf("%w: report without a node", gossip.ErrMalformed)
	case r.Calls < 0 || r.Answered < 0 || r.Samples < 0 || r.Answered > r.Calls || r.Samples > r.Answered ||
		r.DelaySamples < 0 || r.DelaySamples > r.Samples:
		return fmt.Errorf("%w: counts calls %d, answered %d, samples %d", gossip.ErrMalformed, r.Calls, r.Answered, r.Samples)
	case r.To.Before(r.From):
		return fmt.Errorf("%w: interval ends before it starts", gossip.ErrMalformed)
	}
	for _, id := range r.Path {
		if id == "" || strings.Contains(id, pathSep) {
			return fmt.Errorf("%w: SLA id %q in path", gossip.ErrMalformed, id)
		}
	}
	for _, s := range []struct {
		name string
		v    Stat
		hi   float64
	}{{"delay_ms", r.DelayMs, 60000}, {"loss_pct", r.LossPct, 100}, {"jitter_ms", r.JitterMs, 60000}, {"mos", r.MOS, 5}, {"pdd_ms", r.PDDMs, 600000}} {
		for _, v := range []float64{s.v.Mean, s.v.P95} {
			if math.IsNaN(v) || v < 0 || v > s.hi {
				return fmt.Errorf("%w: %s %v out of range", gossip.ErrMalformed, s.name, v)
			}
		}
	}
	return nil
}

const pathSep = ">"

// pathKey identifies a path: its SLA ids joined by ">".
func pathKey(path []string) string { return strings.Join(path, pathSep) }

// reportEnvKey is the envelope key of a report: its path and interval, so
// that every interval's report is state of its own (anti-entropy passes on
// all of them, not only the newest).
func reportEnvKey(r *PathReport) string {
	return pathKey(r.Path) + "@" + strconv.FormatInt(r.From.UnixMilli(), 10)
}

// measurer aggregates the node's own call measurements per path and
// interval, publishes them, and keeps the recent reports of every node, from
// which routing takes measured figures and compliance its samples.
type measurer struct {
	n     *Node
	topic *gossip.Topic

	mu      sync.Mutex
	pending map[string]*pathAcc // this interval's calls, by path key
	since   time.Time           // start of this interval
	reports map[reportKey]*reportEntry
	comp    *sla.Tracker
	fb      *feedback
	records map[string]sla.Record // latest compliance per SLA id
	version uint64
}

// reportKey is one node's report of one path for one interval (the
// envelope key names both): a node's reports of every interval within the
// horizon count.
type reportKey struct {
	issuer peer.ID
	key    string
}

type reportEntry struct {
	env    *gossip.Envelope
	report *PathReport
}

// pathAcc accumulates one path's calls within an interval.
type pathAcc struct {
	path                     []string
	calls, answered          int
	delay, loss, jitter, mos []float64
	pdd                      []float64
}

func newMeasurer(n *Node) (*measurer, error) {
	m := &measurer{
		n: n, pending: map[string]*pathAcc{}, since: time.Now(),
		reports: map[reportKey]*reportEntry{}, comp: sla.NewTracker(n.cfg.SLA.complianceConfig()),
		fb: newFeedback(n.cfg.SLA, n.log.With("component", "feedback")),
	}
	t, err := n.bus.Join(gossip.TopicSpec{
		Name: MeasureTopic, MaxSize: maxMeasureSize, Kinds: []string{MeasureKind},
		Body:    checkReport,
		Deliver: m.deliver,
		State:   m.state,
	})
	if err != nil {
		return nil, err
	}
	m.topic = t
	return m, nil
}

func checkReport(env *gossip.Envelope) error {
	var r PathReport
	if err := env.DecodeBody(&r); err != nil {
		return err
	}
	if err := r.check(); err != nil {
		return err
	}
	if want := reportEnvKey(&r); env.Key != want {
		return fmt.Errorf("%w: report of %q under key %q", gossip.ErrMalformed, want, env.Key)
	}
	return nil
}

// Record adds one call's measurement on a path to the current interval.
func (m *measurer) Record(path []string, c CallMeasure) {
	if len(path) == 0 {
		return
	}
	k := pathKey(path)
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.pending[k]
	if a == nil {
		a = &pathAcc{path: slices.Clone(path)}
		m.pending[k] = a
	}
	a.calls++
	if c.Answered {
		a.answered++
		a.pdd = append(a.pdd, c.PDDMs)
		if c.HasQuality {
			if c.HasDelay {
				a.delay = append(a.delay, c.DelayMs)
			}
			a.loss = append(a.loss, c.LossPct)
			a.jitter = append(a.jitter, c.JitterMs)
			a.mos = append(a.mos, c.MOS)
		}
	}
}

// stat is the mean and bad-tail 95th percentile of xs (sorted in place);
// higherBetter selects the tail.
func stat(xs []float64, higherBetter bool) Stat {
	if len(xs) == 0 {
		return Stat{}
	}
	slices.Sort(xs)
	sum := 0.0
	for _, x := range xs {
		sum += x
	}
	// Nearest rank: the ⌈0.95·n⌉-th value of the bad tail.
	rank := int(math.Ceil(0.95*float64(len(xs)))) - 1
	p := xs[rank]
	if higherBetter {
		p = xs[len(xs)-1-rank]
	}
	return Stat{Mean: sum / float64(len(xs)), P95: p}
}

func (a *pathAcc) report(node string, from, to time.Time) *PathReport {
	return &PathReport{
		Path: a.path, Node: node, From: from, To: to,
		Calls: a.calls, Answered: a.answered, Samples: len(a.mos), DelaySamples: len(a.delay),
		DelayMs: stat(a.delay, false), LossPct: stat(a.loss, false), JitterMs: stat(a.jitter, false),
		MOS: stat(a.mos, true), PDDMs: stat(a.pdd, false),
	}
}

func (m *measurer) start() {
	m.n.wg.Add(1)
	go m.loop()
}

func (m *measurer) loop() {
	defer m.n.wg.Done()
	t := time.NewTicker(m.n.cfg.SLA.MeasureInterval)
	defer t.Stop()
	for {
		select {
		case <-m.n.ctx.Done():
			return
		case now := <-t.C:
			m.flush(now)
		}
	}
}

// flush ends the interval: each path's aggregate is published and applied
// here as any other node's would be.
func (m *measurer) flush(now time.Time) {
	m.mu.Lock()
	pending, from := m.pending, m.since
	m.pending, m.since = map[string]*pathAcc{}, now
	m.mu.Unlock()
	keys := make([]string, 0, len(pending))
	for k := range pending {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		r := pending[k].report(m.n.cfg.Name, from, now)
		ctx, cancel := context.WithTimeout(m.n.ctx, 5*time.Second)
		env, err := m.topic.Publish(ctx, MeasureKind, reportEnvKey(r), r, now.Add(m.horizon()))
		cancel()
		if err != nil {
			if m.n.ctx.Err() == nil {
				m.n.log.Warn("path report not published", "path", k, "err", err)
			}
			continue
		}
		m.apply(env, r, now)
	}
	m.expire(now)
	m.evaluate(now)
}

// horizon is how long a report counts: for routing's recent measurements
// and as the envelope's expiry.
func (m *measurer) horizon() time.Duration {
	return time.Duration(m.n.cfg.SLA.MeasureKeep) * m.n.cfg.SLA.MeasureInterval
}

func (m *measurer) deliver(env *gossip.Envelope, _ peer.ID) {
	var r PathReport
	if env.DecodeBody(&r) != nil { // checked by the validator
		return
	}
	m.apply(env, &r, time.Now())
}

// apply records a report (ours or another node's) and feeds its samples to
// the compliance of the SLAs it measures.
func (m *measurer) apply(env *gossip.Envelope, r *PathReport, now time.Time) {
	k := reportKey{env.Issuer, env.Key}
	m.mu.Lock()
	if cur := m.reports[k]; cur != nil {
		m.mu.Unlock()
		return // the same interval again (anti-entropy after gossip)
	}
	m.reports[k] = &reportEntry{env: env, report: r}
	m.version++
	m.mu.Unlock()
	// Outside m.mu: the catalogue may be rebuilt here, and the tracker has
	// a lock of its own; calls ending meanwhile record without waiting.
	m.comp.AddPath(r.Path, r.sample(), m.n.slas.Catalogue())
}

// sample is the compliance sample a report makes: its quality means
// weighted by its measured calls, and its seizures for the ASR.
func (r *PathReport) sample() sla.Sample {
	s := sla.Sample{At: r.To, Weight: r.Samples, Seized: r.Calls, Answered: r.Answered}
	if r.Samples > 0 {
		s.Has = sla.HasLoss | sla.HasJitter | sla.HasMOS
		s.LossPct, s.JitterMs, s.MOS = r.LossPct.Mean, r.JitterMs.Mean, r.MOS.Mean
		// An interval mixing timed and untimed calls still judges the
		// delay, on the timed ones' mean.
		if r.DelaySamples > 0 {
			s.Has |= sla.HasDelay
			s.DelayMs = r.DelayMs.Mean
		}
	}
	return s
}

// evaluate judges every SLA of the catalogue, keeps the records for the
// API, and reports each new breach.
func (m *measurer) evaluate(now time.Time) {
	cat := m.n.slas.Catalogue()
	records := make(map[string]sla.Record, len(cat.SLAs))
	for i := range cat.SLAs {
		s := &cat.SLAs[i]
		rec, events := m.comp.Evaluate(s.ID, s.Guarantees, now)
		records[s.ID] = rec
		for _, ev := range events {
			m.n.m.slaBreaches.WithLabelValues(string(ev.Metric)).Inc()
			m.n.log.Warn("SLA in breach", "sla", ev.SLA, "metric", ev.Metric, "value", ev.Value, "limit", ev.Limit)
		}
	}
	m.mu.Lock()
	m.records = records
	m.mu.Unlock()
	// Providers back from quarantine start probation with a clean record:
	// only what they do now judges them.
	if clear := m.fb.update(cat, records, m.comp.Health, now); len(clear) > 0 {
		byProvider := providerSLAs(cat)
		for _, p := range clear {
			m.n.log.Info("provider on probation", "provider", p)
			for _, s := range byProvider[p] {
				m.comp.Forget(s.ID)
			}
		}
	}
}

// Compliance returns an SLA's latest compliance record.
func (m *measurer) Compliance(id string) sla.Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.records[id]; ok {
		return r
	}
	return sla.Record{SLA: id, Status: sla.StatusUnknown}
}

func (m *measurer) expire(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, e := range m.reports {
		if e.env.Expired(now) {
			delete(m.reports, k)
			m.version++
		}
	}
}

func (m *measurer) state() []*gossip.Envelope {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*gossip.Envelope, 0, len(m.reports))
	for _, e := range m.reports {
		if !e.env.Expired(now) {
			out = append(out, e.env)
		}
	}
	return out
}

// Measurements returns the recent measured figures per path, combined over
// every node's reports within the horizon and weighted by their samples, in
// the catalogue's form: routing uses a path's own measurement in place of
// its composed estimate, and a single SLA's where the path measured one
// provider directly.
func (m *measurer) Measurements() []sla.Measurement {
	type acc struct {
		path                     []string
		n, nDelay                int
		delay, loss, jitter, mos float64
	}
	m.mu.Lock()
	byPath := map[string]*acc{}
	for _, e := range m.reports {
		r := e.report
		if r.Samples == 0 {
			continue
		}
		pk := pathKey(r.Path)
		a := byPath[pk]
		if a == nil {
			a = &acc{path: r.Path}
			byPath[pk] = a
		}
		w := float64(r.Samples)
		a.n += r.Samples
		a.nDelay += r.DelaySamples
		a.delay += float64(r.DelaySamples) * r.DelayMs.Mean
		a.loss += w * r.LossPct.Mean
		a.jitter += w * r.JitterMs.Mean
		a.mos += w * r.MOS.Mean
	}
	m.mu.Unlock()
	keys := make([]string, 0, len(byPath))
	for k := range byPath {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]sla.Measurement, 0, len(keys))
	for _, k := range keys {
		a := byPath[k]
		w := float64(a.n)
		m := sla.Measurement{
			Path: slices.Clone(a.path), LossPct: a.loss / w,
			JitterMs: a.jitter / w, MOS: a.mos / w, Samples: a.n,
			DelayUnknown: a.nDelay == 0,
		}
		if a.nDelay > 0 {
			m.DelayMs = a.delay / float64(a.nDelay)
		}
		out = append(out, m)
	}
	return out
}

// Version changes whenever the reports Measurements reads change.
func (m *measurer) Version() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.version
}

// RecordCall adds one call's measurement on a path (its SLA ids in order)
// to the current measurement interval; the call layer calls it when a call
// on a federation path ends.
func (n *Node) RecordCall(path []string, m CallMeasure) { n.measures.Record(path, m) }
