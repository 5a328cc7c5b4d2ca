package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/callmesh/callmesh/node"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spf13/cobra"
)

// serverGCPercent is the garbage collector's target for `callmesh run`
// when GOGC is not set: every SIP message allocates, and at the runtime's
// default of 100 a node under call load spent about a fifth more CPU per
// call than at 200 (BENCHMARKS.md). Higher targets did not do better: the
// heap then grows through memory never touched before, and the page
// faults cost what the collector saved. So that this never runs a host out
// of memory, the collector also works harder near serverMemoryShare of the
// host's memory unless GOMEMLIMIT is set.
const (
	serverGCPercent   = 200
	serverMemoryShare = 4 // a quarter
)

func serverGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(serverGCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		if total := hostMemory(); total > 0 {
			debug.SetMemoryLimit(int64(total / serverMemoryShare))
		}
	}
}

func peerID(key crypto.PrivKey) (peer.ID, error) { return peer.IDFromPrivateKey(key) }

func newRunCmd() *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "run --config DIR/node.yaml",
		Short: "Run a node until SIGINT or SIGTERM",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfgPath == "" {
				return usageErr("run: --config is required")
			}
			cfg, err := node.LoadConfig(cfgPath)
			if err != nil {
				return err
			}
			log := newLogger(cfg.Log)
			serverGC()
			n, err := node.Start(cfg, node.WithLogger(log))
			if err != nil {
				return err
			}
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
			s := <-sig
			log.Info("signal received, draining calls", "signal", s.String(), "grace", cfg.Calls.DrainGrace)
			// Drain: refuse new calls, let current ones finish within the
			// grace period; a second signal cuts it short.
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				select {
				case <-sig:
					log.Info("second signal: ending calls now")
					cancel()
				case <-ctx.Done():
				}
			}()
			n.Drain(ctx)
			cancel()
			signal.Stop(sig)
			log.Info("shutting down")
			if err := n.Close(); err != nil {
				return fmt.Errorf("shutdown: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "node configuration file (required)")
	return cmd
}

func newLogger(c node.LogConfig) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level)) // validated with the config
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
