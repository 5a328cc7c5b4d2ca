// Package rtpstats measures RTP streams as a media relay sees them: packets
// and bytes, sequence-number loss with its burstiness, reordering and
// duplicates, interarrival jitter, the packetization interval, and the RTCP
// report block (RFC 3550 §6.4.1) that sums it up. It also holds the NTP
// helpers and the Sender Report log the relay needs to time round trips.
//
// The package is pure: no clocks, no goroutines, no I/O, no allocation on the
// per-packet path. The caller passes every arrival time (int64 nanoseconds on
// any monotonic base of its choosing) and every packet field it parsed.
//
// # Streams
//
// A [Stream] follows one direction of one RTP source. [Stream.Update] takes
// each packet as it arrives; [Stream.Stats] is a side-effect-free snapshot;
// [Stream.Report] builds a report block and closes the reporting interval.
// A Stream is not safe for concurrent use: feed it from one goroutine or
// guard it.
//
//   - Sequence numbers follow RFC 3550 Appendix A.1 (extended sequence
//     numbers over wrap-around, MAX_DROPOUT 3000, MAX_MISORDER 100, the
//     bad_seq resynchronisation after a confirmed large jump), without the
//     probation period: the relay has already bound the packet to a
//     negotiated session, so the first packet of a source starts it.
//   - Loss is counted per A.3 (expected − received, so duplicates can make it
//     negative) and the report block carries the 8-bit interval fraction and
//     the 24-bit clamped cumulative count.
//   - Jitter is the A.8 estimator, J += (|D| − J)/16, in RTP timestamp units
//     of the payload type's clock; payload types with clock 0 in [Clocks]
//     (telephone-event, comfort noise) are counted but not timed.
//   - Loss runs are decided in a reordering window of [Window] sequence
//     numbers behind the highest one seen: a packet that arrives while its
//     number is still in the window fills its gap and counts as reordered,
//     never as lost. When a number leaves the window it is classified
//     received or lost, and that classification feeds the burst ratio
//     (ITU-T G.113 Appendix I BurstR, as used by the G.107 E-model).
//
// A change of SSRC restarts every statistic of the source (the totals
// Packets, Bytes, FirstArrival and LastArrival stay). Stragglers of the
// previous source that arrive just after the change are counted in the totals
// and as Stray, and otherwise ignored.
//
// # The pending window in Stats
//
// Stats reports the burst metrics as if the reordering window closed at the
// moment of the call: numbers still inside it that have not arrived are
// counted provisionally as lost (Stats.Pending says how many), exactly as the
// A.3 count already counts them. A later arrival fills the gap and the next
// snapshot no longer counts it. Nothing in the Stream changes when Stats is
// called, so a final Stats at the end of a call includes the tail of the
// stream.
//
// # Round-trip time
//
// [NTP], [Mid32] and [RTT] implement the §4 timestamp format and the §6.4.1
// computation A − LSR − DLSR. [SRLog] times the answer on the relay's own
// clock instead: it remembers when each Sender Report left the relay, so the
// Receiver Report that echoes it gives the round trip of the leg beyond the
// relay, free of any wall-clock offset.
//
// References: RFC 3550 (RTP), RFC 3551 (static payload types), ITU-T G.113
// Appendix I and G.107 (BurstR).
package rtpstats
