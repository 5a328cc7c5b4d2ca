package sim

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/callmesh/callmesh/node"
	"github.com/callmesh/callmesh/node/b2bua"
	"github.com/callmesh/callmesh/routing"
)

// Run places the demo's calls in rounds: in each round every lane calls at
// once, talks for the hold time and hangs up; the next round starts after
// the gap. The provider steps (cheapnet degraded, midnet down and back)
// happen as the schedule says; nothing is ever said to the nodes. Run
// returns what the calls did; when ctx ends it stops after the calls in
// progress and returns what it has, with ctx's error.
func (d *Demo) Run(ctx context.Context) (DemoResult, error) {
	rounds := demoSchedule(demoRounds(d.cfg.Duration, d.cfg.Hold, d.cfg.Gap))
	d.mu.Lock()
	d.start = time.Now()
	d.totals.Rounds = len(rounds)
	d.result = DemoResult{Rounds: len(rounds)}
	d.mu.Unlock()

	tickCtx, stopTicks := context.WithCancel(ctx)
	var ticks sync.WaitGroup
	ticks.Add(1)
	go func() {
		defer ticks.Done()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		seen := d.standings(nil)
		for {
			select {
			case <-tickCtx.Done():
				return
			case <-t.C:
				seen = d.standings(seen)
				d.emit(DemoEvent{Kind: "tick"})
			}
		}
	}()

	var err error
	for i, rd := range rounds {
		if err = ctx.Err(); err != nil {
			break
		}
		if err = d.round(ctx, i, rd); err != nil {
			break
		}
		if i < len(rounds)-1 {
			if err = sleep(ctx, d.cfg.Gap); err != nil {
				break
			}
		}
	}
	stopTicks()
	ticks.Wait()

	d.mu.Lock()
	defer d.mu.Unlock()
	res := d.result
	res.Nodes, res.Users = d.dir.Nodes, d.dir.Users
	for _, p := range d.dir.Providers {
		p.Invites = d.provider(p.ID).p.Counters().Invites
		res.Providers = append(res.Providers, p)
	}
	res.ElapsedMS = time.Since(d.start).Milliseconds()
	slices.SortStableFunc(res.Calls, func(a, b DemoCall) int {
		if a.Round != b.Round {
			return a.Round - b.Round
		}
		return int(a.StartedMS - b.StartedMS)
	})
	if res.Calls == nil {
		res.Calls = []DemoCall{}
	}
	if res.Steps == nil {
		res.Steps = []DemoStep{}
	}
	if res.Feedback == nil {
		res.Feedback = []DemoJudgement{}
	}
	return res, err
}

// round runs round i: its provider steps, then one call per lane.
func (d *Demo) round(ctx context.Context, i int, rd demoRound) error {
	d.mu.Lock()
	d.totals.Round, d.totals.Phase = i+1, rd.phase
	d.mu.Unlock()
	mid := d.provider(demoMid)
	switch {
	case rd.down:
		m := Mode{Failure: Failure{Down: true}}
		if mid.impair != nil {
			m.Degraded, m.Impair = true, *mid.impair
		}
		if err := d.step(i, ActionDown, mid, m, "answers nothing: calls must fail over"); err != nil {
			return err
		}
	case rd.up:
		if err := d.step(i, ActionUp, mid, mid.normal(), "answers again"); err != nil {
			return err
		}
	}
	d.emit(DemoEvent{Kind: "round", Text: fmt.Sprintf("round %d/%d: %s", i+1, d.totals.Rounds, rd.phase)})

	var wg sync.WaitGroup
	var settled sync.WaitGroup // each call answered or failed
	settled.Add(len(demoLanes))
	for k, l := range demoLanes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A little apart, as people dial.
			if sleep(ctx, time.Duration(k)*150*time.Millisecond) != nil {
				settled.Done()
				return
			}
			d.placeCall(ctx, i, rd.phase, l, settled.Done)
		}()
	}
	if rd.phase == PhaseDegrade {
		// Degrade cheapnet while the round's calls are up, so that the
		// calls it carries measure the change.
		settled.Wait()
		if err := sleep(ctx, min(time.Second, d.cfg.Hold/3)); err == nil {
			cheap := d.provider(demoCheap)
			m := Mode{Degraded: true, Impair: demoDegraded}
			if err := d.step(i, ActionDegrade, cheap, m, fmt.Sprintf("media now %d ms, %.0f%% loss: nobody tells the nodes",
				demoDegraded.DelayMs, demoDegraded.LossPct)); err != nil {
				wg.Wait()
				return err
			}
		}
	}
	wg.Wait()
	return nil
}

