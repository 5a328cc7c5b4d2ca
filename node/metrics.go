package node

import "github.com/prometheus/client_golang/prometheus"

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
