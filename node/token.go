package node

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// tokenDomain separates session-token signatures from any other use of a
// node's key.
const tokenDomain = "callmesh/session-token/v1"

// maxTokenLen bounds a token's text: a path of a few hops and a signature.
const maxTokenLen = 2048

// Errors of token verification; the egress node answers 403 naming them.
var (
	ErrTokenMalformed = errors.New("malformed session token")
	ErrTokenSignature = errors.New("bad session token signature")
	ErrTokenMaster    = errors.New("session token from a node outside the federation")
	ErrTokenExpired   = errors.New("session token expired")
	ErrTokenUsed      = errors.New("session token already used")
	ErrTokenMismatch  = errors.New("session token for another call")
)

// SessionToken is what a session's master grants one path of it: the
// egress node admits one initial INVITE with it, for that callee, until it
// expires.
type SessionToken struct {
	V       int      `json:"v"`
	Session string   `json:"sid"`
	Master  peer.ID  `json:"m"`
	Hops    []string `json:"p"` // ingress, providers, egress (or terminating provider)
	SLAs    []string `json:"s"`
	Callee  string   `json:"u"` // the callee: user part of the Request-URI (a user or a number)
	Egress  string   `json:"e"` // the egress node's name
	Expires int64    `json:"x"` // Unix milliseconds
	Nonce   string   `json:"n"` // distinguishes the tokens of one session's paths
}

func tokenSigningBytes(body []byte) []byte {
	return append([]byte(tokenDomain+"\x00"), body...)
}

// Sign encodes and signs the token with the master's key:
// base64url(JSON) "." base64url(signature).
func (t *SessionToken) Sign(key crypto.PrivKey) (string, error) {
	if t.Nonce == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		t.Nonce = hex.EncodeToString(b[:])
	}
	t.V = 1
	body, err := json.Marshal(t)
	if err != nil {
		return "", err
	}
	sig, err := key.Sign(tokenSigningBytes(body))
	if err != nil {
		return "", fmt.Errorf("session token: sign: %w", err)
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString(body) + "." + enc.EncodeToString(sig), nil
}

// tokenEncoding is the strict form of base64url: non-zero unused trailing
// bits are refused, so one token's bytes have one text.
var tokenEncoding = base64.RawURLEncoding.Strict()

// ParseToken decodes a token and checks its signature against the master it
// names (an Ed25519 peer ID embeds its public key). It does not check
// expiry, membership or use: see tokenBook.Admit.
func ParseToken(s string) (*SessionToken, error) {
	t, _, err := parseToken(s)
	return t, err
}

// parseToken is ParseToken that also returns the digest of the signed body,
// which identifies the token whatever its text.
func parseToken(s string) (*SessionToken, [32]byte, error) {
	var none [32]byte
	if len(s) > maxTokenLen {
		return nil, none, fmt.Errorf("%w: %d bytes", ErrTokenMalformed, len(s))
	}
	b64, sig64, ok := strings.Cut(s, ".")
	// The decoder skips CR and LF even when strict: refuse them here.
	if !ok || strings.ContainsAny(s, "\r\n") {
		return nil, none, fmt.Errorf("%w: not two base64url parts", ErrTokenMalformed)
	}
	body, err1 := tokenEncoding.DecodeString(b64)
	sig, err2 := tokenEncoding.DecodeString(sig64)
	if err1 != nil || err2 != nil {
		return nil, none, fmt.Errorf("%w: not two base64url parts", ErrTokenMalformed)
	}
	var t SessionToken
	if err := json.Unmarshal(body, &t); err != nil || t.V != 1 || t.Session == "" || t.Callee == "" || t.Egress == "" {
		return nil, none, fmt.Errorf("%w: body", ErrTokenMalformed)
	}
	pub, err := t.Master.ExtractPublicKey()
	if err != nil {
		return nil, none, fmt.Errorf("%w: master %q", ErrTokenMalformed, t.Master)
	}
	if ok, err := pub.Verify(tokenSigningBytes(body), sig); err != nil || !ok {
		return nil, none, ErrTokenSignature
	}
	return &t, sha256.Sum256(body), nil
}

// tokenBook admits tokens at the egress node: each once, before it expires,
// for this node and the callee it names, from a master the federation
// knows.
type tokenBook struct {
	self   string
	member func(peer.ID) bool
	mu     sync.Mutex
	used   map[[32]byte]time.Time // signed body's sha256 → the token's expiry
	swept  time.Time              // when used was last cleared of expired tokens
}

func newTokenBook(self string, member func(peer.ID) bool) *tokenBook {
	return &tokenBook{self: self, member: member, used: make(map[[32]byte]time.Time)}
}

// Admit verifies a token for an initial INVITE to callee and marks it used.
func (b *tokenBook) Admit(s, callee string, now time.Time) (*SessionToken, error) {
	t, key, err := parseToken(s)
	if err != nil {
		return nil, err
	}
	exp := time.UnixMilli(t.Expires)
	switch {
	case !b.member(t.Master):
		return nil, ErrTokenMaster
	case !now.Before(exp):
		return nil, ErrTokenExpired
	case t.Egress != b.self:
		return nil, fmt.Errorf("%w: for node %q", ErrTokenMismatch, t.Egress)
	case t.Callee != callee:
		return nil, fmt.Errorf("%w: for callee %q", ErrTokenMismatch, t.Callee)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	// An expired token is refused above, before its entry is looked up, so
	// entries may outlive their expiry a little: sweep at most once a second.
	if since := now.Sub(b.swept); since >= time.Second || since < 0 {
		for k, x := range b.used {
			if !now.Before(x) {
				delete(b.used, k)
			}
		}
		b.swept = now
	}
	if _, dup := b.used[key]; dup {
		return nil, ErrTokenUsed
	}
	b.used[key] = exp
	return t, nil
}

// pathOf is a token's path for records: hops joined by arrows.
func (t *SessionToken) pathOf() string { return strings.Join(slices.Clone(t.Hops), "→") }
