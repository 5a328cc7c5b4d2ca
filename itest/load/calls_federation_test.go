//go:build linux

package load

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/callmesh/callmesh/node"
	"github.com/callmesh/callmesh/routing"
)

// Target callmesh-fed: S1 across a federation of two nodes through one
// emulated provider, each a process of its own:
//
//	SIPp UAC → node A (callmesh run) → provider prov (callmesh provider,
//	proxy mode) → node B (callmesh run) → SIPp UAS registered at node B
//
// Node A holds the caller accounts and trusts the UAC (uac_call_noauth.xml,
// no challenge); node B holds the callee's account and trusts the UAS's
// address, so that it registers unchallenged as in S1. Both nodes carry
// signalling only (media.anchor never). Node A's node.yaml names the
// provider and the SLA A-prov (A with prov), node B's the SLA B-prov (B with
// prov): the master of each session routes A → prov → B. Node B joins the
// federation through node A's p2p address.

const (
	// callsFedA, callsFedB and callsFedProvider name the two nodes and the
	// provider (node names are the parties of the SLAs).
	callsFedA, callsFedB, callsFedProvider = "A", "B", "prov"
	// callsFedReady bounds each wait of the set-up: the nodes seeing each
	// other live, the SLAs in the catalogues, the callee located.
	callsFedReady = 90 * time.Second
)

// callsFedMediaPorts are the RTP port ranges of nodes A and B: never bound
// (media.anchor never), but kept apart and inside 10000-19999.
var callsFedMediaPorts = [2]string{"10000-14999", "15000-19999"}

// callsPart is one process of a target made of several: its CPU is
// reported on its own, and the target's is the sum of its parts'.
type callsPart struct {
	name string
	pgid int // its process group: its CPU time is the part's, not "other"
	// udpPort is its SIP UDP port, 0 if none is under load: the kernel's
	// drops there count as the server's.
	udpPort int
}

// partsCPU returns the CPU time each part of tgt had used in procs (a
// snapshot from allProcs).
func (tgt callsTarget) partsCPU(procs map[int]proc) []time.Duration {
	out := make([]time.Duration, len(tgt.parts))
	for i, p := range tgt.parts {
		out[i], _ = groupsTime(procs, p.pgid)
	}
	return out
}

// times returns the CPU time, and the system time within it, that every
// process of tgt (its groups) had used in procs (a snapshot from
// allProcs).
func (tgt callsTarget) times(procs map[int]proc) (cpu, sys time.Duration) {
	return groupsTime(procs, tgt.groups()...)
}

// callsPartCores turns the CPU used by each part between two snapshots
// into cores over window.
func callsPartCores(before, after []time.Duration, window time.Duration) []float64 {
	out := make([]float64, len(after))
	for i := range after {
		out[i] = (after[i] - before[i]).Seconds() / window.Seconds()
	}
	return out
}

// groups returns the process groups of tgt: its own and its parts'.
func (tgt callsTarget) groups() []int {
	var out []int
	if tgt.pgid > 0 {
		out = append(out, tgt.pgid)
	}
	for _, p := range tgt.parts {
		if p.pgid > 0 && !slices.Contains(out, p.pgid) {
			out = append(out, p.pgid)
		}
	}
	return out
}

// serverUDPPorts returns the SIP UDP ports of tgt under load: that of
// its address (serverPort) and its parts'.
func (tgt callsTarget) serverUDPPorts(serverPort int) []int {
	out := []int{serverPort}
	for _, p := range tgt.parts {
		if p.udpPort > 0 && !slices.Contains(out, p.udpPort) {
			out = append(out, p.udpPort)
		}
	}
	return out
}

// registrarAddr is where the callee registers: tgt.registrar, else the
// address the calls go to.
func (tgt callsTarget) registrarAddr() string {
	if tgt.registrar != "" {
		return tgt.registrar
	}
	return tgt.addr
}

// callsDropsSum adds up the drops on ports between two readings.
func callsDropsSum(before, after map[int]uint64, ports []int) uint64 {
	var sum uint64
	for _, p := range ports {
		sum += after[p] - before[p]
	}
	return sum
}

