package quality

import "testing"

var benchSink float64

// BenchmarkEstimate cycles through a realistic mix: delays 20–400 ms, loss
// 0–5 %, random and bursty loss, all four codecs.
func BenchmarkEstimate(b *testing.B) {
	cs := Codecs()
	const n = 64
	var delay, loss, burst [n]float64
	for i := range n {
		delay[i] = 20 + float64(i*i%97)*380/96
		loss[i] = float64(i%11) / 2
		burst[i] = 1 + float64(i%3)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r, m := Estimate(cs[i%len(cs)], delay[i%n], loss[i%n], burst[i%n])
		benchSink += r + m
		i++
	}
}

func BenchmarkR(b *testing.B) {
	p := g711Delay(150)
	b.ReportAllocs()
	for b.Loop() {
		benchSink += p.R()
		p.Ta += 0.001
	}
}

func BenchmarkMOS(b *testing.B) {
	b.ReportAllocs()
	r := 50.0
	for b.Loop() {
		benchSink += MOS(r)
		r += 1e-6
	}
}
