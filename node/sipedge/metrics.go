package sipedge

import "github.com/prometheus/client_golang/prometheus"

type edgeMetrics struct {
	registers    *prometheus.CounterVec
	rejected     *prometheus.CounterVec
	authFailures prometheus.Counter
	blocks       prometheus.Counter
	denied       prometheus.Counter
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
	}
	if reg != nil {
		reg.MustRegister(m.registers, m.rejected, m.authFailures, m.blocks, m.denied)
	}
	return m
}
