package node

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func newKey(t *testing.T) (crypto.PrivKey, peer.ID) {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return k, id
}

func TestSessionTokenAdmitsOnce(t *testing.T) {
	key, master := newKey(t)
	other, outsider := newKey(t)
	now := time.Unix(1_800_000_000, 0)
	tok := func(key crypto.PrivKey, id peer.ID, mod func(*SessionToken)) string {
		st := SessionToken{Session: "s1", Master: id, Hops: []string{"A", "p", "B"}, SLAs: []string{"A-p", "B-p"},
			Callee: "bob", Egress: "B", Expires: now.Add(time.Minute).UnixMilli()}
		if mod != nil {
			mod(&st)
		}
		s, err := st.Sign(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	book := newTokenBook("B", func(id peer.ID) bool { return id == master })

	good := tok(key, master, nil)
	st, err := book.Admit(good, "bob", now)
	if err != nil || st.Session != "s1" || st.pathOf() != "A→p→B" {
		t.Fatalf("good token: %+v, %v", st, err)
	}
	if _, err := book.Admit(good, "bob", now); !errors.Is(err, ErrTokenUsed) {
		t.Fatalf("reused token: %v", err)
	}

	// Body changed after signing: the signature fails.
	fresh := tok(key, master, nil)
	body, sig, _ := strings.Cut(fresh, ".")
	forged := tok(other, outsider, func(s *SessionToken) { s.Master = master }) // signed by another key in master's name
	fb, _, _ := strings.Cut(forged, ".")
	for name, tc := range map[string]struct {
		token, callee string
		at            time.Time
		want          error
	}{
		"tampered":         {fb + "." + sig, "bob", now, ErrTokenSignature},
		"forged":           {forged, "bob", now, ErrTokenSignature},
		"outsider":         {tok(other, outsider, nil), "bob", now, ErrTokenMaster},
		"expired":          {fresh, "bob", now.Add(time.Minute), ErrTokenExpired},
		"other callee":     {fresh, "carol", now, ErrTokenMismatch},
		"other egress":     {tok(key, master, func(s *SessionToken) { s.Egress = "C" }), "bob", now, ErrTokenMismatch},
		"garbage":          {"not-a-token", "bob", now, ErrTokenMalformed},
		"bad base64":       {body + ".!!", "bob", now, ErrTokenMalformed},
		"huge":             {strings.Repeat("a", maxTokenLen+1), "bob", now, ErrTokenMalformed},
		"no session":       {tok(key, master, func(s *SessionToken) { s.Session = "" }), "bob", now, ErrTokenMalformed},
		"master not a key": {tok(key, master, func(s *SessionToken) { s.Master = "x" }), "bob", now, ErrTokenMalformed},
	} {
		if _, err := book.Admit(tc.token, tc.callee, tc.at); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	// The expired and mismatched attempts did not use the fresh token.
	if _, err := book.Admit(fresh, "bob", now); err != nil {
		t.Fatalf("fresh token after refused attempts: %v", err)
	}
}

// reencodings returns the other texts of a raw base64url part that decode
// to the same bytes under a lenient decoder: its last character with the
// unused low bits set.
func reencodings(part string) []string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	unused := map[int]uint{2: 4, 3: 2}[len(part)%4]
	if unused == 0 {
		return nil
	}
	last := strings.IndexByte(alphabet, part[len(part)-1])
	var out []string
	for m := 1; m < 1<<unused; m++ {
		out = append(out, part[:len(part)-1]+string(alphabet[last|m]))
	}
	return out
}

// A token admitted once is refused under any other text of the same bytes:
// base64url ignores the unused bits of the last character.
func TestSessionTokenReencodedIsRefused(t *testing.T) {
	key, master := newKey(t)
	now := time.Unix(1_800_000_000, 0)
	book := newTokenBook("B", func(id peer.ID) bool { return id == master })
	st := SessionToken{Session: "s1", Master: master, Hops: []string{"A", "B"}, SLAs: []string{"A-B"},
		Callee: "bob", Egress: "B", Expires: now.Add(time.Minute).UnixMilli()}
	good, err := st.Sign(key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := book.Admit(good, "bob", now); err != nil {
		t.Fatalf("good token: %v", err)
	}
	body, sig, _ := strings.Cut(good, ".")

	// The same bytes, lenient-decoded, as the variants below.
	lenient := base64.RawURLEncoding
	wantBody, _ := lenient.DecodeString(body)
	wantSig, _ := lenient.DecodeString(sig)
	var variants []string
	for _, s := range reencodings(sig) {
		variants = append(variants, body+"."+s)
	}
	for _, b := range reencodings(body) {
		variants = append(variants, b+"."+sig)
	}
	variants = append(variants, body[:4]+"\r\n"+body[4:]+"."+sig, body+"."+sig[:4]+"\n"+sig[4:])
	if len(variants) < 17 { // 15 of a 64-byte signature, 2 with line breaks
		t.Fatalf("only %d variants", len(variants))
	}
	for _, v := range variants {
		b, s, _ := strings.Cut(v, ".")
		gotBody, err1 := lenient.DecodeString(b)
		gotSig, err2 := lenient.DecodeString(s)
		if v == good || err1 != nil || err2 != nil || !bytes.Equal(gotBody, wantBody) || !bytes.Equal(gotSig, wantSig) {
			t.Fatalf("variant %q is not another text of the token", v)
		}
		_, err := book.Admit(v, "bob", now)
		if !errors.Is(err, ErrTokenMalformed) && !errors.Is(err, ErrTokenUsed) {
			t.Errorf("variant %q: %v, want %v or %v", v, err, ErrTokenMalformed, ErrTokenUsed)
		}
	}
	if _, err := book.Admit(good, "bob", now); !errors.Is(err, ErrTokenUsed) {
		t.Fatalf("original re-sent: %v, want %v", err, ErrTokenUsed)
	}
	// The book remembers the signed body, not the text.
	if _, ok := book.used[sha256.Sum256(wantBody)]; !ok || len(book.used) != 1 {
		t.Fatalf("used set does not hold the signed body's digest: %d entries", len(book.used))
	}
}

// The book forgets expired tokens, sweeping at most once a second.
func TestTokenBookSweepsOncePerSecond(t *testing.T) {
	key, master := newKey(t)
	now := time.Unix(1_800_000_000, 0)
	book := newTokenBook("B", func(id peer.ID) bool { return id == master })
	admit := func(at time.Time, ttl time.Duration) {
		t.Helper()
		st := SessionToken{Session: "s1", Master: master, Hops: []string{"A", "B"},
			Callee: "bob", Egress: "B", Expires: at.Add(ttl).UnixMilli()}
		s, err := st.Sign(key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := book.Admit(s, "bob", at); err != nil {
			t.Fatalf("admit at %v: %v", at.Sub(now), err)
		}
	}
	admit(now, 100*time.Millisecond)
	admit(now.Add(500*time.Millisecond), time.Minute) // the first has expired; too soon to sweep
	if len(book.used) != 2 {
		t.Fatalf("swept within a second: %d entries", len(book.used))
	}
	admit(now.Add(time.Second), time.Minute)
	if len(book.used) != 2 {
		t.Fatalf("not swept after a second: %d entries", len(book.used))
	}
}
