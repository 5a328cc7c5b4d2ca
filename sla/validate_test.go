package sla

import (
	"math"
	"testing"
	"time"
)

// baseCatalogue is a small valid catalogue that validation cases break.
const baseCatalogue = `
nodes: [{id: A}, {id: B}]
providers:
  - id: p
    access_points: ["sip:10.0.0.1:5060", {uri: "sip:trunk.p.example", mode: trunk, username: A, password_file: p.pw}]
    services: [{type: transit, segments: [{location: "*", quality: gold}]}, {type: termination, segments: [{location: "+49"}]}]
  - id: q
    access_points: ["sip:q.example"]
    services: [{type: transit, segments: [{}]}]
slas:
  - {id: A-p, kind: node-provider, between: [A, p], price: {per_minute: "0.01", currency: EUR}, guarantees: {max_delay_ms: 40}}
  - {id: q-B, kind: node-provider, between: [q, B], price: {per_minute: "0.02", currency: EUR}}
  - {id: p-q, kind: provider-provider, between: [p, q], voucher: A}
  - {id: A-B, kind: node-node, between: [A, B], markup_per_minute: "0.001", direct: {per_minute: "0.002"}}
  - {id: A-gold, kind: user-access, between: [A, gold], guarantees: {max_delay_ms: 20}}
measurements: [{sla: A-p, delay_ms: 10, loss_pct: 1, samples: 5}, {path: [A-p, p-q, q-B], delay_ms: 50, loss_pct: 2}]
calls: [{sla: A-p, active: 3}]
`

