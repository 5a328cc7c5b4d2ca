package sipwire

import (
	"bytes"
	"errors"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// ErrUnsupported is wrapped by every error Parse returns. Parse takes only
// the messages it can turn into exactly what sipgo's parser would make;
// for anything else the caller is expected to parse the datagram with
// sipgo, which also decides whether the message is malformed.
var ErrUnsupported = errors.New("sipwire: message left to sipgo's parser")

// refusal is why Parse declined a message. Being a string constant turned
// into an error, it costs no allocation: a peer sending messages the fast
// path refuses must not make each refusal more expensive than the
// fallback parse itself.
type refusal string

func (r refusal) Error() string { return ErrUnsupported.Error() + ": " + string(r) }
func (r refusal) Unwrap() error { return ErrUnsupported }

// maxLines bounds the header lines Parse takes; a longer header section
// is left to sipgo.
const maxLines = 64

// Parse parses one complete SIP message received as a UDP datagram. The
// result is deeply equal to what NewParser's ParseSIP produces for data
// (sipgo's parser, with To, From, Call-ID, CSeq and Max-Forwards kept as
// raw headers when they do not parse). Parse returns an error wrapping ErrUnsupported for a message it
// does not handle; it never returns a message sipgo would not.
//
// Header values share one string copied from data, and the message and
// its parsed headers share one allocation. The body is copied, so data
// may be reused once Parse returns.
func Parse(data []byte) (sip.Message, error) {
	// Line offsets below are 16 bits, as is sipgo's default limit.
	if len(data) > sip.ParseMaxMessageLength || len(data) > 0xffff {
		return nil, refusal("message too large")
	}

	// RFC 3261 §7: a start line and header lines up to an empty line, each
	// ending in CRLF. sipgo reads them one by one and fails on a CR not
	// followed by LF; the lines are found first so that only the header
	// section is copied into a string.
	var ends [maxLines + 1]uint16 // where each line's CRLF is
	lines, off := 0, 0
	for {
		i := bytes.IndexByte(data[off:], '\r')
		if i < 0 || off+i+1 >= len(data) || data[off+i+1] != '\n' {
			return nil, refusal("header section not closed by an empty line")
		}
		if i == 0 {
			break // the empty line
		}
		if lines == len(ends) {
			return nil, refusal("too many header lines")
		}
		// RFC 3261 §7.3.1: a line starting with white space continues the
		// previous one. sipgo joins such lines in a new buffer; the fast
		// path leaves folded messages to it.
		if lines > 0 && (data[off] == ' ' || data[off] == '\t') {
			return nil, refusal("folded header line")
		}
		ends[lines] = uint16(off + i)
		lines++
		off += i + 2
	}
	if lines == 0 {
		return nil, refusal("empty start line")
	}
	head := string(data[:off])
	bodyAt := off + 2

	msg, md, a, err := startLine(head[:ends[0]])
	if err != nil {
		return nil, err
	}
	// The headers are collected here, on the stack, and installed at the
	// end.
	var buf [24]sip.Header
	out := buf[:0]
	var clen *sip.ContentLengthHeader
	for k := 1; k < lines; k++ {
		var h *sip.ContentLengthHeader
		out, h, err = a.header(out, head[ends[k-1]+2:ends[k]])
		if err != nil {
			return nil, err
		}
		if h != nil {
			clen = h
		}
	}

	// RFC 3261 §18.3: over UDP the body ends at Content-Length if the
	// header is present and at the end of the datagram if not. sipgo
	// refuses a Content-Length larger than the data and ignores whatever
	// follows a smaller one.
	size := len(data) - bodyAt
	if clen != nil {
		if uint64(*clen) > uint64(size) {
			return nil, refusal("body shorter than Content-Length")
		}
		size = int(*clen)
	}

	PutHeaders(md, out)
	if size > 0 {
		// SetBody adds a Content-Length header when the message has none,
		// as sipgo's parser does through the same call.
		md.SetBody(bytes.Clone(data[bodyAt : bodyAt+size]))
	}
	return msg, nil
}

// requestArena and responseArena put a message and the arena of its
// headers in one allocation.
type requestArena struct {
	req sip.Request
	a   arena
}

type responseArena struct {
	res sip.Response
	a   arena
}

// startLine parses a Request-Line or Status-Line (RFC 3261 §7.1, §7.2)
// and makes the message it starts, filled in as sip.NewRequest and
// sip.NewResponse fill it but for the header list, which Parse installs
// at the end. sipgo splits the line at its first two spaces and takes it
// as a request when the third part has no space and starts with "sip" or
// "SIP"; the fast path accepts only SIP/2.0 and follows the same order,
// so that it never reads as a response what sipgo reads as a request.
func startLine(line string) (sip.Message, *sip.MessageData, *arena, error) {
	sp1 := strings.IndexByte(line, ' ')
	if sp1 < 0 {
		return nil, nil, nil, refusal("start line has no space")
	}
	sp2 := strings.IndexByte(line[sp1+1:], ' ')
	if sp2 < 0 {
		return nil, nil, nil, refusal("start line has one space")
	}
	sp2 += sp1 + 1
	first, second, third := line[:sp1], line[sp1+1:sp2], line[sp2+1:]

	if len(third) >= 3 && (third[:3] == "sip" || third[:3] == "SIP") && strings.IndexByte(third, ' ') < 0 {
		if third != "SIP/2.0" {
			return nil, nil, nil, refusal("SIP version")
		}
		// sipgo upper-cases the method; one without lower case is kept as
		// is.
		if first == "" || scan(first, 0, &methodChars) != len(first) {
			return nil, nil, nil, refusal("method")
		}
		ra := new(requestArena)
		a := ra.a.init()
		req := &ra.req
		req.SipVersion = third
		req.Method = sip.RequestMethod(first)
		if !a.uri(second, &req.Recipient, false) {
			return nil, nil, nil, refusal("Request-URI")
		}
		return req, &req.MessageData, a, nil
	}

	if first != "SIP/2.0" {
		return nil, nil, nil, refusal("not a SIP/2.0 start line")
	}
	if len(second) != 3 || !isDigit(second[0]) || !isDigit(second[1]) || !isDigit(second[2]) {
		return nil, nil, nil, refusal("status code")
	}
	ra := new(responseArena)
	res := &ra.res
	res.SipVersion = first
	res.StatusCode = int(second[0]-'0')*100 + int(second[1]-'0')*10 + int(second[2]-'0')
	res.Reason = third
	return res, &res.MessageData, ra.a.init(), nil
}

// Header kinds: the headers sipgo's parser set turns into typed values.
const (
	kindGeneric = iota
	kindVia
	kindFrom
	kindTo
	kindCallID
	kindCSeq
	kindContact
	kindMaxForwards
	kindContentLength
	kindContentType
	kindRoute
	kindRecordRoute
	kindUnmodelled // typed by sipgo, not by the fast path
)

// headerKind classifies a header name as sipgo does: case-insensitively,
// with the compact forms of RFC 3261 §7.3.3 that sipgo knows. Other
// compact forms (k, s, ...) are ordinary headers to sipgo.
func headerKind(name string) int {
	// The spellings seen on the wire are matched exactly first, which is
	// much cheaper than comparing without case.
	switch name {
	case "Via", "v":
		return kindVia
	case "From", "f":
		return kindFrom
	case "To", "t":
		return kindTo
	case "Call-ID", "i":
		return kindCallID
	case "CSeq":
		return kindCSeq
	case "Contact", "m":
		return kindContact
	case "Max-Forwards":
		return kindMaxForwards
	case "Content-Length", "l":
		return kindContentLength
	case "Content-Type", "c":
		return kindContentType
	case "Route":
		return kindRoute
	case "Record-Route":
		return kindRecordRoute
	case "User-Agent", "Server", "Allow", "Supported", "Expires", "Date",
		"Subject", "Accept", "Authorization", "WWW-Authenticate",
		"Proxy-Authorization", "Proxy-Authenticate", "Event", "Require":
		return kindGeneric
	}
	switch len(name) {
	case 1:
		switch name[0] | 0x20 {
		case 'v':
			return kindVia
		case 'f':
			return kindFrom
		case 't':
			return kindTo
		case 'i':
			return kindCallID
		case 'm':
			return kindContact
		case 'l':
			return kindContentLength
		case 'c':
			return kindContentType
		}
	case 2:
		if strings.EqualFold(name, "to") {
			return kindTo
		}
	case 3:
		if strings.EqualFold(name, "via") {
			return kindVia
		}
	case 4:
		switch {
		case strings.EqualFold(name, "from"):
			return kindFrom
		case strings.EqualFold(name, "cseq"):
			return kindCSeq
		}
	case 5:
		if strings.EqualFold(name, "route") {
			return kindRoute
		}
	case 7:
		switch {
		case strings.EqualFold(name, "call-id"):
			return kindCallID
		case strings.EqualFold(name, "contact"):
			return kindContact
		}
	case 8:
		if strings.EqualFold(name, "refer-to") {
			return kindUnmodelled
		}
	case 11:
		if strings.EqualFold(name, "referred-by") {
			return kindUnmodelled
		}
	case 12:
		switch {
		case strings.EqualFold(name, "max-forwards"):
			return kindMaxForwards
		case strings.EqualFold(name, "content-type"):
			return kindContentType
		case strings.EqualFold(name, "record-route"):
			return kindRecordRoute
		}
	case 14:
		if strings.EqualFold(name, "content-length") {
			return kindContentLength
		}
	}
	return kindGeneric
}

// header parses one unfolded header line and appends its header(s) to
// out. It returns the header when it is a Content-Length, which decides
// where the body ends.
func (a *arena) header(out []sip.Header, line string) ([]sip.Header, *sip.ContentLengthHeader, error) {
	// RFC 3261 §7.3.1: field-name HCOLON field-value. sipgo splits at the
	// first colon and trims both sides; a name that is a token followed by
	// optional white space reads the same.
	n := scan(line, 0, &tokenChars)
	c := n
	for c < len(line) && (line[c] == ' ' || line[c] == '\t') {
		c++
	}
	if n == 0 || c == len(line) || line[c] != ':' {
		return out, nil, refusal("header name")
	}
	name, value := line[:n], trimSpace(line[c+1:])

	switch kind := headerKind(name); kind {
	case kindGeneric:
		out = append(out, sip.NewHeader(name, value))
	case kindVia:
		var ok bool
		if out, ok = a.vias(out, value); !ok {
			return out, nil, refusal("Via")
		}
	case kindFrom:
		h := take(a.from[:], &a.n.from)
		var ok bool
		h.DisplayName, h.Params, ok = a.address(value, &h.Address, false)
		if !ok {
			return out, nil, refusal("From")
		}
		out = append(out, h)
	case kindTo:
		h := take(a.to[:], &a.n.to)
		var ok bool
		h.DisplayName, h.Params, ok = a.address(value, &h.Address, false)
		if !ok {
			return out, nil, refusal("To")
		}
		out = append(out, h)
	case kindContact:
		var ok bool
		if out, ok = a.contacts(out, value); !ok {
			return out, nil, refusal("Contact")
		}
	case kindRoute, kindRecordRoute:
		var ok bool
		if out, ok = a.routes(out, value, kind == kindRecordRoute); !ok {
			return out, nil, refusal("Route or Record-Route")
		}
	case kindCallID:
		// sipgo keeps any non-empty value.
		if value == "" {
			return out, nil, refusal("empty Call-ID")
		}
		h := take(a.callID[:], &a.n.callID)
		*h = sip.CallIDHeader(value)
		out = append(out, h)
	case kindCSeq:
		// RFC 3261 §20.16: CSeq = 1*DIGIT LWS Method. sipgo splits at the
		// first space or tab and keeps the rest as the method, so exactly
		// one is accepted here.
		d := scan(value, 0, &digitChars)
		if d == len(value) || (value[d] != ' ' && value[d] != '\t') {
			return out, nil, refusal("CSeq")
		}
		seq, ok := parseUint32(value[:d])
		method := value[d+1:]
		// RFC 3261 §8.1.1.5: the sequence number is below 2**31.
		if !ok || seq > 1<<31-1 || method == "" || scan(method, 0, &tokenChars) != len(method) {
			return out, nil, refusal("CSeq")
		}
		h := take(a.cseq[:], &a.n.cseq)
		h.SeqNo = seq
		h.MethodName = sip.RequestMethod(method)
		out = append(out, h)
	case kindMaxForwards:
		v, ok := parseUint32(value)
		if !ok {
			return out, nil, refusal("Max-Forwards")
		}
		h := take(a.maxForwards[:], &a.n.maxForwards)
		*h = sip.MaxForwardsHeader(v)
		out = append(out, h)
	case kindContentLength:
		v, ok := parseUint32(value)
		if !ok {
			return out, nil, refusal("Content-Length")
		}
		h := take(a.contentLength[:], &a.n.contentLength)
		*h = sip.ContentLengthHeader(v)
		out = append(out, h)
		return out, h, nil
	case kindContentType:
		if value == "" {
			return out, nil, refusal("empty Content-Type")
		}
		h := take(a.contentType[:], &a.n.contentType)
		*h = sip.ContentTypeHeader(value)
		out = append(out, h)
	default:
		return out, nil, refusal("header typed by sipgo but not by the fast path")
	}
	return out, nil, nil
}

// vias parses a Via header value, a comma-separated list of via-parms
// (RFC 3261 §20.42, §25.1):
//
//	via-parm      = sent-protocol LWS sent-by *( SEMI via-params )
//	sent-protocol = protocol-name SLASH protocol-version SLASH transport
//	sent-by       = host [ COLON port ]
//
// sipgo ends a via-parm at the first comma after its first semicolon, so
// a via-parm without parameters must be the last one; one that is not
// ends in a byte the host or port does not take and is refused.
func (a *arena) vias(out []sip.Header, text string) ([]sip.Header, bool) {
	for {
		h := take(a.via[:], &a.n.via)
		out = append(out, h)

		// sent-protocol: sipgo cuts at '/', '/' and the first space or
		// tab, trimming each part.
		s := trimLeftWS(text)
		i := scan(s, 0, &tokenChars)
		if i == 0 || i == len(s) || s[i] != '/' {
			return out, false
		}
		j := scan(s, i+1, &tokenChars)
		if j == i+1 || j == len(s) || s[j] != '/' {
			return out, false
		}
		k := scan(s, j+1, &tokenChars)
		if k == j+1 || k == len(s) || (s[k] != ' ' && s[k] != '\t') {
			return out, false
		}
		h.ProtocolName, h.ProtocolVersion, h.Transport = s[:i], s[i+1:j], s[j+1:k]

		// sent-by: sipgo reads the host from just after that one space.
		s = s[k+1:]
		if s != "" && s[0] == '[' {
			// IPv6 reference; sipgo keeps the address without brackets.
			e := scan(s, 1, &ipv6Chars)
			if e == 1 || e == len(s) || s[e] != ']' {
				return out, false
			}
			h.Host, s = s[1:e], s[e+1:]
		} else {
			e := scan(s, 0, &hostChars)
			if e == 0 {
				return out, false
			}
			h.Host, s = s[:e], s[e:]
		}
		if s != "" && s[0] == ':' {
			port, n, ok := parsePort(s[1:])
			if !ok {
				return out, false
			}
			h.Port, s = port, s[1+n:]
		}
		if s == "" {
			return out, true
		}
		if s[0] != ';' {
			return out, false
		}

		// via-params up to the end or the comma before the next via-parm.
		a.kvBegin()
		n, _, ok := a.params(s[1:], ';', &viaParamChars)
		if !ok {
			return out, false
		}
		h.Params = a.kvEnd()
		s = s[1+n:]
		if s == "" {
			return out, true
		}
		if s[0] != ',' {
			return out, false
		}
		text = s[1:]
	}
}

// contacts parses a Contact header value: "*" or a comma-separated list
// of addresses (RFC 3261 §20.10). The list is split as sipgo splits it,
// at the first comma outside angle brackets and double quotes, quotes
// being toggled by every '"' (escaped or not).
func (a *arena) contacts(out []sip.Header, text string) ([]sip.Header, bool) {
	for {
		end, next := len(text), -1
		if strings.IndexByte(text, ',') >= 0 {
			inBrackets, inQuotes := false, false
		split:
			for i := 0; i < len(text); i++ {
				switch c := text[i]; {
				case c == '<' && !inQuotes:
					inBrackets = true
				case c == '>' && !inQuotes:
					inBrackets = false
				case c == '"':
					inQuotes = !inQuotes
				case c == ',' && !inQuotes && !inBrackets:
					end, next = i, i+1
					break split
				}
			}
		}
		h := take(a.contact[:], &a.n.contact)
		var ok bool
		h.DisplayName, h.Params, ok = a.address(text[:end], &h.Address, true)
		if !ok {
			return out, false
		}
		out = append(out, h)
		if next < 0 {
			return out, true
		}
		text = text[next:]
	}
}

// routes parses a Route or Record-Route value, a comma-separated list of
// name-addrs (RFC 3261 §20.30, §20.34). sipgo keeps only the URI of each,
// dropping display names and header parameters, so the fast path accepts
// only "<URI>" entries, with spaces or tabs around them.
func (a *arena) routes(out []sip.Header, text string, record bool) ([]sip.Header, bool) {
	// One block for the line's entries: a URI holds no '<'. A line with
	// more entries than any route set needs is left to sipgo rather than
	// sized by the peer.
	n := strings.Count(text, "<")
	if n > 16 {
		return out, false
	}
	var routes []sip.RouteHeader
	var recordRoutes []sip.RecordRouteHeader
	if record {
		recordRoutes = make([]sip.RecordRouteHeader, n)
	} else {
		routes = make([]sip.RouteHeader, n)
	}
	for i := 0; i < n; i++ {
		s := trimLeftWS(text)
		if s == "" || s[0] != '<' {
			return out, false
		}
		k := strings.IndexByte(s, '>')
		if k < 0 {
			return out, false
		}
		var u *sip.Uri
		if record {
			u = &recordRoutes[i].Address
			out = append(out, &recordRoutes[i])
		} else {
			u = &routes[i].Address
			out = append(out, &routes[i])
		}
		// sipgo splits the list at commas outside brackets and quotes; the
		// URI holds neither '"' nor '>', so the entry ends at this '>'.
		if !a.uri(s[1:k], u, false) {
			return out, false
		}
		s = trimLeftWS(s[k+1:])
		if s == "" {
			return out, i == n-1
		}
		if s[0] != ',' {
			return out, false
		}
		text = s[1:]
	}
	return out, false
}

// address parses a name-addr or addr-spec with header parameters, the
// value of From, To and Contact (RFC 3261 §20.10, §20.20, §20.39), into
// u, returning the display name and parameters. It follows sipgo's
// reading: the first of '"', '<' and ';' decides between a quoted display
// name, an unquoted one, and an addr-spec without brackets, whose
// parameters are all header parameters.
func (a *arena) address(s string, u *sip.Uri, contact bool) (display string, params sip.HeaderParams, ok bool) {
	if s == "" {
		return "", nil, false
	}
	i := 0
	for i < len(s) && s[i] != '"' && s[i] != '<' && s[i] != ';' {
		i++
	}
	var rest string
	switch {
	case i < len(s) && s[i] == '"':
		// sipgo drops what comes before the opening quote and skips
		// anything up to the next '<' after the closing one; only white
		// space is accepted in either place.
		if trimLeftWS(s[:i]) != "" {
			return "", nil, false
		}
		q := s[i+1:]
		end := closingQuote(q)
		if end < 0 || !displayOK(q[:end]) {
			return "", nil, false
		}
		r := trimLeftWS(q[end+1:])
		if r == "" || r[0] != '<' {
			return "", nil, false
		}
		display, rest = q[:end], r[1:]
	case i < len(s) && s[i] == '<':
		display = trimSpace(s[:i])
		if !displayOK(display) {
			return "", nil, false
		}
		rest = s[i+1:]
	default:
		// addr-spec: the URI ends at the first ';', after which all
		// parameters are header parameters.
		if !a.uri(s[:i], u, contact) {
			return "", nil, false
		}
		if i == len(s) {
			return "", nil, true
		}
		params, ok = a.headerParams(s[i+1:])
		return "", params, ok
	}

	k := strings.IndexByte(rest, '>')
	if k < 0 || !a.uri(rest[:k], u, contact) {
		return "", nil, false
	}
	rest = rest[k+1:]
	if rest == "" {
		return display, nil, true
	}
	// sipgo would keep text between '>' and ';' (a space before a list
	// comma, say) as a parameter name.
	if rest[0] != ';' {
		return "", nil, false
	}
	params, ok = a.headerParams(rest[1:])
	return display, params, ok
}

// closingQuote returns the index of the '"' closing a quoted-string whose
// opening quote precedes s, honouring quoted-pairs (RFC 3261 §25.1), or
// -1. A quoted-pair of CR or LF is invalid, as sipgo finds too.
func closingQuote(s string) int {
	escaped := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			escaped = !escaped
		case escaped:
			if c == '\r' || c == '\n' {
				return -1
			}
			escaped = false
		case c == '"':
			return i
		}
	}
	return -1
}

