package siptx

import "sync"

// pool runs the request handlers on goroutines kept from one request to
// the next. A handler may block (an INVITE's handler holds its
// transaction until the final answer), so every request gets a goroutine
// of its own; but a fresh goroutine starts with a small stack, and a
// handler's chain (authorization, the B2BUA, building and sending
// messages) grew it by copying several times per request: a tenth of a
// node's CPU under call load. A kept goroutine grows its stack once.
type pool struct {
	mu     sync.Mutex
	idle   []*worker
	max    int // idle workers kept; more exit
	closed bool
	wg     sync.WaitGroup
}

type worker struct {
	p    *pool
	work chan func()
}

func newPool(maxIdle int) *pool { return &pool{max: maxIdle} }

// do runs f on a kept worker, or on a new one when all are busy; it
// returns at once. It reports false after close.
func (p *pool) do(f func()) bool {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return false
	}
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		w.work <- f
		return true
	}
	p.wg.Add(1)
	p.mu.Unlock()
	w := &worker{p: p, work: make(chan func(), 1)}
	w.work <- f
	go w.loop()
	return true
}

// put takes a worker back; false when it should exit.
func (p *pool) put(w *worker) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle) >= p.max {
		return false
	}
	p.idle = append(p.idle, w)
	return true
}

func (w *worker) loop() {
	defer w.p.wg.Done()
	for f := range w.work {
		f()
		if !w.p.put(w) {
			return
		}
	}
}

// close ends the idle workers and waits for the busy ones.
func (p *pool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, w := range idle {
		close(w.work)
	}
	p.wg.Wait()
}
