package sipedge

import (
	"testing"
	"time"
)

func TestGuardBlocksAfterRepeatedFailures(t *testing.T) {
	g := newGuard(3, time.Minute, 5*time.Minute)
	ip := "192.0.2.7"
	for i := range 2 {
		if g.Fail(ip, t0.Add(time.Duration(i)*time.Second)) {
			t.Fatalf("blocked after %d failures, limit 3", i+1)
		}
	}
	if g.Blocked(ip, t0.Add(3*time.Second)) {
		t.Fatal("blocked before the limit")
	}
	if !g.Fail(ip, t0.Add(3*time.Second)) || !g.Blocked(ip, t0.Add(4*time.Second)) {
		t.Fatal("not blocked at the limit")
	}
	if g.Blocked("192.0.2.8", t0.Add(4*time.Second)) {
		t.Fatal("another source blocked")
	}
	if g.Blocked(ip, t0.Add(3*time.Second+5*time.Minute+time.Nanosecond)) {
		t.Fatal("still blocked after block_for")
	}
	// Failures older than the window do not count.
	g.Fail(ip, t0.Add(time.Hour))
	g.Fail(ip, t0.Add(time.Hour+2*time.Minute))
	if g.Fail(ip, t0.Add(time.Hour+4*time.Minute)) {
		t.Fatal("failures spread beyond the window blocked the source")
	}
	// A success forgets earlier failures.
	g.Fail(ip, t0.Add(2*time.Hour))
	g.Fail(ip, t0.Add(2*time.Hour+time.Second))
	g.Succeed(ip)
	if g.Fail(ip, t0.Add(2*time.Hour+2*time.Second)) {
		t.Fatal("a success did not reset the failure count")
	}
	if newGuard(0, time.Minute, time.Minute).Fail(ip, t0) {
		t.Fatal("blocking disabled but a source was blocked")
	}
}
