// What sipgo v1.7.3 does with malformed input before CheckRequest sees it
// (sip/parser.go, sip/parser_stream.go, sip/transport_udp.go,
// sip/transport_tcp.go, sip/transaction_layer.go):
//
//   - UDP: every datagram is parsed whole. On any parse error it is logged
//     at Error level, raw bytes included, on the transport layer's logger
//     (sip.DefaultLogger unless WithTransportLayerLogger is given) and
//     dropped: no response. RFC 3261 §18.3 asks for a 400 at least when a
//     UDP request is shorter than its Content-Length; sipgo drops it.
//   - TCP, TLS, WS: the stream parser stops at the first error that is not
//     "need more bytes" and the connection is closed: no response.
//   - Parse errors: a start line that is not exactly "Method SP URI SP
//     SIP..." (RFC 4475 §3.1.2.9, §3.1.2.10: extra or trailing SP); a
//     Request-URI sipgo refuses, including a scheme with a digit, "+", "-" or
//     "." (RFC 4475 §3.3.3 expects 416 for such a request); a malformed value
//     in a header sipgo parses eagerly (Via, From, To, Contact, Call-ID, CSeq,
//     Max-Forwards, Content-Length, Content-Type, Route, Record-Route,
//     Refer-To, Referred-By), e.g. a CSeq without method or above 2**31-1, a
//     negative Content-Length; a header line without a colon; a body shorter
//     than Content-Length; a message over 65535 bytes (UDP reads stop at
//     32768, so a longer datagram arrives cut); bare LF line ends.
//   - Parsed leniently, so left to CheckRequest: missing headers (a request
//     with none at all parses); any SIP-Version starting with "SIP" (SIP/7.0
//     reaches us and gets 505 here); URI schemes other than sip and sips
//     (tel:, unknown ones); a second To, CSeq, Content-Length... header row;
//     Require and every other header sipgo does not know, kept as generic
//     headers. sipgo upper-cases the Request-Line method, truncates a UDP
//     body longer than Content-Length (RFC 3261 §18.3 wants exactly that),
//     and keeps a Via whose port does not parse with an empty host and no
//     parameters.
//   - Transaction layer: a request without Via or CSeq, or an RFC 2543 one
//     (no z9hG4bK branch) without From tag or Call-ID, is answered
//     statelessly with "400 Bad Request" and never reaches a handler. That
//     includes ACK, which must not be answered, and the RFC 2543 INVITE of
//     RFC 4475 §3.4.1, which should be accepted.
//
// Hooks for "malformed → 400" below the handlers: sip.WithHeadersParsers
// (through sipgo.WithUserAgentParser) can wrap the strict parsers of the
// single-valued headers (To, From, Call-ID, CSeq, Max-Forwards) so that a bad
// value becomes a generic header instead of failing the whole message;
// CheckRequest then answers "400 Malformed <Header> header" (a bad CSeq gets
// the transaction layer's "400 Bad Request" first). Content-Length
// must stay strict (it frames the stream) and the list-valued parsers (Via,
// Contact, Route, Record-Route) cannot be wrapped, as they signal a comma with
// an unexported error type. DefaultHeadersParser returns sipgo's shared map:
// copy it, never modify it. What still fails to parse (start line, URI,
// Via, framing) can only be answered on UDP, from a transport read filter
// (sip.WithTransportLayerReadFilter) that parses the datagram itself and,
// when the part that parsed has a Via and a CSeq, writes the 400 on the
// listening socket. A filter must never return an error: that stops the UDP
// listener, or closes the TCP connection.

package sipedge

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/emiago/sipgo/sip"

	"github.com/callmesh/callmesh/node/sipwire"
)

// Rejection is a final response to send instead of handling the request.
//
// An ACK acknowledges a final response and gets none itself (RFC 3261
// §17.1.1.3, §13.2.2.4), so a Rejection of an ACK means: discard it.
// [Rejection.Response] returns nil for an ACK.
type Rejection struct {
	Code   int
	Reason string       // short, ASCII; safe as a Reason-Phrase
	Header []sip.Header // added to the response, e.g. Unsupported for 420
}

