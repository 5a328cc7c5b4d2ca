package sipedge

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// Test messages are written with LF line ends; wire turns them into CRLF.
func wire(s string) []byte {
	return []byte(strings.ReplaceAll(s, "\n", "\r\n"))
}

// parseReq parses raw (LF line ends) and fails the test unless it is a
// request sipgo accepts.
func parseReq(t testing.TB, raw string) *sip.Request {
	t.Helper()
	msg, err := sip.ParseMessage(wire(raw))
	if err != nil {
		t.Fatalf("sipgo does not parse the test message: %v\n%s", err, raw)
	}
	req, ok := msg.(*sip.Request)
	if !ok {
		t.Fatalf("not a request: %T", msg)
	}
	return req
}

// The node of these tests: edge.example.net or 192.0.2.10, port 5060.
func testSelf(host string, port int) bool {
	return (strings.EqualFold(host, "edge.example.net") || host == "192.0.2.10") && port == 5060
}

// options is a valid OPTIONS to the node.
const options = `OPTIONS sip:edge.example.net SIP/2.0
Via: SIP/2.0/UDP client.example.org:5060;branch=z9hG4bK776asdhds
Max-Forwards: 70
To: <sip:edge.example.net>
From: Alice <sip:alice@example.org>;tag=1928301774
Call-ID: a84b4c76e66710@client.example.org
CSeq: 63104 OPTIONS
Content-Length: 0

`

// invite is a valid INVITE the node would forward.
const invite = `INVITE sip:bob@example.net SIP/2.0
Via: SIP/2.0/UDP client.example.org:5060;branch=z9hG4bKnashds8
Max-Forwards: 70
To: Bob <sip:bob@example.net>
From: Alice <sip:alice@example.org>;tag=1928301774
Call-ID: 3848276298220188511@client.example.org
CSeq: 314159 INVITE
Contact: <sip:alice@client.example.org>
Content-Length: 0

`

// register is a valid REGISTER to the node.
const register = `REGISTER sip:example.net SIP/2.0
Via: SIP/2.0/TCP client.example.org:5060;branch=z9hG4bKnashds7
Max-Forwards: 70
To: <sip:alice@example.net>
From: <sip:alice@example.net>;tag=456248
Call-ID: 843817637684230@client.example.org
CSeq: 1826 REGISTER
Contact: <sip:alice@192.0.2.4>
Expires: 7200
Content-Length: 0

`

// edit returns msg with the first line starting with prefix replaced by
// line, or removed when line is empty.
func edit(msg, prefix, line string) string {
	lines := strings.Split(msg, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, prefix) {
			if line == "" {
				return strings.Join(append(lines[:i:i], lines[i+1:]...), "\n")
			}
			lines[i] = line
			return strings.Join(lines, "\n")
		}
	}
	panic("no line starting with " + prefix)
}

// insert returns msg with line added after the start line.
func insert(msg, line string) string {
	first, rest, _ := strings.Cut(msg, "\n")
	return first + "\n" + line + "\n" + rest
}

type checkCase struct {
	name        string
	raw         string              // parsed with sipgo, or
	req         func() *sip.Request // built in code
	cfg         *CheckConfig        // nil: testConfig
	code        int                 // 0: acceptable
	reason      string              // checked when code != 0
	unsupported string              // expected Unsupported header value
	check       func(*testing.T, *sip.Request, *Rejection)
}

func testConfig() CheckConfig {
	return CheckConfig{Supported: []string{"timer", "path"}, Self: testSelf}
}

func runCheckCases(t *testing.T, cases []checkCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var req *sip.Request
			if tc.req != nil {
				req = tc.req()
			} else {
				req = parseReq(t, tc.raw)
			}
			cfg := testConfig()
			if tc.cfg != nil {
				cfg = *tc.cfg
			}
			var before string
			if req != nil {
				before = req.String()
			}
			rej := CheckRequest(req, cfg)
			if req != nil && req.String() != before {
				t.Errorf("CheckRequest modified the request:\n%s\nbecame\n%s", before, req.String())
			}
			if tc.code == 0 {
				if rej != nil {
					t.Fatalf("rejected with %d %q, want acceptable", rej.Code, rej.Reason)
				}
				return
			}
			if rej == nil {
				t.Fatalf("accepted, want %d %q", tc.code, tc.reason)
			}
			if rej.Code != tc.code || rej.Reason != tc.reason {
				t.Errorf("got %d %q, want %d %q", rej.Code, rej.Reason, tc.code, tc.reason)
			}
			if got := SanitizeReason(rej.Reason); got != rej.Reason {
				t.Errorf("reason %q is not stable under SanitizeReason (%q)", rej.Reason, got)
			}
			var unsupported string
			for _, h := range rej.Header {
				if h.Name() == "Unsupported" {
					unsupported = h.Value()
				}
			}
			if unsupported != tc.unsupported {
				t.Errorf("Unsupported = %q, want %q", unsupported, tc.unsupported)
			}
			if tc.check != nil {
				tc.check(t, req, rej)
			}
		})
	}
}

