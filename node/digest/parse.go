package digest

import (
	"errors"
	"fmt"
	"strings"
)

// ErrMalformed is matched (errors.Is) by every error of [ParseResponse]: the
// header value is not a usable Digest response (RFC 3261 §25.1
// "credentials", RFC 7616 §3.4). Its own text is generic; each returned
// error names what is wrong in a short phrase such as `digest: missing
// nonce`, fit to be the reason phrase of a 400 response.
var ErrMalformed = errors.New("digest: malformed credentials")

// Response is a parsed Digest response, the value of an Authorization or
// Proxy-Authorization header field (RFC 3261 §20.7, §20.28, §22.4; RFC 7616
// §3.4). Quoted-string values are unquoted and unescaped.
type Response struct {
	Username string // "username" (RFC 7616 §3.4)
	Realm    string // "realm", echoed from the challenge (RFC 7616 §3.4)
	Nonce    string // "nonce", echoed from the challenge (RFC 7616 §3.4)
	URI      string // "uri", the Request-URI (RFC 7616 §3.4, RFC 3261 §22.4)
	Response string // "response", the hex request-digest (RFC 7616 §3.4.1)
	CNonce   string // "cnonce", required with qop (RFC 7616 §3.4)
	Opaque   string // "opaque", echoed from the challenge (RFC 7616 §3.4)
	QOP      string // "qop" as sent: "auth" in any case, or "" for RFC 2069 form
	NC       uint32 // "nc", the nonce-count (RFC 7616 §3.4); counts only with qop
	HasNC    bool   // whether "nc" was present
	// Algorithm is the "algorithm" parameter, MD5 when absent (RFC 7616
	// §3.3); ParseResponse accepts only MD5 and SHA-256.
	Algorithm Algorithm
}

// Digest parameters ParseResponse knows, as bits for duplicate detection.
const (
	pUsername = 1 << iota
	pRealm
	pNonce
	pURI
	pResponse
	pAlgorithm
	pCNonce
	pOpaque
	pQOP
	pNC
)

// ParseResponse parses a "Digest" credentials header value (RFC 3261 §25.1
// "credentials" and "digest-response", RFC 7616 §3.4):
//
//	Digest username="alice", realm="example.com", nonce="…", uri="sip:…", response="…"
//
// The scheme and parameter names compare case-insensitively; whitespace may
// surround '=' and ','; a value is a token or a quoted-string with
// quoted-pair escapes (RFC 3261 §25.1); empty list elements are skipped.
// Unknown parameters are ignored and a known parameter given twice is an
// error. username, realm, nonce, uri and response are required and must be
// non-empty. With qop (only "auth" is supported), cnonce and nc are required
// too and nc must be 8 lowercase hex digits (RFC 3261 §25.1 nc-value). An
// absent algorithm means MD5; any but MD5 and SHA-256 is an error that also
// matches [ErrUnsupportedAlgorithm].
//
// Every error matches [ErrMalformed] and has a short message naming the
// problem, for example `digest: missing nonce` or `digest: bad nc "zz"`.
func ParseResponse(header string) (Response, error) {
	var r Response
	s := scanner{s: header}
	s.skipSpace()
	scheme := s.token()
	if !strings.EqualFold(scheme, "Digest") || (!s.done() && !isSpace(s.s[s.i])) {
		return r, malformed("expected Digest credentials")
	}
	var seen, bit int
	var alg string
	for {
		name, value, ok, err := s.param()
		if err != nil {
			return r, err
		}
		if !ok {
			break
		}
		var dst *string
		switch {
		case strings.EqualFold(name, "username"):
			bit, dst = pUsername, &r.Username
		case strings.EqualFold(name, "realm"):
			bit, dst = pRealm, &r.Realm
		case strings.EqualFold(name, "nonce"):
			bit, dst = pNonce, &r.Nonce
		case strings.EqualFold(name, "uri"):
			bit, dst = pURI, &r.URI
		case strings.EqualFold(name, "response"):
			bit, dst = pResponse, &r.Response
		case strings.EqualFold(name, "algorithm"):
			bit, dst = pAlgorithm, &alg
		case strings.EqualFold(name, "cnonce"):
			bit, dst = pCNonce, &r.CNonce
		case strings.EqualFold(name, "opaque"):
			bit, dst = pOpaque, &r.Opaque
		case strings.EqualFold(name, "qop"):
			bit, dst = pQOP, &r.QOP
		case strings.EqualFold(name, "nc"):
			bit = pNC
			nc, ok := parseNC(value)
			if !ok {
				return r, malformed("bad nc %s", quoteShort(value))
			}
			r.NC, r.HasNC = nc, true
		default:
			continue // RFC 3261 §25.1 auth-param: extensions are ignored
		}
		if seen&bit != 0 {
			return r, malformed("duplicate %s", strings.ToLower(name))
		}
		seen |= bit
		if dst != nil {
			*dst = value
		}
	}

	for _, req := range [...]struct {
		bit   int
		name  string
		value string
	}{
		{pUsername, "username", r.Username},
		{pRealm, "realm", r.Realm},
		{pNonce, "nonce", r.Nonce},
		{pURI, "uri", r.URI},
		{pResponse, "response", r.Response},
	} {
		if seen&req.bit == 0 {
			return r, malformed("missing %s", req.name)
		}
		if req.value == "" {
			return r, malformed("empty %s", req.name)
		}
	}
	a, ok := canonical(Algorithm(alg))
	if !ok {
		return r, &detailError{
			msg:  "digest: unsupported algorithm " + quoteShort(alg),
			errs: []error{ErrMalformed, ErrUnsupportedAlgorithm},
		}
	}
	r.Algorithm = a
	if seen&pQOP != 0 {
		if !strings.EqualFold(r.QOP, "auth") {
			return r, malformed("unsupported qop %s", quoteShort(r.QOP))
		}
		if r.CNonce == "" {
			return r, malformed("missing cnonce")
		}
		if !r.HasNC {
			return r, malformed("missing nc")
		}
	}
	return r, nil
}

