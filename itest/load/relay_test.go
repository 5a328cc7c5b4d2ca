//go:build linux

package load

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/callmesh/callmesh/media"
	"github.com/callmesh/callmesh/media/kpath"
	"github.com/callmesh/callmesh/media/mediatest"
)

const (
	// relayP99Limit and no loss at all are what a step must meet.
	relayP99Limit = time.Millisecond
	// relayOfferedShare: a step in which the generator sent less than this
	// share of its packets (it fell behind its schedule) does not count.
	relayOfferedShare = 0.99
	// relayWarmup runs before each measured window: sockets are latched,
	// caches and buffers warm.
	relayWarmup = time.Second
	// relayOtherLimit: a step during which work outside the benchmark
	// used more than this many cores (others share the machine) is run
	// again, up to relayAttempts times in all; the last run counts.
	relayOtherLimit = 0.1
	relayAttempts   = 4
	// relayLagNote: a step in which the generator's senders were later
	// than this on their schedule (p99) is marked: the generator (at low
	// priority) waited for the cores, and the relay got the load in
	// bursts. The packets were still sent (see relayOfferedShare) and
	// their latency counts from the moment they were sent.
	relayLagNote = 20 * time.Millisecond
	// relayDrain is how long the generator keeps reading after it stops
	// sending: a packet of the window not received by then is lost.
	relayDrain = 500 * time.Millisecond
	// relayPortBase is the first RTP port of the relays under test; each
	// gets 4 ports per call (RTP and RTCP on both legs). The range stays
	// below the kernel's ephemeral ports (32768 and up) and, up to 2,000
	// calls, below the ranges of other packages' tests (21000 and up).
	relayPortBase = 2000
	// relayHelperEnv tells the test binary, re-executed, to host the
	// callmesh relay (TestRelayHelperProcess); its value is the port range
	// and the sweep interval.
	relayHelperEnv = "CALLMESH_RELAY_HELPER"
	// kernelUnavailable starts the helper's error when the kernel fast path
	// cannot load on this machine (as opposed to a defect in it, which
	// fails the run).
	kernelUnavailable = "kernel fast path unavailable"
	// relayHelperSweep overrides the callmesh relay's sweep interval
	// (media.Config.Sweep; 0 keeps DefaultConfig's 1 s). The figures in
	// BENCHMARKS.md were taken with an hourly sweep, before the relay hid
	// sessions still binding their ports from its sweeper.
	relayHelperSweep time.Duration = 0
)

// defaultRelayCalls are the rising steps, in concurrent calls.
var defaultRelayCalls = []int{100, 200, 250, 300, 350, 400, 450, 500, 600, 700, 800, 1000, 1250, 1500, 2000}

// relayPlan is what a run measures.
type relayPlan struct {
	calls   []int
	measure time.Duration
	relays  []string
	nice    int // of the generator's threads
}

func loadRelayPlan(t *testing.T) relayPlan {
	t.Helper()
	p := relayPlan{calls: defaultRelayCalls, measure: 10 * time.Second, relays: []string{"callmesh", "callmesh-kernel", "rtpengine", "direct"}, nice: genNice}
	p.calls = envCounts(t, "CALLMESH_LOAD_CALLS", p.calls)
	if s := os.Getenv("CALLMESH_LOAD_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1200 {
			t.Fatalf("CALLMESH_LOAD_SECONDS=%q: want whole seconds from 1 to 1200", s)
		}
		p.measure = time.Duration(n) * time.Second
	}
	if s := os.Getenv("CALLMESH_LOAD_NICE"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 19 {
			t.Fatalf("CALLMESH_LOAD_NICE=%q: want a niceness from 0 to 19", s)
		}
		p.nice = n
	}
	if s := os.Getenv("CALLMESH_LOAD_RELAYS"); s != "" {
		p.relays = nil
		for _, f := range strings.Split(s, ",") {
			switch f = strings.TrimSpace(f); f {
			case "callmesh", "callmesh-kernel", "rtpengine", "direct":
				p.relays = append(p.relays, f)
			default:
				t.Fatalf("CALLMESH_LOAD_RELAYS=%q: unknown relay %q (callmesh, callmesh-kernel, rtpengine, direct)", s, f)
			}
		}
	}
	return p
}

// relayTarget is what the generator's calls go through.
type relayTarget struct {
	name, title string
	notes       []string
	// setup opens one session per call of g and connects g's endpoints
	// to where the relay wants their media.
	setup func(step int, g *generator) error
	// teardown ends the sessions of the step.
	teardown func() error
	// cpu is the relay process's CPU time so far; nil for no relay.
	cpu func() time.Duration
	// ports are the relay's RTP port range, for its socket drops.
	portMin, portMax int
	// counters, when set, describes the relay's own counts.
	counters func() string
	logTail  func() string
}

