//go:build linux

package load

import (
	"fmt"
	"testing"
)

// callsKamailioConfig is the reference stateful proxy and registrar
// (testdata of package itest).
const callsKamailioConfig = "../testdata/kamailio/proxy.cfg"

// startCallsKamailio starts Kamailio with proxy.cfg on a free port of
// 127.0.0.1, UDP and TCP, as operators run it (TLSF memory manager,
// kamailioShm of shared memory, kamailioChildren workers), with the given defines
// (-A: "WITH_AUTH", `REALM="example.org"`). The test's cleanup stops it and
// every process it forked.
func startCallsKamailio(t *testing.T, defines ...string) *kamailio {
	t.Helper()
	return runKamailio(t, callsKamailioConfig, callsFreeSIPPort(t), []string{"udp", "tcp"}, defines...)
}

// callsKamailioTitle describes a proxy.cfg Kamailio for reports.
func callsKamailioTitle(k *kamailio, what string) string {
	return fmt.Sprintf("Kamailio %s: %s (proxy.cfg), %s", k.version, what, kamailioTuningText)
}
