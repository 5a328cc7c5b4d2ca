package node

import (
	"errors"
	"fmt"
	"time"

	"github.com/callmesh/callmesh/sla"
	"go.yaml.in/yaml/v3"
)

// SLAConfig sets how a node publishes its SLAs and measurements and judges
// compliance. The SLAs themselves and the providers they name are the
// top-level sections providers:, slas: and policy: of node.yaml, in the
// catalogue format of package sla.
type SLAConfig struct {
	// OfferTTL is the expiry of a published offer: an offer its node stops
	// republishing (a node gone for good) leaves every catalogue then.
	OfferTTL time.Duration `yaml:"offer_ttl"`
	// Republish is how often a node publishes its offers again.
	Republish time.Duration `yaml:"republish"`
	// MeasureInterval is the length of one measurement interval: each path's
	// calls are aggregated and published once per interval.
	MeasureInterval time.Duration `yaml:"measure_interval"`
	// MeasureKeep is how many intervals a report counts for routing.
	MeasureKeep int `yaml:"measure_keep"`
	// ComplianceWindow is the rolling window of the compliance records, and
	// MinSamples the samples an SLA needs in it before it is judged.
	ComplianceWindow time.Duration `yaml:"compliance_window"`
	MinSamples       int           `yaml:"min_samples"`
	// QuarantineAfter is how many measurement intervals in a row a
	// provider may have an SLA in breach before it is quarantined: no new
	// session uses it for Probation, after which it carries ProbationShare
	// of new sessions until fresh samples judge it.
	QuarantineAfter int           `yaml:"quarantine_after"`
	Probation       time.Duration `yaml:"probation"`
	ProbationShare  float64       `yaml:"probation_share"`
}

func defaultSLAConfig() SLAConfig {
	return SLAConfig{
		OfferTTL: time.Hour, Republish: 10 * time.Minute,
		MeasureInterval: time.Minute, MeasureKeep: 10,
		ComplianceWindow: 15 * time.Minute, MinSamples: 20,
		QuarantineAfter: 3, Probation: 10 * time.Minute, ProbationShare: 0.1,
	}
}

// catalogueSections are the node.yaml sections in the catalogue format.
type catalogueSections struct {
	Providers yaml.Node `yaml:"providers,omitempty"`
	SLAs      yaml.Node `yaml:"slas,omitempty"`
	Policy    yaml.Node `yaml:"policy,omitempty"`
}

func (c *Config) checkSLA() error {
	s := c.SLA
	switch {
	case s.OfferTTL < time.Minute:
		return fieldErr("sla.offer_ttl", s.OfferTTL, "must be at least 1m")
	case s.Republish <= 0 || s.Republish > s.OfferTTL/2:
		return fieldErr("sla.republish", s.Republish, "must be > 0 and at most half of sla.offer_ttl")
	case s.MeasureInterval < 100*time.Millisecond:
		return fieldErr("sla.measure_interval", s.MeasureInterval, "must be at least 100ms")
	case s.MeasureKeep < 1:
		return fieldErr("sla.measure_keep", s.MeasureKeep, "must be >= 1")
	case s.ComplianceWindow < s.MeasureInterval:
		return fieldErr("sla.compliance_window", s.ComplianceWindow, "must be at least sla.measure_interval")
	case s.MinSamples < 1:
		return fieldErr("sla.min_samples", s.MinSamples, "must be >= 1")
	case s.QuarantineAfter < 1:
		return fieldErr("sla.quarantine_after", s.QuarantineAfter, "must be >= 1")
	case s.Probation <= 0:
		return fieldErr("sla.probation", s.Probation, "must be > 0")
	case !(s.ProbationShare > 0 && s.ProbationShare <= 1):
		return fieldErr("sla.probation_share", s.ProbationShare, "must be in (0, 1]")
	}
	_, err := c.Catalogue()
	return err
}

// Catalogue decodes the providers:, slas: and policy: sections: the SLAs
// this node publishes, the providers they name, and the class policy its
// routing applies. Every SLA must be the node's own (ownSLAs).
func (c *Config) Catalogue() (*sla.Catalogue, error) {
	cat, err := sla.DecodeSections(&c.Sections.Providers, &c.Sections.SLAs, &c.Sections.Policy)
	if err == nil {
		err = ownSLAs(c.Name, cat)
	}
	var fe *sla.FieldError
	switch {
	case errors.As(err, &fe):
		return nil, &FieldError{Field: fe.Field, Value: fe.Value, Msg: fe.Msg}
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return cat, nil
}

func (s SLAConfig) complianceConfig() sla.ComplianceConfig {
	return sla.ComplianceConfig{Window: s.ComplianceWindow, MinSamples: s.MinSamples}
}

// SetCatalogueYAML replaces the config's providers:, slas: and policy:
// sections with those of a YAML document in the catalogue format (other
// keys are ignored); Validate checks them. For tests and the demo, which
// build their configs in code.
func (c *Config) SetCatalogueYAML(doc []byte) error {
	var s catalogueSections
	if err := yaml.Unmarshal(doc, &s); err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	c.Sections = s
	return nil
}

// ownSLAs checks that node may publish every SLA of cat: those it is a
// party to, and provider-provider interconnects it vouches for (named as
// their voucher, or with none named: sla.OfferFor then names it).
func ownSLAs(node string, cat *sla.Catalogue) error {
	for i := range cat.SLAs {
		s := &cat.SLAs[i]
		if _, party := s.Other(node); party {
			continue
		}
		if s.Kind == sla.ProviderProvider && (s.Voucher == "" || s.Voucher == node) {
			continue
		}
		return &sla.FieldError{Field: fmt.Sprintf("slas[%d].between", i), Value: s.Between[0] + "," + s.Between[1],
			Msg: "node " + node + " is not a party (a node publishes its own SLAs, or vouches for provider-provider ones)"}
	}
	return nil
}
