package sipedge

import (
	"net"
	"testing"
)

// The granted size reads back as what was asked for while it is under the
// kernel's cap (net.core.rmem_max is at least 208 KiB on Linux).
func TestReceiveBufferReadsBackTheGrant(t *testing.T) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const asked = 100_000
	if err := c.SetReadBuffer(asked); err != nil {
		t.Fatal(err)
	}
	if got := receiveBuffer(c); got != asked {
		t.Fatalf("receiveBuffer = %d, want %d", got, asked)
	}
}
