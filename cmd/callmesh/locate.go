package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/callmesh/callmesh/node"
	"github.com/spf13/cobra"
)

// exitNotRegistered is the exit code of `callmesh locate` for a user who is
// registered nowhere.
const exitNotRegistered = 3

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
			base, err := af.url()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 15*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/locate?aor="+url.QueryEscape(args[0]), nil)
			if err != nil {
				return usageErr("locate: %v", err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return fmt.Errorf("admin API: %w", err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			var apiErr struct {
				Error string `json:"error"`
			}
			switch resp.StatusCode {
			case http.StatusOK:
			case http.StatusNotFound:
				_ = json.Unmarshal(body, &apiErr)
				return &exitError{code: exitNotRegistered, err: fmt.Errorf("%s", apiErr.Error)}
			case http.StatusBadRequest:
				_ = json.Unmarshal(body, &apiErr)
				return usageErr("locate: %s", apiErr.Error)
			default:
				return fmt.Errorf("admin API: %s: %s", resp.Status, strings.TrimSpace(string(body)))
			}
			var loc node.LocateResponse
			if err := json.Unmarshal(body, &loc); err != nil {
				return fmt.Errorf("admin API: %w", err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(loc)
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