func TestCheckRequestAcceptable(t *testing.T) {
	runCheckCases(t, []checkCase{
		{name: "OPTIONS", raw: options},
		{name: "INVITE", raw: invite},
		{name: "REGISTER", raw: register},
		{name: "built with NewRequest", req: func() *sip.Request { return buildRequest(sip.MESSAGE, "bob") }},
		{
			// RFC 3261 §7.1: the SIP-Version string is case-insensitive.
			name: "lower-case version",
			raw:  edit(options, "OPTIONS ", "OPTIONS sip:edge.example.net sip/2.0"),
		},
		{
			// RFC 4475 §3.4.1 style: RFC 2543 request without Max-Forwards,
			// From tag or branch (§16.3 item 3 passes a missing Max-Forwards).
			name: "RFC 2543 INVITE",
			raw: `INVITE sip:UserB@example.net SIP/2.0
Via: SIP/2.0/UDP gw.example.com
From: <sip:+13035551111@gw.example.com;user=phone>
To: sip:+16505552222@example.net;user=phone
Call-ID: rfc2543.1717@gw.example.com
CSeq: 56 INVITE
Content-Length: 0

`,
		},
		{
			// RFC 4475 §3.1.1.2: a method may use every token character and
			// mixed case; sipgo upper-cases the Request-Line copy only.
			name: "unusual method in mixed case",
			raw: edit(edit(options, "OPTIONS ", "!interesting-Method0123456789_*+`.%indeed'~ sip:edge.example.net SIP/2.0"),
				"CSeq:", "CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~"),
		},
		{
			// sipgo keeps the LWS after the first SP in the CSeq method.
			name: "extra LWS in CSeq",
			raw:  edit(options, "CSeq:", "CSeq: 63104 \t OPTIONS"),
		},
		{
			name: "compact header names",
			raw: `OPTIONS sip:edge.example.net SIP/2.0
v: SIP/2.0/UDP client.example.org;branch=z9hG4bK776asdhds
t: <sip:edge.example.net>
f: <sip:alice@example.org>;tag=1928301774
i: compact@client.example.org
CSeq: 1 OPTIONS
l: 0

`,
		},
		{
			// RFC 4475 §3.3.4: unknown schemes in To and From are no reason
			// to refuse (§8.2.2.1 concerns the Request-URI).
			name: "unknown schemes in To and From",
			raw: edit(edit(register, "To:", "To: isbn:2983792873"),
				"From:", "From: <http://www.example.com>;tag=3234233"),
		},
		{
			name: "sips accepted when configured",
			raw:  edit(options, "OPTIONS ", "OPTIONS sips:edge.example.net SIP/2.0"),
			cfg:  &CheckConfig{Schemes: []string{"sip", "sips"}},
		},
		{
			name: "scheme compared case-insensitively",
			req: func() *sip.Request {
				r := buildRequest(sip.OPTIONS, "")
				r.Recipient.Scheme = "SIP"
				return r
			},
		},
		{
			name: "empty scheme is sip",
			req: func() *sip.Request {
				r := buildRequest(sip.OPTIONS, "")
				r.Recipient.Scheme = ""
				return r
			},
		},
		{
			name: "body with matching Content-Length",
			req: func() *sip.Request {
				r := buildRequest(sip.MESSAGE, "bob")
				r.SetBody([]byte("hello"))
				return r
			},
		},
	})
}

