//go:build linux

package kpath_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/callmesh/callmesh/media/kpath"
)

// A routed rule: the endpoints live in a network namespace of their own
// behind a veth pair, the relay's sockets on the host side, as a relay
// faces a network card. The program on the host end's ingress sends A's
// RTP back out of that end toward B with the neighbour's MAC address
// (bpf_redirect_neigh); nothing reaches the relay's socket. Over IPv4 and
// IPv6.
func TestForwardThroughAnInterface(t *testing.T) {
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip(8) (iproute2) to build a veth pair")
	}
	v := vethPair(t)
	p := openFor(t, v.host4)
	t.Run("IPv4", func(t *testing.T) { forwardThrough(t, p, v.ns, v.host4, v.peer4) })
	t.Run("IPv6", func(t *testing.T) { forwardThrough(t, p, v.ns, v.host6, v.peer6) })
	t.Run("IPv4 to this host", func(t *testing.T) { forwardToHost(t, p, v.ns, v.host4, v.peer4) })
	t.Run("IPv6 to this host", func(t *testing.T) { forwardToHost(t, p, v.ns, v.host6, v.peer6) })
}

// A side behind the network card, the other on this host: the kernel path
// declines the rule (the stack would take the relay's own address, as the
// source of a datagram arriving from outside, for a martian), and the
// relay's socket forwards those datagrams.
func forwardToHost(t *testing.T, p *kpath.Path, ns string, hostIP, nsIP netip.Addr) {
	var a *net.UDPConn
	inNamespace(t, ns, func() { a = listen(t, nsIP) })
	ra, rb, b := listen(t, hostIP), listen(t, hostIP), listen(t, hostIP)
	if t.Failed() {
		t.FailNow()
	}
	rule := kpath.Rule{In: kpath.Flow{Src: addr(a), Dst: addr(ra)}, Out: kpath.Flow{Src: addr(rb), Dst: addr(b)}, ID: 11}
	if err := p.Put(rule); !errors.Is(err, kpath.ErrDeclined) {
		p.Delete(rule.In)
		t.Fatalf("Put of a rule from another host to this one: %v; want kpath.ErrDeclined", err)
	}
	sendRTP(t, a, addr(ra), 500, 5)
	expectRTP(t, ra, addr(a), 500, 5) // on the relay's socket, untouched
}

