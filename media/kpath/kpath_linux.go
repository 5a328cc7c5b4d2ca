package kpath

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

const (
	// maxRules bounds the rules: two per session (one per direction).
	maxRules = 1 << 17
	// ringSize is the ring buffer of records, a power of two of pages: at
	// 32 bytes a record it holds 262,144, over 2 s of 100,000 datagrams/s.
	ringSize = 8 << 20
	recLen   = 32
	// maxDrain bounds one Drain (a ring's worth), so a ring refilled as
	// fast as it is read does not keep the caller.
	maxDrain = ringSize / recLen

	keyLen    = 12 // saddr, daddr, sport, dport as on the wire
	valueLen  = 24 // the new flow, then ifindex, ID, flags
	keyLen6   = 36
	valueLen6 = 48

	flagLocal = 1 // the destination is a loopback address: out through lo

	tcxNext = -1 // TCX_NEXT: let the next program and the stack have it
	tcShot  = 2  // TC_ACT_SHOT
)

// Path is the loaded program, its maps and its attachments.
type Path struct {
	prog   *ebpf.Program
	rules  *ebpf.Map // IPv4
	rules6 *ebpf.Map
	ring   *ebpf.Map
	counts *ebpf.Map
	links  []link.Link
	lo     int // the loopback interface's index

	mu     sync.Mutex // serialises Drain, and Drain with Close
	reader *ringbuf.Reader
	rec    ringbuf.Record
	closed bool
}

// Open loads the program and attaches it to the ingress of the given
// interfaces (by index).
func Open(ifaces []int) (*Path, error) {
	lo, err := loopbackIndex()
	if err != nil {
		return nil, err
	}
	p := &Path{lo: lo}
	ok := false
	defer func() {
		if !ok {
			p.Close()
		}
	}()
	if p.rules, err = ebpf.NewMap(&ebpf.MapSpec{Name: "cm_rules4", Type: ebpf.Hash, KeySize: keyLen, ValueSize: valueLen, MaxEntries: maxRules, Flags: unix.BPF_F_NO_PREALLOC}); err != nil {
		return nil, fmt.Errorf("kpath: rules map: %w", err)
	}
	if p.rules6, err = ebpf.NewMap(&ebpf.MapSpec{Name: "cm_rules6", Type: ebpf.Hash, KeySize: keyLen6, ValueSize: valueLen6, MaxEntries: maxRules, Flags: unix.BPF_F_NO_PREALLOC}); err != nil {
		return nil, fmt.Errorf("kpath: rules map: %w", err)
	}
	if p.ring, err = ebpf.NewMap(&ebpf.MapSpec{Name: "cm_records", Type: ebpf.RingBuf, MaxEntries: ringSize}); err != nil {
		return nil, fmt.Errorf("kpath: ring buffer: %w", err)
	}
	if p.counts, err = ebpf.NewMap(&ebpf.MapSpec{Name: "cm_counts", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1}); err != nil {
		return nil, fmt.Errorf("kpath: counters: %w", err)
	}
	if p.prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "cm_rtp_fwd",
		Type: ebpf.SchedCLS,
		// The program calls no GPL-only helper, so it needs no
		// GPL-compatible licence declaration.
		License:      "Proprietary",
		Instructions: program(p.rules.FD(), p.rules6.FD(), p.ring.FD(), p.counts.FD()),
	}); err != nil {
		return nil, fmt.Errorf("kpath: load program: %w", err)
	}
	for _, ifindex := range ifaces {
		l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: p.prog, Attach: ebpf.AttachTCXIngress})
		if err != nil {
			return nil, fmt.Errorf("kpath: attach to interface %d: %w", ifindex, err)
		}
		p.links = append(p.links, l)
	}
	if p.reader, err = ringbuf.NewReader(p.ring); err != nil {
		return nil, fmt.Errorf("kpath: ring reader: %w", err)
	}
	ok = true
	return p, nil
}

