package sdpedit

import (
	"bytes"
	"slices"
	"strings"

	"github.com/pion/sdp/v3"
)

// MaxSize is the largest body Parse and Rewrite accept. A SIP message over
// UDP cannot carry more, and no real offer comes near it.
const MaxSize = 64 << 10

// line is one "<type>=<value>" line of the body (RFC 8866 §5), without its
// line ending.
type line struct {
	text string // whole line, e.g. "a=rtpmap:0 PCMU/8000"
	num  int    // 1-based line number in the input, for error messages
}

func (l line) typ() byte     { return l.text[0] }
func (l line) value() string { return l.text[2:] }

// attrKey returns the attribute name of an a= line: the text up to the first
// colon (RFC 8866 §5.13: a=<attribute-name>[:<attribute-value>]).
func (l line) attrKey() (key, val string) {
	v := l.value()
	if i := strings.IndexByte(v, ':'); i > 0 {
		return v[:i], v[i+1:]
	}
	return v, ""
}

// splitLines cuts the body into lines. RFC 8866 §5 wants CRLF; LF alone is
// accepted too (RFC 8866 §5 asks parsers to), and blank lines are dropped,
// chiefly the empty one after a final CRLF. A CR or NUL inside a line is
// refused: RFC 8866 §9 excludes them from every field, and letting them
// through would split a line differently here and in pion/sdp.
func splitLines(raw []byte) ([]line, error) {
	if len(raw) > MaxSize {
		return nil, &Error{Err: ErrTooLarge}
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, &Error{Err: ErrEmpty}
	}
	s := string(raw)
	lines := make([]line, 0, strings.Count(s, "\n")+1)
	for num := 1; s != ""; num++ {
		t := s
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			t, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		t = strings.TrimSuffix(t, "\r")
		if t == "" {
			continue
		}
		if len(t) < 2 || t[1] != '=' || t[0] < 'a' || t[0] > 'z' {
			return nil, &Error{Line: num, Msg: "not a <type>=<value> line: " + quote(t)}
		}
		if strings.ContainsAny(t, "\r\x00") {
			return nil, &Error{Line: num, Msg: "CR or NUL inside a line"}
		}
		lines = append(lines, line{text: t, num: num})
	}
	return lines, nil
}

// fields splits on runs of spaces and tabs, the only separators pion/sdp's
// lexer knows (RFC 8866 §9 grammar: SP).
func fields(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' })
}

// fieldCounts gives the number of fields of the lines pion/sdp reads field by
// field (RFC 8866 §5.1, §5.2, §5.7, §5.9). pion does not check that such a
// line ends after its last field: "c=IN IP4 192.0.2.1 t=0 0" would be two
// lines to it and one here, so the count is checked before pion runs.
func checkFields(l line) string {
	switch l.typ() {
	case 'v':
		if countFields(l.value()) != 1 {
			return "v= line must be \"v=0\""
		}
	case 'o':
		if countFields(l.value()) > 6 { // pion fills in a missing <addrtype> and <unicast-address>
			return "o= line has more than 6 fields"
		}
	case 'c':
		if countFields(l.value()) != 3 {
			return "c= line needs <nettype> <addrtype> <connection-address>"
		}
	case 't':
		if countFields(l.value()) != 2 {
			return "t= line needs <start-time> <stop-time>"
		}
	}
	return ""
}

// countFields is len(fields(s)) without the allocation.
func countFields(s string) int {
	n, in := 0, false
	for i := 0; i < len(s); i++ {
		sep := s[i] == ' ' || s[i] == '\t'
		if !sep && !in {
			n++
		}
		in = !sep
	}
	return n
}

// mfields are the parts of an m= line (RFC 8866 §5.14):
// m=<media> <port>[/<number of ports>] <proto> <fmt> ...
type mfields struct {
	kind             string
	port             int
	portOff, portEnd int // byte offsets of the <port>[/<n>] token in the line text
	proto            string
	fmts             []string
}