// displayOK reports whether a display name has no control characters.
// Non-ASCII bytes (UTF-8 names) are kept as sipgo keeps them.
func displayOK(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// headerParams parses the header parameters after an address, as sipgo
// does: split at every ';', a parameter's value after its last '='.
// sipgo knows no quoting here, so a quoted value is accepted only whole,
// with no ';' or '=' inside; a second '=' is refused too.
func (a *arena) headerParams(s string) (sip.HeaderParams, bool) {
	a.kvBegin()
	i := 0
	for {
		start := i
		i = scan(s, i, &tokenChars)
		if i == start {
			return nil, false
		}
		name, value := s[start:i], ""
		if i < len(s) && s[i] == '=' {
			i++
			v := i
			if i < len(s) && s[i] == '"' {
				i = scan(s, i+1, &quotedChars)
				if i == len(s) || s[i] != '"' {
					return nil, false
				}
				i++
			} else {
				i = scan(s, i, &genValueChars)
			}
			value = s[v:i]
		}
		a.kvAdd(name, value)
		if i == len(s) {
			return a.kvEnd(), true
		}
		if s[i] != ';' {
			return nil, false
		}
		i++
	}
}

// params parses sep-separated name[=value] pairs the way sipgo's
// UnmarshalHeaderParams does for input without quotes or spaces: a value
// runs from the first '=' to the next separator. It stops at the first
// byte neither in chars nor '=' nor sep, returning its index and whether
// the last parameter had a value. Empty parameters, which sipgo turns
// into odd names, are refused.
func (a *arena) params(s string, sep byte, chars *[256]bool) (n int, valued, ok bool) {
	i := 0
	for {
		start := i
		i = scan(s, i, chars)
		if i == start {
			return i, false, false
		}
		name, value := s[start:i], ""
		valued = i < len(s) && s[i] == '='
		if valued {
			i++
			v := i
			for i < len(s) && (chars[s[i]] || s[i] == '=') {
				i++
			}
			value = s[v:i]
		}
		a.kvAdd(name, value)
		if i == len(s) || s[i] != sep {
			return i, valued, true
		}
		i++
	}
}

// uri parses a URI the way sip.ParseUri does, into the zero Uri u. SIP and
// SIPS URIs (RFC 3261 §19.1.1) are parsed here; other schemes keep their
// scheme-specific part in an unexported field, so they are handed to
// sip.ParseUri itself, which allocates nothing for them. A lone "*" is
// accepted only where sipgo accepts it (Contact).
//
//	SIP-URI = "sip:" [ userinfo ] hostport uri-parameters [ headers ]
func (a *arena) uri(s string, u *sip.Uri, star bool) bool {
	if s == "*" {
		if !star {
			return false
		}
		u.Host, u.Wildcard = "*", true
		return true
	}
	// sipgo takes letters only up to the first colon as the scheme.
	i := scan(s, 0, &alphaChars)
	if i == 0 || i == len(s) || s[i] != ':' || len(s) < 3 {
		return false
	}
	switch scheme := s[:i]; {
	case scheme == "sip" || scheme == "sips":
		u.Scheme = scheme
	case strings.EqualFold(scheme, "sip"):
		u.Scheme = "sip" // sipgo lower-cases the scheme
	case strings.EqualFold(scheme, "sips"):
		u.Scheme = "sips"
	default:
		if i+1 == len(s) || scan(s, i+1, &opaqueChars) != len(s) {
			return false
		}
		return sip.ParseUri(s, u) == nil
	}
	s = s[i+1:]
	if strings.HasPrefix(s, "//") {
		return false
	}

	// userinfo ends at the first '@'. sipgo starts the host at a '[' that
	// comes before any '@', dropping what precedes it.
	for j := 0; j < len(s); j++ {
		if s[j] == '[' {
			if j > 0 {
				return false
			}
			break
		}
		if s[j] == '@' {
			user := s[:j]
			e := scan(user, 0, &userChars)
			if e == 0 {
				return false
			}
			if e < len(user) {
				// user ":" password; sipgo splits at the last colon.
				if user[e] != ':' || e+1 == len(user) || scan(user, e+1, &userChars) != len(user) {
					return false
				}
				u.Password = user[e+1:]
			}
			u.User, s = user[:e], s[j+1:]
			break
		}
	}

	// hostport
	if s != "" && s[0] == '[' {
		// sipgo looks for the closing bracket within the longest IPv6
		// reference only, and keeps the brackets in Host.
		e := scan(s, 1, &ipv6Chars)
		if e == 1 || e > 41 || e == len(s) || s[e] != ']' {
			return false
		}
		u.Host, s = s[:e+1], s[e+1:]
	} else {
		e := scan(s, 0, &hostChars)
		if e == 0 {
			return false
		}
		u.Host, s = s[:e], s[e:]
	}
	if s != "" && s[0] == ':' {
		port, n, ok := parsePort(s[1:])
		if !ok {
			return false
		}
		u.Port, s = port, s[1+n:]
	}

	if s != "" && s[0] == ';' {
		a.kvBegin()
		n, valued, ok := a.params(s[1:], ';', &uriParamChars)
		if !ok {
			return false
		}
		u.UriParams = a.kvEnd()
		s = s[1+n:]
		// sipgo names a last parameter without value, when headers
		// follow, with the rest of the URI ("lr?x=y").
		if s != "" && !valued {
			return false
		}
	}
	if s != "" && s[0] == '?' {
		a.kvBegin()
		n, _, ok := a.params(s[1:], '&', &uriHeaderChars)
		if !ok {
			return false
		}
		u.Headers = a.kvEnd()
		s = s[1+n:]
	}
	return s == ""
}

// parsePort parses the 1 to 5 digits at the start of s, returning the
// port and how many bytes it took. sipgo uses strconv.Atoi, which also
// takes a sign; those are left to it.
func parsePort(s string) (port, n int, ok bool) {
	for n < len(s) && n < 6 && isDigit(s[n]) {
		port = port*10 + int(s[n]-'0')
		n++
	}
	return port, n, n > 0 && n <= 5
}

// parseUint32 parses a decimal number that fits 32 bits, as sipgo's
// strconv.ParseUint(s, 10, 32) does for digits-only input.
func parseUint32(s string) (uint32, bool) {
	if len(s) == 0 || len(s) > 10 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
		n = n*10 + uint64(s[i]-'0')
	}
	if n > 1<<32-1 {
		return 0, false
	}
	return uint32(n), true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// scan returns the index of the first byte of s from i on that is not in
// set, or len(s).
func scan(s string, i int, set *[256]bool) int {
	for i < len(s) && set[s[i]] {
		i++
	}
	return i
}

// trimLeftWS drops leading spaces and tabs (RFC 3261 §25.1 WSP).
func trimLeftWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	return s
}

