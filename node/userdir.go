package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/callmesh/callmesh/gossip"
	"github.com/callmesh/callmesh/node/accounts"
	"github.com/callmesh/callmesh/node/sipedge"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/routing"
)

// An account lives on its home node. Every node finds the home of a user
// through a DHT record /callmesh-user/NAME signed by the home node, and
// fetches the account (HA1s and rights, never the balance) from it over the
// AccountProtocol stream, caching it briefly.

// UserNamespace holds the home node of every account.
const UserNamespace = "callmesh-user"

// UserKind is the envelope kind of a user-home record.
const UserKind = "user-home"

// AccountProtocol is the stream on which a home node serves its accounts to
// federation members.
const AccountProtocol protocol.ID = "/callmesh/account/1.0.0"

const (
	accountProtoVersion = 1
	maxAccountMessage   = 64 << 10
	accountFetchTimeout = 3 * time.Second
	// unknownUserCache is how long "no such user" is remembered, bounding
	// DHT lookups under a brute-force attack on names.
	unknownUserCache = 5 * time.Second
	// staleAccountFactor: when the home node cannot be reached, an account
	// cached up to this many cache periods ago is still used.
	staleAccountFactor = 10
)

// UserHome says which node holds an account.
type UserHome struct {
	Name    string  `json:"name"`
	Home    peer.ID `json:"home"`
	Created int64   `json:"created"` // Unix milliseconds: the first claim of a name wins
	Deleted bool    `json:"deleted,omitempty"`
}

// ErrHomeUnreachable is returned when an account's home node cannot be
// asked and nothing usable is cached.
var ErrHomeUnreachable = errors.New("account home node unreachable")

func userValidator(sigs *sigCache) RecordValidator {
	return RecordValidator{
		Sigs:       sigs,
		Namespace:  UserNamespace,
		Kind:       UserKind,
		Authorized: func(string, peer.ID) bool { return true }, // checked against the body
		Body: func(subject string, env *gossip.Envelope) error {
			var h UserHome
			if err := env.DecodeBody(&h); err != nil {
				return err
			}
			if h.Name != subject {
				return fmt.Errorf("user home for %q filed under %q", h.Name, subject)
			}
			if h.Home != env.Issuer {
				return fmt.Errorf("%w: user home names %s but %s signed it", gossip.ErrIssuer, h.Home, env.Issuer)
			}
			return nil
		},
		Newer: func(a, b *gossip.Envelope) bool {
			if a.Issuer == b.Issuer {
				return a.Seq.Newer(b.Seq)
			}
			var ha, hb UserHome
			if a.DecodeBody(&ha) != nil || b.DecodeBody(&hb) != nil {
				return false
			}
			if ha.Deleted != hb.Deleted {
				return !ha.Deleted // a live claim beats another node's deletion
			}
			if ha.Created != hb.Created {
				return ha.Created < hb.Created // the first claim of a name wins
			}
			return a.Issuer < b.Issuer
		},
	}
}

// remoteAccount is the part of an account a home node serves.
type remoteAccount struct {
	V       int              `json:"v"`
	Found   bool             `json:"found"`
	Account accounts.Account `json:"account"`
}

type cachedAccount struct {
	acct  accounts.Account
	found bool
	at    time.Time
}

// userDir publishes the homes of local accounts and fetches remote ones.
type userDir struct {
	n *Node

	pub *publisher

	mu    sync.Mutex
	cache map[string]cachedAccount
}

func newUserDir(n *Node) *userDir {
	d := &userDir{n: n, cache: map[string]cachedAccount{}}
	d.pub = newPublisher(n, "user home", d.put)
	n.accounts.OnChange(func(name string, _ bool) { d.pub.mark(name) })
	n.host.SetStreamHandler(AccountProtocol, d.serve)
	return d
}

// run publishes the home of every account homed here, and republishes
// them every dht.republish.
func (d *userDir) run() { d.pub.run(nil, d.republishAll) }

func (d *userDir) republishAll(time.Time) {
	list, err := d.n.accounts.List()
	if err != nil {
		d.n.log.Warn("accounts not republished", "err", err)
		return
	}
	names := make([]string, len(list))
	for i, a := range list {
		names[i] = a.Name
	}
	d.pub.mark(names...)
}

// put signs and puts the home record of name: a deletion if the account
// is gone.
func (d *userDir) put(name string) error {
	h := UserHome{Name: name, Home: d.n.id}
	a, err := d.n.accounts.Get(name)
	switch {
	case errors.Is(err, accounts.ErrNotFound):
		h.Deleted, h.Created = true, time.Now().UnixMilli()
	case err != nil:
		return err
	default:
		h.Created = a.Created.UnixMilli()
	}
	val, err := d.n.signRecord(UserNamespace, UserKind, name, h, d.n.cfg.DHT.RecordTTL)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(d.n.ctx, 10*time.Second)
	defer cancel()
	return d.n.dht.PutValue(ctx, RecordKey(UserNamespace, name), val)
}

