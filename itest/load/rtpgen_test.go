//go:build linux

package load

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// The RTP load generator: per call two endpoints, A and B, each a UDP
// socket on 127.0.0.1 that sends 20 ms PCMU packets (RFC 3551 §4.5.14:
// 160 octets of payload, 160 timestamp units) at 50 packets/s to where
// the relay told it to, and receives the other side's stream. Each packet
// carries its send time, taken just before its write, and one-way latency
// ends at the moment the kernel queued the packet on the receiving socket
// (a software receive timestamp, SO_TIMESTAMPNS, on the same wall clock):
// what the relay and the two loopback hops added, without the time the
// generator's own reader takes to get to it.
//
// It is built to cost the shared cores as little as possible, since the
// relay under test runs on the same two: sockets are raw non-blocking file
// descriptors connected to their relay port (so a read or write is one
// system call without an address), a few sender goroutines walk their
// endpoints on one schedule instead of a timer per socket, and a few
// readers poll epoll for many sockets at once. Latencies go into fixed
// histograms; nothing is allocated per packet. Its threads run at low
// priority (genNice by default).
const (
	genPeriod  = 20 * time.Millisecond // packet interval of every stream
	genPayload = 160                   // PCMU octets per 20 ms
	genPacket  = 12 + genPayload       // with the RTP fixed header (RFC 3550 §5.1)
	genSamples = 160                   // timestamp units per packet (8 kHz)
	// genBucket and genBuckets shape the latency histograms: 10 µs
	// buckets up to 100 ms, and one more for everything later.
	genBucket  = 10 * time.Microsecond
	genBuckets = 10000
	// genSocketBuffer is asked for as SO_RCVBUF and SO_SNDBUF on every
	// generator socket; the kernel caps it at net.core.rmem_max/wmem_max.
	genSocketBuffer = 1 << 20
	// genSendQuantum is the shortest a sender sleeps: it then sends every
	// packet that fell due meanwhile, so its wake-ups stay bounded
	// whatever the number of endpoints (packets leave at most this much,
	// plus the kernel's timer slack, after their time).
	genSendQuantum = 200 * time.Microsecond
	// genReadQuantum is how long a reader sleeps when it finds its sockets
	// drained: it then reads whatever arrived meanwhile, so the readers
	// too wake a bounded number of times whatever the packet rate. The
	// latency measured does not depend on it: it ends at the kernel's
	// receive timestamp.
	genReadQuantum = 500 * time.Microsecond
	// genNice is the default scheduling niceness of the generator's
	// threads. The generator shares the cores with the relay under test,
	// which on its own machine would have them to itself: at nice 19 a
	// relay thread woken by a packet gets a core before the generator's
	// threads instead of waiting behind them, so what is measured is the
	// relay's latency more than the generator's use of the cores. The
	// generator gets what the relay leaves; when that is too little it
	// falls behind its schedule (sender lag), and below 99% of its packets
	// the step fails.
	genNice = 19
	// genMagic marks the generator's payloads. The payload starts with
	// the send time on the generator's monotonic clock (8 octets), the
	// magic (4) and the send time on the wall clock (8), which the kernel's
	// receive timestamps use.
	genMagic = 0x636d6c64 // "cmld"
)

// Directions of a call's streams.
const (
	dirAB = 0 // sent by A, received by B
	dirBA = 1
)

// genEndpoint is one side of a call. The sending half belongs to one
// sender goroutine, the receiving half to one reader.
type genEndpoint struct {
	fd   int
	addr netip.AddrPort
	dir  int // of the stream it sends
	send genSend
	recv genRecv
}

type genSend struct {
	pkt   [genPacket]byte
	ssrc  uint32
	seq0  uint16
	ts0   uint32
	phase time.Duration // offset of its packets within the period
	sent  uint64        // packets written with a send time in the window
	errs  uint64        // writes that failed, in the window
	_     [64]byte      // keep the halves on separate cache lines
}