// standings reads every node's standing of the providers (the feedback
// loop's verdicts) and records the changes since seen; with seen nil it
// only reads.
func (d *Demo) standings(seen map[[2]string]string) map[[2]string]string {
	now := make(map[[2]string]string)
	for _, n := range d.fed.Running() {
		for _, st := range n.Providers() {
			key := [2]string{n.Name(), st.ID}
			now[key] = string(st.State)
			if seen == nil || seen[key] == now[key] || (seen[key] == "" && st.State == node.ProviderOK) {
				continue
			}
			d.mu.Lock()
			j := DemoJudgement{AtMS: time.Since(d.start).Milliseconds(), Node: n.Name(), Provider: st.ID, State: now[key]}
			d.result.Feedback = append(d.result.Feedback, j)
			d.mu.Unlock()
			d.emit(DemoEvent{Kind: "feedback", Text: fmt.Sprintf("%s judges %s %s", j.Node, j.Provider, j.State)})
		}
	}
	return now
}

// normal is the provider's mode when nothing is wrong with it.
func (p *demoProvider) normal() Mode {
	if p.impair == nil {
		return Mode{}
	}
	return Mode{Degraded: true, Impair: *p.impair}
}

// step switches a provider's mode and records it.
func (d *Demo) step(round int, action string, p *demoProvider, m Mode, detail string) error {
	invites := p.p.Counters().Invites
	if err := p.p.SetMode(m); err != nil {
		return fmt.Errorf("demo: %s %s: %w", action, p.id, err)
	}
	d.mu.Lock()
	s := DemoStep{AtMS: time.Since(d.start).Milliseconds(), Round: round + 1, Action: action, Provider: p.id, Detail: detail,
		InvitesBefore: invites}
	d.result.Steps = append(d.result.Steps, s)
	d.mu.Unlock()
	d.emit(DemoEvent{Kind: "step", Text: fmt.Sprintf("%s %s: %s", action, p.id, detail)})
	return nil
}

// Restore puts every provider back in its normal mode (after a run, for
// calls of real phones).
func (d *Demo) Restore() error {
	var errs []error
	for _, p := range d.providers {
		errs = append(errs, p.p.SetMode(p.normal()))
	}
	return errors.Join(errs...)
}

