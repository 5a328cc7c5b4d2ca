package gossip_test

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/callmesh/callmesh/gossip"
)

// reasons is the fixed set of reasons a Result may carry.
var reasons = map[string]bool{
	gossip.ReasonOK: true, gossip.ReasonOversize: true, gossip.ReasonMalformed: true,
	gossip.ReasonVersion: true, gossip.ReasonTopic: true, gossip.ReasonIssuer: true,
	gossip.ReasonSignature: true, gossip.ReasonExpired: true, gossip.ReasonStale: true,
	gossip.ReasonKind: true,
}

// checkBody is the Body hook of the tests' checkers: the body must be a
// testBody with a name.
func checkBody(e *gossip.Envelope) error {
	var b testBody
	if err := e.DecodeBody(&b); err != nil {
		return err
	}
	if b.Name == "" {
		return fmt.Errorf("%w: body without a name", gossip.ErrMalformed)
	}
	return nil
}

func newChecker() *gossip.Checker {
	return &gossip.Checker{
		Topic:   "t",
		MaxSize: 1024,
		Kinds:   map[string]bool{"k": true, "k2": true},
		Seqs:    gossip.NewSeqTracker(),
		Body:    checkBody,
	}
}

func TestVerdictString(t *testing.T) {
	for v, want := range map[gossip.Verdict]string{
		gossip.Accept: "accept", gossip.Reject: "reject", gossip.Ignore: "ignore",
		0: "unknown", 99: "unknown",
	} {
		if got := v.String(); got != want {
			t.Errorf("Verdict(%d).String() = %q, want %q", v, got, want)
		}
	}
}

