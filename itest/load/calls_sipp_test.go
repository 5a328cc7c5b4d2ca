//go:build linux

package load

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/callmesh/callmesh/itest/sipp"
)

// callsScenarioDir holds the SIPp call scenarios (uac_*.xml, uas_*.xml,
// register_contact.xml: testdata of package itest).
const callsScenarioDir = "../testdata/sipp"

// callsRTPFile is what the RTP scenarios play with SIPp's rtp_stream, from
// SIPp's working directory: raw G.711 μ-law at 8 kHz.
const callsRTPFile = "pcmu.ul"

// callsSIPpBuffer is SIPp's socket buffer (-buff_size) under load, so that
// SIPp's own sockets are not where messages are dropped; the kernel caps
// it at net.core.rmem_max.
const callsSIPpBuffer = 4 << 20

// callSIPp is one SIPp process: a UAC placing calls at a server, a UAS
// answering them, or a registration.
type callSIPp struct {
	scenario  string            // file name in callsScenarioDir
	replace   map[string]string // placeholders of a template (such as [final]) and their values
	remote    string            // the server, HOST:PORT; empty for a UAS
	transport string            // "u1" or "t1"
	port      int               // local SIP port (-p); 0 picks a free one
	lines     []string          // injection file lines (-inf, SEQUENTIAL); none: no -inf
	calls     int               // -m; 0: no limit (a UAS that runs until stopped)
	rate      int               // -r, calls per second (UAC)
	limit     int               // -l, open calls at most (UAC); 0: SIPp's default
	pause     time.Duration     // -d
	keys      [][2]string       // -key NAME VALUE
	args      []string          // more arguments (-auth_uri, ...)
	rtt       bool              // trace every response time (-trace_rtt)
	screens   bool              // keep every screen dump (SIGUSR2): RTP counts
	load      bool              // large socket buffers, statistics every second
	timeout   time.Duration     // SIPp's own bound on its run (-timeout); 0: none
}

// callSIPpProc is a running (or finished) SIPp process in its own directory.
type callSIPpProc struct {
	spec    callSIPp
	cmd     *exec.Cmd
	dir     string
	port    int // local SIP port
	stat    string
	errFile string
	screen  string
	start   time.Time
	done    chan struct{} // closed when the process has exited
	wall    time.Duration // set when done
}

// callSIPpOutcome is what a finished SIPp run reports.
type callSIPpOutcome struct {
	successful, failed int // SuccessfulCall(C) and FailedCall(C)
	exit               int
	wall, cpu          time.Duration
	times              []float64 // response time 1 of each call, ms (rtt)
	started            float64   // calls started per second (rtt)
	rtpSent            int       // most "Total RTP pckts sent" seen in a screen dump (screens)
	errors             string    // SIPp's error file, shortened
	output             string    // SIPp's standard output, shortened
}

