package sla

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// issuers of the base catalogue's SLAs.
var baseIssuers = map[string]string{"A-p": "A", "q-B": "B", "p-q": "A", "A-B": "A", "A-gold": "A"}

func baseOffers(t *testing.T) []*Offer {
	t.Helper()
	cat := base(t)
	var out []*Offer
	for _, s := range cat.SLAs {
		o, err := OfferFor(cat, s.ID, baseIssuers[s.ID])
		if err != nil {
			t.Fatalf("%s: %v", s.ID, err)
		}
		out = append(out, o)
	}
	return out
}

func TestOfferFor(t *testing.T) {
	cat := base(t)
	cat.Providers[0].Services[0].Segments[0].Hours = mustHours(t, "Mon-Fri 08:00-18:00 Europe/Berlin")
	cat.Providers[0].Services[0].Segments[0].MaxDuration = 2 * time.Hour
	for _, tc := range []struct {
		id, issuer string
		providers  []string
		voucher    string
	}{
		{"A-p", "A", []string{"p"}, ""},
		{"q-B", "B", []string{"q"}, ""},
		{"p-q", "A", []string{"p", "q"}, "A"},
		{"A-B", "A", nil, ""},
		{"A-B", "B", nil, ""},
		{"A-gold", "A", nil, ""},
	} {
		o, err := OfferFor(cat, tc.id, tc.issuer)
		if err != nil {
			t.Errorf("%s by %s: %v", tc.id, tc.issuer, err)
			continue
		}
		var ids []string
		for _, p := range o.Providers {
			ids = append(ids, p.ID)
			for _, ap := range p.AccessPoints {
				if ap.PasswordFile != "" {
					t.Errorf("%s: password file in the offer", tc.id)
				}
			}
		}
		if !slices.Equal(ids, tc.providers) || o.SLA.Voucher != tc.voucher || o.Issuer != tc.issuer || o.ID() != tc.id {
			t.Errorf("%s by %s: providers %v, voucher %q, issuer %q", tc.id, tc.issuer, ids, o.SLA.Voucher, o.Issuer)
		}
	}
	// The offer holds copies: the catalogue keeps its password file.
	if cat.Providers[0].AccessPoints[1].PasswordFile != "p.pw" || cat.SLAs[2].Voucher != "A" {
		t.Errorf("catalogue changed: %+v", cat.Providers[0].AccessPoints[1])
	}
	// A node-node SLA that charges a markup gets the catalogue's currency.
	o, _ := OfferFor(cat, "A-B", "A")
	if o.SLA.Price.Currency != "EUR" || cat.SLA("A-B").Price.Currency != "" {
		t.Errorf("currency %q", o.SLA.Price.Currency)
	}

	for _, tc := range []struct{ id, issuer, msg string }{
		{"nope", "A", `no SLA "nope"`},
		{"q-B", "A", `the issuer "A" is not a party`},
		{"A-gold", "gold", "published by its node"},
	} {
		if _, err := OfferFor(cat, tc.id, tc.issuer); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s by %s: err = %v, want %q", tc.id, tc.issuer, err, tc.msg)
		}
	}
	cat.SLAs[2].Voucher = "B"
	if _, err := OfferFor(cat, "p-q", "A"); err == nil || !strings.Contains(err.Error(), "sla.voucher") {
		t.Errorf("voucher B published by A: %v", err)
	}
	cat.SLAs[2].Voucher = ""
	cat.Providers = cat.Providers[:1]
	if _, err := OfferFor(cat, "p-q", "A"); err == nil || !strings.Contains(err.Error(), `names provider "q"`) {
		t.Errorf("missing provider: %v", err)
	}
	if _, err := OfferFor(cat, "q-B", "B"); err == nil || !strings.Contains(err.Error(), `missing provider "q"`) {
		t.Errorf("missing provider of a node-provider SLA: %v", err)
	}
}

