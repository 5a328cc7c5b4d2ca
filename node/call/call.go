package call

import "fmt"

// State is where a call is, seen from the caller.
type State uint8

const (
	Calling   State = iota // branches sent, no provisional relayed yet
	Early                  // a provisional answer relayed to the caller
	Answered               // 2xx sent to the caller, its ACK awaited
	Confirmed              // ACK received: both dialogs up
	Ended                  // over; late branch answers are cleaned up
)

func (s State) String() string {
	return [...]string{"calling", "early", "answered", "confirmed", "ended"}[s]
}

// Side is one party of a call.
type Side uint8

const (
	Caller Side = iota
	Callee
)

func (s Side) String() string {
	if s == Caller {
		return "caller"
	}
	return "callee"
}

// hungUp is why a call ended on a BYE from s: a constant, so that the
// most common end of a call builds no string.
func hungUp(s Side) string {
	if s == Caller {
		return "caller hung up"
	}
	return "callee hung up"
}

// Reason header values (RFC 3326) the node puts on what it ends.
const (
	ReasonElsewhere = `SIP;cause=200;text="Call completed elsewhere"`
	ReasonNoAnswer  = `SIP;cause=480;text="No answer"`
	ReasonCancelled = `SIP;cause=487;text="Caller cancelled"`
	ReasonMedia     = `Q.850;cause=41;text="Media timeout"`
	ReasonNoACK     = `SIP;cause=408;text="No ACK"`
	ReasonShutdown  = `Q.850;cause=41;text="Node shutting down"`
	ReasonLate      = `SIP;cause=200;text="Answered after the call was taken or ended"`
	ReasonExpired   = `SIP;cause=408;text="Session timer expired"`
)

// EventKind says what happened.
type EventKind uint8

const (
	// Provisional: Branch sent Code (101–199); SDP says it carried a body.
	Provisional EventKind = iota
	// Answer: Branch sent a 2xx.
	Answer
	// Failure: Branch ended with Code ≥ 300, or with 408 for a timeout or
	// a transport error.
	Failure
	// Cancel: the caller cancelled its INVITE (the transaction layer has
	// answered it 487).
	Cancel
	// RingTimeout: nobody answered in time.
	RingTimeout
	// Ack: the caller acknowledged the 2xx.
	Ack
	// AckTimeout: no ACK came for the 2xx (RFC 3261 §13.3.1.4).
	AckTimeout
	// Bye: Side ended the dialog.
	Bye
	// MediaDead: the relay saw Side's media stop while it should flow.
	MediaDead
	// Shutdown: the node stops and the grace period is over.
	Shutdown
	// SessionExpired: a session timer ran out without a refresh (RFC 4028
	// §10).
	SessionExpired
)

// Event is an input to Step.
type Event struct {
	Kind   EventKind
	Branch int
	Code   int
	Reason string // reason phrase of a failure
	SDP    bool
	Side   Side
	// Callee marks a failure the callee gave (an egress node says so with
	// a Reason header): a serial call never fails over on it.
	Callee bool
}

// ActionKind says what the SIP layer must do.
type ActionKind uint8

const (
	// RelayProvisional: send Code from Branch's provisional to the caller
	// (its SDP, anchored, when it had one: early media).
	RelayProvisional ActionKind = iota
	// AnswerCaller: answer the caller with Branch's 2xx.
	AnswerCaller
	// RejectCaller: answer the caller with Final.
	RejectCaller
	// CancelBranch: send CANCEL for Branch's INVITE, with Reason.
	CancelBranch
	// AckBranch: acknowledge Branch's 2xx.
	AckBranch
	// ByeBranch: end Branch's dialog with BYE, with Reason.
	ByeBranch
	// ByeCaller: end the caller's dialog with BYE, with Reason.
	ByeCaller
	// Release: the call is over; free its media and record it.
	Release
	// StartBranch: send Branch's INVITE (the next path of a failover
	// list; a serial call starts with branch 0 only).
	StartBranch
)

func (k ActionKind) String() string {
	return [...]string{"relay-provisional", "answer-caller", "reject-caller", "cancel-branch",
		"ack-branch", "bye-branch", "bye-caller", "release", "start-branch"}[k]
}

// Action is an output of Step.
type Action struct {
	Kind   ActionKind
	Branch int
	Code   int
	Final  Final
	Reason string // Reason header for CANCEL and BYE
}

func (a Action) String() string {
	switch a.Kind {
	case RelayProvisional:
		return fmt.Sprintf("%s(%d,%d)", a.Kind, a.Branch, a.Code)
	case RejectCaller:
		return fmt.Sprintf("%s(%d)", a.Kind, a.Final.Code)
	case AnswerCaller, CancelBranch, AckBranch, ByeBranch, StartBranch:
		return fmt.Sprintf("%s(%d)", a.Kind, a.Branch)
	}
	return a.Kind.String()
}

type branchState uint8

