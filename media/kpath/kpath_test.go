//go:build linux

package kpath_test

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/callmesh/callmesh/media/kpath"
)

// open loads the program on the loopback interface, or skips when this
// kernel or this process cannot (no CAP_BPF/CAP_NET_ADMIN, no TCX).
func open(t testing.TB) *kpath.Path { return openFor(t, netip.MustParseAddr("127.0.0.1")) }

// openFor loads the program on the interfaces of a relay bound to bind.
func openFor(t testing.TB, bind netip.Addr) *kpath.Path {
	t.Helper()
	ifs, err := kpath.Interfaces(bind)
	if err != nil {
		t.Fatal(err)
	}
	p, err := kpath.Open(ifs)
	if kpath.Unavailable(err) {
		t.Skipf("kernel path unavailable here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

func udp(t testing.TB) *net.UDPConn { return udpOn(t, netip.MustParseAddr("127.0.0.1")) }

// udpOn binds a UDP socket to ip; it skips when the host has no such
// address (an IPv6 loopback, say).
func udpOn(t testing.TB, ip netip.Addr) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		t.Skipf("cannot bind %s here: %v", ip, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func addr(c *net.UDPConn) netip.AddrPort {
	a := c.LocalAddr().(*net.UDPAddr).AddrPort()
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

func rtp(seq uint16, ts uint32, size int) []byte {
	b := make([]byte, size)
	b[0] = 0x80
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], ts)
	binary.BigEndian.PutUint32(b[8:], 0x11223344)
	return b
}

// A rule moves A's RTP for the relay's port RA to B, from the relay's port
// RB, with a record of each datagram; what it does not match (RTCP, junk,
// another source) still reaches the relay's socket. Over IPv4 and IPv6.
func TestForwardOnLoopback(t *testing.T) {
	for _, ip := range []string{"127.0.0.1", "::1"} {
		t.Run(ip, func(t *testing.T) { forwardOnLoopback(t, netip.MustParseAddr(ip)) })
	}
}

func forwardOnLoopback(t *testing.T, ip netip.Addr) {
	p := open(t)
	sock := func() *net.UDPConn { return udpOn(t, ip) }
	a, b, ra, rb, stranger := sock(), sock(), sock(), sock(), sock()
	rule := kpath.Rule{
		In:  kpath.Flow{Src: addr(a), Dst: addr(ra)},
		Out: kpath.Flow{Src: addr(rb), Dst: addr(b)},
		ID:  42,
	}
	if err := p.Put(rule); err != nil {
		t.Fatal(err)
	}
	before := kpath.Monotonic()
	const n = 20
	sendRTP(t, a, addr(ra), 100, n)
	buf := make([]byte, 2048)
	expectRTP(t, b, addr(rb), 100, n)
	var recs []kpath.Record
	got, err := p.Drain(func(r *kpath.Record) { recs = append(recs, *r) })
	if err != nil || got != n || len(recs) != n {
		t.Fatalf("Drain = %d, %v (%d records); want %d", got, err, len(recs), n)
	}
	after := kpath.Monotonic()
	for i, r := range recs {
		if r.ID != 42 || r.Size != 172 || binary.BigEndian.Uint16(r.RTP[2:]) != uint16(100+i) ||
			binary.BigEndian.Uint32(r.RTP[8:]) != 0x11223344 || r.At < before || r.At > after {
			t.Fatalf("record %d = %+v", i, r)
		}
	}

	// Not for the rule: RTCP on the RTP port, not RTP, a stranger's RTP,
	// less than an RTP header. The relay's socket gets them, B nothing.
	rtcp := rtp(0, 0, 28)
	rtcp[1] = 200 // SR
	send := []struct {
		from *net.UDPConn
		b    []byte
	}{{a, rtcp}, {a, []byte("version 1, not RTP")}, {stranger, rtp(1, 1, 172)}, {a, rtp(7, 7, 172)[:8]}}
	for _, s := range send {
		if _, err := s.from.WriteToUDPAddrPort(s.b, addr(ra)); err != nil {
			t.Fatal(err)
		}
	}
	_ = ra.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := range send {
		m, _, err := ra.ReadFromUDPAddrPort(buf)
		if err != nil || m != len(send[i].b) {
			t.Fatalf("relay socket: datagram %d: %d bytes, %v; want %d", i, m, err, len(send[i].b))
		}
	}
	_ = b.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, _, err := b.ReadFromUDPAddrPort(buf); err == nil {
		t.Fatal("B got a datagram no rule forwards")
	}

	// Deleted, the rule forwards nothing more.
	if err := p.Delete(rule.In); err != nil {
		t.Fatal(err)
	}
	if _, err := a.WriteToUDPAddrPort(rtp(200, 0, 172), addr(ra)); err != nil {
		t.Fatal(err)
	}
	if m, _, err := ra.ReadFromUDPAddrPort(buf); err != nil || m != 172 {
		t.Fatalf("after Delete the relay socket got %d bytes, %v", m, err)
	}
	if got, _ := p.Drain(func(*kpath.Record) {}); got != 0 {
		t.Fatalf("%d records after Delete", got)
	}
	if st, err := p.Stats(); err != nil || st.Unrecorded != 0 {
		t.Fatalf("Stats = %+v, %v", st, err)
	}
}

// sendRTP writes n 172-byte RTP packets, sequence numbers from seq, to dst.
func sendRTP(t *testing.T, from *net.UDPConn, dst netip.AddrPort, seq uint16, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if _, err := from.WriteToUDPAddrPort(rtp(seq+uint16(i), uint32(i*160), 172), dst); err != nil {
			t.Fatal(err)
		}
	}
}

// expectRTP reads n packets on c, which must be sendRTP's from src in order.
func expectRTP(t *testing.T, c *net.UDPConn, src netip.AddrPort, seq uint16, n int) {
	t.Helper()
	buf := make([]byte, 2048)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := 0; i < n; i++ {
		m, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("got %d of %d: %v", i, n, err)
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		if got := binary.BigEndian.Uint16(buf[2:]); from != src || m != 172 || got != seq+uint16(i) {
			t.Fatalf("got %d bytes, seq %d, from %s; want 172, %d, from %s", m, got, from, seq+uint16(i), src)
		}
	}
}

// A rule is of one family: the kernel cannot turn IPv4 into IPv6, and an
// IPv4-mapped address is on no wire.
func TestRulesAreOfOneFamily(t *testing.T) {
	p := open(t)
	v6 := netip.MustParseAddrPort("[::1]:5000")
	v4 := netip.MustParseAddrPort("127.0.0.1:5000")
	mapped := netip.MustParseAddrPort("[::ffff:127.0.0.1]:5000")
	for _, r := range []kpath.Rule{
		{In: kpath.Flow{Src: v6, Dst: v4}, Out: kpath.Flow{Src: v4, Dst: v4}},
		{In: kpath.Flow{Src: v4, Dst: v4}, Out: kpath.Flow{Src: v4, Dst: v6}},
		{In: kpath.Flow{Src: mapped, Dst: mapped}, Out: kpath.Flow{Src: mapped, Dst: mapped}},
	} {
		if err := p.Put(r); !errors.Is(err, kpath.ErrFamily) {
			t.Errorf("Put(%+v) = %v; want kpath.ErrFamily", r, err)
		}
	}
}

// One 172-byte RTP datagram sender → rule → receiver on loopback,
// serialised, with the record drained every 1,000: what the kernel path
// costs a packet end to end (BenchmarkRelayForward in media is the same
// through the user-space relay).
func BenchmarkKernelForward(b *testing.B) {
	p := open(b)
	a, dst, ra, rb := udp(b), udp(b), udp(b), udp(b)
	if err := p.Put(kpath.Rule{In: kpath.Flow{Src: addr(a), Dst: addr(ra)}, Out: kpath.Flow{Src: addr(rb), Dst: addr(dst)}, ID: 1}); err != nil {
		b.Fatal(err)
	}
	pkt, buf := rtp(0, 0, 172), make([]byte, 2048)
	var recs int
	b.SetBytes(172)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		binary.BigEndian.PutUint16(pkt[2:], uint16(i))
		if _, err := a.WriteToUDPAddrPort(pkt, addr(ra)); err != nil {
			b.Fatal(err)
		}
		if _, _, err := dst.ReadFromUDPAddrPort(buf); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 {
			n, _ := p.Drain(func(*kpath.Record) {})
			recs += n
		}
	}
	b.StopTimer()
	n, _ := p.Drain(func(*kpath.Record) {})
	if recs+n != b.N {
		b.Fatalf("%d records for %d datagrams", recs+n, b.N)
	}
}
