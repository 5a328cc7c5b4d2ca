package sipwire

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// parseReference is the parser Parse must agree with.
var parseReference = NewParser()

// parseCheck asserts the property that defines Parse: when it accepts
// data, sipgo accepts it too and the two messages are deeply equal. It
// reports whether Parse accepted.
func parseCheck(t testing.TB, data []byte) bool {
	t.Helper()
	ours, err := Parse(data)
	if err != nil {
		if !errors.Is(err, ErrUnsupported) {
			t.Fatalf("error does not wrap ErrUnsupported: %v", err)
		}
		if ours != nil {
			t.Fatalf("message returned with error %v", err)
		}
		return false
	}
	ref, rerr := parseReference.ParseSIP(data)
	if rerr != nil {
		t.Fatalf("Parse accepted what sipgo rejects (%v):\n%q", rerr, data)
	}
	if !reflect.DeepEqual(ours, ref) {
		t.Fatalf("Parse differs from sipgo on\n%q\n%s", data, parseDiff(ours, ref))
	}
	// DeepEqual compares what the quick accessors point at, not where:
	// with two equal Vias, msg.Via() must still be the first one.
	if o, r := parseAccessorPositions(ours), parseAccessorPositions(ref); o != r {
		t.Fatalf("accessors point at headers %v, sipgo's at %v, on\n%q", o, r, data)
	}
	return true
}

// parseAccessorPositions returns, for each of a message's quick header
// accessors, the index in Headers() of the header it returns (-1 for
// none, -2 for one outside the list).
func parseAccessorPositions(m sip.Message) [11]int {
	a := m.(interface {
		Headers() []sip.Header
		Contact() *sip.ContactHeader
		Route() *sip.RouteHeader
		RecordRoute() *sip.RecordRouteHeader
		MaxForwards() *sip.MaxForwardsHeader
		ContentType() *sip.ContentTypeHeader
	})
	hs := a.Headers()
	pos := func(h sip.Header, isNil bool) int {
		if isNil {
			return -1
		}
		for i, x := range hs {
			if x == h {
				return i
			}
		}
		return -2
	}
	return [11]int{
		pos(m.Via(), m.Via() == nil),
		pos(m.From(), m.From() == nil),
		pos(m.To(), m.To() == nil),
		pos(m.CallID(), m.CallID() == nil),
		pos(m.CSeq(), m.CSeq() == nil),
		pos(m.ContentLength(), m.ContentLength() == nil),
		pos(a.Contact(), a.Contact() == nil),
		pos(a.Route(), a.Route() == nil),
		pos(a.RecordRoute(), a.RecordRoute() == nil),
		pos(a.MaxForwards(), a.MaxForwards() == nil),
		pos(a.ContentType(), a.ContentType() == nil),
	}
}

// parseDiff describes how two messages differ, header by header.
func parseDiff(ours, ref sip.Message) string {
	var b strings.Builder
	if ours.String() != ref.String() {
		fmt.Fprintf(&b, "ours:\n%s\nsipgo:\n%s\n", ours, ref)
	}
	oh, rh := ours.(interface{ Headers() []sip.Header }).Headers(), ref.(interface{ Headers() []sip.Header }).Headers()
	if len(oh) != len(rh) {
		fmt.Fprintf(&b, "%d headers, sipgo %d\n", len(oh), len(rh))
	}
	for i := range min(len(oh), len(rh)) {
		if !reflect.DeepEqual(oh[i], rh[i]) {
			fmt.Fprintf(&b, "header %d:\n ours  %T %#v\n sipgo %T %#v\n", i, oh[i], oh[i], rh[i], rh[i])
		}
	}
	if !bytes.Equal(ours.Body(), ref.Body()) {
		fmt.Fprintf(&b, "body %q, sipgo %q\n", ours.Body(), ref.Body())
	}
	if b.Len() == 0 {
		b.WriteString("no difference in headers or body: see the start line and the header pointers")
	}
	return b.String()
}

// sipMsg joins lines with CRLF, ends the header section and appends the
// body; "{len}" in a line becomes the body's length, as in SIPp's [len].
func sipMsg(body string, lines ...string) string {
	head := strings.Join(lines, "\r\n")
	head = strings.ReplaceAll(head, "{len}", strconv.Itoa(len(body)))
	return head + "\r\n\r\n" + body
}

const sippSDP = "v=0\r\n" +
	"o=- 4242001 1 IN IP4 127.0.0.1\r\n" +
	"s=-\r\n" +
	"c=IN IP4 127.0.0.1\r\n" +
	"t=0 0\r\n" +
	"m=audio 6000 RTP/AVP 0 8 101\r\n" +
	"a=rtpmap:0 PCMU/8000\r\n" +
	"a=rtpmap:8 PCMA/8000\r\n" +
	"a=rtpmap:101 telephone-event/8000\r\n" +
	"a=fmtp:101 0-16\r\n" +
	"a=ptime:20\r\n" +
	"a=sendrecv\r\n"

