package itest

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// benchTB is the harness's TB for a benchmark: everything goes to the
// benchmark except the harness's own log lines (errors met while stopping
// nodes), which are counted and summed up in one line at the end, so that
// the figures are not buried under one line per node.
type benchTB struct {
	*testing.B
	mu    sync.Mutex
	logs  int
	first string
}

// quiet wraps b; its summary line is logged after every cluster started on
// it has stopped.
func quiet(b *testing.B) *benchTB {
	t := &benchTB{B: b}
	b.Cleanup(func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.logs > 0 {
			b.Logf("harness logged %d lines (suppressed); first: %s", t.logs, t.first)
		}
	})
	return t
}

func (t *benchTB) Logf(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.logs == 0 {
		t.first = fmt.Sprintf(format, args...)
	}
	t.logs++
}

// durations is a sample of latencies.
type durations []time.Duration

// sorted returns the sample in ascending order.
func (d durations) sorted() durations {
	s := slices.Clone(d)
	slices.Sort(s)
	return s
}

// quantile returns the nearest-rank q-quantile (0 < q <= 1) of a sorted
// sample, or 0 for an empty one.
func (d durations) quantile(q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	k := int(math.Ceil(q*float64(len(d)))) - 1
	return d[min(max(k, 0), len(d)-1)]
}

// ms converts a duration to fractional milliseconds, for ReportMetric.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// heapAndGoroutines returns the live heap after a full collection and the
// number of goroutines.
func heapAndGoroutines() (heap uint64, goroutines int) {
	runtime.GC()
	runtime.GC() // a second cycle frees what the first one's finalizers released
	var st runtime.MemStats
	runtime.ReadMemStats(&st)
	return st.HeapAlloc, runtime.NumGoroutine()
}

// cpuMeter is a reading of the process's CPU time and the wall clock, to
// tell how many cores the process used over an interval. The CPU time is
// read from /proc/self/stat, so only on Linux; elsewhere the meter reports
// nothing.
type cpuMeter struct {
	cpu  time.Duration
	wall time.Time
	ok   bool
}

func readCPU() cpuMeter {
	cpu, ok := processCPU()
	return cpuMeter{cpu: cpu, wall: time.Now(), ok: ok}
}

// since formats the cores used since m was read, such as "1.85 cores".
func (m cpuMeter) since() string {
	now := readCPU()
	wall := now.wall.Sub(m.wall)
	if !m.ok || !now.ok || wall <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f cores", float64(now.cpu-m.cpu)/float64(wall))
}

// processCPU returns the user and system CPU time the process has used.
func processCPU() (time.Duration, bool) {
	data, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, false
	}
	// Field 2, the command name, is in parentheses and may hold spaces;
	// after it come fields 3 (state) onwards, utime and stime being 14 and
	// 15, in clock ticks of 10 ms (USER_HZ is 100 on Linux).
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, true
}