type genRecv struct {
	peerSSRC uint32
	peerSeq0 uint16
	seen     []uint64 // bitset by packet number: received in the window
	got      uint64   // distinct packets of the window received
	dups     uint64   // received again
	late     uint64   // arrived after a higher packet number (reordered)
	stray    uint64   // not the peer's stream, or not a generator packet
	noStamp  uint64   // received without a kernel timestamp
	highest  uint64
	_        [64]byte
}

// genHist is a latency histogram: genBucket-wide buckets.
type genHist struct {
	n   [genBuckets + 1]uint64
	max time.Duration
}

func (h *genHist) add(d time.Duration) {
	i := int(d / genBucket)
	switch {
	case d < 0:
		i = 0
	case i > genBuckets:
		i = genBuckets
	}
	h.n[i]++
	if d > h.max {
		h.max = d
	}
}

func (h *genHist) merge(o *genHist) {
	for i, n := range o.n {
		h.n[i] += n
	}
	h.max = max(h.max, o.max)
}

func (h *genHist) count() uint64 {
	var c uint64
	for _, n := range h.n {
		c += n
	}
	return c
}

// quantile is the upper edge of the bucket that holds the q-quantile
// (nearest rank), or the maximum when that is lower or the quantile is
// past the last bucket.
func (h *genHist) quantile(q float64) time.Duration {
	total := h.count()
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total) + 0.999999)
	rank = min(max(rank, 1), total)
	var c uint64
	for i, n := range h.n {
		c += n
		if c >= rank {
			if i == genBuckets {
				return h.max
			}
			return min(time.Duration(i+1)*genBucket, h.max)
		}
	}
	return h.max
}

// generator is the endpoints of calls calls: eps[2c] is call c's A side,
// eps[2c+1] its B side.
type generator struct {
	calls   int
	eps     []*genEndpoint
	workers int
	nice    int // of its threads
	epoch   time.Time
	rcvbuf  int // the receive buffer the kernel granted
}

// newGenerator binds the endpoints of calls calls on 127.0.0.1.
func newGenerator(calls int) (*generator, error) {
	g := &generator{calls: calls, workers: min(max(runtime.NumCPU(), 1), 4), nice: genNice, epoch: time.Now()}
	for i := 0; i < 2*calls; i++ {
		ep, err := g.bind()
		if err != nil {
			g.close()
			return nil, fmt.Errorf("endpoint %d of %d: %w", i, 2*calls, err)
		}
		ep.dir = i % 2
		g.eps = append(g.eps, ep)
	}
	for c := 0; c < calls; c++ {
		a, b := g.eps[2*c], g.eps[2*c+1]
		// Calls start evenly over one period; B sends half a period after A.
		a.send.phase = time.Duration(c) * genPeriod / time.Duration(calls)
		b.send.phase = (a.send.phase + genPeriod/2) % genPeriod
		a.recv.peerSSRC, a.recv.peerSeq0 = b.send.ssrc, b.send.seq0
		b.recv.peerSSRC, b.recv.peerSeq0 = a.send.ssrc, a.send.seq0
	}
	return g, nil
}

func (g *generator) bind() (*genEndpoint, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	ep := &genEndpoint{fd: fd}
	ok := false
	defer func() {
		if !ok {
			syscall.Close(fd)
		}
	}()
	_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, genSocketBuffer)
	_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_SNDBUF, genSocketBuffer)
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1); err != nil {
		return nil, fmt.Errorf("SO_TIMESTAMPNS: %w", err)
	}
	if g.rcvbuf == 0 {
		// Linux reports twice what it granted (the doubling covers its
		// bookkeeping, socket(7)).
		if n, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF); err == nil {
			g.rcvbuf = n / 2
		}
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return nil, err
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		return nil, err
	}
	in4, isIn4 := sa.(*syscall.SockaddrInet4)
	if !isIn4 {
		return nil, errors.New("not an IPv4 socket")
	}
	ep.addr = netip.AddrPortFrom(netip.AddrFrom4(in4.Addr), uint16(in4.Port))
	ep.send.ssrc = rand.Uint32() | 1
	ep.send.seq0 = uint16(rand.Uint32())
	ep.send.ts0 = rand.Uint32()
	p := ep.send.pkt[:]
	p[0] = 2 << 6 // V=2, no padding, extension or CSRC
	p[1] = 0      // PT 0: PCMU
	binary.BigEndian.PutUint32(p[8:], ep.send.ssrc)
	for i := 12; i < len(p); i++ {
		p[i] = 0xff // μ-law silence
	}
	binary.BigEndian.PutUint32(p[20:], genMagic)
	ok = true
	return ep, nil
}

