package digest

import (
	"testing"
	"time"
)

func TestClientAnswerVerifies(t *testing.T) {
	nonces, err := NewNonces(NonceConfig{Secret: []byte("0123456789abcdef0123"), Lifetime: time.Minute}, "trunk")
	if err != nil {
		t.Fatal(err)
	}
	for _, qop := range []string{"auth", ""} {
		ch := Challenge{Realm: "trunk", Nonce: nonces.New(time.Now()), Opaque: "o1", Algorithm: MD5, QOP: qop}
		parsed, err := ParseChallenge(ch.String())
		if err != nil {
			t.Fatalf("ParseChallenge(%q): %v", ch.String(), err)
		}
		if parsed != ch {
			t.Fatalf("parsed %+v, want %+v", parsed, ch)
		}
		hdr := Answer(parsed, "node-a", "secret", "INVITE", "sip:+4930123@127.0.0.1:5080")
		r, err := ParseResponse(hdr)
		if err != nil {
			t.Fatalf("ParseResponse(%q): %v", hdr, err)
		}
		want := Compute(MD5, HA1(MD5, "node-a", "trunk", "secret"), "INVITE", r)
		if r.Response != want || r.Opaque != "o1" || r.QOP != qop {
			t.Fatalf("answer %+v: response %s, want %s", r, r.Response, want)
		}
		wrong := Compute(MD5, HA1(MD5, "node-a", "trunk", "guess"), "INVITE", r)
		if wrong == r.Response {
			t.Fatal("a wrong password gives the same digest")
		}
	}
	for _, bad := range []string{"Basic realm=x", `Digest nonce="n"`, `Digest realm="r", nonce="n", qop="auth-int"`, `Digest realm="r", nonce="n", algorithm=SHA-512`} {
		if _, err := ParseChallenge(bad); err == nil {
			t.Errorf("ParseChallenge(%q) accepted", bad)
		}
	}
}
