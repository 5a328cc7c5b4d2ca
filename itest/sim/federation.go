// Package sim runs a local federation in one process: real nodes with real
// libp2p on 127.0.0.1, port 0 everywhere, data under one directory. The test
// harness (package itest) and `callmesh demo` both stand on it.
package sim

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/callmesh/callmesh/gossip"
	"github.com/callmesh/callmesh/node"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Options shape a federation.
type Options struct {
	// Configure is called on each node's config before it first starts.
	Configure func(i int, cfg *node.Config)
	// Logger receives the nodes' logs (default: discard).
	Logger *slog.Logger
	// Gossip overrides the bus settings (default: gossip.FastConfig).
	Gossip *gossip.Config
	// FederationKey, when set, makes a pre-shared key that every node uses.
	FederationKey bool
}

// Federation is a running local federation. Its methods are safe for
// concurrent use.
type Federation struct {
	dir  string
	opts Options
	psk  string

	mu    sync.Mutex
	cfgs  []node.Config
	nodes []*node.Node // nil while stopped
}

// New prepares an empty federation whose nodes keep their data under dir.
func New(dir string, opts Options) (*Federation, error) {
	f := &Federation{dir: dir, opts: opts}
	if opts.FederationKey {
		f.psk = filepath.Join(dir, "federation.key")
		if err := node.CreateFederationKey(f.psk); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// NodeConfig returns the config of a local node with its identity created
// under dir: loopback, port 0, fast timers, small-memory store.
func NodeConfig(name, dir string) (node.Config, error) {
	cfg := node.LocalConfig(name, dir)
	if _, err := node.CreateIdentity(cfg.Identity); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// FederationKeyFile returns the path of the federation's pre-shared key, or
// "" without one.
func (f *Federation) FederationKeyFile() string { return f.psk }

// Add creates and starts one more node, bootstrapped through node 0, and
// returns its index.
func (f *Federation) Add() (int, error) {
	f.mu.Lock()
	i := len(f.cfgs)
	f.mu.Unlock()
	name := fmt.Sprintf("node%d", i)
	cfg, err := NodeConfig(name, filepath.Join(f.dir, name))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	cfg.P2P.FederationKey = f.psk
	if i > 0 {
		if n0 := f.Node(0); n0 != nil {
			cfg.P2P.Bootstrap = n0.P2PAddrs()
		}
	}
	if f.opts.Configure != nil {
		f.opts.Configure(i, &cfg)
	}
	f.mu.Lock()
	f.cfgs = append(f.cfgs, cfg)
	f.nodes = append(f.nodes, nil)
	f.mu.Unlock()
	if _, err := f.Start(i); err != nil {
		return i, err
	}
	return i, nil
}

// Start (re)starts node i with its config, identity and data.
func (f *Federation) Start(i int) (*node.Node, error) {
	f.mu.Lock()
	cfg := f.cfgs[i]
	running := f.nodes[i] != nil
	f.mu.Unlock()
	if running {
		return nil, fmt.Errorf("%s already running", cfg.Name)
	}
	logger := f.opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	gc := gossip.FastConfig()
	if f.opts.Gossip != nil {
		gc = *f.opts.Gossip
	}
	n, err := node.Start(cfg, node.WithLogger(logger), node.WithGossipConfig(gc))
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", cfg.Name, err)
	}
	f.mu.Lock()
	f.nodes[i] = n
	f.mu.Unlock()
	return n, nil
}

// Stop closes node i; its data and identity stay for Start.
func (f *Federation) Stop(i int) error {
	f.mu.Lock()
	n := f.nodes[i]
	f.nodes[i] = nil
	f.mu.Unlock()
	if n == nil {
		return nil
	}
	return n.Close()
}

// Node returns node i, or nil while it is stopped.
func (f *Federation) Node(i int) *node.Node {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nodes[i]
}

// Config returns node i's config.
func (f *Federation) Config(i int) node.Config {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cfgs[i]
}

// Len returns the number of nodes, running or stopped.
func (f *Federation) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.cfgs)
}

// Running returns the running nodes.
func (f *Federation) Running() []*node.Node {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*node.Node
	for _, n := range f.nodes {
		if n != nil {
			out = append(out, n)
		}
	}
	return out
}

// Close stops every node, in parallel.
func (f *Federation) Close() error {
	var wg sync.WaitGroup
	errs := make([]error, f.Len())
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = f.Stop(i) }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// ID returns node i's peer ID, running or not.
func (f *Federation) ID(i int) (peer.ID, error) {
	if n := f.Node(i); n != nil {
		return n.ID(), nil
	}
	_, id, err := node.LoadIdentity(f.Config(i).Identity)
	return id, err
}

// StateOf returns how node from sees node of: "live", "suspect", "dead", or
// "" when from is stopped or does not know of.
func (f *Federation) StateOf(from, of int) string {
	a := f.Node(from)
	id, err := f.ID(of)
	if a == nil || err != nil {
		return ""
	}
	m, ok := a.View().Get(id)
	if !ok {
		return ""
	}
	return m.State.String()
}

// Converged reports whether every running node sees every other running
// node live.
func (f *Federation) Converged() bool {
	nodes := f.Running()
	for _, a := range nodes {
		v := a.View()
		for _, b := range nodes {
			if a == b {
				continue
			}
			if m, ok := v.Get(b.ID()); !ok || m.State != gossip.Live {
				return false
			}
		}
	}
	return true
}
