//go:build linux

package load

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/callmesh/callmesh/node"
)

// callCase is one pair of call scenarios: a SIPp UAC calling through the
// server a SIPp UAS registered there, and the outcome both must report.
type callCase struct {
	name    string
	proves  string
	uac     string            // uac_*.xml
	uas     string            // uas_*.xml; "" for none (the callee is not registered)
	replace map[string]string // template placeholders, in both scenarios
	auth    bool              // against the server that challenges (REGISTER and INVITE)
	// uacPause and uasPause are the -d of each side.
	uacPause, uasPause time.Duration
	// rtp: both sides must have sent RTP (SIPp's rtp_stream).
	rtp bool
	// heldQuiet: the callee, on hold for most of the call, must have sent
	// less than half of the caller's RTP.
	heldQuiet bool
}

// callCases are the scenario pairs TestCallScenarios proves, each over UDP
// and TCP.
var callCases = []callCase{
	{name: "call", uac: "uac_call.xml", uas: "uas_answer.xml", auth: true, uacPause: 200 * time.Millisecond,
		proves: "INVITE, 407, ACK, INVITE with digest, 100/180/200, ACK, BYE, 200; the callee registered with digest"},
	{name: "call_noauth", uac: "uac_call_noauth.xml", uas: "uas_answer.xml", uacPause: 200 * time.Millisecond,
		proves: "INVITE, 100/180/200, ACK, BYE, 200 from a caller the server does not challenge"},
	{name: "call_rtp", uac: "uac_call_rtp.xml", uas: "uas_answer_rtp.xml", uacPause: 2500 * time.Millisecond, rtp: true,
		proves: "a call with RTP both ways (rtp_stream, symmetric ports)"},
	{name: "cancel", uac: "uac_cancel.xml", uas: "uas_noanswer.xml", uacPause: 200 * time.Millisecond,
		proves: "180, CANCEL, 200 for the CANCEL, 487 (with the INVITE's Vias) and its ACK"},
	{name: "busy", uac: "uac_expect_486.xml", uas: "uas_busy.xml",
		proves: "486 from the callee relayed, ACK of a non-2xx by the caller"},
	{name: "reject_480", uac: "uac_expect_480.xml", uas: "uas_reject_480.xml",
		proves: "480 from the callee relayed and acknowledged"},
	{name: "reject_403", uac: "uac_expect_403.xml", uas: "uas_reject_403.xml",
		proves: "403 from the callee relayed and acknowledged"},
	{name: "reject_603_templates", uac: "uac_expect.xml", uas: "uas_reject.xml", replace: map[string]string{"[final]": "603"},
		proves: "the uac_expect.xml and uas_reject.xml templates, with [final] = 603"},
	{name: "unknown_404", uac: "uac_expect_404.xml",
		proves: "404 from the server for a callee with no registration"},
	{name: "callee_bye", uac: "uac_recv_bye.xml", uas: "uas_bye.xml", uasPause: 300 * time.Millisecond,
		proves: "the callee's BYE through the Record-Route set to the caller's Contact"},
	{name: "hold", uac: "uac_hold.xml", uas: "uas_hold.xml", uacPause: time.Second,
		proves: "re-INVITE sendonly answered recvonly, re-INVITE sendrecv answered sendrecv, within the dialog"},
	{name: "hold_rtp", uac: "uac_hold_rtp.xml", uas: "uas_hold_rtp.xml", uacPause: 2 * time.Second, rtp: true, heldQuiet: true,
		proves: "hold and resume with RTP: the caller sends throughout, the callee stops while on hold"},
}

// callsPerCase is how many calls each pair places.
const callsPerCase = 2

// TestCallScenarios proves the SIPp call scenarios of testdata/sipp against
// Kamailio as a stateful proxy and registrar (proxy.cfg): for each pair
// the address of a SIPp UAS is registered for a callee of its own (with
// register_contact.xml), a SIPp UAC calls that callee through Kamailio,
// and both must count every call successful. Over UDP and over TCP;
// uac_call.xml runs against a second Kamailio that challenges REGISTER and
// INVITE (WITH_AUTH), the others against one that does not.
//
// It runs only with CALLMESH_LOAD=1 (with make load-calls).
func TestCallScenarios(t *testing.T) {
	if os.Getenv("CALLMESH_LOAD") != "1" {
		t.Skip("SIPp call scenarios against Kamailio: set CALLMESH_LOAD=1 (make load-calls)")
	}
	open := startCallsKamailio(t)
	auth := startCallsKamailio(t, "WITH_AUTH")
	for _, tr := range []string{"u1", "t1"} {
		name := map[string]string{"u1": "udp", "t1": "tcp"}[tr]
		t.Run(name, func(t *testing.T) {
			for _, c := range callCases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					k := open
					if c.auth {
						k = auth
					}
					runCallCase(t, k.addr, tr, c)
				})
			}
		})
	}
	if t.Failed() {
		t.Logf("Kamailio log (no auth):\n%s", open.logTail())
		t.Logf("Kamailio log (WITH_AUTH):\n%s", auth.logTail())
	}
}

