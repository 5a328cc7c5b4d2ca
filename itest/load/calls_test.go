//go:build linux

package load

import (
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callmesh/callmesh/node"
)

// Call load benchmark (make load-calls): SIPp places calls through a
// server to a SIPp UAS registered there, at rising rates, against
// Kamailio as a stateful proxy and registrar and against a callmesh node
// running its B2BUA, on the same cores.
//
//	S1  like for like: INVITE with SDP, 100, 180, 200, ACK, BYE, 200,
//	    no RTP, calls of ~0 s; callers not challenged (uac_call_noauth.xml);
//	    callmesh signalling only (media.anchor never, calls.trusted
//	    127.0.0.1/32).
//	S2  digest on INVITE (uac_call.xml: INVITE, 407, ACK, INVITE with
//	    credentials, …); callmesh anchors the media (media.anchor always) and
//	    trusts no one; every caller has an account.
//	fed S1 across a federation (target callmesh-fed, calls_federation_test.go):
//	    SIPp UAC → node A → an emulated provider in proxy mode → node B →
//	    SIPp UAS registered at node B, each a process of its own;
//	    media.anchor never on both nodes.
//
// Settings, all optional:
//
//	CALLMESH_LOAD_CALL_RATES    calls per second of the rising steps, e.g. "500,1000,2000"
//	CALLMESH_LOAD_CALL_STEP     length of one step (default 10s)
//	CALLMESH_LOAD_CALL_TARGETS  which targets, in order (default "kamailio,callmesh-s1,callmesh-s2,callmesh-fed";
//	                            also "kamailio-s2": Kamailio challenging INVITE, no media)
//	CALLMESH_LOAD_CALL_INTERLEAVE  1 (default): the targets of a pair compared by a ratio (kamailio and
//	                            callmesh-s1, kamailio-s2 and callmesh-s2) run step by step, both up at once,
//	                            one step of each at every rate, the order turning at each rate; 0: one
//	                            ladder after the other
//	CALLMESH_LOAD_OUT           file to write the results to as Markdown
//	CALLMESH_LOAD_PROFILE       directory for CPU and allocation profiles of each callmesh step (log.pprof on the node)
//	CALLMESH_LOAD_PERF          directory for a perf profile of each step of every target, Kamailio too
//	                            (TARGET-RATE.perf.data; needs perf, Debian's linux-perf; read with perf report -i)
//	CALLMESH_LOAD_NODE_PROCS    GOMAXPROCS of the callmesh node of S1 and S2 (default half the cores, at least 1)
//	CALLMESH_LOAD_KAMAILIO_CHILDREN  Kamailio's SIP workers, -n (default half the cores, at least 1)
//	CALLMESH_LOAD_BIN           a callmesh binary to run instead of building ./cmd/callmesh (to compare two builds)
//	CALLMESH_LOAD_BIN_B         the binary of target callmesh-s1-b: S1 on a second build, interleaved with
//	                            callmesh-s1 step by step; the summary compares the two builds' CPU per call
//	                            step by step (a rate may be given more than once: each is a pair of steps)

const (
	// callsCallers is how many distinct callers place the calls (from
	// caller0000 on, password "pw-" + name), in turn.
	callsCallers = 1000
	// callsCallee is the one user every call is for: the SIPp UAS
	// registers its address for it.
	callsCallee = "callee"
	// callsFailureLimit: a step with this share of failed calls or more,
	// as the UAC counts them or as the UAS does, fails.
	callsFailureLimit = 0.001
	// callsSustainedShare: a step in which SIPp started calls at less than
	// this share of the target rate fails too (the server answered too
	// slowly for SIPp's limit of open calls, or SIPp ran out of CPU).
	callsSustainedShare = 0.95
	// callsFailingSteps failing steps in a row end the ladder.
	callsFailingSteps = 2
	// callsOpenLimit bounds the calls the UAC keeps open (-l).
	callsOpenLimit = 5000
	// callsOtherLimit: a failing step during which other processes used
	// more cores than this is run again, up to callsRetries times, after
	// callsRetryPause (the machine is shared).
	callsOtherLimit = 0.25
	callsRetries    = 2
	callsRetryPause = 30 * time.Second
	// callsMediaPorts is the callmesh node's RTP port range (S2 anchors
	// every call: two port pairs each).
	callsMediaPorts = "24000-31999"
)

// defaultCallRates are the rising steps, calls per second: 500 apart from
// 3,000 on, where the servers' limits lie, so a ratio is not rounded to a
// step of 1,000 (3,500 against 5,000 read 3,000 against 5,000 before).
// They go past what these two cores hold with both SIPps beside the
// server, so that neither server's highest rate is the ladder's top.
var defaultCallRates = []int{500, 1000, 2000, 3000, 3500, 4000, 4500, 5000, 5500, 6000, 6500, 7000, 7500, 8000, 8500, 9000, 9500, 10000, 10500, 11000}

// callsTargetNames are the targets TestLoadCalls knows.
var callsTargetNames = []string{"kamailio", "callmesh-s1", "callmesh-s2", "callmesh-fed", "kamailio-s2", "callmesh-s1-b"}

// callsPlan is what a run measures.
type callsPlan struct {
	rates   []int
	step    time.Duration
	targets []string
	env     []string // the settings given, for the report's command line
	// loadBefore and loadAfter are the machine's load averages around the
	// run: other work on the cores shows there.
	loadBefore, loadAfter string
	// interleave runs each pair of callsPairs that is among the targets
	// step by step (callsLadders); CALLMESH_LOAD_CALL_INTERLEAVE=0 runs
	// every target's ladder on its own, one after the other.
	interleave bool
}

// callsPairs are the targets compared by a ratio: callmesh's and
// Kamailio's of one scenario.
var callsPairs = [][2]string{{"kamailio", "callmesh-s1"}, {"kamailio-s2", "callmesh-s2"}, {"callmesh-s1", "callmesh-s1-b"}}

