package sipedge

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/callmesh/callmesh/node/accounts"
	"github.com/callmesh/callmesh/node/siptx"
	"github.com/callmesh/callmesh/node/sipwire"
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
// (RFC 3261 §22.3), checks the caller's rights and hands the call to the
// calls; a request within a dialog goes to the calls directly.
//
// It runs on the transport's reader (onReader), as far as it can go
// without waiting on the network: the accounts and the calls answer from
// what they hold, or say they would wait (ErrWouldWait, Calls.Invite's
// quick). From that step on, the rest goes to a goroutine that may wait
// (siptx.Defer). Handing every INVITE to another goroutine cost about 3 %
// of a node's CPU per call; most INVITEs need nothing from the network.
func (s *Server) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if hasToTag(req) {
		// A re-INVITE: re-anchoring may wait.
		siptx.Defer(tx, func() { s.onInDialog(req, tx) })
		return
	}
	s.invite(s.quick, req, tx)
}

// invite is onInvite's initial INVITE, on ctx: s.quick on the reader, or
// a context that may wait.
func (s *Server) invite(ctx context.Context, req *sip.Request, tx sip.ServerTransaction) {
	if token := SessionToken(req); token != "" && s.sessions != nil {
		// A call entering from a provider on a path the session's master
		// chose: the token is its authorization, valid once.
		from := req.From()
		if from == nil || from.Address.User == "" {
			s.reply(req, tx, sip.StatusBadRequest, "Bad Request (From without a user)")
			return
		}
		session, hops, slas, err := s.sessions.Admit(token, req.Recipient.User)
		if err != nil {
			s.m.denied.Inc()
			s.reply(req, tx, sip.StatusForbidden, SanitizeReason("Forbidden ("+err.Error()+")"))
			return
		}
		s.startCall(ctx, req, tx, Caller{User: from.Address.User, Session: session, Hops: hops, SLAs: slas})
		return
	}
	if s.trusted(req) {
		from := req.From()
		if from == nil || from.Address.User == "" {
			s.reply(req, tx, sip.StatusBadRequest, "Bad Request (From without a user)")
			return
		}
		// Not authenticated, but still authorized: a trusted caller who has
		// an account keeps its rights; an unknown one is a trunk's caller.
		s.authorize(ctx, req, tx, Caller{User: from.Address.User, Trusted: true})
		return
	}
	user, ok, outcome := s.authGate(ctx, req, tx, time.Now())
	if outcome == outcomeWait {
		// Nothing was answered, and no nonce used: start again where
		// the account may be fetched.
		siptx.Defer(tx, func() { s.invite(s.ctx, req, tx) })
		return
	}
	if !ok {
		return
	}
	if from := req.From(); from == nil || from.Address.User != user {
		s.reply(req, tx, sip.StatusForbidden, "Forbidden (From is not the authenticated user)")
		return
	}
	s.authorize(ctx, req, tx, Caller{User: user})
}

// authorize checks the caller's rights (403 naming the missing one; 503
// when the account cannot be read) and starts the call with the account's
// limits. A trusted caller without an account passes.
func (s *Server) authorize(ctx context.Context, req *sip.Request, tx sip.ServerTransaction, caller Caller) {
	lim, err := s.accounts.Permit(ctx, caller.User, SessionKind(req.Recipient))
	if err != nil {
		// Declared here: errors.As moves pe to the heap, which a permitted
		// call need not pay for.
		var pe *accounts.PermitError
		switch {
		case errors.Is(err, ErrWouldWait):
			siptx.Defer(tx, func() { s.authorize(s.ctx, req, tx, caller) })
			return
		case caller.Trusted && errors.As(err, &pe) && pe.Missing == "account":
		case errors.As(err, &pe):
			s.m.denied.Inc()
			s.reply(req, tx, sip.StatusForbidden, SanitizeReason("Forbidden ("+pe.Error()+")"))
			return
		default:
			s.reply(req, tx, sip.StatusServiceUnavailable, "Service Unavailable (account not reachable)", sip.NewHeader("Retry-After", "30"))
			return
		}
	}
	caller.Limits = lim
	s.startCall(ctx, req, tx, caller)
}

func (s *Server) startCall(ctx context.Context, req *sip.Request, tx sip.ServerTransaction, caller Caller) {
	if s.calls == nil {
		s.reply(req, tx, sip.StatusNotImplemented, "Not Implemented (no call handling on this edge)")
		return
	}
	if !s.calls.Invite(req, tx, caller, !MayWait(ctx)) {
		siptx.Defer(tx, func() { s.calls.Invite(req, tx, caller, false) })
	}
}

// ErrWouldWait is what an Accounts method answers, on a context made by
// NoWait, instead of waiting on the network for an account it does not
// hold. Nothing has been done: the caller asks again where it may wait.
var ErrWouldWait = errors.New("sipedge: the answer would wait on the network")

type noWaitKey struct{}

// NoWait marks ctx for calls that must not wait on the network (see
// ErrWouldWait): the edge's reader handles INVITEs on it.
func NoWait(ctx context.Context) context.Context { return context.WithValue(ctx, noWaitKey{}, true) }

// MayWait reports whether a call on ctx may wait on the network.
func MayWait(ctx context.Context) bool { return ctx.Value(noWaitKey{}) == nil }

// TokenParam is the URI parameter that carries a federation session token.
const TokenParam = "cmtoken"

// SessionToken returns the session token an initial INVITE carries, on one
// of its Route URIs (the egress node's, last of a preloaded route set) or on
// its Request-URI (behind a trunk that routes on it); "" without one.
func SessionToken(req *sip.Request) string {
	for h := range sipwire.Headers(req, "Route") {
		if rh, ok := h.(*sip.RouteHeader); ok {
			if v, ok := rh.Address.UriParams.Get(TokenParam); ok && v != "" {
				return v
			}
		}
	}
	if v, ok := req.Recipient.UriParams.Get(TokenParam); ok {
		return v
	}
	return ""
}
