package rtpstats

import "time"

// ntpUnixOffset is the number of seconds from the NTP epoch (1900-01-01) to
// the Unix epoch (1970-01-01).
const ntpUnixOffset = 2208988800

// NTP returns the 64-bit NTP timestamp (RFC 3550 §4: seconds since 1900 in
// the high 32 bits, binary fraction in the low 32) of a Unix time in
// nanoseconds. The fraction is truncated; the seconds wrap modulo 2^32 (NTP
// era 1 begins in February 2036), which the 32-bit middle field used in
// reports does not notice.
func NTP(unixNano int64) uint64 {
	sec, ns := unixNano/1e9, unixNano%1e9
	if ns < 0 {
		sec, ns = sec-1, ns+1e9
	}
	return uint64(sec+ntpUnixOffset)<<32 | uint64(ns)<<32/1e9
}

// Mid32 returns the middle 32 bits of an NTP timestamp (16 bits of seconds,
// 16 of fraction), the form of LSR and of the arrival time A in §6.4.1.
func Mid32(ntp uint64) uint32 { return uint32(ntp >> 16) }

// fromMid32 converts a duration in units of 1/65536 s to time.Duration,
// rounded to the nanosecond.
func fromMid32(v uint32) time.Duration {
	return time.Duration((uint64(v)*1e9 + 1<<15) >> 16)
}

// RTT computes the round-trip time of RFC 3550 §6.4.1 from a report block
// answered by the far end: A − LSR − DLSR, where A is the arrival time of the
// report as the middle 32 bits of an NTP timestamp, LSR the middle 32 bits of
// the Sender Report it echoes and DLSR the receiver's delay since that SR, all
// in units of 1/65536 s and modulo 2^32. ok is false when LSR is 0 (the far
// end has received no SR) or the result is negative (clocks or report
// inconsistent). A must be on the same clock as the one that stamped the SR;
// [SRLog] avoids that requirement.
func RTT(arrivalMid32, lsr, dlsr uint32) (time.Duration, bool) {
	if lsr == 0 {
		return 0, false
	}
	d := int32(arrivalMid32 - lsr - dlsr)
	if d < 0 {
		return 0, false
	}
	return fromMid32(uint32(d)), true
}

// srLogSize is how many Sender Reports an SRLog remembers. Receivers answer
// the latest SR they have, and SRs go out every few seconds, so 16 covers
// well over a minute for one leg.
const srLogSize = 16

// SRLog remembers when the relay forwarded or sent its most recent Sender
// Reports, so that a Receiver Report that answers one can be timed on the
// relay's own clock: RTT = arrival − sent − DLSR. This measures the leg
// between the relay and the receiver, needs no agreement between the
// receiver's and the sender's wall clocks, and is immune to changes of the
// relay's wall clock. Keep one SRLog per outgoing leg (per destination of
// forwarded SRs); it holds the last 16 SRs across all SSRCs of that leg.
//
// The zero value is ready to use. Fixed size; no method allocates. Not safe
// for concurrent use.
type SRLog struct {
	entries [srLogSize]srEntry
	next    uint8 // ring position of the next Sent
}

type srEntry struct {
	at   int64
	ssrc uint32
	mid  uint32
	used bool
}

// Sent records that the Sender Report of ssrc with NTP timestamp ntp left
// the relay at time at (ns, the caller's monotonic base).
func (l *SRLog) Sent(ssrc uint32, ntp uint64, at int64) {
	l.entries[l.next] = srEntry{at: at, ssrc: ssrc, mid: Mid32(ntp), used: true}
	l.next = (l.next + 1) % srLogSize
}

// Answer times a report block about ssrc (the block's SSRC field, the sender
// of the SR) carrying lsr and dlsr, whose Receiver Report arrived at time at
// (same base as Sent): the round trip is at − sent − DLSR, with sent the time
// of the most recent Sent for ssrc whose middle 32 NTP bits equal lsr. ok is
// false when lsr is 0, no such SR is remembered, or the result is negative.
func (l *SRLog) Answer(ssrc, lsr, dlsr uint32, at int64) (time.Duration, bool) {
	if lsr == 0 {
		return 0, false
	}
	for i := range srLogSize {
		e := &l.entries[(int(l.next)+srLogSize-1-i)%srLogSize]
		if e.used && e.ssrc == ssrc && e.mid == lsr {
			rtt := time.Duration(at-e.at) - fromMid32(dlsr)
			if rtt < 0 {
				return 0, false
			}
			return rtt, true
		}
	}
	return 0, false
}
