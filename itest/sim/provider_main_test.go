package sim

import (
	"testing"

	"github.com/emiago/sipgo/sip"
	"go.uber.org/goleak"
)

// Every provider and user agent a test starts is closed by its cleanup and
// leaves no goroutine behind.
func TestMain(m *testing.M) {
	// As callmesh's main does, once, before anything runs: an INVITE with
	// a Route set, two Record-Routes and SDP exceeds sipgo's 1300-byte UDP
	// default.
	sip.UDPMTUSize = 65507 + 200
	// sipgo's pool of client UDP sockets (see itest's TestMain): not ours.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/emiago/sipgo/sip.(*TransportUDP).readUDPConnection"))
}
