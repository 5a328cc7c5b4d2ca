package node

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/callmesh/callmesh/node/b2bua"
	"github.com/callmesh/callmesh/node/sipedge"
)

// CallsConfig sets call handling.
type CallsConfig struct {
	// RingTimeout ends a call nobody answers (480 to the caller).
	RingTimeout time.Duration `yaml:"ring_timeout"`
	// DrainGrace is how long calls may continue once the node stops
	// taking new ones; then they are ended.
	DrainGrace time.Duration `yaml:"drain_grace"`
	// Trusted lists source addresses or networks (CIDR) whose requests are
	// not challenged: trunks, load generators.
	Trusted []string `yaml:"trusted,omitempty"`
	// FirstHopTimeout bounds the wait for any answer from a path's first
	// provider; past it the call fails over to the next path.
	FirstHopTimeout time.Duration `yaml:"first_hop_timeout"`
	// TokenTTL is how long a session token a master signs admits the
	// call's INVITE at the egress node.
	TokenTTL time.Duration `yaml:"token_ttl"`
	// TransactionWait is how long a completed SIP transaction is kept to
	// absorb retransmissions: RFC 3261's Timers D and J and RFC 6026's L
	// and M, 64·T1 = 32 s over UDP. Kamailio keeps its transactions 5 s
	// (tm's wt_timer); a shorter wait keeps less in memory under load.
	// Only `callmesh run` applies it: the SIP stack's timers are global to
	// the process.
	TransactionWait time.Duration `yaml:"transaction_wait"`
	// OverloadBacklog is overload control over UDP: the share of the SIP
	// socket's receive buffer, filled by datagrams the node has not read
	// yet, from which it sheds new INVITEs (drops them unanswered, for
	// their senders to retransmit) and keeps serving calls in progress. It
	// sheds a share of them that grows with the backlog, every one halfway
	// from there to a full buffer. 0 turns it off. The default, 0.3, leaves
	// the buffer's other 70 % for the bursts that come while the node is not
	// running: from 0.6, near its limit the node still overflowed the
	// buffer in one step of two, losing messages of calls in progress,
	// which failed (BENCHMARKS.md).
	OverloadBacklog float64 `yaml:"overload_backlog"`
}

// DefaultTransactionWait is RFC 3261's 64·T1 with T1 = 500 ms.
const DefaultTransactionWait = 32 * time.Second

func defaultCallsConfig() CallsConfig {
	return CallsConfig{RingTimeout: 60 * time.Second, DrainGrace: 30 * time.Second,
		FirstHopTimeout: 2 * time.Second, TokenTTL: time.Minute, TransactionWait: DefaultTransactionWait,
		OverloadBacklog: 0.3}
}

// trustedPrefixes parses calls.trusted, naming the bad entry.
func (c *Config) trustedPrefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, s := range c.Calls.Trusted {
		field := fmt.Sprintf("calls.trusted[%d]", i)
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fieldErr(field, s, "not an address or CIDR network")
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fieldErr(field, s, "not an address or CIDR network")
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func (c *Config) checkCalls() error {
	switch {
	case c.Calls.RingTimeout <= 0:
		return fieldErr("calls.ring_timeout", c.Calls.RingTimeout, "must be > 0")
	case c.Calls.DrainGrace < 0:
		return fieldErr("calls.drain_grace", c.Calls.DrainGrace, "must be >= 0")
	case c.Calls.FirstHopTimeout <= 0:
		return fieldErr("calls.first_hop_timeout", c.Calls.FirstHopTimeout, "must be > 0")
	case c.Calls.TokenTTL < time.Second:
		return fieldErr("calls.token_ttl", c.Calls.TokenTTL, "must be at least 1s")
	case c.Calls.TransactionWait < time.Second || c.Calls.TransactionWait > time.Minute:
		return fieldErr("calls.transaction_wait", c.Calls.TransactionWait, "must be from 1s to 1m")
	case !(c.Calls.OverloadBacklog >= 0 && c.Calls.OverloadBacklog < 1): // NaN too
		return fieldErr("calls.overload_backlog", c.Calls.OverloadBacklog, "must be from 0 (off) to below 1")
	}
	if _, err := c.trustedPrefixes(); err != nil {
		return err
	}
	switch c.Media.Anchor {
	case "always", "never":
	default:
		return fieldErr("media.anchor", c.Media.Anchor, "want always or never")
	}
	for class, v := range c.Media.AnchorClasses {
		if v != "always" && v != "never" {
			return fieldErr("media.anchor_classes."+class, v, "want always or never")
		}
	}
	return nil
}

// anchorPolicy says, per caller class, whether media is anchored.
func (c *Config) anchorPolicy() func(class string) bool {
	def := c.Media.Anchor != "never"
	byClass := make(map[string]bool, len(c.Media.AnchorClasses))
	for k, v := range c.Media.AnchorClasses {
		byClass[k] = v != "never"
	}
	return func(class string) bool {
		if v, ok := byClass[class]; ok {
			return v
		}
		return def
	}
}

// startCalls puts the B2BUA behind the SIP edge.
func (n *Node) startCalls() error {
	cfg := b2bua.DefaultConfig(strings.ToLower(n.cfg.Domain))
	cfg.RingTimeout, cfg.DrainGrace = n.cfg.Calls.RingTimeout, n.cfg.Calls.DrainGrace
	cfg.FirstHop = n.cfg.Calls.FirstHopTimeout
	cfg.Anchor = n.cfg.anchorPolicy()
	svc, err := b2bua.New(cfg, n.sip, callDirectory{n}, n.relay, n.log.With("component", "calls"))
	if err != nil {
		return err
	}
	n.calls = svc
	registerCallMetrics(n.reg, svc)
	n.sip.SetCalls(svc)
	fed, err := newFederation(n)
	if err != nil {
		return err
	}
	n.fed = fed
	svc.SetFederation(fed)
	n.sip.SetSessions(fed)
	n.relay.SetDeadFunc(svc.MediaDead)
	return nil
}

// Calls is the node's call handling.
func (n *Node) Calls() *b2bua.Service { return n.calls }

// Drain stops taking calls (503 with Retry-After) and waits for current
// calls to end, ending them after calls.drain_grace.
func (n *Node) Drain(ctx context.Context) {
	if n.calls != nil {
		n.calls.Drain(ctx)
	}
}

// callDirectory tells calls about users.
type callDirectory struct{ n *Node }

func (d callDirectory) Contacts(aor string) ([]sipedge.Binding, error) {
	return d.n.bindings.Load(aor)
}

func (d callDirectory) Exists(ctx context.Context, name string) (bool, error) {
	_, found, err := d.n.Account(ctx, name)
	return found, err
}