// callsOtherCPU returns the CPU time that every process outside the
// process groups groups (the server's, one or several) and other than the
// processes pids used between two snapshots (processes that started in
// between count from 0; those that exited are missed).
func callsOtherCPU(before, after map[int]proc, groups []int, pids ...int) time.Duration {
	var other time.Duration
	for pid, a := range after {
		if slices.Contains(pids, pid) || slices.Contains(groups, a.pgid) {
			continue
		}
		other += a.cpu - before[pid].cpu
	}
	return other
}

// callsPartsText describes the CPU of the parts of a step for the log:
// ", node A 0.50 cores, …" ("" for a target of one process).
func callsPartsText(tgt callsTarget, s callsStep) string {
	var b strings.Builder
	for i, c := range s.partCores {
		if i < len(tgt.parts) {
			fmt.Fprintf(&b, ", %s %.2f cores", tgt.parts[i].name, c)
		}
	}
	return b.String()
}

// callsFedSummary is the summary line of the federation: its highest
// passing rate against callmesh-s1's, with their ratio (goal ≥ 0.5); ""
// when callmesh-fed did not run.
func callsFedSummary(reports []*callsReport) string {
	fed, s1 := callsFind(reports, "callmesh-fed"), callsFind(reports, "callmesh-s1")
	if fed == nil {
		return ""
	}
	ratio := "n/a"
	if x, y := callsBestRate(fed), callsBestRate(s1); x > 0 && y > 0 {
		ratio = fmt.Sprintf("%d/%d = %.2f", x, y, float64(x)/float64(y))
	}
	return fmt.Sprintf("- S1 across the federation (node A → provider → node B), highest rate with < %.1f%% failures: "+
		"callmesh-fed %s, callmesh-s1 %s, ratio callmesh-fed / callmesh-s1 %s (goal ≥ 0.5).\n",
		100*callsFailureLimit, callsBestText(fed), callsBestText(s1), ratio)
}

// callsFedNodeYAML is the configuration of node name (A or B) of target
// callmesh-fed: S1's settings (media.anchor never, 127.0.0.1/32 trusted,
// no blocking, a capacity that is not the limit measured), media ports in
// media, bootstrap (B: node A's p2p address) and the catalogue sections:
// the provider at accessPoint and the node's SLA with it.
func callsFedNodeYAML(name, sip, admin, media, bootstrap, accessPoint string) string {
	boot := ""
	if bootstrap != "" {
		boot = fmt.Sprintf("  bootstrap: [%q]\n", bootstrap)
	}
	return fmt.Sprintf(`# node %[1]s of target callmesh-fed of the call load benchmark (itest/load)
name: %[1]s
data_dir: data
identity: identity.key
sip: %[2]s
domain: %[3]s
admin: %[4]s
# Concurrent calls accepted: not the limit being measured.
capacity: 1000000
auth:
  # All calls come from one address: failures under overload must not get
  # it blocked.
  block_after: 0
p2p:
  listen: [/ip4/127.0.0.1/tcp/0]
%[5]smedia:
  ports: %[6]s
  anchor: never
calls:
  trusted: ["127.0.0.1/32"]
  # As target callmesh-s1: Kamailio's transaction wait (calls_callmesh_test.go).
  transaction_wait: 5s
log:
  level: warn
  pprof: %[9]t
providers:
  - id: %[7]s
    access_points: [%[8]q]
    services: [{type: transit, segments: [{location: "*"}]}]
slas:
  - {id: %[1]s-%[7]s, kind: node-provider, between: [%[1]s, %[7]s], price: {per_minute: "0.0040", currency: EUR}, guarantees: {max_delay_ms: 20, max_loss_pct: 0.5}}
`, name, sip, node.DefaultDomain, admin, boot, media, callsFedProvider, accessPoint, os.Getenv("CALLMESH_LOAD_PROFILE") != "")
}

// callsFedProviderYAML is the emulated provider's configuration: a
// signalling-only proxy with no limit of its own.
func callsFedProviderYAML(sip, admin string) string {
	return fmt.Sprintf(`# provider of target callmesh-fed of the call load benchmark (itest/load)
id: %s
mode: proxy
sip: %s
admin: %s
max_calls: 0
`, callsFedProvider, sip, admin)
}

