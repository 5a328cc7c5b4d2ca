package node

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/callmesh/callmesh/gossip"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The record validator is what the DHT runs on every value it stores.
var _ record.Validator = RecordValidator{}

// testKey returns a fresh Ed25519 key and its peer ID.
func testKey(t *testing.T) (crypto.PrivKey, peer.ID) {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return key, id
}

// recordClock is a fixed instant the record tests run at.
var recordClock = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func nodeValidator() RecordValidator {
	return RecordValidator{
		Namespace: NodeRecordNamespace, Kind: NodeRecordKind,
		Now: func() time.Time { return recordClock },
	}
}

// recordEnv builds an unsigned node record envelope for subject.
func recordEnv(t *testing.T, subject peer.ID, seq gossip.Seq, expires time.Time) *gossip.Envelope {
	t.Helper()
	env, err := gossip.NewEnvelope(NodeRecordNamespace, NodeRecordKind, subject.String(), seq, expires, NodeRecord{
		Name: "edge-1", SIP: "10.0.0.1:5060", Admin: "http://127.0.0.1:7080",
		P2P: []string{"/ip4/10.0.0.1/tcp/4100"}, Version: Version,
	})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func encodeEnv(t *testing.T, env *gossip.Envelope) []byte {
	t.Helper()
	data, err := env.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// signedRecord returns a node record about id, signed by key.
func signedRecord(t *testing.T, key crypto.PrivKey, id peer.ID, seq gossip.Seq) []byte {
	t.Helper()
	env := recordEnv(t, id, seq, recordClock.Add(time.Hour))
	if err := env.Sign(key); err != nil {
		t.Fatal(err)
	}
	return encodeEnv(t, env)
}

func TestRecordKey(t *testing.T) {
	if got, want := RecordKey(NodeRecordNamespace, "abc"), "/callmesh-node/abc"; got != want {
		t.Fatalf("RecordKey = %q, want %q", got, want)
	}
}

func TestRecordValidatorAcceptsSigned(t *testing.T) {
	key, id := testKey(t)
	val := signedRecord(t, key, id, gossip.Seq{Inc: 7, Ctr: 1})
	v := nodeValidator()
	k := RecordKey(NodeRecordNamespace, id.String())
	if err := v.Validate(k, val); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	env, err := v.Decode(k, val)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	var rec NodeRecord
	if err := env.DecodeBody(&rec); err != nil {
		t.Fatal(err)
	}
	if rec.Name != "edge-1" || env.Issuer != id || env.Seq != (gossip.Seq{Inc: 7, Ctr: 1}) {
		t.Fatalf("decoded %+v from %+v", rec, env)
	}
	// Without an injected clock the validator uses the real time; the
	// record above expires in 2030, so it is valid now too.
	if err := (RecordValidator{Namespace: NodeRecordNamespace, Kind: NodeRecordKind}).Validate(k, val); err != nil {
		t.Fatalf("Validate with the real clock: %v", err)
	}
}

func TestRecordValidatorKeyChecks(t *testing.T) {
	key, id := testKey(t)
	_, other := testKey(t)
	val := signedRecord(t, key, id, gossip.Seq{Inc: 1, Ctr: 1})
	v := nodeValidator()
	for name, k := range map[string]string{
		"other namespace": RecordKey("callmesh-user", id.String()),
		"no namespace":    "/" + id.String(),
		"prefix only":     "/callmesh-node-extra/" + id.String(),
		"empty subject":   RecordKey(NodeRecordNamespace, ""),
		"other subject":   RecordKey(NodeRecordNamespace, other.String()),
		"no slash":        NodeRecordNamespace + "/" + id.String(),
	} {
		t.Run(name, func(t *testing.T) {
			if err := v.Validate(k, val); err == nil {
				t.Fatalf("Validate(%q) accepted a record for %s", k, id)
			}
		})
	}
}

// TestRecordValidatorSubjectMismatch signs, with the subject's own key, a
// record whose envelope Key names another peer: the DHT key and the
// envelope must agree.
func TestRecordValidatorSubjectMismatch(t *testing.T) {
	key, id := testKey(t)
	_, other := testKey(t)
	env := recordEnv(t, other, gossip.Seq{Inc: 1, Ctr: 1}, recordClock.Add(time.Hour))
	if err := env.Sign(key); err != nil {
		t.Fatal(err)
	}
	err := nodeValidator().Validate(RecordKey(NodeRecordNamespace, id.String()), encodeEnv(t, env))
	if err == nil {
		t.Fatal("accepted a record whose envelope key is another peer")
	}
	if !strings.Contains(err.Error(), other.String()) {
		t.Errorf("error %q does not name the envelope key", err)
	}
}

func TestRecordValidatorIssuerNotSubject(t *testing.T) {
	_, subject := testKey(t)
	otherKey, _ := testKey(t)
	val := signedRecord(t, otherKey, subject, gossip.Seq{Inc: 1, Ctr: 1})
	err := nodeValidator().Validate(RecordKey(NodeRecordNamespace, subject.String()), val)
	if !errors.Is(err, gossip.ErrIssuer) {
		t.Fatalf("Validate = %v, want gossip.ErrIssuer", err)
	}
}

func TestRecordValidatorAuthorizedHook(t *testing.T) {
	_, subject := testKey(t)
	adminKey, admin := testKey(t)
	var asked []string
	v := nodeValidator()
	v.Authorized = func(s string, issuer peer.ID) bool {
		asked = append(asked, s+" by "+issuer.String())
		return issuer == admin
	}
	k := RecordKey(NodeRecordNamespace, subject.String())
	if err := v.Validate(k, signedRecord(t, adminKey, subject, gossip.Seq{Inc: 1, Ctr: 1})); err != nil {
		t.Fatalf("record signed by an authorized issuer: %v", err)
	}
	if len(asked) != 1 || asked[0] != subject.String()+" by "+admin.String() {
		t.Errorf("Authorized called with %q, want the subject and the issuer", asked)
	}

	// The hook replaces the default rule: with it, even the subject's own
	// signature needs its approval.
	selfKey, self := testKey(t)
	k = RecordKey(NodeRecordNamespace, self.String())
	err := v.Validate(k, signedRecord(t, selfKey, self, gossip.Seq{Inc: 1, Ctr: 1}))
	if !errors.Is(err, gossip.ErrIssuer) {
		t.Fatalf("self-signed record rejected by the hook: got %v, want gossip.ErrIssuer", err)
	}

	// An authorized issuer still needs a good signature.
	env := recordEnv(t, subject, gossip.Seq{Inc: 2, Ctr: 1}, recordClock.Add(time.Hour))
	if err := env.Sign(adminKey); err != nil {
		t.Fatal(err)
	}
	env.Body = []byte(`{"name":"forged","version":"0"}`)
	err = v.Validate(RecordKey(NodeRecordNamespace, subject.String()), encodeEnv(t, env))
	if !errors.Is(err, gossip.ErrBadSignature) {
		t.Fatalf("tampered record by an authorized issuer: got %v, want gossip.ErrBadSignature", err)
	}
}

func TestRecordValidatorTampered(t *testing.T) {
	key, id := testKey(t)
	k := RecordKey(NodeRecordNamespace, id.String())
	cases := map[string]func(e *gossip.Envelope){
		"body":    func(e *gossip.Envelope) { e.Body = []byte(`{"name":"mallory","version":"0.1.0"}`) },
		"seq":     func(e *gossip.Envelope) { e.Seq.Ctr++ },
		"expires": func(e *gossip.Envelope) { e.Expires += 1000 },
		"sig":     func(e *gossip.Envelope) { e.Sig[0] ^= 0xff },
		"no sig":  func(e *gossip.Envelope) { e.Sig = nil },
	}
	for name, tamper := range cases {
		t.Run(name, func(t *testing.T) {
			env := recordEnv(t, id, gossip.Seq{Inc: 1, Ctr: 1}, recordClock.Add(time.Hour))
			if err := env.Sign(key); err != nil {
				t.Fatal(err)
			}
			tamper(env)
			err := nodeValidator().Validate(k, encodeEnv(t, env))
			if !errors.Is(err, gossip.ErrBadSignature) {
				t.Fatalf("Validate = %v, want gossip.ErrBadSignature", err)
			}
		})
	}
}

func TestRecordValidatorTamperedBytes(t *testing.T) {
	key, id := testKey(t)
	val := signedRecord(t, key, id, gossip.Seq{Inc: 1, Ctr: 1})
	var raw map[string]any
	if err := json.Unmarshal(val, &raw); err != nil {
		t.Fatal(err)
	}
	raw["body"] = []byte(`{"name":"edge-2","version":"0.1.0"}`) // encoded as base64 like the original
	tampered, err := json.Marshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	err = nodeValidator().Validate(RecordKey(NodeRecordNamespace, id.String()), tampered)
	if !errors.Is(err, gossip.ErrBadSignature) {
		t.Fatalf("Validate = %v, want gossip.ErrBadSignature", err)
	}
}

func TestRecordValidatorExpiry(t *testing.T) {
	key, id := testKey(t)
	k := RecordKey(NodeRecordNamespace, id.String())
	expires := recordClock.Add(time.Hour)
	env := recordEnv(t, id, gossip.Seq{Inc: 1, Ctr: 1}, expires)
	if err := env.Sign(key); err != nil {
		t.Fatal(err)
	}
	val := encodeEnv(t, env)

	at := func(now time.Time) error {
		v := nodeValidator()
		v.Now = func() time.Time { return now }
		return v.Validate(k, val)
	}
	if err := at(expires.Add(-time.Minute)); err != nil {
		t.Fatalf("a minute before expiry: %v", err)
	}
	if err := at(expires); err != nil {
		t.Fatalf("at the expiry instant: %v", err)
	}
	if err := at(expires.Add(time.Millisecond)); !errors.Is(err, gossip.ErrExpired) {
		t.Fatalf("a millisecond after expiry: got %v, want gossip.ErrExpired", err)
	}
	if err := at(expires.Add(24 * time.Hour)); !errors.Is(err, gossip.ErrExpired) {
		t.Fatalf("a day after expiry: got %v, want gossip.ErrExpired", err)
	}
}

func TestRecordValidatorNoExpiry(t *testing.T) {
	key, id := testKey(t)
	env := recordEnv(t, id, gossip.Seq{Inc: 1, Ctr: 1}, time.Time{})
	if env.Expires != 0 {
		t.Fatalf("envelope expiry = %d, want none", env.Expires)
	}
	if err := env.Sign(key); err != nil {
		t.Fatal(err)
	}
	err := nodeValidator().Validate(RecordKey(NodeRecordNamespace, id.String()), encodeEnv(t, env))
	if err == nil || !strings.Contains(err.Error(), "no expiry") {
		t.Fatalf("Validate = %v, want a no-expiry error", err)
	}
}

func TestRecordValidatorWrongKindOrTopic(t *testing.T) {
	key, id := testKey(t)
	k := RecordKey(NodeRecordNamespace, id.String())
	for name, mk := range map[string]func() (*gossip.Envelope, error){
		"kind": func() (*gossip.Envelope, error) {
			return gossip.NewEnvelope(NodeRecordNamespace, HeartbeatKind, id.String(), gossip.Seq{Inc: 1, Ctr: 1}, recordClock.Add(time.Hour), NodeRecord{Name: "a"})
		},
		"topic": func() (*gossip.Envelope, error) {
			return gossip.NewEnvelope(HeartbeatTopic, NodeRecordKind, id.String(), gossip.Seq{Inc: 1, Ctr: 1}, recordClock.Add(time.Hour), NodeRecord{Name: "a"})
		},
	} {
		t.Run(name, func(t *testing.T) {
			env, err := mk()
			if err != nil {
				t.Fatal(err)
			}
			if err := env.Sign(key); err != nil {
				t.Fatal(err)
			}
			if err := nodeValidator().Validate(k, encodeEnv(t, env)); err == nil {
				t.Fatal("accepted an envelope of the wrong " + name)
			}
		})
	}
}

func TestRecordValidatorMalformed(t *testing.T) {
	key, id := testKey(t)
	k := RecordKey(NodeRecordNamespace, id.String())
	big := recordEnv(t, id, gossip.Seq{Inc: 1, Ctr: 1}, recordClock.Add(time.Hour))
	big.Body = []byte(`"` + strings.Repeat("x", maxRecordSize) + `"`)
	if err := big.Sign(key); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		val  []byte
		want error
	}{
		"not json":  {[]byte("not json"), gossip.ErrMalformed},
		"empty":     {nil, gossip.ErrMalformed},
		"version":   {[]byte(`{"v":2}`), gossip.ErrVersion},
		"oversized": {encodeEnv(t, big), gossip.ErrOversize},
	} {
		t.Run(name, func(t *testing.T) {
			if err := nodeValidator().Validate(k, tc.val); !errors.Is(err, tc.want) {
				t.Fatalf("Validate = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestRecordValidatorSelect(t *testing.T) {
	key, id := testKey(t)
	otherKey, _ := testKey(t)
	k := RecordKey(NodeRecordNamespace, id.String())
	v := nodeValidator()

	old := signedRecord(t, key, id, gossip.Seq{Inc: 5, Ctr: 9})
	newer := signedRecord(t, key, id, gossip.Seq{Inc: 6, Ctr: 1})
	newest := signedRecord(t, key, id, gossip.Seq{Inc: 6, Ctr: 2})
	// Invalid values carrying higher sequences must not win.
	forged := signedRecord(t, otherKey, id, gossip.Seq{Inc: 99, Ctr: 1})
	expiredEnv := recordEnv(t, id, gossip.Seq{Inc: 98, Ctr: 1}, recordClock.Add(-time.Second))
	if err := expiredEnv.Sign(key); err != nil {
		t.Fatal(err)
	}
	expired := encodeEnv(t, expiredEnv)

	cases := []struct {
		name   string
		values [][]byte
		want   int
	}{
		{"one", [][]byte{old}, 0},
		{"newest last", [][]byte{old, newer, newest}, 2},
		{"newest first", [][]byte{newest, old, newer}, 0},
		{"counter within incarnation", [][]byte{newer, newest}, 1},
		{"incarnation beats counter", [][]byte{newer, old}, 0},
		{"skips invalid", [][]byte{forged, expired, old, []byte("junk"), newer}, 4},
		{"invalid only before", [][]byte{forged, old}, 1},
		{"tie goes to first", [][]byte{old, newer, newer}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := v.Select(k, tc.values)
			if err != nil {
				t.Fatalf("Select: %v", err)
			}
			if got != tc.want {
				t.Fatalf("Select = %d, want %d", got, tc.want)
			}
		})
	}

	t.Run("none valid", func(t *testing.T) {
		if _, err := v.Select(k, [][]byte{forged, expired, []byte("junk")}); err == nil {
			t.Fatal("Select with no valid value: no error")
		}
		if _, err := v.Select(k, nil); err == nil {
			t.Fatal("Select of nothing: no error")
		}
	})
}

// With a signature cache, bytes verified once are not verified again, but
// other bytes always are, and expiry is checked every time.
func TestRecordValidatorSigCache(t *testing.T) {
	key, id := testKey(t)
	env := recordEnv(t, id, gossip.Seq{Inc: 1, Ctr: 1}, recordClock.Add(time.Hour))
	if err := env.Sign(key); err != nil {
		t.Fatal(err)
	}
	good := encodeEnv(t, env)
	now := recordClock
	v := nodeValidator()
	v.Now = func() time.Time { return now }
	v.Sigs = newSigCache(2)
	k := RecordKey(NodeRecordNamespace, id.String())
	if err := v.Validate(k, good); err != nil {
		t.Fatal(err)
	}
	if !v.Sigs.has(sha256.Sum256(good)) {
		t.Fatal("a verified value was not remembered")
	}
	env.Sig[0] ^= 0xff
	forged := encodeEnv(t, env)
	for range 2 {
		if err := v.Validate(k, forged); !errors.Is(err, gossip.ErrBadSignature) {
			t.Fatalf("forged value: %v, want ErrBadSignature", err)
		}
	}
	if err := v.Validate(k, good); err != nil {
		t.Fatalf("cached value: %v", err)
	}
	now = recordClock.Add(2 * time.Hour)
	if err := v.Validate(k, good); !errors.Is(err, gossip.ErrExpired) {
		t.Fatalf("cached value after expiry: %v, want ErrExpired", err)
	}
	// The cache is bounded: the oldest entry leaves first.
	c := newSigCache(2)
	a, b, d := [32]byte{1}, [32]byte{2}, [32]byte{3}
	c.add(a)
	c.add(b)
	c.add(d)
	if c.has(a) || !c.has(b) || !c.has(d) || len(c.set) != 2 {
		t.Fatalf("bounded cache holds %d entries; a %v b %v d %v", len(c.set), c.has(a), c.has(b), c.has(d))
	}
}
