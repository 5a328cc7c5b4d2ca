// Package itest holds the federation's end-to-end tests and benchmarks, and
// the harness they use: StartCluster runs a local federation (package
// itest/sim) inside a test and fails the test on any setup error.
package itest

import (
	"log/slog"
	"os"
	"time"

	"github.com/callmesh/callmesh/itest/sim"
	"github.com/callmesh/callmesh/node"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TB is the part of testing.TB the harness needs.
type TB interface {
	Helper()
	TempDir() string
	Cleanup(func())
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
}

// Options shape a cluster; see sim.Options.
type Options = sim.Options

// Cluster is a local federation bound to a test.
type Cluster struct {
	*sim.Federation
	tb TB
}

// StartCluster starts n nodes; node 0 is every other node's bootstrap peer.
// The test's cleanup stops them all.
func StartCluster(tb TB, n int, opts Options) *Cluster {
	tb.Helper()
	f, err := sim.New(tb.TempDir(), opts)
	if err != nil {
		tb.Fatalf("federation: %v", err)
	}
	c := &Cluster{Federation: f, tb: tb}
	tb.Cleanup(func() {
		if err := f.Close(); err != nil {
			tb.Logf("cluster close: %v", err)
		}
	})
	for range n {
		c.Add()
	}
	return c
}

// Add starts one more node and returns its index.
func (c *Cluster) Add() int {
	c.tb.Helper()
	i, err := c.Federation.Add()
	if err != nil {
		c.tb.Fatalf("add node: %v", err)
	}
	return i
}

// Start restarts node i.
func (c *Cluster) Start(i int) *node.Node {
	c.tb.Helper()
	n, err := c.Federation.Start(i)
	if err != nil {
		c.tb.Fatalf("%v", err)
	}
	return n
}

// Stop closes node i.
func (c *Cluster) Stop(i int) {
	c.tb.Helper()
	if err := c.Federation.Stop(i); err != nil {
		c.tb.Logf("stop node %d: %v", i, err)
	}
}

// ID returns node i's peer ID.
func (c *Cluster) ID(i int) peer.ID {
	c.tb.Helper()
	id, err := c.Federation.ID(i)
	if err != nil {
		c.tb.Fatalf("identity of node %d: %v", i, err)
	}
	return id
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

// DebugLogger returns a debug logger to standard error when
// CALLMESH_TEST_LOG is set, for a test under investigation; else nil.
func DebugLogger() *slog.Logger {
	if os.Getenv("CALLMESH_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