// Close detaches the program and frees its maps. Datagrams then reach the
// relay's sockets again.
func (p *Path) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	var errs []error
	for _, l := range p.links {
		errs = append(errs, l.Close())
	}
	p.links = nil
	if p.reader != nil {
		errs = append(errs, p.reader.Close())
	}
	// A nil *ebpf.Program or *ebpf.Map closes without error.
	for _, c := range []interface{ Close() error }{p.prog, p.rules, p.rules6, p.ring, p.counts} {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// Put installs or replaces the rule for r.In.
func (p *Path) Put(r Rule) error {
	if err := CheckRule(r); err != nil {
		return err
	}
	ifindex, local, err := p.route(r.In.Src.Addr(), r.Out.Dst.Addr())
	if err != nil {
		return err
	}
	m, f := p.rules, layout4
	if r.In.Src.Addr().Is6() {
		m, f = p.rules6, layout6
	}
	v := make([]byte, f.vFlags+4)
	copy(v, flowBytes(r.Out))
	binary.NativeEndian.PutUint32(v[f.vIfindex:], uint32(ifindex))
	binary.NativeEndian.PutUint32(v[f.vID:], r.ID)
	if local {
		binary.NativeEndian.PutUint32(v[f.vFlags:], flagLocal)
	}
	if err := m.Put(flowBytes(r.In), v); err != nil {
		return fmt.Errorf("kpath: put rule: %w", err)
	}
	return nil
}

// route is the interface a datagram from src to dst leaves by, and whether
// dst is this host's own (then the loopback device carries it, as the stack
// would), as the kernel's routing table says (RTM_GETROUTE).
//
// A datagram for this host is forwarded only when it also comes from this
// host: it then arrives through the loopback device still carrying its
// sender's local route, which delivers it again after the rewrite. One from
// another host carries no route, and the stack, routing it afresh, would
// refuse the relay's own address as its source (a martian); the relay's
// socket forwards those.
func (p *Path) route(src, dst netip.Addr) (ifindex int, local bool, err error) {
	oif, local, err := routeGet(dst)
	if err != nil {
		return 0, false, err
	}
	if !local {
		return oif, false, nil
	}
	if !HostHas(src) {
		return 0, false, fmt.Errorf("%w: %s is this host's and %s is not", ErrDeclined, dst, src)
	}
	return p.lo, true, nil
}

// routeGet asks the kernel for its route to dst: the output interface, and
// whether the route is a local one (RTN_LOCAL).
func routeGet(dst netip.Addr) (oif int, local bool, err error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return 0, false, fmt.Errorf("kpath: route to %s: %w", dst, err)
	}
	defer unix.Close(fd)
	family, addr := unix.AF_INET, dst.AsSlice()
	if dst.Is6() {
		family = unix.AF_INET6
	}
	attrLen := unix.SizeofRtAttr + len(addr)
	b := make([]byte, unix.SizeofNlMsghdr+unix.SizeofRtMsg+attrLen)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(len(b)))
	ne.PutUint16(b[4:], unix.RTM_GETROUTE)
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(b[8:], 1) // sequence number
	rt := b[unix.SizeofNlMsghdr:]
	rt[0] = byte(family)
	rt[1] = byte(8 * len(addr)) // destination prefix length: the host
	at := rt[unix.SizeofRtMsg:]
	ne.PutUint16(at[0:], uint16(attrLen))
	ne.PutUint16(at[2:], unix.RTA_DST)
	copy(at[unix.SizeofRtAttr:], addr)
	if err := unix.Sendto(fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, false, fmt.Errorf("kpath: route to %s: %w", dst, err)
	}
	reply := make([]byte, 8192)
	n, _, err := unix.Recvfrom(fd, reply, 0)
	if err != nil {
		return 0, false, fmt.Errorf("kpath: route to %s: %w", dst, err)
	}
	msgs, err := syscall.ParseNetlinkMessage(reply[:n])
	if err != nil || len(msgs) == 0 {
		return 0, false, fmt.Errorf("kpath: route to %s: unreadable reply", dst)
	}
	m := msgs[0]
	if m.Header.Type == unix.NLMSG_ERROR {
		if len(m.Data) >= 4 {
			if code := int32(ne.Uint32(m.Data)); code < 0 {
				return 0, false, fmt.Errorf("kpath: no route to %s: %w", dst, syscall.Errno(-code))
			}
		}
		return 0, false, fmt.Errorf("kpath: no route to %s", dst)
	}
	if m.Header.Type != unix.RTM_NEWROUTE || len(m.Data) < unix.SizeofRtMsg {
		return 0, false, fmt.Errorf("kpath: route to %s: unexpected reply %d", dst, m.Header.Type)
	}
	local = m.Data[7] == unix.RTN_LOCAL // rtmsg.rtm_type
	attrs, err := syscall.ParseNetlinkRouteAttr(&m)
	if err != nil {
		return 0, false, fmt.Errorf("kpath: route to %s: %w", dst, err)
	}
	for _, a := range attrs {
		if a.Attr.Type == unix.RTA_OIF && len(a.Value) >= 4 {
			return int(ne.Uint32(a.Value)), local, nil
		}
	}
	return 0, false, fmt.Errorf("kpath: route to %s names no interface", dst)
}