// runCallCase runs one pair against server over transport.
func runCallCase(t *testing.T, server, transport string, c callCase) {
	domain := node.DefaultDomain
	callee := fmt.Sprintf("%s-%s", strings.ReplaceAll(c.name, "_", "-"), transport)
	caller := user{name: "alice-" + transport, password: "pw-alice-" + transport}
	var uas *callSIPpProc
	if c.uas != "" {
		port := callsFreeSIPPort(t)
		callsRegister(t, server, domain, transport, port, []user{{callee, "pw-" + callee}})
		uas = startCallSIPp(t, callSIPp{
			scenario: c.uas, replace: c.replace, transport: transport, port: port, calls: callsPerCase,
			pause: c.uasPause, screens: c.rtp,
		})
		// A UAS that cannot start (port taken, scenario refused) exits at
		// once: say so rather than time out on calls nobody answers.
		time.Sleep(200 * time.Millisecond)
		if !uas.running() {
			o := uas.outcome(t)
			t.Fatalf("UAS %s exited at once: %s", c.uas, o.describe())
		}
	}
	lines := make([]string, callsPerCase)
	for i := range lines {
		lines[i] = callsCallerLine(caller, callee, domain)
	}
	uac := startCallSIPp(t, callSIPp{
		scenario: c.uac, replace: c.replace, remote: server, transport: transport,
		lines: lines, calls: callsPerCase, rate: 5, limit: 10, pause: c.uacPause,
		// For INVITE the digest uri is the callee's Request-URI.
		args:    []string{"-auth_uri", callee + "@" + domain},
		screens: c.rtp, timeout: time.Minute,
	})
	if c.rtp {
		// SIPp shows its RTP counter only while a stream exists: dump the
		// screens all along and keep the largest count. SIGUSR2 kills a
		// SIPp that has not set up its handler yet: not at once.
		time.Sleep(time.Second)
		for uac.running() {
			uac.dumpScreens()
			if uas != nil {
				uas.dumpScreens()
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	if err := uac.wait(90 * time.Second); err != nil {
		t.Fatal(err)
	}
	uo := uac.outcome(t)
	if uo.exit != 0 || uo.successful != callsPerCase || uo.failed != 0 {
		t.Errorf("UAC %s over %s: want %d successful calls; %s", c.uac, transport, callsPerCase, uo.describe())
	}
	if uas != nil {
		// The UAS ends after its last call's timewait.
		if err := uas.wait(15 * time.Second); err != nil {
			uas.kill()
		}
		so := uas.outcome(t)
		if so.exit != 0 || so.successful != callsPerCase || so.failed != 0 {
			t.Errorf("UAS %s over %s: want %d successful calls; %s", c.uas, transport, callsPerCase, so.describe())
		}
		if c.rtp {
			// At 50 packets a second each side sent for at least 0.5 s.
			if uo.rtpSent < 25 || so.rtpSent < 25 {
				t.Errorf("RTP packets sent: caller %d, callee %d; want at least 25 each", uo.rtpSent, so.rtpSent)
			}
			if c.heldQuiet && 2*so.rtpSent >= uo.rtpSent {
				t.Errorf("RTP packets sent: caller %d, callee %d; the callee sent on hold", uo.rtpSent, so.rtpSent)
			}
			t.Logf("RTP packets sent: caller %d, callee %d", uo.rtpSent, so.rtpSent)
		}
	}
	if !t.Failed() {
		t.Logf("%s + %s over %s: %d calls ok: %s", c.uac, callsOrNone(c.uas), transport, callsPerCase, c.proves)
	}
}

func callsOrNone(s string) string {
	if s == "" {
		return "(no callee)"
	}
	return s
}