// relayStep is one measured step.
type relayStep struct {
	calls      int
	res        *genResult
	relayCPU   time.Duration
	allCPU     time.Duration // of the whole machine
	hasCPU     bool
	setup      time.Duration
	relayDrops uint64 // datagrams the kernel dropped on the relay's sockets (full buffer)
	genDrops   uint64 // and on the generator's
	counters   string
	attempts   int
}

// disturbed says that other work competed for the cores during the step.
func (s relayStep) disturbed() bool { return s.otherCores() > relayOtherLimit }

// target is the packet rate asked for, both directions.
func (s relayStep) target() float64 { return float64(2*s.calls) * float64(time.Second/genPeriod) }

func (s relayStep) offered() float64 { return float64(s.res.totalSent()) / s.res.window.Seconds() }

func (s relayStep) lost() uint64 { return s.res.totalSent() - s.res.totalGot() }

func (s relayStep) lossRate() float64 {
	if s.res.totalSent() == 0 {
		return 0
	}
	return float64(s.lost()) / float64(s.res.totalSent())
}

// failures names the criteria the step missed; none: it passed.
func (s relayStep) failures() []string {
	var f []string
	if s.lost() > 0 {
		f = append(f, "loss")
	}
	if s.res.latency.quantile(0.99) > relayP99Limit {
		f = append(f, "p99 > 1 ms")
	}
	if s.offered() < relayOfferedShare*s.target() {
		f = append(f, "generator behind")
	}
	if s.res.stray > 0 || s.res.dups > 0 {
		f = append(f, "stray or duplicate packets")
	}
	if s.res.sendErrs > 0 {
		f = append(f, "send errors")
	}
	return f
}

func (s relayStep) passed() bool { return len(s.failures()) == 0 }

// relayReport is one relay's ladder.
type relayReport struct {
	t     relayTarget
	steps []relayStep
	done  bool
}

// TestLoadRelay is the media relay load benchmark: concurrent calls, each
// two RTP streams of 20 ms PCMU at 50 packets/s (one each way), relayed by
// a callmesh media.Relay in a process of its own and by rtpengine with
// userspace forwarding, in rising steps of calls, interleaved, on the same
// cores and in the same run; "direct" sends the same load from endpoint to
// endpoint with no relay, the floor of the generator and the kernel. A step
// passes when no packet of its measured window is lost and the p99 of the
// one-way latency is at most 1 ms; a relay's ladder ends at its first
// failed step.
//
// It runs only with CALLMESH_LOAD=1 (make load-media). Settings, all
// optional:
//
//	CALLMESH_LOAD_CALLS    the steps, e.g. "250,500,1000"
//	CALLMESH_LOAD_SECONDS  measured seconds per step (default 10), after 1 s of warm-up
//	CALLMESH_LOAD_RELAYS   which, in order (default "callmesh,callmesh-kernel,rtpengine,direct")
//	CALLMESH_LOAD_NICE     niceness of the generator's threads (default 19)
//	CALLMESH_LOAD_OUT      file to write the results to as Markdown
//	CALLMESH_LOAD_PROFILE  directory for a CPU profile of the callmesh relay process, whole run
//	CALLMESH_LOAD_WORKERS  media.workers of the callmesh relay (default: its own default)
func TestLoadRelay(t *testing.T) {
	if os.Getenv("CALLMESH_LOAD") != "1" {
		t.Skip("load benchmark: set CALLMESH_LOAD=1 (make load-media)")
	}
	p := loadRelayPlan(t)
	maxCalls := slices.Max(p.calls)
	span := 4*maxCalls + 200 // ports per relay, with room for ports others hold
	loadBefore := loadAvg()

	var reports []*relayReport
	var missing []string
	next := relayPortBase
	for _, name := range p.relays {
		var rt relayTarget
		switch name {
		case "callmesh", "callmesh-kernel":
			h, err := startRelayHelper(t, next, next+span-1, name == "callmesh-kernel")
			if err != nil && name == "callmesh-kernel" && strings.Contains(err.Error(), kernelUnavailable) {
				msg := "the kernel fast path does not load here (it needs Linux 6.6+, CAP_BPF and CAP_NET_ADMIN): callmesh-kernel is not measured"
				t.Logf("%s: %v", msg, err)
				missing = append(missing, msg)
				continue
			}
			if err != nil {
				t.Fatalf("%s relay process: %v", name, err)
			}
			rt = h.target()
			next += span
		case "rtpengine":
			bin := findRTPEngine()
			if bin == "" {
				msg := "rtpengine is not installed (Debian package rtpengine-daemon; make load-media installs it): callmesh is measured alone"
				t.Log(msg)
				missing = append(missing, msg)
				continue
			}
			e, err := startRTPEngine(t, bin, next, next+span-1)
			if err != nil {
				t.Fatalf("rtpengine: %v", err)
			}
			rt = e.target()
			next += span
		case "direct":
			rt = directTarget()
		}
		reports = append(reports, &relayReport{t: rt})
	}

	for i, calls := range p.calls {
		ran := false
		for _, r := range reports {
			if r.done {
				continue
			}
			ran = true
			var s relayStep
			for attempt := 1; ; attempt++ {
				s = runRelayStep(t, r.t, 10*i+attempt, calls, p)
				s.attempts = attempt
				if !s.disturbed() || attempt == relayAttempts {
					break
				}
				t.Logf("%-9s %5d calls: other work used %.2f cores during the step (%s): running it again",
					r.t.name, calls, s.otherCores(), s.verdict())
				time.Sleep(2 * time.Second)
			}
			r.steps = append(r.steps, s)
			res := s.res
			t.Logf("%-9s %5d calls: offered %.0f/s of %.0f/s, sent %d, received %d, lost %d (A→B %d, B→A %d), p50 %v, p90 %v, p99 %v, p99.9 %v, max %v, relay %s, generator %.2f cores, others %.2f cores, sender lag p99 %v, socket drops relay %d generator %d, set up in %v%s: %s",
				r.t.name, calls, s.offered(), s.target(), res.totalSent(), res.totalGot(), s.lost(), res.lost(dirAB), res.lost(dirBA),
				res.latency.quantile(0.5), res.latency.quantile(0.9), res.latency.quantile(0.99), res.latency.quantile(0.999), res.latency.max,
				s.relayCores(), s.genCores(), s.otherCores(),
				res.lag.quantile(0.99), s.relayDrops, s.genDrops, s.setup.Round(time.Millisecond), s.countersText(), s.verdict())
			if !s.passed() {
				r.done = true
				if r.t.logTail != nil {
					if tail := r.t.logTail(); tail != "" {
						t.Logf("%s log:\n%s", r.t.name, tail)
					}
				}
			}
			time.Sleep(time.Second)
		}
		if !ran {
			break
		}
	}

	md := relayMarkdown(p, reports, missing, loadBefore, loadAvg())
	for _, line := range strings.Split(md, "\n") {
		t.Log(line)
	}
	if out := os.Getenv("CALLMESH_LOAD_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
			t.Errorf("CALLMESH_LOAD_OUT: %v", err)
		}
	}
}

