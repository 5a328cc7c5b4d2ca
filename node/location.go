package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/callmesh/callmesh/gossip"
	"github.com/callmesh/callmesh/node/sipedge"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
)

// LocationNamespace holds where each user is registered: under
// /callmesh-aor/AOR, a record signed by the node holding the registration.
const LocationNamespace = "callmesh-aor"

// LocationKind is the envelope kind of a location record.
const LocationKind = "location"

// Location says which node holds a user's registration, until when. A
// tombstone says the user unregistered there; being newer, it hides the
// node's earlier record.
type Location struct {
	AOR       string    `json:"aor"`
	Node      peer.ID   `json:"node"`
	Name      string    `json:"name,omitempty"` // the node's name
	SIP       string    `json:"sip"`            // the node's SIP address
	Expires   time.Time `json:"expires"`
	Updated   int64     `json:"updated"` // Unix milliseconds: the newest registration wins
	Tombstone bool      `json:"tombstone,omitempty"`
}

// ErrNotRegistered is returned by Locate for a user registered nowhere.
var ErrNotRegistered = errors.New("not registered")

// lookupQuorum is how many DHT peers' answers a lookup waits for before
// choosing the newest record. Without it (kad-dht's default) every lookup
// waits for the whole query, about 20 peers: 3–4 times slower. Every put
// reaches the closest peers and registrations are republished, so a few
// answers are enough; a stale answer is corrected by this node's own
// bindings (Locate) and by the next lookup after the cache expires.
const lookupQuorum = 3

// tombstoneTTL is how long an unregistration stays visible in the DHT,
// hiding older records of the same user.
const tombstoneTTL = 10 * time.Minute

// locationValidator checks location records: only the node a record names
// may sign it, and a later registration (then the higher peer ID) wins.
func locationValidator(sigs *sigCache) RecordValidator {
	return RecordValidator{
		Sigs:       sigs,
		Namespace:  LocationNamespace,
		Kind:       LocationKind,
		Authorized: func(string, peer.ID) bool { return true }, // checked against the body below
		Body: func(subject string, env *gossip.Envelope) error {
			var loc Location
			if err := env.DecodeBody(&loc); err != nil {
				return err
			}
			switch {
			case loc.AOR != subject:
				return fmt.Errorf("location for %q filed under %q", loc.AOR, subject)
			case loc.Node != env.Issuer:
				return fmt.Errorf("%w: location names node %s but %s signed it", gossip.ErrIssuer, loc.Node, env.Issuer)
			}
			return nil
		},
		Newer: func(a, b *gossip.Envelope) bool {
			var la, lb Location
			if a.DecodeBody(&la) != nil || b.DecodeBody(&lb) != nil {
				return false
			}
			if la.Updated != lb.Updated {
				return la.Updated > lb.Updated
			}
			if la.Node != lb.Node {
				return la.Node > lb.Node
			}
			return a.Seq.Newer(b.Seq)
		},
	}
}

// locations publishes this node's registrations in the DHT and answers
// lookups through a short-lived cache. Puts that fail (no DHT peers yet,
// say) are retried, not lost.
type locations struct {
	n        *Node
	cacheTTL time.Duration

	pub *publisher

	mu        sync.Mutex
	published map[string]Location  // AOR → our last record, the one put
	cache     map[string]cachedLoc // lookups
	inflight  map[string]*lookup   // DHT lookups in progress, shared by concurrent callers
}

// lookup is one DHT lookup that every concurrent caller for the AOR waits
// for, so that a burst of calls to one user when its cache entry expires
// costs one DHT query, not one each.
type lookup struct {
	done chan struct{}
	loc  Location
	err  error
}

type cachedLoc struct {
	loc Location
	err error
	at  time.Time
}

func newLocations(n *Node) *locations {
	l := &locations{n: n, cacheTTL: time.Second, published: map[string]Location{}, cache: map[string]cachedLoc{}}
	l.pub = newPublisher(n, "location", l.put)
	return l
}

// Changed implements sipedge.Locator.
func (l *locations) Changed(aor string, bs []sipedge.Binding) {
	var until time.Time
	for _, b := range bs {
		if b.Expires.After(until) {
			until = b.Expires
		}
	}
	now := time.Now()
	// Every change is a new registration event here, newer than any
	// elsewhere so far: a refresh, a move back to this node, an
	// unregistration. Refreshes cost one put per binding lifetime.
	loc := Location{AOR: aor, Node: l.n.id, Name: l.n.cfg.Name, SIP: l.n.SIPAddr(), Updated: now.UnixMilli(), Expires: until}
	l.mu.Lock()
	if len(bs) == 0 {
		if last, known := l.published[aor]; !known || last.Tombstone {
			l.mu.Unlock()
			return // nothing of ours to hide
		}
		loc.Tombstone, loc.Expires = true, now.Add(tombstoneTTL)
	}
	l.published[aor] = loc
	delete(l.cache, aor)
	l.mu.Unlock()
	l.pub.mark(aor)
}

// run publishes, replaces the records of expired registrations by
// tombstones, and republishes live ones.
func (l *locations) run() { l.pub.run(l.sweep, l.republishAll) }

// republishAll puts again the record of every registration still held
// here: DHT peers keep records in memory only, and the DHT never
// republishes them, so a peer that restarted would otherwise have lost them.
// The record keeps its registration time, so a republish never wins over
// a newer registration elsewhere.
func (l *locations) republishAll(now time.Time) {
	l.mu.Lock()
	var live []string
	for aor, loc := range l.published {
		if loc.Expires.After(now) {
			live = append(live, aor)
		}
	}
	l.mu.Unlock()
	l.pub.mark(live...)
}

