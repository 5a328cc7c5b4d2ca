package node

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/callmesh/callmesh/gossip"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"go.yaml.in/yaml/v3"
)

// Config is a node's configuration, read from node.yaml. Relative paths are
// resolved against the directory of the file they were read from.
type Config struct {
	Name     string `yaml:"name"`
	DataDir  string `yaml:"data_dir"` // Badger store and runtime files
	Identity string `yaml:"identity"` // Ed25519 private key, mode 0600
	SIP      string `yaml:"sip"`      // SIP listen address host:port (UDP and TCP)
	// Domain is the federation's SIP domain: addresses of record are
	// user@domain, and it is the digest realm. Every node of a federation
	// has the same one.
	Domain   string `yaml:"domain"`
	Admin    string `yaml:"admin"`    // admin HTTP listen address host:port
	Capacity int    `yaml:"capacity"` // concurrent calls this node accepts

	Registrar RegistrarConfig `yaml:"registrar"`
	Auth      AuthConfig      `yaml:"auth"`

	P2P        P2PConfig        `yaml:"p2p"`
	Membership MembershipConfig `yaml:"membership"`
	DHT        DHTConfig        `yaml:"dht"`
	Store      StoreConfig      `yaml:"store"`
	Media      MediaConfig      `yaml:"media"`
	Calls      CallsConfig      `yaml:"calls"`
	SLA        SLAConfig        `yaml:"sla"`
	Log        LogConfig        `yaml:"log"`

	// Sections are providers:, slas: and policy: in the catalogue format
	// of package sla; see Catalogue.
	Sections catalogueSections `yaml:",inline"`

	// dir is where the file was read from; relative paths resolve against it.
	dir string
}

// RegistrarConfig bounds registrations (RFC 3261 §10.2.1.1, §10.3).
type RegistrarConfig struct {
	MinExpires     time.Duration `yaml:"min_expires"`     // shorter requests get 423 with Min-Expires
	MaxExpires     time.Duration `yaml:"max_expires"`     // longer requests are cut to this
	DefaultExpires time.Duration `yaml:"default_expires"` // when the request names none
	MaxContacts    int           `yaml:"max_contacts"`    // bindings per address of record
}

// AuthConfig sets digest authentication and abuse control.
type AuthConfig struct {
	// Algorithms offered in challenges, in order. MD5 first by default:
	// widely deployed clients (SIPp 3.6, baresip 1.0) abort on or ignore a
	// SHA-256 challenge that comes first.
	Algorithms []string `yaml:"algorithms"`
	// MD5OnlyAgents lists User-Agent substrings of clients challenged with
	// MD5 alone, because they give up on a 401 that also carries another
	// algorithm (baresip 1.0 does, whatever the order).
	MD5OnlyAgents []string      `yaml:"md5_only_agents"`
	NonceLifetime time.Duration `yaml:"nonce_lifetime"`
	// AccountCache is how long an account fetched from its home node is
	// used without asking again.
	AccountCache time.Duration `yaml:"account_cache"`
	// BlockAfter failed authentications from one source address within
	// BlockWindow block that address for BlockFor (0 disables blocking).
	BlockAfter  int           `yaml:"block_after"`
	BlockWindow time.Duration `yaml:"block_window"`
	BlockFor    time.Duration `yaml:"block_for"`
}

// P2PConfig is the libp2p side of the node.
type P2PConfig struct {
	// Listen lists multiaddrs: /ip4/…/tcp/PORT, and /ip4/…/udp/PORT/quic-v1
	// for QUIC (not allowed with a federation key).
	Listen []string `yaml:"listen"`
	// Bootstrap lists peers to join through, each /ip4/…/tcp/PORT/p2p/PEERID.
	Bootstrap []string `yaml:"bootstrap"`
	// FederationKey is the path of a libp2p pre-shared key file
	// (/key/swarm/psk/1.0.0/): only nodes holding the same key can connect.
	FederationKey string `yaml:"federation_key"`
	// Mesh caps how many federation peers a node keeps connections to;
	// 0 = every live member (a full mesh, right for dozens of nodes).
	Mesh int `yaml:"mesh"`
}