// buildRequest builds a valid request with sip.NewRequest. An empty user
// addresses the node itself.
func buildRequest(method sip.RequestMethod, user string) *sip.Request {
	req := sip.NewRequest(method, sip.Uri{Scheme: "sip", User: user, Host: "edge.example.net"})
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: "client.example.org", Port: 5062}
	via.Params.Add("branch", "z9hG4bKbuilt1")
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: "example.org"}}
	from.Params.Add("tag", "f1")
	to := &sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: "edge.example.net"}}
	callID := sip.CallIDHeader("built@client.example.org")
	maxFwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(via)
	req.AppendHeader(&maxFwd)
	req.AppendHeader(to)
	req.AppendHeader(from)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: method})
	return req
}

func TestCheckRequestVersion(t *testing.T) {
	runCheckCases(t, []checkCase{
		{
			// RFC 4475 §3.1.2.16.
			name: "SIP/7.0",
			raw: `OPTIONS sip:t.watson@example.org SIP/7.0
Via:     SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw
Max-Forwards:     70
From:    A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe
To:      T. Watson <sip:t.watson@example.org>
Call-ID: badvers.31417@c.example.com
CSeq:    1 OPTIONS
l: 0

`,
			code:   505,
			reason: "Version Not Supported",
		},
		{
			name:   "SIP/2.00 is another version",
			raw:    edit(options, "OPTIONS ", "OPTIONS sip:edge.example.net SIP/2.00"),
			code:   505,
			reason: "Version Not Supported",
		},
		{
			// sipgo accepts any third word that starts with "SIP".
			name:   "not a version",
			raw:    edit(options, "OPTIONS ", "OPTIONS sip:edge.example.net SIPPY"),
			code:   400,
			reason: "Malformed SIP-Version",
		},
		{
			name:   "version checked before headers",
			raw:    "OPTIONS sip:edge.example.net SIP/3.0\n\n",
			code:   505,
			reason: "Version Not Supported",
		},
		{
			name:   "method not a token",
			raw:    edit(edit(options, "OPTIONS ", "OPT@ONS sip:edge.example.net SIP/2.0"), "CSeq:", "CSeq: 1 OPT@ONS"),
			code:   400,
			reason: "Malformed method",
		},
	})
}