// runRelayStep runs calls calls through rt for one step.
func runRelayStep(t *testing.T, rt relayTarget, step, calls int, p relayPlan) relayStep {
	t.Helper()
	g, err := newGenerator(calls)
	if err != nil {
		t.Fatalf("generator of %d calls: %v", calls, err)
	}
	g.nice = p.nice
	defer g.close()
	s := relayStep{calls: calls}
	start := time.Now()
	if err := rt.setup(step, g); err != nil {
		tail := ""
		if rt.logTail != nil {
			tail = "\n" + rt.logTail()
		}
		t.Fatalf("%s: setting up %d calls: %v%s", rt.name, calls, err, tail)
	}
	s.setup = time.Since(start)
	var cpu0, all0 time.Duration
	s.res, err = g.run(relayWarmup, p.measure, relayDrain, func(start bool) {
		if start {
			all0 = systemCPU()
			if rt.cpu != nil {
				cpu0 = rt.cpu()
			}
			return
		}
		if rt.cpu != nil {
			s.relayCPU, s.hasCPU = rt.cpu()-cpu0, true
		}
		s.allCPU = systemCPU() - all0
	})
	if err != nil {
		t.Fatalf("%s, %d calls: %v", rt.name, calls, err)
	}
	genPorts := make(map[uint16]bool, len(g.eps))
	for _, ep := range g.eps {
		genPorts[ep.addr.Port()] = true
	}
	s.relayDrops, s.genDrops = udpDrops(rt.portMin, rt.portMax, genPorts)
	if rt.counters != nil {
		s.counters = rt.counters()
	}
	if err := rt.teardown(); err != nil {
		t.Fatalf("%s: ending %d calls: %v", rt.name, calls, err)
	}
	return s
}

func (s relayStep) relayCores() string {
	if !s.hasCPU {
		return "—"
	}
	return fmt.Sprintf("%.2f cores", s.relayCPU.Seconds()/s.res.window.Seconds())
}

func (s relayStep) genCores() float64 { return s.res.genCPU.Seconds() / s.res.window.Seconds() }

