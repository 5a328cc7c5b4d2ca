package media

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/callmesh/callmesh/media/kpath"
)

// Kernel modes (Config.Kernel).
const (
	KernelOff  = "off"  // every datagram through the relay's sockets
	KernelAuto = "auto" // the kernel fast path where it loads, else off
	KernelOn   = "on"   // the kernel fast path, or the relay does not start
)

// kernelDrainEvery is how often the records of what the kernel forwarded
// are read into the statistics. The records carry their own arrival
// times, so it bounds only how stale the figures may be (liveness checks
// and summaries read them first).
const kernelDrainEvery = 20 * time.Millisecond

// openKernelPath loads the kernel path; tests replace it to see the
// relay's modes where it cannot load.
var openKernelPath = kpath.Open

// kernelState is the relay's side of the kernel fast path (package kpath):
// once a side's source is latched, the RTP it sends is forwarded by an eBPF
// program without reaching the relay's sockets, and the program's records
// feed the same statistics (SRTP, as in user space, is counted only).
// RTCP, what arrives before the latch, impaired legs and endpoints of the
// other address family than the relay's stay in user space.
type kernelState struct {
	path   *kpath.Path
	addr   netip.Addr // the relay's own address in rules: bind, or advertise for a wildcard bind
	offset int64      // relay clock minus CLOCK_MONOTONIC

	mu     sync.Mutex
	legs   map[uint32]*Leg // rule ID → the leg whose side's RTP it forwards
	nextID uint32
	done   chan struct{} // closed when the drain loop has stopped
}

// startKernel opens the fast path as Config.Kernel asks.
func (r *Relay) startKernel() error {
	mode := r.cfg.Kernel
	if mode == "" || mode == KernelOff {
		return nil
	}
	addr := r.cfg.Bind.Unmap()
	if addr.IsUnspecified() {
		addr = r.cfg.AdvertiseAddr().Unmap()
	}
	fail := func(err error) error {
		if mode == KernelOn {
			return fmt.Errorf("media: kernel: %w", err)
		}
		r.log.Warn("media: kernel fast path unavailable; relaying in user space", "err", err)
		return nil
	}
	if !kpath.HostHas(addr) {
		// A wildcard bind advertising an address of a NAT in front: the
		// datagrams arrive for another address, and no rule would match.
		return fail(fmt.Errorf("%s, which rules would match, is not an address of this host", addr))
	}
	ifs, err := kpath.Interfaces(r.cfg.Bind)
	if err != nil {
		return fail(err)
	}
	p, err := openKernelPath(ifs)
	if err != nil {
		return fail(err)
	}
	k := &kernelState{path: p, addr: addr, legs: make(map[uint32]*Leg), done: make(chan struct{})}
	k.offset = r.now() - kpath.Monotonic()
	r.kernel = k
	r.log.Info("media: kernel fast path on", "interfaces", len(ifs), "addr", addr)
	go r.drainLoop()
	return nil
}

// KernelPath says whether the kernel fast path is on.
func (r *Relay) KernelPath() bool { return r.kernel != nil }

// KernelUnrecorded is how many datagrams the kernel forwarded without a
// record (its ring buffer was full): the statistics miss them, and count
// them as lost. 0 without the kernel path.
func (r *Relay) KernelUnrecorded() uint64 {
	if r.kernel == nil {
		return 0
	}
	st, err := r.kernel.path.Stats()
	if err != nil {
		return 0
	}
	return st.Unrecorded
}

func (r *Relay) drainLoop() {
	defer close(r.kernel.done)
	t := time.NewTicker(kernelDrainEvery)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			r.drainKernel()
		}
	}
}

// drainKernel applies the records of what the kernel forwarded. The caller
// must hold no session's lock.
func (r *Relay) drainKernel() {
	k := r.kernel
	if k == nil {
		return
	}
	_, err := k.path.Drain(func(rec *kpath.Record) {
		k.mu.Lock()
		l := k.legs[rec.ID]
		k.mu.Unlock()
		if l != nil {
			l.kernelRecord(rec, rec.At+k.offset)
		}
	})
	if err != nil {
		r.log.Warn("media: reading kernel records", "err", err)
	}
}

