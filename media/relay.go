package media

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by Open after Close.
var ErrClosed = errors.New("media: relay closed")

// ErrExists is returned by Open for a session id already open.
var ErrExists = errors.New("media: session already open")

// DeadFunc is told that a leg of a session went silent while it should be
// sending. It is called from the relay's sweeper goroutine, once per
// silence, and must not block for long; it may close the session.
type DeadFunc func(s *Session, side Side, silent time.Duration)

// Option sets an optional relay dependency.
type Option func(*Relay)

// WithLogger sets the relay's logger.
func WithLogger(l *slog.Logger) Option { return func(r *Relay) { r.log = l } }

// WithDeadFunc sets who is told about dead streams.
func WithDeadFunc(f DeadFunc) Option { return func(r *Relay) { r.onDead = f } }

// Relay anchors RTP and RTCP for many sessions. It owns the goroutines
// that read its sockets (on Linux Config.Workers epoll workers, elsewhere
// one per socket) and a sweeper goroutine; Close stops them all.
type Relay struct {
	cfg    Config
	log    *slog.Logger
	onDead DeadFunc
	pool   *portPool
	epoch  time.Time

	mu       sync.Mutex
	sessions map[string]*Session
	closed   bool
	opening  sync.WaitGroup // Opens binding ports: Close waits for them before it stops the pollers

	stop   chan struct{}
	done   chan struct{}
	io     ioState
	kernel *kernelState // nil: no kernel fast path

	Counters Counters
}

// Counters are the relay's running totals, for metrics.
type Counters struct {
	Opened, Refused, Closed   atomic.Uint64
	Forwarded, ForwardedBytes atomic.Uint64
	Dropped                   atomic.Uint64 // strangers, junk, malformed RTCP, no destination
	SendErrors                atomic.Uint64
	RelayReports              atomic.Uint64 // RTCP the relay itself sent
	DeadStreams               atomic.Uint64
	KernelForwarded           atomic.Uint64 // of Forwarded, by the kernel fast path
}

// New starts a relay: validates cfg and starts the sweeper.
func New(cfg Config, opts ...Option) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Relay{
		cfg:      cfg,
		log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		pool:     newPortPool(cfg.PortMin, cfg.PortMax),
		epoch:    time.Now(),
		sessions: make(map[string]*Session),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	for _, o := range opts {
		o(r)
	}
	if err := r.startIO(); err != nil {
		return nil, err
	}
	if err := r.startKernel(); err != nil {
		r.stopIO()
		return nil, err
	}
	go r.sweep()
	return r, nil
}

// SetDeadFunc sets who is told about dead streams, replacing WithDeadFunc.
func (r *Relay) SetDeadFunc(f DeadFunc) {
	r.mu.Lock()
	r.onDead = f
	r.mu.Unlock()
}

// Config is the relay's configuration.
func (r *Relay) Config() Config { return r.cfg }

// now is the relay's monotonic clock in nanoseconds.
func (r *Relay) now() int64 { return int64(time.Since(r.epoch)) }

// mono converts a wall time to the relay's clock.
func (r *Relay) mono(t time.Time) int64 { return int64(t.Sub(r.epoch)) }

// FreePairs is the number of RTP/RTCP port pairs not in use.
func (r *Relay) FreePairs() int { return r.pool.available() }

// Len is the number of open sessions.
func (r *Relay) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.sessions {
		if s != nil {
			n++
		}
	}
	return n
}

// Session finds an open session.
func (r *Relay) Session(id string) *Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sessions[id]
}

// Sessions lists the open sessions.
func (r *Relay) Sessions() []*Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Session, 0, len(r.sessions))
	for _, s := range r.sessions {
		if s != nil { // nil: a session still binding its ports
			out = append(out, s)
		}
	}
	return out
}

