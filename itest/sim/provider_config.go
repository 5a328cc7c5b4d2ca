package sim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/callmesh/callmesh/media"
	"github.com/callmesh/callmesh/media/impair"
)

// ErrProviderConfig marks every error about a provider's configuration, so
// that the command can exit with its usage code.
var ErrProviderConfig = errors.New("provider config")

// Provider roles.
const (
	// RoleProxy honours a preloaded Route set (RFC 3261 §16.4): it may sit
	// anywhere in a path.
	RoleProxy = "proxy"
	// RoleTrunk routes on the Request-URI: it is the last provider of a path.
	RoleTrunk = "trunk"
)

// ProviderConfig describes one emulated provider. The same struct is read
// from YAML by `callmesh provider --config` and filled in by tests. All
// durations are whole milliseconds (the _ms keys).
type ProviderConfig struct {
	// ID names the provider in logs and in the admin status ("provider"
	// when empty).
	ID string `yaml:"id" json:"id"`
	// Mode is RoleProxy or RoleTrunk (proxy when empty).
	Mode string `yaml:"mode" json:"mode"`
	// SIP is the host:port listened on with UDP and TCP; port 0 picks one.
	// The host must be an IP address; 0.0.0.0 needs Advertise.
	SIP string `yaml:"sip" json:"sip"`
	// Advertise is the IP address written in Via, Record-Route and Contact
	// (default: the SIP host).
	Advertise string `yaml:"advertise" json:"advertise,omitempty"`
	// Admin is the host:port of the admin HTTP endpoint; empty: none.
	Admin string `yaml:"admin" json:"admin,omitempty"`
	// MaxCalls bounds the calls in progress; past it, new INVITEs get 503
	// with Retry-After. 0: no limit.
	MaxCalls int `yaml:"max_calls" json:"max_calls"`
	// RetryAfter is the Retry-After, in seconds, of every 503 the provider
	// itself sends (capacity, error_rate); 0 means 30.
	RetryAfter int `yaml:"retry_after" json:"retry_after"`
	// Terminate lists number prefixes ("+49") this provider answers as the
	// far end.
	Terminate []string `yaml:"terminate" json:"terminate,omitempty"`
	// RingMs is how long the far end rings (180) before it answers (200).
	RingMs int `yaml:"ring_ms" json:"ring_ms"`
	// Auth makes a trunk challenge INVITEs with 407 (digest MD5).
	Auth *ProviderAuth `yaml:"auth" json:"auth,omitempty"`
	// Media anchors RTP at the provider's relay; nil: signalling only, SDP
	// passes untouched.
	Media *ProviderMedia `yaml:"media" json:"media,omitempty"`
	// Impair is the impairment applied to the anchored media from the start
	// (needs Media).
	Impair *ImpairSpec `yaml:"impair" json:"impair,omitempty"`
	// Failure is the failure mode the provider starts in.
	Failure Failure `yaml:"failure" json:"failure"`
	// Seed makes the error_rate draws reproducible; 0 draws a seed.
	Seed uint64 `yaml:"seed" json:"seed,omitempty"`
}

// ProviderAuth are the credentials a trunk expects (RFC 3261 §22.3).
type ProviderAuth struct {
	Realm    string `yaml:"realm" json:"realm"`
	Username string `yaml:"username" json:"username"`
	Password string `yaml:"password" json:"-"`
}

// ProviderMedia is where the provider's relay anchors RTP.
type ProviderMedia struct {
	// Bind is the IP address the relay's sockets bind to.
	Bind string `yaml:"bind" json:"bind"`
	// Advertise is the address written into SDP (default: Bind).
	Advertise string `yaml:"advertise" json:"advertise,omitempty"`
	// Ports is the inclusive UDP port range, "5000-5999"; a call takes four
	// ports (two RTP/RTCP pairs).
	Ports string `yaml:"ports" json:"ports"`
}

// ImpairSpec is the impairment of the media a provider relays, in the
// units an operator writes: applied to each direction of every anchored
// call, each direction drawing from its own model with the same settings
// (so a seed gives every call the same loss pattern).
type ImpairSpec struct {
	// LossPct is the long-run RTP loss rate in percent, [0, 100).
	LossPct float64 `yaml:"loss_pct" json:"loss_pct"`
	// Burst is the mean length of a run of lost packets (Gilbert–Elliott);
	// 0 or 1: random loss.
	Burst float64 `yaml:"burst" json:"burst"`
	// DelayMs is the added one-way delay.
	DelayMs int `yaml:"delay_ms" json:"delay_ms"`
	// JitterMs is the mean extra per-packet delay, uniform in [0, 2·JitterMs].
	JitterMs int `yaml:"jitter_ms" json:"jitter_ms"`
	// Reorder lets jittered packets overtake each other.
	Reorder bool `yaml:"reorder" json:"reorder,omitempty"`
	// Seed makes the loss and jitter draws reproducible.
	Seed int64 `yaml:"seed" json:"seed"`
}

