//go:build linux

package load

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// callsKamailioConfig is the reference stateful proxy and registrar
// (testdata of package itest).
const callsKamailioConfig = "../testdata/kamailio/proxy.cfg"

// startCallsKamailio starts Kamailio with proxy.cfg on a free port of
// 127.0.0.1, UDP and TCP, as operators run it (TLSF memory manager, 1 GiB
// of shared memory, kamailioChildren workers), with the given defines
// (-A: "WITH_AUTH", `REALM="example.org"`). The test's cleanup stops it and
// every process it forked.
func startCallsKamailio(t *testing.T, defines ...string) *kamailio {
	t.Helper()
	bin, err := exec.LookPath("kamailio")
	if err != nil {
		// Debian installs it in /usr/sbin, outside a normal user's PATH.
		bin, err = exec.LookPath("/usr/sbin/kamailio")
	}
	if err != nil {
		t.Fatalf("kamailio not found: install Debian's kamailio package (make load-calls does)")
	}
	cfg, err := filepath.Abs(callsKamailioConfig)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	port := callsFreeSIPPort(t)
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
	args := []string{"-f", cfg, "-l", "udp:" + k.addr, "-l", "tcp:" + k.addr}
	for _, d := range defines {
		args = append(args, "-A", d)
	}
	args = append(args, "-x", "tlsf", "-m", "1024", "-n", strconv.Itoa(kamailioChildren),
		"-DD", "-E", "-Y", dir, "-w", dir)
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
		t.Fatalf("kamailio (proxy.cfg) on %s: %v\n%s", k.addr, err, k.logTail())
	}
	return k
}

// callsKamailioTitle describes a proxy.cfg Kamailio for reports.
func callsKamailioTitle(k *kamailio, what string) string {
	return fmt.Sprintf("Kamailio %s: %s (proxy.cfg), -x tlsf -m 1024 -n %d", k.version, what, kamailioChildren)
}
