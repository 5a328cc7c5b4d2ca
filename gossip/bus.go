package gossip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Config tunes the bus. The zero value of a field means its default.
type Config struct {
	// MeshHeartbeat is GossipSub's own mesh maintenance interval (not the
	// node heartbeat). Default 1s.
	MeshHeartbeat time.Duration
	// ValidateQueue is the number of incoming messages waiting for
	// validation; GossipSub's default of 32 overflows under load. Default 4096.
	ValidateQueue int
	// OutboundQueue is the per-peer queue of outgoing RPCs. Default 1024.
	OutboundQueue int
	// MaxMessageSize is the transport limit of one RPC. Default 1 MiB; each
	// topic checks its own, smaller, envelope limit.
	MaxMessageSize int
	// NoFloodPublish turns off flood publishing (sending our own messages to
	// every subscribed peer, not only the mesh). Flooding is on by default:
	// a federation is dozens of nodes, and it cuts delivery latency and the
	// loss of messages published before the mesh forms.
	NoFloodPublish bool
	// MeshDegree is GossipSub's target mesh degree D (Dlo, Dhi, Dscore,
	// Dout and Dlazy follow from it). With flood publishing and a full mesh
	// of connections, every node hears each message straight from its
	// publisher; the mesh only adds redundancy, and each mesh peer adds a
	// duplicate copy to receive and discard. Default 4 (GossipSub's own
	// default is 6).
	MeshDegree int
	// SyncTimeout bounds one anti-entropy pull. Default 10s.
	SyncTimeout time.Duration
	// SyncMaxEntries bounds the envelopes accepted from one pull. Default 100000.
	SyncMaxEntries int
}

// DefaultConfig returns the production settings.
func DefaultConfig() Config {
	return Config{
		MeshHeartbeat:  time.Second,
		ValidateQueue:  4096,
		OutboundQueue:  1024,
		MaxMessageSize: 1 << 20,
		MeshDegree:     4,
		SyncTimeout:    10 * time.Second,
		SyncMaxEntries: 100000,
	}
}

// FastConfig returns settings for tests: a quicker mesh heartbeat.
func FastConfig() Config {
	c := DefaultConfig()
	c.MeshHeartbeat = 100 * time.Millisecond
	return c
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MeshHeartbeat <= 0 {
		c.MeshHeartbeat = d.MeshHeartbeat
	}
	if c.ValidateQueue <= 0 {
		c.ValidateQueue = d.ValidateQueue
	}
	if c.OutboundQueue <= 0 {
		c.OutboundQueue = d.OutboundQueue
	}
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = d.MaxMessageSize
	}
	if c.SyncTimeout <= 0 {
		c.SyncTimeout = d.SyncTimeout
	}
	if c.MeshDegree <= 0 {
		c.MeshDegree = d.MeshDegree
	}
	if c.SyncMaxEntries <= 0 {
		c.SyncMaxEntries = d.SyncMaxEntries
	}
	return c
}

// TopicSpec describes one topic a node takes part in.
type TopicSpec struct {
	Name    string
	MaxSize int      // envelope limit; 0 = DefaultMaxSize
	Kinds   []string // kinds allowed on the topic; empty allows any
	// Body checks a signed envelope's body; an error rejects the message.
	Body func(*Envelope) error
	// Deliver receives every accepted envelope issued by another node,
	// whether it came by GossipSub or by anti-entropy. It is called from one
	// goroutine per topic for gossip and from the syncing goroutine for
	// pulls, so it must be safe for concurrent use, and it must not block.
	Deliver func(env *Envelope, from peer.ID)
	// State returns the envelopes a joining peer should pull: the current
	// state this node knows for the topic. Nil: the topic has no state.
	State func() []*Envelope
}

// Option configures a Bus.
type Option func(*Bus) error

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(b *Bus) error { b.log = l; return nil }
}

// WithMetrics sets the metrics (default: unregistered).
func WithMetrics(m *Metrics) Option {
	return func(b *Bus) error { b.metrics = m; return nil }
}

// WithClock replaces time.Now, for tests of expiry.
func WithClock(now func() time.Time) Option {
	return func(b *Bus) error { b.now = now; return nil }
}

