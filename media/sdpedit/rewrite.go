package sdpedit

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Anchor says where one m= line's media must go: the relay's advertised
// address and its RTP and RTCP ports.
//
// RTP == 0 refuses the stream: port 0 in the output (RFC 3264 §6); Addr may
// then be left invalid. RTCP == 0 means RTP+1 (RFC 3550 §11). Addr may be
// 0.0.0.0 or :: to put the stream on hold the RFC 2543 way (RFC 3264 §8.4);
// an IPv4-mapped IPv6 address is written as IPv4, and a zone is dropped.
type Anchor struct {
	Addr      netip.Addr
	RTP, RTCP int
}

// Rewrite returns the description to send on, with media anchored at the
// relay. It parses raw as Parse does (and fails where Parse fails), then
// edits it line by line:
//
//   - c= lines, session and media level, carry the anchor address ("IN IP4"
//     or "IN IP6" by its family). The session-level one takes the first
//     active anchor's address; a media section whose anchor differs and that
//     had no c= gets one (RFC 8866 §5.7). Of several c= lines in a section
//     only the one in force is kept.
//   - each m= port becomes its anchor's RTP port, 0 for a refused stream
//     (RFC 3264 §6); a port count ("/2") is dropped, the relay gives one.
//   - a=rtcp (RFC 3605) is rewritten to the anchor's RTCP port, keeping the
//     address form: with an address if the original had one. It is added
//     when the original had none and the RTCP port is not RTP+1. With
//     a=rtcp-mux offered (RFC 5761 §5.1.1) a=rtcp-mux is kept and the RTCP
//     port is the RTP port, so the relay must be ready to demultiplex RTCP
//     on its RTP port (RFC 5761 §4) whatever the answer says. a=rtcp-mux is
//     never added. Refused streams lose a=rtcp; non-RTP streams (T.38's
//     udptl) get none.
//   - ICE attributes (RFC 8839 §5: a=candidate, a=remote-candidates,
//     a=ice-ufrag, a=ice-pwd, a=ice-options, a=ice-lite, a=ice-mismatch,
//     a=ice-pacing, a=end-of-candidates RFC 8840) are removed at both levels:
//     the relay's address is the only one the peer may use.
//   - o= comes from origin (see Origin); with a nil origin the original o=
//     line is kept with the anchor address in place of its own.
//   - every other line (codecs, a=rtpmap/a=fmtp for telephone-event RFC
//     4733, CN RFC 3389, a=crypto RFC 4568, a=fingerprint/a=setup, direction
//     attributes, a=ptime, unknown attributes) is kept byte for byte, in
//     order. Line endings become CRLF, blank lines disappear.
//
// len(anchors) must equal the number of m= lines. The output is a function of
// the input and the origin's state only.
func Rewrite(raw []byte, anchors []Anchor, origin *Origin) ([]byte, error) {
	p, err := parse(raw)
	if err != nil {
		return nil, err
	}
	return p.rewrite(len(raw), anchors, origin)
}

// Description is a session description parsed once, to be read (Session)
// and rewritten (Rewrite) without parsing it again.
type Description struct {
	p    *parsed
	size int // the body's length
}

// ParseDescription parses raw as Parse does, keeping what Rewrite needs.
func ParseDescription(raw []byte) (*Description, error) {
	p, err := parse(raw)
	if err != nil {
		return nil, err
	}
	return &Description{p: p, size: len(raw)}, nil
}

// Session is what Parse returns for the same body.
func (d *Description) Session() *Session { return &d.p.sess }

// Rewrite is Rewrite of the body d was parsed from.
func (d *Description) Rewrite(anchors []Anchor, origin *Origin) ([]byte, error) {
	return d.p.rewrite(d.size, anchors, origin)
}

// rewrite builds the rewritten body; size is about the original's length.
func (p *parsed) rewrite(size int, anchors []Anchor, origin *Origin) ([]byte, error) {
	var err error
	if len(anchors) != len(p.media) {
		return nil, &Error{Msg: fmt.Sprintf("%d anchors for %d m= lines", len(anchors), len(p.media)), Err: ErrAnchors}
	}
	an := make([]anchor, len(anchors))
	var sessAddr netip.Addr // first active anchor's address, else any valid one
	for k, a := range anchors {
		if an[k], err = a.norm(k, p.media[k].mux); err != nil {
			return nil, err
		}
		if !sessAddr.IsValid() && an[k].rtp != 0 {
			sessAddr = an[k].addr
		}
	}
	for k := 0; k < len(an) && !sessAddr.IsValid(); k++ {
		sessAddr = an[k].addr
	}

	b := make([]byte, 0, size+size/8+128)
	oAt := -1
	var sessConn netip.Addr // address the session-level c= line now carries
	for _, l := range p.lines[:p.sessEnd] {
		switch l.typ() {
		case 'o':
			oAt = len(b)
			if origin == nil {
				b = appendOrigin(b, l, sessAddr)
			}
			continue
		case 'c':
			if sessAddr.IsValid() {
				b, sessConn = appendConn(b, sessAddr), sessAddr
				continue
			}
		case 'a':
			if key, _ := l.attrKey(); isICE(key) {
				continue
			}
		}
		b = appendLine(b, l.text)
	}
	for k := range p.media {
		b = p.appendMedia(b, k, an[k], sessAddr, sessConn)
	}
	if origin != nil {
		b = origin.insert(b, oAt, sessAddr)
	}
	return b, nil
}

