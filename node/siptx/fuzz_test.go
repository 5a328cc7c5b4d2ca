package siptx

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// FuzzLayer feeds parsed messages of any shape through the layer as if
// read from the stack's own listener (its answers come back to it as
// responses): no message may panic it, whatever its Via, CSeq, branch or
// method.
func FuzzLayer(f *testing.F) {
	for _, seed := range []string{
		request("INVITE", "z9hG4bK-f1", "127.0.0.1:5060", 1),
		request("OPTIONS", "z9hG4bK-f2", "127.0.0.1:5060", 2),
		request("CANCEL", "z9hG4bK-f1", "127.0.0.1:5060", 1),
		request("ACK", "z9hG4bK-f1", "127.0.0.1:5060", 1),
		request("BYE", "old-2543-branch", "127.0.0.1:5060", 3),
		strings.Replace(request("INFO", "z9hG4bK-f3", "127.0.0.1:5060", 4), "Via: ", "X-Via: ", 1),
		answer(request("INVITE", "z9hG4bK-f4", "127.0.0.1:5060", 5), 180, "Ringing", "t"),
		answer(request("INVITE", "z9hG4bK-f4", "127.0.0.1:5060", 5), 200, "OK", "t"),
		"SIP/2.0 486 Busy\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
	} {
		f.Add(seed)
	}
	s := newStack(f, func(req *sip.Request, tx sip.ServerTransaction) {
		switch req.Method {
		case sip.ACK:
		case sip.INVITE:
			_ = tx.Respond(sip.NewResponseFromRequest(req, 180, "Ringing", nil))
			_ = tx.Respond(sip.NewResponseFromRequest(req, 486, "Busy Here", nil))
		default:
			_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		}
	})
	f.Fuzz(func(t *testing.T, data string) {
		msg, err := sip.ParseMessage([]byte(data))
		if err != nil {
			return
		}
		msg.SetTransport("UDP")
		msg.SetSource(s.addr)
		s.l.Receive(msg)
	})
}