// trimSpace is strings.TrimSpace, which sipgo applies (as bytes.TrimSpace)
// to header values, with the ASCII case inlined.
func trimSpace(s string) string {
	for len(s) > 0 && asciiSpace[s[0]] {
		s = s[1:]
	}
	for len(s) > 0 && asciiSpace[s[len(s)-1]] {
		s = s[:len(s)-1]
	}
	if len(s) > 0 && (s[0] >= 0x80 || s[len(s)-1] >= 0x80) {
		return strings.TrimSpace(s) // Unicode spaces
	}
	return s
}

// Byte classes, from the grammar of RFC 3261 §25.1, each cut down to what
// sipgo reads the same way as the grammar does. None holds a space,
// control character, non-ASCII byte, '"', '<', '>', ',' or '@', so that
// none reaches past the part sipgo would cut out.
const (
	lower = "abcdefghijklmnopqrstuvwxyz"
	upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	digit = "0123456789"
	mark  = "-_.!~*'()" // unreserved = alphanum / mark
)

var (
	asciiSpace = charSet("\t\n\v\f\r ")
	alphaChars = charSet(lower + upper)
	digitChars = charSet(digit)
	tokenChars = charSet(lower + upper + digit + "-.!%*_+`'~")
	// sipgo upper-cases the method; one without lower case is kept as is.
	methodChars = charSet(upper + digit + "-.!%*_+`'~")
	hostChars   = charSet(lower + upper + digit + "-._")
	ipv6Chars   = charSet(digit + "abcdefABCDEF:.")
	// user and password: unreserved, escaped and user-unreserved but ','
	// and '?'.
	userChars = charSet(lower + upper + digit + mark + "%&=+$;/")
	// uri-parameter and header without the separators and '='.
	uriParamChars  = charSet(lower + upper + digit + mark + "%[]/:&+$")
	uriHeaderChars = charSet(lower + upper + digit + mark + "%[]/?:+$")
	// Via parameters: token, and IPv6 addresses for received (RFC 3581).
	viaParamChars = charSet(lower + upper + digit + "-.!%*_+`'~:[]")
	// gen-value as token or host, and the inside of a quoted-string
	// without the bytes sipgo splits header parameters at.
	genValueChars = viaParamChars
	quotedChars   = charSet(lower + upper + digit + " \t!#$%&'()*+,-./:<>?@[]^_`{|}~")
	// The scheme-specific part of a non-SIP URI, which sipgo keeps whole.
	opaqueChars = charSet(lower + upper + digit + mark + "%[]/?:@&=+$;#")
)

