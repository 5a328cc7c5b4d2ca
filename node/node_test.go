package node

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callmesh/callmesh/gossip"
	"github.com/callmesh/callmesh/node/store"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// converge bounds every wait for a distributed condition. The fast timers
// declare a peer dead within a few seconds; the bound leaves room for a
// loaded machine and the race detector, and a test that meets its condition
// early returns early.
const converge = 45 * time.Second

// testNodeConfig returns the config of a loopback node on port 0 with fast
// timers and a small store, its identity created under dir.
func testNodeConfig(t *testing.T, name, dir string) Config {
	t.Helper()
	cfg := LocalConfig(name, dir)
	if _, err := CreateIdentity(cfg.Identity); err != nil {
		t.Fatalf("CreateIdentity: %v", err)
	}
	return cfg
}

// startNode starts a node and closes it when the test ends (Close is safe
// to call again from the test itself).
func startNode(t *testing.T, cfg Config) *Node {
	t.Helper()
	n, err := Start(cfg, WithGossipConfig(gossip.FastConfig()))
	if err != nil {
		t.Fatalf("Start %s: %v", cfg.Name, err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("Close %s: %v", cfg.Name, err)
		}
	})
	return n
}

// waitFor polls cond until it holds or converge passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(converge)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting until %s", converge, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stateOf returns how from sees id: its state, or "absent".
func stateOf(from *Node, id peer.ID) string {
	m, ok := from.View().Get(id)
	if !ok {
		return "absent"
	}
	return m.State.String()
}

// seesLive reports whether from sees id live.
func seesLive(from *Node, id peer.ID) bool {
	m, ok := from.View().Get(id)
	return ok && m.State == gossip.Live
}

// adminClient is an HTTP client whose idle connections are closed when the
// test ends, so that they are not taken for leaked goroutines.
func adminClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func get(t *testing.T, c *http.Client, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, string(body), resp.Header
}

