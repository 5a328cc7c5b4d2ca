// Package routing chooses the path of a call through the federation: a
// linear chain of service providers from the ingress node to the egress node
// (or to the provider that terminates a dialled number), the cheapest per
// minute among the paths that every SLA, provider segment, live call count
// and class policy allows, with predicted voice quality as the first
// tie-break.
//
// The package is pure: the catalogue, measurements, live call counts,
// quarantined providers and the time are arguments. A Graph is built once per
// catalogue (NewGraph) and answers any number of Plan calls; Plan does no I/O,
// starts no goroutines and is safe for concurrent use.
//
// # Graph
//
// Vertices are nodes and providers. A node–provider SLA is an edge both ways
// (only Between[0]→Between[1] when OneWay); a provider–provider SLA
// (interconnect) likewise; a node–node SLA with a Direct link is a path of
// zero providers between the two nodes.
//
// Every node–node SLA is also a peering: node A may enter provider P through
// its peer B's contract B–P (edge A→P, when B–P carries traffic B→P) at the
// contract's price plus the peering's MarkupPerMinute, and the egress node
// E may be reached from P through its peer's contract (edge P→E, when the
// contract carries traffic P→B). A peer is not a hop: the path stays A → P →
// …, and the path's SLA list names, for each edge, the contract and then the
// peering SLA. The edge's delay and loss are the contract's; the peering adds
// its markup, its validity, segments and capacity, but no delay. A OneWay
// node–node SLA lets only Between[0] use Between[1]'s contracts, and its
// direct link carries calls from Between[0] to Between[1] only. A node–node
// SLA's Price.PerMinute is not used: the markup prices the peering and
// Direct.PerMinute the direct link.
//
// # Paths
//
// A path is ingress node → provider … → egress node, or, for a call to a
// number, ingress node → provider … → terminating provider. It has at most
// the class's max_hops providers (sla.DefaultMaxHops when 0) and no vertex
// twice; nodes other than the two ends are never part of a path. Every
// provider inside the path offers transit for the destination
// (sla.Provider.Offers with sla.Transit; a call to a user has no number, so
// only "*" segments match). A provider followed by another provider needs a
// proxy access point: a trunk routes on the Request-URI, so a trunk-only
// provider may only be the last provider.
//
// Termination is longest-prefix: the prefix length L of a number is the
// longest location prefix of any termination segment, of any provider in the
// catalogue, that matches the call (number, class and time). Only providers
// whose own matching termination prefix has length L may terminate the call.
// The comparison is over the whole catalogue on purpose: a quarantined,
// saturated or unreachable provider with the longer prefix still hides the
// shorter ones, so that every node, whatever its view of quarantine and live
// counts, agrees on which providers may terminate a number (such providers
// are reported as rejected with ReasonShorterPrefix when reached).
//
// # Figures
//
// Each edge has a delay and a loss: the latest single-SLA measurement of its
// SLA (Measurement.SLA; the last in catalogue order wins) when there is one,
// else the SLA's guarantee (MaxDelayMs, MaxLossPct; for a direct link
// Direct's fields, then the SLA's Guarantees), and where the guarantee is 0
// ("none promised") the pessimistic Options.DefaultDelayMs and
// DefaultLossPct (50 ms, 1 %). Along a path, delay is the sum of the edge
// delays in path order, and loss is 1 − Π(1 − loss) computed as a product of
// survival ratios in path order. A whole-path measurement (Measurement.Path,
// the path's SLA ids in order) replaces the composed delay and loss of
// exactly that path, and marks it Measured.
//
// Predicted quality is the ITU-T G.107 E-model (package quality, burst ratio
// 1) on the mouth-to-ear delay
//
//	DelayMs + (caller access + callee access + jitter buffer + packetization)
//
// where packetization is the codec's RTP packet time plus its look-ahead
// (RFC 3551 Table 1; ITU-T G.114 counts both as one-way delay), the jitter
// buffer defaults to 40 ms, and an access leg is the user-access SLA
// [NODE, CLASS] of the end's node and the user's class, when one is valid
// (the first in catalogue order), with its delay and loss taken as for an
// edge (measurement, else guarantee, else the defaults). The sums run left
// to right as written. The loss fed to the model is
// 1 − (1 − path loss)·Π(1 − access loss). A call to a number has only the
// caller's access leg. The codec is G.711 with packet-loss concealment
// (G.711 Appendix I) unless the options or the request name another.
//
// Path.DelayMs and Path.LossPct are the network figures (without access
// legs); the class's max_delay_ms and max_loss_pct limit them, min_mos limits
// the predicted MOS, max_price_per_minute the price and max_hops the number
// of providers.
//
// # Order
//
// Feasible paths are ordered by price per minute (exact decimal, sla.Money),
// then higher MOS, then fewer providers, then the hop ids compared element by
// element (a shorter list first on a common prefix), then the SLA ids edge by
// edge (each edge's contract, then its peering SLA, an edge without peering
// first). The order is total, so every node computes the same answer from the
// same catalogue.
//
// # Exactness
//
// Plan is exact: a best-first label-setting search on price with dominance
// pruning. A label is a path prefix ending at a provider, with its price,
// composed delay, survival ratio, provider count and visited vertices.
// Along any extension price and delay grow and survival shrinks (edge prices
// are non-negative, delays non-negative, losses in [0, 100]; IEEE addition and
// multiplication by a non-negative number are monotone), and the E-model's R
// is non-increasing in mouth-to-ear delay and loss over the range used (a test
// sweeps it), so MOS is too. A label X dominates a label Y at the same vertex
// when X's visited set is a subset of Y's, X is no worse on price, delay,
// survival and provider count, and X wins the tie-breaks that MOS cannot
// decide: X is strictly cheaper, or has fewer providers, or has the same
// provider count and precedes Y in the hop-id/SLA-id order (with equal
// lengths that order of prefixes is the order of the completed paths). Then
// for every suffix S that completes Y feasibly, X+S is a feasible path (the
// suffix avoids X's vertices, fits the hop limit, meets every policy limit)
// that precedes Y+S. A label is dropped only when k distinct labels dominate
// it: then k distinct feasible paths precede each completion of it, so none of
// its completions is among the k best. Dominators need not survive themselves
// for this argument, since the paths they stand for exist regardless.
//
// Whole-path measurements break the additive figures, for exactly the
// measured paths. A label whose SLA sequence is a prefix of a measured path
// (tracked with a trie of the measured sequences) therefore takes no part in
// dominance, neither as dominator nor as dominated, and is not pruned by the
// delay, loss or MOS limits; every other label has no measured completion, so
// the argument above holds for it and for its dominators. Such labels are
// few: at most one per trie node.
//
// The search pops labels in order of price plus a lower bound on the price
// still to pay (the least price from the label's vertex to the target over
// all edges, feasible or not, computed once per target by a backward
// Dijkstra), and stops when k paths are known and the least such key among
// open labels exceeds the k-th price: every completion of an open label
// costs at least its key, so no later path can precede the k-th. A label
// whose key already exceeds the k-th price, or whose vertex cannot reach
// the target at all, is not created. Labels whose key equals the k-th
// price are still expanded, since they may win on MOS or the later
// tie-breaks.
//
// # Rejections
//
// Result.Rejected lists what the search met and left out, once each, by
// id: an SLA expired, not yet valid, without a segment for the call, or at
// capacity; a provider quarantined, without transit for the destination,
// trunk-only where another provider would follow, or terminating a
// shorter prefix; an SLA whose own price (or, without whole-path
// measurements, delay or loss) breaks the class policy. What the search
// never reached (being too dear or unable to reach the target) is not
// listed. When no path is feasible, Result.Reason says why in a sentence.
package routing
