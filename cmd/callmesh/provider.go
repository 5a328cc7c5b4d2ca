package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/callmesh/callmesh/itest/sim"
	"github.com/spf13/cobra"
)

func newProviderCmd() *cobra.Command {
	var cfgPath, logLevel string
	cmd := &cobra.Command{
		Use:   "provider --config sp.yaml",
		Short: "Run an emulated SIP provider until SIGINT or SIGTERM",
		Long: `Run an emulated SIP service provider for tests, demos and rehearsals: a
stateful proxy that honours preloaded Route sets (mode: proxy) or a trunk that
routes on the Request-URI and may challenge callers (mode: trunk). Either may
answer the numbers it terminates as the far end, anchor media at its own relay
with a seeded impairment, and fail on command through its admin endpoint
(down, slow, error_rate, degraded).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfgPath == "" {
				return usageErr("provider: --config is required")
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return usageErr("provider: --log-level: %v", err)
			}
			cfg, err := sim.LoadProviderConfig(cfgPath)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			p, err := sim.StartProvider(cfg, log)
			if err != nil {
				if errors.Is(err, sim.ErrProviderConfig) {
					return &exitError{code: 2, err: err}
				}
				return err
			}
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
			defer signal.Stop(sig)
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "provider %s (%s)\n", p.ID(), p.Role())
			fmt.Fprintf(out, "access point (udp): %s\n", p.AccessPoint())
			fmt.Fprintf(out, "access point (tcp): %s\n", p.AccessPointTCP())
			if u := p.AdminURL(); u != "" {
				fmt.Fprintf(out, "admin: %s\n", u)
			}
			s := <-sig
			log.Info("signal received, stopping", "signal", s.String())
			if err := p.Close(); err != nil {
				return fmt.Errorf("provider: shutdown: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "provider configuration file (required)")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	return cmd
}
