package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/callmesh/callmesh/node"
	"github.com/callmesh/callmesh/node/accounts"
	"github.com/callmesh/callmesh/node/store"
	"github.com/spf13/cobra"
)

func newUserCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage the user accounts homed on a node",
		Long: `Manage the user accounts homed on a node: the users who register over SIP
with digest credentials for the node's domain.

The commands talk to a running node through its admin API (--api URL, or
--config FILE when the node's run file names its API). With --config and a
node that is not running, they work directly on the node's data directory;
the account's home is then the peer ID of the node's identity.

Exit codes: 0 success, 1 failure (including a user that already exists),
2 bad input (the message names the flag or field), 3 no such user.`,
	}
	cmd.AddCommand(newUserAddCmd(), newUserListCmd(), newUserShowCmd(), newUserPasswdCmd(), newUserDelCmd())
	return cmd
}

// passwordFlags read a password from --password-file or --password-stdin.
type passwordFlags struct {
	file  string
	stdin bool
}

func (p *passwordFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&p.file, "password-file", "", "read the password from FILE (one trailing newline is removed)")
	cmd.Flags().BoolVar(&p.stdin, "password-stdin", false, "read the password from standard input (one trailing newline is removed)")
}

// read returns the password, checked, from exactly one of the sources.
func (p *passwordFlags) read(cmd *cobra.Command) (string, error) {
	if (p.file == "") == !p.stdin {
		return "", usageErr("%s: give exactly one of --password-file FILE and --password-stdin", commandName(cmd))
	}
	source, r := "--password-stdin", cmd.InOrStdin()
	if p.file != "" {
		f, err := os.Open(p.file)
		if err != nil {
			return "", usageErr("--password-file: %w", err)
		}
		defer f.Close()
		source, r = "--password-file "+p.file, f
	}
	data, err := io.ReadAll(io.LimitReader(r, 64<<10))
	if err != nil {
		return "", fmt.Errorf("%s: %w", source, err)
	}
	pw := string(data)
	if s, ok := strings.CutSuffix(pw, "\n"); ok {
		pw = strings.TrimSuffix(s, "\r")
	}
	if err := accounts.ValidatePassword(pw); err != nil {
		return "", usageErr("%s: %w", source, err)
	}
	return pw, nil
}

// nameArg accepts exactly one NAME argument, as bad input otherwise.
func nameArg(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return usageErr("%s: want exactly one user NAME, got %d arguments\n%s", commandName(cmd), len(args), cmd.UsageString())
	}
	return nil
}

// commandName names a subcommand in messages: "user add".
func commandName(cmd *cobra.Command) string {
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
}

func newUserAddCmd() *cobra.Command {
	var (
		t        userTarget
		pw       passwordFlags
		class    string
		allow    []string
		maxCalls int
		balance  string
	)
	cmd := &cobra.Command{
		Use:   "add NAME (--password-file FILE | --password-stdin) [--class C] [--allow R,...] [--max-calls N] [--balance AMOUNT]",
		Short: "Create a user account homed on the node",
		Args:  nameArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			p := accounts.Params{Name: args[0]}
			if err := accounts.ValidateName(p.Name); err != nil {
				return usageErr("NAME: %w", err)
			}
			f := cmd.Flags()
			if f.Changed("class") {
				c, err := accounts.ParseClass(class)
				if err != nil {
					return usageErr("--class %q: want gold, silver or bronze", class)
				}
				p.Class = c
			}
			if f.Changed("allow") {
				p.Allow = []string{}
				for _, r := range allow {
					if err := accounts.ValidateRight(r); err != nil {
						var fe *accounts.FieldError
						errors.As(err, &fe)
						return usageErr("--allow %q: %s", r, fe.Msg)
					}
					p.Allow = append(p.Allow, r)
				}
			}
			if f.Changed("max-calls") {
				if maxCalls < 0 {
					return usageErr("--max-calls %d: must be >= 0 (0 bars every call)", maxCalls)
				}
				p.MaxCalls = &maxCalls
			}
			if f.Changed("balance") {
				a, err := accounts.ParseAmount(balance)
				if err != nil {
					return usageErr("--balance: %w", err)
				}
				p.Balance = a
			}
			var err error
			if p.Password, err = pw.read(cmd); err != nil {
				return err
			}
			return t.run(cmd, func(ctx context.Context, b userBackend) error {
				v, err := b.add(ctx, p)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "added user %s (class %s, allow %s, max_calls %d, balance %s) homed on %s\n",
					v.Name, v.Class, allowText(v.Allow), v.MaxCalls, v.Balance, v.Home)
				return nil
			})
		},
	}
	t.register(cmd)
	pw.register(cmd)
	f := cmd.Flags()
	f.StringVar(&class, "class", string(accounts.DefaultClass), "service class: gold, silver or bronze")
	f.StringSliceVar(&allow, "allow", accounts.DefaultAllow(),
		"rights, comma-separated: p2p, conference, external:PREFIX (digits, optional leading +; * for any number), !external:PREFIX to exclude; --allow '' grants none")
	f.IntVar(&maxCalls, "max-calls", accounts.DefaultMaxCalls, "concurrent calls allowed (0 bars every call)")
	f.StringVar(&balance, "balance", "0", "balance, a decimal amount with up to 4 decimals such as 12.50")
	return cmd
}

