package media

import (
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/callmesh/callmesh/media/impair"
	"github.com/callmesh/callmesh/media/kpath"
	"github.com/callmesh/callmesh/media/rtpstats"
	"github.com/callmesh/callmesh/media/sdpedit"
)

// Side names a leg of a session: A faces the caller, B the callee.
type Side uint8

const (
	A Side = iota
	B
)

func (s Side) other() Side { return 1 - s }

func (s Side) String() string {
	if s == A {
		return "a"
	}
	return "b"
}

// Remote is what one side signalled in SDP for the stream the relay anchors.
type Remote struct {
	RTP     netip.AddrPort // where the side receives RTP
	RTCP    netip.AddrPort // where it receives RTCP; unset: RTP port + 1 (RFC 3550 §11)
	RTCPMux bool           // RTCP shares the RTP port (RFC 5761)
	// Sends says the side will send media: its direction is sendrecv or
	// sendonly and it is not on hold. A side that should not send is never
	// declared dead for silence.
	Sends bool
	// OnHold marks a stream the side put on hold or answered on hold:
	// a direction other than sendrecv, or the RFC 2543 0.0.0.0 address.
	// While either side of a session is on hold, silence is expected in
	// both directions and no stream is declared dead.
	OnHold bool
	// Secure marks SRTP or DTLS-SRTP: packets pass untouched and are only
	// counted; RTCP is encrypted and not inspected.
	Secure  bool
	Formats []sdpedit.Format
	PtimeMs int
}

// RemoteFromSDP takes one parsed m= line as what its side signalled.
func RemoteFromSDP(m sdpedit.Media) Remote {
	r := Remote{
		RTCPMux: m.RTCPMux,
		Sends:   m.Dir.Sends() && !m.Hold && m.Port != 0,
		OnHold:  m.Dir != sdpedit.SendRecv || m.Hold,
		Secure:  m.Secure,
		Formats: m.Formats,
		PtimeMs: m.PtimeMs,
	}
	if m.Port != 0 && m.Addr.IsValid() && !m.Addr.IsUnspecified() {
		r.RTP = netip.AddrPortFrom(m.Addr, uint16(m.Port))
		if m.RTCPPort != 0 {
			addr := m.RTCPAddr
			if !addr.IsValid() {
				addr = m.Addr
			}
			r.RTCP = netip.AddrPortFrom(addr, uint16(m.RTCPPort))
		}
	}
	return r
}

// rtcpAddr is where the side's RTCP goes.
func (r Remote) rtcpAddr() netip.AddrPort {
	switch {
	case r.RTCPMux:
		return r.RTP
	case r.RTCP.IsValid():
		return r.RTCP
	case r.RTP.IsValid() && r.RTP.Port() < 65535:
		return netip.AddrPortFrom(r.RTP.Addr(), r.RTP.Port()+1)
	}
	return netip.AddrPort{}
}

// Session is one anchored stream: two legs and their sockets. Its methods
// are safe for concurrent use.
type Session struct {
	id    string
	relay *Relay
	legs  [2]*Leg

	mu      sync.Mutex     // guards every leg's mutable state
	wg      sync.WaitGroup // per-socket readers, where the platform has them
	io      int            // the relay poller serving the session's sockets
	closing bool
	closed  chan struct{}
}

// ID is the session's identifier as given to Relay.Open.
func (s *Session) ID() string { return s.id }

// Leg returns one side's leg.
func (s *Session) Leg(side Side) *Leg { return s.legs[side] }

