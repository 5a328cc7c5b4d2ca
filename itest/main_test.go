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
	goleak.VerifyTestMain(m)
}
