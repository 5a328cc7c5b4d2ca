// Package node is the management unit: it wires identity, the Badger store,
// the libp2p host, the DHT, gossip and the membership view into one running
// process, and serves the admin API. The decisions live in the packages it
// wires; node owns the goroutines, sockets, timers and storage.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/callmesh/callmesh/gossip"
	"github.com/callmesh/callmesh/media"
	"github.com/callmesh/callmesh/node/accounts"
	"github.com/callmesh/callmesh/node/b2bua"
	"github.com/callmesh/callmesh/node/sipedge"
	"github.com/callmesh/callmesh/node/store"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Version is the software version a node reports in heartbeats and the API.
const Version = "0.1.0"

// DHTPrefix is the federation's private Kademlia protocol prefix: callmesh
// nodes never mix with the public IPFS DHT.
const DHTPrefix = "/callmesh"

// Option configures a node.
type Option func(*options)

type options struct {
	log    *slog.Logger
	gossip gossip.Config
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithGossipConfig overrides the gossip bus settings (default:
// gossip.DefaultConfig).
func WithGossipConfig(c gossip.Config) Option { return func(o *options) { o.gossip = c } }

// Node is one running management unit.
type Node struct {
	cfg     Config
	log     *slog.Logger
	key     crypto.PrivKey
	id      peer.ID
	started time.Time

	store *store.Store
	host  host.Host
	dht   *dht.IpfsDHT
	bus   *gossip.Bus
	reg   *prometheus.Registry
	m     *metrics

	members  *membership
	slas     *slaBook
	measures *measurer
	catCache catalogueCache
	accounts *accounts.Store
	sip      *sipedge.Server
	relay    *media.Relay
	calls    *b2bua.Service
	fed      *federation
	bindings *bindingStore
	locs     *locations
	users    *userDir
	sigs     *sigCache // DHT record values already verified

	adminLn  net.Listener
	adminSrv *http.Server

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// Start opens the node's store and identity, joins the federation and serves
// the admin API. It returns once everything listens; Close stops it.
func Start(cfg Config, opts ...Option) (_ *Node, err error) {
	o := options{log: slog.New(slog.DiscardHandler), gossip: gossip.DefaultConfig()}
	for _, opt := range opts {
		opt(&o)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	key, id, err := LoadIdentity(cfg.Path(cfg.Identity))
	if err != nil {
		return nil, err
	}
	var psk pnet.PSK
	if cfg.P2P.FederationKey != "" {
		if psk, err = LoadFederationKey(cfg.Path(cfg.P2P.FederationKey)); err != nil {
			return nil, err
		}
	}
	n := &Node{cfg: cfg, key: key, id: id, started: time.Now(), reg: prometheus.NewRegistry(), sigs: newSigCache(8192)}
	n.log = o.log.With("node", cfg.Name)
	n.ctx, n.cancel = context.WithCancel(context.Background())
	// On any failure below, undo what was started, in reverse.
	defer func() {
		if err != nil {
			n.cancel()
			if n.adminSrv != nil {
				_ = n.adminSrv.Close() // its Serve goroutine is in n.wg
			}
			n.wg.Wait()
			n.closeParts()
		}
	}()

	n.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	n.m = newMetrics(n.reg)

	n.store, err = store.Open(store.Options{
		Dir: filepath.Join(cfg.Path(cfg.DataDir), "store"), SmallMemory: cfg.Store.SmallMemory,
		GCInterval: cfg.Store.GCInterval, Logger: n.log.With("component", "store"),
	})
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", cfg.Name, err)
	}
	n.accounts = accounts.NewStore(n.store.Keyspace("accounts"))
	inc, err := nextIncarnation(n.store, n.started)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", cfg.Name, err)
	}

	if n.host, err = newHost(&cfg, key, psk); err != nil {
		return nil, fmt.Errorf("node %s: %w", cfg.Name, err)
	}
	n.dht, err = dht.New(n.host,
		dht.Mode(dht.ModeServer),
		dht.ProtocolPrefix(DHTPrefix),
		dht.Validator(record.NamespacedValidator{
			NodeRecordNamespace: RecordValidator{Namespace: NodeRecordNamespace, Kind: NodeRecordKind, Sigs: n.sigs},
			LocationNamespace:   locationValidator(n.sigs),
			UserNamespace:       userValidator(n.sigs),
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("node %s: DHT: %w", cfg.Name, err)
	}
	n.bus, err = gossip.New(n.host, key, gossip.NewSequencer(inc), o.gossip,
		gossip.WithLogger(n.log.With("component", "gossip")),
		gossip.WithMetrics(gossip.NewMetrics(n.reg)))
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", cfg.Name, err)
	}
	if n.members, err = newMembership(n); err != nil {
		return nil, fmt.Errorf("node %s: %w", cfg.Name, err)
	}
	if n.slas, err = newSLABook(n); err != nil {
		return nil, fmt.Errorf("node %s: %w", cfg.Name, err)
	}
	if n.measures, err = newMeasurer(n); err != nil {
		return nil, fmt.Errorf("node %s: %w", cfg.Name, err)
	}
	if err = n.startAdmin(); err != nil {
		return nil, fmt.Errorf("node %s: %w", cfg.Name, err)
	}
	if err = n.startRelay(); err != nil {
		return nil, fmt.Errorf("node %s: %w", cfg.Name, err)
	}
	if err = n.startSIP(); err != nil {
		return nil, fmt.Errorf("node %s: %w", cfg.Name, err)
	}
	if err = n.startCalls(); err != nil {
		return nil, fmt.Errorf("node %s: %w", cfg.Name, err)
	}
	n.members.start()
	n.slas.start()
	n.measures.start()
	// Join through the configured bootstrap peers and through every member
	// remembered from earlier runs.
	seeds := make(map[peer.ID]bool)
	for _, s := range cfg.P2P.Bootstrap {
		ai, _ := peer.AddrInfoFromString(s) // validated with the config
		if ai.ID != n.id && !seeds[ai.ID] {
			seeds[ai.ID] = true
			n.wg.Add(1)
			go n.bootstrap(*ai)
		}
	}
	known, kerr := knownPeers(n.store)
	if kerr != nil {
		n.log.Warn("known peers not read", "err", kerr)
	}
	for _, ai := range known {
		if ai.ID != n.id && !seeds[ai.ID] {
			seeds[ai.ID] = true
			n.wg.Add(1)
			go n.bootstrap(ai)
		}
	}
	n.wg.Add(1)
	go n.publishRecordLoop()
	if err = n.writeRunFile(); err != nil {
		return nil, fmt.Errorf("node %s: %w", cfg.Name, err)
	}
	n.log.Info("node started", "id", n.id, "p2p", n.P2PAddrs(), "admin", n.AdminURL(), "incarnation", inc)
	return n, nil
}

// ID returns the node's peer ID.
func (n *Node) ID() peer.ID { return n.id }

// Name returns the node's configured name.
func (n *Node) Name() string { return n.cfg.Name }

// Config returns the configuration the node runs with.
func (n *Node) Config() Config { return n.cfg }

// Host returns the libp2p host.
func (n *Node) Host() host.Host { return n.host }

// DHT returns the node's DHT.
func (n *Node) DHT() *dht.IpfsDHT { return n.dht }

// Bus returns the node's gossip bus.
func (n *Node) Bus() *gossip.Bus { return n.bus }

// Store returns the node's store.
func (n *Node) Store() *store.Store { return n.store }

// Accounts returns the user accounts homed on this node.
func (n *Node) Accounts() *accounts.Store { return n.accounts }

// Registry returns the node's Prometheus registry.
func (n *Node) Registry() *prometheus.Registry { return n.reg }

// Incarnation returns the incarnation of this run.
func (n *Node) Incarnation() uint64 { return n.bus.Sequencer().Incarnation() }

// P2PAddrs returns the node's listen multiaddrs with its /p2p/ID suffix, as
// other nodes put them in their bootstrap lists.
func (n *Node) P2PAddrs() []string {
	addrs := n.host.Addrs()
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.String()+"/p2p/"+n.id.String())
	}
	return out
}

// AdminURL returns the base URL of the admin API.
func (n *Node) AdminURL() string { return "http://" + n.adminLn.Addr().String() }

// View returns a snapshot of the membership view, for election and tests.
func (n *Node) View() *gossip.View { return n.members.snapshot() }

// Close stops the node: no new work, goroutines stopped, the admin server,
// gossip, DHT and host closed, the store synced and closed. It is safe to
// call more than once.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.log.Info("node stopping")
		n.cancel()
		if n.adminSrv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = n.adminSrv.Shutdown(ctx)
			cancel()
		}
		n.wg.Wait()
		n.closeErr = n.closeParts()
		_ = os.Remove(n.runFile())
		n.log.Info("node stopped")
	})
	return n.closeErr
}