// sweep turns our records whose registrations all expired into tombstones.
func (l *locations) sweep(now time.Time) {
	l.mu.Lock()
	var expired []string
	for aor, loc := range l.published {
		switch {
		case !loc.Tombstone && !loc.Expires.After(now):
			expired = append(expired, aor)
		case loc.Tombstone && !loc.Expires.After(now):
			delete(l.published, aor) // the tombstone itself has expired
		}
	}
	l.mu.Unlock()
	for _, aor := range expired {
		bs, err := l.n.bindings.Load(aor)
		if err == nil {
			l.Changed(aor, bs)
		}
	}
}

// put signs and puts our current record for aor.
func (l *locations) put(aor string) error {
	l.mu.Lock()
	loc, ok := l.published[aor]
	l.mu.Unlock()
	if !ok {
		return nil // expired tombstone, forgotten meanwhile
	}
	val, err := l.n.signRecordUntil(LocationNamespace, LocationKind, loc.AOR, loc, loc.Expires)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(l.n.ctx, 10*time.Second)
	defer cancel()
	return l.n.dht.PutValue(ctx, RecordKey(LocationNamespace, loc.AOR), val)
}

// Locate finds the node where aor is registered. The newest registration
// wins: this node's own bindings are compared with the record in the DHT
// (through a short-lived cache), since the user may have registered at
// another node since.
func (n *Node) Locate(ctx context.Context, aor string) (Location, error) {
	aor = normalizeAOR(aor)
	var local *Location
	if bs, err := n.bindings.Load(aor); err == nil && len(bs) > 0 {
		loc := Location{AOR: aor, Node: n.id, Name: n.cfg.Name, SIP: n.SIPAddr()}
		for _, b := range bs {
			loc.Expires = maxTime(loc.Expires, b.Expires)
			loc.Updated = max(loc.Updated, b.Updated.UnixMilli())
		}
		local = &loc
	}
	remote, err := n.locateRemote(ctx, aor)
	switch {
	case local == nil:
		return remote, err
	case err != nil || remote.Updated < local.Updated || remote.Node == n.id:
		return *local, nil
	}
	return remote, nil
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// normalizeAOR lower-cases the host part of user@host; the user part of a
// SIP URI is case-sensitive (RFC 3261 §19.1.4).
func normalizeAOR(aor string) string {
	i := strings.LastIndexByte(aor, '@')
	if i < 0 {
		return aor
	}
	return aor[:i+1] + strings.ToLower(aor[i+1:])
}

// locateRemote looks aor up in the DHT through the cache.
func (n *Node) locateRemote(ctx context.Context, aor string) (Location, error) {
	l := n.locs
	now := time.Now()
	l.mu.Lock()
	if c, ok := l.cache[aor]; ok && now.Sub(c.at) < l.cacheTTL {
		l.mu.Unlock()
		return c.loc, c.err
	}
	f := l.inflight[aor]
	if f == nil {
		f = &lookup{done: make(chan struct{})}
		if l.inflight == nil {
			l.inflight = map[string]*lookup{}
		}
		l.inflight[aor] = f
		// The lookup is shared, so it runs under the node's context, not
		// the first asker's: one caller giving up must not fail the others.
		go n.sharedLookup(l, f, aor, now)
	}
	l.mu.Unlock()
	select {
	case <-f.done:
		return f.loc, f.err
	case <-ctx.Done():
		return Location{}, fmt.Errorf("location of %s: %w", aor, ctx.Err())
	}
}

// sharedLookupTimeout bounds a DHT lookup that concurrent askers share.
const sharedLookupTimeout = 5 * time.Second

// sharedLookup runs one DHT lookup for every asker of aor, caches a
// definite answer and wakes the askers.
func (n *Node) sharedLookup(l *locations, f *lookup, aor string, started time.Time) {
	ctx, cancel := context.WithTimeout(n.ctx, sharedLookupTimeout)
	defer cancel()
	f.loc, f.err = n.lookupLocation(ctx, aor)
	l.mu.Lock()
	delete(l.inflight, aor)
	if f.err == nil || errors.Is(f.err, ErrNotRegistered) {
		l.cache[aor] = cachedLoc{loc: f.loc, err: f.err, at: started}
		if len(l.cache) > 100000 {
			clear(l.cache)
		}
	}
	l.mu.Unlock()
	close(f.done)
}

func (n *Node) lookupLocation(ctx context.Context, aor string) (Location, error) {
	key := RecordKey(LocationNamespace, aor)
	val, err := n.dht.GetValue(ctx, key, dht.Quorum(lookupQuorum))
	if errors.Is(err, routing.ErrNotFound) {
		return Location{}, fmt.Errorf("%s: %w", aor, ErrNotRegistered)
	}
	if err != nil {
		return Location{}, fmt.Errorf("location of %s: %w", aor, err)
	}
	env, err := locationValidator(n.sigs).Decode(key, val)
	if err != nil {
		return Location{}, fmt.Errorf("location of %s: %w", aor, err)
	}
	var loc Location
	if err := env.DecodeBody(&loc); err != nil {
		return Location{}, fmt.Errorf("location of %s: %w", aor, err)
	}
	if loc.Tombstone {
		return Location{}, fmt.Errorf("%s: %w", aor, ErrNotRegistered)
	}
	return loc, nil
}