// Response builds the response that carries r for req, or returns nil when
// req must not be answered (an ACK). The reason phrase passes through
// [SanitizeReason], and the response is SIP/2.0 whatever the request said:
// a response is built with the request's version, so a 505 left so would
// announce the very version it refuses.
func (r *Rejection) Response(req *sip.Request) *sip.Response {
	if r == nil || req == nil || req.IsAck() {
		return nil
	}
	res := sipwire.Response(req, r.Code, SanitizeReason(r.Reason), "")
	res.SipVersion = "SIP/2.0"
	for _, h := range r.Header {
		if h != nil {
			res.AppendHeader(sip.HeaderClone(h))
		}
	}
	return res
}

// CheckConfig configures CheckRequest.
type CheckConfig struct {
	// Supported lists the option tags this node implements, compared
	// case-insensitively (tokens, RFC 3261 §7.3.1). Empty: none.
	Supported []string

	// Schemes lists the Request-URI schemes accepted, compared
	// case-insensitively. Empty means {"sip"}; add "sips" only where the
	// request can arrive over TLS (RFC 3261 §26.2.2).
	Schemes []string

	// Self reports whether a Via sent-by names this node, for loop
	// detection. host is as sipgo parsed it (IPv6 without brackets, case as
	// received); port is the Via port, or the transport's default when the
	// Via has none. Nil disables loop detection.
	Self func(host string, port int) bool

	// Local reports whether this node is itself the final recipient (UAS)
	// of req rather than a proxy that will forward it. It decides the
	// Max-Forwards and Require rules. Nil means REGISTER and OPTIONS are
	// answered here and every other method is forwarded.
	Local func(req *sip.Request) bool
}

func (cfg *CheckConfig) local(req *sip.Request) bool {
	if cfg.Local != nil {
		return cfg.Local(req)
	}
	return req.Method == sip.REGISTER || req.Method == sip.OPTIONS
}

// Status codes of RFC 3261 §21 that sipgo does not name.
const (
	statusLoopDetected        = 482 // §21.4.20
	statusTooManyHops         = 483 // §21.4.21
	statusBadExtension        = 420 // §21.4.15
	statusUnsupportedScheme   = 416 // §21.4.14
	statusVersionNotSupported = 505 // §21.5.6
)

const (
	// maxCSeq bounds the CSeq number: "MUST be less than 2**31"
	// (RFC 3261 §8.1.1.5).
	maxCSeq = 1<<31 - 1
	// maxOptionTag bounds one option tag in Require; a longer one is
	// treated as garbage (400) rather than echoed in Unsupported.
	maxOptionTag = 64
	// maxUnsupported bounds the tags listed in Unsupported, which keeps a
	// 420 well inside a UDP datagram.
	maxUnsupported = 16
	// maxReason is the longest reason phrase SanitizeReason returns.
	maxReason = 80
)

func bad(reason string) *Rejection {
	return &Rejection{Code: sip.StatusBadRequest, Reason: reason}
}

