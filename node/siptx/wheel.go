package siptx

import (
	"sync"
	"time"
	"weak"
)

// wheel is a hashed timing wheel (Varghese and Lauck, 1987) for the
// transactions' timers. A node under call load keeps tens of thousands of
// transaction timers, and almost every one is stopped before it fires (a
// response ends the retransmissions; the 32 s waits end in bulk). A
// runtime timer costs an allocation, a lock on the timer heap and a heap
// operation to start and another to stop; an entry here costs an append
// to a slot, and stopping it costs nothing: the owner bumps a generation
// and the stale entry is dropped when its slot comes round.
//
// Timers fire on the wheel's goroutine, late by up to one tick: SIP's
// timers (T1 = 500 ms and its multiples) do not need better.
type wheel struct {
	tick time.Duration

	mu    sync.Mutex
	slots [][]entry
	now   uint64 // ticks since start
	start time.Time
	count int           // entries in the slots, stale ones included
	wake  chan struct{} // the goroutine sleeps when count is 0
	stop  chan struct{}
	done  chan struct{}
}

// entry is one armed timer: fire(kind, gen) is called when due; the owner
// ignores a gen it has moved past.
type entry struct {
	due   uint64
	owner timed
	kind  uint8
	gen   uint32
}

type timed interface {
	fire(kind uint8, gen uint32)
}

// A transaction arms its timers through a weak reference to itself. A
// stopped timer stays in its slot until due, and a strong reference there
// kept every ended transaction, with its request and responses, for the
// longest timer it had armed (Timer B, 32 s): under call load that was
// most of a node's heap. A live transaction is held by the layer's maps,
// so its timers still fire; an ended one is garbage at once.
type (
	weakServer weak.Pointer[serverTx]
	weakClient weak.Pointer[clientTx]
)

func (w weakServer) fire(kind uint8, gen uint32) {
	if tx := weak.Pointer[serverTx](w).Value(); tx != nil {
		tx.fire(kind, gen)
	}
}

func (w weakClient) fire(kind uint8, gen uint32) {
	if tx := weak.Pointer[clientTx](w).Value(); tx != nil {
		tx.fire(kind, gen)
	}
}

const wheelSlots = 1024

func newWheel(tick time.Duration) *wheel {
	w := &wheel{tick: tick, slots: make([][]entry, wheelSlots), start: time.Now(),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

// after arms a timer that fires owner.fire(kind, gen) after d.
func (w *wheel) after(d time.Duration, owner timed, kind uint8, gen uint32) {
	w.mu.Lock()
	// Ticks are counted from the start, not from the last tick run: a
	// wheel that slept or fell behind must not stretch new timers. The due
	// tick is the first whole tick at or after now+d: never early, late by
	// at most a tick.
	now := time.Since(w.start)
	if w.count == 0 {
		// An empty wheel may have slept: it restarts at the present.
		w.now = max(w.now, uint64(now/w.tick))
	}
	due := uint64((now+d)/w.tick) + 1
	if due <= w.now {
		due = w.now + 1
	}
	slot := &w.slots[due%wheelSlots]
	*slot = append(*slot, entry{due: due, owner: owner, kind: kind, gen: gen})
	w.count++
	first := w.count == 1
	w.mu.Unlock()
	if first {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

func (w *wheel) run() {
	defer close(w.done)
	t := time.NewTicker(w.tick)
	defer t.Stop()
	var due []entry
	for {
		w.mu.Lock()
		idle := w.count == 0
		w.mu.Unlock()
		if idle {
			select {
			case <-w.wake:
			case <-w.stop:
				return
			}
		}
		select {
		case <-t.C:
		case <-w.stop:
			return
		}
		due = w.advance(due[:0])
		for i := range due {
			due[i].owner.fire(due[i].kind, due[i].gen)
			due[i].owner = nil
		}
	}
}

// advance moves the wheel to the present and collects the due entries.
func (w *wheel) advance(due []entry) []entry {
	w.mu.Lock()
	defer w.mu.Unlock()
	target := uint64(time.Since(w.start) / w.tick)
	for w.now < target {
		w.now++
		slot := w.slots[w.now%wheelSlots]
		kept := slot[:0]
		for _, e := range slot {
			if e.due <= w.now {
				due = append(due, e)
				w.count--
				continue
			}
			kept = append(kept, e)
		}
		clear(slot[len(kept):])
		w.slots[w.now%wheelSlots] = kept
		if w.count == 0 {
			w.now = target // nothing left to walk past
		}
	}
	return due
}

// close stops the wheel; armed timers never fire.
func (w *wheel) close() {
	close(w.stop)
	<-w.done
}