func TestCheckRequestHeaders(t *testing.T) {
	cases := []checkCase{
		{
			// RFC 4475 §3.3.1: no To, From, Call-ID or Max-Forwards.
			name: "insufficient headers",
			raw: `INVITE sip:user@example.com SIP/2.0
CSeq: 193942 INVITE
Via: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf
Content-Length: 0

`,
			code:   400,
			reason: "Missing To header",
		},
		{
			name:   "no headers at all",
			raw:    "OPTIONS sip:edge.example.net SIP/2.0\n\n",
			code:   400,
			reason: "Missing To header",
		},
		{
			// RFC 4475 §3.3.8.
			name: "multiple single-valued headers",
			raw: `INVITE sip:user@company.com SIP/2.0
Contact: <sip:caller@host25.example.net>
Via: SIP/2.0/UDP 192.0.2.25;branch=z9hG4bKkdjuw
Max-Forwards: 70
CSeq: 5 INVITE
Call-ID: multi01.98asdh@192.0.2.1
CSeq: 59 INVITE
Call-ID: multi01.98asdh@192.0.2.2
From: sip:caller@example.com;tag=3413415
To: sip:user@example.com
To: sip:other@example.net
From: sip:caller@example.net;tag=2923420123
Content-Length: 0
Max-Forwards: 5

`,
			code:   400,
			reason: "Multiple To headers",
		},
		{
			name:   "multiple CSeq",
			raw:    insert(options, "CSeq: 63104 OPTIONS"),
			code:   400,
			reason: "Multiple CSeq headers",
		},
		{
			name:   "multiple Max-Forwards",
			raw:    insert(options, "Max-Forwards: 3"),
			code:   400,
			reason: "Multiple Max-Forwards headers",
		},
		{
			// RFC 4475 §3.3.9: sipgo frames by the last Content-Length.
			name: "multiple Content-Length",
			raw: `OPTIONS sip:user@example.com SIP/2.0
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK293423
To: sip:user@example.com
From: sip:other@example.net;tag=3923942
Call-ID: mcl01.fhn2323orihawfdoa3o4r52o3irsdf
CSeq: 15932 OPTIONS
Content-Length: 13
Max-Forwards: 60
Content-Length: 5
Content-Type: text/plain

There's no way to know how many octets are supposed to be here.
`,
			code:   400,
			reason: "Multiple Content-Length headers",
		},
		{
			// sipgo drops the host and the parameters of a Via whose port
			// does not parse.
			name:   "Via without host",
			raw:    edit(options, "Via:", "Via: SIP/2.0/UDP client.example.org:port;branch=z9hG4bK776asdhds"),
			code:   400,
			reason: "Malformed Via header",
		},
		{
			name: "Content-Length larger than body",
			req: func() *sip.Request {
				r := buildRequest(sip.MESSAGE, "bob")
				cl := sip.ContentLengthHeader(10)
				r.AppendHeader(&cl)
				return r
			},
			code:   400,
			reason: "Content-Length mismatch",
		},
		{
			name: "Content-Length smaller than body",
			req: func() *sip.Request {
				r := buildRequest(sip.MESSAGE, "bob")
				r.SetBody([]byte("hello"))
				*r.ContentLength() = 2
				return r
			},
			code:   400,
			reason: "Content-Length mismatch",
		},
		{
			name:   "nil request",
			req:    func() *sip.Request { return nil },
			code:   400,
			reason: "Malformed request",
		},
	}
	for _, h := range []struct{ name, line, bad string }{
		{"To", "To:", "<sip:unclosed"},
		{"From", "From:", "garbage"},
		{"Call-ID", "Call-ID:", ""},
		{"CSeq", "CSeq:", "one OPTIONS"},
		{"Via", "Via:", "garbage"},
	} {
		cases = append(cases, checkCase{
			name:   "missing " + h.name,
			raw:    edit(options, h.line, ""),
			code:   400,
			reason: "Missing " + h.name + " header",
		})
		// A row sipgo holds as a generic header, which its accessors fail
		// to parse lazily: what a lenient header parser produces for a bad
		// value, or code that used sip.NewHeader.
		cases = append(cases, checkCase{
			name: "malformed " + h.name,
			req: func() *sip.Request {
				r := parseReq(t, edit(options, h.line, ""))
				r.AppendHeader(sip.NewHeader(h.name, h.bad))
				return r
			},
			code:   400,
			reason: "Malformed " + h.name + " header",
		})
	}
	cases = append(cases,
		checkCase{
			name: "malformed compact To",
			req: func() *sip.Request {
				r := parseReq(t, edit(options, "To:", ""))
				r.AppendHeader(sip.NewHeader("t", "garbage"))
				return r
			},
			code:   400,
			reason: "Malformed To header",
		},
		checkCase{
			name: "second To that does not parse",
			req: func() *sip.Request {
				r := parseReq(t, options)
				r.AppendHeader(sip.NewHeader("t", "<sip:unclosed"))
				return r
			},
			code:   400,
			reason: "Multiple To headers",
		},
		checkCase{
			name: "malformed Max-Forwards",
			req: func() *sip.Request {
				r := parseReq(t, edit(options, "Max-Forwards:", ""))
				r.AppendHeader(sip.NewHeader("Max-Forwards", "seventy"))
				return r
			},
			code:   400,
			reason: "Malformed Max-Forwards header",
		},
	)
	runCheckCases(t, cases)
}