// serve answers a member's request for an account homed here. Only live
// members of the federation are served: the answer carries HA1s.
func (d *userDir) serve(s network.Stream) {
	defer s.Close()
	remote := s.Conn().RemotePeer()
	if m, ok := d.n.members.member(remote); !ok || m.State != gossip.Live {
		d.n.log.Warn("account request from a peer that is not a live member refused", "peer", remote)
		_ = s.Reset()
		return
	}
	_ = s.SetDeadline(time.Now().Add(accountFetchTimeout))
	var req struct {
		V    int    `json:"v"`
		Name string `json:"name"`
	}
	if err := json.NewDecoder(io.LimitReader(s, maxAccountMessage)).Decode(&req); err != nil || req.V != accountProtoVersion {
		_ = s.Reset()
		return
	}
	resp := remoteAccount{V: accountProtoVersion}
	if a, err := d.n.accounts.Get(req.Name); err == nil {
		a.Balance = 0 // balances stay on the home node
		resp.Found, resp.Account = true, a
	}
	_ = json.NewEncoder(s).Encode(resp)
}

// Account returns a user's account: from this node when it is the home,
// else from the home node (found through the DHT), cached for
// auth.account_cache. found is false for a user with no account anywhere.
// On a context made by sipedge.NoWait, an account that would have to be
// fetched is sipedge.ErrWouldWait instead.
func (n *Node) Account(ctx context.Context, name string) (acct accounts.Account, found bool, err error) {
	a, err := n.accounts.Get(name)
	if err == nil {
		return a, true, nil
	}
	if !errors.Is(err, accounts.ErrNotFound) && !errors.Is(err, accounts.ErrInvalid) {
		return accounts.Account{}, false, err
	}
	if errors.Is(err, accounts.ErrInvalid) {
		return accounts.Account{}, false, nil // not a valid name: no such user anywhere
	}
	d := n.users
	now := time.Now()
	d.mu.Lock()
	c, cached := d.cache[name]
	d.mu.Unlock()
	ttl := n.cfg.Auth.AccountCache
	if cached && (c.found && now.Sub(c.at) < ttl || !c.found && now.Sub(c.at) < unknownUserCache) {
		return c.acct, c.found, nil
	}
	if !sipedge.MayWait(ctx) {
		// On a SIP reader (sipedge.NoWait): the edge asks again where the
		// account may be fetched from its home node.
		return accounts.Account{}, false, sipedge.ErrWouldWait
	}
	acct, found, err = d.fetch(ctx, name)
	if err != nil {
		if cached && c.found && now.Sub(c.at) < staleAccountFactor*ttl {
			n.log.Warn("account home unreachable; using the cached account", "user", name, "age", now.Sub(c.at), "err", err)
			return c.acct, true, nil
		}
		return accounts.Account{}, false, fmt.Errorf("%w: %v", ErrHomeUnreachable, err)
	}
	d.mu.Lock()
	d.cache[name] = cachedAccount{acct: acct, found: found, at: now}
	if len(d.cache) > 100000 {
		clear(d.cache)
	}
	d.mu.Unlock()
	return acct, found, nil
}

// fetch finds name's home in the DHT and asks it for the account.
func (d *userDir) fetch(ctx context.Context, name string) (accounts.Account, bool, error) {
	n := d.n
	key := RecordKey(UserNamespace, name)
	lctx, cancel := context.WithTimeout(ctx, accountFetchTimeout)
	defer cancel()
	val, err := n.dht.GetValue(lctx, key, dht.Quorum(lookupQuorum))
	if errors.Is(err, routing.ErrNotFound) {
		return accounts.Account{}, false, nil
	}
	if err != nil {
		return accounts.Account{}, false, fmt.Errorf("user home of %q: %w", name, err)
	}
	env, err := userValidator(n.sigs).Decode(key, val)
	if err != nil {
		return accounts.Account{}, false, err
	}
	var h UserHome
	if err := env.DecodeBody(&h); err != nil {
		return accounts.Account{}, false, err
	}
	if h.Deleted || h.Home == n.id {
		return accounts.Account{}, false, nil
	}
	s, err := n.host.NewStream(lctx, h.Home, AccountProtocol)
	if err != nil {
		return accounts.Account{}, false, fmt.Errorf("account %q from %s: %w", name, h.Home, err)
	}
	defer s.Close()
	if dl, ok := lctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	if err := json.NewEncoder(s).Encode(map[string]any{"v": accountProtoVersion, "name": name}); err != nil {
		_ = s.Reset()
		return accounts.Account{}, false, fmt.Errorf("account %q from %s: %w", name, h.Home, err)
	}
	_ = s.CloseWrite()
	var resp remoteAccount
	if err := json.NewDecoder(io.LimitReader(s, maxAccountMessage)).Decode(&resp); err != nil {
		_ = s.Reset()
		return accounts.Account{}, false, fmt.Errorf("account %q from %s: %w", name, h.Home, err)
	}
	if resp.V != accountProtoVersion {
		return accounts.Account{}, false, fmt.Errorf("account %q from %s: protocol version %d", name, h.Home, resp.V)
	}
	if !resp.Found {
		return accounts.Account{}, false, nil
	}
	if resp.Account.Name != name || resp.Account.Home != h.Home.String() {
		return accounts.Account{}, false, fmt.Errorf("account %q from %s: answer for %q homed at %s", name, h.Home, resp.Account.Name, resp.Account.Home)
	}
	return resp.Account, true, nil
}