// closeParts closes what Start opened, in reverse order, skipping what is nil.
func (n *Node) closeParts() error {
	var errs []error
	if n.calls != nil {
		errs = append(errs, n.calls.Close())
	}
	if n.sip != nil {
		errs = append(errs, n.sip.Close())
	}
	if n.relay != nil {
		errs = append(errs, n.relay.Close())
	}
	if n.bus != nil {
		errs = append(errs, n.bus.Close())
	}
	if n.dht != nil {
		errs = append(errs, n.dht.Close())
	}
	if n.host != nil {
		errs = append(errs, n.host.Close())
	}
	if n.adminLn != nil && n.adminSrv == nil {
		errs = append(errs, n.adminLn.Close())
	}
	if n.store != nil {
		errs = append(errs, n.store.Close())
	}
	return errors.Join(errs...)
}

// nextIncarnation returns this run's incarnation: the boot time in Unix
// milliseconds, raised above the last one used if the clock went backwards,
// and persisted durably before any message is signed with it.
func nextIncarnation(s *store.Store, now time.Time) (uint64, error) {
	ks := s.Keyspace("meta")
	inc := uint64(now.UnixMilli())
	last, err := store.GetJSON[uint64](ks, []byte("incarnation"))
	switch {
	case err == nil && last >= inc:
		inc = last + 1
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return 0, fmt.Errorf("incarnation: %w", err)
	}
	if err := store.PutJSON(ks, []byte("incarnation"), inc, store.Durable()); err != nil {
		return 0, fmt.Errorf("incarnation: %w", err)
	}
	return inc, nil
}
