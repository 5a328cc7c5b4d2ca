package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/callmesh/callmesh/node"
	"github.com/spf13/cobra"
)

func newInitCmd() *cobra.Command {
	var (
		dir, name, sip, admin, fedKey, domain string
		p2p, bootstrap                        []string
	)
	cmd := &cobra.Command{
		Use:   "init --dir DIR",
		Short: "Create a node: DIR/node.yaml and an Ed25519 identity",
		Long: `Create a node's directory with its configuration (node.yaml) and a new
Ed25519 identity (identity.key, mode 0600). Paths in node.yaml are relative
to DIR. Existing files are never overwritten.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return usageErr("init: --dir is required")
			}
			cfg := node.DefaultConfig()
			cfg.Name = name
			if cfg.Name == "" {
				abs, _ := filepath.Abs(dir)
				cfg.Name = filepath.Base(abs)
			}
			cfg.SIP, cfg.Admin, cfg.Domain = sip, admin, domain
			cfg.P2P.Listen = p2p
			cfg.P2P.Bootstrap = bootstrap
			if fedKey != "" {
				abs, err := filepath.Abs(fedKey)
				if err != nil {
					return usageErr("init: --federation-key: %v", err)
				}
				cfg.P2P.FederationKey = abs
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			if fedKey != "" {
				if _, err := node.LoadFederationKey(cfg.P2P.FederationKey); err != nil {
					return err
				}
			}
			cfgPath := filepath.Join(dir, "node.yaml")
			if _, err := os.Stat(cfgPath); err == nil {
				return usageErr("init: %s already exists", cfgPath)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("init: %w", err)
			}
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return fmt.Errorf("init: %w", err)
			}
			key, err := node.CreateIdentity(filepath.Join(dir, cfg.Identity))
			if err != nil {
				return err
			}
			data, err := cfg.Marshal()
			if err != nil {
				return err
			}
			if err := os.WriteFile(cfgPath, data, 0o600); err != nil {
				return fmt.Errorf("init: %w", err)
			}
			id, _ := peerID(key)
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "created %s\n", cfgPath)
			fmt.Fprintf(out, "node %s, peer ID %s\n", cfg.Name, id)
			fmt.Fprintf(out, "start it with: callmesh run --config %s\n", cfgPath)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "node directory to create (required)")
	f.StringVar(&name, "name", "", "node name (default: the directory's name)")
	f.StringVar(&sip, "sip", node.DefaultSIP, "SIP listen address HOST:PORT")
	f.StringVar(&domain, "domain", node.DefaultDomain, "the federation's SIP domain (addresses of record user@DOMAIN; digest realm)")
	f.StringArrayVar(&p2p, "p2p", []string{node.DefaultP2P}, "libp2p listen multiaddr (repeatable; /udp/PORT/quic-v1 adds QUIC)")
	f.StringVar(&admin, "admin", node.DefaultAdmin, "admin HTTP listen address HOST:PORT")
	f.StringArrayVar(&bootstrap, "bootstrap", nil, "bootstrap peer multiaddr ending in /p2p/PEERID (repeatable)")
	f.StringVar(&fedKey, "federation-key", "", "federation pre-shared key file (see `callmesh federation-key`)")
	return cmd
}

func newFederationKeyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "federation-key FILE",
		Short: "Create a federation pre-shared key (libp2p private network)",
		Long: `Create a new pre-shared key file (mode 0600). Give the same file to every
node of the federation (node.yaml p2p.federation_key): a node without it
cannot connect. Private networks work over TCP only, not QUIC.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := node.CreateFederationKey(args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created %s\n", args[0])
			return nil
		},
	}
}
