package gossip_test

import (
	"bytes"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/callmesh/callmesh/gossip"
)

// testKey returns the Ed25519 key derived from seed: the same seed always
// gives the same key, and so the same peer ID.
func testKey(t testing.TB, seed uint64) crypto.PrivKey {
	t.Helper()
	var s [32]byte
	binary.BigEndian.PutUint64(s[:], seed)
	copy(s[8:], "callmesh gossip test key")
	k, _, err := crypto.GenerateEd25519Key(rand.NewChaCha8(s))
	if err != nil {
		t.Fatalf("generate key %d: %v", seed, err)
	}
	return k
}

func testID(t testing.TB, k crypto.PrivKey) peer.ID {
	t.Helper()
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatalf("peer ID from key: %v", err)
	}
	return id
}

// testBody is the body the tests put in their envelopes.
type testBody struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

// testEpoch is the fixed "now" of the tests that do not run a bus.
var testEpoch = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// signed builds and signs an envelope on topic "t", kind "k".
func signed(t testing.TB, key crypto.PrivKey, stateKey string, seq gossip.Seq, expires time.Time, body any) *gossip.Envelope {
	t.Helper()
	return signedOn(t, key, "t", "k", stateKey, seq, expires, body)
}

func signedOn(t testing.TB, key crypto.PrivKey, topic, kind, stateKey string, seq gossip.Seq, expires time.Time, body any) *gossip.Envelope {
	t.Helper()
	env, err := gossip.NewEnvelope(topic, kind, stateKey, seq, expires, body)
	if err != nil {
		t.Fatalf("new envelope: %v", err)
	}
	if err := env.Sign(key); err != nil {
		t.Fatalf("sign: %v", err)
	}
	return env
}

func encode(t testing.TB, env *gossip.Envelope) []byte {
	t.Helper()
	b, err := env.Encode()
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return b
}

// cloneEnv deep-copies an envelope so that a mutation leaves the original
// untouched.
func cloneEnv(e *gossip.Envelope) *gossip.Envelope {
	c := *e
	c.Body = bytes.Clone(e.Body)
	c.Sig = bytes.Clone(e.Sig)
	return &c
}

// jsonObject renders a JSON object from a map, for hand-built wire forms.
func jsonObject(t testing.TB, m map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return b
}

// wireFields returns a valid envelope's wire form as a map, for tests that
// drop or replace one field.
func wireFields(t testing.TB, env *gossip.Envelope) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(encode(t, env), &m); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	return m
}

func TestTestKeyDeterministic(t *testing.T) {
	a1, a2, b := testID(t, testKey(t, 1)), testID(t, testKey(t, 1)), testID(t, testKey(t, 2))
	if a1 != a2 {
		t.Fatalf("same seed, different IDs: %s, %s", a1, a2)
	}
	if a1 == b {
		t.Fatalf("different seeds, same ID %s", a1)
	}
}

