package main

import (
	"context"
	"encoding/json"
	"errors"
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

func newDemoCmd() *cobra.Command {
	var (
		duration      time.Duration
		asJSON, keep  bool
		dir, logLevel string
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a local federation on loopback and place real calls through emulated providers",
		Long: `Start 3 nodes and 4 emulated providers on 127.0.0.1 with no set-up, register
simulated users at every node and place real calls with real RTP (a G.711
tone) in rounds: across nodes in each class (gold, silver, bronze), within a
node, and to a number through a trunk. Midway the cheap provider's media is
degraded (the nodes are not told: they measure it); later another provider
goes down for a while and calls fail over. Progress goes to standard error;
the calls, with their master, path, price and predicted and measured MOS,
end up in a table (or, with --json, one JSON object) on standard output.

With --keep the federation stays up until Ctrl-C, with a guest account per
node for a real SIP phone; with --keep --json the nodes and users are
printed on one line as soon as the federation is up.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if duration <= 0 {
				return usageErr("demo: --duration must be positive")
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return usageErr("demo: --log-level: %v", err)
			}
			logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			// sipgo logs some of its warnings to the default logger: keep
			// them at the level asked for too.
			slog.SetDefault(logger)
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
			return runDemo(ctx, cmd.OutOrStdout(), os.Stderr, demoOptions{
				dir: dir, duration: duration, json: asJSON, keep: keep, log: logger,
			})
		},
	}
	f := cmd.Flags()
	f.DurationVar(&duration, "duration", 60*time.Second, "about how long calls are placed (at least 5 rounds of calls)")
	f.BoolVar(&asJSON, "json", false, "print the result as one JSON object")
	f.BoolVar(&keep, "keep", false, "keep the federation running until interrupted, with an account per node for a real phone")
	f.StringVar(&dir, "dir", "", "data directory (default: a temporary one, removed afterwards)")
	f.StringVar(&logLevel, "log-level", "error", "log level of the nodes and providers, on standard error")
	return cmd
}

type demoOptions struct {
	dir      string
	duration time.Duration
	json     bool
	keep     bool
	log      *slog.Logger
}

func runDemo(ctx context.Context, out, errOut io.Writer, o demoOptions) error {
	prog := newProgress(errOut)
	prog.line("starting 3 nodes and 4 providers on 127.0.0.1")
	started := time.Now()
	d, err := sim.StartDemo(ctx, sim.DemoConfig{Dir: o.dir, Duration: o.duration, Guests: o.keep, Logger: o.log, OnEvent: prog.event})
	if err != nil {
		if ctx.Err() != nil { // interrupted while starting
			return nil
		}
		return err
	}
	defer d.Close()
	dir := d.Directory()
	prog.line(fmt.Sprintf("federation up in %.1fs: %d users registered", time.Since(started).Seconds(), len(dir.Users)))
	if o.json && o.keep {
		// One line, before the calls, for another program to join in.
		if err := json.NewEncoder(out).Encode(dir); err != nil {
			return err
		}
	}
	if !o.json {
		printDirectory(out, dir)
		fmt.Fprintf(out, "\nplacing calls for about %s (progress on standard error)\n\n", o.duration)
	}
	res, err := d.Run(ctx)
	prog.done()
	interrupted := err != nil && errors.Is(err, context.Canceled)
	if err != nil && !interrupted {
		return err
	}
	if o.json {
		if err := json.NewEncoder(out).Encode(res); err != nil {
			return err
		}
	} else {
		printCalls(out, res)
		printSummary(out, res)
	}
	if !o.keep || interrupted {
		return nil
	}
	if err := d.Restore(); err != nil {
		return err
	}
	if !o.json {
		printKeep(out, dir)
	}
	prog.line("federation kept running; Ctrl-C to stop")
	<-ctx.Done()
	return nil
}

func printDirectory(out io.Writer, dir sim.DemoDirectory) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSIP\tADMIN API")
	for _, n := range dir.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", n.Name, n.SIP, n.Admin)
	}
	tw.Flush()
	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROVIDER\tROLE\tACCESS POINT\tTERMS")
	for _, p := range dir.Providers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.ID, p.Role, p.AccessPoint, p.About)
	}
	tw.Flush()
	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tNODE\tCLASS")
	for _, u := range dir.Users {
		if !u.Guest {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", u.AOR, u.Node, u.Class)
		}
	}
	tw.Flush()
}

func printCalls(out io.Writer, res sim.DemoResult) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUND\tPHASE\tCALLER\tCALLEE\tCLASS\tSTATUS\tMASTER\tPATH\tPRICE/MIN\tMOS PREDICTED\tMOS MEASURED\tATTEMPTS")
	for _, c := range res.Calls {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%d\n", c.Round, c.Phase, user(c.Caller), user(c.Callee), c.Class,
			c.Status, dash(c.Master), dash(strings.Join(c.Path, " → ")), dash(c.PricePerMinute), mos(c.PredictedMOS), mos(c.MeasuredMOS), c.Attempts)
	}
	tw.Flush()
}

// printSummary says what the degradation and the failover did.
func printSummary(out io.Writer, res sim.DemoResult) {
	fmt.Fprintln(out)
	answered, failed, rounds := 0, 0, 0
	for _, c := range res.Calls {
		if c.Status >= 200 && c.Status < 300 {
			answered++
		} else {
			failed++
		}
		rounds = max(rounds, c.Round)
	}
	of := ""
	if rounds < res.Rounds {
		of = fmt.Sprintf(" of %d (interrupted)", res.Rounds)
	}
	fmt.Fprintf(out, "%d calls in %d rounds%s, %.1fs: %d answered, %d failed\n", len(res.Calls), rounds, of,
		float64(res.ElapsedMS)/1000, answered, failed)
	for _, c := range res.Calls {
		for _, a := range c.Tried {
			fmt.Fprintf(out, "round %d, %s → %s: %s failed (%d); the call took the next path\n", c.Round, user(c.Caller),
				user(c.Callee), strings.Join(a.Path, " → "), a.Status)
		}
	}
	// The nodes' verdicts, grouped: "cheapnet quarantined by node0, node1 from 12.8s".
	type verdict struct{ provider, state string }
	var order []verdict
	by := map[verdict][]string{}
	first := map[verdict]int64{}
	for _, j := range res.Feedback {
		v := verdict{j.Provider, j.State}
		if _, ok := by[v]; !ok {
			order = append(order, v)
			first[v] = j.AtMS
		}
		by[v] = append(by[v], j.Node)
	}
	for _, v := range order {
		fmt.Fprintf(out, "feedback: %s %s by %s from %.1fs\n", v.provider, v.state, strings.Join(by[v], ", "), float64(first[v])/1000)
	}
	for _, s := range res.Steps {
		switch s.Action {
		case sim.ActionDegrade:
			before, after := 0, 0
			for _, c := range res.Calls {
				if !through(c, s.Provider) {
					continue
				}
				if c.StartedMS < s.AtMS {
					before++
				} else {
					after++
				}
			}
			var invites uint64
			for _, p := range res.Providers {
				if p.ID == s.Provider {
					invites = p.Invites - s.InvitesBefore
				}
			}
			fmt.Fprintf(out, "%s degraded at %.1fs (round %d): it carried %d calls placed before and %d placed after; %d INVITEs reached it after\n",
				s.Provider, float64(s.AtMS)/1000, s.Round, before, after, invites)
		case sim.ActionDown:
			over := 0
			for _, c := range res.Calls {
				if c.Status == 200 && c.Attempts > 1 {
					over++
				}
			}
			fmt.Fprintf(out, "%s down at %.1fs (round %d): %d calls answered over a later path after a failed one\n",
				s.Provider, float64(s.AtMS)/1000, s.Round, over)
		}
	}
}

func printKeep(out io.Writer, dir sim.DemoDirectory) {
	fmt.Fprintln(out, "\nThe federation keeps running (Ctrl-C to stop); every provider is back to normal.")
	fmt.Fprintln(out, "Register a SIP phone (or baresip) with one of these accounts; its node's SIP")
	fmt.Fprintln(out, "address is the registrar and outbound proxy, UDP or TCP. Call a simulated user")
	fmt.Fprintln(out, "(ada, sam, bob, ...: they answer with a tone), another guest, or "+"+493012345678.")
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tPASSWORD\tCLASS\tREGISTRAR\tADMIN API")
	for _, u := range dir.Users {
		if !u.Guest {
			continue
		}
		for _, n := range dir.Nodes {
			if n.Name == u.Node {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.AOR, u.Password, u.Class, n.SIP, n.Admin)
			}
		}
	}
	tw.Flush()
	fmt.Fprintln(out, "\nTry: callmesh calls --api ADMIN   (the calls in progress at a node)")
}

func through(c sim.DemoCall, provider string) bool {
	for _, h := range c.Path {
		if h == provider {
			return true
		}
	}
	return false
}

func user(aor string) string {
	u, _, _ := strings.Cut(aor, "@")
	return u
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func mos(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f", *v)
}

// progress shows the demo's progress on standard error: one line redrawn
// in place on a terminal, with rounds and steps printed above it; plain
// lines otherwise, one per round, step and call.
type progress struct {
	w     io.Writer
	tty   bool
	shown bool // the status line is on screen
}

func newProgress(w io.Writer) *progress {
	return &progress{w: w, tty: isTerminal(w)}
}

// line prints a line of its own.
func (p *progress) line(s string) {
	p.clear()
	fmt.Fprintln(p.w, s)
}

func (p *progress) clear() {
	if p.tty && p.shown {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.shown = false
	}
}

// done ends the status line.
func (p *progress) done() { p.clear() }

// event is sim.DemoConfig.OnEvent: never called concurrently.
func (p *progress) event(ev sim.DemoEvent) {
	at := fmt.Sprintf("[%5.1fs]", ev.Elapsed.Seconds())
	switch ev.Kind {
	case "round", "step", "feedback":
		p.line(at + " " + ev.Text)
	case "call":
		c := ev.Call
		if !p.tty {
			fmt.Fprintf(p.w, "%s %s → %s: %d over %s, MOS %s, %d attempt(s)\n", at, user(c.Caller), user(c.Callee),
				c.Status, dash(strings.Join(c.Path, " → ")), mos(c.MeasuredMOS), c.Attempts)
			return
		}
		if c.Attempts > 1 && c.Status == 200 {
			p.line(fmt.Sprintf("%s %s → %s failed over: %d attempts, now over %s", at, user(c.Caller), user(c.Callee),
				c.Attempts, strings.Join(c.Path, " → ")))
		}
	}
	if !p.tty {
		return
	}
	t := ev.Totals
	const width = 20
	filled := 0
	if t.Rounds > 0 {
		filled = width * (t.Round - 1) / t.Rounds
	}
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
	fmt.Fprintf(p.w, "\r\x1b[K[%s] %s round %d/%d %s: %d calls done (%d answered, %d failed over, %d failed), %d up",
		bar, at, t.Round, t.Rounds, t.Phase, t.Placed, t.Answered, t.FailedOver, t.Failed, t.Active)
	p.shown = true
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
