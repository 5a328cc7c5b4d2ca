package itest

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/callmesh/callmesh/gossip"
	"github.com/callmesh/callmesh/itest/sim"
	"github.com/callmesh/callmesh/node"
	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The failure detector's timers in these tests come from Config.FastTimers:
// 200 ms heartbeats, suspect after 3 missed, dead 2 s later at the latest.
// Deadlines below are generous multiples of those (the race detector on two
// cores slows everything down); no test asserts how fast anything happened.

func TestKilledNodeIsDeadThenLiveAfterRestart(t *testing.T) {
	c := StartCluster(t, 5, Options{Logger: DebugLogger()})
	Eventually(t, 30*time.Second, c.Converged, "5 nodes did not converge")

	const victim = 3
	incBefore := c.Node(victim).Incarnation()
	c.Stop(victim)
	Eventually(t, 20*time.Second, func() bool {
		for i := range 5 {
			if i != victim && c.StateOf(i, victim) != "dead" {
				return false
			}
		}
		return true
	}, "the others did not mark the stopped node dead")

	n := c.Start(victim)
	if n.ID() != c.ID(victim) {
		t.Fatalf("restarted node has peer ID %s, want %s", n.ID(), c.ID(victim))
	}
	if n.Incarnation() <= incBefore {
		t.Fatalf("restart incarnation %d not above %d: its messages would be stale", n.Incarnation(), incBefore)
	}
	Eventually(t, 30*time.Second, c.Converged, "the restarted node was not seen live by everyone")
}

