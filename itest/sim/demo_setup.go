package sim

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/callmesh/callmesh/node"
	"github.com/callmesh/callmesh/node/accounts"
	"github.com/callmesh/callmesh/node/digest"
)

// The demo's providers. Each node holds a contract with each of the three
// transit providers; node0 vouches for the interconnects. The transit
// providers sell to some call classes only (their segments' quality), and
// the classes' policy is the default one:
//
//	cheapnet   proxy  0.0020/min a side  120 ms, 1 % loss    bronze
//	midnet     proxy  0.0060/min a side   60 ms, 0.3 % loss  silver, bronze
//	clearline  proxy  0.0150/min a side   clean              every class
//	termco     trunk  terminates +49 behind digest; interconnects with
//	                  the three, and cheapnet with clearline
const (
	demoCheap  = "cheapnet"
	demoMid    = "midnet"
	demoClean  = "clearline"
	demoTrunk  = "termco"
	demoNumber = "+493012345678"
	demoPrefix = "+49"
)

// demoProvider is one emulated provider and its terms.
type demoProvider struct {
	id, about string
	trunk     bool
	classes   []string // the classes it carries; none: every class
	ports     string
	impair    *ImpairSpec // its normal media impairment; nil: clean
	// The node–provider SLAs (transit providers): price per minute and
	// guarantees, one way.
	price           string
	delayMs, lossPc float64

	p *Provider
}

// demoDegraded is what cheapnet's media turns into midway.
var demoDegraded = ImpairSpec{LossPct: 20, Burst: 2, DelayMs: 450, JitterMs: 15, Seed: 23}

func demoProviders() []*demoProvider {
	return []*demoProvider{
		{id: demoCheap, about: "cheap and lossy (120 ms, 1% loss), bronze calls", classes: []string{"bronze"}, ports: "9000-9199",
			impair: &ImpairSpec{LossPct: 1, DelayMs: 120, JitterMs: 4, Seed: 21}, price: "0.0020", delayMs: 80, lossPc: 2},
		{id: demoMid, about: "mid-price (60 ms, 0.3% loss), silver and bronze calls", classes: []string{"silver", "bronze"}, ports: "9200-9399",
			impair: &ImpairSpec{LossPct: 0.3, DelayMs: 60, JitterMs: 2, Seed: 22}, price: "0.0060", delayMs: 45, lossPc: 0.5},
		{id: demoClean, about: "expensive and clean, every class", ports: "9400-9599", price: "0.0150", delayMs: 15, lossPc: 0.1},
		{id: demoTrunk, about: "terminates " + demoPrefix + " behind digest", trunk: true, ports: "9600-9799"},
	}
}

// demoInterconnects are the provider–provider SLAs: id, price, delay, loss.
var demoInterconnects = []struct {
	a, b, price     string
	delayMs, lossPc float64
}{
	{demoCheap, demoClean, "0.0030", 10, 0.1},
	{demoCheap, demoTrunk, "0.0050", 10, 0.2},
	{demoMid, demoTrunk, "0.0070", 10, 0.2},
	{demoClean, demoTrunk, "0.0090", 5, 0.1},
}

// demoUser is a simulated user (or a guest account) and its agent.
type demoUser struct {
	name     string
	node     int
	class    accounts.Class
	allow    []string
	guest    bool
	password string

	ua *UA
}

func demoUsers(guests bool) []*demoUser {
	p2p := []string{accounts.RightP2P}
	withNumbers := []string{accounts.RightP2P, "external:" + demoPrefix}
	us := []*demoUser{
		{name: "ada", node: 0, class: accounts.Gold, allow: p2p},
		{name: "bob", node: 0, class: accounts.Bronze, allow: p2p},
		{name: "cyd", node: 0, class: accounts.Bronze, allow: p2p},
		{name: "nat", node: 0, class: accounts.Bronze, allow: withNumbers},
		{name: "sue", node: 0, class: accounts.Silver, allow: p2p},
		{name: "sam", node: 1, class: accounts.Silver, allow: p2p},
		{name: "dan", node: 1, class: accounts.Bronze, allow: p2p},
		{name: "lou", node: 1, class: accounts.Silver, allow: p2p},
		{name: "liz", node: 1, class: accounts.Silver, allow: p2p},
		{name: "gil", node: 2, class: accounts.Gold, allow: p2p},
		{name: "bea", node: 2, class: accounts.Bronze, allow: p2p},
	}
	if guests {
		for i := range 3 {
			us = append(us, &demoUser{name: fmt.Sprintf("guest%d", i), node: i, class: accounts.Gold, allow: withNumbers, guest: true})
		}
	}
	return us
}

// demoLane is a caller and a callee that talk every round.
type demoLane struct {
	caller, callee string // user names; callee may be a number
	kind           string // p2p, local, number
}

// Kinds of call.
const (
	KindP2P    = "p2p"
	KindLocal  = "local"
	KindNumber = "number"
)