// Failure is the switchable failure behaviour of a provider. The zero value
// is a healthy provider.
type Failure struct {
	// Down drops every request silently: nothing is answered, so the
	// caller's transaction times out (RFC 3261 §17.1.1.2 Timer B).
	Down bool `yaml:"down" json:"down"`
	// Slow answers each new INVITE with 100 Trying at once and forwards (or
	// answers) it only after SlowDelayMs; with SlowDelayMs 0 it never does:
	// the INVITE is held until the caller cancels it (487) or Timer C
	// (3 minutes, RFC 3261 §16.6 step 11) answers it 408.
	Slow        bool `yaml:"slow" json:"slow"`
	SlowDelayMs int  `yaml:"slow_delay_ms" json:"slow_delay_ms"`
	// ErrorRate is the fraction of new INVITEs answered with ErrorCode
	// (default 503, which carries Retry-After) instead of being served.
	ErrorRate float64 `yaml:"error_rate" json:"error_rate"`
	ErrorCode int     `yaml:"error_code" json:"error_code"`
}

// Mode is what can be switched at run time through SetMode or the admin
// endpoint: the failure behaviour and the media impairment.
type Mode struct {
	Failure
	// Degraded switches Impair on; off, media is relayed unimpaired.
	Degraded bool `json:"degraded"`
	// Impair is the impairment applied while Degraded (needs media).
	Impair ImpairSpec `json:"impair"`
}

// configErr builds an error naming the bad field.
func configErr(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrProviderConfig, field, fmt.Sprintf(format, args...))
}

// DefaultProviderConfig is a healthy proxy on loopback with port 0 for SIP
// and the admin endpoint, signalling only.
func DefaultProviderConfig(id string) ProviderConfig {
	return ProviderConfig{ID: id, Mode: RoleProxy, SIP: "127.0.0.1:0", Admin: "127.0.0.1:0"}
}

