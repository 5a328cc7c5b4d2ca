package itest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/callmesh/callmesh/itest/sim"
	"github.com/callmesh/callmesh/node"
	"github.com/callmesh/callmesh/node/accounts"
)

// sippStream starts a SIPp caller placing calls at rate per second until
// stopped (each call with RTP both ways for callMs); stop kills it.
func sippStream(t *testing.T, n *node.Node, scenario, caller, callee string, rate, callMs int) (stop func()) {
	t.Helper()
	dir := sippDir(t)
	domain := n.Config().Domain
	inf := "SEQUENTIAL\n" + fmt.Sprintf("%s;%s;%s;[authentication username=%s password=%s-secret]\n", caller, callee, domain, caller, caller)
	if err := os.WriteFile(filepath.Join(dir, "calls.csv"), []byte(inf), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, sippBin(t), n.SIPAddr(), "-sf", sippScenario(t, scenario), "-inf", filepath.Join(dir, "calls.csv"),
		"-i", "127.0.0.1", "-mi", "127.0.0.1", "-mp", strconv.Itoa(freeMediaBase()), "-t", "u1",
		"-r", strconv.Itoa(rate), "-l", "100", "-d", strconv.Itoa(callMs), "-nostdin", "-timeout", "5m")
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

// TestQualityFeedbackMovesCallsAndBringsThemBack: a steady stream of SIPp
// calls with RTP from node0 to node2; the master's best path is through
// alpha. Midway only alpha's emulator degrades (loss and delay): the nodes
// measure it, its SLAs fall into breach, and within a bounded number of
// measurement intervals new calls avoid it; when alpha recovers and its
// quarantine and probation pass, traffic returns. Nothing here tells a
// node which path to take: the test only reads where calls went.
func TestQualityFeedbackMovesCallsAndBringsThemBack(t *testing.T) {
	const interval = 500 * time.Millisecond
	media := func(id, ports string) sim.ProviderConfig {
		c := sim.DefaultProviderConfig(id)
		c.Media = &sim.ProviderMedia{Bind: "127.0.0.1", Ports: ports}
		return c
	}
	f := newPathFederationWith(t, pathProviders{alpha: media("alpha", "6000-6999"), beta: media("beta", "7000-7999")},
		func(i int, cfg *node.Config) {
			cfg.SLA.MeasureInterval = interval
			cfg.SLA.MeasureKeep = 4 // reports count for 2 s: a recovered provider is judged afresh
			cfg.SLA.ComplianceWindow = 4 * interval
			cfg.SLA.MinSamples = 4
			cfg.SLA.QuarantineAfter = 2
			cfg.SLA.Probation = 4 * time.Second
			cfg.SLA.ProbationShare = 0.5
			cfg.Media.Timeout = 3 * time.Second
			cfg.Media.ReportInterval = 100 * time.Millisecond // the relays time the path within a short call
			if i == 0 {
				cfg.Calls.Trusted = []string{"127.0.0.1"}
			}
		})
	c := f.c
	n0 := c.Node(0)
	f.sippCallee(t, accounts.Bronze)
	stop := sippStream(t, n0, "uac_call_rtp.xml", "alice", "bob", 8, 600)
	defer stop()

	state := func(n *node.Node, p string) node.ProviderState {
		for _, s := range n.Providers() {
			if s.ID == p {
				return s.State
			}
		}
		return ""
	}
	// gains reports whether a provider forwards new INVITEs over a span.
	gains := func(p *sim.Provider, span time.Duration) bool {
		before := p.Counters().Forwarded
		time.Sleep(span)
		return p.Counters().Forwarded > before
	}

	// Calls flow through alpha, the cheapest path.
	Eventually(t, 20*time.Second, func() bool { return f.alpha.Counters().Answered >= 10 }, "calls did not flow through alpha")
	if f.beta.Counters().Forwarded != 0 {
		t.Fatalf("beta carried %d calls while alpha was fine", f.beta.Counters().Forwarded)
	}

	// alpha degrades: 8 % bursty loss and 150 ms more delay.
	degraded := time.Now()
	if err := f.alpha.SetMode(sim.Mode{Degraded: true, Impair: sim.ImpairSpec{LossPct: 8, Burst: 2, DelayMs: 150, Seed: 3}}); err != nil {
		t.Fatal(err)
	}
	// Within a bounded number of intervals (the window fills, two breached
	// intervals, the report's gossip), every node has it quarantined and
	// new calls go through beta.
	bound := 40 * interval
	Eventually(t, bound, func() bool {
		for _, n := range c.Running() {
			if state(n, "alpha") != node.ProviderQuarantined {
				return false
			}
		}
		return true
	}, "alpha was not quarantined by every node within %s of its degradation: node0 sees %+v", bound, n0.Providers())
	t.Logf("alpha quarantined everywhere %s after its degradation", time.Since(degraded).Round(interval))
	for _, m := range n0.Catalogue().Measurements {
		if m.SLA == "node0-alpha" {
			t.Logf("node0's measurement of node0-alpha while degraded: %+v", m)
		}
	}
	everywhere := time.Now()
	if gains(f.alpha, 2*time.Second) {
		t.Fatalf("alpha still got new calls while quarantined: %+v", f.alpha.Counters())
	}
	// The nodes' API tells the same: no call node0 placed since took alpha.
	// Checked now, while node0 still has alpha in quarantine: its probation
	// (sla.probation, 4 s from node0's own quarantine) hands alpha a share
	// of new calls again, and under a loaded machine node0 may have
	// quarantined alpha well before the last node did.
	if st := state(n0, "alpha"); st != node.ProviderQuarantined {
		t.Fatalf("node0 let alpha out of quarantine %s after every node had it in: %s", time.Since(everywhere).Round(interval), st)
	}
	for _, in := range n0.Calls().Calls() {
		if len(in.Path) > 1 && in.Path[1] == "alpha" && in.Started.After(everywhere) {
			t.Fatalf("a new call took alpha while it was quarantined: %+v", in)
		}
	}
	if !gains(f.beta, 2*time.Second) {
		t.Fatalf("beta got no calls while alpha was quarantined: %+v", f.beta.Counters())
	}

	// alpha recovers; after its probation time it carries a share of the
	// calls with a clean record, is judged ok, and carries them all again.
	if err := f.alpha.SetMode(sim.Mode{}); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 40*time.Second, func() bool { return state(n0, "alpha") == node.ProviderOK },
		"alpha was never re-admitted: %+v; alpha %+v; compliance %+v", n0.Providers(), f.alpha.Counters(), n0.SLAs())
	if !gains(f.alpha, 2*time.Second) {
		t.Fatalf("traffic did not return to alpha: %+v", f.alpha.Counters())
	}
	stop()
}
