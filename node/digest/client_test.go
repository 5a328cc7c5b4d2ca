package digest

import (
	"errors"
	"testing"
	"time"
)

// A client's Answer to a challenge passes the server's Verify with the
// account's stored credentials, and fails it with a wrong password.
func TestClientAnswerVerifies(t *testing.T) {
	const realm, user, method, uri = "trunk", "node-a", "INVITE", "sip:+4930123@127.0.0.1:5080"
	nonces, err := NewNonces(NonceConfig{Secret: []byte("0123456789abcdef0123"), Lifetime: time.Minute}, realm)
	if err != nil {
		t.Fatal(err)
	}
	creds := NewCredentials(user, realm, "secret") // what the server stores
	now := time.Now()
	for _, alg := range []Algorithm{MD5, SHA256} {
		for _, qop := range []string{"auth", ""} {
			challenge := func() Challenge {
				t.Helper()
				ch := Challenge{Realm: realm, Nonce: nonces.New(now), Opaque: "o1", Algorithm: alg, QOP: qop}
				parsed, err := ParseChallenge(ch.String())
				if err != nil {
					t.Fatalf("ParseChallenge(%q): %v", ch.String(), err)
				}
				if parsed != ch {
					t.Fatalf("parsed %+v, want %+v", parsed, ch)
				}
				return parsed
			}
			answer := func(ch Challenge, password, method string) Response {
				t.Helper()
				hdr := Answer(ch, user, password, method, uri)
				r, err := ParseResponse(hdr)
				if err != nil {
					t.Fatalf("ParseResponse(%q): %v", hdr, err)
				}
				if r.Opaque != "o1" || r.QOP != qop || r.Nonce != ch.Nonce || r.URI != uri || r.Username != user {
					t.Fatalf("%s qop %q: answer %+v to %+v", alg, qop, r, ch)
				}
				return r
			}

			// The right password: OK, once.
			ch := challenge()
			r := answer(ch, "secret", method)
			if res, err := nonces.Verify(method, r, creds, realm, now); res != OK || err != nil {
				t.Errorf("%s qop %q: right password: %v %v, want ok", alg, qop, res, err)
			}
			if qop != "" { // nc 1 is now used (RFC 7616 §5.5)
				if res, err := nonces.Verify(method, r, creds, realm, now); res != Replay || !errors.Is(err, ErrReplay) {
					t.Errorf("%s qop %q: the same answer again: %v %v, want replay", alg, qop, res, err)
				}
			}

			// A wrong password, and the right one for another method, fail.
			ch = challenge()
			r = answer(ch, "guess", method)
			if res, err := nonces.Verify(method, r, creds, realm, now); res != Fail || !errors.Is(err, ErrMismatch) {
				t.Errorf("%s qop %q: wrong password: %v %v, want fail (mismatch)", alg, qop, res, err)
			}
			r = answer(ch, "secret", "REGISTER")
			if res, err := nonces.Verify(method, r, creds, realm, now); res != Fail || !errors.Is(err, ErrMismatch) {
				t.Errorf("%s qop %q: answer for REGISTER: %v %v, want fail (mismatch)", alg, qop, res, err)
			}
			// A failed answer commits nothing: the right one still passes.
			r = answer(ch, "secret", method)
			if res, err := nonces.Verify(method, r, creds, realm, now); res != OK || err != nil {
				t.Errorf("%s qop %q: right password after wrong ones: %v %v, want ok", alg, qop, res, err)
			}
		}
	}
	for _, bad := range []string{"Basic realm=x", `Digest nonce="n"`, `Digest realm="r", nonce="n", qop="auth-int"`, `Digest realm="r", nonce="n", algorithm=SHA-512`} {
		if _, err := ParseChallenge(bad); err == nil {
			t.Errorf("ParseChallenge(%q) accepted", bad)
		}
	}
}
