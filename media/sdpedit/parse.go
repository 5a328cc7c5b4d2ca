package sdpedit

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// Media is one m= section as the writer of the description means it.
type Media struct {
	Index int    // 0-based position of the m= line; Rewrite's anchors[Index] is for it
	Kind  string // media type: audio, video, image, application, ...
	Port  int    // 0: stream disabled or refused (RFC 3264 §5.1, §6)
	Proto string // RTP/AVP, RTP/SAVP, RTP/SAVPF, UDP/TLS/RTP/SAVPF, udptl, ...

	// Addr is the effective connection address: the media-level c= line, or
	// the session-level one (RFC 8866 §5.7). Invalid only for a disabled
	// stream (Port 0) that has neither.
	Addr netip.Addr

	// RTCPPort and RTCPAddr are where RTCP goes: a=rtcp (RFC 3605 §2.1),
	// else Port+1 and Addr (RFC 3550 §11). With RTCPMux set the writer
	// offers to multiplex RTCP on the RTP port (RFC 5761 §5.1.1); the
	// fields still name the fallback used when the peer declines. Both are
	// zero for a disabled stream and for non-RTP protocols.
	RTCPPort int
	RTCPAddr netip.Addr
	RTCPMux  bool

	// Dir comes from the media-level direction attribute, else the
	// session-level one, else sendrecv (RFC 3264 §5.1).
	Dir Direction

	// Hold is the RFC 2543 way of putting a stream on hold: c= 0.0.0.0
	// (or ::). RFC 3264 §8.4 still asks answerers to honour it: the writer
	// does not want to receive, whatever Dir says. See EffectiveDir.
	Hold bool

	// Secure: an SRTP or DTLS-SRTP profile (the proto has SAVP, RFC 3711,
	// RFC 5764) or an a=crypto line (RFC 4568).
	Secure bool

	// Formats lists the RTP payload formats in m= line order, named by
	// a=rtpmap or, for static payload types without one, by the table of
	// RFC 3551 §6. Empty for non-RTP protocols (see Fmts).
	Formats []Format
	// Fmts are the raw <fmt> tokens of the m= line (RFC 8866 §5.14), e.g.
	// "t38" for T.38 or "webrtc-datachannel".
	Fmts []string

	PtimeMs int // a=ptime (RFC 8866 §6.4), 0 if absent or unreadable
}

// Active reports whether the stream is in use (non-zero port).
func (m *Media) Active() bool { return m.Port != 0 }

// EffectiveDir is Dir with receiving taken away when the stream is held by
// c= 0.0.0.0 (RFC 3264 §8.4).
func (m *Media) EffectiveDir() Direction {
	if m.Hold {
		return makeDirection(m.Dir.Sends(), false)
	}
	return m.Dir
}

// FormatByPT returns the format with the given payload type.
func (m *Media) FormatByPT(pt uint8) (Format, bool) {
	for _, f := range m.Formats {
		if f.PT == pt {
			return f, true
		}
	}
	return Format{}, false
}

// Session is a parsed session description.
type Session struct {
	OriginUser    string // o= <username>
	OriginSessID  string // o= <sess-id>, as written (RFC 8866 §5.2: a numeric string)
	OriginVersion uint64 // o= <sess-version> (RFC 3264 §8)
	Media         []Media
}

// Parse reads a session description (RFC 8866) for the relay: where each
// stream's media and RTCP go, its direction and its formats. It refuses an
// empty body, lines that are not <type>=<value>, anything pion/sdp's parser
// refuses (order of lines, v= other than 0, ...), unusable m= lines, c=
// addresses that are not IP literals, and an active stream without a c= line.
// Errors are *Error values naming the line.
func Parse(raw []byte) (*Session, error) {
	p, err := parse(raw)
	if err != nil {
		return nil, err
	}
	return &p.sess, nil
}

// parsed keeps, beside the Session, where things are in the body so that
// Rewrite can edit it line by line.
type parsed struct {
	sess     Session
	lines    []line
	sessEnd  int // index of the first m= line, or len(lines)
	sessConn int // index of the session-level c= line, or -1
	media    []section
}

// section is the line range of one m= section, lines[start] being the m= line.
type section struct {
	start, end int
	m          mfields
	conn       int  // index of the c= line in force (pion/sdp keeps the last), or -1
	rtcp       int  // index of the a=rtcp line in force (the first), or -1
	rtcpAddr   bool // that a=rtcp line names an address
	mux        bool // a=rtcp-mux present
	rtp        bool // an RTP profile: the stream has RTCP
}

