package gossip_test

import (
	"testing"

	"github.com/callmesh/callmesh/gossip"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
)

// GossipSub's own rejections (forged transport signatures, a full
// validation queue) reach the metrics; the validators' verdicts, which
// GossipSub reports too, are not counted twice.
func TestTransportTracerCounts(t *testing.T) {
	m := gossip.NewMetrics(nil)
	tr := gossip.TransportTracer(m)
	topic := "/t/1"
	msg := &pubsub.Message{Message: &pb.Message{Topic: &topic}}
	tr.RejectMessage(msg, pubsub.RejectInvalidSignature)
	tr.RejectMessage(msg, pubsub.RejectInvalidSignature)
	tr.RejectMessage(msg, pubsub.RejectValidationQueueFull)
	tr.RejectMessage(msg, pubsub.RejectValidationFailed)
	tr.RejectMessage(msg, pubsub.RejectValidationIgnored)
	tr.DropRPC(nil, "")
	for reason, want := range map[string]float64{
		pubsub.RejectInvalidSignature:    2,
		pubsub.RejectValidationQueueFull: 1,
		pubsub.RejectValidationFailed:    0,
		pubsub.RejectValidationIgnored:   0,
	} {
		if got := counterValue(t, m.TransportRejects.WithLabelValues(topic, reason)); got != want {
			t.Errorf("transport rejects %q = %v, want %v", reason, got, want)
		}
	}
	if got := counterValue(t, m.DroppedRPCs); got != 1 {
		t.Errorf("dropped RPCs = %v, want 1", got)
	}
}
