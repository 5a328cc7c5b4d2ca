package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/callmesh/callmesh/itest/sim"
	"github.com/spf13/cobra"
)

// demoNode is one node in the demo's JSON output.
type demoNode struct {
	Name  string   `json:"name"`
	ID    string   `json:"id"`
	SIP   string   `json:"sip"`
	Admin string   `json:"admin"`
	P2P   []string `json:"p2p"`
	Live  int      `json:"live_peers"`
}

// demoResult is what `callmesh demo --json` prints.
type demoResult struct {
	Nodes       []demoNode `json:"nodes"`
	ConvergedMS int64      `json:"converged_ms"` // -1 if the federation did not converge
	Failover    *failover  `json:"failover,omitempty"`
}

// failover is the demo's node-loss step: one node stops, the others must see
// it dead, then it returns with the same identity and must be live again.
type failover struct {
	Node        string `json:"node"`
	DeadAfterMS int64  `json:"dead_after_ms"`
	LiveAfterMS int64  `json:"live_after_ms"`
}

func newDemoCmd() *cobra.Command {
	var (
		nodes         int
		duration      time.Duration
		asJSON, keep  bool
		dir, logLevel string
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Start a local federation on loopback and show it converging",
		Long: `Start a local federation (real nodes, real libp2p on 127.0.0.1) with no
set-up, show the nodes finding each other, stop one node and show the others
declaring it dead, restart it and show it return, then print a summary.
With --keep the federation stays up until Ctrl-C.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if nodes < 2 {
				return usageErr("demo: --nodes must be at least 2")
			}
			if duration <= 0 {
				return usageErr("demo: --duration must be positive")
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return usageErr("demo: --log-level: %v", err)
			}
			logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			if dir == "" {
				d, err := os.MkdirTemp("", "callmesh-demo-")
				if err != nil {
					return fmt.Errorf("demo: %w", err)
				}
				defer os.RemoveAll(d)
				dir = d
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runDemo(ctx, cmd.OutOrStdout(), demoOptions{
				dir: dir, nodes: nodes, deadline: duration, json: asJSON, keep: keep, log: logger,
			})
		},
	}
	f := cmd.Flags()
	f.IntVar(&nodes, "nodes", 3, "number of nodes")
	f.DurationVar(&duration, "duration", 60*time.Second, "give up on a step that takes longer than this")
	f.BoolVar(&asJSON, "json", false, "print the result as one JSON object")
	f.BoolVar(&keep, "keep", false, "keep the federation running until interrupted")
	f.StringVar(&dir, "dir", "", "data directory (default: a temporary one, removed afterwards)")
	f.StringVar(&logLevel, "log-level", "error", "node log level on standard error")
	return cmd
}

type demoOptions struct {
	dir      string
	nodes    int
	deadline time.Duration
	json     bool
	keep     bool
	log      *slog.Logger
}

func runDemo(ctx context.Context, out io.Writer, o demoOptions) error {
	say := func(format string, args ...any) {
		if !o.json {
			fmt.Fprintf(out, format, args...)
		}
	}
	fed, err := sim.New(o.dir, sim.Options{Logger: o.log})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer fed.Close()

	say("starting %d nodes on 127.0.0.1\n", o.nodes)
	start := time.Now()
	for range o.nodes {
		i, err := fed.Add()
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		n := fed.Node(i)
		say("  %-6s %s  admin %s\n", n.Name(), n.ID(), n.AdminURL())
	}
	res := demoResult{ConvergedMS: -1}
	say("waiting for every node to see every other live\n")
	if err := waitProgress(ctx, out, !o.json, o.deadline, fed, fed.Converged); err != nil {
		return err
	}
	res.ConvergedMS = time.Since(start).Milliseconds()
	say("converged in %d ms\n", res.ConvergedMS)

	victim := o.nodes - 1
	name := fed.Config(victim).Name
	say("stopping %s\n", name)
	if err := fed.Stop(victim); err != nil {
		return fmt.Errorf("demo: stop %s: %w", name, err)
	}
	t0 := time.Now()
	seenDead := func() bool {
		for i := range victim {
			if fed.StateOf(i, victim) != "dead" {
				return false
			}
		}
		return true
	}
	if err := waitProgress(ctx, out, !o.json, o.deadline, fed, seenDead); err != nil {
		return err
	}
	fo := &failover{Node: name, DeadAfterMS: time.Since(t0).Milliseconds()}
	say("every node sees %s dead after %d ms; restarting it with the same identity\n", name, fo.DeadAfterMS)
	t0 = time.Now()
	if _, err := fed.Start(victim); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := waitProgress(ctx, out, !o.json, o.deadline, fed, fed.Converged); err != nil {
		return err
	}
	fo.LiveAfterMS = time.Since(t0).Milliseconds()
	res.Failover = fo
	say("%s live again everywhere after %d ms\n\n", name, fo.LiveAfterMS)

	for _, n := range fed.Running() {
		info := n.Info()
		res.Nodes = append(res.Nodes, demoNode{
			Name: info.Name, ID: info.ID, SIP: info.SIP, Admin: info.Admin, P2P: info.P2P, Live: len(n.View().Live()),
		})
	}
	if o.json {
		enc := json.NewEncoder(out)
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tPEER ID\tLIVE PEERS\tADMIN API")
		for _, n := range res.Nodes {
			fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\n", n.Name, n.ID, n.Live, o.nodes-1, n.Admin)
		}
		tw.Flush()
	}
	if !o.keep {
		return nil
	}
	say("\nfederation kept running; try: callmesh status --api %s\nCtrl-C to stop\n", res.Nodes[0].Admin)
	<-ctx.Done()
	return nil
}

// waitProgress polls cond until it holds, showing one progress line of each
// node's view (live/suspect/dead counts): redrawn in place on a terminal,
// printed when it changes otherwise.
func waitProgress(ctx context.Context, out io.Writer, show bool, limit time.Duration, fed *sim.Federation, cond func() bool) error {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	tty := isTerminal(out)
	last := ""
	for {
		done := cond()
		if line := viewLine(fed); show && line != last {
			if tty {
				fmt.Fprintf(out, "\r\x1b[K  %s", line)
			} else {
				fmt.Fprintf(out, "  %s\n", line)
			}
			last = line
		}
		if done {
			if show && tty {
				fmt.Fprintln(out)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			if show && tty {
				fmt.Fprintln(out)
			}
			return fmt.Errorf("demo: the federation did not settle within %s", limit)
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func viewLine(fed *sim.Federation) string {
	var b strings.Builder
	for i := range fed.Len() {
		n := fed.Node(i)
		if n == nil {
			fmt.Fprintf(&b, "%s: stopped                    ", fed.Config(i).Name)
			continue
		}
		live, suspect, dead := n.View().Counts()
		fmt.Fprintf(&b, "%s: %d live %d suspect %d dead   ", n.Name(), live, suspect, dead)
	}
	return strings.TrimSpace(b.String())
}
