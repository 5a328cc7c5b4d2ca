package node

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"
	"time"

	"github.com/callmesh/callmesh/gossip"
	"github.com/callmesh/callmesh/node/store"
	"github.com/callmesh/callmesh/sla"
	"github.com/libp2p/go-libp2p/core/peer"
)

// OfferTopic carries the SLAs nodes hold, each signed by the node that
// publishes it, keyed by SLA id.
const OfferTopic = "/callmesh/sla/1"

// Envelope kinds on OfferTopic.
const (
	OfferKind    = "sla-offer"    // body: sla.Offer with an SLA
	WithdrawKind = "sla-withdraw" // body: sla.Offer naming the withdrawn id
)

// maxOfferSize bounds one offer envelope: an SLA and its providers'
// access points and segments.
const maxOfferSize = 64 << 10

// Keyspaces of the SLA book.
const (
	keyspaceOffers    = "sla-offers"    // issuer/id → envelope, as signed; TTL to its expiry
	keyspaceOwnSLAs   = "sla-own"       // id → sla.Offer offered at run time
	keyspaceWithdrawn = "sla-withdrawn" // id → true: not published, even if configured
)

// ErrNotOwnSLA is a withdrawal of an SLA this node does not publish.
var ErrNotOwnSLA = errors.New("not an SLA this node publishes")

// offerKey identifies one publisher's state for one SLA.
type offerKey struct {
	issuer peer.ID
	id     string
}

// slaBook keeps the federation's catalogue: the offers this node publishes
// (from its config and from `callmesh sla offer`), and every current offer
// and withdrawal from the federation, as signed envelopes. Envelopes are
// kept in Badger until they expire, so the catalogue survives restarts;
// joining nodes pull them by anti-entropy.
type slaBook struct {
	n     *Node
	topic *gossip.Topic

	offersKS, ownKS, withdrawnKS *store.Keyspace

	// pubMu serialises "read what is mine, sign, publish" (publishAll,
	// Offer, Withdraw), so that sequence numbers follow the order in which
	// mine changed: a republish cannot put an offer withdrawn or replaced
	// meanwhile out again under a newer sequence. Taken before mu; mine is
	// changed only while holding both once the book is running.
	pubMu sync.Mutex

	mu       sync.Mutex
	envs     map[offerKey]*gossip.Envelope // current state per (issuer, id): offer or withdrawal
	offers   map[offerKey]*sla.Offer       // decoded bodies of envs
	mine     map[string]*sla.Offer         // what this node publishes, by SLA id
	version  uint64                        // bumped on every change of offers
	cat      *sla.Catalogue                // merged catalogue, valid for catVer
	catVer   uint64
	catNames uint64 // digest of the issuer names cat was built with
	// known are the names of members remembered from earlier runs, so that
	// a restarted node binds stored offers before heartbeats arrive.
	known map[peer.ID]string
	// policy is the node's class policy, from its config.
	policy sla.Policy
}

func newSLABook(n *Node) (*slaBook, error) {
	b := &slaBook{
		n:        n,
		offersKS: n.store.Keyspace(keyspaceOffers), ownKS: n.store.Keyspace(keyspaceOwnSLAs),
		withdrawnKS: n.store.Keyspace(keyspaceWithdrawn),
		envs:        make(map[offerKey]*gossip.Envelope), offers: make(map[offerKey]*sla.Offer),
		mine: make(map[string]*sla.Offer),
	}
	known, err := knownNames(n.store)
	if err != nil {
		return nil, err
	}
	b.known = known
	if err := b.load(time.Now()); err != nil {
		return nil, err
	}
	if err := b.loadMine(); err != nil {
		return nil, err
	}
	t, err := n.bus.Join(gossip.TopicSpec{
		Name: OfferTopic, MaxSize: maxOfferSize, Kinds: []string{OfferKind, WithdrawKind},
		Body:    b.check,
		Deliver: b.deliver,
		State:   b.state,
	})
	if err != nil {
		return nil, err
	}
	b.topic = t
	return b, nil
}

// check is the topic's body validator: the offer must be well formed, name
// its publisher as a party (or voucher), carry the SLA under its own id,
// and come from the node whose name it claims, as far as the membership
// view knows the signer's name.
func (b *slaBook) check(env *gossip.Envelope) error {
	o, err := decodeOffer(env)
	if err != nil {
		return err
	}
	if m, ok := b.n.members.member(env.Issuer); ok && m.Name != "" && m.Name != o.Issuer {
		return fmt.Errorf("%w: offer issued as %q by node %q", gossip.ErrMalformed, o.Issuer, m.Name)
	}
	return nil
}

