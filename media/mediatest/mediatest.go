// Package mediatest has helpers for tests that send and receive RTP on
// loopback: a paced G.711 endpoint that measures what it receives and
// answers Sender Reports, and port ranges for relays under test.
package mediatest

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/callmesh/callmesh/media/rtpstats"
)

// Endpoint is an RTP endpoint on 127.0.0.1: an RTP socket and an RTCP
// socket, a sender of 20 ms PCMU and a receiver that keeps RFC 3550
// statistics of what arrives.
type Endpoint struct {
	RTP, RTCP *net.UDPConn
	SSRC      uint32

	mu       sync.Mutex
	peerRTP  netip.AddrPort
	peerRTCP netip.AddrPort
	clocks   rtpstats.Clocks
	recv     rtpstats.Stream
	lastSR   struct {
		ssrc, mid uint32
		at        time.Time
	}
	answer bool
	seq    uint16
	ts     uint32
	sent   uint64
	srlog  rtpstats.SRLog
	epoch  time.Time
	keep   bool       // KeepHeaders
	kept   []Received // with keep, every RTP packet received

	rtcpIn atomic.Uint64
	wg     sync.WaitGroup
}

// NewEndpoint binds both sockets on port 0; the test's cleanup closes them.
func NewEndpoint(t testing.TB) *Endpoint {
	t.Helper()
	e := &Endpoint{SSRC: rand.Uint32() | 1, seq: uint16(rand.Uint32()), ts: rand.Uint32(), epoch: time.Now()}
	var err error
	if e.RTP, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		t.Fatal(err)
	}
	if e.RTCP, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		t.Fatal(err)
	}
	e.clocks = rtpstats.DefaultClocks()
	e.recv.Init(&e.clocks)
	e.wg.Add(2)
	go e.readRTP()
	go e.readRTCP()
	t.Cleanup(e.Close)
	return e
}

// Close stops the endpoint.
func (e *Endpoint) Close() {
	e.RTP.Close()
	e.RTCP.Close()
	e.wg.Wait()
}

// Addr is where the endpoint receives RTP; RTCPAddr where it receives RTCP.
func (e *Endpoint) Addr() netip.AddrPort     { return e.RTP.LocalAddr().(*net.UDPAddr).AddrPort() }
func (e *Endpoint) RTCPAddr() netip.AddrPort { return e.RTCP.LocalAddr().(*net.UDPAddr).AddrPort() }

// SetPeer says where to send RTP and RTCP.
func (e *Endpoint) SetPeer(rtpAddr, rtcpAddr netip.AddrPort) {
	e.mu.Lock()
	e.peerRTP, e.peerRTCP = rtpAddr, rtcpAddr
	e.mu.Unlock()
}

// AnswerReports makes the endpoint answer every Sender Report it receives
// with a Receiver Report carrying LSR and DLSR (RFC 3550 §6.4.1).
func (e *Endpoint) AnswerReports(on bool) {
	e.mu.Lock()
	e.answer = on
	e.mu.Unlock()
}

// Send sends n PCMU packets of 20 ms, paced every interval (0: as fast as
// possible), and returns when done or ctx ends.
func (e *Endpoint) Send(ctx context.Context, n int, interval time.Duration) error {
	payload := make([]byte, 160)
	for i := range payload {
		payload[i] = 0xff // μ-law silence
	}
	var tick *time.Ticker
	if interval > 0 {
		tick = time.NewTicker(interval)
		defer tick.Stop()
	}
	for i := 0; i < n; i++ {
		if tick != nil && i > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-tick.C:
			}
		}
		if err := e.SendOne(payload); err != nil {
			return err
		}
	}
	return nil
}

// SendOne sends one PCMU packet with the next sequence number and a
// timestamp 160 samples on.
func (e *Endpoint) SendOne(payload []byte) error {
	e.mu.Lock()
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: e.seq, Timestamp: e.ts, SSRC: e.SSRC}, Payload: payload}
	e.seq++
	e.ts += 160
	e.sent++
	dst := e.peerRTP
	e.mu.Unlock()
	b, err := p.Marshal()
	if err != nil {
		return err
	}
	_, err = e.RTP.WriteToUDPAddrPort(b, dst)
	return err
}

// SendSR sends a Sender Report for the endpoint's stream.
func (e *Endpoint) SendSR() error {
	e.mu.Lock()
	now := time.Now()
	ntp := rtpstats.NTP(now.UnixNano())
	sr := &rtcp.SenderReport{SSRC: e.SSRC, NTPTime: ntp, RTPTime: e.ts, PacketCount: uint32(e.sent)}
	dst := e.peerRTCP
	e.srlog.Sent(e.SSRC, ntp, int64(now.Sub(e.epoch)))
	e.mu.Unlock()
	b, err := sr.Marshal()
	if err != nil {
		return err
	}
	_, err = e.RTCP.WriteToUDPAddrPort(b, dst)
	return err
}

