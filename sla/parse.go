package sla

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// ErrInvalid marks every error in the content of a catalogue, an SLA, a
// provider or an offer, so that callers can tell bad input from a failure
// to run: errors.Is(err, ErrInvalid).
var ErrInvalid = errors.New("invalid catalogue")

// FieldError is an error in one field of a catalogue, named by its path in
// the YAML document, such as slas[1].guarantees.max_delay_ms or
// providers[0].services[1].segments[0].hours.
type FieldError struct {
	Field string // path such as slas[0].price.per_minute
	Value any    // the value found, or nil when missing or not shown
	Msg   string
}

func (e *FieldError) Error() string {
	if e.Value == nil {
		return fmt.Sprintf("sla: %s: %s", e.Field, e.Msg)
	}
	return fmt.Sprintf("sla: %s = %q: %s", e.Field, fmt.Sprint(e.Value), e.Msg)
}

// Unwrap returns ErrInvalid.
func (e *FieldError) Unwrap() error { return ErrInvalid }

func fieldErr(field string, value any, format string, args ...any) error {
	return &FieldError{Field: field, Value: value, Msg: fmt.Sprintf(format, args...)}
}

// join appends a key to a field path; index appends a list index.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// Sections are the top-level keys of a catalogue document, in the order
// they are decoded. A node's node.yaml holds providers, slas and policy
// among its own keys.
var Sections = []string{"nodes", "providers", "slas", "measurements", "calls", "policy"}

// DefaultPolicy returns the class policy of a catalogue that names no
// classes:
//
//	gold:   min_mos 4.0, max_delay_ms 150, max_loss_pct 1, max_hops 4
//	silver: min_mos 3.6, max_delay_ms 250, max_loss_pct 3, max_hops 4
//	bronze: min_mos 3.1, max_delay_ms 400, max_loss_pct 5, max_hops 4
//
// with no price limit. Each call returns a new map.
func DefaultPolicy() Policy {
	return Policy{Classes: map[string]ClassPolicy{
		"gold":   {MinMOS: 4.0, MaxDelayMs: 150, MaxLossPct: 1, MaxHops: DefaultMaxHops},
		"silver": {MinMOS: 3.6, MaxDelayMs: 250, MaxLossPct: 3, MaxHops: DefaultMaxHops},
		"bronze": {MinMOS: 3.1, MaxDelayMs: 400, MaxLossPct: 5, MaxHops: DefaultMaxHops},
	}}
}

// ParseCatalogue reads a catalogue document (YAML, or JSON in the same
// shape) and validates it with Validate. Every section is optional:
//
//	nodes:        [{id: A}, …]                     # catalogue files only
//	providers:    [{id, name, access_points, services}, …]
//	slas:         [{id, kind, between, one_way, price, guarantees,
//	                capacity, valid, segments, markup_per_minute,
//	                direct, voucher}, …]
//	measurements: [{sla | path, delay_ms, loss_pct, jitter_ms, mos, samples}, …]
//	calls:        [{sla, active}, …]
//	policy:       {classes: {NAME: {min_mos, max_delay_ms, max_loss_pct,
//	                                max_price_per_minute, max_hops}}}
//
// An unknown key anywhere, a key given twice, or a value of the wrong kind
// is a *FieldError naming the field's path. Amounts (per_minute, setup,
// markup_per_minute, max_price_per_minute) are decimals, quoted or not,
// read exactly by ParseMoney; increments are "FIRST/NEXT" in seconds;
// durations are strings such as "90m" or "2h"; times are RFC 3339; hours
// are one string or a list of strings read by ParseHours.
//
// Defaults:
//   - an access point given as a plain URI, or without mode, is in mode
//     proxy;
//   - price.increment is 60/60 and price.setup 0; price.currency is
//     required when price.per_minute is given;
//   - one_way is false;
//   - a segment's location is "*";
//   - policy.classes starts from DefaultPolicy: a class given replaces the
//     default class of the same name as a whole, and the other defaults
//     stay.
//
// A null value (key: ~, or a key with nothing after it) is the same as a
// missing key.
func ParseCatalogue(data []byte) (*Catalogue, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("sla: %w: %v", ErrInvalid, err)
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, fmt.Errorf("sla: %w: %v", ErrInvalid, err)
		}
		return nil, fmt.Errorf("sla: %w: more than one YAML document", ErrInvalid)
	}
	return DecodeCatalogue(&doc)
}