func TestCheckRequestCSeq(t *testing.T) {
	runCheckCases(t, []checkCase{
		{
			// RFC 4475 §3.1.2.17.
			name: "start line and CSeq method mismatch",
			raw: `OPTIONS sip:user@example.com SIP/2.0
To: sip:j.user@example.com
From: sip:caller@example.net;tag=34525
Max-Forwards: 6
Call-ID: mismatch01.dj0234sxdfl3
CSeq: 8 INVITE
Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw
l: 0

`,
			code:   400,
			reason: "CSeq method mismatch",
		},
		{
			// RFC 4475 §3.1.2.18 (501 would be acceptable too).
			name: "unknown method with CSeq mismatch",
			raw: `NEWMETHOD sip:user@example.com SIP/2.0
To: sip:j.user@example.com
From: sip:caller@example.net;tag=34525
Max-Forwards: 6
Call-ID: mismatch02.dj0234sxdfl3
CSeq: 8 INVITE
Via: SIP/2.0/UDP host.example.net;branch=z9hG4bKkdjuw
l: 0

`,
			code:   400,
			reason: "CSeq method mismatch",
		},
		{
			// §17.1.1.3: the CSeq method of an ACK is ACK.
			name:   "ACK with the INVITE's CSeq method",
			raw:    edit(edit(invite, "INVITE ", "ACK sip:bob@example.net SIP/2.0"), "CSeq:", "CSeq: 314159 INVITE"),
			code:   400,
			reason: "CSeq method mismatch",
			check: func(t *testing.T, req *sip.Request, rej *Rejection) {
				if res := rej.Response(req); res != nil {
					t.Errorf("an ACK got a response: %s", res.StartLine())
				}
			},
		},
		{
			// §9.1: the CSeq method of a CANCEL is CANCEL.
			name: "CANCEL",
			raw:  edit(edit(invite, "INVITE ", "CANCEL sip:bob@example.net SIP/2.0"), "CSeq:", "CSeq: 314159 CANCEL"),
		},
		{
			name:   "trailing garbage in CSeq",
			raw:    edit(options, "CSeq:", "CSeq: 63104 OPTIONS extra"),
			code:   400,
			reason: "CSeq method mismatch",
		},
		{
			name: "CSeq number 2**31",
			req: func() *sip.Request {
				r := buildRequest(sip.OPTIONS, "")
				r.CSeq().SeqNo = 1 << 31
				return r
			},
			code:   400,
			reason: "Invalid CSeq number",
		},
		{
			name: "CSeq number 2**31-1",
			req: func() *sip.Request {
				r := buildRequest(sip.OPTIONS, "")
				r.CSeq().SeqNo = 1<<31 - 1
				return r
			},
		},
	})
}

func TestCheckRequestScheme(t *testing.T) {
	runCheckCases(t, []checkCase{
		{
			// RFC 4475 §3.3.2.
			name: "unknown scheme",
			raw: `OPTIONS nobodyKnowsThisScheme:totallyopaquecontent SIP/2.0
To: sip:user@example.com
From: sip:caller@example.net;tag=384
Max-Forwards: 3
Call-ID: unkscm.nasdfasser0q239nwsdfasdkl34
CSeq: 3923423 OPTIONS
Via: SIP/2.0/TCP host9.example.com;branch=z9hG4bKkdjuw39234
Content-Length: 0

`,
			code:   416,
			reason: "Unsupported URI Scheme",
		},
		{
			name:   "tel",
			raw:    edit(invite, "INVITE ", "INVITE tel:+15551234567 SIP/2.0"),
			code:   416,
			reason: "Unsupported URI Scheme",
		},
		{
			name:   "sips not accepted by default",
			raw:    edit(options, "OPTIONS ", "OPTIONS sips:edge.example.net SIP/2.0"),
			code:   416,
			reason: "Unsupported URI Scheme",
		},
		{
			name:   "configured schemes replace the default",
			raw:    options,
			cfg:    &CheckConfig{Schemes: []string{"sips"}},
			code:   416,
			reason: "Unsupported URI Scheme",
		},
		{
			name:   "scheme checked before Max-Forwards",
			raw:    edit(edit(invite, "INVITE ", "INVITE tel:+15551234567 SIP/2.0"), "Max-Forwards:", "Max-Forwards: 0"),
			code:   416,
			reason: "Unsupported URI Scheme",
		},
	})
}

func TestCheckRequestMaxForwards(t *testing.T) {
	zero := func(msg string) string { return edit(msg, "Max-Forwards:", "Max-Forwards: 0") }
	runCheckCases(t, []checkCase{
		{name: "forwarded INVITE", raw: zero(invite), code: 483, reason: "Too Many Hops"},
		{
			name:   "forwarded CANCEL",
			raw:    zero(edit(edit(invite, "INVITE ", "CANCEL sip:bob@example.net SIP/2.0"), "CSeq:", "CSeq: 314159 CANCEL")),
			code:   483,
			reason: "Too Many Hops",
		},
		// RFC 4475 §3.3.11; §16.3 item 3 lets the element answer OPTIONS.
		{name: "OPTIONS answered here", raw: zero(options)},
		{name: "REGISTER answered here", raw: zero(register)},
		{
			name: "OPTIONS the node forwards",
			raw:  zero(options),
			cfg: &CheckConfig{Local: func(r *sip.Request) bool {
				return r.Recipient.User == ""
			}},
		},
		{
			name:   "OPTIONS to a user the node forwards",
			raw:    zero(edit(options, "OPTIONS ", "OPTIONS sip:bob@example.net SIP/2.0")),
			cfg:    &CheckConfig{Local: func(r *sip.Request) bool { return r.Recipient.User == "" }},
			code:   483,
			reason: "Too Many Hops",
		},
		{
			name: "INVITE answered here",
			raw:  zero(invite),
			cfg:  &CheckConfig{Local: func(*sip.Request) bool { return true }},
		},
		{name: "Max-Forwards 1", raw: edit(invite, "Max-Forwards:", "Max-Forwards: 1")},
		{name: "no Max-Forwards", raw: edit(invite, "Max-Forwards:", "")},
		{
			name:   "ACK is rejected but not answered",
			raw:    zero(edit(edit(invite, "INVITE ", "ACK sip:bob@example.net SIP/2.0"), "CSeq:", "CSeq: 314159 ACK")),
			code:   483,
			reason: "Too Many Hops",
			check: func(t *testing.T, req *sip.Request, rej *Rejection) {
				if res := rej.Response(req); res != nil {
					t.Errorf("an ACK got a response: %s", res.StartLine())
				}
			},
		},
	})
}