func parse(raw []byte) (*parsed, error) {
	lines, err := splitLines(raw)
	if err != nil {
		return nil, err
	}
	p := &parsed{lines: lines, sessEnd: len(lines), sessConn: -1}
	var mtext map[int]string
	for i, l := range lines {
		if msg := checkFields(l); msg != "" {
			return nil, p.errAt(i, msg, nil)
		}
		switch l.typ() {
		case 'm':
			if len(p.media) == 0 {
				p.sessEnd = i
			} else {
				p.media[len(p.media)-1].end = i
			}
			m, err := parseMLine(l, len(p.media)+1)
			if err != nil {
				return nil, err
			}
			if t := pionLine(l, m); t != l.text {
				if mtext == nil {
					mtext = make(map[int]string)
				}
				mtext[i] = t
			}
			p.media = append(p.media, section{start: i, end: len(lines), m: m, conn: -1, rtcp: -1})
		case 'c':
			if len(p.media) == 0 {
				p.sessConn = i
			} else {
				p.media[len(p.media)-1].conn = i
			}
		}
	}
	sd, at, err := pionParse(lines, mtext)
	if err != nil {
		return nil, p.errAt(at, "malformed "+lines[at].text[:2]+" line", pionError{err})
	}
	if len(sd.MediaDescriptions) != len(p.media) {
		return nil, &Error{Msg: "internal: pion/sdp disagrees on the m= lines"}
	}
	if err := p.session(sd); err != nil {
		return nil, err
	}
	return p, nil
}

// errAt builds an *Error for lines[i].
func (p *parsed) errAt(i int, msg string, cause error) *Error {
	e := &Error{Line: p.lines[i].num, Msg: msg, Err: cause}
	for k := range p.media {
		if i >= p.media[k].start && i < p.media[k].end {
			e.Media, e.MLine = k+1, i == p.media[k].start
		}
	}
	return e
}

// attrLines returns the indexes of the a= lines in lines[from:to]; pion/sdp
// makes one Attribute of each, in order, which pairs them with line numbers.
func (p *parsed) attrLines(from, to int, want int) ([]int, error) {
	idx := make([]int, 0, want)
	for i := from; i < to; i++ {
		if p.lines[i].typ() == 'a' {
			idx = append(idx, i)
		}
	}
	if len(idx) != want {
		return nil, &Error{Msg: "internal: pion/sdp disagrees on the a= lines"}
	}
	return idx, nil
}

func (p *parsed) session(sd *sdp.SessionDescription) error {
	s := &p.sess
	// o=<username> <sess-id> <sess-version> ... (RFC 8866 §5.2). The
	// numbers are read from the line: pion/sdp's uint64 reader wraps
	// around silently on overflow.
	for i := 0; i < p.sessEnd; i++ {
		if p.lines[i].typ() != 'o' {
			continue
		}
		f := fields(p.lines[i].value())
		if len(f) < 3 {
			return p.errAt(i, "o= line too short", nil)
		}
		v, err := strconv.ParseUint(f[2], 10, 64)
		if err != nil {
			return p.errAt(i, "bad o= session version "+quote(f[2]), nil)
		}
		s.OriginUser, s.OriginSessID, s.OriginVersion = sd.Origin.Username, f[1], v
		break
	}
	var sessAddr netip.Addr
	if p.sessConn >= 0 {
		a, msg := connAddr(sd.ConnectionInformation)
		if msg != "" {
			return p.errAt(p.sessConn, msg, nil)
		}
		sessAddr = a
	}
	if _, err := p.attrLines(0, p.sessEnd, len(sd.Attributes)); err != nil {
		return err
	}
	sessDir := SendRecv
	for _, a := range sd.Attributes {
		if d, ok := directionOf(a.Key); ok {
			sessDir = d
		}
	}
	s.Media = make([]Media, len(p.media))
	for k := range p.media {
		if err := p.mediaAt(k, sd.MediaDescriptions[k], sessAddr, sessDir); err != nil {
			return err
		}
	}
	return nil
}

