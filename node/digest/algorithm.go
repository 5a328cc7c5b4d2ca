package digest

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
)

// Algorithm names the hash of a Digest exchange: the "algorithm" parameter
// of RFC 7616 §3.3 and §3.4, as registered for SIP by RFC 8760 §2.
type Algorithm string

const (
	// MD5 is the algorithm of RFC 2617 and RFC 3261 §22.4, and the default
	// when a challenge or response names none (RFC 7616 §3.3).
	MD5 Algorithm = "MD5"
	// SHA256 is SHA-256 (RFC 7616 §3.3, RFC 8760 §2).
	SHA256 Algorithm = "SHA-256"
)

// ErrUnsupportedAlgorithm reports an algorithm other than MD5 or SHA-256;
// RFC 7616 §3.3 has a party ignore an algorithm it does not understand.
var ErrUnsupportedAlgorithm = errors.New("digest: unsupported algorithm")

// ParseAlgorithm maps an "algorithm" parameter value to an [Algorithm].
// Names compare case-insensitively, as tokens do in RFC 7616 §3.3, and the
// empty string means MD5, the default of RFC 7616 §3.3. Any other name
// yields an error wrapping [ErrUnsupportedAlgorithm].
func ParseAlgorithm(s string) (Algorithm, error) {
	if alg, ok := canonical(Algorithm(s)); ok {
		return alg, nil
	}
	return "", &detailError{
		msg:  "digest: unsupported algorithm " + quoteShort(s),
		errs: []error{ErrUnsupportedAlgorithm},
	}
}

// canonical returns the package's spelling of a, treating "" as MD5.
func canonical(a Algorithm) (Algorithm, bool) {
	switch {
	case a == MD5 || a == "":
		return MD5, true
	case a == SHA256:
		return SHA256, true
	case strings.EqualFold(string(a), string(MD5)):
		return MD5, true
	case strings.EqualFold(string(a), string(SHA256)):
		return SHA256, true
	}
	return "", false
}

// hexLen is the length of a lowercase hex digest of alg, 0 if unsupported.
func hexLen(alg Algorithm) int {
	switch alg {
	case MD5:
		return 2 * md5.Size
	case SHA256:
		return 2 * sha256.Size
	}
	return 0
}

// sumHex hashes b with the canonical algorithm alg and writes its lowercase
// hex form (RFC 7616 §3.2) into dst, returning the part of dst it used.
func sumHex(alg Algorithm, b []byte, dst *[2 * sha256.Size]byte) []byte {
	switch alg {
	case MD5:
		sum := md5.Sum(b)
		hex.Encode(dst[:], sum[:])
		return dst[:2*md5.Size]
	case SHA256:
		sum := sha256.Sum256(b)
		hex.Encode(dst[:], sum[:])
		return dst[:]
	}
	return nil
}

// HA1 returns the lowercase hex of H(A1) = H(user ":" realm ":" password),
// the per-account secret of RFC 7616 §3.4.2 (RFC 3261 §22.4 for MD5). It
// returns "" for an unsupported algorithm; "" as alg means MD5.
func HA1(alg Algorithm, user, realm, password string) string {
	alg, ok := canonical(alg)
	if !ok {
		return ""
	}
	var scratch [128]byte
	b := append(scratch[:0], user...)
	b = append(b, ':')
	b = append(b, realm...)
	b = append(b, ':')
	b = append(b, password...)
	var out [2 * sha256.Size]byte
	return string(sumHex(alg, b, &out))
}

// Credentials is what an account stores in place of its password: H(A1) for
// each algorithm (RFC 7616 §3.4.2, §5.2). Both values are bound to the realm
// they were computed for; an empty field means the account cannot use that
// algorithm.
type Credentials struct {
	MD5    string `json:"ha1_md5"`    // lowercase hex H(A1) with MD5
	SHA256 string `json:"ha1_sha256"` // lowercase hex H(A1) with SHA-256
}

// NewCredentials computes the stored form of an account's password for both
// algorithms, as RFC 7616 §5.2 recommends storing H(A1) rather than the
// password.
func NewCredentials(user, realm, password string) Credentials {
	return Credentials{
		MD5:    HA1(MD5, user, realm, password),
		SHA256: HA1(SHA256, user, realm, password),
	}
}