// addr is where endpoint i receives (and sends from).
func (g *generator) addr(i int) netip.AddrPort { return g.eps[i].addr }

// connect points endpoint i at dst: it sends there and accepts packets
// only from there (a connected UDP socket), as symmetric RTP does.
func (g *generator) connect(i int, dst netip.AddrPort) error {
	if !dst.Addr().Is4() {
		return fmt.Errorf("endpoint %d: %s is not IPv4", i, dst)
	}
	return syscall.Connect(g.eps[i].fd, &syscall.SockaddrInet4{Addr: dst.Addr().As4(), Port: int(dst.Port())})
}

func (g *generator) close() {
	for _, ep := range g.eps {
		syscall.Close(ep.fd)
	}
}

// now is the generator's monotonic clock.
func (g *generator) now() time.Duration { return time.Since(g.epoch) }

// genResult is what one run measured.
type genResult struct {
	window   time.Duration
	sent     [2]uint64 // per direction, packets sent in the window
	got      [2]uint64 // of those, received
	sendErrs uint64
	dups     uint64
	late     uint64
	stray    uint64
	noStamp  uint64
	latency  genHist // one-way, send to the kernel's receive timestamp
	lag      genHist // how late the senders were on their schedule
	genCPU   time.Duration
	rcvbuf   int // receive buffer the kernel granted a generator socket
}

func (r *genResult) lost(dir int) uint64 { return r.sent[dir] - r.got[dir] }

func (r *genResult) totalSent() uint64 { return r.sent[dirAB] + r.sent[dirBA] }
func (r *genResult) totalGot() uint64  { return r.got[dirAB] + r.got[dirBA] }

