package digest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash"
	"math"
	"strconv"
	"sync"
	"time"
)

// Defaults and limits of [NonceConfig].
const (
	// DefaultNonceLifetime is how long a nonce stays fresh when
	// NonceConfig.Lifetime is zero (RFC 7616 §5.4: a nonce's life is the
	// server's choice).
	DefaultNonceLifetime = 5 * time.Minute
	// DefaultMaxTracked is how many nonces are tracked for replay
	// detection (RFC 7616 §5.5) when NonceConfig.MaxTracked is zero.
	DefaultMaxTracked = 100000
	// MinSecretLen is the shortest NonceConfig.Secret accepted, in bytes.
	// RFC 2104 §3 recommends a key at least as long as the hash output,
	// 32 bytes for SHA-256.
	MinSecretLen = 16
)

// Layout of a nonce before base64url encoding: the HMAC-SHA256 tag, then
// the issue time in Unix nanoseconds (big-endian), then random bytes. The
// tag covers time ‖ random ‖ realm.
const (
	macLen   = sha256.Size
	timeLen  = 8
	randLen  = 16
	nonceRaw = macLen + timeLen + randLen
)

// nonceLen is the length of every nonce this package issues: nonceRaw
// bytes in unpadded base64 (RFC 4648 §5).
const nonceLen = (nonceRaw*8 + 5) / 6

// NonceConfig configures [Nonces]. Zero Lifetime and MaxTracked select the
// defaults.
type NonceConfig struct {
	// Secret keys the HMAC that makes nonces unforgeable (RFC 7616 §3.3
	// "nonce", §5.4); at least MinSecretLen bytes, kept private.
	Secret []byte
	// Lifetime is how long after issue a nonce is accepted; later it is
	// stale (RFC 7616 §3.3 "stale"). Default DefaultNonceLifetime.
	Lifetime time.Duration
	// MaxTracked bounds the nonces remembered for nonce-count replay
	// detection (RFC 7616 §5.5); the first issued is forgotten first, and
	// a forgotten nonce is stale. Default DefaultMaxTracked.
	MaxTracked int
}

// Validate checks the configuration against the limits documented on
// [NonceConfig] (secret length per RFC 2104 §3) and names the offending
// setting in its error, for example "auth.nonce_lifetime: must be > 0".
// Zero Lifetime and MaxTracked are valid: they select the defaults.
func (c NonceConfig) Validate() error {
	switch {
	case len(c.Secret) < MinSecretLen:
		return errors.New("auth.nonce_secret: must be at least 16 bytes")
	case c.Lifetime < 0:
		return errors.New("auth.nonce_lifetime: must be > 0")
	case c.MaxTracked < 0:
		return errors.New("auth.nonce_max_tracked: must be > 0")
	}
	return nil
}

// NonceStatus is what [Nonces.Check] and [Nonces.Commit] make of a nonce
// and nonce-count (RFC 7616 §3.3 "nonce" and "stale", §3.4 "nc"). The zero
// value is not a status.
type NonceStatus int

const (
	// NonceValid: ours, fresh, tracked, and the count is new.
	NonceValid NonceStatus = iota + 1
	// NonceStale: ours but expired, or no longer tracked (forgotten to
	// bound memory, or issued before a restart). The client should retry
	// with a fresh nonce: answer with stale=true (RFC 7616 §3.3) if the
	// credentials were right.
	NonceStale
	// NonceInvalid: not issued by these Nonces for this realm — forged,
	// altered, issued with another secret, or not a nonce at all.
	NonceInvalid
	// NonceReplay: with qop, nc is not greater than the highest count
	// already used with this nonce; without qop, the nonce was already used
	// (RFC 7616 §3.4 "nc", §5.5).
	NonceReplay
)

// String returns "valid", "stale", "invalid" or "replay", for logs.
func (s NonceStatus) String() string {
	switch s {
	case NonceValid:
		return "valid"
	case NonceStale:
		return "stale"
	case NonceInvalid:
		return "invalid"
	case NonceReplay:
		return "replay"
	}
	return "NonceStatus(" + strconv.Itoa(int(s)) + ")"
}