func TestCheckerVerdicts(t *testing.T) {
	a, b := testKey(t, 1), testKey(t, 2)
	idA, idB := testID(t, a), testID(t, b)
	now := testEpoch
	seq := gossip.Seq{Inc: 100, Ctr: 1}
	body := testBody{Name: "n", Count: 1}

	good := signed(t, a, "", seq, now.Add(time.Minute), body)

	forged := signed(t, a, "", seq, time.Time{}, body) // signed by A ...
	forged.Issuer = idB                                // ... claiming to be B

	tampered := cloneEnv(good)
	tampered.Body = []byte(`{"name":"m","count":1}`)

	unsigned := cloneEnv(good)
	unsigned.Sig = nil

	huge := signed(t, a, "", seq, time.Time{}, testBody{Name: string(bytes.Repeat([]byte("x"), 2000))})

	tests := []struct {
		name    string
		data    []byte
		signer  peer.ID
		verdict gossip.Verdict
		reason  string
		err     error // nil: any non-nil error (or nil on Accept)
		decoded bool  // Result.Env is set
	}{
		{"good", encode(t, good), idA, gossip.Accept, gossip.ReasonOK, nil, true},
		{"good, anti-entropy", encode(t, good), "", gossip.Accept, gossip.ReasonOK, nil, true},
		{"never expires", encode(t, signed(t, a, "", seq, time.Time{}, body)), idA, gossip.Accept, gossip.ReasonOK, nil, true},
		{"oversize", encode(t, huge), idA, gossip.Reject, gossip.ReasonOversize, gossip.ErrOversize, false},
		{"version", bytes.Replace(encode(t, good), []byte(`"v":1`), []byte(`"v":2`), 1), idA, gossip.Reject, gossip.ReasonVersion, gossip.ErrVersion, false},
		{"not JSON", []byte("not json"), idA, gossip.Reject, gossip.ReasonMalformed, gossip.ErrMalformed, false},
		{"zero sequence", encode(t, signed(t, a, "", gossip.Seq{}, time.Time{}, body)), idA, gossip.Reject, gossip.ReasonMalformed, gossip.ErrMalformed, false},
		{"wrong topic", encode(t, signedOn(t, a, "u", "k", "", seq, time.Time{}, body)), idA, gossip.Reject, gossip.ReasonTopic, gossip.ErrTopic, true},
		{"kind not allowed", encode(t, signedOn(t, a, "t", "other", "", seq, time.Time{}, body)), idA, gossip.Reject, gossip.ReasonKind, gossip.ErrMalformed, true},
		// A message signed (on the transport) by A but issued by B: A is
		// passing itself off as B, even though B's signature is genuine.
		{"signer is not issuer", encode(t, signed(t, b, "", seq, time.Time{}, body)), idA, gossip.Reject, gossip.ReasonIssuer, gossip.ErrIssuer, true},
		// A signed both, but the envelope claims B.
		{"signed by A claiming B, sent by A", encode(t, forged), idA, gossip.Reject, gossip.ReasonIssuer, gossip.ErrIssuer, true},
		{"signed by A claiming B, sent as B", encode(t, forged), idB, gossip.Reject, gossip.ReasonSignature, gossip.ErrBadSignature, true},
		{"signed by A claiming B, anti-entropy", encode(t, forged), "", gossip.Reject, gossip.ReasonSignature, gossip.ErrBadSignature, true},
		{"tampered body", encode(t, tampered), idA, gossip.Reject, gossip.ReasonSignature, gossip.ErrBadSignature, true},
		{"tampered body, anti-entropy", encode(t, tampered), "", gossip.Reject, gossip.ReasonSignature, gossip.ErrBadSignature, true},
		{"no signature", encode(t, unsigned), idA, gossip.Reject, gossip.ReasonSignature, gossip.ErrBadSignature, true},
		{"body rejected by hook", encode(t, signed(t, a, "", seq, time.Time{}, testBody{Count: 1})), idA, gossip.Reject, gossip.ReasonMalformed, gossip.ErrMalformed, true},
		{"body not JSON", encode(t, signed(t, a, "", seq, time.Time{}, "a string")), idA, gossip.Reject, gossip.ReasonMalformed, gossip.ErrMalformed, true},
		{"expired", encode(t, signed(t, a, "", seq, now.Add(-time.Millisecond), body)), idA, gossip.Ignore, gossip.ReasonExpired, gossip.ErrExpired, true},
		// Forgery is decided before expiry: a forged message is never
		// merely ignored.
		{"expired and forged", encode(t, func() *gossip.Envelope {
			e := signed(t, a, "", seq, now.Add(-time.Hour), body)
			e.Issuer = idB
			return e
		}()), "", gossip.Reject, gossip.ReasonSignature, gossip.ErrBadSignature, true},
		{"expired with bad body", encode(t, signed(t, a, "", seq, now.Add(-time.Hour), testBody{})), idA, gossip.Reject, gossip.ReasonMalformed, gossip.ErrMalformed, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newChecker()
			res := c.Check(tc.data, tc.signer, now)
			if res.Verdict != tc.verdict || res.Reason != tc.reason {
				t.Fatalf("Check = %v/%s (%v), want %v/%s", res.Verdict, res.Reason, res.Err, tc.verdict, tc.reason)
			}
			if tc.verdict == gossip.Accept {
				if res.Err != nil {
					t.Fatalf("accepted with error %v", res.Err)
				}
			} else if res.Err == nil {
				t.Fatal("non-accept verdict without an error")
			}
			if tc.err != nil && !errors.Is(res.Err, tc.err) {
				t.Fatalf("error %v, want %v", res.Err, tc.err)
			}
			if (res.Env != nil) != tc.decoded {
				t.Fatalf("Result.Env = %v, want set %v", res.Env, tc.decoded)
			}
			// Only an accepted message advances the sequence.
			issuer := idA
			if res.Env != nil {
				issuer = res.Env.Issuer
			}
			last, ok := c.Seqs.Last("t", issuer, "")
			if ok != (tc.verdict == gossip.Accept) {
				t.Fatalf("sequence recorded %v (%v) after verdict %v", ok, last, res.Verdict)
			}
			if ok && last != seq {
				t.Fatalf("recorded sequence %v, want %v", last, seq)
			}
		})
	}
}