// parseNC parses an nc-value, exactly 8 LHEX (RFC 3261 §25.1).
func parseNC(s string) (uint32, bool) {
	if len(s) != 8 {
		return 0, false
	}
	var n uint32
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case '0' <= c && c <= '9':
			n = n<<4 | uint32(c-'0')
		case 'a' <= c && c <= 'f':
			n = n<<4 | uint32(c-'a'+10)
		default:
			return 0, false
		}
	}
	return n, true
}

func malformed(format string, args ...any) error {
	return &detailError{
		msg:  "digest: " + fmt.Sprintf(format, args...),
		errs: []error{ErrMalformed},
	}
}

// scanner walks a comma-separated auth-param list (RFC 3261 §25.1:
// auth-param = auth-param-name EQUAL ( token / quoted-string ), with
// EQUAL and COMMA allowing whitespace on either side).
type scanner struct {
	s string
	i int
}

func (s *scanner) done() bool { return s.i >= len(s.s) }

func (s *scanner) skipSpace() {
	for s.i < len(s.s) && isSpace(s.s[s.i]) {
		s.i++
	}
}

// token consumes and returns a run of token characters, possibly empty.
func (s *scanner) token() string {
	start := s.i
	for s.i < len(s.s) && isTokenChar(s.s[s.i]) {
		s.i++
	}
	return s.s[start:s.i]
}

// param returns the next name and value; ok is false at the end of input.
func (s *scanner) param() (name, value string, ok bool, err error) {
	for {
		s.skipSpace()
		if s.done() {
			return "", "", false, nil
		}
		if s.s[s.i] != ',' {
			break
		}
		s.i++
	}
	name = s.token()
	if name == "" {
		return "", "", false, malformed("expected parameter name at %s", quoteShort(s.s[s.i:]))
	}
	short := name
	if len(short) > 32 {
		short = short[:32] + "..."
	}
	s.skipSpace()
	if s.done() || s.s[s.i] != '=' {
		return "", "", false, malformed("expected \"=\" after %s", short)
	}
	s.i++
	s.skipSpace()
	if !s.done() && s.s[s.i] == '"' {
		if value, err = s.quoted(short); err != nil {
			return "", "", false, err
		}
	} else if value = s.token(); value == "" {
		return "", "", false, malformed("missing value for %s", short)
	}
	s.skipSpace()
	if !s.done() && s.s[s.i] != ',' {
		return "", "", false, malformed("expected \",\" after %s", short)
	}
	return name, value, true, nil
}

// quoted consumes a quoted-string at s.i and returns its content with
// quoted-pairs resolved (RFC 3261 §25.1). Control characters other than
// HTAB are refused, escaped or not. Without escapes the result shares the
// input's memory.
func (s *scanner) quoted(name string) (string, error) {
	s.i++ // opening quote
	start := s.i
	var b []byte // non-nil once an escape has been seen
	for s.i < len(s.s) {
		c := s.s[s.i]
		switch {
		case c == '"':
			s.i++
			if b == nil {
				return s.s[start : s.i-1], nil
			}
			return string(b), nil
		case c == '\\':
			if s.i+1 >= len(s.s) {
				s.i = len(s.s)
				continue
			}
			if b == nil {
				b = append(make([]byte, 0, len(s.s)-start), s.s[start:s.i]...)
			}
			c = s.s[s.i+1]
			if isControl(c) {
				return "", malformed("control character in %s", name)
			}
			b = append(b, c)
			s.i += 2
		case isControl(c):
			return "", malformed("control character in %s", name)
		default:
			if b != nil {
				b = append(b, c)
			}
			s.i++
		}
	}
	return "", malformed("unterminated quoted string in %s", name)
}

// isSpace reports linear whitespace; CR and LF are accepted in case the
// header still carries line folding (RFC 3261 §7.3.1, §25.1 LWS).
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n'
}

// isTokenChar reports a token character (RFC 3261 §25.1 token, plus the
// further tchar of RFC 9110 §5.6.2 that some HTTP-derived stacks emit).
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-.!%*_+`'~#$&^|", c) >= 0
}
