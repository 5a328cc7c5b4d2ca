package itest

import (
	"testing"

	"go.uber.org/goleak"
)

// Every node a test starts is stopped by its cleanup, and a stopped node
// leaves no goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