func charSet(chars string) (set [256]bool) {
	for i := 0; i < len(chars); i++ {
		set[chars[i]] = true
	}
	return set
}

// arena holds a message's parsed headers and their parameters, so that a
// typical message costs one allocation for all of them. Headers of a
// message live as long as the message, so nothing is kept alive longer
// than with separate allocations; the parameter lists are cut to their
// length, so that appending to one never writes into another. Its size
// is what a typical message fills: allocating is costly by the byte.
type arena struct {
	kv      []sip.HeaderKV // parameters so far; kv[kvStart:] is the open list
	kvStart int

	// How many of each header are taken from the arrays below; more are
	// allocated one by one.
	n struct{ via, from, to, contact, callID, cseq, maxForwards, contentLength, contentType uint8 }

	kvBuf         [8]sip.HeaderKV
	via           [1]sip.ViaHeader
	from          [1]sip.FromHeader
	to            [1]sip.ToHeader
	contact       [1]sip.ContactHeader
	callID        [1]sip.CallIDHeader
	cseq          [1]sip.CSeqHeader
	maxForwards   [1]sip.MaxForwardsHeader
	contentLength [1]sip.ContentLengthHeader
	contentType   [1]sip.ContentTypeHeader
}

func (a *arena) init() *arena {
	a.kv = a.kvBuf[:0]
	return a
}