// Bus publishes and receives the node's signed messages over GossipSub, and
// pulls state from peers that join or return (anti-entropy), since GossipSub
// keeps no history. Close stops everything it started.
type Bus struct {
	cfg     Config
	host    host.Host
	key     crypto.PrivKey
	self    peer.ID
	seq     *Sequencer
	seqs    *SeqTracker
	ps      *pubsub.PubSub
	log     *slog.Logger
	metrics *Metrics
	now     func() time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	topics map[string]*Topic
	synced map[peer.ID]time.Time // last pull per peer, to bound repeats
	closed bool
}

// New starts GossipSub on h with strict signing, peer scoring and a sized
// validation queue, and serves anti-entropy pulls. key must be h's identity.
func New(h host.Host, key crypto.PrivKey, seq *Sequencer, cfg Config, opts ...Option) (*Bus, error) {
	cfg = cfg.withDefaults()
	b := &Bus{
		cfg: cfg, host: h, key: key, self: h.ID(), seq: seq, seqs: NewSeqTracker(),
		log: slog.New(slog.DiscardHandler), now: time.Now,
		topics: make(map[string]*Topic), synced: make(map[peer.ID]time.Time),
	}
	for _, o := range opts {
		if err := o(b); err != nil {
			return nil, err
		}
	}
	if b.metrics == nil {
		b.metrics = NewMetrics(nil)
	}
	if id, err := peer.IDFromPrivateKey(key); err != nil || id != h.ID() {
		return nil, errors.New("gossip bus: key is not the host's identity")
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())

	params := pubsub.DefaultGossipSubParams()
	params.HeartbeatInterval = cfg.MeshHeartbeat
	params.HeartbeatInitialDelay = min(cfg.MeshHeartbeat, 100*time.Millisecond)
	setMeshDegree(&params, cfg.MeshDegree)
	ps, err := pubsub.NewGossipSub(b.ctx, h,
		pubsub.WithGossipSubParams(params),
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		pubsub.WithPeerScore(peerScoreParams(), peerScoreThresholds()),
		pubsub.WithValidateQueueSize(cfg.ValidateQueue),
		pubsub.WithPeerOutboundQueueSize(cfg.OutboundQueue),
		pubsub.WithMaxMessageSize(cfg.MaxMessageSize),
		pubsub.WithFloodPublish(!cfg.NoFloodPublish),
		pubsub.WithPeerExchange(false),
		pubsub.WithLogger(b.log.With("component", "pubsub")),
		pubsub.WithRawTracer(transportTracer{b.metrics}),
	)
	if err != nil {
		b.cancel()
		return nil, fmt.Errorf("gossip bus: start GossipSub: %w", err)
	}
	b.ps = ps
	h.SetStreamHandler(SyncProtocol, b.serveSync)
	if err := b.watchPeers(); err != nil {
		h.RemoveStreamHandler(SyncProtocol)
		b.cancel()
		return nil, err
	}
	return b, nil
}

// setMeshDegree derives GossipSub's degree parameters from D, keeping the
// invariants its constructor checks: Dlo <= D <= Dhi, Dout < Dlo,
// Dout < D/2, Dscore <= Dhi.
func setMeshDegree(p *pubsub.GossipSubParams, d int) {
	d = max(d, 2)
	p.D = d
	p.Dlo = d - 1
	p.Dhi = 2 * d
	p.Dscore = max(1, d*2/3)
	p.Dout = max(0, min(d/2-1, p.Dlo-1))
	p.Dlazy = d
}

// Sequencer returns the bus's sequencer.
func (b *Bus) Sequencer() *Sequencer { return b.seq }

// Seqs returns the tracker of the newest sequence seen per state.
func (b *Bus) Seqs() *SeqTracker { return b.seqs }

// PubSub returns the underlying GossipSub router, for inspection.
func (b *Bus) PubSub() *pubsub.PubSub { return b.ps }

// Topic is one joined topic.
type Topic struct {
	bus     *Bus
	spec    TopicSpec
	checker *Checker
	t       *pubsub.Topic
	sub     *pubsub.Subscription
}

