package node

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/callmesh/callmesh/gossip"
	"github.com/callmesh/callmesh/node/store"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"
)

// HeartbeatTopic is the GossipSub topic of node heartbeats.
const HeartbeatTopic = "/callmesh/heartbeat/1"

// HeartbeatKind is the envelope kind of a heartbeat.
const HeartbeatKind = "heartbeat"

// maxHeartbeatSize bounds one heartbeat envelope.
const maxHeartbeatSize = 8 << 10

// keyspaceKnownPeers holds the members a node has seen, by peer ID.
const keyspaceKnownPeers = "known-peers"

// protectTag marks the connections to federation members in the connection
// manager, so that they are never trimmed.
const protectTag = "callmesh-member"

// membership runs the heartbeat, failure detection and mesh upkeep of a node
// around the pure gossip.View.
type membership struct {
	n     *Node
	topic *gossip.Topic

	mu      sync.Mutex
	view    *gossip.View
	envs    map[peer.ID]*gossip.Envelope // latest accepted heartbeat of each member, for anti-entropy
	own     *gossip.Envelope             // our latest heartbeat
	probing map[peer.ID]bool
	dialing map[peer.ID]*redial // members we are not connected to
	// offTopic counts, per live connected member, the consecutive ticks it
	// was missing from the heartbeat topic's peers: GossipSub opens its
	// stream once per connection and never retries, so a stream lost to
	// a handshake timeout leaves the peer connected but deaf to gossip.
	offTopic map[peer.ID]int
	saved    time.Time // when live members were last written to the store
}

// redial paces reconnection attempts to one member.
type redial struct {
	next    time.Time
	backoff time.Duration
}

const (
	// A dead member is redialled from deadRedialMin, doubling to
	// deadRedialMax, until it is forgotten: a node that comes back with no
	// bootstrap peer of its own is found again this way.
	deadRedialMin = time.Second
	deadRedialMax = time.Minute
	// Members are remembered in the store for knownPeersTTL, refreshed every
	// knownPeersRefresh while live, so a restarted node can rejoin through
	// them even without bootstrap peers.
	knownPeersTTL     = 7 * 24 * time.Hour
	knownPeersRefresh = 10 * time.Minute
)

func newMembership(n *Node) (*membership, error) {
	vc := n.cfg.Membership.ViewConfig()
	if err := vc.Validate(); err != nil {
		return nil, err
	}
	m := &membership{
		n: n, view: gossip.NewView(n.id, vc),
		envs: make(map[peer.ID]*gossip.Envelope), probing: make(map[peer.ID]bool),
		dialing: make(map[peer.ID]*redial), offTopic: make(map[peer.ID]int),
	}
	t, err := n.bus.Join(gossip.TopicSpec{
		Name: HeartbeatTopic, MaxSize: maxHeartbeatSize, Kinds: []string{HeartbeatKind},
		Body:    checkHeartbeat,
		Deliver: m.deliver,
		State:   m.state,
	})
	if err != nil {
		return nil, err
	}
	m.topic = t
	n.host.Network().Notify(&network.NotifyBundle{
		ConnectedF:    func(_ network.Network, c network.Conn) { m.connected(c.RemotePeer()) },
		DisconnectedF: func(nw network.Network, c network.Conn) { m.disconnected(nw, c.RemotePeer()) },
	})
	return m, nil
}

func checkHeartbeat(env *gossip.Envelope) error {
	var hb gossip.Heartbeat
	if err := env.DecodeBody(&hb); err != nil {
		return err
	}
	if hb.Name == "" {
		return fmt.Errorf("%w: heartbeat without a name", gossip.ErrMalformed)
	}
	if len(hb.P2P) > 16 {
		return fmt.Errorf("%w: heartbeat lists %d addresses", gossip.ErrMalformed, len(hb.P2P))
	}
	return nil
}

func (m *membership) start() {
	m.n.wg.Add(1)
	go m.loop()
}

