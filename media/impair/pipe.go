package impair

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// MaxPending bounds the datagrams a Pipe holds for later delivery; beyond it
// a datagram is counted as Failed instead of queued.
const MaxPending = 1 << 14

// socketBuffer is the kernel buffer size a Pipe asks for (the kernel may cap
// it), so a burst of delayed datagrams released at once is not lost locally.
const socketBuffer = 1 << 20

type direction uint8

const (
	up   direction = iota // downstream peer → Upstream
	down                  // Upstream → downstream peer
)

// DirStats counts the datagrams of one direction. Once a pipe is idle,
// Received = Forwarded + Dropped + Failed.
type DirStats struct {
	Received  uint64 // read from the socket
	Forwarded uint64 // written to the destination
	Dropped   uint64 // lost by the impairment model
	// Failed were neither forwarded nor dropped by the model: no
	// downstream peer known yet, a write error, MaxPending reached, or
	// still waiting for their delivery time when the pipe closed.
	Failed uint64
}

// PipeStats counts each direction of a Pipe.
type PipeStats struct {
	Up   DirStats // from the downstream peer to Upstream
	Down DirStats // from Upstream to the downstream peer
}

type dirState struct {
	model *Model // guarded by Pipe.mu
	zero  bool   // guarded by Pipe.mu

	received, forwarded, dropped, failed atomic.Uint64
}

// Pipe is a bidirectional impairing UDP forwarder on one socket. Datagrams
// from Upstream are sent, impaired by the down Config, to the most recent
// other source seen (the latched downstream peer, resolved when the datagram
// arrives); datagrams from any other source latch that source as the peer
// and are sent, impaired by the up Config, to Upstream. Replies leave from
// the same socket, so each side sees the pipe as its peer.
//
// A reader goroutine applies the Model of the datagram's direction when the
// datagram arrives, so loss decisions follow arrival order alone. A
// direction whose Config is Zero is forwarded at once by the reader; any
// other datagram is copied into a pooled buffer and queued on a min-heap
// that a scheduler goroutine drains with one timer, in order of delivery
// time, then of arrival.
type Pipe struct {
	conn     *net.UDPConn
	addr     netip.AddrPort
	upstream netip.AddrPort
	epoch    time.Time // monotonic base for Model times

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error // set by the scheduler before it exits

	wake chan struct{} // a new earliest packet; capacity 1

	mu      sync.Mutex
	dirs    [2]dirState
	queue   queue  // guarded by mu
	seq     uint64 // guarded by mu
	stopped bool   // guarded by mu: the scheduler has drained the queue for good
}

// Listen opens a Pipe on bind (such as "127.0.0.1:0") that forwards to and
// from upstream, impairing the two directions by up and down. The pipe runs
// until Close or until ctx is done; Close must be called either way to wait
// for its goroutines.
func Listen(ctx context.Context, bind string, upstream netip.AddrPort, up, down Config) (*Pipe, error) {
	if !upstream.IsValid() || upstream.Port() == 0 {
		return nil, fmt.Errorf("impair: upstream: %v is not a host:port", upstream)
	}
	mu, md, err := newModels(up, down)
	if err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", bind)
	if err != nil {
		return nil, fmt.Errorf("impair: listen: %w", err)
	}
	conn := pc.(*net.UDPConn)
	_ = conn.SetReadBuffer(socketBuffer) // best effort: the kernel may cap it
	_ = conn.SetWriteBuffer(socketBuffer)
	p := &Pipe{
		conn:     conn,
		addr:     unmap(conn.LocalAddr().(*net.UDPAddr).AddrPort()),
		upstream: unmap(upstream),
		epoch:    time.Now(),
		wake:     make(chan struct{}, 1),
	}
	p.install(mu, md)
	p.ctx, p.cancel = context.WithCancel(ctx)
	p.wg.Add(2)
	go p.read()
	go p.schedule()
	return p, nil
}

// Addr is the pipe's own address: the downstream peer sends here instead
// of to Upstream, and Upstream sees its traffic coming from here.
func (p *Pipe) Addr() netip.AddrPort { return p.addr }

// Close stops the pipe, discards (as Failed) the datagrams still waiting,
// and returns once its goroutines have exited. Later calls do nothing and
// return the same result.
func (p *Pipe) Close() error {
	p.closeOnce.Do(func() {
		p.cancel()
		p.wg.Wait()
	})
	return p.closeErr
}

// Stats returns the counters of both directions.
func (p *Pipe) Stats() PipeStats {
	get := func(d *dirState) DirStats {
		return DirStats{
			Received:  d.received.Load(),
			Forwarded: d.forwarded.Load(),
			Dropped:   d.dropped.Load(),
			Failed:    d.failed.Load(),
		}
	}
	return PipeStats{Up: get(&p.dirs[up]), Down: get(&p.dirs[down])}
}