// ab reports whether the run compares two builds (callmesh-s1 and
// callmesh-s1-b, interleaved).
func (p callsPlan) ab() bool {
	return p.partner("callmesh-s1-b") == "callmesh-s1" && p.partner("callmesh-s1") == "callmesh-s1-b"
}

// partner is the target that runs interleaved with name, "" if none. A
// target in two pairs (callmesh-s1) is interleaved with the first partner
// among the targets; the other then runs its ladder alone.
func (p callsPlan) partner(name string) string {
	if !p.interleave {
		return ""
	}
	for _, pair := range callsPairs {
		for i, n := range pair {
			if n == name && slices.Contains(p.targets, pair[1-i]) {
				return pair[1-i]
			}
		}
	}
	return ""
}

func loadCallsPlan(t *testing.T) callsPlan {
	t.Helper()
	p := callsPlan{rates: defaultCallRates, step: 10 * time.Second, targets: []string{"kamailio", "callmesh-s1", "callmesh-s2", "callmesh-fed"}, interleave: true}
	switch s := os.Getenv("CALLMESH_LOAD_CALL_INTERLEAVE"); s {
	case "", "1":
	case "0":
		p.env = append(p.env, "CALLMESH_LOAD_CALL_INTERLEAVE=0")
		p.interleave = false
	default:
		t.Fatalf("CALLMESH_LOAD_CALL_INTERLEAVE=%q: want 1 (the default) or 0", s)
	}
	if s := os.Getenv("CALLMESH_LOAD_CALL_RATES"); s != "" {
		p.env = append(p.env, "CALLMESH_LOAD_CALL_RATES="+s)
	}
	p.rates = envCounts(t, "CALLMESH_LOAD_CALL_RATES", p.rates)
	if s := os.Getenv("CALLMESH_LOAD_CALL_STEP"); s != "" {
		p.env = append(p.env, "CALLMESH_LOAD_CALL_STEP="+s)
		d, err := time.ParseDuration(s)
		if err != nil || d < time.Second {
			t.Fatalf("CALLMESH_LOAD_CALL_STEP=%q: want a duration of at least 1s", s)
		}
		p.step = d
	}
	for _, name := range []string{"CALLMESH_LOAD_NODE_PROCS", "CALLMESH_LOAD_KAMAILIO_CHILDREN"} {
		if s := os.Getenv(name); s != "" {
			p.env = append(p.env, name+"="+s)
		}
	}
	if s := os.Getenv("CALLMESH_LOAD_CALL_TARGETS"); s != "" {
		p.env = append(p.env, "CALLMESH_LOAD_CALL_TARGETS="+s)
		p.targets = nil
		for _, f := range strings.Split(s, ",") {
			f = strings.TrimSpace(f)
			known := false
			for _, n := range callsTargetNames {
				known = known || n == f
			}
			if !known {
				t.Fatalf("CALLMESH_LOAD_CALL_TARGETS=%q: unknown target %q (%s)", s, f, strings.Join(callsTargetNames, ", "))
			}
			if slices.Contains(p.targets, f) {
				t.Fatalf("CALLMESH_LOAD_CALL_TARGETS=%q: target %q twice", s, f)
			}
			p.targets = append(p.targets, f)
		}
	}
	return p
}

// callsTarget is a server under call load.
type callsTarget struct {
	name, title string
	scenario    string // the UAC's scenario
	s2          bool   // callers authenticate their INVITEs
	addr        string
	// logTail returns the end of the server's log, shown when a step fails.
	logTail func() string
	// exited is closed when the server's (main) process has exited.
	exited <-chan struct{}
	// pgid is the server's process group: its CPU time is the server's
	// (times), not "other".
	pgid  int
	notes []string
	// registrar is where the callee registers, when not at addr.
	registrar string
	// ready, if set, is called once the callee has registered and the UAS
	// runs, before the load: it waits until the server can reach the callee.
	ready func() error
	// parts are the processes of a server made of several, each reported
	// on its own; the server's CPU time is their sum.
	parts []callsPart
	// admins are callmesh nodes' admin listeners, "PART=HOST:PORT", for a
	// CPU profile of each step when CALLMESH_LOAD_PROFILE names a directory.
	admins []string
}

// perfStep records a perf profile of every process of the target over
// most of a step into CALLMESH_LOAD_PERF (TARGET-RATE.perf.data), when that
// is set; wait for the returned channel. On this machine Go's own profiler
// samples a fraction of a node's CPU (BENCHMARKS.md), and it cannot see
// Kamailio; perf counts both alike.
func (tgt callsTarget) perfStep(t *testing.T, rate int, step time.Duration) <-chan struct{} {
	done := make(chan struct{})
	dir := os.Getenv("CALLMESH_LOAD_PERF")
	if dir == "" {
		close(done)
		return done
	}
	var pids []string
	groups := tgt.groups()
	for pid, p := range allProcs() {
		if slices.Contains(groups, p.pgid) {
			pids = append(pids, strconv.Itoa(pid))
		}
	}
	secs := max(1, int(step.Seconds())-2)
	out := filepath.Join(dir, fmt.Sprintf("%s-%d.perf.data", tgt.name, rate))
	cmd := exec.Command("perf", "record", "-q", "-e", "cpu-clock", "-F", "499", "-g",
		"-p", strings.Join(pids, ","), "-o", out, "--", "sleep", strconv.Itoa(secs))
	go func() {
		defer close(done)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: perf record (CALLMESH_LOAD_PERF; perf is in Debian's linux-perf): %v: %s", tgt.name, err, callsOneLine(string(b), 300))
		}
	}()
	return done
}

