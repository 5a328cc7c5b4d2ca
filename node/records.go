package node

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/callmesh/callmesh/gossip"
	"github.com/libp2p/go-libp2p/core/peer"
)

// DHT records are gossip envelopes stored under a namespaced key
// /NAMESPACE/SUBJECT. Each namespace has its own validator; the generic part
// (decode, signature, issuer, expiry, newest sequence wins) is shared here so
// that later namespaces (user locations) only say who may sign what.

// NodeRecordNamespace holds each node's signed description of itself, under
// /callmesh-node/PEERID, signed by that peer.
const NodeRecordNamespace = "callmesh-node"

// NodeRecordKind is the envelope kind of a node record.
const NodeRecordKind = "node-record"

// NodeRecord is what a node publishes about itself in the DHT: enough to
// reach it without having heard its heartbeats.
type NodeRecord struct {
	Name    string   `json:"name"`
	SIP     string   `json:"sip,omitempty"`
	Admin   string   `json:"admin,omitempty"`
	P2P     []string `json:"p2p,omitempty"`
	Version string   `json:"version"`
}

// maxRecordSize bounds one DHT record value.
const maxRecordSize = 16 << 10

// RecordValidator validates one namespace of signed DHT records. It
// implements the libp2p record.Validator interface.
type RecordValidator struct {
	Namespace string
	Kind      string
	// Authorized reports whether issuer may sign the record with this
	// subject (the key after the namespace). Nil: only the subject itself.
	Authorized func(subject string, issuer peer.ID) bool
	// Now is the clock used for expiry (nil: time.Now).
	Now func() time.Time
	// Body checks a record's body (nil: any).
	Body func(subject string, env *gossip.Envelope) error
	// Newer reports whether record a supersedes record b (nil: the newer
	// sequence wins, which only orders records of one issuer).
	Newer func(a, b *gossip.Envelope) bool
	// Sigs remembers values whose signature verified (nil: verify always).
	Sigs *sigCache
}

// sigCache remembers record values whose signature verified, so that the
// same bytes met again (a lookup receives one copy per answering peer, and
// kad-dht validates each before selecting among them) are not verified
// again: Ed25519 verification dominated lookups. Expiry and the body are
// still checked every time. Bounded; safe for concurrent use.
type sigCache struct {
	mu   sync.Mutex
	set  map[[sha256.Size]byte]struct{}
	ring [][sha256.Size]byte
	next int
}

func newSigCache(size int) *sigCache {
	return &sigCache{set: make(map[[sha256.Size]byte]struct{}, size), ring: make([][sha256.Size]byte, size)}
}

func (c *sigCache) has(k [sha256.Size]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.set[k]
	return ok
}

func (c *sigCache) add(k [sha256.Size]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.set[k]; ok {
		return
	}
	old := c.ring[c.next]
	delete(c.set, old)
	c.ring[c.next] = k
	c.next = (c.next + 1) % len(c.ring)
	c.set[k] = struct{}{}
}

// RecordKey returns the DHT key of a record in namespace ns.
func RecordKey(ns, subject string) string { return "/" + ns + "/" + subject }

// Decode checks a record value for key and returns its envelope.
func (v RecordValidator) Decode(key string, value []byte) (*gossip.Envelope, error) {
	subject, ok := strings.CutPrefix(key, "/"+v.Namespace+"/")
	if !ok || subject == "" {
		return nil, fmt.Errorf("record key %q: not in namespace %q", key, v.Namespace)
	}
	env, err := gossip.Decode(value, maxRecordSize)
	if err != nil {
		return nil, fmt.Errorf("record %q: %w", key, err)
	}
	if env.Topic != v.Namespace || env.Kind != v.Kind || env.Key != subject {
		return nil, fmt.Errorf("record %q: envelope is %s/%s for %q", key, env.Topic, env.Kind, env.Key)
	}
	authorized := env.Issuer.String() == subject
	if v.Authorized != nil {
		authorized = v.Authorized(subject, env.Issuer)
	}
	if !authorized {
		return nil, fmt.Errorf("record %q: %w: %s may not sign it", key, gossip.ErrIssuer, env.Issuer)
	}
	var sum [sha256.Size]byte
	if v.Sigs != nil {
		sum = sha256.Sum256(value)
	}
	if v.Sigs == nil || !v.Sigs.has(sum) {
		if err := env.Verify(); err != nil {
			return nil, fmt.Errorf("record %q: %w", key, err)
		}
		if v.Sigs != nil {
			v.Sigs.add(sum)
		}
	}
	if env.Expires == 0 {
		return nil, fmt.Errorf("record %q: no expiry", key)
	}
	if v.Body != nil {
		if err := v.Body(subject, env); err != nil {
			return nil, fmt.Errorf("record %q: %w", key, err)
		}
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	if env.Expired(now()) {
		return nil, fmt.Errorf("record %q: %w", key, gossip.ErrExpired)
	}
	return env, nil
}

// Validate implements record.Validator.
func (v RecordValidator) Validate(key string, value []byte) error {
	_, err := v.Decode(key, value)
	return err
}

// Select implements record.Validator: the valid record that is newest by
// Newer (by default the newest sequence) wins; ties go to the first.
func (v RecordValidator) Select(key string, values [][]byte) (int, error) {
	newer := v.Newer
	if newer == nil {
		newer = func(a, b *gossip.Envelope) bool { return a.Seq.Newer(b.Seq) }
	}
	best := -1
	var bestEnv *gossip.Envelope
	for i, val := range values {
		env, err := v.Decode(key, val)
		if err != nil {
			continue
		}
		if best < 0 || newer(env, bestEnv) {
			best, bestEnv = i, env
		}
	}
	if best < 0 {
		return 0, errors.New("no valid record")
	}
	return best, nil
}