// anchor is an Anchor checked and made ready for one m= section.
type anchor struct {
	addr      netip.Addr
	rtp, rtcp int
}

func (a Anchor) norm(k int, mux bool) (anchor, error) {
	fail := func(format string, args ...any) (anchor, error) {
		msg := fmt.Sprintf("anchor %d (m= line %d): ", k, k+1) + fmt.Sprintf(format, args...)
		return anchor{}, &Error{Msg: msg, Err: ErrAnchors}
	}
	out := anchor{addr: a.Addr.Unmap().WithZone(""), rtp: a.RTP}
	switch {
	case a.RTP < 0 || a.RTP > 65535:
		return fail("bad RTP port %d", a.RTP)
	case a.RTP == 0:
		return out, nil
	case !out.addr.IsValid():
		return fail("no address")
	case a.RTCP < 0 || a.RTCP > 65535:
		return fail("bad RTCP port %d", a.RTCP)
	case mux:
		out.rtcp = a.RTP
	case a.RTCP != 0:
		out.rtcp = a.RTCP
	case a.RTP == 65535:
		return fail("no RTCP port above RTP port 65535")
	default:
		out.rtcp = a.RTP + 1
	}
	return out, nil
}

// appendMedia writes m= section k. sessConn is the address the session-level
// c= line carries in the output, invalid if there is none.
func (p *parsed) appendMedia(b []byte, k int, a anchor, sessAddr, sessConn netip.Addr) []byte {
	sec := &p.media[k]
	active := a.rtp != 0
	connAddr := a.addr // for the section's own c= line
	if !connAddr.IsValid() {
		connAddr = sessAddr
	}
	needConn := active && sec.conn < 0 && sessConn != a.addr
	needRTCP := active && sec.rtp && sec.rtcp < 0 && a.rtcp != a.rtp+1
	for i := sec.start; i < sec.end; i++ {
		l := p.lines[i]
		t := l.typ()
		if i == sec.start {
			// Only the port token changes; media, proto and formats stay as written.
			b = append(b, l.text[:sec.m.portOff]...)
			b = strconv.AppendInt(b, int64(a.rtp), 10)
			b = appendLine(b, l.text[sec.m.portEnd:])
			continue
		}
		// RFC 8866 §5: m=, i=, c=, b=, k=, a= in this order.
		if needConn && t != 'i' {
			b, needConn = appendConn(b, a.addr), false
		}
		if needRTCP && t == 'a' {
			b, needRTCP = appendRTCP(b, a.rtcp, netip.Addr{}), false
		}
		switch t {
		case 'c':
			if i != sec.conn {
				continue
			}
			if connAddr.IsValid() {
				b = appendConn(b, connAddr)
				continue
			}
		case 'a':
			key, _ := l.attrKey()
			if isICE(key) {
				continue
			}
			if equalFold(key, "rtcp") {
				if i == sec.rtcp && active {
					addr := netip.Addr{}
					if sec.rtcpAddr {
						addr = a.addr
					}
					b = appendRTCP(b, a.rtcp, addr)
				}
				continue
			}
		}
		b = appendLine(b, l.text)
	}
	if needConn {
		b = appendConn(b, a.addr)
	}
	if needRTCP {
		b = appendRTCP(b, a.rtcp, netip.Addr{})
	}
	return b
}

func appendLine(b []byte, s string) []byte { return append(append(b, s...), "\r\n"...) }

// appendAddr writes "IN IP4 <addr>" or "IN IP6 <addr>" (RFC 8866 §5.7).
func appendAddr(b []byte, a netip.Addr) []byte {
	if a.Is4() {
		b = append(b, "IN IP4 "...)
	} else {
		b = append(b, "IN IP6 "...)
	}
	return a.AppendTo(b)
}

func appendConn(b []byte, a netip.Addr) []byte {
	return append(appendAddr(append(b, "c="...), a), "\r\n"...)
}

// appendRTCP writes "a=rtcp:<port>[ IN IP4 <addr>]" (RFC 3605 §2.1).
func appendRTCP(b []byte, port int, a netip.Addr) []byte {
	b = strconv.AppendInt(append(b, "a=rtcp:"...), int64(port), 10)
	if a.IsValid() {
		b = appendAddr(append(b, ' '), a)
	}
	return append(b, "\r\n"...)
}

// appendOrigin keeps an o= line's <username> <sess-id> <sess-version> and
// puts "IN", the address type and addr after them (RFC 8866 §5.2).
func appendOrigin(b []byte, l line, addr netip.Addr) []byte {
	f := fields(l.value())
	if !addr.IsValid() || len(f) < 3 {
		return appendLine(b, l.text)
	}
	b = append(b, "o="...)
	for _, s := range f[:3] {
		b = append(append(b, s...), ' ')
	}
	return append(appendAddr(b, addr), "\r\n"...)
}

// isICE reports whether an attribute belongs to ICE (RFC 8839 §5, RFC 8840
// §6 for end-of-candidates).
func isICE(key string) bool {
	switch strings.ToLower(key) { // no allocation unless key has upper case
	case "candidate", "remote-candidates", "end-of-candidates", "ice-ufrag",
		"ice-pwd", "ice-options", "ice-lite", "ice-mismatch", "ice-pacing":
		return true
	}
	return false
}
