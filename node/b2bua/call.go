package b2bua

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/callmesh/callmesh/media"
	"github.com/callmesh/callmesh/node/accounts"
	"github.com/callmesh/callmesh/node/call"
	"github.com/callmesh/callmesh/node/sipedge"
	"github.com/callmesh/callmesh/node/siptx"
	"github.com/callmesh/callmesh/node/sipwire"
)

// Call is one call in progress: the caller's dialog, the branches toward
// the callee's contacts, the media anchoring and the state machine.
type Call struct {
	id        string
	dialogKey string // the caller side's key in Service.dialogs
	svc       *Service
	caller    string // authenticated user, or the From user of a trusted source
	trusted   bool   // the caller came from a trusted source, unchallenged
	callee    string // AOR
	class     string

	mu         sync.Mutex // guards the dialogs, media and times below
	fsm        *call.Call
	a          leg
	invite     *sip.Request // the caller's INVITE
	tx         sip.ServerTransaction
	answer     *sip.Response // 2xx sent to the caller
	branches   []*branch
	media      *anchoring
	started    time.Time
	answered   time.Time
	reInvite   bool // an INVITE transaction within the dialog is in progress
	pendingAck *pendingAck
	refresh    time.Duration
	lastRef    time.Time

	// Federation calls: the ingress's failover list, its attempts, and
	// the SDP offer every path is sent; the egress's session and path.
	plan     *Plan
	attempts []AttemptRecord
	offer    []byte
	session  string
	egress   bool
	hops     []string // the path (egress: from the token)
	path     []string // SLA ids of the path (egress: from the token)
	alerted  time.Time

	qmu     sync.Mutex
	queue   []event  // posted, not yet served
	spare   []event  // a served batch's array, for reuse
	qa, qb  [1]event // the first arrays of queue and spare: most batches are one event
	running bool     // someone serves the call (run)
	over    bool     // finished: posts are dropped
	offload bool     // served on a goroutine of its own (see post)

	// Owned by the one serving the call (run).
	timers    [ticks]*time.Timer
	tgen      [ticks]uint32 // per timer: a bump makes its pending tick stale
	interval  time.Duration // the 2xx's retransmission interval
	acking    bool          // the caller's ACK is awaited (or was)
	lingering bool          // ended, waiting for branches still answering

	// For a transaction that ends with its handler (not siptx's), which
	// Invite holds until the caller has its answer; nil otherwise.
	done      chan struct{} // closed when the call is forgotten
	final     chan struct{} // closed once the caller has a final answer
	finalOnce sync.Once
	release   func() // the caller's INVITE transaction is kept (siptx.Keep) until finalSent
}

// finalSent notes that the caller's INVITE has its final answer (or
// never will: the call is over), and lets its transaction go on alone.
func (c *Call) finalSent() {
	c.finalOnce.Do(func() {
		if c.final != nil {
			close(c.final)
		}
		if c.release != nil {
			c.release()
		}
	})
}

// branch is one INVITE toward a contact of the callee.
type branch struct {
	idx     int
	binding sipedge.Binding
	leg
	req     *sip.Request
	tx      sip.ClientTransaction
	ok      *sip.Response // its 2xx
	ackBody []byte        // the body of the ACK of that 2xx (a late offer's answer)

	proceeding   bool   // a provisional came: a CANCEL may be sent
	cancelWanted bool   // CANCEL decided before any provisional
	cancelReason string // its Reason header

	attempt   *Attempt // a path of a failover list (nil: a contact)
	authTried bool     // a 407 was answered once

	sends    int         // INVITEs sent (a 407 answered sends another)
	heard    bool        // the last one had a response
	firstHop *time.Timer // a path's first hop must answer by then
}

type event struct {
	ev   call.Event
	res  *sip.Response
	req  *sip.Request
	tick tick // a timer's (gen: its generation), or the order to stop

	// A request to write toward the other side, in order with the
	// call's other messages: the ACK of a 2xx, passed on.
	out          *sip.Request
	outTransport string

	// A branch's INVITE transaction spoke (reply): a response, or why it
	// ended without a final one (err), or its first hop's time ran out
	// (firstHop). gen names the INVITE it is about (branch.sends): the
	// answer to one replaced after a 407 is ignored.
	reply    bool
	br       *branch
	gen      int
	err      error
	firstHop bool
}