// SetConfig replaces the impairment of both directions while the pipe runs.
// Each direction gets a fresh Model, seeded from its new Config, so the
// datagrams that arrive afterwards meet exactly the decisions of New(c) on
// a clean start; only a Reorder=false model inherits the last delivery time,
// to keep order with the datagrams already queued. Datagrams already queued
// keep their delivery times, and a direction switched to a Zero Config may
// overtake them. On a validation error nothing changes.
func (p *Pipe) SetConfig(up, down Config) error {
	mu, md, err := newModels(up, down)
	if err != nil {
		return err
	}
	p.install(mu, md)
	return nil
}

func newModels(upc, downc Config) (mu, md *Model, err error) {
	if err := upc.validate("up."); err != nil {
		return nil, nil, err
	}
	if err := downc.validate("down."); err != nil {
		return nil, nil, err
	}
	mu, _ = New(upc)
	md, _ = New(downc)
	return mu, md, nil
}

func (p *Pipe) install(mu, md *Model) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for d, m := range [2]*Model{up: mu, down: md} {
		ds := &p.dirs[d]
		if old := ds.model; old != nil && !m.reorder {
			m.last = old.last
		}
		ds.model, ds.zero = m, m.cfg.Zero()
	}
}

// now is the pipe's monotonic time in nanoseconds.
func (p *Pipe) now() int64 { return int64(time.Since(p.epoch)) }

// read is the reader goroutine: it classifies each datagram, latches the
// downstream peer, and forwards or queues it. It never sleeps.
func (p *Pipe) read() {
	defer p.wg.Done()
	buf := make([]byte, 64<<10) // the largest UDP payload
	var peer netip.AddrPort
	for {
		n, src, err := p.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || p.ctx.Err() != nil {
				return
			}
			continue // a per-datagram error, such as an ICMP report on some systems
		}
		src = unmap(src)
		if src == p.upstream {
			p.handle(down, peer, buf[:n])
		} else {
			peer = src
			p.handle(up, p.upstream, buf[:n])
		}
	}
}

func (p *Pipe) handle(d direction, dst netip.AddrPort, b []byte) {
	ds := &p.dirs[d]
	ds.received.Add(1)
	if !dst.IsValid() { // from Upstream before any peer: nowhere to go
		ds.failed.Add(1)
		return
	}
	now := p.now()
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		ds.failed.Add(1)
		return
	}
	if ds.zero {
		p.mu.Unlock()
		p.send(ds, b, dst)
		return
	}
	at, drop := ds.model.Next(now)
	if drop {
		p.mu.Unlock()
		ds.dropped.Add(1)
		return
	}
	if len(p.queue) >= MaxPending {
		p.mu.Unlock()
		ds.failed.Add(1)
		return
	}
	pk := getPacket(b)
	p.seq++
	pk.at, pk.seq, pk.dir, pk.dst = at, p.seq, d, dst
	heap.Push(&p.queue, pk)
	first := p.queue[0] == pk
	p.mu.Unlock()
	if first {
		select {
		case p.wake <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
}

func (p *Pipe) send(ds *dirState, b []byte, dst netip.AddrPort) {
	if _, err := p.conn.WriteToUDPAddrPort(b, dst); err != nil {
		ds.failed.Add(1)
		return
	}
	ds.forwarded.Add(1)
}

// schedule is the scheduler goroutine: it sends queued datagrams when they
// are due, sleeping on one timer until the earliest. When the pipe stops it
// discards what is left and closes the socket, which ends the reader.
func (p *Pipe) schedule() {
	defer p.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var due []*packet
	for {
		p.mu.Lock()
		now, wait := p.now(), int64(-1)
		for len(p.queue) > 0 {
			if at := p.queue[0].at; at > now {
				wait = at - now
				break
			}
			due = append(due, heap.Pop(&p.queue).(*packet))
		}
		p.mu.Unlock()
		if len(due) > 0 {
			for i, pk := range due {
				p.send(&p.dirs[pk.dir], pk.b, pk.dst)
				putPacket(pk)
				due[i] = nil
			}
			due = due[:0]
			continue // sending took time: look at the clock again
		}
		if wait >= 0 {
			timer.Reset(time.Duration(wait))
		} else {
			timer.Stop()
		}
		select {
		case <-timer.C:
		case <-p.wake:
		case <-p.ctx.Done():
			p.mu.Lock()
			p.stopped = true
			for len(p.queue) > 0 {
				pk := heap.Pop(&p.queue).(*packet)
				p.dirs[pk.dir].failed.Add(1)
				putPacket(pk)
			}
			p.mu.Unlock()
			p.closeErr = p.conn.Close()
			return
		}
	}
}

func unmap(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}
