package impair

import (
	"math"
	"math/rand/v2"
)

// Model decides, packet by packet, whether a packet is lost and when it is
// delivered. It is pure: it has no clock and no goroutine, and its decisions
// depend only on its Config and on the sequence of Next calls. A Model is not
// safe for concurrent use and must not be copied.
//
// # Loss
//
// Loss follows the two-state Markov chain of Gilbert (E. N. Gilbert,
// "Capacity of a burst-noise channel", Bell Syst. Tech. J. 39, 1960) and
// Elliott (E. O. Elliott, "Estimates of error rates for codes on burst-noise
// channels", Bell Syst. Tech. J. 42, 1963), run once per packet. In the Good
// state no packet is lost and in the Bad state every packet is: the simple
// Gilbert model, where the sojourn in Bad is exactly a loss run, so
// MeanBurst is the mean run length that a receiver measures. (Elliott's
// partial loss inside each state would blur that correspondence and add two
// parameters nobody configures for RTP tests.) With target loss rate π and
// mean run L:
//
//	q = P(Bad→Good) = 1/L
//	p = P(Good→Bad) = π·q/(1−π)
//
// so the stationary share of Bad is p/(p+q) = π and runs are geometric with
// mean 1/q = L. ITU-T G.107/G.113 describe the same chain by its burst ratio
// BurstR = 1/(p+q) = L·(1−π), which is 1 for random loss; MeanBurst 1 is
// taken to mean that case (p = π, q = 1−π: independent losses, mean run
// 1/(1−π)), since a chain with q = 1 would forbid two losses in a row.
// Receivers report what this produces with the burst and gap metrics of the
// RTCP XR VoIP Metrics block (RFC 3611 §4.7.2). The first packet's state is
// drawn from the stationary distribution, so the rate holds from the start.
//
// # Delay
//
// A delivered packet's time is sent + Delay + a draw uniform in
// [0, 2·Jitter] ns; with Reorder false it is then raised, if needed, to the
// previous delivery time, so packets never overtake each other.
//
// Loss and jitter draw from separate PCG streams derived from Seed, so the
// loss pattern does not depend on the send times, the delay or the jitter:
// the n-th call loses a packet or not whatever the clock says.
type Model struct {
	cfg     Config
	p, q    float64 // Gilbert transitions; unused unless lossy
	lossy   bool
	bad     bool
	delay   int64
	span    int64 // 2·Jitter+1: the jitter draw is Int64N(span); 0 = none
	reorder bool
	last    int64 // latest delivery time, for !reorder

	lossSrc, jitSrc rand.PCG
	lossRNG, jitRNG *rand.Rand
}

// Stream labels keep the loss and jitter generators apart for one Seed.
const (
	streamLoss   = 0x6c6f7373     // "loss"
	streamJitter = 0x6a6974746572 // "jitter"
)

// New returns the model of c, or c's validation error.
func New(c Config) (*Model, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	m := &Model{
		cfg:     c,
		lossy:   c.LossPct > 0,
		delay:   int64(c.Delay),
		reorder: c.Reorder,
		last:    math.MinInt64,
	}
	if c.Jitter > 0 {
		m.span = 2*int64(c.Jitter) + 1
	}
	m.p, m.q = c.transitions()
	seed(&m.lossSrc, c.Seed, streamLoss)
	seed(&m.jitSrc, c.Seed, streamJitter)
	m.lossRNG = rand.New(&m.lossSrc)
	m.jitRNG = rand.New(&m.jitSrc)
	if m.lossy {
		m.bad = m.lossRNG.Float64() < c.LossPct/100
	}
	return m, nil
}

// Config returns the configuration the model was built from.
func (m *Model) Config() Config { return m.cfg }

// Next decides one packet sent at sent (nanoseconds on the caller's monotonic
// base). It returns drop true for a lost packet, else the time at which the
// packet must be delivered (deliver ≥ sent + Delay). Next does not allocate.
func (m *Model) Next(sent int64) (deliver int64, drop bool) {
	if m.lossy {
		u := m.lossRNG.Float64()
		if m.bad {
			m.bad = u >= m.q
		} else {
			m.bad = u < m.p
		}
		if m.bad {
			return 0, true
		}
	}
	deliver = sent + m.delay
	if m.span > 0 {
		deliver += m.jitRNG.Int64N(m.span)
	}
	if !m.reorder {
		deliver = max(deliver, m.last)
		m.last = deliver
	}
	return deliver, false
}

// seed seeds src from the user's seed and a stream label through SplitMix64,
// so that neighbouring seeds and the two streams start far apart.
func seed(src *rand.PCG, s int64, stream uint64) {
	a := splitmix(uint64(s) ^ stream)
	src.Seed(a, splitmix(a))
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}
