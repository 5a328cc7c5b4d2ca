package siptx

import (
	"sync"
	"testing"
	"time"
)

// recorder is a timer owner that notes what fired, ignoring stale
// generations as a transaction does.
type recorder struct {
	mu    sync.Mutex
	gen   [4]uint32
	fired []uint8
	done  chan struct{}
	want  int
}

func (r *recorder) fire(kind uint8, gen uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gen[kind] != gen {
		return
	}
	r.fired = append(r.fired, kind)
	if len(r.fired) == r.want {
		close(r.done)
	}
}

// Timers fire in the order they are due, a stopped one (its generation
// bumped) never does, and one due beyond a full turn of the wheel waits
// for its turn instead of firing on the first pass over its slot.
func TestWheelOrderAndCancel(t *testing.T) {
	w := newWheel(time.Millisecond)
	defer w.close()
	r := &recorder{done: make(chan struct{}), want: 4}
	turn := wheelSlots * time.Millisecond
	start := time.Now()
	w.after(turn+100*time.Millisecond, r, 3, 0) // past one turn
	w.after(30*time.Millisecond, r, 1, 0)
	w.after(5*time.Millisecond, r, 0, 0)
	w.after(10*time.Millisecond, r, 2, 0)
	r.mu.Lock()
	r.gen[2]++ // stopped
	r.mu.Unlock()
	// The long timer shares its slot with a short one armed after a turn.
	time.Sleep(50 * time.Millisecond)
	w.after(turn+100*time.Millisecond-50*time.Millisecond, r, 2, 1)
	select {
	case <-r.done:
	case <-time.After(within):
		t.Fatalf("fired %v, want 4 timers", r.fired)
	}
	// A lower bound, not a timing assertion: firing on the first pass over
	// the slot would end this after about 100 ms.
	if d := time.Since(start); d < turn {
		t.Fatalf("long timers fired after %v, within one turn of the wheel (%v)", d, turn)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.fired) != 4 || r.fired[0] != 0 || r.fired[1] != 1 {
		t.Fatalf("fired %v, want 0, 1, then the two long ones", r.fired)
	}
}

// A wheel that emptied sleeps, and a timer armed after the sleep is not
// stretched or shortened by it.
func TestWheelSleepsAndWakes(t *testing.T) {
	w := newWheel(time.Millisecond)
	defer w.close()
	r := &recorder{done: make(chan struct{}), want: 1}
	w.after(time.Millisecond, r, 0, 0)
	<-r.done
	time.Sleep(20 * time.Millisecond)
	w.mu.Lock()
	count := w.count
	w.mu.Unlock()
	if count != 0 {
		t.Fatalf("%d entries left", count)
	}
	r2 := &recorder{done: make(chan struct{}), want: 1}
	start := time.Now()
	w.after(40*time.Millisecond, r2, 0, 0)
	<-r2.done
	// Not a timing assertion: a timer that fired before its due time is a
	// logic error (the wheel started counting from its last tick).
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Fatalf("fired after %v, before its 40 ms", d)
	}
}