// parseSippInvite and parseSipp200 are what uac_call_noauth.xml and
// uas_answer_rtp.xml send, with SIPp's keywords filled in.
var (
	parseSippInvite = sipMsg(sippSDP,
		"INVITE sip:bob@example.com SIP/2.0",
		"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-4242-1-0;rport",
		"From: <sip:alice@example.com>;tag=4242SIPpTag001",
		"To: <sip:bob@example.com>",
		"Call-ID: 1-4242@127.0.0.1",
		"CSeq: 1 INVITE",
		"Contact: <sip:alice@127.0.0.1:5061;transport=UDP>",
		"Max-Forwards: 70",
		"User-Agent: SIPp",
		"Content-Type: application/sdp",
		"Content-Length: {len}",
	)
	parseSipp200 = sipMsg(sippSDP,
		"SIP/2.0 200 OK",
		"Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK-edge-1;received=10.0.0.5,SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-4242-1-0;rport=5061;received=127.0.0.1",
		"Record-Route: <sip:10.0.0.5:5060;lr>",
		"From: <sip:alice@example.com>;tag=4242SIPpTag001",
		"To: <sip:bob@example.com>;tag=4343SIPpTag011",
		"Call-ID: 1-4242@127.0.0.1",
		"CSeq: 1 INVITE",
		"Contact: <sip:callee@127.0.0.1:5062;transport=UDP>",
		"Content-Type: application/sdp",
		"Content-Length: {len}",
	)
)