// otherCores is the CPU the rest of the machine used over the window:
// all of it less the relay's and the generator's (other work than the
// benchmark's disturbs it).
func (s relayStep) otherCores() float64 {
	return max(s.allCPU-s.relayCPU-s.res.genCPU, 0).Seconds() / s.res.window.Seconds()
}

func (s relayStep) countersText() string {
	if s.counters == "" {
		return ""
	}
	return ", relay counters " + s.counters
}

func (s relayStep) verdict() string {
	v := "passed"
	if f := s.failures(); len(f) > 0 {
		v = "failed: " + strings.Join(f, ", ")
	}
	if lag := s.res.lag.quantile(0.99); lag > relayLagNote {
		v += fmt.Sprintf(" (generator lagged %v)", lag.Round(time.Millisecond))
	}
	if s.attempts > 1 {
		v += fmt.Sprintf(" (run %d)", s.attempts)
	}
	if s.disturbed() {
		v += " (disturbed)"
	}
	return v
}

// directTarget connects each call's endpoints to each other.
func directTarget() relayTarget {
	return relayTarget{
		name:  "direct",
		title: "direct: no relay, endpoint to endpoint (the generator's and the kernel's own share)",
		setup: func(_ int, g *generator) error {
			for c := 0; c < g.calls; c++ {
				if err := g.connect(2*c, g.addr(2*c+1)); err != nil {
					return err
				}
				if err := g.connect(2*c+1, g.addr(2*c)); err != nil {
					return err
				}
			}
			return nil
		},
		teardown: func() error { return nil },
	}
}

func (e *rtpengine) target() relayTarget {
	return relayTarget{
		name: "rtpengine",
		title: fmt.Sprintf("rtpengine %s (Debian rtpengine-daemon): userspace forwarding (--table=-1), default worker threads (one per CPU)",
			e.version),
		notes: []string{"started as `rtpengine --config-file=none --table=-1 --interface=127.0.0.1 --listen-ng=127.0.0.1:PORT " +
			"--foreground --log-stderr --log-level=4 --port-min=… --port-max=… --delete-delay=0`; calls set up with NG offer and answer " +
			"(SDP: one PCMU audio stream, sendrecv), deleted after each step"},
		setup:    e.setup,
		teardown: e.teardown,
		cpu:      e.cpu,
		logTail:  e.logTail,
	}
}

// relayHelper is the callmesh relay in a process of its own: the test
// binary re-executed (TestRelayHelperProcess), driven by lines on its
// standard input and output.
type relayHelper struct {
	pid              int
	in               io.WriteCloser
	out              *bufio.Reader
	exited           chan struct{}
	logFile          string
	portMin, portMax int
	kernel           bool // media.kernel on
	forwarded        uint64
	dropped          uint64
	sendErrors       uint64
	kernelForwarded  uint64
	unrecorded       uint64
}

// startRelayHelper starts the helper process with a relay on 127.0.0.1,
// production defaults (media.DefaultConfig) and RTP ports in [portMin,
// portMax], with the kernel fast path (media.kernel on) if kernel. The
// test's cleanup stops it.
func startRelayHelper(t *testing.T, portMin, portMax int, kernel bool) (*relayHelper, error) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	h := &relayHelper{exited: make(chan struct{}), logFile: filepath.Join(t.TempDir(), "relay.log"), portMin: portMin, portMax: portMax, kernel: kernel}
	logf, err := os.Create(h.logFile)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(exe, "-test.run=^TestRelayHelperProcess$", "-test.count=1")
	spec := fmt.Sprintf("%s=%d-%d,%v", relayHelperEnv, portMin, portMax, relayHelperSweep)
	if kernel {
		spec += ",kernel"
	}
	cmd.Env = append(os.Environ(), spec)
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if h.in, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	h.out = bufio.NewReader(stdout)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	h.pid = cmd.Process.Pid
	go func() { _ = cmd.Wait(); close(h.exited) }()
	t.Cleanup(h.stop)
	line, err := h.out.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready") {
		return nil, fmt.Errorf("no ready line (%q, %v):\n%s", line, err, h.logTail())
	}
	return h, nil
}

// request sends one command and returns the fields of its "ok" reply.
func (h *relayHelper) request(cmd string) ([]string, error) {
	if _, err := io.WriteString(h.in, cmd+"\n"); err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	line, err := h.out.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("%s: %w\n%s", cmd, err, h.logTail())
	}
	f := strings.Fields(line)
	if len(f) == 0 || f[0] != "ok" {
		return nil, fmt.Errorf("%s: %s", cmd, strings.TrimSpace(line))
	}
	return f[1:], nil
}