// decodeOffer decodes and checks an envelope's offer against its kind and key.
func decodeOffer(env *gossip.Envelope) (*sla.Offer, error) {
	var o sla.Offer
	if err := env.DecodeBody(&o); err != nil {
		return nil, err
	}
	switch env.Kind {
	case OfferKind:
		if o.SLA == nil || o.Withdrawn != "" {
			return nil, fmt.Errorf("%w: an offer carries one SLA and no withdrawal", gossip.ErrMalformed)
		}
		if o.SLA.ID != env.Key {
			return nil, fmt.Errorf("%w: offer of SLA %q under key %q", gossip.ErrMalformed, o.SLA.ID, env.Key)
		}
	case WithdrawKind:
		if o.Withdrawn != env.Key {
			return nil, fmt.Errorf("%w: withdrawal of %q under key %q", gossip.ErrMalformed, o.Withdrawn, env.Key)
		}
	}
	if err := o.Check(o.Issuer); err != nil {
		return nil, fmt.Errorf("%w: %v", gossip.ErrMalformed, err)
	}
	return &o, nil
}

// deliver takes an accepted envelope from gossip or anti-entropy.
func (b *slaBook) deliver(env *gossip.Envelope, _ peer.ID) {
	o, err := decodeOffer(env) // checked by the validator; decoded again for the body
	if err != nil {
		return
	}
	b.put(env, o)
	if err := b.persist(env); err != nil && b.n.ctx.Err() == nil {
		b.n.log.Warn("SLA offer not stored", "sla", env.Key, "issuer", env.Issuer, "err", err)
	}
}

// put records an envelope as the current state of (issuer, key), unless a
// newer one is already there.
func (b *slaBook) put(env *gossip.Envelope, o *sla.Offer) bool {
	k := offerKey{env.Issuer, env.Key}
	b.mu.Lock()
	defer b.mu.Unlock()
	if cur, ok := b.envs[k]; ok && !env.Seq.Newer(cur.Seq) {
		return false
	}
	b.envs[k], b.offers[k] = env, o
	b.version++
	return true
}

func offerStoreKey(k offerKey) []byte { return []byte(string(k.issuer) + "/" + k.id) }

func (b *slaBook) persist(env *gossip.Envelope) error {
	data, err := env.Encode()
	if err != nil {
		return err
	}
	var opts []store.PutOption
	if env.Expires != 0 {
		ttl := time.Until(time.UnixMilli(env.Expires))
		if ttl <= 0 {
			return nil
		}
		opts = append(opts, store.WithTTL(ttl))
	}
	return b.offersKS.Put(offerStoreKey(offerKey{env.Issuer, env.Key}), data, opts...)
}

// load reads the envelopes kept from earlier runs, verifying each again:
// the store is not trusted more than the network.
func (b *slaBook) load(now time.Time) error {
	checker := gossip.Checker{Topic: OfferTopic, MaxSize: maxOfferSize,
		Kinds: map[string]bool{OfferKind: true, WithdrawKind: true}, Seqs: b.n.bus.Seqs()}
	var bad [][]byte
	err := b.offersKS.Iterate(nil, func(key, val []byte) error {
		res := checker.Check(val, "", now)
		if res.Verdict != gossip.Accept {
			bad = append(bad, slices.Clone(key))
			return nil
		}
		o, err := decodeOffer(res.Env)
		if err != nil {
			bad = append(bad, slices.Clone(key))
			return nil
		}
		b.put(res.Env, o)
		return nil
	})
	if err != nil {
		return fmt.Errorf("SLA offers: %w", err)
	}
	for _, k := range bad {
		_ = b.offersKS.Delete(k)
	}
	return nil
}

// loadMine builds the set this node publishes: its configured SLAs and
// those offered at run time, less those withdrawn.
func (b *slaBook) loadMine() error {
	withdrawn := map[string]bool{}
	err := b.withdrawnKS.Iterate(nil, func(key, _ []byte) error {
		withdrawn[string(key)] = true
		return nil
	})
	if err != nil {
		return fmt.Errorf("withdrawn SLAs: %w", err)
	}
	cat, err := b.n.cfg.Catalogue()
	if err != nil {
		return err
	}
	b.policy = cat.Policy
	for i := range cat.SLAs {
		id := cat.SLAs[i].ID
		if withdrawn[id] {
			continue
		}
		o, err := sla.OfferFor(cat, id, b.n.cfg.Name)
		if err != nil {
			return fmt.Errorf("slas: %w", err)
		}
		b.mine[id] = o
	}
	return b.ownKS.Iterate(nil, func(key, val []byte) error {
		var o sla.Offer
		if err := json.Unmarshal(val, &o); err != nil {
			return fmt.Errorf("SLA %s offered at run time: %w", key, err)
		}
		if !withdrawn[string(key)] {
			b.mine[string(key)] = &o
		}
		return nil
	})
}

