package sipwire

import (
	"bytes"
	"net/netip"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Write appends msg to buf in wire form: byte for byte what
// msg.StringWrite writes, without the allocations sipgo's writer makes
// along the way (every URI host parsed as an IP address to decide on
// brackets, every port and sequence number formatted into a new string,
// a Via built as a string before it is written). A header of a type the
// writer does not know is written as its Name and Value.
func Write(buf *bytes.Buffer, msg sip.Message) {
	switch m := msg.(type) {
	case *sip.Request:
		if m.CompactHeaders {
			m.StringWrite(buf)
			return
		}
		buf.WriteString(string(m.Method))
		buf.WriteByte(' ')
		writeURI(buf, &m.Recipient)
		buf.WriteByte(' ')
		buf.WriteString(m.SipVersion)
		writeRest(buf, m.Headers(), m.Body())
	case *sip.Response:
		if m.CompactHeaders {
			m.StringWrite(buf)
			return
		}
		buf.WriteString(m.SipVersion)
		buf.WriteByte(' ')
		writeInt(buf, int(m.StatusCode))
		buf.WriteByte(' ')
		buf.WriteString(m.Reason)
		writeRest(buf, m.Headers(), m.Body())
	default:
		msg.StringWrite(buf)
	}
}

// writeRest writes what follows the start line: each header on its own
// line, the empty line, and the body (RFC 3261 §7).
func writeRest(buf *bytes.Buffer, headers []sip.Header, body []byte) {
	buf.WriteString("\r\n")
	for _, h := range headers {
		writeHeader(buf, h)
		buf.WriteString("\r\n")
	}
	if len(headers) == 0 {
		buf.WriteString("\r\n") // as sipgo writes a message without headers
	}
	buf.WriteString("\r\n")
	buf.Write(body)
}

func writeHeader(buf *bytes.Buffer, h sip.Header) {
	switch h := h.(type) {
	case *sip.ViaHeader:
		buf.WriteString("Via: ")
		buf.WriteString(h.ProtocolName)
		buf.WriteByte('/')
		buf.WriteString(h.ProtocolVersion)
		buf.WriteByte('/')
		buf.WriteString(h.Transport)
		buf.WriteByte(' ')
		writeHostPort(buf, h.Host, h.Port)
		writeParams(buf, ';', h.Params)
	case *sip.FromHeader:
		buf.WriteString("From: ")
		writeNameAddr(buf, h.DisplayName, &h.Address, h.Params)
	case *sip.ToHeader:
		buf.WriteString("To: ")
		writeNameAddr(buf, h.DisplayName, &h.Address, h.Params)
	case *sip.ContactHeader:
		buf.WriteString("Contact: ")
		if h.Address.Wildcard {
			buf.WriteByte('*')
			return
		}
		writeNameAddr(buf, h.DisplayName, &h.Address, h.Params)
	case *sip.RouteHeader:
		buf.WriteString("Route: <")
		writeURI(buf, &h.Address)
		buf.WriteByte('>')
	case *sip.RecordRouteHeader:
		buf.WriteString("Record-Route: <")
		writeURI(buf, &h.Address)
		buf.WriteByte('>')
	case *sip.CallIDHeader:
		buf.WriteString("Call-ID: ")
		buf.WriteString(string(*h))
	case *sip.CSeqHeader:
		buf.WriteString("CSeq: ")
		writeInt(buf, int(h.SeqNo))
		buf.WriteByte(' ')
		buf.WriteString(string(h.MethodName))
	case *sip.MaxForwardsHeader:
		buf.WriteString("Max-Forwards: ")
		writeInt(buf, int(*h))
	case *sip.ContentLengthHeader:
		buf.WriteString("Content-Length: ")
		writeInt(buf, int(*h))
	case *sip.ExpiresHeader:
		buf.WriteString("Expires: ")
		writeInt(buf, int(*h))
	case *sip.ContentTypeHeader:
		buf.WriteString("Content-Type: ")
		buf.WriteString(string(*h))
	default:
		// As sipgo's headers.StringWrite writes a header: its name, then
		// its value.
		buf.WriteString(h.Name())
		buf.WriteString(": ")
		buf.WriteString(h.Value())
	}
}

// writeNameAddr writes a name-addr with its header parameters, always in
// angle brackets so that the URI's own parameters stay its own (RFC 3261
// §20.10).
func writeNameAddr(buf *bytes.Buffer, display string, uri *sip.Uri, params sip.HeaderParams) {
	if display != "" {
		buf.WriteByte('"')
		buf.WriteString(display)
		buf.WriteString("\" ")
	}
	buf.WriteByte('<')
	writeURI(buf, uri)
	buf.WriteByte('>')
	writeParams(buf, ';', params)
}

func writeURI(buf *bytes.Buffer, u *sip.Uri) {
	if u.Scheme == "" {
		buf.WriteString("sip")
	} else {
		buf.WriteString(u.Scheme)
	}
	buf.WriteByte(':')
	if raw := u.Raw(); raw != "" {
		buf.WriteString(raw)
		return
	}
	if u.HierarhicalSlashes {
		buf.WriteString("//")
	}
	if u.User != "" {
		buf.WriteString(u.User)
		if u.Password != "" {
			buf.WriteByte(':')
			buf.WriteString(u.Password)
		}
		buf.WriteByte('@')
	}
	writeHostPort(buf, u.Host, u.Port)
	writeParams(buf, ';', u.UriParams)
	if len(u.Headers) > 0 {
		// The first header follows '?' where the others follow '&'.
		buf.WriteByte('?')
		writeList(buf, '&', u.Headers)
	}
}

// writeHostPort writes host, then the port if there is one (RFC 3261
// §25.1, hostport). A bare IPv6 address goes in brackets (IPv6reference);
// an IPv4-mapped address or one with a zone is written as given, as sipgo
// does, and so is one in brackets already.
func writeHostPort(buf *bytes.Buffer, host string, port int) {
	writeHost(buf, host)
	if port > 0 {
		buf.WriteByte(':')
		writeInt(buf, port)
	}
}

func writeHost(buf *bytes.Buffer, host string) {
	if strings.IndexByte(host, ':') >= 0 && host[0] != '[' {
		if a, err := netip.ParseAddr(host); err == nil && a.Is6() && !a.Is4In6() && a.Zone() == "" {
			buf.WriteByte('[')
			buf.WriteString(host)
			buf.WriteByte(']')
			return
		}
	}
	buf.WriteString(host)
}

// writeParams writes sep and the parameters, if there are any.
func writeParams(buf *bytes.Buffer, sep byte, params sip.HeaderParams) {
	if len(params) == 0 {
		return
	}
	buf.WriteByte(sep)
	writeList(buf, sep, params)
}

// writeList writes parameters separated by sep: a value with a space or
// tab is quoted, an empty one leaves the name alone.
func writeList(buf *bytes.Buffer, sep byte, params sip.HeaderParams) {
	for i, kv := range params {
		if i > 0 {
			buf.WriteByte(sep)
		}
		buf.WriteString(kv.K)
		switch {
		case kv.V == "":
		case hasBlank(kv.V):
			buf.WriteString(`="`)
			buf.WriteString(kv.V)
			buf.WriteByte('"')
		default:
			buf.WriteByte('=')
			buf.WriteString(kv.V)
		}
	}
}

// hasBlank reports whether v holds a space or a tab. (strings.ContainsAny
// builds a set of its characters first: for the tag and branch of every
// header written, that cost more than the writing.)
func hasBlank(v string) bool {
	for i := range len(v) {
		if v[i] == ' ' || v[i] == '\t' {
			return true
		}
	}
	return false
}

func writeInt(buf *bytes.Buffer, n int) {
	buf.Write(strconv.AppendInt(buf.AvailableBuffer(), int64(n), 10))
}