// CheckRequest decides whether req is acceptable at all, before any handler
// sees it, and returns nil if it is. It does not change what req says (only
// sipgo's accessors may cache a header they parse lazily): in particular it
// neither decrements nor resets Max-Forwards, which is the forwarding code's
// business (RFC 3261 §16.6 step 3), and it does not add received or rport to
// the Via.
//
// The checks, in the order of RFC 3261 §16.3 (request validation at a
// proxy; the UAS checks of §8.2.2 come in the same relative order):
//
//  1. SIP-Version (§7.1: "SIP/2.0", case-insensitive): another well-formed
//     version is 505 Version Not Supported (§21.5.6; RFC 4475 §3.1.2.16);
//     anything else 400. A Method that is not a token is 400 too (§25.1).
//  2. Header syntax (§16.3 item 1, §8.1.1): To, From, Call-ID, CSeq and Via
//     must be present ("400 Missing To header") and parse ("400 Malformed
//     To header" for a row sipgo holds as a generic header and cannot parse
//     lazily either);
//     To, From, Call-ID, CSeq, Max-Forwards and Content-Length may appear
//     once (§7.3.1, RFC 4475 §3.3.8, §3.3.9: "400 Multiple CSeq headers");
//     the topmost Via must name a host. A missing Max-Forwards is accepted:
//     §16.3 item 3 passes the check when the header is absent, and RFC 2543
//     clients do not send one (RFC 4475 §3.4.1). The From tag is not
//     required either, for the same reason.
//  3. CSeq (§8.1.1.5, §20.16): a number of 2**31 or more is 400 "Invalid
//     CSeq number"; a method other than the Request-Line's is 400 "CSeq
//     method mismatch" (RFC 4475 §3.1.2.17, §3.1.2.18). This holds for ACK
//     and CANCEL too, whose CSeq method is ACK and CANCEL (§17.1.1.3, §9.1);
//     only their number follows the INVITE. The comparison ignores ASCII
//     case although methods are case-sensitive (§7.1): sipgo upper-cases the
//     Request-Line method, so the original case is gone, and an exact
//     comparison would refuse the valid RFC 4475 §3.1.1.2 request.
//  4. Content-Length (§20.14, §18.3): a value other than the body length is
//     400 "Content-Length mismatch". sipgo's parser never produces one (it
//     drops short bodies and truncates long ones), so this guards requests
//     built in code.
//  5. Request-URI scheme not in cfg.Schemes: 416 Unsupported URI Scheme
//     (§8.2.2.1, §16.3 item 2; RFC 4475 §3.3.2). To and From are not checked:
//     §8.2.2.1 concerns the Request-URI only, and RFC 4475 §3.3.4 expects a
//     request with unknown schemes there to be processed.
//  6. Max-Forwards 0 when this node will forward the request (cfg.Local
//     false): 483 Too Many Hops (§16.3 item 3). A request this node answers
//     itself has reached its destination; Max-Forwards limits hops, not
//     delivery (§8.1.1.6), and §16.3 item 3 names OPTIONS explicitly. The
//     forwarding code must therefore still refuse to forward any request
//     with Max-Forwards 0; note that sipgo's MaxForwardsHeader.Dec wraps 0
//     around to 4294967295, and ClientRequestDecreaseMaxForward lets that
//     through.
//  7. Loop (§16.3 item 4, §16.6 step 8): a Via whose sent-by is ours per
//     cfg.Self means the request went through this node before. If its
//     branch carries the loop value [LoopBranch] put there and the value
//     computed now is the same, the request came back unchanged: 482 Loop
//     Detected. A different value means it was retargeted on the way (a
//     spiral) and passes. A Via of ours without a loop value cannot be told
//     apart and is treated as a loop. CANCEL is exempt: it is answered hop by
//     hop and never forwarded as received (§9.2, §16.10), and its Via copies
//     the INVITE's (§9.1). Merged requests (§8.2.2.2, also 482) need the
//     transaction table and are not detected here.
//  8. Require (§8.2.2.3) with an option tag not in cfg.Supported, for a
//     request this node answers itself: 420 Bad Extension with an
//     Unsupported header listing those tags. Proxies ignore Require
//     (§20.32), hence not for forwarded requests; checking Proxy-Require
//     (§16.3 item 5) is the forwarding code's job. ACK and CANCEL are exempt
//     (§8.2.2.3). A tag that is not a token, or is longer than 64 octets, is
//     400 "Malformed Require header"; empty list elements are ignored.
//
// Reason phrases are fixed ASCII strings; no byte of the request is copied
// into them. A nil req is a 400.
func CheckRequest(req *sip.Request, cfg CheckConfig) *Rejection {
	if req == nil {
		return bad("Malformed request")
	}
	if r := checkStartLine(req); r != nil {
		return r
	}
	if r := checkHeaders(req); r != nil {
		return r
	}
	if r := checkCSeq(req); r != nil {
		return r
	}
	if cl := req.ContentLength(); cl != nil && uint64(*cl) != uint64(len(req.Body())) {
		return bad("Content-Length mismatch")
	}
	if !schemeAccepted(req.Recipient.Scheme, cfg.Schemes) {
		return &Rejection{Code: statusUnsupportedScheme, Reason: "Unsupported URI Scheme"}
	}
	local := cfg.local(req)
	if mf := req.MaxForwards(); mf != nil && mf.Val() == 0 && !local {
		return &Rejection{Code: statusTooManyHops, Reason: "Too Many Hops"}
	}
	if looped(req, cfg.Self) {
		return &Rejection{Code: statusLoopDetected, Reason: "Loop Detected"}
	}
	if local && !req.IsAck() && !req.IsCancel() {
		return checkRequire(req, cfg.Supported)
	}
	return nil
}