// knownNames reads the names of the members the store remembers.
func knownNames(s *store.Store) (map[peer.ID]string, error) {
	out := map[peer.ID]string{}
	err := s.Keyspace(keyspaceKnownPeers).Iterate(nil, func(k, v []byte) error {
		id, err := peer.IDFromBytes(k)
		if err != nil {
			return nil
		}
		var kp knownPeer
		if json.Unmarshal(v, &kp) == nil && kp.Name != "" {
			out[id] = kp.Name
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("known peers: %w", err)
	}
	return out, nil
}

// state is what a joining peer pulls: every current envelope, ours and
// others', offers and withdrawals, that has not expired.
func (b *slaBook) state() []*gossip.Envelope {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]*gossip.Envelope, 0, len(b.envs))
	for _, env := range b.envs {
		if !env.Expired(now) {
			out = append(out, env)
		}
	}
	return out
}

func (b *slaBook) start() {
	b.n.wg.Add(1)
	go b.loop()
}

// loop publishes this node's offers at start and every sla.republish, and
// drops expired envelopes. The first round waits one heartbeat interval:
// GossipSub drops what is published before its first heartbeat, and peers
// that miss it pull the state anyway.
func (b *slaBook) loop() {
	defer b.n.wg.Done()
	first := time.NewTimer(b.n.cfg.Membership.Heartbeat)
	defer first.Stop()
	select {
	case <-b.n.ctx.Done():
		return
	case <-first.C:
	}
	b.publishAll()
	t := time.NewTicker(b.n.cfg.SLA.Republish)
	defer t.Stop()
	sweep := time.NewTicker(time.Second)
	defer sweep.Stop()
	for {
		select {
		case <-b.n.ctx.Done():
			return
		case <-t.C:
			b.publishAll()
		case now := <-sweep.C:
			b.sweep(now)
		}
	}
}

// publishAll publishes every offer of this node with a fresh sequence and
// expiry.
func (b *slaBook) publishAll() {
	b.pubMu.Lock()
	defer b.pubMu.Unlock()
	b.mu.Lock()
	ids := make([]string, 0, len(b.mine))
	mine := make(map[string]*sla.Offer, len(b.mine))
	for id, o := range b.mine {
		ids = append(ids, id)
		mine[id] = o
	}
	b.mu.Unlock()
	slices.Sort(ids)
	for _, id := range ids {
		o := mine[id]
		if o == nil {
			continue
		}
		if err := b.publish(OfferKind, id, o); err != nil && b.n.ctx.Err() == nil {
			b.n.log.Warn("SLA offer not published", "sla", id, "err", err)
		}
	}
}

func (b *slaBook) publish(kind, id string, o *sla.Offer) error {
	ctx, cancel := context.WithTimeout(b.n.ctx, 5*time.Second)
	defer cancel()
	env, err := b.topic.Publish(ctx, kind, id, o, time.Now().Add(b.n.cfg.SLA.OfferTTL))
	if err != nil {
		return err
	}
	b.put(env, o)
	return b.persist(env)
}

// sweep drops expired envelopes.
func (b *slaBook) sweep(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, env := range b.envs {
		if env.Expired(now) {
			delete(b.envs, k)
			delete(b.offers, k)
			b.version++
		}
	}
}

