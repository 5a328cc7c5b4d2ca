package gossip

import "github.com/prometheus/client_golang/prometheus"

// Metrics counts what the bus sees. Register it with the node's registry.
type Metrics struct {
	// Messages counts every message checked, by topic, by source (gossip or
	// sync), by verdict and by reason: forged or malformed input shows up
	// here with verdict "reject".
	Messages *prometheus.CounterVec
	// Published counts the messages this node published, by topic.
	Published *prometheus.CounterVec
	// Syncs counts anti-entropy pulls from peers, by result (ok or error).
	Syncs *prometheus.CounterVec
	// TransportRejects counts messages GossipSub itself dropped before the
	// validators, by topic and reason ("invalid signature", "validation
	// queue full", ...).
	TransportRejects *prometheus.CounterVec
	// DroppedRPCs counts outgoing RPCs dropped for a full peer queue.
	DroppedRPCs prometheus.Counter
}

// NewMetrics creates the bus metrics and registers them with reg (nil: not
// registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "callmesh", Subsystem: "gossip", Name: "messages_total",
			Help: "Gossip messages checked, by topic, source, verdict and reason.",
		}, []string{"topic", "source", "verdict", "reason"}),
		Published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "callmesh", Subsystem: "gossip", Name: "published_total",
			Help: "Gossip messages published by this node, by topic.",
		}, []string{"topic"}),
		Syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "callmesh", Subsystem: "gossip", Name: "syncs_total",
			Help: "Anti-entropy state pulls from peers, by result.",
		}, []string{"result"}),
		TransportRejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "callmesh", Subsystem: "gossip", Name: "transport_rejects_total",
			Help: "Messages GossipSub dropped before validation, by topic and reason.",
		}, []string{"topic", "reason"}),
		DroppedRPCs: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "callmesh", Subsystem: "gossip", Name: "dropped_rpcs_total",
			Help: "Outgoing GossipSub RPCs dropped because a peer's queue was full.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Messages, m.Published, m.Syncs, m.TransportRejects, m.DroppedRPCs)
	}
	return m
}
