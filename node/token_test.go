package node

import (
	"crypto/rand"
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
