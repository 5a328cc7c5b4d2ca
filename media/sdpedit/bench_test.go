package sdpedit

import "testing"

func BenchmarkRewrite(b *testing.B) {
	body := []byte(crlf(bodyBaresip))
	anchors := []Anchor{{relay, 30000, 30001}}
	origin := NewOrigin("callmesh", 1, relay)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Rewrite(body, anchors, origin); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	body := []byte(crlf(bodyBaresip))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(body); err != nil {
			b.Fatal(err)
		}
	}
}
