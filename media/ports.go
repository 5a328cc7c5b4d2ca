package media

import (
	"errors"
	"sync"
)

// ErrNoPorts is returned when the configured port range has no free pair
// left; the call layer answers 503 (RFC 3261 §21.5.4).
var ErrNoPorts = errors.New("media: no free RTP port pair in the configured range")

// portPool hands out RTP port pairs (even RTP port, RTCP one above). Freed
// pairs go to the back of the queue, so a port is reused as late as
// possible and stray packets of an ended call rarely reach a new one.
type portPool struct {
	mu    sync.Mutex
	free  []int // ring of free even ports
	head  int
	count int
}

func newPortPool(min, max int) *portPool {
	first := min + min%2
	p := &portPool{}
	for port := first; port+1 <= max; port += 2 {
		p.free = append(p.free, port)
	}
	p.count = len(p.free)
	return p
}

// take removes the oldest free pair.
func (p *portPool) take() (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.count == 0 {
		return 0, false
	}
	port := p.free[p.head]
	p.head = (p.head + 1) % len(p.free)
	p.count--
	return port, true
}

// put returns a pair to the back of the queue.
func (p *portPool) put(port int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.free[(p.head+p.count)%len(p.free)] = port
	p.count++
}

// available counts free pairs.
func (p *portPool) available() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count
}