// DecodeCatalogue is ParseCatalogue on a parsed YAML document or mapping.
func DecodeCatalogue(n *yaml.Node) (*Catalogue, error) {
	d := &decoder{}
	f := d.mapping("", document(n), Sections...)
	cat := &Catalogue{}
	for _, s := range Sections {
		d.section(s, f.vals[s], cat)
	}
	if d.err != nil {
		return nil, d.err
	}
	if err := cat.Validate(); err != nil {
		return nil, err
	}
	return cat, nil
}

// DecodeSection decodes the value of one top-level section of a catalogue
// document (one of Sections) into the matching field of into, replacing
// it. Errors name fields from the section on ("slas[0].price.per_minute"),
// so a node.yaml that holds providers:, slas: and policy: among its own
// keys reports them as a catalogue file would. A nil or zero node is an
// absent section: the field is emptied, and policy gets DefaultPolicy.
//
// DecodeSection checks each value but not how sections refer to each
// other: call Validate once every section is in.
func DecodeSection(n *yaml.Node, section string, into *Catalogue) error {
	if !slices.Contains(Sections, section) {
		return fieldErr(section, nil, "not a catalogue section; want one of %s", strings.Join(Sections, ", "))
	}
	d := &decoder{}
	d.section(section, document(n), into)
	return d.err
}

// DecodeSections builds a node's own catalogue from the providers:, slas:
// and policy: sections of its node.yaml (each may be nil or zero when
// absent) and validates it.
func DecodeSections(providers, slas, policy *yaml.Node) (*Catalogue, error) {
	cat := &Catalogue{}
	for _, s := range []struct {
		n    *yaml.Node
		name string
	}{{providers, "providers"}, {slas, "slas"}, {policy, "policy"}} {
		if err := DecodeSection(s.n, s.name, cat); err != nil {
			return nil, err
		}
	}
	if err := cat.Validate(); err != nil {
		return nil, err
	}
	return cat, nil
}

// document returns the content of a document node.
func document(n *yaml.Node) *yaml.Node {
	if n != nil && n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		return n.Content[0]
	}
	return n
}

// maxValues bounds the values one document may expand to through aliases.
const maxValues = 1 << 20

// decoder walks a YAML tree by the catalogue's schema. It keeps the first
// error; once there is one, every method returns zero values.
type decoder struct {
	err    error
	values int
	parsed map[*yaml.Node]Hours // hours strings read, for aliases
}

func (d *decoder) fail(path string, value any, format string, args ...any) {
	if d.err == nil {
		if path == "" {
			path = "catalogue"
		}
		d.err = fieldErr(path, value, format, args...)
	}
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// node resolves an alias and counts the value; nil for a null value or
// after an error.
func (d *decoder) node(path string, n *yaml.Node) *yaml.Node {
	if d.err != nil {
		return nil
	}
	if n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if d.values++; d.values > maxValues {
		d.fail(path, nil, "document too large: more than %d values once aliases are expanded", maxValues)
		return nil
	}
	if isNull(n) {
		return nil
	}
	return n
}

// fields are the values of a mapping, by key.
type fields struct {
	d    *decoder
	path string
	vals map[string]*yaml.Node
}

func (f fields) at(key string) string { return join(f.path, key) }

// has reports whether key is given, and not null.
func (f fields) has(key string) bool {
	n := f.vals[key]
	if n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return !isNull(n)
}

func (f fields) str(key string) string             { return f.d.str(f.at(key), f.vals[key]) }
func (f fields) money(key string) Money            { return f.d.money(f.at(key), f.vals[key]) }
func (f fields) number(key string) float64         { return f.d.number(f.at(key), f.vals[key]) }
func (f fields) integer(key string) int            { return f.d.integer(f.at(key), f.vals[key]) }
func (f fields) boolean(key string) bool           { return f.d.boolean(f.at(key), f.vals[key]) }
func (f fields) duration(key string) time.Duration { return f.d.duration(f.at(key), f.vals[key]) }
func (f fields) time(key string) time.Time         { return f.d.timestamp(f.at(key), f.vals[key]) }
func (f fields) hours(key string) Hours            { return f.d.hours(f.at(key), f.vals[key]) }
func (f fields) seq(key, what string) []*yaml.Node {
	return f.d.seq(f.at(key), f.vals[key], what)
}

// mapping reads a mapping whose keys must be among keys, each at most
// once. A null value is an empty mapping.
func (d *decoder) mapping(path string, n *yaml.Node, keys ...string) fields {
	f := fields{d: d, path: path, vals: map[string]*yaml.Node{}}
	n = d.node(path, n)
	if n == nil {
		return f
	}
	if n.Kind != yaml.MappingNode {
		d.fail(path, nil, "want a mapping of %s", strings.Join(keys, ", "))
		return f
	}
	names, vals := d.dict(path, n)
	for i, name := range names {
		if !slices.Contains(keys, name) {
			d.fail(join(path, name), nil, "unknown field; want one of %s", strings.Join(keys, ", "))
			return f
		}
		f.vals[name] = vals[i]
	}
	return f
}

// dict reads a mapping with any keys, in order, each at most once.
func (d *decoder) dict(path string, n *yaml.Node) ([]string, []*yaml.Node) {
	if n == nil || d.err != nil {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		d.fail(path, nil, "want a mapping")
		return nil, nil
	}
	var names []string
	var vals []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Kind == yaml.AliasNode {
			k = k.Alias
		}
		if k == nil || k.Kind != yaml.ScalarNode {
			d.fail(path, nil, "a key that is not a name (line %d)", n.Content[i].Line)
			return nil, nil
		}
		if k.ShortTag() == "!!merge" {
			d.fail(join(path, k.Value), nil, "merge keys are not supported")
			return nil, nil
		}
		if slices.Contains(names, k.Value) {
			d.fail(join(path, k.Value), nil, "given twice")
			return nil, nil
		}
		names = append(names, k.Value)
		vals = append(vals, n.Content[i+1])
	}
	return names, vals
}

