package gossip

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// State is what a view believes of a member: live, suspected of having failed,
// or dead. The zero State is not a member state; it marks the "no state" side
// of a Transition (a member newly seen, or one removed from the view).
type State uint8

// The member states. A member is Live while its heartbeats arrive, Suspect once
// they stop or its connection drops, and Dead when the suspicion is confirmed
// by a failed probe or has lasted longer than the suspicion timeout.
const (
	Live State = iota + 1
	Suspect
	Dead
)

// String returns "live", "suspect" or "dead"; the zero State is "none" and any
// other value "state(N)".
func (s State) String() string {
	if name, ok := s.name(); ok {
		return name
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// name returns the text form of s, and false for a value outside the states.
func (s State) name() (string, bool) {
	switch s {
	case 0:
		return "none", true
	case Live:
		return "live", true
	case Suspect:
		return "suspect", true
	case Dead:
		return "dead", true
	}
	return "", false
}

// MarshalText encodes s as its String form. The zero State encodes as "none",
// so that a Transition from or to no state can be encoded; values outside the
// defined states are an error.
func (s State) MarshalText() ([]byte, error) {
	name, ok := s.name()
	if !ok {
		return nil, fmt.Errorf("membership state: invalid value %d", uint8(s))
	}
	return []byte(name), nil
}

// UnmarshalText decodes the form produced by MarshalText, ignoring case.
func (s *State) UnmarshalText(b []byte) error {
	for c := State(0); c <= Dead; c++ {
		if name, _ := c.name(); strings.EqualFold(string(b), name) {
			*s = c
			return nil
		}
	}
	return fmt.Errorf("membership state %q: want live, suspect, dead or none", b)
}

// ViewConfig holds the timing of failure detection.
type ViewConfig struct {
	Interval      time.Duration // heartbeat interval (default 1s)
	SuspectMissed int           // heartbeats missed before suspect (default 3)
	DeadAfter     time.Duration // suspicion timeout: suspect this long → dead (default 10s)
	ForgetAfter   time.Duration // dead this long → removed from the view (default 1h)
}

// DefaultViewConfig returns the timing used in production.
func DefaultViewConfig() ViewConfig {
	return ViewConfig{
		Interval:      time.Second,
		SuspectMissed: 3,
		DeadAfter:     10 * time.Second,
		ForgetAfter:   time.Hour,
	}
}

// FastViewConfig returns a shorter timing for tests and local clusters.
func FastViewConfig() ViewConfig {
	return ViewConfig{
		Interval:      200 * time.Millisecond,
		SuspectMissed: 3,
		DeadAfter:     2 * time.Second,
		ForgetAfter:   time.Minute,
	}
}

// Validate reports every invalid field, each message naming the field as it
// appears in configuration, for example
// "membership.interval: must be > 0, got 0s".
func (c ViewConfig) Validate() error {
	var errs []error
	positive := func(name string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("membership.%s: must be > 0, got %v", name, d))
		}
	}
	positive("interval", c.Interval)
	switch {
	case c.SuspectMissed < 1:
		errs = append(errs, fmt.Errorf("membership.suspect_missed: must be >= 1, got %d", c.SuspectMissed))
	case c.Interval > 0 && c.Interval > time.Duration(math.MaxInt64/int64(c.SuspectMissed)):
		errs = append(errs, fmt.Errorf("membership.suspect_missed: %d heartbeats of %v overflow a duration",
			c.SuspectMissed, c.Interval))
	}
	positive("dead_after", c.DeadAfter)
	positive("forget_after", c.ForgetAfter)
	return errors.Join(errs...)
}

// suspectAfter is how long a live member may stay silent before it is suspected.
func (c ViewConfig) suspectAfter() time.Duration {
	return time.Duration(c.SuspectMissed) * c.Interval
}

// Member is what a view knows of one peer.
type Member struct {
	ID        peer.ID   `json:"id"`
	Heartbeat           // the body of the last accepted heartbeat
	Seq       Seq       `json:"seq"`       // of the last accepted heartbeat
	State     State     `json:"state"`     // current belief
	LastSeen  time.Time `json:"last_seen"` // when the last heartbeat was accepted
	Since     time.Time `json:"since"`     // when State last changed
	Connected bool      `json:"connected"` // whether the owner has a connection to it
}

