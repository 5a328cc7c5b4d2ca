package b2bua

import (
	"time"

	"github.com/callmesh/callmesh/media"
)

// Info describes a call in progress, for the admin API and `callmesh calls`.
type Info struct {
	ID       string     `json:"id"`
	Caller   string     `json:"caller"`
	Callee   string     `json:"callee"`
	Class    string     `json:"class,omitempty"`
	Trusted  bool       `json:"trusted,omitempty"` // from a trusted source, not challenged
	State    string     `json:"state"`
	Started  time.Time  `json:"started"`
	Answered *time.Time `json:"answered,omitempty"`
	Branches int        `json:"branches"`
	Anchored bool       `json:"anchored"`
	// Legs is the relay's quality summary of each leg (caller, callee),
	// absent when the media is not anchored.
	Legs []LegInfo `json:"legs,omitempty"`
	// MOS and R of the call as a whole (the worse direction).
	MOS float64 `json:"mos,omitempty"`
	R   float64 `json:"r,omitempty"`
	// Federation calls: the session, its master, the path that carries the
	// call (hops and SLAs) and every attempt.
	Session  string          `json:"session,omitempty"`
	Master   string          `json:"master,omitempty"`
	Role     string          `json:"role,omitempty"` // ingress or egress
	Path     []string        `json:"path,omitempty"`
	SLAs     []string        `json:"slas,omitempty"`
	Attempts []AttemptRecord `json:"attempts,omitempty"`
}

// LegInfo is one leg's media quality.
type LegInfo struct {
	Side     string  `json:"side"` // caller or callee
	Packets  uint64  `json:"packets"`
	LossPct  float64 `json:"loss_pct"`
	JitterMs float64 `json:"jitter_ms"`
	RTTMs    float64 `json:"rtt_ms"`
	R        float64 `json:"r"`
	MOS      float64 `json:"mos"`
}

// Info describes the call now.
func (c *Call) Info() Info {
	c.mu.Lock()
	in := Info{ID: c.id, Caller: c.caller, Callee: c.callee, Class: c.class, Trusted: c.trusted,
		State: c.fsm.State().String(), Started: c.started, Branches: len(c.branches)}
	if !c.answered.IsZero() {
		t := c.answered
		in.Answered = &t
	}
	switch {
	case c.plan != nil:
		in.Session, in.Master, in.Role = c.session, c.plan.Master, "ingress"
		in.Branches = len(c.plan.Attempts) // the failover list, started one by one
		in.Attempts = append(in.Attempts, c.attempts...)
		if n := len(c.attempts); n > 0 {
			in.Path, in.SLAs = c.attempts[n-1].Hops, c.attempts[n-1].SLAs
		}
		if w := c.fsm.Winner(); w >= 0 {
			in.Path, in.SLAs = c.plan.Attempts[w].Hops, c.plan.Attempts[w].SLAs
		}
	case c.egress:
		in.Session, in.Role, in.Path, in.SLAs = c.session, "egress", c.hops, c.path
	}
	m := c.media
	c.mu.Unlock()
	if m == nil {
		return in
	}
	in.Anchored = true
	sum := m.sess.Summary()
	for i, l := range sum.Legs {
		side := "caller"
		if media.Side(i) == media.B {
			side = "callee"
		}
		in.Legs = append(in.Legs, LegInfo{Side: side, Packets: l.PacketsIn, LossPct: l.LossPct,
			JitterMs: l.JitterMs, RTTMs: l.RTTMs, R: l.R, MOS: l.MOS})
	}
	if sum.Measured {
		in.MOS, in.R = sum.MOS, sum.R
	}
	return in
}
