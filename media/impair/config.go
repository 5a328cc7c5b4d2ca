package impair

import (
	"fmt"
	"math"
	"time"
)

// MaxDelay bounds Config.Delay and Config.Jitter. A pipe holds every delayed
// datagram in memory, and no voice path waits longer than this.
const MaxDelay = time.Minute

// Config describes the impairment of one direction of a path. The zero value
// is valid and impairs nothing.
type Config struct {
	// Delay is the one-way base delay; no packet is delivered sooner.
	Delay time.Duration `yaml:"delay"`
	// Jitter is the mean of the extra per-packet delay, drawn uniformly from
	// [0, 2·Jitter] (in nanoseconds, both ends included): mean Jitter,
	// standard deviation Jitter/√3, never more than 2·Jitter. The bounded
	// distribution keeps a test's worst case known (a jitter buffer of
	// 2·Jitter absorbs all of it). With Reorder false, deliveries are pushed
	// back to keep their order, which adds to the drawn value whenever the
	// packet spacing is below 2·Jitter.
	Jitter time.Duration `yaml:"jitter"`
	// Reorder lets a packet overtake an earlier one when its draw is shorter.
	// When false, delivery times are non-decreasing in the order of Next
	// calls, as on a single FIFO path.
	Reorder bool `yaml:"reorder"`
	// LossPct is the long-run loss rate in percent, in [0, 100).
	LossPct float64 `yaml:"loss_pct"`
	// MeanBurst is the mean length, in packets, of a run of consecutive
	// losses under the two-state Gilbert model (see Model). 1 selects random
	// (Bernoulli) loss, whose mean run is 1/(1−π) for loss rate π; 0 means 1.
	// Values between 1 and 1/(1−π) give losses less clustered than random.
	MeanBurst float64 `yaml:"mean_burst"`
	// Seed makes the model reproducible: the same Config and the same
	// sequence of Next calls give the same decisions.
	Seed int64 `yaml:"seed"`
}

// ConfigError is a Config field that does not validate. Field is the
// configuration key (loss_pct), prefixed by the direction (up.loss_pct) when
// it comes from a Pipe.
type ConfigError struct {
	Field string
	Msg   string
}

func (e *ConfigError) Error() string { return "impair: " + e.Field + ": " + e.Msg }

// Validate returns nil or a *ConfigError naming the first bad field.
func (c Config) Validate() error { return c.validate("") }

func (c Config) validate(prefix string) error {
	bad := func(field, format string, args ...any) error {
		return &ConfigError{Field: prefix + field, Msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case c.Delay < 0 || c.Delay > MaxDelay:
		return bad("delay", "must be in [0, %v]", MaxDelay)
	case c.Jitter < 0 || c.Jitter > MaxDelay:
		return bad("jitter", "must be in [0, %v]", MaxDelay)
	case !(c.LossPct >= 0 && c.LossPct < 100): // also rejects NaN
		return bad("loss_pct", "must be in [0, 100)")
	case c.MeanBurst != 0 && !(c.MeanBurst >= 1 && !math.IsInf(c.MeanBurst, 1)):
		return bad("mean_burst", "must be >= 1 and finite (0 means 1)")
	}
	if c.LossPct > 0 && c.MeanBurst > 1 {
		// p = π/(L·(1−π)) must be a probability, so L >= π/(1−π): the
		// mean gap between bursts, 1/p, is at least one packet.
		pi := c.LossPct / 100
		if lo := pi / (1 - pi); c.MeanBurst < lo*(1-1e-12) { // slack for rounding
			return bad("mean_burst", "must be >= %.4g for loss_pct %g (gaps between bursts are at least one packet)", lo, c.LossPct)
		}
	}
	return nil
}

// Zero reports whether c impairs nothing: no delay, no jitter, no loss.
func (c Config) Zero() bool {
	return c.Delay == 0 && c.Jitter == 0 && c.LossPct == 0
}

// transitions returns the Gilbert chain of c: p = P(Good→Bad), q = P(Bad→Good).
func (c Config) transitions() (p, q float64) {
	pi := c.LossPct / 100
	if pi == 0 {
		return 0, 1
	}
	if c.MeanBurst <= 1 {
		// Random loss is the chain whose next state ignores the current
		// one: P(→Bad) = π from either state.
		return pi, 1 - pi
	}
	q = 1 / c.MeanBurst
	return pi * q / (1 - pi), q
}
