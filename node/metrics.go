package node

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/callmesh/callmesh/node/b2bua"
)

// metrics are the node's own Prometheus series; gossip registers its own.
type metrics struct {
	peers       *prometheus.GaugeVec
	transitions *prometheus.CounterVec
	records     *prometheus.CounterVec
	slaBreaches *prometheus.CounterVec
	masterReqs  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		peers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "callmesh", Subsystem: "membership", Name: "peers",
			Help: "Federation peers in the membership view, by state.",
		}, []string{"state"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "callmesh", Subsystem: "membership", Name: "transitions_total",
			Help: "Membership state changes of peers, by new state.",
		}, []string{"to"}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "callmesh", Subsystem: "dht", Name: "record_puts_total",
			Help: "Puts of this node's signed DHT records, by result.",
		}, []string{"result"}),
		slaBreaches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "callmesh", Subsystem: "sla", Name: "breaches_total",
			Help: "SLA metrics found newly in breach of their guarantee, by metric.",
		}, []string{"metric"}),
	}
	m.masterReqs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "callmesh", Subsystem: "master", Name: "requests_total",
		Help: "Session path requests this node sent to masters (local: it was the master), by result.",
	}, []string{"result"})
	reg.MustRegister(m.peers, m.transitions, m.records, m.slaBreaches, m.masterReqs)
	return m
}

// registerCallMetrics exposes the B2BUA's running totals and its calls in
// progress: the figures an operator watches first (answer-seizure ratio,
// cancellations, refusals while draining).
func registerCallMetrics(reg prometheus.Registerer, svc *b2bua.Service) {
	k := &svc.Counters
	counter := func(name, help string, f func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "callmesh", Subsystem: "calls", Name: name, Help: help,
		}, func() float64 { return float64(f()) })
	}
	reg.MustRegister(
		counter("started_total", "Calls set up toward a callee: INVITEs past authentication, rights and the callee's lookup.", k.Started.Load),
		counter("answered_total", "Calls answered by a callee.", k.Answered.Load),
		counter("failed_total", "Calls started that ended unanswered, other than by the caller's CANCEL.", k.Failed.Load),
		counter("cancelled_total", "Calls started that the caller cancelled before an answer.", k.Cancelled.Load),
		counter("refused_total", "INVITEs refused 503: the node drains, or has no media ports left.", k.Refused.Load),
		counter("stray_2xx_acked_total", "2xx responses a callee retransmitted after its call had ended, ACKed (RFC 3261 §13.2.2.4).", k.StrayAcked.Load),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "callmesh", Subsystem: "calls", Name: "active", Help: "Calls in progress.",
		}, func() float64 { return float64(svc.Len()) }),
	)
}