// Received is an RTP packet the endpoint received: its header and the
// length of its payload.
type Received struct {
	rtp.Header
	Payload int // bytes
}

// KeepHeaders makes the endpoint keep the header of every RTP packet it
// receives from now on, for Headers.
func (e *Endpoint) KeepHeaders() {
	e.mu.Lock()
	e.keep = true
	e.mu.Unlock()
}

// Headers are the RTP packets received since KeepHeaders, in order of
// arrival.
func (e *Endpoint) Headers() []Received {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.kept)
}

// Stats is what the endpoint received.
func (e *Endpoint) Stats() rtpstats.Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.recv.Stats()
}

// RTCPReceived counts RTCP packets that reached the endpoint.
func (e *Endpoint) RTCPReceived() uint64 { return e.rtcpIn.Load() }

func (e *Endpoint) readRTP() {
	defer e.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, _, err := e.RTP.ReadFromUDPAddrPort(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil || n < 12 {
			continue
		}
		b := buf[:n]
		e.mu.Lock()
		e.recv.Update(rtpstats.Packet{
			SSRC: binary.BigEndian.Uint32(b[8:]), Seq: binary.BigEndian.Uint16(b[2:]),
			Timestamp: binary.BigEndian.Uint32(b[4:]), PT: b[1] & 0x7f, Marker: b[1]&0x80 != 0,
			Size: n, Arrival: int64(time.Since(e.epoch)),
		})
		if e.keep {
			var h rtp.Header
			if hl, err := h.Unmarshal(b); err == nil {
				e.kept = append(e.kept, Received{Header: h, Payload: n - hl})
			}
		}
		e.mu.Unlock()
	}
}

func (e *Endpoint) readRTCP() {
	defer e.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, _, err := e.RTCP.ReadFromUDPAddrPort(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		e.rtcpIn.Add(1)
		arrived := time.Now()
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		for _, p := range pkts {
			if sr, ok := p.(*rtcp.SenderReport); ok {
				e.answerSR(sr, arrived)
			}
		}
	}
}

// answerSR sends a Receiver Report for the stream received, answering sr.
func (e *Endpoint) answerSR(sr *rtcp.SenderReport, arrived time.Time) {
	e.mu.Lock()
	if !e.answer {
		e.mu.Unlock()
		return
	}
	rr := &rtcp.ReceiverReport{SSRC: e.SSRC, Reports: []rtcp.ReceptionReport{{
		SSRC:             sr.SSRC,
		LastSenderReport: rtpstats.Mid32(sr.NTPTime),
	}}}
	if st := e.recv.Stats(); st.Packets > 0 {
		blk := e.recv.Report()
		rr.Reports[0].FractionLost = blk.FractionLost
		rr.Reports[0].TotalLost = uint32(blk.CumulativeLost) & 0xffffff
		rr.Reports[0].LastSequenceNumber = blk.ExtHighestSeq
		rr.Reports[0].Jitter = blk.Jitter
	}
	dst := e.peerRTCP
	e.mu.Unlock()
	rr.Reports[0].Delay = uint32(time.Since(arrived) * 65536 / time.Second) // DLSR
	if b, err := rr.Marshal(); err == nil {
		_, _ = e.RTCP.WriteToUDPAddrPort(b, dst)
	}
}

var rangeNext atomic.Int32

// PortRange returns a range of pairs free port pairs for a relay under
// test, below the kernel's usual ephemeral range (32768 and up) so that
// port-0 sockets of other tests do not take them. Each package passes its
// own base (for example 21000 for media, 24000 for node) so packages tested
// in parallel do not collide; the ports are checked free when handed out.
func PortRange(t testing.TB, base, pairs int) (min, max int) {
	t.Helper()
	for try := 0; try < 50; try++ {
		// Each caller takes the slot [end-n, end): distinct ranges while
		// the counter has not wrapped.
		n := int32(pairs * 2)
		start := base + int(rangeNext.Add(n)-n)%2900
		start -= start % 2
		ok := true
		var held []*net.UDPConn
		for p := start; p < start+pairs*2; p++ {
			c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
			if err != nil {
				ok = false
				break
			}
			held = append(held, c)
		}
		for _, c := range held {
			c.Close()
		}
		if ok {
			return start, start + pairs*2 - 1
		}
	}
	t.Fatalf("no free port range of %d pairs near %d", pairs, base)
	return 0, 0
}
