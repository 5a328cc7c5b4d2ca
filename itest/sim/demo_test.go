package sim

import (
	"maps"
	"slices"
	"testing"
	"time"
)

// Every schedule holds each phase in order: baseline, the degradation,
// degraded rounds, midnet down (switched once) and back (switched once).
func TestDemoSchedule(t *testing.T) {
	order := []string{PhaseBaseline, PhaseDegrade, PhaseDegraded, PhaseFailover, PhaseRecovered}
	for n := 0; n <= 40; n++ {
		rounds := demoSchedule(n)
		if len(rounds) != max(n, minRounds) {
			t.Fatalf("n=%d: %d rounds", n, len(rounds))
		}
		var phases []string
		downs, ups, degrades := 0, 0, 0
		for i, r := range rounds {
			if len(phases) == 0 || phases[len(phases)-1] != r.phase {
				phases = append(phases, r.phase)
			}
			if r.down {
				downs++
				if r.phase != PhaseFailover || rounds[i-1].phase == PhaseFailover {
					t.Errorf("n=%d: midnet goes down in round %d (%s)", n, i, r.phase)
				}
			}
			if r.up {
				ups++
				if r.phase != PhaseRecovered || rounds[i-1].phase != PhaseFailover {
					t.Errorf("n=%d: midnet comes back in round %d (%s)", n, i, r.phase)
				}
			}
			if r.phase == PhaseDegrade {
				degrades++
			}
		}
		if !slices.Equal(phases, order) || downs != 1 || ups != 1 || degrades != 1 {
			t.Fatalf("n=%d: phases %v, %d downs, %d ups, %d degradations", n, phases, downs, ups, degrades)
		}
	}
}

func TestDemoRounds(t *testing.T) {
	hold, gap := 4*time.Second, 3*time.Second
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{{time.Second, 5}, {30 * time.Second, 5}, {60 * time.Second, 8}, {5 * time.Minute, 40}} {
		if got := demoRounds(tc.d, hold, gap); got != tc.want {
			t.Errorf("demoRounds(%s) = %d, want %d", tc.d, got, tc.want)
		}
	}
}

// The catalogue every node gets parses, and between them the nodes
// publish exactly the SLAs the demo waits for: none it waits for in vain,
// none it does not know of.
func TestDemoCatalogue(t *testing.T) {
	d := &Demo{providers: demoProviders()}
	for _, p := range d.providers {
		p.p = &Provider{host: "127.0.0.1", port: 5060, role: RoleProxy}
	}
	published := map[string]bool{}
	for i := range 3 {
		cfg, err := NodeConfig("node"+string(rune('0'+i)), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.SetCatalogueYAML([]byte(d.catalogue(i, "trunk.password"))); err != nil {
			t.Fatal(err)
		}
		cat, err := cfg.Catalogue()
		if err != nil {
			t.Fatalf("node%d: %v\n%s", i, err, d.catalogue(i, "trunk.password"))
		}
		for _, s := range cat.SLAs {
			published[s.ID] = true
		}
		if len(cat.Providers) != len(d.providers) {
			t.Errorf("node%d knows %d providers", i, len(cat.Providers))
		}
	}
	waited := map[string]bool{}
	for _, id := range d.slaIDs() {
		waited[id] = true
	}
	for _, id := range slices.Sorted(maps.Keys(published)) {
		if !waited[id] {
			t.Errorf("a node publishes %s, which the demo does not wait for", id)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(waited)) {
		if !published[id] {
			t.Errorf("the demo waits for %s, which no node publishes", id)
		}
	}
	if len(waited) == 0 {
		t.Error("the demo waits for no SLA")
	}
}