// parseAccepted are messages the fast path must take (and then agree
// with sipgo on).
var parseAccepted = []struct{ name, raw string }{
	{"sipp INVITE", parseSippInvite},
	{"sipp 100", sipMsg("",
		"SIP/2.0 100 Trying",
		"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-4242-1-0;rport=5061;received=127.0.0.1",
		"From: <sip:alice@example.com>;tag=4242SIPpTag001",
		"To: <sip:bob@example.com>",
		"Call-ID: 1-4242@127.0.0.1",
		"CSeq: 1 INVITE",
		"Content-Length: 0",
	)},
	{"sipp 180 with Record-Route", sipMsg("",
		"SIP/2.0 180 Ringing",
		"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-4242-1-0;rport=5061;received=127.0.0.1",
		"Record-Route: <sip:10.0.0.5:5060;lr>",
		"From: <sip:alice@example.com>;tag=4242SIPpTag001",
		"To: <sip:bob@example.com>;tag=4343SIPpTag011",
		"Call-ID: 1-4242@127.0.0.1",
		"CSeq: 1 INVITE",
		"Contact: <sip:callee@127.0.0.1:5062;transport=UDP>",
		"Content-Length: 0",
	)},
	{"sipp 200 with SDP", parseSipp200},
	{"sipp ACK with routes", sipMsg("",
		"ACK sip:callee@127.0.0.1:5062;transport=UDP SIP/2.0",
		"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-4242-2-0;rport",
		"Route: <sip:10.0.0.5:5060;lr>",
		"Route: <sip:10.0.0.6;lr>",
		"From: <sip:alice@example.com>;tag=4242SIPpTag001",
		"To: <sip:bob@example.com>;tag=4343SIPpTag011",
		"Call-ID: 1-4242@127.0.0.1",
		"CSeq: 1 ACK",
		"Contact: <sip:alice@127.0.0.1:5061;transport=UDP>",
		"Max-Forwards: 70",
		"Content-Length: 0",
	)},
	{"sipp BYE", sipMsg("",
		"BYE sip:callee@127.0.0.1:5062;transport=UDP SIP/2.0",
		"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-4242-3-0;rport",
		"Route: <sip:10.0.0.5:5060;lr>, <sip:10.0.0.6;lr>",
		"From: <sip:alice@example.com>;tag=4242SIPpTag001",
		"To: <sip:bob@example.com>;tag=4343SIPpTag011",
		"Call-ID: 1-4242@127.0.0.1",
		"CSeq: 2 BYE",
		"Max-Forwards: 70",
		"Content-Length: 0",
	)},
	{"sipp 200 to BYE", sipMsg("",
		"SIP/2.0 200 OK",
		"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-4242-3-0;rport=5061;received=127.0.0.1",
		"From: <sip:alice@example.com>;tag=4242SIPpTag001",
		"To: <sip:bob@example.com>;tag=4343SIPpTag011",
		"Call-ID: 1-4242@127.0.0.1",
		"CSeq: 2 BYE",
		"Content-Length: 0",
	)},
	{"sipp REGISTER", sipMsg("",
		"REGISTER sip:example.com SIP/2.0",
		"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-77-1-0;rport",
		"From: <sip:alice@example.com>;tag=77SIPpTag11",
		"To: <sip:alice@example.com>",
		"Call-ID: 1-77@127.0.0.1",
		"CSeq: 1 REGISTER",
		"Contact: <sip:alice@127.0.0.1:5061;transport=UDP>",
		"Max-Forwards: 70",
		"Expires: 3600",
		"User-Agent: SIPp",
		"Content-Length: 0",
	)},
	{"401 with WWW-Authenticate", sipMsg("",
		"SIP/2.0 401 Unauthorized",
		"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-77-1-0;rport=5061;received=127.0.0.1",
		"From: <sip:alice@example.com>;tag=77SIPpTag11",
		"To: <sip:alice@example.com>;tag=srv-1",
		"Call-ID: 1-77@127.0.0.1",
		"CSeq: 1 REGISTER",
		`WWW-Authenticate: Digest realm="example.com", nonce="5f2a9c", algorithm=MD5, qop="auth"`,
		"Content-Length: 0",
	)},
	{"REGISTER with Authorization digest", sipMsg("",
		"REGISTER sip:example.com SIP/2.0",
		"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-77-2-0;rport",
		"From: <sip:alice@example.com>;tag=77SIPpTag11",
		"To: <sip:alice@example.com>",
		"Call-ID: 1-77@127.0.0.1",
		"CSeq: 2 REGISTER",
		"Contact: <sip:alice@127.0.0.1:5061;transport=UDP>",
		`Authorization: Digest username="alice",realm="example.com",nonce="5f2a9c",uri="sip:example.com",response="0b9e3a0c4c6f2d6f8a3c2b1a0f9e8d7c",algorithm=MD5,cnonce="abc",qop=auth,nc=00000001`,
		"Max-Forwards: 70",
		"Expires: 3600",
		"User-Agent: SIPp",
		"Content-Length: 0",
	)},
	{"200 to REGISTER", sipMsg("",
		"SIP/2.0 200 OK",
		"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-77-2-0;rport=5061;received=127.0.0.1",
		"From: <sip:alice@example.com>;tag=77SIPpTag11",
		"To: <sip:alice@example.com>;tag=srv-2",
		"Call-ID: 1-77@127.0.0.1",
		"CSeq: 2 REGISTER",
		"Contact: <sip:alice@127.0.0.1:5061;transport=UDP>;expires=3600",
		"Date: Sat, 13 Nov 2010 23:29:00 GMT",
		"Content-Length: 0",
	)},
	{"response with several Vias", sipMsg("",
		"SIP/2.0 486 Busy Here",
		"Via: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bK-p2;received=10.0.0.7",
		"Via: SIP/2.0/TCP 10.0.0.6:5060;branch=z9hG4bK-p1, SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK-uac;rport=5070",
		"v: SIP/2.0/UDP uac.example.com:5080;branch=z9hG4bK-x",
		"From: \"Alice\" <sip:alice@example.com>;tag=a",
		"To: \"Bob\" <sip:bob@example.com>;tag=b",
		"Call-ID: several-vias",
		"CSeq: 7 INVITE",
		"Content-Length: 0",
	)},
	{"Record-Route lists", sipMsg("",
		"SIP/2.0 200 OK",
		"Via: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK-rr",
		"Record-Route: <sip:p3.example.com;lr>,<sip:p2.example.com;lr;transport=tcp> , <sip:p1.example.com:5070;lr>",
		"Record-Route: <sip:[2001:db8::10]:5060;lr>",
		"Record-Route: <sips:edge.example.com;lr;r2=on>",
		"From: <sip:alice@example.com>;tag=a",
		"To: <sip:bob@example.com>;tag=b",
		"Call-ID: rr-list",
		"CSeq: 1 INVITE",
		"Contact: <sip:bob@10.0.0.9>",
		"Content-Length: 0",
	)},
	{"IPv6 hosts", sipMsg("",
		"OPTIONS sip:bob@[2001:db8::2]:5060;transport=udp SIP/2.0",
		"Via: SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK-v6;received=2001:db8::9;rport=5062",
		"Via: SIP/2.0/UDP [::1];branch=z9hG4bK-v6b",
		"Via: SIP/2.0/TCP [fe80::1]",
		"From: <sip:alice@[2001:db8::1]>;tag=v6",
		"To: <sip:bob@[2001:db8::2]:5060>",
		"Call-ID: v6@[2001:db8::1]",
		"CSeq: 1 OPTIONS",
		"Contact: <sip:alice@[2001:db8::1]:5060>",
		"Max-Forwards: 70",
		"Content-Length: 0",
	)},
	{"compact header names", sipMsg("v=0\r\n",
		"MESSAGE sip:bob@example.com SIP/2.0",
		"v: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-c",
		"f: sip:alice@example.com;tag=c1",
		"t: sip:bob@example.com",
		"i: compact-1@192.0.2.1",
		"CSeq: 3 MESSAGE",
		"m: <sip:alice@192.0.2.1>",
		"k: 100rel",
		"s: hello",
		"c: text/plain",
		"l: {len}",
	)},
	{"mixed-case header names", sipMsg("",
		"OPTIONS sip:bob@example.com SIP/2.0",
		"VIA: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-m",
		"from: <sip:alice@example.com>;tag=m",
		"TO: <sip:bob@example.com>",
		"CALL-ID: mixed-1",
		"cseq: 9 OPTIONS",
		"CONTACT: <sip:alice@192.0.2.1>",
		"max-FORWARDS: 70",
		"V: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK-n",
		"ACCEPT: application/sdp",
		"content-LENGTH: 0",
	)},
	{"quoted display names with commas", sipMsg("",
		"INVITE sip:bob@example.com SIP/2.0",
		"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-q",
		`From: "Doe, John" <sip:john@example.com>;tag=q1`,
		`To: "Smith, Jane (office)" <sip:jane@example.com>`,
		"Call-ID: quoted-1",
		"CSeq: 1 INVITE",
		`Contact: "Doe, John" <sip:john@192.0.2.1>;q=0.7, <sip:john@192.0.2.2>;q=0.3,"x" <sip:john@192.0.2.3>`,
		"Max-Forwards: 70",
		"Content-Length: 0",
	)},
	{"display names: unquoted, escaped, UTF-8, empty", sipMsg("",
		"INVITE sip:bob@example.com SIP/2.0",
		"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-d",
		`From: Alice  Smith <sip:alice@example.com>;tag=d1`,
		`To: "Bob \"the builder\" \\ B" <sip:bob@example.com>`,
		`Contact: "José Müller"<sip:jose@192.0.2.1>`,
		`P-Asserted-Identity: "" <sip:pai@example.com>`,
		"Call-ID: display-1",
		"CSeq: 1 INVITE",
		"Content-Length: 0",
	)},
	{"params with and without values", sipMsg("",
		"SUBSCRIBE sip:bob@example.com;transport=udp;lr;maddr=10.0.0.1 SIP/2.0",
		"Via: SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bK-p;alias;x=",
		"From: <sip:alice@example.com;user=phone;ob>;tag=p1;+sip.ice;reg-id=1",
		"To: <sip:bob@example.com>;tag=",
		"Call-ID: params-1",
		"CSeq: 5 SUBSCRIBE",
		`Contact: <sip:alice@192.0.2.1:5060;transport=tcp;ob>;reg-id=1;+sip.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";expires=600`,
		"Event: presence",
		"Route: <sip:edge.example.com;lr;transport=tcp;ftag=abc>",
		"Content-Length: 0",
	)},
	{"duplicate params", sipMsg("",
		"OPTIONS sip:bob@example.com;a=1;a=2 SIP/2.0",
		"Via: SIP/2.0/UDP 192.0.2.1;branch=one;branch=two;rport;rport=7",
		"From: <sip:alice@example.com>;tag=1;tag=2",
		"To: <sip:bob@example.com;x;x=9>",
		"Call-ID: dup-1",
		"CSeq: 1 OPTIONS",
		"Content-Length: 0",
	)},
	{"URI headers", sipMsg("",
		"INVITE sip:bob@example.com?Subject=hi&Priority=urgent SIP/2.0",
		"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-h",
		"From: <sip:alice@example.com;transport=udp?Replaces=abc%40host%3Bto-tag%3D1&X=a=b>;tag=h",
		"To: sip:bob@example.com?Subject=x",
		"Call-ID: headers-1",
		"CSeq: 1 INVITE",
		"Contact: <sip:alice@192.0.2.1?Accept-Contact=x>",
		"Content-Length: 0",
	)},
	{"tel URIs", sipMsg("",
		"INVITE tel:+15551234567 SIP/2.0",
		"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-tel",
		"From: <sip:+15550001111@example.com;user=phone>;tag=t",
		"To: <tel:+1-555-123-4567;phone-context=example.com>",
		"P-Asserted-Identity: <tel:+15550001111>",
		"Call-ID: tel-1",
		"CSeq: 1 INVITE",
		"Contact: <urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>",
		"Route: <tel:+15551234567>",
		"Content-Length: 0",
	)},
	{"user with password and odd user chars", sipMsg("",
		"OPTIONS sip:bob:secret@example.com:5060 SIP/2.0",
		"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-pw",
		"From: <sip:+1555;npdi;rn=+1444@example.com;user=phone>;tag=pw",
		"To: <SIP:Bob@Example.COM>",
		"Call-ID: pw-1",
		"CSeq: 1 OPTIONS",
		"Content-Length: 0",
	)},
	{"wildcard Contact", sipMsg("",
		"REGISTER sip:example.com SIP/2.0",
		"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-w",
		"From: <sip:alice@example.com>;tag=w",
		"To: <sip:alice@example.com>",
		"Call-ID: wild-1",
		"CSeq: 9 REGISTER",
		"Contact: *",
		"Expires: 0",
		"Content-Length: 0",
	)},
	{"no Content-Length, no body", sipMsg("",
		"OPTIONS sip:example.com SIP/2.0",
		"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-ka",
		"From: <sip:ping@example.com>;tag=ka",
		"To: <sip:example.com>",
		"Call-ID: ka-1",
		"CSeq: 1 OPTIONS",
	)},
	{"no Content-Length, body to the end", sipMsg("hello\r\nworld",
		"MESSAGE sip:bob@example.com SIP/2.0",
		"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-nb",
		"From: <sip:alice@example.com>;tag=nb",
		"To: <sip:bob@example.com>",
		"Call-ID: nb-1",
		"CSeq: 1 MESSAGE",
		"Content-Type: text/plain",
	)},
	{"Content-Length shorter than data", sipMsg("hello, and junk after it",
		"MESSAGE sip:bob@example.com SIP/2.0",
		"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-sh",
		"From: <sip:alice@example.com>;tag=sh",
		"To: <sip:bob@example.com>",
		"Call-ID: sh-1",
		"CSeq: 1 MESSAGE",
		"Content-Type: text/plain",
		"Content-Length: 5",
	)},
	{"Content-Length 0 with data after", sipMsg("\r\n",
		"SIP/2.0 200 OK",
		"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-z",
		"From: <sip:alice@example.com>;tag=z",
		"To: <sip:bob@example.com>;tag=y",
		"Call-ID: z-1",
		"CSeq: 1 OPTIONS",
		"Content-Length: 0",
	)},
	{"two Content-Lengths, the last one counts", sipMsg("abcdef",
		"MESSAGE sip:bob@example.com SIP/2.0",
		"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-2cl",
		"Content-Length: 6",
		"Call-ID: 2cl",
		"l: 3",
	)},
	{"generic header shapes", sipMsg("",
		"NOTIFY sip:bob@example.com SIP/2.0",
		"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-g",
		"Subject :  spaced around the colon  ",
		"X-Empty:",
		"X-Tab:\tvalue\t",
		"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS",
		"X-Colons: a:b:c",
		"x-lower-case: 1",
		"Supported: replaces, timer",
		"Subscription-State: active;expires=3600",
		"Call-ID: g-1",
		"CSeq: 4 NOTIFY",
		"Content-Length: 0",
	)},
	{"many headers and parameters", sipMsg("",
		"INVITE sip:bob@example.com;a=1;b=2;c=3;d=4;e=5 SIP/2.0",
		"Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-1;p1=1;p2=2;p3=3",
		"Via: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK-2;p1=1;p2=2;p3=3",
		"Via: SIP/2.0/UDP 10.0.0.3;branch=z9hG4bK-3;p1=1;p2=2;p3=3",
		"Via: SIP/2.0/UDP 10.0.0.3;branch=z9hG4bK-3;p1=1;p2=2;p3=3",
		"Route: <sip:r1.example.com;lr>, <sip:r2.example.com;lr>, <sip:r3.example.com;lr>, <sip:r4.example.com;lr>, <sip:r5.example.com;lr>",
		"From: <sip:alice@example.com;u1=1;u2=2>;tag=1;h1=1;h2=2",
		"To: <sip:bob@example.com>;x=1",
		"Record-Route: <sip:rr.example.com;lr>",
		"Record-Route: <sip:rr.example.com;lr>",
		"Route: <sip:r1.example.com;lr>",
		"From: <sip:alice@example.com;u1=1;u2=2>;tag=1;h1=1;h2=2",
		"To: <sip:bob@example.com>;x=1",
		"Contact: <sip:e@10.0.0.5>",
		"Contact: <sip:a@10.0.0.1>, <sip:b@10.0.0.2>, <sip:c@10.0.0.3>, <sip:d@10.0.0.4>, <sip:e@10.0.0.5>",
		"Call-ID: many-1",
		"Call-ID: many-2",
		"CSeq: 1 INVITE",
		"CSeq: 2 INVITE",
		"Max-Forwards: 70",
		"Max-Forwards: 69",
		"Content-Type: application/sdp",
		"Content-Type: text/plain",
		"Content-Length: 0",
		"Content-Length: 0",
		"X-1: 1",
		"X-2: 2",
	)},
	{"response reasons", sipMsg("",
		"SIP/2.0 603 Decline: not now, thanks ",
		"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-r",
		"Content-Length: 0",
	)},
	{"empty reason", sipMsg("",
		"SIP/2.0 200 ",
		"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-e",
	)},
	{"no headers at all", "OPTIONS sip:example.com SIP/2.0\r\n\r\n"},
	{"extension method", sipMsg("",
		"X-CUSTOM.METHOD sips:bob@example.com SIP/2.0",
		"Via: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bK-x",
		"CSeq: 1 X-CUSTOM.METHOD",
	)},
	{"Max-Forwards and CSeq limits", sipMsg("",
		"OPTIONS sip:example.com SIP/2.0",
		"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-lim",
		"Max-Forwards: 4294967295",
		"CSeq: 2147483647\tOPTIONS",
		"Content-Length: 000",
	)},
}

