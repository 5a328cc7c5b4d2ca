package node

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/callmesh/callmesh/gossip"
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
	dialing map[peer.ID]time.Time // next dial allowed, per member
}

func newMembership(n *Node) (*membership, error) {
	vc := n.cfg.Membership.ViewConfig()
	if err := vc.Validate(); err != nil {
		return nil, err
	}
	m := &membership{
		n: n, view: gossip.NewView(n.id, vc),
		envs: make(map[peer.ID]*gossip.Envelope), probing: make(map[peer.ID]bool),
		dialing: make(map[peer.ID]time.Time),
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
		Name: cfg.Name, SIP: cfg.SIP, Admin: m.n.AdminURL(), P2P: p2p,
		Capacity: cfg.Capacity, Version: Version,
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
	var toDial []gossip.Member
	mesh := m.n.cfg.P2P.Mesh
	connected := 0
	for _, mem := range m.view.Live() {
		if m.n.host.Network().Connectedness(mem.ID) == network.Connected {
			connected++
			continue
		}
		if next, ok := m.dialing[mem.ID]; ok && now.Before(next) {
			continue
		}
		toDial = append(toDial, mem)
	}
	if mesh > 0 {
		toDial = toDial[:max(0, min(len(toDial), mesh-connected))]
	}
	for _, mem := range toDial {
		m.dialing[mem.ID] = now.Add(5 * m.n.cfg.Membership.Heartbeat)
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
	m.n.m.peers.WithLabelValues("live").Set(float64(live))
	m.n.m.peers.WithLabelValues("suspect").Set(float64(suspect))
	m.n.m.peers.WithLabelValues("dead").Set(float64(dead))
	for _, p := range toProbe {
		m.n.wg.Add(1)
		go m.probe(p)
	}
	for _, mem := range toDial {
		m.n.wg.Add(1)
		go m.dial(mem)
	}
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

// snapshot returns a copy of the view.
func (m *membership) snapshot() *gossip.View {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.view.Clone()
}
