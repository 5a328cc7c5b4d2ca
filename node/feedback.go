package node

import (
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/callmesh/callmesh/election"
	"github.com/callmesh/callmesh/sla"
)

// ProviderState is where a provider stands in the federation's feedback
// loop, as this node judges it from the SLA compliance records.
type ProviderState string

const (
	// ProviderOK: every SLA of the provider complies (or is not judged yet).
	ProviderOK ProviderState = "ok"
	// ProviderDemoted: an SLA of the provider warns or is in breach; the
	// provider gets only its health's share of new sessions.
	ProviderDemoted ProviderState = "demoted"
	// ProviderQuarantined: in breach for sla.quarantine_after intervals in a
	// row; no new session uses it until sla.probation has passed.
	ProviderQuarantined ProviderState = "quarantined"
	// ProviderProbation: back from quarantine with its compliance history
	// cleared, carrying sla.probation_share of new sessions until enough
	// new samples judge it (ok: re-admitted; breach: quarantined again).
	ProviderProbation ProviderState = "probation"
)

// ProviderStatus is one provider's standing.
type ProviderStatus struct {
	ID     string        `json:"id"`
	State  ProviderState `json:"state"`
	Share  float64       `json:"share"`  // of new sessions it may carry, 0..1
	Health float64       `json:"health"` // the worst health of its SLAs
	// Breached counts consecutive intervals with an SLA in breach.
	Breached int       `json:"breached_intervals"`
	Since    time.Time `json:"since"`
	Until    time.Time `json:"until,omitzero"` // end of a quarantine
}

// feedback keeps each provider's standing from the compliance records of
// its SLAs, once per measurement interval. Routing applies it per session:
// a provider with share s is left out of a session's plan unless the
// session's hash (with the provider's id) falls below s, so every node
// that agrees on the shares agrees on the plans, and a demoted provider
// loses traffic in proportion to its health rather than all at once.
type feedback struct {
	cfg SLAConfig
	log *slog.Logger
	mu  sync.Mutex
	st  map[string]*ProviderStatus
}

func newFeedback(cfg SLAConfig, log *slog.Logger) *feedback {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &feedback{cfg: cfg, log: log, st: map[string]*ProviderStatus{}}
}

// providerSLAs maps each provider to the SLAs it is a party to.
func providerSLAs(cat *sla.Catalogue) map[string][]*sla.SLA {
	out := map[string][]*sla.SLA{}
	for i := range cat.SLAs {
		s := &cat.SLAs[i]
		for _, party := range s.Between {
			if cat.Provider(party) != nil {
				out[party] = append(out[party], s)
			}
		}
	}
	return out
}

// update judges every provider of cat from the latest records and returns
// the providers whose compliance history must be cleared (entering
// probation).
func (f *feedback) update(cat *sla.Catalogue, records map[string]sla.Record, health func(string) float64, now time.Time) (clear []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for p, slas := range providerSLAs(cat) {
		st := f.st[p]
		if st == nil {
			st = &ProviderStatus{ID: p, State: ProviderOK, Share: 1, Health: 1, Since: now}
			f.st[p] = st
		}
		// judged: fresh samples judged at least one of its SLAs (an
		// interconnect nobody measures alone stays unknown for ever).
		h, breach, judged := 1.0, false, false
		for _, s := range slas {
			h = math.Min(h, health(s.ID))
			switch records[s.ID].Status {
			case sla.StatusBreach:
				breach = true
			case sla.StatusOK, sla.StatusWarn:
				judged = true
			}
		}
		st.Health = h
		move := func(to ProviderState, share float64) {
			if st.State != to {
				f.log.Info("provider "+string(to), "provider", p, "from", st.State, "health", h, "share", share)
				st.State, st.Since = to, now
			}
			st.Share = share
		}
		switch st.State {
		case ProviderQuarantined:
			if !now.Before(st.Until) {
				move(ProviderProbation, f.cfg.ProbationShare)
				st.Until, st.Breached = time.Time{}, 0
				clear = append(clear, p)
			}
		case ProviderProbation:
			switch {
			case breach:
				move(ProviderQuarantined, 0)
				st.Until = now.Add(f.cfg.Probation)
			case judged:
				move(ProviderOK, 1)
			}
		default:
			if breach {
				st.Breached++
			} else {
				st.Breached = 0
			}
			switch {
			case st.Breached >= f.cfg.QuarantineAfter:
				move(ProviderQuarantined, 0)
				st.Until = now.Add(f.cfg.Probation)
			case h < 1:
				move(ProviderDemoted, h)
			default:
				move(ProviderOK, 1)
			}
		}
	}
	return clear
}

// avoid lists the providers a session's plan leaves out: those whose share
// the session's hash does not fall under.
func (f *feedback) avoid(session string, into map[string]bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for p, st := range f.st {
		if st.Share >= 1 {
			continue
		}
		if st.Share <= 0 || election.Unit(session, p) >= st.Share {
			into[p] = true
		}
	}
}

// list returns every provider's standing, by id.
func (f *feedback) list() []ProviderStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]ProviderStatus, 0, len(f.st))
	for _, st := range f.st {
		out = append(out, *st)
	}
	slices.SortFunc(out, func(a, b ProviderStatus) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	return out
}

// quarantined lists the providers no session may use now.
func (f *feedback) quarantined(into map[string]bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for p, st := range f.st {
		if st.Share <= 0 {
			into[p] = true
		}
	}
}
