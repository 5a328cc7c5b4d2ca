package b2bua

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/callmesh/callmesh/media"
	"github.com/callmesh/callmesh/node/call"
	"github.com/callmesh/callmesh/node/internal/gopool"
	"github.com/callmesh/callmesh/node/sipedge"
	"github.com/callmesh/callmesh/node/siptx"
)

// Service is the call handling of one node. It implements sipedge.Calls.
type Service struct {
	cfg   Config
	log   *slog.Logger
	dir   Directory
	relay *media.Relay // nil: never anchor
	edge  *sipedge.Server
	fed   Federation // nil: calls stay on this node

	txl     *siptx.Layer
	contact sip.Uri // our Contact in both dialogs

	mu       sync.Mutex
	calls    map[string]*Call     // by call id
	dialogs  map[string]dialogRef // by Call-ID (+ From tag on the caller side)
	active   map[string]int       // calls per caller
	draining bool

	wg       sync.WaitGroup // every call until finished, and every spawn
	requests sync.WaitGroup // BYEs and CANCELs awaiting their answers (send)
	pool     *gopool.Pool
	ctx      context.Context
	cancel   context.CancelFunc

	Counters Counters
}

// Counters are running totals for metrics.
type Counters struct {
	Started, Answered, Failed, Cancelled atomic.Uint64
	Refused                              atomic.Uint64 // 503 while draining or without media ports
	StrayAcked                           atomic.Uint64 // 2xx retransmitted after their call ended, ACKed (ackStray)
}

// dialogRef finds the call and side an in-dialog request belongs to.
type dialogRef struct {
	c      *Call
	side   call.Side
	branch int
}

// New creates the call service on the SIP edge. relay may be nil when no
// call is ever anchored.
func New(cfg Config, edge *sipedge.Server, dir Directory, relay *media.Relay, log *slog.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	host, port, err := net.SplitHostPort(edge.Addr())
	if err != nil {
		return nil, fmt.Errorf("b2bua: edge address: %w", err)
	}
	p, _ := strconv.Atoi(port)
	s := &Service{
		cfg: cfg, log: log, dir: dir, relay: relay, edge: edge, txl: edge.Transactions(),
		contact: sip.Uri{Scheme: "sip", Host: host, Port: p},
		calls:   make(map[string]*Call), dialogs: make(map[string]dialogRef), active: make(map[string]int),
		pool: gopool.New(idleGoroutines),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.txl.OnStray(s.ackStray)
	return s, nil
}

// Close ends every call at once and waits for them.
func (s *Service) Close() error {
	s.mu.Lock()
	s.draining = true // no call registers from here on
	s.mu.Unlock()
	s.tell(event{ev: call.Event{Kind: call.Shutdown}})
	done := make(chan struct{})
	go func() { s.wg.Wait(); s.requests.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		s.log.Warn("calls still ending at shutdown")
	}
	s.cancel()
	s.txl.OnStray(nil)
	s.tell(event{tick: tickStop}) // calls still waiting for answers are forgotten
	s.wg.Wait()
	s.pool.Close()
	return nil
}

// tell posts e to every call in progress.
func (s *Service) tell(e event) {
	for _, c := range s.live() {
		c.post(e)
	}
}

// live lists the calls in progress.
func (s *Service) live() []*Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	calls := make([]*Call, 0, len(s.calls))
	for _, c := range s.calls {
		calls = append(calls, c)
	}
	return calls
}

// idleGoroutines bounds the goroutines kept idle for spawn.
const idleGoroutines = 512

// spawn runs f in the background on a kept goroutine (a request that may
// have to dial or look a name up), counted so that Close waits for it. A
// kept goroutine's stack has grown already: a fresh one grew by copying.
func (s *Service) spawn(f func()) {
	s.wg.Add(1)
	g := func() {
		defer s.wg.Done()
		f()
	}
	if !s.pool.Go(g) {
		go g() // closing: the call is ending
	}
}

// Drain refuses new calls (503 with Retry-After) and lets current ones
// finish; after the grace period (or when ctx ends) it ends what is left.
// It returns when no call remains.
func (s *Service) Drain(ctx context.Context) {
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	grace := time.NewTimer(s.cfg.DrainGrace)
	defer grace.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for s.Len() > 0 {
		select {
		case <-grace.C:
			s.Close()
			return
		case <-ctx.Done():
			s.Close()
			return
		case <-tick.C:
		}
	}
}

// Draining reports whether new calls are refused.
func (s *Service) Draining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

// Len is the number of calls in progress.
func (s *Service) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

// Calls describes the calls in progress.
func (s *Service) Calls() []Info {
	calls := s.live()
	out := make([]Info, 0, len(calls))
	for _, c := range calls {
		out = append(out, c.Info())
	}
	return out
}

// ActiveCalls is the number of calls a user has in progress.
func (s *Service) ActiveCalls(user string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active[user]
}

func newID() string {
	var h [24]byte
	putID(&h)
	return string(h[:])
}

// callIDHost ends the Call-IDs of the dialogs the node starts.
const callIDHost = "@callmesh"

// newCallID is a Call-ID for a dialog the node starts: a new ID at
// callIDHost, in one allocation.
func newCallID() string {
	var h [24]byte
	putID(&h)
	return string(h[:]) + callIDHost
}

// putID writes a new ID: 96 random bits in hexadecimal.
func putID(h *[24]byte) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	hex.Encode(h[:], b[:])
}

func newTag() string { return sip.GenerateTagN(16) }