// startCallSIPp starts spec in a new directory; the test's cleanup kills it if
// it still runs.
func startCallSIPp(t *testing.T, spec callSIPp) *callSIPpProc {
	t.Helper()
	bin, err := exec.LookPath("sipp")
	if err != nil {
		t.Fatalf("sipp not found: install Debian's sip-tester (make deps)")
	}
	dir := t.TempDir()
	sf, err := filepath.Abs(filepath.Join(callsScenarioDir, spec.scenario))
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.replace) > 0 {
		text, err := os.ReadFile(sf)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range spec.replace {
			text = bytes.ReplaceAll(text, []byte(k), []byte(v))
		}
		sf = filepath.Join(dir, spec.scenario)
		if err := os.WriteFile(sf, text, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := writeCallsRTPFile(filepath.Join(dir, callsRTPFile)); err != nil {
		t.Fatal(err)
	}
	p := &callSIPpProc{spec: spec, dir: dir, port: spec.port, done: make(chan struct{}),
		stat: filepath.Join(dir, "stat.csv"), errFile: filepath.Join(dir, "errors.log"), screen: filepath.Join(dir, "screens.log")}
	if p.port == 0 {
		p.port = callsFreeSIPPort(t)
	}
	var args []string
	if spec.remote != "" {
		args = append(args, spec.remote)
	}
	// Ports are picked free one at a time, and a port given but not bound
	// yet (a UAS's, registered before it starts) can be handed out again:
	// the control port must be none of the others, or SIPp cannot start.
	mp := callsFreeMediaPort(t)
	cp := freeUDPPort(t)
	for cp == p.port || (cp >= mp && cp <= mp+3) {
		cp = freeUDPPort(t)
	}
	args = append(args, "-sf", sf,
		"-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", strconv.Itoa(p.port),
		"-mp", strconv.Itoa(mp), "-cp", strconv.Itoa(cp),
		"-t", spec.transport, "-nostdin",
		"-trace_stat", "-stf", p.stat, "-trace_err", "-error_file", p.errFile)
	if len(spec.lines) > 0 {
		inf := filepath.Join(dir, "users.csv")
		text := "SEQUENTIAL\n" + strings.Join(spec.lines, "\n") + "\n"
		if err := os.WriteFile(inf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-inf", inf)
	}
	if spec.calls > 0 {
		args = append(args, "-m", strconv.Itoa(spec.calls))
	}
	if spec.rate > 0 {
		args = append(args, "-r", strconv.Itoa(spec.rate))
	}
	if spec.limit > 0 {
		args = append(args, "-l", strconv.Itoa(spec.limit))
	}
	if spec.pause > 0 {
		args = append(args, "-d", strconv.Itoa(int(spec.pause/time.Millisecond)))
	}
	for _, kv := range spec.keys {
		args = append(args, "-key", kv[0], kv[1])
	}
	if spec.rtt {
		args = append(args, "-trace_rtt", "-rtt_freq", "1000")
	}
	if spec.screens {
		args = append(args, "-trace_screen", "-screen_file", p.screen, "-screen_overwrite", "false")
	}
	if spec.load {
		args = append(args, "-buff_size", strconv.Itoa(callsSIPpBuffer), "-fd", "1")
	}
	if spec.timeout > 0 {
		args = append(args, "-timeout", strconv.Itoa(int(math.Ceil(spec.timeout.Seconds())))+"s", "-timeout_error")
	}
	args = append(args, spec.args...)
	out, err := os.Create(filepath.Join(dir, "stdout.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = out, out
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("sipp: %v", err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.wall = time.Since(p.start)
		close(p.done)
	}()
	t.Cleanup(func() { p.kill() })
	return p
}

// running reports whether the process has not exited yet.
func (p *callSIPpProc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// wait waits up to timeout for the process to exit by itself.
func (p *callSIPpProc) wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("sipp %s still running after %v", p.spec.scenario, timeout)
	}
}

// stop asks SIPp to end (SIGUSR1 is its "q" key: no new calls, wait for
// the open ones), and kills it if it lingers.
func (p *callSIPpProc) stop(grace time.Duration) {
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGUSR1)
	if p.wait(grace) != nil {
		p.kill()
	}
}

func (p *callSIPpProc) kill() {
	if p.running() {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// dumpScreens makes SIPp append its screens to the screen file (SIGUSR2).
func (p *callSIPpProc) dumpScreens() {
	if p.running() {
		_ = p.cmd.Process.Signal(syscall.SIGUSR2)
	}
}

// cpu returns the CPU time the process has used so far.
func (p *callSIPpProc) cpu() time.Duration {
	if !p.running() {
		return p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()
	}
	return pidCPU(p.cmd.Process.Pid)
}

// counts reads the successful and failed calls from SIPp's statistics
// file: final once SIPp has exited, else as of its last dump (every
// second with spec.load).
func (p *callSIPpProc) counts() (ok, failed int, err error) { return sipp.Counts(p.stat) }

// outcome reads what a finished run left behind.
func (p *callSIPpProc) outcome(t *testing.T) callSIPpOutcome {
	t.Helper()
	if p.running() {
		t.Fatalf("sipp %s: outcome of a running process", p.spec.scenario)
	}
	o := callSIPpOutcome{exit: p.cmd.ProcessState.ExitCode(), wall: p.wall, cpu: p.cpu()}
	if data, err := os.ReadFile(p.errFile); err == nil {
		o.errors = shorten(string(data), 3000)
	}
	if data, err := os.ReadFile(filepath.Join(p.dir, "stdout.log")); err == nil {
		o.output = callsShortenTail(string(data), 3000)
	}
	var err error
	if o.successful, o.failed, err = p.counts(); err != nil {
		t.Fatalf("sipp %s statistics: %v\nexit %d\n%s\nerrors:\n%s", p.spec.scenario, err, o.exit, o.output, o.errors)
	}
	if p.spec.rtt {
		// SIPp names the file after the scenario and its PID, in its
		// working directory.
		// No file: no call got as far as its first response time.
		files, _ := filepath.Glob(filepath.Join(p.dir, "*_rtt.csv"))
		if len(files) > 1 {
			t.Fatalf("sipp %s response times: %d files in %s", p.spec.scenario, len(files), p.dir)
		}
		if len(files) == 1 {
			if o.times, o.started, err = readRTT(files[0]); err != nil {
				t.Fatalf("sipp %s response times: %v", p.spec.scenario, err)
			}
		}
	}
	if p.spec.screens {
		o.rtpSent = callsRTPSent(p.screen)
	}
	return o
}

// describe is an outcome for a failure message.
func (o callSIPpOutcome) describe() string {
	return fmt.Sprintf("exit %d, %d successful, %d failed\nerrors:\n%s\noutput:\n%s", o.exit, o.successful, o.failed, o.errors, o.output)
}

// runCallSIPp runs spec to completion (at most spec.timeout plus a margin).
func runCallSIPp(t *testing.T, spec callSIPp) callSIPpOutcome {
	t.Helper()
	p := startCallSIPp(t, spec)
	limit := spec.timeout + 30*time.Second
	if spec.timeout == 0 {
		limit = 2 * time.Minute
	}
	if err := p.wait(limit); err != nil {
		p.kill()
		t.Fatalf("%v", err)
	}
	return p.outcome(t)
}

// callsRTPScreenLine is how SIPp 3.6 shows its rtp_stream packets on the
// screen, while a stream task exists: "  114 Total RTP pckts sent   52.710
// kB/s RTP OUT".
var callsRTPScreenLine = regexp.MustCompile(`(?m)^\s*(\d+) Total RTP pckts sent\s+[0-9.]+ kB/s RTP OUT`)

// callsRTPSent returns the largest RTP packet count in the screen
// dumps of a SIPp screen file.
func callsRTPSent(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	best := 0
	for _, m := range callsRTPScreenLine.FindAllSubmatch(data, -1) {
		if n, err := strconv.Atoi(string(m[1])); err == nil && n > best {
			best = n
		}
	}
	return best
}

// callsRegister registers users at server as reachable at 127.0.0.1:port
// over transport (register_contact.xml), answering a digest challenge with
// each user's password if the server sends one. It fails the test unless
// every registration succeeds.
//
// The REGISTER is sent from port itself, before the UAS that is to answer
// there starts: a registrar that routes to the address a REGISTER came
// from rather than to its Contact (as for a phone it takes to be behind
// NAT) then reaches the UAS too.
func callsRegister(t *testing.T, server, domain, transport string, port int, users []user) {
	t.Helper()
	lines := make([]string, len(users))
	for i, u := range users {
		lines[i] = fmt.Sprintf("%s;%s;[authentication username=%s password=%s]", u.name, domain, u.name, u.password)
	}
	rate := min(len(users), 500)
	o := runCallSIPp(t, callSIPp{
		scenario: "register_contact.xml", remote: server, transport: transport, port: port, lines: lines,
		calls: len(users), rate: rate, limit: 200,
		keys: [][2]string{{"contact_port", strconv.Itoa(port)}, {"expires", "3600"}},
		// SIPp writes "sip:" and this into the digest uri: the Request-URI.
		args:    []string{"-auth_uri", domain},
		timeout: time.Duration(len(users)/rate+30) * time.Second,
	})
	if o.exit != 0 || o.successful != len(users) {
		t.Fatalf("registering %d contact(s) at %s over %s: %s", len(users), server, transport, o.describe())
	}
}

// callsCallerLine is an injection file line of the uac_*.xml scenarios:
// caller;callee;domain;credentials.
func callsCallerLine(caller user, callee, domain string) string {
	return fmt.Sprintf("%s;%s;%s;[authentication username=%s password=%s]", caller.name, callee, domain, caller.name, caller.password)
}

// writeCallsRTPFile writes callsRTPFile's content to path: one second of a
// 440 Hz tone at half scale, G.711 μ-law, 8 kHz, 8000 bytes (50 packets of
// 20 ms for SIPp's rtp_stream, which loops it).
func writeCallsRTPFile(path string) error {
	b := make([]byte, 8000)
	for i := range b {
		b[i] = callsULaw(int16(16000 * math.Sin(2*math.Pi*440*float64(i)/8000)))
	}
	return os.WriteFile(path, b, 0o644)
}

// callsULaw encodes a 16-bit sample as G.711 μ-law (ITU-T G.711, with
// the usual bias of 0x84 and clipping at 32635).
func callsULaw(s int16) byte {
	const bias, clip = 0x84, 32635
	v := int(s)
	sign := 0
	if v < 0 {
		sign, v = 0x80, -v
	}
	v = min(v, clip) + bias
	exp := 7
	for mask := 0x4000; exp > 0 && v&mask == 0; mask >>= 1 {
		exp--
	}
	mant := (v >> (exp + 3)) & 0x0f
	return ^byte(sign | exp<<4 | mant)
}

// callsFreeSIPPort returns a port of 127.0.0.1 that was free a moment ago for
// both UDP and TCP (SIPp and Kamailio use the same number for both).
func callsFreeSIPPort(t *testing.T) int {
	t.Helper()
	for range 100 {
		port := freeUDPPort(t)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		l.Close()
		return port
	}
	t.Fatal("no port free for both UDP and TCP")
	return 0
}

// callsFreeMediaPort returns an even UDP port p of 127.0.0.1 such that p and
// p+2 were free a moment ago: SIPp binds both for its media (-mp, audio and
// video) and fails when it cannot. Its rtp_stream sockets are taken above,
// skipping ports in use.
func callsFreeMediaPort(t *testing.T) int {
	t.Helper()
	for range 100 {
		p := freeUDPPort(t) &^ 1
		if p+2 > 65535 {
			continue
		}
		var conns []net.PacketConn
		ok := true
		for _, q := range []int{p, p + 2} {
			c, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(q)))
			if err != nil {
				ok = false
				break
			}
			conns = append(conns, c)
		}
		for _, c := range conns {
			c.Close()
		}
		if ok {
			return p
		}
	}
	t.Fatal("no free media port pair")
	return 0
}

// callsShortenTail keeps the end of s.
func callsShortenTail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…\n" + s[len(s)-n:]
}

// callsLastLines returns the last n lines of the file at path.
func callsLastLines(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// callsUDPDrops returns, for each of ports, the datagrams the kernel has
// dropped for want of room in the receive buffer of the UDP sockets bound
// to it (counts over each socket's life).
func callsUDPDrops(ports ...int) map[int]uint64 {
	all := socketDrops()
	drops := make(map[int]uint64, len(ports))
	for _, p := range ports {
		drops[p] = all[p]
	}
	return drops
}
