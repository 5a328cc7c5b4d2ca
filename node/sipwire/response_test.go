package sipwire

import (
	"reflect"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// responseSource is where the test's requests came from: the address an
// rport Via is answered with.
const responseSource = "192.0.2.7:5070"

// responseCodes cover each of sipgo's rules: 100 (Timestamp, no tag),
// 180–189 and 2xx (Record-Route), 183 and other 1xx to an INVITE
// (Record-Route for an early dialog), and finals that make no dialog.
var responseCodes = []struct {
	code   int
	reason string
}{
	{100, "Trying"}, {180, "Ringing"}, {183, "Session Progress"}, {199, "Early Dialog Terminated"},
	{200, "OK"}, {202, "Accepted"}, {302, "Moved Temporarily"}, {407, "Proxy Authentication Required"},
	{487, "Request Terminated"}, {503, "Service Unavailable"},
}

// responseRequests are the requests Response is checked on: every request
// in the parser's table, and some that exercise the rules it copies.
func responseRequests(t *testing.T) map[string]string {
	reqs := make(map[string]string)
	for _, c := range parseAccepted {
		if !strings.HasPrefix(c.raw, "SIP/2.0 ") {
			reqs[c.name] = c.raw
		}
	}
	reqs["INVITE with Record-Routes, Timestamp and two Vias"] = sipMsg("",
		"INVITE sip:bob@example.com;user=phone SIP/2.0",
		"Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK-edge-1;rport",
		"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-4242-1-0;received=127.0.0.1",
		"Record-Route: <sip:10.0.0.5:5060;lr>",
		"Record-Route: <sip:10.0.0.6;lr;ftag=x>",
		"Timestamp: 54.2 0.3",
		`From: "Alice" <sip:alice@example.com;user=phone?Subject=hi>;tag=a1;x-p`,
		"To: <sip:bob@example.com>;x=1",
		"Call-ID: 1-4242@127.0.0.1",
		"CSeq: 7 INVITE",
		"Max-Forwards: 69",
		"Content-Length: 0")
	reqs["REGISTER"] = sipMsg("",
		"REGISTER sip:example.com SIP/2.0",
		"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-r1;rport",
		"Record-Route: <sip:10.0.0.5:5060;lr>",
		"From: <sip:alice@example.com>;tag=r1",
		"To: <sip:alice@example.com>",
		"Call-ID: r1@127.0.0.1",
		"CSeq: 2 REGISTER",
		"Contact: <sip:alice@127.0.0.1:5061>",
		"Content-Length: 0")
	// More parameters than the arena holds: the copies go to the heap.
	many := make([]string, 20)
	for i := range many {
		many[i] = "p" + string(rune('a'+i)) + "=v"
	}
	reqs["BYE with many parameters"] = sipMsg("",
		"BYE sip:bob@127.0.0.1:5062 SIP/2.0",
		"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-b1;rport;"+strings.Join(many, ";"),
		"From: <sip:alice@example.com;"+strings.Join(many[:10], ";")+">;tag=a1;"+strings.Join(many, ";"),
		"To: <sip:bob@example.com>;tag=b1;"+strings.Join(many, ";"),
		"Call-ID: b1@127.0.0.1",
		"CSeq: 3 BYE",
		"Content-Length: 0")
	return reqs
}

// TestResponseMatchesSipgo asserts what defines Response: on a request
// parsed by either parser, it makes what sip.NewResponseFromRequest makes,
// with toTag put on as the B2BUA did (To's Add), and a random tag where
// sipgo draws one.
func TestResponseMatchesSipgo(t *testing.T) {
	for name, raw := range responseRequests(t) {
		for _, parser := range []string{"sipwire", "sipgo"} {
			for _, rc := range responseCodes {
				for _, tag := range []string{"", "leg-tag-1"} {
					req := responseParse(t, parser, raw)
					before := write(req)

					want := sip.NewResponseFromRequest(req, rc.code, rc.reason, nil)
					if tag != "" && want.To() != nil {
						want.To().Params.Add("tag", tag)
					}
					got := Response(req, rc.code, rc.reason, tag)

					if req.To() == nil {
						if !reflect.DeepEqual(got, want) {
							t.Fatalf("%s/%s %d: differs from sipgo:\n%s", name, parser, rc.code, parseDiff(got, want))
						}
						continue
					}
					wantTag, _ := want.To().Params.Get("tag")
					gotTag, _ := got.To().Params.Get("tag")
					if _, had := req.To().Params.Get("tag"); tag == "" && !had && rc.code != 100 {
						// Both drew a tag: different, and as long (a UUID).
						if gotTag == wantTag || len(gotTag) != len(wantTag) {
							t.Fatalf("%s/%s %d: random tag %q beside sipgo's %q", name, parser, rc.code, gotTag, wantTag)
						}
						got.To().Params.Add("tag", wantTag)
					}
					if !reflect.DeepEqual(got, want) {
						t.Fatalf("%s/%s %d tag %q: differs from sipgo:\n%s", name, parser, rc.code, tag, parseDiff(got, want))
					}
					if g, w := parseAccessorPositions(got), parseAccessorPositions(want); g != w {
						t.Fatalf("%s/%s %d: accessors at %v, sipgo's at %v", name, parser, rc.code, g, w)
					}
					if got.Destination() != responseSource {
						t.Fatalf("%s/%s %d: destination %q", name, parser, rc.code, got.Destination())
					}

					// The copies are the response's own.
					for _, h := range got.Headers() {
						switch h := h.(type) {
						case *sip.ViaHeader:
							h.Params.Add("branch", "changed")
							h.Params.Add("new", "1")
						case *sip.FromHeader:
							h.Params.Add("tag", "changed")
							h.Address.UriParams.Add("user", "changed")
							h.Address.Headers.Add("Subject", "changed")
						case *sip.ToHeader:
							h.Params.Add("new", "1")
							h.Address.UriParams.Add("new", "1")
						case *sip.CallIDHeader:
							*h = "changed"
						case *sip.CSeqHeader:
							h.SeqNo++
						}
					}
					if after := write(req); after != before {
						t.Fatalf("%s/%s %d: the request changed with its response:\n%q\n%q", name, parser, rc.code, before, after)
					}
				}
			}
		}
	}
}

func responseParse(t *testing.T, parser, raw string) *sip.Request {
	t.Helper()
	var msg sip.Message
	var err error
	if parser == "sipwire" {
		msg, err = Parse([]byte(raw))
	} else {
		msg, err = parseReference.ParseSIP([]byte(raw))
	}
	if err != nil {
		t.Fatalf("%s: %v\n%q", parser, err, raw)
	}
	req := msg.(*sip.Request)
	req.SetTransport("UDP")
	req.SetSource(responseSource)
	return req
}

// TestResponseAllocations: the response with the arena of copies, and its
// header list; sipgo's makes 17.
func TestResponseAllocations(t *testing.T) {
	req := responseParse(t, "sipwire", parseSippInvite)
	n := testing.AllocsPerRun(100, func() { Response(req, 180, "Ringing", "leg-tag-1") })
	if n > 2 {
		t.Fatalf("%v allocations per 180, want at most 2", n)
	}
}

func BenchmarkResponse(b *testing.B) {
	msg, err := Parse([]byte(parseSippInvite))
	if err != nil {
		b.Fatal(err)
	}
	req := msg.(*sip.Request)
	req.SetTransport("UDP")
	req.SetSource(responseSource)
	b.Run("sipwire", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			Response(req, 180, "Ringing", "leg-tag-1")
		}
	})
	b.Run("sipgo", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			res := sip.NewResponseFromRequest(req, 180, "Ringing", nil)
			res.To().Params.Add("tag", "leg-tag-1")
		}
	})
}
