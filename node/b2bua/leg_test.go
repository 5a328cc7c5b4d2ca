package b2bua

import (
	"bytes"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/callmesh/callmesh/node/internal/race"
	"github.com/callmesh/callmesh/node/sipwire"
)

func testLeg(transport string) *leg {
	uri := func(s string) sip.Uri {
		var u sip.Uri
		if err := sip.ParseUri(s, &u); err != nil {
			panic(err)
		}
		return u
	}
	return &leg{
		callID: "c1@callmesh", localTag: "lt1",
		localURI:     uri("sip:alice@example.com"),
		remoteURI:    uri("sip:bob@example.com;user=phone"),
		remoteTarget: uri("sip:bob@192.0.2.9:5062;transport=udp"),
		routes:       []sip.Uri{uri("sip:192.0.2.1;lr"), uri("sip:192.0.2.2;lr;ftag=x")},
		dest:         "192.0.2.9:5062", transport: transport,
	}
}

func wire(m sip.Message) string {
	var b bytes.Buffer
	sipwire.Write(&b, m)
	return b.String()
}

// TestLegRequest checks what a leg's requests say (RFC 3261 §12.2.1.1):
// the remote target as Request-URI, the route set, our tag and theirs
// once known, the CSeq numbering, a Contact on the methods that set a
// target, and Content-Length 0 until a body is set.
func TestLegRequest(t *testing.T) {
	contact := sip.Uri{Scheme: "sip", Host: "198.51.100.1", Port: 5060}
	l := testLeg("UDP")

	inv := l.request(sip.INVITE, 0, contact)
	want := strings.Join([]string{
		"INVITE sip:bob@192.0.2.9:5062;transport=udp SIP/2.0",
		"From: <sip:alice@example.com>;tag=lt1",
		"To: <sip:bob@example.com;user=phone>",
		"Call-ID: c1@callmesh",
		"CSeq: 1 INVITE",
		"Max-Forwards: 70",
		"Route: <sip:192.0.2.1;lr>",
		"Route: <sip:192.0.2.2;lr;ftag=x>",
		"Contact: <sip:198.51.100.1:5060>",
		"Content-Length: 0",
		"", ""}, "\r\n")
	if got := wire(inv); got != want {
		t.Fatalf("INVITE:\n%q\nwant\n%q", got, want)
	}
	if inv.Destination() != "192.0.2.9:5062" || inv.Transport() != "UDP" {
		t.Fatalf("INVITE goes to %s over %s", inv.Destination(), inv.Transport())
	}
	// The quick accessors name the first of a kind, as AppendHeader
	// leaves them.
	if r := inv.Route(); r == nil || r.Address.Host != "192.0.2.1" {
		t.Fatalf("Route() is %v, want the first route", r)
	}
	if tag, _ := inv.From().Params.Get("tag"); tag != "lt1" || inv.CallID().Value() != "c1@callmesh" || inv.CSeq().SeqNo != 1 ||
		inv.Contact() == nil || inv.MaxForwards() == nil || inv.ContentLength() == nil {
		t.Fatal("a quick accessor does not name its header")
	}
	inv.SetBody([]byte("v=0\r\n"))
	if got := inv.ContentLength(); got == nil || *got != 5 {
		t.Fatalf("Content-Length after a body: %v", got)
	}

	l.remoteTag = "rt9"
	ack := l.request(sip.ACK, 1, contact)
	if got := wire(ack); !strings.Contains(got, "To: <sip:bob@example.com;user=phone>;tag=rt9\r\n") ||
		!strings.Contains(got, "CSeq: 1 ACK\r\n") || strings.Contains(got, "Contact:") {
		t.Fatalf("ACK:\n%s", got)
	}

	// Over a stream the Contact names the transport; the BYE takes the
	// next number and no Contact.
	lt := testLeg("TCP")
	lt.cseq, lt.remoteTag = 1, "rt9"
	if got := wire(lt.request(sip.UPDATE, 0, contact)); !strings.Contains(got, "Contact: <sip:198.51.100.1:5060;transport=tcp>\r\n") ||
		!strings.Contains(got, "CSeq: 2 UPDATE\r\n") {
		t.Fatalf("UPDATE over TCP:\n%s", got)
	}
	if got := wire(lt.request(sip.BYE, 0, contact)); !strings.Contains(got, "CSeq: 3 BYE\r\n") || strings.Contains(got, "Contact:") {
		t.Fatalf("BYE:\n%s", got)
	}
}

// TestLegRequestsShareNothing: a request's headers and parameter lists are
// its own; changing one leaves the leg and the next request as they were.
func TestLegRequestsShareNothing(t *testing.T) {
	contact := sip.Uri{Scheme: "sip", Host: "198.51.100.1", Port: 5060, UriParams: sip.HeaderParams{{K: "ob", V: ""}}}
	l := testLeg("UDP")
	l.remoteTag = "rt9"
	first := l.request(sip.INVITE, 0, contact)
	before := wire(l.request(sip.INVITE, 7, contact))

	first.Recipient.UriParams.Add("transport", "tcp")
	first.From().Params.Add("tag", "changed")
	first.From().Address.UriParams.Add("x", "1")
	first.To().Params.Add("tag", "changed")
	first.To().Address.UriParams.Add("user", "ip")
	first.Contact().Address.UriParams.Add("ob", "changed")
	first.CSeq().SeqNo = 99
	siptxVia(first)

	if after := wire(l.request(sip.INVITE, 7, contact)); after != before {
		t.Fatalf("a request changed its leg:\n%q\n%q", before, after)
	}
	if v, _ := contact.UriParams.Get("ob"); v != "" {
		t.Fatalf("the contact given changed: ob=%q", v)
	}
}

// siptxVia puts a top Via on req as the service does before sending.
func siptxVia(req *sip.Request) {
	req.PrependHeader(&sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: "h", Params: sip.HeaderParams{{K: "branch", V: "z9hG4bK1"}}})
}

// TestLegRequestAllocations: the request with its headers, and its header
// list; the Request-URI's parameter lists, which sipgo's NewRequest
// copies apart, share the headers' allocation.
func TestLegRequestAllocations(t *testing.T) {
	contact := sip.Uri{Scheme: "sip", Host: "198.51.100.1", Port: 5060}
	l := testLeg("UDP")
	l.routes = nil
	if len(l.remoteTarget.UriParams) == 0 {
		t.Fatal("the test leg's target has no URI parameters to copy")
	}
	n := testing.AllocsPerRun(100, func() { l.request(sip.INVITE, 1, contact) })
	if n > 2 {
		t.Fatalf("%v allocations per INVITE, want at most 2", n)
	}
}

// TestNewCallID: 96 random bits in hexadecimal at the node's host part,
// made in one allocation, never the same twice.
func TestNewCallID(t *testing.T) {
	a, b := newCallID(), newCallID()
	id, host, ok := strings.Cut(a, "@")
	if !ok || "@"+host != callIDHost || len(id) != 24 || strings.Trim(id, "0123456789abcdef") != "" {
		t.Fatalf("Call-ID %q, want 24 hexadecimal digits and %s", a, callIDHost)
	}
	if a == b {
		t.Fatalf("two Call-IDs alike: %s", a)
	}
	if race.Enabled {
		return
	}
	var sink string
	if n := testing.AllocsPerRun(100, func() { sink = newCallID() }); n > 1 {
		t.Fatalf("newCallID: %v allocations, want 1", n)
	}
	_ = sink
}
