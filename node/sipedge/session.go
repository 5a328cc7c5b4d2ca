package sipedge

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/callmesh/callmesh/node/accounts"
	"github.com/emiago/sipgo/sip"
)

// SessionKind classifies the Request-URI of a request that starts a
// session: a number (digits with an optional '+', visual separators
// removed) is an external call; anything else a call to a user.
func SessionKind(u sip.Uri) accounts.Request {
	user := strings.Map(func(r rune) rune {
		switch r {
		case '-', '.', '(', ')', ' ':
			return -1
		}
		return r
	}, u.User)
	if isNumber(user) {
		return accounts.Request{Kind: accounts.KindExternal, Destination: user}
	}
	return accounts.Request{Kind: accounts.KindP2P}
}

func isNumber(s string) bool {
	s = strings.TrimPrefix(s, "+")
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// onInvite authenticates a session-starting request with a 407 challenge
// (RFC 3261 §22.3) and checks the caller's rights. Call control is not
// part of this edge yet: an authorized INVITE is answered 501.
func (s *Server) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	user, ok, _ := s.authGate(ctx, req, tx, time.Now())
	if !ok {
		return
	}
	if from := req.From(); from == nil || from.Address.User != user {
		s.reply(req, tx, sip.StatusForbidden, "Forbidden (From is not the authenticated user)")
		return
	}
	err := s.accounts.Permit(ctx, user, SessionKind(req.Recipient))
	var pe *accounts.PermitError
	switch {
	case errors.As(err, &pe):
		s.m.denied.Inc()
		s.reply(req, tx, sip.StatusForbidden, SanitizeReason("Forbidden ("+pe.Error()+")"))
		return
	case err != nil:
		s.reply(req, tx, sip.StatusServiceUnavailable, "Service Unavailable (account not reachable)", sip.NewHeader("Retry-After", "30"))
		return
	}
	s.reply(req, tx, sip.StatusNotImplemented, "Not Implemented (calls are not available yet)")
}
