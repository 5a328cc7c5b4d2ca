//go:build linux

package load

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/callmesh/callmesh/node"
)

// callsCallmeshBuild builds the callmesh binary once, on first use.
// One made with bin set builds nothing.
type callsCallmeshBuild struct {
	dir  string
	once sync.Once
	bin  string
	err  error
}

func (b *callsCallmeshBuild) path() (string, error) {
	b.once.Do(func() {
		if b.bin != "" {
			return
		}
		if bin := os.Getenv("CALLMESH_LOAD_BIN"); bin != "" {
			b.bin = bin
			return
		}
		bin := filepath.Join(b.dir, "callmesh")
		out, err := exec.Command("go", "build", "-o", bin, "github.com/callmesh/callmesh/cmd/callmesh").CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go build ./cmd/callmesh: %v\n%s", err, out)
			return
		}
		b.bin = bin
	})
	return b.bin, b.err
}

// callsNodeYAML is the callmesh node's configuration for the call load
// benchmark: media.anchor (always, never) and, when trusted, calls.trusted
// 127.0.0.1/32 (SIPp's address: no challenge on REGISTER or INVITE). S1 is
// never and trusted, S2 always and not. media.anchor and calls.trusted came
// with the B2BUA: a node without them refuses the file.
func callsNodeYAML(sip, admin, anchor string, trusted bool) string {
	list := "[]"
	if trusted {
		list = `["127.0.0.1/32"]`
	}
	return fmt.Sprintf(`# callmesh node of the call load benchmark (itest/load calls_test.go)
name: calls
data_dir: data
identity: identity.key
sip: %s
domain: %s
admin: %s
# Concurrent calls accepted: not the limit being measured.
capacity: 1000000
auth:
  # All calls come from one address (SIPp's): failures under overload
  # must not get it blocked.
  block_after: 0
p2p:
  listen: [/ip4/127.0.0.1/tcp/0]
media:
  ports: %s
  anchor: %s
calls:
  trusted: %s
  # Completed transactions kept as long as Kamailio keeps its own (tm's
  # wt_timer, 5 s, which proxy.cfg leaves at its default).
  transaction_wait: 5s
log:
  level: warn
  pprof: %t
`, sip, node.DefaultDomain, admin, callsMediaPorts, anchor, list, os.Getenv("CALLMESH_LOAD_PROFILE") != "")
}

// callsCallmeshProc is a `callmesh run` child process in its own process group.
type callsCallmeshProc struct {
	cmd    *exec.Cmd
	log    string
	procs  int // the GOMAXPROCS it was given (callsNodeProcs); 0: the runtime's own
	exited chan struct{}
}

func (c *callsCallmeshProc) stop() {
	select {
	case <-c.exited:
		return
	default:
	}
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
	}
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	<-c.exited
}

func (c *callsCallmeshProc) logTail() string {
	return callsShortenTail(callsLastLines(c.log, 60), 4000)
}

// startCallsCallmesh starts the callmesh node of target callmesh-s1 or,
// with s2, callmesh-s2 (startCallsNode), with accounts for the callee and
// every caller: a trusted INVITE is taken for its From user, who must exist
// too. It returns an error, for the caller to report and fail, when the
// node does not come up.
func startCallsCallmesh(t *testing.T, build *callsCallmeshBuild, s2 bool, callers []user, callee user) (callsTarget, error) {
	t.Helper()
	anchor := "never"
	if s2 {
		anchor = "always"
	}
	users := append([]user{callee}, callers...)
	start := time.Now()
	c, sip, admin, err := startCallsNode(t, build, anchor, !s2, users)
	if err != nil {
		return callsTarget{}, err
	}
	tgt := callsTarget{
		name: "callmesh-s1", scenario: "uac_call_noauth.xml", s2: s2, addr: sip,
		title:   fmt.Sprintf("callmesh %s: one node, `callmesh run`, B2BUA, S1: media.anchor never, calls.trusted 127.0.0.1/32, GOMAXPROCS %d", node.Version, c.procs),
		logTail: c.logTail,
		exited:  c.exited,
		pgid:    c.cmd.Process.Pid,
		admins:  []string{"=" + admin},
		notes: []string{fmt.Sprintf("node started and %d accounts created through the admin API in %.1f s; the callee registers from the UAS's port",
			len(users), time.Since(start).Seconds())},
	}
	if s2 {
		tgt.name, tgt.scenario = "callmesh-s2", "uac_call.xml"
		tgt.title = fmt.Sprintf("callmesh %s: one node, `callmesh run`, B2BUA, S2: digest on REGISTER and INVITE, media.anchor always, no trusted source, GOMAXPROCS %d", node.Version, c.procs)
	}
	return tgt, nil
}

