// Package b2bua carries calls through a node: it takes over an INVITE the
// SIP edge has authenticated and authorized, forks it to the callee's
// registered contacts as a back-to-back user agent (a new dialog on the
// callee side, with its own Call-ID, tags and CSeq space), anchors the
// media at the node's relay, relays provisional and final answers, and
// handles the dialogs until either side hangs up. The decisions are
// node/call's pure state machine; this package does the SIP I/O.
package b2bua

import (
	"context"
	"fmt"
	"time"

	"github.com/callmesh/callmesh/node/sipedge"
)

// Config sets call handling.
type Config struct {
	Domain string
	// RingTimeout ends a call nobody answers (480 to the caller).
	RingTimeout time.Duration
	// AckTimeout ends an answered call whose ACK never came (RFC 3261
	// §13.3.1.4: 64·T1).
	AckTimeout time.Duration
	// DrainGrace is how long calls may go on after Drain before they are
	// ended.
	DrainGrace time.Duration
	// RetryAfter is the Retry-After (seconds) of a 503 while draining or
	// out of media ports.
	RetryAfter int
	// Anchor says whether a caller of class gets its media anchored at the
	// relay (never: signalling only, SDP untouched).
	Anchor func(class string) bool
	// MinSE is the smallest session interval accepted (RFC 4028 §4).
	MinSE time.Duration
	// FirstHop bounds the wait for any answer from a path's first hop
	// (its 100 Trying): past it the path is abandoned for the next.
	FirstHop time.Duration
}

// DefaultConfig is what a node runs with unless configured.
func DefaultConfig(domain string) Config {
	return Config{
		Domain: domain, RingTimeout: 60 * time.Second, AckTimeout: 32 * time.Second,
		DrainGrace: 30 * time.Second, RetryAfter: 30, MinSE: 90 * time.Second, FirstHop: 2 * time.Second,
		Anchor: func(string) bool { return true },
	}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Domain == "":
		return fmt.Errorf("b2bua: domain: required")
	case c.RingTimeout <= 0:
		return fmt.Errorf("b2bua: ring_timeout: must be positive")
	case c.AckTimeout <= 0:
		return fmt.Errorf("b2bua: ack_timeout: must be positive")
	case c.DrainGrace < 0:
		return fmt.Errorf("b2bua: drain_grace: must not be negative")
	case c.FirstHop <= 0:
		return fmt.Errorf("b2bua: first_hop_timeout: must be positive")
	case c.Anchor == nil:
		return fmt.Errorf("b2bua: anchor: a policy is required")
	}
	return nil
}

// Directory is what calls need to know about users.
type Directory interface {
	// Contacts lists the callee's registrations on this node.
	Contacts(aor string) ([]sipedge.Binding, error)
	// Exists reports whether name has an account in the federation (an
	// unregistered callee gets 480, an unknown one 404).
	Exists(ctx context.Context, name string) (bool, error)
}
