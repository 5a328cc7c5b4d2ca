package media

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/callmesh/callmesh/media/rawudp"
	"github.com/callmesh/callmesh/media/slots"
)

// On Linux the relay's sockets are plain non-blocking descriptors, not
// net.UDPConns, and a few pollers serve them all (Config.Workers). Each
// poller owns an epoll set (level-triggered) of the sockets of its sessions
// and one goroutine, which takes every ready socket from the set at once:
// per datagram one recvfrom(2) and one sendto(2), and one epoll_pwait(2)
// per batch. A goroutine per socket would cost a scheduler wake-up and a
// second, empty read per datagram, which under load cost more CPU than the
// two system calls that do the work.
//
// The goroutine waits in two ways, as a network driver does (NAPI):
//
//   - Idle or lightly loaded, it parks in the Go runtime's poller on a
//     second epoll descriptor, the notifier, which watches the set with
//     EPOLLONESHOT. The notifier fires once and is disarmed as the
//     goroutine wakes; it is armed again only when the goroutine has
//     drained the set and is about to park. So while the goroutine works,
//     datagrams arriving do not wake the runtime's poller thread (without
//     the one-shot, every datagram would, on another core, for nothing),
//     and the sender's system call does not pay for that wake-up either.
//   - Under load (a drain found at least pollBusy datagrams), it sleeps
//     pollQuantum and drains again, without arming the notifier: at tens
//     of thousands of datagrams a second, one timer wake-up per quantum
//     replaces one wake-up per few datagrams. It goes back to parking as
//     soon as a drain finds fewer. The sleep adds at most pollQuantum
//     (plus the kernel's timer slack) to a datagram's time in the relay.

// sock is one bound UDP socket of a leg.
type sock struct {
	fd int
	v6 bool // AF_INET6: IPv4 destinations are written as v4-mapped

	mu     sync.RWMutex // held for reading around each write, for writing by close
	closed bool

	p    *poller // the poller watching it; nil before watch
	slot uint32
}

// listen binds a UDP socket to the relay's bind address and port.
func (r *Relay) listen(port int) (*sock, error) {
	addr := r.cfg.Bind
	v6 := addr.Is6() && !addr.Is4In6()
	fam := syscall.AF_INET
	if v6 {
		fam = syscall.AF_INET6
	}
	fd, err := syscall.Socket(fam, syscall.SOCK_DGRAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, syscall.IPPROTO_UDP)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	var sa syscall.Sockaddr
	if v6 {
		if addr.IsUnspecified() { // both families, as net.ListenUDP does for [::]
			_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY, 0)
		}
		sa = &syscall.SockaddrInet6{Port: port, Addr: addr.As16()}
	} else {
		sa = &syscall.SockaddrInet4{Port: port, Addr: addr.Unmap().As4()}
	}
	if err := syscall.Bind(fd, sa); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("media: bind %s: %w", netip.AddrPortFrom(addr, uint16(port)), err)
	}
	if n := r.cfg.SocketBuffer; n > 0 { // best effort: the kernel caps them
		_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
		_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_SNDBUF, n)
	}
	return &sock{fd: fd, v6: v6}, nil
}

var errSockClosed = errors.New("media: socket closed")

