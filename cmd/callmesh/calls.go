package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/callmesh/callmesh/node"
)

func newCallsCmd() *cobra.Command {
	var (
		af     apiFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "calls [--api URL | --config FILE] [--json]",
		Short: "List the calls in progress at a node, with their media quality",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res node.CallsResponse
			if err := af.get(cmd, "/api/v1/calls", &res); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, res)
			}
			if len(res.Calls) == 0 {
				fmt.Fprintln(out, "no calls in progress")
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tCALLER\tCALLEE\tSTATE\tSTARTED\tANSWERED\tLEG\tPACKETS\tLOSS%\tJITTER ms\tRTT ms\tR\tMOS")
			for _, c := range res.Calls {
				answered := "-"
				if c.Answered != nil {
					answered = c.Answered.Local().Format(time.TimeOnly)
				}
				head := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", short(c.ID), c.Caller, c.Callee, c.State,
					c.Started.Local().Format(time.TimeOnly), answered)
				if len(c.Legs) == 0 {
					fmt.Fprintf(tw, "%s\t(not anchored)\t\t\t\t\t\t\n", head)
					continue
				}
				for i, l := range c.Legs {
					if i > 0 {
						head = "\t\t\t\t\t"
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%.2f\t%.1f\t%.1f\t%.1f\t%.2f\n", head, l.Side, l.Packets, l.LossPct, l.JitterMs, l.RTTMs, l.R, l.MOS)
				}
			}
			return tw.Flush()
		},
	}
	af.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, `print JSON: {"calls": [{id, caller, callee, state, started, answered, legs: [{side, packets, loss_pct, jitter_ms, rtt_ms, r, mos}], r, mos}]}`)
	return cmd
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