func TestCheckRequestRequire(t *testing.T) {
	local := &CheckConfig{Supported: []string{"timer", "path"}, Local: func(*sip.Request) bool { return true }}
	runCheckCases(t, []checkCase{
		{
			// RFC 4475 §3.3.5.
			name: "unknown extensions",
			raw: `OPTIONS sip:user@example.com SIP/2.0
To: sip:j_user@example.com
From: sip:caller@example.net;tag=242etr
Max-Forwards: 6
Call-ID: bext01.0ha0isndaksdj
Require: nothingSupportsThis, nothingSupportsThisEither
Proxy-Require: noProxiesSupportThis, norDoAnyProxiesSupportThis
CSeq: 8 OPTIONS
Via: SIP/2.0/TLS fold-and-staple.example.com;branch=z9hG4bKkdjuw
Content-Length: 0

`,
			code:        420,
			reason:      "Bad Extension",
			unsupported: "nothingSupportsThis, nothingSupportsThisEither",
			check: func(t *testing.T, req *sip.Request, rej *Rejection) {
				res := rej.Response(req)
				if res == nil {
					t.Fatal("no response")
				}
				if res.StatusCode != 420 || res.Reason != "Bad Extension" {
					t.Errorf("response %d %q", res.StatusCode, res.Reason)
				}
				if h := res.GetHeader("Unsupported"); h == nil || h.Value() != "nothingSupportsThis, nothingSupportsThisEither" {
					t.Errorf("response Unsupported = %v", h)
				}
				if res.CSeq() == nil || res.CallID() == nil || res.Via() == nil {
					t.Errorf("response lacks the request's CSeq, Call-ID or Via:\n%s", res)
				}
			},
		},
		{
			name: "supported, case-insensitively",
			raw:  insert(register, "Require: Timer,path"),
		},
		{
			name:        "only the unsupported ones, once each",
			raw:         insert(insert(register, "Require: timer, 100rel"), "require: gruu,100REL ,, path"),
			code:        420,
			reason:      "Bad Extension",
			unsupported: "gruu, 100REL",
		},
		{
			name:   "not a token",
			raw:    insert(register, "Require: timer, 100rel/2"),
			code:   400,
			reason: "Malformed Require header",
		},
		{
			name:   "over-long tag",
			raw:    insert(register, "Require: "+strings.Repeat("x", maxOptionTag+1)),
			code:   400,
			reason: "Malformed Require header",
		},
		{
			name:        "longest tag",
			raw:         insert(register, "Require: "+strings.Repeat("x", maxOptionTag)),
			code:        420,
			reason:      "Bad Extension",
			unsupported: strings.Repeat("x", maxOptionTag),
		},
		{
			name:        "at most 16 tags listed",
			raw:         insert(register, "Require: a1,a2,a3,a4,a5,a6,a7,a8,a9,a10,a11,a12,a13,a14,a15,a16,a17,a18"),
			code:        420,
			reason:      "Bad Extension",
			unsupported: "a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15, a16",
		},
		{name: "empty Require", raw: insert(register, "Require: ")},
		{
			name:        "nothing supported by default",
			raw:         insert(register, "Require: timer"),
			cfg:         &CheckConfig{},
			code:        420,
			reason:      "Bad Extension",
			unsupported: "timer",
		},
		{
			// §20.32: proxies ignore Require.
			name: "forwarded request",
			raw:  insert(invite, "Require: 100rel"),
		},
		{
			name:        "request answered here",
			raw:         insert(invite, "Require: 100rel"),
			cfg:         local,
			code:        420,
			reason:      "Bad Extension",
			unsupported: "100rel",
		},
		{
			// §8.2.2.3: ignored in CANCEL and ACK.
			name: "CANCEL",
			raw:  insert(edit(edit(invite, "INVITE ", "CANCEL sip:bob@example.net SIP/2.0"), "CSeq:", "CSeq: 314159 CANCEL"), "Require: 100rel"),
			cfg:  local,
		},
		{
			name: "ACK",
			raw:  insert(edit(edit(invite, "INVITE ", "ACK sip:bob@example.net SIP/2.0"), "CSeq:", "CSeq: 314159 ACK"), "Require: 100rel"),
			cfg:  local,
		},
	})
}