// shed sums callmesh_sip_overload_shed_invites_total over the target's
// nodes: the new INVITEs they shed in overload so far. It is -1 for a
// target without nodes (Kamailio), or when a node's count cannot be read.
func (tgt callsTarget) shed(t *testing.T) int {
	if len(tgt.admins) == 0 {
		return -1
	}
	const name = "callmesh_sip_overload_shed_invites_total "
	total := 0
	for _, a := range tgt.admins {
		_, addr, _ := strings.Cut(a, "=")
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Logf("%s: shed INVITEs: %v", tgt.name, err)
			return -1
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Logf("%s: shed INVITEs: %v", tgt.name, err)
			return -1
		}
		_, rest, ok := strings.Cut(string(b), "\n"+name)
		if !ok {
			return -1 // overload control is off
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(strings.SplitN(rest, "\n", 2)[0]), 64)
		if err != nil {
			t.Logf("%s: shed INVITEs: %v", tgt.name, err)
			return -1
		}
		total += int(v)
	}
	return total
}

// callsShedText is a step's shed INVITEs for its log line.
func callsShedText(shed int) string {
	if shed < 0 {
		return ""
	}
	return fmt.Sprintf(", INVITEs shed %d", shed)
}

// profileStep fetches a CPU profile and an allocation profile of each of
// the target's nodes over most of a step into CALLMESH_LOAD_PROFILE
// (TARGET[-PART]-RATE.pprof and TARGET[-PART]-RATE.allocs.pprof), when that
// is set; wait for the returned channel.
func (tgt callsTarget) profileStep(t *testing.T, rate int, step time.Duration) <-chan struct{} {
	done := make(chan struct{})
	dir := os.Getenv("CALLMESH_LOAD_PROFILE")
	if dir == "" || len(tgt.admins) == 0 {
		close(done)
		return done
	}
	secs := max(1, int(step.Seconds())-2)
	var wg sync.WaitGroup
	for _, a := range tgt.admins {
		part, addr, _ := strings.Cut(a, "=")
		name := tgt.name
		if part != "" {
			name += "-" + part
		}
		for kind, file := range map[string]string{"profile": ".pprof", "allocs": ".allocs.pprof"} {
			wg.Go(func() {
				resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/%s?seconds=%d", addr, kind, secs))
				if err != nil {
					t.Logf("%s: %s profile: %v", name, kind, err)
					return
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				if err == nil {
					err = os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%d%s", name, rate, file)), b, 0o644)
				}
				if err != nil {
					t.Logf("%s: %s profile: %v", name, kind, err)
				}
			})
		}
	}
	go func() { wg.Wait(); close(done) }()
	return done
}

// callsStep is one measured step of the ladder.
type callsStep struct {
	rate, calls         int
	successful, failed  int
	reached             float64 // calls started per second
	p50, p99, mean, max float64 // response time 1 (first INVITE to 200), ms
	serverCores         float64 // during the step's length from its start
	serverCPUPerCall    float64 // ms per successful call, over the whole UAC run
	serverSysShare      float64 // the kernel's share of the server's CPU during the step's length
	uacCores, uasCores  float64
	otherCores          float64 // every other process: work sharing the cores
	uasFailed           int     // calls the UAS counted failed during the step
	attempt             int     // 1, or more when earlier runs of the step shared the cores with other work
	// drops are the datagrams the kernel dropped on the server's, the
	// UAC's and the UAS's SIP sockets for want of receive buffer.
	drops     [3]uint64
	uacErrors string
	// partCores are the cores each of the target's parts used.
	partCores []float64
	// shed is how many new INVITEs the target's nodes shed in overload
	// during the step (callmesh_sip_overload_shed_invites_total); -1 for
	// a server that does not count them.
	shed int
}

func (s callsStep) failureRate() float64 { return float64(s.failed) / float64(s.calls) }

// achieved is the rate of successful calls: the start rate SIPp reached,
// times the share of calls that succeeded.
func (s callsStep) achieved() float64 {
	return s.reached * float64(s.successful) / float64(s.calls)
}

// passed reports whether the step counts: fewer failures than
// callsFailureLimit on either side at a rate SIPp sustained. A call the
// caller completed can still have failed for the callee (its 200 never
// acknowledged, its BYE never come); a SIP engineer counts it failed.
func (s callsStep) passed() bool {
	return s.failureRate() < callsFailureLimit && float64(s.uasFailed) < callsFailureLimit*float64(s.calls) &&
		s.reached >= callsSustainedShare*float64(s.rate)
}

// callsReport is one target's ladder.
type callsReport struct {
	target  callsTarget
	steps   []callsStep
	skipped string // why the target was not measured: it did not come up
	died    string // the server exited: when
}

// best returns the index of the highest passing step, -1 if none.
func (r *callsReport) best() int {
	b := -1
	for i, s := range r.steps {
		if s.passed() {
			b = i
		}
	}
	return b
}

// TestLoadCalls is the call load benchmark (see the comment at the top of
// this file): for each target, a SIPp UAS (uas_answer.xml) registers at
// the server as callsCallee; a SIPp UAC then calls it over UDP at rising
// rates, CALLMESH_LOAD_CALL_STEP per step, until two steps in a row fail
// (0.1% failed calls or more, or less than 95% of the rate reached). Per
// step it reports the rate offered, reached and achieved, failures, the
// p50/p99 of the time from the first INVITE to the 200, and the CPU of the
// server, of the UAC and of the UAS.
//
// The callmesh targets start the node with `callmesh run` and the
// configuration of its B2BUA. A target that does not come up (the node or
// the provider not becoming healthy) is a regression: its subtest fails
// with the process's own message, and the report lists it as not
// measured. It runs only with CALLMESH_LOAD=1 (make load-calls).
func TestLoadCalls(t *testing.T) {
	if os.Getenv("CALLMESH_LOAD") != "1" {
		t.Skip("call load benchmark: set CALLMESH_LOAD=1 (make load-calls)")
	}
	p := loadCallsPlan(t)
	callers := make([]user, callsCallers)
	for i := range callers {
		name := fmt.Sprintf("caller%04d", i)
		callers[i] = user{name: name, password: "pw-" + name}
	}
	callee := user{name: callsCallee, password: "pw-" + callsCallee}
	bin := &callsCallmeshBuild{dir: t.TempDir()}
	p.loadBefore = loadAvg()
	reports := make(map[string]*callsReport)
	for _, name := range p.targets {
		reports[name] = &callsReport{target: callsTarget{name: name, title: name}}
	}
	// start starts r's target; a target that does not come up is kept
	// for the report, written once every target has run (a failed
	// subtest does not stop the others).
	start := func(t *testing.T, r *callsReport) bool {
		tgt, err := startCallsTarget(t, r.target.name, bin, callers, callee)
		if err != nil {
			r.skipped = err.Error()
			t.Errorf("%s not measured: it did not come up: %v", r.target.name, err)
			return false
		}
		r.target = tgt
		return true
	}
	ran := make(map[string]bool)
	for _, name := range p.targets {
		if ran[name] {
			continue
		}
		ran[name] = true
		group, label := []*callsReport{reports[name]}, name
		if other := p.partner(name); other != "" && !ran[other] {
			ran[other] = true
			group, label = append(group, reports[other]), name+"+"+other
		}
		t.Run(label, func(t *testing.T) {
			var up []*callsReport
			for _, r := range group {
				if start(t, r) {
					up = append(up, r)
				}
			}
			if len(up) > 0 {
				callsLadders(t, up, p, callers, callee)
			}
		})
	}
	var ordered []*callsReport
	for _, name := range p.targets {
		ordered = append(ordered, reports[name])
	}
	p.loadAfter = loadAvg()
	md := callsMarkdown(p, ordered)
	for _, line := range strings.Split(md, "\n") {
		t.Log(line)
	}
	if out := os.Getenv("CALLMESH_LOAD_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
			t.Errorf("CALLMESH_LOAD_OUT: %v", err)
		}
	}
}

