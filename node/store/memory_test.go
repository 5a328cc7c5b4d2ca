package store

import (
	"runtime"
	"testing"
)

// idleHeapPerStore opens n on-disk stores with opts (Dir is replaced by a
// fresh temporary directory for each), and returns the growth of the live Go
// heap per open store, measured after garbage collection.
func idleHeapPerStore(tb testing.TB, n int, opts Options) float64 {
	tb.Helper()
	before := liveHeap()
	stores := make([]*Store, 0, n)
	defer func() {
		for _, s := range stores {
			if err := s.Close(); err != nil {
				tb.Errorf("Close: %v", err)
			}
		}
	}()
	for range n {
		opts.Dir = tb.TempDir()
		s, err := Open(opts)
		if err != nil {
			tb.Fatalf("Open: %v", err)
		}
		stores = append(stores, s)
	}
	after := liveHeap()
	runtime.KeepAlive(stores)
	return float64(int64(after)-int64(before)) / float64(n)
}

// liveHeap returns the bytes of live heap objects after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkIdleHeapPerStore reports the heap cost of an idle, open store:
//
//	go test -run='^$' -bench=IdleHeapPerStore -benchtime=3x ./node/store/
//
// "default" uses Badger's defaults and opens fewer stores, since each one
// reserves a 64 MB memtable arena.
func BenchmarkIdleHeapPerStore(b *testing.B) {
	for _, bc := range []struct {
		name string
		n    int
		opts Options
	}{
		{"small", 20, Options{SmallMemory: true, GCInterval: -1}},
		{"default", 4, Options{GCInterval: -1}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var perStore float64
			for b.Loop() {
				perStore = idleHeapPerStore(b, bc.n, bc.opts)
			}
			b.ReportMetric(perStore/(1<<20), "heap-MiB/store")
			b.ReportMetric(perStore, "heap-B/store")
		})
	}
}

// TestSmallMemoryBudget guards the SmallMemory preset against regressions
// that would stop dozens of stores from fitting in one test process.
func TestSmallMemoryBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 20 stores")
	}
	const budget = 8 << 20
	perStore := idleHeapPerStore(t, 20, Options{SmallMemory: true, GCInterval: -1})
	t.Logf("idle SmallMemory store: %.2f MiB of heap", perStore/(1<<20))
	if perStore > budget {
		t.Fatalf("idle SmallMemory store uses %.2f MiB of heap, budget %d MiB", perStore/(1<<20), budget>>20)
	}
}