func TestCheckerNilKindsAllowsAny(t *testing.T) {
	a := testKey(t, 1)
	c := &gossip.Checker{Topic: "t"}
	for i, kind := range []string{"k", "anything", "x/y"} {
		env := signedOn(t, a, "t", kind, "", gossip.Seq{Inc: 1, Ctr: uint64(i + 1)}, time.Time{}, nil)
		if res := c.Check(encode(t, env), testID(t, a), testEpoch); res.Verdict != gossip.Accept {
			t.Errorf("kind %q: %v/%s (%v)", kind, res.Verdict, res.Reason, res.Err)
		}
	}
}

func TestCheckerDefaultMaxSize(t *testing.T) {
	a := testKey(t, 1)
	c := &gossip.Checker{Topic: "t"}
	under := signed(t, a, "", gossip.Seq{Inc: 1, Ctr: 1}, time.Time{}, testBody{Name: string(bytes.Repeat([]byte("x"), gossip.DefaultMaxSize/2))})
	if res := c.Check(encode(t, under), "", testEpoch); res.Verdict != gossip.Accept {
		t.Fatalf("envelope under the default limit: %v/%s (%v)", res.Verdict, res.Reason, res.Err)
	}
	// Base64 makes the body a third larger than the name.
	over := signed(t, a, "", gossip.Seq{Inc: 1, Ctr: 2}, time.Time{}, testBody{Name: string(bytes.Repeat([]byte("x"), gossip.DefaultMaxSize))})
	if res := c.Check(encode(t, over), "", testEpoch); res.Verdict != gossip.Reject || res.Reason != gossip.ReasonOversize {
		t.Fatalf("envelope over the default limit: %v/%s (%v)", res.Verdict, res.Reason, res.Err)
	}
}

// A message the Body hook rejects must not advance the sequence: otherwise a
// broken message would make the issuer's next valid one with the same
// sequence look stale.
func TestCheckerBodyErrorDoesNotAdvance(t *testing.T) {
	a := testKey(t, 1)
	id := testID(t, a)
	c := newChecker()
	seq := gossip.Seq{Inc: 1, Ctr: 5}

	bad := signed(t, a, "", seq, time.Time{}, testBody{Count: 1})
	if res := c.Check(encode(t, bad), id, testEpoch); res.Verdict != gossip.Reject || res.Reason != gossip.ReasonMalformed {
		t.Fatalf("bad body: %v/%s (%v)", res.Verdict, res.Reason, res.Err)
	}
	if last, ok := c.Seqs.Last("t", id, ""); ok {
		t.Fatalf("rejected body advanced the sequence to %v", last)
	}
	good := signed(t, a, "", seq, time.Time{}, testBody{Name: "n"})
	if res := c.Check(encode(t, good), id, testEpoch); res.Verdict != gossip.Accept {
		t.Fatalf("good body with the same sequence: %v/%s (%v)", res.Verdict, res.Reason, res.Err)
	}
}

// Nor do expired messages, forgeries or messages of a disallowed kind.
func TestCheckerOnlyAcceptAdvances(t *testing.T) {
	a, b := testKey(t, 1), testKey(t, 2)
	id := testID(t, a)
	c := newChecker()
	high := gossip.Seq{Inc: 1, Ctr: 100}
	body := testBody{Name: "n"}

	forged := signed(t, b, "", high, time.Time{}, body)
	forged.Issuer = id
	for name, data := range map[string][]byte{
		"expired":       encode(t, signed(t, a, "", high, testEpoch.Add(-time.Second), body)),
		"forged":        encode(t, forged),
		"kind":          encode(t, signedOn(t, a, "t", "nope", "", high, time.Time{}, body)),
		"bad signature": bytes.Replace(encode(t, signed(t, a, "", high, time.Time{}, body)), []byte(`"sig":"`), []byte(`"sig":"AAAA`), 1),
	} {
		if res := c.Check(data, "", testEpoch); res.Verdict == gossip.Accept {
			t.Fatalf("%s: accepted", name)
		}
		if last, ok := c.Seqs.Last("t", id, ""); ok {
			t.Fatalf("%s message advanced the sequence to %v", name, last)
		}
	}
	low := signed(t, a, "", gossip.Seq{Inc: 1, Ctr: 1}, time.Time{}, body)
	if res := c.Check(encode(t, low), id, testEpoch); res.Verdict != gossip.Accept {
		t.Fatalf("low sequence after non-accepted high ones: %v/%s (%v)", res.Verdict, res.Reason, res.Err)
	}
}

