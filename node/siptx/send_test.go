package siptx

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// TestSendDatagram checks what send puts on the wire over UDP: sipgo's
// bytes, to a response's Destination, from the socket given, within
// sipgo's size limit; by the net package's write on any socket, and by a
// raw system call on the listener named by SendUDPFrom.
func TestSendDatagram(t *testing.T) {
	for _, listener := range []bool{false, true} {
		t.Run(map[bool]string{false: "socket", true: "listener"}[listener], func(t *testing.T) {
			pc, peer := udpPair(t)
			conn := &sip.UDPConnection{PacketConn: pc, PacketAddr: pc.LocalAddr().String()}
			l := bareLayer(t, testConfig)
			if listener {
				l.SendUDPFrom(conn)
				if l.udp.Load().raw == nil {
					t.Fatal("the listener has no raw writer")
				}
			}

			req, err := sip.ParseMessage([]byte(request("OPTIONS", "z9hG4bK-send", peer.LocalAddr().String(), 1)))
			if err != nil {
				t.Fatal(err)
			}
			res := sip.NewResponseFromRequest(req.(*sip.Request), 200, "OK", nil)
			res.SetDestination(peer.LocalAddr().String())
			if err := l.send(conn, res); err != nil {
				t.Fatal(err)
			}
			got, from := readDatagram(t, peer)
			if got != res.String() {
				t.Fatalf("sent\n%q\nwant sipgo's\n%q", got, res.String())
			}
			if from != pc.LocalAddr().String() {
				t.Fatalf("sent from %s, want the socket's %s", from, pc.LocalAddr())
			}

			big := sip.NewResponseFromRequest(req.(*sip.Request), 200, "OK", []byte(strings.Repeat("x", sip.UDPMTUSize)))
			big.SetDestination(peer.LocalAddr().String())
			if err := l.send(conn, big); !errors.Is(err, sip.ErrUDPMTUCongestion) {
				t.Fatalf("oversized datagram: got %v, want %v", err, sip.ErrUDPMTUCongestion)
			}

			// A closed socket is an error, not a datagram sent elsewhere.
			pc.Close()
			if err := l.send(conn, res); err == nil {
				t.Fatal("sent on a closed socket")
			}
		})
	}
}

// udpPair opens two UDP sockets on 127.0.0.1, closed when the test ends:
// the layer's and its peer's.
func udpPair(tb testing.TB) (net.PacketConn, net.PacketConn) {
	tb.Helper()
	var pcs [2]net.PacketConn
	for i := range pcs {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { pc.Close() })
		pcs[i] = pc
	}
	return pcs[0], pcs[1]
}

// bareLayer is a layer on a transport layer that serves nothing itself,
// both closed when the test ends.
func bareLayer(tb testing.TB, cfg Config) *Layer {
	tb.Helper()
	tpl := sip.NewTransportLayer(net.DefaultResolver, sip.NewParser(), nil)
	l := New(tpl, cfg)
	tb.Cleanup(func() {
		l.Close()
		tpl.Close()
	})
	return l
}

// readDatagram returns the next datagram pc reads and its source.
func readDatagram(t *testing.T, pc net.PacketConn) (string, string) {
	t.Helper()
	buf := make([]byte, 65535)
	_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n]), from.String()
}

// Only UDP to an address goes out at once; a name needs a lookup, a
// stream may need a dial.
func TestImmediate(t *testing.T) {
	for _, tc := range []struct {
		dest, transport string
		want            bool
	}{
		{"192.0.2.1:5060", "UDP", true},
		{"[2001:db8::1]:5060", "udp", true},
		{"[::ffff:192.0.2.1]:5060", "UDP", true},
		{"192.0.2.1:5060", "TCP", false},
		{"sip.example.com:5060", "UDP", false},
		{"192.0.2.1", "UDP", false},
		{"192.0.2.1:0", "UDP", false},
		{"", "UDP", false},
	} {
		if got := Immediate(tc.dest, tc.transport); got != tc.want {
			t.Errorf("Immediate(%q, %q) = %v, want %v", tc.dest, tc.transport, got, tc.want)
		}
	}
	// An IPv4 peer seen through a dual-stack socket is sent to as IPv4.
	if a, _ := address("[::ffff:192.0.2.1]:5060"); !a.Addr().Is4() {
		t.Errorf("address kept %v mapped", a)
	}
}

// A request by the listener to an address leaves from it with the top
// Via's open sent-by filled in with the listener's, as sipgo's
// connection lookup fills it, without that lookup.
func TestRequestByListener(t *testing.T) {
	pc, peer := udpPair(t)
	l := bareLayer(t, testConfig)
	l.SendUDPFrom(&sip.UDPConnection{PacketConn: pc, PacketAddr: pc.LocalAddr().String(), Listener: true})

	to := peer.LocalAddr().(*net.UDPAddr)
	req := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", User: "bob", Host: to.IP.String(), Port: to.Port})
	req.AppendHeader(sip.NewHeader("From", "<sip:alice@example.com>;tag=a1"))
	req.AppendHeader(sip.NewHeader("To", "<sip:bob@example.com>"))
	req.AppendHeader(sip.NewHeader("Call-ID", "listener-1"))
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.OPTIONS})
	AddVia(req, "", 0)
	req.SetTransport("UDP")
	req.SetDestination(to.String())

	tx, err := l.Request(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Terminate()
	got, from := readDatagram(t, peer)
	if from != pc.LocalAddr().String() {
		t.Fatalf("request sent from %s, want the listener's %s", from, pc.LocalAddr())
	}
	m, err := sip.ParseMessage([]byte(got))
	if err != nil {
		t.Fatal(err)
	}
	if via := m.Via(); via.Host != "127.0.0.1" || via.Port != pc.LocalAddr().(*net.UDPAddr).Port {
		t.Fatalf("Via sent-by %s:%d, want the listener's %s", via.Host, via.Port, pc.LocalAddr())
	}
}
