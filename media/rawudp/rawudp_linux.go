package rawudp

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// Conn writes datagrams on a net.UDPConn's socket by raw system calls,
// and makes the Readers that read them so. The net.UDPConn stays its
// owner: closing it ends the Conn, and a write racing the close fails as
// the net package's would.
type Conn struct {
	rc syscall.RawConn
	v6 bool // an AF_INET6 socket, which reaches IPv4 by mapped addresses
}

// New makes a Conn of pc's socket.
func New(pc *net.UDPConn) (*Conn, error) {
	rc, err := pc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var sa syscall.Sockaddr
	var serr error
	if err := rc.Control(func(fd uintptr) { sa, serr = syscall.Getsockname(int(fd)) }); err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, os.NewSyscallError("getsockname", serr)
	}
	_, v6 := sa.(*syscall.SockaddrInet6)
	return &Conn{rc: rc, v6: v6}, nil
}

// write is one WriteTo in progress: its function is made once, so that a
// write allocates nothing.
type write struct {
	b  []byte
	sa Sockaddr
	e  syscall.Errno
	fn func(uintptr) bool
}

func (w *write) do(fd uintptr) bool {
	w.e = Sendto(fd, w.b, &w.sa)
	return w.e != syscall.EAGAIN // a full send buffer: wait until writable
}

var writes = sync.Pool{New: func() any {
	w := new(write)
	w.fn = w.do
	return w
}}

// WriteTo sends b to dst. Safe for concurrent use. Like the net package's
// write, it waits while the socket's send buffer is full.
func (c *Conn) WriteTo(b []byte, dst netip.AddrPort) error {
	w := writes.Get().(*write)
	defer func() { w.b = nil; writes.Put(w) }()
	if err := w.sa.Set(dst, c.v6); err != nil {
		return err
	}
	w.b = b
	if err := c.rc.Write(w.fn); err != nil {
		return err
	}
	if w.e != 0 {
		return os.NewSyscallError("sendto", w.e)
	}
	return nil
}

// soMeminfo is SO_MEMINFO (socket(7), Linux 3.9 and later): the socket's
// memory counters, an array of sk_meminfo_vars.
const (
	soMeminfo        = 55
	meminfoRmemAlloc = 0 // SK_MEMINFO_RMEM_ALLOC: receive queue, in bytes
	meminfoRcvbuf    = 1 // SK_MEMINFO_RCVBUF: its limit
	meminfoDrops     = 8 // SK_MEMINFO_DROPS: datagrams dropped on arrival
	meminfoVars      = 9 // SK_MEMINFO_VARS
)

// Backlog reads the socket's receive queue as the kernel accounts it.
// Safe for concurrent use; it costs one system call and no allocation.
func (c *Conn) Backlog() (Backlog, error) {
	m := meminfos.Get().(*meminfo)
	defer meminfos.Put(m)
	if err := c.rc.Control(m.fn); err != nil {
		return Backlog{}, err
	}
	if m.e != 0 {
		return Backlog{}, os.NewSyscallError("getsockopt SO_MEMINFO", m.e)
	}
	return Backlog{Queued: int(m.v[meminfoRmemAlloc]), Limit: int(m.v[meminfoRcvbuf]), Drops: uint64(m.v[meminfoDrops])}, nil
}

// meminfo is one Backlog in progress: its function is made once, as a
// write's is, since the edge reads the backlog every few datagrams.
type meminfo struct {
	v  [meminfoVars]uint32
	e  syscall.Errno
	fn func(uintptr)
}

func (m *meminfo) do(fd uintptr) {
	n := uint32(unsafe.Sizeof(m.v))
	_, _, m.e = syscall.RawSyscall6(syscall.SYS_GETSOCKOPT, fd, syscall.SOL_SOCKET, soMeminfo,
		uintptr(unsafe.Pointer(&m.v[0])), uintptr(unsafe.Pointer(&n)), 0)
}

var meminfos = sync.Pool{New: func() any {
	m := new(meminfo)
	m.fn = m.do
	return m
}}

// Reader reads datagrams from a Conn's socket: one per goroutine.
type Reader struct {
	rc  syscall.RawConn
	buf []byte
	rsa syscall.RawSockaddrAny
	n   int
	src netip.AddrPort
	e   syscall.Errno
	fn  func(uintptr) bool
}

