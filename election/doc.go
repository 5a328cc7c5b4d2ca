// Package election chooses, for every call session, the node of the
// federation that is its master (the node that computes the session's path
// and owns its state), and the ordered successors that take over when the
// master fails. Every node computes the ranking on its own from its
// membership view, with no coordination: nodes whose views agree (or differ
// only in ways the quantization hides) compute the same master.
//
// The package is pure: it does no I/O, starts no goroutines, keeps no state
// and is safe for concurrent use. Its input is plain values; the caller
// converts its membership view into Candidates.
//
// # Candidates and weights
//
// A candidate is eligible when it is Live and not Draining; the others are
// never ranked. Its weight is
//
//	weight = round(headroom × health / quantum) × quantum
//
// rounded to the nearest multiple of the quantum (halves up; DefaultQuantum
// is 1/16), where
//
//   - headroom is the share of the node's capacity that is free:
//     1 − ActiveCalls/Capacity when Capacity > 0; 0 when Capacity is 0 (the
//     node takes no calls); 1 − Load when Capacity is negative
//     (UnknownCapacity: only the node's own load estimate is known). Load is
//     not used when Capacity ≥ 0: the call count is an exact integer that
//     every node reads from the same heartbeat.
//   - health is the caller's judgement of the node, in [0, 1] (1: fully
//     healthy; 0: do not use unless nothing else is left).
//
// Both factors are clamped to [0, 1], and NaN counts as 0. The quantization
// makes the weight a step function of the heartbeat, so two views that saw
// different heartbeats of a node usually agree on its weight anyway, and on
// every master when they do.
//
// A candidate whose weight is 0 (less than half a quantum of headroom × health:
// saturated, nearly saturated or unhealthy) is still ranked, after every
// candidate of positive weight, so that a session has a master even when every
// node is saturated. Among themselves zero-weight candidates are ordered by
// unweighted rendezvous hashing (u below, larger first), which spreads the
// sessions evenly over them rather than sending them all to one node. Their
// Score is reported as 0.
//
// # Ranking: weighted rendezvous hashing
//
// The ranking is rendezvous, or highest-random-weight (HRW), hashing
// (D. G. Thaler and C. V. Ravishankar, "Using name-based mappings to increase
// hit rates", IEEE/ACM Transactions on Networking 6(1), 1998): every
// candidate gets a pseudo-random number u in (0, 1) from a hash of the pair
// (session, candidate ID), and candidates are ordered by a score derived from
// it. The weighted score is
//
//	score = −weight / ln(u)
//
// Since −ln(u) of a uniform u is exponentially distributed with mean 1,
// −ln(u)/weight is exponential with rate weight, and the smallest of
// independent exponentials is the one of rate w_i with probability
// w_i / Σw: the highest score wins with probability proportional to its
// weight. A score depends only on the session and the candidate itself, so
// removing a node moves only the sessions it was master of (to their next
// successor), and adding a node takes sessions only to itself.
//
// Candidates are ordered by score, highest first; equal scores (and equal u
// among zero-weight candidates) are ordered by the bytes of the ID, then of
// the Name, so the order is total and independent of the input order. IDs
// are expected to be unique.
//
// # Hash
//
// u is computed from the 64-bit FNV-1a hash of the byte string
//
//	len(session) as 8 bytes, little-endian ‖ session ‖ ID
//
// (the length prefix makes the pair unambiguous), passed through the
// splitmix64 finalizer (xor-shift 30, multiply 0xbf58476d1ce4e5b9, xor-shift
// 27, multiply 0x94d049bb133111eb, xor-shift 31), whose avalanche makes up
// for FNV's weak mixing of the high bits into the low ones. The top 52 bits x
// of the result give u = (x + 0.5) / 2^52, exactly representable and strictly
// inside (0, 1) (with 53 bits, x + 0.5 is not representable for x ≥ 2^52 and
// the largest x would round to u = 1). The hash is part of the federation's
// protocol, as are DefaultQuantum and the headroom rule: nodes that compute
// them differently elect different masters, so a change needs every node
// upgraded at once. TestGolden pins them.
//
// The hash is deterministic on every machine; scores use math.Log, which is
// accurate to within one ulp but not bit-identical on every architecture,
// so two machines of different architectures could order two scores that are
// equal to within an ulp differently — a chance of the order of 1e-15 per
// session.
//
// # Use
//
// The caller converts its view: the live members (with State live) and
// itself, since a view does not contain its owner — every node must rank the
// same set, its own node included. For example, for a member m:
//
//	election.Candidate{
//		ID: m.ID.String(), Name: m.Name,
//		Capacity: m.Capacity, ActiveCalls: m.ActiveCalls, Load: m.Load,
//		Health: health(m), Draining: m.Draining, Live: m.State == gossip.Live,
//	}
//
// ID is the text form of the peer ID (base58, as printed), the same on every
// node. Master returns the master alone, without sorting or allocating;
// Rank returns the master and its successors; AppendRank writes the ranking
// into a caller's buffer. The methods of Quantum do the same with another
// quantization step.
package election
