package b2bua

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/callmesh/callmesh/media"
	"github.com/callmesh/callmesh/node/call"
	"github.com/callmesh/callmesh/node/digest"
	"github.com/callmesh/callmesh/node/sipwire"
)

// Federation carries calls beyond this node: to users registered at other
// nodes and to numbers, over the paths the session's master chose.
type Federation interface {
	// Plan returns the failover list for a call to a callee with no
	// registration here. ErrNotRegistered: the callee exists but is
	// registered nowhere; ErrUnknown: no such user; ErrNoPath: no
	// feasible path (or no master answered).
	Plan(ctx context.Context, q PlanQuery) (*Plan, error)
	// Unavailable: a provider's first hop answered 503 with Retry-After;
	// it is skipped for that long.
	Unavailable(provider string, d time.Duration)
	// Ended reports a federation call that ended, at either end.
	Ended(r Record)
}

// Errors of Federation.Plan.
var (
	ErrNotRegistered = errors.New("callee registered nowhere")
	ErrUnknown       = errors.New("no such user")
	ErrNoPath        = errors.New("no path")
)

// PlanQuery is a call to plan.
type PlanQuery struct {
	Class  string
	Callee string // user name, or a number "+…"
	Number bool
}

// Plan is a session's failover list, best path first.
type Plan struct {
	Session, Master string
	Attempts        []Attempt
}

// Attempt is one path of a failover list, ready to send.
type Attempt struct {
	Hops, SLAs []string
	Provider   string    // the first provider (its Retry-After is honoured)
	Target     sip.Uri   // Request-URI
	Routes     []sip.Uri // the preloaded route set, first hop first
	Dest       string    // the first hop, host:port
	Transport  string
	// Username and Password answer a 407 of the path's last provider (a
	// trunk); empty: a challenge fails the attempt.
	Username, Password string
}

// Record is what a federation call leaves for the path's measurements.
type Record struct {
	Session  string
	SLAs     []string // of the path that carried the call, or of the last attempt
	Answered bool
	PDD      time.Duration // post-dial delay: INVITE to first ringing or answer
	Quality  *media.LegQuality
}

