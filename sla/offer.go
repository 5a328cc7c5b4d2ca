package sla

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Offer is the body of a signed gossip envelope by which a node publishes
// an SLA it is a party to (or a provider-provider SLA it vouches for),
// together with the providers the SLA names, or withdraws one.
type Offer struct {
	SLA *SLA `json:"sla,omitempty"`
	// Providers are the SLA's provider parties (their access points and
	// services), so that receivers learn them. Password files never travel.
	Providers []Provider `json:"providers,omitempty"`
	Issuer    string     `json:"issuer"`              // the publishing node's name
	Withdrawn string     `json:"withdrawn,omitempty"` // an SLA id withdrawn (then SLA is nil)
}

// ID is the id of the SLA the offer publishes or withdraws.
func (o *Offer) ID() string {
	if o.SLA != nil {
		return o.SLA.ID
	}
	return o.Withdrawn
}

// Check validates the offer on its own, as published by the node named
// issuer (the envelope's signer):
//   - Issuer is issuer;
//   - a withdrawal names a well-formed SLA id and carries nothing else;
//   - otherwise the SLA passes its Validate; issuer is one of its parties,
//     except for a provider-provider SLA, which issuer publishes as its
//     voucher (SLA.Voucher must be issuer); a user-access SLA is published
//     by its node, Between[0];
//   - Providers are exactly the SLA's provider parties (the party other
//     than issuer for node-provider, both for provider-provider, none
//     otherwise), each valid and without a password file.
//
// Errors are *FieldErrors named from the offer on ("sla.price.currency",
// "providers[0].access_points[0].uri").
func (o *Offer) Check(issuer string) error {
	if issuer == "" {
		return fieldErr("issuer", nil, "required")
	}
	if o.Issuer != issuer {
		return fieldErr("issuer", o.Issuer, "the offer is published by %q", issuer)
	}
	if o.Withdrawn != "" {
		if o.SLA != nil || len(o.Providers) > 0 {
			return fieldErr("withdrawn", o.Withdrawn, "a withdrawal carries no SLA and no providers")
		}
		return checkID("withdrawn", o.Withdrawn)
	}
	s := o.SLA
	if s == nil {
		return fieldErr("sla", nil, "required, unless the offer withdraws one")
	}
	if err := validateSLA(s, "sla", nil); err != nil {
		return err
	}
	var want []string // the provider parties
	switch s.Kind {
	case ProviderProvider:
		if s.Voucher != issuer {
			return fieldErr("sla.voucher", s.Voucher, "must be the issuer %q, which vouches for the interconnect", issuer)
		}
		want = s.Between[:]
	default:
		other, party := s.Other(issuer)
		if !party {
			return fieldErr("sla.between", nil, "the issuer %q is not a party of %q and %q", issuer, s.Between[0], s.Between[1])
		}
		switch s.Kind {
		case NodeProvider:
			want = []string{other}
		case UserAccess:
			if s.Between[0] != issuer {
				return fieldErr("sla.between[0]", s.Between[0], "a user-access SLA is published by its node, %q", issuer)
			}
		}
	}
	seen := map[string]int{}
	for i := range o.Providers {
		p, path := &o.Providers[i], index("providers", i)
		if err := validateProvider(p, path, nil); err != nil {
			return err
		}
		if !slices.Contains(want, p.ID) {
			return fieldErr(path+".id", p.ID, "not a provider party of SLA %q", s.ID)
		}
		if j, dup := seen[p.ID]; dup {
			return fieldErr(path+".id", p.ID, "same as providers[%d]", j)
		}
		seen[p.ID] = i
		for j, ap := range p.AccessPoints {
			if ap.PasswordFile != "" {
				return fieldErr(index(path+".access_points", j)+".password_file", nil, "a password file never leaves its node")
			}
		}
	}
	for _, id := range want {
		if _, ok := seen[id]; !ok {
			return fieldErr("providers", nil, "missing provider %q, a party of SLA %q", id, s.ID)
		}
	}
	return nil
}

