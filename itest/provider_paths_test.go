package itest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/callmesh/callmesh/itest/sim"
	"github.com/callmesh/callmesh/node"
	"github.com/callmesh/callmesh/node/accounts"
	"github.com/callmesh/callmesh/node/digest"
)

// pathFederation is 3 nodes and 4 emulated providers on loopback:
//
//	alpha  proxy, the cheapest way from node0 to node2 (0.0040 + 0.0020)
//	beta   proxy, next (0.0060 + 0.0020)
//	gamma  proxy, dearest (0.0100 + 0.0020)
//	termco trunk with digest, terminates +49, reached through alpha (alpha-termco)
//
// node0 holds the contracts with alpha, beta and gamma and the termco
// credentials; node2 with alpha, beta and gamma; node1 none (it may still
// be a session's master).
type pathFederation struct {
	c                        *Cluster
	alpha, beta, gamma, term *sim.Provider
}

func startProvider(t *testing.T, cfg sim.ProviderConfig) *sim.Provider {
	t.Helper()
	p, err := sim.StartProvider(cfg, DebugLogger())
	if err != nil {
		t.Fatalf("provider %s: %v", cfg.ID, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// pathProviders are the emulators' configs; a zero one takes the default.
type pathProviders struct{ alpha, beta, gamma, term sim.ProviderConfig }

func newPathFederation(t *testing.T, edit ...func(i int, cfg *node.Config)) *pathFederation {
	t.Helper()
	return newPathFederationWith(t, pathProviders{}, edit...)
}

func newPathFederationWith(t *testing.T, pp pathProviders, edit ...func(i int, cfg *node.Config)) *pathFederation {
	t.Helper()
	or := func(c sim.ProviderConfig, id string) sim.ProviderConfig {
		if c.ID == "" {
			return sim.DefaultProviderConfig(id)
		}
		return c
	}
	f := &pathFederation{}
	f.alpha = startProvider(t, or(pp.alpha, "alpha"))
	f.beta = startProvider(t, or(pp.beta, "beta"))
	f.gamma = startProvider(t, or(pp.gamma, "gamma"))
	tc := pp.term
	if tc.ID == "" {
		tc = sim.DefaultProviderConfig("termco")
		tc.Mode, tc.Terminate = sim.RoleTrunk, []string{"+49"}
		tc.Auth = &sim.ProviderAuth{Realm: "termco", Username: "node0", Password: "trunk-secret"}
	}
	f.term = startProvider(t, tc)

	dir := t.TempDir()
	pwFile := filepath.Join(dir, "termco.password")
	if err := os.WriteFile(pwFile, []byte("trunk-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	providers := fmt.Sprintf(`
providers:
  - id: alpha
    access_points: [%q]
    services: [{type: transit, segments: [{location: "*"}]}]
  - id: beta
    access_points: [%q]
    services: [{type: transit, segments: [{location: "*"}]}]
  - id: gamma
    access_points: [%q]
    services: [{type: transit, segments: [{location: "*"}]}]
  - id: termco
    access_points: [{uri: %q, mode: trunk, username: node0, password_file: %q}]
    services: [{type: termination, segments: [{location: "+49"}]}]
`, f.alpha.AccessPoint(), f.beta.AccessPoint(), f.gamma.AccessPoint(), f.term.AccessPoint(), pwFile)
	sla := func(id, n, p, price string) string {
		return fmt.Sprintf("  - {id: %s, kind: node-provider, between: [%s, %s], price: {per_minute: %q, currency: EUR}, guarantees: {max_delay_ms: 20, max_loss_pct: 0.5}}\n", id, n, p, price)
	}
	docs := []string{
		providers + "slas:\n" + sla("node0-alpha", "node0", "alpha", "0.0040") + sla("node0-beta", "node0", "beta", "0.0060") +
			sla("node0-gamma", "node0", "gamma", "0.0100") +
			"  - {id: alpha-termco, kind: provider-provider, between: [alpha, termco], price: {per_minute: \"0.0030\", currency: EUR}}\n",
		"",
		providers + "slas:\n" + sla("node2-alpha", "node2", "alpha", "0.0020") + sla("node2-beta", "node2", "beta", "0.0020") +
			sla("node2-gamma", "node2", "gamma", "0.0020"),
	}
	f.c = StartCluster(t, 3, Options{Logger: DebugLogger(), Configure: func(i int, cfg *node.Config) {
		cfg.Calls.FirstHopTimeout = 500 * time.Millisecond
		cfg.SLA.MeasureInterval = 200 * time.Millisecond
		cfg.SLA.MeasureKeep = 300 // reports count for a minute
		if docs[i] != "" {
			if err := cfg.SetCatalogueYAML([]byte(docs[i])); err != nil {
				t.Fatal(err)
			}
		}
		for _, e := range edit {
			e(i, cfg)
		}
	}})
	// The providers stop before the nodes (cleanups run last first), as
	// their clients would: stopped after, each INVITE transaction a
	// provider still held (Timer M) released a connection sipgo had
	// already closed and zeroed, one warning per call.
	t.Cleanup(func() { f.alpha.Close(); f.beta.Close(); f.gamma.Close(); f.term.Close() })
	Eventually(t, 30*time.Second, f.c.Converged, "3 nodes did not converge")
	want := []string{"alpha-termco", "node0-alpha", "node0-beta", "node0-gamma", "node2-alpha", "node2-beta", "node2-gamma"}
	for _, n := range f.c.Running() {
		Eventually(t, 20*time.Second, func() bool { return hasSLAs(n, want) }, "%s lacks SLAs: %v", n.Name(), slaIDs(n))
	}
	return f
}

// users registers alice at node0 and bob at node2.
func (f *pathFederation) users(t *testing.T) (alice, bob *phone) {
	t.Helper()
	c := f.c
	waitDHT(t, c, 2)
	addUserAllowed(t, c.Node(0), "alice", "a-secret", "p2p", "external:*")
	addUser(t, c.Node(2), "bob", "b-secret")
	alice, bob = newPhone(t, c.Node(0), "alice", "a-secret"), newPhone(t, c.Node(2), "bob", "b-secret")
	alice.register()
	bob.register()
	locatedAt(t, []*node.Node{c.Node(0)}, "bob@"+c.Node(0).Config().Domain, c.Node(2))
	return alice, bob
}

// call places one call alice → target and hangs it up once answered,
// returning the ingress node's description of it taken while it was up.
func (f *pathFederation) call(t *testing.T, alice, bob *phone, target string) (callInfo, *sip.Response) {
	t.Helper()
	return f.callWith(t, alice, bob, target, false)
}

// callWith is call, with RTP sent both ways through the path when media is
// set.
func (f *pathFederation) callWith(t *testing.T, alice, bob *phone, target string, media bool) (callInfo, *sip.Response) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := alice.call(ctx, target)
	if err != nil {
		return callInfo{}, failure(t, err)
	}
	if media {
		expectRelayed(t, ctx, alice, bob, d)
		toCaller := mediaPeer(t, bob.dialog(-1).InviteRequest.Body())
		bob.rtp.SetPeer(toCaller, netipPlus(toCaller, 1))
		before := alice.rtp.Stats().Packets
		if err := bob.rtp.Send(ctx, 50, 20*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		Eventually(t, 10*time.Second, func() bool { return alice.rtp.Stats().Packets >= before+40 }, "bob's RTP did not reach alice")
	}
	calls := f.c.Node(0).Calls().Calls()
	if len(calls) != 1 {
		t.Fatalf("ingress calls: %+v", calls)
	}
	in := callInfo{Path: calls[0].Path, SLAs: calls[0].SLAs, Master: calls[0].Master, Attempts: len(calls[0].Attempts)}
	if err := d.Bye(ctx); err != nil {
		t.Fatalf("BYE: %v", err)
	}
	Eventually(t, 10*time.Second, func() bool {
		return f.c.Node(0).Calls().Len() == 0 && f.c.Node(2).Calls().Len() == 0
	}, "calls did not end at both nodes")
	return in, d.InviteResponse
}

type callInfo struct {
	Path, SLAs []string
	Master     string
	Attempts   int
}

func TestCallsOverProviderPaths(t *testing.T) {
	f := newPathFederation(t)
	alice, bob := f.users(t)

	// 20 calls: each takes the master's best path, node0 → alpha → node2;
	// alpha forwards every one of them and the others none. Each session
	// elects its own master, so the calls are planned by more than one
	// node, and every master plans the same path.
	const n = 20
	masters := map[string]int{}
	for i := range n {
		in, res := f.callWith(t, alice, bob, "bob", i < 3)
		if res == nil || res.StatusCode != 200 {
			t.Fatalf("call %d: %v", i, res)
		}
		if !slices.Equal(in.Path, []string{"node0", "alpha", "node2"}) || in.Attempts != 1 {
			t.Fatalf("call %d: path %v after %d attempts, want node0 → alpha → node2 at once", i, in.Path, in.Attempts)
		}
		masters[in.Master]++
	}
	if a := f.alpha.Counters(); a.Forwarded != n || a.Answered != n {
		t.Fatalf("alpha counters %+v, want %d forwarded and answered", a, n)
	}
	if b, g := f.beta.Counters(), f.gamma.Counters(); b.Invites != 0 || g.Invites != 0 {
		t.Fatalf("beta %+v, gamma %+v: calls went where the master did not send them", b, g)
	}
	t.Logf("masters of %d sessions: %v", n, masters)
	// With 3 nodes, one master for all 20 sessions has a chance of about
	// 3^-19: a single master means the election is not spreading them.
	if len(masters) < 2 {
		t.Errorf("masters of %d sessions: %v, want at least 2 nodes planning the same path", n, masters)
	}
	for m := range masters {
		if !slices.ContainsFunc(f.c.Running(), func(rn *node.Node) bool { return rn.Name() == m }) {
			t.Errorf("master %q of %d sessions is none of the cluster's nodes", m, masters[m])
		}
	}

	// Both ends published the path's measurements (the calls with media).
	Eventually(t, 10*time.Second, func() bool {
		for _, m := range f.c.Node(1).Catalogue().Measurements {
			if slices.Equal(m.Path, []string{"node0-alpha", "node2-alpha"}) {
				return true
			}
		}
		return false
	}, "no measurement of node0 → alpha → node2 reached node1: %+v / %+v", f.c.Node(1).Catalogue().Measurements, f.c.Node(0).Catalogue().Measurements)

	// A number: through alpha to termco, which challenges; node0 answers
	// with the trunk credentials and termco answers as the far end.
	in, res := f.call(t, alice, bob, "+493012345")
	if res == nil || res.StatusCode != 200 || !slices.Equal(in.Path, []string{"node0", "alpha", "termco"}) {
		t.Fatalf("call to +493012345: %v over %v", res, in.Path)
	}
	// The call's end reaches termco after the caller's BYE is answered.
	Eventually(t, 10*time.Second, func() bool {
		tc := f.term.Counters()
		return tc.Terminated == 1 && tc.Failed[407] == 1
	}, "termco counters %+v: want one challenge and one call terminated", f.term.Counters())
	// No termination for +1: 404.
	if _, res := f.call(t, alice, bob, "+12125550100"); res == nil || res.StatusCode != 404 {
		t.Fatalf("call to +1…: %v, want 404", res)
	}
}

func TestProviderFailover(t *testing.T) {
	f := newPathFederation(t)
	alice, bob := f.users(t)

	// alpha is down: nothing answers; after the first-hop timer the call
	// takes the next path, through beta.
	if err := f.alpha.SetMode(sim.Mode{Failure: sim.Failure{Down: true}}); err != nil {
		t.Fatal(err)
	}
	in, res := f.call(t, alice, bob, "bob")
	if res == nil || res.StatusCode != 200 || !slices.Equal(in.Path, []string{"node0", "beta", "node2"}) || in.Attempts != 2 {
		t.Fatalf("alpha down: %v over %v after %d attempts; want 200 over beta after 2", res, in.Path, in.Attempts)
	}
	if err := f.alpha.SetMode(sim.Mode{}); err != nil {
		t.Fatal(err)
	}

	// alpha answers 503 with Retry-After: the call goes over beta, and the
	// next call skips alpha without trying it.
	if err := f.alpha.SetMode(sim.Mode{Failure: sim.Failure{ErrorRate: 1}}); err != nil {
		t.Fatal(err)
	}
	in, res = f.call(t, alice, bob, "bob")
	if res == nil || res.StatusCode != 200 || in.Attempts != 2 || in.Path[1] != "beta" {
		t.Fatalf("alpha 503: %v over %v after %d attempts", res, in.Path, in.Attempts)
	}
	before := f.alpha.Counters().Invites
	if err := f.alpha.SetMode(sim.Mode{}); err != nil {
		t.Fatal(err)
	}
	in, res = f.call(t, alice, bob, "bob")
	if res == nil || res.StatusCode != 200 || in.Path[1] != "beta" || in.Attempts != 1 || f.alpha.Counters().Invites != before {
		t.Fatalf("within alpha's Retry-After: %v over %v after %d attempts, alpha INVITEs %d → %d",
			res, in.Path, in.Attempts, before, f.alpha.Counters().Invites)
	}

	// bob is busy: the callee's answer, never a reason to try another path.
	bob.setAnswer(func(d *sipgo.DialogServerSession) { _ = d.Respond(sip.StatusBusyHere, "Busy Here", nil) })
	betaBefore, gammaBefore := f.beta.Counters().Invites, f.gamma.Counters().Invites
	_, res = f.call(t, alice, bob, "bob")
	if res == nil || res.StatusCode != sip.StatusBusyHere {
		t.Fatalf("busy callee: %v, want 486", res)
	}
	if f.beta.Counters().Invites != betaBefore+1 || f.gamma.Counters().Invites != gammaBefore {
		t.Fatalf("busy callee was retried: beta %d → %d, gamma %d → %d", betaBefore, f.beta.Counters().Invites,
			gammaBefore, f.gamma.Counters().Invites)
	}
}

func TestMasterThatDoesNotAnswerIsPassedOver(t *testing.T) {
	f := newPathFederation(t)
	alice, bob := f.users(t)
	// node1 stays live in every view but its master service hangs, as a
	// node does that dies during a session's setup: sessions it ranks first
	// are asked of it, time out, and go to the next in rank.
	f.c.Node(1).Host().SetStreamHandler(node.MasterProtocol, func(s network.Stream) {
		time.Sleep(5 * time.Second)
		s.Reset()
	})
	failed := func() float64 {
		return counter(t, f.c.Node(0).Registry(), "callmesh_master_requests_total", map[string]string{"result": "failed"})
	}
	// node1 is first in rank for about a third of the sessions: 30 calls
	// miss it with probability (2/3)^30 < 10^-5.
	for i := 0; failed() == 0; i++ {
		if i == 30 {
			t.Fatal("node1 was never asked as master in 30 sessions")
		}
		in, res := f.call(t, alice, bob, "bob")
		if res == nil || res.StatusCode != 200 || in.Master == "node1" {
			t.Fatalf("call %d with node1's master service hung: %v, master %q", i, res, in.Master)
		}
	}
}

// TestSIPpCallsAcrossProviders: a SIPp caller at node0 and a SIPp callee at
// node2 (registered with digest), 200 calls with RTP both ways over the
// master's path through alpha; alpha's counters match, both relays carry
// the media, and the path's quality is measured.
func TestSIPpCallsAcrossProviders(t *testing.T) {
	// The SIPp caller is trusted at node0 (not challenged): the load
	// benchmark's S1 set-up, across the federation.
	f := newPathFederation(t, func(i int, cfg *node.Config) {
		if i == 0 {
			cfg.Calls.Trusted = []string{"127.0.0.1"}
		}
	})
	c := f.c
	n0, n2 := c.Node(0), c.Node(2)
	f.sippCallee(t, accounts.Gold)
	r0, r2 := n0.Relay().Counters.Forwarded.Load(), n2.Relay().Counters.Forwarded.Load()
	sippUAC(t, n0, "uac_call_rtp.xml", "u1", "alice", "bob", 200, 20, "-d", "1000")

	a := f.alpha.Counters()
	if a.Forwarded != 200 || a.Answered != 200 {
		t.Errorf("alpha forwarded %d and answered %d INVITEs, want 200 each", a.Forwarded, a.Answered)
	}
	if b, g := f.beta.Counters(), f.gamma.Counters(); b.Invites+g.Invites != 0 {
		t.Errorf("beta and gamma saw %d INVITEs; the master sent every call through alpha", b.Invites+g.Invites)
	}
	// About 50 packets each way per call cross each relay; require a third.
	for i, d := range []uint64{n0.Relay().Counters.Forwarded.Load() - r0, n2.Relay().Counters.Forwarded.Load() - r2} {
		if d < 200*2*50/3 {
			t.Errorf("node%d's relay forwarded %d packets for 200 calls", 2*i, d)
		}
	}
	Eventually(t, 10*time.Second, func() bool {
		for _, m := range c.Node(1).Catalogue().Measurements {
			if slices.Equal(m.Path, []string{"node0-alpha", "node2-alpha"}) && m.Samples >= 300 && m.MOS > 4 {
				return true
			}
		}
		return false
	}, "node1 never had the measured quality of 200 calls on node0 → alpha → node2: %+v", c.Node(1).Catalogue().Measurements)
	Eventually(t, 20*time.Second, func() bool { return n0.Calls().Len() == 0 && n2.Calls().Len() == 0 }, "calls left at the nodes")
}

// sippCallee creates alice at node0 (class, 1000 calls) for a SIPp caller
// and registers bob at node2 from a SIPp callee that answers with RTP,
// once node0 can locate bob there.
func (f *pathFederation) sippCallee(t *testing.T, class accounts.Class) {
	t.Helper()
	c := f.c
	waitDHT(t, c, 2)
	n0, n2 := c.Node(0), c.Node(2)
	domain := n0.Config().Domain
	_, err := n0.Accounts().Add(accounts.Account{Name: "alice", Class: class, Allow: []string{"p2p"}, MaxCalls: 1000,
		Home: n0.ID().String(), Realm: domain, Credentials: digest.NewCredentials("alice", domain, "alice-secret")})
	if err != nil {
		t.Fatal(err)
	}
	sippCallee(t, n2, "bob", "uas_answer_rtp.xml", "u1")
	locatedAt(t, []*node.Node{n0}, "bob@"+domain, n2)
}