// MembershipConfig sets the heartbeat and failure-detection timers.
type MembershipConfig struct {
	Heartbeat     time.Duration `yaml:"heartbeat"`      // interval between heartbeats
	SuspectMissed int           `yaml:"suspect_missed"` // heartbeats missed before a peer is suspect
	DeadAfter     time.Duration `yaml:"dead_after"`     // a suspect peer is dead after this long
	ForgetAfter   time.Duration `yaml:"forget_after"`   // a dead peer leaves the view after this long
	ProbeTimeout  time.Duration `yaml:"probe_timeout"`  // direct probe of a suspect peer
}

// DHTConfig sets the node's own record in the DHT.
type DHTConfig struct {
	RecordTTL time.Duration `yaml:"record_ttl"` // expiry of the signed node record
	Republish time.Duration `yaml:"republish"`  // how often the node puts it again
}

// StoreConfig tunes Badger.
type StoreConfig struct {
	SmallMemory bool          `yaml:"small_memory"` // small memtables and caches
	GCInterval  time.Duration `yaml:"gc_interval"`  // value-log GC
}

// LogConfig sets logging to standard error.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
	// Pprof serves the Go runtime's profiles under /debug/pprof/ on the
	// admin listener, for finding where a node spends its time.
	Pprof bool `yaml:"pprof"`
}

// Default ports of a node, used by `callmesh init` when flags are not given.
const (
	DefaultSIP   = "0.0.0.0:5060"
	DefaultAdmin = "127.0.0.1:7080"
	DefaultP2P   = "/ip4/0.0.0.0/tcp/4100"
	// DefaultDomain is the SIP domain of a federation that names none.
	DefaultDomain = "callmesh.local"
)

// DefaultConfig returns the settings a new node starts from.
func DefaultConfig() Config {
	return Config{
		Name:     "node",
		DataDir:  "data",
		Identity: "identity.key",
		SIP:      DefaultSIP,
		Domain:   DefaultDomain,
		Admin:    DefaultAdmin,
		Capacity: 1000,
		Registrar: RegistrarConfig{
			MinExpires: time.Minute, MaxExpires: time.Hour, DefaultExpires: time.Hour, MaxContacts: 10,
		},
		Auth: AuthConfig{
			Algorithms: []string{"MD5", "SHA-256"}, MD5OnlyAgents: []string{"baresip"}, NonceLifetime: 5 * time.Minute, AccountCache: 30 * time.Second,
			BlockAfter: 20, BlockWindow: time.Minute, BlockFor: 5 * time.Minute,
		},
		P2P: P2PConfig{Listen: []string{DefaultP2P}},
		Membership: MembershipConfig{
			Heartbeat: time.Second, SuspectMissed: 3, DeadAfter: 10 * time.Second,
			ForgetAfter: time.Hour, ProbeTimeout: 2 * time.Second,
		},
		DHT:   DHTConfig{RecordTTL: time.Hour, Republish: 10 * time.Minute},
		Store: StoreConfig{GCInterval: 10 * time.Minute},
		Media: defaultMediaConfig(),
		Calls: defaultCallsConfig(),
		SLA:   defaultSLAConfig(),
		Log:   LogConfig{Level: "info", Format: "text"},
	}
}

// FastTimers shortens the membership timers for tests and the demo:
// heartbeats every 200 ms, death within about two seconds.
func (c *Config) FastTimers() {
	c.Membership = MembershipConfig{
		Heartbeat: 200 * time.Millisecond, SuspectMissed: 3, DeadAfter: 2 * time.Second,
		ForgetAfter: time.Minute, ProbeTimeout: time.Second,
	}
	c.DHT.Republish = time.Minute
}

// LocalConfig returns the config of a node confined to loopback, for tests,
// simulations and the demo: every address on 127.0.0.1 port 0, fast timers,
// a small-memory store, data and identity under dir. The identity file is
// not created.
func LocalConfig(name, dir string) Config {
	cfg := DefaultConfig()
	cfg.Name = name
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Identity = filepath.Join(dir, "identity.key")
	cfg.SIP = "127.0.0.1:0"
	cfg.Admin = "127.0.0.1:0"
	cfg.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Store.SmallMemory = true
	cfg.Media.Bind = "127.0.0.1"
	cfg.Media.Ports = "10000-19999" // apart from the media package tests (21000+) and ephemeral ports
	cfg.FastTimers()
	return cfg
}

// FieldError is a configuration error tied to one field.
type FieldError struct {
	Field string // path such as p2p.listen[0]
	Value any
	Msg   string
}

