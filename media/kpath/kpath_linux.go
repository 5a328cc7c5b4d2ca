package kpath

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
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

	keyLen   = 12 // saddr, daddr, sport, dport as on the wire
	valueLen = 24

	flagLocal = 1 // the destination is a loopback address: out through lo

	tcxNext = -1 // TCX_NEXT: let the next program and the stack have it
	tcShot  = 2  // TC_ACT_SHOT
)

// Path is the loaded program, its maps and its attachments.
type Path struct {
	prog   *ebpf.Program
	rules  *ebpf.Map
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
	if p.rules, err = ebpf.NewMap(&ebpf.MapSpec{Name: "cm_rules", Type: ebpf.Hash, KeySize: keyLen, ValueSize: valueLen, MaxEntries: maxRules}); err != nil {
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
		Instructions: program(p.rules.FD(), p.ring.FD(), p.counts.FD()),
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
	for _, c := range []interface{ Close() error }{p.prog, p.rules, p.ring, p.counts} {
		if c != nil && !isNilCloser(c) {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

func isNilCloser(c interface{ Close() error }) bool {
	switch v := c.(type) {
	case *ebpf.Program:
		return v == nil
	case *ebpf.Map:
		return v == nil
	}
	return false
}

// Put installs or replaces the rule for r.In.
func (p *Path) Put(r Rule) error {
	if err := checkFlow(r.In); err != nil {
		return err
	}
	if err := checkFlow(r.Out); err != nil {
		return err
	}
	k := key(r.In)
	var v [valueLen]byte
	copy(v[:keyLen], k2(r.Out))
	binary.NativeEndian.PutUint32(v[16:], r.ID)
	ifindex, local, err := p.route(r.Out.Dst.Addr())
	if err != nil {
		return err
	}
	binary.NativeEndian.PutUint32(v[12:], uint32(ifindex))
	if local {
		binary.NativeEndian.PutUint32(v[20:], flagLocal)
	}
	if err := p.rules.Put(k[:], v[:]); err != nil {
		return fmt.Errorf("kpath: put rule: %w", err)
	}
	return nil
}

// route is the interface a datagram to dst leaves by, and whether dst is
// this host's own (then the loopback device carries it, as the stack would).
// The interface is the one holding the source address the kernel picks for
// dst (a connected UDP socket reveals it without sending anything).
func (p *Path) route(dst netip.Addr) (ifindex int, local bool, err error) {
	if dst.IsLoopback() {
		return p.lo, true, nil
	}
	own, err := hostAddrs()
	if err != nil {
		return 0, false, err
	}
	if _, ok := own[dst]; ok {
		return p.lo, true, nil
	}
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9)))
	if err != nil {
		return 0, false, fmt.Errorf("kpath: no route to %s: %w", dst, err)
	}
	src := c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
	c.Close()
	if i, ok := own[src]; ok {
		return i, false, nil
	}
	return 0, false, fmt.Errorf("kpath: no interface holds %s, the source toward %s", src, dst)
}

// hostAddrs maps each address of the host to its interface.
func hostAddrs() (map[netip.Addr]int, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("kpath: interfaces: %w", err)
	}
	m := make(map[netip.Addr]int)
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok {
					m[ip.Unmap()] = ifc.Index
				}
			}
		}
	}
	return m, nil
}