func TestOfferJSON(t *testing.T) {
	cat := base(t)
	seg := &cat.Providers[0].Services[0].Segments[0]
	seg.Hours = mustHours(t, "Mon-Fri 22:00-06:00 Europe/Berlin; Sat+Sun 00:00-24:00 UTC")
	seg.MaxDuration = 90 * time.Minute
	cat.SLAs[0].Price.Setup = MustMoney("0.0125")
	cat.SLAs[0].Price.Increment = Increment{30, 6}
	cat.SLAs[0].Valid.Until = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	o, err := OfferFor(cat, "A-p", "A")
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	js := string(b)
	for _, want := range []string{
		`"per_minute":"0.0100"`, `"setup":"0.0125"`, `"currency":"EUR"`, `"increment":"30/6"`,
		`"hours":["Mon-Fri 22:00-06:00 Europe/Berlin","Sat+Sun 00:00-24:00 UTC"]`, `"max_duration":"1h30m0s"`,
		`"until":"2027-01-01T00:00:00Z"`, `"username":"A"`, `"mode":"trunk"`, `"issuer":"A"`,
	} {
		if !strings.Contains(js, want) {
			t.Errorf("offer JSON lacks %s:\n%s", want, js)
		}
	}
	for _, bad := range []string{"password", "p.pw", `"from"`, `"withdrawn"`} {
		if strings.Contains(js, bad) {
			t.Errorf("offer JSON holds %s:\n%s", bad, js)
		}
	}
	var back Offer
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if err := back.Check("A"); err != nil {
		t.Fatalf("decoded offer: %v", err)
	}
	b2, _ := json.Marshal(&back)
	if string(b2) != js {
		t.Fatalf("round trip differs:\n%s\n%s", js, b2)
	}
	got := back.Providers[0].Services[0].Segments[0]
	if got.MaxDuration != 90*time.Minute || len(got.Hours) != 2 || !got.Hours.Contains(time.Date(2026, 11, 24, 4, 0, 0, 0, time.UTC)) {
		t.Errorf("segment after the round trip: %+v", got)
	}
	if back.SLA.Price.Setup != MustMoney("0.0125") || back.SLA.Price.Increment != (Increment{30, 6}) {
		t.Errorf("price after the round trip: %+v", back.SLA.Price)
	}

	w, _ := json.Marshal(&Offer{Issuer: "A", Withdrawn: "A-p"})
	if string(w) != `{"issuer":"A","withdrawn":"A-p"}` {
		t.Errorf("withdrawal: %s", w)
	}
	var seg2 Segment
	if err := json.Unmarshal([]byte(`{"location":"*","max_duration":"soon"}`), &seg2); err == nil {
		t.Error("bad max_duration accepted")
	}
	if err := json.Unmarshal([]byte(`{"location":"*","max_duration":5}`), &seg2); err == nil {
		t.Error("numeric max_duration accepted")
	}
}

