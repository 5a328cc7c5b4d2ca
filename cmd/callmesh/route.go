package main

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/callmesh/callmesh/node"
	"github.com/callmesh/callmesh/routing"
	"github.com/callmesh/callmesh/sla"
)

// exitNoPath is the exit code when no feasible path exists.
const exitNoPath = exitNotFound

func newRouteCmd() *cobra.Command {
	var (
		af                  apiFlags
		from, to, class, at string
		k                   int
		asJSON              bool
	)
	cmd := &cobra.Command{
		Use:   "route --from AOR --to AOR|NUMBER [--class C] [--api URL | --config FILE] [--json]",
		Short: "Plan a call's voice path on a running node's live view",
		Long: "Plan the best paths for a call from a user to a user or a number (+E.164), as the node\n" +
			"would: its catalogue, measurements and policy. Exit code 3 when no path is feasible.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" || to == "" {
				return usageErr("--from and --to are required")
			}
			q := url.Values{"from": {from}, "to": {to}}
			if class != "" {
				q.Set("class", class)
			}
			if at != "" {
				q.Set("at", at)
			}
			if k > 0 {
				q.Set("k", strconv.Itoa(k))
			}
			var res node.RouteResponse
			if err := af.get(cmd, "/api/v1/route?"+q.Encode(), &res); err != nil {
				return err
			}
			return printPlan(cmd.OutOrStdout(), res.Result, asJSON,
				fmt.Sprintf("%s → %s, class %s", res.From, res.To, res.Class))
		},
	}
	af.register(cmd)
	cmd.Flags().StringVar(&from, "from", "", "caller's address of record")
	cmd.Flags().StringVar(&to, "to", "", "callee's address of record, or a number +E.164")
	cmd.Flags().StringVar(&class, "class", "", "call class (default: the caller's account class)")
	cmd.Flags().StringVar(&at, "at", "", "time of the call, RFC 3339 (default: now)")
	cmd.Flags().IntVar(&k, "k", 0, "paths to return (default 3)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON: {paths: [{hops, slas, price_per_minute, delay_ms, loss_pct, r, mos}], rejected, reason}")
	cmd.AddCommand(newRoutePlanCmd())
	return cmd
}

func newRoutePlanCmd() *cobra.Command {
	var (
		catalogue, from, to, class, at string
		k                              int
		asJSON                         bool
	)
	cmd := &cobra.Command{
		Use:   "plan --catalogue FILE --from NODE --to NODE|+NUMBER [--class C] [--at RFC3339] [--k N] [--json]",
		Short: "Plan a call's voice path offline, from a catalogue file",
		Long: "Plan from a catalogue file: providers:, slas:, and optionally nodes:, measurements:,\n" +
			"calls: (live counts) and policy:. Exit code 3 when no path is feasible.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if catalogue == "" || from == "" || to == "" {
				return usageErr("--catalogue, --from and --to are required")
			}
			data, err := os.ReadFile(catalogue)
			if err != nil {
				return err
			}
			cat, err := sla.ParseCatalogue(data)
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("%s: %w", catalogue, err)}
			}
			req := routing.Request{From: from, Class: class, K: k, At: time.Now()}
			if at != "" {
				if req.At, err = time.Parse(time.RFC3339, at); err != nil {
					return usageErr("--at: want RFC 3339, like 2026-11-26T10:00:00Z")
				}
			}
			if strings.HasPrefix(to, "+") {
				req.Number = to
			} else {
				req.To = to
			}
			g, err := routing.NewGraph(cat, routing.Options{})
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("%s: %w", catalogue, err)}
			}
			res, err := g.Plan(req)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			title := fmt.Sprintf("%s → %s", from, to)
			if class != "" {
				title += ", class " + class
			}
			return printPlan(cmd.OutOrStdout(), res, asJSON, title)
		},
	}
	cmd.Flags().StringVar(&catalogue, "catalogue", "", "catalogue file (YAML)")
	cmd.Flags().StringVar(&from, "from", "", "ingress node id")
	cmd.Flags().StringVar(&to, "to", "", "egress node id, or a number +E.164")
	cmd.Flags().StringVar(&class, "class", "", "call class (its policy limits apply)")
	cmd.Flags().StringVar(&at, "at", "", "time of the call, RFC 3339 (default: now)")
	cmd.Flags().IntVar(&k, "k", 0, "paths to return (default 3)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON: {paths: [{hops, slas, price_per_minute, delay_ms, loss_pct, r, mos}], rejected, reason}")
	return cmd
}

// printPlan prints a plan; no path is exit code 3, after printing.
func printPlan(out io.Writer, res routing.Result, asJSON bool, title string) error {
	if res.Paths == nil {
		res.Paths = []routing.Path{}
	}
	if asJSON {
		if err := printJSON(out, res); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(out, title)
		if len(res.Paths) > 0 {
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "#\tPATH\tPRICE/MIN\tDELAY ms\tLOSS %\tR\tMOS\tSLAS")
			for i, p := range res.Paths {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%.1f\t%.2f\t%.1f\t%.2f\t%s\n", i+1, strings.Join(p.Hops, " → "),
					p.PricePerMinute, p.DelayMs, p.LossPct, p.R, p.MOS, strings.Join(p.SLAs, ","))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
		for _, r := range res.Rejected {
			fmt.Fprintf(out, "left out %s: %s\n", r.ID, r.Reason)
		}
	}
	if len(res.Paths) == 0 {
		reason := res.Reason
		if reason == "" {
			reason = "no feasible path"
		}
		return &exitError{code: exitNoPath, err: errors.New(reason)}
	}
	return nil
}
