package gossip_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/callmesh/callmesh/gossip"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// busTopic is the topic every test node joins.
const busTopic = "callmesh/test/state"

// waitFor bounds every wait for the network; it is a deadline for a
// condition polled in a loop, never a delay the tests rely on.
const waitFor = 20 * time.Second

// eventually polls cond until it holds, failing the test at the deadline.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newHost(t testing.TB, key crypto.PrivKey) host.Host {
	t.Helper()
	h, err := libp2p.New(
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.Identity(key),
		libp2p.DisableRelay(),
	)
	if err != nil {
		t.Fatalf("libp2p host: %v", err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("close host: %v", err)
		}
	})
	return h
}

type delivery struct {
	env  *gossip.Envelope
	from peer.ID
}

type stateKey struct {
	issuer peer.ID
	key    string
}

// testNode is a host with a bus joined to busTopic. It keeps what it was
// delivered and, as its state, the newest envelope of each (issuer, key),
// its own included; serve replaces that state when set.
type testNode struct {
	t       testing.TB
	name    string
	key     crypto.PrivKey
	id      peer.ID
	host    host.Host
	bus     *gossip.Bus
	topic   *gossip.Topic
	metrics *gossip.Metrics

	mu        sync.Mutex
	delivered []delivery
	latest    map[stateKey]*gossip.Envelope
	serve     []*gossip.Envelope
	serving   bool
}

type nodeOptions struct {
	cfg  func(*gossip.Config)
	opts []gossip.Option
	host host.Host // nil: a new host
	inc  uint64    // incarnation; 0: 1000+seed
}

func newTestNode(t testing.TB, name string, seed uint64) *testNode {
	return newTestNodeWith(t, name, seed, nodeOptions{})
}

func newTestNodeWith(t testing.TB, name string, seed uint64, o nodeOptions) *testNode {
	t.Helper()
	n := &testNode{t: t, name: name, key: testKey(t, seed), latest: make(map[stateKey]*gossip.Envelope)}
	n.id = testID(t, n.key)
	n.host = o.host
	if n.host == nil {
		n.host = newHost(t, n.key)
	}
	n.metrics = gossip.NewMetrics(nil)
	cfg := gossip.FastConfig()
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	opts := append([]gossip.Option{gossip.WithMetrics(n.metrics)}, o.opts...)
	inc := o.inc
	if inc == 0 {
		inc = 1000 + seed
	}
	bus, err := gossip.New(n.host, n.key, gossip.NewSequencer(inc), cfg, opts...)
	if err != nil {
		t.Fatalf("%s: new bus: %v", name, err)
	}
	n.bus = bus
	t.Cleanup(func() {
		if err := bus.Close(); err != nil {
			t.Errorf("%s: close bus: %v", name, err)
		}
	})
	n.topic, err = bus.Join(gossip.TopicSpec{
		Name:    busTopic,
		MaxSize: 4096,
		Kinds:   []string{"k"},
		Body:    checkBody,
		Deliver: n.deliver,
		State:   n.state,
	})
	if err != nil {
		t.Fatalf("%s: join: %v", name, err)
	}
	return n
}

func (n *testNode) deliver(env *gossip.Envelope, from peer.ID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.delivered = append(n.delivered, delivery{env, from})
	n.remember(env)
}

func (n *testNode) remember(env *gossip.Envelope) {
	k := stateKey{env.Issuer, env.Key}
	if old := n.latest[k]; old == nil || env.Seq.Newer(old.Seq) {
		n.latest[k] = env
	}
}

func (n *testNode) state() []*gossip.Envelope {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.serving {
		return slices.Clone(n.serve)
	}
	out := make([]*gossip.Envelope, 0, len(n.latest))
	for _, e := range n.latest {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *gossip.Envelope) int {
		return strings.Compare(string(a.Issuer)+"/"+a.Key, string(b.Issuer)+"/"+b.Key)
	})
	return out
}

// setServe makes State return envs, whatever the node knows.
func (n *testNode) setServe(envs ...*gossip.Envelope) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.serve, n.serving = envs, true
}

