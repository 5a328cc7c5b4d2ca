package load

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callmesh/callmesh/itest/sipp"
)

// scenario is the SIPp scenario of one timed registration (testdata).
const scenario = "register.xml"

// sippBufferSize is SIPp's socket buffer (-buff_size), so that SIPp's own
// socket is not where responses are dropped at high rates; the kernel caps
// it at net.core.rmem_max.
const sippBufferSize = 4 << 20

// sippConcurrency bounds the registrations SIPp keeps open (-l).
const sippConcurrency = 3000

// user is one account, the same on every server under test.
type user struct{ name, password string }

// sippJob is one SIPp run: users register at addr at rate per second, one
// call (REGISTER, 401, REGISTER with credentials, 200) per user, from
// local UDP port port.
type sippJob struct {
	addr, domain string
	port         int
	users        []user
	rate         int
	expires      int
	timeout      time.Duration // SIPp's own bound on the run (-timeout)
}

// sippResult is what one SIPp run measured.
type sippResult struct {
	successful, failed int       // from the statistics file
	times              []float64 // response time 1 of each successful call, ms
	started            float64   // calls started per second, from their start times
	wall, cpu          time.Duration
	exit               int
	errors             string // SIPp's error file, shortened
}

// runSIPp runs job with SIPp and reads its statistics and response times.
// SIPp's exit code is recorded, not judged: failed calls are what the
// benchmark measures.
func runSIPp(t *testing.T, job sippJob) sippResult {
	t.Helper()
	bin, err := exec.LookPath("sipp")
	if err != nil {
		t.Fatalf("sipp not found: install Debian's sip-tester (make deps)")
	}
	sf, err := filepath.Abs(filepath.Join("testdata", scenario))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var inf bytes.Buffer
	inf.WriteString("SEQUENTIAL\n")
	for _, u := range job.users {
		fmt.Fprintf(&inf, "%s;[authentication username=%s password=%s]\n", u.name, u.name, u.password)
	}
	injection := filepath.Join(dir, "users.csv")
	if err := os.WriteFile(injection, inf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	stat := filepath.Join(dir, "stat.csv")
	errFile := filepath.Join(dir, "errors.log")
	args := []string{job.addr,
		"-sf", sf, "-inf", injection,
		"-key", "domain", job.domain, "-key", "expires", strconv.Itoa(job.expires),
		"-auth_uri", "sip:" + job.domain,
		"-i", "127.0.0.1", "-p", strconv.Itoa(job.port), "-t", "u1",
		"-m", strconv.Itoa(len(job.users)), "-r", strconv.Itoa(job.rate), "-l", strconv.Itoa(sippConcurrency),
		"-buff_size", strconv.Itoa(sippBufferSize),
		"-trace_stat", "-stf", stat,
		"-trace_rtt", "-rtt_freq", "1000",
		"-trace_err", "-error_file", errFile,
		"-nostdin", "-timeout", strconv.Itoa(int(job.timeout/time.Second)) + "s", "-timeout_error",
	}
	ctx, cancel := context.WithTimeout(context.Background(), job.timeout+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	res := sippResult{wall: time.Since(start)}
	if cmd.ProcessState != nil {
		res.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		res.exit = cmd.ProcessState.ExitCode()
	}
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("sipp: %v\n%s", err, out.Bytes())
	}
	if data, err := os.ReadFile(errFile); err == nil {
		res.errors = shorten(string(data), 2000)
	}
	res.successful, res.failed, err = sipp.Counts(stat)
	if err != nil {
		t.Fatalf("sipp statistics: %v\nexit %d\n%s\nerrors:\n%s", err, res.exit, shorten(out.String(), 4000), res.errors)
	}
	// SIPp names the response time file after the scenario and its PID,
	// in its working directory.
	files, _ := filepath.Glob(filepath.Join(dir, "*_rtt.csv"))
	if len(files) != 1 {
		t.Fatalf("sipp response times: %d files in %s", len(files), dir)
	}
	res.times, res.started, err = readRTT(files[0])
	if err != nil {
		t.Fatalf("sipp response times: %v", err)
	}
	return res
}

// readRTT reads SIPp's response time file (-trace_rtt): one line per
// completed response time, "Date_ms;response_time_ms;rtd_no", where Date_ms
// is SIPp's clock in milliseconds since it started. Only response time 1
// is kept. A call started at Date_ms minus its response time; started is
// the rate at which SIPp started the calls, which falls short of the
// target when SIPp cannot keep up or its limit of open calls is reached.
func readRTT(path string) (times []float64, started float64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	first, last := math.Inf(1), math.Inf(-1)
	for sc.Scan() {
		fields := strings.Split(strings.TrimSpace(sc.Text()), ";")
		if len(fields) < 3 || fields[2] != "1" {
			continue // the header, or another response time
		}
		at, err1 := strconv.ParseFloat(fields[0], 64)
		rt, err2 := strconv.ParseFloat(fields[1], 64)
		if err1 != nil || err2 != nil {
			return nil, 0, fmt.Errorf("%s: bad line %q", path, sc.Text())
		}
		times = append(times, rt)
		first, last = min(first, at-rt), max(last, at-rt)
	}
	if len(times) > 1 && last > first {
		started = float64(len(times)-1) / ((last - first) / 1000)
	}
	return times, started, sc.Err()
}

// quantile returns the q-quantile (nearest rank) of sorted values.
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func sortedCopy(v []float64) []float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s
}

// freeUDPPort returns a UDP port on 127.0.0.1 that was free a moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "\n…"
}