// register adds a call and its caller-side dialog: errDuplicate when a
// call with the same Call-ID and From tag exists (a second INVITE, not a
// retransmission, which the transaction layer absorbs), errDraining once
// the service stops taking calls.
func (s *Service) register(c *Call) error {
	key := string(appendDialogKey(nil, c.a.callID, c.a.remoteTag))
	c.dialogKey = key
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		// Close or Drain began while the call was being looked up: it
		// would not be waited for.
		return errDraining
	}
	if _, dup := s.dialogs[key]; dup {
		return errDuplicate
	}
	s.calls[c.id] = c
	s.dialogs[key] = dialogRef{c: c, side: call.Caller}
	s.active[c.caller]++
	s.wg.Add(1) // until finish; under mu, so never after Close began waiting
	return nil
}

var (
	errDraining  = errors.New("b2bua: draining")
	errDuplicate = errors.New("b2bua: a call with this Call-ID and tag exists")
)

func (s *Service) addBranch(c *Call, b *branch) {
	s.mu.Lock()
	s.dialogs[b.callID] = dialogRef{c: c, side: call.Callee, branch: b.idx}
	s.mu.Unlock()
}

// unregister forgets a call whose dialogs are over.
func (s *Service) unregister(c *Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls[c.id] != c {
		return
	}
	delete(s.calls, c.id)
	delete(s.dialogs, c.dialogKey)
	for _, b := range c.branches {
		delete(s.dialogs, b.callID)
	}
	if s.active[c.caller]--; s.active[c.caller] <= 0 {
		delete(s.active, c.caller)
	}
}

// appendDialogKey appends the caller side's key in dialogs: the
// caller's Call-ID and tag.
func appendDialogKey(b []byte, callID, tag string) []byte {
	return append(append(append(b, callID...), ';'), tag...)
}

// lookup finds the dialog of an in-dialog request: on the caller side by
// Call-ID and the caller's tag (From of its requests), on the callee side
// by our Call-ID.
func (s *Service) lookup(req *sip.Request) (dialogRef, bool) {
	cid := req.CallID()
	if cid == nil {
		return dialogRef{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ref, ok := s.dialogs[cid.Value()]; ok {
		return ref, true
	}
	from := req.From()
	if from == nil {
		return dialogRef{}, false
	}
	tag, _ := from.Params.Get("tag")
	// Built on the stack: a map indexed by a string converted from bytes
	// does not allocate the string.
	var kb [128]byte
	ref, ok := s.dialogs[string(appendDialogKey(kb[:0], cid.Value(), tag))]
	return ref, ok
}

// prepare readies a request of the node's: a new top Via unless keepVia
// (a CANCEL shares its INVITE's), sent by the edge's host. Over UDP it
// leaves from the listening socket (the edge's transaction layer sends
// every UDP message by it), so answers come back to it and the far end
// sees the address it knows (INTEROP: a fresh ephemeral socket per
// request loses replies under load). TCP reuses the connection a contact
// registered over, or opens one; the Via's port is the connection's.
func (s *Service) prepare(req *sip.Request, transport string, keepVia bool) {
	if !keepVia {
		// Over UDP the request leaves from the edge's port: naming it here
		// spares the transport reading it back from the socket for every
		// request. A stream's is the connection's (0: filled in on sending).
		port := 0
		if !sip.IsReliable(transport) {
			port = s.contact.Port
		}
		siptx.AddVia(req, s.contact.Host, port)
	}
}

// write sends a request without a transaction: the ACK of a 2xx.
func (s *Service) write(req *sip.Request, transport string) error {
	s.prepare(req, transport, false)
	return s.txl.Write(req)
}

// requestFunc starts a client transaction for req that hands its
// responses to fn (siptx.Layer.RequestFunc).
func (s *Service) requestFunc(ctx context.Context, req *sip.Request, transport string, keepVia bool, fn siptx.FnResponse) (sip.ClientTransaction, error) {
	s.prepare(req, transport, keepVia)
	return s.txl.RequestFunc(ctx, req, fn)
}

// send sends a request whose answer changes nothing (BYE, CANCEL): its
// transaction retransmits it until answered or Timer F. Close waits for
// the answers, within its grace period.
func (s *Service) send(req *sip.Request, transport string, keepVia bool, what, id string) {
	s.requests.Add(1)
	var once sync.Once // one answer, or one error, ends the wait
	_, err := s.requestFunc(s.ctx, req, transport, keepVia, func(res *sip.Response, err error) {
		if res != nil && res.IsProvisional() {
			return
		}
		if err != nil {
			s.log.Debug(what+" unanswered", "call", id, "err", err)
		}
		once.Do(s.requests.Done)
	})
	if err != nil {
		once.Do(s.requests.Done)
		s.log.Debug(what+" not sent", "call", id, "err", err)
	}
}

// do sends req and returns its final response.
func (s *Service) do(ctx context.Context, req *sip.Request, transport string, keepVia bool) (*sip.Response, error) {
	s.prepare(req, transport, keepVia)
	return s.txl.Do(ctx, req)
}

// MediaDead is told by the relay that a call's media stopped (a
// media.DeadFunc): the call is ended on both sides with a Reason.
func (s *Service) MediaDead(sess *media.Session, side media.Side, silent time.Duration) {
	s.mu.Lock()
	c := s.calls[sess.ID()]
	s.mu.Unlock()
	if c == nil {
		return
	}
	who := call.Caller
	if side == media.B {
		who = call.Callee
	}
	s.log.Info("ending call: media stopped", "call", c.id, "side", who.String(), "silent", silent)
	c.post(event{ev: call.Event{Kind: call.MediaDead, Side: who}})
}
