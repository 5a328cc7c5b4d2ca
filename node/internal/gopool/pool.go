// Package gopool runs functions on goroutines kept from one use to the
// next.
//
// A fresh goroutine starts with a small stack. The node's request
// handlers and call loops run deep chains (authorization, the B2BUA,
// building and sending messages) that grew a fresh stack by copying
// several times each: a tenth of a node's CPU under call load. A kept
// goroutine grows its stack once. Every function gets a goroutine of its
// own, so a function may block (a call served on a goroutine of its own
// may wait on a TCP write or a dial).
package gopool

import "sync"

// Pool is a set of kept goroutines. The zero value is not usable; see New.
type Pool struct {
	mu     sync.Mutex
	idle   []*worker
	max    int // idle workers kept; more exit
	closed bool
	wg     sync.WaitGroup
}

type worker struct {
	p    *Pool
	work chan func()
}

// New returns a pool that keeps at most maxIdle goroutines waiting.
func New(maxIdle int) *Pool { return &Pool{max: maxIdle} }

// Go runs f on a kept goroutine, or on a new one when all are busy; it
// returns at once. It reports false, and does not run f, after Close.
func (p *Pool) Go(f func()) bool {
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

// Idle is the number of goroutines waiting for work.
func (p *Pool) Idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// put takes a worker back; false when it should exit.
func (p *Pool) put(w *worker) bool {
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

// Close ends the idle goroutines and waits for the busy ones.
func (p *Pool) Close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, w := range idle {
		close(w.work)
	}
	p.wg.Wait()
}