// Offer adds or replaces SLAs this node publishes, from a catalogue holding
// them and the providers they name, and publishes them at once.
func (b *slaBook) Offer(cat *sla.Catalogue) ([]string, error) {
	if err := ownSLAs(b.n.cfg.Name, cat); err != nil {
		return nil, err
	}
	offers := make([]*sla.Offer, 0, len(cat.SLAs))
	for i := range cat.SLAs {
		o, err := sla.OfferFor(cat, cat.SLAs[i].ID, b.n.cfg.Name)
		if err != nil {
			return nil, fmt.Errorf("slas[%d]: %w", i, err)
		}
		offers = append(offers, o)
	}
	if err := b.checkCurrency(offers); err != nil {
		return nil, err
	}
	b.pubMu.Lock()
	defer b.pubMu.Unlock()
	ids := make([]string, 0, len(offers))
	for _, o := range offers {
		id := o.SLA.ID
		if err := store.PutJSON(b.ownKS, []byte(id), *o, store.Durable()); err != nil {
			return nil, err
		}
		if err := b.withdrawnKS.Delete([]byte(id)); err != nil {
			return nil, err
		}
		b.mu.Lock()
		b.mine[id] = o
		b.mu.Unlock()
		if err := b.publish(OfferKind, id, o); err != nil {
			return nil, fmt.Errorf("SLA %s: %w", id, err)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// checkCurrency refuses offers in a currency other than the catalogue's.
func (b *slaBook) checkCurrency(offers []*sla.Offer) error {
	want := b.Catalogue().Currency()
	for _, o := range offers {
		c := o.SLA.Price.Currency
		if want == "" {
			want = c
		}
		if c != "" && c != want {
			return &sla.FieldError{Field: "slas[" + o.SLA.ID + "].price.currency", Value: c,
				Msg: "the catalogue's currency is " + want}
		}
	}
	return nil
}

// Withdraw stops publishing an SLA of this node and tells the federation.
func (b *slaBook) Withdraw(id string) error {
	b.pubMu.Lock()
	defer b.pubMu.Unlock()
	b.mu.Lock()
	_, ok := b.mine[id]
	delete(b.mine, id)
	b.mu.Unlock()
	if !ok {
		return fmt.Errorf("SLA %q: %w", id, ErrNotOwnSLA)
	}
	if err := b.withdrawnKS.Put([]byte(id), []byte("1"), store.Durable()); err != nil {
		return err
	}
	if err := b.ownKS.Delete([]byte(id)); err != nil {
		return err
	}
	return b.publish(WithdrawKind, id, &sla.Offer{Issuer: b.n.cfg.Name, Withdrawn: id})
}

// current returns the offer chosen for each SLA id: when two nodes publish
// the same id (both parties of a peering may), the one whose issuer's peer
// ID sorts first, so that every node chooses alike. Withdrawn ids are left
// out. Entries are sorted by SLA id.
//
// An offer counts only once its issuer's name is bound to its signer: the
// signer is this node, or a member whose heartbeats carry that name. A peer
// cannot publish SLAs in another node's name; an offer that arrives before
// its issuer's first heartbeat waits in the book until then.
func (b *slaBook) current() []offerEntry {
	names, _ := b.names()
	return b.currentWith(names)
}

// names maps the peers known to the membership view (and this node) to
// their names, with a digest of the mapping for the catalogue cache.
func (b *slaBook) names() (map[peer.ID]string, uint64) {
	names := make(map[peer.ID]string, len(b.known)+8)
	for id, name := range b.known {
		names[id] = name
	}
	names[b.n.id] = b.n.cfg.Name
	for _, m := range b.n.members.snapshot().Members() {
		names[m.ID] = m.Name
	}
	var sum uint64
	for id, name := range names {
		h := fnv.New64a()
		h.Write([]byte(id))
		h.Write([]byte{0})
		h.Write([]byte(name))
		sum ^= h.Sum64()
	}
	return names, sum
}

func (b *slaBook) currentWith(names map[peer.ID]string) []offerEntry {
	b.mu.Lock()
	defer b.mu.Unlock()
	byID := map[string]offerEntry{}
	for k, env := range b.envs {
		o := b.offers[k]
		if o == nil || o.SLA == nil || names[k.issuer] != o.Issuer {
			continue
		}
		if cur, ok := byID[k.id]; ok && cur.env.Issuer < env.Issuer {
			continue
		}
		byID[k.id] = offerEntry{env: env, offer: o}
	}
	out := make([]offerEntry, 0, len(byID))
	for _, e := range byID {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, c offerEntry) int { return cmp.Compare(a.offer.SLA.ID, c.offer.SLA.ID) })
	return out
}

type offerEntry struct {
	env   *gossip.Envelope
	offer *sla.Offer
}

// Catalogue returns the federation's catalogue as this node knows it now:
// every current offer merged, with the node's class policy. The result is
// shared: callers must not modify it.
func (b *slaBook) Catalogue() *sla.Catalogue {
	names, sum := b.names()
	b.mu.Lock()
	if b.cat != nil && b.catVer == b.version && b.catNames == sum {
		c := b.cat
		b.mu.Unlock()
		return c
	}
	ver := b.version
	b.mu.Unlock()
	entries := b.currentWith(names)
	offers := make([]*sla.Offer, len(entries))
	for i, e := range entries {
		offers[i] = e.offer
	}
	cat := sla.Merge(offers)
	cat.Policy = b.policy
	b.mu.Lock()
	b.cat, b.catVer, b.catNames = cat, ver, sum
	b.mu.Unlock()
	return cat
}
