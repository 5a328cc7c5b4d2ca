package impair

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// endpoint is a UDP socket on loopback that records what it receives.
type endpoint struct {
	conn *net.UDPConn
	addr netip.AddrPort
	done chan struct{}

	mu      sync.Mutex
	got     map[byte][]uint32 // indices received, by tag, in arrival order
	from    map[netip.AddrPort]int
	corrupt int
}

func newEndpoint(t *testing.T) *endpoint {
	t.Helper()
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadBuffer(1 << 20)
	e := &endpoint{
		conn: conn,
		addr: conn.LocalAddr().(*net.UDPAddr).AddrPort(),
		done: make(chan struct{}),
		got:  map[byte][]uint32{},
		from: map[netip.AddrPort]int{},
	}
	go e.loop()
	t.Cleanup(func() {
		conn.Close()
		<-e.done
	})
	return e
}

func (e *endpoint) loop() {
	defer close(e.done)
	buf := make([]byte, 2048)
	for {
		n, src, err := e.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		tag, i, ok := parse(buf[:n])
		e.mu.Lock()
		if ok {
			e.got[tag] = append(e.got[tag], i)
		} else {
			e.corrupt++
		}
		e.from[src]++
		e.mu.Unlock()
	}
}

func (e *endpoint) received(tag byte) []uint32 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.got[tag])
}

const payloadLen = 172 // 20 ms of G.711 behind an RTP header

func payload(tag byte, i uint32) []byte {
	b := make([]byte, payloadLen)
	b[0] = tag
	binary.BigEndian.PutUint32(b[1:], i)
	for j := 5; j < len(b); j++ {
		b[j] = byte(int(i) + j)
	}
	return b
}

func parse(b []byte) (tag byte, i uint32, ok bool) {
	if len(b) != payloadLen {
		return 0, 0, false
	}
	i = binary.BigEndian.Uint32(b[1:])
	for j := 5; j < len(b); j++ {
		if b[j] != byte(int(i)+j) {
			return 0, 0, false
		}
	}
	return b[0], i, true
}

// eventually polls cond until it holds, failing the test after a generous
// deadline. Nothing here asserts on time; the deadline only stops a hang.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// send writes datagrams first..first+n-1 from e to dst, a window at a time,
// waiting for the pipe to have read each window so that no socket buffer on
// the way can overflow. received reports the pipe's count for the direction.
func (e *endpoint) send(t *testing.T, dst netip.AddrPort, tag byte, first, n uint32, received func() uint64) {
	t.Helper()
	const window = 16
	base := received()
	for k := uint32(0); k < n; k++ {
		if _, err := e.conn.WriteToUDPAddrPort(payload(tag, first+k), dst); err != nil {
			t.Fatalf("send %d: %v", first+k, err)
		}
		if sent := uint64(k + 1); sent%window == 0 || k == n-1 {
			eventually(t, "the pipe to read its input", func() bool { return received()-base >= sent })
		}
	}
}

// predict lists the datagrams of first..first+n-1 that a fresh Model of c
// delivers. The send times given to it are arbitrary: loss does not depend
// on them.
func predict(t *testing.T, c Config, first, n uint32) []uint32 {
	m := mustNew(t, c)
	var out []uint32
	for k := range n {
		if _, drop := m.Next(int64(k) * 12345); !drop {
			out = append(out, first+k)
		}
	}
	return out
}