// listen binds a UDP socket to ip. It reports a failure with Errorf, which
// inNamespace's goroutine may call; callers stop on t.Failed.
func listen(t *testing.T, ip netip.Addr) *net.UDPConn {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		t.Errorf("bind %s: %v", ip, err)
		return nil
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func forwardThrough(t *testing.T, p *kpath.Path, ns string, hostIP, nsIP netip.Addr) {
	ra, rb := listen(t, hostIP), listen(t, hostIP)
	var a, b *net.UDPConn
	inNamespace(t, ns, func() { a, b = listen(t, nsIP), listen(t, nsIP) })

	rule := kpath.Rule{In: kpath.Flow{Src: addr(a), Dst: addr(ra)}, Out: kpath.Flow{Src: addr(rb), Dst: addr(b)}, ID: 9}
	if err := p.Put(rule); err != nil {
		t.Fatal(err)
	}
	const n = 50
	sendRTP(t, a, addr(ra), 0, n)
	expectRTP(t, b, addr(rb), 0, n)
	buf := make([]byte, 2048)
	if got, err := p.Drain(func(r *kpath.Record) {
		if r.ID != 9 || r.Size != 172 {
			t.Errorf("record of rule %d, %d bytes", r.ID, r.Size)
		}
	}); err != nil || got != n {
		t.Fatalf("Drain = %d, %v; want %d", got, err, n)
	}
	_ = ra.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, _, err := ra.ReadFromUDPAddrPort(buf); err == nil {
		t.Fatal("the relay's socket got a datagram the rule forwards")
	}

	// The checksums. A socket's datagrams cross veth with their UDP checksum
	// left to offload, which the receiver trusts; a datagram written on a
	// raw socket carries a full checksum, which the receiver verifies in
	// software after the rewrite (and drops if it is wrong). Over IPv4 a
	// zero UDP checksum (none, RFC 768) must stay zero; IPv6 has no such
	// thing (RFC 8200 §8.1).
	cases := []bool{false}
	if hostIP.Is4() {
		cases = append(cases, true)
	}
	for i, zero := range cases {
		seq := uint16(1000 + i)
		sendRaw(t, ns, addr(a), addr(ra), rtp(seq, 0, 172), zero)
		_ = b.SetReadDeadline(time.Now().Add(5 * time.Second))
		m, _, err := b.ReadFromUDPAddrPort(buf)
		if err != nil || m != 172 || binary.BigEndian.Uint16(buf[2:]) != seq {
			t.Fatalf("datagram with a full checksum (zero %v): B got %d bytes, seq %d, %v", zero, m, binary.BigEndian.Uint16(buf[2:]), err)
		}
	}
	if got, _ := p.Drain(func(*kpath.Record) {}); got != len(cases) {
		t.Errorf("%d records of the raw datagrams, want %d", got, len(cases))
	}
	if err := p.Delete(rule.In); err != nil {
		t.Fatal(err)
	}
}

// sendRaw writes, from inside the namespace, a UDP datagram from src to
// dst with its checksum computed in full (or zero): an IPv4 datagram built
// whole, or for IPv6 the UDP header and payload (the kernel adds the IPv6
// header, and computes no checksum on a raw socket).
func sendRaw(t *testing.T, ns string, src, dst netip.AddrPort, payload []byte, zero bool) {
	t.Helper()
	var fd int
	var err error
	inNamespace(t, ns, func() {
		if src.Addr().Is4() {
			fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
		} else {
			fd, err = unix.Socket(unix.AF_INET6, unix.SOCK_RAW, unix.IPPROTO_UDP)
		}
	})
	if err != nil {
		t.Fatalf("raw socket: %v", err)
	}
	defer unix.Close(fd)
	if src.Addr().Is4() {
		err = unix.Sendto(fd, udpDatagram(src, dst, payload, zero), 0, &unix.SockaddrInet4{Addr: dst.Addr().As4()})
	} else {
		err = unix.Sendto(fd, udpSegment(src, dst, payload), 0, &unix.SockaddrInet6{Addr: dst.Addr().As16()})
	}
	if err != nil {
		t.Fatalf("raw send: %v", err)
	}
}

// udpSegment is a UDP header and payload from src to dst with the checksum
// over the IPv6 pseudo header (RFC 8200 §8.1).
func udpSegment(src, dst netip.AddrPort, payload []byte) []byte {
	u := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(u[0:], src.Port())
	binary.BigEndian.PutUint16(u[2:], dst.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	copy(u[8:], payload)
	s16, d16 := src.Addr().As16(), dst.Addr().As16()
	var pseudo [40]byte
	copy(pseudo[0:], s16[:])
	copy(pseudo[16:], d16[:])
	binary.BigEndian.PutUint32(pseudo[32:], uint32(len(u)))
	pseudo[39] = unix.IPPROTO_UDP
	binary.BigEndian.PutUint16(u[6:], udpChecksum(pseudo[:], u))
	return u
}

// udpChecksum is the UDP checksum of seg (its checksum field zero) under
// the pseudo header: the ones' complement of the sum, 0 sent as 0xffff
// (RFC 768).
func udpChecksum(pseudo, seg []byte) uint16 {
	c := ^sum16(seg, sum16(pseudo, 0))
	if c == 0 {
		c = 0xffff
	}
	return c
}

// udpDatagram is an IPv4 datagram (no options) carrying payload from src to
// dst, with the UDP checksum computed in full (RFC 768), or zero.
func udpDatagram(src, dst netip.AddrPort, payload []byte, zeroSum bool) []byte {
	b := make([]byte, 28+len(payload))
	b[0], b[8], b[9] = 0x45, 64, unix.IPPROTO_UDP
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	copy(b[12:], s4[:])
	copy(b[16:], d4[:])
	binary.BigEndian.PutUint16(b[10:], ^sum16(b[:20], 0))
	u := b[20:]
	binary.BigEndian.PutUint16(u[0:], src.Port())
	binary.BigEndian.PutUint16(u[2:], dst.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	copy(u[8:], payload)
	if !zeroSum {
		var pseudo [12]byte
		copy(pseudo[0:], s4[:])
		copy(pseudo[4:], d4[:])
		pseudo[9] = unix.IPPROTO_UDP
		binary.BigEndian.PutUint16(pseudo[10:], uint16(len(u)))
		binary.BigEndian.PutUint16(u[6:], udpChecksum(pseudo[:], u))
	}
	return b
}

// sum16 adds b as big-endian 16-bit words to acc in ones' complement.
func sum16(b []byte, acc uint16) uint16 {
	s := uint32(acc)
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// veth is a network namespace joined to this one by a veth pair, with a
// /30 and a /64 between them.
type veth struct {
	ns           string
	host4, peer4 netip.Addr
	host6, peer6 netip.Addr
}

// vethPair makes a veth, removed at cleanup.
func vethPair(t *testing.T) veth {
	t.Helper()
	id := os.Getpid() % 10000
	v := veth{ns: fmt.Sprintf("cmkp%d", id)}
	h, q := fmt.Sprintf("cmh%d", id), fmt.Sprintf("cmq%d", id)
	sub := 4 * (id % 64)
	v.host4 = netip.AddrFrom4([4]byte{10, 213, byte(id / 64 % 250), byte(sub + 1)})
	v.peer4 = netip.AddrFrom4([4]byte{10, 213, byte(id / 64 % 250), byte(sub + 2)})
	v.host6 = netip.MustParseAddr(fmt.Sprintf("fd6d:6b70:%x::1", id))
	v.peer6 = netip.MustParseAddr(fmt.Sprintf("fd6d:6b70:%x::2", id))
	run := func(args ...string) error {
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := run("netns", "add", v.ns); err != nil {
		t.Skipf("cannot make a network namespace here: %v", err)
	}
	t.Cleanup(func() {
		_ = run("link", "del", h)
		_ = run("netns", "del", v.ns)
	})
	for _, c := range [][]string{
		{"link", "add", h, "type", "veth", "peer", "name", q},
		{"link", "set", q, "netns", v.ns},
		{"addr", "add", v.host4.String() + "/30", "dev", h},
		{"-6", "addr", "add", v.host6.String() + "/64", "dev", h, "nodad"},
		{"link", "set", h, "up"},
		{"-n", v.ns, "addr", "add", v.peer4.String() + "/30", "dev", q},
		{"-n", v.ns, "-6", "addr", "add", v.peer6.String() + "/64", "dev", q, "nodad"},
		{"-n", v.ns, "link", "set", q, "up"},
		{"-n", v.ns, "link", "set", "lo", "up"},
	} {
		if err := run(c...); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

// inNamespace runs f on a thread switched into the named network
// namespace; sockets it opens stay there.
func inNamespace(t *testing.T, ns string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		fd, err := unix.Open("/var/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Errorf("open namespace %s: %v", ns, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			t.Errorf("setns %s: %v", ns, err)
			return
		}
		f()
	}()
	<-done
	if t.Failed() {
		t.FailNow()
	}
}
