package media

import (
	"net/netip"
	"time"

	"github.com/callmesh/callmesh/media/rtpstats"
)

// readBuffer bounds one datagram. RTP is sent in packets below the path MTU
// (RFC 3550 §11); a larger datagram is truncated by the kernel and then
// fails the header checks.
const readBuffer = 2048

// handle latches, measures and forwards one datagram that arrived from the
// leg's side.
func (l *Leg) handle(b []byte, src netip.AddrPort, rtcpPort bool) {
	s := l.s
	r := s.relay
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	k := classify(b)
	if rtcpPort && k == kindRTP {
		k = kindJunk // RTP never belongs on the RTCP port
	}
	now := r.now()

	s.mu.Lock()
	latch, signalled := &l.latchRTP, l.remote.RTP
	if rtcpPort {
		latch, signalled = &l.latchRTCP, l.remote.rtcpAddr()
	}
	ok, moved := l.accept(latch, src, signalled)
	if !ok {
		s.mu.Unlock()
		r.Counters.Dropped.Add(1)
		return
	}
	if k == kindJunk {
		l.junk++
		s.mu.Unlock()
		r.Counters.Dropped.Add(1)
		return
	}
	l.active = now
	l.deadSent = false
	if moved && !rtcpPort {
		s.syncKernel() // a new RTP latch: the kernel may take over, both ways
	}
	o := s.legs[l.side.other()]
	var dst netip.AddrPort
	var out *sock
	if k == kindRTP {
		var h rtpHeader
		if !l.remote.Secure {
			var ok bool
			if h, ok = parseRTP(b); !ok {
				l.junk++
				s.mu.Unlock()
				r.Counters.Dropped.Add(1)
				return
			}
		}
		l.countIn(h, len(b), now)
		dst, out = o.rtpDest(), o.rtpConn
	} else {
		l.rtcpIn++
		if !l.remote.Secure {
			consume, ok := l.inspectRTCP(b, now)
			if !ok {
				l.malformed++
				s.mu.Unlock()
				r.Counters.Dropped.Add(1)
				return
			}
			if consume {
				s.mu.Unlock()
				return
			}
		}
		dst, out = o.rtcpDest()
	}
	if !dst.IsValid() {
		l.noRoute++
		s.mu.Unlock()
		r.Counters.Dropped.Add(1)
		return
	}
	var delay time.Duration
	if k == kindRTP && o.egress != nil {
		deliver, drop := o.egress.Next(now)
		if drop {
			o.egressDrop++
			s.mu.Unlock()
			return
		}
		delay = time.Duration(deliver - now)
	} else if k == kindRTCP {
		delay = o.egressDelay
	}
	if k == kindRTP {
		o.sentPackets++
		o.sentBytes += uint64(len(b))
	} else {
		o.rtcpOut++
	}
	s.mu.Unlock()

	if delay > 0 {
		// Impaired legs only: the packet leaves later, from a copy.
		pkt := append([]byte(nil), b...)
		time.AfterFunc(delay, func() { r.send(out, pkt, dst) })
		return
	}
	r.send(out, b, dst)
}

// countIn counts and measures an RTP packet of size bytes from the leg's
// side, arrived at relay time at, however it was forwarded: SRTP is counted
// only (its header h is not read). Called with s.mu held.
func (l *Leg) countIn(h rtpHeader, size int, at int64) {
	if l.remote.Secure {
		l.rawPackets++
		l.rawBytes += uint64(size)
		return
	}
	l.in.Update(rtpstats.Packet{SSRC: h.ssrc, Seq: h.seq, Timestamp: h.timestamp,
		PT: h.pt, Marker: h.marker, Size: size, Arrival: at})
	if l.clocks[h.pt] != 0 {
		l.lastPT = int(h.pt)
	}
}

// send writes one datagram and counts it.
func (r *Relay) send(out *sock, b []byte, dst netip.AddrPort) {
	if err := out.writeTo(b, dst); err != nil {
		r.Counters.SendErrors.Add(1)
		return
	}
	r.Counters.Forwarded.Add(1)
	r.Counters.ForwardedBytes.Add(uint64(len(b)))
}
