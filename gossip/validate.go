package gossip

import (
	"errors"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Verdict is what a validator decides about one message.
type Verdict uint8

const (
	// Accept delivers the message and lets it propagate.
	Accept Verdict = iota + 1
	// Reject drops the message and penalises the peer that forwarded it: the
	// message is forged or broken, and no honest node would relay it.
	Reject
	// Ignore drops the message without penalty: it is valid but no longer
	// useful (stale or expired), which an honest forwarder can cause.
	Ignore
)

func (v Verdict) String() string {
	switch v {
	case Accept:
		return "accept"
	case Reject:
		return "reject"
	case Ignore:
		return "ignore"
	}
	return "unknown"
}

// Reasons reported with a verdict; they label the rejection metrics, so the
// set is fixed.
const (
	ReasonOK        = "ok"
	ReasonOversize  = "oversize"
	ReasonMalformed = "malformed"
	ReasonVersion   = "version"
	ReasonTopic     = "topic"
	ReasonIssuer    = "issuer"
	ReasonSignature = "signature"
	ReasonExpired   = "expired"
	ReasonStale     = "stale"
	ReasonKind      = "kind"
)

// Result is the outcome of checking one message.
type Result struct {
	Env     *Envelope // set when the envelope decoded
	Verdict Verdict
	Reason  string
	Err     error // nil on Accept
}

// Checker validates the messages of one topic. It is safe for concurrent use
// when its SeqTracker is.
type Checker struct {
	Topic   string
	MaxSize int             // 0 = DefaultMaxSize
	Kinds   map[string]bool // kinds allowed on the topic; nil allows any
	Seqs    *SeqTracker     // nil disables stale detection
	// Body checks the decoded body of a signed envelope; an error rejects
	// the message as malformed. Nil: any body.
	Body func(*Envelope) error
}

// Check decodes data and decides on it. signer is the peer that signed the
// transport message (GossipSub's author under strict signing); it must be the
// envelope's issuer. An empty signer skips that comparison, for envelopes
// that arrive by anti-entropy from a peer that is not their issuer: their own
// signature is then the only proof, and it is always checked.
func (c *Checker) Check(data []byte, signer peer.ID, now time.Time) Result {
	env, err := Decode(data, c.MaxSize)
	if err != nil {
		return reject(nil, err)
	}
	return c.CheckEnvelope(env, signer, now)
}

// CheckEnvelope is Check for an envelope already decoded.
func (c *Checker) CheckEnvelope(env *Envelope, signer peer.ID, now time.Time) Result {
	switch {
	case env.Topic != c.Topic:
		return Result{Env: env, Verdict: Reject, Reason: ReasonTopic, Err: ErrTopic}
	case c.Kinds != nil && !c.Kinds[env.Kind]:
		return Result{Env: env, Verdict: Reject, Reason: ReasonKind, Err: ErrMalformed}
	case signer != "" && env.Issuer != signer:
		return Result{Env: env, Verdict: Reject, Reason: ReasonIssuer, Err: ErrIssuer}
	}
	if err := env.Verify(); err != nil {
		return reject(env, err)
	}
	if c.Body != nil {
		if err := c.Body(env); err != nil {
			return Result{Env: env, Verdict: Reject, Reason: ReasonMalformed, Err: err}
		}
	}
	if env.Expired(now) {
		return Result{Env: env, Verdict: Ignore, Reason: ReasonExpired, Err: ErrExpired}
	}
	if c.Seqs != nil && !c.Seqs.Advance(env.Topic, env.Issuer, env.Key, env.Seq) {
		return Result{Env: env, Verdict: Ignore, Reason: ReasonStale, Err: ErrStale}
	}
	return Result{Env: env, Verdict: Accept, Reason: ReasonOK}
}

func reject(env *Envelope, err error) Result {
	reason := ReasonMalformed
	switch {
	case errors.Is(err, ErrOversize):
		reason = ReasonOversize
	case errors.Is(err, ErrVersion):
		reason = ReasonVersion
	case errors.Is(err, ErrBadSignature):
		reason = ReasonSignature
	}
	return Result{Env: env, Verdict: Reject, Reason: reason, Err: err}
}

type seqKey struct {
	topic  string
	issuer peer.ID
	key    string
}

// SeqTracker remembers the newest sequence seen per (topic, issuer, key). It
// is safe for concurrent use.
type SeqTracker struct {
	mu   sync.Mutex
	last map[seqKey]Seq
}

// NewSeqTracker returns an empty tracker.
func NewSeqTracker() *SeqTracker { return &SeqTracker{last: make(map[seqKey]Seq)} }

// Advance records seq and reports true if it is newer than any seen for the
// same state; otherwise it reports false and records nothing.
func (t *SeqTracker) Advance(topic string, issuer peer.ID, key string, seq Seq) bool {
	k := seqKey{topic, issuer, key}
	t.mu.Lock()
	defer t.mu.Unlock()
	if last, ok := t.last[k]; ok && !seq.Newer(last) {
		return false
	}
	t.last[k] = seq
	return true
}

// Last returns the newest sequence recorded for a state.
func (t *SeqTracker) Last(topic string, issuer peer.ID, key string) (Seq, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.last[seqKey{topic, issuer, key}]
	return s, ok
}

// Forget drops everything recorded for an issuer, for one forgotten by the
// membership view; a later message from it is then accepted afresh.
func (t *SeqTracker) Forget(issuer peer.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k := range t.last {
		if k.issuer == issuer {
			delete(t.last, k)
		}
	}
}
