package main

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/callmesh/callmesh/node"
)

func newSLACmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sla",
		Short: "Offer, withdraw and list the SLAs of the federation's catalogue",
	}
	cmd.AddCommand(newSLAOfferCmd(), newSLAWithdrawCmd(), newSLAListCmd())
	return cmd
}

func newSLAOfferCmd() *cobra.Command {
	var (
		af   apiFlags
		file string
	)
	cmd := &cobra.Command{
		Use:   "offer -f FILE [--api URL | --config FILE]",
		Short: "Publish the SLAs of a catalogue file (with the providers they name) as the node's",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageErr("-f FILE is required")
			}
			data, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			var res node.SLAOfferResponse
			if err := af.send(cmd, http.MethodPost, "/api/v1/slas", node.SLAOfferRequest{Catalogue: string(data)}, &res); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "offered %s\n", strings.Join(res.Offered, ", "))
			return nil
		},
	}
	af.register(cmd)
	cmd.Flags().StringVarP(&file, "file", "f", "", "catalogue file (YAML): slas: and the providers: they name")
	return cmd
}

func newSLAWithdrawCmd() *cobra.Command {
	var af apiFlags
	cmd := &cobra.Command{
		Use:   "withdraw ID [--api URL | --config FILE]",
		Short: "Withdraw an SLA the node published",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := af.send(cmd, http.MethodDelete, "/api/v1/slas/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "withdrew %s\n", args[0])
			return nil
		},
	}
	af.register(cmd)
	return cmd
}

func newSLAListCmd() *cobra.Command {
	var (
		af     apiFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list [--api URL | --config FILE] [--json]",
		Short: "List the federation's SLAs as the node knows them, with their compliance",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res node.SLAListResponse
			if err := af.get(cmd, "/api/v1/slas", &res); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, res.SLAs)
			}
			if len(res.SLAs) == 0 {
				fmt.Fprintln(out, "no SLAs")
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tKIND\tBETWEEN\tISSUER\tSEQ\tEXPIRES\tPRICE/MIN\tCOMPLIANCE")
			for _, s := range res.SLAs {
				fmt.Fprintf(tw, "%s\t%s\t%s–%s\t%s\t%s\t%s\t%s %s\t%s\n", s.ID, s.Kind, s.Between[0], s.Between[1],
					s.Issuer, s.Seq, s.Expires.Local().Format(time.TimeOnly), s.PerMinute, s.Currency, s.Compliance.Status)
			}
			return tw.Flush()
		},
	}
	af.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON: a list of {id, kind, between, issuer, issuer_id, seq, expires, per_minute, currency, compliance}")
	return cmd
}
