package itest

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callmesh/callmesh/node"
	"github.com/callmesh/callmesh/node/accounts"
	"github.com/callmesh/callmesh/node/digest"
	"github.com/callmesh/callmesh/node/store"
)

// cliStdin runs the binary with stdin and returns stdout, stderr, exit code.
func cliStdin(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(callmeshBin(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return stdout.String(), stderr.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("callmesh %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), 0
}

// userViews runs `user list --json` with the target flags and decodes it.
func userViews(t *testing.T, target ...string) map[string]accounts.View {
	t.Helper()
	out, errOut, code := cli(t, append([]string{"user", "list", "--json"}, target...)...)
	if code != 0 {
		t.Fatalf("user list --json %v: exit %d: %s", target, code, errOut)
	}
	var vs []accounts.View
	if err := json.Unmarshal([]byte(out), &vs); err != nil {
		t.Fatalf("user list --json: %v\n%s", err, out)
	}
	m := make(map[string]accounts.View, len(vs))
	for _, v := range vs {
		m[v.Name] = v
	}
	return m
}

// wantExit checks a command's exit code and that stderr contains every
// fragment.
func wantExit(t *testing.T, what string, code int, stderr string, wantCode int, fragments ...string) {
	t.Helper()
	if code != wantCode {
		t.Errorf("%s: exit %d, want %d; stderr %q", what, code, wantCode, stderr)
		return
	}
	for _, f := range fragments {
		if !strings.Contains(stderr, f) {
			t.Errorf("%s: stderr %q does not contain %q", what, stderr, f)
		}
	}
}

func TestUserCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const domain = "users.test"
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "node.yaml")
	out, errOut, code := cli(t, "init", "--dir", dir, "--name", "alpha", "--domain", domain,
		"--sip", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--p2p", "/ip4/127.0.0.1/tcp/0")
	if code != 0 {
		t.Fatalf("init: exit %d: %s", code, errOut)
	}
	_, id, err := node.LoadIdentity(filepath.Join(dir, "identity.key"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, id.String()) {
		t.Fatalf("init output %q does not name peer ID %s", out, id)
	}
	writeFile := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	alicePW := writeFile("alice.pw", "first secret\n")

	// On the stopped node's data directory.
	out, errOut, code = cli(t, "user", "add", "alice", "--password-file", alicePW, "--config", cfgPath,
		"--class", "gold", "--allow", "p2p,conference,external:+44,!external:+4490", "--balance", "12.50")
	if code != 0 || !strings.Contains(out, "added user alice") {
		t.Fatalf("offline user add: exit %d: %s%s", code, out, errOut)
	}
	if v := userViews(t, "--config", cfgPath)["alice"]; v.Home != id.String() || v.Class != accounts.Gold || v.Balance != 125000 {
		t.Fatalf("offline list: %+v", v)
	}

	// Bad input on the stopped node: exit 2 naming the flag or field.
	for _, tc := range []struct {
		args  []string
		code  int
		stdin string
		want  []string
	}{
		{[]string{"add", "carol", "--password-file", alicePW, "--class", "platinum"}, 2, "", []string{"--class", "platinum", "gold, silver or bronze"}},
		{[]string{"add", "carol", "--password-file", alicePW, "--allow", "p2p,video"}, 2, "", []string{"--allow", "video"}},
		{[]string{"add", "carol", "--password-file", alicePW, "--allow", "external:12a"}, 2, "", []string{"--allow", "external:12a"}},
		{[]string{"add", "carol", "--password-file", alicePW, "--max-calls", "-1"}, 2, "", []string{"--max-calls"}},
		{[]string{"add", "carol", "--password-file", alicePW, "--max-calls", "two"}, 2, "", []string{"max-calls"}},
		{[]string{"add", "carol", "--password-file", alicePW, "--balance", "1.23456"}, 2, "", []string{"--balance", "more than 4 decimals"}},
		{[]string{"add", "carol@example.org", "--password-file", alicePW}, 2, "", []string{"user.name"}},
		{[]string{"add", "carol"}, 2, "", []string{"--password-file", "--password-stdin"}},
		{[]string{"add", "carol", "--password-file", alicePW, "--password-stdin"}, 2, "x", []string{"exactly one"}},
		{[]string{"add", "carol", "--password-file", filepath.Join(dir, "missing.pw")}, 2, "", []string{"--password-file"}},
		{[]string{"add", "carol", "--password-file", writeFile("two.pw", "line one\nline two\n")}, 2, "", []string{"user.password", "CR or LF"}},
		{[]string{"add", "carol", "--password-stdin"}, 2, "", []string{"--password-stdin", "user.password: must not be empty"}},
		{[]string{"add", "carol", "--password-stdin"}, 2, strings.Repeat("x", 300), []string{"user.password", "256"}},
		{[]string{"add"}, 2, "", []string{"NAME"}},
		{[]string{"add", "alice", "--password-file", alicePW}, 1, "", []string{`user "alice": already exists`}},
		{[]string{"show", "nobody"}, 3, "", []string{`user "nobody": not found`}},
		{[]string{"del", "nobody"}, 3, "", []string{"not found"}},
		{[]string{"passwd", "nobody", "--password-file", alicePW}, 3, "", []string{"not found"}},
		{[]string{"show", ".bad"}, 2, "", []string{"user.name"}},
	} {
		args := append(append([]string{"user"}, tc.args...), "--config", cfgPath)
		_, errOut, code := cliStdin(t, tc.stdin, args...)
		wantExit(t, strings.Join(tc.args, " "), code, errOut, tc.code, tc.want...)
	}
	if _, ok := userViews(t, "--config", cfgPath)["carol"]; ok {
		t.Fatal("a rejected user add created carol")
	}

	// The running node serves the account created offline.
	p := startRun(t, cfgPath)
	var ri node.RunInfo
	Eventually(t, 20*time.Second, func() bool {
		ri, err = node.ReadRunFile(filepath.Join(dir, "data"))
		return err == nil
	}, "the node did not write its run file; stderr:\n%s", p.stderr)
	alice := userViews(t, "--config", cfgPath)["alice"]
	if alice.Home != id.String() || alice.Home != ri.ID || alice.Class != accounts.Gold || alice.Balance != 125000 ||
		strings.Join(alice.Allow, ",") != "p2p,conference,external:+44,!external:+4490" || alice.MaxCalls != 2 {
		t.Fatalf("alice through the API: %+v", alice)
	}

	// Through the API: a second user from standard input.
	out, errOut, code = cliStdin(t, "bob's password\n", "user", "add", "bob", "--password-stdin", "--config", cfgPath,
		"--allow", "conference", "--max-calls", "0", "--balance=-3")
	if code != 0 || !strings.Contains(out, "added user bob") {
		t.Fatalf("user add bob through the API: exit %d: %s%s", code, out, errOut)
	}
	out, errOut, code = cli(t, "user", "show", "bob", "--json", "--api", ri.Admin)
	var bob accounts.View
	if code != 0 || json.Unmarshal([]byte(out), &bob) != nil || bob.Home != ri.ID || bob.MaxCalls != 0 ||
		bob.Balance != -30000 || strings.Join(bob.Allow, ",") != "conference" || bob.Class != accounts.Bronze {
		t.Fatalf("user show bob --json: exit %d: %s%s", code, out, errOut)
	}
	out, errOut, code = cli(t, "user", "list", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "NAME") || !strings.Contains(out, "BALANCE") ||
		!strings.Contains(out, "alice") || !strings.Contains(out, "12.50") || !strings.Contains(out, "-3.00") {
		t.Fatalf("user list table: exit %d:\n%s%s", code, out, errOut)
	}
	out, errOut, code = cli(t, "user", "show", "alice", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "external:+44") || !strings.Contains(out, ri.ID) {
		t.Fatalf("user show table: exit %d:\n%s%s", code, out, errOut)
	}

	bobPW := writeFile("bob.pw", "bob's new password\r\n")
	if out, errOut, code = cli(t, "user", "passwd", "bob", "--password-file", bobPW, "--config", cfgPath); code != 0 {
		t.Fatalf("user passwd: exit %d: %s%s", code, out, errOut)
	}
	if out, errOut, code = cli(t, "user", "del", "alice", "--config", cfgPath); code != 0 || !strings.Contains(out, "deleted user alice") {
		t.Fatalf("user del: exit %d: %s%s", code, out, errOut)
	}

	// Errors through the API keep their exit codes and messages.
	for _, tc := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"del", "alice"}, 3, []string{`user "alice": not found`}},
		{[]string{"show", "alice"}, 3, []string{"not found"}},
		{[]string{"passwd", "alice", "--password-file", bobPW}, 3, []string{"not found"}},
		{[]string{"add", "bob", "--password-file", bobPW}, 1, []string{`user "bob": already exists`}},
		{[]string{"add", "carol", "--password-file", bobPW, "--class", "silver", "--allow", "!p2p"}, 2, []string{"--allow", "!p2p"}},
	} {
		_, errOut, code := cli(t, append(append([]string{"user"}, tc.args...), "--config", cfgPath)...)
		wantExit(t, "through the API: "+strings.Join(tc.args, " "), code, errOut, tc.code, tc.want...)
	}

	// A running node whose run file is gone: its locked store says so.
	runFile := filepath.Join(dir, "data", node.RunFileName)
	if err := os.Rename(runFile, runFile+".away"); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = cli(t, "user", "list", "--config", cfgPath)
	wantExit(t, "locked store without a run file", code, errOut, 1, "seems to be running", "--api")
	if err := os.Rename(runFile+".away", runFile); err != nil {
		t.Fatal(err)
	}
	p.stop(t)

	// Stopped again: the data directory holds what the API did.
	users := userViews(t, "--config", cfgPath)
	if _, ok := users["alice"]; ok || users["bob"].MaxCalls != 0 || len(users) != 1 {
		t.Fatalf("after the run: %+v", users)
	}
	// A stale run file (the node was killed) does not stop the commands.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := ln.Addr().String()
	ln.Close()
	stale, _ := json.Marshal(node.RunInfo{PID: 1, ID: ri.ID, Name: "alpha", Admin: "http://" + deadAddr})
	if err := os.WriteFile(runFile, stale, 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = cli(t, "user", "show", "bob", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "bob") || !strings.Contains(errOut, "stale") {
		t.Fatalf("user show with a stale run file: exit %d: %s%s", code, out, errOut)
	}
	if err := os.Remove(runFile); err != nil {
		t.Fatal(err)
	}

	// The password change reached the store as credentials for the domain;
	// the file's trailing CR LF was not part of the password.
	st, err := store.Open(store.Options{Dir: filepath.Join(dir, "data", "store"), GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, err := accounts.NewStore(st.Keyspace("accounts")).Get("bob")
	if err != nil {
		t.Fatal(err)
	}
	if a.Realm != domain || a.Credentials != digest.NewCredentials("bob", domain, "bob's new password") {
		t.Fatalf("bob's stored credentials %+v for realm %q do not match the new password", a.Credentials, a.Realm)
	}
}