func (h *relayHelper) stop() {
	_, _ = h.request("quit")
	_ = h.in.Close()
	select {
	case <-h.exited:
	case <-time.After(10 * time.Second):
	}
	_ = syscall.Kill(-h.pid, syscall.SIGKILL)
	<-h.exited
}

func (h *relayHelper) logTail() string {
	data, _ := os.ReadFile(h.logFile)
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}

// setup opens a session per call: leg A faces endpoint A, leg B endpoint B.
func (h *relayHelper) setup(step int, g *generator) error {
	for c := 0; c < g.calls; c++ {
		f, err := h.request(fmt.Sprintf("open load-%d-%d %s %s", step, c, g.addr(2*c), g.addr(2*c+1)))
		if err != nil {
			return err
		}
		if len(f) != 2 {
			return fmt.Errorf("open: reply %q", f)
		}
		for i, side := range []int{2 * c, 2*c + 1} {
			local, err := netip.ParseAddrPort(f[i])
			if err != nil {
				return fmt.Errorf("open: reply %q: %v", f, err)
			}
			if err := g.connect(side, local); err != nil {
				return err
			}
		}
	}
	return nil
}

func (h *relayHelper) teardown() error {
	_, err := h.request("close")
	return err
}

// counters reports the relay's own counts since the last call.
func (h *relayHelper) counters() string {
	f, err := h.request("counters")
	if err != nil || len(f) != 5 {
		return fmt.Sprintf("(%v)", err)
	}
	var v [5]uint64
	for i := range v {
		v[i], _ = strconv.ParseUint(f[i], 10, 64)
	}
	s := fmt.Sprintf("forwarded %d, dropped %d, send errors %d", v[0]-h.forwarded, v[1]-h.dropped, v[2]-h.sendErrors)
	if h.kernel {
		s += fmt.Sprintf(" (by the kernel %d, unrecorded %d)", v[3]-h.kernelForwarded, v[4]-h.unrecorded)
	}
	h.forwarded, h.dropped, h.sendErrors, h.kernelForwarded, h.unrecorded = v[0], v[1], v[2], v[3], v[4]
	return s
}

// helperWorkers is the helper's media.workers: CALLMESH_LOAD_WORKERS, which
// it inherits, or the relay's default.
func helperWorkers() string {
	if v := os.Getenv("CALLMESH_LOAD_WORKERS"); v != "" {
		return v
	}
	return "default"
}

func sweepNote() string {
	if relayHelperSweep <= 0 {
		return fmt.Sprintf("sweep interval: DefaultConfig's %v", media.DefaultConfig().Sweep)
	}
	return fmt.Sprintf("sweep interval %v instead of DefaultConfig's %v", relayHelperSweep, media.DefaultConfig().Sweep)
}

func (h *relayHelper) target() relayTarget {
	name, title := "callmesh", "callmesh media.Relay in a process of its own"
	notes := []string{"the test binary re-executed (TestRelayHelperProcess), driven over its standard input: per call one " +
		"session, both legs signalled (RTP address of the endpoint, sendrecv); sessions closed after each step",
		sweepNote()}
	if h.kernel {
		name, title = "callmesh-kernel", "callmesh media.Relay with the kernel fast path (media.kernel on) in a process of its own"
		notes = append(notes, "the eBPF program at the loopback device's ingress forwards each side's RTP once the side is latched, "+
			"in the context of the sender's system call: its CPU is counted in the generator's, not the relay's, and the "+
			"relay process only reads the program's records into its statistics")
	}
	return relayTarget{
		name: name,
		title: fmt.Sprintf("%s (media.DefaultConfig: %d KiB socket buffers; GOMAXPROCS %d; media.workers %s)",
			title, media.DefaultConfig().SocketBuffer>>10, runtime.GOMAXPROCS(0), helperWorkers()),
		notes:    notes,
		setup:    h.setup,
		teardown: h.teardown,
		cpu:      func() time.Duration { return pidCPU(h.pid) },
		portMin:  h.portMin,
		portMax:  h.portMax,
		counters: h.counters,
		logTail:  h.logTail,
	}
}

// TestRelayHelperProcess hosts the callmesh relay for TestLoadRelay when
// the test binary is re-executed with CALLMESH_RELAY_HELPER=MIN-MAX,SWEEP
// or MIN-MAX,SWEEP,kernel (its RTP port range, its sweep interval or 0 for
// the default, and the kernel fast path); otherwise it is skipped. Commands, one a line:
//
//	open ID A B   open session ID; leg A sends to RTP address A, leg B to B
//	              → "ok LOCAL-A LOCAL-B": where A and B must send
//	close         close every session → "ok"
//	counters      → "ok FORWARDED DROPPED SEND-ERRORS KERNEL-FORWARDED UNRECORDED" (running totals)
//	quit          → "ok", and the relay stops
//
// An error is answered "err TEXT".
func TestRelayHelperProcess(t *testing.T) {
	spec := os.Getenv(relayHelperEnv)
	if spec == "" {
		t.Skip("the process in which TestLoadRelay runs the callmesh relay")
	}
	if err := serveRelay(spec, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		t.Fatal(err)
	}
}