func (d *decoder) seq(path string, n *yaml.Node, what string) []*yaml.Node {
	n = d.node(path, n)
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(path, nil, "want a list of %s", what)
		return nil
	}
	return n.Content
}

// scalar returns a scalar's text; sn is nil when the value is absent.
func (d *decoder) scalar(path string, n *yaml.Node, want string) (s string, sn *yaml.Node) {
	n = d.node(path, n)
	if n == nil {
		return "", nil
	}
	if n.Kind != yaml.ScalarNode {
		d.fail(path, nil, "want %s", want)
		return "", nil
	}
	return n.Value, n
}

func (d *decoder) str(path string, n *yaml.Node) string {
	s, _ := d.scalar(path, n, "a single value")
	return s
}

func (d *decoder) money(path string, n *yaml.Node) Money {
	const want = "want a decimal amount such as 0.0040, with at most 9 decimal places"
	s, sn := d.scalar(path, n, "a decimal amount")
	if sn == nil {
		return 0
	}
	m, err := ParseMoney(s)
	if err != nil {
		d.fail(path, s, want)
	}
	return m
}

func (d *decoder) number(path string, n *yaml.Node) float64 {
	s, sn := d.scalar(path, n, "a number")
	if sn == nil {
		return 0
	}
	v, err := strconv.ParseFloat(s, 64)
	if tag := sn.ShortTag(); (tag != "!!int" && tag != "!!float") || err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		d.fail(path, s, "want a number")
		return 0
	}
	return v
}

func (d *decoder) integer(path string, n *yaml.Node) int {
	s, sn := d.scalar(path, n, "an integer")
	if sn == nil {
		return 0
	}
	v, err := strconv.Atoi(s)
	if sn.ShortTag() != "!!int" || err != nil {
		d.fail(path, s, "want an integer")
		return 0
	}
	return v
}

func (d *decoder) boolean(path string, n *yaml.Node) bool {
	s, sn := d.scalar(path, n, "true or false")
	if sn == nil {
		return false
	}
	v, err := strconv.ParseBool(strings.ToLower(s))
	if sn.ShortTag() != "!!bool" || err != nil {
		d.fail(path, s, "want true or false")
	}
	return v
}

func (d *decoder) duration(path string, n *yaml.Node) time.Duration {
	s, sn := d.scalar(path, n, "a duration")
	if sn == nil {
		return 0
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		d.fail(path, s, "want a duration such as 90m or 2h")
	}
	return v
}

func (d *decoder) timestamp(path string, n *yaml.Node) time.Time {
	s, sn := d.scalar(path, n, "a time")
	if sn == nil {
		return time.Time{}
	}
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		d.fail(path, s, "want an RFC 3339 time such as 2026-01-01T00:00:00Z")
	}
	return v
}

