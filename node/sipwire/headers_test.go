package sipwire

import (
	"slices"
	"testing"

	"github.com/emiago/sipgo/sip"
)

func TestHeadersLikeGetHeaders(t *testing.T) {
	raw := "INVITE sip:bob@example.com SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n" +
		"v: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK2\r\n" +
		"Record-Route: <sip:p1.example.com;lr>\r\n" +
		"record-route: <sip:p2.example.com;lr>\r\n" +
		"X-Custom: a\r\n" +
		"x-CUSTOM: b\r\n" +
		"From: <sip:alice@example.com>;tag=1\r\n" +
		"To: <sip:bob@example.com>\r\n" +
		"Call-ID: h\r\n" +
		"CSeq: 1 INVITE\r\n" +
		"Content-Length: 0\r\n\r\n"
	m, err := sip.ParseMessage([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	msg := m.(*sip.Request)
	for _, name := range []string{"Via", "via", "Record-Route", "RECORD-ROUTE", "X-Custom", "x-custom", "Subject", "v"} {
		got := slices.Collect(Headers(msg, name))
		if want := msg.GetHeaders(name); !slices.Equal(got, want) {
			t.Errorf("%s: got %v, want sipgo's %v", name, got, want)
		}
		if got, want := Header(msg, name), msg.GetHeader(name); got != want {
			t.Errorf("%s: Header gave %v, want sipgo's GetHeader's %v", name, got, want)
		}
	}
	if n := len(slices.Collect(Headers(msg, "Via"))); n != 2 {
		t.Errorf("got %d Vias, want 2", n)
	}
	// Stopping early stops the walk: two headers match, one is yielded.
	yielded := 0
	Headers(msg, "X-Custom")(func(sip.Header) bool { yielded++; return false })
	if yielded != 1 {
		t.Errorf("yielded %d headers after the first said stop", yielded)
	}
	allocs := testing.AllocsPerRun(100, func() {
		for h := range Headers(msg, "x-custom") {
			_ = h
		}
	})
	if allocs != 0 {
		t.Errorf("Headers allocated %.1f times", allocs)
	}
	if allocs := testing.AllocsPerRun(100, func() { _ = Header(msg, "call-id") }); allocs != 0 {
		t.Errorf("Header allocated %.1f times", allocs)
	}
}

// PutHeaders installs the headers in order, in one allocation, with the
// quick accessors where appending them one by one leaves them: the first
// Via, Route and Record-Route, the one From.
func TestPutHeaders(t *testing.T) {
	v1 := &sip.ViaHeader{Host: "a"}
	v2 := &sip.ViaHeader{Host: "b"}
	r1 := &sip.RouteHeader{Address: sip.Uri{Host: "r1"}}
	r2 := &sip.RouteHeader{Address: sip.Uri{Host: "r2"}}
	rr1 := &sip.RecordRouteHeader{Address: sip.Uri{Host: "rr1"}}
	rr2 := &sip.RecordRouteHeader{Address: sip.Uri{Host: "rr2"}}
	from := &sip.FromHeader{Address: sip.Uri{Host: "f"}}
	hs := []sip.Header{v1, v2, from, r1, r2, rr1, rr2}

	put := sip.NewRequest(sip.INVITE, sip.Uri{Host: "x"})
	PutHeaders(&put.MessageData, hs)
	appended := sip.NewRequest(sip.INVITE, sip.Uri{Host: "x"})
	for _, h := range hs {
		appended.AppendHeader(h)
	}
	if !slices.Equal(put.Headers(), appended.Headers()) {
		t.Fatalf("headers %v, want %v", put.Headers(), appended.Headers())
	}
	if put.Via() != v1 || put.Route() != r1 || put.RecordRoute() != rr1 || put.From() != from {
		t.Fatalf("accessors at Via %v, Route %v, Record-Route %v, From %v; want the first of each",
			put.Via(), put.Route(), put.RecordRoute(), put.From())
	}
	if put.Via() != appended.Via() || put.Route() != appended.Route() || put.RecordRoute() != appended.RecordRoute() {
		t.Fatal("accessors differ from appending")
	}
	if n := testing.AllocsPerRun(100, func() {
		var md sip.MessageData
		PutHeaders(&md, hs)
	}); n > 1 {
		t.Fatalf("PutHeaders: %v allocations, want 1", n)
	}
}