// take returns the next unused element of buf, counted by n, or a new
// value once buf is used up.
func take[T any](buf []T, n *uint8) *T {
	if int(*n) < len(buf) {
		p := &buf[*n]
		*n++
		return p
	}
	return new(T)
}

// kvBegin opens a new parameter list.
func (a *arena) kvBegin() { a.kvStart = len(a.kv) }

// kvAdd adds a parameter to the open list. Like sip.HeaderParams.Add,
// which sipgo's parser uses, it overwrites the value of a name already in
// the list.
func (a *arena) kvAdd(k, v string) {
	for i := a.kvStart; i < len(a.kv); i++ {
		if a.kv[i].K == k {
			a.kv[i].V = v
			return
		}
	}
	if len(a.kv) == cap(a.kv) {
		// Move the open list to a new block; the closed lists stay where
		// they are.
		open := len(a.kv) - a.kvStart
		grown := make([]sip.HeaderKV, open, open+8)
		copy(grown, a.kv[a.kvStart:])
		a.kv, a.kvStart = grown, 0
	}
	a.kv = append(a.kv, sip.HeaderKV{K: k, V: v})
}

// kvEnd closes the open list. An empty list is nil, as in sipgo.
func (a *arena) kvEnd() sip.HeaderParams {
	if len(a.kv) == a.kvStart {
		return nil
	}
	return sip.HeaderParams(a.kv[a.kvStart:len(a.kv):len(a.kv)])
}
