// Package itest is the in-process federation harness: real nodes with real
// libp2p on 127.0.0.1, port 0 everywhere, temporary data directories. Tests
// and benchmarks of the whole system start here.
package itest

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/callmesh/callmesh/gossip"
	"github.com/callmesh/callmesh/node"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TB is the part of testing.TB the harness needs; the demo passes its own.
type TB interface {
	Helper()
	TempDir() string
	Cleanup(func())
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
}

// Options shape a cluster.
type Options struct {
	// Configure is called on each node's config before it starts.
	Configure func(i int, cfg *node.Config)
	// Logger receives the nodes' logs (default: discard).
	Logger *slog.Logger
	// Gossip overrides the bus settings (default: gossip.FastConfig).
	Gossip *gossip.Config
	// FederationKey, when set, is written to a file that every node uses.
	FederationKey bool
}

// Cluster is a running in-process federation.
type Cluster struct {
	tb    TB
	opts  Options
	dir   string
	psk   string
	mu    sync.Mutex
	cfgs  []node.Config
	nodes []*node.Node // nil while stopped
}

// StartCluster starts n nodes; node 0 is every other node's bootstrap peer.
// Everything is stopped by the test's cleanup.
func StartCluster(tb TB, n int, opts Options) *Cluster {
	tb.Helper()
	c := &Cluster{tb: tb, opts: opts, dir: tb.TempDir()}
	if opts.FederationKey {
		c.psk = filepath.Join(c.dir, "federation.key")
		if err := node.CreateFederationKey(c.psk); err != nil {
			tb.Fatalf("federation key: %v", err)
		}
	}
	tb.Cleanup(c.Close)
	for i := 0; i < n; i++ {
		c.Add()
	}
	return c
}

// NodeConfig returns a fresh config for a test node with its identity
// created under dir: loopback, port 0, fast timers, small-memory store.
func NodeConfig(name, dir string) (node.Config, error) {
	cfg := node.DefaultConfig()
	cfg.Name = name
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Identity = filepath.Join(dir, "identity.key")
	cfg.SIP = "127.0.0.1:0"
	cfg.Admin = "127.0.0.1:0"
	cfg.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Store.SmallMemory = true
	cfg.FastTimers()
	if _, err := node.CreateIdentity(cfg.Identity); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// Add starts one more node, bootstrapped through node 0, and returns its index.
func (c *Cluster) Add() int {
	c.tb.Helper()
	c.mu.Lock()
	i := len(c.cfgs)
	c.mu.Unlock()
	name := fmt.Sprintf("node%d", i)
	cfg, err := NodeConfig(name, filepath.Join(c.dir, name))
	if err != nil {
		c.tb.Fatalf("%s: %v", name, err)
	}
	cfg.P2P.FederationKey = c.psk
	if i > 0 {
		if n0 := c.Node(0); n0 != nil {
			cfg.P2P.Bootstrap = n0.P2PAddrs()
		}
	}
	if c.opts.Configure != nil {
		c.opts.Configure(i, &cfg)
	}
	c.mu.Lock()
	c.cfgs = append(c.cfgs, cfg)
	c.nodes = append(c.nodes, nil)
	c.mu.Unlock()
	c.Start(i)
	return i
}

// Start (re)starts node i with its config and identity.
func (c *Cluster) Start(i int) *node.Node {
	c.tb.Helper()
	c.mu.Lock()
	cfg := c.cfgs[i]
	running := c.nodes[i] != nil
	c.mu.Unlock()
	if running {
		c.tb.Fatalf("node %d already running", i)
	}
	logger := c.opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	gc := gossip.FastConfig()
	if c.opts.Gossip != nil {
		gc = *c.opts.Gossip
	}
	n, err := node.Start(cfg, node.WithLogger(logger), node.WithGossipConfig(gc))
	if err != nil {
		c.tb.Fatalf("start %s: %v", cfg.Name, err)
	}
	c.mu.Lock()
	c.nodes[i] = n
	c.mu.Unlock()
	return n
}

// Stop closes node i (its data and identity stay, for Start).
func (c *Cluster) Stop(i int) {
	c.tb.Helper()
	c.mu.Lock()
	n := c.nodes[i]
	c.nodes[i] = nil
	c.mu.Unlock()
	if n != nil {
		if err := n.Close(); err != nil {
			c.tb.Logf("stop %s: %v", n.Name(), err)
		}
	}
}

// Node returns node i, or nil while it is stopped.
func (c *Cluster) Node(i int) *node.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i]
}

// Config returns node i's config.
func (c *Cluster) Config(i int) node.Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfgs[i]
}

// Len returns the number of nodes, running or stopped.
func (c *Cluster) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cfgs)
}

// Running returns the running nodes.
func (c *Cluster) Running() []*node.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*node.Node
	for _, n := range c.nodes {
		if n != nil {
			out = append(out, n)
		}
	}
	return out
}

// Close stops every node, in parallel.
func (c *Cluster) Close() {
	var wg sync.WaitGroup
	for i := 0; i < c.Len(); i++ {
		wg.Add(1)
		go func() { defer wg.Done(); c.Stop(i) }()
	}
	wg.Wait()
}

// StateOf returns how node at index from sees node at index of: "live",
// "suspect", "dead" or "" when it is not in the view.
func (c *Cluster) StateOf(from, of int) string {
	a, b := c.Node(from), c.Node(of)
	if a == nil {
		return ""
	}
	id := c.ID(of)
	if b != nil {
		id = b.ID()
	}
	m, ok := a.View().Get(id)
	if !ok {
		return ""
	}
	return m.State.String()
}

// ID returns node i's peer ID, running or not.
func (c *Cluster) ID(i int) peer.ID {
	c.mu.Lock()
	cfg := c.cfgs[i]
	c.mu.Unlock()
	_, id, err := node.LoadIdentity(cfg.Identity)
	if err != nil {
		c.tb.Fatalf("identity of node %d: %v", i, err)
	}
	return id
}

// Converged reports whether every running node sees every other running
// node live.
func (c *Cluster) Converged() bool {
	nodes := c.Running()
	for _, a := range nodes {
		if len(a.View().Live()) < len(nodes)-1 {
			return false
		}
		for _, b := range nodes {
			if a == b {
				continue
			}
			m, ok := a.View().Get(b.ID())
			if !ok || m.State != gossip.Live {
				return false
			}
		}
	}
	return true
}

// Eventually polls cond every 20 ms until it holds or timeout passes, then
// fails the test with msg.
func Eventually(tb TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("after %s: "+msg, append([]any{timeout}, args...)...)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// DebugLogger returns a logger to standard error at debug level, for a test
// being investigated (CALLMESH_TEST_LOG=1).
func DebugLogger() *slog.Logger {
	if os.Getenv("CALLMESH_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
