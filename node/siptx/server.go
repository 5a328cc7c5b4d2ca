package siptx

import (
	"errors"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/callmesh/callmesh/node/sipwire"
)

// Server transaction states (RFC 3261 §17.2, with RFC 6026's Accepted).
const (
	sTrying     uint8 = iota // non-INVITE: no response yet
	sProceeding              // INVITE from the start; non-INVITE after a 1xx
	sCompleted               // a final response (INVITE: 3xx–6xx) was sent
	sAccepted                // INVITE: a 2xx was sent (RFC 6026 §7.1)
	sConfirmed               // INVITE: the ACK of a 3xx–6xx came
)

// Server transaction timers.
const (
	timerG   uint8 = iota // retransmit a 3xx–6xx to an INVITE (UDP)
	timerH                // give up waiting for that ACK
	timerI                // absorb ACK retransmissions, then end
	timerJ                // absorb request retransmissions (non-INVITE), then end
	timerL                // Accepted: absorb INVITE retransmissions, then end
	timer1xx              // send 100 Trying when the TU has not answered in 200 ms
	serverTimers
)

// ErrTerminated is returned by Respond once the transaction has ended.
var ErrTerminated = errors.New("siptx: transaction terminated")

// serverTx is a server transaction. It implements sip.ServerTransaction.
type serverTx struct {
	base
	origin   *sip.Request // the request, until a final response (kept no longer: see dropOrigin)
	invite   bool
	reliable bool

	last      *sip.Response // the response retransmitted on a retransmitted request
	final     wire          // in place of last once Completed, over UDP (wireOf)
	interval  time.Duration // Timer G's current interval
	cancelled bool          // a CANCEL came and was acted on
	acks      chan *sip.Request
	ack       *sip.Request // the ACK, kept for an Acks asked for later
	onCancel  sip.FnTxCancel
	kept      int // holds by Keep not released: the TU answers after its handler returns
}

func newServerTx(l *Layer, key string, req *sip.Request, conn sip.Connection) *serverTx {
	tx := &serverTx{base: base{key: key, l: l, conn: conn, server: true}, origin: req, invite: req.IsInvite(),
		reliable: sip.IsReliable(req.Transport())}
	if tx.invite {
		tx.state = sProceeding
	}
	return tx
}

// started registers the transaction's timers once it is stored, and arms
// an INVITE's 100 Trying.
func (tx *serverTx) started() {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.state == terminated {
		return // the layer closed meanwhile
	}
	tx.timers = tx.l.wheel.register(tx)
	if tx.invite {
		tx.l.wheel.after(tx.l.cfg.Trying, tx.timers, timer1xx, 0)
	}
}

// receive takes a retransmission of the request, or an ACK of a 3xx–6xx;
// false for an ACK that is not the transaction's: the ACK of its 2xx from
// a peer that reused the INVITE's branch, which is the TU's.
func (tx *serverTx) receive(req *sip.Request) bool {
	tx.mu.Lock()
	if req.IsAck() {
		if tx.state == sAccepted {
			tx.mu.Unlock()
			return false
		}
		if tx.state != sCompleted {
			tx.mu.Unlock()
			return true // absorbed (RFC 3261 §17.2.1: Confirmed absorbs ACKs)
		}
		tx.state = sConfirmed
		tx.gen[timerG]++
		tx.gen[timerH]++
		tx.ack = req
		acks := tx.acks
		if tx.reliable {
			tx.mu.Unlock()
			tx.terminate(nil)
		} else {
			tx.l.wheel.after(tx.l.cfg.T4, tx.timers, timerI, tx.gen[timerI])
			tx.mu.Unlock()
		}
		if acks != nil {
			select {
			case acks <- req:
			default:
			}
		}
		return true
	}
	tx.l.stats.retransmissions.Add(1)
	var res *sip.Response
	var final wire
	switch tx.state {
	case sProceeding, sCompleted:
		res, final = tx.last, tx.final // the last provisional, or the final one
	}
	tx.mu.Unlock()
	_ = tx.resend(res, final)
	return true
}

