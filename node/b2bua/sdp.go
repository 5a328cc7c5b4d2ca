package b2bua

import (
	"crypto/rand"
	"encoding/binary"
	"net/netip"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/callmesh/callmesh/media"
	"github.com/callmesh/callmesh/media/sdpedit"
	"github.com/callmesh/callmesh/node/sipwire"
)

// anchoring is a call's media at the relay: the relay session and the o=
// line state toward each side. Guarded by the call's mutex.
type anchoring struct {
	sess    *media.Session
	origins [2]*sdpedit.Origin // toward the caller (A) and the callee (B)
}

// isSDP reports whether a message carries an SDP body.
func isSDP(m interface {
	Body() []byte
	Headers() []sip.Header
}) bool {
	if len(m.Body()) == 0 {
		return false
	}
	h := sipwire.Header(m, "Content-Type")
	return h != nil && strings.HasPrefix(strings.ToLower(strings.TrimSpace(h.Value())), "application/sdp")
}

// audioIndex is the m= line the relay anchors: the first active audio
// stream. -1 when there is none.
func audioIndex(s *sdpedit.Session) int {
	for i, m := range s.Media {
		if m.Kind == "audio" && m.Port != 0 {
			return i
		}
	}
	return -1
}

// anchor rewrites a description that side `from` sent, for the other side:
// the sender's leg learns where the sender receives, and the body sent on
// names the other leg's ports. Streams beyond the anchored audio stream are
// refused (port 0, RFC 3264 §6).
func (a *anchoring) anchor(body []byte, from media.Side) ([]byte, error) {
	d, err := sdpedit.ParseDescription(body) // parsed once, read and rewritten
	if err != nil {
		return nil, err
	}
	s := d.Session()
	idx := audioIndex(s)
	if idx >= 0 {
		a.sess.Leg(from).Signal(media.RemoteFromSDP(s.Media[idx]))
	}
	to := 1 - from
	out := a.sess.Leg(to)
	anchors := make([]sdpedit.Anchor, len(s.Media))
	for i := range anchors {
		anchors[i] = sdpedit.Anchor{Addr: out.Anchor().Addr}
		if i == idx {
			anchors[i] = out.Anchor()
			if s.Media[i].Hold {
				anchors[i].Addr = netip.IPv4Unspecified() // pass an RFC 2543 hold on
			}
		}
	}
	if a.origins[to] == nil {
		a.origins[to] = sdpedit.NewOrigin("callmesh", originID(), out.Anchor().Addr)
	}
	return d.Rewrite(anchors, a.origins[to])
}

// originID is a random o= session id, below 2^62 so that versions grow
// from it without overflow (RFC 3264 §5 suggests an NTP-like number).
func originID() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:]) >> 2
}
