package siptx

import (
	"errors"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Client transaction states (RFC 3261 §17.1, with RFC 6026's Accepted).
const (
	cCalling    uint8 = iota // INVITE: Calling; non-INVITE: Trying
	cProceeding              // a 1xx came
	cCompleted               // a final response (INVITE: 3xx–6xx) came
	cAccepted                // INVITE: a 2xx came (RFC 6026 §7.2)
)

// Client transaction timers.
const (
	timerA uint8 = iota // retransmit the request (E for a non-INVITE)
	timerB              // give up on a response (F for a non-INVITE)
	timerD              // absorb final-response retransmissions (K for a non-INVITE)
	timerM              // Accepted: pass 2xx retransmissions up, then end
	clientTimers
)

// clientTx is a client transaction. It implements sip.ClientTransaction.
type clientTx struct {
	base
	origin   *sip.Request // the request, until a final response
	invite   bool
	reliable bool

	responses chan *sip.Response

	interval   time.Duration // Timer A or E's current interval
	ack        *sip.Request
	queue      []*sip.Response // responses the TU has not taken yet
	pumping    bool            // a pump goroutine hands the queue over
	endPending bool            // terminate once the queue is handed over
	onRetrans  []sip.FnTxResponse
	onRetrans1 [1]sip.FnTxResponse // onRetrans's room for the usual one

	sink  FnResponse // RequestFunc: takes the responses instead of the channel
	final bool       // sink: a final response was handed over
}

// start arms the timers and sends the request. The timers are armed
// first: a response may be read before the write returns, and it must
// find them to stop.
func (tx *clientTx) start() error {
	tx.mu.Lock()
	tx.timers = tx.l.wheel.register(tx)
	if !tx.reliable {
		tx.interval = tx.l.cfg.T1
		tx.l.wheel.after(tx.l.cfg.T1, tx.timers, timerA, tx.gen[timerA])
	}
	tx.l.wheel.after(64*tx.l.cfg.T1, tx.timers, timerB, tx.gen[timerB])
	origin := tx.origin
	tx.mu.Unlock()
	if err := tx.l.send(tx.conn, origin); err != nil {
		return transportErr(err)
	}
	return nil
}

// receive takes a response that matched the transaction.
func (tx *clientTx) receive(res *sip.Response) {
	tx.mu.Lock()
	switch tx.state {
	case cCalling, cProceeding:
		switch {
		case res.IsProvisional():
			if tx.invite {
				// Proceeding: no retransmission, and no timeout: the TU
				// decides how long a callee may ring.
				tx.gen[timerA]++
				tx.gen[timerB]++
			} else if !tx.reliable {
				tx.interval = tx.l.cfg.T2 // Timer E at T2 (§17.1.2.2)
			}
			tx.state = cProceeding
			sink := tx.passUp(res)
			tx.mu.Unlock()
			if sink != nil {
				sink(res, nil)
			}
		case tx.invite && res.IsSuccess():
			tx.state = cAccepted
			tx.origin = nil // not retransmitted any more; see serverTx.completeLocked
			tx.gen[timerA]++
			tx.gen[timerB]++
			tx.l.wheel.after(tx.l.cfg.Wait, tx.timers, timerM, tx.gen[timerM])
			sink := tx.passUp(res)
			tx.mu.Unlock()
			if sink != nil {
				sink(res, nil)
			}
		default:
			tx.state = cCompleted
			tx.gen[timerA]++
			tx.gen[timerB]++
			var ack *sip.Request
			if tx.invite {
				ack = ackFor(tx.origin, res)
				tx.ack = ack
			}
			tx.origin = nil
			sink := tx.passUp(res)
			wait := tx.l.cfg.Wait
			if !tx.invite {
				wait = tx.l.cfg.T4
			}
			end := false
			if tx.reliable {
				end = tx.endAfterPassUp() // Timer D and K are 0
			} else {
				tx.l.wheel.after(wait, tx.timers, timerD, tx.gen[timerD])
			}
			tx.mu.Unlock()
			if sink != nil {
				sink(res, nil) // before the end, which would report an error
			}
			if ack != nil {
				tx.sendAck(ack)
			}
			if end {
				tx.terminate(nil)
			}
		}
	case cCompleted:
		ack := tx.ack
		tx.mu.Unlock()
		if ack != nil && !res.IsProvisional() {
			tx.sendAck(ack) // the final response again: ACK again
		}
	case cAccepted:
		fns := tx.onRetrans
		tx.mu.Unlock()
		if res.IsSuccess() && len(fns) > 0 {
			// Off the transport's reader: the TU's callback may block.
			tx.l.workers.Go(func() {
				for _, f := range fns {
					f(res)
				}
			})
		}
	default:
		tx.mu.Unlock()
	}
}

// passUp hands a response to the TU in order, without blocking the
// transport's reader: straight to a TU waiting on Responses, else onto a
// queue a pump goroutine hands over. The channel is unbuffered, so a
// response is taken before the transaction ends (endAfterPassUp), as the
// TU expects: Done never wins a race against the final response. A
// transaction of RequestFunc's returns its function instead, for the
// caller to call once mu is released. Called with mu held.
func (tx *clientTx) passUp(res *sip.Response) FnResponse {
	if tx.sink != nil {
		if !res.IsProvisional() {
			tx.final = true
		}
		return tx.sink
	}
	if !tx.pumping {
		select {
		case tx.responses <- res:
			return nil
		default:
		}
	}
	tx.queue = append(tx.queue, res)
	if !tx.pumping {
		tx.pumping = true
		go tx.pump()
	}
	return nil
}

// ended tells a RequestFunc transaction's function why it ended without
// a final response; a TU that ended it itself is not told.
func (tx *clientTx) ended(err error) {
	tx.mu.Lock()
	sink, final := tx.sink, tx.final
	tx.mu.Unlock()
	if sink != nil && !final && !errors.Is(err, sip.ErrTransactionCanceled) {
		sink(nil, err)
	}
}

// endAfterPassUp reports whether the transaction may end now; otherwise
// the pump ends it when the TU has taken every response. Called with mu
// held.
func (tx *clientTx) endAfterPassUp() bool {
	if tx.pumping {
		tx.endPending = true
		return false
	}
	return true
}

func (tx *clientTx) pump() {
	for {
		tx.mu.Lock()
		if len(tx.queue) == 0 {
			tx.pumping = false
			end := tx.endPending
			tx.mu.Unlock()
			if end {
				tx.terminate(nil)
			}
			return
		}
		res := tx.queue[0]
		tx.queue = tx.queue[1:]
		done := tx.doneLocked()
		tx.mu.Unlock()
		select {
		case tx.responses <- res:
		case <-done:
			tx.mu.Lock()
			tx.queue, tx.pumping = nil, false
			tx.mu.Unlock()
			return
		}
	}
}

func (tx *clientTx) fire(kind uint8, gen uint32) {
	tx.mu.Lock()
	if tx.gen[kind] != gen || tx.state == terminated {
		tx.mu.Unlock()
		return
	}
	switch kind {
	case timerA:
		if tx.state != cCalling && (tx.invite || tx.state != cProceeding) {
			tx.mu.Unlock()
			return
		}
		tx.interval *= 2
		if !tx.invite || tx.state == cProceeding {
			tx.interval = min(tx.interval, tx.l.cfg.T2) // Timer E is capped
		}
		tx.gen[timerA]++
		tx.l.wheel.after(tx.interval, tx.timers, timerA, tx.gen[timerA])
		origin := tx.origin
		tx.mu.Unlock()
		if err := tx.l.send(tx.conn, origin); err != nil {
			tx.terminate(transportErr(err))
		}
		return
	case timerB:
		waiting := tx.state == cCalling || (!tx.invite && tx.state == cProceeding)
		tx.mu.Unlock()
		if waiting {
			tx.terminate(sip.ErrTransactionTimeout)
		}
		return
	}
	tx.mu.Unlock()
	tx.terminate(nil) // D, K, M: the wait is over
}

// Terminate ends the transaction: later responses are not passed up.
func (tx *clientTx) Terminate() { tx.terminate(sip.ErrTransactionCanceled) }

// Responses gives the responses in order; nil for a transaction of
// RequestFunc's, whose function takes them.
func (tx *clientTx) Responses() <-chan *sip.Response { return tx.responses }

func (tx *clientTx) OnRetransmission(f sip.FnTxResponse) bool {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.state == terminated {
		return false
	}
	if tx.onRetrans == nil {
		tx.onRetrans = tx.onRetrans1[:0]
	}
	tx.onRetrans = append(tx.onRetrans, f)
	return true
}

// sendAck sends the ACK of a 3xx–6xx where the INVITE went (§17.1.1.3):
// on the transaction's connection when the INVITE's destination is an
// address; a name is resolved again, off the transport's reader.
func (tx *clientTx) sendAck(ack *sip.Request) {
	if _, ok := address(ack.Destination()); ok {
		if err := tx.l.send(tx.conn, ack); err != nil {
			tx.l.cfg.Log.Debug("ACK not sent", "err", err)
		}
		return
	}
	tx.l.workers.Go(func() {
		if err := tx.l.Write(ack); err != nil {
			tx.l.cfg.Log.Debug("ACK not sent", "err", err)
		}
	})
}

// ackFor builds the ACK of a 3xx–6xx response to an INVITE (RFC 3261
// §17.1.1.3): the INVITE's Request-URI, Call-ID, From, top Via and Route
// set, the response's To (with its tag), and the INVITE's CSeq number.
func ackFor(inv *sip.Request, res *sip.Response) *sip.Request {
	ack := sip.NewRequest(sip.ACK, *inv.Recipient.Clone())
	ack.SipVersion = inv.SipVersion
	if v := inv.Via(); v != nil {
		ack.AppendHeader(v.Clone())
	}
	sip.CopyHeaders("Route", inv, ack)
	maxf := sip.MaxForwardsHeader(70)
	ack.AppendHeader(&maxf)
	if h := inv.From(); h != nil {
		ack.AppendHeader(sip.HeaderClone(h))
	}
	if h := res.To(); h != nil {
		ack.AppendHeader(sip.HeaderClone(h))
	}
	if h := inv.CallID(); h != nil {
		ack.AppendHeader(sip.HeaderClone(h))
	}
	if h := inv.CSeq(); h != nil {
		ack.AppendHeader(&sip.CSeqHeader{SeqNo: h.SeqNo, MethodName: sip.ACK})
	}
	ack.SetBody(nil)
	ack.SetTransport(inv.Transport())
	ack.SetDestination(inv.Destination())
	ack.Laddr = inv.Laddr
	return ack
}