// startCallsProc starts bin with args in its own process group, its
// output to log; the test's cleanup stops it (SIGTERM, then SIGKILL).
func startCallsProc(t *testing.T, bin, log string, args ...string) *callsCallmeshProc {
	t.Helper()
	c := &callsCallmeshProc{log: log, exited: make(chan struct{})}
	logf, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	c.cmd = exec.Command(bin, args...)
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("%s %s: %v", filepath.Base(bin), args[0], err)
	}
	go func() { _ = c.cmd.Wait(); close(c.exited) }()
	t.Cleanup(c.stop)
	return c
}

// callsFedNode is one node of the federation target.
type callsFedNode struct {
	name, sip, api string
	proc           *callsCallmeshProc
}

// startCallsFedNode initialises node name's directory, writes its
// configuration (callsFedNodeYAML) and starts `callmesh run`. It returns
// an error when the node does not come up healthy.
func startCallsFedNode(t *testing.T, bin, name, media, bootstrap, accessPoint string) (*callsFedNode, error) {
	t.Helper()
	dir := t.TempDir()
	sip := net.JoinHostPort("127.0.0.1", strconv.Itoa(callsFreeSIPPort(t)))
	admin := net.JoinHostPort("127.0.0.1", strconv.Itoa(callsFreeTCPPort(t)))
	if out, err := exec.Command(bin, "init", "--dir", dir, "--name", name,
		"--sip", sip, "--admin", admin, "--p2p", "/ip4/127.0.0.1/tcp/0").CombinedOutput(); err != nil {
		t.Fatalf("callmesh init (node %s): %v\n%s", name, err, out)
	}
	cfg := filepath.Join(dir, "node.yaml")
	if err := os.WriteFile(cfg, []byte(callsFedNodeYAML(name, sip, admin, media, bootstrap, accessPoint)), 0o644); err != nil {
		t.Fatal(err)
	}
	n := &callsFedNode{name: name, sip: sip, api: "http://" + admin}
	n.proc = startCallsProc(t, bin, filepath.Join(dir, "callmesh.log"), "run", "--config", cfg)
	if err := callsWaitHealthy(n.api, n.proc.exited, 30*time.Second); err != nil {
		n.proc.stop()
		return nil, fmt.Errorf("node %s: callmesh run --config node.yaml: %v: %s", name, err, n.proc.logTail())
	}
	return n, nil
}

// callsGetJSON decodes the JSON body of a 200 answer to GET url into v.
func callsGetJSON(u string, v any) error {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return json.Unmarshal(body, v)
}

