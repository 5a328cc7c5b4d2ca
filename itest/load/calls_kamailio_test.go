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
// kamailioShm of shared memory, callsKamailioChildren workers), with the
// given defines (-A: "WITH_AUTH", `REALM="example.org"`). The test's
// cleanup stops it and every process it forked.
func startCallsKamailio(t *testing.T, defines ...string) *kamailio {
	t.Helper()
	return runKamailio(t, callsKamailioConfig, callsFreeSIPPort(t), []string{"udp", "tcp"}, callsKamailioChildren(t), defines...)
}

// callsKamailioChildren is how many SIP workers Kamailio forks (-n) under
// call load: callsHalfCores, or CALLMESH_LOAD_KAMAILIO_CHILDREN; the node
// runs with as many processors (callsNodeProcs). At the top of the ladder
// the two SIPps need about half of the machine. On two cores one worker
// held S1 at 10,000 calls/s and spent about 5 % less CPU per call than two
// (BENCHMARKS.md), as the node did with one processor rather than two.
func callsKamailioChildren(t *testing.T) int {
	return envCount(t, "CALLMESH_LOAD_KAMAILIO_CHILDREN", callsHalfCores())
}

// callsKamailioTitle describes a proxy.cfg Kamailio for reports.
func callsKamailioTitle(k *kamailio, what string) string {
	return fmt.Sprintf("Kamailio %s: %s (proxy.cfg), %s", k.version, what, k.tuning)
}