// callsNodeProcs is the GOMAXPROCS a node runs with under call load (S1,
// S2, callmesh-s1-b): callsHalfCores, or CALLMESH_LOAD_NODE_PROCS. It is
// the node's counterpart of Kamailio's worker count
// (callsKamailioChildren), and tuned the same way, by measurement: at the
// top of the ladder both SIPps need about half of the machine, and a node
// with a processor for each core spent about a tenth more CPU per call than
// with one (threads looking for work, wake-ups across cores) without
// getting more of the cores (BENCHMARKS.md).
func callsNodeProcs(t *testing.T) int {
	return envCount(t, "CALLMESH_LOAD_NODE_PROCS", callsHalfCores())
}

// callsHalfCores is what each server of the call benchmark runs on: half
// the cores, at least one (callsNodeProcs, callsKamailioChildren).
func callsHalfCores() int { return max(1, runtime.NumCPU()/2) }

// startCallsNode builds callmesh, initialises a node directory, writes its
// configuration (callsNodeYAML with anchor and trusted), starts `callmesh
// run --config FILE` in its own process group and creates users' accounts
// through the admin API (POST /api/v1/users). It returns the node, its SIP
// and admin addresses, or an error when the node does not come up (the error holds
// the end of its log; `callmesh run` names a configuration field it
// refuses).
func startCallsNode(t *testing.T, build *callsCallmeshBuild, anchor string, trusted bool, users []user) (*callsCallmeshProc, string, string, error) {
	t.Helper()
	bin, err := build.path()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sip := net.JoinHostPort("127.0.0.1", strconv.Itoa(callsFreeSIPPort(t)))
	admin := net.JoinHostPort("127.0.0.1", strconv.Itoa(callsFreeTCPPort(t)))
	if out, err := exec.Command(bin, "init", "--dir", dir, "--name", "calls",
		"--sip", sip, "--admin", admin, "--p2p", "/ip4/127.0.0.1/tcp/0").CombinedOutput(); err != nil {
		t.Fatalf("callmesh init: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "node.yaml")
	if err := os.WriteFile(cfg, []byte(callsNodeYAML(sip, admin, anchor, trusted)), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &callsCallmeshProc{log: filepath.Join(dir, "callmesh.log"), procs: callsNodeProcs(t), exited: make(chan struct{})}
	logf, err := os.Create(c.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	c.cmd = exec.Command(bin, "run", "--config", cfg)
	c.cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(c.procs))
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("callmesh run: %v", err)
	}
	go func() { _ = c.cmd.Wait(); close(c.exited) }()
	t.Cleanup(c.stop)

	api := "http://" + admin
	if err := callsWaitHealthy(api, c.exited, 30*time.Second); err != nil {
		c.stop()
		return nil, "", "", fmt.Errorf("callmesh run --config node.yaml: %v: %s", err, c.logTail())
	}
	for _, u := range users {
		if err := callsAddUser(api, u); err != nil {
			t.Fatalf("callmesh: add user %s: %v", u.name, err)
		}
	}
	return c, sip, admin, nil
}

// callsWaitHealthy polls api's /healthz until it answers "ok", the process
// exits, or timeout passes.
func callsWaitHealthy(api string, exited <-chan struct{}, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("exited")
		default:
		}
		if resp, err := client.Get(api + "/healthz"); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && bytes.HasPrefix(body, []byte("ok")) {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not healthy within %v", timeout)
}

// callsAddUser creates an account homed on the node (POST /api/v1/users) that
// no concurrent-call limit gets in the way of.
func callsAddUser(api string, u user) error {
	body, _ := json.Marshal(map[string]any{"name": u.name, "password": u.password, "max_calls": 1000000})
	resp, err := http.Post(api+"/api/v1/users", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// callsFreeTCPPort returns a TCP port of 127.0.0.1 that was free a moment ago.
func callsFreeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