// clone returns a copy of m that shares no memory with it.
func (m *Member) clone() Member {
	c := *m
	c.P2P = slices.Clone(m.P2P)
	return c
}

// Transition records a change of a member's state. From is zero for a member
// newly seen; To is zero for a member removed from the view.
type Transition struct {
	ID     peer.ID `json:"id"`
	Name   string  `json:"name"` // the member's name, from its last heartbeat
	From   State   `json:"from"`
	To     State   `json:"to"`
	Reason string  `json:"reason"`
}

// Transition reasons.
const (
	reasonJoined    = "first heartbeat"
	reasonRecovered = "heartbeat"
	reasonMissed    = "missed heartbeats"
	reasonDisconn   = "disconnected"
	reasonProbe     = "probe failed"
	reasonTimeout   = "suspicion timeout"
	reasonForgotten = "forgotten"
)

// View is one node's picture of the federation: the other nodes it has heard
// from and what it believes of each. It is a plain value: it runs nothing on
// its own, reads no clock (every time is an argument, and successive calls
// should pass non-decreasing times) and is not safe for concurrent use.
//
// A member moves between states only through the methods below, and at most
// one step per call:
//
//	Observe:      (none) → live, suspect → live, dead → live
//	Disconnected: live → suspect
//	ProbeFailed:  suspect → dead
//	Tick:         live → suspect → dead → (removed)
type View struct {
	self    peer.ID
	cfg     ViewConfig
	members map[peer.ID]*Member
	// pending holds peers the owner reported connected that are not members
	// (no heartbeat yet, or forgotten), so that such a peer joins with
	// Connected set. Disconnected removes them, so it stays no larger than
	// the owner's set of connected peers.
	pending map[peer.ID]struct{}
}

// NewView returns an empty view held by self, which is never a member of its
// own view. It panics if cfg does not pass Validate: start from
// DefaultViewConfig and validate any configured change before calling it.
func NewView(self peer.ID, cfg ViewConfig) *View {
	if err := cfg.Validate(); err != nil {
		panic("gossip.NewView: " + err.Error())
	}
	return &View{
		self:    self,
		cfg:     cfg,
		members: make(map[peer.ID]*Member),
		pending: make(map[peer.ID]struct{}),
	}
}

// Observe takes in a heartbeat from id carrying seq, received at now. It is
// rejected (false, nil) when id is self or empty, or when seq is not newer
// than the last accepted sequence of that member (a stale or duplicate
// message; the zero sequence is therefore never accepted). An accepted
// heartbeat replaces the member's body (its P2P slice is copied), Seq and
// LastSeen; a new member enters live, and a suspect or dead one becomes live
// again, each reported by the returned transition.
//
// A member that has been forgotten carries no sequence any more, so its next
// heartbeat is accepted whatever it carries.
func (v *View) Observe(id peer.ID, seq Seq, hb Heartbeat, now time.Time) (accepted bool, tr *Transition) {
	if id == "" || id == v.self {
		return false, nil
	}
	m, known := v.members[id]
	var last Seq
	if known {
		last = m.Seq
	}
	if !seq.Newer(last) {
		return false, nil
	}
	if !known {
		m = &Member{ID: id}
		if _, conn := v.pending[id]; conn {
			m.Connected = true
			delete(v.pending, id)
		}
		v.members[id] = m
	}
	m.Heartbeat = hb
	m.P2P = slices.Clone(hb.P2P)
	m.Seq = seq
	m.LastSeen = now
	switch {
	case !known:
		return true, v.move(m, Live, reasonJoined, now)
	case m.State != Live:
		return true, v.move(m, Live, reasonRecovered, now)
	}
	return true, nil
}

// move sets m's state to "to" at now and returns the transition.
func (v *View) move(m *Member, to State, reason string, now time.Time) *Transition {
	tr := &Transition{ID: m.ID, Name: m.Name, From: m.State, To: to, Reason: reason}
	m.State = to
	m.Since = now
	return tr
}

// Connected records that the owner now has a connection to id. It changes no
// state: a connection says nothing of whether the peer's node is working. It
// is remembered for a peer not yet a member, which then joins connected. The
// time is taken for symmetry with Disconnected and is not recorded.
func (v *View) Connected(id peer.ID, now time.Time) {
	if id == "" || id == v.self {
		return
	}
	if m, ok := v.members[id]; ok {
		m.Connected = true
		return
	}
	v.pending[id] = struct{}{}
}

