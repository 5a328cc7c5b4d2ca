package node

import (
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/callmesh/callmesh/election"
	"github.com/callmesh/callmesh/sla"
)

func feedbackCatalogue() *sla.Catalogue {
	return &sla.Catalogue{
		Providers: []sla.Provider{{ID: "cheap"}, {ID: "clean"}},
		SLAs: []sla.SLA{
			{ID: "A-cheap", Kind: sla.NodeProvider, Between: [2]string{"A", "cheap"}},
			{ID: "B-cheap", Kind: sla.NodeProvider, Between: [2]string{"B", "cheap"}},
			{ID: "A-clean", Kind: sla.NodeProvider, Between: [2]string{"A", "clean"}},
		},
	}
}

func TestFeedbackDemotesQuarantinesAndReadmits(t *testing.T) {
	cfg := defaultSLAConfig()
	cfg.QuarantineAfter, cfg.Probation, cfg.ProbationShare = 3, time.Minute, 0.1
	f := newFeedback(cfg, nil)
	cat := feedbackCatalogue()
	now := time.Unix(1_800_000_000, 0)
	step := func(status sla.Status, h float64) []string {
		now = now.Add(10 * time.Second)
		recs := map[string]sla.Record{"A-cheap": {Status: status}, "B-cheap": {Status: status}, "A-clean": {Status: sla.StatusOK}}
		health := func(id string) float64 {
			if id == "A-cheap" {
				return h
			}
			return 1
		}
		return f.update(cat, recs, health, now)
	}
	state := func() (ProviderStatus, ProviderStatus) {
		l := f.list()
		return l[0], l[1]
	}

	step(sla.StatusOK, 1)
	if c, k := state(); c.State != ProviderOK || c.Share != 1 || k.State != ProviderOK {
		t.Fatalf("healthy: %+v %+v", c, k)
	}
	// A warning: demoted to its health's share of sessions.
	step(sla.StatusWarn, 0.9)
	if c, _ := state(); c.State != ProviderDemoted || c.Share != 0.9 {
		t.Fatalf("warning: %+v", c)
	}
	// Breach for two intervals: demoted; the third quarantines.
	step(sla.StatusBreach, 0.5)
	step(sla.StatusBreach, 0.5)
	if c, _ := state(); c.State != ProviderDemoted || c.Breached != 2 {
		t.Fatalf("two breached intervals: %+v", c)
	}
	step(sla.StatusBreach, 0.5)
	c, k := state()
	if c.State != ProviderQuarantined || c.Share != 0 || k.State != ProviderOK {
		t.Fatalf("third breached interval: %+v %+v", c, k)
	}
	avoid := map[string]bool{}
	f.avoid("any session", avoid)
	if !avoid["cheap"] || avoid["clean"] {
		t.Fatalf("quarantined provider not avoided: %v", avoid)
	}
	// Quarantine lasts its probation time whatever the records say.
	for range 5 {
		if clear := step(sla.StatusOK, 1); len(clear) != 0 {
			t.Fatalf("left quarantine early: %v", clear)
		}
	}
	clear := step(sla.StatusBreach, 0.5) // a minute has passed
	if c, _ := state(); c.State != ProviderProbation || c.Share != 0.1 || len(clear) != 1 || clear[0] != "cheap" {
		t.Fatalf("after the quarantine: %+v, clear %v", c, clear)
	}
	// On probation: unknown keeps it there, a breach quarantines it again,
	// ok re-admits it.
	step(sla.StatusUnknown, 1)
	if c, _ := state(); c.State != ProviderProbation {
		t.Fatalf("probation without samples: %+v", c)
	}
	step(sla.StatusBreach, 0.5)
	if c, _ := state(); c.State != ProviderQuarantined {
		t.Fatalf("breach on probation: %+v", c)
	}
	now = now.Add(time.Minute)
	step(sla.StatusUnknown, 1)
	step(sla.StatusOK, 1)
	if c, _ := state(); c.State != ProviderOK || c.Share != 1 {
		t.Fatalf("clean on probation: %+v", c)
	}
}

func TestSessionShareIsProportional(t *testing.T) {
	f := newFeedback(defaultSLAConfig(), nil)
	f.st["cheap"] = &ProviderStatus{ID: "cheap", State: ProviderDemoted, Share: 0.3}
	kept := 0
	const n = 20000
	for i := range n {
		avoid := map[string]bool{}
		f.avoid("s-"+strconv.Itoa(i), avoid)
		if !avoid["cheap"] {
			kept++
		}
	}
	// Binomial(20000, 0.3): standard deviation about 65; allow 5.
	if got := float64(kept) / n; math.Abs(got-0.3) > 5*math.Sqrt(0.3*0.7/n) {
		t.Fatalf("demoted provider with share 0.3 kept %.4f of sessions", got)
	}
}

// A session keeps a provider with share s exactly when the session's unit
// hash with the provider's id falls below s, so every node that agrees on
// the shares agrees on the plans. The expectation is computed here from
// election.Unit, each provider with its own id.
func TestSessionShareDecision(t *testing.T) {
	f := newFeedback(defaultSLAConfig(), nil)
	shares := map[string]float64{"cheap": 0.3, "clean": 0.3, "ok": 1, "out": 0}
	for id, share := range shares {
		f.st[id] = &ProviderStatus{ID: id, State: ProviderDemoted, Share: share}
	}
	differ := 0 // sessions where cheap and clean, with one share, part ways
	for i := range 200 {
		session := "s-" + strconv.Itoa(i)
		avoid := map[string]bool{}
		f.avoid(session, avoid)
		for id, share := range shares {
			if want := election.Unit(session, id) >= share; avoid[id] != want {
				t.Errorf("%s: provider %s (share %g, unit %g) avoided %v, want %v",
					session, id, share, election.Unit(session, id), avoid[id], want)
			}
		}
		if avoid["cheap"] != avoid["clean"] {
			differ++
		}
	}
	if differ == 0 {
		t.Error("providers with the same share are kept by the same sessions: the hash ignores the provider's id")
	}

	// At the boundary: a session whose unit equals the share is left out;
	// the next share up keeps it.
	for _, session := range []string{"s-42", "s-7", "call-1@example"} {
		u := election.Unit(session, "cheap")
		for share, avoided := range map[float64]bool{u: true, math.Nextafter(u, 2): false} {
			f.st["cheap"].Share = share
			avoid := map[string]bool{}
			f.avoid(session, avoid)
			if avoid["cheap"] != avoided {
				t.Errorf("%s: unit %v, share %v: avoided %v, want %v", session, u, share, avoid["cheap"], avoided)
			}
		}
	}
}
