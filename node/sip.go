package node

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/callmesh/callmesh/node/accounts"
	"github.com/callmesh/callmesh/node/digest"
	"github.com/callmesh/callmesh/node/sipedge"
	"github.com/callmesh/callmesh/node/store"
)

// keyspaceBindings holds each AOR's registered contacts.
const keyspaceBindings = "bindings"

// bindingStore keeps registrations in Badger, one entry per AOR holding all
// its bindings, with a TTL at the last binding's expiry: registrations
// survive a restart and vanish on their own. Every AOR with live bindings
// is also kept decoded in memory: each INVITE reads its callee's, and a
// Badger read with its JSON decoding was a few percent of a node's CPU
// under call load. Save updates the copy once Badger has the write; a Load
// that read Badger keeps what it read only if no Save began meanwhile
// (gen), so a slow read never overwrites a newer registration. Absence is
// not cached, and an AOR whose bindings all expired is dropped, so the
// copy holds live registrations only.
type bindingStore struct {
	ks *store.Keyspace

	mu     sync.RWMutex
	gen    uint64 // bumped when a Save begins and when it ends
	cached map[string][]sipedge.Binding
}

func newBindingStore(ks *store.Keyspace) *bindingStore {
	return &bindingStore{ks: ks, cached: make(map[string][]sipedge.Binding)}
}

func (s *bindingStore) Load(aor string) ([]sipedge.Binding, error) {
	now := time.Now()
	s.mu.RLock()
	bs, ok := s.cached[aor]
	gen := s.gen
	s.mu.RUnlock()
	if ok {
		live := unexpired(slices.Clone(bs), now)
		if len(live) == 0 {
			s.forget(aor, gen)
		}
		return live, nil
	}
	bs, err := store.GetJSON[[]sipedge.Binding](s.ks, []byte(aor))
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil
		}
		return nil, err
	}
	live := unexpired(bs, now)
	if len(live) > 0 {
		s.mu.Lock()
		if s.gen == gen {
			s.cached[aor] = slices.Clone(live)
		}
		s.mu.Unlock()
	}
	return live, nil
}

// forget drops aor's copy unless a Save began since gen.
func (s *bindingStore) forget(aor string, gen uint64) {
	s.mu.Lock()
	if s.gen == gen {
		delete(s.cached, aor)
	}
	s.mu.Unlock()
}

// unexpired drops the bindings that expired before now (Badger's TTL has
// whole-second granularity).
func unexpired(bs []sipedge.Binding, now time.Time) []sipedge.Binding {
	live := bs[:0]
	for _, b := range bs {
		if b.Expires.After(now) {
			live = append(live, b)
		}
	}
	return live
}

func (s *bindingStore) Save(aor string, bs []sipedge.Binding) error {
	s.mu.Lock()
	s.gen++
	delete(s.cached, aor)
	s.mu.Unlock()
	err := s.write(aor, bs)
	s.mu.Lock()
	s.gen++
	if err == nil && len(bs) > 0 {
		s.cached[aor] = slices.Clone(bs)
	}
	s.mu.Unlock()
	return err
}

func (s *bindingStore) write(aor string, bs []sipedge.Binding) error {
	if len(bs) == 0 {
		return s.ks.Delete([]byte(aor))
	}
	var until time.Time
	for _, b := range bs {
		if b.Expires.After(until) {
			until = b.Expires
		}
	}
	ttl := time.Until(until) + time.Second
	if ttl <= time.Second {
		return s.ks.Delete([]byte(aor))
	}
	return store.PutJSON(s.ks, []byte(aor), bs, store.WithTTL(ttl))
}

// each calls fn with every AOR that has bindings.
func (s *bindingStore) each(fn func(aor string, bs []sipedge.Binding)) error {
	now := time.Now()
	return s.ks.Iterate(nil, func(k, v []byte) error {
		var bs []sipedge.Binding
		if json.Unmarshal(v, &bs) != nil {
			return nil // not readable: it expires on its own
		}
		if bs = unexpired(bs, now); len(bs) > 0 {
			fn(string(k), bs)
		}
		return nil
	})
}

