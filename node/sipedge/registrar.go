package sipedge

import (
	"context"
	"strconv"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/callmesh/callmesh/node/sipwire"
)

// onRegister is the registrar (RFC 3261 §10.3).
func (s *Server) onRegister(req *sip.Request, tx sip.ServerTransaction) {
	now := time.Now()
	// §10.3 step 1: is the Request-URI's domain ours?
	if !s.ourHost(req.Recipient.Host) {
		s.m.registers.WithLabelValues("domain").Inc()
		s.reply(req, tx, sip.StatusForbidden, "Forbidden (domain not served here)")
		return
	}
	to := req.To()
	if to == nil || to.Address.User == "" {
		s.reply(req, tx, sip.StatusBadRequest, "To header without a user")
		return
	}
	if !s.ourHost(to.Address.Host) {
		s.m.registers.WithLabelValues("domain").Inc()
		s.reply(req, tx, sip.StatusNotFound, "Not Found (address not in this domain)")
		return
	}

	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	// §10.3 steps 2–3 and §22.2: authenticate.
	user, ok, outcome := s.authGate(ctx, req, tx, now)
	if !ok {
		s.m.registers.WithLabelValues(outcome).Inc()
		return
	}
	// §10.3 step 3: the authenticated user may register only their own AOR.
	if user != to.Address.User {
		s.m.registers.WithLabelValues("forbidden").Inc()
		s.reply(req, tx, sip.StatusForbidden, "Forbidden (may not register another user's address)")
		return
	}
	aor := user + "@" + s.cfg.Domain

	unlock := s.locks.lock(aor)
	existing, err := s.bindings.Load(aor)
	if err != nil {
		unlock()
		s.log.Error("bindings not loaded", "aor", aor, "err", err)
		s.reply(req, tx, sip.StatusInternalServerError, "Server Internal Error (registrations unavailable)")
		return
	}
	out := ApplyRegister(req, aor, existing, s.cfg.Policy, Meta{Source: req.Source(), Transport: req.Transport()}, now)
	if out.Code == sip.StatusOK && out.Changed {
		if err := s.bindings.Save(aor, out.Bindings); err != nil {
			unlock()
			s.log.Error("bindings not saved", "aor", aor, "err", err)
			s.reply(req, tx, sip.StatusInternalServerError, "Server Internal Error (registrations unavailable)")
			return
		}
	}
	unlock()
	if out.Code != sip.StatusOK {
		s.m.registers.WithLabelValues("refused").Inc()
		var hdrs []sip.Header
		if out.Code == sip.StatusIntervalToBrief {
			hdrs = append(hdrs, sip.NewHeader("Min-Expires", strconv.Itoa(out.MinExpires)))
		}
		s.reply(req, tx, out.Code, out.Reason, hdrs...)
		return
	}
	if out.Changed && s.locator != nil {
		s.locator.Changed(aor, out.Bindings)
	}
	s.m.registers.WithLabelValues("ok").Inc()
	// §10.3 step 8: 200 OK listing every current binding with its expiry.
	resp := sipwire.Response(req, sip.StatusOK, "OK", "")
	for _, b := range out.Bindings {
		resp.AppendHeader(contactHeader(b, now))
	}
	resp.AppendHeader(sip.NewHeader("Date", now.UTC().Format(time.RFC1123)))
	s.respond(tx, resp)
}

// contactHeader renders a binding for a 200 OK: its registered Contact with
// expires set to the remaining lifetime.
func contactHeader(b Binding, now time.Time) sip.Header {
	var uri sip.Uri
	params := sip.NewParams()
	if _, err := sip.ParseAddressValue(b.Contact, &uri, &params); err != nil {
		return sip.NewHeader("Contact", "<"+b.URI+">;expires="+strconv.Itoa(b.Remaining(now)))
	}
	if params == nil {
		params = sip.NewParams()
	}
	params.Add("expires", strconv.Itoa(b.Remaining(now)))
	return &sip.ContactHeader{Address: uri, Params: params}
}
