package media

import (
	"math"
	"time"

	"github.com/callmesh/callmesh/media/quality"
)

// LegQuality is what the relay knows of one leg. "In" is what the leg's
// side sent, measured at the relay; "Far" is what the side reported, in
// RTCP, of the stream the relay forwarded to it (end to end, as the relay
// keeps sequence numbers).
type LegQuality struct {
	Side       string `json:"side"`
	Remote     string `json:"remote,omitempty"` // latched source, else signalled address
	Codec      string `json:"codec,omitempty"`
	Secure     bool   `json:"secure,omitempty"`
	PacketsIn  uint64 `json:"packets_in"`
	BytesIn    uint64 `json:"bytes_in"`
	PacketsOut uint64 `json:"packets_out"`
	BytesOut   uint64 `json:"bytes_out"`
	RTCPIn     uint64 `json:"rtcp_in"`
	RTCPOut    uint64 `json:"rtcp_out"`

	LossPct    float64 `json:"loss_pct"`
	JitterMs   float64 `json:"jitter_ms"`
	BurstRatio float64 `json:"burst_ratio"`
	Duplicates uint64  `json:"duplicates"`
	Reordered  uint64  `json:"reordered"`

	FarLossPct  float64 `json:"far_loss_pct,omitempty"`
	FarJitterMs float64 `json:"far_jitter_ms,omitempty"`
	FarKnown    bool    `json:"far_known"`

	RTTMs    float64 `json:"rtt_ms"`
	RTTKnown bool    `json:"rtt_known"`

	Strangers uint64 `json:"strangers,omitempty"` // refused by latching
	Junk      uint64 `json:"junk,omitempty"`      // not RTP/RTCP, or malformed
	NoRoute   uint64 `json:"no_route,omitempty"`  // nowhere to send yet
	// ImpairDropped counts RTP toward this side that the leg's own
	// impairment (Leg.Impair) dropped.
	ImpairDropped uint64 `json:"impair_dropped,omitempty"`

	MouthToEarMs float64 `json:"mouth_to_ear_ms"`
	R            float64 `json:"r"`
	MOS          float64 `json:"mos"`
}

// Summary is the quality of a session: each leg, and the voice as heard at
// either end (the worse of the two directions that carry media).
type Summary struct {
	ID           string        `json:"id"`
	Legs         [2]LegQuality `json:"legs"`
	LossPct      float64       `json:"loss_pct"`
	JitterMs     float64       `json:"jitter_ms"`
	RTTMs        float64       `json:"rtt_ms"`
	MouthToEarMs float64       `json:"mouth_to_ear_ms"`
	R            float64       `json:"r"`
	MOS          float64       `json:"mos"`
	Measured     bool          `json:"measured"` // media flowed; R and MOS mean something
}

// direction is one way the voice travels, as the E-model needs it.
type direction struct {
	codec                    quality.Codec
	lossPct, burst, jitterMs float64
	oneWayMs, ptimeMs        float64
}

// mouthToEar estimates Ta: network one-way delay, a receive jitter buffer
// of twice the jitter (at least the configured minimum), packetization and
// codec look-ahead (G.107 §7.3 takes Ta as the absolute one-way delay).
func (c Config) mouthToEar(d direction) float64 {
	jb := math.Max(2*d.jitterMs, float64(c.MinJitterBuffer)/float64(time.Millisecond))
	return d.oneWayMs + jb + d.ptimeMs + d.codec.LookaheadMs
}

func (c Config) score(d direction) (ta, r, mos float64) {
	ta = c.mouthToEar(d)
	r, mos = quality.Estimate(d.codec, ta, d.lossPct, d.burst)
	return ta, r, mos
}

