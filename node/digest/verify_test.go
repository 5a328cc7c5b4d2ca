package digest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/callmesh/callmesh/node/internal/race"
)

// request builds the response a client with password would send to nonce.
func request(alg Algorithm, user, password, nonce, qop string, nc uint32) Response {
	r := Response{
		Username: user, Realm: testRealm, Nonce: nonce, URI: "sip:" + testRealm,
		QOP: qop, Algorithm: alg,
	}
	if qop != "" {
		r.CNonce, r.NC, r.HasNC = "6b8b4567", nc, true
	}
	r.Response = clientDigest(alg, user, testRealm, password, "REGISTER", r.URI, nonce, r.CNonce, qop, nc)
	return r
}

func TestVerify(t *testing.T) {
	n := newTestNonces(t, NonceConfig{})
	alice := NewCredentials("alice", testRealm, "secret")
	md5Only := Credentials{MD5: alice.MD5}
	for _, tc := range []struct {
		name  string
		r     func(nonce string) Response
		creds Credentials
		realm string
		want  Result
		err   error
	}{
		{"MD5", func(s string) Response { return request(MD5, "alice", "secret", s, "auth", 1) }, alice, testRealm, OK, nil},
		{"SHA-256", func(s string) Response { return request(SHA256, "alice", "secret", s, "auth", 1) }, alice, testRealm, OK, nil},
		{"RFC 2069 MD5", func(s string) Response { return request(MD5, "alice", "secret", s, "", 0) }, alice, testRealm, OK, nil},
		{"RFC 2069 SHA-256", func(s string) Response { return request(SHA256, "alice", "secret", s, "", 0) }, alice, testRealm, OK, nil},
		{"algorithm absent means MD5", func(s string) Response {
			r := request(MD5, "alice", "secret", s, "auth", 1)
			r.Algorithm = ""
			return r
		}, alice, testRealm, OK, nil},
		{"uppercase hex", func(s string) Response {
			r := request(MD5, "alice", "secret", s, "auth", 1)
			r.Response = fmt.Sprintf("%X", mustHex(t, r.Response))
			return r
		}, alice, testRealm, OK, nil},
		{"qop hashed as sent", func(s string) Response {
			r := request(MD5, "alice", "secret", s, "AUTH", 1)
			return r
		}, alice, testRealm, OK, nil},
		{"wrong password", func(s string) Response { return request(MD5, "alice", "guess", s, "auth", 1) }, alice, testRealm, Fail, ErrMismatch},
		{"wrong password SHA-256", func(s string) Response { return request(SHA256, "alice", "guess", s, "auth", 1) }, alice, testRealm, Fail, ErrMismatch},
		{"unknown user", func(s string) Response { return request(MD5, "mallory", "secret", s, "auth", 1) }, Credentials{}, testRealm, Fail, ErrMismatch},
		{"unknown user SHA-256", func(s string) Response { return request(SHA256, "mallory", "x", s, "auth", 1) }, Credentials{}, testRealm, Fail, ErrMismatch},
		{"algorithm not in credentials", func(s string) Response { return request(SHA256, "alice", "secret", s, "auth", 1) }, md5Only, testRealm, Fail, ErrMismatch},
		{"corrupt stored HA1", func(s string) Response { return request(MD5, "alice", "secret", s, "auth", 1) }, Credentials{MD5: alice.MD5[:31]}, testRealm, Fail, ErrMismatch},
		{"other user's response", func(s string) Response { return request(MD5, "bob", "secret", s, "auth", 1) }, alice, testRealm, Fail, ErrMismatch},
		{"wrong method", func(s string) Response {
			r := request(MD5, "alice", "secret", s, "auth", 1)
			r.Response = clientDigest(MD5, "alice", testRealm, "secret", "INVITE", r.URI, s, r.CNonce, "auth", 1)
			return r
		}, alice, testRealm, Fail, ErrMismatch},
		{"wrong realm in response", func(s string) Response {
			r := request(MD5, "alice", "secret", s, "auth", 1)
			r.Realm = "other.example.com"
			return r
		}, alice, testRealm, Fail, ErrRealm},
		{"verifier for another realm", func(s string) Response { return request(MD5, "alice", "secret", s, "auth", 1) }, alice, "other.example.com", Fail, ErrRealm},
		{"nonce not ours", func(string) Response { return request(MD5, "alice", "secret", rfcNonce, "auth", 1) }, alice, testRealm, Fail, ErrNonce},
		{"unsupported algorithm", func(s string) Response {
			r := request(MD5, "alice", "secret", s, "auth", 1)
			r.Algorithm = "MD5-sess"
			return r
		}, alice, testRealm, Fail, ErrUnsupportedAlgorithm},
		{"unsupported qop", func(s string) Response {
			r := request(MD5, "alice", "secret", s, "auth-int", 1)
			return r
		}, alice, testRealm, Fail, ErrMalformed},
		{"qop without nc", func(s string) Response {
			r := request(MD5, "alice", "secret", s, "auth", 1)
			r.HasNC = false
			return r
		}, alice, testRealm, Fail, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := n.Verify("REGISTER", tc.r(n.New(t0)), tc.creds, tc.realm, t0)
			if got != tc.want || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Errorf("Verify = %v, %v; want %v, %v", got, err, tc.want, tc.err)
			}
		})
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	var b []byte
	if _, err := fmt.Sscanf(s, "%x", &b); err != nil {
		t.Fatal(err)
	}
	return b
}