// post hands an event to the call, in order; dropped once the call is
// over. When nobody is serving the call, the caller serves it at once
// (run), so the transport's reader may post: serving a call whose every
// message goes over UDP to an address never waits. A call with a leg over
// TCP or toward a name (offload) may wait on a write or a dial: it is
// served on a goroutine of its own, which only that call can hold up.
// Never called with c.mu held.
func (c *Call) post(e event) {
	c.qmu.Lock()
	if c.over {
		c.qmu.Unlock()
		return
	}
	c.queue = append(c.queue, e)
	if c.running {
		c.qmu.Unlock()
		return
	}
	c.running = true
	off := c.offload
	c.qmu.Unlock()
	if off {
		c.svc.spawn(func() { c.run(true) })
		return
	}
	c.run(false)
}

// mayWait marks the call as one whose serving may wait on the network
// (post) when its leg toward dest is not UDP to an address: at set-up,
// and when a path's branch is added.
func (c *Call) mayWait(dest, transport string) {
	if siptx.Immediate(dest, transport) {
		return
	}
	c.qmu.Lock()
	c.offload = true
	c.qmu.Unlock()
}

// isOver reports whether the call has finished.
func (c *Call) isOver() bool {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	return c.over
}

// Invite takes an authenticated, authorized initial INVITE (sipedge.Calls).
// When quick it is on a transport's reader: a callee the federation must
// find, and a transaction of another layer (answered only once Invite
// returns, see below), make it return false at once, having done nothing.
func (s *Service) Invite(req *sip.Request, tx sip.ServerTransaction, caller sipedge.Caller, quick bool) bool {
	if quick && !siptx.Keepable(tx) {
		return false
	}
	res := func(code int, reason string, hdrs ...sip.Header) { respond(tx, req, code, reason, hdrs...) }
	// Made only for the answers that carry it.
	retry := func() sip.Header { return sip.NewHeader("Retry-After", strconv.Itoa(s.cfg.RetryAfter)) }
	// refuse answers a call that comes while the service drains: at once,
	// or after its lookups if the drain began meanwhile (register).
	refuse := func() {
		s.Counters.Refused.Add(1)
		res(sip.StatusServiceUnavailable, "Service Unavailable (shutting down)", retry())
	}
	if s.Draining() {
		refuse()
		return true
	}
	// lookup bounds what the call asks of the federation and the accounts.
	lookup := func() (context.Context, context.CancelFunc) { return context.WithTimeout(s.ctx, 5*time.Second) }
	// The edge read the caller's account when it authorized the call.
	class := caller.Class
	if caller.Known && s.ActiveCalls(caller.User) >= caller.MaxCalls {
		res(sip.StatusForbidden, fmt.Sprintf("Forbidden (max_calls %d reached)", caller.MaxCalls))
		return true
	}
	calleeUser := req.Recipient.User
	egress := caller.Session != ""
	// What the node answers itself about the callee; an egress node marks
	// it as the callee's, so the ingress never fails over on it.
	calleeRes := func(code int, reason string) {
		if egress {
			res(code, reason, sip.NewHeader("Reason", CalleeReason(code)))
			return
		}
		res(code, reason)
	}
	kind := sipedge.SessionKind(req.Recipient)
	number := kind.Kind == accounts.KindExternal
	if calleeUser == "" || (number && (egress || s.fed == nil)) {
		// Numbers need a termination provider: the federation's routing.
		calleeRes(sip.StatusNotFound, "Not Found (no route to this number)")
		return true
	}
	aor := calleeUser + "@" + s.cfg.Domain
	var contacts []sipedge.Binding
	var plan *Plan
	if number {
		calleeUser = kind.Destination
		aor = calleeUser
	} else {
		var err error
		if contacts, err = s.dir.Contacts(aor); err != nil {
			res(sip.StatusInternalServerError, "Server Internal Error (registrations not readable)")
			return true
		}
	}
	if len(contacts) == 0 && (number || (!egress && s.fed != nil)) {
		if quick {
			return false // the federation plans the call
		}
		var err error
		ctx, cancel := lookup()
		plan, err = s.fed.Plan(ctx, PlanQuery{Class: class, Callee: calleeUser, Number: number})
		cancel()
		switch {
		case errors.Is(err, ErrUnknown):
			res(sip.StatusNotFound, "Not Found")
			return true
		case errors.Is(err, ErrNotRegistered):
			res(sip.StatusTemporarilyUnavailable, "Temporarily Unavailable (not registered)")
			return true
		case errors.Is(err, ErrNoPath) && number:
			res(sip.StatusNotFound, sipedge.SanitizeReason("Not Found (no route to this number: "+err.Error()+")"))
			return true
		case err != nil:
			res(sip.StatusTemporarilyUnavailable, sipedge.SanitizeReason("Temporarily Unavailable (no path: "+err.Error()+")"))
			return true
		case len(plan.Attempts) == 0:
			res(sip.StatusTemporarilyUnavailable, "Temporarily Unavailable (no path)")
			return true
		}
	} else if len(contacts) == 0 {
		if quick {
			return false // whether the callee exists may be asked of the federation
		}
		ctx, cancel := lookup()
		found, err := s.dir.Exists(ctx, calleeUser)
		cancel()
		switch {
		case err != nil:
			res(sip.StatusServiceUnavailable, "Service Unavailable (account not reachable)", retry())
		case !found:
			calleeRes(sip.StatusNotFound, "Not Found")
		default:
			calleeRes(sip.StatusTemporarilyUnavailable, "Temporarily Unavailable (not registered)")
		}
		return true
	}

	// A plan's paths are tried one at a time; contacts (at least one
	// here) are forked to at once.
	var fsm *call.Call
	if plan != nil {
		fsm = call.NewSerial(len(plan.Attempts))
	} else {
		fsm = call.New(len(contacts))
	}
	c := &Call{id: newID(), svc: s, caller: caller.User, trusted: caller.Trusted, callee: aor, class: class,
		fsm: fsm, invite: req, tx: tx, started: time.Now(), plan: plan, egress: egress,
		session: caller.Session, hops: caller.Hops, path: caller.SLAs,
		running: true} // Invite serves the call until it is set up
	c.queue, c.spare = c.qa[:0], c.qb[:0]
	if plan != nil {
		c.session = plan.Session
	}
	from, to := req.From(), req.To()
	fromTag, _ := from.Params.Get("tag")
	c.a = leg{callID: req.CallID().Value(), localTag: newTag(), remoteTag: fromTag,
		localURI: *to.Address.Clone(), remoteURI: *from.Address.Clone(),
		routes: routeSet(req, false), dest: req.Source(), transport: req.Transport()}
	c.mayWait(c.a.dest, c.a.transport)
	if ct := req.Contact(); ct != nil {
		c.a.remoteTarget = *ct.Address.Clone()
	} else {
		res(sip.StatusBadRequest, "Bad Request (INVITE without Contact)")
		return true
	}
	body := req.Body()
	// Anchor an SDP offer, or a late offer (no body: the callee's 2xx will
	// carry the offer); a body of another type passes untouched.
	if s.relay != nil && s.cfg.Anchor(class) && (isSDP(req) || len(body) == 0) {
		sess, err := s.relay.Open(c.id)
		if err != nil {
			s.Counters.Refused.Add(1)
			res(sip.StatusServiceUnavailable, "Service Unavailable (no media ports)", retry())
			return true
		}
		c.media = &anchoring{sess: sess}
		// The leg toward the path faces the other end node's relay: both
		// send RTCP of their own on it, so the path's round trip (and so its
		// delay) is measured even when the phones send no RTCP.
		switch {
		case plan != nil:
			sess.Leg(media.B).SetPeerRelay(true)
		case egress:
			sess.Leg(media.A).SetPeerRelay(true)
		}
		if len(body) > 0 {
			if body, err = c.media.anchor(body, media.A); err != nil {
				sess.Close()
				res(sip.StatusBadRequest, sipedge.SanitizeReason("Bad Request (SDP: "+err.Error()+")"))
				return true
			}
		}
	}
	if err := s.register(c); err != nil {
		if c.media != nil {
			c.media.sess.Close()
		}
		if errors.Is(err, errDraining) {
			refuse()
			return true
		}
		res(sip.StatusLoopDetected, "Loop Detected (a call with this Call-ID and tag exists)")
		return true
	}
	s.Counters.Started.Add(1)
	c.arm(tickRing, s.cfg.RingTimeout)
	// A CANCEL that came while the call was planned (or its callee looked
	// up) found no listener: the transaction layer answered it 487 itself,
	// and the callee must not be rung.
	if !tx.OnCancel(func(*sip.Request) { c.post(event{ev: call.Event{Kind: call.Cancel}}) }) {
		c.abandon()
		return true
	}
	// The handler need not wait for the final answer: the transaction is
	// kept until finalSent (set before any event is served).
	kept := false
	c.release, kept = siptx.Keep(tx)
	if !kept {
		// The handler waits below for the final answer: it is told by
		// these. Made before any event is served.
		c.done, c.final = make(chan struct{}), make(chan struct{})
	}
	res(sip.StatusTrying, "Trying")

	// The call is listed (Service.Calls) from here on: its branches change
	// under c.mu.
	if plan != nil {
		c.mu.Lock()
		c.offer = body
		c.mu.Unlock()
		// Branch 0 exists before any event is served: a CANCEL or a
		// shutdown cancels it like any later one.
		c.startBranch(0)
	} else {
		for i, b := range contacts {
			br := c.newBranch(i, b, body)
			c.mayWait(br.dest, br.transport)
			c.mu.Lock()
			c.branches = append(c.branches, br)
			c.mu.Unlock()
			s.addBranch(c, br)
		}
		for _, br := range c.branches {
			c.start(br)
		}
	}
	// What came meanwhile (a fast answer, a CANCEL) is served now, on the
	// handler's goroutine; then whoever posts next serves the call. On a
	// reader (quick), a call whose serving may wait (a leg over TCP) is
	// handed to a goroutine of its own, as any poster on a reader does.
	c.run(!quick)
	if kept {
		return true
	}
	// A transaction of another layer ends when its handler returns (as
	// sipgo's do): hold it until the caller has its final answer (or the
	// transaction ends, as on CANCEL, which the layer answers with 487).
	select {
	case <-c.final:
	case <-tx.Done():
	case <-c.done:
	}
	return true
}