const (
	trying     branchState = iota // INVITE sent
	proceeding                    // a provisional came
	answered                      // its 2xx won the call
	cancelled                     // CANCEL sent
	failed                        // final ≥ 300, or 408
	late                          // a 2xx that lost: ACKed and BYEd
	idle                          // a failover path not tried (yet)
)

func (b branchState) pending() bool { return b == trying || b == proceeding }

// Call is one call's state. Not safe for concurrent use: the owner
// serialises Step.
type Call struct {
	state    State
	branches []branchState
	codes    []int
	reasons  []string
	winner   int
	final    Final
	ended    string // why it ended, for the record
	serial   bool   // branches are failover paths, tried one at a time
}

// oneBranch is a Call with room for one branch's state.
type oneBranch struct {
	Call
	b      [1]branchState
	code   [1]int
	reason [1]string
}

// New starts a call that forked to n branches (n ≥ 1).
func New(n int) *Call {
	// One allocation for the call and, for the usual single contact, its
	// branch's state.
	c := &oneBranch{Call: Call{state: Calling, winner: -1}}
	if n == 1 {
		c.branches, c.codes, c.reasons = c.b[:], c.code[:], c.reason[:]
	} else {
		c.branches, c.codes, c.reasons = make([]branchState, n), make([]int, n), make([]string, n)
	}
	return &c.Call
}

// NewSerial starts a call over a failover list of n paths (n ≥ 1): branch
// 0 is sent now; when a branch fails by a fault of the path (Retryable),
// the next one is started (StartBranch), and the caller sees one call.
func NewSerial(n int) *Call {
	c := New(n)
	c.serial = true
	for i := 1; i < n; i++ {
		c.branches[i] = idle
	}
	return c
}

// Retryable reports whether a failed attempt over a path may be retried on
// the next path: a timeout or transport error (408), or a server error, that
// the path caused — never what the callee answered, and never a 6xx.
func Retryable(ev Event) bool {
	return !ev.Callee && (ev.Code == 408 || (ev.Code >= 500 && ev.Code < 600))
}

// Attempts is how many branches were started.
func (c *Call) Attempts() int {
	n := 0
	for _, b := range c.branches {
		if b != idle {
			n++
		}
	}
	return n
}

// nextIdle is the first branch not tried, or -1.
func (c *Call) nextIdle() int {
	for i, b := range c.branches {
		if b == idle {
			return i
		}
	}
	return -1
}

// State is where the call is.
func (c *Call) State() State { return c.state }

// Winner is the branch whose 2xx was taken, or -1.
func (c *Call) Winner() int { return c.winner }

// Final is what the caller was answered when the call failed.
func (c *Call) Final() Final { return c.final }

// EndedBy says why the call ended ("" while it runs).
func (c *Call) EndedBy() string { return c.ended }

// Pending counts branches still waiting for a final answer.
func (c *Call) Pending() int {
	n := 0
	for _, b := range c.branches {
		if b.pending() || b == cancelled {
			n++
		}
	}
	return n
}

func (c *Call) setup() bool { return c.state == Calling || c.state == Early }

// byeWinner ends the winning branch's dialog with reason: BYE, after an
// ACK of its 2xx while the caller's own ACK (which the node passes on) has
// not come. A UAC ACKs every 2xx (RFC 3261 §13.2.2.4); a callee left
// without one would retransmit it until its Timer H.
func (c *Call) byeWinner(reason string, acts []Action) []Action {
	if c.state == Answered {
		acts = append(acts, Action{Kind: AckBranch, Branch: c.winner})
	}
	return append(acts, Action{Kind: ByeBranch, Branch: c.winner, Reason: reason})
}

func (c *Call) established() bool { return c.state == Answered || c.state == Confirmed }

// cancelOthers cancels every pending branch but keep.
func (c *Call) cancelOthers(keep int, reason string, acts []Action) []Action {
	for i, b := range c.branches {
		if i != keep && b.pending() {
			c.branches[i] = cancelled
			acts = append(acts, Action{Kind: CancelBranch, Branch: i, Reason: reason})
		}
	}
	return acts
}

func (c *Call) end(why string, acts []Action) []Action {
	c.state = Ended
	c.ended = why
	return append(acts, Action{Kind: Release})
}

func (c *Call) reject(f Final, why string, acts []Action) []Action {
	c.final = f
	acts = append(acts, Action{Kind: RejectCaller, Final: f})
	return c.end(why, acts)
}

// Step applies an event and returns what to do, in order.
func (c *Call) Step(ev Event) []Action { return c.StepAppend(nil, ev) }