var demoLanes = []demoLane{
	{"ada", "gil", KindP2P},         // gold: node0 → node2
	{"sam", "sue", KindP2P},         // silver: node1 → node0
	{"bob", "bea", KindP2P},         // bronze: node0 → node2
	{"cyd", "dan", KindP2P},         // bronze: node0 → node1
	{"lou", "liz", KindLocal},       // within node1
	{"nat", demoNumber, KindNumber}, // bronze: node0 → a number
}

// StartDemo starts the providers and the federation, creates the accounts,
// registers the simulated users and waits until every node knows every
// SLA and every caller's node finds its callee. The demo's calls start with
// Run.
func StartDemo(ctx context.Context, cfg DemoConfig) (_ *Demo, err error) {
	if cfg.Hold <= 0 {
		cfg.Hold = 4 * time.Second
	}
	if cfg.Gap <= 0 {
		cfg.Gap = 2*demoMeasureInterval + time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Demo{cfg: cfg, log: log, providers: demoProviders(), users: demoUsers(cfg.Guests)}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	trunkPassword := randomPassword()
	for _, p := range d.providers {
		pc := DefaultProviderConfig(p.id)
		pc.Media = &ProviderMedia{Bind: "127.0.0.1", Ports: p.ports}
		pc.Impair = p.impair
		pc.RetryAfter = 5
		if p.trunk {
			pc.Mode, pc.Terminate = RoleTrunk, []string{demoPrefix}
			pc.Auth = &ProviderAuth{Realm: p.id, Username: "callmesh", Password: trunkPassword}
		}
		if p.p, err = StartProvider(pc, log); err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
	}
	pwFile := filepath.Join(cfg.Dir, demoTrunk+".password")
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	if err := os.WriteFile(pwFile, []byte(trunkPassword+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	var cfgErr error
	d.fed, err = New(cfg.Dir, Options{Logger: log, Configure: func(i int, nc *node.Config) {
		demoNodeConfig(nc, cfg.Duration)
		if err := nc.SetCatalogueYAML([]byte(d.catalogue(i, pwFile))); err != nil && cfgErr == nil {
			cfgErr = err
		}
	}})
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	for range 3 {
		if _, err := d.fed.Add(); err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
		if cfgErr != nil {
			return nil, fmt.Errorf("demo: catalogue: %w", cfgErr)
		}
	}
	if err := d.ready(ctx); err != nil {
		return nil, err
	}
	d.dir = d.directory()
	return d, nil
}

// demoMeasureInterval is the nodes' measurement interval.
const demoMeasureInterval = time.Second

// demoNodeConfig shortens the timers that let the nodes react within a
// short demo: the first hop's answer, the relays' own RTCP (so that each
// call's round trip is known), the measurement interval, the compliance
// window and the samples it needs; a provider found in breach is
// quarantined at once, for longer than the calls go on.
func demoNodeConfig(nc *node.Config, calls time.Duration) {
	nc.Calls.FirstHopTimeout = time.Second
	nc.Media.ReportInterval = time.Second
	nc.SLA.MeasureInterval = demoMeasureInterval
	nc.SLA.ComplianceWindow = 10 * time.Second
	nc.SLA.MinSamples = 4
	nc.SLA.QuarantineAfter = 1
	nc.SLA.Probation = max(nc.SLA.Probation, 2*calls)
}

// catalogue is node i's providers:, slas: and policy: sections.
func (d *Demo) catalogue(i int, pwFile string) string {
	name := fmt.Sprintf("node%d", i)
	var b strings.Builder
	b.WriteString("providers:\n")
	for _, p := range d.providers {
		fmt.Fprintf(&b, "  - id: %s\n    name: %q\n", p.id, p.about)
		if p.trunk {
			fmt.Fprintf(&b, "    access_points: [{uri: %q, mode: trunk, username: callmesh, password_file: %q}]\n", p.p.AccessPoint(), pwFile)
			fmt.Fprintf(&b, "    services: [{type: termination, segments: [{location: %q}]}]\n", demoPrefix)
			continue
		}
		var segs []string
		for _, c := range p.classes {
			segs = append(segs, fmt.Sprintf(`{location: "*", quality: %s}`, c))
		}
		if len(segs) == 0 {
			segs = []string{`{location: "*"}`}
		}
		fmt.Fprintf(&b, "    access_points: [%q]\n    services: [{type: transit, segments: [%s]}]\n", p.p.AccessPoint(), strings.Join(segs, ", "))
	}
	b.WriteString("slas:\n")
	sla := func(id, kind, a, z, price string, delay, loss float64) {
		fmt.Fprintf(&b, "  - {id: %s, kind: %s, between: [%s, %s], price: {per_minute: %q, currency: EUR}, guarantees: {max_delay_ms: %g, max_loss_pct: %g}}\n",
			id, kind, a, z, price, delay, loss)
	}
	for _, p := range d.providers {
		if !p.trunk {
			sla(name+"-"+p.id, "node-provider", name, p.id, p.price, p.delayMs, p.lossPc)
		}
	}
	if i == 0 {
		for _, ic := range demoInterconnects {
			sla(ic.a+"-"+ic.b, "provider-provider", ic.a, ic.b, ic.price, ic.delayMs, ic.lossPc)
		}
	}
	return b.String()
}

// slaIDs are the SLAs every node must know before the calls.
func (d *Demo) slaIDs() []string {
	var ids []string
	for i := range 3 {
		for _, p := range d.providers {
			if !p.trunk {
				ids = append(ids, fmt.Sprintf("node%d-%s", i, p.id))
			}
		}
	}
	for _, ic := range demoInterconnects {
		ids = append(ids, ic.a+"-"+ic.b)
	}
	return ids
}

// ready waits for the federation, creates the accounts, registers the
// users and waits until they can be found.
func (d *Demo) ready(ctx context.Context) error {
	steps := []struct {
		what string
		cond func() bool
	}{
		{"the nodes to see each other live", d.fed.Converged},
		{"every node to know every SLA", d.knowSLAs},
		{"the nodes' DHT to fill", func() bool {
			for _, n := range d.fed.Running() {
				if n.DHT().RoutingTable().Size() < 2 {
					return false
				}
			}
			return true
		}},
	}
	for _, s := range steps {
		if err := waitFor(ctx, 30*time.Second, s.cond); err != nil {
			return fmt.Errorf("demo: waiting for %s: %w", s.what, err)
		}
	}
	for _, u := range d.users {
		if err := d.addUser(ctx, u); err != nil {
			return err
		}
	}
	// Every caller's node must find its callee where it registered.
	for _, l := range demoLanes {
		if l.kind == KindNumber {
			continue
		}
		from, to := d.user(l.caller), d.user(l.callee)
		n, want := d.fed.Node(from.node), d.fed.Node(to.node)
		aor := to.name + "@" + n.Config().Domain
		located := func() bool {
			lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			loc, err := n.Locate(lctx, aor)
			return err == nil && loc.Node == want.ID()
		}
		if err := waitFor(ctx, 30*time.Second, located); err != nil {
			return fmt.Errorf("demo: %s cannot locate %s: %w", n.Name(), aor, err)
		}
	}
	return nil
}

// knowSLAs reports whether every running node's catalogue has every SLA.
func (d *Demo) knowSLAs() bool {
	want := d.slaIDs()
	for _, n := range d.fed.Running() {
		var have []string
		for _, e := range n.SLAs() {
			have = append(have, e.ID)
		}
		for _, id := range want {
			if !slices.Contains(have, id) {
				return false
			}
		}
	}
	return true
}

// addUser creates the account at its home node and, for a simulated
// user, starts and registers its user agent.
func (d *Demo) addUser(ctx context.Context, u *demoUser) error {
	n := d.fed.Node(u.node)
	domain := n.Config().Domain
	u.password = randomPassword()
	_, err := n.Accounts().Add(accounts.Account{Name: u.name, Class: u.class, Allow: u.allow, MaxCalls: 4,
		Home: n.ID().String(), Realm: domain, Credentials: digest.NewCredentials(u.name, domain, u.password)})
	if err != nil {
		return fmt.Errorf("demo: account %s: %w", u.name, err)
	}
	if u.guest {
		return nil
	}
	// Callees get a tone of their own, so that the two directions differ.
	tone := 400
	for _, l := range demoLanes {
		if l.callee == u.name {
			tone = 600
		}
	}
	u.ua, err = StartUA(UAConfig{User: u.name, Password: u.password, Domain: domain, Registrar: n.SIPAddr(),
		Expires: time.Hour, ToneHz: tone}, d.log)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := u.ua.Register(rctx); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return nil
}

// user returns a demo user by name.
func (d *Demo) user(name string) *demoUser {
	for _, u := range d.users {
		if u.name == name {
			return u
		}
	}
	return nil
}

// provider returns a demo provider by id.
func (d *Demo) provider(id string) *demoProvider {
	for _, p := range d.providers {
		if p.id == id {
			return p
		}
	}
	return nil
}

func (d *Demo) directory() DemoDirectory {
	var dir DemoDirectory
	for i := range d.fed.Len() {
		n := d.fed.Node(i)
		dir.Nodes = append(dir.Nodes, DemoNode{Name: n.Name(), ID: n.ID().String(), SIP: n.SIPAddr(), Admin: n.AdminURL()})
	}
	for _, u := range d.users {
		n := d.fed.Node(u.node)
		dir.Users = append(dir.Users, DemoUser{AOR: u.name + "@" + n.Config().Domain, Password: u.password,
			Node: n.Name(), Class: string(u.class), Guest: u.guest})
	}
	for _, p := range d.providers {
		dir.Providers = append(dir.Providers, DemoProvider{ID: p.id, Role: p.p.Role(), AccessPoint: p.p.AccessPoint(),
			Admin: p.p.AdminURL(), About: p.about})
	}
	return dir
}

// waitFor polls cond until it holds, ctx ends or limit passes.
func waitFor(ctx context.Context, limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// randomPassword is 12 letters and digits.
func randomPassword() string {
	const alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
