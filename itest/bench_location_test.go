package itest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/callmesh/callmesh/gossip"
	"github.com/callmesh/callmesh/node"
	"github.com/emiago/sipgo/sip"
)

const (
	// locateNodes is the federation size of BenchmarkLocate20.
	locateNodes = 20
	// locateUsers are registered round-robin over the nodes, user i at node
	// i mod locateNodes, each with an account homed at the node it
	// registers at.
	locateUsers = 200
	// locatePairsPerUser is how many (user, node) pairs one measured round
	// looks up per user, from nodes that are neither the user's node nor the
	// node that waited for the user's record.
	locatePairsPerUser = 3
	// locateMinDHTPeers is the DHT routing table size every node must reach
	// before users register.
	locateMinDHTPeers = 10
	// locateCacheTTL is a little over Locate's cache lifetime (1 s): a pair
	// looked up longer ago than this is cold again.
	locateCacheTTL = 1100 * time.Millisecond
	// locateTimeout bounds one Locate call.
	locateTimeout = 10 * time.Second
)

// BenchmarkLocate20: Node.Locate of users registered elsewhere in a 20-node
// federation on production timers, from nodes that do not hold the user's
// registration. A cold lookup is the first one of a (user, node) pair, or
// the first after Locate's cache expired, and goes to the DHT; a warm lookup
// repeats it at once and is served from the cache. A lookup that fails or
// names another node than the one the user registered at is a failure; the
// count of failures should be 0.
func BenchmarkLocate20(b *testing.B) {
	const n = locateNodes
	tb := quiet(b)
	start := time.Now()
	gc := gossip.DefaultConfig()
	c := startStaggered(tb, n, Options{Configure: productionTimers, Gossip: &gc})
	Eventually(tb, time.Minute, c.Converged, "%d nodes did not converge", n)
	for i := range n {
		Eventually(tb, time.Minute, func() bool { return c.Node(i).DHT().RoutingTable().Size() >= locateMinDHTPeers },
			"DHT routing table of node%d below %d peers", i, locateMinDHTPeers)
	}
	b.Logf("%d nodes converged, DHT routing tables ≥ %d peers, after %v",
		n, locateMinDHTPeers, time.Since(start).Round(time.Millisecond))

	users := registerLocateUsers(tb, c, locateUsers)
	waitLocated(tb, c, users, 30*time.Second)
	b.Logf("%d users registered over SIP and located from another node after %v",
		len(users), time.Since(start).Round(time.Millisecond))

	var st locateStats
	last := make(map[locatePair]time.Time) // end of the latest lookup of each pair
	round := 0
	for b.Loop() {
		st.add(locateRound(c, users, round, last))
		round++
	}

	cold, warm := st.cold.sorted(), st.warm.sorted()
	b.ReportMetric(ms(cold.quantile(0.50)), "cold-p50-ms")
	b.ReportMetric(ms(cold.quantile(0.99)), "cold-p99-ms")
	b.ReportMetric(ms(cold.quantile(1)), "cold-max-ms")
	b.ReportMetric(us(warm.quantile(0.50)), "warm-p50-us")
	b.ReportMetric(us(warm.quantile(0.99)), "warm-p99-us")
	b.ReportMetric(us(warm.quantile(1)), "warm-max-us")
	b.ReportMetric(float64(st.lookups), "lookups")
	b.ReportMetric(float64(st.failures), "failures")
	b.Logf("%d users, %d cold and %d warm lookups, %d failed; cold p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms; "+
		"warm p50 %.1f µs, p99 %.1f µs, max %.1f µs",
		len(users), len(st.cold), len(st.warm), st.failures,
		ms(cold.quantile(0.50)), ms(cold.quantile(0.90)), ms(cold.quantile(0.99)), ms(cold.quantile(1)),
		us(warm.quantile(0.50)), us(warm.quantile(0.99)), us(warm.quantile(1)))
	if st.firstFailure != "" {
		b.Logf("first failure: %s", st.firstFailure)
	}
}

// productionTimers sets the membership timers and the DHT republish
// interval to node.DefaultConfig's, so that the background traffic of the
// federation is that of a deployment: heartbeats every second, and no
// republishing of every account's and registration's record in the middle
// of the run.
func productionTimers(_ int, cfg *node.Config) {
	def := node.DefaultConfig()
	cfg.Membership = def.Membership
	cfg.DHT.Republish = def.DHT.Republish
}

// us converts a duration to fractional microseconds, for ReportMetric.
func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// locateUser is a registered user: the node holding its registration, and
// the node that waited for its location record.
type locateUser struct {
	name, aor string
	home      int
	watcher   int
}