// Reader makes a reader of the Conn's socket.
func (c *Conn) Reader() *Reader {
	r := &Reader{rc: c.rc}
	r.fn = r.do
	return r
}

func (r *Reader) do(fd uintptr) bool {
	r.n, r.src, r.e = Recvfrom(fd, r.buf, &r.rsa)
	return r.e != syscall.EAGAIN // nothing queued: wait until readable
}

// Read reads one datagram into buf and returns its length and source.
// It waits for one in the runtime's poller, and fails with an error that
// is net.ErrClosed once the net.UDPConn is closed.
func (r *Reader) Read(buf []byte) (int, netip.AddrPort, error) {
	r.buf = buf
	err := r.rc.Read(r.fn)
	r.buf = nil
	if err != nil {
		return 0, netip.AddrPort{}, err
	}
	if r.e != 0 {
		return 0, netip.AddrPort{}, os.NewSyscallError("recvfrom", r.e)
	}
	return r.n, r.src, nil
}

// Sockaddr is a destination in the kernel's form, filled in without
// allocating.
type Sockaddr struct {
	v4  syscall.RawSockaddrInet4
	v6  syscall.RawSockaddrInet6
	is6 bool // v6 is the one set
}

// Set makes sa name dst for a socket of family AF_INET6 (v6) or AF_INET.
// An AF_INET6 socket reaches IPv4 by its mapped address; an AF_INET socket
// cannot reach IPv6.
func (sa *Sockaddr) Set(dst netip.AddrPort, v6 bool) error {
	addr := dst.Addr()
	switch {
	case v6:
		sa.v6 = syscall.RawSockaddrInet6{Family: syscall.AF_INET6, Addr: addr.As16()}
		putPort(&sa.v6.Port, dst.Port())
		sa.is6 = true
	case addr.Is4() || addr.Is4In6():
		sa.v4 = syscall.RawSockaddrInet4{Family: syscall.AF_INET, Addr: addr.Unmap().As4()}
		putPort(&sa.v4.Port, dst.Port())
		sa.is6 = false
	default:
		return fmt.Errorf("%s unreachable from an IPv4 socket", dst)
	}
	return nil
}

// Sendto sends b to sa on the non-blocking socket fd: sendto(2) as a raw
// system call. A full send buffer is EAGAIN.
func Sendto(fd uintptr, b []byte, sa *Sockaddr) syscall.Errno {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	to, n := unsafe.Pointer(&sa.v4), uintptr(syscall.SizeofSockaddrInet4)
	if sa.is6 {
		to, n = unsafe.Pointer(&sa.v6), syscall.SizeofSockaddrInet6
	}
	_, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(p), uintptr(len(b)), 0, uintptr(to), n)
	return e
}

// Recvfrom reads one datagram from the non-blocking socket fd into buf,
// with rsa as the kernel's scratch space for its source: recvfrom(2) as a
// raw system call. Nothing queued is EAGAIN; a source of another family
// than IPv4 or IPv6 is EAFNOSUPPORT. buf must not be empty.
func Recvfrom(fd uintptr, buf []byte, rsa *syscall.RawSockaddrAny) (int, netip.AddrPort, syscall.Errno) {
	salen := uint32(syscall.SizeofSockaddrAny)
	n, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])),
		uintptr(len(buf)), 0, uintptr(unsafe.Pointer(rsa)), uintptr(unsafe.Pointer(&salen)))
	if e != 0 {
		return 0, netip.AddrPort{}, e
	}
	switch rsa.Addr.Family {
	case syscall.AF_INET:
		sa := (*syscall.RawSockaddrInet4)(unsafe.Pointer(rsa))
		return int(n), netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), getPort(&sa.Port)), 0
	case syscall.AF_INET6:
		sa := (*syscall.RawSockaddrInet6)(unsafe.Pointer(rsa))
		return int(n), netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), getPort(&sa.Port)), 0
	}
	return 0, netip.AddrPort{}, syscall.EAFNOSUPPORT
}

// putPort stores a port in network byte order.
func putPort(dst *uint16, port uint16) {
	b := (*[2]byte)(unsafe.Pointer(dst))
	b[0], b[1] = byte(port>>8), byte(port)
}

func getPort(p *uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(p))
	return uint16(b[0])<<8 | uint16(b[1])
}