// parseRefused are messages the fast path must leave to sipgo.
var parseRefused = []struct{ name, raw string }{
	{"folded header line", sipMsg("",
		"OPTIONS sip:example.com SIP/2.0",
		"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-f",
		"Subject: a long",
		"  subject",
		"Content-Length: 0",
	)},
	{"folded with a tab", sipMsg("",
		"OPTIONS sip:example.com SIP/2.0",
		"Via: SIP/2.0/UDP 192.0.2.1;",
		"\tbranch=z9hG4bK-f",
	)},
	{"header line starting with a space", sipMsg("",
		"OPTIONS sip:example.com SIP/2.0",
		" Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-f",
	)},
	{"Refer-To", sipMsg("",
		"REFER sip:bob@example.com SIP/2.0",
		"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-r",
		"Refer-To: <sip:carol@example.com>",
	)},
	{"Referred-By", sipMsg("",
		"INVITE sip:carol@example.com SIP/2.0",
		"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-r",
		"referred-by: <sip:alice@example.com>",
	)},
	{"quoted Via parameter", sipMsg("",
		"OPTIONS sip:example.com SIP/2.0",
		`Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-q;x="a"`,
	)},
	{"Via with a space after the semicolon", sipMsg("",
		"OPTIONS sip:example.com SIP/2.0",
		"Via: SIP/2.0/UDP 192.0.2.1; branch=z9hG4bK-s",
	)},
	{"Via list whose first entry has no parameters", sipMsg("",
		"OPTIONS sip:example.com SIP/2.0",
		"Via: SIP/2.0/UDP 192.0.2.1:5060, SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK-2",
	)},
	{"Via list with a trailing comma", sipMsg("",
		"OPTIONS sip:example.com SIP/2.0",
		"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-1,",
	)},
	{"Via with an unbracketed IPv6 host", sipMsg("",
		"OPTIONS sip:example.com SIP/2.0",
		"Via: SIP/2.0/UDP ::ffff:192.0.2.7:5060;branch=z9hG4bK-6",
	)},
	{"Via port with a sign", sipMsg("",
		"OPTIONS sip:example.com SIP/2.0",
		"Via: SIP/2.0/UDP 192.0.2.1:+5060;branch=z9hG4bK-1",
	)},
	{"Via with a comment", sipMsg("",
		"OPTIONS sip:example.com SIP/2.0",
		"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-1 (proxy)",
	)},
	{"valueless URI parameter before headers", sipMsg("",
		"OPTIONS sip:example.com SIP/2.0",
		"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-1",
		"To: <sip:bob@example.com;lr?Subject=x>",
	)},
	{"empty URI parameter", sipMsg("",
		"OPTIONS sip:example.com;;lr SIP/2.0",
		"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-1",
	)},
	{"URI with slashes", sipMsg("",
		"OPTIONS sip://example.com SIP/2.0",
		"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-1",
	)},
	{"Content-Length beyond the data", sipMsg("short",
		"MESSAGE sip:bob@example.com SIP/2.0",
		"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-1",
		"Content-Length: 50",
	)},
	{"Content-Length not a number", sipMsg("",
		"OPTIONS sip:example.com SIP/2.0",
		"Content-Length: ten",
	)},
	{"no end of headers", "OPTIONS sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-1\r\n"},
	{"bare CR", "OPTIONS sip:example.com SIP/2.0\r\nSubject: a\rb\r\n\r\n"},
	{"LF line ends", "OPTIONS sip:example.com SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-1\n\n"},
	{"keep-alive", "\r\n\r\n"},
	{"lower-case method", sipMsg("", "invite sip:bob@example.com SIP/2.0", "Call-ID: x")},
	{"SIP/1.0", sipMsg("", "OPTIONS sip:bob@example.com SIP/1.0", "Call-ID: x")},
	{"two-digit status", sipMsg("", "SIP/2.0 20 OK", "Call-ID: x")},
	{"wildcard Request-URI", sipMsg("", "OPTIONS * SIP/2.0", "Call-ID: x")},
	{"reason starting like a version", sipMsg("", "SIP/2.0 200 SIPOK", "Call-ID: x")},
	{"space before a list comma in Contact", sipMsg("",
		"REGISTER sip:example.com SIP/2.0",
		"Contact: <sip:a@192.0.2.1> , <sip:b@192.0.2.2>",
	)},
	{"Contact list with an empty entry", sipMsg("",
		"REGISTER sip:example.com SIP/2.0",
		"Contact: <sip:a@192.0.2.1>,",
	)},
	{"Route with a display name", sipMsg("",
		"BYE sip:bob@example.com SIP/2.0",
		`Route: "edge" <sip:edge.example.com;lr>`,
	)},
	{"Route with header parameters", sipMsg("",
		"BYE sip:bob@example.com SIP/2.0",
		"Route: <sip:edge.example.com;lr>;x=1",
	)},
	{"Route list with an empty entry", sipMsg("",
		"BYE sip:bob@example.com SIP/2.0",
		"Route: <sip:edge.example.com;lr>,",
	)},
	{"Route without brackets", sipMsg("",
		"BYE sip:bob@example.com SIP/2.0",
		"Route: sip:edge.example.com;lr",
	)},
	{"wildcard From", sipMsg("",
		"OPTIONS sip:example.com SIP/2.0",
		"From: *",
	)},
	{"empty Call-ID", sipMsg("",
		"OPTIONS sip:example.com SIP/2.0",
		"Call-ID:",
	)},
	{"CSeq with two spaces", sipMsg("",
		"OPTIONS sip:example.com SIP/2.0",
		"CSeq: 1  OPTIONS",
	)},
	{"CSeq beyond 2**31-1", sipMsg("",
		"OPTIONS sip:example.com SIP/2.0",
		"CSeq: 2147483648 OPTIONS",
	)},
	{"Max-Forwards not a number", sipMsg("",
		"OPTIONS sip:example.com SIP/2.0",
		"Max-Forwards: seventy",
	)},
	{"header name with a space", sipMsg("",
		"OPTIONS sip:example.com SIP/2.0",
		"X Bad: 1",
	)},
	{"header line without colon", sipMsg("",
		"OPTIONS sip:example.com SIP/2.0",
		"Via SIP/2.0/UDP 192.0.2.1",
	)},
	{"To with a trailing semicolon", sipMsg("",
		"OPTIONS sip:example.com SIP/2.0",
		"To: <sip:bob@example.com>;",
	)},
	{"From with junk after the URI", sipMsg("",
		"OPTIONS sip:example.com SIP/2.0",
		"From: <sip:alice@example.com> junk;tag=1",
	)},
	{"header parameter with two '='", sipMsg("",
		"OPTIONS sip:example.com SIP/2.0",
		"From: <sip:alice@example.com>;tag=a=b",
	)},
	{"quoted header parameter with a ';'", sipMsg("",
		"OPTIONS sip:example.com SIP/2.0",
		`Contact: <sip:a@192.0.2.1>;x="a;b"`,
	)},
	{"message too large", sipMsg(strings.Repeat("x", 70000),
		"MESSAGE sip:bob@example.com SIP/2.0",
		"Content-Length: {len}",
	)},
}

