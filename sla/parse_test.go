package sla

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func readCatalogue(t testing.TB) *Catalogue {
	t.Helper()
	data, err := os.ReadFile("testdata/catalogue.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cat, err := ParseCatalogue(data)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

func TestParseCatalogueExample(t *testing.T) {
	cat := readCatalogue(t)
	if len(cat.Nodes) != 2 || len(cat.Providers) != 3 || len(cat.SLAs) != 6 || len(cat.Measurements) != 2 || len(cat.Calls) != 1 {
		t.Fatalf("counts: %d nodes, %d providers, %d SLAs, %d measurements, %d calls",
			len(cat.Nodes), len(cat.Providers), len(cat.SLAs), len(cat.Measurements), len(cat.Calls))
	}
	cheap := cat.Provider("cheapnet")
	if cheap == nil || cheap.Name != "CheapNet" || cheap.AccessPoints[0] != (AccessPoint{URI: "sip:127.0.0.1:5071", Mode: Proxy}) {
		t.Fatalf("cheapnet: %+v", cheap)
	}
	seg := cheap.Services[0].Segments[0]
	if seg.Location != "*" || seg.MaxDuration != 2*time.Hour || seg.Quality != "bronze" || seg.Hours.String() != "Mon-Sun 00:00-24:00 UTC" {
		t.Errorf("cheapnet transit segment: %+v", seg)
	}
	if got := cheap.Services[1]; got.Type != Termination || got.Segments[0].Location != "+1" {
		t.Errorf("cheapnet termination: %+v", got)
	}
	term := cat.Provider("termco").AccessPoints[0]
	if term.Mode != Trunk || term.Username != "nodeA" || term.PasswordFile != "secrets/termco.pw" {
		t.Errorf("termco access point: %+v", term)
	}
	if h := cat.Provider("termco").Services[0].Segments[0].Hours; len(h) != 2 || h[1].Text != "Sat+Sun 00:00-24:00 Europe/Berlin" {
		t.Errorf("termco hours: %v", h)
	}
	if h := cat.Provider("fastcarrier").Services[0].Segments[0].Hours; len(h) != 2 {
		t.Errorf("fastcarrier hours from a list: %v", h)
	}

	s := cat.SLA("A-cheapnet")
	want := SLA{
		ID: "A-cheapnet", Kind: NodeProvider, Between: [2]string{"A", "cheapnet"},
		Price:      Price{PerMinute: MustMoney("0.004"), Currency: "EUR", Increment: Increment{60, 60}},
		Guarantees: Guarantees{MaxDelayMs: 40, MaxLossPct: 1.5, MaxJitterMs: 20, MinMOS: 3.6, MinASRPct: 40},
		Capacity:   Capacity{MaxCalls: 200, MaxCPS: 20},
		Valid:      Validity{From: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Until: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	if !sameJSON(t, s, &want) {
		t.Errorf("A-cheapnet:\n got %+v\nwant %+v", *s, want)
	}
	if s := cat.SLA("B-cheapnet"); s.Price.PerMinute != MustMoney("0.0045") || s.Price.Increment != (Increment{1, 1}) || s.Price.Setup != 0 {
		t.Errorf("B-cheapnet price (unquoted amount): %+v", s.Price)
	}
	if s := cat.SLA("A-termco"); !s.OneWay || s.Price.Increment != (Increment{30, 6}) || s.Price.Setup != MustMoney("0.01") {
		t.Errorf("A-termco: %+v", s)
	}
	ab := cat.SLA("A-B")
	if ab.MarkupPerMinute != MustMoney("0.001") || ab.Direct == nil || *ab.Direct != (Direct{PerMinute: MustMoney("0.002"), MaxDelayMs: 30, MaxLossPct: 0.5}) {
		t.Errorf("A-B: %+v %+v", ab, ab.Direct)
	}
	if ab.Price.Increment != DefaultIncrement {
		t.Errorf("A-B increment %v, want the default", ab.Price.Increment)
	}
	if m := cat.Measurements[1]; len(m.Path) != 2 || m.Path[1] != "B-cheapnet" || m.Samples != 40 {
		t.Errorf("path measurement: %+v", m)
	}
	if cat.Calls[0] != (CallCount{SLA: "A-cheapnet", Active: 12}) {
		t.Errorf("calls: %+v", cat.Calls)
	}
	// The gold class is replaced; silver and bronze keep their defaults.
	gold := cat.Policy.Classes["gold"]
	if gold.MaxPricePerMinute != MustMoney("0.05") || gold.MinMOS != 4 {
		t.Errorf("gold: %+v", gold)
	}
	if cat.Policy.Classes["silver"] != DefaultPolicy().Classes["silver"] || len(cat.Policy.Classes) != 3 {
		t.Errorf("policy: %+v", cat.Policy)
	}
}

func sameJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(ja) == string(jb)
}

func TestParseCatalogueDefaults(t *testing.T) {
	cat, err := ParseCatalogue([]byte(`
providers:
  - id: p
    access_points: ["sip:p.example"]
    services: [{type: transit, segments: [{}]}, {type: termination, segments: [{location: +49}]}]
slas:
  - {id: A-p, kind: node-provider, between: [A, p], price: {per_minute: 0.01, currency: EUR}}
  - {id: A-q, kind: node-node, between: [A, q]}
`))
	if err != nil {
		t.Fatal(err)
	}
	p := cat.Providers[0]
	if p.AccessPoints[0].Mode != Proxy || p.Services[0].Segments[0].Location != "*" || p.Services[1].Segments[0].Location != "+49" {
		t.Errorf("provider defaults: %+v", p)
	}
	s := cat.SLAs[0]
	if s.Price.Increment != (Increment{60, 60}) || s.Price.Setup != 0 || s.OneWay {
		t.Errorf("SLA defaults: %+v", s)
	}
	if !sameJSON(t, cat.Policy, DefaultPolicy()) {
		t.Errorf("policy %+v, want the default", cat.Policy)
	}
	if cat.SLAs[1].Price.Currency != "" {
		t.Errorf("a free SLA needs no currency: %+v", cat.SLAs[1].Price)
	}
}

func TestParseCatalogueEmpty(t *testing.T) {
	for _, doc := range []string{"", "---\n", "{}", "providers: ~\nslas: []\n", "# nothing\n"} {
		cat, err := ParseCatalogue([]byte(doc))
		if err != nil {
			t.Errorf("%q: %v", doc, err)
			continue
		}
		if len(cat.SLAs) != 0 || len(cat.Policy.Classes) != 3 {
			t.Errorf("%q: %+v", doc, cat)
		}
	}
}

func TestParseCatalogueAliases(t *testing.T) {
	cat, err := ParseCatalogue([]byte(`
providers:
  - id: p
    access_points: ["sip:p.example"]
    services: [{type: transit, segments: &segs [{location: "+49", hours: &office "Mon-Fri 08:00-18:00 Europe/Berlin"}]}]
  - id: q
    access_points: ["sip:q.example"]
    services: [{type: termination, segments: *segs}]
slas:
  - {id: A-p, kind: node-provider, between: [A, p], segments: [{hours: *office}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := cat.Providers[1].Services[0].Segments[0]; got.Location != "+49" || got.Hours.String() != "Mon-Fri 08:00-18:00 Europe/Berlin" {
		t.Errorf("aliased segments: %+v", got)
	}
	if got := cat.SLAs[0].Segments[0].Hours.String(); got != "Mon-Fri 08:00-18:00 Europe/Berlin" {
		t.Errorf("aliased hours: %q", got)
	}
}

// aliasBomb is a catalogue of under 50 kB for n = 1000 whose aliases
// expand it to three transit services of n segments, each segment with the
// same n hours windows: about 3n² values.
func aliasBomb(n int) string {
	var b strings.Builder
	b.WriteString(`providers:
  - id: p
    access_points: ["sip:p.example"]
    services:
      - type: transit
        segments: &s
          - hours: &h [&w "Mon 00:00-01:00 UTC"`)
	b.WriteString(strings.Repeat(", *w", n-1))
	b.WriteString("]\n")
	b.WriteString(strings.Repeat("          - hours: *h\n", n-1))
	b.WriteString("      - {type: transit, segments: *s}\n      - {type: transit, segments: *s}\n")
	return b.String()
}

// Aliases may make a small document expand into a huge one: decoding
// stops at a budget of values instead.
func TestParseCatalogueAliasBudget(t *testing.T) {
	// Under the budget the aliases expand in full.
	const small = 100
	cat, err := ParseCatalogue([]byte(aliasBomb(small)))
	if err != nil {
		t.Fatalf("%d² values: %v", small, err)
	}
	if svcs := cat.Providers[0].Services; len(svcs) != 3 {
		t.Fatalf("%d services, want 3", len(svcs))
	}
	for i, svc := range cat.Providers[0].Services {
		if len(svc.Segments) != small {
			t.Fatalf("services[%d]: %d segments, want %d", i, len(svc.Segments), small)
		}
		for j, seg := range svc.Segments {
			if len(seg.Hours) != small {
				t.Fatalf("services[%d].segments[%d]: %d windows, want %d", i, j, len(seg.Hours), small)
			}
		}
	}

	// Over it (3 × 1000² values, more than maxValues) the decoder stops
	// at the value that crosses the budget: within the second service,
	// the first having fit.
	doc := aliasBomb(1000)
	if len(doc) > 50_000 {
		t.Fatalf("document of %d bytes", len(doc))
	}
	if 3*1000*1000 <= maxValues || 1000*1000 >= maxValues {
		t.Fatalf("maxValues %d: the document no longer crosses it in its second service", maxValues)
	}
	cat, err = ParseCatalogue([]byte(doc))
	var fe *FieldError
	if cat != nil || !errors.Is(err, ErrInvalid) || !errors.As(err, &fe) ||
		!strings.HasPrefix(fe.Field, "providers[0].services[1].segments[") ||
		!strings.Contains(fe.Msg, "document too large") || !strings.Contains(fe.Msg, strconv.Itoa(maxValues)) {
		t.Fatalf("err = %v, catalogue %v; want a document too large error (more than %d values) in providers[0].services[1]",
			err, cat != nil, maxValues)
	}
}

func TestParseCatalogueJSON(t *testing.T) {
	cat := readCatalogue(t)
	b, err := json.Marshal(cat)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseCatalogue(b)
	if err != nil {
		t.Fatalf("a catalogue's JSON does not parse back: %v", err)
	}
	b2, _ := json.Marshal(back)
	if string(b) != string(b2) {
		t.Fatalf("JSON round trip differs:\n%s\n%s", b, b2)
	}
}

// parseBase is a valid catalogue that error cases extend.
const parseProv = `
providers:
  - id: p
    access_points: ["sip:10.0.0.1:5060"]
    services: [{type: transit, segments: [{location: "*"}]}]
`

func TestParseCatalogueErrors(t *testing.T) {
	for _, tc := range []struct {
		name, doc, field, msg string
	}{
		{"unknown field deep", parseProv + `slas:
  - {id: A-p, kind: node-provider, between: [A, p]}
  - {id: B-p, kind: node-provider, between: [B, p], guarantees: {max_delay: 40}}`,
			"slas[1].guarantees.max_delay", "unknown field"},
		{"unknown day", `providers:
  - id: p
    access_points: ["sip:10.0.0.1"]
    services:
      - {type: transit, segments: [{}]}
      - type: termination
        segments: [{location: "+1", hours: "Mon-Fry 08:00-18:00 UTC"}]`,
			"providers[0].services[1].segments[0].hours", `= "Mon-Fry 08:00-18:00 UTC": unknown day "Fry"`},
		{"hours list item", parseProv + `slas: [{id: A-p, kind: node-provider, between: [A, p], segments: [{hours: ["Mon 08:00-09:00 UTC", "Tue 8-9 UTC"]}]}]`,
			"slas[0].segments[0].hours[1]", `bad time "8"`},
		{"hours second window", parseProv + `slas: [{id: A-p, kind: node-provider, between: [A, p], segments: [{hours: "Mon 08:00-09:00 UTC; Tue 08:00-09:00 Mars/Base"}]}]`,
			"slas[0].segments[0].hours", `window "Tue 08:00-09:00 Mars/Base": unknown time zone "Mars/Base"`},
		{"hours empty", parseProv + `slas: [{id: A-p, kind: node-provider, between: [A, p], segments: [{hours: ""}]}]`,
			"slas[0].segments[0].hours", "no window"},
		{"hours nested list", parseProv + `slas: [{id: A-p, kind: node-provider, between: [A, p], segments: [{hours: [[x]]}]}]`,
			"slas[0].segments[0].hours[0]", "want a string of windows"},
		{"hours mapping", parseProv + `slas: [{id: A-p, kind: node-provider, between: [A, p], segments: [{hours: {a: b}}]}]`,
			"slas[0].segments[0].hours", "want a string"},
		{"top-level unknown", parseProv + "foo: 1\n", "foo", "unknown field"},
		{"top-level list", "- a\n", "catalogue", "want a mapping"},
		{"key twice", parseProv + "slas: []\nslas: []\n", "slas", "given twice"},
		{"key twice deep", parseProv + `slas: [{id: A-p, id: B-p}]`, "slas[0].id", "given twice"},
		{"merge key", parseProv + "x: &x {kind: node-node}\n", "x", "unknown field"},
		{"merge key in SLA", parseProv + "nodes: [&base {id: A}]\nslas: [{<<: *base, kind: node-provider, between: [A, p]}]", "slas[0].<<", "merge keys are not supported"},
		{"providers not a list", "providers: {id: p}\n", "providers", "want a list of providers"},
		{"provider not a mapping", "providers: [p]\n", "providers[0]", "want a mapping"},
		{"access point list", `providers: [{id: p, access_points: [[a]], services: []}]`, "providers[0].access_points[0]", "want a mapping of uri, mode"},
		{"access point null", `providers: [{id: p, access_points: [~], services: []}]`, "providers[0].access_points[0]", "want a SIP URI"},
		{"access point key", `providers: [{id: p, access_points: [{uri: "sip:a", pasword_file: x}], services: []}]`,
			"providers[0].access_points[0].pasword_file", "unknown field"},
		{"service key", `providers: [{id: p, access_points: ["sip:a"], services: [{type: transit, segment: []}]}]`,
			"providers[0].services[0].segment", "unknown field"},
		{"segment key", `providers: [{id: p, access_points: ["sip:a"], services: [{type: transit, segments: [{prefix: "+1"}]}]}]`,
			"providers[0].services[0].segments[0].prefix", "unknown field"},
		{"id not a scalar", `providers: [{id: [p]}]`, "providers[0].id", "want a single value"},
		{"money exponent", parseProv + `slas: [{id: A-p, kind: node-provider, between: [A, p], price: {per_minute: 1e-3, currency: EUR}}]`,
			"slas[0].price.per_minute", `= "1e-3": want a decimal amount`},
		{"money places", parseProv + `slas: [{id: A-p, kind: node-provider, between: [A, p], price: {per_minute: "0.0000000001", currency: EUR}}]`,
			"slas[0].price.per_minute", "at most 9 decimal places"},
		{"money text", parseProv + `slas: [{id: A-p, kind: node-provider, between: [A, p], price: {setup: free, currency: EUR}}]`,
			"slas[0].price.setup", `= "free"`},
		{"currency missing", parseProv + `slas: [{id: A-p, kind: node-provider, between: [A, p], price: {per_minute: "0.01"}}]`,
			"slas[0].price.currency", "required with per_minute"},
		{"increment one part", parseProv + `slas: [{id: A-p, kind: node-provider, between: [A, p], price: {increment: "60"}}]`,
			"slas[0].price.increment", `= "60": want "FIRST/NEXT"`},
		{"increment zero", parseProv + `slas: [{id: A-p, kind: node-provider, between: [A, p], price: {increment: 0/60}}]`,
			"slas[0].price.increment", "both positive"},
		{"increment negative", parseProv + `slas: [{id: A-p, kind: node-provider, between: [A, p], price: {increment: "-1/1"}}]`,
			"slas[0].price.increment", "both positive"},
		{"price key", parseProv + `slas: [{id: A-p, kind: node-provider, between: [A, p], price: {per_second: "1"}}]`,
			"slas[0].price.per_second", "unknown field"},
		{"duration number", parseProv + `slas: [{id: A-p, kind: node-provider, between: [A, p], segments: [{max_duration: 90}]}]`,
			"slas[0].segments[0].max_duration", "want a duration such as 90m"},
		{"duration text", parseProv + `slas: [{id: A-p, kind: node-provider, between: [A, p], segments: [{max_duration: two hours}]}]`,
			"slas[0].segments[0].max_duration", `= "two hours"`},
		{"time date only", parseProv + `slas: [{id: A-p, kind: node-provider, between: [A, p], valid: {from: 2026-01-01}}]`,
			"slas[0].valid.from", "want an RFC 3339 time"},
		{"valid key", parseProv + `slas: [{id: A-p, kind: node-provider, between: [A, p], valid: {to: "2026-01-01T00:00:00Z"}}]`,
			"slas[0].valid.to", "unknown field"},
		{"between three", parseProv + `slas: [{id: A-p, kind: node-provider, between: [A, p, q]}]`,
			"slas[0].between", "want two parties"},
		{"between one", parseProv + `slas: [{id: A-p, kind: node-provider, between: [A]}]`,
			"slas[0].between", "want two parties"},
		{"between scalar", parseProv + `slas: [{id: A-p, kind: node-provider, between: A}]`,
			"slas[0].between", "want a list of two parties"},
		{"one_way yes", parseProv + `slas: [{id: A-p, kind: node-provider, between: [A, p], one_way: yes}]`,
			"slas[0].one_way", `= "yes": want true or false`},
		{"integer float", parseProv + `slas: [{id: A-p, kind: node-provider, between: [A, p], capacity: {max_calls: 1.5}}]`,
			"slas[0].capacity.max_calls", "want an integer"},
		{"number quoted", parseProv + `slas: [{id: A-p, kind: node-provider, between: [A, p], guarantees: {max_delay_ms: "40"}}]`,
			"slas[0].guarantees.max_delay_ms", "want a number"},
		{"number infinite", parseProv + `slas: [{id: A-p, kind: node-provider, between: [A, p], guarantees: {max_loss_pct: .inf}}]`,
			"slas[0].guarantees.max_loss_pct", "want a number"},
		{"number list", parseProv + `slas: [{id: A-p, kind: node-provider, between: [A, p], guarantees: {min_mos: [4]}}]`,
			"slas[0].guarantees.min_mos", "want a number"},
		{"direct key", parseProv + `slas: [{id: A-B, kind: node-node, between: [A, B], direct: {delay: 3}}]`,
			"slas[0].direct.delay", "unknown field"},
		{"measurement key", parseProv + `slas: [{id: A-p, kind: node-provider, between: [A, p]}]
measurements: [{sla: A-p, delay: 3}]`, "measurements[0].delay", "unknown field"},
		{"measurement empty path", parseProv + `slas: [{id: A-p, kind: node-provider, between: [A, p]}]
measurements: [{path: [], delay_ms: 3}]`, "measurements[0].path", "empty"},
		{"calls active", parseProv + `slas: [{id: A-p, kind: node-provider, between: [A, p]}]
calls: [{sla: A-p, active: many}]`, "calls[0].active", "want an integer"},
		{"nodes key", "nodes: [{id: A, name: x}]\n", "nodes[0].name", "unknown field"},
		{"policy key", "policy: {class: {}}\n", "policy.class", "unknown field"},
		{"policy classes list", "policy: {classes: [gold]}\n", "policy.classes", "want a mapping"},
		{"policy class key", "policy: {classes: {gold: {max_hop: 3}}}\n", "policy.classes.gold.max_hop", "unknown field"},
		{"policy price", "policy: {classes: {gold: {max_price_per_minute: cheap}}}\n", "policy.classes.gold.max_price_per_minute", "want a decimal"},
		// Errors found by Validate carry the same paths.
		{"validate loss", parseProv + `slas: [{id: A-p, kind: node-provider, between: [A, p], guarantees: {max_loss_pct: 101}}]`,
			"slas[0].guarantees.max_loss_pct", "0 to 100"},
		{"validate quality", `providers:
  - id: p
    access_points: ["sip:10.0.0.1"]
    services: [{type: transit, segments: [{quality: platinum}]}]`,
			"providers[0].services[0].segments[0].quality", "not a class of the policy (bronze, gold, silver)"},
		{"validate max_duration", parseProv + `slas: [{id: A-p, kind: node-provider, between: [A, p], segments: [{max_duration: -5m}]}]`,
			"slas[0].segments[0].max_duration", "must be >= 0"},
		{"validate policy hops", "policy: {classes: {gold: {max_hops: 9}}}\n", "policy.classes.gold.max_hops", "must be 0 to 8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCatalogue([]byte(tc.doc))
			assertFieldErr(t, err, tc.field, tc.msg)
		})
	}
}

// assertFieldErr checks that err is a *FieldError on field whose message
// contains msg, and that it is ErrInvalid.
func assertFieldErr(t *testing.T, err error, field, msg string) {
	t.Helper()
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v (%T), want a *FieldError on %s", err, err, field)
	}
	if fe.Field != field {
		t.Errorf("field %q, want %q (%v)", fe.Field, field, err)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Errorf("error %q does not contain %q", err, msg)
	}
	if !strings.HasPrefix(err.Error(), "sla: "+field) {
		t.Errorf("error %q does not start with the field", err)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("error %v is not ErrInvalid", err)
	}
}

func TestParseCatalogueSyntax(t *testing.T) {
	for _, doc := range []string{"providers: [", "a: b\n---\nc: d\n", "\tproviders: []"} {
		_, err := ParseCatalogue([]byte(doc))
		if err == nil || !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: err = %v", doc, err)
		}
	}
}

func TestFieldErrorFormat(t *testing.T) {
	e := &FieldError{Field: "slas[3].price.currency", Value: "USD", Msg: "the catalogue's currency is EUR (first set by slas[0])"}
	if got, want := e.Error(), `sla: slas[3].price.currency = "USD": the catalogue's currency is EUR (first set by slas[0])`; got != want {
		t.Errorf("%s\nwant %s", got, want)
	}
	e = &FieldError{Field: "slas[0].id", Msg: "required"}
	if got, want := e.Error(), "sla: slas[0].id: required"; got != want {
		t.Errorf("%s, want %s", got, want)
	}
}

// nodeYAML is a node.yaml: the catalogue sections among the node's own.
const nodeYAML = `
name: A
sip: 0.0.0.0:5060
providers:
  - id: p
    access_points: [{uri: "sip:p.example:5060", mode: trunk, username: A, password_file: p.pw}]
    services: [{type: termination, segments: [{location: "+49"}]}]
slas:
  - id: A-p
    kind: node-provider
    between: [A, p]
    price: {per_minute: "0.0100", currency: EUR}
  - id: A-B
    kind: node-node
    between: [A, B]
    markup_per_minute: "-0.0010"
policy:
  classes:
    premium: {min_mos: 4.2, max_delay_ms: 100}
`

// nodeSections decodes a node.yaml as node/config.go does: its own keys
// and the three catalogue sections as YAML nodes.
func nodeSections(t *testing.T, doc string) (providers, slas, policy yaml.Node) {
	t.Helper()
	var cfg struct {
		Name      string    `yaml:"name"`
		SIP       string    `yaml:"sip"`
		Providers yaml.Node `yaml:"providers"`
		SLAs      yaml.Node `yaml:"slas"`
		Policy    yaml.Node `yaml:"policy"`
	}
	if err := yaml.Unmarshal([]byte(doc), &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg.Providers, cfg.SLAs, cfg.Policy
}

func TestDecodeSections(t *testing.T) {
	prov, slas, pol := nodeSections(t, nodeYAML)
	_, err := DecodeSections(&prov, &slas, &pol)
	assertFieldErr(t, err, "slas[1].markup_per_minute", "must be >= 0")

	prov, slas, pol = nodeSections(t, strings.Replace(nodeYAML, `"-0.0010"`, `"0.0010"`, 1))
	cat, err := DecodeSections(&prov, &slas, &pol)
	if err != nil {
		t.Fatal(err)
	}
	if len(cat.Providers) != 1 || len(cat.SLAs) != 2 || len(cat.Policy.Classes) != 4 {
		t.Fatalf("catalogue: %+v", cat)
	}
	if cat.Providers[0].AccessPoints[0].PasswordFile != "p.pw" {
		t.Errorf("password file lost: %+v", cat.Providers[0].AccessPoints[0])
	}

	// Absent sections: zero nodes. Policy takes the defaults.
	var none yaml.Node
	cat, err = DecodeSections(&none, nil, &none)
	if err != nil {
		t.Fatal(err)
	}
	if len(cat.SLAs) != 0 || !sameJSON(t, cat.Policy, DefaultPolicy()) {
		t.Errorf("empty sections: %+v", cat)
	}
}

func TestDecodeSection(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("slas: [{id: x, kind: node-node, between: [A, B], price: {increment: 5}}]"), &doc); err != nil {
		t.Fatal(err)
	}
	var cat Catalogue
	err := DecodeSection(doc.Content[0].Content[1], "slas", &cat)
	assertFieldErr(t, err, "slas[0].price.increment", `= "5"`)

	err = DecodeSection(&doc, "routes", &cat)
	assertFieldErr(t, err, "routes", "not a catalogue section")

	// Decoding checks values, not references: Validate does.
	if err := yaml.Unmarshal([]byte("[{id: x, kind: node-provider, between: [A, nobody]}]"), &doc); err != nil {
		t.Fatal(err)
	}
	if err := DecodeSection(&doc, "slas", &cat); err != nil {
		t.Fatal(err)
	}
	assertFieldErr(t, cat.Validate(), "slas[0].between", "neither")
}

func FuzzParseCatalogue(f *testing.F) {
	if data, err := os.ReadFile("testdata/catalogue.yaml"); err == nil {
		f.Add(data)
	}
	f.Add([]byte(nodeYAML))
	f.Add([]byte(parseProv + "slas: [{id: A-p, kind: node-provider, between: [A, p], segments: [{hours: \"Fri-Mon 22:00-06:00 Europe/Berlin\"}]}]"))
	f.Add([]byte("x: &a [*a]\n"))
	f.Add([]byte("policy: {classes: {gold: {max_hops: 9}}}"))
	f.Add([]byte(`{"providers": [{"id": "p"}], "slas": null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cat, err := ParseCatalogue(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		// A catalogue that parses round-trips through its JSON: the JSON
		// parses back (ParseCatalogue validates) to a catalogue with the
		// same JSON.
		b, err := json.Marshal(cat)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseCatalogue(b)
		if err != nil {
			t.Fatalf("JSON of a parsed catalogue does not parse: %v\n%s", err, b)
		}
		b2, err := json.Marshal(back)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, b2) {
			t.Fatalf("JSON round trip differs:\n%s\n%s", b, b2)
		}
	})
}
