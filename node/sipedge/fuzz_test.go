package sipedge

import (
	"testing"

	"github.com/emiago/sipgo/sip"
)

// FuzzCheckRequest feeds raw bytes through sipgo's parser into
// CheckRequest: it must never panic, and every rejection must carry a
// known code, a safe reason phrase, and a response that sipgo can build
// (none for an ACK).
func FuzzCheckRequest(f *testing.F) {
	seeds := []string{
		options,
		invite,
		register,
		insert(register, "Require: timer, 100rel, x/y"),
		edit(options, "OPTIONS ", "OPTIONS sip:edge.example.net SIP/7.0"),
		edit(options, "OPTIONS ", "OPTIONS tel:+15551234567 SIP/2.0"),
		edit(options, "CSeq:", "CSeq: 1 INVITE"),
		edit(invite, "Max-Forwards:", "Max-Forwards: 0"),
		edit(edit(invite, "INVITE ", "ACK sip:bob@example.net SIP/2.0"), "CSeq:", "CSeq: 314159 ACK"),
		insert(options, "Content-Length: 7"),
		"OPTIONS sip:edge.example.net SIP/2.0\n\n",
		"INVITE sip:bob@example.net SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKx.lp0123456789abcdef, SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1\nCSeq: 1 INVITE\n\n",
	}
	for _, s := range seeds {
		f.Add(wire(s))
	}
	received, err := sip.ParseMessage(wire(invite))
	if err != nil {
		f.Fatal(err)
	}
	req := received.(*sip.Request)
	f.Add([]byte(forwarded(req, ourVia(LoopBranch(req), 5060)).String()))

	local := testConfig()
	local.Schemes = []string{"sip", "sips"}
	local.Local = func(*sip.Request) bool { return true }
	configs := []CheckConfig{testConfig(), {}, local}
	codes := map[int]bool{400: true, 416: true, 420: true, 482: true, 483: true, 505: true}

	f.Fuzz(func(t *testing.T, data []byte) {
		reason := SanitizeReason(string(data))
		assertSafeReason(t, reason)

		// sipgo may return a partly built request along with an error;
		// CheckRequest must cope with that too.
		msg, _ := sip.ParseMessage(data)
		req, ok := msg.(*sip.Request)
		if !ok {
			return
		}
		for _, cfg := range configs {
			rej := CheckRequest(req, cfg)
			if rej == nil {
				continue
			}
			if !codes[rej.Code] {
				t.Fatalf("unexpected code %d %q", rej.Code, rej.Reason)
			}
			assertSafeReason(t, rej.Reason)
			if (rej.Code == 420) != (len(rej.Header) == 1) {
				t.Fatalf("%d with headers %v", rej.Code, rej.Header)
			}
			res := rej.Response(req)
			if req.IsAck() {
				if res != nil {
					t.Fatalf("an ACK got %d", res.StatusCode)
				}
				continue
			}
			if res == nil || res.StatusCode != rej.Code || res.Reason != rej.Reason {
				t.Fatalf("response %v for %d %q", res, rej.Code, rej.Reason)
			}
			_ = res.String()
		}
		if v, ok := branchLoopValue(LoopBranch(req)); !ok || len(v) != loopValueLen {
			t.Fatalf("LoopBranch without loop value")
		}
	})
}
