package sim

import (
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/callmesh/callmesh/node/digest"
)

// authorize checks the Proxy-Authorization of an INVITE to a trunk (RFC
// 3261 §22.3, RFC 7616): without valid credentials it answers 407 with an
// MD5 challenge (stale=true for a stale nonce), 403 for wrong ones, 400 for
// malformed ones.
func (p *Provider) authorize(inv *invite) bool {
	req, realm := inv.req, p.cfg.Auth.Realm
	var resp digest.Response
	found := false
	for _, h := range req.GetHeaders("Proxy-Authorization") {
		r, err := digest.ParseResponse(h.Value())
		if err != nil {
			inv.fail(sip.StatusBadRequest, "Bad Request (Proxy-Authorization)")
			return false
		}
		if r.Realm == realm {
			resp, found = r, true
			break
		}
	}
	if !found {
		p.challenge(inv, false)
		return false
	}
	var u sip.Uri
	if err := sip.ParseUri(resp.URI, &u); err != nil || !sameTarget(u, req.Recipient) {
		inv.fail(sip.StatusBadRequest, "Bad Request (digest uri is not the Request-URI)")
		return false
	}
	creds := digest.Credentials{} // an unknown user costs the same as a wrong password
	if resp.Username == p.cfg.Auth.Username {
		creds = p.creds
	}
	switch res, _ := p.nonces.Verify(string(req.Method), resp, creds, realm, time.Now()); res {
	case digest.OK:
		return true
	case digest.Stale:
		p.challenge(inv, true)
	case digest.Replay:
		p.challenge(inv, false)
	default:
		inv.fail(sip.StatusForbidden, "Forbidden")
	}
	return false
}

// sameTarget compares the digest uri with the Request-URI (RFC 7616 §3.4):
// user, host and port; clients differ on whether they keep parameters.
func sameTarget(a, b sip.Uri) bool {
	return a.User == b.User && strings.EqualFold(a.Host, b.Host) && a.Port == b.Port
}

// challenge answers 407 with an MD5 digest challenge (RFC 3261 §22.3).
func (p *Provider) challenge(inv *invite, stale bool) {
	c := digest.Challenge{Realm: p.cfg.Auth.Realm, Nonce: p.nonces.New(time.Now()), Algorithm: digest.MD5, QOP: "auth", Stale: stale}
	inv.fail(sip.StatusProxyAuthRequired, "Proxy Authentication Required", sip.NewHeader("Proxy-Authenticate", c.String()))
}
