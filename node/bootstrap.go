package node

import (
	"context"
	"fmt"
	"time"

	"github.com/callmesh/callmesh/gossip"
	"github.com/libp2p/go-libp2p/core/peer"
)

const (
	bootstrapMinBackoff = time.Second
	bootstrapMaxBackoff = 30 * time.Second
)

// bootstrap keeps trying to reach one bootstrap peer, with exponential
// backoff, for as long as the node has no federation peer at all: an
// unreachable bootstrap peer is logged and retried, never fatal. Once the
// node knows other members, the membership loop keeps it connected.
func (n *Node) bootstrap(ai peer.AddrInfo) {
	defer n.wg.Done()
	backoff := bootstrapMinBackoff
	joined := false
	for attempt := 1; ; attempt++ {
		alone := len(n.host.Network().Peers()) == 0
		if !joined || alone {
			ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
			err := n.host.Connect(ctx, ai)
			cancel()
			switch {
			case n.ctx.Err() != nil:
				return
			case err != nil:
				n.log.Warn("bootstrap peer unreachable; will retry", "peer", ai.ID, "addrs", ai.Addrs, "attempt", attempt, "retry_in", backoff, "err", err)
				backoff = min(2*backoff, bootstrapMaxBackoff)
			default:
				n.log.Info("joined through bootstrap peer", "peer", ai.ID)
				joined, backoff = true, bootstrapMinBackoff
				if err := n.dht.Bootstrap(n.ctx); err != nil {
					n.log.Debug("DHT refresh", "err", err)
				}
			}
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(backoff):
		}
	}
}

// publishRecordLoop puts the node's signed record in the DHT, retrying
// quickly until the first put reaches a peer, then every dht.republish: the
// DHT never republishes values for us.
func (n *Node) publishRecordLoop() {
	defer n.wg.Done()
	wait := n.cfg.Membership.Heartbeat
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(wait):
		}
		if err := n.PublishRecord(n.ctx); err != nil {
			n.m.records.WithLabelValues("error").Inc()
			n.log.Debug("node record not published; will retry", "err", err)
			wait = min(2*wait, time.Minute, n.cfg.DHT.Republish)
			continue
		}
		n.m.records.WithLabelValues("ok").Inc()
		wait = n.cfg.DHT.Republish
	}
}

// PublishRecord signs the node's record and puts it in the DHT. It fails
// when the node's routing table is empty; kad-dht reports success even when
// every remote put failed, so success means "stored locally and offered".
func (n *Node) PublishRecord(ctx context.Context) error {
	rec := NodeRecord{Name: n.cfg.Name, SIP: n.SIPAddr(), Admin: n.AdminURL(), Version: Version}
	for _, a := range n.host.Addrs() {
		rec.P2P = append(rec.P2P, a.String())
	}
	val, err := n.signRecord(NodeRecordNamespace, NodeRecordKind, n.id.String(), rec, n.cfg.DHT.RecordTTL)
	if err != nil {
		return err
	}
	if n.dht.RoutingTable().Size() == 0 {
		return fmt.Errorf("node record: no DHT peers yet")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := n.dht.PutValue(ctx, RecordKey(NodeRecordNamespace, n.id.String()), val); err != nil {
		return fmt.Errorf("node record: put: %w", err)
	}
	return nil
}

// signRecord wraps body in an envelope for a DHT namespace, signed by the
// node, with the next sequence and an expiry ttl from now.
func (n *Node) signRecord(ns, kind, subject string, body any, ttl time.Duration) ([]byte, error) {
	return n.signRecordUntil(ns, kind, subject, body, time.Now().Add(ttl))
}

// signRecordUntil is signRecord with an absolute expiry.
func (n *Node) signRecordUntil(ns, kind, subject string, body any, expires time.Time) ([]byte, error) {
	env, err := gossip.NewEnvelope(ns, kind, subject, n.bus.Sequencer().Next(), expires, body)
	if err != nil {
		return nil, err
	}
	if err := env.Sign(n.key); err != nil {
		return nil, err
	}
	return env.Encode()
}

// LookupNode fetches and verifies a node's record from the DHT.
func (n *Node) LookupNode(ctx context.Context, id peer.ID) (NodeRecord, error) {
	key := RecordKey(NodeRecordNamespace, id.String())
	val, err := n.dht.GetValue(ctx, key)
	if err != nil {
		return NodeRecord{}, fmt.Errorf("node record %s: %w", id, err)
	}
	env, err := RecordValidator{Namespace: NodeRecordNamespace, Kind: NodeRecordKind, Sigs: n.sigs}.Decode(key, val)
	if err != nil {
		return NodeRecord{}, err
	}
	var rec NodeRecord
	if err := env.DecodeBody(&rec); err != nil {
		return NodeRecord{}, fmt.Errorf("node record %s: %w", id, err)
	}
	return rec, nil
}