func TestParseAccepted(t *testing.T) {
	for _, c := range parseAccepted {
		t.Run(c.name, func(t *testing.T) {
			if !parseCheck(t, []byte(c.raw)) {
				_, err := Parse([]byte(c.raw))
				t.Fatalf("refused: %v", err)
			}
		})
	}
}

func TestParseRefused(t *testing.T) {
	for _, c := range parseRefused {
		t.Run(c.name, func(t *testing.T) {
			if parseCheck(t, []byte(c.raw)) {
				t.Fatal("accepted a message the fast path should leave to sipgo")
			}
		})
	}
}

// TestParseCorpus runs the property on testdata/parse-*, inputs found by
// FuzzParse.
func TestParseCorpus(t *testing.T) {
	for name, data := range parseCorpus(t) {
		t.Run(name, func(t *testing.T) { parseCheck(t, data) })
	}
}

// TestParseSingleEdits runs the property on every message one edit away
// from an accepted one: each byte deleted, or replaced by a byte that
// matters to some part of the grammar. It walks the borders of what the
// fast path accepts more systematically than random mutation.
func TestParseSingleEdits(t *testing.T) {
	const specials = " \t;,:=<>\"@[]?&*/\\\nA0"
	edits, accepted := 0, 0
	for _, c := range parseAccepted {
		raw := []byte(c.raw)
		if testing.Short() && len(raw) > 400 {
			continue
		}
		buf := make([]byte, 0, len(raw))
		for i := range raw {
			buf = append(append(buf[:0], raw[:i]...), raw[i+1:]...)
			if parseCheck(t, buf) {
				accepted++
			}
			edits++
			for j := 0; j < len(specials); j++ {
				if raw[i] == specials[j] {
					continue
				}
				buf = append(buf[:0], raw...)
				buf[i] = specials[j]
				if parseCheck(t, buf) {
					accepted++
				}
				edits++
			}
		}
	}
	t.Logf("%d of %d edited messages accepted", accepted, edits)
}