func newUserListCmd() *cobra.Command {
	var (
		t      userTarget
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list [--json]",
		Short: "List the user accounts homed on the node",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 0 {
				return usageErr("%s: takes no arguments\n%s", commandName(cmd), cmd.UsageString())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return t.run(cmd, func(ctx context.Context, b userBackend) error {
				vs, err := b.list(ctx)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if asJSON {
					if vs == nil {
						vs = []accounts.View{}
					}
					return printJSON(out, vs)
				}
				if len(vs) == 0 {
					fmt.Fprintln(out, "no users")
					return nil
				}
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tCLASS\tALLOW\tMAX CALLS\tBALANCE\tHOME\tCREATED")
				for _, v := range vs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", v.Name, v.Class, allowText(v.Allow), v.MaxCalls, v.Balance,
						v.Home, v.Created.Format(time.RFC3339))
				}
				return tw.Flush()
			})
		},
	}
	t.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON list of {name, class, allow, max_calls, balance, home, created}")
	return cmd
}

func newUserShowCmd() *cobra.Command {
	var (
		t      userTarget
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "show NAME [--json]",
		Short: "Show one user account",
		Args:  nameArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			return t.run(cmd, func(ctx context.Context, b userBackend) error {
				v, err := b.get(ctx, args[0])
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if asJSON {
					return printJSON(out, v)
				}
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintf(tw, "name\t%s\nclass\t%s\nallow\t%s\nmax calls\t%d\nbalance\t%s\nhome\t%s\ncreated\t%s\n",
					v.Name, v.Class, allowText(v.Allow), v.MaxCalls, v.Balance, v.Home, v.Created.Format(time.RFC3339))
				return tw.Flush()
			})
		},
	}
	t.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON object {name, class, allow, max_calls, balance, home, created}")
	return cmd
}

func newUserPasswdCmd() *cobra.Command {
	var (
		t  userTarget
		pw passwordFlags
	)
	cmd := &cobra.Command{
		Use:   "passwd NAME (--password-file FILE | --password-stdin)",
		Short: "Set a user's password",
		Args:  nameArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			password, err := pw.read(cmd)
			if err != nil {
				return err
			}
			return t.run(cmd, func(ctx context.Context, b userBackend) error {
				if err := b.passwd(ctx, args[0], password); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "password of user %s changed\n", args[0])
				return nil
			})
		},
	}
	t.register(cmd)
	pw.register(cmd)
	return cmd
}

func newUserDelCmd() *cobra.Command {
	var t userTarget
	cmd := &cobra.Command{
		Use:   "del NAME",
		Short: "Delete a user account",
		Args:  nameArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			return t.run(cmd, func(ctx context.Context, b userBackend) error {
				if err := b.del(ctx, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "deleted user %s\n", args[0])
				return nil
			})
		},
	}
	t.register(cmd)
	return cmd
}

func allowText(allow []string) string {
	if len(allow) == 0 {
		return "-"
	}
	return strings.Join(allow, ",")
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// userBackend is where the user commands act: a running node's admin API,
// or the store of a stopped node.
type userBackend interface {
	list(ctx context.Context) ([]accounts.View, error)
	get(ctx context.Context, name string) (accounts.View, error)
	add(ctx context.Context, p accounts.Params) (accounts.View, error)
	passwd(ctx context.Context, name, password string) error
	del(ctx context.Context, name string) error
}

// userTarget chooses the backend from --api and --config.
type userTarget struct{ apiFlags }

func (t *userTarget) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&t.api, "api", "", "admin API base URL of a running node (default: from --config, else http://"+node.DefaultAdmin+")")
	f.StringVar(&t.config, "config", "", "node configuration file: its running node's API, or its data directory when the node is stopped")
}