func (n *testNode) publish(t testing.TB, key string, body testBody) *gossip.Envelope {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	env, err := n.topic.Publish(ctx, "k", key, body, time.Time{})
	if err != nil {
		t.Fatalf("%s: publish: %v", n.name, err)
	}
	n.mu.Lock()
	n.remember(env)
	n.mu.Unlock()
	return env
}

func (n *testNode) deliveries() []delivery {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.delivered)
}

// deliveryOf returns the delivery of env, matched by issuer, key and
// sequence.
func (n *testNode) deliveryOf(env *gossip.Envelope) (delivery, bool) {
	for _, d := range n.deliveries() {
		if d.env.Issuer == env.Issuer && d.env.Key == env.Key && d.env.Seq == env.Seq {
			return d, true
		}
	}
	return delivery{}, false
}

func (n *testNode) waitDelivered(t testing.TB, env *gossip.Envelope) delivery {
	t.Helper()
	eventually(t, fmt.Sprintf("%s to deliver %s/%q %v", n.name, env.Issuer, env.Key, env.Seq), func() bool {
		_, ok := n.deliveryOf(env)
		return ok
	})
	d, _ := n.deliveryOf(env)
	return d
}

// counterValue reads a counter, as prometheus/testutil.ToFloat64 does.
func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatalf("read counter: %v", err)
	}
	if m.Counter == nil {
		t.Fatalf("not a counter: %v", &m)
	}
	return m.Counter.GetValue()
}

// count reads the node's message counter for busTopic.
func (n *testNode) count(source, verdict, reason string) float64 {
	return counterValue(n.t, n.metrics.Messages.WithLabelValues(busTopic, source, verdict, reason))
}

func (n *testNode) syncs(result string) float64 {
	return counterValue(n.t, n.metrics.Syncs.WithLabelValues(result))
}

func connect(t testing.TB, a, b host.Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatalf("connect %s to %s: %v", a.ID(), b.ID(), err)
	}
}

// link connects two nodes and waits until each knows the other is on the
// topic, and until each has pulled the other's state once, so that later
// counters move only by what the test does.
func link(t testing.TB, a, b *testNode) {
	t.Helper()
	syncsA, syncsB := a.syncs("ok"), b.syncs("ok")
	connect(t, a.host, b.host)
	waitTopicPeer(t, a, b.id)
	waitTopicPeer(t, b, a.id)
	eventually(t, a.name+" to pull from "+b.name, func() bool { return a.syncs("ok") > syncsA })
	eventually(t, b.name+" to pull from "+a.name, func() bool { return b.syncs("ok") > syncsB })
}

func waitTopicPeer(t testing.TB, n *testNode, p peer.ID) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s to see %s on the topic", n.name, p), func() bool {
		return slices.Contains(n.topic.Peers(), p)
	})
}

// isValidation reports whether err is GossipSub's verdict on a local
// publish, with the given reason.
func isValidation(err error, reason string) bool {
	var v pubsub.ValidationError
	return errors.As(err, &v) && v.Reason == reason
}

func sameEnvelope(t testing.TB, got, want *gossip.Envelope) {
	t.Helper()
	g, w := encode(t, got), encode(t, want)
	if string(g) != string(w) {
		t.Fatalf("delivered envelope differs from the published one:\n got %s\nwant %s", g, w)
	}
}

func TestBusNewRejectsForeignKey(t *testing.T) {
	h := newHost(t, testKey(t, 1))
	if b, err := gossip.New(h, testKey(t, 2), gossip.NewSequencer(1), gossip.FastConfig()); err == nil {
		b.Close()
		t.Fatal("New accepted a key that is not the host's identity")
	}
}

func TestBusJoinErrors(t *testing.T) {
	n := newTestNode(t, "a", 1)
	if _, err := n.bus.Join(gossip.TopicSpec{}); err == nil {
		t.Error("Join accepted a topic without a name")
	}
	if _, err := n.bus.Join(gossip.TopicSpec{Name: busTopic}); err == nil {
		t.Error("Join accepted the same topic twice")
	}
}