// abandon ends a call whose caller's transaction ended before anything
// was sent toward the callee (a CANCEL the transaction layer answered 487):
// it is counted and forgotten like a call the caller cancelled.
func (c *Call) abandon() {
	s := c.svc
	c.report()
	if errors.Is(c.tx.Err(), sip.ErrTransactionCanceled) {
		s.Counters.Cancelled.Add(1)
	} else {
		s.Counters.Failed.Add(1)
	}
	s.log.Debug("call ended before it was sent", "call", c.id, "err", c.tx.Err())
	c.finish()
}

// newBranch builds the INVITE toward one contact: a new dialog with its own
// Call-ID, tags and CSeq space.
func (c *Call) newBranch(i int, b sipedge.Binding, body []byte) *branch {
	s := c.svc
	calleeUser, _, _ := strings.Cut(c.callee, "@")
	dest, transport := b.Route()
	br := &branch{idx: i, binding: b, leg: leg{
		callID: newCallID(), localTag: newTag(),
		localURI:  sip.Uri{Scheme: "sip", User: c.caller, Host: s.cfg.Domain},
		remoteURI: sip.Uri{Scheme: "sip", User: calleeUser, Host: s.cfg.Domain},
		dest:      dest, transport: transport,
	}}
	if err := sip.ParseUri(b.URI, &br.remoteTarget); err != nil {
		br.remoteTarget = sip.Uri{Scheme: "sip", Host: "invalid"}
	}
	req := br.request(sip.INVITE, 0, s.contact)
	c.completeInvite(req, body)
	br.req = req
	return br
}

