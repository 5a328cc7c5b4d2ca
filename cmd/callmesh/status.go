package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/callmesh/callmesh/node"
	"github.com/spf13/cobra"
)

// apiFlags locate a node's admin API: --api URL, or --config FILE whose
// node's run file names the URL it actually listens on.
type apiFlags struct {
	api, config string
}

func (a *apiFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&a.api, "api", "", "admin API base URL (default: from --config, else http://"+node.DefaultAdmin+")")
	cmd.Flags().StringVar(&a.config, "config", "", "node configuration file; the API URL is read from its running node")
}

func (a *apiFlags) url() (string, error) {
	switch {
	case a.api != "":
		return strings.TrimRight(a.api, "/"), nil
	case a.config != "":
		cfg, err := node.LoadConfig(a.config)
		if err != nil {
			return "", err
		}
		ri, err := node.ReadRunFile(cfg.Path(cfg.DataDir))
		if err != nil {
			return "", err
		}
		return ri.Admin, nil
	}
	return "http://" + node.DefaultAdmin, nil
}

// get reads one resource of the admin API into out.
func (a *apiFlags) get(cmd *cobra.Command, path string, out any) error {
	return a.send(cmd, http.MethodGet, path, nil, out)
}

// send makes one admin API call, with a body unless it is nil.
func (a *apiFlags) send(cmd *cobra.Command, method, path string, body, out any) error {
	base, err := a.url()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), 15*time.Second)
	defer cancel()
	return callAPI(ctx, base, method, path, body, out)
}

// Status is the JSON `callmesh status --json` prints.
type Status struct {
	Node  node.NodeInfo   `json:"node"`
	Peers []node.PeerInfo `json:"peers"`
}

func newStatusCmd() *cobra.Command {
	var (
		af     apiFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "status [--api URL | --config FILE] [--json]",
		Short: "Show a running node and its peers with their state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			base, err := af.url()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			var st Status
			if err := callAPI(ctx, base, http.MethodGet, "/api/v1/node", nil, &st.Node); err != nil {
				return err
			}
			var pr node.PeersResponse
			if err := callAPI(ctx, base, http.MethodGet, "/api/v1/peers", nil, &pr); err != nil {
				return err
			}
			st.Peers = pr.Peers
			if st.Peers == nil {
				st.Peers = []node.PeerInfo{}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, st)
			}
			printStatus(out, st)
			return nil
		},
	}
	af.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON: {node: {id, name, sip, admin, …}, peers: [{id, name, state, …}]}")
	return cmd
}

func printStatus(w io.Writer, st Status) {
	fmt.Fprintf(w, "node %s  %s\n  sip %s  admin %s  version %s  up since %s\n",
		st.Node.Name, st.Node.ID, st.Node.SIP, st.Node.Admin, st.Node.Version, st.Node.Started.Format(time.RFC3339))
	for _, a := range st.Node.P2P {
		fmt.Fprintf(w, "  p2p %s\n", a)
	}
	if len(st.Peers) == 0 {
		fmt.Fprintln(w, "no peers known")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nPEER\tNAME\tSTATE\tSINCE\tCONNECTED\tSIP")
	for _, p := range st.Peers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\n", p.ID, p.Name, p.State, p.Since.Format(time.TimeOnly), p.Connected, p.SIP)
	}
	tw.Flush()
}