// HostHas says whether addr is one of this host's addresses (the routing
// table has a local route to it): a rule's relay address must be, or
// nothing ever matches it.
func HostHas(addr netip.Addr) bool {
	_, local, err := routeGet(addr.Unmap().WithZone(""))
	return err == nil && local
}

// Delete removes the rule for in, if there is one.
func (p *Path) Delete(in Flow) error {
	if CheckRule(Rule{In: in, Out: in}) != nil {
		return nil
	}
	m := p.rules
	if in.Src.Addr().Is6() {
		m = p.rules6
	}
	if err := m.Delete(flowBytes(in)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("kpath: delete rule: %w", err)
	}
	return nil
}

// Drain hands every record in the ring to f, oldest first, and says how
// many there were. It does not wait for more. After Close it reads nothing.
func (p *Path) Drain(f func(*Record)) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, nil
	}
	p.reader.SetDeadline(time.Now().Add(-time.Second))
	var r Record
	n := 0
	for n < maxDrain {
		err := p.reader.ReadInto(&p.rec)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("kpath: read records: %w", err)
		}
		b := p.rec.RawSample
		if len(b) < recLen {
			continue
		}
		r.ID = binary.NativeEndian.Uint32(b[0:])
		r.Size = int(binary.NativeEndian.Uint32(b[4:]))
		r.At = int64(binary.NativeEndian.Uint64(b[8:]))
		copy(r.RTP[:], b[16:28])
		n++
		f(&r)
	}
	return n, nil
}

// Stats reads the program's counters.
func (p *Path) Stats() (Stats, error) {
	var v uint64
	if err := p.counts.Lookup(uint32(0), &v); err != nil {
		return Stats{}, fmt.Errorf("kpath: counters: %w", err)
	}
	return Stats{Unrecorded: v}, nil
}

// Unavailable says whether err, from Open, means that the kernel path
// cannot exist here (no CAP_BPF or CAP_NET_ADMIN, no TCX or a helper this
// kernel lacks), as opposed to a defect such as a program the verifier
// rejects.
func Unavailable(err error) bool {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		return false // the verifier explains why it refused the program
	}
	return errors.Is(err, ErrUnsupported) || errors.Is(err, ebpf.ErrNotSupported) ||
		errors.Is(err, os.ErrPermission) // EPERM and EACCES both match it
}

// Monotonic is CLOCK_MONOTONIC now, the clock of Record.At.
func Monotonic() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// Interfaces are the interfaces whose ingress must carry the program for a
// relay bound to bind: the one holding the address, or every interface that
// is up for a wildcard; and always the loopback device, through which the
// host's own traffic to any of its addresses passes. Only Ethernet devices
// (a 6-byte hardware address) and the loopback device qualify: the program
// reads an Ethernet header, which layer-3 devices (tunnels, WireGuard) do
// not have.
func Interfaces(bind netip.Addr) ([]int, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("kpath: interfaces: %w", err)
	}
	var out []int
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || (ifc.Flags&net.FlagLoopback == 0 && len(ifc.HardwareAddr) != 6) {
			continue
		}
		if ifc.Flags&net.FlagLoopback != 0 || bind.IsUnspecified() {
			out = append(out, ifc.Index)
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == bind.Unmap() {
					out = append(out, ifc.Index)
					break
				}
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("kpath: no interface is up for %s", bind)
	}
	return out, nil
}

