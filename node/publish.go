package node

import (
	"errors"
	"maps"
	"sync"
	"time"
)

// putWorkers bounds the DHT puts in flight for one publisher: each is a
// DHT query.
const putWorkers = 16

// errNoDHTPeers is a put attempted before the routing table has a peer.
var errNoDHTPeers = errors.New("no DHT peers yet")

// publisher keeps the DHT records a node owes the federation under one
// namespace. Keys are marked pending when their record changes; a round
// puts every pending key with put (which reads the key's current state),
// up to putWorkers at a time, and keeps the failures for the next round.
// Each mark carries a version, so a change made while its put is in flight
// is put again. Rounds run when woken and every second; every
// dht.republish the owner's republish marks what must be put again, since
// DHT peers keep records in memory only and kad-dht never republishes.
type publisher struct {
	n     *Node
	what  string // for logs
	put   func(key string) error
	ready func() bool // whether the DHT has peers to put to

	mu      sync.Mutex
	pending map[string]uint64 // key → version of its latest mark
	version uint64
	wake    chan struct{}
}

func newPublisher(n *Node, what string, put func(key string) error) *publisher {
	return newPublisherWith(n, what, put, func() bool { return n.dht.RoutingTable().Size() > 0 })
}

func newPublisherWith(n *Node, what string, put func(key string) error, ready func() bool) *publisher {
	return &publisher{n: n, what: what, put: put, ready: ready, pending: map[string]uint64{}, wake: make(chan struct{}, 1)}
}

// mark queues keys for the next round and wakes the publisher.
func (p *publisher) mark(keys ...string) {
	p.mu.Lock()
	for _, k := range keys {
		p.version++
		p.pending[k] = p.version
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// run drives the rounds until the node stops. tick runs every second
// before the round; republish every dht.republish, and once at start.
func (p *publisher) run(tick, republish func(now time.Time)) {
	defer p.n.wg.Done()
	republish(time.Now())
	next := time.Now().Add(p.n.cfg.DHT.Republish)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-p.n.ctx.Done():
			return
		case <-p.wake:
		case now := <-t.C:
			if tick != nil {
				tick(now)
			}
			if now.After(next) {
				next = now.Add(p.n.cfg.DHT.Republish)
				republish(now)
			}
		}
		p.round()
	}
}

// round puts every pending key once.
func (p *publisher) round() {
	p.mu.Lock()
	n := len(p.pending)
	p.mu.Unlock()
	if n == 0 {
		return
	}
	if !p.ready() {
		// Checked before the pending set is copied: a node without DHT
		// peers would otherwise copy every key it owes, every second.
		p.n.log.Debug(p.what+" not published yet", "pending", n, "err", errNoDHTPeers)
		return
	}
	p.mu.Lock()
	batch := maps.Clone(p.pending)
	p.mu.Unlock()
	work := make(chan string)
	var wg sync.WaitGroup
	for range min(putWorkers, len(batch)) {
		wg.Go(func() {
			for k := range work {
				if err := p.put(k); err != nil {
					p.n.m.records.WithLabelValues("error").Inc()
					p.n.log.Debug(p.what+" not published; will retry", "key", k, "err", err)
					continue
				}
				p.n.m.records.WithLabelValues("ok").Inc()
				p.mu.Lock()
				if p.pending[k] == batch[k] { // not marked again meanwhile
					delete(p.pending, k)
				}
				p.mu.Unlock()
			}
		})
	}
	for k := range batch {
		if p.n.ctx.Err() != nil {
			break
		}
		work <- k
	}
	close(work)
	wg.Wait()
}