// An unknown user must be indistinguishable from a wrong password: same
// result, same error, and the same work (hashing and allocations).
func TestVerifyUnknownUserLikeWrongPassword(t *testing.T) {
	n := newTestNonces(t, NonceConfig{})
	alice := NewCredentials("alice", testRealm, "secret")
	for _, alg := range []Algorithm{MD5, SHA256} {
		nonce := n.New(t0)
		wrong := request(alg, "alice", "guess", nonce, "auth", 1)
		unknown := request(alg, "nobody", "guess", nonce, "auth", 1)
		res1, err1 := n.Verify("REGISTER", wrong, alice, testRealm, t0)
		res2, err2 := n.Verify("REGISTER", unknown, Credentials{}, testRealm, t0)
		if res1 != Fail || res1 != res2 || err1 != err2 {
			t.Errorf("%s: wrong password %v, %v; unknown user %v, %v", alg, res1, err1, res2, err2)
		}
		// The placeholder H(A1) has the length of a real one, so the same
		// bytes are hashed.
		if dummy := map[Algorithm]string{MD5: dummyMD5, SHA256: dummySHA256}[alg]; len(dummy) != hexLen(alg) {
			t.Errorf("%s: placeholder H(A1) has %d characters, want %d", alg, len(dummy), hexLen(alg))
		}
		if !race.Enabled {
			a1 := testing.AllocsPerRun(100, func() { n.Verify("REGISTER", wrong, alice, testRealm, t0) })
			a2 := testing.AllocsPerRun(100, func() { n.Verify("REGISTER", unknown, Credentials{}, testRealm, t0) })
			if a1 != a2 {
				t.Errorf("%s: %v allocations for a wrong password, %v for an unknown user", alg, a1, a2)
			}
		}
		// Neither attempt used the count: the right password still gets in with nc 1.
		if res, err := n.Verify("REGISTER", request(alg, "alice", "secret", nonce, "auth", 1), alice, testRealm, t0); res != OK {
			t.Errorf("%s: after failures, Verify = %v, %v", alg, res, err)
		}
	}
}

func TestVerifyNonceLifecycle(t *testing.T) {
	const life = time.Minute
	alice := NewCredentials("alice", testRealm, "secret")
	type attempt struct {
		password string
		qop      string
		nc       uint32
		at       time.Duration
		want     Result
	}
	for _, tc := range []struct {
		name     string
		attempts []attempt
	}{
		{"counts increase", []attempt{
			{"secret", "auth", 1, 0, OK},
			{"secret", "auth", 2, time.Second, OK},
			{"secret", "auth", 4, 2 * time.Second, OK},
		}},
		{"repeated or lower count is a replay", []attempt{
			{"secret", "auth", 2, 0, OK},
			{"secret", "auth", 2, 0, Replay},
			{"secret", "auth", 1, 0, Replay},
			{"secret", "auth", 3, 0, OK},
		}},
		{"a wrong password does not use up the count", []attempt{
			{"guess", "auth", 1, 0, Fail},
			{"guess", "auth", 1, 0, Fail},
			{"secret", "auth", 1, 0, OK},
			{"guess", "auth", 2, 0, Fail},
			{"secret", "auth", 2, 0, OK},
		}},
		{"a replay with a wrong password is just a failure", []attempt{
			{"secret", "auth", 1, 0, OK},
			{"guess", "auth", 1, 0, Fail},
		}},
		{"without qop, a second use is a replay", []attempt{
			{"guess", "", 0, 0, Fail},
			{"secret", "", 0, 0, OK},
			{"secret", "", 0, 0, Replay},
		}},
		{"expired: stale only with the right password", []attempt{
			{"secret", "auth", 1, life, OK},
			{"guess", "auth", 2, life + time.Nanosecond, Fail},
			{"secret", "auth", 2, life + time.Nanosecond, Stale},
			{"secret", "auth", 1, life + time.Nanosecond, Stale},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newTestNonces(t, NonceConfig{Lifetime: life})
			nonce := n.New(t0)
			for i, a := range tc.attempts {
				r := request(SHA256, "alice", a.password, nonce, a.qop, a.nc)
				got, err := n.Verify("REGISTER", r, alice, testRealm, t0.Add(a.at))
				if got != a.want {
					t.Errorf("attempt %d (%+v): Verify = %v, %v; want %v", i, a, got, err, a.want)
				}
			}
		})
	}
}

