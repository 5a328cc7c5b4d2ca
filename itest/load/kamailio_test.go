package load

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// kamailioConfig is the reference registrar's configuration (testdata of
// package itest).
const kamailioConfig = "../testdata/kamailio/kamailio.cfg"

// kamailioChildren is how many SIP worker processes the registrar
// benchmark's Kamailio forks (-n): one per core. (The call benchmark gives
// it half the cores: callsKamailioChildren.) On two cores with both SIPps
// beside it, four workers held S1 to 7,500–8,000 calls/s: they took the
// cores SIPp needed, whose sockets overflowed, and spent about 15 % more
// CPU per call; two held 9,000/s and more (BENCHMARKS.md).
func kamailioChildren() int { return runtime.NumCPU() }

// kamailioRcvBuf caps Kamailio's probing for its UDP receive buffer (-b),
// which stops at 256 KiB by default: the same 4 MiB the node asks for (and
// net.core.rmem_max grants here), so that neither rides out a burst on a
// deeper queue than the other.
const kamailioRcvBuf = 4 << 20

// kamailioShm is Kamailio's shared memory in MiB (-m): where tm keeps its
// transactions. 1 GiB ran out at 7,500 calls/s ("could not allocate
// shared memory from shm pool", BYEs answered 500) and at 10,000
// REGISTERs/s: a limit of the setting, not of Kamailio, which an operator
// would raise. 4 GiB is mapped, not used, until transactions need it.
const kamailioShm = 4096

// kamailioTuning is how Kamailio is run, as operators do: the TLSF memory
// manager, kamailioShm of shared memory, children SIP workers and a
// kamailioRcvBuf receive buffer. Reports quote it (kamailio.tuning).
func kamailioTuning(children int) []string {
	return []string{"-x", "tlsf", "-m", strconv.Itoa(kamailioShm), "-n", strconv.Itoa(children), "-b", strconv.Itoa(kamailioRcvBuf)}
}

// kamailio is a running Kamailio registrar in its own process group.
type kamailio struct {
	addr    string
	pgid    int
	version string
	logFile string
	tuning  string        // kamailioTuning as given, for reports
	exited  chan struct{} // closed when the main process has exited
}

// startKamailio starts Kamailio as a registrar for realm on a free UDP
// port of 127.0.0.1 (kamailio.cfg).
func startKamailio(t *testing.T, realm string) *kamailio {
	t.Helper()
	return runKamailio(t, kamailioConfig, freeUDPPort(t), []string{"udp"}, kamailioChildren(), fmt.Sprintf("REALM=%q", realm))
}

// runKamailio starts Kamailio with configuration file cfgPath on port of
// 127.0.0.1 over the given transports, with defines (-A), tuned as
// operators run it (kamailioTuning, children workers), in the foreground with its log in a
// file. The test's cleanup
// stops it and every process it forked.
func runKamailio(t *testing.T, cfgPath string, port int, transports []string, children int, defines ...string) *kamailio {
	t.Helper()
	bin, err := exec.LookPath("kamailio")
	if err != nil {
		// Debian installs it in /usr/sbin, outside a normal user's PATH.
		bin, err = exec.LookPath("/usr/sbin/kamailio")
	}
	if err != nil {
		t.Fatalf("kamailio not found: install Debian's kamailio package (make load-register and make load-calls do)")
	}
	cfg, err := filepath.Abs(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	k := &kamailio{
		addr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		logFile: filepath.Join(dir, "kamailio.log"),
		exited:  make(chan struct{}),
	}
	if out, err := exec.Command(bin, "-v").Output(); err == nil {
		// "version: kamailio 5.6.3 (x86_64/linux) …"
		if f := strings.Fields(string(out)); len(f) > 2 && f[1] == "kamailio" {
			k.version = f[2]
		}
	}
	logf, err := os.Create(k.logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	args := []string{"-f", cfg}
	for _, tp := range transports {
		args = append(args, "-l", tp+":"+k.addr)
	}
	for _, d := range defines {
		args = append(args, "-A", d)
	}
	tuning := kamailioTuning(children)
	k.tuning = strings.Join(tuning, " ")
	args = append(args, tuning...)
	args = append(args, "-DD", "-E", "-Y", dir, "-w", dir)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("kamailio: %v", err)
	}
	k.pgid = cmd.Process.Pid
	go func() { _ = cmd.Wait(); close(k.exited) }()
	t.Cleanup(k.stop)
	if err := k.waitReady(10 * time.Second); err != nil {
		t.Fatalf("kamailio (%s) on %s: %v\n%s", filepath.Base(cfgPath), k.addr, err, k.logTail())
	}
	return k
}

// stop ends Kamailio's process group: SIGTERM, then SIGKILL if it lingers.
func (k *kamailio) stop() {
	_ = syscall.Kill(-k.pgid, syscall.SIGTERM)
	select {
	case <-k.exited:
	case <-time.After(10 * time.Second):
	}
	// Workers that outlived the main process, or a main process that did
	// not stop: the group is ours alone.
	_ = syscall.Kill(-k.pgid, syscall.SIGKILL)
	<-k.exited
}

// waitReady sends OPTIONS until Kamailio answers (with 405: it serves
// REGISTER only).
func (k *kamailio) waitReady(timeout time.Duration) error {
	conn, err := net.Dial("udp", k.addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	local := conn.LocalAddr().String()
	buf := make([]byte, 4096)
	deadline := time.Now().Add(timeout)
	for i := 0; time.Now().Before(deadline); i++ {
		select {
		case <-k.exited:
			return errors.New("exited")
		default:
		}
		msg := "OPTIONS sip:" + k.addr + " SIP/2.0\r\n" +
			"Via: SIP/2.0/UDP " + local + ";branch=z9hG4bK-ready-" + strconv.Itoa(i) + ";rport\r\n" +
			"Max-Forwards: 70\r\n" +
			"From: <sip:probe@127.0.0.1>;tag=ready\r\n" +
			"To: <sip:" + k.addr + ">\r\n" +
			"Call-ID: ready-" + strconv.Itoa(i) + "@127.0.0.1\r\n" +
			"CSeq: 1 OPTIONS\r\n" +
			"Content-Length: 0\r\n\r\n"
		if _, err := conn.Write([]byte(msg)); err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if n, err := conn.Read(buf); err == nil && bytes.HasPrefix(buf[:n], []byte("SIP/2.0 ")) {
			return nil
		}
	}
	return fmt.Errorf("no answer to OPTIONS within %v", timeout)
}

// cpu returns the CPU time used so far by every live process of
// Kamailio's group (the main process and its workers).
func (k *kamailio) cpu() time.Duration { return groupCPU(k.pgid) }

func (k *kamailio) logTail() string {
	data, _ := os.ReadFile(k.logFile)
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}

// processCPU returns the CPU time used so far by this process: every
// thread, so every node of an in-process federation.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