// startCallsTarget starts the server of target name. Only the callmesh
// targets return an error (a node or the provider would not come up): the
// caller records it for the report and fails; the others fail here.
func startCallsTarget(t *testing.T, name string, bin *callsCallmeshBuild, callers []user, callee user) (callsTarget, error) {
	t.Helper()
	switch name {
	case "kamailio", "kamailio-s2":
		s2 := name == "kamailio-s2"
		var k *kamailio
		tgt := callsTarget{name: name, scenario: "uac_call_noauth.xml", s2: s2}
		if s2 {
			k = startCallsKamailio(t, "WITH_AUTH")
			tgt.scenario = "uac_call.xml"
			tgt.title = callsKamailioTitle(k, "stateful proxy and registrar, digest (MD5) on REGISTER and INVITE, no media")
		} else {
			k = startCallsKamailio(t)
			tgt.title = callsKamailioTitle(k, "stateful proxy and registrar, no authentication")
		}
		tgt.addr, tgt.logTail, tgt.exited, tgt.pgid = k.addr, k.logTail, k.exited, k.pgid
		return tgt, nil
	case "callmesh-s1", "callmesh-s2":
		return startCallsCallmesh(t, bin, name == "callmesh-s2", callers, callee)
	case "callmesh-s1-b":
		b := os.Getenv("CALLMESH_LOAD_BIN_B")
		if b == "" {
			t.Fatal("target callmesh-s1-b: set CALLMESH_LOAD_BIN_B to the second build's binary")
		}
		tgt, err := startCallsCallmesh(t, &callsCallmeshBuild{bin: b}, false, callers, callee)
		tgt.name = name
		tgt.title = fmt.Sprintf("callmesh-s1-b: S1 as callmesh-s1, on the build %s (CALLMESH_LOAD_BIN_B)", filepath.Base(b))
		return tgt, err
	case "callmesh-fed":
		return startCallsFed(t, bin, callers, callee)
	}
	t.Fatalf("unknown target %q", name)
	return callsTarget{}, nil
}

// callsRun is one target's ladder in progress: its UAS registered at the
// server and running, and what the steps so far decided.
type callsRun struct {
	r               *callsReport
	p               callsPlan
	uas             *callSIPpProc
	uasPort, port   int
	lines           []string
	serverPorts     []int
	domain          string
	callee          user
	uasFailedBefore int
	failing         int // failing steps in a row
	attempt         int // of the step to run next
	done            bool
}

// startCallsRun registers the callee of r's target from a new SIPp UAS's
// port and starts that UAS, ready for the first step.
func startCallsRun(t *testing.T, r *callsReport, p callsPlan, callers []user, callee user) *callsRun {
	t.Helper()
	tgt := r.target
	c := &callsRun{r: r, p: p, domain: node.DefaultDomain, callee: callee, attempt: 1, uasPort: callsFreeSIPPort(t)}
	callsRegister(t, tgt.registrarAddr(), c.domain, "u1", c.uasPort, []user{callee})
	c.uas = startCallSIPp(t, callSIPp{scenario: "uas_answer.xml", transport: "u1", port: c.uasPort, load: true})
	time.Sleep(300 * time.Millisecond)
	if !c.uas.running() {
		o := c.uas.outcome(t)
		t.Fatalf("%s: UAS exited at once: %s", tgt.name, o.describe())
	}
	if tgt.ready != nil {
		if err := tgt.ready(); err != nil {
			t.Fatalf("%s: %v", tgt.name, err)
		}
	}
	c.lines = make([]string, len(callers))
	for i, cl := range callers {
		c.lines[i] = callsCallerLine(cl, callee.name, c.domain)
	}
	c.port = freeUDPPort(t)
	_, sp, _ := net.SplitHostPort(tgt.addr)
	serverPort, _ := strconv.Atoi(sp)
	c.serverPorts = tgt.serverUDPPorts(serverPort)
	return c
}

func (c *callsRun) stop() { c.uas.stop(10 * time.Second) }

