package node

import (
	"log/slog"
	"testing"
	"time"
)

// skipped is a pure query: asking about a far-future time (as GET
// /api/v1/route?at= may) must not drop a live Retry-After skip.
func TestSkippedDoesNotDropLiveSkips(t *testing.T) {
	f := &federation{n: &Node{log: slog.New(slog.DiscardHandler)}, skip: map[string]time.Time{}}
	f.Unavailable("alpha", time.Hour)
	if got := f.skipped(time.Now().Add(24 * time.Hour)); got["alpha"] {
		t.Fatalf("skipped a day ahead = %v; want alpha's skip over by then", got)
	}
	if got := f.skipped(time.Now()); !got["alpha"] {
		t.Fatalf("skipped now = %v after a far-future query; want alpha still skipped", got)
	}

	// Expired skips are dropped when another is added, on the real clock.
	f.Unavailable("beta", -time.Second)
	f.Unavailable("gamma", time.Hour)
	f.mu.Lock()
	_, kept := f.skip["beta"]
	n := len(f.skip)
	f.mu.Unlock()
	if kept || n != 2 {
		t.Fatalf("after adding gamma: beta kept = %v, %d skips; want beta dropped and 2 skips", kept, n)
	}
	if got := f.skipped(time.Now()); !got["alpha"] || !got["gamma"] || got["beta"] {
		t.Fatalf("skipped now = %v; want alpha and gamma", got)
	}
}