// Summary computes the session's quality now.
func (s *Session) Summary() Summary {
	cfg := s.relay.cfg
	s.relay.drainKernel()
	s.mu.Lock()
	defer s.mu.Unlock()
	sum := Summary{ID: s.id}
	var dirs [2]direction // dirs[X]: voice sent by side X
	var flows [2]bool
	for i, l := range s.legs {
		st := l.in.Stats()
		q := LegQuality{
			Side:          l.side.String(),
			Secure:        l.remote.Secure,
			PacketsIn:     st.Packets + l.rawPackets,
			BytesIn:       st.Bytes + l.rawBytes,
			PacketsOut:    l.sentPackets,
			BytesOut:      l.sentBytes,
			RTCPIn:        l.rtcpIn,
			RTCPOut:       l.rtcpOut,
			LossPct:       st.LossPct,
			JitterMs:      st.JitterMs,
			BurstRatio:    st.BurstRatio,
			Duplicates:    st.Duplicates,
			Reordered:     st.Reordered,
			FarKnown:      l.farKnown,
			RTTKnown:      l.rttKnown,
			Strangers:     l.strangers,
			Junk:          l.junk + l.malformed,
			NoRoute:       l.noRoute,
			ImpairDropped: l.egressDrop,
		}
		if dst := l.rtpDest(); dst.IsValid() {
			q.Remote = dst.String()
		}
		if l.farKnown {
			q.FarLossPct, q.FarJitterMs = l.farLoss, l.farJitter
		}
		if l.rttKnown {
			q.RTTMs = float64(l.rtt) / float64(time.Millisecond)
		}
		var codec quality.Codec
		q.Codec, codec = l.codec(cfg.PLC)
		ptime := st.PtimeMs
		if ptime == 0 {
			ptime = float64(l.remote.PtimeMs)
		}
		if ptime == 0 {
			ptime = codec.FrameMs
		}
		// The leg alone: its worse direction over its own round trip.
		legDir := direction{codec: codec, lossPct: math.Max(q.LossPct, q.FarLossPct),
			burst: q.BurstRatio, jitterMs: math.Max(q.JitterMs, q.FarJitterMs),
			oneWayMs: q.RTTMs / 2, ptimeMs: ptime}
		if st.Packets > 0 || l.sentPackets > 0 {
			q.MouthToEarMs, q.R, q.MOS = cfg.score(legDir)
		}
		sum.Legs[i] = q
		dirs[i] = direction{codec: codec, lossPct: q.LossPct, burst: q.BurstRatio,
			jitterMs: q.JitterMs, ptimeMs: ptime}
		flows[i] = st.Packets > 0
	}
	oneWay := (sum.Legs[A].RTTMs + sum.Legs[B].RTTMs) / 2
	sum.RTTMs = sum.Legs[A].RTTMs + sum.Legs[B].RTTMs
	sum.R = math.Inf(1)
	for x := A; x <= B; x++ {
		if !flows[x] {
			continue
		}
		d := dirs[x]
		// What the listener reported covers the whole way (the relay keeps
		// sequence numbers), so it replaces the relay's half-way view.
		if far := sum.Legs[x.other()]; far.FarKnown {
			d.lossPct = math.Max(d.lossPct, far.FarLossPct)
			d.jitterMs = math.Max(d.jitterMs, far.FarJitterMs)
		}
		d.oneWayMs = oneWay
		ta, r, mos := cfg.score(d)
		if r < sum.R {
			sum.R, sum.MOS, sum.MouthToEarMs = r, mos, ta
			sum.LossPct, sum.JitterMs = d.lossPct, d.jitterMs
		}
		sum.Measured = true
	}
	if !sum.Measured {
		sum.R = 0
	}
	return sum
}

// codec is the encoding name and E-model codec of the leg's last timed
// payload type. An unknown or not yet seen codec is scored as G.711, the
// codec every SIP endpoint offers. Called with s.mu held.
func (l *Leg) codec(plc bool) (string, quality.Codec) {
	name := "PCMU"
	if l.lastPT >= 0 && l.names[l.lastPT] != "" {
		name = l.names[l.lastPT]
	} else if l.lastPT == 8 {
		name = "PCMA"
	} else if l.lastPT == 18 {
		name = "G729"
	} else if l.lastPT == 4 {
		name = "G723"
	}
	if c, ok := quality.LookupCodec(name, plc); ok {
		return name, c
	}
	c, _ := quality.LookupCodec("PCMU", plc)
	return name, c
}
