package rawudp

import (
	"net"
	"net/netip"
	"syscall"
	"testing"
	"unsafe"
)

// Sockaddr puts the port in network byte order, and an AF_INET6 socket
// reaches IPv4 by the mapped address.
func TestSockaddr(t *testing.T) {
	var sa Sockaddr
	if err := sa.Set(netip.MustParseAddrPort("192.0.2.7:5062"), false); err != nil {
		t.Fatal(err)
	}
	if sa.is6 {
		t.Fatal("an IPv4 destination of an AF_INET socket is not a sockaddr_in")
	}
	if p := (*[2]byte)(unsafe.Pointer(&sa.v4.Port)); p[0] != 0x13 || p[1] != 0xc6 || sa.v4.Addr != [4]byte{192, 0, 2, 7} || sa.v4.Family != syscall.AF_INET {
		t.Fatalf("sockaddr_in %+v", sa.v4)
	}

	if err := sa.Set(netip.MustParseAddrPort("192.0.2.7:5062"), true); err != nil {
		t.Fatal(err)
	}
	want := netip.MustParseAddr("::ffff:192.0.2.7").As16()
	if !sa.is6 || sa.v6.Addr != want || sa.v6.Family != syscall.AF_INET6 {
		t.Fatalf("IPv4 from an AF_INET6 socket: %+v, want the mapped address", sa.v6)
	}
	if got := getPort(&sa.v6.Port); got != 5062 {
		t.Fatalf("port %d", got)
	}
}

// A Sockaddr on the caller's stack stays there: the relay fills one for
// every packet it forwards.
func TestSendtoAllocates(t *testing.T) {
	pc := listen(t, "udp4", "127.0.0.1:0")
	peer := listen(t, "udp4", "127.0.0.1:0")
	to := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	rc, err := pc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd uintptr
	_ = rc.Control(func(f uintptr) { fd = f })
	msg := make([]byte, 172)
	n := testing.AllocsPerRun(100, func() {
		var sa Sockaddr
		if err := sa.Set(to, false); err != nil {
			t.Fatal(err)
		}
		if e := Sendto(fd, msg, &sa); e != 0 {
			t.Fatal(e)
		}
	})
	if n > 0 {
		t.Fatalf("Sendto: %v allocations", n)
	}
}
