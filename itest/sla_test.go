package itest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callmesh/callmesh/gossip"
	"github.com/callmesh/callmesh/node"
	"github.com/callmesh/callmesh/routing"
	"github.com/callmesh/callmesh/sla"
	"github.com/libp2p/go-libp2p/core/crypto"
)

// Three nodes, three providers. Each node's node.yaml holds the SLAs it is
// a party to; node0 also vouches for the alpha–beta interconnect and peers
// with node1.
var slaProviders = `
providers:
  - id: alpha
    access_points: ["sip:127.0.0.1:5171"]
    services:
      - type: transit
        segments: [{location: "*"}]
  - id: beta
    access_points: ["sip:127.0.0.1:5172"]
    services:
      - type: transit
        segments: [{location: "*"}]
  - id: termco
    access_points: [{uri: "sip:127.0.0.1:5173", mode: trunk, username: node2}]
    services:
      - type: termination
        segments: [{location: "+49"}]
`

func slaDoc(slas string) string { return slaProviders + "slas:\n" + slas }

func nodeProviderSLA(id, nodeName, provider, price string, delay, loss float64) string {
	return fmt.Sprintf(`  - id: %s
    kind: node-provider
    between: [%s, %s]
    price: {per_minute: "%s", currency: EUR}
    guarantees: {max_delay_ms: %g, max_loss_pct: %g}
`, id, nodeName, provider, price, delay, loss)
}

var slaDocs = []string{
	slaDoc(nodeProviderSLA("node0-alpha", "node0", "alpha", "0.0040", 20, 0.5) +
		nodeProviderSLA("node0-beta", "node0", "beta", "0.0060", 15, 0.2) + `  - id: alpha-beta
    kind: provider-provider
    between: [alpha, beta]
    price: {per_minute: "0.0010", currency: EUR}
    guarantees: {max_delay_ms: 10, max_loss_pct: 0.1}
  - id: node0-node1
    kind: node-node
    between: [node0, node1]
    markup_per_minute: "0.0010"
`),
	slaDoc(nodeProviderSLA("node1-alpha", "node1", "alpha", "0.0050", 20, 0.5)),
	slaDoc(nodeProviderSLA("node2-beta", "node2", "beta", "0.0020", 25, 0.3) +
		nodeProviderSLA("node2-termco", "node2", "termco", "0.0100", 30, 0.5) + `  - id: beta-termco
    kind: provider-provider
    between: [beta, termco]
    price: {per_minute: "0.0030", currency: EUR}
    guarantees: {max_delay_ms: 10, max_loss_pct: 0.1}
`),
}

var allSLAIDs = []string{"alpha-beta", "beta-termco", "node0-alpha", "node0-beta", "node0-node1", "node1-alpha", "node2-beta", "node2-termco"}

func slaCluster(t *testing.T, n int) *Cluster {
	return StartCluster(t, n, Options{Logger: DebugLogger(), Configure: func(i int, cfg *node.Config) {
		cfg.SLA.MeasureInterval = 200 * time.Millisecond
		cfg.SLA.ComplianceWindow = time.Minute
		if i < len(slaDocs) {
			if err := cfg.SetCatalogueYAML([]byte(slaDocs[i])); err != nil {
				t.Fatal(err)
			}
		}
	}})
}

func slaIDs(n *node.Node) []string {
	var ids []string
	for _, e := range n.SLAs() {
		ids = append(ids, e.ID)
	}
	return ids
}

func hasSLAs(n *node.Node, want []string) bool { return slices.Equal(slaIDs(n), want) }