// Nonces issues and checks the server nonces of one realm. A nonce is
// base64url(HMAC-SHA256(secret, time ‖ random ‖ realm) ‖ time ‖ random):
// its authenticity and age are checked without state (RFC 7616 §3.3
// suggests a time-stamp and secret in the nonce), and a bounded tracker
// remembers the highest nonce-count used with each nonce to refuse replays
// (RFC 7616 §5.4, §5.5). Nonces is safe for concurrent use.
type Nonces struct {
	secret   []byte
	realm    []byte
	lifetime int64 // nanoseconds
	enc      *base64.Encoding
	macs     sync.Pool // of *macState

	mu    sync.Mutex
	track tracker
}

// NewNonces returns Nonces for realm after validating cfg and applying its
// defaults. The secret is copied.
func NewNonces(cfg NonceConfig, realm string) (*Nonces, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Lifetime == 0 {
		cfg.Lifetime = DefaultNonceLifetime
	}
	if cfg.MaxTracked == 0 {
		cfg.MaxTracked = DefaultMaxTracked
	}
	return &Nonces{
		secret:   append([]byte(nil), cfg.Secret...),
		realm:    []byte(realm),
		lifetime: int64(cfg.Lifetime),
		enc:      base64.RawURLEncoding.Strict(),
		track:    tracker{max: cfg.MaxTracked, uses: make(map[nonceKey]nonceUse)},
	}, nil
}

// New issues a fresh nonce at time now for one challenge (RFC 7616 §3.3)
// and starts tracking it with no nonce-count used yet. Tracked nonces that
// have expired by now are forgotten, and if the tracker is full the oldest
// issued one is forgotten too.
func (n *Nonces) New(now time.Time) string {
	var raw [nonceRaw]byte
	issued := now.UnixNano()
	binary.BigEndian.PutUint64(raw[macLen:], uint64(issued))
	rand.Read(raw[macLen+timeLen:]) // never fails (crypto/rand)
	n.sign(raw[:macLen], (*[timeLen + randLen]byte)(raw[macLen:]))
	var key nonceKey
	copy(key[:], raw[macLen+timeLen:])

	n.mu.Lock()
	n.track.add(key, issued, issued-n.lifetime)
	n.mu.Unlock()
	return n.enc.EncodeToString(raw[:])
}

// Check reports the status of nonce with nonce-count nc at time now,
// without recording anything (RFC 7616 §3.3, §5.4, §5.5). hasNC says
// whether uses are counted, which is the case when the response carries
// qop (RFC 7616 §3.4 "nc"): pass r.QOP != "", not r.HasNC. Once the response has been verified, the use must be
// recorded with [Nonces.Commit]; checking alone leaves the nonce-count
// untouched, so a wrong password does not use up a count.
//
// In order: NonceInvalid if the nonce is not authentic, NonceStale if older
// than the lifetime or no longer tracked, NonceReplay if the count was
// used, else NonceValid.
func (n *Nonces) Check(nonce string, nc uint32, hasNC bool, now time.Time) NonceStatus {
	key, issued, ok := n.open(nonce)
	if !ok {
		return NonceInvalid
	}
	if n.expired(issued, now) {
		return NonceStale
	}
	n.mu.Lock()
	u, tracked := n.track.uses[key]
	n.mu.Unlock()
	if !tracked {
		return NonceStale
	}
	return u.check(nc, hasNC)
}

// Commit records that nonce was used with count nc (hasNC as for
// [Nonces.Check]) by a response that verified. It checks and records
// atomically, so of concurrent commits of the same count exactly one gets
// NonceValid and the others NonceReplay; NonceStale means the nonce is no
// longer tracked and NonceInvalid that it is not authentic. Commit does not
// look at the nonce's age: that is Check's job at the time of the request.
func (n *Nonces) Commit(nonce string, nc uint32, hasNC bool) NonceStatus {
	key, _, ok := n.open(nonce)
	if !ok {
		return NonceInvalid
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.track.commit(key, nc, hasNC)
}

// Tracked returns how many nonces are currently tracked for replay
// detection (RFC 7616 §5.5); at most NonceConfig.MaxTracked.
func (n *Nonces) Tracked() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.track.size
}

