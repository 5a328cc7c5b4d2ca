package digest

import (
	"strings"
	"testing"
)

func TestChallengeString(t *testing.T) {
	for _, tc := range []struct {
		c    Challenge
		want string
	}{
		{
			Challenge{Realm: "example.com", Nonce: "abc", Opaque: "xyz", Algorithm: MD5, QOP: "auth"},
			`Digest realm="example.com", nonce="abc", opaque="xyz", algorithm=MD5, qop="auth"`,
		},
		{
			Challenge{Realm: "example.com", Nonce: "abc", Algorithm: SHA256, QOP: "auth", Stale: true},
			`Digest realm="example.com", nonce="abc", algorithm=SHA-256, qop="auth", stale=true`,
		},
		{
			Challenge{Realm: "example.com", Nonce: "abc"},
			`Digest realm="example.com", nonce="abc", algorithm=MD5`,
		},
		{
			Challenge{Realm: "sha-256 spelled low", Nonce: "n", Algorithm: "sha-256"},
			`Digest realm="sha-256 spelled low", nonce="n", algorithm=SHA-256`,
		},
		{
			Challenge{Realm: `say "hi" \o/`, Nonce: "n", Opaque: "a\r\nX-Injected: 1", Algorithm: "MD5-sess\r\nX: y"},
			`Digest realm="say \"hi\" \\o/", nonce="n", opaque="aX-Injected: 1", algorithm=MD5-sessXy`,
		},
	} {
		if got := tc.c.String(); got != tc.want {
			t.Errorf("String() =\n %s\nwant\n %s", got, tc.want)
		}
	}
}

// parseChallenge is a deliberately separate reading of a challenge: the
// scheme, then name=value pairs, values quoted or not, with \-escapes.
func parseChallenge(t *testing.T, s string) map[string]string {
	t.Helper()
	rest, ok := strings.CutPrefix(s, "Digest ")
	if !ok {
		t.Fatalf("no Digest scheme in %q", s)
	}
	params := map[string]string{}
	for rest != "" {
		name, after, ok := strings.Cut(rest, "=")
		if !ok {
			t.Fatalf("no '=' in %q", rest)
		}
		var value strings.Builder
		i := 0
		if strings.HasPrefix(after, `"`) {
			for i = 1; i < len(after) && after[i] != '"'; i++ {
				if after[i] == '\\' {
					i++
				}
				value.WriteByte(after[i])
			}
			i++ // closing quote
		} else {
			for ; i < len(after) && after[i] != ','; i++ {
				value.WriteByte(after[i])
			}
		}
		params[name] = value.String()
		rest = strings.TrimPrefix(after[i:], ", ")
	}
	return params
}

func TestChallengeRoundTrip(t *testing.T) {
	n := newTestNonces(t, NonceConfig{})
	for _, c := range []Challenge{
		{Realm: "example.com", Nonce: n.New(t0), Opaque: "o", Algorithm: SHA256, QOP: "auth"},
		{Realm: "example.com", Nonce: n.New(t0), Algorithm: MD5, QOP: "auth", Stale: true},
		{Realm: `odd "realm", with\backslash`, Nonce: "n=,", Opaque: `"`, Algorithm: MD5, QOP: "auth"},
	} {
		s := c.String()
		p := parseChallenge(t, s)
		alg, err := ParseAlgorithm(p["algorithm"])
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		got := Challenge{Realm: p["realm"], Nonce: p["nonce"], Opaque: p["opaque"], Algorithm: alg, QOP: p["qop"], Stale: p["stale"] == "true"}
		if got != c {
			t.Errorf("round trip of %+v through %s gave %+v", c, s, got)
		}
		if _, quoted := p["stale"]; quoted && strings.Contains(s, `stale="`) {
			t.Errorf("stale is quoted in %s", s)
		}
		if strings.Contains(s, `algorithm="`) {
			t.Errorf("algorithm is quoted in %s", s)
		}
	}
}
