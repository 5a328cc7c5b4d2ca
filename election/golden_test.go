package election

import (
	"encoding/binary"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"testing"
)

// The values below pin the hash, the weights and the tie-breaks. If this
// test fails, masters have moved: a federation whose nodes run the old and
// the new code would disagree on them. Do not update the values without
// treating the change as a protocol change.

// goldenView is a fixed federation of eight nodes, one draining and one not
// live.
func goldenView() []Candidate {
	return []Candidate{
		{ID: "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA", Name: "ams-1", Capacity: 1000, ActiveCalls: 120, Health: 1, Live: true},
		{ID: "12D3KooWHdiAxVd8uMQR1hGWXccidmfCwLqcMpGwR6QcTP6QRMuD", Name: "ams-2", Capacity: 1000, ActiveCalls: 700, Health: 1, Live: true},
		{ID: "12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq", Name: "fra-1", Capacity: 500, ActiveCalls: 60, Health: 0.9, Live: true},
		{ID: "12D3KooWKnDdG3iXw9eTFijk3EWSunZcFi54Zka4wmtqtt6rPxc8", Name: "fra-2", Capacity: UnknownCapacity, Load: 0.4, Health: 1, Live: true},
		{ID: "12D3KooWLLKhTkNHo2x7CjBpxcP7yUkjYj7Krgw2JmLZ3dbEHy8r", Name: "lon-1", Capacity: 200, ActiveCalls: 199, Health: 1, Live: true},
		{ID: "12D3KooWMpdTPChdCw8JbBYGnwLn4gMc1hh3i2kJUR9W2ATxuVpt", Name: "lon-2", Capacity: 2000, ActiveCalls: 100, Health: 0.5, Live: true},
		{ID: "12D3KooWNZCv6Gnc5ZWhCAJnZdfq9J1CfcJm1Vzvmz7unWmEh4K1", Name: "par-1", Capacity: 1000, ActiveCalls: 0, Health: 1, Live: true, Draining: true},
		{ID: "12D3KooWPRGcPgxUn6G8yAhR4KaxhGMcyApezRqZ4x8GdnAkRwyp", Name: "par-2", Capacity: 1000, ActiveCalls: 0, Health: 1, Live: false},
	}
}

var goldenWeights = []float64{14.0 / 16, 5.0 / 16, 13.0 / 16, 10.0 / 16, 0, 8.0 / 16, 0, 0}

// goldenMasters holds sessions and the name of their master in goldenView.
var goldenMasters = []struct{ session, master string }{
	{"", "ams-1"},
	{"a", "ams-2"},
	{"call-0", "lon-2"},
	{"call-1", "fra-2"},
	{"call-2", "fra-1"},
	{"call-3", "fra-1"},
	{"a84b4c76e66710@pc33.atlanta.example.com", "ams-1"},
	{"3848276298220188511@atlanta.example.com", "lon-2"},
	{"f81d4fae-7dec-11d0-a765-00a0c91e6bf6", "lon-2"},
	{"ZmVkZXJhdGlvbg", "ams-1"},
	{"call-100000", "ams-2"},
	{"x", "fra-2"},
	{"y", "ams-2"},
	{"z", "ams-1"},
	{"1", "ams-1"},
	{"2", "lon-2"},
}

// goldenRankings holds full rankings (names, master first) of goldenView.
var goldenRankings = []struct {
	session string
	names   []string
}{
	{"call-0", []string{"lon-2", "ams-1", "fra-2", "fra-1", "ams-2", "lon-1"}},
	{"a84b4c76e66710@pc33.atlanta.example.com", []string{"ams-1", "fra-1", "ams-2", "fra-2", "lon-2", "lon-1"}},
	{"x", []string{"fra-2", "fra-1", "ams-1", "ams-2", "lon-2", "lon-1"}},
}

// goldenHashes pins pairHash itself.
var goldenHashes = []struct {
	session, id string
	hash        uint64
}{
	{"", "", 0x813f0174a2367c13},
	{"x", "y", 0x50f84827ddf07508},
	{"call-0", "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA", 0x34ec5f2abeeead9b},
	{"a84b4c76e66710@pc33.atlanta.example.com", "12D3KooWMpdTPChdCw8JbBYGnwLn4gMc1hh3i2kJUR9W2ATxuVpt", 0x207034cf7394fd9a},
}

func TestGolden(t *testing.T) {
	cands := goldenView()
	for i, c := range cands {
		if w := Weight(c); w != goldenWeights[i] {
			t.Errorf("%s: weight %v, want %v", c.Name, w, goldenWeights[i])
		}
	}
	for _, g := range goldenHashes {
		if h := pairHash(sessionState(g.session), g.id); h != g.hash {
			t.Errorf("pairHash(%q, %q) = %#x, want %#x", g.session, g.id, h, g.hash)
		}
	}
	for _, g := range goldenMasters {
		m, ok := Master(g.session, cands)
		if !ok || m.Name != g.master {
			t.Errorf("Master(%q) = %q, want %q", g.session, m.Name, g.master)
		}
	}
	for _, g := range goldenRankings {
		rk := Rank(g.session, cands)
		if len(rk) != len(g.names) {
			t.Fatalf("Rank(%q) has %d entries, want %d", g.session, len(rk), len(g.names))
		}
		for i, r := range rk {
			if r.Name != g.names[i] {
				t.Errorf("Rank(%q)[%d] = %q, want %q", g.session, i, r.Name, g.names[i])
			}
		}
	}
}

// TestHashDefinition checks the hash against its definition: FNV-1a (the
// standard library's) of the length-prefixed session and the ID, then the
// splitmix64 finalizer (its published outputs for seed 0).
func TestHashDefinition(t *testing.T) {
	const gamma = 0x9e3779b97f4a7c15
	for i, want := range []uint64{0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, 0x06c45d188009454f} {
		if got := mix64(uint64(i+1) * gamma); got != want {
			t.Errorf("mix64(%d·γ) = %#x, want %#x", i+1, got, want)
		}
	}
	r := rand.New(rand.NewPCG(50, 50))
	for range 1000 {
		session := string(randBytes(r, r.IntN(300)))
		id := string(randBytes(r, r.IntN(60)))
		f := fnv.New64a()
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(session)))
		f.Write(n[:])
		f.Write([]byte(session))
		f.Write([]byte(id))
		if got, want := pairHash(sessionState(session), id), mix64(f.Sum64()); got != want {
			t.Fatalf("pairHash(%q, %q) = %#x, want %#x", session, id, got, want)
		}
	}
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestUnit: u stays strictly inside (0, 1), so ln(u) is finite and nonzero.
func TestUnit(t *testing.T) {
	for _, h := range []uint64{0, 1, 1 << 11, 1 << 12, math.MaxUint64 >> 1, math.MaxUint64 - 1, math.MaxUint64} {
		u := unit(h)
		l := math.Log(u)
		if !(u > 0 && u < 1) || math.IsInf(l, 0) || l == 0 {
			t.Errorf("unit(%#x) = %v, ln %v", h, u, l)
		}
	}
	if got, want := unit(0), 0x1p-53; got != want {
		t.Errorf("unit(0) = %v, want %v", got, want)
	}
	if got, want := unit(math.MaxUint64), 1-0x1p-53; got != want {
		t.Errorf("unit(max) = %v, want %v", got, want)
	}
}