// OfferFor builds the offer by which the node issuer publishes the SLA
// slaID of its catalogue cat, with deep copies of the SLA and of its
// provider parties (password files removed). A provider-provider SLA
// without a voucher gets issuer as its voucher. An SLA that charges
// (a markup or a direct link) without a currency of its own gets the
// catalogue's, since receivers cannot know it otherwise. The offer is
// checked before it is returned.
func OfferFor(cat *Catalogue, slaID, issuer string) (*Offer, error) {
	src := cat.SLA(slaID)
	if src == nil {
		return nil, fmt.Errorf("sla: %w: no SLA %q in the catalogue", ErrInvalid, slaID)
	}
	s := src.Clone()
	if s.Kind == ProviderProvider && s.Voucher == "" {
		s.Voucher = issuer
	}
	if s.Price.Currency == "" && charges(s) {
		s.Price.Currency = cat.Currency()
	}
	o := &Offer{SLA: s, Issuer: issuer}
	for _, party := range s.Between {
		if s.Kind != NodeProvider && s.Kind != ProviderProvider {
			break
		}
		if party == issuer {
			continue
		}
		p := cat.Provider(party)
		if p == nil {
			if s.Kind == NodeProvider {
				continue // Check names the problem
			}
			return nil, fmt.Errorf("sla: %w: SLA %q names provider %q, which the catalogue lacks", ErrInvalid, slaID, party)
		}
		c := p.Clone()
		for i := range c.AccessPoints {
			c.AccessPoints[i].PasswordFile = ""
		}
		o.Providers = append(o.Providers, *c)
	}
	if err := o.Check(issuer); err != nil {
		return nil, fmt.Errorf("SLA %q: %w", slaID, err)
	}
	return o, nil
}

// charges reports whether an SLA charges anything.
func charges(s *SLA) bool {
	return s.Price.PerMinute != 0 || s.Price.Setup != 0 || s.MarkupPerMinute != 0 || (s.Direct != nil && s.Direct.PerMinute != 0)
}

// Merge builds the federation's catalogue from the current offers, one per
// publisher and SLA id; withdrawals, nil offers and offers that fail Check
// against their own Issuer are skipped. Every node computes the same
// catalogue from the same offers, whatever their order:
//   - when several offers carry one SLA id (both nodes of a peering may
//     publish it), the one whose Issuer sorts first is used, and among
//     offers of one issuer the one whose JSON encoding sorts first;
//   - SLAs are sorted by id, providers by id;
//   - when offers carry different definitions of one provider, the
//     definition from the offer whose SLA id sorts first wins;
//   - an SLA whose parties contradict the providers of the other offers (a
//     node party, issuer or voucher that another offer defines as a
//     provider) is left out, with the providers only it carried.
//
// The result has no nodes, measurements, call counts or policy, and holds
// copies: the offers are not shared. It is not validated as a whole: SLAs
// of different nodes may be in different currencies (Compose refuses to
// mix them).
func Merge(offers []*Offer) *Catalogue {
	byID := map[string]*Offer{}
	for _, o := range offers {
		if o == nil || o.SLA == nil || o.Check(o.Issuer) != nil {
			continue
		}
		if cur, ok := byID[o.SLA.ID]; ok && !offerBefore(o, cur) {
			continue
		}
		byID[o.SLA.ID] = o
	}
	chosen := make([]*Offer, 0, len(byID))
	for _, o := range byID {
		chosen = append(chosen, o)
	}
	slices.SortFunc(chosen, func(a, b *Offer) int { return cmp.Compare(a.SLA.ID, b.SLA.ID) })

	isProvider := map[string]bool{}
	for _, o := range chosen {
		for _, p := range o.Providers {
			isProvider[p.ID] = true
		}
	}
	cat := &Catalogue{Providers: []Provider{}, SLAs: []SLA{}}
	defined := map[string]bool{}
	for _, o := range chosen {
		if !partiesConsistent(o, isProvider) {
			continue
		}
		cat.SLAs = append(cat.SLAs, *o.SLA.Clone())
		for i := range o.Providers {
			if p := &o.Providers[i]; !defined[p.ID] {
				defined[p.ID] = true
				cat.Providers = append(cat.Providers, *p.Clone())
			}
		}
	}
	slices.SortFunc(cat.Providers, func(a, b Provider) int { return cmp.Compare(a.ID, b.ID) })
	return cat
}

