package sim

import (
	"maps"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Calls in progress, their records and the counters.

// Counters are a provider's running totals. Each initial INVITE transaction
// (retransmissions are absorbed by the transaction layer; an INVITE retried
// with credentials is a new one) ends in exactly one of Answered,
// Failed[code] or Cancelled, or is still pending.
type Counters struct {
	// Invites counts initial INVITE transactions received while not down.
	Invites uint64 `json:"invites_received"`
	// Calls counts distinct Call-IDs among them.
	Calls uint64 `json:"calls"`
	// Forwarded counts initial INVITEs sent on to a next hop.
	Forwarded uint64 `json:"forwarded"`
	// Answered counts initial INVITEs answered 2xx toward the caller.
	Answered uint64 `json:"answered"`
	// Failed counts final non-2xx answers to initial INVITEs, by status:
	// those of the provider itself (407, 483, 503, ...) and those relayed.
	Failed map[int]uint64 `json:"failed"`
	// Cancelled counts initial INVITEs the caller cancelled before a final
	// answer.
	Cancelled uint64 `json:"cancelled"`
	// Active is the number of calls in progress: being set up or
	// established, until their BYE.
	Active int `json:"active_calls"`
	// Terminated counts calls answered as the far end.
	Terminated uint64 `json:"terminated"`
	// InDialog counts requests within dialogs that were forwarded or
	// answered as the far end (ACK of 2xx, BYE, re-INVITE, ...).
	InDialog uint64 `json:"in_dialog"`
	// Dropped counts requests dropped while down.
	Dropped uint64 `json:"dropped"`
	// RTPRelayed counts RTP packets the relay sent on; RTPDropped those
	// the impairment dropped.
	RTPRelayed uint64 `json:"rtp_relayed"`
	RTPDropped uint64 `json:"rtp_dropped"`
	// ToneSent and FarEndReceived count the RTP the far end sent (its
	// tone) and received.
	ToneSent       uint64 `json:"tone_sent"`
	FarEndReceived uint64 `json:"far_end_rtp_received"`
}

// Call outcomes of a CallRecord.
const (
	OutcomePending   = "pending"
	OutcomeAnswered  = "answered"
	OutcomeFailed    = "failed"
	OutcomeCancelled = "cancelled"
)

// CallRecord is what the provider did with one Call-ID.
type CallRecord struct {
	CallID  string `json:"call_id"`
	Invites int    `json:"invites"` // initial INVITE transactions seen
	// Outcome and Code are those of the last INVITE transaction.
	Outcome string    `json:"outcome"`
	Code    int       `json:"code,omitempty"`
	NextHop string    `json:"next_hop,omitempty"` // URI the INVITE was forwarded to
	FarEnd  bool      `json:"far_end,omitempty"`  // answered as the far end
	Ended   bool      `json:"ended"`              // no longer in progress
	Started time.Time `json:"started"`
}

// maxRecords bounds the call history.
const maxRecords = 4096

// call is a call in progress. Its fields are guarded by the provider's mu,
// except the media session and far end, which are safe themselves.
type call struct {
	id        string
	callerTag string // From tag of the initial INVITE: side A
	rec       *CallRecord
	media     *anchoring // nil: SDP untouched
	far       *farEnd    // set when answered as the far end
	ended     bool
}

// Counters returns the running totals.
func (p *Provider) Counters() Counters {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.counters
	c.Failed = maps.Clone(p.counters.Failed)
	c.Active = len(p.calls)
	c.RTPRelayed, c.RTPDropped = p.rtpEnded[0], p.rtpEnded[1]
	for _, cl := range p.calls {
		if cl.media != nil {
			relayed, dropped := sessionRTP(cl.media.sess)
			c.RTPRelayed += relayed
			c.RTPDropped += dropped
		}
	}
	return c
}

// Call returns the record of a Call-ID.
func (p *Provider) Call(callID string) (CallRecord, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.records[callID]
	if !ok {
		return CallRecord{}, false
	}
	return *r, true
}

// Calls returns the records of the last calls, oldest first.
func (p *Provider) Calls() []CallRecord {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]CallRecord, 0, len(p.order))
	for _, id := range p.order {
		out = append(out, *p.records[id])
	}
	return out
}

// record returns the record of a Call-ID, creating it. Called with p.mu held.
func (p *Provider) record(id string) *CallRecord {
	if r, ok := p.records[id]; ok {
		return r
	}
	r := &CallRecord{CallID: id, Outcome: OutcomePending, Started: time.Now()}
	p.records[id] = r
	p.order = append(p.order, id)
	p.counters.Calls++
	if len(p.order) > maxRecords {
		delete(p.records, p.order[0])
		p.order = p.order[1:]
	}
	return r
}

// endCall forgets a call in progress: its media session closes (its RTP
// figures join the totals) and its far end stops.
func (p *Provider) endCall(c *call) {
	if c == nil {
		return
	}
	p.mu.Lock()
	if c.ended {
		p.mu.Unlock()
		return
	}
	c.ended = true
	if p.calls[c.id] == c {
		delete(p.calls, c.id)
	}
	c.rec.Ended = true
	m, far := c.media, c.far
	if m != nil {
		relayed, dropped := sessionRTP(m.sess)
		p.rtpEnded[0] += relayed
		p.rtpEnded[1] += dropped
	}
	p.mu.Unlock()
	if far != nil {
		far.stop()
	}
	if m != nil {
		m.sess.Close()
	}
}

// activeCall finds a call in progress by Call-ID.
func (p *Provider) activeCall(id string) *call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[id]
}

// absorbWindow is how long the ACK of a non-2xx answer may come (RFC 3261
// §17.2.1, Timer H: 64·T1).
const absorbWindow = 32 * time.Second

// expectAck remembers a non-2xx answer to an INVITE: its ACK belongs to
// the INVITE server transaction and ends here (RFC 3261 §17.2.1), but over
// TCP sipgo ends that transaction as soon as the answer is sent.
func (p *Provider) expectAck(req *sip.Request) {
	key := ackKey(req)
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.absorb) >= 1024 && now.Sub(p.swept) > time.Second {
		p.swept = now
		for k, t := range p.absorb {
			if now.Sub(t) > absorbWindow {
				delete(p.absorb, k)
			}
		}
	}
	p.absorb[key] = now
}

// absorbed reports (and forgets) the ACK of a non-2xx answer given here.
func (p *Provider) absorbed(ack *sip.Request) bool {
	key := ackKey(ack)
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.absorb[key]
	delete(p.absorb, key)
	return ok
}

func ackKey(req *sip.Request) string {
	branch := ""
	if v := req.Via(); v != nil {
		branch, _ = v.Params.Get("branch")
	}
	return callID(req) + "\x00" + branch
}