// callsWaitFor polls cond every 200 ms until it returns nil, one of
// exited is closed, or timeout passes; the error then says what was
// awaited and cond's last error.
func callsWaitFor(what string, timeout time.Duration, exited []<-chan struct{}, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		for _, ch := range exited {
			if callsExited(ch) {
				return fmt.Errorf("%s: a process exited", what)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// callsFedLive checks that n's view holds peer as live.
func callsFedLive(n *callsFedNode, peer string) error {
	var pr node.PeersResponse
	if err := callsGetJSON(n.api+"/api/v1/peers", &pr); err != nil {
		return err
	}
	for _, p := range pr.Peers {
		if p.Name == peer {
			if p.State != "live" {
				return fmt.Errorf("node %s sees %s %s", n.name, peer, p.State)
			}
			return nil
		}
	}
	return fmt.Errorf("node %s does not know %s", n.name, peer)
}

// callsFedSLAs checks that n's catalogue lists every SLA of want.
func callsFedSLAs(n *callsFedNode, want ...string) error {
	var sr node.SLAListResponse
	if err := callsGetJSON(n.api+"/api/v1/slas", &sr); err != nil {
		return err
	}
	var have []string
	for _, s := range sr.SLAs {
		have = append(have, s.ID)
	}
	for _, w := range want {
		if !slices.Contains(have, w) {
			return fmt.Errorf("node %s lists SLAs %v, not %s", n.name, have, w)
		}
	}
	return nil
}

// startCallsFed starts target callmesh-fed: the provider, node A with the
// caller accounts, node B (bootstrapped from node A) with the callee's,
// and waits until the two nodes see each other live and both catalogues
// list both SLAs. Its ready, called once the callee has registered at node
// B, waits until node A locates the callee at node B and plans the call
// over A → prov → B. It returns an error, for the caller to report and
// fail, when a process does not come up.
func startCallsFed(t *testing.T, build *callsCallmeshBuild, callers []user, callee user) (callsTarget, error) {
	t.Helper()
	bin, err := build.path()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()

	dir := t.TempDir()
	provSIP := net.JoinHostPort("127.0.0.1", strconv.Itoa(callsFreeSIPPort(t)))
	provAdmin := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(callsFreeTCPPort(t)))
	spCfg := filepath.Join(dir, "sp.yaml")
	if err := os.WriteFile(spCfg, []byte(callsFedProviderYAML(provSIP, strings.TrimPrefix(provAdmin, "http://"))), 0o644); err != nil {
		t.Fatal(err)
	}
	prov := startCallsProc(t, bin, filepath.Join(dir, "provider.log"), "provider", "--config", spCfg, "--log-level", "warn")
	var status struct {
		AccessPoint string `json:"access_point"`
	}
	if err := callsWaitFor("provider admin endpoint", 30*time.Second, []<-chan struct{}{prov.exited}, func() error {
		return callsGetJSON(provAdmin+"/status", &status)
	}); err != nil {
		prov.stop()
		return callsTarget{}, fmt.Errorf("callmesh provider --config sp.yaml: %v: %s", err, prov.logTail())
	}
	accessPoint := "sip:" + provSIP
	if status.AccessPoint != accessPoint {
		t.Fatalf("provider's access point %q, want %q", status.AccessPoint, accessPoint)
	}

	a, err := startCallsFedNode(t, bin, callsFedA, callsFedMediaPorts[0], "", accessPoint)
	if err != nil {
		return callsTarget{}, err
	}
	var info node.NodeInfo
	if err := callsGetJSON(a.api+"/api/v1/node", &info); err != nil || len(info.P2P) == 0 {
		t.Fatalf("node A's p2p address: %v (%v)", err, info.P2P)
	}
	b, err := startCallsFedNode(t, bin, callsFedB, callsFedMediaPorts[1], info.P2P[0], accessPoint)
	if err != nil {
		return callsTarget{}, err
	}
	procs := []*callsCallmeshProc{a.proc, prov, b.proc}
	exited := make([]<-chan struct{}, len(procs))
	for i, p := range procs {
		exited[i] = p.exited
	}
	logTail := func() string {
		var s strings.Builder
		for i, name := range []string{"node A", "provider", "node B"} {
			fmt.Fprintf(&s, "--- %s:\n%s\n", name, callsShortenTail(callsLastLines(procs[i].log, 30), 2000))
		}
		return s.String()
	}

	slaA, slaB := callsFedA+"-"+callsFedProvider, callsFedB+"-"+callsFedProvider
	steps := []struct {
		what string
		cond func() error
	}{
		{"nodes A and B live in each other's view", func() error {
			if err := callsFedLive(a, callsFedB); err != nil {
				return err
			}
			return callsFedLive(b, callsFedA)
		}},
		// The master of a session is either node: both need the catalogue.
		{"SLAs " + slaA + " and " + slaB + " in both catalogues", func() error {
			if err := callsFedSLAs(a, slaA, slaB); err != nil {
				return err
			}
			return callsFedSLAs(b, slaA, slaB)
		}},
	}
	for _, s := range steps {
		if err := callsWaitFor(s.what, callsFedReady, exited, s.cond); err != nil {
			t.Fatalf("callmesh-fed: %v\n%s", err, logTail())
		}
	}

	for _, u := range callers {
		if err := callsAddUser(a.api, u); err != nil {
			t.Fatalf("node A: add user %s: %v", u.name, err)
		}
	}
	if err := callsAddUser(b.api, callee); err != nil {
		t.Fatalf("node B: add user %s: %v", callee.name, err)
	}
	setup := time.Since(start)

	var planned []string
	ready := func() error {
		aor := callee.name + "@" + node.DefaultDomain
		if err := callsWaitFor("node A locates "+aor+" at node B", callsFedReady, exited, func() error {
			var loc node.LocateResponse
			if err := callsGetJSON(a.api+"/api/v1/locate?aor="+url.QueryEscape(aor), &loc); err != nil {
				return err
			}
			if loc.Name != callsFedB {
				return fmt.Errorf("located at %q", loc.Name)
			}
			return nil
		}); err != nil {
			return fmt.Errorf("%v\n%s", err, logTail())
		}
		var plan node.RouteResponse
		q := url.Values{"from": {callers[0].name}, "to": {callee.name}}
		if err := callsGetJSON(a.api+"/api/v1/route?"+q.Encode(), &plan); err != nil {
			return fmt.Errorf("node A's plan from %s to %s: %v", callers[0].name, callee.name, err)
		}
		want := []string{callsFedA, callsFedProvider, callsFedB}
		if len(plan.Paths) == 0 || !slices.Equal(plan.Paths[0].Hops, want) {
			return fmt.Errorf("node A plans %s → %s over %s, want %v first", callers[0].name, callee.name, callsFedPaths(plan.Paths), want)
		}
		planned = plan.Paths[0].Hops
		return nil
	}
	t.Cleanup(func() {
		// Before the processes stop (cleanups run last first): where the
		// calls went.
		var st struct {
			Counters struct {
				Invites   uint64         `json:"invites_received"`
				Forwarded uint64         `json:"forwarded"`
				Answered  uint64         `json:"answered"`
				Failed    map[int]uint64 `json:"failed"`
				InDialog  uint64         `json:"in_dialog"`
				Active    int            `json:"active_calls"`
			} `json:"counters"`
		}
		if err := callsGetJSON(provAdmin+"/status", &st); err == nil {
			c := st.Counters
			t.Logf("callmesh-fed: path %v; provider %s: %d INVITEs received, %d forwarded, %d answered, failed %v, %d in-dialog requests, %d calls open",
				planned, callsFedProvider, c.Invites, c.Forwarded, c.Answered, c.Failed, c.InDialog, c.Active)
		}
	})

	anyExited := make(chan struct{})
	go func() {
		select {
		case <-a.proc.exited:
		case <-b.proc.exited:
		case <-prov.exited:
		}
		close(anyExited)
	}()
	pid := func(c *callsCallmeshProc) int { return c.cmd.Process.Pid }
	parts := []callsPart{
		{name: "node A", pgid: pid(a.proc)},
		{name: "node B", pgid: pid(b.proc)},
		{name: "provider", pgid: pid(prov)},
	}
	if _, p, err := net.SplitHostPort(b.sip); err == nil {
		parts[1].udpPort, _ = strconv.Atoi(p)
	}
	tgt := callsTarget{
		name: "callmesh-fed", scenario: "uac_call_noauth.xml", addr: a.sip, registrar: b.sip,
		title: fmt.Sprintf("callmesh %s: federation of two nodes through one emulated provider, SIPp UAC → node A (`callmesh run`) → "+
			"provider (`callmesh provider`, proxy mode) → node B (`callmesh run`) → SIPp UAS; S1: media.anchor never on both nodes, "+
			"calls.trusted 127.0.0.1/32", node.Version),
		logTail: logTail,
		exited:  anyExited,
		pgid:    pid(a.proc),
		parts:   parts,
		admins:  []string{"nodeA=" + strings.TrimPrefix(a.api, "http://"), "nodeB=" + strings.TrimPrefix(b.api, "http://")},
		ready:   ready,
		notes: []string{
			fmt.Sprintf("provider, node A and node B (bootstrapped from node A) started, both nodes live in each other's view and both SLAs "+
				"(%s, %s) in both catalogues, %d caller accounts created at node A and the callee's at node B through the admin API in %.1f s; "+
				"the callee registers at node B from the UAS's port, and the load starts once node A locates it there and plans %s → %s → %s",
				slaA, slaB, len(callers), setup.Seconds(), callsFedA, callsFedProvider, callsFedB),
			"node A → provider → node B over TCP (the nodes' choice); the UAC talks UDP to node A, the UAS UDP to node B",
			"server CPU: node A + node B + provider (each process measured on its own); server CPU per call likewise the sum; " +
				"UDP drops server: node A's and node B's SIP sockets",
		},
	}
	return tgt, nil
}

// callsFedPaths shows planned paths for an error message.
func callsFedPaths(paths []routing.Path) string {
	if len(paths) == 0 {
		return "no path"
	}
	var s []string
	for _, p := range paths {
		s = append(s, strings.Join(p.Hops, " → ")+" ("+strings.Join(p.SLAs, ", ")+")")
	}
	return strings.Join(s, "; ")
}