// sipEdgeConfig derives the SIP edge's settings from the node's.
func (n *Node) sipEdgeConfig() (sipedge.Config, error) {
	cfg := n.cfg
	algs := make([]digest.Algorithm, 0, len(cfg.Auth.Algorithms))
	for _, a := range cfg.Auth.Algorithms {
		alg, err := digest.ParseAlgorithm(a)
		if err != nil {
			return sipedge.Config{}, fmt.Errorf("%w: auth.algorithms: %v", ErrConfig, err)
		}
		algs = append(algs, alg)
	}
	trusted, err := cfg.trustedPrefixes()
	if err != nil {
		return sipedge.Config{}, err
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return sipedge.Config{}, fmt.Errorf("nonce secret: %w", err)
	}
	return sipedge.Config{
		Domain: strings.ToLower(cfg.Domain), Listen: cfg.SIP, Aliases: localAliases(cfg.SIP),
		Policy: sipedge.RegisterPolicy{
			MinExpires: cfg.Registrar.MinExpires, MaxExpires: cfg.Registrar.MaxExpires,
			DefaultExpires: cfg.Registrar.DefaultExpires, MaxContacts: cfg.Registrar.MaxContacts,
		},
		Algorithms: algs, MD5OnlyAgents: cfg.Auth.MD5OnlyAgents,
		Nonce:      digest.NonceConfig{Secret: secret, Lifetime: cfg.Auth.NonceLifetime},
		BlockAfter: cfg.Auth.BlockAfter, BlockWindow: cfg.Auth.BlockWindow, BlockFor: cfg.Auth.BlockFor,
		UserAgent: "callmesh/" + Version,
		Trusted:   trusted, TransactionWait: cfg.Calls.TransactionWait,
		OverloadBacklog: cfg.Calls.OverloadBacklog,
	}, nil
}

// localAliases lists the hosts under which phones may address this node
// instead of the domain: the listen IP, or every local IP when the node
// listens on all of them.
func localAliases(listen string) []string {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsUnspecified() {
		return []string{host}
	}
	var out []string
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			out = append(out, ipn.IP.String())
		}
	}
	return out
}

// startSIP starts the SIP edge with the node's accounts, its bindings in
// the store and the DHT location publisher, and republishes the locations
// of registrations that survived a restart.
func (n *Node) startSIP() error {
	cfg, err := n.sipEdgeConfig()
	if err != nil {
		return err
	}
	n.bindings = newBindingStore(n.store.Keyspace(keyspaceBindings))
	n.users = newUserDir(n)
	n.wg.Add(1)
	go n.users.run()
	n.locs = newLocations(n)
	n.sip, err = sipedge.Start(cfg, nodeAccounts{n}, n.bindings, n.locs,
		sipedge.WithLogger(n.log.With("component", "sip")), sipedge.WithRegisterer(n.reg))
	if err != nil {
		return err
	}
	if err := n.bindings.each(n.locs.Changed); err != nil {
		n.log.Warn("registrations not republished", "err", err)
	}
	n.wg.Add(1)
	go n.locs.run()
	return nil
}

// nodeAccounts gives the SIP edge the credentials of accounts homed here.
type nodeAccounts struct{ n *Node }

func (a nodeAccounts) Credentials(ctx context.Context, user string) (digest.Credentials, bool, error) {
	acct, found, err := a.n.Account(ctx, user)
	if err != nil || !found {
		return digest.Credentials{}, false, err
	}
	if !strings.EqualFold(acct.Realm, a.n.cfg.Domain) {
		a.n.log.Warn("account credentials are for another realm; set the password again", "user", user, "realm", acct.Realm)
		return digest.Credentials{}, false, nil
	}
	return acct.Credentials, true, nil
}

func (a nodeAccounts) Permit(ctx context.Context, user string, req accounts.Request) (sipedge.Limits, error) {
	acct, found, err := a.n.Account(ctx, user)
	if err != nil {
		return sipedge.Limits{}, err
	}
	if !found {
		return sipedge.Limits{}, &accounts.PermitError{Err: accounts.ErrNotAllowed, Missing: "account"}
	}
	return sipedge.Limits{Known: true, Class: string(acct.Class), MaxCalls: acct.MaxCalls}, acct.Permit(req)
}

// SIPAddr returns the address the SIP edge listens on (UDP and TCP).
func (n *Node) SIPAddr() string {
	if n.sip == nil {
		return n.cfg.SIP
	}
	return n.sip.Addr()
}

// QualifyContacts sends OPTIONS to every contact registered here for aor,
// each over the path its registration came by, and returns the answers'
// status codes by contact URI (0 for no answer).
func (n *Node) QualifyContacts(ctx context.Context, aor string) (map[string]int, error) {
	bs, err := n.bindings.Load(normalizeAOR(aor))
	if err != nil {
		return nil, err
	}
	out := make(map[string]int, len(bs))
	for _, b := range bs {
		res, err := n.sip.Qualify(ctx, b)
		if err != nil {
			n.log.Debug("contact did not answer", "aor", aor, "contact", b.URI, "err", err)
			out[b.URI] = 0
			continue
		}
		out[b.URI] = res.StatusCode
	}
	return out, nil
}