func (e *FieldError) Error() string {
	if e.Value == nil {
		return fmt.Sprintf("config: %s: %s", e.Field, e.Msg)
	}
	return fmt.Sprintf("config: %s = %q: %s", e.Field, fmt.Sprint(e.Value), e.Msg)
}

// ErrConfig marks every configuration error, so callers can tell bad input
// (exit code 2) from a failure to run.
var ErrConfig = errors.New("invalid configuration")

func (e *FieldError) Unwrap() error { return ErrConfig }

func fieldErr(field string, value any, format string, args ...any) error {
	return &FieldError{Field: field, Value: value, Msg: fmt.Sprintf(format, args...)}
}

// Validate checks every field and returns the first problem, naming it.
func (c *Config) Validate() error {
	if strings.TrimSpace(c.Name) == "" {
		return fieldErr("name", nil, "required")
	}
	if c.DataDir == "" {
		return fieldErr("data_dir", nil, "required")
	}
	if c.Identity == "" {
		return fieldErr("identity", nil, "required")
	}
	if err := checkHostPort("sip", c.SIP); err != nil {
		return err
	}
	if err := checkHostPort("admin", c.Admin); err != nil {
		return err
	}
	if err := checkDomain(c.Domain); err != nil {
		return err
	}
	if err := c.checkSIPEdge(); err != nil {
		return err
	}
	if c.Capacity < 0 {
		return fieldErr("capacity", c.Capacity, "must be >= 0")
	}
	if len(c.P2P.Listen) == 0 {
		return fieldErr("p2p.listen", nil, "at least one address required")
	}
	for i, s := range c.P2P.Listen {
		field := fmt.Sprintf("p2p.listen[%d]", i)
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return fieldErr(field, s, "not a multiaddr: %v", err)
		}
		quic := isQUIC(a)
		if !quic && !isTCP(a) {
			return fieldErr(field, s, "want /ip4|ip6/…/tcp/PORT or /ip4|ip6/…/udp/PORT/quic-v1")
		}
		if quic && c.P2P.FederationKey != "" {
			return fieldErr(field, s, "QUIC cannot carry a federation key (libp2p private networks are TCP only); remove the address or the key")
		}
	}
	for i, s := range c.P2P.Bootstrap {
		if _, err := peer.AddrInfoFromString(s); err != nil {
			return fieldErr(fmt.Sprintf("p2p.bootstrap[%d]", i), s, "want a multiaddr ending in /p2p/PEERID: %v", err)
		}
	}
	if c.P2P.Mesh < 0 {
		return fieldErr("p2p.mesh", c.P2P.Mesh, "must be >= 0")
	}
	m := c.Membership
	switch {
	case m.Heartbeat <= 0:
		return fieldErr("membership.heartbeat", m.Heartbeat, "must be > 0")
	case m.SuspectMissed < 1 || m.SuspectMissed > 1000:
		return fieldErr("membership.suspect_missed", m.SuspectMissed, "must be 1..1000")
	case m.DeadAfter <= 0:
		return fieldErr("membership.dead_after", m.DeadAfter, "must be > 0")
	case m.ForgetAfter < m.DeadAfter:
		return fieldErr("membership.forget_after", m.ForgetAfter, "must be >= membership.dead_after (%s)", m.DeadAfter)
	case m.ProbeTimeout <= 0:
		return fieldErr("membership.probe_timeout", m.ProbeTimeout, "must be > 0")
	case c.DHT.RecordTTL < time.Minute:
		return fieldErr("dht.record_ttl", c.DHT.RecordTTL, "must be >= 1m")
	case c.DHT.Republish <= 0 || c.DHT.Republish >= c.DHT.RecordTTL:
		return fieldErr("dht.republish", c.DHT.Republish, "must be > 0 and shorter than dht.record_ttl (%s)", c.DHT.RecordTTL)
	}
	if err := c.checkMedia(); err != nil {
		return err
	}
	if err := c.checkSLA(); err != nil {
		return err
	}
	if err := c.checkCalls(); err != nil {
		return err
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fieldErr("log.level", c.Log.Level, "want debug, info, warn or error")
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return fieldErr("log.format", c.Log.Format, "want text or json")
	}
	return nil
}

func checkDomain(d string) error {
	if d == "" {
		return fieldErr("domain", nil, "required")
	}
	if net.ParseIP(d) != nil {
		return nil
	}
	if len(d) > 253 {
		return fieldErr("domain", d, "longer than 253 characters")
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fieldErr("domain", d, "not a host name")
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return fieldErr("domain", d, "not a host name")
			}
		}
	}
	return nil
}