// callsLadders runs the rising steps against the targets of rs, adding
// each step to its report. Two targets (a pair compared by a ratio) run
// step by step, one step of each at every rate, the first target first at
// the first rate and the order turning at each rate after, until both
// have ended. The machine's speed drifts by a third within minutes here;
// two ladders run one after the other meet different machines, so their
// ratio moves with the drift. Interleaved, the two steps at a rate are a
// minute apart at most, and neither target always follows the other's
// load.
func callsLadders(t *testing.T, rs []*callsReport, p callsPlan, callers []user, callee user) {
	t.Helper()
	runs := make([]*callsRun, len(rs))
	for i, r := range rs {
		runs[i] = startCallsRun(t, r, p, callers, callee)
		defer runs[i].stop()
	}
	for i, rate := range p.rates {
		order := slices.Clone(runs)
		if i%2 == 1 {
			slices.Reverse(order)
		}
		for j, c := range order {
			if c.done {
				continue
			}
			if j > 0 {
				// The server of the step just run finishes its calls
				// and transactions first: its work would be this
				// step's "other". (At j 0 the step before was this
				// target's own, the order having turned.)
				callsSettle(t, order[j-1].r.target)
			}
			for c.step(t, rate) {
			}
		}
		if !slices.ContainsFunc(runs, func(c *callsRun) bool { return !c.done }) {
			break
		}
	}
}

// callsSettleLimit is the most the other server of an interleaved pair may
// use before a step starts (cores over callsSettleSample), and
// callsSettleWait how long a step waits for it.
const (
	callsSettleLimit  = 0.05
	callsSettleSample = 500 * time.Millisecond
	callsSettleWait   = 15 * time.Second
)

// callsSettle waits until tgt's processes are nearly idle: less than
// callsSettleLimit cores over callsSettleSample, callsSettleWait at most.
func callsSettle(t *testing.T, tgt callsTarget) {
	deadline := time.Now().Add(callsSettleWait)
	var cores float64
	for time.Now().Before(deadline) {
		before, _ := tgt.times(allProcs())
		time.Sleep(callsSettleSample)
		after, _ := tgt.times(allProcs())
		cores = (after - before).Seconds() / callsSettleSample.Seconds()
		if cores < callsSettleLimit {
			return
		}
	}
	t.Logf("%s still used %.2f cores after %v: the next step starts beside it", tgt.name, cores, callsSettleWait)
}

// step runs one step of c's ladder at rate and adds it to the report. It
// returns true when the step is to be run again (other work took the cores
// it needed); c.done is set when the ladder has ended.
func (c *callsRun) step(t *testing.T, rate int) (again bool) {
	t.Helper()
	tgt, p, r, uas := c.r.target, c.p, c.r, c.uas
	calls := int(math.Round(float64(rate) * p.step.Seconds()))
	// The server's times and the rest of the machine's are read from
	// one snapshot of /proc at each end of the window.
	procs0, uas0 := allProcs(), uas.cpu()
	server0, sys0 := tgt.times(procs0)
	parts0 := tgt.partsCPU(procs0)
	drops0 := callsUDPDrops(append(c.serverPorts, c.uasPort)...)
	shed0 := tgt.shed(t)
	uac := startCallSIPp(t, callSIPp{
		scenario: tgt.scenario, remote: tgt.addr, transport: "u1", port: c.port,
		lines: c.lines, calls: calls, rate: rate, limit: callsOpenLimit,
		// For INVITE the digest uri is the Request-URI.
		args: []string{"-auth_uri", c.callee.name + "@" + c.domain},
		rtt:  true, load: true, timeout: p.step + time.Minute,
	})
	profiled, perfed := tgt.profileStep(t, rate, p.step), tgt.perfStep(t, rate, p.step)
	// CPU while the load is offered: over the step's length (calls
	// that hang until SIPp gives up on them must not dilute it).
	start := time.Now()
	select {
	case <-uac.done:
	case <-time.After(p.step):
	}
	window := time.Since(start)
	procs1, uasW, uacW := allProcs(), uas.cpu()-uas0, uac.cpu()
	server1, sys1 := tgt.times(procs1)
	serverW, sysW, partsW := server1-server0, sys1-sys0, tgt.partsCPU(procs1)
	otherW := callsOtherCPU(procs0, procs1, tgt.groups(), uac.cmd.Process.Pid, uas.cmd.Process.Pid, os.Getpid())
	uacDrops := callsUDPDrops(c.port)[c.port]
	if err := uac.wait(p.step + 2*time.Minute); err != nil {
		uac.kill()
		t.Fatal(err)
	}
	<-profiled
	<-perfed
	serverCPU, _ := tgt.times(allProcs())
	serverCPU -= server0
	drops := callsUDPDrops(append(c.serverPorts, c.uasPort)...)
	shed := tgt.shed(t)
	o := uac.outcome(t)
	times := sortedCopy(o.times)
	s := callsStep{
		rate: rate, calls: calls, successful: o.successful, failed: calls - o.successful, reached: o.started,
		p50: quantile(times, 0.50), p99: quantile(times, 0.99), mean: mean(times), max: quantile(times, 1),
		serverCores:    serverW.Seconds() / window.Seconds(),
		serverSysShare: sysW.Seconds() / serverW.Seconds(),
		uacCores:       uacW.Seconds() / window.Seconds(),
		uasCores:       uasW.Seconds() / window.Seconds(),
		partCores:      callsPartCores(parts0, partsW, window),
		otherCores:     otherW.Seconds() / window.Seconds(),
		uacErrors:      o.errors,
		drops:          [3]uint64{callsDropsSum(drops0, drops, c.serverPorts), uacDrops, drops[c.uasPort] - drops0[c.uasPort]},
		shed:           -1,
	}
	if shed0 >= 0 && shed >= 0 {
		s.shed = shed - shed0
	}
	if o.successful > 0 {
		s.serverCPUPerCall = ms(serverCPU) / float64(o.successful)
	}
	// The UAS counts a call when its timewait (2 s) is over and dumps
	// its statistics every second.
	time.Sleep(3500 * time.Millisecond)
	if !uas.running() {
		o := uas.outcome(t)
		t.Fatalf("%s: the UAS exited during the %d/s step: %s", tgt.name, rate, o.describe())
	}
	if _, f, err := uas.counts(); err == nil {
		s.uasFailed, c.uasFailedBefore = f-c.uasFailedBefore, f
	}
	r.steps = append(r.steps, s)
	if callsExited(tgt.exited) {
		// Its CPU time went with it.
		s.serverCores, s.serverCPUPerCall = math.NaN(), math.NaN()
		r.steps[len(r.steps)-1] = s
		r.died = fmt.Sprintf("the server exited during the %d/s step", rate)
		t.Errorf("%s: %s:\n%s", tgt.name, r.died, tgt.logTail())
		c.done = true
		return false
	}
	t.Logf("%s %5d/s: %d calls, %d ok, %d failed (%.3f%%), reached %.0f/s, achieved %.0f/s, p50 %.0f ms, p99 %.0f ms, mean %.1f ms, max %.0f ms, server %.2f cores (%.0f%% system, %.3f ms per call)%s, UAC %.2f cores (server/UAC %.2f), UAS %.2f cores, other %.2f cores, UAS failed %d, UDP drops %d/%d/%d%s",
		tgt.name, rate, calls, s.successful, s.failed, 100*s.failureRate(), s.reached, s.achieved(), s.p50, s.p99, s.mean, s.max,
		s.serverCores, 100*s.serverSysShare, s.serverCPUPerCall, callsPartsText(tgt, s), s.uacCores, s.perUAC(), s.uasCores, s.otherCores, s.uasFailed, s.drops[0], s.drops[1], s.drops[2], callsShedText(s.shed))
	s.attempt = c.attempt
	r.steps[len(r.steps)-1] = s
	if s.passed() {
		c.failing, c.attempt = 0, 1
		return false
	}
	if strings.Contains(tgt.logTail(), "could not allocate shared memory") {
		// Kamailio's tm keeps its transactions in shared memory (-m):
		// a step it fails for want of it measures the setting.
		t.Errorf("%s %d/s: the server ran out of shared memory (its log); raise kamailioShm", tgt.name, rate)
	}
	if s.otherCores > callsOtherLimit && c.attempt <= callsRetries {
		// Other work took the cores the step needed: not a result.
		t.Logf("%s %d/s: other processes used %.2f cores during the step: running it again in %v",
			tgt.name, rate, s.otherCores, callsRetryPause)
		r.steps = r.steps[:len(r.steps)-1]
		c.attempt++
		time.Sleep(callsRetryPause)
		return true
	}
	c.attempt = 1
	c.failing++
	if o.errors != "" {
		t.Logf("SIPp UAC errors:\n%s", shorten(o.errors, 1500))
	}
	if s.uasFailed > 0 {
		t.Logf("SIPp UAS errors (end):\n%s", callsShortenTail(callsLastLines(uas.errFile, 40), 1500))
	}
	if s.failed > 0 && tgt.logTail != nil {
		t.Logf("%s log:\n%s", tgt.name, tgt.logTail())
	}
	// Comparing two builds, every step of the list runs: a failed step
	// is a result for the comparison, not the end of a ladder.
	c.done = !c.p.ab() && c.failing >= callsFailingSteps
	return false
}