// HA1 returns the stored H(A1) for alg ("" means MD5, RFC 7616 §3.3) and
// whether there is one.
func (c Credentials) HA1(alg Algorithm) (string, bool) {
	alg, _ = canonical(alg)
	var v string
	switch alg {
	case MD5:
		v = c.MD5
	case SHA256:
		v = c.SHA256
	}
	return v, v != ""
}

// Compute returns the request-digest a client holding ha1 must send for r
// and method: with qop=auth, H(HA1 ":" nonce ":" nc ":" cnonce ":" qop ":"
// H(A2)) (RFC 7616 §3.4.1), and without qop the RFC 2069 form
// H(HA1 ":" nonce ":" H(A2)) that RFC 3261 §22.4 keeps for compatibility.
// A2 is method ":" uri (RFC 7616 §3.4.3) and nc is written as 8 lowercase
// hex digits (RFC 7616 §3.4). The value of r.QOP is hashed as given. It
// returns "" for an unsupported algorithm; "" as alg means MD5.
func Compute(alg Algorithm, ha1, method string, r Response) string {
	var out [2 * sha256.Size]byte
	return string(compute(alg, ha1, method, &r, &out))
}

func compute(alg Algorithm, ha1, method string, r *Response, out *[2 * sha256.Size]byte) []byte {
	alg, ok := canonical(alg)
	if !ok {
		return nil
	}
	var scratch [256]byte
	b := append(scratch[:0], method...)
	b = append(b, ':')
	b = append(b, r.URI...)
	var ha2 [2 * sha256.Size]byte
	h2 := sumHex(alg, b, &ha2)

	b = append(b[:0], ha1...)
	b = append(b, ':')
	b = append(b, r.Nonce...)
	if r.QOP != "" {
		b = append(b, ':')
		b = appendNC(b, r.NC)
		b = append(b, ':')
		b = append(b, r.CNonce...)
		b = append(b, ':')
		b = append(b, r.QOP...)
	}
	b = append(b, ':')
	b = append(b, h2...)
	return sumHex(alg, b, out)
}

// appendNC appends nc as the 8LHEX nc-value of RFC 3261 §25.1.
func appendNC(b []byte, nc uint32) []byte {
	const digits = "0123456789abcdef"
	for shift := 28; shift >= 0; shift -= 4 {
		b = append(b, digits[nc>>uint(shift)&0xf])
	}
	return b
}

// Equal reports whether two hex digests are the same, ignoring ASCII case
// (RFC 7616 §3.2 has them lowercase, but some clients send uppercase). The
// time it takes depends on the lengths only, not on the contents.
func Equal(a, b string) bool {
	return equalFold(a, b)
}

func equalFold[A, B ~string | ~[]byte](a A, b B) bool {
	if len(a) != len(b) {
		return false
	}
	var diff byte
	for i := 0; i < len(a); i++ {
		diff |= lowerASCII(a[i]) ^ lowerASCII(b[i])
	}
	return subtle.ConstantTimeByteEq(diff, 0) == 1
}

// lowerASCII folds A-Z to a-z without branching on c.
func lowerASCII(c byte) byte {
	x := int32(c)
	upper := ((('A' - 1) - x) & (x - ('Z' + 1))) >> 31 & 1
	return c | byte(upper<<5)
}

// detailError is an error with a specific message that matches one or more
// of the package's sentinel errors under errors.Is.
type detailError struct {
	msg  string
	errs []error
}

func (e *detailError) Error() string   { return e.msg }
func (e *detailError) Unwrap() []error { return e.errs }

// quoteShort quotes s for an error message, cut so that the quoted form
// stays short enough for a SIP reason phrase; control characters come out
// escaped, so the result never holds CR or LF.
func quoteShort(s string) string {
	const max = 40
	if q := strconv.Quote(s); len(q) <= max {
		return q
	}
	n := min(len(s), 32)
	for {
		if q := strconv.Quote(s[:n]); len(q) <= max || n <= 8 {
			return q + "..."
		}
		n /= 2
	}
}