func TestVerifyEvicted(t *testing.T) {
	n := newTestNonces(t, NonceConfig{MaxTracked: 2})
	alice := NewCredentials("alice", testRealm, "secret")
	old := n.New(t0)
	n.New(t0)
	n.New(t0)
	if got, err := n.Verify("REGISTER", request(MD5, "alice", "secret", old, "auth", 1), alice, testRealm, t0); got != Stale || !errors.Is(err, ErrStale) {
		t.Errorf("evicted nonce, right password: %v, %v; want stale", got, err)
	}
	if got, _ := n.Verify("REGISTER", request(MD5, "alice", "guess", old, "auth", 1), alice, testRealm, t0); got != Fail {
		t.Errorf("evicted nonce, wrong password: %v; want fail", got)
	}
}

// Verify of real header values as SIPp and baresip send them.
func TestVerifyClientHeaders(t *testing.T) {
	n := newTestNonces(t, NonceConfig{})
	alice := NewCredentials("alice", testRealm, "secret")
	for _, tc := range []struct {
		name   string
		alg    Algorithm
		format string // nonce, response
	}{
		{"SIPp", MD5, `Digest username="alice",realm="example.com",cnonce="6b8b4567",nc=00000001,qop=auth,uri="sip:example.com",nonce="%s",response="%s",algorithm=MD5`},
		{"baresip", SHA256, `Digest username="alice", realm="example.com", nonce="%s", uri="sip:example.com", response="%s", algorithm=SHA-256, cnonce="6b8b4567", qop=auth, nc=00000001`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nonce := n.New(t0)
			digest := clientDigest(tc.alg, "alice", testRealm, "secret", "REGISTER", "sip:example.com", nonce, "6b8b4567", "auth", 1)
			header := fmt.Sprintf(tc.format, nonce, digest)
			r, err := ParseResponse(header)
			if err != nil {
				t.Fatalf("ParseResponse(%s): %v", header, err)
			}
			if got, err := n.Verify("REGISTER", r, alice, testRealm, t0.Add(time.Second)); got != OK {
				t.Fatalf("Verify = %v, %v", got, err)
			}
			if got, _ := n.Verify("REGISTER", r, alice, testRealm, t0.Add(2*time.Second)); got != Replay {
				t.Errorf("second Verify of the same header = %v, want replay", got)
			}
		})
	}
}

func TestVerifyConcurrent(t *testing.T) {
	n := newTestNonces(t, NonceConfig{MaxTracked: 1000})
	alice := NewCredentials("alice", testRealm, "secret")
	const workers, rounds = 8, 20

	// Each worker runs its own nonce through increasing counts.
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nonce := n.New(t0)
			for i := uint32(1); i <= rounds; i++ {
				alg := MD5
				if (uint32(w)+i)%2 == 0 {
					alg = SHA256
				}
				if got, err := n.Verify("REGISTER", request(alg, "alice", "secret", nonce, "auth", i), alice, testRealm, t0); got != OK {
					errs <- fmt.Errorf("worker %d nc %d: %v, %v", w, i, got, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// All workers replay one response at once: exactly one gets in.
	r := request(MD5, "alice", "secret", n.New(t0), "auth", 1)
	results := make([]Result, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[w], _ = n.Verify("REGISTER", r, alice, testRealm, t0)
		}()
	}
	wg.Wait()
	ok := 0
	for _, res := range results {
		switch res {
		case OK:
			ok++
		case Replay:
		default:
			t.Errorf("unexpected result %v", res)
		}
	}
	if ok != 1 {
		t.Errorf("%d of %d identical requests accepted, want 1", ok, workers)
	}
}