// run calls fn with the backend the flags select. A run file whose node no
// longer answers (it was killed) is stale: fn then runs on the data
// directory, which the store's lock shows to be free.
func (t *userTarget) run(cmd *cobra.Command, fn func(context.Context, userBackend) error) error {
	ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
	defer cancel()
	if t.api != "" || t.config == "" {
		base, err := t.url()
		if err != nil {
			return err
		}
		return userExit(fn(ctx, &apiUsers{base: base}))
	}
	cfg, err := node.LoadConfig(t.config)
	if err != nil {
		return err
	}
	dataDir := cfg.Path(cfg.DataDir)
	ri, err := node.ReadRunFile(dataDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return t.runLocal(ctx, cfg, fn)
	case err != nil:
		return err
	}
	err = fn(ctx, &apiUsers{base: ri.Admin})
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return userExit(err)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "callmesh: no node answers at %s; %s is stale, using the data directory\n",
		ri.Admin, filepath.Join(dataDir, node.RunFileName))
	return t.runLocal(ctx, cfg, fn)
}

func (t *userTarget) runLocal(ctx context.Context, cfg node.Config, fn func(context.Context, userBackend) error) error {
	b, err := openLocalUsers(cfg)
	if err != nil {
		return err
	}
	err = userExit(fn(ctx, b))
	if cerr := b.st.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// userExit gives account errors their exit codes: 2 for bad input, 3 for a
// missing user.
func userExit(err error) error {
	var ee *exitError
	switch {
	case err == nil, errors.As(err, &ee):
		return err
	case errors.Is(err, accounts.ErrInvalid):
		return &exitError{code: 2, err: err}
	case errors.Is(err, accounts.ErrNotFound):
		return &exitError{code: exitNotFound, err: err}
	}
	return err
}

// localUsers acts on a stopped node's store.
type localUsers struct {
	st          *store.Store
	acc         *accounts.Store
	home, realm string
}

func openLocalUsers(cfg node.Config) (*localUsers, error) {
	_, id, err := node.LoadIdentity(cfg.Path(cfg.Identity))
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cfg.Path(cfg.DataDir), "store")
	st, err := store.Open(store.Options{Dir: dir, SmallMemory: cfg.Store.SmallMemory, GCInterval: -1})
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("node %s: its store %s is in use, so the node seems to be running, but it left no %s; "+
			"give its admin API with --api URL: %w", cfg.Name, dir, filepath.Join(cfg.Path(cfg.DataDir), node.RunFileName), err)
	}
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", cfg.Name, err)
	}
	return &localUsers{st: st, acc: accounts.NewStore(st.Keyspace("accounts")), home: id.String(), realm: cfg.Domain}, nil
}

func (l *localUsers) list(context.Context) ([]accounts.View, error) {
	as, err := l.acc.List()
	if err != nil {
		return nil, err
	}
	vs := make([]accounts.View, 0, len(as))
	for _, a := range as {
		vs = append(vs, a.View())
	}
	return vs, nil
}

func (l *localUsers) get(_ context.Context, name string) (accounts.View, error) {
	a, err := l.acc.Get(name)
	return a.View(), err
}

func (l *localUsers) add(_ context.Context, p accounts.Params) (accounts.View, error) {
	a, err := p.Account(l.home, l.realm, time.Now())
	if err == nil {
		a, err = l.acc.Add(a)
	}
	return a.View(), err
}

func (l *localUsers) passwd(_ context.Context, name, password string) error {
	return l.acc.SetPassword(name, l.realm, password)
}

func (l *localUsers) del(_ context.Context, name string) error { return l.acc.Delete(name) }

// apiUsers acts through a running node's admin API.
type apiUsers struct{ base string }

func (a *apiUsers) list(ctx context.Context) ([]accounts.View, error) {
	var resp node.UsersResponse
	err := a.do(ctx, http.MethodGet, "/api/v1/users", nil, &resp)
	return resp.Users, err
}

func (a *apiUsers) get(ctx context.Context, name string) (accounts.View, error) {
	var v accounts.View
	err := a.do(ctx, http.MethodGet, "/api/v1/users/"+url.PathEscape(name), nil, &v)
	return v, err
}

func (a *apiUsers) add(ctx context.Context, p accounts.Params) (accounts.View, error) {
	var v accounts.View
	err := a.do(ctx, http.MethodPost, "/api/v1/users", p, &v)
	return v, err
}

func (a *apiUsers) passwd(ctx context.Context, name, password string) error {
	return a.do(ctx, http.MethodPut, "/api/v1/users/"+url.PathEscape(name)+"/password", node.PasswordRequest{Password: password}, nil)
}

func (a *apiUsers) del(ctx context.Context, name string) error {
	return a.do(ctx, http.MethodDelete, "/api/v1/users/"+url.PathEscape(name), nil, nil)
}

func (a *apiUsers) do(ctx context.Context, method, path string, body, out any) error {
	return callAPI(ctx, a.base, method, path, body, out)
}