// TestParseKnowsSipgoHeaders guards against a sipgo upgrade that types a
// header the fast path would take as generic.
func TestParseKnowsSipgoHeaders(t *testing.T) {
	for name := range sip.DefaultHeadersParser() {
		if headerKind(name) == kindGeneric {
			t.Errorf("sipgo parses %q but Parse takes it as a generic header", name)
		}
		if headerKind(strings.ToUpper(name)) != headerKind(name) {
			t.Errorf("%q is classified differently in upper case", name)
		}
	}
}

// TestParseSipgoCorpus runs the property on sipgo's own test messages:
// the RFC 4475 torture messages and its fuzz corpus.
func TestParseSipgoCorpus(t *testing.T) {
	dir := sipgoTestdata(t)
	files, _ := filepath.Glob(filepath.Join(dir, "torture", "*", "*.dat"))
	fuzz, _ := filepath.Glob(filepath.Join(dir, "fuzz", "*", "*"))
	if len(files) == 0 {
		t.Skip("sipgo's testdata not found")
	}
	accepted := 0
	for _, f := range append(files, fuzz...) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(f, string(filepath.Separator)+"fuzz"+string(filepath.Separator)) {
			if data = fuzzCorpusValue(data); data == nil {
				continue
			}
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			if parseCheck(t, data) {
				accepted++
			}
		})
	}
	t.Logf("%d of %d accepted", accepted, len(files)+len(fuzz))
}