// cancel handles a CANCEL that matched this INVITE: unless a final
// response went out, the INVITE is answered 487 and the TU told.
func (tx *serverTx) cancel(req *sip.Request) {
	tx.mu.Lock()
	if tx.state != sProceeding || tx.cancelled {
		tx.mu.Unlock()
		return
	}
	// The same To tag as the provisional responses (RFC 3261 §8.2.6.2).
	tag := ""
	if tx.last != nil {
		if to := tx.last.To(); to != nil {
			tag, _ = to.Params.Get("tag")
		}
	}
	res := sipwire.Response(tx.origin, sip.StatusRequestTerminated, "Request Terminated", tag)
	// The 487 is the transaction's final response from here on, before
	// the TU hears of the CANCEL: whatever the TU then sends or does
	// (answer, return from its handler) cannot lose it.
	tx.cancelled = true
	tx.err = sip.ErrTransactionCanceled
	f := tx.onCancel // before completeLocked lets it go
	tx.completeLocked(res)
	final := tx.final
	tx.mu.Unlock()
	if err := tx.resend(res, final); err != nil {
		tx.terminate(transportErr(err))
	}
	if f != nil {
		f(req)
	}
}

// Respond sends a response, and moves the transaction on by its class.
func (tx *serverTx) Respond(res *sip.Response) error { return tx.respond(res, false) }

// respond is Respond; byLayer marks the layer's own 100 Trying (sent when
// the TU is slow), which gives way to the TU's provisional responses.
func (tx *serverTx) respond(res *sip.Response, byLayer bool) error {
	tx.mu.Lock()
	switch {
	case tx.state == terminated:
		tx.mu.Unlock()
		return ErrTerminated
	case byLayer && res.StatusCode == sip.StatusTrying && (tx.state != sProceeding || tx.last != nil):
		tx.mu.Unlock()
		return nil // the TU answered first
	case tx.cancelled && !byLayer && !res.IsProvisional():
		tx.mu.Unlock()
		return sip.ErrTransactionCanceled // the layer answered 487
	}
	tx.gen[timer1xx]++
	switch {
	case res.IsProvisional():
		if tx.state != sTrying && tx.state != sProceeding {
			tx.mu.Unlock()
			return nil // too late for a provisional: dropped
		}
		tx.state = sProceeding
		tx.last = res
	case tx.invite && res.IsSuccess():
		switch tx.state {
		case sProceeding:
			tx.state = sAccepted
			tx.last = nil
			tx.origin = nil
			tx.onCancel = nil // too late for a CANCEL; the TU's callback is not kept
			tx.l.wheel.after(tx.l.cfg.Wait, tx.timers, timerL, tx.gen[timerL])
		case sAccepted:
			// The TU retransmits its 2xx through the transaction
			// (RFC 6026 §7.1).
		default:
			tx.mu.Unlock()
			return nil
		}
	default: // a final response
		if tx.state != sTrying && tx.state != sProceeding {
			tx.mu.Unlock()
			return nil // a second final response: the first stands
		}
		if !tx.completeLocked(res) {
			tx.mu.Unlock()
			err := tx.l.send(tx.conn, res)
			tx.terminate(nil)
			return transportErr(err)
		}
	}
	final := tx.final
	tx.mu.Unlock()
	if err := tx.resend(res, final); err != nil {
		err = transportErr(err)
		tx.terminate(err)
		return err
	}
	return nil
}

// completeLocked moves the transaction to Completed with its final
// response res, drops the request and the TU's OnCancel, and arms its
// timers. (A transaction
// waiting out its retransmissions needs its last response only: under
// call load those waits hold tens of thousands of transactions, and the
// request's parsed headers and body were most of a node's heap.) Timers: G and H for an INVITE (G over UDP
// only), J for a non-INVITE over UDP. It returns false for a non-INVITE
// over a reliable transport, which ends once res is sent (Timer J is 0).
// Called with mu held.
func (tx *serverTx) completeLocked(res *sip.Response) bool {
	tx.state = sCompleted
	tx.last = res
	if w, ok := wireOf(tx.conn, res); ok {
		tx.last, tx.final = nil, w
	}
	tx.origin = nil
	tx.onCancel = nil
	switch {
	case tx.invite:
		if !tx.reliable {
			tx.interval = tx.l.cfg.T1
			tx.l.wheel.after(tx.l.cfg.T1, tx.timers, timerG, tx.gen[timerG])
		}
		tx.l.wheel.after(64*tx.l.cfg.T1, tx.timers, timerH, tx.gen[timerH])
	case !tx.reliable:
		tx.l.wheel.after(tx.l.cfg.Wait, tx.timers, timerJ, tx.gen[timerJ])
	default:
		return false
	}
	return true
}

