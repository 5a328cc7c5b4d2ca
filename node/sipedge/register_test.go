package sipedge

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

var policy = RegisterPolicy{MinExpires: time.Minute, MaxExpires: time.Hour, DefaultExpires: 30 * time.Minute, MaxContacts: 3}

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// registerReq parses a REGISTER with the given extra header lines.
func registerReq(t *testing.T, callID string, cseq int, lines ...string) *sip.Request {
	t.Helper()
	raw := "REGISTER sip:example.com SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK" + callID + "x" + strings.Repeat("1", cseq%7) + "\r\n" +
		"Max-Forwards: 70\r\n" +
		"To: <sip:alice@example.com>\r\n" +
		"From: <sip:alice@example.com>;tag=abc\r\n" +
		"Call-ID: " + callID + "\r\n" +
		"CSeq: " + strconv.Itoa(cseq) + " REGISTER\r\n"
	for _, l := range lines {
		raw += l + "\r\n"
	}
	raw += "Content-Length: 0\r\n\r\n"
	msg, err := sip.ParseMessage([]byte(raw))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, raw)
	}
	return msg.(*sip.Request)
}

var meta = Meta{Source: "192.0.2.1:5060", Transport: "UDP"}

func apply(t *testing.T, req *sip.Request, existing []Binding, now time.Time) RegisterOutcome {
	t.Helper()
	return ApplyRegister(req, "alice@example.com", existing, policy, meta, now)
}