// offerBefore orders offers of one SLA id: by issuer, then by encoding.
func offerBefore(a, b *Offer) bool {
	if a.Issuer != b.Issuer {
		return a.Issuer < b.Issuer
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Compare(ja, jb) < 0
}

// partiesConsistent reports whether none of an offer's node parties (and
// its issuer) is a provider of the merged offers.
func partiesConsistent(o *Offer, isProvider map[string]bool) bool {
	if isProvider[o.Issuer] {
		return false
	}
	s := o.SLA
	switch s.Kind {
	case NodeNode, UserAccess:
		return !isProvider[s.Between[0]] && !isProvider[s.Between[1]]
	}
	return true
}

// Clone returns a deep copy of the SLA.
func (s *SLA) Clone() *SLA {
	c := *s
	c.Segments = cloneSegments(s.Segments)
	if s.Direct != nil {
		d := *s.Direct
		c.Direct = &d
	}
	return &c
}

// Clone returns a deep copy of the provider.
func (p *Provider) Clone() *Provider {
	c := *p
	c.AccessPoints = slices.Clone(p.AccessPoints)
	if p.Services != nil {
		c.Services = make([]Service, len(p.Services))
		for i, sv := range p.Services {
			c.Services[i] = Service{Type: sv.Type, Segments: cloneSegments(sv.Segments)}
		}
	}
	return &c
}

func cloneSegments(segs []Segment) []Segment {
	if segs == nil {
		return nil
	}
	out := make([]Segment, len(segs))
	for i, s := range segs {
		out[i] = s
		out[i].Hours = slices.Clone(s.Hours)
	}
	return out
}

// SLA returns the catalogue's SLA of that id, or nil.
func (c *Catalogue) SLA(id string) *SLA {
	for i := range c.SLAs {
		if c.SLAs[i].ID == id {
			return &c.SLAs[i]
		}
	}
	return nil
}

// Provider returns the catalogue's provider of that id, or nil.
func (c *Catalogue) Provider(id string) *Provider {
	for i := range c.Providers {
		if c.Providers[i].ID == id {
			return &c.Providers[i]
		}
	}
	return nil
}

// Currency is the catalogue's currency: that of its first SLA that has
// one, or "".
func (c *Catalogue) Currency() string {
	for i := range c.SLAs {
		if cur := c.SLAs[i].Price.Currency; cur != "" {
			return cur
		}
	}
	return ""
}

// segmentJSON is a Segment's JSON form: max_duration is a duration string
// such as "2h0m0s", as in the catalogue YAML, not a count of nanoseconds.
type segmentJSON struct {
	Location    string `json:"location"`
	Hours       Hours  `json:"hours,omitempty"`
	MaxDuration string `json:"max_duration,omitempty"`
	Quality     string `json:"quality,omitempty"`
}

// MarshalJSON writes max_duration as a duration string ("2h0m0s").
func (s Segment) MarshalJSON() ([]byte, error) {
	j := segmentJSON{Location: s.Location, Hours: s.Hours, Quality: s.Quality}
	if s.MaxDuration != 0 {
		j.MaxDuration = s.MaxDuration.String()
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads max_duration as a duration string.
func (s *Segment) UnmarshalJSON(b []byte) error {
	var j segmentJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	var d time.Duration
	if j.MaxDuration != "" {
		var err error
		if d, err = time.ParseDuration(j.MaxDuration); err != nil {
			return fieldErr("max_duration", j.MaxDuration, "want a duration such as 90m or 2h")
		}
	}
	*s = Segment{Location: j.Location, Hours: j.Hours, MaxDuration: d, Quality: j.Quality}
	return nil
}