func (tx *serverTx) fire(kind uint8, gen uint32) {
	tx.mu.Lock()
	if tx.gen[kind] != gen || tx.state == terminated {
		tx.mu.Unlock()
		return
	}
	switch kind {
	case timer1xx:
		if tx.state != sProceeding || tx.last != nil {
			tx.mu.Unlock()
			return
		}
		origin := tx.origin
		tx.mu.Unlock()
		// Off the wheel's goroutine: a TCP write may block.
		tx.l.workers.Go(func() {
			_ = tx.respond(sipwire.Response(origin, sip.StatusTrying, "Trying", ""), true)
		})
		return
	case timerG:
		if tx.state != sCompleted {
			tx.mu.Unlock()
			return
		}
		tx.interval = min(2*tx.interval, tx.l.cfg.T2)
		tx.gen[timerG]++
		tx.l.wheel.after(tx.interval, tx.timers, timerG, tx.gen[timerG])
		res, final := tx.last, tx.final
		tx.mu.Unlock()
		_ = tx.resend(res, final)
		return
	case timerH:
		tx.mu.Unlock()
		tx.terminate(sip.ErrTransactionTimeout)
		return
	}
	tx.mu.Unlock()
	tx.terminate(nil) // I, J, L: the wait is over
}

// handled is called when the TU's handler returned. A transaction left
// without a final response ends: the TU will not answer it any more. Over
// a reliable transport a finished one ends too: nothing is retransmitted.
// An unreliable one with its final response stays for its timers.
func (tx *serverTx) handled() {
	tx.mu.Lock()
	final := tx.state == sCompleted || tx.state == sAccepted || tx.state == sConfirmed
	kept := tx.kept > 0
	tx.mu.Unlock()
	if !kept && (!final || tx.reliable) {
		tx.terminate(nil)
	}
}

// Keep tells a server transaction of this layer that its TU answers it
// after the handler has returned, so that the handler need not hold a
// goroutine while a callee rings. The TU calls release once it has sent
// its final response, or gave up: from then on it is as if the handler
// had just returned. ok is false for a transaction of another layer.
// Holds add up: the transaction is handled once every one is released.
// Each release is to be called once.
func Keep(tx sip.ServerTransaction) (release func(), ok bool) {
	st, ok := tx.(*serverTx)
	if !ok {
		return nil, false
	}
	st.mu.Lock()
	st.kept++
	st.mu.Unlock()
	return func() {
		st.mu.Lock()
		if st.kept > 0 {
			st.kept--
		}
		st.mu.Unlock()
		st.handled()
	}, true
}

// Keepable reports whether tx is of this layer: one Keep and Defer take.
func Keepable(tx sip.ServerTransaction) bool {
	_, ok := tx.(*serverTx)
	return ok
}

// Defer hands the rest of a request's handling to a goroutine that may
// wait: f runs on one of the layer's workers, and the transaction counts
// as handled (as when a handler returns) once f has returned. A handler
// run on the transport's reader (Config.Inline) calls it where it would
// otherwise wait on the network. Should the layer be closing, f does not
// run and the transaction ends unanswered. For a transaction of another
// layer f runs at once, on the caller's goroutine.
func Defer(tx sip.ServerTransaction, f func()) {
	st, ok := tx.(*serverTx)
	if !ok {
		f()
		return
	}
	release, _ := Keep(tx)
	if !st.l.workers.Go(func() { f(); release() }) {
		release()
	}
}

func (tx *serverTx) Terminate() { tx.terminate(nil) }

// Acks gives the ACK of a 3xx–6xx response, if the TU wants it (a 2xx's
// ACK is a request of its own, given to the handler).
func (tx *serverTx) Acks() <-chan *sip.Request {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.acks == nil {
		tx.acks = make(chan *sip.Request, 1)
		if tx.ack != nil {
			tx.acks <- tx.ack
		}
	}
	return tx.acks
}

// OnCancel registers f for a CANCEL of this INVITE; false once the
// transaction can no longer be cancelled (it ended, or a CANCEL already
// came and was answered).
func (tx *serverTx) OnCancel(f sip.FnTxCancel) bool {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.state == terminated || tx.cancelled {
		return false
	}
	if prev := tx.onCancel; prev != nil {
		tx.onCancel = func(r *sip.Request) { prev(r); f(r) }
	} else {
		tx.onCancel = f
	}
	return true
}

// resend sends the final response kept as it went out, or else res, if
// any.
func (tx *serverTx) resend(res *sip.Response, final wire) error {
	switch {
	case final.b != nil:
		return tx.l.sendWire(final)
	case res != nil:
		return tx.l.send(tx.conn, res)
	}
	return nil
}
