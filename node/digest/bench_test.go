package digest

import (
	"testing"
)

// benchmarkVerify measures Verify of correct responses with qop=auth, each
// with the next nonce-count so that every call succeeds. Responses are
// prepared in batches outside the timer.
func benchmarkVerify(b *testing.B, alg Algorithm) {
	n := newTestNonces(b, NonceConfig{})
	alice := NewCredentials("alice", testRealm, "secret")
	nonce := n.New(t0)
	const batch = 4096
	reqs := make([]Response, 0, batch)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%batch == 0 {
			b.StopTimer()
			reqs = reqs[:0]
			for j := i; j < i+batch && j < b.N; j++ {
				reqs = append(reqs, request(alg, "alice", "secret", nonce, "auth", uint32(j+1)))
			}
			b.StartTimer()
		}
		if res, err := n.Verify("REGISTER", reqs[i%batch], alice, testRealm, t0); res != OK {
			b.Fatalf("Verify = %v, %v", res, err)
		}
	}
}

func BenchmarkVerifyMD5(b *testing.B)    { benchmarkVerify(b, MD5) }
func BenchmarkVerifySHA256(b *testing.B) { benchmarkVerify(b, SHA256) }

func BenchmarkParseResponse(b *testing.B) {
	const header = `Digest username="alice",realm="example.com",cnonce="6b8b4567",nc=00000001,qop=auth,` +
		`uri="sip:example.com",nonce="q1ZzKv1Gl6n3iC8pQ9m0sT4uV7wX2yZ5aB8cD1eF4gH7iJ0kL3mN6oP9qR2sT5uV8wX1yZ4aB7cD0eF3gH6iJ9kL2m",` +
		`response="0123456789abcdef0123456789abcdef",algorithm=MD5`
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseResponse(header); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNew(b *testing.B) {
	n := newTestNonces(b, NonceConfig{})
	b.ReportAllocs()
	for b.Loop() {
		n.New(t0)
	}
}