func serveRelay(spec string, in io.Reader, out io.Writer) error {
	ports, rest, _ := strings.Cut(spec, ",")
	sweep, flag, _ := strings.Cut(rest, ",")
	lo, hi, ok := strings.Cut(ports, "-")
	portMin, err1 := strconv.Atoi(lo)
	portMax, err2 := strconv.Atoi(hi)
	every, err3 := time.ParseDuration(sweep)
	if !ok || err1 != nil || err2 != nil || err3 != nil || (flag != "" && flag != "kernel") {
		return fmt.Errorf("%s=%q: want MIN-MAX,SWEEP[,kernel]", relayHelperEnv, spec)
	}
	cfg := media.DefaultConfig()
	cfg.PortMin, cfg.PortMax = portMin, portMax
	if every > 0 {
		cfg.Sweep = every
	}
	if flag == "kernel" {
		cfg.Kernel = media.KernelOn
	}
	if v := os.Getenv("CALLMESH_LOAD_WORKERS"); v != "" {
		if cfg.Workers, err1 = strconv.Atoi(v); err1 != nil {
			return fmt.Errorf("CALLMESH_LOAD_WORKERS=%q: %w", v, err1)
		}
	}
	r, err := media.New(cfg)
	if err != nil && kpath.Unavailable(err) {
		return fmt.Errorf("%s: %w", kernelUnavailable, err)
	}
	if err != nil {
		return err
	}
	defer r.Close()
	if dir := os.Getenv("CALLMESH_LOAD_PROFILE"); dir != "" {
		f, err := os.Create(filepath.Join(dir, "callmesh-relay.pprof"))
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	w := bufio.NewWriter(out)
	fmt.Fprintf(w, "ready %d\n", os.Getpid())
	if err := w.Flush(); err != nil {
		return err
	}
	var sessions []*media.Session
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		reply, quit := "ok", false
		switch f[0] {
		case "open":
			if len(f) != 4 {
				reply = "err open ID A B"
				break
			}
			a, errA := netip.ParseAddrPort(f[2])
			b, errB := netip.ParseAddrPort(f[3])
			if err := errors.Join(errA, errB); err != nil {
				reply = "err " + err.Error()
				break
			}
			s, err := r.Open(f[1])
			if err != nil {
				reply = "err " + err.Error()
				break
			}
			sessions = append(sessions, s)
			s.Leg(media.A).Signal(media.Remote{RTP: a, Sends: true})
			s.Leg(media.B).Signal(media.Remote{RTP: b, Sends: true})
			la, _ := s.Leg(media.A).Local()
			lb, _ := s.Leg(media.B).Local()
			reply = fmt.Sprintf("ok %s %s", la, lb)
		case "close":
			for _, s := range sessions {
				s.Close()
			}
			sessions = nil
		case "counters":
			c := &r.Counters
			reply = fmt.Sprintf("ok %d %d %d %d %d", c.Forwarded.Load(), c.Dropped.Load(), c.SendErrors.Load(),
				c.KernelForwarded.Load(), r.KernelUnrecorded())
		case "quit":
			quit = true
		default:
			reply = "err unknown command " + f[0]
		}
		fmt.Fprintln(w, reply)
		if err := w.Flush(); err != nil {
			return err
		}
		if quit {
			return nil
		}
	}
	return sc.Err()
}

// udpDrops sums the datagrams the kernel dropped, for want of room in the
// receive buffer, on the UDP sockets bound to ports in [portMin, portMax]
// and on those bound to genPorts. The counts are over each socket's life.
func udpDrops(portMin, portMax int, genPorts map[uint16]bool) (relay, gen uint64) {
	for port, drops := range socketDrops() {
		switch {
		case port >= portMin && port <= portMax && portMax > 0:
			relay += drops
		case genPorts[uint16(port)]:
			gen += drops
		}
	}
	return relay, gen
}