// Join subscribes to a topic and starts delivering its accepted messages.
func (b *Bus) Join(spec TopicSpec) (*Topic, error) {
	if spec.Name == "" {
		return nil, errors.New("gossip: topic name required")
	}
	var kinds map[string]bool
	if len(spec.Kinds) > 0 {
		kinds = make(map[string]bool, len(spec.Kinds))
		for _, k := range spec.Kinds {
			kinds[k] = true
		}
	}
	tp := &Topic{bus: b, spec: spec, checker: &Checker{Topic: spec.Name, MaxSize: spec.MaxSize, Kinds: kinds, Seqs: b.seqs, Body: spec.Body}}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errors.New("gossip: bus closed")
	}
	if _, dup := b.topics[spec.Name]; dup {
		return nil, fmt.Errorf("gossip: topic %q joined twice", spec.Name)
	}
	if err := b.ps.RegisterTopicValidator(spec.Name, tp.validate); err != nil {
		return nil, fmt.Errorf("gossip: topic %q validator: %w", spec.Name, err)
	}
	t, err := b.ps.Join(spec.Name)
	if err != nil {
		return nil, fmt.Errorf("gossip: join topic %q: %w", spec.Name, err)
	}
	if err := t.SetScoreParams(topicScoreParams()); err != nil {
		return nil, fmt.Errorf("gossip: topic %q score parameters: %w", spec.Name, err)
	}
	sub, err := t.Subscribe(pubsub.WithBufferSize(1024))
	if err != nil {
		return nil, fmt.Errorf("gossip: subscribe topic %q: %w", spec.Name, err)
	}
	tp.t, tp.sub = t, sub
	b.topics[spec.Name] = tp
	b.wg.Add(1)
	go tp.read()
	return tp, nil
}

// validate is the GossipSub validator: every message, including our own,
// passes through it before it is delivered or forwarded.
func (tp *Topic) validate(_ context.Context, _ peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	res := tp.checker.Check(msg.GetData(), msg.GetFrom(), tp.bus.now())
	tp.bus.count(tp.spec.Name, "gossip", res)
	switch res.Verdict {
	case Accept:
		msg.ValidatorData = res.Env
		return pubsub.ValidationAccept
	case Ignore:
		return pubsub.ValidationIgnore
	}
	tp.bus.log.Debug("gossip message rejected", "topic", tp.spec.Name, "author", msg.GetFrom(), "reason", res.Reason, "err", res.Err)
	return pubsub.ValidationReject
}

func (b *Bus) count(topic, source string, res Result) {
	b.metrics.Messages.WithLabelValues(topic, source, res.Verdict.String(), res.Reason).Inc()
}

func (tp *Topic) read() {
	defer tp.bus.wg.Done()
	for {
		msg, err := tp.sub.Next(tp.bus.ctx)
		if err != nil {
			return // cancelled or subscription closed
		}
		env, ok := msg.ValidatorData.(*Envelope)
		if !ok || env.Issuer == tp.bus.self || tp.spec.Deliver == nil {
			continue
		}
		tp.spec.Deliver(env, msg.ReceivedFrom)
	}
}

// Publish signs body (encoded as JSON) in a new envelope with the next
// sequence and publishes it. A zero expires means the envelope never expires.
func (tp *Topic) Publish(ctx context.Context, kind, key string, body any, expires time.Time) (*Envelope, error) {
	env, err := NewEnvelope(tp.spec.Name, kind, key, tp.bus.seq.Next(), expires, body)
	if err != nil {
		return nil, err
	}
	if err := env.Sign(tp.bus.key); err != nil {
		return nil, err
	}
	if err := tp.PublishEnvelope(ctx, env); err != nil {
		return nil, err
	}
	return env, nil
}

// PublishEnvelope publishes an envelope as it is, signed or not. Nodes use
// Publish; this exists so tests can put forged envelopes on the wire.
func (tp *Topic) PublishEnvelope(ctx context.Context, env *Envelope) error {
	data, err := env.Encode()
	if err != nil {
		return err
	}
	if err := tp.t.Publish(ctx, data); err != nil {
		return fmt.Errorf("gossip: publish on %q: %w", tp.spec.Name, err)
	}
	tp.bus.metrics.Published.WithLabelValues(tp.spec.Name).Inc()
	return nil
}

// Peers lists the peers subscribed to the topic that we are connected to.
func (tp *Topic) Peers() []peer.ID { return tp.t.ListPeers() }

// Close stops the bus: subscriptions, GossipSub, the sync handler and every
// goroutine the bus started. It does not close the host.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	topics := b.topics
	b.mu.Unlock()

	b.host.RemoveStreamHandler(SyncProtocol)
	var errs []error
	for name, tp := range topics {
		tp.sub.Cancel()
		// Unregister before the router stops: both need its event loop.
		if err := tp.t.Close(); err != nil {
			errs = append(errs, fmt.Errorf("gossip: close topic %q: %w", name, err))
		}
		_ = b.ps.UnregisterTopicValidator(name)
	}
	b.cancel()
	b.wg.Wait()
	return errors.Join(errs...)
}
