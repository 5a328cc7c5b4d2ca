package digest

import "strings"

// Challenge is one Digest challenge, the value of a WWW-Authenticate (401,
// RFC 3261 §22.2) or Proxy-Authenticate (407, RFC 3261 §22.3) header field,
// with the parameters of RFC 7616 §3.3 that a SIP server sends.
type Challenge struct {
	Realm     string    // protection space, shown to the user (RFC 7616 §3.3, RFC 3261 §22.1)
	Nonce     string    // from [Nonces.New] (RFC 7616 §3.3)
	Opaque    string    // returned unchanged by the client; omitted when empty (RFC 7616 §3.3)
	Algorithm Algorithm // "" is written as MD5 (RFC 7616 §3.3)
	Stale     bool      // the previous nonce was stale but the credentials were right (RFC 7616 §3.3)
	QOP       string    // "auth", or "" for an RFC 2069 challenge without qop (RFC 7616 §3.3)
}

// String formats the challenge as a header field value:
//
//	Digest realm="…", nonce="…", opaque="…", algorithm=MD5, qop="auth", stale=true
//
// Realm, nonce, opaque and qop are quoted-strings and algorithm and stale
// tokens, as RFC 7616 §3.3 requires. Inside quoted-strings '"' and '\' are
// escaped as quoted-pairs (RFC 3261 §25.1); control characters other than
// HTAB, which a quoted-string cannot carry, are dropped. Opaque and qop are
// left out when empty and stale when false.
func (c Challenge) String() string {
	var b strings.Builder
	b.Grow(64 + len(c.Realm) + len(c.Nonce) + len(c.Opaque) + len(c.QOP))
	b.WriteString("Digest realm=")
	writeQuoted(&b, c.Realm)
	b.WriteString(", nonce=")
	writeQuoted(&b, c.Nonce)
	if c.Opaque != "" {
		b.WriteString(", opaque=")
		writeQuoted(&b, c.Opaque)
	}
	b.WriteString(", algorithm=")
	if alg, ok := canonical(c.Algorithm); ok {
		b.WriteString(string(alg))
	} else {
		for i := 0; i < len(c.Algorithm); i++ {
			if isTokenChar(c.Algorithm[i]) {
				b.WriteByte(c.Algorithm[i])
			}
		}
	}
	if c.QOP != "" {
		b.WriteString(", qop=")
		writeQuoted(&b, c.QOP)
	}
	if c.Stale {
		b.WriteString(", stale=true")
	}
	return b.String()
}

// writeQuoted writes s as a quoted-string (RFC 3261 §25.1).
func writeQuoted(b *strings.Builder, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case isControl(c):
			// CR and LF cannot be escaped at all; no control belongs here.
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}

// isControl reports an ASCII control character other than HTAB.
func isControl(c byte) bool {
	return (c < 0x20 && c != '\t') || c == 0x7f
}