func (p *parsed) mediaAt(k int, md *sdp.MediaDescription, sessAddr netip.Addr, dir Direction) error {
	sec := &p.media[k]
	m := &p.sess.Media[k]
	*m = Media{Index: k, Kind: sec.m.kind, Port: sec.m.port, Proto: sec.m.proto,
		Fmts: sec.m.fmts, Addr: sessAddr, Dir: dir}
	proto := strings.ToUpper(sec.m.proto)
	m.Secure = strings.Contains(proto, "SAVP")
	if md.ConnectionInformation != nil {
		a, msg := connAddr(md.ConnectionInformation)
		if msg != "" {
			return p.errAt(sec.conn, msg, nil)
		}
		m.Addr = a
	}
	if m.Port != 0 && !m.Addr.IsValid() {
		return p.errAt(sec.start, "no c= line for this stream at media or session level (RFC 8866 §5.7)", nil)
	}
	m.Hold = m.Addr.IsValid() && m.Addr.IsUnspecified()
	idx, err := p.attrLines(sec.start+1, sec.end, len(md.Attributes))
	if err != nil {
		return err
	}
	isRTP := strings.Contains(proto, "RTP/")
	sec.rtp = isRTP
	var maps []Format
	for j, a := range md.Attributes {
		key, val := a.Key, a.Value
		if d, ok := directionOf(key); ok {
			m.Dir = d
			continue
		}
		switch {
		case equalFold(key, "rtcp") && sec.rtcp < 0:
			port, addr, msg := parseRTCP(val)
			if msg != "" {
				return p.errAt(idx[j], msg, nil)
			}
			sec.rtcp, sec.rtcpAddr = idx[j], addr.IsValid()
			m.RTCPPort, m.RTCPAddr = port, addr
		case equalFold(key, "rtcp-mux"):
			m.RTCPMux, sec.mux = true, true
		case equalFold(key, "crypto"):
			m.Secure = true
		case equalFold(key, "ptime"):
			m.PtimeMs = parsePtime(val)
		case equalFold(key, "rtpmap") && isRTP:
			f, msg := parseRtpmap(val, m.Kind)
			if msg != "" {
				return p.errAt(idx[j], msg, nil)
			}
			maps = append(maps, f)
		}
	}
	if isRTP {
		m.Formats = make([]Format, 0, len(sec.m.fmts))
		for _, tok := range sec.m.fmts {
			pt, ok := atoi(tok, 127)
			if !ok {
				return p.errAt(sec.start, "bad RTP payload type "+quote(tok), nil)
			}
			m.Formats = append(m.Formats, formatFor(uint8(pt), maps, m.Kind))
		}
	}
	if m.Port == 0 || !isRTP {
		m.RTCPPort, m.RTCPAddr = 0, netip.Addr{}
		return nil
	}
	if sec.rtcp < 0 {
		// RFC 3550 §11: RTCP on the next port up.
		if m.Port < 65535 {
			m.RTCPPort = m.Port + 1
		}
		m.RTCPAddr = m.Addr
	} else if !m.RTCPAddr.IsValid() {
		m.RTCPAddr = m.Addr
	}
	return nil
}

// connAddr reads the address of a c= line: "IN IP4 192.0.2.1", possibly with
// a multicast /ttl and /count (RFC 8866 §5.7), which are dropped. Host names
// are refused: the relay needs an address it can send to.
func connAddr(ci *sdp.ConnectionInformation) (netip.Addr, string) {
	if ci == nil || ci.Address == nil {
		return netip.Addr{}, "c= line without an address"
	}
	return ipOf(ci.NetworkType, ci.AddressType, ci.Address.Address, "c=")
}

func ipOf(netType, addrType, s, what string) (netip.Addr, string) {
	if netType != "IN" {
		return netip.Addr{}, what + " network type " + quote(netType) + " is not IN"
	}
	s, _, _ = strings.Cut(s, "/")
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, what + " address " + quote(s) + " is not an IP address"
	}
	switch addrType {
	case "IP4":
		if a.Is4() {
			return a, ""
		}
	case "IP6":
		if a.Is6() {
			return a, ""
		}
	default:
		return netip.Addr{}, what + " address type " + quote(addrType) + " is not IP4 or IP6"
	}
	return netip.Addr{}, what + " address " + quote(s) + " does not match " + addrType
}

// parseRTCP reads an a=rtcp value (RFC 3605 §2.1):
// <port> [<nettype> <addrtype> <connection-address>].
func parseRTCP(v string) (int, netip.Addr, string) {
	f := fields(v)
	if len(f) != 1 && len(f) != 4 {
		return 0, netip.Addr{}, "bad a=rtcp " + quote(v)
	}
	port, ok := atoi(f[0], 65535)
	if !ok || port == 0 {
		return 0, netip.Addr{}, "bad a=rtcp port " + quote(f[0])
	}
	if len(f) == 1 {
		return port, netip.Addr{}, ""
	}
	a, msg := ipOf(f[1], f[2], f[3], "a=rtcp")
	return port, a, msg
}
