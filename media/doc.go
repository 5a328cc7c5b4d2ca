// Package media anchors RTP at a node: a relay that allocates port pairs,
// latches each side's real source, forwards RTP and RTCP between the two legs
// of a session, measures every stream and summarises the voice quality of
// each leg and of the session.
//
// The relay is the only part of media that owns sockets and goroutines. The
// measurement and scoring it relies on are pure and live in sub-packages:
//
//   - media/rtpstats: RFC 3550 statistics (loss, jitter, burst ratio, RTT)
//     on arrival times given as arguments;
//   - media/quality: the ITU-T G.107 E-model (R and MOS);
//   - media/sdpedit: inspecting and rewriting SDP to the relay's address;
//   - media/impair: reproducible delay, jitter and bursty loss for tests and
//     emulated providers.
//
// A session has two legs, A (toward the caller) and B (toward the callee).
// Media that side A sends arrives on leg A's ports and leaves from leg B's
// ports toward side B, and the other way round. The call layer tells each
// leg what its side signalled in SDP (Leg.Signal) and advertises the other
// leg's ports to it (Leg.Local).
package media
