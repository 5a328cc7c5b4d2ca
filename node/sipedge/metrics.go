package sipedge

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/callmesh/callmesh/media/rawudp"
	"github.com/callmesh/callmesh/node/siptx"
)

type edgeMetrics struct {
	registers    *prometheus.CounterVec
	rejected     *prometheus.CounterVec
	authFailures prometheus.Counter
	blocks       prometheus.Counter
	denied       prometheus.Counter
	unparsable   prometheus.Counter
}

func newEdgeMetrics(reg prometheus.Registerer) *edgeMetrics {
	m := &edgeMetrics{
		registers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "callmesh", Subsystem: "sip", Name: "registers_total",
			Help: "REGISTER requests by outcome.",
		}, []string{"result"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "callmesh", Subsystem: "sip", Name: "rejected_requests_total",
			Help: "Requests refused before handling (malformed, loops, bad extensions), by status code.",
		}, []string{"code"}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "callmesh", Subsystem: "sip", Name: "auth_failures_total",
			Help: "Failed digest authentications (wrong password or unknown user).",
		}),
		blocks: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "callmesh", Subsystem: "sip", Name: "source_blocks_total",
			Help: "Source addresses blocked after repeated authentication failures.",
		}),
		denied: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "callmesh", Subsystem: "sip", Name: "sessions_denied_total",
			Help: "Session-starting requests refused for a missing right.",
		}),
		unparsable: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "callmesh", Subsystem: "sip", Name: "unparsable_datagrams_total",
			Help: "UDP datagrams dropped because they are not a SIP message.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.registers, m.rejected, m.authFailures, m.blocks, m.denied, m.unparsable)
	}
	return m
}

// registerTransactionMetrics exposes the transaction layer's counters.
func registerTransactionMetrics(reg prometheus.Registerer, st *siptx.Stats) {
	counter := func(name, help string, f func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "callmesh", Subsystem: "sip", Name: name, Help: help,
		}, func() float64 { return float64(f()) })
	}
	reg.MustRegister(
		counter("retransmissions_absorbed_total", "Retransmitted requests answered by their transaction.", st.Retransmissions),
		counter("unmatched_responses_total", "Responses that matched no transaction (late 2xx retransmissions, strays).", st.Unmatched),
		counter("malformed_requests_total", "Requests without a usable Via or CSeq, answered 400 statelessly.", st.Rejected),
	)
}

// registerSocketMetrics exposes the SIP UDP socket's backlog and the
// kernel's drops on it, and what overload control shed (shed nil: nothing
// is).
func registerSocketMetrics(reg prometheus.Registerer, c *rawudp.Conn, shed *shedder) {
	reg.MustRegister(socketCollector{c: c})
	if shed == nil {
		return
	}
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "callmesh", Subsystem: "sip", Name: "overload_shed_invites_total",
			Help: "Dialog-creating INVITEs dropped unanswered while the UDP backlog was too deep.",
		}, func() float64 { return float64(shed.shed.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "callmesh", Subsystem: "sip", Name: "overload_shed_share",
			Help: "Share of new INVITEs being shed (0 to 1), from the last reading of the UDP backlog.",
		}, func() float64 { return float64(shed.share.Load()) / shareOne }),
	)
}

var (
	backlogDesc = prometheus.NewDesc("callmesh_sip_udp_backlog_bytes",
		"Bytes of datagrams waiting on the SIP UDP socket, as the kernel accounts them.", nil, nil)
	dropsDesc = prometheus.NewDesc("callmesh_sip_udp_receive_drops_total",
		"Datagrams the kernel dropped on the SIP UDP socket, its receive buffer full.", nil, nil)
)

// socketCollector reads the socket's backlog once a scrape for both of its
// metrics.
type socketCollector struct{ c *rawudp.Conn }

func (socketCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- backlogDesc
	ch <- dropsDesc
}

func (sc socketCollector) Collect(ch chan<- prometheus.Metric) {
	b, err := sc.c.Backlog()
	if err != nil {
		return // the socket is closed
	}
	ch <- prometheus.MustNewConstMetric(backlogDesc, prometheus.GaugeValue, float64(b.Queued))
	ch <- prometheus.MustNewConstMetric(dropsDesc, prometheus.CounterValue, float64(b.Drops))
}