// completeInvite gives a callee-side INVITE what it takes from the
// caller's: display name, Max-Forwards less one, the end-to-end headers and
// the (anchored) body.
func (c *Call) completeInvite(req *sip.Request, body []byte) {
	if from := c.invite.From(); from != nil && from.DisplayName != "" {
		req.From().DisplayName = from.DisplayName
	}
	if mf := c.invite.MaxForwards(); mf != nil && uint32(*mf) > 0 {
		v := sip.MaxForwardsHeader(uint32(*mf) - 1)
		req.ReplaceHeader(&v)
	}
	copyHeaders(req, c.invite, endToEndNoType...)
	if len(body) > 0 {
		if ct := sipwire.Header(c.invite, "Content-Type"); ct != nil {
			req.AppendHeader(sip.NewHeader("Content-Type", ct.Value()))
		}
		req.SetBody(body)
	}
}

// endToEndNoType: the end-to-end headers a new request takes from the
// caller's, the body's type set apart with the body.
var endToEndNoType = func() []string {
	var out []string
	for _, h := range endToEnd {
		if h != "Content-Type" {
			out = append(out, h)
		}
	}
	return out
}()

// start sends a branch's INVITE (see background).
func (c *Call) start(br *branch) { c.background(br.dest, br.transport, func() { c.send(br) }) }