func TestNewEnvelope(t *testing.T) {
	exp := testEpoch.Add(time.Minute)
	env, err := gossip.NewEnvelope("topic", "kind", "key", gossip.Seq{Inc: 7, Ctr: 3}, exp, testBody{Name: "a", Count: 2})
	if err != nil {
		t.Fatal(err)
	}
	want := &gossip.Envelope{
		V: gossip.Version, Topic: "topic", Kind: "kind", Key: "key",
		Seq: gossip.Seq{Inc: 7, Ctr: 3}, Expires: exp.UnixMilli(),
		Body: []byte(`{"name":"a","count":2}`),
	}
	if !reflect.DeepEqual(env, want) {
		t.Fatalf("NewEnvelope = %+v, want %+v", env, want)
	}

	never, err := gossip.NewEnvelope("topic", "kind", "", gossip.Seq{Inc: 1, Ctr: 1}, time.Time{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if never.Expires != 0 || string(never.Body) != "null" {
		t.Fatalf("zero expiry, nil body: Expires %d, Body %q; want 0, null", never.Expires, never.Body)
	}

	if _, err := gossip.NewEnvelope("topic", "kind", "", gossip.Seq{Inc: 1, Ctr: 1}, time.Time{}, make(chan int)); err == nil {
		t.Fatal("NewEnvelope accepted a body JSON cannot encode")
	}
}

func TestEnvelopeSignVerifyRoundTrip(t *testing.T) {
	key := testKey(t, 1)
	env := signed(t, key, "route/1", gossip.Seq{Inc: 1700000000000, Ctr: 42}, testEpoch.Add(time.Hour), testBody{Name: "x", Count: 9})
	if env.Issuer != testID(t, key) {
		t.Fatalf("Sign set issuer %s, want the key's ID %s", env.Issuer, testID(t, key))
	}
	if err := env.Verify(); err != nil {
		t.Fatalf("Verify after Sign: %v", err)
	}
	data := encode(t, env)
	got, err := gossip.Decode(data, 0)
	if err != nil {
		t.Fatalf("Decode(Encode(env)): %v", err)
	}
	if !reflect.DeepEqual(got, env) {
		t.Fatalf("round trip changed the envelope:\n got %+v\nwant %+v", got, env)
	}
	if err := got.Verify(); err != nil {
		t.Fatalf("Verify after round trip: %v", err)
	}
	again := encode(t, got)
	if !bytes.Equal(again, data) {
		t.Fatalf("re-encoding differs:\n%s\n%s", again, data)
	}
	var b testBody
	if err := got.DecodeBody(&b); err != nil || b != (testBody{Name: "x", Count: 9}) {
		t.Fatalf("DecodeBody = %+v, %v", b, err)
	}
}

// Sign must overwrite whatever issuer the envelope claimed before.
func TestEnvelopeSignSetsIssuer(t *testing.T) {
	a, b := testKey(t, 1), testKey(t, 2)
	env, err := gossip.NewEnvelope("t", "k", "", gossip.Seq{Inc: 1, Ctr: 1}, time.Time{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	env.Issuer = testID(t, b)
	if err := env.Sign(a); err != nil {
		t.Fatal(err)
	}
	if env.Issuer != testID(t, a) {
		t.Fatalf("issuer %s after Sign with A, want A %s", env.Issuer, testID(t, a))
	}
	if err := env.Verify(); err != nil {
		t.Fatal(err)
	}
}

// Every field but Sig is covered by the signature, and Sig itself cannot be
// altered: any change after signing must fail verification.
func TestEnvelopeSignatureCoversEveryField(t *testing.T) {
	key := testKey(t, 1)
	other := testID(t, testKey(t, 2))
	base := signed(t, key, "key", gossip.Seq{Inc: 10, Ctr: 20}, testEpoch.Add(time.Hour), testBody{Name: "n", Count: 1})
	if err := base.Verify(); err != nil {
		t.Fatal(err)
	}
	sibling := signed(t, key, "key", gossip.Seq{Inc: 10, Ctr: 21}, testEpoch.Add(time.Hour), testBody{Name: "n", Count: 1})

	tests := []struct {
		field  string // the Envelope field (or Seq.X) the mutation changes
		name   string
		mutate func(e *gossip.Envelope)
	}{
		{"V", "version up", func(e *gossip.Envelope) { e.V = 2 }},
		{"V", "version zero", func(e *gossip.Envelope) { e.V = 0 }},
		{"Topic", "other topic", func(e *gossip.Envelope) { e.Topic = "u" }},
		{"Topic", "topic extended", func(e *gossip.Envelope) { e.Topic += "x" }},
		{"Kind", "other kind", func(e *gossip.Envelope) { e.Kind = "j" }},
		{"Key", "other key", func(e *gossip.Envelope) { e.Key = "kez" }},
		{"Key", "key dropped", func(e *gossip.Envelope) { e.Key = "" }},
		{"Issuer", "other issuer", func(e *gossip.Envelope) { e.Issuer = other }},
		{"Seq.Inc", "incarnation up", func(e *gossip.Envelope) { e.Seq.Inc++ }},
		{"Seq.Ctr", "counter up", func(e *gossip.Envelope) { e.Seq.Ctr++ }},
		{"Seq.Ctr", "counter down", func(e *gossip.Envelope) { e.Seq.Ctr-- }},
		{"Expires", "expiry extended", func(e *gossip.Envelope) { e.Expires += 1 }},
		{"Expires", "expiry removed", func(e *gossip.Envelope) { e.Expires = 0 }},
		{"Body", "body byte flipped", func(e *gossip.Envelope) { e.Body[len(e.Body)-2] ^= 1 }},
		{"Body", "body extended", func(e *gossip.Envelope) { e.Body = append(e.Body, ' ') }},
		{"Body", "body removed", func(e *gossip.Envelope) { e.Body = nil }},
		{"Sig", "signature bit flipped", func(e *gossip.Envelope) { e.Sig[0] ^= 0x80 }},
		{"Sig", "signature truncated", func(e *gossip.Envelope) { e.Sig = e.Sig[:len(e.Sig)-1] }},
		{"Sig", "signature removed", func(e *gossip.Envelope) { e.Sig = nil }},
		{"Sig", "signature of another envelope", func(e *gossip.Envelope) { e.Sig = bytes.Clone(sibling.Sig) }},
		// The fields are length-prefixed: moving bytes across a boundary
		// changes the signed bytes even though the concatenation does not.
		{"Topic", "byte moved from topic to kind", func(e *gossip.Envelope) { e.Topic, e.Kind = "", "tk" }},
		{"Kind", "byte moved from kind to key", func(e *gossip.Envelope) { e.Kind, e.Key = "", "kkey" }},
	}

	covered := map[string]bool{}
	for _, tc := range tests {
		covered[tc.field] = true
		t.Run(tc.name, func(t *testing.T) {
			e := cloneEnv(base)
			tc.mutate(e)
			if reflect.DeepEqual(e, base) {
				t.Fatal("mutation changed nothing")
			}
			if err := e.Verify(); !errors.Is(err, gossip.ErrBadSignature) {
				t.Fatalf("Verify after mutating %s = %v, want ErrBadSignature", tc.field, err)
			}
			if err := base.Verify(); err != nil {
				t.Fatalf("original no longer verifies: %v", err)
			}
		})
	}

	// A field added to Envelope or Seq must get a mutation above, and must
	// be signed.
	for _, typ := range []reflect.Type{reflect.TypeFor[gossip.Envelope](), reflect.TypeFor[gossip.Seq]()} {
		for f := range typ.Fields() {
			name := f.Name
			if typ == reflect.TypeFor[gossip.Seq]() {
				name = "Seq." + name
			} else if name == "Seq" {
				continue
			}
			if !covered[name] {
				t.Errorf("no mutation of field %s", name)
			}
		}
	}
}

// Mutations that survive the wire must be caught after Decode too.
func TestEnvelopeTamperedOnTheWire(t *testing.T) {
	key := testKey(t, 1)
	env := signed(t, key, "", gossip.Seq{Inc: 5, Ctr: 6}, time.Time{}, testBody{Name: "abc", Count: 3})
	data := encode(t, env)
	tampered := bytes.Replace(data, []byte(`"ctr":6`), []byte(`"ctr":7`), 1)
	if bytes.Equal(tampered, data) {
		t.Fatalf("counter not found in %s", data)
	}
	got, err := gossip.Decode(tampered, 0)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if err := got.Verify(); !errors.Is(err, gossip.ErrBadSignature) {
		t.Fatalf("Verify of tampered wire form = %v, want ErrBadSignature", err)
	}
}

// An envelope signed by A but claiming issuer B is a forgery: B's key, taken
// from B's ID, does not verify A's signature.
func TestEnvelopeSignedByAClaimingB(t *testing.T) {
	a, b := testKey(t, 1), testKey(t, 2)
	env := signed(t, a, "", gossip.Seq{Inc: 1, Ctr: 1}, time.Time{}, "hello")
	env.Issuer = testID(t, b)
	if err := env.Verify(); !errors.Is(err, gossip.ErrBadSignature) {
		t.Fatalf("Verify = %v, want ErrBadSignature", err)
	}
	got, err := gossip.Decode(encode(t, env), 0)
	if err != nil {
		t.Fatalf("Decode of a well-formed forgery: %v", err)
	}
	if got.Issuer != testID(t, b) {
		t.Fatalf("decoded issuer %s, want %s", got.Issuer, testID(t, b))
	}
	if err := got.Verify(); !errors.Is(err, gossip.ErrBadSignature) {
		t.Fatalf("Verify after Decode = %v, want ErrBadSignature", err)
	}
}

// Issuers whose peer ID embeds no public key (RSA, ECDSA: the ID is a hash of
// the key) cannot be verified from the envelope alone, so their envelopes
// never verify. Secp256k1 IDs embed the key, like Ed25519's.
func TestEnvelopeIssuerKeyTypes(t *testing.T) {
	ecdsaKey, _, err := crypto.GenerateECDSAKeyPair(crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	secpKey, _, err := crypto.GenerateSecp256k1Key(crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		key      crypto.PrivKey
		verifies bool
	}{
		{"ed25519", testKey(t, 1), true},
		{"secp256k1", secpKey, true},
		{"ecdsa", ecdsaKey, false},
	}
	if !testing.Short() {
		rsaKey, _, err := crypto.GenerateRSAKeyPair(2048, crand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tests = append(tests, struct {
			name     string
			key      crypto.PrivKey
			verifies bool
		}{"rsa", rsaKey, false})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := signed(t, tc.key, "", gossip.Seq{Inc: 1, Ctr: 1}, time.Time{}, "x")
			_, extractErr := env.Issuer.ExtractPublicKey()
			if (extractErr == nil) != tc.verifies {
				t.Fatalf("issuer %s: ExtractPublicKey error %v", env.Issuer, extractErr)
			}
			got, err := gossip.Decode(encode(t, env), 0)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			err = got.Verify()
			if tc.verifies {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if !errors.Is(err, gossip.ErrBadSignature) {
				t.Fatalf("Verify = %v, want ErrBadSignature", err)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	key := testKey(t, 1)
	good := signed(t, key, "k1", gossip.Seq{Inc: 3, Ctr: 4}, time.Time{}, testBody{Name: "n"})
	goodData := encode(t, good)

	with := func(field string, v any) []byte {
		m := wireFields(t, good)
		m[field] = v
		return jsonObject(t, m)
	}
	without := func(field string) []byte {
		m := wireFields(t, good)
		delete(m, field)
		return jsonObject(t, m)
	}

	tests := []struct {
		name    string
		data    []byte
		maxSize int
		want    error // nil: decodes
	}{
		{"valid", goodData, 0, nil},
		{"valid at exact limit", goodData, len(goodData), nil},
		{"one byte over limit", goodData, len(goodData) - 1, gossip.ErrOversize},
		{"over default limit", append(bytes.Repeat([]byte(" "), gossip.DefaultMaxSize), goodData...), 0, gossip.ErrOversize},
		{"negative limit means default", goodData, -1, nil},
		{"empty", nil, 0, gossip.ErrMalformed},
		{"not JSON", []byte("hello"), 0, gossip.ErrMalformed},
		{"truncated", goodData[:len(goodData)/2], 0, gossip.ErrMalformed},
		{"JSON array", []byte(`[1]`), 0, gossip.ErrMalformed},
		{"JSON null", []byte(`null`), 0, gossip.ErrMalformed},
		{"empty object", []byte(`{}`), 0, gossip.ErrMalformed},
		{"missing version", without("v"), 0, gossip.ErrMalformed},
		{"null version", with("v", nil), 0, gossip.ErrMalformed},
		{"string version", with("v", "1"), 0, gossip.ErrMalformed},
		{"fractional version", []byte(strings.Replace(string(goodData), `"v":1`, `"v":1.5`, 1)), 0, gossip.ErrMalformed},
		{"version 2", with("v", 2), 0, gossip.ErrVersion},
		{"version 0", with("v", 0), 0, gossip.ErrVersion},
		{"version -1", with("v", -1), 0, gossip.ErrVersion},
		{"version 2 of another shape", []byte(`{"v":2,"topic":["not","a","string"],"payload":7}`), 0, gossip.ErrVersion},
		{"missing topic", without("topic"), 0, gossip.ErrMalformed},
		{"empty topic", with("topic", ""), 0, gossip.ErrMalformed},
		{"numeric topic", with("topic", 5), 0, gossip.ErrMalformed},
		{"missing kind", without("kind"), 0, gossip.ErrMalformed},
		{"empty kind", with("kind", ""), 0, gossip.ErrMalformed},
		{"missing issuer", without("issuer"), 0, gossip.ErrMalformed},
		{"empty issuer", with("issuer", ""), 0, gossip.ErrMalformed},
		{"issuer not a peer ID", with("issuer", "not-a-peer-id"), 0, gossip.ErrMalformed},
		{"issuer bad base58", with("issuer", "12D3KooW0OIl"), 0, gossip.ErrMalformed},
		{"issuer truncated", with("issuer", good.Issuer.String()[:20]), 0, gossip.ErrMalformed},
		{"missing seq", without("seq"), 0, gossip.ErrMalformed},
		{"zero seq", with("seq", map[string]any{"inc": 0, "ctr": 0}), 0, gossip.ErrMalformed},
		{"empty seq", with("seq", map[string]any{}), 0, gossip.ErrMalformed},
		{"negative seq", with("seq", map[string]any{"inc": -1, "ctr": 1}), 0, gossip.ErrMalformed},
		{"seq as string", with("seq", good.Seq.String()), 0, gossip.ErrMalformed},
		{"body not base64", with("body", "*not base64*"), 0, gossip.ErrMalformed},
		{"sig not base64", with("sig", "*"), 0, gossip.ErrMalformed},
		{"expires as string", with("expires", "tomorrow"), 0, gossip.ErrMalformed},
		// Form only: an unsigned or forged envelope still decodes.
		{"no signature", without("sig"), 0, nil},
		{"only counter", with("seq", map[string]any{"ctr": 1}), 0, nil},
		{"unknown field", with("extra", true), 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, err := gossip.Decode(tc.data, tc.maxSize)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if env == nil {
					t.Fatal("Decode returned neither envelope nor error")
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode error = %v, want %v", err, tc.want)
			}
			if env != nil {
				t.Fatalf("Decode returned an envelope with error %v", err)
			}
			for _, other := range []error{gossip.ErrMalformed, gossip.ErrVersion, gossip.ErrOversize} {
				if other != tc.want && errors.Is(err, other) {
					t.Fatalf("error %v is both %v and %v", err, tc.want, other)
				}
			}
		})
	}
}

func TestEnvelopeExpired(t *testing.T) {
	at := time.UnixMilli(1_800_000_000_000)
	tests := []struct {
		name    string
		expires int64
		now     time.Time
		want    bool
	}{
		{"never", 0, at.Add(100 * 365 * 24 * time.Hour), false},
		{"long before", at.UnixMilli(), at.Add(-time.Hour), false},
		{"one ms before", at.UnixMilli(), at.Add(-time.Millisecond), false},
		{"at expiry", at.UnixMilli(), at, false},
		{"within the expiry millisecond", at.UnixMilli(), at.Add(999 * time.Microsecond), false},
		{"one ms after", at.UnixMilli(), at.Add(time.Millisecond), true},
		{"long after", at.UnixMilli(), at.Add(time.Hour), true},
		{"negative expiry is in the past", -1, at, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := &gossip.Envelope{Expires: tc.expires}
			if got := e.Expired(tc.now); got != tc.want {
				t.Fatalf("Expired(%v) with Expires %d = %v, want %v", tc.now, tc.expires, got, tc.want)
			}
		})
	}
}

func TestEnvelopeDecodeBody(t *testing.T) {
	tests := []struct {
		name    string
		body    []byte
		want    testBody
		wantErr bool
	}{
		{"object", []byte(`{"name":"a","count":3}`), testBody{Name: "a", Count: 3}, false},
		{"unknown fields ignored", []byte(`{"name":"a","other":1}`), testBody{Name: "a"}, false},
		{"null", []byte(`null`), testBody{}, false},
		{"empty", nil, testBody{}, true},
		{"not JSON", []byte(`{`), testBody{}, true},
		{"wrong type", []byte(`{"count":"three"}`), testBody{}, true},
		{"array", []byte(`[1,2]`), testBody{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := &gossip.Envelope{Kind: "k", Body: tc.body}
			var got testBody
			err := e.DecodeBody(&got)
			if tc.wantErr {
				if !errors.Is(err, gossip.ErrMalformed) {
					t.Fatalf("DecodeBody error = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("DecodeBody = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// An issuer may be written as a libp2p-key CID; whatever Decode accepts must
// come back from Encode in a form Decode accepts again.
func TestDecodeIssuerAsCID(t *testing.T) {
	key := testKey(t, 1)
	m := wireFields(t, signed(t, key, "", gossip.Seq{Inc: 1, Ctr: 1}, time.Time{}, testBody{Name: "n"}))
	for _, issuer := range []string{
		// CIDv1, codec libp2p-key, sha2-256 of "x": base58 "Qm...".
		"bafzbeibnoelefnzgwbcacyt4vh52ymxvzbjq7mmqhtcnwarfq4lzegsiqe",
		// CIDv1, codec libp2p-key, sha1 of "x": base58 "5...".
		"bafzbcfar62wy5rjkfgckxkx5pq5vczidpboca4q",
	} {
		m["issuer"] = issuer
		env, err := gossip.Decode(jsonObject(t, m), 0)
		if err != nil {
			continue // refusing it is fine too
		}
		if _, err := gossip.Decode(encode(t, env), 0); err != nil {
			t.Errorf("issuer %s decodes as %s, whose encoding does not decode: %v", issuer, env.Issuer, err)
		}
	}
}

// aliasIDs returns peer IDs other than id that embed the same Ed25519 public
// key, through encodings of the key that protobuf parsing accepts but
// libp2p never produces.
func aliasIDs(t testing.TB, key crypto.PrivKey) []peer.ID {
	t.Helper()
	raw, err := key.GetPublic().Raw()
	if err != nil || len(raw) != 32 {
		t.Fatalf("raw public key: %d bytes, %v", len(raw), err)
	}
	typ := []byte{0x08, 0x01}                  // field 1 (Type), varint Ed25519
	data := append([]byte{0x12, 0x20}, raw...) // field 2 (Data), 32 bytes
	unknown := []byte{0x18, 0x00}              // field 3, unknown to the schema
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	var ids []peer.ID
	for _, enc := range [][]byte{
		cat(data, typ),
		cat(typ, data, unknown),
		cat(typ, typ, data),
	} {
		id := peer.ID(cat([]byte{0x00, byte(len(enc))}, enc)) // identity multihash
		pub, err := id.ExtractPublicKey()
		if err != nil || !pub.Equals(key.GetPublic()) {
			continue // this libp2p refuses the encoding: no alias
		}
		ids = append(ids, id)
	}
	return ids
}

// The issuer is signed as written, not only through its key: an ID that
// encodes the issuer's key differently must not verify, or a relay could
// re-label a message as a state the tracker has never seen.
func TestEnvelopeIssuerAlias(t *testing.T) {
	key := testKey(t, 1)
	env := signed(t, key, "", gossip.Seq{Inc: 1, Ctr: 1}, time.Time{}, testBody{Name: "n"})
	aliases := aliasIDs(t, key)
	if len(aliases) == 0 {
		t.Skip("no alternative encoding of an Ed25519 key is accepted")
	}
	for _, alias := range aliases {
		if alias == env.Issuer {
			t.Fatalf("alias %s is the issuer itself", alias)
		}
		e := cloneEnv(env)
		e.Issuer = alias
		got, err := gossip.Decode(encode(t, e), 0)
		if err != nil {
			t.Fatalf("Decode with alias issuer %s: %v", alias, err)
		}
		if err := got.Verify(); !errors.Is(err, gossip.ErrBadSignature) {
			t.Fatalf("Verify with alias issuer %s = %v, want ErrBadSignature", alias, err)
		}
	}
}