func listen(t *testing.T, upstream netip.AddrPort, up, down Config) *Pipe {
	t.Helper()
	p, err := Listen(context.Background(), "127.0.0.1:0", upstream, up, down)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

func upRecv(p *Pipe) func() uint64   { return func() uint64 { return p.Stats().Up.Received } }
func downRecv(p *Pipe) func() uint64 { return func() uint64 { return p.Stats().Down.Received } }

// settle waits until every datagram the pipe read in a direction is
// accounted for and every forwarded one has reached the receiver, then
// returns the direction's counters.
func settle(t *testing.T, p *Pipe, d direction, rcv *endpoint, tag byte) DirStats {
	t.Helper()
	get := func() DirStats {
		if d == up {
			return p.Stats().Up
		}
		return p.Stats().Down
	}
	eventually(t, "the pipe to decide every datagram", func() bool {
		s := get()
		return s.Forwarded+s.Dropped+s.Failed == s.Received
	})
	s := get()
	eventually(t, "forwarded datagrams to arrive", func() bool {
		return uint64(len(rcv.received(tag))) >= s.Forwarded
	})
	return s
}

func TestPipeLossMatchesModel(t *testing.T) {
	const n = 500
	relay, client := newEndpoint(t), newEndpoint(t)
	upc := Config{Delay: 2 * time.Millisecond, Jitter: time.Millisecond, LossPct: 10, MeanBurst: 2, Seed: 2024}
	downc := Config{Delay: time.Millisecond, Jitter: 3 * time.Millisecond, Reorder: true, LossPct: 10, Seed: 99}
	p := listen(t, relay.addr, upc, downc)

	client.send(t, p.Addr(), 'u', 0, n, upRecv(p))
	s := settle(t, p, up, relay, 'u')
	want, got := predict(t, upc, 0, n), relay.received('u')
	t.Logf("up: %d of %d delivered, model predicts %d; stats %+v", len(got), n, len(want), s)
	if len(got) != len(want) || s.Forwarded != uint64(len(want)) || s.Dropped != uint64(n-len(want)) || s.Failed != 0 {
		t.Fatalf("up: %d arrived, stats %+v; the model delivers %d of %d", len(got), s, len(want), n)
	}
	if !slices.Equal(got, want) { // Reorder false: same datagrams, same order
		t.Errorf("up: arrived %v\nwant %v", got, want)
	}

	// Down goes to the latched client, from the pipe's address.
	relay.send(t, p.Addr(), 'd', 0, n, downRecv(p))
	s = settle(t, p, down, client, 'd')
	want, got = predict(t, downc, 0, n), client.received('d')
	t.Logf("down: %d of %d delivered, model predicts %d; stats %+v", len(got), n, len(want), s)
	slices.Sort(got) // Reorder true: compare as sets
	if !slices.Equal(got, want) || s.Dropped != uint64(n-len(want)) || s.Failed != 0 {
		t.Errorf("down: stats %+v, arrived %v\nwant %v", s, got, want)
	}
	for _, e := range []*endpoint{relay, client} {
		e.mu.Lock()
		if len(e.from) != 1 || e.from[p.Addr()] == 0 || e.corrupt != 0 {
			t.Errorf("endpoint got datagrams from %v (want only %v), %d corrupt", e.from, p.Addr(), e.corrupt)
		}
		e.mu.Unlock()
	}
}

func TestPipeZeroForwardsAll(t *testing.T) {
	const n = 500
	relay, client := newEndpoint(t), newEndpoint(t)
	p := listen(t, relay.addr, Config{}, Config{Seed: 5})

	client.send(t, p.Addr(), 'u', 0, n, upRecv(p))
	relay.send(t, p.Addr(), 'd', 0, n, downRecv(p))
	su := settle(t, p, up, relay, 'u')
	sd := settle(t, p, down, client, 'd')
	all := predict(t, Config{}, 0, n)
	if got := relay.received('u'); !slices.Equal(got, all) || su.Forwarded != n {
		t.Errorf("up: %d of %d arrived (stats %+v)", len(got), n, su)
	}
	if got := client.received('d'); !slices.Equal(got, all) || sd.Forwarded != n {
		t.Errorf("down: %d of %d arrived (stats %+v)", len(got), n, sd)
	}
}

func TestPipeSetConfig(t *testing.T) {
	relay, client := newEndpoint(t), newEndpoint(t)
	p := listen(t, relay.addr, Config{}, Config{})

	client.send(t, p.Addr(), 'u', 0, 100, upRecv(p))
	settle(t, p, up, relay, 'u')
	if got := len(relay.received('u')); got != 100 {
		t.Fatalf("before SetConfig: %d of 100 arrived", got)
	}

	err := p.SetConfig(Config{}, Config{Jitter: -1})
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Field != "down.jitter" {
		t.Fatalf("SetConfig with a bad down config = %v, want a ConfigError on down.jitter", err)
	}

	// Degrade, twice with the same config: each SetConfig reseeds, so each
	// phase loses exactly what a fresh model predicts.
	degraded := Config{Delay: time.Millisecond, LossPct: 20, MeanBurst: 3, Seed: 5}
	want := predict(t, Config{}, 0, 100)
	for phase, first := range []uint32{100, 400} {
		if err := p.SetConfig(degraded, Config{}); err != nil {
			t.Fatal(err)
		}
		client.send(t, p.Addr(), 'u', first, 300, upRecv(p))
		settle(t, p, up, relay, 'u')
		want = append(want, predict(t, degraded, first, 300)...)
		if got := relay.received('u'); !slices.Equal(got, want) {
			t.Fatalf("phase %d: arrived %v\nwant %v", phase, got[100:], want[100:])
		}
	}
	t.Logf("after SetConfig: %d of 600 arrived, stats %+v", len(want)-100, p.Stats().Up)
}

func TestPipeNoPeerYet(t *testing.T) {
	relay := newEndpoint(t)
	p := listen(t, relay.addr, Config{}, Config{})
	relay.send(t, p.Addr(), 'd', 0, 3, downRecv(p))
	eventually(t, "the pipe to decide", func() bool { return p.Stats().Down.Failed == 3 })
	if s := p.Stats().Down; s.Received != 3 || s.Forwarded != 0 {
		t.Errorf("down before any peer: %+v, want 3 failed", s)
	}
}

func TestPipeClose(t *testing.T) {
	relay, client := newEndpoint(t), newEndpoint(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	others := goleak.IgnoreCurrent()
	p, err := Listen(ctx, "127.0.0.1:0", relay.addr, Config{Delay: MaxDelay}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	client.send(t, p.Addr(), 'u', 0, 10, upRecv(p))
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	goleak.VerifyNone(t, others)
	if s := p.Stats().Up; s.Failed != 10 || s.Forwarded != 0 {
		t.Errorf("datagrams pending at Close: %+v, want 10 failed", s)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	// Cancelling the context stops a pipe too; Close then only waits.
	p, err = Listen(ctx, "127.0.0.1:0", relay.addr, Config{}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	eventually(t, "the pipe to stop", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.stopped
	})
	if err := p.Close(); err != nil {
		t.Errorf("Close after cancel: %v", err)
	}
	goleak.VerifyNone(t, others)
}

func TestListenErrors(t *testing.T) {
	ctx := context.Background()
	relay := netip.MustParseAddrPort("127.0.0.1:9")
	var ce *ConfigError
	if _, err := Listen(ctx, "127.0.0.1:0", relay, Config{}, Config{LossPct: 5, MeanBurst: 0.2}); !errors.As(err, &ce) || ce.Field != "down.mean_burst" {
		t.Errorf("bad down config: %v", err)
	}
	if _, err := Listen(ctx, "127.0.0.1:0", relay, Config{Delay: -1}, Config{}); !errors.As(err, &ce) || ce.Field != "up.delay" {
		t.Errorf("bad up config: %v", err)
	}
	if _, err := Listen(ctx, "127.0.0.1:0", netip.AddrPort{}, Config{}, Config{}); err == nil {
		t.Error("accepted an invalid upstream")
	}
	if _, err := Listen(ctx, "no-such-host.invalid:0", relay, Config{}, Config{}); err == nil {
		t.Error("listened on an unresolvable address")
	}
}
