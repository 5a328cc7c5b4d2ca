package digest

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Result is the outcome of [Nonces.Verify], which decides the server's
// answer (RFC 3261 §22.2, §22.3; RFC 7616 §3.3 "stale"). The zero value is
// not a result.
type Result int

const (
	// OK: the credentials are right and the nonce-count is now used.
	OK Result = iota + 1
	// Stale: the credentials are right but the nonce has expired or is no
	// longer tracked; challenge again with stale=true (RFC 7616 §3.3).
	Stale
	// Fail: wrong password, unknown user, wrong realm, unusable algorithm,
	// or a nonce that is not ours; challenge again (RFC 3261 §22.2).
	Fail
	// Replay: the credentials are right but the nonce-count was already
	// used (RFC 7616 §5.5).
	Replay
)

// String returns "ok", "stale", "fail" or "replay", for logs.
func (r Result) String() string {
	switch r {
	case OK:
		return "ok"
	case Stale:
		return "stale"
	case Fail:
		return "fail"
	case Replay:
		return "replay"
	}
	return "Result(" + strconv.Itoa(int(r)) + ")"
}

// Errors returned by [Nonces.Verify] with a result other than OK.
var (
	// ErrRealm: the response is for another realm (RFC 7616 §3.4 "realm").
	ErrRealm = errors.New("digest: wrong realm")
	// ErrNonce: the nonce was not issued here (RFC 7616 §3.3 "nonce").
	ErrNonce = errors.New("digest: invalid nonce")
	// ErrMismatch: the request-digest is wrong (RFC 7616 §3.4.1); returned
	// alike for a wrong password, an unknown user and an account without
	// credentials for the algorithm.
	ErrMismatch = errors.New("digest: wrong credentials")
	// ErrStale: right credentials, stale nonce (RFC 7616 §3.3 "stale").
	ErrStale = errors.New("digest: stale nonce")
	// ErrReplay: right credentials, nonce-count already used (RFC 7616 §5.5).
	ErrReplay = errors.New("digest: nonce count reused")
)

// Placeholders for H(A1) when there is none, one per digest length, so that
// an unknown user costs the same hashing as a known one.
const (
	dummyMD5    = "00000000000000000000000000000000"
	dummySHA256 = dummyMD5 + dummyMD5
)

// Verify checks a parsed response r to a request with the given method
// against an account's stored credentials, for realm, at time now (RFC 3261
// §22.4, RFC 7616 §3.4). For an unknown user pass zero Credentials: the
// result, error and hashing work are the same as for a wrong password. A
// stored H(A1) of the wrong length for its algorithm counts as absent.
//
// It returns Fail if r.Realm is not realm, the algorithm is unsupported, qop
// is other than "auth" or lacks cnonce or nc, the nonce is not ours, or the
// request-digest does not match H(A1) (constant-time comparison). Only when
// the request-digest matches does the nonce's state decide: Stale if it
// has expired or is no longer tracked (RFC 7616 §3.3 sets stale only for
// right credentials), Replay if the nonce-count was used, otherwise the use
// is committed (see [Nonces.Commit]) and the result is OK. A failed
// verification commits nothing. The error is nil with OK and otherwise says
// why, wrapping one of the package's sentinel errors; it is for logs and
// must not tell a client more than the Result does.
func (n *Nonces) Verify(method string, r Response, creds Credentials, realm string, now time.Time) (Result, error) {
	if r.Realm != realm {
		return Fail, ErrRealm
	}
	alg, ok := canonical(r.Algorithm)
	if !ok {
		return Fail, ErrUnsupportedAlgorithm
	}
	counted := r.QOP != ""
	if counted {
		switch {
		case !strings.EqualFold(r.QOP, "auth"):
			return Fail, malformed("unsupported qop %s", quoteShort(r.QOP))
		case r.CNonce == "":
			return Fail, malformed("missing cnonce")
		case !r.HasNC:
			return Fail, malformed("missing nc")
		}
	}
	key, issued, authentic := n.open(r.Nonce)

	ha1, have := creds.HA1(alg)
	if !have || len(ha1) != hexLen(alg) {
		have = false
		ha1 = dummyMD5
		if alg == SHA256 {
			ha1 = dummySHA256
		}
	}
	var buf [2 * sha256.Size]byte
	expected := compute(alg, ha1, method, &r, &buf)
	match := subtle.ConstantTimeSelect(b2i(have), b2i(equalFold(expected, r.Response)), 0) == 1

	switch {
	case !authentic:
		return Fail, ErrNonce
	case !match:
		return Fail, ErrMismatch
	case n.expired(issued, now):
		return Stale, ErrStale
	}
	n.mu.Lock()
	st := n.track.commit(key, r.NC, counted)
	n.mu.Unlock()
	switch st {
	case NonceValid:
		return OK, nil
	case NonceReplay:
		return Replay, ErrReplay
	}
	return Stale, ErrStale
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