func base(t *testing.T) *Catalogue {
	t.Helper()
	cat, err := ParseCatalogue([]byte(baseCatalogue))
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

func TestValidateBase(t *testing.T) {
	if err := base(t).Validate(); err != nil {
		t.Fatal(err)
	}
	// Without nodes listed (a node's own catalogue), any non-provider is a
	// node; without a policy, any class.
	cat := base(t)
	cat.Nodes, cat.Policy = nil, Policy{}
	cat.SLAs[4].Between[1] = "anything"
	if err := cat.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateErrors(t *testing.T) {
	ts := func(s string) time.Time { v, _ := time.Parse(time.RFC3339, s); return v }
	for _, tc := range []struct {
		name   string
		mutate func(c *Catalogue)
		field  string
		msg    string
	}{
		{"node id empty", func(c *Catalogue) { c.Nodes[1].ID = "" }, "nodes[1].id", "required"},
		{"node id twice", func(c *Catalogue) { c.Nodes[1].ID = "A" }, "nodes[1].id", "same as nodes[0]"},
		{"provider id empty", func(c *Catalogue) { c.Providers[0].ID = "" }, "providers[0].id", "required"},
		{"provider id spaces", func(c *Catalogue) { c.Providers[0].ID = "cheap net" }, "providers[0].id", "letters, digits"},
		{"provider id long", func(c *Catalogue) { c.Providers[0].ID = string(make([]byte, 129)) }, "providers[0].id", "longer than 128"},
		{"provider id twice", func(c *Catalogue) { c.Providers[1].ID = "p" }, "providers[1].id", "same as providers[0]"},
		{"provider is a node", func(c *Catalogue) { c.Providers[1].ID = "B" }, "providers[1].id", "also a node's id"},
		{"no access point", func(c *Catalogue) { c.Providers[1].AccessPoints = nil }, "providers[1].access_points", "at least one"},
		{"uri scheme", func(c *Catalogue) { c.Providers[0].AccessPoints[0].URI = "http://10.0.0.1" }, "providers[0].access_points[0].uri", "want a sip: or sips: URI"},
		{"uri no host", func(c *Catalogue) { c.Providers[0].AccessPoints[0].URI = "sip:" }, "providers[0].access_points[0].uri", "no host"},
		{"uri port", func(c *Catalogue) { c.Providers[0].AccessPoints[0].URI = "sip:10.0.0.1:70000" }, "providers[0].access_points[0].uri", "outside 1..65535"},
		{"uri port text", func(c *Catalogue) { c.Providers[0].AccessPoints[0].URI = "sip:10.0.0.1:sip" }, "providers[0].access_points[0].uri", "not a number"},
		{"uri host", func(c *Catalogue) { c.Providers[0].AccessPoints[0].URI = "sip:bad_host" }, "providers[0].access_points[0].uri", "not a host name"},
		{"uri space", func(c *Catalogue) { c.Providers[0].AccessPoints[0].URI = "sip:a b" }, "providers[0].access_points[0].uri", "white space"},
		{"uri ipv6", func(c *Catalogue) { c.Providers[0].AccessPoints[0].URI = "sip:[10.0.0.1]:5060" }, "providers[0].access_points[0].uri", "not an IPv6 address"},
		{"uri twice", func(c *Catalogue) { c.Providers[0].AccessPoints[1].URI = "sip:10.0.0.1:5060" }, "providers[0].access_points[1].uri", "same as access_points[0]"},
		{"mode", func(c *Catalogue) { c.Providers[0].AccessPoints[0].Mode = "trunc" }, "providers[0].access_points[0].mode", "want proxy or trunk"},
		{"proxy password", func(c *Catalogue) { c.Providers[0].AccessPoints[0].PasswordFile = "x.pw" }, "providers[0].access_points[0].password_file", "only a trunk"},
		{"password without user", func(c *Catalogue) { c.Providers[0].AccessPoints[1].Username = "" }, "providers[0].access_points[1].username", "required with password_file"},
		{"no service", func(c *Catalogue) { c.Providers[1].Services = nil }, "providers[1].services", "at least one"},
		{"service type", func(c *Catalogue) { c.Providers[0].Services[1].Type = "transport" }, "providers[0].services[1].type", "want transit, termination or conference"},
		{"no segment", func(c *Catalogue) { c.Providers[0].Services[1].Segments = nil }, "providers[0].services[1].segments", "at least one"},
		{"location", func(c *Catalogue) { c.Providers[0].Services[1].Segments[0].Location = "49" }, "providers[0].services[1].segments[0].location", `want "*" or a number prefix`},
		{"location long", func(c *Catalogue) { c.Providers[0].Services[1].Segments[0].Location = "+12345678901234567" }, "providers[0].services[1].segments[0].location", "number prefix"},
		{"quality", func(c *Catalogue) { c.Providers[0].Services[0].Segments[0].Quality = "glod" }, "providers[0].services[0].segments[0].quality", "not a class of the policy"},
		{"window no day", func(c *Catalogue) { c.Providers[0].Services[0].Segments[0].Hours = Hours{{Start: 0, End: 60}} }, "providers[0].services[0].segments[0].hours", "no day"},
		{"window empty", func(c *Catalogue) {
			c.Providers[0].Services[0].Segments[0].Hours = Hours{{Days: [7]bool{true}, Start: 60, End: 60}}
		}, "providers[0].services[0].segments[0].hours", "start equals its end"},
		{"window end", func(c *Catalogue) {
			c.Providers[0].Services[0].Segments[0].Hours = Hours{{Days: [7]bool{true}, Start: 60, End: 1441}}
		}, "providers[0].services[0].segments[0].hours", "outside 1..1440"},
		{"sla id empty", func(c *Catalogue) { c.SLAs[2].ID = "" }, "slas[2].id", "required"},
		{"sla id twice", func(c *Catalogue) { c.SLAs[2].ID = "A-p" }, "slas[2].id", "same as slas[0]"},
		{"kind", func(c *Catalogue) { c.SLAs[0].Kind = "node-prov" }, "slas[0].kind", "want node-provider, provider-provider, node-node or user-access"},
		{"party empty", func(c *Catalogue) { c.SLAs[0].Between[1] = "" }, "slas[0].between[1]", "required"},
		{"same parties", func(c *Catalogue) { c.SLAs[3].Between[1] = "A" }, "slas[3].between", `both "A"`},
		{"np no provider", func(c *Catalogue) { c.SLAs[0].Between[1] = "B" }, "slas[0].between", `neither "A" nor "B" is a provider`},
		{"np two providers", func(c *Catalogue) { c.SLAs[0].Between[0] = "q" }, "slas[0].between", "both providers"},
		{"np unknown node", func(c *Catalogue) { c.SLAs[0].Between[0] = "C" }, "slas[0].between[0]", "not a node of the catalogue"},
		{"pp with node", func(c *Catalogue) { c.SLAs[2].Between[1] = "B" }, "slas[2].between[1]", "not a provider of the catalogue"},
		{"pp voucher provider", func(c *Catalogue) { c.SLAs[2].Voucher = "p" }, "slas[2].voucher", "a party cannot vouch"},
		{"pp voucher other provider", func(c *Catalogue) {
			r := *c.Providers[1].Clone()
			r.ID = "r"
			c.Providers = append(c.Providers, r)
			c.SLAs[2].Voucher = "r"
		}, "slas[2].voucher", "a provider; the voucher is a node"},
		{"nn with provider", func(c *Catalogue) { c.SLAs[3].Between[1] = "q" }, "slas[3].between[1]", "a provider, where a node-node SLA wants a node"},
		{"ua unknown class", func(c *Catalogue) { c.SLAs[4].Between[1] = "platinum" }, "slas[4].between[1]", "not a class of the policy (bronze, gold, silver)"},
		{"ua class is a node", func(c *Catalogue) { c.SLAs[4].Between[1] = "B" }, "slas[4].between[1]", "a node, where a user-access SLA wants a class"},
		{"ua class is a provider", func(c *Catalogue) { c.SLAs[4].Between[1] = "p" }, "slas[4].between[1]", "a provider, where a user-access SLA wants a class"},
		{"ua node is a provider", func(c *Catalogue) { c.SLAs[4].Between[0] = "p" }, "slas[4].between[0]", "a provider"},
		{"negative price", func(c *Catalogue) { c.SLAs[0].Price.PerMinute = -MustMoney("0.01") }, "slas[0].price.per_minute", `= "-0.0100": must be >= 0`},
		{"negative setup", func(c *Catalogue) { c.SLAs[0].Price.Setup = -1 }, "slas[0].price.setup", "must be >= 0"},
		{"currency format", func(c *Catalogue) { c.SLAs[0].Price.Currency = "eur" }, "slas[0].price.currency", "three-letter"},
		{"currency missing", func(c *Catalogue) { c.SLAs[0].Price.Currency = "" }, "slas[0].price.currency", "required when the SLA charges"},
		{"currency other", func(c *Catalogue) { c.SLAs[1].Price.Currency = "USD" }, "slas[1].price.currency", `= "USD": the catalogue's currency is EUR (first set by slas[0])`},
		{"increment partial", func(c *Catalogue) { c.SLAs[0].Price.Increment = Increment{60, 0} }, "slas[0].price.increment", "1 to 86400"},
		{"delay negative", func(c *Catalogue) { c.SLAs[0].Guarantees.MaxDelayMs = -1 }, "slas[0].guarantees.max_delay_ms", "must be >= 0"},
		{"delay NaN", func(c *Catalogue) { c.SLAs[0].Guarantees.MaxDelayMs = math.NaN() }, "slas[0].guarantees.max_delay_ms", "must be >= 0"},
		{"loss", func(c *Catalogue) { c.SLAs[0].Guarantees.MaxLossPct = 100.5 }, "slas[0].guarantees.max_loss_pct", "0 to 100"},
		{"jitter", func(c *Catalogue) { c.SLAs[0].Guarantees.MaxJitterMs = -3 }, "slas[0].guarantees.max_jitter_ms", "must be >= 0"},
		{"mos high", func(c *Catalogue) { c.SLAs[0].Guarantees.MinMOS = 5 }, "slas[0].guarantees.min_mos", "1 to 4.5"},
		{"mos low", func(c *Catalogue) { c.SLAs[0].Guarantees.MinMOS = 0.5 }, "slas[0].guarantees.min_mos", "1 to 4.5"},
		{"asr", func(c *Catalogue) { c.SLAs[0].Guarantees.MinASRPct = 120 }, "slas[0].guarantees.min_asr_pct", "0 to 100"},
		{"capacity calls", func(c *Catalogue) { c.SLAs[0].Capacity.MaxCalls = -1 }, "slas[0].capacity.max_calls", "must be >= 0"},
		{"capacity cps", func(c *Catalogue) { c.SLAs[0].Capacity.MaxCPS = -1 }, "slas[0].capacity.max_cps", "must be >= 0"},
		{"valid order", func(c *Catalogue) {
			c.SLAs[0].Valid = Validity{From: ts("2027-01-01T00:00:00Z"), Until: ts("2026-01-01T00:00:00Z")}
		}, "slas[0].valid.until", `= "2026-01-01T00:00:00Z": must be after valid.from (2027-01-01T00:00:00Z)`},
		{"valid empty", func(c *Catalogue) {
			c.SLAs[0].Valid = Validity{From: ts("2027-01-01T00:00:00Z"), Until: ts("2027-01-01T00:00:00Z")}
		}, "slas[0].valid.until", "must be after valid.from"},
		{"sla segment", func(c *Catalogue) { c.SLAs[0].Segments = []Segment{{Location: "*"}, {Location: "0049"}} }, "slas[0].segments[1].location", "number prefix"},
		{"markup on np", func(c *Catalogue) { c.SLAs[0].MarkupPerMinute = 1 }, "slas[0].markup_per_minute", "only a node-node SLA"},
		{"markup negative", func(c *Catalogue) { c.SLAs[3].MarkupPerMinute = -1 }, "slas[3].markup_per_minute", "must be >= 0"},
		{"direct on np", func(c *Catalogue) { c.SLAs[0].Direct = &Direct{} }, "slas[0].direct", "only a node-node SLA"},
		{"direct price", func(c *Catalogue) { c.SLAs[3].Direct.PerMinute = -1 }, "slas[3].direct.per_minute", "must be >= 0"},
		{"direct loss", func(c *Catalogue) { c.SLAs[3].Direct.MaxLossPct = 101 }, "slas[3].direct.max_loss_pct", "0 to 100"},
		{"direct delay", func(c *Catalogue) { c.SLAs[3].Direct.MaxDelayMs = -1 }, "slas[3].direct.max_delay_ms", "must be >= 0"},
		{"voucher on nn", func(c *Catalogue) { c.SLAs[3].Voucher = "A" }, "slas[3].voucher", "only a provider-provider SLA"},
		{"measurement neither", func(c *Catalogue) { c.Measurements[0].SLA = "" }, "measurements[0]", "name an SLA (sla) or a path"},
		{"measurement both", func(c *Catalogue) { c.Measurements[0].Path = []string{"A-p"} }, "measurements[0].path", "not both"},
		{"measurement sla", func(c *Catalogue) { c.Measurements[0].SLA = "A-x" }, "measurements[0].sla", "no such SLA"},
		{"measurement path", func(c *Catalogue) { c.Measurements[1].Path[2] = "q-C" }, "measurements[1].path[2]", "no such SLA"},
		{"measurement samples", func(c *Catalogue) { c.Measurements[0].Samples = -1 }, "measurements[0].samples", "must be >= 0"},
		{"measurement loss", func(c *Catalogue) { c.Measurements[0].LossPct = 200 }, "measurements[0].loss_pct", "0 to 100"},
		{"measurement delay", func(c *Catalogue) { c.Measurements[1].DelayMs = math.Inf(1) }, "measurements[1].delay_ms", "must be >= 0"},
		{"measurement mos", func(c *Catalogue) { c.Measurements[1].MOS = 4.6 }, "measurements[1].mos", "1 to 4.5"},
		{"calls sla", func(c *Catalogue) { c.Calls[0].SLA = "nope" }, "calls[0].sla", "no such SLA"},
		{"calls active", func(c *Catalogue) { c.Calls[0].Active = -1 }, "calls[0].active", "must be >= 0"},
		{"calls twice", func(c *Catalogue) { c.Calls = append(c.Calls, CallCount{SLA: "A-p"}) }, "calls[1].sla", "already counted by calls[0]"},
		{"policy hops", func(c *Catalogue) { c.Policy.Classes["silver"] = ClassPolicy{MaxHops: 9} }, "policy.classes.silver.max_hops", "must be 0 to 8"},
		{"policy hops negative", func(c *Catalogue) { c.Policy.Classes["silver"] = ClassPolicy{MaxHops: -1} }, "policy.classes.silver.max_hops", "must be 0 to 8"},
		{"policy delay", func(c *Catalogue) { c.Policy.Classes["silver"] = ClassPolicy{MaxDelayMs: -1} }, "policy.classes.silver.max_delay_ms", "must be >= 0"},
		{"policy loss", func(c *Catalogue) { c.Policy.Classes["silver"] = ClassPolicy{MaxLossPct: -1} }, "policy.classes.silver.max_loss_pct", "0 to 100"},
		{"policy mos", func(c *Catalogue) { c.Policy.Classes["silver"] = ClassPolicy{MinMOS: -1} }, "policy.classes.silver.min_mos", "1 to 4.5"},
		{"policy price", func(c *Catalogue) { c.Policy.Classes["silver"] = ClassPolicy{MaxPricePerMinute: -1} }, "policy.classes.silver.max_price_per_minute", "must be >= 0"},
		{"policy name", func(c *Catalogue) { c.Policy.Classes["a b"] = ClassPolicy{} }, "policy.classes", "bad class name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cat := base(t)
			tc.mutate(cat)
			assertFieldErr(t, cat.Validate(), tc.field, tc.msg)
		})
	}
}

func TestProviderValidate(t *testing.T) {
	p := Provider{ID: "p", AccessPoints: []AccessPoint{{URI: "sips:user;x=1@[2001:db8::1]:5061;transport=tls?subject=x", Mode: Trunk, Username: "u"}},
		Services: []Service{{Type: Conference, Segments: []Segment{{Location: "+", Quality: "any-class"}}}}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	p.AccessPoints[0].URI = "SIP:host.example."
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	p.AccessPoints[0].URI = "sip:host.example;=x"
	assertFieldErr(t, p.Validate(), "access_points[0].uri", "empty URI parameter")
	p.AccessPoints[0].URI = "sip:@host"
	assertFieldErr(t, p.Validate(), "access_points[0].uri", "empty user part")
	p.AccessPoints[0].URI = "sip:[2001:db8::1"
	assertFieldErr(t, p.Validate(), "access_points[0].uri", "unclosed")
	p.AccessPoints[0].URI = "sip:[2001:db8::1]5060"
	assertFieldErr(t, p.Validate(), "access_points[0].uri", "want :PORT")
	p.AccessPoints[0].URI = "sip:h:0"
	assertFieldErr(t, p.Validate(), "access_points[0].uri", "outside 1..65535")
	p.AccessPoints[0].URI = "sip:-h.example"
	assertFieldErr(t, p.Validate(), "access_points[0].uri", "not a host name")
}

func TestSLAValidate(t *testing.T) {
	s := SLA{ID: "x", Kind: NodeProvider, Between: [2]string{"A", "p"}}
	if err := s.Validate(); err != nil {
		t.Fatalf("a bare SLA: %v", err)
	}
	s.Price.PerMinute = 1
	assertFieldErr(t, s.Validate(), "price.currency", "required")
	s.Price.Currency = "EUR"
	s.Segments = []Segment{{Quality: "anything"}} // no policy to check against
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	s.Kind = ""
	assertFieldErr(t, s.Validate(), "kind", "want node-provider")
}