// loop publishes our heartbeat every interval, then ticks the view, probes
// suspects and dials members we are not connected to.
func (m *membership) loop() {
	defer m.n.wg.Done()
	t := time.NewTicker(m.n.cfg.Membership.Heartbeat)
	defer t.Stop()
	for {
		m.publish()
		m.tick(time.Now())
		select {
		case <-m.n.ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *membership) heartbeat() gossip.Heartbeat {
	cfg := m.n.cfg
	p2p := make([]string, 0, 4)
	for _, a := range m.n.host.Addrs() {
		p2p = append(p2p, a.String())
	}
	return gossip.Heartbeat{
		Name: cfg.Name, SIP: m.n.SIPAddr(), Admin: m.n.AdminURL(), P2P: p2p,
		Capacity: cfg.Capacity, Version: Version,
		ActiveCalls: m.n.activeCalls(), Load: m.n.load(), Draining: m.n.draining(),
	}
}

// expiry of a heartbeat: well past the point where its issuer is declared
// dead, so that a replayed old heartbeat cannot revive a dead node, with
// room for clock skew between machines.
func (m *membership) expiry(now time.Time) time.Time {
	mc := m.n.cfg.Membership
	return now.Add(time.Duration(mc.SuspectMissed)*mc.Heartbeat + mc.DeadAfter + 30*time.Second)
}

func (m *membership) publish() {
	ctx, cancel := context.WithTimeout(m.n.ctx, m.n.cfg.Membership.Heartbeat)
	defer cancel()
	env, err := m.topic.Publish(ctx, HeartbeatKind, "", m.heartbeat(), m.expiry(time.Now()))
	if err != nil {
		if m.n.ctx.Err() == nil {
			m.n.log.Warn("heartbeat not published", "err", err)
		}
		return
	}
	m.mu.Lock()
	m.own = env
	m.mu.Unlock()
}

func (m *membership) deliver(env *gossip.Envelope, _ peer.ID) {
	var hb gossip.Heartbeat
	if env.DecodeBody(&hb) != nil { // checked by the validator
		return
	}
	now := time.Now()
	m.mu.Lock()
	ok, tr := m.view.Observe(env.Issuer, env.Seq, hb, now)
	if ok {
		m.envs[env.Issuer] = env
		if m.n.host.Network().Connectedness(env.Issuer) == network.Connected {
			m.view.Connected(env.Issuer, now)
		}
	}
	m.mu.Unlock()
	m.report(tr)
	if ok {
		m.n.host.ConnManager().Protect(env.Issuer, protectTag)
	}
}

// state is what a joining peer pulls: our own heartbeat and those of the
// members we see live. Heartbeats of suspect or dead members are not passed
// on, so that a joining node does not take a dead node for live.
func (m *membership) state() []*gossip.Envelope {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*gossip.Envelope, 0, len(m.envs)+1)
	if m.own != nil {
		out = append(out, m.own)
	}
	for _, mem := range m.view.Live() {
		if env := m.envs[mem.ID]; env != nil {
			out = append(out, env)
		}
	}
	return out
}

func (m *membership) connected(p peer.ID) {
	m.mu.Lock()
	m.view.Connected(p, time.Now())
	m.mu.Unlock()
}

func (m *membership) disconnected(nw network.Network, p peer.ID) {
	if nw.Connectedness(p) == network.Connected {
		return // another connection to the peer remains
	}
	m.mu.Lock()
	tr := m.view.Disconnected(p, time.Now())
	m.mu.Unlock()
	m.report(tr)
}

func (m *membership) report(trs ...*gossip.Transition) {
	for _, tr := range trs {
		if tr == nil {
			continue
		}
		to := "forgotten"
		if tr.To != 0 {
			to = tr.To.String()
		}
		m.n.m.transitions.WithLabelValues(to).Inc()
		m.n.log.Info("peer "+to, "peer", tr.ID, "name", tr.Name, "from", tr.From.String(), "reason", tr.Reason)
		if tr.To == 0 {
			m.n.bus.Seqs().Forget(tr.ID)
			m.mu.Lock()
			delete(m.envs, tr.ID)
			m.mu.Unlock()
		}
		if tr.To == gossip.Live {
			if mem, ok := m.member(tr.ID); ok {
				m.remember(mem)
			}
		}
		if tr.To == gossip.Dead || tr.To == 0 {
			m.n.host.ConnManager().Unprotect(tr.ID, protectTag)
		}
	}
}

func (m *membership) tick(now time.Time) {
	m.mu.Lock()
	trs := m.view.Tick(now)
	suspects := m.view.Suspects()
	live, suspect, dead := m.view.Counts()
	toDial := m.dialable(now)
	toReset := m.deafPeers()
	var toSave []gossip.Member
	if now.Sub(m.saved) > knownPeersRefresh {
		m.saved = now
		toSave = m.view.Live()
	}
	var toProbe []peer.ID
	for _, p := range suspects {
		if !m.probing[p] {
			m.probing[p] = true
			toProbe = append(toProbe, p)
		}
	}
	m.mu.Unlock()

	for i := range trs {
		m.report(&trs[i])
	}
	m.remember(toSave...)
	m.n.m.peers.WithLabelValues("live").Set(float64(live))
	m.n.m.peers.WithLabelValues("suspect").Set(float64(suspect))
	m.n.m.peers.WithLabelValues("dead").Set(float64(dead))
	for _, p := range toReset {
		m.n.log.Warn("member connected but not on the heartbeat topic; reconnecting", "peer", p)
		_ = m.n.host.Network().ClosePeer(p)
	}
	for _, p := range toProbe {
		m.n.wg.Add(1)
		go m.probe(p)
	}
	for _, mem := range toDial {
		m.n.wg.Add(1)
		go m.dial(mem)
	}
}

// dialable picks the members to dial now, with m.mu held: live members we
// have no connection to (a joining node meets the whole federation through
// one bootstrap peer), up to p2p.mesh connections when set, and dead members
// on a backoff, since they may return. Suspects are the prober's.
func (m *membership) dialable(now time.Time) []gossip.Member {
	nw := m.n.host.Network()
	mesh := m.n.cfg.P2P.Mesh
	connected := 0
	var out []gossip.Member
	for _, mem := range m.view.Members() {
		if nw.Connectedness(mem.ID) == network.Connected {
			connected++
			delete(m.dialing, mem.ID)
			continue
		}
		if mem.State == gossip.Suspect {
			continue
		}
		rd := m.dialing[mem.ID]
		if rd == nil {
			rd = &redial{backoff: deadRedialMin}
			m.dialing[mem.ID] = rd
		}
		if now.Before(rd.next) {
			continue
		}
		if mem.State == gossip.Live {
			rd.next = now.Add(5 * m.n.cfg.Membership.Heartbeat)
		} else {
			rd.next = now.Add(rd.backoff)
			rd.backoff = min(2*rd.backoff, deadRedialMax)
		}
		out = append(out, mem)
	}
	if mesh > 0 {
		out = out[:max(0, min(len(out), mesh-connected))]
	}
	for id := range m.dialing {
		if _, ok := m.view.Get(id); !ok {
			delete(m.dialing, id)
		}
	}
	return out
}

// offTopicLimit is how many ticks a live, connected member may be missing
// from the heartbeat topic before its connection is closed and redialled.
const offTopicLimit = 5

// deafPeers returns, with m.mu held, the live connected members that have
// been missing from the heartbeat topic for offTopicLimit ticks.
func (m *membership) deafPeers() []peer.ID {
	on := make(map[peer.ID]bool)
	for _, p := range m.topic.Peers() {
		on[p] = true
	}
	var out []peer.ID
	seen := make(map[peer.ID]bool)
	for _, mem := range m.view.Live() {
		if on[mem.ID] || m.n.host.Network().Connectedness(mem.ID) != network.Connected {
			continue
		}
		seen[mem.ID] = true
		m.offTopic[mem.ID]++
		if m.offTopic[mem.ID] >= offTopicLimit {
			out = append(out, mem.ID)
			m.offTopic[mem.ID] = 0
		}
	}
	for id := range m.offTopic {
		if !seen[id] {
			delete(m.offTopic, id)
		}
	}
	return out
}

// knownPeer is what the store remembers of a member.
type knownPeer struct {
	Name string   `json:"name"`
	P2P  []string `json:"p2p"`
}

// remember writes members' addresses to the store.
func (m *membership) remember(mems ...gossip.Member) {
	ks := m.n.store.Keyspace(keyspaceKnownPeers)
	for _, mem := range mems {
		if len(mem.P2P) == 0 {
			continue
		}
		err := store.PutJSON(ks, []byte(mem.ID), knownPeer{Name: mem.Name, P2P: mem.P2P}, store.WithTTL(knownPeersTTL))
		if err != nil {
			m.n.log.Warn("known peer not saved", "peer", mem.ID, "err", err)
		}
	}
}

// knownPeers returns the members remembered from earlier runs.
func knownPeers(s *store.Store) ([]peer.AddrInfo, error) {
	var out []peer.AddrInfo
	err := s.Keyspace(keyspaceKnownPeers).Iterate(nil, func(k, v []byte) error {
		id, err := peer.IDFromBytes(k)
		if err != nil {
			return nil // not ours to fail on; it expires
		}
		var kp knownPeer
		if json.Unmarshal(v, &kp) != nil {
			return nil
		}
		ai := peer.AddrInfo{ID: id}
		for _, a := range kp.P2P {
			if addr, err := ma.NewMultiaddr(a); err == nil {
				ai.Addrs = append(ai.Addrs, addr)
			}
		}
		if len(ai.Addrs) > 0 {
			out = append(out, ai)
		}
		return nil
	})
	return out, err
}

// probe checks a suspect peer directly with a libp2p ping stream; if it
// fails, the peer is dead. A probe that succeeds leaves the peer suspect:
// only heartbeats make a peer live again, so a node whose gossip is cut off
// is still declared dead when the suspicion times out.
func (m *membership) probe(p peer.ID) {
	defer m.n.wg.Done()
	defer func() {
		m.mu.Lock()
		delete(m.probing, p)
		m.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(m.n.ctx, m.n.cfg.Membership.ProbeTimeout)
	defer cancel()
	res := <-ping.Ping(ctx, m.n.host, p)
	if res.Error == nil || m.n.ctx.Err() != nil {
		return
	}
	m.mu.Lock()
	tr := m.view.ProbeFailed(p, time.Now())
	m.mu.Unlock()
	if tr != nil {
		tr.Reason = "probe failed: " + res.Error.Error()
	}
	m.report(tr)
}

// dial connects to a live member we have no connection to, using the
// addresses of its heartbeat: a node joining through one bootstrap peer ends
// up connected to every member (or to p2p.mesh of them).
func (m *membership) dial(mem gossip.Member) {
	defer m.n.wg.Done()
	ai := peer.AddrInfo{ID: mem.ID}
	for _, s := range mem.P2P {
		if a, err := ma.NewMultiaddr(s); err == nil {
			ai.Addrs = append(ai.Addrs, a)
		}
	}
	ctx, cancel := context.WithTimeout(m.n.ctx, 5*time.Second)
	defer cancel()
	if err := m.n.host.Connect(ctx, ai); err != nil && m.n.ctx.Err() == nil {
		m.n.log.Debug("member dial failed", "peer", mem.ID, "name", mem.Name, "err", err)
	}
}

func (m *membership) member(id peer.ID) (gossip.Member, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.view.Get(id)
}

// snapshot returns a copy of the view.
func (m *membership) snapshot() *gossip.View {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.view.Clone()
}