// sipgoTestdata finds sipgo's sip/testdata from the location of its
// source, known to the runtime.
func sipgoTestdata(t *testing.T) string {
	pc := reflect.ValueOf(sip.ParseUri).Pointer()
	fn := runtime.FuncForPC(pc)
	if fn == nil {
		t.Skip("cannot locate sipgo's source")
	}
	file, _ := fn.FileLine(pc)
	return filepath.Join(filepath.Dir(file), "testdata")
}

// fuzzCorpusValue extracts the one string or []byte value of a file in Go's
// fuzz corpus format.
func fuzzCorpusValue(data []byte) []byte {
	for line := range strings.SplitSeq(string(data), "\n") {
		for _, prefix := range []string{"string(", "[]byte("} {
			if v, ok := strings.CutPrefix(line, prefix); ok {
				s, err := strconv.Unquote(strings.TrimSuffix(v, ")"))
				if err == nil {
					return []byte(s)
				}
			}
		}
	}
	return nil
}

// TestParseOwnsBody checks that the body does not share the read buffer,
// which the transport reuses.
func TestParseOwnsBody(t *testing.T) {
	data := []byte(parseSippInvite)
	msg, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	body := string(msg.Body())
	for i := range data {
		data[i] = 'x'
	}
	if string(msg.Body()) != body {
		t.Fatal("body changed with the read buffer")
	}
	if msg.CallID().Value() != "1-4242@127.0.0.1" {
		t.Fatal("header changed with the read buffer")
	}
}