// hours reads one string or a list of strings of windows.
func (d *decoder) hours(path string, n *yaml.Node) Hours {
	n = d.node(path, n)
	if n == nil {
		return nil
	}
	var items []*yaml.Node
	var paths []string
	switch n.Kind {
	case yaml.ScalarNode:
		items, paths = []*yaml.Node{n}, []string{path}
	case yaml.SequenceNode:
		items = n.Content
		for i := range items {
			paths = append(paths, index(path, i))
		}
	default:
		d.fail(path, nil, `want a string such as "Mon-Fri 08:00-18:00 Europe/Berlin", or a list of them`)
		return nil
	}
	var h Hours
	for i, item := range items {
		s, sn := d.scalar(paths[i], item, "a string of windows")
		if sn == nil {
			if d.err == nil {
				d.fail(paths[i], nil, "empty")
			}
			return nil
		}
		ws, seen := d.parsed[sn]
		if !seen {
			var msg string
			if ws, msg = parseHours(s); msg != "" {
				d.fail(paths[i], s, "%s", msg)
				return nil
			}
			if d.parsed == nil {
				d.parsed = map[*yaml.Node]Hours{}
			}
			d.parsed[sn] = ws
		}
		h = append(h, ws...)
	}
	return h
}

// section decodes one top-level section into cat.
func (d *decoder) section(name string, n *yaml.Node, cat *Catalogue) {
	switch name {
	case "nodes":
		cat.Nodes = nil
		for i, item := range d.seq(name, n, "nodes") {
			path := index(name, i)
			if r := d.node(path, item); r != nil && r.Kind == yaml.ScalarNode {
				cat.Nodes = append(cat.Nodes, NodeRef{ID: r.Value})
				continue
			}
			f := d.mapping(path, item, "id")
			cat.Nodes = append(cat.Nodes, NodeRef{ID: f.str("id")})
		}
	case "providers":
		cat.Providers = nil
		for i, item := range d.seq(name, n, "providers") {
			cat.Providers = append(cat.Providers, d.provider(index(name, i), item))
		}
	case "slas":
		cat.SLAs = nil
		for i, item := range d.seq(name, n, "SLAs") {
			cat.SLAs = append(cat.SLAs, d.sla(index(name, i), item))
		}
	case "measurements":
		cat.Measurements = nil
		for i, item := range d.seq(name, n, "measurements") {
			cat.Measurements = append(cat.Measurements, d.measurement(index(name, i), item))
		}
	case "calls":
		cat.Calls = nil
		for i, item := range d.seq(name, n, "call counts") {
			f := d.mapping(index(name, i), item, "sla", "active")
			cat.Calls = append(cat.Calls, CallCount{SLA: f.str("sla"), Active: f.integer("active")})
		}
	case "policy":
		cat.Policy = d.policy(name, n)
	}
}

func (d *decoder) provider(path string, n *yaml.Node) Provider {
	f := d.mapping(path, n, "id", "name", "access_points", "services")
	p := Provider{ID: f.str("id"), Name: f.str("name")}
	for i, item := range f.seq("access_points", "SIP URIs or {uri, mode, username, password_file}") {
		p.AccessPoints = append(p.AccessPoints, d.accessPoint(index(f.at("access_points"), i), item))
	}
	for i, item := range f.seq("services", "services") {
		sf := d.mapping(index(f.at("services"), i), item, "type", "segments")
		sv := Service{Type: ServiceType(sf.str("type"))}
		for j, seg := range sf.seq("segments", "segments") {
			sv.Segments = append(sv.Segments, d.segment(index(sf.at("segments"), j), seg))
		}
		p.Services = append(p.Services, sv)
	}
	return p
}

func (d *decoder) accessPoint(path string, n *yaml.Node) AccessPoint {
	r := d.node(path, n)
	if r == nil {
		d.fail(path, nil, "want a SIP URI or {uri, mode, username, password_file}")
		return AccessPoint{}
	}
	if r.Kind == yaml.ScalarNode {
		return AccessPoint{URI: r.Value, Mode: Proxy}
	}
	f := d.mapping(path, r, "uri", "mode", "username", "password_file")
	ap := AccessPoint{URI: f.str("uri"), Mode: Mode(f.str("mode")), Username: f.str("username"), PasswordFile: f.str("password_file")}
	if ap.Mode == "" {
		ap.Mode = Proxy
	}
	return ap
}

func (d *decoder) segment(path string, n *yaml.Node) Segment {
	f := d.mapping(path, n, "location", "hours", "max_duration", "quality")
	s := Segment{Location: f.str("location"), Hours: f.hours("hours"), MaxDuration: f.duration("max_duration"), Quality: f.str("quality")}
	if s.Location == "" {
		s.Location = "*"
	}
	return s
}