// Leg is one side of a session: a port pair, what the side signalled, the
// source latched for it, and the statistics of what it sends and is sent.
type Leg struct {
	s        *Session
	side     Side
	rtpConn  *sock
	rtcpConn *sock
	port     int // even RTP port; RTCP is port+1

	// Guarded by s.mu.
	remote    Remote
	signalled bool
	latchRTP  netip.AddrPort
	latchRTCP netip.AddrPort
	clocks    rtpstats.Clocks
	names     [128]string // payload type → encoding name
	in        rtpstats.Stream
	lastPT    int // last timed payload type seen, -1 none
	active    int64
	deadSent  bool

	sentPackets, sentBytes uint64 // forwarded toward this side
	rawPackets, rawBytes   uint64 // SRTP from this side: counted only
	rtcpIn, rtcpOut        uint64
	strangers, junk        uint64
	malformed, noRoute     uint64

	kRule *kpath.Rule // the kernel's rule forwarding this side's RTP; nil: none
	kIDs  []uint32    // every rule ID the leg had, for the last records

	egress      *impair.Model // impairment of what is sent toward this side
	egressDelay time.Duration // its base delay, which RTCP takes too
	egressDrop  uint64

	srlog      rtpstats.SRLog
	rtt        time.Duration
	rttKnown   bool
	farLoss    float64 // % the side reported for what we sent it (RTCP RR)
	farJitter  float64 // ms, same source
	farKnown   bool
	peerRelay  bool
	ownSSRC    uint32
	peerSR     peerSR
	lastReport int64
}

// peerSR remembers the last Sender Report of a peer relay, to answer it with
// LSR and DLSR (RFC 3550 §6.4.1).
type peerSR struct {
	ssrc uint32
	mid  uint32
	at   int64
}

func newLeg(s *Session, side Side, port int, rtpConn, rtcpConn *sock) *Leg {
	l := &Leg{s: s, side: side, port: port, rtpConn: rtpConn, rtcpConn: rtcpConn, lastPT: -1}
	l.clocks = rtpstats.DefaultClocks()
	l.in.Init(&l.clocks)
	l.ownSSRC = rand.Uint32() | 1
	return l
}

// Side is the leg's side.
func (l *Leg) Side() Side { return l.side }

// Local is where the side this leg faces must send: the relay's advertised
// address and the leg's RTP and RTCP ports. Advertise it in the SDP sent to
// this leg's side.
func (l *Leg) Local() (rtp, rtcp netip.AddrPort) {
	addr := l.s.relay.cfg.AdvertiseAddr()
	return netip.AddrPortFrom(addr, uint16(l.port)), netip.AddrPortFrom(addr, uint16(l.port+1))
}

// Anchor is Local in the form SDP rewriting takes.
func (l *Leg) Anchor() sdpedit.Anchor {
	rtp, rtcp := l.Local()
	return sdpedit.Anchor{Addr: rtp.Addr(), RTP: int(rtp.Port()), RTCP: int(rtcp.Port())}
}

// Signal records what the leg's side signalled in an offer or answer. A
// changed address ends the latch, so the side's new source is learnt again
// (a re-INVITE is the only way to move a latched stream). The silence timer
// restarts.
func (l *Leg) Signal(r Remote) {
	s := l.s
	s.relay.drainKernel() // the records of the rules this may replace come first
	s.mu.Lock()
	defer s.mu.Unlock()
	if l.signalled && (r.RTP != l.remote.RTP || r.rtcpAddr() != l.remote.rtcpAddr()) {
		l.latchRTP, l.latchRTCP = netip.AddrPort{}, netip.AddrPort{}
	}
	l.remote = r
	l.signalled = true
	l.active = s.relay.now()
	l.deadSent = false
	l.clocks = rtpstats.DefaultClocks()
	l.names = [128]string{}
	for _, f := range r.Formats {
		if f.PT >= 128 {
			continue
		}
		l.names[f.PT] = f.Name
		switch f.Name {
		case "TELEPHONE-EVENT", "CN":
			l.clocks[f.PT] = 0 // RFC 4733 events and RFC 3389 noise: no jitter
		default:
			l.clocks[f.PT] = f.Clock
		}
	}
	s.syncKernel()
}