// AttemptRecord is one attempt of a call over a path.
type AttemptRecord struct {
	Hops   []string  `json:"hops"`
	SLAs   []string  `json:"slas"`
	Status int       `json:"status"` // final SIP status; 0 while pending
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// CalleeReason is the Reason an egress node puts on a final answer the
// callee gave, so that the ingress node never fails over on it (RFC 6432
// allows Reason in responses).
func CalleeReason(code int) string {
	return `SIP;cause=` + strconv.Itoa(code) + `;text="callee"`
}

// calleeMarked reports whether a response carries CalleeReason.
func calleeMarked(res *sip.Response) bool {
	for h := range sipwire.Headers(res, "Reason") {
		if strings.Contains(h.Value(), `text="callee"`) {
			return true
		}
	}
	return false
}

// SetFederation gives the service a way beyond the node.
func (s *Service) SetFederation(f Federation) { s.fed = f }

// newAttemptBranch builds the INVITE of one path: a new dialog toward the
// first hop with the preloaded route set.
func (c *Call) newAttemptBranch(i int, att *Attempt, body []byte) *branch {
	s := c.svc
	remote := sip.Uri{Scheme: "sip", User: c.calleeUser(), Host: s.cfg.Domain}
	br := &branch{idx: i, attempt: att, leg: leg{
		callID: newCallID(), localTag: newTag(),
		localURI:     sip.Uri{Scheme: "sip", User: c.caller, Host: s.cfg.Domain},
		remoteURI:    remote,
		remoteTarget: *att.Target.Clone(), routes: cloneURIs(att.Routes),
		dest: att.Dest, transport: att.Transport,
	}}
	req := br.request(sip.INVITE, 0, s.contact)
	c.completeInvite(req, body)
	br.req = req
	return br
}

func cloneURIs(us []sip.Uri) []sip.Uri {
	out := make([]sip.Uri, len(us))
	for i := range us {
		out[i] = *us[i].Clone()
	}
	return out
}

// calleeUser is the user part of the callee's address (a name or a number).
func (c *Call) calleeUser() string {
	u, _, _ := strings.Cut(c.callee, "@")
	return u
}

// startBranch sends the failover list's next path. Paths start in order
// (the state machine starts the first idle one), so path i is appended as
// c.branches[i]: a branch exists from the moment an event can name it.
// It only sends: nothing need be served yet.
func (c *Call) startBranch(i int) {
	c.mu.Lock()
	att := &c.plan.Attempts[i]
	br := c.newAttemptBranch(i, att, c.offer)
	c.branches = append(c.branches, br)
	c.attempts = append(c.attempts, AttemptRecord{Hops: att.Hops, SLAs: att.SLAs, At: time.Now()})
	c.mu.Unlock()
	c.mayWait(br.dest, br.transport)
	c.svc.addBranch(c, br)
	c.start(br)
}

// noteAttempt records an attempt's final status.
func (c *Call) noteAttempt(i, code int, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.plan == nil || i >= len(c.attempts) || c.attempts[i].Status != 0 {
		return
	}
	c.attempts[i].Status, c.attempts[i].Reason = code, reason
}

// authorize answers a trunk's 407 on an attempt: the same INVITE, next
// CSeq, with Proxy-Authorization (RFC 3261 §22.3). False when the attempt
// has no credentials or the challenge is unusable.
func (c *Call) authorize(br *branch, res *sip.Response) bool {
	att := br.attempt
	if att == nil || att.Username == "" || br.authTried {
		return false
	}
	h := sipwire.Header(res, "Proxy-Authenticate")
	if h == nil {
		return false
	}
	ch, err := digest.ParseChallenge(h.Value())
	if err != nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	br.authTried = true
	req := br.req.Clone()
	req.RemoveHeader("Via")
	req.RemoveHeader("Proxy-Authorization")
	br.cseq++
	req.CSeq().SeqNo = br.cseq
	req.AppendHeader(sip.NewHeader("Proxy-Authorization",
		digest.Answer(ch, att.Username, att.Password, string(sip.INVITE), req.Recipient.String())))
	br.req = req
	return true
}

// retryAfter reads a Retry-After in seconds.
func retryAfter(res *sip.Response) time.Duration { return seconds(res, "Retry-After") }

// failureEvent turns a final answer on a branch into the state machine's
// event: a path attempt's failure is the callee's when the egress node said
// so.
func failureEvent(br *branch, res *sip.Response) call.Event {
	ev := call.Event{Kind: call.Failure, Branch: br.idx, Code: res.StatusCode, Reason: res.Reason}
	if br.attempt != nil {
		ev.Callee = calleeMarked(res)
	}
	return ev
}

// report tells the federation how a call over a path went: which path, its
// attempts, answer, post-dial delay and the media quality the relay
// measured on the path's side.
func (c *Call) report() {
	s := c.svc
	if s.fed == nil || (c.plan == nil && !c.egress) {
		return
	}
	c.mu.Lock()
	r := Record{Session: c.session, Answered: !c.answered.IsZero()}
	switch {
	case c.egress:
		r.SLAs = c.path
	case c.fsm.Winner() >= 0:
		r.SLAs = c.plan.Attempts[c.fsm.Winner()].SLAs
	case len(c.attempts) > 0:
		r.SLAs = c.attempts[len(c.attempts)-1].SLAs
	}
	first := c.alerted
	if first.IsZero() || (!c.answered.IsZero() && c.answered.Before(first)) {
		first = c.answered
	}
	if !first.IsZero() {
		r.PDD = first.Sub(c.started)
	}
	m := c.media
	c.mu.Unlock()
	if m != nil && r.Answered {
		// The path is on the relay's B side at the ingress (toward the
		// first provider) and on its A side at the egress (from the last).
		side := media.B
		if c.egress {
			side = media.A
		}
		if sum := m.sess.Summary(); int(side) < len(sum.Legs) {
			q := sum.Legs[side]
			r.Quality = &q
		}
	}
	s.fed.Ended(r)
}