// StepAppend is Step appending what to do to acts: a caller that serves
// a call's events one after another may keep the actions in a buffer of
// its own rather than have each step allocate a list.
func (c *Call) StepAppend(acts []Action, ev Event) []Action {
	if (ev.Kind == Provisional || ev.Kind == Answer || ev.Kind == Failure) &&
		(ev.Branch < 0 || ev.Branch >= len(c.branches)) {
		return acts
	}
	switch ev.Kind {
	case Provisional:
		b := c.branches[ev.Branch]
		if !c.setup() || !b.pending() || ev.Code <= 100 || ev.Code >= 200 {
			return acts
		}
		c.branches[ev.Branch] = proceeding
		c.state = Early
		return append(acts, Action{Kind: RelayProvisional, Branch: ev.Branch, Code: ev.Code})

	case Answer:
		b := c.branches[ev.Branch]
		switch {
		case c.setup() && (b.pending() || b == cancelled):
			// A 2xx can cross the CANCEL of a branch that lost the race
			// to ring; while nobody has answered, it still wins.
			c.branches[ev.Branch] = answered
			c.winner = ev.Branch
			c.state = Answered
			acts = append(acts, Action{Kind: AnswerCaller, Branch: ev.Branch})
			return c.cancelOthers(ev.Branch, ReasonElsewhere, acts)
		case ev.Branch == c.winner && c.state == Confirmed:
			// A retransmitted 2xx: the ACK was lost (§13.2.2.4).
			return append(acts, Action{Kind: AckBranch, Branch: ev.Branch})
		case ev.Branch == c.winner:
			return acts // retransmission before the caller's ACK
		case b == late:
			return append(acts, Action{Kind: AckBranch, Branch: ev.Branch})
		default:
			// Too late: another branch won or the call ended (§13.2.2.4:
			// ACK it, then BYE).
			c.branches[ev.Branch] = late
			return append(acts, Action{Kind: AckBranch, Branch: ev.Branch},
				Action{Kind: ByeBranch, Branch: ev.Branch, Reason: ReasonLate})
		}

	case Failure:
		b := c.branches[ev.Branch]
		if !b.pending() && b != cancelled {
			return acts
		}
		c.branches[ev.Branch] = failed
		c.codes[ev.Branch], c.reasons[ev.Branch] = ev.Code, ev.Reason
		if !c.setup() {
			return acts
		}
		if ev.Code >= 600 { // global: stop searching (§16.7 step 5)
			acts = c.cancelOthers(ev.Branch, "", acts)
			return c.reject(MapFinal(ev.Code, ev.Reason), "callee", acts)
		}
		if c.serial {
			if !Retryable(ev) {
				acts = c.cancelOthers(ev.Branch, "", acts)
				return c.reject(MapFinal(ev.Code, ev.Reason), "callee", acts)
			}
			if next := c.nextIdle(); next >= 0 {
				c.branches[next] = trying
				return append(acts, Action{Kind: StartBranch, Branch: next})
			}
			if c.Pending() > 0 {
				return acts
			}
			return c.reject(NoPath, "no path", acts)
		}
		if c.Pending() > 0 {
			return acts
		}
		best := -1
		for i, code := range c.codes {
			if c.branches[i] == failed && (best < 0 || rank(code) > rank(c.codes[best])) {
				best = i
			}
		}
		return c.reject(MapFinal(c.codes[best], c.reasons[best]), "callee", acts)

	case Cancel:
		if !c.setup() {
			return acts
		}
		acts = c.cancelOthers(-1, ReasonCancelled, acts)
		c.final = Cancelled
		return c.end("caller cancelled", acts)

	case RingTimeout:
		if !c.setup() {
			return acts
		}
		acts = c.cancelOthers(-1, ReasonNoAnswer, acts)
		return c.reject(NoAnswer, "no answer", acts)

	case Ack:
		if c.state == Answered {
			c.state = Confirmed
		}
		return acts

	case AckTimeout:
		if c.state != Answered {
			return acts
		}
		acts = append(acts, Action{Kind: ByeCaller, Reason: ReasonNoACK})
		acts = c.byeWinner(ReasonNoACK, acts)
		return c.end("no ACK", acts)

	case Bye:
		if !c.established() {
			return acts
		}
		if ev.Side == Caller {
			acts = c.byeWinner("", acts)
		} else {
			acts = append(acts, Action{Kind: ByeCaller})
		}
		return c.end(hungUp(ev.Side), acts)

	case MediaDead, Shutdown, SessionExpired:
		reason, why := ReasonMedia, "media timeout ("+ev.Side.String()+")"
		switch ev.Kind {
		case Shutdown:
			reason, why = ReasonShutdown, "shutdown"
		case SessionExpired:
			reason, why = ReasonExpired, "session timer expired"
		}
		switch {
		case c.established():
			acts = append(acts, Action{Kind: ByeCaller, Reason: reason})
			acts = c.byeWinner(reason, acts)
			return c.end(why, acts)
		case c.setup() && ev.Kind == Shutdown:
			acts = c.cancelOthers(-1, reason, acts)
			return c.reject(Final{503, "Service Unavailable (shutting down)", false}, why, acts)
		}
		return acts
	}
	return acts
}