// catalogueJSON is a node's catalogue without its measurements, for
// comparing nodes' views.
func catalogueJSON(t *testing.T, n *node.Node) string {
	t.Helper()
	cat := *n.Catalogue()
	cat.Measurements = nil
	b, err := json.Marshal(cat)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSLAOffersReachEveryNodeAndPlanAlike(t *testing.T) {
	c := slaCluster(t, 3)
	Eventually(t, 30*time.Second, c.Converged, "3 nodes did not converge")
	for _, n := range c.Running() {
		Eventually(t, 20*time.Second, func() bool { return hasSLAs(n, allSLAIDs) },
			"%s's catalogue never held every SLA: %v", n.Name(), slaIDs(n))
	}
	want := catalogueJSON(t, c.Node(0))
	for _, n := range c.Running()[1:] {
		if got := catalogueJSON(t, n); got != want {
			t.Fatalf("%s's catalogue differs from node0's:\n%s\n%s", n.Name(), got, want)
		}
	}
	// callmesh sla list --json: a list of objects with id, kind, between,
	// issuer, seq, expires and compliance.
	out, errOut, code := cli(t, "sla", "list", "--json", "--api", c.Node(1).AdminURL())
	var listed []map[string]any
	if err := json.Unmarshal([]byte(out), &listed); code != 0 || err != nil || len(listed) != len(allSLAIDs) {
		t.Fatalf("callmesh sla list --json: exit %d, %v, %q %q", code, err, out, errOut)
	}
	for _, k := range []string{"id", "kind", "between", "issuer", "seq", "expires", "compliance"} {
		if _, ok := listed[0][k]; !ok {
			t.Errorf("sla list --json entries lack %q: %v", k, listed[0])
		}
	}
	for _, e := range c.Node(2).SLAs() {
		wantIssuer := strings.SplitN(e.ID, "-", 2)[0]
		switch e.ID {
		case "alpha-beta":
			wantIssuer = "node0"
		case "beta-termco":
			wantIssuer = "node2"
		}
		if e.Issuer != wantIssuer || e.Compliance.Status != sla.StatusUnknown {
			t.Errorf("SLA %s: issuer %q, compliance %q; want %q, %q", e.ID, e.Issuer, e.Compliance.Status, wantIssuer, sla.StatusUnknown)
		}
	}

	// A user on node0 calls a user on node2, and a number; every node
	// plans the same paths from its own view.
	waitDHT(t, c, 2)
	addUser(t, c.Node(0), "alice", "pw-alice")
	addUser(t, c.Node(2), "bob", "pw-bob")
	newPhone(t, c.Node(0), "alice", "pw-alice").register()
	newPhone(t, c.Node(2), "bob", "pw-bob").register()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The cheapest paths, by hand: to bob, node0-alpha 0.0040 + alpha-beta
	// 0.0010 + node2-beta 0.0020; to the number, the same into beta, then
	// beta-termco 0.0030 to the terminating trunk.
	best := map[string]string{"bob": "node0→alpha→beta→node2 0.0070", "+4930123456": "node0→alpha→beta→termco 0.0080"}
	for _, to := range []string{"bob", "+4930123456"} {
		var first node.RouteResponse
		for i, n := range c.Running() {
			var res node.RouteResponse
			Eventually(t, 20*time.Second, func() bool {
				var err error
				res, err = n.Route(ctx, node.RouteRequest{From: "alice", To: to})
				return err == nil
			}, "%s could not plan alice → %s", n.Name(), to)
			if len(res.Paths) == 0 {
				t.Fatalf("%s: no path alice → %s: %s", n.Name(), to, res.Reason)
			}
			if i == 0 {
				first = res
				continue
			}
			a, _ := json.Marshal(first)
			b, _ := json.Marshal(res)
			if string(a) != string(b) {
				t.Fatalf("alice → %s: node0 and %s plan differently:\n%s\n%s", to, n.Name(), a, b)
			}
		}
		t.Logf("alice → %s: %s", to, planSummary(first))
		// The command line gives the same answer.
		out, errOut, code := cli(t, "route", "--from", "alice", "--to", to, "--json", "--api", c.Node(1).AdminURL())
		var viaCLI node.RouteResponse
		if err := json.Unmarshal([]byte(out), &viaCLI); code != 0 || err != nil {
			t.Fatalf("callmesh route --json: exit %d, %v, %q %q", code, err, out, errOut)
		}
		if a, b := mustJSON(t, first.Paths), mustJSON(t, viaCLI.Paths); a != b {
			t.Fatalf("callmesh route --json paths differ from the API's:\n%s\n%s", b, a)
		}
		p := first.Paths[0]
		if got := strings.Join(p.Hops, "→") + " " + p.PricePerMinute.String(); got != best[to] {
			t.Errorf("alice → %s: best path %s, want %s", to, got, best[to])
		}
	}
}

func planSummary(r node.RouteResponse) string {
	var parts []string
	for _, p := range r.Paths {
		parts = append(parts, fmt.Sprintf("%s (%s/min, MOS %.2f)", strings.Join(p.Hops, "→"), p.PricePerMinute, p.MOS))
	}
	return strings.Join(parts, "; ")
}

func TestTamperedAndForeignOffersAreRejected(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := slaCluster(t, 2)
	Eventually(t, 30*time.Second, c.Converged, "2 nodes did not converge")
	n0, n1 := c.Node(0), c.Node(1)
	Eventually(t, 20*time.Second, func() bool { return slices.Contains(slaIDs(n1), "node0-alpha") }, "node0's offers never reached node1")
	rejected := func(reason string) float64 {
		return counter(t, n1.Registry(), "callmesh_gossip_messages_total", map[string]string{
			"topic": node.OfferTopic, "source": "gossip", "verdict": "reject", "reason": reason})
	}
	key0, _, err := node.LoadIdentity(c.Config(0).Identity)
	if err != nil {
		t.Fatal(err)
	}
	o := newOutsiderOn(t, ctx, n1, node.OfferTopic)
	seq := gossip.Seq{Inc: uint64(time.Now().UnixMilli()) + 1e9, Ctr: 1}
	offer := func(id, price string) sla.Offer {
		s := &sla.SLA{ID: id, Kind: sla.NodeProvider, Between: [2]string{"node0", "alpha"},
			Price: sla.Price{PerMinute: sla.MustMoney(price), Currency: "EUR", Increment: sla.Increment{First: 60, Next: 60}}}
		cat := n0.Catalogue()
		var provs []sla.Provider
		for _, p := range cat.Providers {
			if p.ID == "alpha" {
				provs = append(provs, p)
			}
		}
		return sla.Offer{SLA: s, Providers: provs, Issuer: "node0"}
	}

	sign := func(o sla.Offer, key crypto.PrivKey) *gossip.Envelope {
		env, err := gossip.NewEnvelope(node.OfferTopic, node.OfferKind, o.SLA.ID, seq, time.Now().Add(time.Hour), o)
		if err != nil {
			t.Fatal(err)
		}
		if err := env.Sign(key); err != nil {
			t.Fatal(err)
		}
		return env
	}

	// 1. A real offer of node0's, relayed by a peer that is not node0 on
	// GossipSub: only its issuer may publish it there.
	o.send(t, ctx, sign(offer("node0-alpha", "0.0040"), key0))
	Eventually(t, 10*time.Second, func() bool { return rejected("issuer") >= 1 }, "offer relayed as another issuer not rejected and counted")

	// 2. The outsider's own offer, its price changed after signing.
	own := offer("outsider-alpha", "0.0040")
	own.Issuer, own.SLA.Between = "outsider", [2]string{"outsider", "alpha"}
	env := sign(own, o.key)
	env.Body = []byte(strings.Replace(string(env.Body), "0.0040", "0.0001", 1))
	o.send(t, ctx, env)
	Eventually(t, 10*time.Second, func() bool { return rejected("signature") >= 1 }, "tampered offer not rejected and counted")

	// 3. Signed properly by the outsider, for an SLA it is no party to.
	foreign := offer("node1-beta", "0.0001")
	foreign.Issuer, foreign.SLA.Between = "outsider", [2]string{"node1", "beta"}
	o.send(t, ctx, sign(foreign, o.key))
	Eventually(t, 10*time.Second, func() bool { return rejected("malformed") >= 1 }, "offer naming other parties not rejected and counted")

	// 4. The outsider signs an offer in node0's name with its own key: it
	// is not node0, so the offer never enters the catalogue.
	o.send(t, ctx, sign(offer("node0-cheap", "0.0001"), o.key))
	time.Sleep(time.Second) // nothing to wait for: the offer must stay out
	for _, e := range n1.SLAs() {
		if e.ID == "node0-cheap" || (e.ID == "node0-alpha" && e.PerMinute != sla.MustMoney("0.0040")) {
			t.Fatalf("forged offer entered the catalogue: %+v", e)
		}
	}
}

func TestWithdrawnOfferLeavesAndLateOrRestartedNodesCatchUp(t *testing.T) {
	c := slaCluster(t, 3)
	Eventually(t, 30*time.Second, c.Converged, "3 nodes did not converge")
	for _, n := range c.Running() {
		Eventually(t, 20*time.Second, func() bool { return hasSLAs(n, allSLAIDs) }, "%s never held every SLA: %v", n.Name(), slaIDs(n))
	}

	// An SLA offered at run time (callmesh sla offer) reaches everyone; one
	// naming another node is refused with the field named (exit code 2).
	api := c.Node(1).AdminURL()
	file := filepath.Join(t.TempDir(), "offer.yaml")
	writeFile(t, file, slaDoc(nodeProviderSLA("node1-beta", "node1", "beta", "0.0035", 20, 0.4)))
	if out, errOut, code := cli(t, "sla", "offer", "-f", file, "--api", api); code != 0 || !strings.Contains(out, "node1-beta") {
		t.Fatalf("callmesh sla offer: exit %d, %q %q", code, out, errOut)
	}
	writeFile(t, file, slaDoc(nodeProviderSLA("node2-alpha", "node2", "alpha", "0.0010", 20, 0.4)))
	if out, errOut, code := cli(t, "sla", "offer", "-f", file, "--api", api); code != 2 || !strings.Contains(errOut, "slas[0].between") {
		t.Fatalf("callmesh sla offer of another node's SLA: exit %d, %q %q; want 2 naming slas[0].between", code, out, errOut)
	}
	withRuntime := slices.Sorted(slices.Values(append(slices.Clone(allSLAIDs), "node1-beta")))
	for _, n := range c.Running() {
		Eventually(t, 20*time.Second, func() bool { return hasSLAs(n, withRuntime) }, "%s never saw node1-beta: %v", n.Name(), slaIDs(n))
	}

	// node0 withdraws one of its configured SLAs: it leaves every catalogue.
	if out, errOut, code := cli(t, "sla", "withdraw", "node0-beta", "--api", c.Node(0).AdminURL()); code != 0 {
		t.Fatalf("callmesh sla withdraw: exit %d, %q %q", code, out, errOut)
	}
	if _, _, code := cli(t, "sla", "withdraw", "node2-beta", "--api", c.Node(0).AdminURL()); code != 3 {
		t.Fatalf("node0 withdrawing node2's SLA: exit %d, want 3", code)
	}
	current := slices.DeleteFunc(slices.Clone(withRuntime), func(id string) bool { return id == "node0-beta" })
	for _, n := range c.Running() {
		Eventually(t, 20*time.Second, func() bool { return hasSLAs(n, current) }, "%s still lists node0-beta: %v", n.Name(), slaIDs(n))
	}

	// A node that joins late pulls every current offer, withdrawn ones
	// excepted.
	late := c.Node(c.Add())
	Eventually(t, 30*time.Second, func() bool { return hasSLAs(late, current) }, "late node holds %v, want %v", slaIDs(late), current)

	// A restarted node has its catalogue from its store at once, and
	// keeps its run-time offer and its withdrawal.
	c.Stop(1)
	c.Stop(0)
	n0 := c.Start(0)
	if !hasSLAs(n0, current) {
		t.Fatalf("restarted node0's catalogue from its store: %v, want %v", slaIDs(n0), current)
	}
	n1 := c.Start(1)
	Eventually(t, 30*time.Second, c.Converged, "restarted nodes did not rejoin")
	for _, n := range []*node.Node{n0, n1, c.Node(2), late} {
		Eventually(t, 20*time.Second, func() bool { return hasSLAs(n, current) }, "%s after restarts: %v, want %v", n.Name(), slaIDs(n), current)
	}
}

func TestMeasurementsReachRoutingAndCompliance(t *testing.T) {
	c := slaCluster(t, 3)
	Eventually(t, 30*time.Second, c.Converged, "3 nodes did not converge")
	n0, n2 := c.Node(0), c.Node(2)
	Eventually(t, 20*time.Second, func() bool { return hasSLAs(n2, allSLAIDs) }, "node2 never held every SLA: %v", slaIDs(n2))

	// node0 carried 30 calls through beta to node2, at about twice the
	// delay the two SLAs promise together (15 + 25 ms) and 3 % loss.
	path := []string{"node0-beta", "node2-beta"}
	for i := range 30 {
		n0.RecordCall(path, node.CallMeasure{Answered: true, PDDMs: 300, HasQuality: true, HasDelay: true,
			DelayMs: 78 + float64(i%5), LossPct: 3, JitterMs: 4, MOS: 3.9})
	}
	n0.RecordCall(path, node.CallMeasure{Answered: false})

	var m sla.Measurement
	Eventually(t, 20*time.Second, func() bool {
		for _, x := range n2.Catalogue().Measurements {
			if slices.Equal(x.Path, path) {
				m = x
				return true
			}
		}
		return false
	}, "node0's path report never reached node2")
	if m.Samples != 30 || m.DelayMs < 78 || m.DelayMs > 82 || m.LossPct != 3 {
		t.Fatalf("node2's measurement of %v = %+v; want 30 samples, delay 78–82 ms, loss 3 %%", path, m)
	}
	// Routing at node2 takes the measured figures for that very path.
	g, err := routing.NewGraph(n2.Catalogue(), routing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := g.Plan(routing.Request{From: "node0", To: "node2", At: time.Now(), K: 5})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range res.Paths {
		if slices.Equal(p.SLAs, path) {
			found = true
			if !p.Measured || p.DelayMs < 78 || p.DelayMs > 82 {
				t.Errorf("planned %v: measured %v, delay %.1f ms; want the measured 78–82 ms", p.Hops, p.Measured, p.DelayMs)
			}
		}
	}
	if !found {
		t.Fatalf("no planned path uses %v: %+v", path, res)
	}

	Eventually(t, 20*time.Second, func() bool {
		for _, e := range n2.SLAs() {
			if slices.Contains(path, e.ID) && e.Compliance.Status != sla.StatusBreach {
				return false
			}
		}
		return true
	}, "the measured SLAs were not judged in breach at node2")
	for _, e := range n2.SLAs() {
		if e.ID == "node0-alpha" && e.Compliance.Status != sla.StatusUnknown {
			t.Errorf("node0-alpha, never measured, is %q", e.Compliance.Status)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