func (c *Config) checkSIPEdge() error {
	r, a := c.Registrar, c.Auth
	switch {
	case r.MinExpires < time.Second:
		return fieldErr("registrar.min_expires", r.MinExpires, "must be >= 1s")
	case r.MaxExpires < r.MinExpires:
		return fieldErr("registrar.max_expires", r.MaxExpires, "must be >= registrar.min_expires (%s)", r.MinExpires)
	case r.DefaultExpires < r.MinExpires || r.DefaultExpires > r.MaxExpires:
		return fieldErr("registrar.default_expires", r.DefaultExpires, "must lie between registrar.min_expires and registrar.max_expires")
	case r.MaxContacts < 1:
		return fieldErr("registrar.max_contacts", r.MaxContacts, "must be >= 1")
	case len(a.Algorithms) == 0:
		return fieldErr("auth.algorithms", nil, "at least one of MD5, SHA-256")
	case a.NonceLifetime < time.Second:
		return fieldErr("auth.nonce_lifetime", a.NonceLifetime, "must be >= 1s")
	case a.AccountCache < 0:
		return fieldErr("auth.account_cache", a.AccountCache, "must be >= 0")
	case a.BlockAfter < 0:
		return fieldErr("auth.block_after", a.BlockAfter, "must be >= 0 (0 disables blocking)")
	case a.BlockAfter > 0 && (a.BlockWindow <= 0 || a.BlockFor <= 0):
		return fieldErr("auth.block_window", a.BlockWindow, "auth.block_window and auth.block_for must be > 0 when auth.block_after is set")
	}
	seen := map[string]bool{}
	for i, alg := range a.Algorithms {
		switch alg {
		case "MD5", "SHA-256":
		default:
			return fieldErr(fmt.Sprintf("auth.algorithms[%d]", i), alg, "want MD5 or SHA-256")
		}
		if seen[alg] {
			return fieldErr(fmt.Sprintf("auth.algorithms[%d]", i), alg, "listed twice")
		}
		seen[alg] = true
	}
	return nil
}

func checkHostPort(field, v string) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return fieldErr(field, v, "want HOST:PORT: %v", err)
	}
	if host != "" && net.ParseIP(host) == nil {
		return fieldErr(field, v, "host must be an IP address")
	}
	var p int
	if _, err := fmt.Sscanf(port, "%d", &p); err != nil || p < 0 || p > 65535 || fmt.Sprint(p) != port {
		return fieldErr(field, v, "port must be 0..65535")
	}
	return nil
}

func isTCP(a ma.Multiaddr) bool {
	ps := a.Protocols()
	return len(ps) == 2 && (ps[0].Code == ma.P_IP4 || ps[0].Code == ma.P_IP6) && ps[1].Code == ma.P_TCP
}

func isQUIC(a ma.Multiaddr) bool {
	ps := a.Protocols()
	return len(ps) == 3 && (ps[0].Code == ma.P_IP4 || ps[0].Code == ma.P_IP6) && ps[1].Code == ma.P_UDP && ps[2].Code == ma.P_QUIC_V1
}

// ViewConfig converts the membership timers for the gossip view.
func (m MembershipConfig) ViewConfig() gossip.ViewConfig {
	return gossip.ViewConfig{Interval: m.Heartbeat, SuspectMissed: m.SuspectMissed, DeadAfter: m.DeadAfter, ForgetAfter: m.ForgetAfter}
}

// Path resolves a path from the configuration against its file's directory.
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) || c.dir == "" {
		return p
	}
	return filepath.Join(c.dir, p)
}

// SetDir sets the directory relative paths resolve against.
func (c *Config) SetDir(dir string) { c.dir = dir }

// LoadConfig reads a YAML file over the defaults and validates it. Unknown
// fields are errors, so a misspelt key is reported rather than ignored.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	abs, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	cfg.dir = abs
	return cfg, nil
}

// ParseConfig decodes YAML over the defaults and validates the result.
func ParseConfig(data []byte) (Config, error) {
	cfg := DefaultConfig()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Marshal encodes the configuration as YAML.
func (c *Config) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("config: encode: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("config: encode: %w", err)
	}
	return buf.Bytes(), nil
}