// kernelRecord counts and measures one datagram of the leg's side that the
// kernel forwarded, as handle does for one it forwards itself.
func (l *Leg) kernelRecord(rec *kpath.Record, at int64) {
	s := l.s
	r := s.relay
	size := rec.Size
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	l.active = max(l.active, at)
	l.deadSent = false
	// The program forwards RTP version 2 only; the record holds the fixed
	// header, without CSRCs or an extension to check.
	l.countIn(fixedHeader(&rec.RTP), size, at)
	o := s.legs[l.side.other()]
	o.sentPackets++
	o.sentBytes += uint64(size)
	s.mu.Unlock()
	r.Counters.Forwarded.Add(1)
	r.Counters.ForwardedBytes.Add(uint64(size))
	r.Counters.KernelForwarded.Add(1)
}

// kernelRule is the rule that should forward the RTP of l's side, if any:
// its source latched, the other side's destination known, both of the
// relay address's family, and no impairment on the way. Called with s.mu
// held.
func (l *Leg) kernelRule() (kpath.Rule, bool) {
	k := l.s.relay.kernel
	o := l.s.legs[l.side.other()]
	if k == nil || o.egress != nil {
		return kpath.Rule{}, false
	}
	r := kpath.Rule{
		In:  kpath.Flow{Src: l.latchRTP, Dst: netip.AddrPortFrom(k.addr, uint16(l.port))},
		Out: kpath.Flow{Src: netip.AddrPortFrom(k.addr, uint16(o.port)), Dst: o.rtpDest()},
	}
	return r, kpath.CheckRule(r) == nil // latched, a destination, one family
}

// syncKernel brings the session's rules in line with its legs: installs,
// replaces or removes each direction's. Called with s.mu held, after
// anything that moves a latch, a destination or an impairment (a latch
// moves on a datagram, so a rule the path refuses is asked again only
// then, not per packet).
func (s *Session) syncKernel() {
	k := s.relay.kernel
	if k == nil {
		return
	}
	for _, l := range s.legs {
		want, ok := l.kernelRule()
		if s.closing {
			ok = false
		}
		have := l.kRule
		if ok && have != nil && have.In == want.In && have.Out == want.Out {
			continue
		}
		if !ok && have == nil {
			continue
		}
		if have != nil && (!ok || have.In != want.In) {
			if err := k.path.Delete(have.In); err != nil {
				s.relay.log.Warn("media: kernel rule", "session", s.id, "err", err)
			}
			l.kRule, have = nil, nil
		}
		if !ok {
			continue
		}
		k.mu.Lock()
		k.nextID++
		want.ID = k.nextID
		k.mu.Unlock()
		if err := k.path.Put(want); err != nil {
			// User space relays this direction. A rule that replaced
			// another in place must not leave the old one forwarding.
			if have != nil {
				_ = k.path.Delete(have.In)
				l.kRule = nil
			}
			level := slog.LevelWarn
			if errors.Is(err, kpath.ErrDeclined) {
				level = slog.LevelDebug
			}
			s.relay.log.Log(context.Background(), level, "media: kernel rule", "session", s.id, "err", err)
			continue
		}
		k.mu.Lock()
		k.legs[want.ID] = l
		k.mu.Unlock()
		l.kIDs = append(l.kIDs, want.ID)
		l.kRule = &want
	}
}

// forgetKernel drops the session's rule IDs after a last drain (which,
// the session closing, discards their records). Called after the rules
// are deleted, with no lock held.
func (s *Session) forgetKernel() {
	k := s.relay.kernel
	if k == nil {
		return
	}
	s.relay.drainKernel()
	k.mu.Lock()
	for _, l := range s.legs {
		for _, id := range l.kIDs {
			delete(k.legs, id)
		}
	}
	k.mu.Unlock()
}

// stopKernel detaches the program; every session is closed by then.
func (r *Relay) stopKernel() {
	if r.kernel != nil {
		<-r.kernel.done
		if err := r.kernel.path.Close(); err != nil {
			r.log.Warn("media: closing the kernel path", "err", err)
		}
	}
}
