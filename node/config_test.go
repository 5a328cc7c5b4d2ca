package node

import (
	"crypto/rand"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestDefaultConfigValidates(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
}

func TestParseConfigEmptyGivesDefaults(t *testing.T) {
	for name, doc := range map[string]string{
		"empty":   "",
		"comment": "# nothing set\n",
		"newline": "\n",
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := ParseConfig([]byte(doc))
			if err != nil {
				t.Fatalf("ParseConfig(%q): %v", doc, err)
			}
			if want := DefaultConfig(); !reflect.DeepEqual(cfg, want) {
				t.Fatalf("ParseConfig(%q) =\n%+v\nwant\n%+v", doc, cfg, want)
			}
		})
	}
}

func TestParseConfigOverridesDefaults(t *testing.T) {
	cfg, err := ParseConfig([]byte("name: edge-1\nmembership:\n  heartbeat: 250ms\np2p:\n  mesh: 4\n"))
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	if cfg.Name != "edge-1" || cfg.Membership.Heartbeat != 250*time.Millisecond || cfg.P2P.Mesh != 4 {
		t.Fatalf("overrides not applied: %+v", cfg)
	}
	// Fields not in the document keep their defaults, also inside a
	// section that was partly set.
	def := DefaultConfig()
	if cfg.Membership.DeadAfter != def.Membership.DeadAfter || cfg.SIP != def.SIP ||
		!reflect.DeepEqual(cfg.P2P.Listen, def.P2P.Listen) {
		t.Fatalf("defaults lost: %+v", cfg)
	}
}

// checkFieldErr asserts that err is a configuration error naming field.
func checkFieldErr(t *testing.T, err error, field string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one for field %s", field)
	}
	if !errors.Is(err, ErrConfig) {
		t.Errorf("error %q does not match ErrConfig", err)
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %q (%T) is not a *FieldError", err, err)
	}
	if fe.Field != field {
		t.Errorf("FieldError.Field = %q, want %q (error %q)", fe.Field, field, err)
	}
	if !strings.Contains(err.Error(), field) {
		t.Errorf("error %q does not name field %q", err, field)
	}
}