func TestWrongFederationKeyNeverJoins(t *testing.T) {
	c := StartCluster(t, 3, Options{FederationKey: true})
	Eventually(t, 30*time.Second, c.Converged, "keyed federation did not converge")

	// An outsider with its own key, bootstrapping through node0.
	dir := t.TempDir()
	cfg, err := sim.NodeConfig("outsider", dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg.P2P.FederationKey = dir + "/other.key"
	if err := node.CreateFederationKey(cfg.P2P.FederationKey); err != nil {
		t.Fatal(err)
	}
	cfg.P2P.Bootstrap = c.Node(0).P2PAddrs()
	out, err := node.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })

	// Give it many heartbeat intervals and several bootstrap attempts, then
	// check that nothing got through in either direction.
	Eventually(t, 20*time.Second, func() bool {
		return counter(t, out.Registry(), "callmesh_dht_record_puts_total", map[string]string{"result": "error"}) >= 2
	}, "the outsider did not even try to publish")
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if got := len(out.View().Members()); got != 0 {
			t.Fatalf("outsider sees %d members", got)
		}
		for i := range 3 {
			if _, ok := c.Node(i).View().Get(out.ID()); ok {
				t.Fatalf("node%d sees the outsider", i)
			}
			if len(c.Node(i).Host().Network().ConnsToPeer(out.ID())) != 0 {
				t.Fatalf("node%d has a connection to the outsider", i)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// outsider is a bare libp2p peer speaking GossipSub on one topic without
// callmesh's validators: it can put anything on the wire.
type outsider struct {
	key   crypto.PrivKey
	id    peer.ID
	topic *pubsub.Topic
}

func newOutsider(t *testing.T, ctx context.Context, target *node.Node) *outsider {
	t.Helper()
	return newOutsiderOn(t, ctx, target, node.HeartbeatTopic)
}

func newOutsiderOn(t *testing.T, ctx context.Context, target *node.Node, topicName string) *outsider {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ps, err := pubsub.NewGossipSub(ctx, h, pubsub.WithMessageSignaturePolicy(pubsub.StrictSign), pubsub.WithFloodPublish(true))
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(topicName)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Cancel)
	if err := h.Connect(ctx, peer.AddrInfo{ID: target.ID(), Addrs: target.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 10*time.Second, func() bool { return len(topic.ListPeers()) > 0 }, "outsider never saw the node on the topic")
	id, _ := peer.IDFromPrivateKey(key)
	return &outsider{key: key, id: id, topic: topic}
}

// heartbeat builds a heartbeat envelope with the given sequence, signed by key.
func heartbeat(t *testing.T, name string, seq gossip.Seq, key crypto.PrivKey) *gossip.Envelope {
	t.Helper()
	env, err := gossip.NewEnvelope(node.HeartbeatTopic, node.HeartbeatKind, "", seq, time.Now().Add(time.Minute),
		gossip.Heartbeat{Name: name, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Sign(key); err != nil {
		t.Fatal(err)
	}
	return env
}

func (o *outsider) send(t *testing.T, ctx context.Context, env *gossip.Envelope) {
	t.Helper()
	data, err := env.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := o.topic.Publish(ctx, data); err != nil {
		t.Fatal(err)
	}
}

func TestForgedAndStaleGossip(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := StartCluster(t, 2, Options{})
	Eventually(t, 30*time.Second, c.Converged, "cluster did not converge")
	n0, n1 := c.Node(0), c.Node(1)
	o := newOutsider(t, ctx, n0)
	reg := n0.Registry()
	rejected := func(reason string) float64 {
		return counter(t, reg, "callmesh_gossip_messages_total", map[string]string{
			"topic": node.HeartbeatTopic, "source": "gossip", "verdict": "reject", "reason": reason})
	}
	ignored := func(reason string) float64 {
		return counter(t, reg, "callmesh_gossip_messages_total", map[string]string{
			"topic": node.HeartbeatTopic, "source": "gossip", "verdict": "ignore", "reason": reason})
	}

	// 1. The outsider claims to be node1: the envelope names node1 as issuer
	// but the outsider signed it (and GossipSub's author is the outsider).
	forged := heartbeat(t, "node1-impostor", gossip.Seq{Inc: uint64(time.Now().UnixMilli()) + 1e9, Ctr: 1}, o.key)
	forged.Issuer = n1.ID()
	o.send(t, ctx, forged)
	Eventually(t, 10*time.Second, func() bool { return rejected("issuer") >= 1 },
		"forged issuer not rejected and counted")

	// 2. Right issuer, broken signature.
	bad := heartbeat(t, "outsider", gossip.Seq{Inc: 1, Ctr: 1}, o.key)
	bad.Sig[0] ^= 0xff
	o.send(t, ctx, bad)
	Eventually(t, 10*time.Second, func() bool { return rejected("signature") >= 1 }, "bad signature not rejected and counted")

	// 3. Not an envelope at all, and an unknown version.
	if err := o.topic.Publish(ctx, []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	if err := o.topic.Publish(ctx, []byte(`{"v":2,"topic":"x"}`)); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 10*time.Second, func() bool { return rejected("malformed") >= 1 && rejected("version") >= 1 },
		"malformed and unknown-version messages not rejected and counted")

	m, ok := n0.View().Get(n1.ID())
	if !ok || m.Name != "node1" {
		t.Fatalf("node1 in node0's view = %+v, %v; the impostor must not have replaced it", m, ok)
	}
	if _, ok := n0.View().Get(o.id); ok {
		t.Fatal("a heartbeat with a broken signature made the outsider a member")
	}

	// 4. A valid heartbeat of the outsider's own, then an older one: the
	// older is ignored (not rejected: an honest forwarder can relay it late).
	inc := uint64(time.Now().UnixMilli())
	o.send(t, ctx, heartbeat(t, "outsider", gossip.Seq{Inc: inc, Ctr: 5}, o.key))
	Eventually(t, 10*time.Second, func() bool { _, ok := n0.View().Get(o.id); return ok }, "valid heartbeat not accepted")
	o.send(t, ctx, heartbeat(t, "outsider-old", gossip.Seq{Inc: inc, Ctr: 3}, o.key))
	Eventually(t, 10*time.Second, func() bool { return ignored("stale") >= 1 }, "stale sequence not ignored")
	if m, _ := n0.View().Get(o.id); m.Name != "outsider" || m.Seq != (gossip.Seq{Inc: inc, Ctr: 5}) {
		t.Fatalf("stale heartbeat changed the member: %+v", m)
	}
}

// counter reads one counter of a registry; 0 when the series does not exist.
func counter(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if matches(m, labels) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func matches(m *dto.Metric, labels map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := labels[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(labels)
}

func TestNodeRecordInDHT(t *testing.T) {
	c := StartCluster(t, 3, Options{})
	Eventually(t, 30*time.Second, c.Converged, "cluster did not converge")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	Eventually(t, 20*time.Second, func() bool { return c.Node(0).DHT().RoutingTable().Size() >= 2 }, "DHT routing table not filled")
	if err := c.Node(0).PublishRecord(ctx); err != nil {
		t.Fatal(err)
	}
	var rec node.NodeRecord
	Eventually(t, 20*time.Second, func() bool {
		r, err := c.Node(2).LookupNode(ctx, c.Node(0).ID())
		rec = r
		return err == nil
	}, "node2 could not look up node0's record")
	if rec.Name != "node0" || len(rec.P2P) == 0 {
		t.Fatalf("record = %+v", rec)
	}

	// A record for node0's key signed by node1 is refused by the validator,
	// before anything is sent.
	env, err := gossip.NewEnvelope(node.NodeRecordNamespace, node.NodeRecordKind, c.Node(0).ID().String(),
		gossip.Seq{Inc: 1 << 60, Ctr: 1}, time.Now().Add(time.Hour), node.NodeRecord{Name: "hijack"})
	if err != nil {
		t.Fatal(err)
	}
	key1, _, err := node.LoadIdentity(c.Config(1).Identity)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Sign(key1); err != nil {
		t.Fatal(err)
	}
	val, _ := env.Encode()
	if err := c.Node(1).DHT().PutValue(ctx, node.RecordKey(node.NodeRecordNamespace, c.Node(0).ID().String()), val); err == nil {
		t.Fatal("DHT accepted a node record signed by another node")
	}
	if r, err := c.Node(2).LookupNode(ctx, c.Node(0).ID()); err != nil || r.Name != "node0" {
		t.Fatalf("after the hijack attempt node0's record = %+v, %v", r, err)
	}
}

// A member that is connected and live (its heartbeats reach us through
// another node) but that we have no GossipSub stream with is reconnected, so
// that GossipSub gets a new chance to open its stream.
func TestConnectedMemberOffTopicIsReconnected(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := StartCluster(t, 2, Options{})
	Eventually(t, 30*time.Second, c.Converged, "cluster did not converge")
	n0, n1 := c.Node(0), c.Node(1)
	// The outsider speaks GossipSub with node1, which relays its heartbeats
	// to node0. A second host with the same identity and no GossipSub at
	// all holds node0's connection to it.
	o := newOutsider(t, ctx, n1)
	h2, err := libp2p.New(libp2p.Identity(o.key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h2.Close() })
	disconnects := make(chan struct{}, 16)
	h2.Network().Notify(&network.NotifyBundle{DisconnectedF: func(_ network.Network, cn network.Conn) {
		if cn.RemotePeer() == n0.ID() {
			select {
			case disconnects <- struct{}{}:
			default:
			}
		}
	}})
	if err := h2.Connect(ctx, peer.AddrInfo{ID: n0.ID(), Addrs: n0.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	go func() {
		inc := uint64(time.Now().UnixMilli())
		tick := time.NewTicker(c.Config(0).Membership.Heartbeat)
		defer tick.Stop()
		for ctr := uint64(1); ; ctr++ {
			env := heartbeat(t, "outsider", gossip.Seq{Inc: inc, Ctr: ctr}, o.key)
			data, _ := env.Encode()
			_ = o.topic.Publish(ctx, data)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	Eventually(t, 20*time.Second, func() bool {
		m, ok := n0.View().Get(o.id)
		return ok && m.State == gossip.Live
	}, "node0 never saw the outsider live through node1")
	select {
	case <-disconnects:
	case <-time.After(30 * time.Second):
		t.Fatal("node0 never closed its connection to a live member it had no GossipSub stream with")
	}
}