// forwarded returns received as it arrives back at the node after the node
// forwarded it with branch and the next hop forwarded it on.
func forwarded(received *sip.Request, ourVia *sip.ViaHeader) *sip.Request {
	r := received.Clone()
	next := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: "proxy.example.com"}
	next.Params.Add("branch", "z9hG4bKnext1")
	r.PrependHeader(next, ourVia)
	return r
}

func ourVia(branch string, port int) *sip.ViaHeader {
	v := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: "edge.example.net", Port: port}
	v.Params.Add("branch", branch)
	return v
}

func TestCheckRequestLoop(t *testing.T) {
	received := parseReq(t, invite)
	branch := LoopBranch(received)
	if !strings.HasPrefix(branch, sip.RFC3261BranchMagicCookie) {
		t.Fatalf("branch %q lacks the magic cookie", branch)
	}
	if v, ok := branchLoopValue(branch); !ok || v != loopValue(received, received.Via()) {
		t.Fatalf("branch %q does not carry the loop value", branch)
	}
	if LoopBranch(received) == branch {
		t.Fatal("LoopBranch repeats itself")
	}

	runCheckCases(t, []checkCase{
		{
			name:   "came back unchanged",
			req:    func() *sip.Request { return forwarded(received, ourVia(branch, 5060)) },
			code:   482,
			reason: "Loop Detected",
		},
		{
			name:   "came back, default port",
			req:    func() *sip.Request { return forwarded(received, ourVia(branch, 0)) },
			code:   482,
			reason: "Loop Detected",
		},
		{
			name:   "sent to itself",
			req:    func() *sip.Request { r := received.Clone(); r.PrependHeader(ourVia(branch, 5060)); return r },
			code:   482,
			reason: "Loop Detected",
		},
		{
			// A proxy on the way (sipgo's client among them) adds received
			// and rport to the Via below ours.
			name: "came back with received and rport added",
			req: func() *sip.Request {
				r := forwarded(received, ourVia(branch, 5060))
				vias := r.GetHeaders("Via")
				prev := vias[len(vias)-1].(*sip.ViaHeader)
				prev.Params.Add("received", "198.51.100.7")
				prev.Params.Add("rport", "5062")
				return r
			},
			code:   482,
			reason: "Loop Detected",
		},
		{
			name: "spiral: retargeted",
			req: func() *sip.Request {
				r := forwarded(received, ourVia(branch, 5060))
				r.Recipient.User = "bob-mobile"
				return r
			},
		},
		{
			name: "spiral: routed",
			req: func() *sip.Request {
				r := forwarded(received, ourVia(branch, 5060))
				r.AppendHeader(&sip.RouteHeader{Address: sip.Uri{Scheme: "sip", Host: "edge.example.net", UriParams: sip.HeaderParams{{K: "lr", V: ""}}}})
				return r
			},
		},
		{
			name: "spiral, then loop",
			req: func() *sip.Request {
				r := forwarded(received, ourVia(branch, 5060))
				r.Recipient.User = "bob-mobile"
				second := LoopBranch(r)
				return forwarded(r, ourVia(second, 5060))
			},
			code:   482,
			reason: "Loop Detected",
		},
		{
			name: "spiral twice",
			req: func() *sip.Request {
				r := forwarded(received, ourVia(branch, 5060))
				r.Recipient.User = "bob-mobile"
				second := LoopBranch(r)
				r = forwarded(r, ourVia(second, 5060))
				r.Recipient.User = "bob-desk"
				return r
			},
		},
		{
			name:   "our Via without loop value",
			req:    func() *sip.Request { return forwarded(received, ourVia(sip.GenerateBranch(), 5060)) },
			code:   482,
			reason: "Loop Detected",
		},
		{
			name:   "our Via with a forged loop value",
			req:    func() *sip.Request { return forwarded(received, ourVia("z9hG4bKx.lp0123456789abcdeF", 5060)) },
			code:   482,
			reason: "Loop Detected",
		},
		{
			name:   "by IP address, in a comma-separated Via",
			raw:    edit(invite, "Via:", "Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKnext1, SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKold"),
			code:   482,
			reason: "Loop Detected",
		},
		{
			name: "another port of the same host",
			req:  func() *sip.Request { return forwarded(received, ourVia(branch, 5070)) },
		},
		{
			name: "no Self",
			req:  func() *sip.Request { return forwarded(received, ourVia(branch, 5060)) },
			cfg:  &CheckConfig{},
		},
		{
			// §9.1: a CANCEL carries the Via of the INVITE it cancels.
			name: "CANCEL",
			req: func() *sip.Request {
				r := buildRequest(sip.CANCEL, "bob")
				r.RemoveHeader("Via")
				r.AppendHeader(ourVia(sip.GenerateBranch(), 5060))
				return r
			},
		},
	})
}

