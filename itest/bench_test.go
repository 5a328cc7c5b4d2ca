package itest

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callmesh/callmesh/gossip"
	"github.com/callmesh/callmesh/node"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Benchmarks of the whole federation, in process. They report their figures
// with ReportMetric; ns/op is the time of one measured round and means
// little. Run them one at a time, once each, for example:
//
//	go test -run '^$' -bench 'GossipLatency20$' -benchtime=1x ./itest/
//
// No benchmark asserts on timing; targets are in the comments.

const (
	benchTopicName = "/callmesh/bench/1"
	benchKind      = "bench"
	// benchTick paces publishing: one message per tick, round-robin over
	// the nodes, 100 messages/s in total.
	benchTick = 10 * time.Millisecond
	// benchMessages per measured round: 5 s at 100 messages/s.
	benchMessages = 500
	// benchDrain is how long deliveries are awaited after the last publish
	// of a round; what has not arrived by then counts as lost.
	benchDrain = 5 * time.Second
	// benchPad sizes the message body like a small state update.
	benchPad = 256
)

// benchMsg is the body of a bench message.
type benchMsg struct {
	ID  int    `json:"id"`
	Pad string `json:"pad"`
}

func checkBenchMsg(env *gossip.Envelope) error {
	var m benchMsg
	return env.DecodeBody(&m)
}

// BenchmarkGossipLatency20: delivery latency of 100 messages/s published
// round-robin by 20 nodes to every other node, on production timers
// (heartbeat 1 s, GossipSub heartbeat 1 s). Target: p99 ≤ 50 ms.
func BenchmarkGossipLatency20(b *testing.B) {
	benchGossipLatency(b, 20, time.Minute, productionMembership)
}

// BenchmarkGossipLatency50 is BenchmarkGossipLatency20 with 50 nodes, on
// production membership timers (heartbeat 1 s, dead after 10 s) instead of
// the harness's 200 ms: every heartbeat goes to 49 nodes, and at five a
// second per node the heartbeats alone would take more CPU than a small
// machine has. The CPU the idle cluster uses is logged before publishing.
func BenchmarkGossipLatency50(b *testing.B) {
	benchGossipLatency(b, 50, 3*time.Minute, productionMembership)
}

// productionMembership sets the membership timers to node.DefaultConfig's.
func productionMembership(_ int, cfg *node.Config) {
	cfg.Membership = node.DefaultConfig().Membership
}

func benchGossipLatency(b *testing.B, n int, converge time.Duration, configure func(int, *node.Config)) {
	tb := quiet(b)
	start := time.Now()
	gc := gossip.DefaultConfig()
	// CALLMESH_BENCH_MESH_DEGREE overrides GossipSub's mesh degree, to
	// compare settings.
	if d, err := strconv.Atoi(os.Getenv("CALLMESH_BENCH_MESH_DEGREE")); err == nil {
		gc.MeshDegree = d
	}
	c := startStaggered(tb, n, Options{Configure: configure, Gossip: &gc})
	started := time.Since(start)
	Eventually(tb, converge, c.Converged, "%d nodes did not converge", n)
	b.Logf("%d nodes started in %v, converged in %v (heartbeat %v)",
		n, started.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), c.Config(0).Membership.Heartbeat)

	rec := newLatencyRecorder()
	topics := make([]*gossip.Topic, n)
	for i := range n {
		tp, err := c.Node(i).Bus().Join(gossip.TopicSpec{
			Name: benchTopicName, Kinds: []string{benchKind}, Body: checkBenchMsg,
			Deliver: func(env *gossip.Envelope, _ peer.ID) {
				at := time.Now()
				var m benchMsg
				if env.DecodeBody(&m) == nil {
					rec.received(m.ID, i, at)
				}
			},
		})
		if err != nil {
			b.Fatalf("node %d: join bench topic: %v", i, err)
		}
		topics[i] = tp
	}
	waitTopicPeers(b, c, topics, 30*time.Second)
	time.Sleep(time.Second) // a few GossipSub heartbeats to form the mesh
	idle := readCPU()
	time.Sleep(2 * time.Second)
	b.Logf("CPU used before publishing (heartbeats and mesh upkeep): %s of %d", idle.since(), runtime.NumCPU())

	pad := strings.Repeat("x", benchPad)
	next := 0
	var used []string
	for b.Loop() {
		cpu := readCPU()
		rec.publishRound(topics, next, benchMessages, pad)
		used = append(used, cpu.since())
		next += benchMessages
		rec.drain(n, benchDrain)
	}

	st := rec.stats(n)
	b.ReportMetric(ms(st.lat.quantile(0.50)), "p50-ms")
	b.ReportMetric(ms(st.lat.quantile(0.99)), "p99-ms")
	b.ReportMetric(ms(st.lat.quantile(1)), "max-ms")
	b.ReportMetric(st.deliveredFraction(), "delivered-frac")
	b.Logf("%d nodes: %d messages published (%d failed), %d/%d deliveries, %d lost; "+
		"latency p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms; Publish call p50 %.1f ms, p99 %.1f ms; CPU used while publishing: %s",
		n, st.messages, st.failed, st.delivered, st.expected, st.expected-st.delivered,
		ms(st.lat.quantile(0.50)), ms(st.lat.quantile(0.90)), ms(st.lat.quantile(0.99)), ms(st.lat.quantile(1)),
		ms(st.publish.quantile(0.50)), ms(st.publish.quantile(0.99)), strings.Join(used, ", "))
	if st.firstErr != nil {
		b.Logf("first publish error: %v", st.firstErr)
	}
	if !c.Converged() {
		b.Logf("membership views no longer converged after publishing")
	}
}