// Open allocates two port pairs (one per leg) and starts relaying for a
// new session. ErrNoPorts when the range is exhausted.
func (r *Relay) Open(id string) (*Session, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	if _, ok := r.sessions[id]; ok {
		r.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrExists, id)
	}
	s := &Session{id: id, relay: r, closed: make(chan struct{})}
	r.assignIO(s)
	r.sessions[id] = nil // reserve the id while binding; nil is never handed out
	r.opening.Add(1)
	r.mu.Unlock()
	defer r.opening.Done()

	for side := A; side <= B; side++ {
		l, err := r.bindLeg(s, side)
		if err != nil {
			for _, l := range s.legs {
				if l != nil {
					r.releaseLeg(l)
				}
			}
			r.mu.Lock()
			delete(r.sessions, id)
			r.mu.Unlock()
			r.Counters.Refused.Add(1)
			return nil, err
		}
		s.legs[side] = l
	}
	for _, l := range s.legs {
		err := r.watch(l, l.rtpConn, false)
		if err == nil {
			err = r.watch(l, l.rtcpConn, true)
		}
		if err != nil {
			r.log.Warn("media: cannot watch socket", "session", id, "err", err)
			r.mu.Lock()
			r.sessions[id] = s
			r.mu.Unlock()
			s.Close()
			r.Counters.Refused.Add(1)
			return nil, err
		}
	}
	r.mu.Lock()
	if r.closed { // Close ran while the ports were being bound
		r.sessions[id] = s
		r.mu.Unlock()
		s.Close()
		return nil, ErrClosed
	}
	r.sessions[id] = s // complete: the sweeper and lookups may see it now
	r.mu.Unlock()
	r.Counters.Opened.Add(1)
	return s, nil
}

// bindLeg takes pairs from the pool until both ports of one bind; a pair
// that another program holds goes back to the end of the queue.
func (r *Relay) bindLeg(s *Session, side Side) (*Leg, error) {
	tries := r.pool.available()
	for i := 0; i < tries; i++ {
		port, ok := r.pool.take()
		if !ok {
			break
		}
		rtpConn, err := r.listen(port)
		if err != nil {
			r.pool.put(port)
			continue
		}
		rtcpConn, err := r.listen(port + 1)
		if err != nil {
			rtpConn.close()
			r.pool.put(port)
			continue
		}
		return newLeg(s, side, port, rtpConn, rtcpConn), nil
	}
	return nil, ErrNoPorts
}

func (r *Relay) releaseLeg(l *Leg) {
	l.rtpConn.close()
	l.rtcpConn.close()
	r.pool.put(l.port)
}

// Close ends the session: its sockets close, its goroutines stop and its
// ports return to the pool. Safe to call more than once.
func (s *Session) Close() {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		<-s.closed
		return
	}
	s.closing = true
	s.syncKernel() // removes the rules: closing
	s.mu.Unlock()
	for _, l := range s.legs {
		l.rtpConn.close()
		l.rtcpConn.close()
	}
	s.wg.Wait()
	s.forgetKernel()
	for _, l := range s.legs {
		s.relay.pool.put(l.port)
	}
	r := s.relay
	r.mu.Lock()
	delete(r.sessions, s.id)
	r.mu.Unlock()
	r.Counters.Closed.Add(1)
	close(s.closed)
}

// Close ends every session and stops the relay.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	close(r.stop)
	<-r.done
	// An Open still binding ports will see closed and close its session;
	// the pollers must outlive its sockets.
	r.opening.Wait()
	for _, s := range r.Sessions() {
		s.Close()
	}
	r.stopIO()
	r.stopKernel()
	return nil
}

// sweep checks liveness and sends the relay's own RTCP on peer legs.
func (r *Relay) sweep() {
	defer close(r.done)
	t := time.NewTicker(r.cfg.Sweep)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		r.drainKernel()
		now := r.now()
		for _, s := range r.Sessions() {
			s.tick(now)
		}
	}
}

// tick runs the periodic duties of one session at relay time now.
func (s *Session) tick(now int64) {
	r := s.relay
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	dead, silent := s.deadLeg(now, true)
	if dead != nil {
		dead.deadSent = true
	}
	var reports []pendingReport
	for _, l := range s.legs {
		if l.peerRelay && now-l.lastReport >= int64(r.cfg.ReportInterval) {
			if p, ok := l.ownReport(now); ok {
				reports = append(reports, p)
			}
		}
	}
	s.mu.Unlock()
	for _, p := range reports {
		if err := p.conn.writeTo(p.b, p.dst); err != nil {
			r.Counters.SendErrors.Add(1)
			continue
		}
		r.Counters.RelayReports.Add(1)
	}
	if dead != nil {
		r.Counters.DeadStreams.Add(1)
		r.log.Info("media stream dead", "session", s.id, "side", dead.side.String(), "silent", silent)
		r.mu.Lock()
		f := r.onDead
		r.mu.Unlock()
		if f != nil {
			f(s, dead.side, silent)
		}
	}
}
