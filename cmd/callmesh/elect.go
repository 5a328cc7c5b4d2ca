package main

import (
	"fmt"
	"net/url"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/callmesh/callmesh/node"
)

func newElectCmd() *cobra.Command {
	var (
		af      apiFlags
		session string
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "elect --session ID [--api URL | --config FILE] [--json]",
		Short: "Show a session's master and its successors, from a node's membership view",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if session == "" {
				return usageErr("--session is required")
			}
			var res node.ElectResponse
			if err := af.get(cmd, "/api/v1/elect?session="+url.QueryEscape(session), &res); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, res)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RANK\tNAME\tID\tWEIGHT\tSCORE")
			for i, r := range res.Ranking {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%.4f\t%.6g\n", i+1, r.Name, r.ID, r.Weight, r.Score)
			}
			return tw.Flush()
		},
	}
	af.register(cmd)
	cmd.Flags().StringVar(&session, "session", "", "session id")
	cmd.Flags().BoolVar(&asJSON, "json", false, `print JSON: {"session": ID, "ranking": [{id, name, weight, score}]}, master first`)
	return cmd
}
