// Package impair emulates the network impairment of an RTP path, reproducibly,
// for tests and for emulated SIP providers.
//
// It has two layers:
//
//   - Model is the pure part: given a Config (delay, jitter, reordering,
//     loss rate, mean loss-burst length, seed), it decides for each packet in
//     turn whether it is lost and when it is delivered. It has no clock and no
//     goroutine, does not allocate per packet, and the same Config with the
//     same sequence of calls always gives the same decisions. Loss is a
//     Gilbert–Elliott two-state chain (see Model for the derivation and
//     references); jitter is uniform in [0, 2·Jitter], mean Jitter.
//
//   - Pipe is the only I/O: a UDP forwarder on one socket that sits between
//     an RTP endpoint and its relay (the Upstream). It latches the endpoint as
//     the most recent source other than Upstream, impairs each direction by
//     its own Config, and can change both at run time with SetConfig, as a
//     provider whose path degrades would. Loss decisions are taken in arrival
//     order, so a test can predict exactly which datagrams a Pipe delivers by
//     running a Model with the same Config; only delivery times depend on the
//     clock.
//
// A test routes a call's media through a pipe by pointing the endpoint at
// Pipe.Addr instead of the relay:
//
//	p, err := impair.Listen(ctx, "127.0.0.1:0", relayAddr,
//		impair.Config{Delay: 40 * time.Millisecond, Jitter: 10 * time.Millisecond, LossPct: 3, MeanBurst: 2, Seed: 1}, // up
//		impair.Config{}) // down: unimpaired
//	if err != nil { ... }
//	defer p.Close()
//	// send RTP to p.Addr(); the relay sees it coming from p.Addr() and replies there.
//
// Config carries yaml tags (delay, jitter, reorder, loss_pct, mean_burst,
// seed); validation errors name those keys.
package impair