// systemCPU is the time all CPUs of the machine spent busy so far (the
// first line of /proc/stat: everything but idle and iowait).
func systemCPU() time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	var ticks int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest times are already in user
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// relayMarkdown renders the reports as a Markdown section.
func relayMarkdown(p relayPlan, reports []*relayReport, missing []string, loadBefore, loadAfter string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Relay load (`make load-media`, %s): per call two RTP streams, A→B and B→A, of 20 ms PCMU "+
		"(%d-byte packets: RTP v2 header, 160 octets of payload) at 50 packets/s each, between UDP endpoints on 127.0.0.1; "+
		"the calls' start times spread evenly over the 20 ms period; %v of warm-up, then %v measured per step; steps %s calls, "+
		"interleaved (each step runs through every relay in turn); a relay's ladder ends at its first failed step. "+
		"%d CPUs (runtime.NumCPU), GOMAXPROCS %d, %s; load average (1, 5, 15 min) %s before the run, %s after.\n\n",
		time.Now().UTC().Format("2006-01-02"), genPacket, relayWarmup, p.measure, joinInts(p.calls),
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), loadBefore, loadAfter)
	b.WriteString("Command: `CALLMESH_LOAD=1 ")
	for _, v := range []string{"CALLMESH_LOAD_CALLS", "CALLMESH_LOAD_SECONDS", "CALLMESH_LOAD_RELAYS", "CALLMESH_LOAD_NICE", "CALLMESH_LOAD_WORKERS"} {
		if s := os.Getenv(v); s != "" {
			fmt.Fprintf(&b, "%s=%s ", v, s)
		}
	}
	b.WriteString("go test -run '^TestLoadRelay$' -count=1 -v -timeout 30m ./itest/load/`.\n\n")
	fmt.Fprintf(&b, "Latency: one-way, from the generator's send time (taken just before its write and carried in the payload) "+
		"to the kernel's receive timestamp of the packet on the receiving endpoint's socket (SO_TIMESTAMPNS, same "+
		"wall clock): what the relay added, with both loopback hops, but not the time the generator's reader takes to "+
		"get to the packet. Quantiles are the upper edge of %v buckets. Pass: no packet of the window lost and p99 ≤ %v "+
		"(and the generator sent ≥ %.0f%% of its schedule, and nothing stray or duplicated). Lost: packets sent in the "+
		"window and not received within %v after it. Relay CPU: the relay process's user+system time over the window "+
		"(/proc/PID/stat), in cores; generator CPU: the test process's; others' CPU: the rest of the machine's (/proc/stat), "+
		"work outside the benchmark that competed for the cores. Socket drops: datagrams the kernel dropped for a "+
		"full receive buffer on the relay's sockets / the generator's (/proc/net/udp, warm-up included). A step during which "+
		"others' CPU exceeded %.2f cores is run again, up to %d runs; the last counts, and \"(run N)\" says which it was, "+
		"\"(disturbed)\" that it still exceeded.\n\n",
		genBucket, relayP99Limit, 100*relayOfferedShare, relayDrain, relayOtherLimit, relayAttempts)
	why := " (CALLMESH_LOAD_NICE)"
	if p.nice > 0 {
		why = ", so that a relay thread woken by a packet preempts them at once (on its own machine the relay would " +
			"not share the cores with the load; CALLMESH_LOAD_NICE)"
	}
	fmt.Fprintf(&b, "Generator (in the test process): one UDP socket per endpoint, connected to its relay port; %d sender and %d "+
		"reader threads at nice %d%s; senders wake at most every %v and send what fell due "+
		"(sender lag: how late they were on the schedule, p99); readers poll epoll every %v; socket buffers %d KiB "+
		"asked, %d KiB granted (net.core.rmem_max caps them).\n",
		min(max(runtime.NumCPU(), 1), 4), min(max(runtime.NumCPU(), 1), 4), p.nice, why, genSendQuantum, genReadQuantum,
		genSocketBuffer>>10, reportRcvbuf(reports)>>10)
	for _, m := range missing {
		fmt.Fprintf(&b, "\n%s.\n", m)
	}
	for _, r := range reports {
		fmt.Fprintf(&b, "\n#### %s\n\n", r.t.title)
		for _, n := range r.t.notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		if len(r.t.notes) > 0 {
			b.WriteString("\n")
		}
		head := []string{"calls", "target pkt/s", "offered pkt/s", "delivered", "lost (A→B / B→A)", "loss",
			"p50 µs", "p99 µs", "max µs", "relay CPU", "generator CPU", "others' CPU", "socket drops relay / generator", "sender lag p99 µs", "result"}
		b.WriteString("| " + strings.Join(head, " | ") + " |\n|" + strings.Repeat(" --- |", len(head)) + "\n")
		for _, s := range r.steps {
			res := s.res
			fmt.Fprintf(&b, "| %d | %.0f | %.0f | %d | %d (%d / %d) | %.4f%% | %d | %d | %d | %s | %.2f cores | %.2f | %d / %d | %d | %s |\n",
				s.calls, s.target(), s.offered(), res.totalGot(), s.lost(), res.lost(dirAB), res.lost(dirBA), 100*s.lossRate(),
				res.latency.quantile(0.5).Microseconds(), res.latency.quantile(0.99).Microseconds(), res.latency.max.Microseconds(),
				s.relayCores(), s.genCores(), s.otherCores(), s.relayDrops, s.genDrops, res.lag.quantile(0.99).Microseconds(), s.verdict())
		}
		b.WriteString("\n")
		fmt.Fprintf(&b, "Most calls meeting the criteria: **%s**.\n", r.bestText())
	}
	var re *relayReport
	for _, r := range reports {
		if r.t.name == "rtpengine" {
			re = r
		}
	}
	for _, r := range reports {
		if !strings.HasPrefix(r.t.name, "callmesh") {
			continue
		}
		if re != nil {
			fmt.Fprintf(&b, "\n**%s: %s calls, rtpengine: %s calls, ratio %s**\n", r.t.name, r.bestText(), re.bestText(), ratioText(r, re))
		} else {
			fmt.Fprintf(&b, "\n**%s: %s calls** (no rtpengine to compare with)\n", r.t.name, r.bestText())
		}
	}
	return b.String()
}