func loopbackIndex() (int, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return 0, fmt.Errorf("kpath: interfaces: %w", err)
	}
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagLoopback != 0 {
			return ifc.Index, nil
		}
	}
	return 0, errors.New("kpath: no loopback interface")
}

// flowBytes is a flow as the program reads it from the IP and UDP headers:
// source and destination addresses, then ports, in network order.
func flowBytes(f Flow) []byte {
	s, d := f.Src.Addr().AsSlice(), f.Dst.Addr().AsSlice()
	b := make([]byte, 0, 2*len(s)+4)
	b = append(b, s...)
	b = append(b, d...)
	b = binary.BigEndian.AppendUint16(b, f.Src.Port())
	return binary.BigEndian.AppendUint16(b, f.Dst.Port())
}

// layout is where one address family's fields lie: in the frame, in the
// copy of its headers on the program's stack, and in a rule's value.
type layout struct {
	name     string // label suffix
	ethType  uint16
	hdr      int16 // Ethernet, IP (no options or extension headers) and UDP
	buf      int16 // stack offset of the headers' copy: buf+hdr, the RTP header, is 4-aligned
	flowOff  int16 // frame offset of saddr, daddr, sport, dport: the rule's key
	flowLen  int32
	addrLen  int32 // saddr and daddr, both
	ipCheck  int16 // frame offset of the IPv4 header checksum; 0: none (IPv6)
	udpCheck int16
	// value offsets (host order) after the new flow
	vIfindex, vID, vFlags int16
}

var (
	layout4 = layout{name: "4", ethType: 0x0800, hdr: hdrLen, buf: -58, flowOff: ethLen + 12, flowLen: keyLen, addrLen: 8,
		ipCheck: ethLen + 10, udpCheck: ethLen + ipLen + 6, vIfindex: 12, vID: 16, vFlags: 20}
	layout6 = layout{name: "6", ethType: 0x86dd, hdr: hdrLen6, buf: -78, flowOff: ethLen + 8, flowLen: keyLen6, addrLen: 32,
		udpCheck: ethLen + ip6Len + 6, vIfindex: 36, vID: 40, vFlags: 44}
)

const (
	// The record on the stack: id, payload length, time, RTP header, 4 bytes
	// of padding (8-aligned for the time).
	stkRec = -112

	// struct __sk_buff offsets.
	skbLen         = 0
	skbProtocol    = 16
	skbVlanPresent = 20
	skbGSOSize     = 176

	// Helper flags.
	bpfFPseudoHdr    = 0x10
	bpfFMarkMangled0 = 0x20
	bpfRBNoWakeup    = 1
)

// be16 is a big-endian 16-bit field as a native load sees it.
func be16(v uint16) int32 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return int32(binary.NativeEndian.Uint16(b[:]))
}

// program is the forwarding program: a few checks common to both families,
// then one body per family. R6 holds the socket buffer throughout.
func program(rules4, rules6, ring, counts int) asm.Instructions {
	ins := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		// Plain frames only: no offloaded VLAN tag, no GSO aggregate.
		asm.LoadMem(asm.R1, asm.R6, skbVlanPresent, asm.Word),
		asm.JNE.Imm(asm.R1, 0, "next"),
		asm.LoadMem(asm.R1, asm.R6, skbGSOSize, asm.Word),
		asm.JNE.Imm(asm.R1, 0, "next"),
		asm.LoadMem(asm.R1, asm.R6, skbProtocol, asm.Word),
		asm.JEq.Imm(asm.R1, be16(layout4.ethType), "ip4"),
		asm.JEq.Imm(asm.R1, be16(layout6.ethType), "ip6"),
		asm.Ja.Label("next"),
	}
	ins = append(ins, body(layout4, rules4, ring, counts)...)
	ins = append(ins, body(layout6, rules6, ring, counts)...)
	return append(ins,
		asm.Mov.Imm(asm.R0, tcShot).WithSymbol("drop"), // half rewritten: never deliver it
		asm.Return(),
		asm.Mov.Imm(asm.R0, tcxNext).WithSymbol("next"),
		asm.Return(),
	)
}