// LoadProviderConfig reads a provider's YAML configuration file.
func LoadProviderConfig(path string) (ProviderConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return ProviderConfig{}, fmt.Errorf("%w: %v", ErrProviderConfig, err)
	}
	cfg, err := ParseProviderConfig(data)
	if err != nil {
		return ProviderConfig{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// ParseProviderConfig decodes YAML and validates it. Unknown keys are
// errors that name them.
func ParseProviderConfig(data []byte) (ProviderConfig, error) {
	cfg := ProviderConfig{Mode: RoleProxy}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return ProviderConfig{}, fmt.Errorf("%w: %s", ErrProviderConfig, yamlMessage(err))
	}
	if err := cfg.Validate(); err != nil {
		return ProviderConfig{}, err
	}
	return cfg, nil
}

// yamlMessage rewords the decoder's "field x not found in type y" as
// `unknown field "x"`, keeping the line it names.
func yamlMessage(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n")
	var out []string
	for _, l := range strings.Split(msg, "\n") {
		l = strings.TrimSpace(l)
		if i := strings.Index(l, "field "); i >= 0 {
			if j := strings.Index(l, " not found in type"); j > i {
				l = l[:i] + fmt.Sprintf("unknown field %q", l[i+len("field "):j])
			}
		}
		if l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "; ")
}

// Validate names the first bad field.
func (c ProviderConfig) Validate() error {
	switch c.Mode {
	case "", RoleProxy, RoleTrunk:
	default:
		return configErr("mode", "%q is neither %s nor %s", c.Mode, RoleProxy, RoleTrunk)
	}
	host, _, err := splitHostPort(c.SIP)
	if err != nil {
		return configErr("sip", "%v", err)
	}
	if c.Advertise != "" {
		a, err := netip.ParseAddr(c.Advertise)
		if err != nil || a.IsUnspecified() {
			return configErr("advertise", "%q is not a specific IP address", c.Advertise)
		}
	} else if host.IsUnspecified() {
		return configErr("advertise", "required when sip listens on %s", host)
	}
	if c.Admin != "" {
		if _, _, err := splitHostPort(c.Admin); err != nil {
			return configErr("admin", "%v", err)
		}
	}
	switch {
	case c.MaxCalls < 0:
		return configErr("max_calls", "must not be negative")
	case c.RetryAfter < 0:
		return configErr("retry_after", "must not be negative")
	case c.RingMs < 0:
		return configErr("ring_ms", "must not be negative")
	}
	for i, t := range c.Terminate {
		if !isNumber(t) {
			return configErr(fmt.Sprintf("terminate[%d]", i), "%q is not a number prefix (+ and digits)", t)
		}
	}
	if a := c.Auth; a != nil {
		switch {
		case c.Mode != RoleTrunk:
			return configErr("auth", "only a trunk challenges callers (mode: trunk)")
		case a.Realm == "":
			return configErr("auth.realm", "required")
		case a.Username == "":
			return configErr("auth.username", "required")
		case a.Password == "":
			return configErr("auth.password", "required")
		}
	}
	if c.Media != nil {
		if _, err := c.Media.relayConfig(); err != nil {
			return err
		}
	}
	if c.Impair != nil {
		if c.Media == nil {
			return configErr("impair", "needs media: a signalling-only provider relays no RTP")
		}
		if err := c.Impair.Validate(); err != nil {
			return err
		}
	}
	return c.Failure.Validate("failure.")
}

// Validate names the first bad field, with prefix before its key.
func (f Failure) Validate(prefix string) error {
	switch {
	case f.SlowDelayMs < 0:
		return configErr(prefix+"slow_delay_ms", "must not be negative")
	case !(f.ErrorRate >= 0 && f.ErrorRate <= 1): // also NaN
		return configErr(prefix+"error_rate", "must be in [0, 1]")
	case f.ErrorCode != 0 && (f.ErrorCode < 500 || f.ErrorCode > 599):
		return configErr(prefix+"error_code", "%d is not a 5xx status", f.ErrorCode)
	}
	return nil
}

// code is the status the error_rate answers with.
func (f Failure) code() int {
	if f.ErrorCode == 0 {
		return 503
	}
	return f.ErrorCode
}

// Zero reports whether the spec impairs nothing.
func (s ImpairSpec) Zero() bool { return s.Config().Zero() }

// Config is the spec as media/impair takes it.
func (s ImpairSpec) Config() impair.Config {
	return impair.Config{
		Delay:     time.Duration(s.DelayMs) * time.Millisecond,
		Jitter:    time.Duration(s.JitterMs) * time.Millisecond,
		Reorder:   s.Reorder,
		LossPct:   s.LossPct,
		MeanBurst: s.Burst,
		Seed:      s.Seed,
	}
}

// Validate names the first bad field under impair.
func (s ImpairSpec) Validate() error {
	if s.DelayMs < 0 {
		return configErr("impair.delay_ms", "must not be negative")
	}
	if s.JitterMs < 0 {
		return configErr("impair.jitter_ms", "must not be negative")
	}
	err := s.Config().Validate()
	var ce *impair.ConfigError
	if errors.As(err, &ce) {
		field := map[string]string{"delay": "delay_ms", "jitter": "jitter_ms", "mean_burst": "burst"}[ce.Field]
		if field == "" {
			field = ce.Field
		}
		return configErr("impair."+field, "%s", ce.Msg)
	}
	if err != nil {
		return configErr("impair", "%v", err)
	}
	return nil
}

// Validate checks a mode before it is switched to.
func (m Mode) Validate(hasMedia bool) error {
	if err := m.Failure.Validate(""); err != nil {
		return err
	}
	if err := m.Impair.Validate(); err != nil {
		return err
	}
	if m.Degraded && !m.Impair.Zero() && !hasMedia {
		return configErr("impair", "needs media: this provider relays no RTP")
	}
	return nil
}

// effectiveImpair is the impairment in force.
func (m Mode) effectiveImpair() impair.Config {
	if !m.Degraded {
		return impair.Config{}
	}
	return m.Impair.Config()
}

// relayConfig turns the media section into the relay's configuration.
func (m ProviderMedia) relayConfig() (media.Config, error) {
	cfg := media.DefaultConfig()
	bind, err := netip.ParseAddr(m.Bind)
	if err != nil {
		return cfg, configErr("media.bind", "%q is not an IP address", m.Bind)
	}
	cfg.Bind = bind
	if m.Advertise != "" {
		if cfg.Advertise, err = netip.ParseAddr(m.Advertise); err != nil {
			return cfg, configErr("media.advertise", "%q is not an IP address", m.Advertise)
		}
	}
	lo, hi, ok := strings.Cut(m.Ports, "-")
	if !ok {
		return cfg, configErr("media.ports", "%q is not a range like 5000-5999", m.Ports)
	}
	if cfg.PortMin, err = strconv.Atoi(strings.TrimSpace(lo)); err != nil {
		return cfg, configErr("media.ports", "%q is not a range like 5000-5999", m.Ports)
	}
	if cfg.PortMax, err = strconv.Atoi(strings.TrimSpace(hi)); err != nil {
		return cfg, configErr("media.ports", "%q is not a range like 5000-5999", m.Ports)
	}
	if err := cfg.Validate(); err != nil {
		// media names its own keys (port_min, bind, ...): say which of ours.
		key := "media.ports"
		switch {
		case strings.Contains(err.Error(), "advertise"):
			key = "media.advertise"
		case strings.Contains(err.Error(), "bind"):
			key = "media.bind"
		}
		return cfg, configErr(key, "%v", err)
	}
	return cfg, nil
}

// splitHostPort reads "IP:port" with a literal IP address.
func splitHostPort(s string) (netip.Addr, int, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("%q is not host:port", s)
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("%q: the host must be an IP address", s)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return netip.Addr{}, 0, fmt.Errorf("%q: bad port", s)
	}
	return a, p, nil
}

// isNumber reports a dialled number or prefix: an optional '+' and digits.
func isNumber(s string) bool {
	s = strings.TrimPrefix(s, "+")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
