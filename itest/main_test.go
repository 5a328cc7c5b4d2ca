package itest

import (
	"testing"

	"github.com/emiago/sipgo/sip"

	"go.uber.org/goleak"
)

// Every node a test starts is stopped by its cleanup, and a stopped node
// leaves no goroutine behind.
func TestMain(m *testing.M) {
	// As callmesh's main does, once, before anything runs: responses may
	// exceed sipgo's 1300-byte UDP default.
	sip.UDPMTUSize = 65507 + 200
	// sipgo creates client UDP sockets on demand (readUDPConnection) and a
	// retransmission timer that fires after a user agent closed can create
	// one that nothing closes. It is sipgo's pool, not a node's: the nodes'
	// own listeners (readListenerConnection under Serve) are still checked.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/emiago/sipgo/sip.(*TransportUDP).readUDPConnection"))
}