func TestRejectionResponse(t *testing.T) {
	req := parseReq(t, options)
	rej := &Rejection{Code: 420, Reason: "Bad\r\nExtension", Header: []sip.Header{sip.NewHeader("Unsupported", "foo"), nil}}
	res := rej.Response(req)
	if res.StatusCode != 420 || res.Reason != "Bad Extension" {
		t.Errorf("got %d %q", res.StatusCode, res.Reason)
	}
	if h := res.GetHeader("Unsupported"); h == nil || h.Value() != "foo" {
		t.Errorf("Unsupported = %v", h)
	}
	if res.CSeq().Value() != "63104 OPTIONS" || res.CallID().Value() != "a84b4c76e66710@client.example.org" {
		t.Errorf("response does not match the request:\n%s", res)
	}
	if tag, _ := res.To().Params.Get("tag"); tag == "" {
		t.Error("final response without To tag (RFC 3261 §8.2.6.2)")
	}
	var nilRej *Rejection
	if nilRej.Response(req) != nil || rej.Response(nil) != nil {
		t.Error("response for nil")
	}

	// RFC 4475 §3.1.2.16: the 505 is a SIP/2.0 response.
	req = parseReq(t, edit(options, "OPTIONS ", "OPTIONS sip:edge.example.net SIP/7.0"))
	rej = CheckRequest(req, CheckConfig{})
	if rej == nil || rej.Code != 505 {
		t.Fatalf("got %v, want 505", rej)
	}
	if line := rej.Response(req).StartLine(); line != "SIP/2.0 505 Version Not Supported" {
		t.Errorf("status line %q", line)
	}
}

func TestSanitizeReason(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"Not Found", "Not Found"},
		{"Bad\r\nInjected: header", "Bad Injected: header"},
		{"  lots \t of\x00space  ", "lots of space"},
		{"\r\n", ""},
		{`say "hi" <there> [x] {y} a\b|c`, "say 'hi' (there) (x) (y) a/b/c"},
		{"100% #1 ^", "100? ?1 ?"},
		{"grüße", "gr??e"},
		{"bad utf8 \xff\xfe", "bad utf8 ??"},
		{"del\x7fchar", "del char"},
		{strings.Repeat("a", 100), strings.Repeat("a", 80)},
		{strings.Repeat("a", 79) + " b", strings.Repeat("a", 79)},
		{strings.Repeat("a", 78) + " b", strings.Repeat("a", 78) + " b"},
		{"Loop Detected", "Loop Detected"},
	} {
		if got := SanitizeReason(tc.in); got != tc.want {
			t.Errorf("SanitizeReason(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// assertSafeReason fails unless s is a Reason-Phrase SanitizeReason would
// leave alone.
func assertSafeReason(t testing.TB, s string) {
	t.Helper()
	if len(s) > maxReason {
		t.Errorf("reason %q longer than %d", s, maxReason)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			t.Errorf("reason %q has byte %#x", s, c)
		}
	}
	if SanitizeReason(s) != s {
		t.Errorf("reason %q not stable under SanitizeReason", s)
	}
}