func TestCheckerStaleAndDuplicate(t *testing.T) {
	a := testKey(t, 1)
	id := testID(t, a)
	body := testBody{Name: "n"}
	type step struct {
		key     string
		seq     gossip.Seq
		verdict gossip.Verdict
	}
	s := func(inc, ctr uint64) gossip.Seq { return gossip.Seq{Inc: inc, Ctr: ctr} }
	steps := []step{
		{"", s(10, 5), gossip.Accept},
		{"", s(10, 5), gossip.Ignore}, // duplicate
		{"", s(10, 4), gossip.Ignore}, // older
		{"", s(10, 6), gossip.Accept},
		{"x", s(10, 1), gossip.Accept}, // another state of the same issuer
		{"x", s(10, 1), gossip.Ignore},
		{"", s(9, 1000), gossip.Ignore},   // older incarnation
		{"", s(11, 1), gossip.Accept},     // restart: new incarnation, counter from one
		{"", s(10, 7), gossip.Ignore},     // late message of the previous incarnation
		{"x", s(10, 2), gossip.Accept},    // "x" has not seen the restart
		{"", s(11, 1), gossip.Ignore},     // duplicate after restart
		{"", s(11, 2), gossip.Accept},     // counting on
		{"", s(12, 0), gossip.Accept},     // a zero counter is valid in a new incarnation
		{"x", s(0, 9999), gossip.Ignore},  // incarnation zero is older than anything seen
		{"y", s(0, 1), gossip.Accept},     // but fine for a state never seen
		{"y", s(0, 1), gossip.Ignore},     // and then a duplicate
		{"y", s(1, 0), gossip.Accept},     // newer
		{"z", s(12, 0), gossip.Accept},    // keys are independent
		{"", s(12, 0), gossip.Ignore},     // duplicate with zero counter
		{"", s(12, 1), gossip.Accept},     // next
		{"", s(12, 1), gossip.Ignore},     // duplicate
		{"x", s(10, 3), gossip.Accept},    // still independent
		{"x", s(10, 3), gossip.Ignore},    // duplicate
		{"x", s(10, 2), gossip.Ignore},    // older
		{"x", s(11, 0), gossip.Accept},    // restart seen on "x" too
		{"x", s(10, 1000), gossip.Ignore}, // previous incarnation
	}
	c := newChecker()
	for i, st := range steps {
		env := signed(t, a, st.key, st.seq, time.Time{}, body)
		res := c.Check(encode(t, env), id, testEpoch)
		if res.Verdict != st.verdict {
			t.Fatalf("step %d (key %q, seq %v): %v/%s (%v), want %v", i, st.key, st.seq, res.Verdict, res.Reason, res.Err, st.verdict)
		}
		if st.verdict == gossip.Ignore && (res.Reason != gossip.ReasonStale || !errors.Is(res.Err, gossip.ErrStale)) {
			t.Fatalf("step %d: reason %s, error %v; want stale", i, res.Reason, res.Err)
		}
	}
}

// Stale detection is per topic: two checkers sharing a tracker (as a Bus's
// topics do) do not see each other's sequences as newer.
func TestCheckerSharedTrackerPerTopic(t *testing.T) {
	a := testKey(t, 1)
	id := testID(t, a)
	tr := gossip.NewSeqTracker()
	c1 := &gossip.Checker{Topic: "one", Seqs: tr}
	c2 := &gossip.Checker{Topic: "two", Seqs: tr}
	seq := gossip.Seq{Inc: 1, Ctr: 1}
	if res := c1.Check(encode(t, signedOn(t, a, "one", "k", "", seq, time.Time{}, 1)), id, testEpoch); res.Verdict != gossip.Accept {
		t.Fatalf("topic one: %v/%s", res.Verdict, res.Reason)
	}
	if res := c2.Check(encode(t, signedOn(t, a, "two", "k", "", seq, time.Time{}, 1)), id, testEpoch); res.Verdict != gossip.Accept {
		t.Fatalf("topic two, same sequence: %v/%s", res.Verdict, res.Reason)
	}
}

