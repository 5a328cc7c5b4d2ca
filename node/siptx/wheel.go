package siptx

import (
	"sync"
	"time"

	"github.com/callmesh/callmesh/media/slots"
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

	mu     sync.Mutex
	slots  [][]entry
	now    uint64 // ticks since start
	start  time.Time
	count  int                // entries in the slots, stale ones included
	owners slots.Table[owned] // the registered owners, by handle's slot
	wake   chan struct{}      // the goroutine sleeps when count is 0
	stop   chan struct{}
	done   chan struct{}
}

// entry is one armed timer: its owner's fire(kind, gen) is called when
// due, if the owner is still registered; the owner ignores a gen it has
// moved past. An entry holds no pointer.
type entry struct {
	due  uint64
	slot uint32 // the owner's, with the registration's generation
	sgen uint32
	gen  uint32
	kind uint8
}

type timed interface {
	fire(kind uint8, gen uint32)
}

// An owner (a transaction) registers with the wheel while it lives and
// releases its handle when it ends; its entries name it by handle. A
// stopped timer stays in its slot until due, and an entry holding the
// transaction kept every ended one, with its request and responses, for
// the longest timer it had armed (Timer B, 32 s): under call load that was
// most of a node's heap. Released, a transaction is garbage at once, and
// its stale entries find its slot's generation moved on. The slots hold no
// pointer for the collector to follow: under call load they hold hundreds
// of thousands of stale entries, which it would otherwise trace at every
// cycle.
type handle struct{ slot, gen uint32 } // gen 0: not registered

type owned struct {
	owner timed
	gen   uint32 // bumped at each release
}

// register makes owner's handle.
func (w *wheel) register(owner timed) handle {
	w.mu.Lock()
	defer w.mu.Unlock()
	s, o := w.owners.Take()
	if o.gen == 0 {
		o.gen = 1 // a new slot: generation 0 is no handle's
	}
	o.owner = owner
	return handle{slot: s, gen: o.gen}
}

// release ends h's registration: its timers no longer fire, and the wheel
// no longer holds its owner.
func (w *wheel) release(h handle) {
	if h.gen == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	o := w.owners.At(h.slot)
	if o.gen != h.gen {
		return
	}
	o.owner = nil
	if o.gen++; o.gen == 0 {
		o.gen = 1
	}
	w.owners.Put(h.slot)
}

// due is an entry that fell due, with its owner.
type due struct {
	owner timed
	kind  uint8
	gen   uint32
}

const wheelSlots = 1024

func newWheel(tick time.Duration) *wheel {
	w := &wheel{tick: tick, slots: make([][]entry, wheelSlots), start: time.Now(),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

// after arms a timer that fires the owner's fire(kind, gen) after d, if
// h is still registered then.
func (w *wheel) after(d time.Duration, h handle, kind uint8, gen uint32) {
	if h.gen == 0 {
		return // an owner not registered (or no more) has no timers
	}
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
	*slot = append(*slot, entry{due: due, slot: h.slot, sgen: h.gen, kind: kind, gen: gen})
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
	var fired []due
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
		fired = w.advance(fired[:0])
		for i := range fired {
			fired[i].owner.fire(fired[i].kind, fired[i].gen)
			fired[i].owner = nil
		}
	}
}

// advance moves the wheel to the present and collects the due entries
// of owners still registered.
func (w *wheel) advance(fired []due) []due {
	w.mu.Lock()
	defer w.mu.Unlock()
	target := uint64(time.Since(w.start) / w.tick)
	for w.now < target {
		w.now++
		slot := w.slots[w.now%wheelSlots]
		kept := slot[:0]
		for _, e := range slot {
			if e.due <= w.now {
				// A released slot's generation has moved on.
				if o := w.owners.At(e.slot); o.gen == e.sgen {
					fired = append(fired, due{owner: o.owner, kind: e.kind, gen: e.gen})
				}
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
	return fired
}

// close stops the wheel; armed timers never fire.
func (w *wheel) close() {
	close(w.stop)
	<-w.done
}
