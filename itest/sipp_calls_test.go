package itest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callmesh/callmesh/itest/sipp"
	"github.com/callmesh/callmesh/node"
	"github.com/callmesh/callmesh/node/accounts"
	"github.com/callmesh/callmesh/node/digest"
)

// sippScenario is the absolute path of a scenario of testdata/sipp.
func sippScenario(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", "sipp", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// freeSIPPort finds a port free for both UDP and TCP on 127.0.0.1.
func freeSIPPort(t *testing.T) int {
	t.Helper()
	for range 20 {
		u, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		u.Close()
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no free SIP port")
	return 0
}

// mediaBase hands SIPp processes media port bases apart from each other,
// from the relays' ranges (10000–19999 for nodes, 21000–25999 for media
// tests) and below the kernel's ephemeral ports (32768 and up), which other
// tests' sockets take at random: SIPp exits when its media port is taken.
var mediaBase = struct {
	sync.Mutex
	next int
}{next: 26000 + rand.IntN(1000)*2}

func freeMediaBase() int {
	mediaBase.Lock()
	defer mediaBase.Unlock()
	for {
		p := mediaBase.next
		mediaBase.next += 400
		if mediaBase.next > 32000 {
			mediaBase.next = 26000
		}
		if portsFree(p, p+1, p+2, p+3) {
			return p
		}
	}
}

// portsFree reports whether UDP ports are free on 127.0.0.1 now.
func portsFree(ports ...int) bool {
	for _, p := range ports {
		c, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			return false
		}
		c.Close()
	}
	return true
}

// sippDir is a working directory holding the raw μ-law sound SIPp's
// rtp_stream plays (pcmu.ul: a 440 Hz tone, one second, looped).
func sippDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	b := make([]byte, 8000)
	for i := range b {
		b[i] = ulaw(int16(8000 * sinApprox(float64(i)*440/8000)))
	}
	if err := os.WriteFile(filepath.Join(dir, "pcmu.ul"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func sinApprox(turns float64) float64 {
	x := turns - float64(int(turns)) // 0..1
	// A triangle wave is close enough for a tone that only has to flow.
	if x < 0.5 {
		return 4*x - 1
	}
	return 3 - 4*x
}

// ulaw encodes one sample to G.711 μ-law (ITU-T G.711 §A).
func ulaw(s int16) byte {
	const bias, clip = 0x84, 32635
	sign := byte(0)
	v := int(s)
	if v < 0 {
		v, sign = -v, 0x80
	}
	if v > clip {
		v = clip
	}
	v += bias
	exp := 7
	for mask := 0x4000; v&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mant := (v >> (exp + 3)) & 0x0f
	return ^(sign | byte(exp<<4) | byte(mant))
}

// errPortTaken: SIPp could not bind the port it was given.
var errPortTaken = errors.New("port taken")

// TestSippCalleePortTaken: a callee's port taken by another socket is
// told apart from SIPp failing otherwise, so that sippCallee can move to
// another port.
func TestSippCalleePortTaken(t *testing.T) {
	sippBin(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	port := pc.LocalAddr().(*net.UDPAddr).Port
	if err := startSippUAS(t, port, "uas_answer_rtp.xml", "u1"); !errors.Is(err, errPortTaken) {
		t.Fatalf("SIPp on a taken port: %v, want errPortTaken", err)
	}
	if err := startSippUAS(t, freeSIPPort(t), "uas_answer_rtp.xml", "u1"); err != nil {
		t.Fatalf("SIPp on a free port: %v", err)
	}
}

// sippCallee creates user, registers it from a free port and runs SIPp's
// callee scenario there. The port is free when picked, but in the moment
// between the registering SIPp's exit and the callee's start another
// socket may take it (the kernel hands out ports just freed as ephemeral
// ones); the callee then fails to bind, and the registration is removed
// and the whole done again from another port.
func sippCallee(t *testing.T, n *node.Node, user, scenario, transport string, extra ...string) {
	t.Helper()
	addUser(t, n, user, user+"-secret")
	for attempt := 1; ; attempt++ {
		port := freeSIPPort(t)
		sippRegister(t, n, user, transport, port, 300)
		err := startSippUAS(t, port, scenario, transport, extra...)
		if err == nil {
			return
		}
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			t.Fatal(err)
		}
		t.Logf("%v: registering %s from another port", err, user)
		sippRegister(t, n, user, transport, port, 0)
	}
}

// startSippUAS starts the callee scenario on port and waits until SIPp
// listens there; errPortTaken when it could not bind the port.
func startSippUAS(t *testing.T, port int, scenario, transport string, extra ...string) error {
	t.Helper()
	// Calls must not reach the port before SIPp listens on it: it is
	// bound once taken, by UDP or TCP.
	bound := func() bool {
		if !portsFree(port) {
			return true // UDP taken
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return true // TCP taken
		}
		l.Close()
		return false
	}
	if bound() {
		// Taken already by another socket: SIPp would fail to bind it,
		// and the wait below would take the other socket for SIPp.
		return fmt.Errorf("port %d in use before SIPp %s started: %w", port, scenario, errPortTaken)
	}
	dir := sippDir(t)
	args := append([]string{"-sf", sippScenario(t, scenario), "-i", "127.0.0.1", "-p", strconv.Itoa(port),
		"-mi", "127.0.0.1", "-mp", strconv.Itoa(freeMediaBase()), "-t", transport, "-nostdin",
		"-trace_err", "-error_file", filepath.Join(dir, "errors.log")}, extra...)
	cmd := exec.Command(sippBin(t), args...)
	cmd.Dir = dir
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		select {
		case <-done:
			if strings.Contains(out.String(), "Address already in use") {
				return fmt.Errorf("SIPp %s could not bind port %d: %w", scenario, port, errPortTaken)
			}
			return fmt.Errorf("SIPp %s exited at start:\n%s", scenario, out.String())
		default:
		}
		if bound() {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("SIPp %s did not bind port %d within 10s", scenario, port)
		}
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			errs, _ := os.ReadFile(filepath.Join(dir, "errors.log"))
			t.Logf("UAS %s errors:\n%s", scenario, tail(string(errs), 3000))
		}
	})
	return nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// sippUAC runs a SIPp caller scenario to completion: calls calls from
// caller to callee at rate per second, and returns SIPp's counts.
func sippUAC(t *testing.T, n *node.Node, scenario, transport, caller, callee string, calls, rate int, extra ...string) (ok, failed int) {
	t.Helper()
	dir := sippDir(t)
	domain := n.Config().Domain
	inf := "SEQUENTIAL\n" + fmt.Sprintf("%s;%s;%s;[authentication username=%s password=%s-secret]\n", caller, callee, domain, caller, caller)
	if err := os.WriteFile(filepath.Join(dir, "calls.csv"), []byte(inf), 0o644); err != nil {
		t.Fatal(err)
	}
	stat := filepath.Join(dir, "stat.csv")
	args := append([]string{n.SIPAddr(), "-sf", sippScenario(t, scenario), "-inf", filepath.Join(dir, "calls.csv"),
		"-i", "127.0.0.1", "-mi", "127.0.0.1", "-mp", strconv.Itoa(freeMediaBase()), "-t", transport,
		"-m", strconv.Itoa(calls), "-r", strconv.Itoa(rate), "-l", "100", "-auth_uri", callee + "@" + domain,
		"-nostdin", "-trace_stat", "-stf", stat, "-timeout", "90s", "-timeout_error",
		"-trace_err", "-error_file", filepath.Join(dir, "errors.log")}, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, sippBin(t), args...)
	cmd.Dir = dir
	out, _ := cmd.CombinedOutput()
	ok, failed, err := sipp.Counts(stat)
	if err != nil || ok != calls {
		errs, _ := os.ReadFile(filepath.Join(dir, "errors.log"))
		t.Errorf("%s → %s: %d ok, %d failed of %d (%v)\n%s\nerrors:\n%s", scenario, callee, ok, failed, calls, err, tail(string(out), 2000), tail(string(errs), 3000))
	}
	return ok, failed
}

// sippNode starts a node for SIPp calls: trusted loopback (SIPp's callers
// are not challenged unless the scenario authenticates), a short media
// timeout and ring timeout, and users: alice (caller), dave (no right to
// call users), and a callee per case registered at its SIPp.
func sippNode(t *testing.T, edit func(*node.Config)) *node.Node {
	t.Helper()
	c := StartCluster(t, 1, Options{Logger: DebugLogger(), Configure: func(_ int, cfg *node.Config) {
		cfg.Media.Timeout = time.Second
		cfg.Calls.RingTimeout = 2 * time.Second
		if edit != nil {
			edit(cfg)
		}
	}})
	n := c.Node(0)
	domain := n.Config().Domain
	_, err := n.Accounts().Add(accounts.Account{Name: "alice", Class: accounts.Gold, Allow: []string{"p2p"}, MaxCalls: 1000,
		Home: n.ID().String(), Realm: domain, Credentials: digest.NewCredentials("alice", domain, "alice-secret")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = n.Accounts().Add(accounts.Account{Name: "dave", Class: accounts.Bronze, Allow: []string{"external:+49"}, MaxCalls: 2,
		Home: n.ID().String(), Realm: n.Config().Domain, Credentials: digest.NewCredentials("dave", n.Config().Domain, "dave-secret")})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// sippRegister registers (expires 0: unregisters) user's contact at port
// over transport with SIPp, digest included, the way a phone does: from
// the port where a callee SIPp is then started (register_contact.xml).
func sippRegister(t *testing.T, n *node.Node, user, transport string, port, expires int) {
	t.Helper()
	dir := t.TempDir()
	inf := fmt.Sprintf("SEQUENTIAL\n%s;%s;[authentication username=%s password=%s-secret]\n", user, n.Config().Domain, user, user)
	if err := os.WriteFile(filepath.Join(dir, "reg.csv"), []byte(inf), 0o644); err != nil {
		t.Fatal(err)
	}
	stat := filepath.Join(dir, "stat.csv")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, sippBin(t), n.SIPAddr(), "-sf", sippScenario(t, "register_contact.xml"),
		"-inf", filepath.Join(dir, "reg.csv"), "-i", "127.0.0.1", "-p", strconv.Itoa(port), "-mp", strconv.Itoa(freeMediaBase()),
		"-t", transport, "-m", "1", "-key", "contact_port", strconv.Itoa(port), "-key", "expires", strconv.Itoa(expires),
		"-auth_uri", n.Config().Domain, "-nostdin", "-trace_stat", "-stf", stat, "-timeout", "30s", "-timeout_error")
	cmd.Dir = dir
	out, _ := cmd.CombinedOutput()
	if ok, _, err := sipp.Counts(stat); err != nil || ok != 1 {
		t.Fatalf("register %s from port %d over %s (expires %d): %v\n%s", user, port, transport, expires, err, tail(string(out), 2000))
	}
}

// TestSIPpCalls: SIPp as caller and as callee through one node, over UDP
// and TCP: calls with digest-authenticated INVITEs, calls with RTP both
// ways measured by the relay, CANCEL before answer, BYE from the callee,
// hold through the media timeout, and the failures a caller must hear.
func TestSIPpCalls(t *testing.T) {
	for _, transport := range []string{"u1", "t1"} {
		t.Run(map[string]string{"u1": "udp", "t1": "tcp"}[transport], func(t *testing.T) {
			n := sippNode(t, func(cfg *node.Config) { cfg.Calls.Trusted = []string{"127.0.0.1"} })
			before := n.Relay().Counters.Forwarded.Load()

			// 200 calls with RTP both ways, 1 s each, 40 calls/s.
			sippCallee(t, n, "bob", "uas_answer_rtp.xml", transport)
			sippUAC(t, n, "uac_call_rtp.xml", transport, "alice", "bob", 200, 40, "-d", "1000")
			// Generous: about 50 packets each way per call cross the relay;
			// require a third of that.
			if got := n.Relay().Counters.Forwarded.Load() - before; got < 200*2*50/3 {
				t.Errorf("relay forwarded %d packets for 200 calls with RTP both ways", got)
			}
			// The relay measured each call: its sessions opened and closed.
			if o, c := n.Relay().Counters.Opened.Load(), n.Relay().Counters.Closed.Load(); o < 200 || c != o {
				t.Errorf("relay sessions opened %d, closed %d", o, c)
			}

			sippCallee(t, n, "ringer", "uas_noanswer.xml", transport)
			sippUAC(t, n, "uac_cancel.xml", transport, "alice", "ringer", 5, 5, "-d", "200")

			sippCallee(t, n, "hanger", "uas_bye.xml", transport, "-d", "500")
			sippUAC(t, n, "uac_recv_bye.xml", transport, "alice", "hanger", 5, 5)

			// On hold for 2.5 s, over twice the media timeout: the calls live.
			sippCallee(t, n, "holder", "uas_hold_rtp.xml", transport)
			sippUAC(t, n, "uac_hold_rtp.xml", transport, "alice", "holder", 3, 3, "-d", "2500")

			sippCallee(t, n, "busy", "uas_busy.xml", transport)
			sippUAC(t, n, "uac_expect_486.xml", transport, "alice", "busy", 3, 3)
			sippCallee(t, n, "sleeper", "uas_noanswer.xml", transport)
			sippUAC(t, n, "uac_expect_480.xml", transport, "alice", "sleeper", 2, 2) // ring timeout
			sippUAC(t, n, "uac_expect_404.xml", transport, "alice", "nobody", 2, 2)
			sippUAC(t, n, "uac_expect_403.xml", transport, "dave", "bob", 2, 2) // no right to call users

			Eventually(t, 20*time.Second, func() bool { return n.Calls().Len() == 0 && n.Relay().Len() == 0 }, "calls left at the node")
		})
	}
}

// TestSIPpCallsWithDigest: callers authenticate every INVITE (407, then
// MD5 credentials), callees registered with digest.
func TestSIPpCallsWithDigest(t *testing.T) {
	n := sippNode(t, nil)
	sippCallee(t, n, "bob", "uas_answer_rtp.xml", "u1")
	sippUAC(t, n, "uac_call.xml", "u1", "alice", "bob", 200, 40, "-d", "500")
	if n.Relay().Counters.Forwarded.Load() == 0 {
		t.Error("the callee's RTP crossed no relay")
	}
	Eventually(t, 20*time.Second, func() bool { return n.Calls().Len() == 0 && n.Relay().Len() == 0 }, "calls left at the node")
}