// failed records a branch's failure (for a path's attempts) and returns it
// as the state machine's event.
func (c *Call) failed(br *branch, code int, reason string) event {
	c.noteAttempt(br.idx, code, reason)
	return event{ev: call.Event{Kind: call.Failure, Branch: br.idx, Code: code, Reason: reason}}
}

// send starts one branch's INVITE transaction. Its responses come to the
// call as events (reply), posted by the transaction itself: no
// goroutine waits on them.
func (c *Call) send(br *branch) {
	s := c.svc
	c.mu.Lock()
	req := br.req
	br.sends++
	gen := br.sends
	c.mu.Unlock()
	// s.ctx bounds opening a connection only; the call's ring timer and
	// the transaction's Timer B bound the rest.
	tx, err := s.requestFunc(s.ctx, req, br.transport, false, func(res *sip.Response, err error) {
		c.post(event{reply: true, br: br, gen: gen, res: res, err: err})
	})
	if err != nil {
		s.log.Debug("branch not sent", "call", c.id, "dest", br.dest, "err", err)
		c.post(c.failed(br, 408, "transport error"))
		return
	}
	tx.OnRetransmission(func(res *sip.Response) {
		if res.IsSuccess() {
			c.post(event{ev: call.Event{Kind: call.Answer, Branch: br.idx}, res: res})
		}
	})
	c.mu.Lock()
	if gen != br.sends || c.isOver() {
		// Sent on a goroutine of its own, it was overtaken: by a 407's
		// answer (a newer INVITE), or by the call's end.
		c.mu.Unlock()
		tx.Terminate()
		return
	}
	br.tx = tx
	if br.attempt != nil && !br.heard {
		// A path's first hop must answer (100 Trying at least) in time, or
		// the path is abandoned for the next (no CANCEL: nothing answered).
		br.firstHop = time.AfterFunc(s.cfg.FirstHop, func() {
			c.post(event{reply: true, br: br, gen: gen, firstHop: true})
		})
	}
	c.mu.Unlock()
}

// reply takes what a branch's INVITE transaction said, as the call is served:
// a provisional, an answer, a failure (a trunk's 407 is answered once), or
// its end without a final response.
func (c *Call) reply(e event) {
	s := c.svc
	br := e.br
	c.mu.Lock()
	if e.gen != br.sends || (e.firstHop && br.heard) {
		c.mu.Unlock()
		return // about an INVITE replaced after a 407, or a timer too late
	}
	if !e.firstHop {
		br.heard = true
		if br.firstHop != nil {
			br.firstHop.Stop()
			br.firstHop = nil
		}
	}
	tx := br.tx
	c.mu.Unlock()
	res := e.res
	switch {
	case e.firstHop:
		// Abandoned: a response still in flight is ignored.
		c.mu.Lock()
		br.sends++
		c.mu.Unlock()
		if tx != nil {
			tx.Terminate()
		}
		c.apply(c.failed(br, 408, "no answer from the first hop"))
	case e.err != nil:
		reason := "Request Timeout"
		if !errors.Is(e.err, sip.ErrTransactionTimeout) {
			reason = "transport error"
		}
		c.apply(c.failed(br, 408, reason))
	case res.IsProvisional():
		c.apply(event{ev: call.Event{Kind: call.Provisional, Branch: br.idx, Code: res.StatusCode, SDP: isSDP(res)}, res: res})
	case res.StatusCode == sip.StatusProxyAuthRequired && c.authorize(br, res):
		if tx != nil {
			tx.Terminate()
		}
		c.start(br)
	case res.IsSuccess():
		c.noteAttempt(br.idx, res.StatusCode, res.Reason)
		c.apply(event{ev: call.Event{Kind: call.Answer, Branch: br.idx}, res: res})
		if sip.IsReliable(br.transport) && tx != nil {
			tx.Terminate() // no 2xx retransmission to wait for
		}
	default:
		if res.StatusCode == sip.StatusServiceUnavailable && br.attempt != nil && s.fed != nil {
			if d := retryAfter(res); d > 0 {
				s.fed.Unavailable(br.attempt.Provider, d)
			}
		}
		c.noteAttempt(br.idx, res.StatusCode, res.Reason)
		c.apply(event{ev: failureEvent(br, res), res: res})
	}
}
