package b2bua

import (
	"github.com/emiago/sipgo/sip"
)

// ackStray ACKs a 2xx to one of the node's INVITEs that came after the
// call that sent the INVITE was forgotten. A callee retransmits its 2xx
// until an ACK comes (RFC 3261 §13.3.1.4), and a UAC's core ACKs every 2xx
// it receives, whether or not its transaction or dialog still exists
// (§13.2.2.4). While a call lives its branch's transaction hands such a
// retransmission to the call, which ACKs it; once the call has ended, its
// BYE is on its way, but a callee whose first ACK was lost would otherwise
// go on retransmitting until its Timer H, and count the call as failed.
//
// The ACK is built from the 2xx alone, as the dialog it would have come
// from is (§12.1.2): Request-URI the 2xx's Contact, the route set its
// Record-Route reversed, From, To and Call-ID as in the 2xx, the INVITE's
// CSeq number. It goes back to the address the 2xx came from, where the
// node sends all of a dialog's requests: never to an address a response
// merely names, so a forged 2xx cannot aim the node at a third party.
// Other stray responses need nothing: a non-2xx final response is ACKed
// by its transaction, which absorbs its retransmissions.
func (s *Service) ackStray(res *sip.Response) {
	cseq, from, to, callID, contact := res.CSeq(), res.From(), res.To(), res.CallID(), res.Contact()
	if !res.IsSuccess() || cseq == nil || cseq.MethodName != sip.INVITE ||
		from == nil || to == nil || callID == nil || contact == nil || res.Source() == "" {
		return
	}
	localTag, _ := from.Params.Get("tag")
	remoteTag, _ := to.Params.Get("tag")
	if localTag == "" || remoteTag == "" {
		return // a 2xx without both tags makes no dialog to acknowledge
	}
	l := leg{
		callID: callID.Value(), localTag: localTag, remoteTag: remoteTag,
		localURI: from.Address, remoteURI: to.Address, remoteTarget: contact.Address,
		routes: routeSet(res, true), dest: res.Source(), transport: res.Transport(),
	}
	ack := l.request(sip.ACK, cseq.SeqNo, s.contact)
	if err := s.write(ack, l.transport); err != nil {
		s.log.Debug("ACK of a stray 2xx not sent", "call_id", l.callID, "err", err)
		return
	}
	s.Counters.StrayAcked.Add(1)
}
