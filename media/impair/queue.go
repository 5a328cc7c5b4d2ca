package impair

import (
	"net/netip"
	"sync"
)

// packet is a datagram waiting for its delivery time.
type packet struct {
	at  int64  // delivery time, ns since the pipe's epoch
	seq uint64 // arrival order: breaks ties so equal times leave in order
	dir direction
	dst netip.AddrPort
	b   []byte
}

// pooledCap is the capacity of a fresh pooled buffer (an RTP packet fits);
// buffers that grew past maxPooledCap for a rare jumbo datagram are left to
// the garbage collector rather than kept in the pool.
const (
	pooledCap    = 2048
	maxPooledCap = 16 << 10
)

var packetPool = sync.Pool{New: func() any { return &packet{b: make([]byte, 0, pooledCap)} }}

func getPacket(b []byte) *packet {
	pk := packetPool.Get().(*packet)
	pk.b = append(pk.b[:0], b...)
	return pk
}

func putPacket(pk *packet) {
	if cap(pk.b) > maxPooledCap {
		return
	}
	pk.b = pk.b[:0]
	pk.dst = netip.AddrPort{}
	packetPool.Put(pk)
}

// queue is a min-heap of packets by (at, seq) for container/heap.
type queue []*packet

func (q queue) Len() int { return len(q) }

func (q queue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}

func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }

func (q *queue) Push(x any) { *q = append(*q, x.(*packet)) }

func (q *queue) Pop() any {
	old := *q
	n := len(old) - 1
	pk := old[n]
	old[n] = nil
	*q = old[:n]
	return pk
}