// body forwards one family's datagrams. R7 holds the rule, R8 and R9 the
// checksum differences of the addresses and the ports.
//
// A rule's value: the new saddr, daddr, sport and dport as on the wire,
// then in host order the output interface, the rule's ID and its flags.
func body(f layout, rules, ring, counts int) asm.Instructions {
	l := func(s string) string { return s + f.name }
	rtp := f.buf + f.hdr
	ins := asm.Instructions{
		// Copy the headers and the RTP header to the stack.
		asm.Mov.Reg(asm.R1, asm.R6).WithSymbol(l("ip")),
		asm.Mov.Imm(asm.R2, 0),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, int32(f.buf)),
		asm.Mov.Imm(asm.R4, int32(f.hdr)+12),
		asm.FnSkbLoadBytes.Call(),
		asm.JNE.Imm(asm.R0, 0, "next"), // shorter than an RTP datagram
		asm.LoadMem(asm.R1, asm.RFP, f.buf+12, asm.Half),
		asm.JNE.Imm(asm.R1, be16(f.ethType), "next"),
	}
	if f.ipCheck != 0 {
		ins = append(ins, // IPv4 without options, UDP, not a fragment
			asm.LoadMem(asm.R1, asm.RFP, f.buf+ethLen, asm.Byte),
			asm.JNE.Imm(asm.R1, 0x45, "next"),
			asm.LoadMem(asm.R1, asm.RFP, f.buf+ethLen+9, asm.Byte),
			asm.JNE.Imm(asm.R1, unix.IPPROTO_UDP, "next"),
			asm.LoadMem(asm.R1, asm.RFP, f.buf+ethLen+6, asm.Half),
			asm.And.Imm(asm.R1, be16(0x3fff)), // more fragments, fragment offset
			asm.JNE.Imm(asm.R1, 0, "next"),
		)
	} else {
		ins = append(ins, // IPv6 with UDP as the next header: no extension headers
			asm.LoadMem(asm.R1, asm.RFP, f.buf+ethLen, asm.Byte),
			asm.RSh.Imm(asm.R1, 4),
			asm.JNE.Imm(asm.R1, 6, "next"),
			asm.LoadMem(asm.R1, asm.RFP, f.buf+ethLen+6, asm.Byte),
			asm.JNE.Imm(asm.R1, unix.IPPROTO_UDP, "next"),
			// A zero UDP checksum is invalid over IPv6 (RFC 8200 §8.1): the
			// stack drops it, and so must the fast path.
			asm.LoadMem(asm.R1, asm.RFP, f.buf+f.hdr-2, asm.Half),
			asm.JEq.Imm(asm.R1, 0, "next"),
		)
	}
	ins = append(ins,
		// RTP version 2, and not RTCP on the RTP port (RFC 5761 §4: second
		// octet 192–223).
		asm.LoadMem(asm.R1, asm.RFP, rtp, asm.Byte),
		asm.RSh.Imm(asm.R1, 6),
		asm.JNE.Imm(asm.R1, 2, "next"),
		asm.LoadMem(asm.R1, asm.RFP, rtp+1, asm.Byte),
		asm.JLT.Imm(asm.R1, 192, l("lookup")),
		asm.JLE.Imm(asm.R1, 223, "next"),
		// The rule for this flow.
		asm.LoadMapPtr(asm.R1, rules).WithSymbol(l("lookup")),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, int32(f.buf+f.flowOff)),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "next"),
		asm.Mov.Reg(asm.R7, asm.R0),

		// The record: rule ID, payload length, arrival time, RTP header.
		asm.LoadMem(asm.R1, asm.R7, f.vID, asm.Word),
		asm.StoreMem(asm.RFP, stkRec, asm.R1, asm.Word),
		// The UDP length less its header: a short frame's Ethernet padding
		// is not the packet's.
		asm.LoadMem(asm.R1, asm.RFP, f.buf+f.hdr-4, asm.Half),
		asm.HostTo(asm.BE, asm.R1, asm.Half),
		asm.Sub.Imm(asm.R1, udpLen),
		asm.StoreMem(asm.RFP, stkRec+4, asm.R1, asm.Word),
		asm.FnKtimeGetNs.Call(),
		asm.StoreMem(asm.RFP, stkRec+8, asm.R0, asm.DWord),
		asm.LoadMem(asm.R1, asm.RFP, rtp, asm.Word),
		asm.StoreMem(asm.RFP, stkRec+16, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.RFP, rtp+4, asm.Word),
		asm.StoreMem(asm.RFP, stkRec+20, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.RFP, rtp+8, asm.Word),
		asm.StoreMem(asm.RFP, stkRec+24, asm.R1, asm.Word),
		asm.StoreImm(asm.RFP, stkRec+28, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, ring),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stkRec),
		asm.Mov.Imm(asm.R3, recLen),
		asm.Mov.Imm(asm.R4, bpfRBNoWakeup),
		asm.FnRingbufOutput.Call(),
		asm.JEq.Imm(asm.R0, 0, l("rewrite")),
		// The ring is full: forward anyway, and count the missing record.
		asm.StoreImm(asm.RFP, stkRec, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, counts),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stkRec),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, l("rewrite")),
		asm.Mov.Imm(asm.R1, 1),
		asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
	)
	// Checksum differences: the addresses (in the IPv4 header, and in the
	// UDP pseudo header of both families) and the ports.
	diff := csumDiff(asm.R8, int32(f.buf+f.flowOff), 0, f.addrLen)
	diff[0] = diff[0].WithSymbol(l("rewrite"))
	ins = append(ins, diff...)
	ins = append(ins, csumDiff(asm.R9, int32(f.buf+f.flowOff)+f.addrLen, f.addrLen, 4)...)
	if f.ipCheck != 0 {
		ins = append(ins, csumReplace(asm.FnL3CsumReplace, f.ipCheck, asm.R8, 0)...)
	}
	ins = append(ins, csumReplace(asm.FnL4CsumReplace, f.udpCheck, asm.R8, bpfFPseudoHdr|bpfFMarkMangled0)...)
	if f.ipCheck == 0 {
		// For a CHECKSUM_COMPLETE frame the helper above also moves
		// skb->csum by the pseudo header's difference, which is right for
		// IPv4 (the header checksum absorbs the address change) and wrong
		// for IPv6, whose changed addresses cancel the UDP checksum's
		// change in the frame's sum (Linux 6.16 added BPF_F_IPV6 for it).
		// Adding the difference back works on every kernel; for other
		// frames bpf_csum_update does nothing.
		ins = append(ins,
			asm.Mov.Reg(asm.R1, asm.R6),
			asm.Mov.Reg(asm.R2, asm.R8),
			asm.FnCsumUpdate.Call(),
		)
	}
	ins = append(ins, csumReplace(asm.FnL4CsumReplace, f.udpCheck, asm.R9, bpfFMarkMangled0)...)
	ins = append(ins, ttl(f)...)
	ins = append(ins, storeBytes(int32(f.flowOff), asm.R7, 0, f.flowLen)...) // the new addresses and ports
	return append(ins,
		asm.LoadMem(asm.R1, asm.R7, f.vFlags, asm.Word),
		asm.JSet.Imm(asm.R1, flagLocal, l("local")),
		// Out of the interface toward the destination, with the MAC
		// addresses of the next hop from the neighbour table (the kernel
		// resolves it if need be): bpf_redirect_neigh.
		asm.LoadMem(asm.R1, asm.R7, f.vIfindex, asm.Word),
		asm.Mov.Imm(asm.R2, 0),
		asm.Mov.Imm(asm.R3, 0),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnRedirectNeigh.Call(),
		asm.Return(),
		// Out through the loopback device (both ends are on this host, see
		// Path.route).
		asm.LoadMem(asm.R1, asm.R7, f.vIfindex, asm.Word).WithSymbol(l("local")),
		asm.Mov.Imm(asm.R2, 0),
		asm.FnRedirect.Call(),
		asm.Return(),
	)
}

