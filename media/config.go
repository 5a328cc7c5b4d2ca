package media

import (
	"fmt"
	"net/netip"
	"time"
)

// Config sets up a relay. The zero value is not usable; start from
// DefaultConfig.
type Config struct {
	// Bind is the local address the relay's sockets bind to.
	Bind netip.Addr
	// Advertise is the address written into SDP; it may differ from Bind
	// (a public address in front of a private one). Unset: Bind, which must
	// then be a specific address.
	Advertise netip.Addr
	// PortMin and PortMax bound the UDP ports used, inclusive. RTP takes an
	// even port and RTCP the odd port above it (RFC 3550 §11), so the range
	// holds (PortMax-PortMin+1)/2 pairs; a session takes two pairs.
	PortMin, PortMax int
	// Timeout ends a stream that should be sending and has sent neither RTP
	// nor RTCP for this long.
	Timeout time.Duration
	// ReportInterval is how often the relay sends RTCP of its own on a leg
	// that faces another relay (RFC 3550 §6.2 uses 5 s as the minimum).
	ReportInterval time.Duration
	// Sweep is how often liveness is checked and relay reports are due.
	Sweep time.Duration
	// MinJitterBuffer is the smallest receive buffer assumed when estimating
	// mouth-to-ear delay; the estimate uses twice the measured jitter when
	// that is larger.
	MinJitterBuffer time.Duration
	// PLC says whether endpoints conceal lost G.711 packets, which selects
	// the codec's packet-loss robustness in the E-model (G.113 Appendix I).
	PLC bool
	// SocketBuffer is the kernel receive and send buffer asked for on each
	// socket, in bytes; 0 keeps the system default.
	SocketBuffer int
	// Workers is how many goroutines forward packets, each for its share
	// of the sessions (Linux; elsewhere every socket has its own). 0: half
	// the processors the Go runtime uses, at least one, leaving the rest to
	// signalling. On two processors one worker forwarded 60,000 packets/s
	// with a shorter latency tail than two (BENCHMARKS.md).
	Workers int
	// Kernel is the kernel fast path (package kpath, Linux): KernelOff
	// (""), KernelAuto or KernelOn. With it, the RTP of a latched stream is
	// forwarded by an eBPF program at the interfaces' ingress and measured
	// from its records, without crossing the relay's sockets.
	Kernel string
}

// workers resolves Workers.
func (c Config) workers(procs int) int {
	if c.Workers > 0 {
		return c.Workers
	}
	return max(1, procs/2)
}

// DefaultConfig anchors media on loopback with ports 20000–29999.
func DefaultConfig() Config {
	return Config{
		Bind:            netip.MustParseAddr("127.0.0.1"),
		PortMin:         20000,
		PortMax:         29999,
		Timeout:         30 * time.Second,
		ReportInterval:  5 * time.Second,
		Sweep:           time.Second,
		MinJitterBuffer: 20 * time.Millisecond,
		PLC:             true,
		SocketBuffer:    256 << 10,
	}
}

// FastConfig is DefaultConfig with timers short enough for tests.
func FastConfig() Config {
	c := DefaultConfig()
	c.Timeout = 2 * time.Second
	c.ReportInterval = 200 * time.Millisecond
	c.Sweep = 50 * time.Millisecond
	return c
}

// AdvertiseAddr is the address put in SDP.
func (c Config) AdvertiseAddr() netip.Addr {
	if c.Advertise.IsValid() {
		return c.Advertise
	}
	return c.Bind
}

// Pairs is how many RTP/RTCP port pairs the range holds.
func (c Config) Pairs() int {
	first := c.PortMin + c.PortMin%2
	if c.PortMax < first+1 {
		return 0
	}
	return (c.PortMax - first + 1) / 2
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case !c.Bind.IsValid():
		return fmt.Errorf("media: bind: an IP address is required")
	case c.Advertise.IsValid() && c.Advertise.IsUnspecified():
		return fmt.Errorf("media: advertise: %s cannot be reached; give a specific address", c.Advertise)
	case !c.Advertise.IsValid() && c.Bind.IsUnspecified():
		return fmt.Errorf("media: advertise: required when bind is %s", c.Bind)
	case c.PortMin < 1024 || c.PortMin > 65534:
		return fmt.Errorf("media: port_min: %d outside 1024–65534", c.PortMin)
	case c.PortMax < c.PortMin || c.PortMax > 65535:
		return fmt.Errorf("media: port_max: %d must be in %d–65535", c.PortMax, c.PortMin)
	case c.Pairs() < 2:
		return fmt.Errorf("media: port_max: range %d–%d holds no two even/odd port pairs", c.PortMin, c.PortMax)
	case c.Timeout <= 0:
		return fmt.Errorf("media: timeout: must be positive")
	case c.ReportInterval <= 0:
		return fmt.Errorf("media: report_interval: must be positive")
	case c.Sweep <= 0:
		return fmt.Errorf("media: sweep: must be positive")
	case c.MinJitterBuffer < 0:
		return fmt.Errorf("media: min_jitter_buffer: must not be negative")
	case c.SocketBuffer < 0:
		return fmt.Errorf("media: socket_buffer: must not be negative")
	case c.Workers < 0:
		return fmt.Errorf("media: workers: must not be negative")
	case c.Kernel != "" && c.Kernel != KernelOff && c.Kernel != KernelAuto && c.Kernel != KernelOn:
		return fmt.Errorf("media: kernel: %q is not off, auto or on", c.Kernel)
	}
	return nil
}