// callsMarkdown renders the reports as a Markdown section.
func callsMarkdown(p callsPlan, reports []*callsReport) string {
	var b strings.Builder
	rates := make([]string, len(p.rates))
	for i, r := range p.rates {
		rates[i] = strconv.Itoa(r)
	}
	fmt.Fprintf(&b, "Call load (`make load-calls`, %s): SIPp %s over UDP on 127.0.0.1; the UAC calls through the server one callee, "+
		"a SIPp UAS (uas_answer.xml) registered at the server; %d callers in turn; steps of %s at %s calls/s, "+
		"ending after %d failing steps in a row (a step fails with ≥ %.1f%% failed calls, as the UAC or the UAS counts them, or when SIPp reaches less than %.0f%% of its rate); "+
		"%d CPUs (runtime.NumCPU), %s.\n\n",
		time.Now().UTC().Format("2006-01-02"), sippVersion(), callsCallers, p.step, strings.Join(rates, ", "),
		callsFailingSteps, 100*callsFailureLimit, 100*callsSustainedShare, runtime.NumCPU(), runtime.Version())
	cmd := "CALLMESH_LOAD=1 go test -run '^TestLoadCalls$' -count=1 -v -timeout 40m ./itest/load/"
	if len(p.env) > 0 {
		cmd = strings.Join(p.env, " ") + " " + cmd
	}
	fmt.Fprintf(&b, "Command: `%s`; load average (1, 5, 15 min) %s before, %s after.\n\n", cmd, p.loadBefore, p.loadAfter)
	b.WriteString("- S1 (like for like): uac_call_noauth.xml, INVITE with SDP → 100 → 180 → 200 → ACK → BYE → 200, no RTP, -d 0, callers not challenged.\n" +
		"- S2: uac_call.xml, INVITE → 407 → ACK → INVITE with digest (MD5) → 100 → 180 → 200 → ACK → BYE → 200; callmesh anchors the media.\n" +
		"- Response time: from the first INVITE to the 200 (both transactions in S2), as SIPp measures it; its clock ticks about every 4 ms, " +
		"so 0 means under 4 ms; SIPp retransmits an INVITE after 500 ms, so a p99 of 500 ms or more means 1% of the calls or more needed one. " +
		"Reached: the rate at which SIPp started calls; achieved: reached × the share of successful calls. CPU: cores used during the step's " +
		"length from its start (server: every process of it; UAC and UAS: each SIPp); server system share: the part of the server's CPU " +
		"spent in the kernel (system time in /proc: mostly its sends and receives; rough, as the kernel splits by clock ticks), the rest being its own code; CPU per call: the server's CPU time from the start of the step " +
		"until the UAC ended, over the successful calls; other CPU: every other process on the machine (other work sharing the " +
		"cores: more than a few hundredths makes the step's figures doubtful; a failing step with more than " +
		strconv.FormatFloat(callsOtherLimit, 'f', 2, 64) + " is run again, up to " + strconv.Itoa(callsRetries) + " times, and shown as \"(run N)\"). " +
		"UAS failed: calls the UAS counted failed (answered but never ended properly). UDP drops: datagrams the kernel dropped, " +
		"receive buffer full, on the server's SIP socket (during the UAC's run), the UAC's (until the step's length) and the UAS's. " +
		"INVITEs shed (callmesh only): new INVITEs the node dropped unanswered while its SIP socket's backlog was over calls.overload_backlog " +
		"(30 % of its buffer by default, then a share growing to all at 65 %); SIPp sends each again after 500 ms, so a shed INVITE delays its call (its response time counts from the first INVITE) " +
		"and fails it only if every retransmission is shed too. " +
		"Server/UAC: the server's CPU over the UAC SIPp's in the same step. The UAC sends and parses the same calls whatever server it calls, " +
		"so this quotient is the server's cost per call in a unit that follows the machine's speed, which drifts by a third within minutes here. " +
		"It is not the machine's alone: the UAC spends less per call on a server that answers in bursts (it wakes less often), " +
		"and a server started cold has a higher quotient in its first steps.\n")
	for _, pair := range callsPairs {
		if p.partner(pair[0]) != "" {
			fmt.Fprintf(&b, "- %s and %s ran interleaved, both up at once: at each rate one step of each, the order turning at each rate, "+
				"each step after the other server had settled (under %.2f cores over %v), so that the two meet the same machine.\n",
				pair[0], pair[1], callsSettleLimit, callsSettleSample)
		}
	}
	for _, r := range reports {
		fmt.Fprintf(&b, "\n#### %s\n\n", r.target.title)
		if r.skipped != "" {
			fmt.Fprintf(&b, "Not measured, it did not come up (a failure): %s\n", callsOneLine(r.skipped, 400))
			continue
		}
		for _, n := range r.target.notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		if len(r.target.notes) > 0 {
			b.WriteString("\n")
		}
		head := []string{"offered /s", "reached /s", "achieved /s", "calls", "successful", "failed", "failures",
			"p50 ms", "p99 ms", "mean ms", "max ms"}
		for _, p := range r.target.parts {
			head = append(head, p.name+" CPU")
		}
		head = append(head, "server CPU", "server system share", "server CPU per call", "UAC SIPp CPU", "server/UAC", "UAS SIPp CPU", "other CPU", "UAS failed",
			"UDP drops server/UAC/UAS")
		counted := len(r.target.admins) > 0 // its nodes count what they shed
		if counted {
			head = append(head, "INVITEs shed")
		}
		b.WriteString("| " + strings.Join(head, " | ") + " |\n|" + strings.Repeat(" --- |", len(head)) + "\n")
		for _, s := range r.steps {
			offered := strconv.Itoa(s.rate)
			if s.attempt > 1 {
				offered += fmt.Sprintf(" (run %d)", s.attempt)
			}
			fmt.Fprintf(&b, "| %s | %.0f | %.0f | %d | %d | %d | %.3f%% | %.0f | %.0f | %.2f | %.0f |",
				offered, s.reached, s.achieved(), s.calls, s.successful, s.failed, 100*s.failureRate(), s.p50, s.p99, s.mean, s.max)
			for i := range r.target.parts {
				c := math.NaN()
				if i < len(s.partCores) {
					c = s.partCores[i]
				}
				fmt.Fprintf(&b, " %.2f |", c)
			}
			fmt.Fprintf(&b, " %.2f | %.0f%% | %.3f ms | %.2f | %.2f | %.2f | %.2f | %d | %d/%d/%d |",
				s.serverCores, 100*s.serverSysShare, s.serverCPUPerCall, s.uacCores, s.perUAC(), s.uasCores, s.otherCores, s.uasFailed,
				s.drops[0], s.drops[1], s.drops[2])
			if counted {
				if s.shed < 0 {
					b.WriteString(" n/a |")
				} else {
					fmt.Fprintf(&b, " %d |", s.shed)
				}
			}
			b.WriteString("\n")
		}
		b.WriteString("\n")
		if r.died != "" {
			fmt.Fprintf(&b, "**%s** (its log has the reason); that step's figures are not valid.\n", strings.ToUpper(r.died[:1])+r.died[1:])
		}
		best := r.best()
		if best < 0 {
			fmt.Fprintf(&b, "No step passed (< %.1f%% failures at ≥ %.0f%% of the rate).\n", 100*callsFailureLimit, 100*callsSustainedShare)
			continue
		}
		s := r.steps[best]
		ended := "it was the ladder's last step"
		if best < len(r.steps)-1 {
			n := r.steps[best+1]
			ended = fmt.Sprintf("at %d/s %.2f%% failed and SIPp reached %.0f/s", n.rate, 100*n.failureRate(), n.reached)
		}
		fmt.Fprintf(&b, "Highest rate with < %.1f%% failures, sustained: **%d/s**, p99 %.0f ms, server %.2f cores; %s.\n",
			100*callsFailureLimit, s.rate, s.p99, s.serverCores, ended)
		for i := range best {
			if !r.steps[i].passed() {
				fmt.Fprintf(&b, "(A lower step failed: %d/s.)\n", r.steps[i].rate)
			}
		}
	}
	b.WriteString("\n#### Summary\n\n")
	for _, pair := range [][2]string{{"callmesh-s1", "kamailio"}, {"callmesh-s2", "kamailio-s2"}} {
		cm, km := callsFind(reports, pair[0]), callsFind(reports, pair[1])
		if cm == nil && km == nil {
			continue
		}
		scen := "S1"
		if strings.HasSuffix(pair[0], "s2") {
			scen = "S2"
		}
		fmt.Fprintf(&b, "- %s, highest rate with < %.1f%% failures: callmesh %s, Kamailio %s, ratio %s.\n",
			scen, 100*callsFailureLimit, callsBestText(cm), callsBestText(km), callsRatio(cm, km))
		if x, y, n := callsCostPerUAC(cm, km); n > 0 {
			fmt.Fprintf(&b, "- %s, CPU per call against the UAC's (server/UAC, mean of the %d rates from %d/s that both passed): "+
				"callmesh %.2f, Kamailio %.2f: callmesh spends %.2f× Kamailio's CPU per call.\n", scen, n, callsCostFrom, x, y, x/y)
		}
	}
	b.WriteString(callsABSummary(callsFind(reports, "callmesh-s1"), callsFind(reports, "callmesh-s1-b")))
	b.WriteString(callsFedSummary(reports))
	return b.String()
}

