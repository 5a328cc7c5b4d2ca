package gossip

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
)

// Seq orders the messages of one issuer. Inc is the issuer's incarnation (its
// boot time in Unix milliseconds, forced upward across restarts by the node's
// store), Ctr counts messages within the incarnation. A restarted node starts
// a higher incarnation, so its first message is never taken as stale even
// though its counter starts again from one.
type Seq struct {
	Inc uint64 `json:"inc"`
	Ctr uint64 `json:"ctr"`
}

// Compare returns -1, 0 or +1 as s is older than, equal to or newer than o.
func (s Seq) Compare(o Seq) int {
	switch {
	case s.Inc < o.Inc:
		return -1
	case s.Inc > o.Inc:
		return 1
	case s.Ctr < o.Ctr:
		return -1
	case s.Ctr > o.Ctr:
		return 1
	}
	return 0
}

// Newer reports whether s is strictly newer than o.
func (s Seq) Newer(o Seq) bool { return s.Compare(o) > 0 }

// IsZero reports whether s is the zero sequence, which no valid message carries.
func (s Seq) IsZero() bool { return s.Inc == 0 && s.Ctr == 0 }

func (s Seq) String() string { return fmt.Sprintf("%d.%d", s.Inc, s.Ctr) }

// ParseSeq parses the form produced by String.
func ParseSeq(v string) (Seq, error) {
	a, b, ok := strings.Cut(v, ".")
	if !ok {
		return Seq{}, fmt.Errorf("sequence %q: want INCARNATION.COUNTER", v)
	}
	inc, err := strconv.ParseUint(a, 10, 64)
	if err != nil {
		return Seq{}, fmt.Errorf("sequence %q: incarnation: %w", v, err)
	}
	ctr, err := strconv.ParseUint(b, 10, 64)
	if err != nil {
		return Seq{}, fmt.Errorf("sequence %q: counter: %w", v, err)
	}
	return Seq{Inc: inc, Ctr: ctr}, nil
}

// Sequencer hands out the sequences of one node's messages. It is safe for
// concurrent use.
type Sequencer struct {
	inc uint64
	ctr atomic.Uint64
}

// NewSequencer starts the counter of incarnation inc. The owner chooses inc so
// that it exceeds every incarnation this node used before (boot time in
// milliseconds, raised above the last one it persisted).
func NewSequencer(inc uint64) *Sequencer { return &Sequencer{inc: inc} }

// Next returns the next sequence.
func (s *Sequencer) Next() Seq { return Seq{Inc: s.inc, Ctr: s.ctr.Add(1)} }

// Incarnation returns the incarnation this sequencer counts in.
func (s *Sequencer) Incarnation() uint64 { return s.inc }