func TestApplyRegister(t *testing.T) {
	one := apply(t, registerReq(t, "c1", 1, "Contact: <sip:alice@192.0.2.1:5060>", "Expires: 600"), nil, t0)
	if one.Code != 200 || len(one.Bindings) != 1 || !one.Changed {
		t.Fatalf("first registration: %+v", one)
	}
	b := one.Bindings[0]
	if !b.Expires.Equal(t0.Add(600*time.Second)) || b.CallID != "c1" || b.CSeq != 1 || b.Source != meta.Source || b.Transport != "udp" {
		t.Fatalf("binding = %+v", b)
	}

	tests := []struct {
		name     string
		req      *sip.Request
		existing []Binding
		code     int
		n        int // bindings after
		check    func(t *testing.T, out RegisterOutcome)
	}{
		{name: "query lists, changes nothing", req: registerReq(t, "c2", 1), existing: one.Bindings, code: 200, n: 1,
			check: func(t *testing.T, out RegisterOutcome) {
				if out.Changed {
					t.Error("a query changed bindings")
				}
			}},
		{name: "default expiry", req: registerReq(t, "c2", 1, "Contact: <sip:alice@192.0.2.9>"), code: 200, n: 1,
			check: func(t *testing.T, out RegisterOutcome) {
				if got := out.Bindings[0].Expires.Sub(t0); got != policy.DefaultExpires {
					t.Errorf("expiry %v, want default %v", got, policy.DefaultExpires)
				}
			}},
		{name: "contact parameter beats header", req: registerReq(t, "c2", 1, "Contact: <sip:alice@192.0.2.9>;expires=120", "Expires: 600"), code: 200, n: 1,
			check: func(t *testing.T, out RegisterOutcome) {
				if got := out.Bindings[0].Expires.Sub(t0); got != 120*time.Second {
					t.Errorf("expiry %v, want 120s", got)
				}
			}},
		{name: "clamped to maximum", req: registerReq(t, "c2", 1, "Contact: <sip:alice@192.0.2.9>", "Expires: 99999"), code: 200, n: 1,
			check: func(t *testing.T, out RegisterOutcome) {
				if got := out.Bindings[0].Expires.Sub(t0); got != policy.MaxExpires {
					t.Errorf("expiry %v, want max %v", got, policy.MaxExpires)
				}
			}},
		{name: "too brief", req: registerReq(t, "c2", 1, "Contact: <sip:alice@192.0.2.9>", "Expires: 30"), code: 423,
			check: func(t *testing.T, out RegisterOutcome) {
				if out.MinExpires != 60 {
					t.Errorf("Min-Expires %d, want 60", out.MinExpires)
				}
			}},
		{name: "second contact added", req: registerReq(t, "c2", 1, "Contact: <sip:alice@192.0.2.9>"), existing: one.Bindings, code: 200, n: 2},
		{name: "two contacts in one header", req: registerReq(t, "c2", 1, "Contact: <sip:a@192.0.2.8>, <sip:a@192.0.2.9>"), code: 200, n: 2},
		{name: "same contact refreshed, other Call-ID", req: registerReq(t, "c9", 1, "Contact: <sip:alice@192.0.2.1:5060>"), existing: one.Bindings, code: 200, n: 1},
		{name: "same Call-ID, higher CSeq refreshes", req: registerReq(t, "c1", 2, "Contact: <sip:alice@192.0.2.1:5060>"), existing: one.Bindings, code: 200, n: 1},
		{name: "same Call-ID, same CSeq is out of order", req: registerReq(t, "c1", 1, "Contact: <sip:alice@192.0.2.1:5060>"), existing: one.Bindings, code: 400},
		{name: "URI comparison ignores host case and other params", req: registerReq(t, "c9", 1, "Contact: <sip:alice@192.0.2.1:5060;foo=bar>;expires=0"), existing: one.Bindings, code: 200, n: 0},
		{name: "expires 0 removes", req: registerReq(t, "c1", 2, "Contact: <sip:alice@192.0.2.1:5060>", "Expires: 0"), existing: one.Bindings, code: 200, n: 0},
		{name: "wildcard removes all", req: registerReq(t, "c1", 2, "Contact: *", "Expires: 0"), existing: one.Bindings, code: 200, n: 0},
		{name: "wildcard without Expires 0", req: registerReq(t, "c1", 2, "Contact: *"), existing: one.Bindings, code: 400},
		{name: "wildcard with a stale CSeq", req: registerReq(t, "c1", 1, "Contact: *", "Expires: 0"), existing: one.Bindings, code: 400},
		{name: "bad Expires", req: registerReq(t, "c2", 1, "Contact: <sip:a@192.0.2.9>", "Expires: soon"), code: 400},
		{name: "bad expires parameter", req: registerReq(t, "c2", 1, "Contact: <sip:a@192.0.2.9>;expires=-1"), code: 400},
		{name: "tel contact", req: registerReq(t, "c2", 1, "Contact: <tel:+15551234>"), code: 416},
		{name: "too many contacts", req: registerReq(t, "c2", 1, "Contact: <sip:a@192.0.2.5>, <sip:a@192.0.2.6>, <sip:a@192.0.2.7>, <sip:a@192.0.2.8>"), code: 403},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := apply(t, tc.req, tc.existing, t0)
			if out.Code != tc.code {
				t.Fatalf("code %d %q, want %d", out.Code, out.Reason, tc.code)
			}
			if tc.code == 200 && len(out.Bindings) != tc.n {
				t.Fatalf("%d bindings, want %d: %+v", len(out.Bindings), tc.n, out.Bindings)
			}
			if tc.check != nil {
				tc.check(t, out)
			}
		})
	}
}

func TestApplyRegisterDropsExpired(t *testing.T) {
	old := apply(t, registerReq(t, "c1", 1, "Contact: <sip:alice@192.0.2.1>", "Expires: 60"), nil, t0).Bindings
	out := apply(t, registerReq(t, "c2", 1), old, t0.Add(61*time.Second))
	if out.Code != 200 || len(out.Bindings) != 0 || !out.Changed {
		t.Fatalf("expired binding kept: %+v", out)
	}
}

func TestBindingRemaining(t *testing.T) {
	b := Binding{Expires: t0.Add(1500 * time.Millisecond)}
	if got := b.Remaining(t0); got != 2 {
		t.Errorf("Remaining = %d, want 2 (rounded up)", got)
	}
	if got := b.Remaining(t0.Add(time.Hour)); got != 0 {
		t.Errorf("Remaining after expiry = %d, want 0", got)
	}
}
