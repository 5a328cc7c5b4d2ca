package node

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callmesh/callmesh/media"
)

// MediaConfig sets the node's RTP relay, which anchors the media of calls
// so the node can measure them.
type MediaConfig struct {
	// Bind is the IP address the relay's sockets bind to. Unset: the SIP
	// listen address's host.
	Bind string `yaml:"bind"`
	// Advertise is the address written into SDP, when it differs from bind
	// (for example a public address in front of a private one). Unset:
	// bind, or, when bind is a wildcard, the first global unicast address
	// of the host.
	Advertise string `yaml:"advertise"`
	// Ports is the UDP range for RTP (even) and RTCP (odd) pairs, "MIN-MAX".
	Ports string `yaml:"ports"`
	// Timeout ends a call whose media stopped while it should be flowing.
	Timeout time.Duration `yaml:"timeout"`
	// ReportInterval is how often the relay sends its own RTCP to the
	// relay of the other node of a path.
	ReportInterval time.Duration `yaml:"report_interval"`
	// Anchor is always (the relay carries and measures every call's media)
	// or never (signalling only, SDP untouched).
	Anchor string `yaml:"anchor"`
	// AnchorClasses overrides Anchor for callers of a user class.
	AnchorClasses map[string]string `yaml:"anchor_classes,omitempty"`
	// Workers is how many goroutines forward media; 0: half the
	// processors, at least one.
	Workers int `yaml:"workers"`
	// Kernel is the kernel fast path for latched RTP (Linux, eBPF): off,
	// auto (use it where it loads) or on (refuse to start without it).
	Kernel string `yaml:"kernel"`
}

func defaultMediaConfig() MediaConfig {
	return MediaConfig{Ports: "20000-29999", Timeout: 30 * time.Second, ReportInterval: 5 * time.Second, Anchor: "always", Kernel: media.KernelOff}
}

// relayConfig turns the section into the relay's configuration, naming
// the field at fault.
func (c *Config) relayConfig() (media.Config, error) {
	m := c.Media
	rc := media.DefaultConfig()
	bind := m.Bind
	if bind == "" {
		host, _, err := net.SplitHostPort(c.SIP)
		if err != nil || host == "" {
			host = "0.0.0.0"
		}
		bind = host
	}
	a, err := netip.ParseAddr(bind)
	if err != nil {
		return rc, fieldErr("media.bind", bind, "not an IP address")
	}
	rc.Bind = a.Unmap()
	if m.Advertise != "" {
		if rc.Advertise, err = netip.ParseAddr(m.Advertise); err != nil || rc.Advertise.IsUnspecified() {
			return rc, fieldErr("media.advertise", m.Advertise, "not a specific IP address")
		}
		rc.Advertise = rc.Advertise.Unmap()
	}
	lo, hi, ok := strings.Cut(m.Ports, "-")
	min, err1 := strconv.Atoi(strings.TrimSpace(lo))
	max, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if !ok || err1 != nil || err2 != nil {
		return rc, fieldErr("media.ports", m.Ports, "want MIN-MAX, for example 20000-29999")
	}
	rc.PortMin, rc.PortMax = min, max
	rc.Timeout, rc.ReportInterval = m.Timeout, m.ReportInterval
	rc.Workers = m.Workers
	rc.Kernel = m.Kernel
	if !rc.Advertise.IsValid() && rc.Bind.IsUnspecified() {
		// A wildcard bind advertises the host's own address, found at start;
		// validate the rest with a stand-in.
		probe := rc
		probe.Advertise = netip.MustParseAddr("192.0.2.1")
		return rc, mediaFieldErr(probe.Validate(), m)
	}
	return rc, mediaFieldErr(rc.Validate(), m)
}