// run sends for warmup+measure and counts the packets sent in the
// measured window (the last measure of it); readers go on for drain after
// the senders stop. onWindow is called as the window starts and as it
// ends (from another goroutine), to sample the CPU of the relay.
func (g *generator) run(warmup, measure, drain time.Duration, onWindow func(start bool)) (*genResult, error) {
	perStream := int((warmup+measure)/genPeriod) + 2
	for _, ep := range g.eps {
		ep.recv = genRecv{peerSSRC: ep.recv.peerSSRC, peerSeq0: ep.recv.peerSeq0,
			seen: make([]uint64, (perStream+63)/64)}
		ep.send.sent, ep.send.errs = 0, 0
	}
	w := g.workers
	res := &genResult{window: measure, rcvbuf: g.rcvbuf}
	// The generator's threads make their system calls raw, without telling
	// the Go runtime, so that it does not take their Ps away when one
	// sleeps (which costs a hand-off to another thread each time, and
	// keeps the runtime's monitor polling every 20 µs): each holds a P of
	// its own, added here, and the rest of the process keeps as many as
	// it had.
	procs := runtime.GOMAXPROCS(0)
	runtime.GOMAXPROCS(procs + 2*w)
	defer runtime.GOMAXPROCS(procs)

	// Readers: each polls its own epoll set, for a share of the sockets.
	epfds := make([]int, w)
	defer func() {
		for _, fd := range epfds {
			if fd > 0 {
				syscall.Close(fd)
			}
		}
	}()
	for r := range epfds {
		fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			return nil, err
		}
		epfds[r] = fd
		for i := r; i < len(g.eps); i += w {
			ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(g.eps[i].fd), Pad: int32(i)}
			if err := syscall.EpollCtl(fd, syscall.EPOLL_CTL_ADD, g.eps[i].fd, &ev); err != nil {
				return nil, err
			}
		}
	}
	t0 := g.now() + 20*time.Millisecond
	wStart, wEnd := t0+warmup, t0+warmup+measure
	var stop atomic.Bool
	var readers sync.WaitGroup
	hists := make([]*genHist, w)
	for r := range epfds {
		hists[r] = new(genHist)
		readers.Add(1)
		go func(epfd int, h *genHist) {
			defer readers.Done()
			lowPriority(g.nice)
			g.read(epfd, h, wStart, wEnd, &stop)
		}(epfds[r], hists[r])
	}

	// Senders: call c belongs to sender c mod w, both its endpoints.
	var senders sync.WaitGroup
	lags := make([]*genHist, w)
	for s := 0; s < w; s++ {
		var mine []*genEndpoint
		for c := s; c < g.calls; c += w {
			mine = append(mine, g.eps[2*c], g.eps[2*c+1])
		}
		slices.SortFunc(mine, func(a, b *genEndpoint) int { return int(a.send.phase - b.send.phase) })
		lags[s] = new(genHist)
		senders.Add(1)
		go func(eps []*genEndpoint, lag *genHist) {
			defer senders.Done()
			lowPriority(g.nice)
			g.send(eps, t0, wStart, wEnd, lag)
		}(mine, lags[s])
	}

	windowDone := make(chan struct{})
	go func() {
		defer close(windowDone)
		time.Sleep(wStart - g.now())
		c := processCPU()
		if onWindow != nil {
			onWindow(true)
		}
		time.Sleep(wEnd - g.now())
		if onWindow != nil {
			onWindow(false)
		}
		res.genCPU = processCPU() - c
	}()
	senders.Wait()
	<-windowDone
	time.Sleep(drain)
	stop.Store(true)
	readers.Wait()

	for _, h := range hists {
		res.latency.merge(h)
	}
	for _, h := range lags {
		res.lag.merge(h)
	}
	for _, ep := range g.eps {
		res.sent[ep.dir] += ep.send.sent
		res.sendErrs += ep.send.errs
		res.got[1-ep.dir] += ep.recv.got // an endpoint receives the other direction
		res.dups += ep.recv.dups
		res.late += ep.recv.late
		res.stray += ep.recv.stray
		res.noStamp += ep.recv.noStamp
	}
	return res, nil
}

// lowPriority locks the calling goroutine to its thread, for good (the
// thread ends with the goroutine), and sets that thread's niceness: on
// Linux niceness belongs to the thread.
func lowPriority(nice int) {
	runtime.LockOSThread()
	if nice != 0 {
		_ = syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), nice)
	}
}

// sleep blocks the thread, and its P, for d; unlike time.Sleep, whose
// wake-up the Go runtime rounds up to a millisecond when it is idle, it
// keeps to the kernel's timer slack (50 µs by default). A signal may end
// it early.
func sleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	_, _, _ = syscall.RawSyscall(syscall.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), 0, 0)
}

