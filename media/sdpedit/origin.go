package sdpedit

import (
	"hash/maphash"
	"net/netip"
	"strconv"
	"strings"
	"sync"
)

// Origin is the o= line a relay emits toward one side of a call. RFC 3264 §8
// wants the same <username> and <sess-id> in every description of a
// session, and a <sess-version> that grows by exactly one each time the
// description changes and stays put when it does not (a re-offer that
// changes nothing, such as a session refresh, RFC 3264 §8 and RFC 4028).
// Rewrite compares everything it emits apart from the o= line with the
// previous description to decide.
//
// Use one Origin per call leg and direction. It is safe for concurrent use.
type Origin struct {
	mu      sync.Mutex
	user    string
	sessID  uint64
	addr    netip.Addr
	version uint64
	last    uint64 // hash of the last body emitted, without its o= line
	emitted bool
}

// hashSeed keys the change detection. A collision would only cost a missed
// version bump, with odds of 2^-64.
var hashSeed = maphash.MakeSeed()

// NewOrigin returns the origin for one call leg. user is the o= username
// ("-" if empty or not a single token, RFC 8866 §5.2); the first version is
// sessID, as in the examples of RFC 3264 §10, reduced below 2^62 so that it
// can always grow. addr is the o= address; an invalid one means the
// session's anchor address.
func NewOrigin(user string, sessID uint64, addr netip.Addr) *Origin {
	if user == "" || strings.ContainsFunc(user, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		user = "-"
	}
	return &Origin{user: user, sessID: sessID, addr: addr.Unmap().WithZone(""), version: sessID & (1<<62 - 1)}
}

// Version returns the <sess-version> of the last description emitted, or the
// one the first will carry.
func (o *Origin) Version() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.version
}

// SessionID returns the <sess-id>.
func (o *Origin) SessionID() uint64 { return o.sessID }

// insert puts the o= line at offset at of body, bumping the version if the
// body differs from the previous one. at < 0 (no o= line, which Parse does
// not let through) inserts nothing.
func (o *Origin) insert(body []byte, at int, sessAddr netip.Addr) []byte {
	if at < 0 {
		return body
	}
	h := maphash.Bytes(hashSeed, body)
	o.mu.Lock()
	if o.emitted && h != o.last {
		o.version++
	}
	o.emitted, o.last = true, h
	ver := o.version
	o.mu.Unlock()

	addr := o.addr
	if !addr.IsValid() {
		addr = sessAddr
	}
	if !addr.IsValid() {
		addr = netip.IPv4Unspecified()
	}
	var buf [128]byte
	ol := append(buf[:0], "o="...)
	ol = append(append(ol, o.user...), ' ')
	ol = append(strconv.AppendUint(ol, o.sessID, 10), ' ')
	ol = append(strconv.AppendUint(ol, ver, 10), ' ')
	ol = append(appendAddr(ol, addr), "\r\n"...)

	n := len(body)
	body = append(body, ol...) // grow (Rewrite leaves room for this)
	copy(body[at+len(ol):], body[at:n])
	copy(body[at:], ol)
	return body
}
