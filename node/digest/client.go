package digest

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
)

// ParseChallenge reads a "Digest" challenge, the value of a
// WWW-Authenticate or Proxy-Authenticate header field (RFC 3261 §20.27,
// §20.44; RFC 7616 §3.3): realm and nonce are required; qop, when offered,
// must include "auth"; algorithm is MD5 or SHA-256 (MD5 when absent).
func ParseChallenge(header string) (Challenge, error) {
	var c Challenge
	s := scanner{s: header}
	s.skipSpace()
	if !strings.EqualFold(s.token(), "Digest") {
		return c, malformed("expected a Digest challenge")
	}
	alg, qop := "", ""
	for {
		name, value, ok, err := s.param()
		if err != nil {
			return c, err
		}
		if !ok {
			break
		}
		switch strings.ToLower(name) {
		case "realm":
			c.Realm = value
		case "nonce":
			c.Nonce = value
		case "opaque":
			c.Opaque = value
		case "algorithm":
			alg = value
		case "qop":
			qop = value
		case "stale":
			c.Stale = strings.EqualFold(value, "true")
		}
	}
	if c.Realm == "" || c.Nonce == "" {
		return c, malformed("challenge without realm or nonce")
	}
	a, err := ParseAlgorithm(alg)
	if err != nil {
		return c, err
	}
	c.Algorithm = a
	if qop != "" {
		for _, q := range strings.Split(qop, ",") {
			if strings.EqualFold(strings.TrimSpace(q), "auth") {
				c.QOP = "auth"
			}
		}
		if c.QOP == "" {
			return c, malformed("challenge offers qop %s, not auth", quoteShort(qop))
		}
	}
	return c, nil
}

// Answer is the credentials header value a client with user and password
// sends for method and uri in reply to challenge c (RFC 7616 §3.4): with
// qop=auth, nc 1 and a fresh cnonce when c offers it.
func Answer(c Challenge, user, password, method, uri string) string {
	r := Response{Username: user, Realm: c.Realm, Nonce: c.Nonce, URI: uri, Opaque: c.Opaque, Algorithm: c.Algorithm}
	if c.QOP != "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		r.QOP, r.NC, r.HasNC, r.CNonce = "auth", 1, true, hex.EncodeToString(b[:])
	}
	r.Response = Compute(c.Algorithm, HA1(c.Algorithm, user, c.Realm, password), method, r)
	var b strings.Builder
	b.WriteString("Digest username=")
	writeQuoted(&b, r.Username)
	b.WriteString(", realm=")
	writeQuoted(&b, r.Realm)
	b.WriteString(", nonce=")
	writeQuoted(&b, r.Nonce)
	b.WriteString(", uri=")
	writeQuoted(&b, r.URI)
	b.WriteString(", response=")
	writeQuoted(&b, r.Response)
	if c.Algorithm != "" {
		b.WriteString(", algorithm=" + string(c.Algorithm))
	}
	if r.Opaque != "" {
		b.WriteString(", opaque=")
		writeQuoted(&b, r.Opaque)
	}
	if r.QOP != "" {
		b.WriteString(", qop=auth, nc=00000001, cnonce=")
		writeQuoted(&b, r.CNonce)
	}
	return b.String()
}