// Disconnected records that the owner's last connection to id has closed. A
// live member becomes suspect (reason "disconnected"); a suspect or dead one
// keeps its state. It returns nil when no state changed.
func (v *View) Disconnected(id peer.ID, now time.Time) *Transition {
	delete(v.pending, id)
	m, ok := v.members[id]
	if !ok {
		return nil
	}
	m.Connected = false
	if m.State != Live {
		return nil
	}
	return v.move(m, Suspect, reasonDisconn, now)
}

// ProbeFailed records that a direct probe of id failed: a suspect member
// becomes dead (reason "probe failed"). A probe is only meaningful for a
// suspect, so a live or dead member is left as it is, and nil is returned.
func (v *View) ProbeFailed(id peer.ID, now time.Time) *Transition {
	m, ok := v.members[id]
	if !ok || m.State != Suspect {
		return nil
	}
	return v.move(m, Dead, reasonProbe, now)
}

// Tick advances failure detection to now and returns the transitions it made,
// sorted by ID (nil when there were none). Each member moves at most one step,
// so a member silent for a long time is first suspected and only declared
// dead by a later Tick, after DeadAfter more; this also spares every member
// after the owner itself was paused. All comparisons are strict:
//
//   - live, now-LastSeen > SuspectMissed*Interval → suspect ("missed heartbeats")
//   - suspect, now-Since > DeadAfter → dead ("suspicion timeout")
//   - dead, now-Since > ForgetAfter → removed ("forgotten", To is zero)
//
// A member silent for exactly SuspectMissed*Interval is still live.
func (v *View) Tick(now time.Time) []Transition {
	var out []Transition
	for id, m := range v.members {
		var tr *Transition
		switch m.State {
		case Live:
			if now.Sub(m.LastSeen) > v.cfg.suspectAfter() {
				tr = v.move(m, Suspect, reasonMissed, now)
			}
		case Suspect:
			if now.Sub(m.Since) > v.cfg.DeadAfter {
				tr = v.move(m, Dead, reasonTimeout, now)
			}
		case Dead:
			if now.Sub(m.Since) > v.cfg.ForgetAfter {
				tr = &Transition{ID: id, Name: m.Name, From: Dead, Reason: reasonForgotten}
				delete(v.members, id)
				if m.Connected {
					v.pending[id] = struct{}{}
				}
			}
		}
		if tr != nil {
			out = append(out, *tr)
		}
	}
	slices.SortFunc(out, func(a, b Transition) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Suspects returns the IDs of the suspect members, sorted: the owner probes
// them directly and reports failures with ProbeFailed.
func (v *View) Suspects() []peer.ID {
	var ids []peer.ID
	for id, m := range v.members {
		if m.State == Suspect {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// Get returns a copy of the member id, and whether it is in the view.
func (v *View) Get(id peer.ID) (Member, bool) {
	m, ok := v.members[id]
	if !ok {
		return Member{}, false
	}
	return m.clone(), true
}

// Members returns a copy of every member, sorted by ID.
func (v *View) Members() []Member {
	return v.collect(func(*Member) bool { return true })
}

// Live returns a copy of the live members, sorted by ID.
func (v *View) Live() []Member {
	return v.collect(func(m *Member) bool { return m.State == Live })
}

// collect returns copies of the members that keep accepts, sorted by ID.
func (v *View) collect(keep func(*Member) bool) []Member {
	out := make([]Member, 0, len(v.members))
	for _, m := range v.members {
		if keep(m) {
			out = append(out, m.clone())
		}
	}
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Counts returns how many members are in each state.
func (v *View) Counts() (live, suspect, dead int) {
	for _, m := range v.members {
		switch m.State {
		case Live:
			live++
		case Suspect:
			suspect++
		case Dead:
			dead++
		}
	}
	return live, suspect, dead
}

// Clone returns a deep copy of v, which a consumer can keep as a snapshot
// while v goes on changing.
func (v *View) Clone() *View {
	c := &View{
		self:    v.self,
		cfg:     v.cfg,
		members: make(map[peer.ID]*Member, len(v.members)),
		pending: make(map[peer.ID]struct{}, len(v.pending)),
	}
	for id, m := range v.members {
		mc := m.clone()
		c.members[id] = &mc
	}
	for id := range v.pending {
		c.pending[id] = struct{}{}
	}
	return c
}