func TestCheckerNilTrackerNeverStale(t *testing.T) {
	a := testKey(t, 1)
	c := &gossip.Checker{Topic: "t"}
	data := encode(t, signed(t, a, "", gossip.Seq{Inc: 1, Ctr: 1}, time.Time{}, 1))
	for i := range 3 {
		if res := c.Check(data, "", testEpoch); res.Verdict != gossip.Accept {
			t.Fatalf("check %d without tracker: %v/%s", i, res.Verdict, res.Reason)
		}
	}
}

// CheckEnvelope must decide on an envelope exactly as Check does on its wire
// form, past the decoding.
func TestCheckEnvelopeMatchesCheck(t *testing.T) {
	a, b := testKey(t, 1), testKey(t, 2)
	forged := signed(t, a, "", gossip.Seq{Inc: 1, Ctr: 1}, time.Time{}, testBody{Name: "n"})
	forged.Issuer = testID(t, b)
	for _, env := range []*gossip.Envelope{
		signed(t, a, "", gossip.Seq{Inc: 1, Ctr: 1}, time.Time{}, testBody{Name: "n"}),
		forged,
		signedOn(t, a, "u", "k", "", gossip.Seq{Inc: 1, Ctr: 1}, time.Time{}, testBody{Name: "n"}),
		signed(t, a, "", gossip.Seq{Inc: 1, Ctr: 1}, testEpoch.Add(-time.Hour), testBody{Name: "n"}),
	} {
		for _, signer := range []peer.ID{"", testID(t, a), testID(t, b)} {
			r1 := newChecker().Check(encode(t, env), signer, testEpoch)
			r2 := newChecker().CheckEnvelope(env, signer, testEpoch)
			if r1.Verdict != r2.Verdict || r1.Reason != r2.Reason {
				t.Errorf("issuer %s, topic %s, signer %q: Check %v/%s, CheckEnvelope %v/%s",
					env.Issuer, env.Topic, signer, r1.Verdict, r1.Reason, r2.Verdict, r2.Reason)
			}
		}
	}
}

// Many goroutines checking the same message: exactly one accepts it.
func TestCheckerConcurrentDuplicates(t *testing.T) {
	a := testKey(t, 1)
	id := testID(t, a)
	c := newChecker()
	const workers = 16
	datas := make([][]byte, 20)
	for i := range datas {
		datas[i] = encode(t, signed(t, a, "", gossip.Seq{Inc: 1, Ctr: uint64(i + 1)}, time.Time{}, testBody{Name: "n"}))
	}
	var accepted [20]atomic.Int32
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i, d := range datas {
				if res := c.Check(d, id, testEpoch); res.Verdict == gossip.Accept {
					accepted[i].Add(1)
				}
			}
		})
	}
	wg.Wait()
	// Every message is accepted at most once; the newest exactly once.
	for i := range accepted {
		if n := accepted[i].Load(); n > 1 {
			t.Errorf("message %d accepted %d times", i+1, n)
		}
	}
	if n := accepted[len(datas)-1].Load(); n != 1 {
		t.Errorf("newest message accepted %d times, want 1", n)
	}
	if last, _ := c.Seqs.Last("t", id, ""); last != (gossip.Seq{Inc: 1, Ctr: uint64(len(datas))}) {
		t.Errorf("last sequence %v, want 1.%d", last, len(datas))
	}
}

