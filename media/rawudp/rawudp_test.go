package rawudp

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

func listen(t *testing.T, network, addr string) *net.UDPConn {
	t.Helper()
	pc, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Skipf("%s %s: %v", network, addr, err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.(*net.UDPConn)
}

// A datagram written by a Conn arrives whole, from its socket, and a
// Reader reads the peer's answer with the peer's address, on IPv4 and, where
// the machine has it, IPv6.
func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct{ network, addr string }{
		{"udp4", "127.0.0.1:0"},
		{"udp6", "[::1]:0"},
	} {
		t.Run(tc.network, func(t *testing.T) {
			pc := listen(t, tc.network, tc.addr)
			peer := listen(t, tc.network, tc.addr)
			c, err := New(pc)
			if err != nil {
				t.Fatal(err)
			}
			self := pc.LocalAddr().(*net.UDPAddr).AddrPort()
			to := peer.LocalAddr().(*net.UDPAddr).AddrPort()

			msg := []byte("OPTIONS sip:a@example.com SIP/2.0\r\n\r\n")
			if err := c.WriteTo(msg, to); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 2048)
			_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, from, err := peer.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatal(err)
			}
			if string(buf[:n]) != string(msg) || from != self {
				t.Fatalf("peer read %q from %s, want %q from %s", buf[:n], from, msg, self)
			}

			// The reader waits for the answer rather than failing on
			// an empty socket.
			r := c.Reader()
			go func() {
				time.Sleep(20 * time.Millisecond)
				_, _ = peer.WriteToUDPAddrPort([]byte("SIP/2.0 200 OK\r\n\r\n"), self)
			}()
			n, from, err = r.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			if string(buf[:n]) != "SIP/2.0 200 OK\r\n\r\n" || from != to {
				t.Fatalf("read %q from %s, want the answer from %s", buf[:n], from, to)
			}
		})
	}
}

// An IPv4 socket cannot reach IPv6, and says so rather than send.
func TestIPv6FromIPv4Socket(t *testing.T) {
	c, err := New(listen(t, "udp4", "127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WriteTo([]byte("x"), netip.MustParseAddrPort("[2001:db8::1]:5060")); err == nil {
		t.Fatal("wrote to IPv6 from an IPv4 socket")
	}
}

// Closing the net.UDPConn ends a Read under way with net.ErrClosed, and
// a later WriteTo fails.
func TestClosed(t *testing.T) {
	pc := listen(t, "udp4", "127.0.0.1:0")
	c, err := New(pc)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := c.Reader().Read(make([]byte, 64))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	pc.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read on a closed socket: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read did not end when the socket closed")
	}
	if err := c.WriteTo([]byte("x"), netip.MustParseAddrPort("127.0.0.1:9")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write on a closed socket: %v, want net.ErrClosed", err)
	}
}

// Writing allocates nothing: it runs for every datagram the node sends.
func TestWriteAllocates(t *testing.T) {
	pc := listen(t, "udp4", "127.0.0.1:0")
	peer := listen(t, "udp4", "127.0.0.1:0")
	c, err := New(pc)
	if err != nil {
		t.Fatal(err)
	}
	to := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	msg := make([]byte, 100)
	if n := testing.AllocsPerRun(100, func() { _ = c.WriteTo(msg, to) }); n > 0 {
		t.Fatalf("WriteTo: %v allocations", n)
	}
}
