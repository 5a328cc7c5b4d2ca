package gopool

import (
	"sync"
	"testing"
	"time"
)

// A goroutine is kept after its function returns and runs the next one;
// no more than the maximum are kept idle.
func TestPoolKeepsGoroutines(t *testing.T) {
	p := New(2)
	defer p.Close()
	// Three functions at once need three goroutines.
	release := make(chan struct{})
	var started sync.WaitGroup
	started.Add(3)
	for range 3 {
		if !p.Go(func() { started.Done(); <-release }) {
			t.Fatal("Go refused before Close")
		}
	}
	started.Wait()
	if n := p.Idle(); n != 0 {
		t.Fatalf("idle while all are busy: %d", n)
	}
	close(release)
	waitIdle(t, p, 2) // the third exits: only two are kept

	// A kept goroutine runs the next function: one leaves the idle set,
	// and no new one joins it afterwards.
	hold := make(chan struct{})
	p.Go(func() { <-hold })
	if n := p.Idle(); n != 1 {
		t.Fatalf("idle after handing work to a kept goroutine: %d, want 1", n)
	}
	close(hold)
	waitIdle(t, p, 2)
}

// Close waits for busy functions, and Go refuses afterwards.
func TestPoolCloseWaits(t *testing.T) {
	p := New(4)
	release := make(chan struct{})
	finished := make(chan struct{})
	p.Go(func() { <-release; close(finished) })
	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while a function was running")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return after the function ended")
	}
	select {
	case <-finished:
	default:
		t.Fatal("Close returned before the function ended")
	}
	if p.Go(func() { t.Error("ran after Close") }) {
		t.Fatal("Go accepted work after Close")
	}
}

func waitIdle(t *testing.T, p *Pool, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for p.Idle() != want {
		if time.Now().After(deadline) {
			t.Fatalf("idle goroutines: %d, want %d", p.Idle(), want)
		}
		time.Sleep(time.Millisecond)
	}
}