// callsABSummary compares two builds run as callmesh-s1 (A) and
// callmesh-s1-b (B), interleaved: step i of one against step i of the
// other, where both passed. The machine's speed drifts within minutes,
// and the two steps of a pair ran within seconds of each other, so the
// quotient of their server/UAC is the measure; its mean and its standard
// error say whether a difference of a few per cent is the builds'.
//
// The quotient assumes the UAC spends the same on either build's calls.
// It does not when one build answers later: the UAC then retransmits and
// keeps more calls open, and spends more, which lowers that build's
// quotient without its own CPU per call changing. So the summary also
// gives the UAC's CPU and the server's CPU per call, B over A pair by
// pair: a UAC quotient away from 1 by more than its error, with the
// server's CPU per call not moving with server/UAC, says the quotient is
// the UAC's.
func callsABSummary(a, b *callsReport) string {
	if a == nil || b == nil || a.skipped != "" || b.skipped != "" {
		return ""
	}
	var qs, uac, per []float64
	var sa, sb float64
	for i := range min(len(a.steps), len(b.steps)) {
		x, y := a.steps[i], b.steps[i]
		if x.rate != y.rate || !x.passed() || !y.passed() || math.IsNaN(x.perUAC()) || math.IsNaN(y.perUAC()) {
			continue
		}
		qs = append(qs, y.perUAC()/x.perUAC())
		uac = append(uac, y.uacCores/x.uacCores)
		per = append(per, y.serverCPUPerCall/x.serverCPUPerCall)
		sa += x.perUAC()
		sb += y.perUAC()
	}
	failed := func(r *callsReport) (n int) {
		for _, s := range r.steps {
			if !s.passed() {
				n++
			}
		}
		return n
	}
	steps := fmt.Sprintf("steps failed: %d of %d (A), %d of %d (B)", failed(a), len(a.steps), failed(b), len(b.steps))
	n := float64(len(qs))
	if n == 0 {
		return "- S1, build B against build A: no pair of steps both passed; " + steps + ".\n"
	}
	mean, se := meanSE(qs)
	um, use := meanSE(uac)
	pm, pse := meanSE(per)
	return fmt.Sprintf("- S1, build B (callmesh-s1-b) against build A (callmesh-s1), %d pairs of steps both passed: "+
		"server/UAC %.3f (B) against %.3f (A); B over A, pair by pair, %.3f ± %.3f (mean ± standard error): "+
		"B spends %+.1f %% of A's CPU per call; %s. B over A, pair by pair, of the UAC's CPU %.3f ± %.3f "+
		"and of the server's CPU per call %.3f ± %.3f.\n",
		len(qs), sb/n, sa/n, mean, se, 100*(mean-1), steps, um, use, pm, pse)
}