// placeCall places one call of a lane and records it; settled is called
// once the call is answered or has failed.
func (d *Demo) placeCall(ctx context.Context, round int, phase string, l demoLane, settled func()) {
	var once sync.Once
	done := func() { once.Do(settled) }
	defer done()
	caller := d.user(l.caller)
	n := d.fed.Node(caller.node)
	domain := n.Config().Domain
	c := DemoCall{Round: round + 1, Phase: phase, Kind: l.kind, Caller: caller.name + "@" + domain,
		Class: string(caller.class), Path: []string{}, PricePerMinute: ""}
	c.Callee = l.callee
	if l.kind != KindNumber {
		c.Callee = l.callee + "@" + domain
	}
	plan := d.plan(ctx, n, c.Caller, c.Callee)

	d.mu.Lock()
	d.totals.Active++
	c.StartedMS = time.Since(d.start).Milliseconds()
	d.mu.Unlock()
	w := watchCall(n, caller.name)
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	call, err := caller.ua.Dial(dctx, l.callee)
	cancel()
	done()
	var info *b2bua.Info
	if err == nil {
		c.Status = 200
		t := time.NewTimer(d.cfg.Hold)
		select {
		case <-t.C:
		case <-call.Done():
		case <-ctx.Done():
		}
		t.Stop()
		info = w.snapshot() // the media as measured up to the BYE
		c.RTPReceived = call.Received().Packets
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := call.Hangup(hctx); err != nil {
			d.log.Info("hang-up failed", "caller", c.Caller, "err", err)
		}
		cancel()
		if call.EndedByRemote() {
			c.Reason = "ended by the far side"
		}
	} else {
		var ce *CallError
		if errors.As(err, &ce) {
			c.Status, c.Reason = ce.Status, ce.Reason
		}
		if c.Reason == "" {
			c.Reason = err.Error()
		}
	}
	if last := w.stop(); info == nil {
		info = last
	}
	d.describe(&c, n, info, plan)

	d.mu.Lock()
	d.totals.Active--
	d.totals.Placed++
	switch {
	case c.Status >= 200 && c.Status < 300:
		d.totals.Answered++
		if c.Attempts > 1 {
			d.totals.FailedOver++
		}
	default:
		d.totals.Failed++
	}
	d.result.Calls = append(d.result.Calls, c)
	d.mu.Unlock()
	d.emit(DemoEvent{Kind: "call", Call: &c})
}

// plan is the caller's node's plan for a call just before it is placed;
// nil when it cannot plan (a call within a node, or no path).
func (d *Demo) plan(ctx context.Context, n *node.Node, caller, callee string) []routing.Path {
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := n.Route(pctx, node.RouteRequest{From: caller, To: callee, K: 10})
	if err != nil {
		return nil
	}
	return res.Paths
}

// describe fills in what the caller's node said of the call.
func (d *Demo) describe(c *DemoCall, n *node.Node, info *b2bua.Info, plan []routing.Path) {
	if c.Kind == KindLocal {
		c.Master, c.Path, c.PricePerMinute, c.Attempts = n.Name(), []string{n.Name()}, "0", 1
	}
	if info == nil {
		return
	}
	if info.MOS > 0 {
		mos := round2(info.MOS)
		c.MeasuredMOS = &mos
	}
	if c.Kind == KindLocal {
		return
	}
	c.Master = info.Master
	c.Path = append([]string{}, info.Path...)
	c.Attempts = len(info.Attempts)
	for _, a := range info.Attempts {
		if a.Status >= 200 && a.Status < 300 {
			continue
		}
		c.Tried = append(c.Tried, DemoAttempt{Path: a.Hops, Status: a.Status})
	}
	for _, p := range plan {
		if slices.Equal(p.Hops, c.Path) {
			mos := round2(p.MOS)
			c.PredictedMOS, c.PricePerMinute = &mos, p.PricePerMinute.String()
			break
		}
	}
}

func round2(x float64) float64 { return float64(int64(x*100+0.5)) / 100 }

// callWatch follows a caller's call at its node: the node's description
// of it, polled while the call is set up and up.
type callWatch struct {
	n      *node.Node
	caller string
	since  time.Time

	mu     sync.Mutex
	latest *b2bua.Info
	stopCh chan struct{}
	done   chan struct{}
}

func watchCall(n *node.Node, caller string) *callWatch {
	w := &callWatch{n: n, caller: caller, since: time.Now(), stopCh: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			w.snapshot()
			select {
			case <-w.stopCh:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// snapshot looks at the call now and returns the latest description.
func (w *callWatch) snapshot() *b2bua.Info {
	var found *b2bua.Info
	for _, in := range w.n.Calls().Calls() {
		if in.Caller == w.caller && (in.Role == "ingress" || in.Role == "") && !in.Started.Before(w.since) {
			found = &in
			break
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if found != nil {
		w.latest = found
	}
	return w.latest
}

// stop ends the watch and returns the latest description.
func (w *callWatch) stop() *b2bua.Info {
	close(w.stopCh)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.latest
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
