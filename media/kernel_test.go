package media_test

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/callmesh/callmesh/media"
	"github.com/callmesh/callmesh/media/impair"
	"github.com/callmesh/callmesh/media/mediatest"
)

// newKernelRelay is newRelay with the kernel fast path on; it skips where
// the path cannot load (not Linux, no CAP_BPF/CAP_NET_ADMIN, no TCX).
func newKernelRelay(t *testing.T, pairs int) *media.Relay {
	t.Helper()
	r := newRelayWith(t, pairs, func(c *media.Config) { c.Kernel = media.KernelOn })
	if !r.KernelPath() {
		t.Fatal("Kernel on, yet no kernel path")
	}
	return r
}

// With the kernel path, a call's RTP is forwarded by the kernel once each
// side is latched, and the statistics are the same as in user space: every
// packet counted both ways, no loss, PCMU, a clean MOS.
func TestKernelPathForwardsAndMeasures(t *testing.T) {
	t.Parallel()
	r := newKernelRelay(t, 4)
	const n = 100
	s, a, b := cleanCall(t, r, "kernel-clean", n)
	// The first packet of each side latches it in user space; the kernel
	// needs both latched for the reverse direction's destination only when
	// a side sends from elsewhere than it signalled, so at most a few
	// packets each way cross user space.
	kf, fw := r.Counters.KernelForwarded.Load(), r.Counters.Forwarded.Load()
	if fw != 2*n || kf < 2*n-10 {
		t.Errorf("forwarded %d, of which by the kernel %d; want %d, nearly all by the kernel", fw, kf, 2*n)
	}

	// Closed, the session's rules are gone: what side A still sends to its
	// old port reaches no one (the sockets are closed too). Loopback
	// delivers in well under the 200 ms allowed.
	if media.KernelRules(r) != 2 {
		t.Errorf("%d kernel rules for a latched call, want one per direction", media.KernelRules(r))
	}
	s.Close()
	if got := media.KernelRules(r); got != 0 {
		t.Errorf("%d kernel rules left after Close", got)
	}
	if err := a.Send(context.Background(), 5, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if got := b.Stats().Packets; got != n {
		t.Errorf("b received %d packets after Close", got-n)
	}
}

// Strangers still meet the latch (their packets match no rule and reach
// user space), a re-INVITE moves the latch and the rule with it (the side's
// old address is then a stranger), and an impaired direction stays in user
// space, where the impairment is.
func TestKernelPathLatchingAndImpairment(t *testing.T) {
	t.Parallel()
	r := newKernelRelay(t, 2)
	// At 20 ms a packet, only the first of each source crosses user space
	// (it latches the side and installs the rule); a burst would queue
	// more behind it.
	s, a, b, stranger := latching(t, r, "kernel-latch", 20, 10, 20*time.Millisecond)
	if got := r.Counters.KernelForwarded.Load(); got < 24 {
		t.Fatalf("the kernel forwarded %d of the 30 packets from latched sources", got)
	}
	ctx := context.Background()
	if err := a.Send(ctx, 5, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a, moved away, to be refused", func() bool { return s.Summary().Legs[media.A].Strangers == 12 })

	// Impair what goes toward B (a delay): only user space can, so the
	// rule goes and the kernel forwards none of it.
	if err := s.Leg(media.B).Impair(impair.Config{Delay: 30 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	before, kf := b.Stats().Packets, r.Counters.KernelForwarded.Load()
	if err := stranger.Send(ctx, 10, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the delayed packets", func() bool { return b.Stats().Packets == before+10 })
	if got := r.Counters.KernelForwarded.Load(); got != kf {
		t.Fatalf("the kernel forwarded %d packets of an impaired direction", got-kf)
	}
}

// SRTP is forwarded by the kernel too, and counted only.
func TestKernelPathSecureStreamsAreCountedOnly(t *testing.T) {
	t.Parallel()
	r := newKernelRelay(t, 2)
	s, a, b := secureCall(t, r, "kernel-srtp")
	if err := a.Send(context.Background(), 30, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to receive the stream", func() bool { return b.Stats().Packets == 30 })
	leg := s.Summary().Legs[media.A]
	if leg.PacketsIn != 30 || leg.BytesIn != 30*172 || !leg.Secure || leg.JitterMs != 0 {
		t.Fatalf("secure leg: %+v; want 30 packets counted, no statistics", leg)
	}
	if got := r.Counters.KernelForwarded.Load(); got < 27 {
		t.Fatalf("the kernel forwarded %d of 30", got)
	}
}

// Where the fast path cannot load, "auto" relays in user space and "on"
// refuses to start, naming the field; an unknown mode is a config error.
func TestKernelModeWithoutThePath(t *testing.T) {
	defer media.FailKernelPath(errors.New("no BPF here"))()
	cfg := media.FastConfig()
	cfg.PortMin, cfg.PortMax = mediatest.PortRange(t, portBase, 2)
	cfg.Kernel = media.KernelAuto
	r, err := media.New(cfg)
	if err != nil {
		t.Fatalf("media.New with kernel auto where it cannot load: %v", err)
	}
	if r.KernelPath() {
		t.Error("kernel path on, yet it could not load")
	}
	s, _, _ := cleanCall(t, r, "auto-fallback", 20) // relayed in user space
	s.Close()
	r.Close()
	cfg.Kernel = media.KernelOn
	if r, err := media.New(cfg); err == nil || err.Error() != "media: kernel: no BPF here" {
		if r != nil {
			r.Close()
		}
		t.Fatalf("media.New with kernel on where it cannot load: %v; want media: kernel: no BPF here", err)
	}
	cfg.Kernel = "sometimes"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "kernel") {
		t.Fatalf("Validate(kernel %q) = %v", cfg.Kernel, err)
	}
}

// RTP with a CSRC and a header extension (as WebRTC sends) is measured on
// the kernel path as in user space: the record carries the fixed header,
// which is all the statistics read.
func TestKernelPathMeasuresExtendedHeaders(t *testing.T) {
	t.Parallel()
	r := newKernelRelay(t, 2)
	s, a, b := openCall(t, r, "kernel-ext")
	to, _ := s.Leg(media.A).Local()
	const n = 30
	for i := 0; i < n; i++ {
		// V=2, X=1, CC=1; PCMU; one CSRC; a one-word extension (RFC 3550
		// §5.3.1, RFC 8285 one-byte profile); 160 octets of payload.
		p := make([]byte, 12+4+8+160)
		p[0], p[1] = 0x80|0x10|1, 0
		binary.BigEndian.PutUint16(p[2:], uint16(i))
		binary.BigEndian.PutUint32(p[4:], uint32(i*160))
		binary.BigEndian.PutUint32(p[8:], 0xabcdef01)
		binary.BigEndian.PutUint32(p[12:], 0x11111111)
		binary.BigEndian.PutUint16(p[16:], 0xbede)
		binary.BigEndian.PutUint16(p[18:], 1)
		if _, err := a.RTP.WriteToUDPAddrPort(p, to); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			// The first packet latches side A in user space, which puts
			// the rule in place before it forwards the packet: every later
			// one is the kernel's.
			waitFor(t, "b to receive the first packet", func() bool { return b.Stats().Packets == 1 })
		}
	}
	waitFor(t, "the relay to count every packet", func() bool { return s.Summary().Legs[media.A].PacketsIn == n })
	leg := s.Summary().Legs[media.A]
	if leg.LossPct != 0 || leg.Codec != "PCMU" || leg.BytesIn != n*184 {
		t.Errorf("leg A: %+v; want no loss, PCMU, %d bytes", leg, n*184)
	}
	if k := r.Counters.KernelForwarded.Load(); k != n-1 {
		t.Errorf("the kernel forwarded %d of %d, want all but the first", k, n)
	}
}