// meanSE is the mean of xs and its standard error (0 for fewer than two).
func meanSE(xs []float64) (mean, se float64) {
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	if len(xs) < 2 {
		return mean, 0
	}
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(ss / float64(len(xs)-1) / float64(len(xs)))
}

// perUAC is the server's CPU over the UAC SIPp's (NaN without either).
func (s callsStep) perUAC() float64 {
	if !(s.uacCores > 0) || math.IsNaN(s.serverCores) {
		return math.NaN()
	}
	return s.serverCores / s.uacCores
}

// callsCostFrom is the lowest rate the cost comparison takes: below it a
// server's fixed costs (timers, idle readers) weigh on the quotient.
const callsCostFrom = 2000

// callsCostPerUAC compares two targets' cost per call in the UAC's unit:
// the means of server/UAC over the rates from callsCostFrom that both
// passed, and how many there were.
func callsCostPerUAC(cm, km *callsReport) (x, y float64, n int) {
	if cm == nil || km == nil || cm.skipped != "" || km.skipped != "" {
		return 0, 0, 0
	}
	passed := make(map[int]float64)
	for _, s := range km.steps {
		if s.rate >= callsCostFrom && s.passed() && !math.IsNaN(s.perUAC()) {
			passed[s.rate] = s.perUAC()
		}
	}
	for _, s := range cm.steps {
		if k, ok := passed[s.rate]; ok && s.passed() && !math.IsNaN(s.perUAC()) {
			x += s.perUAC()
			y += k
			n++
			delete(passed, s.rate) // a step run again counts once
		}
	}
	if n == 0 {
		return 0, 0, 0
	}
	return x / float64(n), y / float64(n), n
}

func callsFind(reports []*callsReport, name string) *callsReport {
	for _, r := range reports {
		if r.target.name == name {
			return r
		}
	}
	return nil
}

// callsBestRate returns the highest passing rate of r, 0 if none or not
// measured.
func callsBestRate(r *callsReport) int {
	if r == nil || r.skipped != "" {
		return 0
	}
	if b := r.best(); b >= 0 {
		return r.steps[b].rate
	}
	return 0
}

func callsBestText(r *callsReport) string {
	switch {
	case r == nil:
		return "not run"
	case r.skipped != "":
		return "not measured"
	case r.best() < 0:
		return "none passed"
	}
	return fmt.Sprintf("%d/s", callsBestRate(r))
}

func callsRatio(cm, km *callsReport) string {
	x, y := callsBestRate(cm), callsBestRate(km)
	if x == 0 || y == 0 {
		return "n/a"
	}
	return fmt.Sprintf("X/Y = %d/%d = %.2f", x, y, float64(x)/float64(y))
}

// callsOneLine joins the lines of s and shortens it to n bytes.
func callsOneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// callsExited reports whether ch, if any, is closed.
func callsExited(ch <-chan struct{}) bool {
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