// warmPath publishes probes from one node until every node in to has
// delivered one. GossipSub keeps no history: a node two hops away misses what
// is published before the relay has grafted it into its mesh.
func warmPath(t testing.TB, from *testNode, to ...*testNode) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for i := 0; ; i++ {
		probe := from.publish(t, "probe", testBody{Name: "probe", Count: i})
		retry := time.Now().Add(250 * time.Millisecond)
		for {
			all := true
			for _, n := range to {
				if _, ok := n.deliveryOf(probe); !ok {
					all = false
				}
			}
			if all {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no probe from %s reached every node", from.name)
			}
			if time.Now().After(retry) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// A message published on one node reaches the others, also through a node in
// between, and is not delivered back to its issuer.
func TestBusPublishDelivers(t *testing.T) {
	a, b, c := newTestNode(t, "a", 11), newTestNode(t, "b", 12), newTestNode(t, "c", 13)
	link(t, a, b)
	link(t, b, c) // a and c are not connected: c hears a only through b
	warmPath(t, a, b, c)
	published := counterValue(t, a.metrics.Published.WithLabelValues(busTopic))

	env := a.publish(t, "", testBody{Name: "from a", Count: 1})
	if env.Issuer != a.id || env.Seq.Inc != 1011 || env.Key != "" || env.Topic != busTopic || env.Kind != "k" {
		t.Fatalf("published %+v", env)
	}
	db := b.waitDelivered(t, env)
	dc := c.waitDelivered(t, env)
	sameEnvelope(t, db.env, env)
	sameEnvelope(t, dc.env, env)
	if db.from != a.id {
		t.Errorf("b got it from %s, want a %s", db.from, a.id)
	}
	if dc.from != b.id {
		t.Errorf("c got it from %s, want b %s", dc.from, b.id)
	}
	var body testBody
	if err := dc.env.DecodeBody(&body); err != nil || body != (testBody{Name: "from a", Count: 1}) {
		t.Errorf("c decoded body %+v, %v", body, err)
	}

	// b's message reaches a after a's own messages went through a's
	// subscription, so a's deliveries are final once it has b's.
	envB := b.publish(t, "", testBody{Name: "from b", Count: 2})
	a.waitDelivered(t, envB)
	c.waitDelivered(t, envB)
	if got := a.deliveries(); len(got) != 1 || got[0].env.Issuer != b.id {
		t.Fatalf("a delivered %d envelopes (%v), want only b's", len(got), got)
	}

	if got := counterValue(t, a.metrics.Published.WithLabelValues(busTopic)) - published; got != 1 {
		t.Errorf("a counted %v more published messages, want 1", got)
	}
	for _, n := range []*testNode{a, b, c} {
		for _, reason := range []string{"issuer", "signature", "malformed"} {
			if got := n.count("gossip", "reject", reason); got != 0 {
				t.Errorf("%s rejected %v messages for %s", n.name, got, reason)
			}
		}
	}
}

// The publisher validates its own messages too: a forged envelope handed to
// PublishEnvelope never leaves the node, and its own metrics record it.
func TestBusForgedEnvelopeRejectedAtPublisher(t *testing.T) {
	a, b := newTestNode(t, "a", 21), newTestNode(t, "b", 22)
	link(t, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()

	// Signed with a's key, claiming to be b's.
	forged := signedOn(t, a.key, busTopic, "k", "", gossip.Seq{Inc: 1, Ctr: 1}, time.Time{}, testBody{Name: "forged"})
	forged.Issuer = b.id
	// A rejection, not a mere ignore: the verdict is what scores peers.
	if err := a.topic.PublishEnvelope(ctx, forged); !isValidation(err, pubsub.RejectValidationFailed) {
		t.Fatalf("PublishEnvelope of a forged envelope = %v, want %q", err, pubsub.RejectValidationFailed)
	}
	// Signed by a third party's key: a's transport signature cannot vouch
	// for it.
	third := signedOn(t, testKey(t, 23), busTopic, "k", "", gossip.Seq{Inc: 1, Ctr: 1}, time.Time{}, testBody{Name: "not a's"})
	if err := a.topic.PublishEnvelope(ctx, third); !isValidation(err, pubsub.RejectValidationFailed) {
		t.Fatalf("PublishEnvelope of another issuer's envelope = %v, want %q", err, pubsub.RejectValidationFailed)
	}
	if got := a.count("gossip", "reject", "issuer"); got != 2 {
		t.Fatalf("a counted %v issuer rejections, want 2", got)
	}
	if got := counterValue(t, a.metrics.Published.WithLabelValues(busTopic)); got != 0 {
		t.Fatalf("a counted %v published messages, want 0", got)
	}

	// A genuine message sent after the forgeries arrives; the forgeries
	// never do.
	env := a.publish(t, "", testBody{Name: "genuine"})
	b.waitDelivered(t, env)
	if got := b.deliveries(); len(got) != 1 {
		t.Fatalf("b delivered %d envelopes, want only the genuine one", len(got))
	}
	if got := b.count("gossip", "accept", "ok"); got != 1 {
		t.Fatalf("b accepted %v messages, want 1", got)
	}
}

// rawPeer is a GossipSub node with no validator of ours: it can put any
// bytes on the topic, signed on the transport by its own key.
type rawPeer struct {
	id    peer.ID
	key   crypto.PrivKey
	host  host.Host
	topic *pubsub.Topic
}

func newRawPeer(t testing.TB, seed uint64) *rawPeer {
	t.Helper()
	key := testKey(t, seed)
	h := newHost(t, key)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel) // runs before the host closes
	ps, err := pubsub.NewGossipSub(ctx, h)
	if err != nil {
		t.Fatalf("raw gossipsub: %v", err)
	}
	tp, err := ps.Join(busTopic)
	if err != nil {
		t.Fatalf("raw join: %v", err)
	}
	return &rawPeer{id: h.ID(), key: key, host: h, topic: tp}
}

// A node that is not the issuer cannot get a message delivered over gossip,
// and a message whose envelope signature fails is rejected, whoever relays
// it: the receiver's own validator decides.
func TestBusForgedEnvelopeRejectedAtReceiver(t *testing.T) {
	a, b := newTestNode(t, "a", 31), newTestNode(t, "b", 32)
	m := newRawPeer(t, 33)
	link(t, a, b)
	connect(t, m.host, b.host)
	eventually(t, "m to see b on the topic", func() bool { return slices.Contains(m.topic.ListPeers(), b.id) })

	genuine := signedOn(t, a.key, busTopic, "k", "", gossip.Seq{Inc: 5, Ctr: 1}, time.Time{}, testBody{Name: "a's own"})
	claimsA := signedOn(t, m.key, busTopic, "k", "", gossip.Seq{Inc: 5, Ctr: 2}, time.Time{}, testBody{Name: "m posing as a"})
	claimsA.Issuer = a.id
	tampered := signedOn(t, m.key, busTopic, "k", "", gossip.Seq{Inc: 5, Ctr: 3}, time.Time{}, testBody{Name: "m"})
	tampered.Body = []byte(`{"name":"m, altered"}`)

	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	for _, env := range []*gossip.Envelope{genuine, claimsA, tampered} {
		if err := m.topic.Publish(ctx, encode(t, env)); err != nil {
			t.Fatalf("raw publish: %v", err)
		}
	}
	eventually(t, "b to reject the forgeries", func() bool {
		return b.count("gossip", "reject", "issuer") == 2 && b.count("gossip", "reject", "signature") == 1
	})
	if got := b.deliveries(); len(got) != 0 {
		t.Fatalf("b delivered %d forged envelopes: %v", len(got), got)
	}
	if got := b.count("gossip", "accept", "ok"); got != 0 {
		t.Fatalf("b accepted %v messages, want 0", got)
	}
	// Rejected messages are not forwarded: a never sees them.
	env := b.publish(t, "", testBody{Name: "after"})
	a.waitDelivered(t, env)
	if got := a.deliveries(); len(got) != 1 {
		t.Fatalf("a delivered %d envelopes, want only b's", len(got))
	}
	if got := a.count("gossip", "reject", "issuer") + a.count("gossip", "reject", "signature"); got != 0 {
		t.Fatalf("a saw %v forged messages, want 0", got)
	}
}

// Anti-entropy carries envelopes whose sender is not their issuer, so only
// the issuer's signature vouches for them: forged ones are rejected with
// source "sync" and never delivered, genuine ones relayed by a third node
// are.
func TestBusForgedEnvelopeRejectedInSync(t *testing.T) {
	a, b := newTestNode(t, "a", 41), newTestNode(t, "b", 42)
	cKey := testKey(t, 43)
	cID := testID(t, cKey)

	forged := signedOn(t, a.key, busTopic, "k", "", gossip.Seq{Inc: 7, Ctr: 1}, time.Time{}, testBody{Name: "a posing as c"})
	forged.Issuer = cID
	tampered := signedOn(t, cKey, busTopic, "k", "x", gossip.Seq{Inc: 7, Ctr: 2}, time.Time{}, testBody{Name: "c"})
	tampered.Body = []byte(`{"name":"c, altered"}`)
	genuine := signedOn(t, cKey, busTopic, "k", "y", gossip.Seq{Inc: 7, Ctr: 3}, time.Time{}, testBody{Name: "c, relayed by a"})
	// Signed by a, claiming to be b itself.
	forgedAsB := signedOn(t, a.key, busTopic, "k", "", gossip.Seq{Inc: 7, Ctr: 4}, time.Time{}, testBody{Name: "a posing as b"})
	forgedAsB.Issuer = b.id
	a.setServe(forged, tampered, genuine, forgedAsB)

	// b pulls from a when they connect.
	link(t, a, b)
	d := b.waitDelivered(t, genuine)
	if d.from != a.id {
		t.Errorf("genuine envelope delivered from %s, want a %s", d.from, a.id)
	}
	sameEnvelope(t, d.env, genuine)
	if got := b.count("sync", "reject", "signature"); got != 3 {
		t.Fatalf("b counted %v sync signature rejections, want 3", got)
	}
	if got := b.count("sync", "accept", "ok"); got != 1 {
		t.Fatalf("b counted %v sync accepts, want 1", got)
	}
	if got := b.deliveries(); len(got) != 1 {
		t.Fatalf("b delivered %d envelopes, want only the genuine one", len(got))
	}

	// Pulling again: the forgeries are rejected again, the genuine one is
	// now stale.
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if n, err := b.bus.Sync(ctx, a.id); err != nil || n != 0 {
		t.Fatalf("second Sync = %d, %v; want 0, nil", n, err)
	}
	if got := b.count("sync", "reject", "signature"); got != 6 {
		t.Fatalf("b counted %v sync signature rejections, want 6", got)
	}
	if got := b.count("sync", "ignore", "stale"); got != 1 {
		t.Fatalf("b counted %v sync stale, want 1", got)
	}
	if got := b.deliveries(); len(got) != 1 {
		t.Fatalf("b delivered %d envelopes after the second pull, want 1", len(got))
	}
}

// A node that arrives late gets the current state through anti-entropy,
// without anything being published again.
func TestBusAntiEntropyLateJoiner(t *testing.T) {
	a, b := newTestNode(t, "a", 51), newTestNode(t, "b", 52)
	link(t, a, b)
	// Validation runs concurrently, so b may take k1's second version
	// before its first, and then drop the first as stale: only the newest
	// of each key is waited for.
	a.publish(t, "k1", testBody{Name: "k1", Count: 1})
	k2 := a.publish(t, "k2", testBody{Name: "k2", Count: 1})
	k1v2 := a.publish(t, "k1", testBody{Name: "k1", Count: 2})
	b.waitDelivered(t, k1v2)
	b.waitDelivered(t, k2)

	c := newTestNode(t, "c", 53)
	connect(t, c.host, b.host) // c knows only b, which knows a's state
	eventually(t, "c to receive the state", func() bool { return len(c.deliveries()) >= 2 })

	got := c.deliveries()
	if len(got) != 2 {
		t.Fatalf("c delivered %d envelopes, want 2 (the newest of each key)", len(got))
	}
	for _, want := range []*gossip.Envelope{k1v2, k2} {
		d, ok := c.deliveryOf(want)
		if !ok {
			t.Fatalf("c lacks %q %v; got %v", want.Key, want.Seq, got)
		}
		sameEnvelope(t, d.env, want)
		if d.from != b.id {
			t.Errorf("c got %q from %s, want b %s", want.Key, d.from, b.id)
		}
	}
	if got := c.count("sync", "accept", "ok"); got != 2 {
		t.Errorf("c counted %v sync accepts, want 2", got)
	}
	if got := c.count("gossip", "accept", "ok"); got != 0 {
		t.Errorf("c counted %v gossip accepts, want 0", got)
	}
	if got := counterValue(t, a.metrics.Published.WithLabelValues(busTopic)); got != 3 {
		t.Errorf("a published %v messages, want 3", got)
	}
	if got := counterValue(t, b.metrics.Published.WithLabelValues(busTopic)); got != 0 {
		t.Errorf("b published %v messages, want 0", got)
	}
}

// An older envelope offered again, by anti-entropy or by gossip, is ignored
// as stale and not delivered; a newer one still is.
func TestBusStaleSequenceIgnored(t *testing.T) {
	a, b := newTestNode(t, "a", 61), newTestNode(t, "b", 62)
	link(t, a, b)
	old := a.publish(t, "k", testBody{Name: "old"})
	b.waitDelivered(t, old)
	cur := a.publish(t, "k", testBody{Name: "current"})
	b.waitDelivered(t, cur)

	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	for i, env := range []*gossip.Envelope{old, cur} { // older, then duplicate
		a.setServe(env)
		n, err := b.bus.Sync(ctx, a.id)
		if err != nil || n != 0 {
			t.Fatalf("Sync serving %v = %d, %v; want 0, nil", env.Seq, n, err)
		}
		if got := b.count("sync", "ignore", "stale"); got != float64(i+1) {
			t.Fatalf("b counted %v sync stale, want %d", got, i+1)
		}
	}
	if got := b.deliveries(); len(got) != 2 {
		t.Fatalf("b delivered %d envelopes, want 2", len(got))
	}

	// Through gossip: a's own validator ignores it already.
	if err := a.topic.PublishEnvelope(ctx, old); !isValidation(err, pubsub.RejectValidationIgnored) {
		t.Fatalf("re-publishing an older envelope = %v, want %q", err, pubsub.RejectValidationIgnored)
	}
	if got := a.count("gossip", "ignore", "stale"); got != 1 {
		t.Fatalf("a counted %v gossip stale, want 1", got)
	}

	// A newer envelope still passes by anti-entropy.
	next := signedOn(t, a.key, busTopic, "k", "k", a.bus.Sequencer().Next(), time.Time{}, testBody{Name: "next"})
	a.setServe(old, next)
	if n, err := b.bus.Sync(ctx, a.id); err != nil || n != 1 {
		t.Fatalf("Sync with a newer envelope = %d, %v; want 1, nil", n, err)
	}
	sameEnvelope(t, b.waitDelivered(t, next).env, next)
	if got := b.count("sync", "ignore", "stale"); got != 3 {
		t.Fatalf("b counted %v sync stale, want 3", got)
	}
}

// A node that restarts pulls its own earlier messages back from its peers:
// they are not delivered to it, and its new incarnation's messages are
// accepted by peers that saw its old counter run higher.
func TestBusRestartedNode(t *testing.T) {
	a, b := newTestNode(t, "a", 65), newTestNode(t, "b", 66)
	link(t, a, b)
	var old *gossip.Envelope
	for i := range 3 {
		old = a.publish(t, "k", testBody{Name: "before restart", Count: i})
		b.waitDelivered(t, old)
	}
	if err := a.bus.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.host.Close(); err != nil {
		t.Fatal(err)
	}

	a2 := newTestNodeWith(t, "a2", 65, nodeOptions{inc: old.Seq.Inc + 1})
	if a2.id != a.id {
		t.Fatalf("restarted node has ID %s, want %s", a2.id, a.id)
	}
	// b pulled from this peer ID moments ago, so only a2 pulls now.
	connect(t, a2.host, b.host)
	waitTopicPeer(t, a2, b.id)
	waitTopicPeer(t, b, a2.id)
	eventually(t, "a2 to pull from b", func() bool { return a2.syncs("ok") > 0 })
	if got := a2.count("sync", "accept", "ok"); got != 1 {
		t.Fatalf("a2 accepted %v envelopes from b's state, want its own old one", got)
	}
	if got := a2.deliveries(); len(got) != 0 {
		t.Fatalf("a2 was delivered %d of its own envelopes", len(got))
	}

	fresh := a2.publish(t, "k", testBody{Name: "after restart"})
	if fresh.Seq.Ctr != 1 || !fresh.Seq.Newer(old.Seq) {
		t.Fatalf("first sequence after restart %v, old %v", fresh.Seq, old.Seq)
	}
	d := b.waitDelivered(t, fresh)
	sameEnvelope(t, d.env, fresh)
}

// Expired envelopes are ignored, by gossip and by anti-entropy.
func TestBusExpiredIgnored(t *testing.T) {
	a, b := newTestNode(t, "a", 71), newTestNode(t, "b", 72)
	link(t, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()

	expired := signedOn(t, a.key, busTopic, "k", "", a.bus.Sequencer().Next(), time.Now().Add(-time.Minute), testBody{Name: "gone"})
	a.setServe(expired)
	if n, err := b.bus.Sync(ctx, a.id); err != nil || n != 0 {
		t.Fatalf("Sync = %d, %v; want 0, nil", n, err)
	}
	if got := b.count("sync", "ignore", "expired"); got != 1 {
		t.Fatalf("b counted %v sync expired, want 1", got)
	}
	if _, err := a.topic.Publish(ctx, "k", "", testBody{Name: "gone"}, time.Now().Add(-time.Minute)); !isValidation(err, pubsub.RejectValidationIgnored) {
		t.Fatalf("publishing an expired envelope = %v, want %q", err, pubsub.RejectValidationIgnored)
	}
	if got := a.count("gossip", "ignore", "expired"); got != 1 {
		t.Fatalf("a counted %v gossip expired, want 1", got)
	}
	if got := b.deliveries(); len(got) != 0 {
		t.Fatalf("b delivered %d expired envelopes", len(got))
	}
}

// Close stops what the bus started, leaves the host usable, and may be
// called again. (TestMain checks that no goroutine outlives the tests.)
func TestBusClose(t *testing.T) {
	a, b := newTestNode(t, "a", 81), newTestNode(t, "b", 82)
	link(t, a, b)
	b.waitDelivered(t, a.publish(t, "", testBody{Name: "before close"}))

	if err := a.bus.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := a.bus.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := a.bus.Join(gossip.TopicSpec{Name: "other"}); err == nil {
		t.Fatal("Join after Close succeeded")
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := a.topic.Publish(ctx, "k", "", testBody{Name: "after close"}, time.Time{}); err == nil {
		t.Fatal("Publish after Close succeeded")
	}
	// The sync protocol is no longer served.
	if _, err := b.bus.Sync(ctx, a.id); err == nil {
		t.Fatal("Sync from a closed bus succeeded")
	}
	if got := b.syncs("error"); got != 1 {
		t.Fatalf("b counted %v failed syncs, want 1", got)
	}
	if a.host.Network().Connectedness(b.id) != network.Connected {
		t.Fatal("Close disconnected the host")
	}
}

// Close stops every goroutine the bus started, while the host lives on and
// stays connected.
//
// The hosts connect after both buses exist, as a node's do (its bus starts
// before it dials a bootstrap peer). The other way round GossipSub can miss
// a peer for good: a bus started beside an open connection tries the peer
// at once; if the peer's bus registers its protocol while that try is still
// failing, GossipSub ignores the protocol update (it has the try in flight),
// then forgets the peer when the try fails, and never tries again.
// So the goroutines are counted before the buses and the connection, and
// the connection is closed after the check that closing the buses left it
// up; what remains must be what there was before.
func TestBusCloseStopsItsGoroutines(t *testing.T) {
	ha, hb := newHost(t, testKey(t, 85)), newHost(t, testKey(t, 86))
	before := goleak.IgnoreCurrent()

	a := newTestNodeWith(t, "a", 85, nodeOptions{host: ha})
	b := newTestNodeWith(t, "b", 86, nodeOptions{host: hb})
	connect(t, ha, hb)
	waitTopicPeer(t, a, b.id)
	waitTopicPeer(t, b, a.id)
	b.waitDelivered(t, a.publish(t, "", testBody{Name: "a"}))
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if n, err := b.bus.Sync(ctx, a.id); err != nil || n != 0 {
		t.Fatalf("Sync = %d, %v; want 0 (already known), nil", n, err)
	}

	for _, n := range []*testNode{a, b} {
		if err := n.bus.Close(); err != nil {
			t.Fatalf("%s: Close: %v", n.name, err)
		}
	}
	if ha.Network().Connectedness(hb.ID()) != network.Connected {
		t.Fatal("closing the buses disconnected the hosts")
	}
	if err := ha.Network().ClosePeer(hb.ID()); err != nil {
		t.Fatalf("close the connection: %v", err)
	}
	eventually(t, "both hosts to see the connection closed", func() bool {
		return len(ha.Network().ConnsToPeer(hb.ID())) == 0 && len(hb.Network().ConnsToPeer(ha.ID())) == 0
	})
	// The host's identify service starts its push goroutine on its own
	// time, which may come after the snapshot: a host's, not the bus's.
	goleak.VerifyNone(t, before,
		goleak.IgnoreTopFunction("github.com/libp2p/go-libp2p/p2p/protocol/identify.(*idService).loop.func1"))
}

// SyncMaxEntries bounds the envelopes accepted from one pull: a peer that
// sends more fails the pull.
func TestBusSyncMaxEntries(t *testing.T) {
	a := newTestNode(t, "a", 91)
	b := newTestNodeWith(t, "b", 92, nodeOptions{cfg: func(c *gossip.Config) { c.SyncMaxEntries = 2 }})
	link(t, a, b)
	cKey := testKey(t, 93)
	var envs []*gossip.Envelope
	for i := range 3 {
		envs = append(envs, signedOn(t, cKey, busTopic, "k", fmt.Sprint(i), gossip.Seq{Inc: 1, Ctr: 1}, time.Time{}, testBody{Name: "c"}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()

	a.setServe(envs...)
	n, err := b.bus.Sync(ctx, a.id)
	if err == nil {
		t.Fatal("Sync of more than SyncMaxEntries envelopes succeeded")
	}
	if n > 2 {
		t.Fatalf("Sync accepted %d envelopes, limit 2", n)
	}
	if got := len(b.deliveries()); got > 2 {
		t.Fatalf("b delivered %d envelopes, limit 2", got)
	}
}

// Exactly SyncMaxEntries envelopes are within the bound.
func TestBusSyncExactlyMaxEntries(t *testing.T) {
	a := newTestNode(t, "a", 94)
	b := newTestNodeWith(t, "b", 95, nodeOptions{cfg: func(c *gossip.Config) { c.SyncMaxEntries = 2 }})
	link(t, a, b)
	cKey := testKey(t, 96)
	a.setServe(
		signedOn(t, cKey, busTopic, "k", "0", gossip.Seq{Inc: 1, Ctr: 1}, time.Time{}, testBody{Name: "c"}),
		signedOn(t, cKey, busTopic, "k", "1", gossip.Seq{Inc: 1, Ctr: 1}, time.Time{}, testBody{Name: "c"}),
	)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if n, err := b.bus.Sync(ctx, a.id); err != nil || n != 2 {
		t.Fatalf("Sync of exactly SyncMaxEntries envelopes = %d, %v; want 2, nil", n, err)
	}
}

// WithClock moves the bus's idea of now, for expiry; anti-entropy must still
// work whatever the clock says, since its stream deadlines are real time.
func TestBusWithPastClock(t *testing.T) {
	past := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := nodeOptions{opts: []gossip.Option{gossip.WithClock(func() time.Time { return past })}}
	a := newTestNodeWith(t, "a", 97, clock)
	b := newTestNodeWith(t, "b", 98, clock)
	link(t, a, b)

	// Long expired by the wall clock, not by the nodes' clocks.
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	env, err := a.topic.Publish(ctx, "k", "", testBody{Name: "a"}, past.Add(time.Hour))
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	a.mu.Lock()
	a.remember(env)
	a.mu.Unlock()
	b.waitDelivered(t, env)

	c := newTestNodeWith(t, "c", 99, clock)
	link(t, c, a)
	c.waitDelivered(t, env)
	if n, err := c.bus.Sync(ctx, a.id); err != nil || n != 0 {
		t.Fatalf("second Sync = %d, %v; want 0 (stale), nil", n, err)
	}
	if got := c.syncs("error"); got != 0 {
		t.Fatalf("c counted %v failed syncs", got)
	}
}
