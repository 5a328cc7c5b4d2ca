// Package kpath is the relay's kernel fast path on Linux: an eBPF program
// on the traffic-control ingress hook (TCX) of the relay's interfaces that
// forwards the RTP of latched streams itself, so that a datagram no longer
// climbs to the relay's socket and is written again from user space.
//
// The relay keeps deciding everything: it latches a side's source from its
// first packets in user space, as before, and only then installs a rule,
// "a datagram from A to the relay's port P leaves from the relay's port Q
// toward B". A matching UDP datagram, over IPv4 or IPv6, that carries an
// RTP version 2 header (and is not RTCP multiplexed on the RTP port, RFC
// 5761 §4) has its addresses and ports rewritten and its checksums updated
// incrementally, and is sent out of the interface toward B with the next
// hop's MAC address from the neighbour table (bpf_redirect_neigh, which
// resolves it if need be), or through the loopback device when B is this
// host's own. Anything else (no rule, IPv4 options, IPv6 extension headers,
// fragments, a VLAN tag, a GSO aggregate) goes on to the socket as before.
//
// For each datagram it forwards the program writes a record into a ring
// buffer: the rule's ID, the RTP packet's length, its arrival time
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
	"fmt"
	"net/netip"
)

// ErrUnsupported is returned by Open where the kernel path cannot exist
// (not Linux).
var ErrUnsupported = errors.New("kpath: the kernel fast path needs Linux")

// ErrDeclined is returned by Put for a rule the kernel path does not
// take on by design (the relay's socket forwards that flow).
var ErrDeclined = errors.New("kpath: left to the socket")

// Rule forwards the RTP that arrives from In.Src at In.Dst (the relay's
// port facing that side) out of Out.Src (the relay's port facing the other
// side) to Out.Dst. Every address is of one family, IPv4 or IPv6 (not
// IPv4-mapped).
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
	ID   uint32 // the rule's
	Size int    // the UDP payload's length: the RTP packet's
	// At is when the datagram reached the hook, on CLOCK_MONOTONIC.
	At int64
	// RTP is the datagram's RTP fixed header (RFC 3550 §5.1).
	RTP [12]byte
}

// Stats are the program's own counts.
type Stats struct {
	// Unrecorded counts datagrams forwarded whose record did not fit in
	// the ring buffer: the statistics miss them.
	Unrecorded uint64
}

const (
	ethLen  = 14
	ipLen   = 20
	ip6Len  = 40
	udpLen  = 8
	hdrLen  = ethLen + ipLen + udpLen
	hdrLen6 = ethLen + ip6Len + udpLen
)

// ErrFamily is returned by Put for a rule whose addresses are not all
// IPv4 or all IPv6: the kernel does not translate between them.
var ErrFamily = errors.New("kpath: a rule's addresses must be all IPv4 or all IPv6")

// CheckRule says whether the kernel can forward r: one family throughout,
// IPv4 or IPv6 (an IPv4-mapped address is neither on the wire), and every
// address and port set.
func CheckRule(r Rule) error {
	v4 := r.In.Src.Addr().Is4()
	for _, ap := range []netip.AddrPort{r.In.Src, r.In.Dst, r.Out.Src, r.Out.Dst} {
		a := ap.Addr()
		if !ap.IsValid() || (!a.Is4() && !(a.Is6() && !a.Is4In6())) || a.Is4() != v4 {
			return fmt.Errorf("%w: %s", ErrFamily, ap)
		}
	}
	return nil
}
