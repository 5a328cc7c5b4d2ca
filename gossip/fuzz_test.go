package gossip_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/callmesh/callmesh/gossip"
)

// fuzzSeeds returns wire forms worth starting from: valid envelopes, and
// damaged or foreign variants of them.
func fuzzSeeds(t testing.TB) [][]byte {
	a, b := testKey(t, 1), testKey(t, 2)
	valid := encode(t, signed(t, a, "", gossip.Seq{Inc: 10, Ctr: 10}, time.Time{}, testBody{Name: "n", Count: 1}))
	keyed := encode(t, signed(t, b, "some/key", gossip.Seq{Inc: 10, Ctr: 11}, testEpoch.Add(time.Hour), testBody{Name: "n"}))
	expired := encode(t, signed(t, a, "", gossip.Seq{Inc: 10, Ctr: 12}, testEpoch.Add(-time.Hour), testBody{Name: "n"}))
	stale := encode(t, signed(t, a, "", gossip.Seq{Inc: 1, Ctr: 1}, time.Time{}, testBody{Name: "n"}))
	otherKind := encode(t, signedOn(t, a, "t", "x", "", gossip.Seq{Inc: 10, Ctr: 13}, time.Time{}, testBody{Name: "n"}))
	badBody := encode(t, signed(t, a, "", gossip.Seq{Inc: 10, Ctr: 14}, time.Time{}, []int{1}))
	forgedEnv := signed(t, a, "", gossip.Seq{Inc: 10, Ctr: 15}, time.Time{}, testBody{Name: "n"})
	forgedEnv.Issuer = testID(t, b)
	forged := encode(t, forgedEnv)

	seeds := [][]byte{
		valid, keyed, expired, stale, otherKind, badBody, forged,
		valid[:1], valid[:len(valid)/2], valid[:len(valid)-1],
		bytes.Replace(valid, []byte(`"v":1`), []byte(`"v":2`), 1),
		bytes.Replace(valid, []byte(`"v":1`), []byte(`"v":0`), 1),
		bytes.Replace(valid, []byte(`"v":1`), []byte(`"v":"1"`), 1),
		bytes.Replace(valid, []byte(`"v":1`), []byte(`"v":1e0`), 1),
		bytes.Replace(valid, []byte(`"v":1,`), nil, 1),
		bytes.Replace(valid, []byte(`"topic":"t"`), []byte(`"TOPIC":"t","topic":"u"`), 1),
		bytes.Replace(valid, []byte(`"ctr":10`), []byte(`"ctr":11`), 1),
		[]byte(`{"v":2,"anything":["else"]}`),
		[]byte(`{"v":1}`),
		[]byte(`{"v":1,"topic":"t","kind":"k","issuer":"QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N","seq":{"inc":1}}`),
		[]byte(`{}`),
		[]byte(`null`),
		[]byte(`[]`),
		[]byte(``),
		[]byte("\xff\xfe"),
	}
	return seeds
}

// decodeErrors are the errors Decode may fail with.
var decodeErrors = []error{gossip.ErrOversize, gossip.ErrMalformed, gossip.ErrVersion}

func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := gossip.Decode(data, 0)
		if err != nil {
			if env != nil {
				t.Fatalf("Decode returned an envelope and error %v", err)
			}
			known := false
			for _, e := range decodeErrors {
				known = known || errors.Is(err, e)
			}
			if !known {
				t.Fatalf("Decode error %v wraps none of the envelope errors", err)
			}
			return
		}
		if env.V != gossip.Version || env.Topic == "" || env.Kind == "" || env.Issuer == "" || env.Seq.IsZero() {
			t.Fatalf("Decode accepted an envelope without its required fields: %+v", env)
		}
		_ = env.Verify() // must not panic, whatever the issuer and signature
		_ = env.Expired(testEpoch)

		enc, err := env.Encode()
		if err != nil {
			t.Fatalf("Encode of a decoded envelope: %v", err)
		}
		// The re-encoding may be longer than the input (escaping, fields
		// the input left out), so it is decoded without a size limit.
		again, err := gossip.Decode(enc, len(enc))
		if err != nil {
			t.Fatalf("Decode(Encode(Decode(data))) failed: %v\ninput:   %q\nencoded: %q", err, data, enc)
		}
		if !reflect.DeepEqual(again, env) {
			t.Fatalf("round trip changed the envelope:\n got %+v\nwant %+v", again, env)
		}
		if enc2, err := again.Encode(); err != nil || !bytes.Equal(enc2, enc) {
			t.Fatalf("encoding is not stable: %q, %v\nthen %q", enc, err, enc2)
		}
	})
}