// parseMLine splits an m= line. Whitespace is one or more spaces or tabs,
// as pion/sdp's lexer allows.
func parseMLine(l line, media int) (mfields, error) {
	var m mfields
	fail := func(msg string) (mfields, error) {
		return m, &Error{Line: l.num, Media: media, MLine: true, Msg: msg}
	}
	t := l.text
	i := 2
	next := func() (string, int, int) {
		for i < len(t) && (t[i] == ' ' || t[i] == '\t') {
			i++
		}
		start := i
		for i < len(t) && t[i] != ' ' && t[i] != '\t' {
			i++
		}
		return t[start:i], start, i
	}
	m.kind, _, _ = next()
	if m.kind == "" {
		return fail("missing media type")
	}
	var port string
	port, m.portOff, m.portEnd = next()
	if port == "" {
		return fail("missing port")
	}
	num, count, hasCount := strings.Cut(port, "/")
	p, ok := atoi(num, 65535)
	if !ok {
		return fail("bad port " + quote(port))
	}
	if n, ok := atoi(count, 65535); hasCount && (!ok || n == 0) {
		return fail("bad port count " + quote(port))
	}
	m.port = p
	if m.proto, _, _ = next(); m.proto == "" {
		return fail("missing transport protocol")
	}
	for {
		f, _, _ := next()
		if f == "" {
			break
		}
		m.fmts = append(m.fmts, f)
	}
	if len(m.fmts) == 0 {
		return fail("no media formats")
	}
	return m, nil
}

// atoi parses a decimal number in [0, max]; no sign, no leading '+'.
func atoi(s string, max int) (int, bool) {
	if s == "" || len(s) > 10 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n <= max
}

// pion/sdp only takes the media types and proto tokens IANA had registered
// when it was written (RFC 8866 §8.2.2, §8.2.3); T.38 fax re-offers
// ("m=image 0 udptl t38", ITU-T T.38 Annex D) are refused. Those m= lines
// are handed to pion in a neutral form; this package reads m= lines itself.
var (
	pionMedia  = []string{"audio", "video", "text", "application", "message"}
	pionProtos = []string{"UDP", "RTP", "AVP", "SAVP", "SAVPF", "TLS", "DTLS",
		"SCTP", "AVPF", "TCP", "MSRP", "BFCP", "UDT", "IX", "MRCPv2", "FEC"}
)

// pionLine returns the text pion/sdp is given for an m= line.
func pionLine(l line, m mfields) string {
	known := slices.Contains(pionMedia, m.kind)
	for tok := range strings.SplitSeq(m.proto, "/") {
		known = known && slices.Contains(pionProtos, tok)
	}
	if known {
		return l.text
	}
	return "m=application " + l.text[m.portOff:m.portEnd] + " UDP " + strings.Join(m.fmts, " ")
}

// pionParse runs pion/sdp over the lines (m= lines as given in mtext) and,
// when it fails, returns the index of the line it failed on: pion's errors carry a byte
// offset at best. Its parser is a state machine fed line by line that
// accepts end of input in every state, so a prefix of the body parses
// exactly when the failing line lies beyond it; a binary search over
// prefixes finds that line in O(log n) parses, on the error path only.
func pionParse(lines []line, mtext map[int]string) (*sdp.SessionDescription, int, error) {
	var b strings.Builder
	b.Grow(len(lines) * 48)
	ends := make([]int, len(lines))
	for i, l := range lines {
		if t, ok := mtext[i]; ok {
			b.WriteString(t)
		} else {
			b.WriteString(l.text)
		}
		b.WriteString("\r\n")
		ends[i] = b.Len()
	}
	text := b.String()
	var sd sdp.SessionDescription
	err := sd.UnmarshalString(text)
	if err == nil {
		return &sd, 0, nil
	}
	lo, hi := 0, len(lines)-1
	for lo < hi {
		mid := (lo + hi) / 2
		var probe sdp.SessionDescription
		if probe.UnmarshalString(text[:ends[mid]]) != nil {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return nil, lo, err
}

// equalFold is strings.EqualFold for ASCII attribute names.
func equalFold(a, b string) bool { return strings.EqualFold(a, b) }
