package sim

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"

	"github.com/callmesh/callmesh/media"
	"github.com/callmesh/callmesh/media/impair"
	"github.com/callmesh/callmesh/media/sdpedit"
)

// anchoring is a call's media at the provider's relay, as a session border
// controller keeps it: each description is rewritten so that both sides
// send to the relay. Side A faces the caller, side B the callee.
type anchoring struct {
	sess *media.Session

	mu      sync.Mutex
	origins [2]*sdpedit.Origin // o= lines toward A and B (RFC 3264 §8)
}

// rewrite turns a description that side from sent into the one the other
// side gets: from's leg learns where from receives, and the body names the
// other leg's ports. Streams other than the first active audio one are
// refused (port 0, RFC 3264 §6).
func (a *anchoring) rewrite(body []byte, from media.Side) ([]byte, error) {
	s, err := sdpedit.Parse(body)
	if err != nil {
		return nil, err
	}
	idx := audioIndex(s)
	if idx >= 0 {
		a.sess.Leg(from).Signal(media.RemoteFromSDP(s.Media[idx]))
	}
	to := media.B - from
	out := a.sess.Leg(to).Anchor()
	anchors := make([]sdpedit.Anchor, len(s.Media))
	for i := range anchors {
		anchors[i] = sdpedit.Anchor{Addr: out.Addr}
		if i == idx {
			anchors[i] = out
			if s.Media[i].Hold {
				anchors[i].Addr = netip.IPv4Unspecified() // an RFC 2543 hold passes on
			}
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.origins[to] == nil {
		a.origins[to] = sdpedit.NewOrigin("callmesh-provider", randomID(), out.Addr)
	}
	return sdpedit.Rewrite(body, anchors, a.origins[to])
}

// audioIndex is the first active audio stream, -1 without one.
func audioIndex(s *sdpedit.Session) int {
	for i, m := range s.Media {
		if m.Kind == "audio" && m.Port != 0 {
			return i
		}
	}
	return -1
}

// requestSide is the side that sent a request within the call: the caller
// sends with its own From tag.
func (c *call) requestSide(req *sip.Request) media.Side {
	if fromTag(req) == c.callerTag {
		return media.A
	}
	return media.B
}

// answerSide is the side that sent a response: the one that did not send
// the request (responses keep the request's From).
func (c *call) answerSide(res *sip.Response) media.Side {
	tag := ""
	if f := res.From(); f != nil {
		tag, _ = f.Params.Get("tag")
	}
	if tag == c.callerTag {
		return media.B
	}
	return media.A
}

// impairSession applies an impairment to both directions of a session.
func impairSession(s *media.Session, cfg impair.Config) error {
	if err := s.Leg(media.A).Impair(cfg); err != nil {
		return err
	}
	return s.Leg(media.B).Impair(cfg)
}

// sessionRTP is the RTP a session's relay sent on and the RTP its
// impairment dropped, both directions.
func sessionRTP(s *media.Session) (relayed, dropped uint64) {
	sum := s.Summary()
	for _, l := range sum.Legs {
		relayed += l.PacketsOut
		dropped += l.ImpairDropped
	}
	return relayed, dropped
}

func randomID() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:]) >> 2
}

// errNotAcceptable is an offer the far end cannot answer (RFC 3261 §21.4.26).
var errNotAcceptable = errors.New("no PCMU audio stream offered")

// farEndAnswer answers an offer as the far end does (RFC 3264 §6): the
// first active RTP/AVP audio stream offering PCMU is accepted with PCMU
// alone, 20 ms packets, at addr; every other stream is refused (port 0).
// It returns the body, the index of the accepted stream and whether the far
// end sends on it.
func farEndAnswer(offer *sdpedit.Session, addr netip.AddrPort, sessID uint64) ([]byte, int, bool, error) {
	idx := pcmuIndex(offer)
	if idx < 0 {
		return nil, -1, false, errNotAcceptable
	}
	m := offer.Media[idx]
	dir := m.Dir.Reverse()
	sends := dir.Sends() && m.EffectiveDir().Receives()
	family := "IP4"
	if addr.Addr().Is6() {
		family = "IP6"
	}
	ip := addr.Addr().Unmap().String()
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=- %d %d IN %s %s\r\ns=callmesh provider\r\nc=IN %s %s\r\nt=0 0\r\n", sessID, sessID, family, ip, family, ip)
	for i, om := range offer.Media {
		if i != idx {
			fmt.Fprintf(&b, "m=%s 0 %s %s\r\n", om.Kind, om.Proto, strings.Join(om.Fmts, " "))
			continue
		}
		fmt.Fprintf(&b, "m=audio %d %s 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=%s\r\n", addr.Port(), om.Proto, dir)
	}
	return []byte(b.String()), idx, sends, nil
}

