package node

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// A key marked again while its put is in flight stays pending; failures
// stay pending; nothing is put before the DHT has peers.
func TestPublisherRounds(t *testing.T) {
	n := &Node{ctx: context.Background(), log: slog.New(slog.DiscardHandler), m: newMetrics(prometheus.NewRegistry())}
	var mu sync.Mutex
	var p *publisher
	puts := map[string]int{}
	ready := false
	p = newPublisherWith(n, "test", func(k string) error {
		mu.Lock()
		puts[k]++
		first := puts[k] == 1
		mu.Unlock()
		switch k {
		case "again":
			if first {
				p.mark("again") // changed while its put was in flight
			}
		case "broken":
			return errors.New("put failed")
		}
		return nil
	}, func() bool { return ready })

	p.mark("ok", "again", "broken")
	p.round()
	if len(puts) != 0 {
		t.Fatalf("put before the DHT had peers: %v", puts)
	}
	ready = true
	p.round()
	pending := func() map[string]bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		out := map[string]bool{}
		for k := range p.pending {
			out[k] = true
		}
		return out
	}
	if got := pending(); got["ok"] || !got["again"] || !got["broken"] {
		t.Fatalf("after one round pending = %v; want again and broken", got)
	}
	p.round()
	if got := pending(); got["again"] || !got["broken"] {
		t.Fatalf("after two rounds pending = %v; want broken only", got)
	}
	if puts["ok"] != 1 || puts["again"] != 2 || puts["broken"] != 2 {
		t.Fatalf("puts = %v", puts)
	}
}
