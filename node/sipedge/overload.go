package sipedge

import (
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/callmesh/callmesh/media/rawudp"
	"github.com/callmesh/callmesh/node/sipwire"
)

// Overload control over UDP. When the node cannot keep up, the kernel
// queues datagrams on the SIP socket, and once its receive buffer is full
// it drops whatever arrives: an ACK, a BYE or a 200 of a call already set
// up as readily as a new INVITE. Each lost message of a call in progress
// brings retransmissions, from both sides, that cost more than the message
// did, and a node just past its capacity slides into a collapse where
// most calls fail.
//
// So the edge watches the socket's backlog (rawudp.Conn.Backlog). Once it
// fills a set share of the buffer, the readers shed the requests that
// would start new work, dialog-creating INVITEs, and keep serving
// everything else. They shed a share of them that grows with the backlog,
// as random early detection does in a router's queue: none at the set
// share, every one once the backlog has grown halfway from there to full.
// Shedding all of them at once would hand the node a burst when their
// retransmissions come back together; shedding a growing share holds the
// backlog where the node just keeps up. This is the priority RFC 6357 and
// RFC 7339 give overload control: reduce the requests that start
// sessions, not the messages of sessions already in progress.
//
// A shed INVITE is dropped unanswered rather than refused with 503: over
// UDP its sender retransmits it after Timer A (500 ms, then doubling), by
// which time the backlog has usually drained, and the call goes on late
// rather than failing; a 503 would end the call at once, and RFC 5390
// describes how 503s amplify an overload. Over TCP nothing is shed: its
// backlog is the sender's to manage.

// backlogEvery is how many datagrams a UDP reader reads between two looks
// at the socket's backlog: one system call in that many, often enough to
// notice a backlog building (16 datagrams are a fraction of a millisecond
// of the load that builds one).
const backlogEvery = 16

// shedder decides, from the SIP socket's backlog, which new INVITEs are
// shed. Safe for concurrent use: every UDP reader reports to it.
type shedder struct {
	from  float64       // share of the buffer at which shedding starts
	share atomic.Uint32 // of INVITEs to shed, in 1/shareOne
	shed  atomic.Uint64 // INVITEs shed, all told
	rand  func() uint32 // uniform; rand.Uint32 but in tests
	log   *slog.Logger

	mu      sync.Mutex
	start   time.Time // of the current episode
	atStart uint64    // shed when it began
	logged  time.Time // last episode logged
}

// shareOne is a share of 1: every new INVITE is shed.
const shareOne = 1 << 16

// shedLogEvery bounds how often a shedding episode is logged: under a
// sustained overload episodes follow each other within milliseconds.
const shedLogEvery = 10 * time.Second

func newShedder(from float64, log *slog.Logger) *shedder {
	return &shedder{from: from, rand: rand.Uint32, log: log}
}

// observe takes a reading of the backlog and sets the share of new INVITEs
// shed: 0 up to from (a share of the limit), rising in proportion to 1 at
// halfway from there to a full buffer. It returns that share.
func (o *shedder) observe(b rawudp.Backlog, now time.Time) float64 {
	if b.Limit <= 0 {
		return float64(o.share.Load()) / shareOne
	}
	fill := float64(b.Queued) / float64(b.Limit)
	x := (fill - o.from) / ((1 - o.from) / 2)
	share := uint32(shareOne * min(max(x, 0), 1))
	if was := o.share.Swap(share); (was == 0) != (share == 0) {
		o.mu.Lock()
		if share > 0 {
			o.start, o.atStart = now, o.shed.Load()
			if now.Sub(o.logged) >= shedLogEvery {
				o.logged = now
				o.log.Warn("SIP overload: shedding new INVITEs until the UDP backlog drains",
					"queued_bytes", b.Queued, "limit_bytes", b.Limit, "kernel_drops", b.Drops)
			}
		} else {
			o.log.Debug("SIP overload over", "shed", o.shed.Load()-o.atStart, "lasted", now.Sub(o.start))
		}
		o.mu.Unlock()
	}
	return float64(share) / shareOne
}

// drop reports whether msg is shed: a dialog-creating INVITE, drawn at the
// share set by the last reading. It counts what it sheds.
//
// An INVITE that carries credentials answers a challenge: the node has
// already spent a 407 exchange and a nonce on its call, and shedding it
// would waste them and start the exchange over. It is shed at the share
// 2s−1 instead of s: not at all until half the fresh INVITEs are, all of
// them once all fresh ones are: fresh INVITEs make room for the calls
// already half set up.
func (o *shedder) drop(msg sip.Message) bool {
	share := o.share.Load()
	if share == 0 {
		return false
	}
	req, ok := msg.(*sip.Request)
	if !ok || req.Method != sip.INVITE || hasToTag(req) {
		return false
	}
	if share < shareOne && hasCredentials(req) {
		if share <= shareOne/2 {
			return false
		}
		share = 2*share - shareOne
	}
	if share < shareOne && o.rand()%shareOne >= share {
		return false
	}
	o.shed.Add(1)
	return true
}

// hasCredentials reports whether req answers a digest challenge (RFC 3261
// §22.2, §22.3).
func hasCredentials(req *sip.Request) bool {
	return sipwire.Header(req, "Proxy-Authorization") != nil || sipwire.Header(req, "Authorization") != nil
}