// Delete removes the rule for in, if there is one.
func (p *Path) Delete(in Flow) error {
	if checkFlow(in) != nil {
		return nil
	}
	k := key(in)
	if err := p.rules.Delete(k[:]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
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
	for {
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
		r.Len = int(binary.NativeEndian.Uint32(b[4:]))
		r.At = int64(binary.NativeEndian.Uint64(b[8:]))
		copy(r.RTP[:], b[16:28])
		n++
		f(&r)
	}
}

// Stats reads the program's counters.
func (p *Path) Stats() (Stats, error) {
	var v uint64
	if err := p.counts.Lookup(uint32(0), &v); err != nil {
		return Stats{}, fmt.Errorf("kpath: counters: %w", err)
	}
	return Stats{Unrecorded: v}, nil
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
// host's own traffic to any of its addresses passes.
func Interfaces(bind netip.Addr) ([]int, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("kpath: interfaces: %w", err)
	}
	var out []int
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 {
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

// key is a flow as the program reads it from the IPv4 and UDP headers.
func key(f Flow) [keyLen]byte {
	var k [keyLen]byte
	copy(k[:], k2(f))
	return k
}

func k2(f Flow) []byte {
	var k [keyLen]byte
	s, d := f.Src.Addr().As4(), f.Dst.Addr().As4()
	copy(k[0:], s[:])
	copy(k[4:], d[:])
	binary.BigEndian.PutUint16(k[8:], f.Src.Port())
	binary.BigEndian.PutUint16(k[10:], f.Dst.Port())
	return k[:]
}

// Stack layout of the program (offsets from the frame pointer R10).
const (
	// The first 54 bytes of the frame: Ethernet, IPv4 (no options), UDP and
	// the RTP fixed header. Placed so that the RTP header is 4-aligned.
	stkBuf     = -58
	stkEthType = stkBuf + 12
	stkVerIHL  = stkBuf + ethLen
	stkFrag    = stkBuf + ethLen + 6
	stkProto   = stkBuf + ethLen + 9
	stkFlow    = stkBuf + ethLen + 12 // saddr, daddr, sport, dport: the rule's key
	stkPorts   = stkFlow + 8
	stkRTP     = stkBuf + hdrLen
	bufLen     = hdrLen + 12

	// The record: id, len, time, RTP header, 4 bytes of padding.
	stkRec = -96
	// struct __sk_buff offsets.
	skbLen         = 0
	skbVlanPresent = 20
	skbGSOSize     = 176

	// Packet offsets.
	offIPCheck  = ethLen + 10
	offFlow     = ethLen + 12
	offUDPCheck = ethLen + ipLen + 6

	// Helper flags.
	bpfFPseudoHdr    = 0x10
	bpfFMarkMangled0 = 0x20
	bpfRBNoWakeup    = 1
)

// program is the forwarding program. R6 holds the socket buffer, R7 the
// rule, R8 and R9 the checksum differences of the addresses and the ports.
//
// A rule's value: the new saddr, daddr, sport and dport as on the wire
// (12 bytes), then in host order the output interface, the rule's ID and
// its flags.
func program(rules, ring, counts int) asm.Instructions {
	be16 := func(v uint16) int32 { // a big-endian 16-bit field as a native load sees it
		var b [2]byte
		binary.BigEndian.PutUint16(b[:], v)
		return int32(binary.NativeEndian.Uint16(b[:]))
	}
	return asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		// Plain frames only: no offloaded VLAN tag, no GSO aggregate.
		asm.LoadMem(asm.R1, asm.R6, skbVlanPresent, asm.Word),
		asm.JNE.Imm(asm.R1, 0, "next"),
		asm.LoadMem(asm.R1, asm.R6, skbGSOSize, asm.Word),
		asm.JNE.Imm(asm.R1, 0, "next"),
		// Copy the headers to the stack.
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, 0),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, stkBuf),
		asm.Mov.Imm(asm.R4, bufLen),
		asm.FnSkbLoadBytes.Call(),
		asm.JNE.Imm(asm.R0, 0, "next"), // shorter than an RTP datagram
		// IPv4 without options, UDP, not a fragment.
		asm.LoadMem(asm.R1, asm.RFP, stkEthType, asm.Half),
		asm.JNE.Imm(asm.R1, be16(0x0800), "next"),
		asm.LoadMem(asm.R1, asm.RFP, stkVerIHL, asm.Byte),
		asm.JNE.Imm(asm.R1, 0x45, "next"),
		asm.LoadMem(asm.R1, asm.RFP, stkProto, asm.Byte),
		asm.JNE.Imm(asm.R1, 17, "next"),
		asm.LoadMem(asm.R1, asm.RFP, stkFrag, asm.Half),
		asm.And.Imm(asm.R1, be16(0x3fff)), // more fragments, fragment offset
		asm.JNE.Imm(asm.R1, 0, "next"),
		// RTP version 2, and not RTCP on the RTP port (RFC 5761 §4: second
		// octet 192–223).
		asm.LoadMem(asm.R1, asm.RFP, stkRTP, asm.Byte),
		asm.RSh.Imm(asm.R1, 6),
		asm.JNE.Imm(asm.R1, 2, "next"),
		asm.LoadMem(asm.R1, asm.RFP, stkRTP+1, asm.Byte),
		asm.JLT.Imm(asm.R1, 192, "lookup"),
		asm.JLE.Imm(asm.R1, 223, "next"),
		// The rule for this flow.
		asm.LoadMapPtr(asm.R1, rules).WithSymbol("lookup"),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stkFlow),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "next"),
		asm.Mov.Reg(asm.R7, asm.R0),

		// The record: rule ID, length, arrival time, RTP header.
		asm.LoadMem(asm.R1, asm.R7, 16, asm.Word),
		asm.StoreMem(asm.RFP, stkRec, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.R6, skbLen, asm.Word),
		asm.StoreMem(asm.RFP, stkRec+4, asm.R1, asm.Word),
		asm.FnKtimeGetNs.Call(),
		asm.StoreMem(asm.RFP, stkRec+8, asm.R0, asm.DWord),
		asm.LoadMem(asm.R1, asm.RFP, stkRTP, asm.Word),
		asm.StoreMem(asm.RFP, stkRec+16, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.RFP, stkRTP+4, asm.Word),
		asm.StoreMem(asm.RFP, stkRec+20, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.RFP, stkRTP+8, asm.Word),
		asm.StoreMem(asm.RFP, stkRec+24, asm.R1, asm.Word),
		asm.StoreImm(asm.RFP, stkRec+28, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, ring),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stkRec),
		asm.Mov.Imm(asm.R3, recLen),
		asm.Mov.Imm(asm.R4, bpfRBNoWakeup),
		asm.FnRingbufOutput.Call(),
		asm.JEq.Imm(asm.R0, 0, "rewrite"),
		// The ring is full: forward anyway, and count the missing record.
		asm.StoreImm(asm.RFP, stkRec, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, counts),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stkRec),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "rewrite"),
		asm.Mov.Imm(asm.R1, 1),
		asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),

		// Checksum differences: addresses (IPv4 header and UDP pseudo
		// header) and ports (UDP header).
		asm.Mov.Reg(asm.R1, asm.RFP).WithSymbol("rewrite"),
		asm.Add.Imm(asm.R1, stkFlow),
		asm.Mov.Imm(asm.R2, 8),
		asm.Mov.Reg(asm.R3, asm.R7),
		asm.Mov.Imm(asm.R4, 8),
		asm.Mov.Imm(asm.R5, 0),
		asm.FnCsumDiff.Call(),
		asm.Mov.Reg(asm.R8, asm.R0),
		asm.Mov.Reg(asm.R1, asm.RFP),
		asm.Add.Imm(asm.R1, stkPorts),
		asm.Mov.Imm(asm.R2, 4),
		asm.Mov.Reg(asm.R3, asm.R7),
		asm.Add.Imm(asm.R3, 8),
		asm.Mov.Imm(asm.R4, 4),
		asm.Mov.Imm(asm.R5, 0),
		asm.FnCsumDiff.Call(),
		asm.Mov.Reg(asm.R9, asm.R0),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, offIPCheck),
		asm.Mov.Imm(asm.R3, 0),
		asm.Mov.Reg(asm.R4, asm.R8),
		asm.Mov.Imm(asm.R5, 0),
		asm.FnL3CsumReplace.Call(),
		asm.JNE.Imm(asm.R0, 0, "drop"),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, offUDPCheck),
		asm.Mov.Imm(asm.R3, 0),
		asm.Mov.Reg(asm.R4, asm.R8),
		asm.Mov.Imm(asm.R5, bpfFPseudoHdr|bpfFMarkMangled0),
		asm.FnL4CsumReplace.Call(),
		asm.JNE.Imm(asm.R0, 0, "drop"),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, offUDPCheck),
		asm.Mov.Imm(asm.R3, 0),
		asm.Mov.Reg(asm.R4, asm.R9),
		asm.Mov.Imm(asm.R5, bpfFMarkMangled0),
		asm.FnL4CsumReplace.Call(),
		asm.JNE.Imm(asm.R0, 0, "drop"),
		// The new addresses and ports.
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, offFlow),
		asm.Mov.Reg(asm.R3, asm.R7),
		asm.Mov.Imm(asm.R4, keyLen),
		asm.Mov.Imm(asm.R5, 0),
		asm.FnSkbStoreBytes.Call(),
		asm.JNE.Imm(asm.R0, 0, "drop"),
		asm.LoadMem(asm.R1, asm.R7, 20, asm.Word),
		asm.JSet.Imm(asm.R1, flagLocal, "local"),
		// Out of the interface toward the destination, with the MAC
		// addresses of the next hop from the neighbour table (the kernel
		// resolves it if need be): bpf_redirect_neigh.
		asm.LoadMem(asm.R1, asm.R7, 12, asm.Word),
		asm.Mov.Imm(asm.R2, 0),
		asm.Mov.Imm(asm.R3, 0),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnRedirectNeigh.Call(),
		asm.Return(),
		// Out through the loopback device.
		asm.LoadMem(asm.R1, asm.R7, 12, asm.Word).WithSymbol("local"),
		asm.Mov.Imm(asm.R2, 0),
		asm.FnRedirect.Call(),
		asm.Return(),

		asm.Mov.Imm(asm.R0, tcShot).WithSymbol("drop"), // half rewritten: never deliver it
		asm.Return(),
		asm.Mov.Imm(asm.R0, tcxNext).WithSymbol("next"),
		asm.Return(),
	}
}
