//go:build linux

package load

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clockTicks is the kernel's USER_HZ, the unit of CPU times in
// /proc/PID/stat: 100 on every Linux platform Go supports.
const clockTicks = 100

// proc is one process as /proc/PID/stat shows it.
type proc struct {
	cpu  time.Duration // user and system time, every thread
	sys  time.Duration // the system time alone
	pgid int
}

// readProc reads process pid; false once it has gone.
func readProc(pid int) (proc, bool) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return proc{}, false
	}
	// After "pid (comm) ": state ppid pgrp ... utime (14th field of the
	// line) and stime (15th); comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return proc{}, false
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return proc{}, false
	}
	pgid, _ := strconv.Atoi(f[2])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return proc{cpu: time.Duration(ut+st) * time.Second / clockTicks, sys: time.Duration(st) * time.Second / clockTicks, pgid: pgid}, true
}

// pidCPU is the CPU time process pid has used; 0 once it has gone.
func pidCPU(pid int) time.Duration {
	p, _ := readProc(pid)
	return p.cpu
}

// allProcs returns every process's CPU time so far, with its group.
func allProcs() map[int]proc {
	procs := make(map[int]proc)
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return procs
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProc(pid); ok { // else it exited meanwhile
			procs[pid] = p
		}
	}
	return procs
}

// groupCPU sums the CPU time of the live processes of group pgid.
func groupCPU(pgid int) time.Duration {
	cpu, _ := groupsTime(allProcs(), pgid)
	return cpu
}

// groupsTime sums the CPU time of the processes of the groups in procs
// (a snapshot from allProcs), and the system time within it.
func groupsTime(procs map[int]proc, pgids ...int) (cpu, sys time.Duration) {
	for _, p := range procs {
		if slices.Contains(pgids, p.pgid) {
			cpu += p.cpu
			sys += p.sys
		}
	}
	return cpu, sys
}

// loadAvg is the system's load averages over 1, 5 and 15 minutes.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// socketDrops returns, by local port, the datagrams the kernel dropped for
// want of room in the receive buffers of the UDP sockets bound on
// 127.0.0.1 or any address (/proc/net/udp, last column; counts over each
// socket's life).
func socketDrops() map[int]uint64 {
	drops := make(map[int]uint64)
	data, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return drops
	}
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 13 {
			continue
		}
		host, hexPort, ok := strings.Cut(f[1], ":")
		if !ok || (host != "0100007F" && host != "00000000") {
			continue
		}
		port, err1 := strconv.ParseUint(hexPort, 16, 16)
		d, err2 := strconv.ParseUint(f[len(f)-1], 10, 64)
		if err1 == nil && err2 == nil {
			drops[int(port)] += d
		}
	}
	return drops
}

// envCount reads a positive number from the environment variable name,
// def when it is unset; anything else fails the test.
func envCount(t *testing.T, name string, def int) int {
	t.Helper()
	v := envCounts(t, name, []int{def})
	if len(v) != 1 {
		t.Fatalf("%s=%q: want one positive number", name, os.Getenv(name))
	}
	return v[0]
}

// envCounts reads a comma-separated list of positive integers (rates,
// numbers of calls) from environment variable name; def when it is unset.
func envCounts(t *testing.T, name string, def []int) []int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			t.Fatalf("%s=%q: %q is not a positive number", name, s, f)
		}
		out = append(out, n)
	}
	return out
}