// checkStartLine checks the SIP-Version and the Method of the Request-Line.
func checkStartLine(req *sip.Request) *Rejection {
	v := req.SipVersion
	if !strings.EqualFold(v, "SIP/2.0") {
		if wellFormedVersion(v) {
			return &Rejection{Code: statusVersionNotSupported, Reason: "Version Not Supported"}
		}
		return bad("Malformed SIP-Version")
	}
	if !isToken(string(req.Method)) {
		return bad("Malformed method")
	}
	return nil
}

// wellFormedVersion reports whether v matches
// SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT (RFC 3261 §25.1), "SIP"
// case-insensitively (§7.1).
func wellFormedVersion(v string) bool {
	if len(v) < 4 || !strings.EqualFold(v[:4], "SIP/") {
		return false
	}
	major, minor, ok := strings.Cut(v[4:], ".")
	return ok && allDigits(major) && allDigits(minor)
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// checkHeaders checks presence, syntax and multiplicity of the headers every
// request needs (RFC 3261 §8.1.1, §7.3.1).
func checkHeaders(req *sip.Request) *Rejection {
	type field struct {
		name, compact string
		parsed        bool
	}
	mandatory := [...]field{
		{"To", "t", req.To() != nil},
		{"From", "f", req.From() != nil},
		{"Call-ID", "i", req.CallID() != nil},
		{"CSeq", "", req.CSeq() != nil},
		{"Via", "v", req.Via() != nil},
	}
	for _, f := range mandatory {
		if f.parsed {
			continue
		}
		if hasRow(req, f.name, f.compact) {
			return bad("Malformed " + f.name + " header")
		}
		return bad("Missing " + f.name + " header")
	}
	optional := [...]field{
		{"Max-Forwards", "", req.MaxForwards() != nil},
		{"Content-Length", "l", req.ContentLength() != nil},
	}
	for _, f := range optional {
		if !f.parsed && hasRow(req, f.name, f.compact) {
			return bad("Malformed " + f.name + " header")
		}
	}

	// Rows are counted by name, parsed or not, compact forms included.
	single := [...]field{
		{name: "To", compact: "t"},
		{name: "From", compact: "f"},
		{name: "Call-ID", compact: "i"},
		{name: "CSeq"},
		{name: "Max-Forwards"},
		{name: "Content-Length", compact: "l"},
	}
	var count [len(single)]int
	for _, h := range req.Headers() {
		name := h.Name()
		for i, f := range single {
			if sipwire.SameName(name, f.name) || (f.compact != "" && sipwire.SameName(name, f.compact)) {
				count[i]++
				break
			}
		}
	}
	for i, n := range count {
		if n > 1 {
			return bad("Multiple " + single[i].name + " headers")
		}
	}

	if strings.TrimSpace(topVia(req).Host) == "" {
		return bad("Malformed Via header")
	}
	return nil
}

// hasRow reports whether req has a header row called name or compact,
// whatever its type.
func hasRow(req *sip.Request, name, compact string) bool {
	return req.GetHeader(name) != nil || (compact != "" && req.GetHeader(compact) != nil)
}

// checkCSeq checks the CSeq number and method (RFC 3261 §8.1.1.5).
func checkCSeq(req *sip.Request) *Rejection {
	cseq := req.CSeq()
	if cseq.SeqNo > maxCSeq {
		return bad("Invalid CSeq number")
	}
	// sipgo keeps the LWS after the first SP ("1  INVITE" gives " INVITE").
	method := strings.Trim(string(cseq.MethodName), " \t")
	if !strings.EqualFold(method, string(req.Method)) {
		return bad("CSeq method mismatch")
	}
	return nil
}

// schemeAccepted reports whether scheme is one of accepted, or "sip" when
// accepted is empty. An empty scheme is sip, as sipgo writes it.
func schemeAccepted(scheme string, accepted []string) bool {
	if scheme == "" {
		scheme = "sip"
	}
	if len(accepted) == 0 {
		return strings.EqualFold(scheme, "sip")
	}
	for _, a := range accepted {
		if strings.EqualFold(scheme, a) {
			return true
		}
	}
	return false
}

// checkRequire implements RFC 3261 §8.2.2.3.
func checkRequire(req *sip.Request, supported []string) *Rejection {
	var unsupported []string
	for h := range sipwire.Headers(req, "Require") {
		for tag := range strings.SplitSeq(h.Value(), ",") {
			tag = strings.Trim(tag, " \t")
			switch {
			case tag == "":
				continue
			case !isToken(tag) || len(tag) > maxOptionTag:
				return bad("Malformed Require header")
			case containsFold(supported, tag), containsFold(unsupported, tag):
				continue
			case len(unsupported) < maxUnsupported:
				unsupported = append(unsupported, tag)
			}
		}
	}
	if len(unsupported) == 0 {
		return nil
	}
	return &Rejection{
		Code:   statusBadExtension,
		Reason: "Bad Extension",
		Header: []sip.Header{sip.NewHeader("Unsupported", strings.Join(unsupported, ", "))},
	}
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// isToken reports whether s is an RFC 3261 token (§25.1):
// 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~").
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-.!%*_+`'~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// Loop detection (RFC 3261 §16.3 item 4, §16.6 step 8).
//
// A branch made by LoopBranch ends in loopMarker followed by loopValueLen
// lower-case hex digits: the loop value of the request as this node
// received it.
const (
	loopMarker   = ".lp"
	loopValueLen = 16
)

// LoopBranch returns a new branch parameter for the Via this node adds when
// it forwards received, the request as it arrived here. The branch is
// unique (RFC 3261 §8.1.1.7) and carries the loop-detection value of
// §16.6 step 8, which lets CheckRequest tell a loop from a spiral when the
// request comes back. Forwarding code must use it for its Via instead of
// sipgo's ClientRequestAddVia, whose branch has no loop value: a request
// that returns through such a Via is answered 482 even if it spirals.
func LoopBranch(received *sip.Request) string {
	b := sip.GenerateBranchN(16)
	if received == nil {
		return b
	}
	return b + loopMarker + loopValue(received, topVia(received))
}

// topVia returns the topmost parsed Via of req. It does not trust
// req.Via(): after PrependHeader with several headers, sipgo points it at
// the last of them rather than the first.
func topVia(req *sip.Request) *sip.ViaHeader {
	for _, h := range req.Headers() {
		if v, ok := h.(*sip.ViaHeader); ok {
			return v
		}
	}
	return req.Via()
}

// looped reports whether a Via of req names this node with a branch that
// shows the request came back unchanged (or cannot show otherwise).
func looped(req *sip.Request, self func(host string, port int) bool) bool {
	if self == nil || req.IsCancel() {
		return false
	}
	var vias []*sip.ViaHeader
	for h := range sipwire.Headers(req, "Via") {
		if v, ok := h.(*sip.ViaHeader); ok {
			vias = append(vias, v)
		}
	}
	for i, v := range vias {
		if !self(v.Host, viaPort(v)) {
			continue
		}
		branch, _ := v.Params.Get("branch")
		want, ok := branchLoopValue(branch)
		if !ok {
			return true
		}
		// When this node forwarded the request, the Via now below its own
		// was the topmost one.
		var prev *sip.ViaHeader
		if i+1 < len(vias) {
			prev = vias[i+1]
		}
		if loopValue(req, prev) == want {
			return true
		}
	}
	return false
}

func viaPort(v *sip.ViaHeader) int {
	if v.Port > 0 {
		return v.Port
	}
	return sip.DefaultPort(v.Transport)
}

// branchLoopValue extracts the loop value LoopBranch put in branch.
func branchLoopValue(branch string) (string, bool) {
	i := strings.LastIndex(branch, loopMarker)
	if i < 0 {
		return "", false
	}
	v := branch[i+len(loopMarker):]
	if len(v) != loopValueLen {
		return "", false
	}
	for j := 0; j < len(v); j++ {
		if !('0' <= v[j] && v[j] <= '9' || 'a' <= v[j] && v[j] <= 'f') {
			return "", false
		}
	}
	return v, true
}

// loopValue hashes what RFC 3261 §16.6 step 8 lists as having an impact on
// how a request is processed: the To and From tags, Call-ID, the
// Request-URI as received, the topmost Via as received (prevHop), the CSeq
// number, and the Route, Proxy-Require and Proxy-Authorization headers.
// Of prevHop only transport, sent-by and branch count, because a proxy may
// add received and rport to it (RFC 3261 §18.2.1, RFC 3581 §4), sipgo's
// client among them.
func loopValue(req *sip.Request, prevHop *sip.ViaHeader) string {
	h := sha256.New()
	put := func(label, value string) {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(label)))
		h.Write(n[:])
		h.Write([]byte(label))
		binary.BigEndian.PutUint32(n[:], uint32(len(value)))
		h.Write(n[:])
		h.Write([]byte(value))
	}
	var toTag, fromTag, callID, seq string
	if to := req.To(); to != nil {
		toTag, _ = to.Params.Get("tag")
	}
	if from := req.From(); from != nil {
		fromTag, _ = from.Params.Get("tag")
	}
	if id := req.CallID(); id != nil {
		callID = id.Value()
	}
	if cseq := req.CSeq(); cseq != nil {
		seq = strconv.FormatUint(uint64(cseq.SeqNo), 10)
	}
	put("to-tag", toTag)
	put("from-tag", fromTag)
	put("call-id", callID)
	put("request-uri", req.Recipient.String())
	if prevHop != nil {
		branch, _ := prevHop.Params.Get("branch")
		put("via", strings.ToLower(prevHop.Transport)+" "+strings.ToLower(prevHop.Host)+
			" "+strconv.Itoa(viaPort(prevHop))+" "+branch)
	} else {
		put("via", "")
	}
	put("cseq", seq)
	for r := range sipwire.Headers(req, "Route") {
		put("route", r.Value())
	}
	for r := range sipwire.Headers(req, "Proxy-Require") {
		for tag := range strings.SplitSeq(r.Value(), ",") {
			if tag = strings.Trim(tag, " \t"); tag != "" {
				put("proxy-require", strings.ToLower(tag))
			}
		}
	}
	for a := range sipwire.Headers(req, "Proxy-Authorization") {
		put("proxy-authorization", a.Value())
	}
	sum := h.Sum(nil)
	return hex.EncodeToString(sum[:loopValueLen/2])
}

// SanitizeReason makes s safe as a Reason-Phrase (RFC 3261 §25.1): ASCII
// only, at most 80 octets, no CR or LF. Control characters (CR, LF and HTAB
// among them) become a space, runs of spaces one space, and the result is
// trimmed. Printable characters outside the Reason-Phrase grammar become a
// look-alike inside it (a double quote an apostrophe, angle, square and
// curly brackets parentheses, backslash and bar a slash); the rest ("#",
// "^", "%") and every non-ASCII character become "?". An empty result is
// returned as is.
func SanitizeReason(s string) string {
	var b strings.Builder
	b.Grow(min(len(s), maxReason))
	space := false
	for len(s) > 0 && b.Len() < maxReason {
		r, size := utf8.DecodeRuneInString(s)
		s = s[size:]
		c := reasonChar(r)
		if c == ' ' {
			space = b.Len() > 0
			continue
		}
		if space {
			if b.Len()+2 > maxReason {
				break // no room for the space and a character after it
			}
			b.WriteByte(' ')
			space = false
		}
		b.WriteByte(c)
	}
	return b.String()
}

// reasonChar maps r to the byte SanitizeReason writes for it.
func reasonChar(r rune) byte {
	switch {
	case r < 0x20 || r == 0x7f || r == ' ':
		return ' '
	case r >= 0x80:
		return '?'
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return byte(r)
	case strings.ContainsRune(";/?:@&=+$,-_.!~*'()", r):
		return byte(r)
	}
	switch r {
	case '"', '`':
		return '\''
	case '<', '[', '{':
		return '('
	case '>', ']', '}':
		return ')'
	case '\\', '|':
		return '/'
	}
	return '?'
}
