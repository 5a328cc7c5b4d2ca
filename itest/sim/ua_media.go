package sim

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"math"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/callmesh/callmesh/media/rtpstats"
)

// uaReportEvery is how often a user agent's RTP endpoint sends a Sender
// Report (RFC 3550 §6.2 allows a fixed interval for a two-party session).
const uaReportEvery = time.Second

// uaRTP is a user agent's media: one UDP socket carrying RTP and RTCP
// (RFC 5761 multiplexing, offered with a=rtcp-mux), a sender of 20 ms PCMU
// packets of a tone, 50 a second, and Sender Reports every second whose
// report block tells the far end what arrived (loss, jitter, LSR and DLSR,
// RFC 3550 §6.4.1). What arrives is kept as RFC 3550 statistics.
type uaRTP struct {
	conn  *net.UDPConn
	local netip.AddrPort
	ssrc  uint32
	cname string
	tone  []byte // one 20 ms frame; the tone's period divides 20 ms
	epoch time.Time

	mu       sync.Mutex
	peerRTP  netip.AddrPort
	peerRTCP netip.AddrPort
	seq      uint16
	ts       uint32
	sent     uint32
	octets   uint32
	clocks   rtpstats.Clocks
	recv     rtpstats.Stream
	rtcpIn   uint64
	lastSR   uint32    // middle NTP bits of the last Sender Report received
	lastSRAt time.Time // and when it arrived
	playing  bool

	once sync.Once
	done chan struct{}
	wg   sync.WaitGroup
}

// newUARTP binds the endpoint on port 0 of bind and starts receiving.
func newUARTP(bind netip.Addr, cname string, toneHz int) (*uaRTP, error) {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(bind, 0)))
	if err != nil {
		return nil, err
	}
	var r [10]byte
	_, _ = rand.Read(r[:])
	e := &uaRTP{conn: c, local: c.LocalAddr().(*net.UDPAddr).AddrPort(), cname: cname, tone: toneFrame(toneHz),
		ssrc: binary.BigEndian.Uint32(r[0:]) | 1, seq: binary.BigEndian.Uint16(r[4:]), ts: binary.BigEndian.Uint32(r[6:]),
		epoch: time.Now(), done: make(chan struct{})}
	e.clocks = rtpstats.DefaultClocks()
	e.recv.Init(&e.clocks)
	e.wg.Add(1)
	go e.receive()
	return e, nil
}

// Addr is where the endpoint receives RTP and RTCP.
func (e *uaRTP) Addr() netip.AddrPort { return e.local }

// play starts sending to the far end's RTP and RTCP addresses, once.
func (e *uaRTP) play(peerRTP, peerRTCP netip.AddrPort) {
	e.mu.Lock()
	e.peerRTP, e.peerRTCP = peerRTP, peerRTCP
	start := !e.playing
	e.playing = true
	e.mu.Unlock()
	select {
	case <-e.done:
		return
	default:
	}
	if start {
		e.wg.Add(1)
		go e.send()
	}
}

// stop ends sending and receiving. Safe to call more than once.
func (e *uaRTP) stop() {
	e.once.Do(func() {
		close(e.done)
		e.conn.Close()
	})
	e.wg.Wait()
}

// stats is what arrived so far.
func (e *uaRTP) stats() rtpstats.Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.recv.Stats()
}

func (e *uaRTP) send() {
	defer e.wg.Done()
	t := time.NewTicker(packetEvery)
	defer t.Stop()
	next := time.Now().Add(uaReportEvery / 2)
	marker := true
	for {
		e.mu.Lock()
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, Marker: marker,
			SequenceNumber: e.seq, Timestamp: e.ts, SSRC: e.ssrc}, Payload: e.tone}
		e.seq++
		e.ts += samplesPer20
		e.sent++
		e.octets += uint32(len(e.tone))
		dst := e.peerRTP
		e.mu.Unlock()
		marker = false
		if b, err := pkt.Marshal(); err == nil && dst.IsValid() {
			_, _ = e.conn.WriteToUDPAddrPort(b, dst)
		}
		if now := time.Now(); !now.Before(next) {
			e.report(now)
			next = now.Add(uaReportEvery)
		}
		select {
		case <-e.done:
			return
		case <-t.C:
		}
	}
}

// report sends a compound RTCP packet: a Sender Report with a block about
// the stream received, and the SDES CNAME every compound packet carries
// (RFC 3550 §6.1).
func (e *uaRTP) report(now time.Time) {
	e.mu.Lock()
	sr := &rtcp.SenderReport{SSRC: e.ssrc, NTPTime: rtpstats.NTP(now.UnixNano()), RTPTime: e.ts,
		PacketCount: e.sent, OctetCount: e.octets}
	if st := e.recv.Stats(); st.Packets > 0 {
		blk := e.recv.Report()
		rr := rtcp.ReceptionReport{SSRC: blk.SSRC, FractionLost: blk.FractionLost,
			TotalLost: uint32(blk.CumulativeLost) & 0xffffff, LastSequenceNumber: blk.ExtHighestSeq, Jitter: blk.Jitter}
		if e.lastSR != 0 {
			rr.LastSenderReport = e.lastSR
			rr.Delay = uint32(now.Sub(e.lastSRAt) * 65536 / time.Second)
		}
		sr.Reports = []rtcp.ReceptionReport{rr}
	}
	dst := e.peerRTCP
	e.mu.Unlock()
	sdes := &rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{
		Source: e.ssrc,
		Items:  []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: e.cname}},
	}}}
	if b, err := rtcp.Marshal([]rtcp.Packet{sr, sdes}); err == nil && dst.IsValid() {
		_, _ = e.conn.WriteToUDPAddrPort(b, dst)
	}
}

func (e *uaRTP) receive() {
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
		b := buf[:n]
		if n < 8 || b[0]>>6 != 2 {
			continue
		}
		arrived := time.Now()
		if b[1] >= 192 && b[1] <= 223 { // RTCP (RFC 5761 §4)
			e.onRTCP(b, arrived)
			continue
		}
		if n < 12 {
			continue
		}
		e.mu.Lock()
		e.recv.Update(rtpstats.Packet{
			SSRC: binary.BigEndian.Uint32(b[8:]), Seq: binary.BigEndian.Uint16(b[2:]),
			Timestamp: binary.BigEndian.Uint32(b[4:]), PT: b[1] & 0x7f, Marker: b[1]&0x80 != 0,
			Size: n, Arrival: int64(arrived.Sub(e.epoch)),
		})
		e.mu.Unlock()
	}
}

// onRTCP remembers the last Sender Report, to answer it in the next report
// block.
func (e *uaRTP) onRTCP(b []byte, arrived time.Time) {
	pkts, err := rtcp.Unmarshal(b)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.rtcpIn++
	if err != nil {
		return
	}
	for _, p := range pkts {
		if sr, ok := p.(*rtcp.SenderReport); ok && sr.SSRC != e.ssrc {
			e.lastSR, e.lastSRAt = rtpstats.Mid32(sr.NTPTime), arrived
		}
	}
}

// toneFrame is 20 ms of a sine tone at about −12 dBFS in G.711 μ-law. hz is
// rounded to a multiple of 50 Hz, so that the frame holds whole periods and
// every packet can carry the same payload with the phase running on.
func toneFrame(hz int) []byte {
	hz = max(50, (hz+25)/50*50)
	b := make([]byte, samplesPer20)
	for i := range b {
		s := toneAmp * math.Sin(2*math.Pi*float64(hz)*float64(i)/8000)
		b[i] = ulaw(int16(math.Round(s)))
	}
	return b
}
