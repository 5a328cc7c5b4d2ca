package sla

import (
	"fmt"
	"maps"
	"math"
	"net"
	"slices"
	"strings"
	"unicode"
)

// maxIDLen bounds ids of nodes, providers, SLAs and classes.
const maxIDLen = 128

// checkID accepts a non-empty id of at most maxIDLen bytes made of
// letters, digits and - _ . @ +.
func checkID(path, id string) error {
	if id == "" {
		return fieldErr(path, nil, "required")
	}
	if len(id) > maxIDLen {
		return fieldErr(path, id, "longer than %d bytes", maxIDLen)
	}
	for _, r := range id {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune("-_.@+", r) {
			return fieldErr(path, id, "want letters, digits and - _ . @ + only")
		}
	}
	return nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// checkNonNeg accepts a finite v >= 0.
func checkNonNeg(path string, v float64) error {
	if !finite(v) || v < 0 {
		return fieldErr(path, v, "must be >= 0")
	}
	return nil
}

// checkPct accepts a percentage, 0 to 100.
func checkPct(path string, v float64) error {
	if !finite(v) || v < 0 || v > 100 {
		return fieldErr(path, v, "must be 0 to 100 (percent)")
	}
	return nil
}

// checkMOS accepts 0 (none) or a MOS in [1, 4.5].
func checkMOS(path string, v float64) error {
	if !finite(v) || (v != 0 && (v < 1 || v > 4.5)) {
		return fieldErr(path, v, "must be 1 to 4.5, or 0 for none")
	}
	return nil
}

func checkAmount(path string, m Money) error {
	if m < 0 {
		return fieldErr(path, m, "must be >= 0")
	}
	return nil
}

// checkCurrency accepts a three-letter ISO 4217 code.
func checkCurrency(path, c string) error {
	if len(c) != 3 || strings.IndexFunc(c, func(r rune) bool { return r < 'A' || r > 'Z' }) >= 0 {
		return fieldErr(path, c, "want a three-letter ISO 4217 code such as EUR")
	}
	return nil
}

// validLocation accepts "*" (or "", the same), or "+" and up to 15 digits.
func validLocation(l string) bool {
	if l == "" || l == "*" {
		return true
	}
	return l[0] == '+' && len(l) <= 16 && (len(l) == 1 || allDigits(l[1:]))
}

// classNames lists a policy's classes for messages.
func classNames(classes map[string]ClassPolicy) string {
	return strings.Join(slices.Sorted(maps.Keys(classes)), ", ")
}

// validateSegment checks a segment; classes, when not empty, are the
// classes its quality may name.
func validateSegment(s *Segment, path string, classes map[string]ClassPolicy) error {
	if !validLocation(s.Location) {
		return fieldErr(join(path, "location"), s.Location, `want "*" or a number prefix such as "+49"`)
	}
	for _, w := range s.Hours {
		if msg := checkWindow(w); msg != "" {
			return fieldErr(join(path, "hours"), w.String(), "%s", msg)
		}
	}
	if s.MaxDuration < 0 {
		return fieldErr(join(path, "max_duration"), s.MaxDuration, "must be >= 0")
	}
	if s.Quality != "" && len(classes) > 0 {
		if _, ok := classes[s.Quality]; !ok {
			return fieldErr(join(path, "quality"), s.Quality, "not a class of the policy (%s)", classNames(classes))
		}
	}
	return nil
}

// Validate checks the provider on its own: its id, access points (each a
// sip: or sips: URI; mode proxy or trunk; credentials only on a trunk, a
// password file only with a username) and services (a known type, at least
// one segment each, each segment well formed). Fields are named from the
// provider on: "access_points[0].uri".
func (p *Provider) Validate() error { return validateProvider(p, "", nil) }

func validateProvider(p *Provider, path string, classes map[string]ClassPolicy) error {
	if err := checkID(join(path, "id"), p.ID); err != nil {
		return err
	}
	if len(p.AccessPoints) == 0 {
		return fieldErr(join(path, "access_points"), nil, "at least one access point required")
	}
	uris := map[string]int{}
	for i, ap := range p.AccessPoints {
		apath := index(join(path, "access_points"), i)
		if msg := checkSIPURI(ap.URI); msg != "" {
			return fieldErr(join(apath, "uri"), ap.URI, "%s", msg)
		}
		if j, dup := uris[ap.URI]; dup {
			return fieldErr(join(apath, "uri"), ap.URI, "same as access_points[%d]", j)
		}
		uris[ap.URI] = i
		switch ap.Mode {
		case Proxy, Trunk:
		default:
			return fieldErr(join(apath, "mode"), ap.Mode, "want proxy or trunk")
		}
		if ap.PasswordFile != "" && ap.Mode != Trunk {
			return fieldErr(join(apath, "password_file"), nil, "only a trunk access point has credentials")
		}
		if ap.PasswordFile != "" && ap.Username == "" {
			return fieldErr(join(apath, "username"), nil, "required with password_file")
		}
	}
	if len(p.Services) == 0 {
		return fieldErr(join(path, "services"), nil, "at least one service required")
	}
	for i, sv := range p.Services {
		spath := index(join(path, "services"), i)
		switch sv.Type {
		case Transit, Termination, Conference:
		default:
			return fieldErr(join(spath, "type"), sv.Type, "want transit, termination or conference")
		}
		if len(sv.Segments) == 0 {
			return fieldErr(join(spath, "segments"), nil, "at least one segment required")
		}
		for j := range sv.Segments {
			if err := validateSegment(&sv.Segments[j], index(join(spath, "segments"), j), classes); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkSIPURI returns what is wrong with an access point's URI, or "": it
// must be sip: or sips:, with an optional user part, a host (name, IPv4
// address or bracketed IPv6 address), an optional port 1 to 65535, and
// optional ;parameters.
func checkSIPURI(u string) string {
	const want = "want a sip: or sips: URI such as sip:203.0.113.5:5060"
	scheme, rest, ok := strings.Cut(u, ":")
	if !ok || (!strings.EqualFold(scheme, "sip") && !strings.EqualFold(scheme, "sips")) {
		return want
	}
	if strings.ContainsAny(rest, " \t\r\n") {
		return "contains white space"
	}
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		rest = rest[:i] // headers
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		if i == 0 {
			return "empty user part before @"
		}
		rest = rest[i+1:]
	}
	hostport, params, _ := strings.Cut(rest, ";")
	for p := range strings.SplitSeq(params, ";") {
		if name, _, _ := strings.Cut(p, "="); params != "" && name == "" {
			return "empty URI parameter"
		}
	}
	var host, port string
	hasPort := false
	if strings.HasPrefix(hostport, "[") {
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return "unclosed [ in host"
		}
		host = hostport[1:end]
		if ip := net.ParseIP(host); ip == nil || !strings.Contains(host, ":") {
			return fmt.Sprintf("%q is not an IPv6 address", host)
		}
		after := hostport[end+1:]
		if after != "" {
			if after[0] != ':' {
				return "want :PORT after the IPv6 address"
			}
			port, hasPort = after[1:], true
		}
	} else {
		host, port, hasPort = strings.Cut(hostport, ":")
		if host == "" {
			return "no host; " + want
		}
		if !validHost(host) {
			return fmt.Sprintf("%q is not a host name or IPv4 address", host)
		}
	}
	if hasPort {
		if !allDigits(port) || len(port) > 5 {
			return fmt.Sprintf("port %q is not a number", port)
		}
		if n := atoiSmall(port); n < 1 || n > 65535 {
			return fmt.Sprintf("port %s outside 1..65535", port)
		}
	}
	return ""
}

func atoiSmall(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// validHost accepts an IPv4 address or a DNS name.
func validHost(h string) bool {
	if ip := net.ParseIP(h); ip != nil {
		return ip.To4() != nil
	}
	if len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// Validate checks the SLA on its own, without knowing which parties are
// providers: ids, kind, two different parties, non-negative prices with a
// currency when anything is charged, the increment, guarantees (loss and
// ASR at most 100 %, MOS 1 to 4.5), capacity, validity (until after
// from), segments, the markup and direct link (node-node only) and the
// voucher (provider-provider only). Fields are named from the SLA on:
// "price.per_minute".
func (s *SLA) Validate() error { return validateSLA(s, "", nil) }

func validateSLA(s *SLA, path string, classes map[string]ClassPolicy) error {
	if err := checkID(join(path, "id"), s.ID); err != nil {
		return err
	}
	if !slices.Contains(Kinds(), s.Kind) {
		return fieldErr(join(path, "kind"), s.Kind, "want node-provider, provider-provider, node-node or user-access")
	}
	for i, p := range s.Between {
		if err := checkID(index(join(path, "between"), i), p); err != nil {
			return err
		}
	}
	if s.Between[0] == s.Between[1] {
		return fieldErr(join(path, "between"), nil, "the two parties are both %q", s.Between[0])
	}

	pp := join(path, "price")
	if err := checkAmount(join(pp, "per_minute"), s.Price.PerMinute); err != nil {
		return err
	}
	if err := checkAmount(join(pp, "setup"), s.Price.Setup); err != nil {
		return err
	}
	switch {
	case s.Price.Currency != "":
		if err := checkCurrency(join(pp, "currency"), s.Price.Currency); err != nil {
			return err
		}
	case s.Price.PerMinute != 0 || s.Price.Setup != 0:
		return fieldErr(join(pp, "currency"), nil, "required when the SLA charges")
	}
	if inc := s.Price.Increment; inc != (Increment{}) && (inc.First < 1 || inc.Next < 1 || inc.First > maxIncrement || inc.Next > maxIncrement) {
		return fieldErr(join(pp, "increment"), fmt.Sprintf("%d/%d", inc.First, inc.Next), "both parts must be 1 to %d seconds", maxIncrement)
	}

	gp, g := join(path, "guarantees"), s.Guarantees
	for _, e := range []error{
		checkNonNeg(join(gp, "max_delay_ms"), g.MaxDelayMs),
		checkPct(join(gp, "max_loss_pct"), g.MaxLossPct),
		checkNonNeg(join(gp, "max_jitter_ms"), g.MaxJitterMs),
		checkMOS(join(gp, "min_mos"), g.MinMOS),
		checkPct(join(gp, "min_asr_pct"), g.MinASRPct),
	} {
		if e != nil {
			return e
		}
	}
	if s.Capacity.MaxCalls < 0 {
		return fieldErr(join(path, "capacity.max_calls"), s.Capacity.MaxCalls, "must be >= 0 (0 is unbounded)")
	}
	if s.Capacity.MaxCPS < 0 {
		return fieldErr(join(path, "capacity.max_cps"), s.Capacity.MaxCPS, "must be >= 0 (0 is unbounded)")
	}
	if v := s.Valid; !v.From.IsZero() && !v.Until.IsZero() && !v.Until.After(v.From) {
		return fieldErr(join(path, "valid.until"), v.Until.Format("2006-01-02T15:04:05Z07:00"), "must be after valid.from (%s)", v.From.Format("2006-01-02T15:04:05Z07:00"))
	}
	for i := range s.Segments {
		if err := validateSegment(&s.Segments[i], index(join(path, "segments"), i), classes); err != nil {
			return err
		}
	}

	if s.MarkupPerMinute != 0 {
		if s.Kind != NodeNode {
			return fieldErr(join(path, "markup_per_minute"), nil, "only a node-node SLA has a markup")
		}
		if err := checkAmount(join(path, "markup_per_minute"), s.MarkupPerMinute); err != nil {
			return err
		}
	}
	if d := s.Direct; d != nil {
		dp := join(path, "direct")
		if s.Kind != NodeNode {
			return fieldErr(dp, nil, "only a node-node SLA has a direct link")
		}
		if err := checkAmount(join(dp, "per_minute"), d.PerMinute); err != nil {
			return err
		}
		if err := checkNonNeg(join(dp, "max_delay_ms"), d.MaxDelayMs); err != nil {
			return err
		}
		if err := checkPct(join(dp, "max_loss_pct"), d.MaxLossPct); err != nil {
			return err
		}
	}
	if s.Voucher != "" {
		vp := join(path, "voucher")
		if s.Kind != ProviderProvider {
			return fieldErr(vp, s.Voucher, "only a provider-provider SLA has a voucher")
		}
		if err := checkID(vp, s.Voucher); err != nil {
			return err
		}
		if s.Voucher == s.Between[0] || s.Voucher == s.Between[1] {
			return fieldErr(vp, s.Voucher, "a party cannot vouch for its own interconnect")
		}
	}
	return nil
}

// Validate checks the catalogue and returns the first problem, a
// *FieldError naming its field:
//   - nodes, providers and SLAs each have a well-formed id, unique among
//     their kind; no provider has a node's id;
//   - each provider and SLA passes its own Validate;
//   - an SLA's parties fit its kind: node-provider binds a provider of the
//     catalogue and a party that is not a provider (a node);
//     provider-provider two providers; node-node two non-providers;
//     user-access [NODE, CLASS]. When the catalogue lists nodes, every
//     node party is one of them; when it has a policy, every class named
//     (a user-access CLASS, a segment's quality) is one of its classes;
//   - every SLA that has a currency has the catalogue's, set by the first;
//   - measurements name an existing SLA (sla) or a non-empty path of
//     existing SLAs (path), not both, with sane values;
//   - call counts name existing SLAs, once each, with active >= 0;
//   - policy classes have non-negative limits and max_hops at most 8.
func (c *Catalogue) Validate() error {
	classes := c.Policy.Classes
	nodes := map[string]int{}
	for i, n := range c.Nodes {
		path := index("nodes", i) + ".id"
		if err := checkID(path, n.ID); err != nil {
			return err
		}
		if j, dup := nodes[n.ID]; dup {
			return fieldErr(path, n.ID, "same as nodes[%d]", j)
		}
		nodes[n.ID] = i
	}
	providers := map[string]int{}
	for i := range c.Providers {
		p, path := &c.Providers[i], index("providers", i)
		if err := validateProvider(p, path, classes); err != nil {
			return err
		}
		if j, dup := providers[p.ID]; dup {
			return fieldErr(path+".id", p.ID, "same as providers[%d]", j)
		}
		if _, isNode := nodes[p.ID]; isNode {
			return fieldErr(path+".id", p.ID, "also a node's id")
		}
		providers[p.ID] = i
	}
	slas := map[string]int{}
	currency, currencyFrom := "", ""
	for i := range c.SLAs {
		s, path := &c.SLAs[i], index("slas", i)
		if err := validateSLA(s, path, classes); err != nil {
			return err
		}
		if j, dup := slas[s.ID]; dup {
			return fieldErr(path+".id", s.ID, "same as slas[%d]", j)
		}
		slas[s.ID] = i
		if err := checkParties(s, path, nodes, providers, classes); err != nil {
			return err
		}
		if cur := s.Price.Currency; cur != "" {
			if currency == "" {
				currency, currencyFrom = cur, path
			} else if cur != currency {
				return fieldErr(path+".price.currency", cur, "the catalogue's currency is %s (first set by %s)", currency, currencyFrom)
			}
		}
	}
	if err := c.validateMeasurements(slas); err != nil {
		return err
	}
	counted := map[string]int{}
	for i, cc := range c.Calls {
		path := index("calls", i)
		if _, ok := slas[cc.SLA]; !ok {
			return fieldErr(path+".sla", cc.SLA, "no such SLA")
		}
		if j, dup := counted[cc.SLA]; dup {
			return fieldErr(path+".sla", cc.SLA, "already counted by calls[%d]", j)
		}
		counted[cc.SLA] = i
		if cc.Active < 0 {
			return fieldErr(path+".active", cc.Active, "must be >= 0")
		}
	}
	return validatePolicy(c.Policy)
}

// checkParties checks an SLA's parties against the catalogue's nodes,
// providers and classes.
func checkParties(s *SLA, path string, nodes, providers map[string]int, classes map[string]ClassPolicy) error {
	bp := join(path, "between")
	isProv := func(i int) bool { _, ok := providers[s.Between[i]]; return ok }
	node := func(i int) error {
		if isProv(i) {
			return fieldErr(index(bp, i), s.Between[i], "a provider, where a %s SLA wants a node", s.Kind)
		}
		if _, ok := nodes[s.Between[i]]; len(nodes) > 0 && !ok {
			return fieldErr(index(bp, i), s.Between[i], "not a node of the catalogue")
		}
		return nil
	}
	provider := func(i int) error {
		if !isProv(i) {
			return fieldErr(index(bp, i), s.Between[i], "not a provider of the catalogue")
		}
		return nil
	}
	switch s.Kind {
	case NodeProvider:
		switch p0, p1 := isProv(0), isProv(1); {
		case p0 && p1:
			return fieldErr(bp, nil, "a node-provider SLA binds a node and a provider; %q and %q are both providers", s.Between[0], s.Between[1])
		case !p0 && !p1:
			return fieldErr(bp, nil, "a node-provider SLA binds a node and a provider; neither %q nor %q is a provider of the catalogue", s.Between[0], s.Between[1])
		case p0:
			return node(1)
		default:
			return node(0)
		}
	case ProviderProvider:
		if err := provider(0); err != nil {
			return err
		}
		if err := provider(1); err != nil {
			return err
		}
		if _, ok := providers[s.Voucher]; s.Voucher != "" && ok {
			return fieldErr(join(path, "voucher"), s.Voucher, "a provider; the voucher is a node")
		}
	case NodeNode:
		if err := node(0); err != nil {
			return err
		}
		return node(1)
	case UserAccess:
		if err := node(0); err != nil {
			return err
		}
		class := s.Between[1]
		if isProv(1) {
			return fieldErr(index(bp, 1), class, "a provider, where a user-access SLA wants a class")
		}
		if _, ok := nodes[class]; ok {
			return fieldErr(index(bp, 1), class, "a node, where a user-access SLA wants a class")
		}
		if _, ok := classes[class]; len(classes) > 0 && !ok {
			return fieldErr(index(bp, 1), class, "not a class of the policy (%s)", classNames(classes))
		}
	}
	return nil
}

func (c *Catalogue) validateMeasurements(slas map[string]int) error {
	for i, m := range c.Measurements {
		path := index("measurements", i)
		switch {
		case m.SLA == "" && len(m.Path) == 0:
			return fieldErr(path, nil, "name an SLA (sla) or a path of SLA ids (path)")
		case m.SLA != "" && len(m.Path) > 0:
			return fieldErr(path+".path", nil, "give sla or path, not both")
		}
		if _, ok := slas[m.SLA]; m.SLA != "" && !ok {
			return fieldErr(path+".sla", m.SLA, "no such SLA")
		}
		for j, id := range m.Path {
			if _, ok := slas[id]; !ok {
				return fieldErr(index(path+".path", j), id, "no such SLA")
			}
		}
		for _, e := range []error{
			checkNonNeg(path+".delay_ms", m.DelayMs),
			checkPct(path+".loss_pct", m.LossPct),
			checkNonNeg(path+".jitter_ms", m.JitterMs),
			checkMOS(path+".mos", m.MOS),
		} {
			if e != nil {
				return e
			}
		}
		if m.Samples < 0 {
			return fieldErr(path+".samples", m.Samples, "must be >= 0")
		}
	}
	return nil
}

// maxPolicyHops bounds a class's max_hops.
const maxPolicyHops = 8

func validatePolicy(p Policy) error {
	for _, name := range slices.Sorted(maps.Keys(p.Classes)) {
		path := "policy.classes." + name
		if err := checkID(path, name); err != nil {
			return fieldErr("policy.classes", name, "bad class name: want letters, digits and - _ . @ + only")
		}
		cp := p.Classes[name]
		for _, e := range []error{
			checkMOS(path+".min_mos", cp.MinMOS),
			checkNonNeg(path+".max_delay_ms", cp.MaxDelayMs),
			checkPct(path+".max_loss_pct", cp.MaxLossPct),
			checkAmount(path+".max_price_per_minute", cp.MaxPricePerMinute),
		} {
			if e != nil {
				return e
			}
		}
		if cp.MaxHops < 0 || cp.MaxHops > maxPolicyHops {
			return fieldErr(path+".max_hops", cp.MaxHops, "must be 0 to %d (0 is %d)", maxPolicyHops, DefaultMaxHops)
		}
	}
	return nil
}
