package gossip

import (
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// transportTracer counts what GossipSub drops before a message reaches the
// topic validators: forged or missing transport signatures, validation
// queue overflow, throttling, and outgoing RPCs dropped for a full peer
// queue. The validators count everything after that (Metrics.Messages).
type transportTracer struct {
	m *Metrics
}

var _ pubsub.RawTracer = transportTracer{}

// RejectMessage counts rejections decided inside GossipSub. "validation
// failed" and "validation ignored" are the topic validators' own verdicts,
// already counted by topic and reason.
func (t transportTracer) RejectMessage(msg *pubsub.Message, reason string) {
	switch reason {
	case pubsub.RejectValidationFailed, pubsub.RejectValidationIgnored:
		return
	}
	t.m.TransportRejects.WithLabelValues(msg.GetTopic(), reason).Inc()
}

// DropRPC counts RPCs not sent because the peer's outbound queue was full.
func (t transportTracer) DropRPC(*pubsub.RPC, peer.ID) { t.m.DroppedRPCs.Inc() }

// The remaining events are not counted.

func (transportTracer) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (transportTracer) OnClosedOutboundStream(peer.ID)                       {}
func (transportTracer) Join(string)                                          {}
func (transportTracer) Leave(string)                                         {}
func (transportTracer) Graft(peer.ID, string)                                {}
func (transportTracer) Prune(peer.ID, string)                                {}
func (transportTracer) ValidateMessage(*pubsub.Message)                      {}
func (transportTracer) DeliverMessage(*pubsub.Message)                       {}
func (transportTracer) DuplicateMessage(*pubsub.Message)                     {}
func (transportTracer) ThrottlePeer(peer.ID)                                 {}
func (transportTracer) RecvRPC(*pubsub.RPC)                                  {}
func (transportTracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (transportTracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (transportTracer) UndeliverableMessage(*pubsub.Message)                 {}

// TransportTracer returns the GossipSub tracer that feeds m; New installs
// it. Exported for tests and for a router built outside the bus.
func TransportTracer(m *Metrics) pubsub.RawTracer { return transportTracer{m} }
