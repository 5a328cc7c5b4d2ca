package itest

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/callmesh/callmesh/node"
)

// buildOnce builds the callmesh binary once per test binary run.
var buildOnce = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "callmesh-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "callmesh")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/callmesh/callmesh/cmd/callmesh").CombinedOutput()
	if err != nil {
		return "", errors.New("go build: " + err.Error() + "\n" + string(out))
	}
	return bin, nil
})

func callmeshBin(t *testing.T) string {
	t.Helper()
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// cli runs the binary to completion and returns stdout, stderr, exit code.
func cli(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(callmeshBin(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("callmesh %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

// proc is a `callmesh run` child process.
type proc struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan error
}

func startRun(t *testing.T, cfgPath string) *proc {
	t.Helper()
	cmd := exec.Command(callmeshBin(t), "run", "--config", cfgPath)
	p := &proc{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("callmesh run exited with %v\n%s", err, p.stderr)
		}
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Fatalf("callmesh run did not stop within 30 s of SIGTERM")
	}
}

type statusJSON struct {
	Node struct {
		ID, Name, SIP, Admin string
	} `json:"node"`
	Peers []struct {
		ID, Name, State string
	} `json:"peers"`
}

func TestProcessesFormFederation(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	root := t.TempDir()
	dirs := []string{filepath.Join(root, "a"), filepath.Join(root, "b"), filepath.Join(root, "c")}
	local := []string{"--sip", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--p2p", "/ip4/127.0.0.1/tcp/0"}

	if _, errOut, code := cli(t, append([]string{"init", "--dir", dirs[0], "--name", "alpha"}, local...)...); code != 0 {
		t.Fatalf("init alpha: exit %d: %s", code, errOut)
	}
	if info, err := os.Stat(filepath.Join(dirs[0], "identity.key")); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("identity.key: %v, mode %v", err, info.Mode())
	}
	procs := []*proc{startRun(t, filepath.Join(dirs[0], "node.yaml"))}
	var run0 node.RunInfo
	Eventually(t, 20*time.Second, func() bool {
		ri, err := node.ReadRunFile(filepath.Join(dirs[0], "data"))
		run0 = ri
		return err == nil
	}, "alpha did not write its run file; stderr:\n%s", procs[0].stderr)

	for i, name := range []string{"beta", "gamma"} {
		args := append([]string{"init", "--dir", dirs[i+1], "--name", name, "--bootstrap", run0.P2P[0]}, local...)
		if _, errOut, code := cli(t, args...); code != 0 {
			t.Fatalf("init %s: exit %d: %s", name, code, errOut)
		}
		procs = append(procs, startRun(t, filepath.Join(dirs[i+1], "node.yaml")))
	}

	status := func(dir string) (statusJSON, bool) {
		out, _, code := cli(t, "status", "--config", filepath.Join(dir, "node.yaml"), "--json")
		var st statusJSON
		if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
			return st, false
		}
		return st, true
	}
	allLive := func() bool {
		for _, d := range dirs {
			st, ok := status(d)
			if !ok || len(st.Peers) != 2 {
				return false
			}
			for _, p := range st.Peers {
				if p.State != "live" {
					return false
				}
			}
		}
		return true
	}
	// The issue asks for 10 s on this machine; the deadline is generous so
	// that a loaded CI machine does not fail the test, and the time taken
	// is logged.
	began := time.Now()
	Eventually(t, 30*time.Second, allLive, "three processes did not see each other live;\nalpha:\n%s\nbeta:\n%s\ngamma:\n%s",
		procs[0].stderr, procs[1].stderr, procs[2].stderr)
	t.Logf("three processes saw each other live %v after the last one started", time.Since(began).Round(time.Millisecond))

	// Nobody is registered: locate says so with exit code 3.
	if _, errOut, code := cli(t, "locate", "nobody@callmesh.local", "--config", filepath.Join(dirs[1], "node.yaml")); code != 3 ||
		!strings.Contains(errOut, "not registered") {
		t.Fatalf("locate of an unregistered user: exit %d, stderr %q; want 3", code, errOut)
	}

	// A clean stop, then a restart keeps the peer ID, and the others see the
	// node live again.
	st0, _ := status(dirs[0])
	procs[0].stop(t)
	procs[0] = startRun(t, filepath.Join(dirs[0], "node.yaml"))
	Eventually(t, 20*time.Second, func() bool {
		st, ok := status(dirs[0])
		return ok && st.Node.ID == st0.Node.ID
	}, "alpha did not come back with its peer ID")
	Eventually(t, 20*time.Second, allLive, "the federation did not recover after alpha's restart")
	for _, p := range procs {
		p.stop(t)
	}
}

func TestCLIBadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	if _, errOut, code := cli(t, "init", "--dir", dir, "--p2p", "/ip4/127.0.0.1/udp/0/quic-v1", "--federation-key", "/nonexistent"); code != 2 ||
		!strings.Contains(errOut, "p2p.listen[0]") {
		t.Fatalf("QUIC with a federation key: exit %d, stderr %q; want 2 naming p2p.listen[0]", code, errOut)
	}
	if _, errOut, code := cli(t, "init", "--dir", dir, "--admin", "nowhere"); code != 2 || !strings.Contains(errOut, "admin") {
		t.Fatalf("bad admin address: exit %d, stderr %q", code, errOut)
	}
	if _, errOut, code := cli(t, "init", "--dir", dir, "--sip", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--p2p", "/ip4/127.0.0.1/tcp/0"); code != 0 {
		t.Fatalf("init: exit %d: %s", code, errOut)
	}
	cfgPath := filepath.Join(dir, "node.yaml")
	if _, errOut, code := cli(t, "init", "--dir", dir); code != 2 || !strings.Contains(errOut, "already exists") {
		t.Fatalf("second init: exit %d, stderr %q", code, errOut)
	}
	badPath := filepath.Join(dir, "bad.yaml")
	for _, tc := range []struct{ yaml, field string }{
		{"membership:\n  heartbeat: 0s\n", "membership.heartbeat"},
		{"p2p:\n  listen: [\"not-a-multiaddr\"]\n", "p2p.listen[0]"},
		{"p2p:\n  bootstrap: [\"/ip4/127.0.0.1/tcp/1\"]\n", "p2p.bootstrap[0]"},
		{"log:\n  level: loud\n", "log.level"},
		{"capacity: -1\n", "capacity"},
		{"no_such_field: 1\n", "no_such_field"},
	} {
		if err := os.WriteFile(badPath, []byte("name: bad\nadmin: 127.0.0.1:0\n"+tc.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		_, errOut, code := cli(t, "run", "--config", badPath)
		if code != 2 || !strings.Contains(errOut, tc.field) {
			t.Errorf("config %q: exit %d, stderr %q; want exit 2 naming %s", tc.yaml, code, errOut, tc.field)
		}
	}
	// A corrupt identity is an error, never a silent new identity.
	keyPath := filepath.Join(dir, "identity.key")
	if err := os.WriteFile(keyPath, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := cli(t, "run", "--config", cfgPath); code != 1 || !strings.Contains(errOut, "corrupt") {
		t.Fatalf("corrupt identity: exit %d, stderr %q", code, errOut)
	}
	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := cli(t, "run", "--config", cfgPath); code != 1 || !strings.Contains(errOut, "missing") {
		t.Fatalf("missing identity: exit %d, stderr %q", code, errOut)
	}
	if _, err := os.Stat(keyPath); err == nil {
		t.Fatal("run created a new identity")
	}
}