// waitTopicPeers waits until every node's bench topic lists every other
// node as a subscribed, connected peer. If that does not happen within
// timeout it logs how far the nodes got and lets the benchmark go on: the
// messages then reach some nodes only through forwarding, which the figures
// show.
func waitTopicPeers(tb TB, c *Cluster, topics []*gossip.Topic, timeout time.Duration) {
	tb.Helper()
	n := len(topics)
	deadline := time.Now().Add(timeout)
	for {
		short, minPeers, minConns := 0, n, n
		for i, tp := range topics {
			if p := len(tp.Peers()); p < n-1 {
				short++
				minPeers = min(minPeers, p)
			}
			minConns = min(minConns, len(c.Node(i).Host().Network().Peers()))
		}
		if short == 0 {
			return
		}
		if time.Now().After(deadline) {
			tb.Logf("after %v, %d of %d nodes still lack bench topic peers (fewest %d of %d); fewest connected peers of a node: %d",
				timeout, short, n, minPeers, n-1, minConns)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startStaggered starts a cluster of n nodes one at a time, each once the
// previous one is connected to every node before it (or after a few
// seconds, if it is slow to), so that the nodes do not all handshake,
// identify and sync with each other in the same instant: on a small machine
// that storm makes identify time out, and GossipSub then never opens its
// stream to some peers.
func startStaggered(tb TB, n int, opts Options) *Cluster {
	tb.Helper()
	c := StartCluster(tb, 1, opts)
	for range n - 1 {
		i := c.Add()
		deadline := time.Now().Add(5 * time.Second)
		for len(c.Node(i).Host().Network().Peers()) < i && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	return c
}

// latencyRecorder keeps the publish time of every bench message and the
// time each node received it, in the process's monotonic clock.
type latencyRecorder struct {
	mu       sync.Mutex
	sent     map[int]sentMsg
	recv     map[delivery]time.Time
	firstErr error
}

type sentMsg struct {
	from    int
	at      time.Time
	publish time.Duration // time spent in Topic.Publish
	ok      bool
}

type delivery struct{ msg, node int }

func newLatencyRecorder() *latencyRecorder {
	return &latencyRecorder{sent: make(map[int]sentMsg), recv: make(map[delivery]time.Time)}
}

func (r *latencyRecorder) received(msg, node int, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := delivery{msg, node}
	if _, dup := r.recv[k]; !dup {
		r.recv[k] = at
	}
}

// publishRound publishes count messages with ids from first on, one per
// tick, message id i from node i mod len(topics). Each publish runs in its
// own goroutine, so that a slow Publish does not lower the offered rate.
// Each message has its own state key, so that reordering on the way never
// makes one look stale.
func (r *latencyRecorder) publishRound(topics []*gossip.Topic, first, count int, pad string) {
	tick := time.NewTicker(benchTick)
	defer tick.Stop()
	var wg sync.WaitGroup
	for id := first; id < first+count; id++ {
		<-tick.C
		from := id % len(topics)
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			at := time.Now()
			_, err := topics[from].Publish(ctx, benchKind, strconv.Itoa(id), benchMsg{ID: id, Pad: pad}, at.Add(time.Minute))
			took := time.Since(at)
			r.mu.Lock()
			defer r.mu.Unlock()
			r.sent[id] = sentMsg{from: from, at: at, publish: took, ok: err == nil}
			if err != nil && r.firstErr == nil {
				r.firstErr = err
			}
		})
	}
	wg.Wait()
}

// drain waits up to timeout for every published message to reach the n-1
// nodes that did not publish it.
func (r *latencyRecorder) drain(n int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		want := 0
		for _, s := range r.sent {
			if s.ok {
				want += n - 1
			}
		}
		done := len(r.recv) >= want
		r.mu.Unlock()
		if done {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type latencyStats struct {
	messages, failed    int
	expected, delivered int
	lat, publish        durations // sorted
	firstErr            error
}

func (s latencyStats) deliveredFraction() float64 {
	if s.expected == 0 {
		return 0
	}
	return float64(s.delivered) / float64(s.expected)
}

// stats counts every delivery a message owed to the other n-1 nodes; a
// message whose publish failed owes them all, and they count as lost.
func (r *latencyRecorder) stats(n int) latencyStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := latencyStats{messages: len(r.sent), firstErr: r.firstErr}
	var lat, pub durations
	for id, s := range r.sent {
		st.expected += n - 1
		if !s.ok {
			st.failed++
			continue
		}
		pub = append(pub, s.publish)
		for j := range n {
			if j == s.from {
				continue
			}
			if at, ok := r.recv[delivery{id, j}]; ok {
				st.delivered++
				lat = append(lat, at.Sub(s.at))
			}
		}
	}
	st.lat, st.publish = lat.sorted(), pub.sorted()
	return st
}

// joinsPerRound is how many joins one iteration of BenchmarkJoinSeenLive20
// measures, so that a single run gives a median.
const joinsPerRound = 5

// BenchmarkJoinSeenLive20: time from adding a node to a converged 20-node
// cluster (bootstrapped through node 0) until every member sees it live.
// Target: ≤ 2 heartbeat intervals. Each joiner is stopped, and declared dead
// by every member, before the next join, so each join meets the same
// 20-node cluster at rest.
func BenchmarkJoinSeenLive20(b *testing.B) {
	const n = 20
	tb := quiet(b)
	c := startStaggered(tb, n, Options{})
	Eventually(tb, time.Minute, c.Converged, "%d nodes did not converge", n)
	hb := c.Config(0).Membership.Heartbeat

	var seen, afterStart durations
	for b.Loop() {
		for range joinsPerRound {
			Eventually(tb, time.Minute, c.Converged, "cluster did not settle before a join")
			t0 := time.Now()
			i := c.Add()
			up := time.Now()
			id := c.Node(i).ID()
			last := waitSeenLive(tb, c, n, id, 30*time.Second)
			seen = append(seen, last.Sub(t0))
			afterStart = append(afterStart, last.Sub(up))
			b.Logf("join %d: seen live by all %d members after %.1f ms (node start took %.1f ms)",
				len(seen), n, ms(last.Sub(t0)), ms(up.Sub(t0)))
			c.Stop(i)
			Eventually(tb, time.Minute, func() bool {
				for j := range n {
					if m, ok := c.Node(j).View().Get(id); ok && m.State != gossip.Dead {
						return false
					}
				}
				return true
			}, "stopped joiner not declared dead")
		}
	}

	seen, afterStart = seen.sorted(), afterStart.sorted()
	med, worst := seen.quantile(0.5), seen.quantile(1)
	b.ReportMetric(ms(med), "median-ms")
	b.ReportMetric(ms(worst), "max-ms")
	b.ReportMetric(float64(med)/float64(hb), "median-heartbeat-intervals")
	b.ReportMetric(float64(worst)/float64(hb), "max-heartbeat-intervals")
	b.Logf("%d joins, heartbeat %v: from Add median %.1f ms, max %.1f ms; from node started median %.1f ms, max %.1f ms",
		len(seen), hb, ms(med), ms(worst), ms(afterStart.quantile(0.5)), ms(afterStart.quantile(1)))
}

// waitSeenLive polls the first n nodes every 5 ms until each has id live in
// its view, and returns when the last of them was first seen to.
func waitSeenLive(tb TB, c *Cluster, n int, id peer.ID, timeout time.Duration) time.Time {
	tb.Helper()
	pending := make(map[int]bool, n)
	for j := range n {
		pending[j] = true
	}
	var last time.Time
	deadline := time.Now().Add(timeout)
	for len(pending) > 0 {
		for j := range pending {
			if m, ok := c.Node(j).View().Get(id); ok && m.State == gossip.Live {
				last = time.Now()
				delete(pending, j)
			}
		}
		if len(pending) == 0 {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after %v: %d of %d members do not see the joiner live", timeout, len(pending), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return last
}

// idleNodes is the cluster size of BenchmarkIdleNode.
const idleNodes = 10

// BenchmarkIdleNode: the live heap and goroutines one idle node costs, in a
// converged cluster of idleNodes that has idled for five heartbeats. Each
// iteration starts and stops its own cluster.
func BenchmarkIdleNode(b *testing.B) {
	tb := quiet(b)
	var heap, goroutines float64
	for b.Loop() {
		heap0, g0 := heapAndGoroutines()
		c := StartCluster(tb, idleNodes, Options{})
		Eventually(tb, time.Minute, c.Converged, "%d nodes did not converge", idleNodes)
		time.Sleep(5 * c.Config(0).Membership.Heartbeat)
		heap1, g1 := heapAndGoroutines()
		if err := c.Close(); err != nil {
			b.Logf("cluster close: %v", err)
		}
		b.Logf("%d idle nodes: heap %d → %d bytes, goroutines %d → %d", idleNodes, heap0, heap1, g0, g1)
		heap += (float64(heap1) - float64(heap0)) / idleNodes
		goroutines += float64(g1-g0) / idleNodes
	}
	b.ReportMetric(heap/float64(b.N), "heap-B/node")
	b.ReportMetric(goroutines/float64(b.N), "goroutines/node")
}