// ttl sets the IPv4 TTL (with its header checksum) or the IPv6 hop limit
// to 64, what the relay's own sockets send with: the datagram leaves the
// relay as a new one, whatever hops it took to arrive.
func ttl(f layout) asm.Instructions {
	if f.ipCheck == 0 {
		return append(asm.Instructions{ // the hop limit, at offset 7 of the IPv6 header
			asm.StoreImm(asm.RFP, stkRec, 64, asm.Byte),
		}, storeBytes(ethLen+7, asm.RFP, stkRec, 1)...)
	}
	// TTL and protocol form one 16-bit word of the header checksum
	// (offset 8): replace it as such.
	newWord := be16(64<<8 | unix.IPPROTO_UDP)
	ins := asm.Instructions{
		asm.LoadMem(asm.R4, asm.RFP, f.buf+ethLen+8, asm.Half), // the old word
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, int32(f.ipCheck)),
		asm.Mov.Reg(asm.R3, asm.R4),
		asm.Mov.Imm(asm.R4, newWord),
		asm.Mov.Imm(asm.R5, 2),
		asm.FnL3CsumReplace.Call(),
		asm.JNE.Imm(asm.R0, 0, "drop"),
		asm.StoreImm(asm.RFP, stkRec, int64(newWord), asm.Half),
	}
	return append(ins, storeBytes(ethLen+8, asm.RFP, stkRec, 1)...)
}

