package election

import (
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// Target: ≤ 10 µs per Rank of 50 candidates. Tests never assert timings.
//
//	go test -run '^$' -bench . -benchmem ./election/

// benchView returns n eligible candidates of varied weights.
func benchView(r *rand.Rand, n int) []Candidate {
	cands := make([]Candidate, n)
	for i := range cands {
		cands[i] = node(fakeID(r), 1000, r.IntN(1000), 1)
	}
	return cands
}

// benchSessions returns 1024 Call-ID-like session IDs.
func benchSessions(r *rand.Rand) []string {
	s := make([]string, 1024)
	for i := range s {
		s[i] = randSession(r)
	}
	return s
}

func BenchmarkRank50(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	cands, sessions := benchView(r, 50), benchSessions(r)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_ = Rank(sessions[i%len(sessions)], cands)
		i++
	}
}

func BenchmarkAppendRank50(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	cands, sessions := benchView(r, 50), benchSessions(r)
	buf := make([]Ranked, 0, len(cands))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		buf = AppendRank(buf[:0], sessions[i%len(sessions)], cands)
		i++
	}
}

func BenchmarkMaster50(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	cands, sessions := benchView(r, 50), benchSessions(r)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_, _ = Master(sessions[i%len(sessions)], cands)
		i++
	}
}

// BenchmarkPairHash is the hash of one (session, ID) pair, the session part
// included; BenchmarkPairHashSHA256 is the same pair hashed with SHA-256 for
// comparison.
func BenchmarkPairHash(b *testing.B) {
	r := rand.New(rand.NewPCG(2, 2))
	id, sessions := fakeID(r), benchSessions(r)
	var sink uint64
	i := 0
	for b.Loop() {
		sink += pairHash(sessionState(sessions[i%len(sessions)]), id)
		i++
	}
	_ = sink
}

func BenchmarkPairHashSHA256(b *testing.B) {
	r := rand.New(rand.NewPCG(2, 2))
	id, sessions := fakeID(r), benchSessions(r)
	var sink uint64
	buf := make([]byte, 0, 128)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		s := sessions[i%len(sessions)]
		buf = binary.LittleEndian.AppendUint64(buf[:0], uint64(len(s)))
		buf = append(append(buf, s...), id...)
		sum := sha256.Sum256(buf)
		sink += binary.LittleEndian.Uint64(sum[:8])
		i++
	}
	_ = sink
}

// BenchmarkIDHash is the per-candidate part of the hash: the ID bytes and
// the finalizer, from a shared session state.
func BenchmarkIDHash(b *testing.B) {
	r := rand.New(rand.NewPCG(2, 2))
	id := fakeID(r)
	st := sessionState(randSession(r))
	var sink uint64
	i := uint64(0)
	for b.Loop() {
		sink += pairHash(st^i, id)
		i++
	}
	_ = sink
}