// mediaFieldErr names the YAML field of a relay configuration error
// ("media: port_max: …" is about media.ports).
func mediaFieldErr(err error, m MediaConfig) error {
	if err == nil {
		return nil
	}
	field, msg, _ := strings.Cut(strings.TrimPrefix(err.Error(), "media: "), ": ")
	switch field {
	case "port_min", "port_max":
		return fieldErr("media.ports", m.Ports, "%s", msg)
	case "bind":
		return fieldErr("media.bind", m.Bind, "%s", msg)
	case "advertise":
		return fieldErr("media.advertise", m.Advertise, "%s", msg)
	case "timeout":
		return fieldErr("media.timeout", m.Timeout, "%s", msg)
	case "report_interval":
		return fieldErr("media.report_interval", m.ReportInterval, "%s", msg)
	case "workers":
		return fieldErr("media.workers", m.Workers, "%s", msg)
	case "kernel":
		return fieldErr("media.kernel", m.Kernel, "%s", msg)
	}
	return fieldErr("media", nil, "%v", err)
}

func (c *Config) checkMedia() error {
	_, err := c.relayConfig()
	return err
}

// hostAddress is the first global unicast address of the host, for SDP
// when the relay binds a wildcard address and no advertise is set.
func hostAddress(ipv6 bool) (netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return netip.Addr{}, err
	}
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if ip.IsGlobalUnicast() && ip.Is6() == ipv6 {
			return ip, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no global unicast address on this host")
}

// startRelay opens the node's RTP relay.
func (n *Node) startRelay() error {
	rc, err := n.cfg.relayConfig()
	if err != nil {
		return err
	}
	if !rc.Advertise.IsValid() && rc.Bind.IsUnspecified() {
		if rc.Advertise, err = hostAddress(rc.Bind.Is6()); err != nil {
			return fieldErr("media.advertise", nil, "required when media.bind is %s: %v", rc.Bind, err)
		}
	}
	n.relay, err = media.New(rc, media.WithLogger(n.log.With("component", "media")))
	if err != nil {
		return fmt.Errorf("media relay: %w", err)
	}
	n.reg.MustRegister(relayCollector{n.relay})
	return nil
}

// Relay is the node's RTP relay.
func (n *Node) Relay() *media.Relay { return n.relay }

// relayCollector exports the relay's counters.
type relayCollector struct{ r *media.Relay }

var (
	relaySessionsDesc = prometheus.NewDesc("callmesh_media_sessions", "Media sessions anchored at the relay.", nil, nil)
	relayFreeDesc     = prometheus.NewDesc("callmesh_media_free_port_pairs", "RTP/RTCP port pairs free in the relay's range.", nil, nil)
	relayEventsDesc   = prometheus.NewDesc("callmesh_media_events_total", "Relay events, by kind.", []string{"kind"}, nil)
	relayBytesDesc    = prometheus.NewDesc("callmesh_media_forwarded_bytes_total", "Bytes of RTP and RTCP forwarded by the relay.", nil, nil)
)

func (c relayCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- relaySessionsDesc
	ch <- relayFreeDesc
	ch <- relayEventsDesc
	ch <- relayBytesDesc
}

func (c relayCollector) Collect(ch chan<- prometheus.Metric) {
	k := &c.r.Counters
	ch <- prometheus.MustNewConstMetric(relaySessionsDesc, prometheus.GaugeValue, float64(c.r.Len()))
	ch <- prometheus.MustNewConstMetric(relayFreeDesc, prometheus.GaugeValue, float64(c.r.FreePairs()))
	for kind, v := range map[string]uint64{
		"opened": k.Opened.Load(), "refused": k.Refused.Load(), "closed": k.Closed.Load(),
		"forwarded": k.Forwarded.Load(), "dropped": k.Dropped.Load(), "send_error": k.SendErrors.Load(),
		"relay_report": k.RelayReports.Load(), "dead_stream": k.DeadStreams.Load(),
		"kernel_forwarded": k.KernelForwarded.Load(), "kernel_unrecorded": c.r.KernelUnrecorded(),
	} {
		ch <- prometheus.MustNewConstMetric(relayEventsDesc, prometheus.CounterValue, float64(v), kind)
	}
	ch <- prometheus.MustNewConstMetric(relayBytesDesc, prometheus.CounterValue, float64(k.ForwardedBytes.Load()))
}