// Impair sets a reproducible impairment (delay, jitter, bursty loss) on
// the RTP the relay sends toward this leg's side: for emulated providers
// and tests. RTCP toward the side takes the base delay (not the loss, so
// the RTP loss pattern stays the seed's), so round trips show the delay. A
// zero configuration removes it.
func (l *Leg) Impair(cfg impair.Config) error {
	var m *impair.Model
	if !cfg.Zero() {
		var err error
		if m, err = impair.New(cfg); err != nil {
			return err
		}
	}
	l.s.relay.drainKernel() // the records of the rule this may remove come first
	l.s.mu.Lock()
	l.egress, l.egressDelay = m, 0
	if m != nil {
		l.egressDelay = cfg.Delay
	}
	l.s.syncKernel() // impaired RTP stays in user space
	l.s.mu.Unlock()
	return nil
}

// SetPeerRelay marks a leg that faces another callmesh relay: both then
// send RTCP of their own on it, so the round trip of the path between them
// is measured even when the endpoints send no RTCP.
func (l *Leg) SetPeerRelay(on bool) {
	l.s.mu.Lock()
	l.peerRelay = on
	l.s.mu.Unlock()
}

// accept applies latching to a datagram from src on a socket whose latch
// is *latch: the first source is learnt; later, only it is accepted, except
// that the signalled address itself may take over from a source learnt
// before it (a stranger that raced the real side). Called with s.mu held.
// moved says the datagram set the latch (it was unset or taken over).
func (l *Leg) accept(latch *netip.AddrPort, src, signalled netip.AddrPort) (ok, moved bool) {
	switch {
	case *latch == src:
		return true, false
	case !latch.IsValid(), src == signalled && signalled.IsValid():
		*latch = src
		return true, true
	}
	l.strangers++
	return false, false
}

// rtpDest is where RTP toward this leg's side goes, and the socket to send
// it from. Called with s.mu held.
func (l *Leg) rtpDest() netip.AddrPort {
	if l.latchRTP.IsValid() {
		return l.latchRTP
	}
	return l.remote.RTP
}

// rtcpDest is where RTCP toward this leg's side goes, and from which socket.
// Called with s.mu held.
func (l *Leg) rtcpDest() (netip.AddrPort, *sock) {
	if l.remote.RTCPMux {
		return l.rtpDest(), l.rtpConn
	}
	if l.latchRTCP.IsValid() {
		return l.latchRTCP, l.rtcpConn
	}
	return l.remote.rtcpAddr(), l.rtcpConn
}

// Dead reports a leg whose side should be sending and has sent neither RTP
// nor RTCP for longer than the relay's timeout, as of now. Streams on hold
// or not yet signalled are never dead; DTX silence keeps RTCP flowing
// (RFC 3550 §6.2), which keeps the stream alive.
func (s *Session) Dead(now time.Time) (Side, time.Duration, bool) {
	s.relay.drainKernel()
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, silent := s.deadLeg(s.relay.mono(now), false); l != nil {
		return l.side, silent, true
	}
	return 0, 0, false
}

// deadLeg is the first leg dead at relay time at (with unreported, only
// one not yet reported dead), and how long it has been silent. Called with
// s.mu held.
func (s *Session) deadLeg(at int64, unreported bool) (*Leg, time.Duration) {
	if s.onHold() {
		return nil, 0
	}
	for _, l := range s.legs {
		if silent, dead := l.silent(at, s.relay.cfg.Timeout); dead && !(unreported && l.deadSent) {
			return l, silent
		}
	}
	return nil, 0
}

// onHold reports a session with either side on hold. Called with s.mu held.
func (s *Session) onHold() bool {
	return s.legs[A].remote.OnHold || s.legs[B].remote.OnHold
}

// silent is the liveness rule. Called with s.mu held.
func (l *Leg) silent(at int64, timeout time.Duration) (time.Duration, bool) {
	if !l.signalled || !l.remote.Sends {
		return 0, false
	}
	d := time.Duration(at - l.active)
	return d, d > timeout
}