func FuzzCheck(f *testing.F) {
	a, b := testKey(f, 1), testKey(f, 2)
	signers := []peer.ID{"", testID(f, a), testID(f, b)}
	for _, s := range fuzzSeeds(f) {
		for i := range signers {
			f.Add(s, uint8(i), testEpoch.UnixMilli())
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, signerIdx uint8, nowMilli int64) {
		signer := signers[int(signerIdx)%len(signers)]
		// A fresh tracker, already past one state, so that runs are
		// independent and stale messages occur.
		seqs := gossip.NewSeqTracker()
		seqs.Advance("t", testID(t, a), "", gossip.Seq{Inc: 5, Ctr: 5})
		c := &gossip.Checker{
			Topic:   "t",
			MaxSize: 2048,
			Kinds:   map[string]bool{"k": true},
			Seqs:    seqs,
			Body:    checkBody,
		}
		res := c.Check(data, signer, time.UnixMilli(nowMilli))

		if !reasons[res.Reason] {
			t.Fatalf("reason %q is not in the fixed set", res.Reason)
		}
		switch res.Verdict {
		case gossip.Accept:
			if res.Err != nil || res.Reason != gossip.ReasonOK || res.Env == nil {
				t.Fatalf("accept with reason %q, error %v, envelope %v", res.Reason, res.Err, res.Env)
			}
			env := res.Env
			if err := env.Verify(); err != nil {
				t.Fatalf("accepted an envelope that does not verify: %v", err)
			}
			if env.Topic != c.Topic || !c.Kinds[env.Kind] || (signer != "" && env.Issuer != signer) {
				t.Fatalf("accepted topic %q kind %q issuer %s from signer %q", env.Topic, env.Kind, env.Issuer, signer)
			}
			if env.Expired(time.UnixMilli(nowMilli)) {
				t.Fatal("accepted an expired envelope")
			}
			if last, _ := seqs.Last(env.Topic, env.Issuer, env.Key); last != env.Seq {
				t.Fatalf("accepted sequence %v, tracker at %v", env.Seq, last)
			}
			if len(data) > c.MaxSize {
				t.Fatalf("accepted %d bytes, limit %d", len(data), c.MaxSize)
			}
		case gossip.Reject, gossip.Ignore:
			if res.Err == nil {
				t.Fatalf("%v/%s without an error", res.Verdict, res.Reason)
			}
			if res.Reason == gossip.ReasonOK {
				t.Fatalf("%v with reason ok (%v)", res.Verdict, res.Err)
			}
			ignorable := res.Reason == gossip.ReasonExpired || res.Reason == gossip.ReasonStale
			if ignorable != (res.Verdict == gossip.Ignore) {
				t.Fatalf("verdict %v with reason %s", res.Verdict, res.Reason)
			}
			if want, ok := reasonErrors[res.Reason]; ok && !errors.Is(res.Err, want) {
				t.Fatalf("reason %s with error %v, want %v", res.Reason, res.Err, want)
			}
			if res.Verdict == gossip.Ignore && res.Env.Verify() != nil {
				t.Fatalf("ignored (not rejected) an envelope that does not verify: %s", res.Reason)
			}
		default:
			t.Fatalf("verdict %d", res.Verdict)
		}
	})
}

// reasonErrors maps each reason to the error its Result carries.
var reasonErrors = map[string]error{
	gossip.ReasonOversize:  gossip.ErrOversize,
	gossip.ReasonMalformed: gossip.ErrMalformed,
	gossip.ReasonVersion:   gossip.ErrVersion,
	gossip.ReasonTopic:     gossip.ErrTopic,
	gossip.ReasonIssuer:    gossip.ErrIssuer,
	gossip.ReasonSignature: gossip.ErrBadSignature,
	gossip.ReasonExpired:   gossip.ErrExpired,
	gossip.ReasonStale:     gossip.ErrStale,
	gossip.ReasonKind:      gossip.ErrMalformed,
}
