package siptx

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// A generated branch starts with RFC 3261's cookie, is made of token
// characters, and does not repeat; AddVia puts it on the Via it makes
// in that Via's one allocation.
func TestBranch(t *testing.T) {
	seen := make(map[string]bool)
	counts := make(map[byte]int)
	for range 20000 {
		var b [branchLen]byte
		putBranch(&b)
		s := string(b[:])
		if !strings.HasPrefix(s, magicCookie+".") {
			t.Fatalf("branch %q lacks the cookie", s)
		}
		for i := len(magicCookie) + 1; i < len(s); i++ {
			if !strings.ContainsRune(branchChars, rune(s[i])) {
				t.Fatalf("branch %q: %q is not one of its characters", s, s[i])
			}
			counts[s[i]]++
		}
		if seen[s] {
			t.Fatalf("branch %q made twice", s)
		}
		seen[s] = true
	}
	// Every character is drawn: 320,000 draws of 64 give 5,000 each; a
	// character never drawn means bits are lost.
	if len(counts) != len(branchChars) {
		t.Errorf("%d of %d characters drawn", len(counts), len(branchChars))
	}
	for _, c := range branchChars {
		if !strings.ContainsRune(tokenChars, c) {
			t.Errorf("%q is not a token character (RFC 3261 §25.1)", c)
		}
	}

	reqs := make([]*sip.Request, 101) // AllocsPerRun runs once more than asked
	for i := range reqs {
		reqs[i] = sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", Host: "example.com"})
		reqs[i].SetTransport("UDP")
	}
	n := 0
	allocs := testing.AllocsPerRun(100, func() {
		AddVia(reqs[n], "127.0.0.1", 5060)
		n++
	})
	// One for the Via with its parameters and branch, one for the header
	// list PrependHeader makes.
	if allocs != 2 {
		t.Errorf("AddVia allocated %v times, want 2", allocs)
	}
	req := reqs[0]
	v := req.Via()
	if b, _ := v.Params.Get("branch"); len(b) != branchLen || v.Host != "127.0.0.1" || v.Port != 5060 {
		t.Errorf("Via %s", v.Value())
	}
}

// tokenChars is RFC 3261's token (§25.1): alphanum and -.!%*_+`'~.
const tokenChars = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-.!%*_+`'~"
