// Package kpath is the relay's kernel fast path on Linux: an eBPF program
// on the traffic-control ingress hook (TCX) of the relay's interfaces that
// forwards the RTP of latched streams itself, so that a datagram no longer
// climbs to the relay's socket and is written again from user space.
//
// The relay keeps deciding everything: it latches a side's source from its
// first packets in user space, as before, and only then installs a rule,
// "a datagram from A to the relay's port P leaves from the relay's port Q
// toward B". A matching IPv4/UDP datagram that carries an RTP version 2
// header (and is not RTCP multiplexed on the RTP port, RFC 5761 §4) has its
// addresses and ports rewritten, its checksums updated, and is sent out of
// the interface the kernel's routing table gives for B, with the MAC
// addresses of the neighbour (bpf_fib_lookup), or through the loopback
// device when B is a loopback address. Anything else (no rule, IP options,
// fragments, a VLAN tag, an unresolved neighbour) goes on to the socket as
// before.
//
// For each datagram it forwards the program writes a record into a ring
// buffer: the rule's ID, the datagram's length, its arrival time
// (CLOCK_MONOTONIC) and its 12-byte RTP header. The relay reads them in
// batches and feeds them to the same per-stream statistics (RFC 3550 A.1,
// A.3, A.8), so the measurements do not change with the path. The ring
// never wakes the reader (BPF_RB_NO_WAKEUP): it is polled.
//
// Forwarded datagrams skip the host's netfilter hooks after ingress (no
// conntrack, no SNAT, no OUTPUT rules): a relay whose traffic the host
// itself NATs must not use the fast path.
//
// Loading the program needs CAP_BPF and CAP_NET_ADMIN (or root), and
// attaching it needs TCX (Linux 6.6 or later). The program is built here
// instruction by instruction (cilium/ebpf's asm), so no compiler is needed
// at build time.
package kpath

import (
	"errors"
	"net/netip"
)

// ErrUnsupported is returned by Open where the kernel path cannot exist
// (not Linux).
var ErrUnsupported = errors.New("kpath: the kernel fast path needs Linux")

// Rule forwards the RTP that arrives from In.Src at In.Dst (the relay's
// port facing that side) out of Out.Src (the relay's port facing the other
// side) to Out.Dst. Every address is IPv4.
type Rule struct {
	In, Out Flow
	// ID names the rule in the records of what it forwarded.
	ID uint32
}

// Flow is a datagram's source and destination.
type Flow struct {
	Src, Dst netip.AddrPort
}

// Record is one datagram the kernel forwarded.
type Record struct {
	ID  uint32 // the rule's
	Len int    // bytes from the Ethernet header on
	// At is when the datagram reached the hook, on CLOCK_MONOTONIC.
	At int64
	// RTP is the datagram's RTP fixed header (RFC 3550 §5.1).
	RTP [12]byte
}

// Payload is the UDP payload's length: Len less the Ethernet, IPv4 (no
// options) and UDP headers.
func (r Record) Payload() int { return r.Len - hdrLen }

// Stats are the program's own counts.
type Stats struct {
	// Unrecorded counts datagrams forwarded whose record did not fit in
	// the ring buffer: the statistics miss them.
	Unrecorded uint64
}

const (
	ethLen = 14
	ipLen  = 20
	udpLen = 8
	hdrLen = ethLen + ipLen + udpLen
)

func checkFlow(f Flow) error {
	if !f.Src.Addr().Is4() || !f.Dst.Addr().Is4() {
		return errors.New("kpath: only IPv4 flows")
	}
	return nil
}
