package siptx

import (
	"sync"

	"github.com/emiago/sipgo/sip"
)

// terminated is the last state of both kinds of transaction.
const terminated uint8 = 255

// base.gen has room for the timers of either kind of transaction.
var _ [serverTimers - clientTimers]struct{}

// base is what server and client transactions share: the layer, the
// connection, the lock, the state, the timers' generations, and the end:
// its error, its channel, and who is told of it.
type base struct {
	key    string
	l      *Layer
	conn   sip.Connection
	server bool // in the layer's server transactions, not its client ones
	stored bool // in the layer's table under key; guarded by the layer's mu

	mu          sync.Mutex
	state       uint8
	gen         [serverTimers]uint32 // per timer kind; a bump stops the armed one
	err         error
	done        chan struct{} // made when asked for, closed at the end
	onTerminate []sip.FnTxTerminate
	ender       ender  // told of the end after onTerminate; nil: nobody
	timers      handle // its registration with the layer's wheel, from its first timer to its end
}

// ender is a transaction told of its own end (a RequestFunc transaction
// tells its function): an interface holding the transaction itself costs
// no allocation, where a method value in onTerminate costs two.
type ender interface{ ended(err error) }

// terminate ends the transaction once: err (nil: it simply ended) is what
// Err reports unless an error came first; its timers stop, the layer
// forgets it, its connection is released, and who asked is told.
func (b *base) terminate(err error) {
	b.mu.Lock()
	err, fns, ok := b.endLocked(err)
	if !ok {
		b.mu.Unlock()
		return
	}
	for i := range b.gen {
		b.gen[i]++
	}
	timers := b.timers
	b.timers = handle{}
	b.mu.Unlock()
	b.l.wheel.release(timers)
	b.l.forget(b)
	_, _ = b.conn.TryClose()
	for _, f := range fns {
		f(b.key, err)
	}
	if b.ender != nil {
		b.ender.ended(err)
	}
}

// endLocked marks the end with err, unless an error came first (a
// cancellation), or ErrTransactionTerminated when neither says more. It
// returns the error and who is to be told, and false when the
// transaction had ended already. Called with mu held.
func (b *base) endLocked(err error) (error, []sip.FnTxTerminate, bool) {
	if b.state == terminated {
		return nil, nil, false
	}
	b.state = terminated
	if b.err == nil {
		b.err = err
	}
	if b.err == nil {
		b.err = sip.ErrTransactionTerminated
	}
	if b.done != nil {
		close(b.done)
	}
	fns := b.onTerminate
	b.onTerminate = nil
	return b.err, fns, true
}

// OnTerminate registers f for the end; false when it has come.
func (b *base) OnTerminate(f sip.FnTxTerminate) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == terminated {
		return false
	}
	b.onTerminate = append(b.onTerminate, f)
	return true
}

// Done is closed at the end.
func (b *base) Done() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.doneLocked()
}

func (b *base) doneLocked() chan struct{} {
	if b.done == nil {
		if b.state == terminated {
			return closed
		}
		b.done = make(chan struct{})
	}
	return b.done
}

// Err says why the transaction ended (nil while it runs).
func (b *base) Err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// closed is a closed channel, for Done after an end nobody waited on.
var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()
