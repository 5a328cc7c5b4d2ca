package sim

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// The routing decisions of the provider, without I/O. Route and
// Record-Route values are kept as the text received (the provider's parser
// leaves them unparsed) so that values of other hops, with parameters such
// as cmtoken, are forwarded byte for byte.

// routeEntry is one Route or Record-Route value: its text as received and
// its URI as parsed for decisions.
type routeEntry struct {
	raw string
	uri sip.Uri
}

// headerer is what requests and responses share for header editing.
type headerer interface {
	Headers() []sip.Header
	GetHeaders(name string) []sip.Header
	RemoveHeader(name string) bool
}

// splitValues splits a header value at the commas that separate values
// (RFC 3261 §7.3.1), not at commas inside <...> or quoted strings.
func splitValues(s string) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == '<' && !quoted:
			depth++
		case c == '>' && !quoted && depth > 0:
			depth--
		case c == ',' && !quoted && depth == 0:
			if v := strings.TrimSpace(s[start:i]); v != "" {
				out = append(out, v)
			}
			start = i + 1
		}
	}
	if v := strings.TrimSpace(s[start:]); v != "" {
		out = append(out, v)
	}
	return out
}

// routeEntries reads every value of the Route or Record-Route headers of m,
// in order.
func routeEntries(m headerer, name string) ([]routeEntry, error) {
	var out []routeEntry
	for _, h := range m.GetHeaders(name) {
		for _, v := range splitValues(h.Value()) {
			e := routeEntry{raw: v}
			if _, err := sip.ParseAddressValue(v, &e.uri, nil); err != nil {
				return nil, fmt.Errorf("bad %s value %q: %w", name, v, err)
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// removeHeaders drops every header called name, in any letter case.
func removeHeaders(m headerer, name string) {
	for {
		found := ""
		for _, h := range m.Headers() {
			if strings.EqualFold(h.Name(), name) {
				found = h.Name()
				break
			}
		}
		if found == "" || !m.RemoveHeader(found) {
			return
		}
	}
}

// setRoutes replaces the Route headers of req with entries, one value per
// header line, each as received.
func setRoutes(req *sip.Request, entries []routeEntry) {
	removeHeaders(req, "Route")
	for _, e := range entries {
		req.AppendHeader(sip.NewHeader("Route", e.raw))
	}
}

// endpoint is the provider's own address as URIs name it.
type endpoint struct {
	hosts []string // lower case, without IPv6 brackets
	port  int
}

// owns reports whether a URI designates this provider (RFC 3261 §16.4:
// "the URI placed in Record-Route by this proxy").
func (e endpoint) owns(u sip.Uri) bool {
	port := u.Port
	if port == 0 {
		port = 5060
	}
	if port != e.port {
		return false
	}
	host := strings.ToLower(strings.Trim(u.Host, "[]"))
	for _, h := range e.hosts {
		if h == host {
			return true
		}
	}
	return false
}

// popOwn removes the leading Route values that name this provider
// (§16.4; two when the provider double record-routed, RFC 5658).
func (e endpoint) popOwn(routes []routeEntry) []routeEntry {
	for len(routes) > 0 && e.owns(routes[0].uri) {
		routes = routes[1:]
	}
	return routes
}

// hop is where a request goes next and over which transport.
type hop struct {
	transport string // "UDP" or "TCP"
	addr      string // host:port
	uri       string // for logs and call records
}

// errTransport is a next hop this provider cannot reach.
var errTransport = errors.New("unsupported transport")

// hopOf is the next hop a URI names (RFC 3263 §4.1 without DNS NAPTR/SRV):
// its transport parameter, UDP otherwise; its port, 5060 otherwise.
func hopOf(u sip.Uri) (hop, error) {
	if u.Scheme != "" && !strings.EqualFold(u.Scheme, "sip") {
		return hop{}, fmt.Errorf("%w: scheme %q", errTransport, u.Scheme)
	}
	transport := "UDP"
	if t, ok := u.UriParams.Get("transport"); ok {
		switch strings.ToLower(t) {
		case "udp":
		case "tcp":
			transport = "TCP"
		default:
			return hop{}, fmt.Errorf("%w: %q", errTransport, t)
		}
	}
	if u.Host == "" {
		return hop{}, fmt.Errorf("%w: no host in %s", errTransport, u.String())
	}
	port := u.Port
	if port == 0 {
		port = 5060
	}
	return hop{transport: transport, addr: net.JoinHostPort(strings.Trim(u.Host, "[]"), strconv.Itoa(port)), uri: u.String()}, nil
}

// loopKey hashes what identifies a request and where it is going (RFC 3261
// §16.6 step 8, §16.3 step 4): the Request-URI, the Route values left after
// this provider, the dialog and CSeq. The same request coming back with the
// same routing state is a loop; a spiral (new Request-URI or Route) is not.
func loopKey(req *sip.Request, remaining []routeEntry) string {
	h := fnv.New64a()
	w := func(s string) { h.Write([]byte(s)); h.Write([]byte{0}) }
	w(req.Recipient.String())
	for _, r := range remaining {
		w(r.raw)
	}
	if cid := req.CallID(); cid != nil {
		w(cid.Value())
	}
	if f := req.From(); f != nil {
		tag, _ := f.Params.Get("tag")
		w(tag)
	}
	if t := req.To(); t != nil {
		tag, _ := t.Params.Get("tag")
		w(tag)
	}
	if cs := req.CSeq(); cs != nil {
		w(cs.Value())
	}
	for _, pr := range req.GetHeaders("Proxy-Require") {
		w(pr.Value())
	}
	return strconv.FormatUint(h.Sum64()&0xffffffff, 36)
}

// branchPrefix starts every branch this provider puts in a Via: the magic
// cookie (§8.1.1.7), a mark and the loop key.
func branchPrefix(key string) string { return sip.RFC3261BranchMagicCookie + "cm" + key + "." }

// looped reports a Via of this provider carrying the same loop key: the
// request has been here with the same routing state before (§16.3 step 4).
func (e endpoint) looped(req *sip.Request, key string) bool {
	prefix := branchPrefix(key)
	for _, h := range req.GetHeaders("Via") {
		via, ok := h.(*sip.ViaHeader)
		if !ok {
			continue
		}
		u := sip.Uri{Host: via.Host, Port: via.Port}
		if !e.owns(u) {
			continue
		}
		if b, _ := via.Params.Get("branch"); strings.HasPrefix(b, prefix) {
			return true
		}
	}
	return false
}

// isSDP reports whether a message carries an SDP body.
func isSDP(m interface {
	Body() []byte
	GetHeader(string) sip.Header
}) bool {
	if len(m.Body()) == 0 {
		return false
	}
	h := m.GetHeader("Content-Type")
	return h != nil && strings.HasPrefix(strings.ToLower(strings.TrimSpace(h.Value())), "application/sdp")
}

// hasToTag reports a request within a dialog (RFC 3261 §12.2).
func hasToTag(req *sip.Request) bool {
	to := req.To()
	if to == nil {
		return false
	}
	_, ok := to.Params.Get("tag")
	return ok
}

// fromTag is the From tag of a request.
func fromTag(req *sip.Request) string {
	if f := req.From(); f != nil {
		tag, _ := f.Params.Get("tag")
		return tag
	}
	return ""
}

// callID is the Call-ID of a message, "" without one.
func callID(m interface{ CallID() *sip.CallIDHeader }) string {
	if c := m.CallID(); c != nil {
		return c.Value()
	}
	return ""
}

// terminates reports whether user is a number with one of the prefixes.
func terminates(prefixes []string, user string) bool {
	if !isNumber(user) {
		return false
	}
	for _, p := range prefixes {
		if strings.HasPrefix(user, p) {
			return true
		}
	}
	return false
}