func TestOfferCheck(t *testing.T) {
	offer := func(t *testing.T, id string) *Offer {
		o, err := OfferFor(base(t), id, baseIssuers[id])
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	for _, tc := range []struct {
		name   string
		id     string // offer of that base SLA, or a withdrawal if ""
		issuer string
		mutate func(o *Offer)
		field  string
		msg    string
	}{
		{"issuer empty", "A-p", "", nil, "issuer", "required"},
		{"issuer other", "A-p", "B", nil, "issuer", `= "A": the offer is published by "B"`},
		{"withdrawal with SLA", "A-p", "A", func(o *Offer) { o.Withdrawn = "A-p" }, "withdrawn", "carries no SLA"},
		{"withdrawal with providers", "", "A", func(o *Offer) { o.Providers = []Provider{{ID: "p"}} }, "withdrawn", "carries no SLA"},
		{"withdrawal id", "", "A", func(o *Offer) { o.Withdrawn = "a b" }, "withdrawn", "letters, digits"},
		{"no SLA", "", "A", func(o *Offer) { o.Withdrawn = "" }, "sla", "required"},
		{"SLA invalid", "A-p", "A", func(o *Offer) { o.SLA.Price.Currency = "" }, "sla.price.currency", "required"},
		{"SLA loss", "A-p", "A", func(o *Offer) { o.SLA.Guarantees.MaxLossPct = -1 }, "sla.guarantees.max_loss_pct", "0 to 100"},
		{"not a party", "A-p", "A", func(o *Offer) { o.SLA.Between[0] = "C" }, "sla.between", `the issuer "A" is not a party`},
		{"voucher", "p-q", "A", func(o *Offer) { o.SLA.Voucher = "B" }, "sla.voucher", `must be the issuer "A"`},
		{"voucher missing", "p-q", "A", func(o *Offer) { o.SLA.Voucher = "" }, "sla.voucher", "must be the issuer"},
		{"user-access by class", "A-gold", "A", func(o *Offer) { o.SLA.Between = [2]string{"gold", "A"} }, "sla.between[0]", "published by its node"},
		{"provider missing", "A-p", "A", func(o *Offer) { o.Providers = nil }, "providers", `missing provider "p"`},
		{"provider missing of two", "p-q", "A", func(o *Offer) { o.Providers = o.Providers[1:] }, "providers", `missing provider "p"`},
		{"provider extra", "A-p", "A", func(o *Offer) { o.Providers = append(o.Providers, *o.Providers[0].Clone()); o.Providers[1].ID = "q" }, "providers[1].id", "not a provider party"},
		{"provider twice", "A-p", "A", func(o *Offer) { o.Providers = append(o.Providers, *o.Providers[0].Clone()) }, "providers[1].id", "same as providers[0]"},
		{"provider on node-node", "A-B", "A", func(o *Offer) { o.Providers = []Provider{*base(t).Providers[1].Clone()} }, "providers[0].id", `= "q": not a provider party of SLA "A-B"`},
		{"provider invalid", "A-p", "A", func(o *Offer) { o.Providers[0].AccessPoints[0].URI = "tel:+49" }, "providers[0].access_points[0].uri", "want a sip:"},
		{"password file", "A-p", "A", func(o *Offer) { o.Providers[0].AccessPoints[1].PasswordFile = "p.pw" }, "providers[0].access_points[1].password_file", "never leaves its node"},
		{"issuer is the provider", "A-p", "A", func(o *Offer) { o.Issuer = "p"; o.Providers[0].ID = "A" }, "issuer", "published by"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &Offer{Issuer: "A", Withdrawn: "A-p"}
			if tc.id != "" {
				o = offer(t, tc.id)
			}
			if tc.mutate != nil {
				tc.mutate(o)
			}
			assertFieldErr(t, o.Check(tc.issuer), tc.field, tc.msg)
		})
	}
	if err := (&Offer{Issuer: "A", Withdrawn: "A-p"}).Check("A"); err != nil {
		t.Errorf("withdrawal: %v", err)
	}
	// The provider party list of an offer is by content: with the Between
	// swapped, the other party is still the provider.
	o := offer(t, "A-p")
	o.SLA.Between = [2]string{"p", "A"}
	if err := o.Check("A"); err != nil {
		t.Errorf("provider first: %v", err)
	}
}

func catalogueJSON(t *testing.T, c *Catalogue) string {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestMerge(t *testing.T) {
	offers := baseOffers(t)
	cat := Merge(offers)
	var ids []string
	for _, s := range cat.SLAs {
		ids = append(ids, s.ID)
	}
	if want := []string{"A-B", "A-gold", "A-p", "p-q", "q-B"}; !slices.Equal(ids, want) {
		t.Fatalf("SLAs %v, want %v", ids, want)
	}
	if len(cat.Providers) != 2 || cat.Providers[0].ID != "p" || cat.Providers[1].ID != "q" {
		t.Fatalf("providers %+v", cat.Providers)
	}
	if cat.Providers[0].AccessPoints[1].PasswordFile != "" {
		t.Error("password file in a merged catalogue")
	}
	if cat.SLA("p-q").Voucher != "A" {
		t.Errorf("voucher %q", cat.SLA("p-q").Voucher)
	}
	// The merged catalogue is valid, once given nodes' knowledge.
	if err := cat.Validate(); err != nil {
		t.Errorf("merged catalogue: %v", err)
	}
	want := catalogueJSON(t, cat)

	// Same catalogue whatever the order, with duplicates, withdrawals,
	// nil and invalid offers mixed in.
	bad := *offers[0]
	bad.Issuer = "Z"
	extra := append(slices.Clone(offers), nil, &Offer{Issuer: "A", Withdrawn: "A-p"}, &bad, offers[2])
	rng := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		rng.Shuffle(len(extra), func(i, j int) { extra[i], extra[j] = extra[j], extra[i] })
		if got := catalogueJSON(t, Merge(extra)); got != want {
			t.Fatalf("order changed the catalogue:\n%s\n%s", got, want)
		}
	}

	// The result is a copy.
	cat.SLAs[0].Segments = append(cat.SLAs[0].Segments, Segment{Location: "+1"})
	cat.Providers[0].Services[0].Segments[0].Location = "+7"
	if got := catalogueJSON(t, Merge(offers)); got != want {
		t.Fatal("changing a merged catalogue changed the offers")
	}
	if got := catalogueJSON(t, Merge(nil)); got != `{"providers":[],"slas":[],"policy":{"classes":null}}` {
		t.Errorf("empty merge: %s", got)
	}
}