// best is the most calls of a passed step before the first failed one; 0
// if none passed. all says every step passed.
func (r *relayReport) best() (calls int, all bool) {
	for _, s := range r.steps {
		if !s.passed() {
			return calls, false
		}
		calls = s.calls
	}
	return calls, true
}

func (r *relayReport) bestText() string {
	n, all := r.best()
	if all && n > 0 {
		return "≥ " + strconv.Itoa(n) // the ladder ended before it did
	}
	return strconv.Itoa(n)
}

func ratioText(a, b *relayReport) string {
	na, alla := a.best()
	nb, allb := b.best()
	if nb == 0 {
		return "n/a (rtpengine passed no step)"
	}
	r := fmt.Sprintf("%d/%d = %.2f", na, nb, float64(na)/float64(nb))
	if alla || allb {
		r += " (a bound: a relay passed every step)"
	}
	return r
}

func reportRcvbuf(reports []*relayReport) int {
	for _, r := range reports {
		for _, s := range r.steps {
			if s.res != nil {
				return s.res.rcvbuf
			}
		}
	}
	return 0
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

// TestRTPGenSmoke runs a few calls through the generator, directly and
// through the callmesh relay in its helper process, for a fraction of a
// second: the load benchmark's machinery, checked on every test run.
func TestRTPGenSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	const calls = 4
	portMin, portMax := mediatest.PortRange(t, 27000, 2*calls)
	h, err := startRelayHelper(t, portMin, portMax, false)
	if err != nil {
		t.Fatal(err)
	}
	for i, rt := range []relayTarget{directTarget(), h.target()} {
		g, err := newGenerator(calls)
		if err != nil {
			t.Fatal(err)
		}
		g.nice = 0 // the test suite may load the machine: no starving
		if err := rt.setup(i, g); err != nil {
			g.close()
			t.Fatalf("%s: %v", rt.name, err)
		}
		res, err := g.run(200*time.Millisecond, 400*time.Millisecond, relayDrain, nil)
		g.close()
		if err != nil {
			t.Fatalf("%s: %v", rt.name, err)
		}
		if err := rt.teardown(); err != nil {
			t.Fatalf("%s: %v", rt.name, err)
		}
		// 20 packets per stream in 400 ms, fewer when other work holds
		// the cores and the senders fall behind.
		for dir, name := range []string{"A→B", "B→A"} {
			if res.sent[dir] == 0 {
				t.Errorf("%s %s: no packet sent in the window", rt.name, name)
			}
			if res.got[dir] < res.sent[dir]*9/10 {
				t.Errorf("%s %s: %d of %d packets received", rt.name, name, res.got[dir], res.sent[dir])
			}
		}
		if res.stray > 0 || res.dups > 0 || res.sendErrs > 0 || res.noStamp > 0 {
			t.Errorf("%s: %d stray, %d duplicate packets, %d send errors, %d without a kernel timestamp",
				rt.name, res.stray, res.dups, res.sendErrs, res.noStamp)
		}
		if n := res.latency.count(); n != res.totalGot() {
			t.Errorf("%s: %d latencies for %d packets", rt.name, n, res.totalGot())
		}
		t.Logf("%s: %d/%d packets, p50 %v, p99 %v, max %v", rt.name, res.totalGot(), res.totalSent(),
			res.latency.quantile(0.5), res.latency.quantile(0.99), res.latency.max)
	}
	if c := h.counters(); !strings.HasPrefix(c, "forwarded ") || strings.HasPrefix(c, "forwarded 0,") {
		t.Errorf("relay counters: %s", c)
	}
}
