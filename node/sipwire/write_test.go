package sipwire

import (
	"bytes"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// writeCases are messages in wire form that sipgo parses; Write must
// give back what sipgo's own writer gives for each.
var writeCases = []string{
	// A SIPp-style INVITE with SDP.
	"INVITE sip:bob@127.0.0.1:5060 SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1-0\r\n" +
		"From: sipp <sip:alice@127.0.0.1:5061>;tag=1SIPpTag001\r\n" +
		"To: bob <sip:bob@127.0.0.1:5060>\r\n" +
		"Call-ID: 1-4242@127.0.0.1\r\n" +
		"CSeq: 1 INVITE\r\n" +
		"Contact: sip:alice@127.0.0.1:5061\r\n" +
		"Max-Forwards: 70\r\n" +
		"Subject: Performance Test\r\n" +
		"Content-Type: application/sdp\r\n" +
		"Content-Length: 129\r\n\r\n" +
		"v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
	// A response with several Vias, Record-Routes, an IPv6 host and a
	// quoted display name.
	"SIP/2.0 180 Ringing\r\n" +
		"Via: SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKa;received=2001:db8::9;rport=5062\r\n" +
		"Via: SIP/2.0/TCP proxy.example.net;branch=z9hG4bKb\r\n" +
		"Record-Route: <sip:[2001:db8::2];lr>\r\n" +
		"Record-Route: <sip:10.0.0.1:5070;lr;transport=tcp>\r\n" +
		"From: \"Alice, A.\" <sip:alice@example.com>;tag=a1\r\n" +
		"To: <sip:bob@example.com;user=phone>;tag=b2\r\n" +
		"Call-ID: abc\r\n" +
		"CSeq: 4711 INVITE\r\n" +
		"Contact: <sip:bob@[2001:db8::3]:5080;transport=udp>;expires=60;+sip.instance=\"<urn:uuid:1>\"\r\n" +
		"Content-Length: 0\r\n\r\n",
	// A REGISTER with digest credentials, Expires and a URI with headers.
	"REGISTER sip:example.com SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bKr\r\n" +
		"From: <sip:alice@example.com>;tag=r1\r\n" +
		"To: <sip:alice@example.com>\r\n" +
		"Call-ID: reg-1\r\n" +
		"CSeq: 2 REGISTER\r\n" +
		"Contact: <sip:alice@192.0.2.1:5060?Subject=hi&Priority=urgent>\r\n" +
		"Expires: 3600\r\n" +
		"Authorization: Digest username=\"alice\", realm=\"example.com\", nonce=\"n\", uri=\"sip:example.com\", response=\"r\"\r\n" +
		"Max-Forwards: 70\r\n" +
		"Content-Length: 0\r\n\r\n",
	// REFER: Refer-To and Referred-By are sipgo types sipwire writes
	// through their own methods.
	"REFER sip:bob@192.0.2.2 SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKf\r\n" +
		"From: <sip:alice@example.com>;tag=f\r\n" +
		"To: <sip:bob@example.com>;tag=g\r\n" +
		"Call-ID: refer-1\r\n" +
		"CSeq: 9 REFER\r\n" +
		"Refer-To: <sip:carol@example.com?Replaces=abc%40host>\r\n" +
		"Referred-By: <sip:alice@example.com>\r\n" +
		"Content-Length: 0\r\n\r\n",
	// A tel URI, an IPv4-mapped IPv6 host, a wildcard Contact and Route.
	"REGISTER tel:+15551234567 SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP ::ffff:192.0.2.7:5060;branch=z9hG4bKt\r\n" +
		"Route: <sip:edge.example.com;lr>\r\n" +
		"From: <tel:+15551234567>;tag=t\r\n" +
		"To: <tel:+15551234567>\r\n" +
		"Call-ID: t\r\n" +
		"CSeq: 3 REGISTER\r\n" +
		"Contact: *\r\n" +
		"Expires: 0\r\n" +
		"Content-Length: 0\r\n\r\n",
}

func TestWriteMatchesSipgo(t *testing.T) {
	for i, raw := range writeCases {
		msg, err := sip.ParseMessage([]byte(raw))
		if err != nil {
			t.Fatalf("case %d: sipgo cannot parse it: %v", i, err)
		}
		assertSameAsSipgo(t, msg)
	}
}

// TestWriteBuiltMessages covers what a parser never makes but the node
// builds: a parameter value with a space (quoted on the wire), a URI
// without a scheme, a password, a zoned IPv6 host, a message without
// headers, an empty body and compact header names.
func TestWriteBuiltMessages(t *testing.T) {
	req := sip.NewRequest(sip.OPTIONS, sip.Uri{User: "u", Password: "pw", Host: "2001:db8::5", Port: 5060,
		UriParams: sip.HeaderParams{{K: "lr"}, {K: "x", V: "a b"}}})
	if got := write(req); got != req.String() {
		t.Fatalf("without headers:\n%q\nsipgo:\n%q", got, req.String())
	}
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: "fe80::1%eth0", Port: 5060,
		Params: sip.HeaderParams{{K: "branch", V: "z9hG4bK1"}, {K: "alias"}}}
	req.AppendHeader(via)
	req.AppendHeader(&sip.FromHeader{DisplayName: "A B", Address: sip.Uri{Scheme: "sips", Host: "example.com", HierarhicalSlashes: true},
		Params: sip.HeaderParams{{K: "tag", V: "1"}}})
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Host: "example.com"}})
	cseq := sip.CSeqHeader{SeqNo: 2147483647, MethodName: sip.OPTIONS}
	req.AppendHeader(&cseq)
	mf := sip.MaxForwardsHeader(0)
	req.AppendHeader(&mf)
	req.AppendHeader(sip.NewHeader("X-Empty", ""))
	req.SetBody([]byte{})
	assertSameAsSipgo(t, req)

	res := sip.NewResponseFromRequest(req, 503, "Service Unavailable", []byte("body"))
	assertSameAsSipgo(t, res)
	res.CompactHeaders = true
	assertSameAsSipgo(t, res)
}

func TestWriteAllocatesNothing(t *testing.T) {
	msg, err := sip.ParseMessage([]byte(writeCases[1]))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	Write(&buf, msg) // grow the buffer once
	allocs := testing.AllocsPerRun(100, func() {
		buf.Reset()
		Write(&buf, msg)
	})
	if allocs != 0 {
		t.Fatalf("Write allocated %.1f times per message", allocs)
	}
}

func FuzzWrite(f *testing.F) {
	for _, c := range writeCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := sip.ParseMessage(data)
		if err != nil {
			return
		}
		assertSameAsSipgo(t, msg)
	})
}

func assertSameAsSipgo(t *testing.T, msg sip.Message) {
	t.Helper()
	if got, want := write(msg), msg.String(); got != want {
		t.Fatalf("Write differs from sipgo:\n%q\nsipgo:\n%q", got, want)
	}
}

func write(msg sip.Message) string {
	var buf bytes.Buffer
	Write(&buf, msg)
	return buf.String()
}

func BenchmarkWrite(b *testing.B) {
	msg, err := sip.ParseMessage([]byte(writeCases[0]))
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	b.Run("sipwire", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf.Reset()
			Write(&buf, msg)
		}
	})
	b.Run("sipgo", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf.Reset()
			msg.StringWrite(&buf)
		}
	})
}