func TestMergeConflicts(t *testing.T) {
	cat := base(t)
	ab, _ := OfferFor(cat, "A-B", "A")
	ba, _ := OfferFor(cat, "A-B", "B")
	ba.SLA.MarkupPerMinute = MustMoney("0.5")
	// Two versions of one SLA id: the first issuer's wins.
	for _, offers := range [][]*Offer{{ab, ba}, {ba, ab}} {
		if got := Merge(offers).SLA("A-B").MarkupPerMinute; got != MustMoney("0.001") {
			t.Errorf("markup %s, want A's", got)
		}
	}
	// One issuer, two versions (a stale copy): the smaller encoding wins,
	// in any order.
	ab2, _ := OfferFor(cat, "A-B", "A")
	ab2.SLA.MarkupPerMinute = MustMoney("0.002")
	x, y := Merge([]*Offer{ab, ab2}), Merge([]*Offer{ab2, ab})
	if catalogueJSON(t, x) != catalogueJSON(t, y) {
		t.Error("same issuer: order matters")
	}

	// Two definitions of provider p: the offer whose SLA id sorts first
	// (A-p before B-p) gives it.
	cat.Nodes = nil
	cat.SLAs = append(cat.SLAs, SLA{ID: "B-p", Kind: NodeProvider, Between: [2]string{"B", "p"}})
	ap, _ := OfferFor(cat, "A-p", "A")
	bp, _ := OfferFor(cat, "B-p", "B")
	bp.Providers[0].Name = "P as B knows it"
	bp.Providers[0].AccessPoints = bp.Providers[0].AccessPoints[:1]
	for _, offers := range [][]*Offer{{ap, bp}, {bp, ap}} {
		m := Merge(offers)
		if p := m.Provider("p"); p.Name != "" || len(p.AccessPoints) != 2 {
			t.Errorf("provider p from B-p's offer: %+v", p)
		}
	}
	bp.SLA.ID, bp.Providers[0].Name = "0-B-p", "P as B knows it"
	if p := Merge([]*Offer{ap, bp}).Provider("p"); p.Name != "P as B knows it" {
		t.Errorf("provider p not from 0-B-p's offer: %+v", p)
	}

	// A node named like a provider: its SLAs leave the catalogue.
	pq := &Offer{Issuer: "q", SLA: &SLA{ID: "q-B-peering", Kind: NodeNode, Between: [2]string{"q", "B"}}}
	if err := pq.Check("q"); err != nil {
		t.Fatal(err)
	}
	qb, _ := OfferFor(cat, "q-B", "B") // defines q as a provider
	m := Merge([]*Offer{pq, qb, ap})
	if m.SLA("q-B-peering") != nil || m.SLA("q-B") == nil || len(m.SLAs) != 2 {
		t.Errorf("SLAs %+v", m.SLAs)
	}
	ua := &Offer{Issuer: "p", SLA: &SLA{ID: "p-gold", Kind: UserAccess, Between: [2]string{"p", "gold"}}}
	if m := Merge([]*Offer{ua, ap}); m.SLA("p-gold") != nil || len(m.SLAs) != 1 {
		t.Errorf("user-access SLA of a provider kept: %+v", m.SLAs)
	}
}

func TestClone(t *testing.T) {
	cat := base(t)
	cat.SLAs[0].Segments = []Segment{{Location: "+1", Hours: mustHours(t, "Mon 08:00-09:00 UTC")}}
	s := cat.SLAs[0].Clone()
	s.Segments[0].Hours[0].Start = 0
	s.Segments[0].Location = "+2"
	if cat.SLAs[0].Segments[0].Location != "+1" || cat.SLAs[0].Segments[0].Hours[0].Start != 480 {
		t.Error("SLA clone shares segments")
	}
	d := cat.SLAs[3].Clone()
	d.Direct.MaxDelayMs = 99
	if cat.SLAs[3].Direct.MaxDelayMs == 99 {
		t.Error("SLA clone shares the direct link")
	}
	p := cat.Providers[0].Clone()
	p.AccessPoints[0].URI = "sip:x"
	p.Services[0].Segments[0].Location = "+9"
	if cat.Providers[0].AccessPoints[0].URI == "sip:x" || cat.Providers[0].Services[0].Segments[0].Location == "+9" {
		t.Error("provider clone shares")
	}
}
