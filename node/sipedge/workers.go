package sipedge

import "sync"

// workers runs request handlers on goroutines kept from one request to the
// next. The SIP stack starts a goroutine per message with a small stack,
// and a handler's call chain (authorization, the B2BUA, building and
// sending messages) grew that stack by copying it several times per
// message: a tenth of a node's CPU under call load. A kept goroutine grows
// its stack once, and the runtime shrinks an idle one only at a garbage
// collection.
type workers struct {
	mu   sync.Mutex
	idle []*worker
	max  int // idle workers kept; more exit
}

type worker struct {
	work chan func()
	done chan struct{}
}

// idleWorkers bounds the workers kept idle: enough for the requests in
// flight at thousands of calls per second.
const idleWorkers = 256

func newWorkers(maxIdle int) *workers { return &workers{max: maxIdle} }

// run calls f on a worker and returns when f has returned.
func (p *workers) run(f func()) {
	w := p.get()
	w.work <- f
	<-w.done
	p.put(w)
}

func (p *workers) get() *worker {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return w
	}
	p.mu.Unlock()
	w := &worker{work: make(chan func()), done: make(chan struct{})}
	go w.loop()
	return w
}

func (p *workers) put(w *worker) {
	p.mu.Lock()
	if len(p.idle) < p.max {
		p.idle = append(p.idle, w)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	close(w.work)
}

// close ends the idle workers; busy ones end when their request is done.
func (p *workers) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.max = nil, 0
	p.mu.Unlock()
	for _, w := range idle {
		close(w.work)
	}
}

func (w *worker) loop() {
	for f := range w.work {
		f()
		w.done <- struct{}{}
	}
}
