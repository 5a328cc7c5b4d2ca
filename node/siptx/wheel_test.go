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
	h := w.register(r)
	turn := wheelSlots * time.Millisecond
	start := time.Now()
	w.after(turn+100*time.Millisecond, h, 3, 0) // past one turn
	w.after(30*time.Millisecond, h, 1, 0)
	w.after(5*time.Millisecond, h, 0, 0)
	w.after(10*time.Millisecond, h, 2, 0)
	r.mu.Lock()
	r.gen[2]++ // stopped
	r.mu.Unlock()
	// The long timer shares its slot with a short one armed after a turn.
	time.Sleep(50 * time.Millisecond)
	w.after(turn+100*time.Millisecond-50*time.Millisecond, h, 2, 1)
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
	w.after(time.Millisecond, w.register(r), 0, 0)
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
	w.after(40*time.Millisecond, w.register(r2), 0, 0)
	<-r2.done
	// Not a timing assertion: a timer that fired before its due time is a
	// logic error (the wheel started counting from its last tick).
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Fatalf("fired after %v, before its 40 ms", d)
	}
}

// A released owner's timers never fire, even once its slot serves another
// owner, and the wheel holds the owner no longer.
func TestWheelRelease(t *testing.T) {
	w := newWheel(time.Millisecond)
	defer w.close()
	gone := &recorder{done: make(chan struct{}), want: 1}
	h := w.register(gone)
	w.after(5*time.Millisecond, h, 0, 0)
	w.release(h)
	w.release(h) // a second release changes nothing
	r := &recorder{done: make(chan struct{}), want: 1}
	h2 := w.register(r)
	if h2.slot != h.slot || h2.gen == h.gen {
		t.Fatalf("handle %+v after releasing %+v: want the slot again, at a new generation", h2, h)
	}
	w.after(20*time.Millisecond, h2, 0, 0) // due after the released one's
	select {
	case <-r.done:
	case <-time.After(within):
		t.Fatal("the new owner's timer did not fire")
	}
	gone.mu.Lock()
	fired := len(gone.fired)
	gone.mu.Unlock()
	if fired != 0 {
		t.Fatal("a released owner's timer fired")
	}
	w.release(h2)
	w.mu.Lock()
	held := w.owners.At(h2.slot).owner
	w.mu.Unlock()
	if held != nil {
		t.Fatal("the wheel still holds a released owner")
	}
}
