// Package sla holds what service providers sell and what the federation
// knows of them: providers with their access points and services, the SLAs
// between nodes, providers and users' access networks, the catalogue they
// form, the matching of a call to a service segment, and the compliance of
// measured quality with an SLA's guarantees.
//
// The package is pure: the catalogue, measurements and the time are
// arguments. It knows nothing of libp2p or SIP; signed offers travel in
// gossip envelopes, whose body is an Offer.
package sla

import (
	"time"
)

// Kind is the kind of an SLA: which two parties it binds.
type Kind string

// The kinds of SLA.
const (
	// NodeProvider binds a node and a provider: the node may send calls to
	// the provider and receive calls from it (both ways unless OneWay).
	NodeProvider Kind = "node-provider"
	// ProviderProvider is an interconnect between two providers; a node
	// that publishes one vouches for it.
	ProviderProvider Kind = "provider-provider"
	// NodeNode is a peering: each node may use the other's provider
	// contracts for a markup, and optionally a direct voice link.
	NodeNode Kind = "node-node"
	// UserAccess states the access leg's expected delay and loss for a
	// class of users of a node: between [NODE, CLASS].
	UserAccess Kind = "user-access"
)

// Kinds lists the valid kinds.
func Kinds() []Kind { return []Kind{NodeProvider, ProviderProvider, NodeNode, UserAccess} }

// Mode is how a provider's access point routes a request.
type Mode string

const (
	// Proxy honours a preloaded Route set (loose routing), so the
	// provider may sit anywhere in a path.
	Proxy Mode = "proxy"
	// Trunk routes on the Request-URI and may challenge with 407, so the
	// provider may only be the last provider of a path.
	Trunk Mode = "trunk"
)

// ServiceType is what a provider sells on a segment.
type ServiceType string

const (
	Transit     ServiceType = "transit"
	Termination ServiceType = "termination"
	Conference  ServiceType = "conference"
)

// AccessPoint is one SIP entry to a provider.
type AccessPoint struct {
	URI  string `json:"uri"`
	Mode Mode   `json:"mode"`
	// Outbound digest credentials for a trunk that challenges. The password
	// is read from PasswordFile by the node that holds the contract and
	// never leaves it: offers carry neither.
	Username     string `json:"username,omitempty"`
	PasswordFile string `json:"-"`
}

// Provider is a service provider as the federation knows it.
type Provider struct {
	ID           string        `json:"id"`
	Name         string        `json:"name,omitempty"`
	AccessPoints []AccessPoint `json:"access_points"`
	Services     []Service     `json:"services"`
}

// Service is one service type a provider offers, on its segments.
type Service struct {
	Type     ServiceType `json:"type"`
	Segments []Segment   `json:"segments"`
}

// Segment is where and when a service applies.
type Segment struct {
	// Location is a destination number prefix such as "+49", or "*" for
	// any destination (calls to users as well as numbers).
	Location string `json:"location"`
	// Hours are the windows in which the segment applies; empty means
	// always.
	Hours Hours `json:"hours,omitempty"`
	// MaxDuration caps a call carried on the segment: the node ends the
	// call then. It is not a filter; 0 means no cap.
	MaxDuration time.Duration `json:"max_duration,omitempty"`
	// Quality is the call class the segment serves; "" serves every class.
	Quality string `json:"quality,omitempty"`
}

// Hours is a list of weekly time windows; a time matches when any window
// holds it.
type Hours []Window

// Window is one weekly window, "Mon-Fri 08:00-18:00 Europe/Berlin": the days
// on which it opens, the local start and end (minutes after midnight, end
// may be 1440; an end before the start crosses midnight into the next day),
// and the time zone.
type Window struct {
	Days  [7]bool // indexed by time.Weekday
	Start int     // minutes after local midnight
	End   int     // minutes after local midnight, 1..1440
	Loc   *time.Location
	Text  string // as written, for errors and display
}

// SLA is a contract between two parties.
type SLA struct {
	ID      string    `json:"id"`
	Kind    Kind      `json:"kind"`
	Between [2]string `json:"between"`
	// OneWay: traffic flows only from Between[0] to Between[1].
	OneWay     bool       `json:"one_way,omitempty"`
	Price      Price      `json:"price"`
	Guarantees Guarantees `json:"guarantees"`
	Capacity   Capacity   `json:"capacity"`
	Valid      Validity   `json:"valid"`
	// Segments, when given, restrict the SLA to these segments on top of
	// the provider's own.
	Segments []Segment `json:"segments,omitempty"`
	// Node-node only: the markup per minute a node pays to use its peer's
	// provider contracts, and the optional direct voice link.
	MarkupPerMinute Money   `json:"markup_per_minute,omitempty"`
	Direct          *Direct `json:"direct,omitempty"`
	// Voucher is the node that vouches for a provider-provider SLA it
	// published; empty for the other kinds.
	Voucher string `json:"voucher,omitempty"`
}

