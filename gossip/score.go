package gossip

import (
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Peer scoring (GossipSub v1.1). The weights are chosen so that what matters
// to a federation dominates: a peer that forwards invalid (forged, malformed)
// messages sinks fast below the graylist threshold, while honest peers, which
// only ever cause "ignore" verdicts (stale or expired messages), are never
// penalised. IP colocation is not scored: several nodes of one operator may
// share an address, and test federations all sit on 127.0.0.1.
func peerScoreParams() *pubsub.PeerScoreParams {
	return &pubsub.PeerScoreParams{
		Topics:                    map[string]*pubsub.TopicScoreParams{},
		TopicScoreCap:             100,
		AppSpecificScore:          func(peer.ID) float64 { return 0 },
		AppSpecificWeight:         1,
		IPColocationFactorWeight:  0,
		BehaviourPenaltyWeight:    -10,
		BehaviourPenaltyThreshold: 6,
		BehaviourPenaltyDecay:     0.9,
		DecayInterval:             time.Second,
		DecayToZero:               0.01,
		RetainScore:               10 * time.Minute,
	}
}

func peerScoreThresholds() *pubsub.PeerScoreThresholds {
	return &pubsub.PeerScoreThresholds{
		GossipThreshold:             -500,
		PublishThreshold:            -1000,
		GraylistThreshold:           -2500,
		AcceptPXThreshold:           1000, // peer exchange is off; never accept PX
		OpportunisticGraftThreshold: 3.5,
	}
}

// topicScoreParams: a small reward for time in the mesh and for first
// deliveries, a heavy penalty for invalid messages (weight −100, squared
// counter), no mesh-delivery-rate penalty (our topics are low-rate and bursty,
// so a rate target would punish honest peers).
func topicScoreParams() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		SkipAtomicValidation:           true,
		TopicWeight:                    1,
		TimeInMeshWeight:               0.01,
		TimeInMeshQuantum:              time.Second,
		TimeInMeshCap:                  300,
		FirstMessageDeliveriesWeight:   1,
		FirstMessageDeliveriesDecay:    0.5,
		FirstMessageDeliveriesCap:      50,
		InvalidMessageDeliveriesWeight: -100,
		InvalidMessageDeliveriesDecay:  0.3,
	}
}
