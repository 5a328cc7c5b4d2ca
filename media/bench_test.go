package media_test

import (
	"net"
	"testing"

	"github.com/pion/rtp"

	"github.com/callmesh/callmesh/media"
	"github.com/callmesh/callmesh/media/mediatest"
)

// BenchmarkRelayForward measures one RTP packet through the relay on
// loopback: the sender's write, the relay's read, latching, statistics and
// forwarding, and the receiver's read. Allocations are the whole process's
// per packet (sender, relay and receiver together).
func BenchmarkRelayForward(b *testing.B) {
	cfg := media.DefaultConfig()
	cfg.PortMin, cfg.PortMax = mediatest.PortRange(b, portBase+2000, 2)
	r, err := media.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	s, err := r.Open("bench")
	if err != nil {
		b.Fatal(err)
	}
	src, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	dst, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer src.Close()
	defer dst.Close()
	s.Leg(media.A).Signal(media.Remote{RTP: src.LocalAddr().(*net.UDPAddr).AddrPort(), Sends: true})
	s.Leg(media.B).Signal(media.Remote{RTP: dst.LocalAddr().(*net.UDPAddr).AddrPort(), Sends: true})
	to, _ := s.Leg(media.A).Local()
	p := rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 7}, Payload: make([]byte, 160)}
	pkt, _ := p.Marshal()
	buf := make([]byte, 2048)
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pkt[2], pkt[3] = byte(i>>8), byte(i)
		if _, err := src.WriteToUDPAddrPort(pkt, to); err != nil {
			b.Fatal(err)
		}
		if _, _, err := dst.ReadFromUDPAddrPort(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRelayOpenClose measures a session's set-up and tear-down: two
// port pairs bound and watched, then closed and returned to the pool.
func BenchmarkRelayOpenClose(b *testing.B) {
	cfg := media.DefaultConfig()
	cfg.PortMin, cfg.PortMax = mediatest.PortRange(b, portBase+2100, 64)
	r, err := media.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		s, err := r.Open("bench")
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}
