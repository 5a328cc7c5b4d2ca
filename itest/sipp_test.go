package itest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callmesh/callmesh/itest/sipp"
)

// sippBin returns SIPp's path; SIPp is part of the suite (Debian package
// sip-tester, installed by `make deps` and .ci/run).
func sippBin(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("sipp")
	if err != nil {
		t.Fatalf("sipp not found: install Debian's sip-tester (make deps)")
	}
	return p
}

// sippRun is one SIPp run's outcome.
type sippRun struct {
	code               int
	successful, failed int
	output             string
}

// runSIPp runs scenario (from testdata/sipp, with [final] replaced by the
// expected final response) against addr for calls calls, one user per call
// from users, and reads the outcome from SIPp's statistics file.
func runSIPp(t *testing.T, scenario, final, addr, domain string, users [][2]string, transport string, rate int) sippRun {
	t.Helper()
	dir := t.TempDir()
	text, err := os.ReadFile(filepath.Join("testdata", "sipp", scenario))
	if err != nil {
		t.Fatal(err)
	}
	sf := filepath.Join(dir, scenario)
	if err := os.WriteFile(sf, bytes.ReplaceAll(text, []byte("[final]"), []byte(final)), 0o644); err != nil {
		t.Fatal(err)
	}
	var inf strings.Builder
	inf.WriteString("SEQUENTIAL\n")
	for _, u := range users {
		fmt.Fprintf(&inf, "%s;[authentication username=%s password=%s]\n", u[0], u[0], u[1])
	}
	injection := filepath.Join(dir, "users.csv")
	if err := os.WriteFile(injection, []byte(inf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	stat := filepath.Join(dir, "stat.csv")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, sippBin(t), addr,
		"-sf", sf, "-inf", injection, "-key", "domain", domain, "-key", "expires", "300",
		"-auth_uri", "sip:"+domain, "-i", "127.0.0.1", "-t", transport,
		"-m", strconv.Itoa(len(users)), "-r", strconv.Itoa(rate), "-l", "50",
		"-trace_stat", "-stf", stat, "-nostdin", "-timeout", "60s", "-timeout_error",
		"-trace_err", "-error_file", filepath.Join(dir, "errors.log"))
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	run := sippRun{output: string(out)}
	if ee, ok := err.(*exec.ExitError); ok {
		run.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("sipp: %v\n%s", err, out)
	}
	if errs, err := os.ReadFile(filepath.Join(dir, "errors.log")); err == nil && len(errs) > 0 {
		run.output += "\nerrors:\n" + string(errs)
	}
	if run.successful, run.failed, err = sipp.Counts(stat); err != nil {
		t.Fatalf("sipp statistics: %v\n%s", err, run.output)
	}
	return run
}

func TestSIPpRegistersWithDigest(t *testing.T) {
	sippBin(t)
	c := StartCluster(t, 1, Options{})
	n := c.Node(0)
	domain := n.Config().Domain
	const users = 100
	var creds [][2]string
	for i := range users {
		name, pw := fmt.Sprintf("user%03d", i), fmt.Sprintf("secret-%d", i)
		addUser(t, n, name, pw)
		creds = append(creds, [2]string{name, pw})
	}
	for _, transport := range []string{"u1", "t1"} {
		run := runSIPp(t, "register.xml", "200", n.SIPAddr(), domain, creds, transport, 100)
		if run.code != 0 || run.successful != users || run.failed != 0 {
			t.Fatalf("SIPp (%s): exit %d, %d successful, %d failed; want %d successful\n%s", transport, run.code, run.successful, run.failed, users, run.output)
		}
	}
	for _, u := range creds {
		loc, err := n.Locate(context.Background(), u[0]+"@"+domain)
		if err != nil || loc.Node != n.ID() {
			t.Fatalf("%s not registered at the node: %+v, %v", u[0], loc, err)
		}
	}

	// A wrong password is refused (403), not accepted.
	run := runSIPp(t, "register.xml", "403", n.SIPAddr(), domain, [][2]string{{"user000", "wrong"}}, "u1", 10)
	if run.code != 0 || run.successful != 1 {
		t.Fatalf("wrong password: exit %d, %d successful (scenario expects 403)\n%s", run.code, run.successful, run.output)
	}
}