func (d *decoder) sla(path string, n *yaml.Node) SLA {
	f := d.mapping(path, n, "id", "kind", "between", "one_way", "price", "guarantees", "capacity",
		"valid", "segments", "markup_per_minute", "direct", "voucher")
	s := SLA{ID: f.str("id"), Kind: Kind(f.str("kind")), OneWay: f.boolean("one_way"), Voucher: f.str("voucher")}
	if f.has("between") {
		parties := f.seq("between", "two parties")
		if d.err == nil && len(parties) != 2 {
			d.fail(f.at("between"), nil, "want two parties, [A, B]")
		}
		for i := 0; i < len(parties) && i < 2; i++ {
			s.Between[i] = d.str(index(f.at("between"), i), parties[i])
		}
	}

	pf := d.mapping(f.at("price"), f.vals["price"], "per_minute", "currency", "increment", "setup")
	s.Price = Price{PerMinute: pf.money("per_minute"), Currency: pf.str("currency"), Setup: pf.money("setup"), Increment: DefaultIncrement}
	if pf.has("per_minute") && !pf.has("currency") {
		d.fail(pf.at("currency"), nil, "required with per_minute")
	}
	if inc, sn := d.scalar(pf.at("increment"), pf.vals["increment"], `"FIRST/NEXT" in seconds such as "60/60"`); sn != nil && inc != "" {
		v, err := ParseIncrement(inc)
		if err != nil {
			d.fail(pf.at("increment"), inc, `want "FIRST/NEXT" in seconds, both positive, such as "60/60" or "1/1"`)
		}
		s.Price.Increment = v
	}

	gf := d.mapping(f.at("guarantees"), f.vals["guarantees"], "max_delay_ms", "max_loss_pct", "max_jitter_ms", "min_mos", "min_asr_pct")
	s.Guarantees = Guarantees{MaxDelayMs: gf.number("max_delay_ms"), MaxLossPct: gf.number("max_loss_pct"),
		MaxJitterMs: gf.number("max_jitter_ms"), MinMOS: gf.number("min_mos"), MinASRPct: gf.number("min_asr_pct")}

	cf := d.mapping(f.at("capacity"), f.vals["capacity"], "max_calls", "max_cps")
	s.Capacity = Capacity{MaxCalls: cf.integer("max_calls"), MaxCPS: cf.integer("max_cps")}

	vf := d.mapping(f.at("valid"), f.vals["valid"], "from", "until")
	s.Valid = Validity{From: vf.time("from"), Until: vf.time("until")}

	for i, seg := range f.seq("segments", "segments") {
		s.Segments = append(s.Segments, d.segment(index(f.at("segments"), i), seg))
	}
	s.MarkupPerMinute = f.money("markup_per_minute")
	if f.has("direct") {
		df := d.mapping(f.at("direct"), f.vals["direct"], "per_minute", "max_delay_ms", "max_loss_pct")
		s.Direct = &Direct{PerMinute: df.money("per_minute"), MaxDelayMs: df.number("max_delay_ms"), MaxLossPct: df.number("max_loss_pct")}
	}
	return s
}

func (d *decoder) measurement(path string, n *yaml.Node) Measurement {
	f := d.mapping(path, n, "sla", "path", "delay_ms", "loss_pct", "jitter_ms", "mos", "samples")
	m := Measurement{SLA: f.str("sla"), DelayMs: f.number("delay_ms"), LossPct: f.number("loss_pct"),
		JitterMs: f.number("jitter_ms"), MOS: f.number("mos"), Samples: f.integer("samples")}
	for i, item := range f.seq("path", "SLA ids") {
		m.Path = append(m.Path, d.str(index(f.at("path"), i), item))
	}
	if f.has("path") && len(m.Path) == 0 && d.err == nil {
		d.fail(f.at("path"), nil, "empty; want the SLA ids of the path, in order")
	}
	return m
}

func (d *decoder) policy(path string, n *yaml.Node) Policy {
	p := DefaultPolicy()
	f := d.mapping(path, n, "classes")
	cpath := f.at("classes")
	names, vals := d.dict(cpath, d.node(cpath, f.vals["classes"]))
	for i, name := range names {
		cf := d.mapping(join(cpath, name), vals[i], "min_mos", "max_delay_ms", "max_loss_pct", "max_price_per_minute", "max_hops")
		p.Classes[name] = ClassPolicy{MinMOS: cf.number("min_mos"), MaxDelayMs: cf.number("max_delay_ms"),
			MaxLossPct: cf.number("max_loss_pct"), MaxPricePerMinute: cf.money("max_price_per_minute"), MaxHops: cf.integer("max_hops")}
	}
	return p
}
