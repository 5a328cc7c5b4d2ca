package siptx

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// TestSendDatagram checks what send puts on the wire over UDP: sipgo's
// bytes, to a response's Destination, within sipgo's size limit.
func TestSendDatagram(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	peer, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	conn := &sip.UDPConnection{PacketConn: pc, PacketAddr: pc.LocalAddr().String()}

	req, err := sip.ParseMessage([]byte(request("OPTIONS", "z9hG4bK-send", peer.LocalAddr().String(), 1)))
	if err != nil {
		t.Fatal(err)
	}
	res := sip.NewResponseFromRequest(req.(*sip.Request), 200, "OK", nil)
	res.SetDestination(peer.LocalAddr().String())
	if err := send(conn, res); err != nil {
		t.Fatal(err)
	}
	if got := readDatagram(t, peer); got != res.String() {
		t.Fatalf("sent\n%q\nwant sipgo's\n%q", got, res.String())
	}

	big := sip.NewResponseFromRequest(req.(*sip.Request), 200, "OK", []byte(strings.Repeat("x", sip.UDPMTUSize)))
	big.SetDestination(peer.LocalAddr().String())
	if err := send(conn, big); !errors.Is(err, sip.ErrUDPMTUCongestion) {
		t.Fatalf("oversized datagram: got %v, want %v", err, sip.ErrUDPMTUCongestion)
	}

}

func readDatagram(t *testing.T, pc net.PacketConn) string {
	t.Helper()
	buf := make([]byte, 65535)
	_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}