// storeBytes writes n bytes from src+off (the stack or a rule) to the
// frame at frameOff; a failure drops the half-rewritten datagram.
func storeBytes(frameOff int32, src asm.Register, off, n int32) asm.Instructions {
	ins := asm.Instructions{
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, frameOff),
		asm.Mov.Reg(asm.R3, src),
	}
	if off != 0 {
		ins = append(ins, asm.Add.Imm(asm.R3, off))
	}
	return append(ins,
		asm.Mov.Imm(asm.R4, n),
		asm.Mov.Imm(asm.R5, 0),
		asm.FnSkbStoreBytes.Call(),
		asm.JNE.Imm(asm.R0, 0, "drop"),
	)
}

// csumDiff puts in dst the checksum difference between n bytes of the
// frame's copy on the stack (at stack offset from) and the rule's bytes at
// offset off.
func csumDiff(dst asm.Register, from, off, n int32) asm.Instructions {
	ins := asm.Instructions{
		asm.Mov.Reg(asm.R1, asm.RFP),
		asm.Add.Imm(asm.R1, from),
		asm.Mov.Imm(asm.R2, n),
		asm.Mov.Reg(asm.R3, asm.R7),
	}
	if off != 0 {
		ins = append(ins, asm.Add.Imm(asm.R3, off))
	}
	return append(ins,
		asm.Mov.Imm(asm.R4, n),
		asm.Mov.Imm(asm.R5, 0),
		asm.FnCsumDiff.Call(),
		asm.Mov.Reg(dst, asm.R0),
	)
}

// csumReplace calls a checksum helper with a precomputed difference in
// diff for the field at off; a failure drops the half-rewritten datagram.
func csumReplace(fn asm.BuiltinFunc, off int16, diff asm.Register, flags int32) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, int32(off)),
		asm.Mov.Imm(asm.R3, 0),
		asm.Mov.Reg(asm.R4, diff),
		asm.Mov.Imm(asm.R5, flags),
		fn.Call(),
		asm.JNE.Imm(asm.R0, 0, "drop"),
	}
}
