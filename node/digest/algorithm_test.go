package digest

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
)

// RFC 7616 §3.9.1: user Mufasa, password "Circle of Life", GET /dir/index.html.
const (
	rfcUser     = "Mufasa"
	rfcPassword = "Circle of Life"
	rfcRealm    = "http-auth@example.org"
	rfcURI      = "/dir/index.html"
	rfcNonce    = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
	rfcCNonce   = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
	rfcOpaque   = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
)

// hashHex is the test's own H(), independent of the package's code.
func hashHex(alg Algorithm, s string) string {
	if alg == SHA256 {
		sum := sha256.Sum256([]byte(s))
		return hex.EncodeToString(sum[:])
	}
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// clientDigest computes a request-digest the way a client would, straight
// from RFC 7616 §3.4.1 (with qop) or RFC 2069 (without).
func clientDigest(alg Algorithm, user, realm, password, method, uri, nonce, cnonce, qop string, nc uint32) string {
	ha1 := hashHex(alg, user+":"+realm+":"+password)
	ha2 := hashHex(alg, method+":"+uri)
	if qop == "" {
		return hashHex(alg, ha1+":"+nonce+":"+ha2)
	}
	return hashHex(alg, fmt.Sprintf("%s:%s:%08x:%s:%s:%s", ha1, nonce, nc, cnonce, qop, ha2))
}

func TestComputeRFC7616Example(t *testing.T) {
	for _, tc := range []struct {
		alg  Algorithm
		want string
	}{
		{MD5, "8ca523f5e9506fed4657c9700eebdbec"},
		{SHA256, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"},
	} {
		t.Run(string(tc.alg), func(t *testing.T) {
			r := Response{
				Username: rfcUser, Realm: rfcRealm, Nonce: rfcNonce, URI: rfcURI,
				CNonce: rfcCNonce, QOP: "auth", NC: 1, HasNC: true, Algorithm: tc.alg,
			}
			if got := Compute(tc.alg, HA1(tc.alg, rfcUser, rfcRealm, rfcPassword), "GET", r); got != tc.want {
				t.Errorf("Compute = %s, want %s", got, tc.want)
			}
			// The same exchange as the RFC prints the Authorization header.
			header := `Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", ` +
				`algorithm=` + string(tc.alg) + `, nonce="` + rfcNonce + `", nc=00000001, cnonce="` + rfcCNonce +
				`", qop=auth, response="` + tc.want + `", opaque="` + rfcOpaque + `"`
			p, err := ParseResponse(header)
			if err != nil {
				t.Fatalf("ParseResponse: %v", err)
			}
			creds := NewCredentials(rfcUser, rfcRealm, rfcPassword)
			ha1, _ := creds.HA1(p.Algorithm)
			if got := Compute(p.Algorithm, ha1, "GET", p); !Equal(got, p.Response) {
				t.Errorf("Compute(parsed) = %s, want %s", got, p.Response)
			}
		})
	}
}

func TestComputeRFC2069(t *testing.T) {
	for _, alg := range []Algorithm{MD5, SHA256} {
		r := Response{Username: "bob", Realm: "sip.example.net", Nonce: "abc123", URI: "sip:sip.example.net", Algorithm: alg}
		want := clientDigest(alg, "bob", "sip.example.net", "zanzibar", "REGISTER", "sip:sip.example.net", "abc123", "", "", 0)
		if got := Compute(alg, HA1(alg, "bob", "sip.example.net", "zanzibar"), "REGISTER", r); got != want {
			t.Errorf("%s: Compute = %s, want %s", alg, got, want)
		}
		// nc and cnonce do not enter the RFC 2069 form.
		r.NC, r.HasNC, r.CNonce = 7, true, "ignored"
		if got := Compute(alg, HA1(alg, "bob", "sip.example.net", "zanzibar"), "REGISTER", r); got != want {
			t.Errorf("%s: Compute with stray nc = %s, want %s", alg, got, want)
		}
	}
	// MD5 worked out by hand from the definitions.
	ha1 := hashHex(MD5, "bob:sip.example.net:zanzibar")
	ha2 := hashHex(MD5, "INVITE:sip:alice@example.com")
	want := hashHex(MD5, ha1+":n0nce:"+ha2)
	r := Response{Nonce: "n0nce", URI: "sip:alice@example.com"}
	if got := Compute(MD5, ha1, "INVITE", r); got != want {
		t.Errorf("Compute = %s, want %s", got, want)
	}
	if got := Compute("SHA-512-256", ha1, "INVITE", r); got != "" {
		t.Errorf("Compute(unsupported) = %q, want empty", got)
	}
}

func TestComputeNC(t *testing.T) {
	r := Response{Nonce: "n", URI: "sip:a", CNonce: "c", QOP: "auth", HasNC: true}
	for _, nc := range []uint32{0, 1, 0xa, 0xff, 0x1234abcd, 0xffffffff} {
		r.NC = nc
		want := clientDigest(MD5, "u", "r", "p", "OPTIONS", "sip:a", "n", "c", "auth", nc)
		if got := Compute(MD5, HA1(MD5, "u", "r", "p"), "OPTIONS", r); got != want {
			t.Errorf("nc %#x: Compute = %s, want %s", nc, got, want)
		}
	}
	if got := string(appendNC(nil, 0x00ab00ff)); got != "00ab00ff" {
		t.Errorf("appendNC = %q", got)
	}
}

func TestHA1(t *testing.T) {
	for _, tc := range []struct {
		alg  Algorithm
		want string
	}{
		{MD5, hashHex(MD5, "Mufasa:http-auth@example.org:Circle of Life")},
		{"", hashHex(MD5, "Mufasa:http-auth@example.org:Circle of Life")},
		{"md5", hashHex(MD5, "Mufasa:http-auth@example.org:Circle of Life")},
		{SHA256, hashHex(SHA256, "Mufasa:http-auth@example.org:Circle of Life")},
		{"sha-256", hashHex(SHA256, "Mufasa:http-auth@example.org:Circle of Life")},
		{"SHA-512-256", ""},
		{"MD5-sess", ""},
	} {
		if got := HA1(tc.alg, rfcUser, rfcRealm, rfcPassword); got != tc.want {
			t.Errorf("HA1(%q) = %q, want %q", tc.alg, got, tc.want)
		}
	}
	// Longer than the stack scratch buffer.
	long := string(make([]byte, 300))
	if got, want := HA1(SHA256, long, "r", "p"), hashHex(SHA256, long+":r:p"); got != want {
		t.Errorf("HA1(long) = %s, want %s", got, want)
	}
}

func TestNewCredentials(t *testing.T) {
	c := NewCredentials(rfcUser, rfcRealm, rfcPassword)
	if want := hashHex(MD5, rfcUser+":"+rfcRealm+":"+rfcPassword); c.MD5 != want {
		t.Errorf("MD5 = %s, want %s", c.MD5, want)
	}
	if want := hashHex(SHA256, rfcUser+":"+rfcRealm+":"+rfcPassword); c.SHA256 != want {
		t.Errorf("SHA256 = %s, want %s", c.SHA256, want)
	}
	for _, tc := range []struct {
		creds Credentials
		alg   Algorithm
		want  string
		ok    bool
	}{
		{c, MD5, c.MD5, true},
		{c, "", c.MD5, true},
		{c, SHA256, c.SHA256, true},
		{c, "Sha-256", c.SHA256, true},
		{c, "SHA-512-256", "", false},
		{Credentials{}, MD5, "", false},
		{Credentials{}, SHA256, "", false},
		{Credentials{MD5: c.MD5}, SHA256, "", false},
	} {
		got, ok := tc.creds.HA1(tc.alg)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%+v.HA1(%q) = %q, %v; want %q, %v", tc.creds, tc.alg, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseAlgorithm(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Algorithm
		err  string
	}{
		{"", MD5, ""},
		{"MD5", MD5, ""},
		{"md5", MD5, ""},
		{"SHA-256", SHA256, ""},
		{"sha-256", SHA256, ""},
		{"SHA256", "", `digest: unsupported algorithm "SHA256"`},
		{"MD5-sess", "", `digest: unsupported algorithm "MD5-sess"`},
		{"SHA-512-256", "", `digest: unsupported algorithm "SHA-512-256"`},
		{" MD5", "", `digest: unsupported algorithm " MD5"`},
	} {
		got, err := ParseAlgorithm(tc.in)
		if tc.err == "" {
			if err != nil || got != tc.want {
				t.Errorf("ParseAlgorithm(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
			continue
		}
		if err == nil || err.Error() != tc.err || !errors.Is(err, ErrUnsupportedAlgorithm) {
			t.Errorf("ParseAlgorithm(%q) error = %v, want %q wrapping ErrUnsupportedAlgorithm", tc.in, err, tc.err)
		}
	}
}

func TestEqual(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"", "", true},
		{"8ca523f5e9506fed4657c9700eebdbec", "8ca523f5e9506fed4657c9700eebdbec", true},
		{"8ca523f5e9506fed4657c9700eebdbec", "8CA523F5E9506FED4657C9700EEBDBEC", true},
		{"8ca523f5e9506fed4657c9700eebdbec", "8ca523f5e9506fed4657c9700eebdbed", false},
		{"8ca523f5e9506fed4657c9700eebdbec", "8ca523f5e9506fed4657c9700eebdbe", false},
		{"0a", "0A", true},
		{"0a", "0b", false},
		{"@", "`", false}, // one below 'A' and one below 'a'
		{"[", "{", false}, // one above 'Z' and one above 'z'
		{"", "0", false},
	} {
		if got := Equal(tc.a, tc.b); got != tc.want {
			t.Errorf("Equal(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
	for c := 0; c < 256; c++ {
		want := byte(c)
		if 'A' <= c && c <= 'Z' {
			want += 'a' - 'A'
		}
		if got := lowerASCII(byte(c)); got != want {
			t.Errorf("lowerASCII(%#x) = %#x, want %#x", c, got, want)
		}
	}
}