func TestSeqTracker(t *testing.T) {
	a, b := testID(t, testKey(t, 1)), testID(t, testKey(t, 2))
	tr := gossip.NewSeqTracker()
	s := func(inc, ctr uint64) gossip.Seq { return gossip.Seq{Inc: inc, Ctr: ctr} }

	if _, ok := tr.Last("t", a, ""); ok {
		t.Fatal("empty tracker has a sequence")
	}
	if !tr.Advance("t", a, "", s(1, 2)) {
		t.Fatal("first sequence not recorded")
	}
	if got, ok := tr.Last("t", a, ""); !ok || got != s(1, 2) {
		t.Fatalf("Last = %v, %v; want 1.2", got, ok)
	}
	if tr.Advance("t", a, "", s(1, 2)) || tr.Advance("t", a, "", s(1, 1)) || tr.Advance("t", a, "", s(0, 9)) {
		t.Fatal("Advance accepted a sequence that is not newer")
	}
	if got, _ := tr.Last("t", a, ""); got != s(1, 2) {
		t.Fatalf("refused Advance changed Last to %v", got)
	}
	if !tr.Advance("t", a, "", s(2, 1)) {
		t.Fatal("new incarnation refused")
	}
	// Independent states.
	for _, k := range []struct {
		topic  string
		issuer peer.ID
		key    string
	}{{"u", a, ""}, {"t", b, ""}, {"t", a, "x"}} {
		if _, ok := tr.Last(k.topic, k.issuer, k.key); ok {
			t.Fatalf("state %v has a sequence it was never given", k)
		}
		if !tr.Advance(k.topic, k.issuer, k.key, s(1, 1)) {
			t.Fatalf("state %v: first sequence refused", k)
		}
	}

	// Forget drops every state of one issuer and nothing else.
	tr.Forget(a)
	for _, k := range []struct {
		topic string
		key   string
	}{{"t", ""}, {"u", ""}, {"t", "x"}} {
		if got, ok := tr.Last(k.topic, a, k.key); ok {
			t.Fatalf("after Forget(a), state %v still at %v", k, got)
		}
	}
	if got, ok := tr.Last("t", b, ""); !ok || got != s(1, 1) {
		t.Fatalf("Forget(a) touched b: %v, %v", got, ok)
	}
	if !tr.Advance("t", a, "", s(1, 1)) {
		t.Fatal("forgotten issuer's old sequence refused")
	}
	tr.Forget("nobody") // no effect, no panic
	if _, ok := tr.Last("t", b, ""); !ok {
		t.Fatal("Forget of an unknown issuer dropped b")
	}
}

// Concurrent Advance, Last and Forget: each sequence is recorded at most once,
// and without Forget the newest ends up recorded.
func TestSeqTrackerConcurrent(t *testing.T) {
	a, b := testID(t, testKey(t, 1)), testID(t, testKey(t, 2))
	tr := gossip.NewSeqTracker()
	const (
		workers = 8
		n       = 300
	)
	var wins [n + 1]atomic.Int32
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := 1; i <= n; i++ {
				// Half the workers count up, half down, so they interleave.
				c := uint64(i)
				if w%2 == 1 {
					c = uint64(n + 1 - i)
				}
				if tr.Advance("t", a, "", gossip.Seq{Inc: 1, Ctr: c}) {
					wins[c].Add(1)
				}
				tr.Last("t", a, "")
				// Churn an unrelated issuer alongside.
				tr.Advance("t", b, "", gossip.Seq{Inc: 1, Ctr: c})
				if i%50 == 0 {
					tr.Forget(b)
				}
			}
		})
	}
	wg.Wait()
	for c := 1; c <= n; c++ {
		if w := wins[c].Load(); w > 1 {
			t.Fatalf("sequence 1.%d recorded %d times", c, w)
		}
	}
	if wins[n].Load() != 1 {
		t.Fatalf("newest sequence recorded %d times, want 1", wins[n].Load())
	}
	if got, _ := tr.Last("t", a, ""); got != (gossip.Seq{Inc: 1, Ctr: n}) {
		t.Fatalf("Last = %v, want 1.%d", got, n)
	}
}