// testPeerID returns the peer ID of a fresh Ed25519 key.
func testPeerID(t *testing.T) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestValidateRules(t *testing.T) {
	cases := []struct {
		name  string
		field string
		edit  func(c *Config)
	}{
		{"name empty", "name", func(c *Config) { c.Name = "" }},
		{"name blank", "name", func(c *Config) { c.Name = "  \t" }},
		{"data_dir empty", "data_dir", func(c *Config) { c.DataDir = "" }},
		{"identity empty", "identity", func(c *Config) { c.Identity = "" }},
		{"sip no port", "sip", func(c *Config) { c.SIP = "127.0.0.1" }},
		{"sip bad port", "sip", func(c *Config) { c.SIP = "127.0.0.1:sip" }},
		{"sip port too large", "sip", func(c *Config) { c.SIP = "127.0.0.1:65536" }},
		{"sip host name", "sip", func(c *Config) { c.SIP = "pbx.example.net:5060" }},
		{"admin bad host", "admin", func(c *Config) { c.Admin = "[::1:7080" }},
		{"admin bad port", "admin", func(c *Config) { c.Admin = "127.0.0.1:-1" }},
		{"admin port with sign", "admin", func(c *Config) { c.Admin = "127.0.0.1:+80" }},
		{"admin port leading zero", "admin", func(c *Config) { c.Admin = "127.0.0.1:080" }},
		{"admin empty port", "admin", func(c *Config) { c.Admin = "127.0.0.1:" }},
		{"admin non-IP host", "admin", func(c *Config) { c.Admin = "localhost:7080" }},
		{"capacity negative", "capacity", func(c *Config) { c.Capacity = -1 }},
		{"p2p.listen empty", "p2p.listen", func(c *Config) { c.P2P.Listen = nil }},
		{"p2p.listen bad multiaddr", "p2p.listen[0]", func(c *Config) { c.P2P.Listen = []string{"tcp://1.2.3.4:4100"} }},
		{"p2p.listen second bad", "p2p.listen[1]", func(c *Config) {
			c.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/4100", "/ip4/nonsense"}
		}},
		{"p2p.listen udp without quic", "p2p.listen[0]", func(c *Config) { c.P2P.Listen = []string{"/ip4/1.2.3.4/udp/5"} }},
		{"p2p.listen dns", "p2p.listen[0]", func(c *Config) { c.P2P.Listen = []string{"/dns4/example.net/tcp/4100"} }},
		{"p2p.listen tcp with suffix", "p2p.listen[0]", func(c *Config) { c.P2P.Listen = []string{"/ip4/1.2.3.4/tcp/5/ws"} }},
		{"p2p.listen quic with federation key", "p2p.listen[1]", func(c *Config) {
			c.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/4100", "/ip4/127.0.0.1/udp/4100/quic-v1"}
			c.P2P.FederationKey = "federation.key"
		}},
		{"p2p.bootstrap without /p2p/", "p2p.bootstrap[0]", func(c *Config) {
			c.P2P.Bootstrap = []string{"/ip4/127.0.0.1/tcp/4100"}
		}},
		{"p2p.bootstrap garbage", "p2p.bootstrap[0]", func(c *Config) { c.P2P.Bootstrap = []string{"node-a:4100"} }},
		{"p2p.mesh negative", "p2p.mesh", func(c *Config) { c.P2P.Mesh = -1 }},
		{"membership.heartbeat zero", "membership.heartbeat", func(c *Config) { c.Membership.Heartbeat = 0 }},
		{"membership.heartbeat negative", "membership.heartbeat", func(c *Config) { c.Membership.Heartbeat = -time.Second }},
		{"membership.suspect_missed zero", "membership.suspect_missed", func(c *Config) { c.Membership.SuspectMissed = 0 }},
		{"membership.dead_after zero", "membership.dead_after", func(c *Config) { c.Membership.DeadAfter = 0 }},
		{"membership.forget_after below dead_after", "membership.forget_after", func(c *Config) {
			c.Membership.ForgetAfter = c.Membership.DeadAfter - time.Millisecond
		}},
		{"membership.probe_timeout zero", "membership.probe_timeout", func(c *Config) { c.Membership.ProbeTimeout = 0 }},
		{"dht.record_ttl too short", "dht.record_ttl", func(c *Config) { c.DHT.RecordTTL = 59 * time.Second }},
		{"dht.republish zero", "dht.republish", func(c *Config) { c.DHT.Republish = 0 }},
		{"dht.republish equals ttl", "dht.republish", func(c *Config) { c.DHT.Republish = c.DHT.RecordTTL }},
		{"dht.republish above ttl", "dht.republish", func(c *Config) { c.DHT.Republish = 2 * c.DHT.RecordTTL }},
		{"media.bind not an address", "media.bind", func(c *Config) { c.Media.Bind = "relay.example" }},
		{"media.advertise wildcard", "media.advertise", func(c *Config) { c.Media.Advertise = "0.0.0.0" }},
		{"media.ports malformed", "media.ports", func(c *Config) { c.Media.Ports = "20000" }},
		{"media.ports reversed", "media.ports", func(c *Config) { c.Media.Ports = "30000-20000" }},
		{"media.ports privileged", "media.ports", func(c *Config) { c.Media.Ports = "80-90" }},
		{"media.timeout zero", "media.timeout", func(c *Config) { c.Media.Timeout = 0 }},
		{"media.report_interval zero", "media.report_interval", func(c *Config) { c.Media.ReportInterval = 0 }},
		{"calls.transaction_wait too short", "calls.transaction_wait", func(c *Config) { c.Calls.TransactionWait = 0 }},
		{"calls.overload_backlog negative", "calls.overload_backlog", func(c *Config) { c.Calls.OverloadBacklog = -0.1 }},
		{"calls.overload_backlog full", "calls.overload_backlog", func(c *Config) { c.Calls.OverloadBacklog = 1 }},
		{"calls.overload_backlog NaN", "calls.overload_backlog", func(c *Config) { c.Calls.OverloadBacklog = math.NaN() }},
		{"media.workers negative", "media.workers", func(c *Config) { c.Media.Workers = -1 }},
		{"media.kernel unknown", "media.kernel", func(c *Config) { c.Media.Kernel = "sometimes" }},
		{"log.level unknown", "log.level", func(c *Config) { c.Log.Level = "verbose" }},
		{"log.level empty", "log.level", func(c *Config) { c.Log.Level = "" }},
		{"log.format unknown", "log.format", func(c *Config) { c.Log.Format = "xml" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.edit(&cfg)
			checkFieldErr(t, cfg.Validate(), tc.field)
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	cases := []struct {
		name string
		edit func(c *Config)
	}{
		{"empty hosts", func(c *Config) { c.SIP = ":5060"; c.Admin = ":0" }},
		{"ipv6 hosts", func(c *Config) { c.SIP = "[::]:5060"; c.Admin = "[::1]:7080" }},
		{"capacity zero", func(c *Config) { c.Capacity = 0 }},
		{"port bounds", func(c *Config) { c.SIP = "0.0.0.0:65535"; c.Admin = "127.0.0.1:0" }},
		{"ipv6 tcp and quic", func(c *Config) {
			c.P2P.Listen = []string{"/ip6/::1/tcp/4100", "/ip4/127.0.0.1/udp/4100/quic-v1"}
		}},
		{"federation key over tcp", func(c *Config) { c.P2P.FederationKey = "federation.key" }},
		{"bootstrap with peer ID", func(c *Config) {
			c.P2P.Bootstrap = []string{"/ip4/10.0.0.1/tcp/4100/p2p/" + testPeerID(t).String()}
		}},
		{"forget_after equals dead_after", func(c *Config) { c.Membership.ForgetAfter = c.Membership.DeadAfter }},
		{"record_ttl minimum", func(c *Config) { c.DHT.RecordTTL = time.Minute; c.DHT.Republish = 30 * time.Second }},
		{"json debug log", func(c *Config) { c.Log = LogConfig{Level: "debug", Format: "json"} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.edit(&cfg)
			if err := cfg.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
}

func TestParseConfigValidates(t *testing.T) {
	_, err := ParseConfig([]byte("log:\n  level: loud\n"))
	checkFieldErr(t, err, "log.level")
}

func TestParseConfigUnknownField(t *testing.T) {
	for _, tc := range []struct{ doc, field string }{
		{"nmae: a\n", "nmae"},
		{"membership:\n  hearbeat: 1s\n", "hearbeat"},
	} {
		_, err := ParseConfig([]byte(tc.doc))
		if err == nil {
			t.Fatalf("ParseConfig(%q): no error for an unknown field", tc.doc)
		}
		if !errors.Is(err, ErrConfig) {
			t.Errorf("ParseConfig(%q) = %q, not ErrConfig", tc.doc, err)
		}
		if !strings.Contains(err.Error(), tc.field) {
			t.Errorf("ParseConfig(%q) = %q, does not mention %q", tc.doc, err, tc.field)
		}
	}
}

func TestParseConfigBadYAML(t *testing.T) {
	for _, doc := range []string{
		"name: [unterminated\n",
		"membership:\n  heartbeat: soon\n",
		"capacity: many\n",
	} {
		if _, err := ParseConfig([]byte(doc)); !errors.Is(err, ErrConfig) {
			t.Errorf("ParseConfig(%q) = %v, want ErrConfig", doc, err)
		}
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Name = "edge-7"
	cfg.P2P.Listen = append(cfg.P2P.Listen, "/ip4/0.0.0.0/udp/4100/quic-v1")
	cfg.P2P.Bootstrap = []string{"/ip4/10.0.0.1/tcp/4100/p2p/" + testPeerID(t).String()}
	cfg.P2P.Mesh = 8
	cfg.Store.SmallMemory = true
	cfg.Log.Format = "json"
	cfg.Membership.ProbeTimeout = 1500 * time.Millisecond

	data, err := cfg.Marshal()
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	text := string(data)
	for _, want := range []string{"heartbeat: 1s\n", "probe_timeout: 1.5s\n", "record_ttl: 1h0m0s\n", "name: edge-7\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("marshalled YAML lacks %q:\n%s", want, text)
		}
	}
	back, err := ParseConfig(data)
	if err != nil {
		t.Fatalf("ParseConfig(Marshal()): %v\n%s", err, text)
	}
	if !reflect.DeepEqual(back, cfg) {
		t.Fatalf("round trip changed the config:\n got %+v\nwant %+v", back, cfg)
	}
}

func TestLoadConfigResolvesPaths(t *testing.T) {
	dir := t.TempDir()
	abs := filepath.Join(t.TempDir(), "elsewhere", "identity.key")
	path := filepath.Join(dir, "node.yaml")
	doc := "name: a\ndata_dir: var/data\nidentity: " + abs + "\n"
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	if got, want := cfg.Path(cfg.DataDir), filepath.Join(dir, "var", "data"); got != want {
		t.Errorf("Path(data_dir) = %q, want %q", got, want)
	}
	if got := cfg.Path(cfg.Identity); got != abs {
		t.Errorf("Path(identity) = %q, want it unchanged: %q", got, abs)
	}
	if got := cfg.Path(""); got != "" {
		t.Errorf(`Path("") = %q, want ""`, got)
	}
}

func TestLoadConfigRelativeFilePath(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "node.yaml"), []byte("name: a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	cfg, err := LoadConfig("node.yaml")
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	// Relative paths resolve to absolute ones, so they survive a later
	// change of working directory.
	got := cfg.Path("data")
	if !filepath.IsAbs(got) {
		t.Fatalf("Path(data) = %q, want an absolute path", got)
	}
	if want := evalParent(t, filepath.Join(dir, "data")); evalParent(t, got) != want {
		t.Errorf("Path(data) = %q, want %q", got, want)
	}
}

// evalParent resolves symbolic links in the parent of p (which must exist),
// keeping the last element, so that temporary directories behind a symlink
// compare equal.
func evalParent(t *testing.T, p string) string {
	t.Helper()
	parent, err := filepath.EvalSymlinks(filepath.Dir(p))
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(parent, filepath.Base(p))
}

func TestPathWithoutDir(t *testing.T) {
	cfg := DefaultConfig()
	if got := cfg.Path("data"); got != "data" {
		t.Errorf("Path without a directory = %q, want it unchanged", got)
	}
	dir := t.TempDir()
	cfg.SetDir(dir)
	if got, want := cfg.Path("data"), filepath.Join(dir, "data"); got != want {
		t.Errorf("Path after SetDir = %q, want %q", got, want)
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope", "node.yaml")
	_, err := LoadConfig(path)
	if err == nil {
		t.Fatal("LoadConfig of a missing file: no error")
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the path %q", err, path)
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %q does not match os.ErrNotExist", err)
	}
}

func TestLoadConfigInvalidNamesPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.yaml")
	if err := os.WriteFile(path, []byte("capacity: -5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadConfig(path)
	checkFieldErr(t, err, "capacity")
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the path %q", err, path)
	}
}

func TestFastTimersValidates(t *testing.T) {
	cfg := DefaultConfig()
	cfg.FastTimers()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate after FastTimers: %v", err)
	}
	if cfg.Membership.Heartbeat >= DefaultConfig().Membership.Heartbeat {
		t.Errorf("FastTimers heartbeat %v is not shorter than the default", cfg.Membership.Heartbeat)
	}
	if err := cfg.Membership.ViewConfig().Validate(); err != nil {
		t.Errorf("ViewConfig of FastTimers: %v", err)
	}
}

func TestViewConfig(t *testing.T) {
	m := DefaultConfig().Membership
	vc := m.ViewConfig()
	if vc.Interval != m.Heartbeat || vc.SuspectMissed != m.SuspectMissed || vc.DeadAfter != m.DeadAfter || vc.ForgetAfter != m.ForgetAfter {
		t.Fatalf("ViewConfig() = %+v from %+v", vc, m)
	}
}

func TestFieldErrorMessage(t *testing.T) {
	if got, want := (&FieldError{Field: "name", Msg: "required"}).Error(), "config: name: required"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got, want := (&FieldError{Field: "capacity", Value: -1, Msg: "must be >= 0"}).Error(), `config: capacity = "-1": must be >= 0`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestCatalogueSections(t *testing.T) {
	const providers = `
name: A
providers:
  - id: cheapnet
    access_points: ["sip:127.0.0.1:5071"]
    services: [{type: transit, segments: [{location: "*"}]}]
`
	cfg, err := ParseConfig([]byte(providers + `
slas:
  - id: A-cheapnet
    kind: node-provider
    between: [A, cheapnet]
    price: {per_minute: "0.0040", currency: EUR}
  - id: cheapnet-x
    kind: provider-provider
    between: [cheapnet, cheapnet2]
policy:
  classes:
    gold: {min_mos: 4.2}
`))
	if err == nil {
		t.Fatal("an interconnect naming an unknown provider was accepted")
	}
	checkFieldErr(t, err, "slas[1].between[1]")

	cfg, err = ParseConfig([]byte(providers + `
slas:
  - id: A-cheapnet
    kind: node-provider
    between: [A, cheapnet]
    price: {per_minute: "0.0040", currency: EUR}
policy:
  classes:
    gold: {min_mos: 4.2}
`))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := cfg.Catalogue()
	if err != nil {
		t.Fatal(err)
	}
	if len(cat.SLAs) != 1 || cat.SLAs[0].Price.PerMinute.String() != "0.0040" || cat.Policy.Classes["gold"].MinMOS != 4.2 ||
		cat.Policy.Classes["bronze"].MinMOS != 3.1 {
		t.Fatalf("catalogue from node.yaml: %+v", cat)
	}

	for _, tc := range []struct{ doc, field string }{
		{providers + "slas:\n  - id: B-cheapnet\n    kind: node-provider\n    between: [B, cheapnet]\n", "slas[0].between"},
		{providers + "slas:\n  - id: A-cheapnet\n    kind: node-provider\n    between: [A, cheapnet]\n    guarantees: {max_delay: 40}\n", "slas[0].guarantees.max_delay"},
		{providers + "slas:\n  - id: A-cheapnet\n    kind: node-provider\n    between: [A, cheapnet]\n    price: {per_minute: 0.0.4, currency: EUR}\n", "slas[0].price.per_minute"},
		{"name: A\nproviders:\n  - id: p\n    access_points: [\"sip:x:1\"]\n    services: [{type: transit, segments: [{location: \"*\", hours: \"Mon-Fry 08:00-18:00 UTC\"}]}]\n", "providers[0].services[0].segments[0].hours"},
		{"name: A\npolicy:\n  classes:\n    gold: {max_hops: 40}\n", "policy.classes.gold.max_hops"},
		{"name: A\nsla:\n  republish: 2h\n", "sla.republish"},
	} {
		_, err := ParseConfig([]byte(tc.doc))
		checkFieldErr(t, err, tc.field)
	}
}