func TestNodeAdminAPI(t *testing.T) {
	cfg := testNodeConfig(t, "alpha", t.TempDir())
	n := startNode(t, cfg)
	c := adminClient(t)
	base := n.AdminURL()
	if !strings.HasPrefix(base, "http://127.0.0.1:") || strings.HasSuffix(base, ":0") {
		t.Fatalf("AdminURL = %q, want the bound loopback address", base)
	}

	t.Run("healthz", func(t *testing.T) {
		code, body, _ := get(t, c, base+"/healthz")
		if code != http.StatusOK || strings.TrimSpace(body) != "ok" {
			t.Fatalf("/healthz = %d %q, want 200 ok", code, body)
		}
	})

	t.Run("node", func(t *testing.T) {
		code, body, hdr := get(t, c, base+"/api/v1/node")
		if code != http.StatusOK {
			t.Fatalf("/api/v1/node = %d %q", code, body)
		}
		if ct := hdr.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q, want application/json", ct)
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal([]byte(body), &raw); err != nil {
			t.Fatalf("decode %q: %v", body, err)
		}
		for _, field := range []string{"id", "name", "sip", "admin", "p2p", "version", "incarnation", "started", "capacity"} {
			if _, ok := raw[field]; !ok {
				t.Errorf("/api/v1/node lacks %q: %s", field, body)
			}
		}
		var info NodeInfo
		if err := json.Unmarshal([]byte(body), &info); err != nil {
			t.Fatal(err)
		}
		if info.ID != n.ID().String() || info.Name != "alpha" || info.SIP != n.SIPAddr() || strings.HasSuffix(info.SIP, ":0") || info.Admin != base {
			t.Errorf("node info = %+v; want id %s, name alpha, sip %s, admin %s", info, n.ID(), n.SIPAddr(), base)
		}
		if info.Version != Version || info.Incarnation != n.Incarnation() || info.Capacity != cfg.Capacity {
			t.Errorf("node info = %+v; want version %s, incarnation %d, capacity %d", info, Version, n.Incarnation(), cfg.Capacity)
		}
		if len(info.P2P) == 0 {
			t.Fatalf("node info lists no p2p addresses: %s", body)
		}
		for _, a := range info.P2P {
			ai, err := peer.AddrInfoFromString(a)
			if err != nil || ai.ID != n.ID() {
				t.Errorf("p2p address %q is not a dialable address of %s (%v)", a, n.ID(), err)
			}
		}
	})

	t.Run("peers", func(t *testing.T) {
		code, body, _ := get(t, c, base+"/api/v1/peers")
		if code != http.StatusOK {
			t.Fatalf("/api/v1/peers = %d %q", code, body)
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal([]byte(body), &raw); err != nil {
			t.Fatalf("decode %q: %v", body, err)
		}
		if got := strings.TrimSpace(string(raw["peers"])); got != "[]" {
			t.Fatalf(`/api/v1/peers "peers" = %s, want [] (not null): %s`, got, body)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		// The first heartbeat and tick run as the node starts; poll until
		// their series are exported.
		var body string
		waitFor(t, "the membership and gossip series are exported", func() bool {
			var code int
			code, body, _ = get(t, c, base+"/metrics")
			return code == http.StatusOK &&
				strings.Contains(body, "callmesh_membership_peers") &&
				strings.Contains(body, "callmesh_gossip_")
		})
		if !strings.Contains(body, `callmesh_membership_peers{state="live"} 0`) {
			t.Errorf("a lone node reports live peers:\n%s", grepLines(body, "callmesh_membership_peers"))
		}
		if !strings.Contains(body, "go_goroutines") {
			t.Error("/metrics lacks the Go runtime collector")
		}
	})

	t.Run("unknown path and method", func(t *testing.T) {
		if code, _, _ := get(t, c, base+"/api/v1/nope"); code != http.StatusNotFound {
			t.Errorf("unknown path = %d, want 404", code)
		}
		resp, err := c.Post(base+"/healthz", "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST /healthz = %d, want 405", resp.StatusCode)
		}
	})
}

// grepLines returns the lines of text containing s.
func grepLines(text, s string) string {
	var out []string
	for line := range strings.SplitSeq(text, "\n") {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

func TestNodeRunFileAndClose(t *testing.T) {
	cfg := testNodeConfig(t, "alpha", t.TempDir())
	n, err := Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	dataDir := cfg.Path(cfg.DataDir)
	ri, err := ReadRunFile(dataDir)
	if err != nil {
		n.Close()
		t.Fatalf("ReadRunFile while running: %v", err)
	}
	if ri.PID != os.Getpid() || ri.ID != n.ID().String() || ri.Name != "alpha" || ri.Admin != n.AdminURL() ||
		ri.SIP != n.SIPAddr() || !slices.Equal(ri.P2P, n.P2PAddrs()) {
		t.Errorf("run file = %+v, want pid %d, id %s, admin %s, p2p %v", ri, os.Getpid(), n.ID(), n.AdminURL(), n.P2PAddrs())
	}
	if _, err := os.Stat(filepath.Join(dataDir, RunFileName+".tmp")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("temporary run file left behind (stat: %v)", err)
	}
	admin := n.AdminURL()

	if err := n.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := ReadRunFile(dataDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadRunFile after Close = %v, want a not-exist error", err)
	}
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// The admin API is gone.
	c := adminClient(t)
	if resp, err := c.Get(admin + "/healthz"); err == nil {
		resp.Body.Close()
		t.Errorf("admin API still answers after Close: %d", resp.StatusCode)
	}
}

func TestReadRunFileErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadRunFile(dir); err == nil || !strings.Contains(err.Error(), "is the node running") {
		t.Errorf("ReadRunFile of an empty dir = %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, RunFileName), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRunFile(dir); err == nil || !strings.Contains(err.Error(), RunFileName) {
		t.Errorf("ReadRunFile of a corrupt file = %v, want an error naming it", err)
	}
}

func TestNodeRestartKeepsIdentity(t *testing.T) {
	cfg := testNodeConfig(t, "alpha", t.TempDir())
	_, want, err := LoadIdentity(cfg.Identity)
	if err != nil {
		t.Fatal(err)
	}
	var ids []peer.ID
	var incs []uint64
	for range 3 {
		n, err := Start(cfg)
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		ids = append(ids, n.ID())
		incs = append(incs, n.Incarnation())
		if err := n.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	for i, id := range ids {
		if id != want {
			t.Errorf("run %d: peer ID %s, want %s from the identity file", i, id, want)
		}
		if i > 0 && incs[i] <= incs[i-1] {
			t.Errorf("run %d: incarnation %d not above run %d's %d", i, incs[i], i-1, incs[i-1])
		}
	}
}

func TestNextIncarnationClockBackwards(t *testing.T) {
	s, err := store.Open(store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.UnixMilli(1_900_000_000_000)
	first, err := nextIncarnation(s, now)
	if err != nil {
		t.Fatal(err)
	}
	if first != uint64(now.UnixMilli()) {
		t.Errorf("first incarnation = %d, want the boot time %d", first, now.UnixMilli())
	}
	// Same instant, then a clock an hour behind: still strictly increasing.
	second, err := nextIncarnation(s, now)
	if err != nil {
		t.Fatal(err)
	}
	third, err := nextIncarnation(s, now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if second <= first || third <= second {
		t.Errorf("incarnations %d, %d, %d are not increasing", first, second, third)
	}
	later, err := nextIncarnation(s, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if later != uint64(now.Add(time.Hour).UnixMilli()) {
		t.Errorf("incarnation after the clock moved on = %d, want the boot time %d", later, now.Add(time.Hour).UnixMilli())
	}
}

func TestNodeDataDirInUse(t *testing.T) {
	cfg := testNodeConfig(t, "alpha", t.TempDir())
	first := startNode(t, cfg)

	second, err := Start(cfg)
	if err == nil {
		second.Close()
		t.Fatal("a second node started on a data directory in use")
	}
	if !strings.Contains(err.Error(), "in use") {
		t.Errorf("error %q does not say the directory is in use", err)
	}
	if !errors.Is(err, store.ErrLocked) {
		t.Errorf("error %q does not match store.ErrLocked", err)
	}
	// The failed start leaves the running node alone.
	if _, err := ReadRunFile(cfg.Path(cfg.DataDir)); err != nil {
		t.Errorf("run file of the running node: %v", err)
	}
	c := adminClient(t)
	if code, body, _ := get(t, c, first.AdminURL()+"/healthz"); code != http.StatusOK {
		t.Errorf("running node's /healthz = %d %q", code, body)
	}
}

func TestNodeMissingIdentity(t *testing.T) {
	dir := t.TempDir()
	cfg := testNodeConfig(t, "alpha", dir)
	cfg.Identity = filepath.Join(dir, "other.key")
	n, err := Start(cfg)
	if err == nil {
		n.Close()
		t.Fatal("Start without an identity succeeded")
	}
	if !errors.Is(err, ErrIdentity) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("error %q: want ErrIdentity saying the key is missing", err)
	}
	if _, err := os.Stat(cfg.Identity); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Start created an identity (stat: %v)", err)
	}
	if _, err := os.Stat(cfg.DataDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Start without an identity created the data directory (stat: %v)", err)
	}
}

func TestNodeStartInvalidConfig(t *testing.T) {
	cfg := testNodeConfig(t, "alpha", t.TempDir())
	cfg.Capacity = -1
	n, err := Start(cfg)
	if err == nil {
		n.Close()
		t.Fatal("Start with an invalid config succeeded")
	}
	checkFieldErr(t, err, "capacity")
}

func TestNodeStartBadFederationKey(t *testing.T) {
	dir := t.TempDir()
	cfg := testNodeConfig(t, "alpha", dir)
	cfg.P2P.FederationKey = filepath.Join(dir, "federation.key")
	if err := os.WriteFile(cfg.P2P.FederationKey, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := Start(cfg)
	if err == nil {
		n.Close()
		t.Fatal("Start with a bad federation key succeeded")
	}
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "p2p.federation_key") {
		t.Errorf("error %q: want ErrConfig naming p2p.federation_key", err)
	}
}

// TestNodeStartFailureReleases fails Start at two late steps and checks that
// each failure returns, and releases what was opened: the same data
// directory starts afterwards.
func TestNodeStartFailureReleases(t *testing.T) {
	t.Run("admin address taken", func(t *testing.T) {
		cfg := testNodeConfig(t, "alpha", t.TempDir())
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		cfg.Admin = ln.Addr().String()
		startFails(t, cfg, "admin listener")
		cfg.Admin = "127.0.0.1:0"
		startNode(t, cfg)
	})
	t.Run("run file not writable", func(t *testing.T) {
		cfg := testNodeConfig(t, "alpha", t.TempDir())
		// A directory where the run file's temporary copy goes makes the
		// last step of Start fail, after the admin server is serving.
		blocker := filepath.Join(cfg.Path(cfg.DataDir), RunFileName+".tmp")
		if err := os.MkdirAll(blocker, 0o700); err != nil {
			t.Fatal(err)
		}
		startFails(t, cfg, "run file")
		if err := os.Remove(blocker); err != nil {
			t.Fatal(err)
		}
		startNode(t, cfg)
	})
}

// startFails checks that Start(cfg) returns, in bounded time, an error
// containing want.
func startFails(t *testing.T, cfg Config, want string) {
	t.Helper()
	type result struct {
		n   *Node
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := Start(cfg)
		done <- result{n, err}
	}()
	select {
	case r := <-done:
		if r.err == nil {
			r.n.Close()
			t.Fatalf("Start succeeded, want an error containing %q", want)
		}
		if !strings.Contains(r.err.Error(), want) {
			t.Fatalf("Start error %q does not contain %q", r.err, want)
		}
	case <-time.After(converge):
		t.Fatalf("Start did not return within %v after failing (want an error containing %q)", converge, want)
	}
}

func TestNodesConverge(t *testing.T) {
	a := startNode(t, testNodeConfig(t, "alpha", t.TempDir()))
	cfgB := testNodeConfig(t, "bravo", t.TempDir())
	cfgB.P2P.Bootstrap = a.P2PAddrs()
	b := startNode(t, cfgB)

	waitFor(t, "alpha and bravo see each other live", func() bool {
		return seesLive(a, b.ID()) && seesLive(b, a.ID())
	})
	if m, _ := a.View().Get(b.ID()); m.Name != "bravo" || len(m.P2P) == 0 {
		t.Errorf("alpha's view of bravo = %+v, want its name and addresses", m)
	}

	// The admin API shows the peer.
	c := adminClient(t)
	code, body, _ := get(t, c, a.AdminURL()+"/api/v1/peers")
	if code != http.StatusOK {
		t.Fatalf("/api/v1/peers = %d %q", code, body)
	}
	var pr PeersResponse
	if err := json.Unmarshal([]byte(body), &pr); err != nil {
		t.Fatal(err)
	}
	if len(pr.Peers) != 1 || pr.Peers[0].ID != b.ID().String() || pr.Peers[0].Name != "bravo" || pr.Peers[0].State != "live" {
		t.Errorf("alpha's /api/v1/peers = %s, want bravo live", body)
	}

	// Each node publishes its signed record; the other finds it in the DHT.
	waitFor(t, "alpha finds bravo's node record in the DHT", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rec, err := a.LookupNode(ctx, b.ID())
		return err == nil && rec.Name == "bravo" && rec.Admin == b.AdminURL() && rec.Version == Version
	})

	if err := b.Close(); err != nil {
		t.Fatalf("Close bravo: %v", err)
	}
	waitFor(t, "alpha sees bravo dead", func() bool { return stateOf(a, b.ID()) == "dead" })
}

// TestNodeRejoinThroughKnownPeers restarts a node that has no bootstrap
// peer: it finds the federation again through the members it remembered.
func TestNodeRejoinThroughKnownPeers(t *testing.T) {
	cfgA := testNodeConfig(t, "alpha", t.TempDir())
	a := startNode(t, cfgA)
	cfgB := testNodeConfig(t, "bravo", t.TempDir())
	cfgB.P2P.Bootstrap = a.P2PAddrs()
	b := startNode(t, cfgB)

	waitFor(t, "alpha and bravo see each other live", func() bool {
		return seesLive(a, b.ID()) && seesLive(b, a.ID())
	})
	// Alpha has written bravo's addresses to its store.
	waitFor(t, "alpha remembers bravo", func() bool {
		known, err := knownPeers(a.Store())
		return err == nil && slices.ContainsFunc(known, func(ai peer.AddrInfo) bool { return ai.ID == b.ID() })
	})
	if err := a.Close(); err != nil {
		t.Fatalf("Close alpha: %v", err)
	}
	waitFor(t, "bravo sees alpha dead", func() bool { return stateOf(b, a.ID()) == "dead" })

	if len(cfgA.P2P.Bootstrap) != 0 {
		t.Fatal("alpha has a bootstrap list; the test needs none")
	}
	a2 := startNode(t, cfgA) // on a fresh port: bravo's redials of the old address miss it
	if a2.ID() != a.ID() {
		t.Fatalf("restarted alpha has peer ID %s, want %s", a2.ID(), a.ID())
	}
	waitFor(t, "restarted alpha and bravo see each other live", func() bool {
		return seesLive(a2, b.ID()) && seesLive(b, a2.ID())
	})
	if m, _ := b.View().Get(a2.ID()); m.Seq.Inc != a2.Incarnation() {
		t.Errorf("bravo's view of alpha carries incarnation %d, want the restarted run's %d", m.Seq.Inc, a2.Incarnation())
	}
}