// writeTo sends one datagram. Safe for concurrent use, and with close.
func (k *sock) writeTo(b []byte, dst netip.AddrPort) error {
	var sa rawudp.Sockaddr
	if err := sa.Set(dst, k.v6); err != nil {
		return fmt.Errorf("media: %w", err)
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.closed {
		return errSockClosed
	}
	// Non-blocking: a full send buffer is EAGAIN, and the datagram is lost
	// as it would be on the wire.
	if e := rawudp.Sendto(uintptr(k.fd), b, &sa); e != 0 {
		return e
	}
	return nil
}

// close stops watching the socket and closes it. When it returns, the
// poller will not read it again and no write is under way.
func (k *sock) close() {
	if k.p != nil {
		k.p.remove(k)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.closed {
		k.closed = true
		syscall.Close(k.fd)
	}
}

// ioState is the relay's pollers.
type ioState struct {
	pollers []*poller
	next    atomic.Uint32
}

// startIO starts the configured number of pollers.
func (r *Relay) startIO() error {
	n := r.cfg.workers(runtime.GOMAXPROCS(0))
	for i := 0; i < n; i++ {
		p, err := newPoller()
		if err != nil {
			r.stopIO()
			return err
		}
		r.io.pollers = append(r.io.pollers, p)
	}
	return nil
}

// stopIO stops the pollers; every session is closed by then.
func (r *Relay) stopIO() {
	for _, p := range r.io.pollers {
		p.stop()
	}
}

// assignIO picks the poller of a new session; its four sockets share it.
func (r *Relay) assignIO(s *Session) {
	s.io = int(r.io.next.Add(1)) % len(r.io.pollers)
}

// watch starts relaying what arrives on one of a leg's sockets.
func (r *Relay) watch(l *Leg, k *sock, rtcpPort bool) error {
	return r.io.pollers[l.s.io].add(l, k, rtcpPort)
}

// pollSlot says whose a socket in the epoll set is. The event's data
// carries the slot's index and generation, so an event fetched before a
// socket was removed is never delivered to a later socket in the same slot.
type pollSlot struct {
	k    *sock
	leg  *Leg
	rtcp bool
	gen  uint32
}

type poller struct {
	epfd int      // the set of sockets
	nfd  int      // the notifier: an epoll set watching epfd, one-shot
	file *os.File // nfd, as the Go runtime's poller sees it
	rc   syscall.RawConn

	mu    sync.Mutex // held by the loop while it serves a batch
	slots slots.Table[pollSlot]

	stopping atomic.Bool
	done     chan struct{}
}

// notifyEvents watches the set for input, once per arming.
const notifyEvents = syscall.EPOLLIN | syscall.EPOLLONESHOT

func newPoller() (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	nfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		syscall.Close(epfd)
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	ev := syscall.EpollEvent{Events: notifyEvents, Fd: int32(epfd)}
	if err := syscall.EpollCtl(nfd, syscall.EPOLL_CTL_ADD, epfd, &ev); err != nil {
		syscall.Close(nfd)
		syscall.Close(epfd)
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	if err := syscall.SetNonblock(nfd, true); err != nil {
		syscall.Close(nfd)
		syscall.Close(epfd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	f := os.NewFile(uintptr(nfd), "media-epoll")
	// Only a descriptor in the runtime's poller accepts deadlines: the
	// check that the loop below can park instead of spinning.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		syscall.Close(epfd)
		return nil, fmt.Errorf("media: epoll set not pollable: %w", err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		syscall.Close(epfd)
		return nil, err
	}
	p := &poller{epfd: epfd, nfd: nfd, file: f, rc: rc, done: make(chan struct{})}
	go p.loop()
	return p, nil
}

func (p *poller) add(l *Leg, k *sock, rtcpPort bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	i, sl := p.slots.Take()
	sl.gen++
	sl.k, sl.leg, sl.rtcp = k, l, rtcpPort
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(i), Pad: int32(sl.gen)}
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, k.fd, &ev); err != nil {
		sl.k, sl.leg = nil, nil
		p.slots.Put(i)
		return os.NewSyscallError("epoll_ctl", err)
	}
	k.p, k.slot = p, i
	return nil
}

// remove takes a socket out of the set. It waits for a batch being served.
func (p *poller) remove(k *sock) {
	p.mu.Lock()
	defer p.mu.Unlock()
	sl := p.slots.At(k.slot)
	if sl.k != k {
		return
	}
	_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, k.fd, nil)
	sl.k, sl.leg = nil, nil
	p.slots.Put(k.slot)
	k.p = nil
}

func (p *poller) stop() {
	p.stopping.Store(true)
	p.file.Close() // wakes the loop with an error, and waits for it to leave the descriptor
	<-p.done
	syscall.Close(p.epfd)
}

const (
	// pollBatch bounds the events taken per epoll_pwait(2).
	pollBatch = 128
	// pollBusy is the drain, in datagrams, from which the loop sleeps and
	// polls instead of parking: with pollQuantum it switches to polling
	// above roughly pollBusy datagrams per quantum (some 40,000 a second,
	// 400 calls' RTP through one worker) and back below.
	pollBusy = 4
	// pollQuantum is the loop's sleep while polling.
	pollQuantum = 100 * time.Microsecond
)

func (p *poller) loop() {
	defer close(p.done)
	events := make([]syscall.EpollEvent, pollBatch)
	var note [1]syscall.EpollEvent
	buf := make([]byte, readBuffer)
	var rsa syscall.RawSockaddrAny
	quantum := syscall.NsecToTimespec(int64(pollQuantum))
	// drain takes ready sockets until the set has none and says how many
	// datagrams it read. The set is level-triggered and each ready socket
	// is read once per batch, so a socket with more queued is reported
	// again by the next call.
	drain := func() (int, bool) {
		total := 0
		for !p.stopping.Load() {
			r, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(p.epfd),
				uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
			if e == syscall.EINTR {
				continue
			}
			if e != 0 || r == 0 {
				return total, e == 0
			}
			p.mu.Lock()
			for _, ev := range events[:r] {
				sl := p.slots.At(uint32(ev.Fd))
				if sl.k == nil || sl.gen != uint32(ev.Pad) {
					continue // removed since
				}
				n, src, e := rawudp.Recvfrom(uintptr(sl.k.fd), buf, &rsa)
				if e != 0 {
					continue // EAGAIN, or an ICMP error reported on the socket
				}
				total++
				sl.leg.handle(buf[:n], src, sl.rtcp)
			}
			p.mu.Unlock()
		}
		return total, false
	}
	// serve runs from a wake-up of the notifier until the set is drained
	// and the notifier armed again; false lets the runtime park the
	// goroutine until the notifier fires.
	serve := func(uintptr) bool {
		// Take the notifier's event, which disarms it (one-shot).
		_, _, _ = syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(p.nfd),
			uintptr(unsafe.Pointer(&note[0])), 1, 0, 0, 0)
		for {
			n, ok := drain()
			if p.stopping.Load() {
				return false
			}
			if !ok || n < pollBusy {
				break // quiet, or epoll_pwait failed: arm and wait for the next datagram
			}
			// Busy: let datagrams gather for a quantum rather than be
			// woken for each few. The system call lets the runtime run
			// a collection meanwhile.
			_, _, _ = syscall.Syscall(syscall.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&quantum)), 0, 0)
		}
		// Arm the notifier before parking. Arming polls the set, so a
		// datagram that arrived since the last drain fires it at once.
		ev := syscall.EpollEvent{Events: notifyEvents, Fd: int32(p.epfd)}
		_ = syscall.EpollCtl(p.nfd, syscall.EPOLL_CTL_MOD, p.epfd, &ev)
		return false
	}
	for {
		if err := p.rc.Read(serve); err != nil {
			return // closed by stop
		}
	}
}