// sign writes HMAC-SHA256(secret, body ‖ realm) into dst. The keyed HMAC
// states are pooled, as hmac.New costs several allocations.
func (n *Nonces) sign(dst []byte, body *[timeLen + randLen]byte) {
	m, ok := n.macs.Get().(*macState)
	if ok {
		m.mac.Reset()
	} else {
		m = &macState{mac: hmac.New(sha256.New, n.secret)}
	}
	m.body = *body
	m.mac.Write(m.body[:])
	m.mac.Write(n.realm)
	copy(dst, m.mac.Sum(m.tag[:0]))
	n.macs.Put(m)
}

// macState is a keyed HMAC with buffers that live as long as it does.
type macState struct {
	mac  hash.Hash
	body [timeLen + randLen]byte
	tag  [macLen]byte
}

// open decodes nonce and checks its tag, returning its tracker key and
// issue time.
func (n *Nonces) open(nonce string) (key nonceKey, issued int64, ok bool) {
	if len(nonce) != nonceLen {
		return key, 0, false
	}
	var enc [128]byte
	var raw [nonceRaw]byte
	m, err := n.enc.Decode(raw[:], enc[:copy(enc[:], nonce)])
	if err != nil || m != nonceRaw {
		return key, 0, false
	}
	var tag [macLen]byte
	n.sign(tag[:], (*[timeLen + randLen]byte)(raw[macLen:]))
	if !hmac.Equal(tag[:], raw[:macLen]) {
		return key, 0, false
	}
	copy(key[:], raw[macLen+timeLen:])
	return key, int64(binary.BigEndian.Uint64(raw[macLen:])), true
}

// expired reports whether a nonce issued at issued (Unix nanoseconds) is
// past its lifetime at now.
func (n *Nonces) expired(issued int64, now time.Time) bool {
	return now.UnixNano()-issued > n.lifetime
}

// nonceKey identifies a tracked nonce by its random part.
type nonceKey [randLen]byte

// nonceUse is what the tracker remembers of one nonce.
type nonceUse struct {
	issued int64  // Unix nanoseconds
	lastNC uint32 // highest nonce-count committed; MaxUint32 after an uncounted use
	used   bool
}

// check applies the replay rules of RFC 7616 §5.5 to a prospective use.
func (u nonceUse) check(nc uint32, counted bool) NonceStatus {
	if counted {
		if nc <= u.lastNC {
			return NonceReplay
		}
		return NonceValid
	}
	if u.used {
		return NonceReplay
	}
	return NonceValid
}

// tracker maps tracked nonces to their use, bounded to max entries. order
// is a ring buffer of the keys in issue order, so forgetting the oldest is
// O(1); it grows on demand up to max.
type tracker struct {
	max   int
	uses  map[nonceKey]nonceUse
	order []nonceKey
	head  int // index of the oldest key in order
	size  int // keys in order, equal to len(uses)
}

// add tracks key, first forgetting nonces issued before expiredBefore and,
// if still full, the oldest one.
func (t *tracker) add(key nonceKey, issued, expiredBefore int64) {
	for t.size > 0 && t.uses[t.order[t.head]].issued < expiredBefore {
		t.pop()
	}
	if _, dup := t.uses[key]; dup {
		return // 128 random bits do not repeat; keep order and uses in step anyway
	}
	if t.size == t.max {
		t.pop()
	}
	if t.size == len(t.order) {
		grown := make([]nonceKey, min(max(16, 2*len(t.order)), t.max))
		n := copy(grown, t.order[t.head:])
		copy(grown[n:], t.order[:t.head])
		t.order, t.head = grown, 0
	}
	t.order[(t.head+t.size)%len(t.order)] = key
	t.size++
	t.uses[key] = nonceUse{issued: issued}
}

// pop forgets the oldest tracked nonce.
func (t *tracker) pop() {
	delete(t.uses, t.order[t.head])
	t.order[t.head] = nonceKey{}
	t.head = (t.head + 1) % len(t.order)
	t.size--
}

// commit records a use if it is not a replay.
func (t *tracker) commit(key nonceKey, nc uint32, counted bool) NonceStatus {
	u, ok := t.uses[key]
	if !ok {
		return NonceStale
	}
	if st := u.check(nc, counted); st != NonceValid {
		return st
	}
	u.used = true
	if counted {
		u.lastNC = nc
	} else {
		u.lastNC = math.MaxUint32 // a nonce used without qop is used up
	}
	t.uses[key] = u
	return NonceValid
}