type locatePair struct{ user, node int }

// registerLocateUsers creates count accounts, user i on node i mod the
// cluster size, and registers each over SIP at its own node.
func registerLocateUsers(tb testing.TB, c *Cluster, count int) []locateUser {
	tb.Helper()
	n := c.Len()
	client := newSIPClient(tb)

	users := make([]locateUser, count)
	for i := range users {
		home := i % n
		nd := c.Node(home)
		domain := nd.Config().Domain
		name, password := fmt.Sprintf("user%03d", i), fmt.Sprintf("secret%03d", i)
		addUser(tb, nd, name, password)
		contact := fmt.Sprintf("<sip:%s@127.0.0.1:%d>", name, 6000+i)
		if res := client.register(tb, nd.SIPAddr(), domain, name, password, 3600, contact); res.StatusCode != sip.StatusOK {
			tb.Fatalf("REGISTER %s at node%d: %d %s", name, home, res.StatusCode, res.Reason)
		}
		users[i] = locateUser{name: name, aor: name + "@" + domain, home: home, watcher: (home + 1) % n}
	}
	return users
}

// waitLocated waits until each user's watcher node locates the user at its
// node and finds its account: both its location record and its user-home
// record are then in the DHT, and the puts that registering started are
// over before anything is measured. Only the watchers have looked the users
// up, so every other (user, node) pair stays cold. timeout applies to each
// user.
func waitLocated(tb TB, c *Cluster, users []locateUser, timeout time.Duration) {
	tb.Helper()
	for _, u := range users {
		w, want := c.Node(u.watcher), c.Node(u.home).ID()
		Eventually(tb, timeout, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), locateTimeout)
			defer cancel()
			loc, err := w.Locate(ctx, u.aor)
			if err != nil || loc.Node != want {
				return false
			}
			a, found, err := w.Account(ctx, u.name)
			return err == nil && found && a.Home == want.String()
		}, "node%d did not locate %s at node%d", u.watcher, u.aor, u.home)
	}
}

// locateStats gathers the lookups of every measured round.
type locateStats struct {
	cold, warm   durations
	lookups      int
	failures     int
	firstFailure string
}

func (s *locateStats) add(r locateStats) {
	s.cold = append(s.cold, r.cold...)
	s.warm = append(s.warm, r.warm...)
	s.lookups += r.lookups
	s.failures += r.failures
	if s.firstFailure == "" {
		s.firstFailure = r.firstFailure
	}
}

func (s *locateStats) fail(format string, args ...any) {
	s.failures++
	if s.firstFailure == "" {
		s.firstFailure = fmt.Sprintf(format, args...)
	}
}

// locateRound looks up every user from locatePairsPerUser nodes, one lookup
// at a time: a cold lookup, then at once a warm one of the same pair. The
// nodes are neither the user's node nor its watcher, and move on from round
// to round, so that the first rounds use pairs never looked up before; a
// pair looked up less than locateCacheTTL ago is waited for. last holds the
// end of the latest lookup of each pair. Failed lookups are timed too.
func locateRound(c *Cluster, users []locateUser, round int, last map[locatePair]time.Time) locateStats {
	n := c.Len()
	var st locateStats
	for k := range locatePairsPerUser {
		// The candidates are the n-2 nodes after the watcher, in ring order.
		j := (round*locatePairsPerUser + k) % (n - 2)
		for ui, u := range users {
			from := (u.watcher + 1 + j) % n
			p := locatePair{ui, from}
			if t, ok := last[p]; ok {
				if wait := locateCacheTTL - time.Since(t); wait > 0 {
					time.Sleep(wait)
				}
			}
			nd, want := c.Node(from), c.Node(u.home).ID()
			lookup := func(kind string, into *durations) {
				ctx, cancel := context.WithTimeout(context.Background(), locateTimeout)
				defer cancel()
				t0 := time.Now()
				loc, err := nd.Locate(ctx, u.aor)
				*into = append(*into, time.Since(t0))
				st.lookups++
				switch {
				case err != nil:
					st.fail("%s lookup of %s from node%d: %v", kind, u.aor, from, err)
				case loc.Node != want:
					st.fail("%s lookup of %s from node%d: located at %s (%s), registered at node%d", kind, u.aor, from, loc.Name, loc.Node, u.home)
				}
			}
			lookup("cold", &st.cold)
			lookup("warm", &st.warm)
			last[p] = time.Now()
		}
	}
	return st
}