// Tone: 400 Hz at about −12 dBFS in G.711 μ-law. 160 samples at 8 kHz are
// exactly eight periods, so every 20 ms packet carries the same payload
// and the phase runs on unbroken.
const (
	toneHz       = 400
	toneAmp      = 8000
	samplesPer20 = 160
	packetEvery  = 20 * time.Millisecond
)

var tonePayload = toneFrame(toneHz)

// ulaw encodes one linear sample in G.711 μ-law (ITU-T G.711 §3): a sign
// bit, a 3-bit segment (the position of the highest bit of the biased
// magnitude) and 4 mantissa bits below it, all inverted.
func ulaw(sample int16) byte {
	const bias, clip = 0x84, 32635
	s := int(sample)
	sign := 0
	if s < 0 {
		s, sign = -s, 0x80
	}
	s = min(s, clip) + bias
	seg := 7
	for mask := 0x4000; s&mask == 0 && seg > 0; mask >>= 1 {
		seg--
	}
	mant := (s >> (seg + 3)) & 0x0f
	return ^byte(sign | seg<<4 | mant)
}

// toneEndpoint is the far end's RTP: it sends the tone as 20 ms PCMU
// packets, 50 a second, and counts the RTP it receives.
type toneEndpoint struct {
	p    *Provider
	conn *net.UDPConn
	adv  netip.Addr // the address put in SDP

	once sync.Once
	done chan struct{}
	wg   sync.WaitGroup
}

// newToneEndpoint binds the far end's RTP socket on port 0 of bind.
func (p *Provider) newToneEndpoint(bind, adv netip.Addr) (*toneEndpoint, error) {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(bind, 0)))
	if err != nil {
		return nil, err
	}
	e := &toneEndpoint{p: p, conn: c, adv: adv, done: make(chan struct{})}
	e.wg.Add(1)
	go e.receive()
	return e, nil
}

// addr is where the endpoint receives, as advertised.
func (e *toneEndpoint) addr() netip.AddrPort {
	return netip.AddrPortFrom(e.adv, e.conn.LocalAddr().(*net.UDPAddr).AddrPort().Port())
}

// local is the endpoint's bound address, as the relay sees its packets.
func (e *toneEndpoint) local() netip.AddrPort {
	a := e.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	if a.Addr().IsUnspecified() {
		return netip.AddrPortFrom(e.adv, a.Port())
	}
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// play sends the tone to dst until stop.
func (e *toneEndpoint) play(dst netip.AddrPort) {
	e.wg.Add(1)
	go e.send(dst)
}

func (e *toneEndpoint) send(dst netip.AddrPort) {
	defer e.wg.Done()
	var r [10]byte
	_, _ = rand.Read(r[:])
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, Marker: true,
		SequenceNumber: binary.BigEndian.Uint16(r[0:]), Timestamp: binary.BigEndian.Uint32(r[2:]),
		SSRC: binary.BigEndian.Uint32(r[6:]) | 1}, Payload: tonePayload}
	t := time.NewTicker(packetEvery)
	defer t.Stop()
	for {
		if b, err := pkt.Marshal(); err == nil {
			if _, err := e.conn.WriteToUDPAddrPort(b, dst); err == nil {
				e.p.count(func(c *Counters) { c.ToneSent++ })
			}
		}
		pkt.Marker = false
		pkt.SequenceNumber++
		pkt.Timestamp += samplesPer20
		select {
		case <-e.done:
			return
		case <-t.C:
		}
	}
}

func (e *toneEndpoint) receive() {
	defer e.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, _, err := e.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		// RTP version 2; RTCP (packet types 192–223, RFC 5761 §4) is not counted.
		if n >= 12 && buf[0]>>6 == 2 && (buf[1] < 192 || buf[1] > 223) {
			e.p.count(func(c *Counters) { c.FarEndReceived++ })
		}
	}
}

// stop ends sending and receiving. Safe to call more than once.
func (e *toneEndpoint) stop() {
	e.once.Do(func() {
		close(e.done)
		e.conn.Close()
	})
	e.wg.Wait()
}

// count changes the counters under the provider's lock.
func (p *Provider) count(f func(*Counters)) {
	p.mu.Lock()
	f(&p.counters)
	p.mu.Unlock()
}
