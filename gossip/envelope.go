// Package gossip carries the federation's signed messages: the versioned
// envelope every message travels in, the per-topic validators, the
// GossipSub wiring with anti-entropy, and the membership view built from
// heartbeats. It decides nothing about routes or calls.
package gossip

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Version is the envelope format this code writes and the only one it reads.
// A message of any other version is rejected, never guessed at.
const Version = 1

// DefaultMaxSize bounds an encoded envelope unless a topic sets its own limit.
const DefaultMaxSize = 64 << 10

// signingDomain separates envelope signatures from any other use of a node's
// key: a signature made here can never be replayed as another protocol's.
const signingDomain = "callmesh/gossip/envelope/v1"

// Errors a decoded or verified envelope may fail with. Each is wrapped with
// the detail of what was wrong; test with errors.Is.
var (
	ErrMalformed    = errors.New("malformed envelope")
	ErrVersion      = errors.New("unknown envelope version")
	ErrOversize     = errors.New("envelope too large")
	ErrBadSignature = errors.New("bad envelope signature")
	ErrIssuer       = errors.New("issuer is not the signer")
	ErrTopic        = errors.New("envelope for another topic")
	ErrExpired      = errors.New("envelope expired")
	ErrStale        = errors.New("stale sequence")
)

// Envelope is the signed, versioned wrapper of every federation message, on
// GossipSub, in anti-entropy transfers and in DHT records. The issuer signs
// every field but Sig with its libp2p key; because an Ed25519 peer ID embeds
// the public key, anyone can verify an envelope from its bytes alone, whoever
// forwarded it.
type Envelope struct {
	V       int     `json:"v"`
	Topic   string  `json:"topic"`
	Kind    string  `json:"kind"`
	Key     string  `json:"key,omitempty"` // state key within (topic, issuer); "" for one-per-issuer state such as heartbeats
	Issuer  peer.ID `json:"issuer"`
	Seq     Seq     `json:"seq"`
	Expires int64   `json:"expires,omitempty"` // Unix milliseconds; 0 never
	Body    []byte  `json:"body"`
	Sig     []byte  `json:"sig"`
}

// NewEnvelope builds an unsigned envelope whose body is v encoded as JSON.
func NewEnvelope(topic, kind, key string, seq Seq, expires time.Time, v any) (*Envelope, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("envelope body for %s/%s: %w", topic, kind, err)
	}
	e := &Envelope{V: Version, Topic: topic, Kind: kind, Key: key, Seq: seq, Body: body}
	if !expires.IsZero() {
		e.Expires = expires.UnixMilli()
	}
	return e, nil
}

// signingBytes is the exact byte string the signature covers: the domain tag
// and every field, each length-prefixed so that no two envelopes share it.
func (e *Envelope) signingBytes() []byte {
	n := len(signingDomain) + len(e.Topic) + len(e.Kind) + len(e.Key) + len(e.Issuer) + len(e.Body) + 8*8
	b := make([]byte, 0, n)
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	str(signingDomain)
	b = binary.AppendUvarint(b, uint64(e.V))
	str(e.Topic)
	str(e.Kind)
	str(e.Key)
	str(string(e.Issuer))
	b = binary.BigEndian.AppendUint64(b, e.Seq.Inc)
	b = binary.BigEndian.AppendUint64(b, e.Seq.Ctr)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Expires))
	b = binary.AppendUvarint(b, uint64(len(e.Body)))
	b = append(b, e.Body...)
	return b
}

// Sign sets the issuer to the key's peer ID and signs the envelope.
func (e *Envelope) Sign(key crypto.PrivKey) error {
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return fmt.Errorf("envelope issuer from key: %w", err)
	}
	e.Issuer = id
	sig, err := key.Sign(e.signingBytes())
	if err != nil {
		return fmt.Errorf("envelope signature: %w", err)
	}
	e.Sig = sig
	return nil
}

// Verify checks the signature against the public key embedded in the issuer's
// peer ID.
func (e *Envelope) Verify() error {
	if len(e.Sig) == 0 {
		return fmt.Errorf("%w: no signature", ErrBadSignature)
	}
	pub, err := e.Issuer.ExtractPublicKey()
	if err != nil {
		return fmt.Errorf("%w: issuer %q carries no public key: %v", ErrBadSignature, e.Issuer, err)
	}
	// One key has one issuer ID: refuse the other encodings of the same key,
	// so that a key cannot pose as several issuers.
	if id, err := peer.IDFromPublicKey(pub); err != nil || id != e.Issuer {
		return fmt.Errorf("%w: issuer %s is not the canonical ID of its key", ErrBadSignature, e.Issuer)
	}
	ok, err := pub.Verify(e.signingBytes(), e.Sig)
	if err != nil || !ok {
		return fmt.Errorf("%w: issuer %s", ErrBadSignature, e.Issuer)
	}
	return nil
}

// Expired reports whether the envelope's expiry lies before now.
func (e *Envelope) Expired(now time.Time) bool {
	return e.Expires != 0 && now.UnixMilli() > e.Expires
}

// Decode parses and checks an envelope's form: size, version, required
// fields. It does not verify the signature; see Check.
func Decode(data []byte, maxSize int) (*Envelope, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	if len(data) > maxSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrOversize, len(data), maxSize)
	}
	// Read the version alone first, so that a future format that is not
	// shaped like this one is reported as a version mismatch.
	var head struct {
		V *int `json:"v"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if head.V == nil {
		return nil, fmt.Errorf("%w: no version", ErrMalformed)
	}
	if *head.V != Version {
		return nil, fmt.Errorf("%w: %d (this node reads %d)", ErrVersion, *head.V, Version)
	}
	e := new(Envelope)
	if err := json.Unmarshal(data, e); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	switch {
	case e.Topic == "":
		return nil, fmt.Errorf("%w: no topic", ErrMalformed)
	case e.Kind == "":
		return nil, fmt.Errorf("%w: no kind", ErrMalformed)
	case e.Issuer == "":
		return nil, fmt.Errorf("%w: no issuer", ErrMalformed)
	case e.Seq.IsZero():
		return nil, fmt.Errorf("%w: zero sequence", ErrMalformed)
	}
	if err := e.Issuer.Validate(); err != nil {
		return nil, fmt.Errorf("%w: issuer: %v", ErrMalformed, err)
	}
	// Only the canonical text form of a peer ID is accepted, so that what
	// Decode reads, Encode writes back the same.
	if id, err := peer.Decode(e.Issuer.String()); err != nil || id != e.Issuer {
		return nil, fmt.Errorf("%w: issuer is not a canonical peer ID", ErrMalformed)
	}
	return e, nil
}

// Encode returns the envelope's wire form.
func (e *Envelope) Encode() ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("envelope encoding: %w", err)
	}
	return b, nil
}

// DecodeBody decodes the envelope's JSON body into v.
func (e *Envelope) DecodeBody(v any) error {
	if err := json.Unmarshal(e.Body, v); err != nil {
		return fmt.Errorf("%w: %s body: %v", ErrMalformed, e.Kind, err)
	}
	return nil
}