// send writes the packets of eps (sorted by phase) on their schedule from
// t0 until wEnd: packet k of an endpoint is due at t0 + phase + k periods.
// The send time written into a packet is taken just before its write.
func (g *generator) send(eps []*genEndpoint, t0, wStart, wEnd time.Duration, lag *genHist) {
	if len(eps) == 0 {
		return
	}
	var k uint64 // round
	i := 0
	for {
		due := t0 + time.Duration(k)*genPeriod + eps[i].send.phase
		if due >= wEnd {
			return
		}
		if now := g.now(); due > now {
			sleep(max(due-now, genSendQuantum))
			continue
		}
		ep := eps[i]
		s := &ep.send
		p := s.pkt[:]
		if k == 0 {
			p[1] = 0x80 // marker on the first packet of a talkspurt (RFC 3551 §4.1)
		} else {
			p[1] = 0
		}
		binary.BigEndian.PutUint16(p[2:], s.seq0+uint16(k))
		binary.BigEndian.PutUint32(p[4:], s.ts0+uint32(k)*genSamples)
		wall := time.Now()
		at := wall.Sub(g.epoch)
		binary.BigEndian.PutUint64(p[12:], uint64(at))
		binary.BigEndian.PutUint64(p[24:], uint64(wall.UnixNano()))
		_, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(ep.fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if at >= wStart && at < wEnd {
			if errno == 0 {
				s.sent++
			} else {
				s.errs++
			}
			lag.add(at - due)
		}
		if i++; i == len(eps) {
			i = 0
			k++
		}
	}
}

// read receives on the sockets of epfd until stop, counting the packets
// whose send time is in [wStart, wEnd). It polls: it reads every socket
// epoll reports ready, and sleeps genReadQuantum when none is. Each read is
// one recvmsg(2) into buffers set up once, with the kernel's receive
// timestamp as ancillary data.
func (g *generator) read(epfd int, h *genHist, wStart, wEnd time.Duration, stop *atomic.Bool) {
	events := make([]syscall.EpollEvent, 256)
	buf := make([]byte, 2048)
	oob := make([]uint64, 8) // room for one cmsg of a timespec, 8-byte aligned
	iov := syscall.Iovec{Base: &buf[0]}
	iov.SetLen(len(buf))
	var msg syscall.Msghdr
	msg.Iov = &iov
	msg.Iovlen = 1
	msg.Control = (*byte)(unsafe.Pointer(&oob[0]))
	cmsg := (*syscall.Cmsghdr)(unsafe.Pointer(&oob[0]))
	stamp := (*syscall.Timespec)(unsafe.Add(unsafe.Pointer(&oob[0]), syscall.CmsgLen(0)))
	for !stop.Load() {
		r, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd),
			uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
		if errno != 0 {
			continue // EINTR
		}
		n := int(r)
		if n == 0 {
			sleep(genReadQuantum)
			continue
		}
		for _, ev := range events[:n] {
			ep := g.eps[ev.Pad]
			msg.SetControllen(len(oob) * 8)
			msg.Flags = 0
			m, _, errno := syscall.RawSyscall(syscall.SYS_RECVMSG, uintptr(ep.fd), uintptr(unsafe.Pointer(&msg)), 0)
			if errno != 0 {
				continue // EAGAIN, or ECONNREFUSED from an ICMP error before the relay listened
			}
			var rx int64 // kernel receive time, wall clock; 0: none
			if msg.Controllen >= uint64(syscall.CmsgLen(int(unsafe.Sizeof(*stamp)))) &&
				cmsg.Level == syscall.SOL_SOCKET && cmsg.Type == syscall.SCM_TIMESTAMPNS {
				rx = stamp.Nano()
			}
			g.receive(ep, buf[:m], rx, wStart, wEnd, h)
		}
	}
}

func (g *generator) receive(ep *genEndpoint, b []byte, rx int64, wStart, wEnd time.Duration, h *genHist) {
	r := &ep.recv
	if len(b) != genPacket || b[0]>>6 != 2 || binary.BigEndian.Uint32(b[8:]) != r.peerSSRC ||
		binary.BigEndian.Uint32(b[20:]) != genMagic {
		r.stray++
		return
	}
	sent := time.Duration(binary.BigEndian.Uint64(b[12:]))
	if sent < wStart || sent >= wEnd {
		return
	}
	num := uint64(binary.BigEndian.Uint16(b[2:]) - r.peerSeq0)
	if num/64 >= uint64(len(r.seen)) {
		r.stray++
		return
	}
	word, bit := num/64, uint64(1)<<(num%64)
	if r.seen[word]&bit != 0 {
		r.dups++
		return
	}
	r.seen[word] |= bit
	r.got++
	if num < r.highest {
		r.late++
	}
	r.highest = max(r.highest, num)
	if rx == 0 {
		r.noStamp++ // cannot happen with SO_TIMESTAMPNS set
		return
	}
	h.add(time.Duration(rx - int64(binary.BigEndian.Uint64(b[24:]))))
}
