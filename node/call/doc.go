// Package call is the pure decision logic of a node's back-to-back user
// agent: one Call per session, driven by events (responses from the callee's
// branches, the caller's CANCEL, ACK and BYE, timers, media liveness) and
// answering with the actions the SIP layer must take. It holds no clock,
// socket or goroutine: node/b2bua owns those and feeds Step.
//
// A call has the caller's dialog (side A, where the node is the UAS) and
// one client branch per registered contact of the callee (side B, where the
// node is the UAC). Branches fork in parallel: the first 2xx wins, the
// others are cancelled, and a 2xx that arrives after the winner is
// acknowledged and ended with BYE (RFC 3261 §13.2.2.4, §16.7).
package call
