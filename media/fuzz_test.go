package media

import (
	"encoding/binary"
	"testing"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// FuzzPacket feeds hostile datagrams to the classifier, the RTP header
// reader and the RTCP inspection of a leg: none may panic, and a packet
// taken as RTP must really hold the header it claims.
func FuzzPacket(f *testing.F) {
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: 7, Timestamp: 160, SSRC: 1}, Payload: make([]byte, 160)}
	b, _ := p.Marshal()
	f.Add(b)
	p.Header.Extension = true
	p.Header.ExtensionProfile = 0xBEDE
	_ = p.Header.SetExtension(1, []byte{1, 2})
	p.Header.CSRC = []uint32{9, 10}
	b, _ = p.Marshal()
	f.Add(b)
	sr, _ := rtcp.Marshal([]rtcp.Packet{
		&rtcp.SenderReport{SSRC: 5, NTPTime: 1 << 40, Reports: []rtcp.ReceptionReport{{SSRC: 1, LastSenderReport: 3, Delay: 4}}},
		&rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{Source: 5, Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: relayCNAME}}}}},
	})
	f.Add(sr)
	rr, _ := (&rtcp.ReceiverReport{SSRC: 2, Reports: []rtcp.ReceptionReport{{SSRC: 5}}}).Marshal()
	f.Add(rr)
	f.Add([]byte{0x80, 0xc8, 0, 0})
	f.Add([]byte{0xb0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff})

	cfg := DefaultConfig()
	s := &Session{id: "fuzz", relay: &Relay{cfg: cfg}}
	s.legs[A] = newLeg(s, A, 0, nil, nil)
	s.legs[B] = newLeg(s, B, 0, nil, nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		k := classify(b)
		h, ok := parseRTP(b)
		if ok {
			if k != kindRTP || len(b) < 12 {
				t.Fatalf("parsed as RTP but classified %d, %d bytes", k, len(b))
			}
			if h.seq != binary.BigEndian.Uint16(b[2:]) || h.ssrc != binary.BigEndian.Uint32(b[8:]) {
				t.Fatal("header fields misread")
			}
		}
		if k == kindRTCP {
			s.mu.Lock()
			s.legs[A].inspectRTCP(b, 1)
			s.legs[B].peerRelay = true
			s.legs[B].inspectRTCP(b, 2)
			s.mu.Unlock()
		}
	})
}