// Price is what an SLA charges.
type Price struct {
	PerMinute Money     `json:"per_minute"`
	Currency  string    `json:"currency"`
	Increment Increment `json:"increment"`
	Setup     Money     `json:"setup"`
}

// Increment is a billing increment "first/next" in seconds, like 60/60 or
// 1/1: the first First seconds are billed as a block, then blocks of Next.
type Increment struct {
	First, Next int
}

// Guarantees are the quality an SLA promises. A zero field promises
// nothing on that metric.
type Guarantees struct {
	MaxDelayMs  float64 `json:"max_delay_ms,omitempty"`  // one-way network delay
	MaxLossPct  float64 `json:"max_loss_pct,omitempty"`  // packet loss
	MaxJitterMs float64 `json:"max_jitter_ms,omitempty"` // interarrival jitter
	MinMOS      float64 `json:"min_mos,omitempty"`       // MOS-CQE
	MinASRPct   float64 `json:"min_asr_pct,omitempty"`   // answer-seizure ratio
}

// Capacity bounds an SLA's use; 0 is unbounded.
type Capacity struct {
	MaxCalls int `json:"max_calls,omitempty"` // concurrent calls
	MaxCPS   int `json:"max_cps,omitempty"`   // new calls per second
}

// Validity is when an SLA holds; a zero bound is open.
type Validity struct {
	From  time.Time `json:"from,omitzero"`
	Until time.Time `json:"until,omitzero"`
}

// Direct is a node-node SLA's direct voice link between the two nodes.
type Direct struct {
	PerMinute  Money   `json:"per_minute"`
	MaxDelayMs float64 `json:"max_delay_ms,omitempty"`
	MaxLossPct float64 `json:"max_loss_pct,omitempty"`
}

// NodeRef names a node in a catalogue file; a running node knows its peers.
type NodeRef struct {
	ID string `json:"id"`
}

// Measurement is recent measured quality, of one SLA's edge (SLA set) or of
// one whole path (Path lists its SLA ids in order).
type Measurement struct {
	SLA      string   `json:"sla,omitempty"`
	Path     []string `json:"path,omitempty"`
	DelayMs  float64  `json:"delay_ms"`
	LossPct  float64  `json:"loss_pct"`
	JitterMs float64  `json:"jitter_ms,omitempty"`
	MOS      float64  `json:"mos,omitempty"`
	Samples  int      `json:"samples"`
	// DelayUnknown: nobody timed the delay (no round trip was measured);
	// DelayMs means nothing, and routing keeps its estimate of the delay
	// while it takes the measured loss.
	DelayUnknown bool `json:"delay_unknown,omitempty"`
}

// CallCount is the live number of calls on an SLA.
type CallCount struct {
	SLA    string `json:"sla"`
	Active int    `json:"active"`
}

// Policy holds the per-class limits a path must meet.
type Policy struct {
	Classes map[string]ClassPolicy `json:"classes"`
}

// ClassPolicy is what a class of call demands of its path. A zero field
// sets no limit, except MaxHops, whose zero means DefaultMaxHops.
type ClassPolicy struct {
	MinMOS            float64 `json:"min_mos,omitempty"`
	MaxDelayMs        float64 `json:"max_delay_ms,omitempty"`
	MaxLossPct        float64 `json:"max_loss_pct,omitempty"`
	MaxPricePerMinute Money   `json:"max_price_per_minute,omitempty"`
	MaxHops           int     `json:"max_hops,omitempty"`
}

// DefaultMaxHops is the most providers a path may have.
const DefaultMaxHops = 4

// Catalogue is what a node (or a catalogue file) knows: providers and SLAs,
// and optionally measurements, live call counts and the class policy.
type Catalogue struct {
	Nodes        []NodeRef     `json:"nodes,omitempty"`
	Providers    []Provider    `json:"providers"`
	SLAs         []SLA         `json:"slas"`
	Measurements []Measurement `json:"measurements,omitempty"`
	Calls        []CallCount   `json:"calls,omitempty"`
	Policy       Policy        `json:"policy"`
}
