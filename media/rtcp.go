package media

import (
	"net/netip"
	"strings"
	"time"

	"github.com/pion/rtcp"

	"github.com/callmesh/callmesh/media/rtpstats"
)

// relayCNAME prefixes the CNAME (RFC 3550 §6.5.1) in RTCP a relay sends of
// its own. A relay leg that faces the other end's relay (SetPeerRelay)
// consumes such a compound packet: it is addressed to the relay, not to the
// endpoint behind it; any relay in between passes it on.
const relayCNAME = "callmesh-relay"

// inspectRTCP reads a compound RTCP packet from the leg's side: Sender
// Reports about to be forwarded are logged so the answering Receiver Report
// can be timed (RFC 3550 §6.4.1), report blocks give the leg's round trip
// and the far end's view of what the relay sent it. consume says the packet
// was another relay's own report. ok is false for a packet that does not
// parse. Called with s.mu held.
func (l *Leg) inspectRTCP(b []byte, now int64) (consume, ok bool) {
	pkts, err := rtcp.Unmarshal(b)
	if err != nil || len(pkts) == 0 {
		return false, false
	}
	for _, p := range pkts {
		if sd, isSDES := p.(*rtcp.SourceDescription); isSDES {
			for _, c := range sd.Chunks {
				for _, it := range c.Items {
					// Only a leg that faces the other end's relay takes
					// its reports for itself; any relay in between (a
					// provider's border controller) passes them on, or
					// the two end relays would never hear each other.
					if it.Type == rtcp.SDESCNAME && strings.HasPrefix(it.Text, relayCNAME) && l.peerRelay {
						consume = true
					}
				}
			}
		}
	}
	o := l.s.legs[l.side.other()]
	for _, p := range pkts {
		switch p := p.(type) {
		case *rtcp.SenderReport:
			if consume {
				l.peerSR = peerSR{ssrc: p.SSRC, mid: rtpstats.Mid32(p.NTPTime), at: now}
			} else {
				o.srlog.Sent(p.SSRC, p.NTPTime, now)
			}
			l.reportBlocks(p.Reports, now, consume)
		case *rtcp.ReceiverReport:
			l.reportBlocks(p.Reports, now, consume)
		}
	}
	return consume, true
}

// reportBlocks takes the report blocks the leg's side sent. A block that
// answers a Sender Report the relay forwarded or sent toward the side gives
// the leg's round trip; on a leg facing a peer relay only the relays' own
// exchange counts, as endpoint reports there time the whole far path. A
// block about another source describes the stream the relay forwarded to
// the side, end to end, since the relay keeps sequence numbers. Called with
// s.mu held.
func (l *Leg) reportBlocks(blocks []rtcp.ReceptionReport, now int64, fromRelay bool) {
	o := l.s.legs[l.side.other()]
	for _, rr := range blocks {
		if !l.peerRelay || fromRelay {
			if rtt, ok := l.srlog.Answer(rr.SSRC, rr.LastSenderReport, rr.Delay, now); ok {
				l.rtt, l.rttKnown = rtt, true
			}
		}
		if rr.SSRC == l.ownSSRC {
			continue
		}
		// Cumulative loss over what the relay forwarded of that source,
		// steadier than the 8-bit fraction of the last interval.
		fwd := o.in.Stats()
		if fwd.SSRC == rr.SSRC && fwd.Expected > 0 {
			l.farLoss = min(100, max(0, float64(int32(rr.TotalLost<<8)>>8))*100/float64(fwd.Expected))
		} else {
			l.farLoss = float64(rr.FractionLost) * 100 / 256
		}
		clock := fwd.ClockRate
		if clock == 0 {
			clock = 8000
		}
		l.farJitter = float64(rr.Jitter) * 1000 / float64(clock)
		l.farKnown = true
	}
}

// pendingReport is RTCP of the relay's own, built under the lock and sent
// after it.
type pendingReport struct {
	b    []byte
	dst  netip.AddrPort
	conn *sock
}

// ownReport builds the relay's Sender Report for a leg facing a peer relay:
// its own SSRC, a report block on the stream it receives on the leg, a block
// answering the peer's last Sender Report (LSR, DLSR), and a CNAME that
// marks it as a relay's. Called with s.mu held.
func (l *Leg) ownReport(now int64) (pendingReport, bool) {
	dst, conn := l.rtcpDest()
	if !dst.IsValid() {
		return pendingReport{}, false
	}
	l.lastReport = now
	ntp := rtpstats.NTP(time.Now().UnixNano())
	sr := &rtcp.SenderReport{SSRC: l.ownSSRC, NTPTime: ntp}
	if st := l.in.Stats(); st.Packets > 0 {
		blk := l.in.Report()
		sr.Reports = append(sr.Reports, rtcp.ReceptionReport{
			SSRC:               blk.SSRC,
			FractionLost:       blk.FractionLost,
			TotalLost:          uint32(blk.CumulativeLost) & 0xffffff,
			LastSequenceNumber: blk.ExtHighestSeq,
			Jitter:             blk.Jitter,
		})
	}
	if l.peerSR.ssrc != 0 {
		sr.Reports = append(sr.Reports, rtcp.ReceptionReport{
			SSRC:             l.peerSR.ssrc,
			LastSenderReport: l.peerSR.mid,
			Delay:            uint32((now - l.peerSR.at) * 65536 / int64(time.Second)),
		})
	}
	sdes := &rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{
		Source: l.ownSSRC,
		Items:  []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: relayCNAME}},
	}}}
	b, err := rtcp.Marshal([]rtcp.Packet{sr, sdes})
	if err != nil {
		return pendingReport{}, false
	}
	l.srlog.Sent(l.ownSSRC, ntp, now)
	return pendingReport{b: b, dst: dst, conn: conn}, true
}
