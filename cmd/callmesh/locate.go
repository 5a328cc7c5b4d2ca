package main

import (
	"fmt"
	"net/url"
	"time"

	"github.com/callmesh/callmesh/node"
	"github.com/spf13/cobra"
)

func newLocateCmd() *cobra.Command {
	var (
		af     apiFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "locate AOR [--api URL | --config FILE] [--json]",
		Short: "Find the node where a user is registered (exit code 3: nowhere)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var loc node.LocateResponse
			if err := af.get(cmd, "/api/v1/locate?aor="+url.QueryEscape(args[0]), &loc); err != nil {
				return err // 404, not registered anywhere: exit code 3
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, loc)
			}
			fmt.Fprintf(out, "%s is registered at node %s (%s), SIP %s, until %s\n",
				loc.AOR, loc.Name, loc.Node, loc.SIP, loc.Expires.Local().Format(time.RFC3339))
			return nil
		},
	}
	af.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON: {aor, node, node_name, sip, expires}")
	return cmd
}