// TestParseParamsAreSeparate checks that parameter lists sharing the
// arena do not overlap: adding to one leaves the next untouched.
func TestParseParamsAreSeparate(t *testing.T) {
	raw := sipMsg("",
		"OPTIONS sip:example.com SIP/2.0",
		"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-1",
		"From: <sip:alice@example.com>;tag=f",
		"To: <sip:bob@example.com>;tag=t",
	)
	msg, err := Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	msg.Via().Params.Add("received", "192.0.2.9")
	msg.From().Params.Add("x", "1")
	if got := msg.From().Params.String(); got != "tag=f&x=1" {
		t.Fatalf("From params %q", got)
	}
	if got := msg.To().Params.String(); got != "tag=t" {
		t.Fatalf("To params %q", got)
	}
	if got, _ := msg.Via().Params.Get("branch"); got != "z9hG4bK-1" {
		t.Fatalf("Via branch %q", got)
	}
}

// TestParseAllocations keeps the fast path fast: the SIPp INVITE costs
// the header string, the request with its header arena, the header list,
// one generic header (User-Agent), the body, and the Content-Length value
// SetBody always allocates.
func TestParseAllocations(t *testing.T) {
	data := []byte(parseSippInvite)
	n := testing.AllocsPerRun(100, func() {
		if _, err := Parse(data); err != nil {
			t.Fatal(err)
		}
	})
	if n > 6 {
		t.Fatalf("%v allocations per INVITE, want at most 6", n)
	}
	// A refusal at the first header costs the header string and the
	// request, not an error value.
	refused := []byte(sipMsg("", "OPTIONS sip:example.com SIP/2.0", "Via: SIP/2.0/UDP 192.0.2.1;", " branch=1"))
	n = testing.AllocsPerRun(100, func() {
		if _, err := Parse(refused); err == nil {
			t.Fatal("accepted")
		}
	})
	if n > 2 {
		t.Fatalf("%v allocations per refusal, want at most 2", n)
	}
}

func BenchmarkParse(b *testing.B) {
	for _, c := range []struct{ name, raw string }{
		{"INVITE", parseSippInvite},
		{"200", parseSipp200},
	} {
		data := []byte(c.raw)
		b.Run(c.name+"/sipwire", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := Parse(data); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/sipgo", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := parseReference.ParseSIP(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
