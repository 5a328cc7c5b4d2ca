package sla

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

func TestIncrement(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Increment
		ok   bool
	}{
		{"60/60", Increment{60, 60}, true},
		{"1/1", Increment{1, 1}, true},
		{"30/6", Increment{30, 6}, true},
		{"86400/1", Increment{86400, 1}, true},
		{"86401/1", Increment{}, false},
		{"0/60", Increment{}, false},
		{"60/0", Increment{}, false},
		{"60", Increment{}, false},
		{"60/", Increment{}, false},
		{"/60", Increment{}, false},
		{"+6/6", Increment{}, false},
		{"6/6/6", Increment{}, false},
		{" 6/6", Increment{}, false},
		{"99999999999999999999/1", Increment{}, false},
	} {
		got, err := ParseIncrement(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseIncrement(%q) = %v, %v", tc.in, got, err)
		}
		if tc.ok && got.String() != tc.in {
			t.Errorf("%q prints as %q", tc.in, got.String())
		}
	}
	var p Price
	if err := json.Unmarshal([]byte(`{"increment":"30/6"}`), &p); err != nil || p.Increment != (Increment{30, 6}) {
		t.Errorf("JSON: %v %v", p.Increment, err)
	}
	if err := json.Unmarshal([]byte(`{"increment":"30"}`), &p); err == nil {
		t.Error("JSON increment 30 accepted")
	}
	if b, _ := json.Marshal(Price{}); !strings.Contains(string(b), `"increment":""`) {
		t.Errorf("zero increment: %s", b)
	}
	if err := json.Unmarshal([]byte(`{"increment":""}`), &p); err != nil || p.Increment != (Increment{}) {
		t.Errorf("empty increment: %v %v", p.Increment, err)
	}
	if (Increment{}).OrDefault() != DefaultIncrement || (Increment{0, 6}).OrDefault() != (Increment{1, 6}) {
		t.Error("OrDefault")
	}
}

func TestBill(t *testing.T) {
	perMin := MustMoney("0.60") // 0.01 a second
	for _, tc := range []struct {
		inc   Increment
		setup string
		secs  int64
		want  string
	}{
		{Increment{60, 60}, "0", 0, "0"},
		{Increment{60, 60}, "0.05", 0, "0"}, // no call, no setup fee
		{Increment{60, 60}, "0.05", -3, "0"},
		{Increment{60, 60}, "0", 1, "0.60"},
		{Increment{60, 60}, "0", 60, "0.60"},
		{Increment{60, 60}, "0", 61, "1.20"},
		{Increment{60, 60}, "0", 120, "1.20"},
		{Increment{60, 60}, "0.05", 121, "1.85"},
		{Increment{1, 1}, "0", 1, "0.01"},
		{Increment{1, 1}, "0", 59, "0.59"},
		{Increment{1, 1}, "0.10", 61, "0.71"},
		{Increment{30, 6}, "0", 1, "0.30"},
		{Increment{30, 6}, "0", 30, "0.30"},
		{Increment{30, 6}, "0", 31, "0.36"},
		{Increment{30, 6}, "0", 36, "0.36"},
		{Increment{30, 6}, "0", 37, "0.42"},
		{Increment{60, 1}, "0", 61, "0.61"},
		{Increment{}, "0", 61, "1.20"}, // unset: 60/60
	} {
		p := Price{PerMinute: perMin, Currency: "EUR", Increment: tc.inc, Setup: MustMoney(tc.setup)}
		if got := Bill(p, tc.secs); got != MustMoney(tc.want) {
			t.Errorf("%v setup %s, %d s: %s, want %s", tc.inc, tc.setup, tc.secs, got, tc.want)
		}
	}
	// Rounding to the unit: 0.0040 a minute for 1 s is 0.0000666…,
	// rounded half up.
	if got := Bill(Price{PerMinute: MustMoney("0.004"), Increment: Increment{1, 1}}, 1); got != MustMoney("0.000066667") {
		t.Errorf("rounding: %s", got)
	}
	// Saturation instead of overflow.
	huge := Price{PerMinute: MustMoney("9000000000"), Increment: Increment{1, 1}, Setup: MustMoney("9000000000")}
	if got := Bill(huge, math.MaxInt64); got != math.MaxInt64 {
		t.Errorf("huge bill %d", got)
	}
	if got := (Increment{60, 60}).Billed(math.MaxInt64); got != math.MaxInt64 {
		t.Errorf("huge billed %d", got)
	}
}

func TestBillProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		inc := Increment{rapid.IntRange(1, 3600).Draw(t, "first"), rapid.IntRange(1, 3600).Draw(t, "next")}
		p := Price{PerMinute: Money(rapid.Int64Range(0, 100*moneyUnit).Draw(t, "per_minute")), Increment: inc,
			Setup: Money(rapid.Int64Range(0, moneyUnit).Draw(t, "setup"))}
		a := rapid.Int64Range(0, 1e7).Draw(t, "a")
		b := a + rapid.Int64Range(0, 1e5).Draw(t, "d")
		if Bill(p, a) > Bill(p, b) {
			t.Fatalf("not monotone: %d s costs %s, %d s costs %s", a, Bill(p, a), b, Bill(p, b))
		}
		billed := inc.Billed(b)
		if b > 0 && (billed < b || billed < int64(inc.First) || billed-b >= int64(max(inc.First, inc.Next))) {
			t.Fatalf("%v bills %d s as %d s", inc, b, billed)
		}
		if b > int64(inc.First) && (billed-int64(inc.First))%int64(inc.Next) != 0 {
			t.Fatalf("%v bills %d s as %d s: not whole blocks", inc, b, billed)
		}
		// Exact per-second billing at 1/1 is the price of each second.
		if exact := (Price{PerMinute: p.PerMinute, Increment: Increment{1, 1}}); b > 0 && Bill(exact, b) != p.PerMinute.MulSeconds(b) {
			t.Fatalf("1/1 is not exact")
		}
	})
}

func TestMoneyRoundTripProperty(t *testing.T) {
	// ParseMoney refuses whole parts above MaxInt64/10^9 − 1.
	const limit = (math.MaxInt64/moneyUnit - 1) * moneyUnit
	rapid.Check(t, func(t *rapid.T) {
		m := Money(rapid.Int64Range(-limit, limit+moneyUnit-1).Draw(t, "m"))
		back, err := ParseMoney(m.String())
		if err != nil || back != m {
			t.Fatalf("%d prints as %q, reads back as %d (%v)", m, m.String(), back, err)
		}
		var j Money
		b, _ := json.Marshal(m)
		if err := json.Unmarshal(b, &j); err != nil || j != m || b[0] != '"' {
			t.Fatalf("JSON %s: %d, %v", b, j, err)
		}
	})
}

func TestCompose(t *testing.T) {
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := &SLA{ID: "A-p", Kind: NodeProvider, Between: [2]string{"A", "p"},
		Price:      Price{PerMinute: MustMoney("0.004"), Currency: "EUR", Increment: Increment{60, 60}, Setup: MustMoney("0.01")},
		Guarantees: Guarantees{MaxDelayMs: 40, MaxLossPct: 1, MaxJitterMs: 10, MinMOS: 4, MinASRPct: 50},
		Capacity:   Capacity{MaxCalls: 200, MaxCPS: 20},
		Valid:      Validity{From: from, Until: from.AddDate(1, 0, 0)}}
	pq := &SLA{ID: "p-q", Kind: ProviderProvider, Between: [2]string{"p", "q"},
		Price:      Price{PerMinute: MustMoney("0.001"), Currency: "EUR", Increment: Increment{1, 1}},
		Guarantees: Guarantees{MaxDelayMs: 10, MaxLossPct: 2, MaxJitterMs: 5},
		Capacity:   Capacity{MaxCalls: 50},
		Valid:      Validity{From: from.AddDate(0, 6, 0)}}
	b := &SLA{ID: "B-q", Kind: NodeProvider, Between: [2]string{"B", "q"},
		Price:      Price{PerMinute: MustMoney("0.005"), Currency: "EUR", Increment: Increment{60, 1}},
		Guarantees: Guarantees{MaxDelayMs: 30, MaxLossPct: 0.5, MaxJitterMs: 5},
		Capacity:   Capacity{MaxCPS: 5},
		Valid:      Validity{Until: from.AddDate(0, 9, 0)}}

	terms, err := Compose([]*SLA{a, pq, b}, []Money{MustMoney("0.001")})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(terms.SLAs, ","); got != "A-p,p-q,B-q" {
		t.Errorf("SLAs %s", got)
	}
	g := terms.Guarantees
	wantLoss := 100 * (1 - 0.99*0.98*0.995)
	if g.MaxDelayMs != 80 || g.MaxJitterMs != 20 || math.Abs(g.MaxLossPct-wantLoss) > 1e-9 || g.MinMOS != 0 || g.MinASRPct != 0 {
		t.Errorf("guarantees %+v (loss want %v)", g, wantLoss)
	}
	if terms.Capacity != (Capacity{MaxCalls: 50, MaxCPS: 5}) {
		t.Errorf("capacity %+v", terms.Capacity)
	}
	wantPrice := Price{PerMinute: MustMoney("0.011"), Currency: "EUR", Increment: Increment{60, 60}, Setup: MustMoney("0.01")}
	if terms.Price != wantPrice {
		t.Errorf("price %+v, want %+v", terms.Price, wantPrice)
	}
	if !terms.Valid.From.Equal(from.AddDate(0, 6, 0)) || !terms.Valid.Until.Equal(from.AddDate(0, 9, 0)) {
		t.Errorf("validity %+v", terms.Valid)
	}
	if !terms.ValidAt(from.AddDate(0, 7, 0)) || terms.ValidAt(from.AddDate(0, 5, 0)) || terms.ValidAt(from.AddDate(0, 9, 0)) {
		t.Error("ValidAt")
	}
	js, _ := json.Marshal(terms)
	if !strings.Contains(string(js), `"per_minute":"0.0110"`) {
		t.Errorf("JSON %s", js)
	}

	// A path with an SLA that promises no delay promises no delay.
	free := &SLA{ID: "A-r", Kind: NodeProvider, Between: [2]string{"A", "r"}, Guarantees: Guarantees{MaxLossPct: 1}}
	terms, err = Compose([]*SLA{free, b}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if terms.Guarantees.MaxDelayMs != 0 || terms.Guarantees.MaxJitterMs != 0 || terms.Guarantees.MaxLossPct == 0 {
		t.Errorf("guarantees %+v", terms.Guarantees)
	}
	// The increment comes from the SLAs that charge: 60/1 here, not the
	// free SLA's (unset, which would bill as 60/60).
	if terms.Price.Increment != (Increment{60, 1}) || terms.Price.Currency != "EUR" || terms.Capacity != (Capacity{MaxCPS: 5}) {
		t.Errorf("price %+v capacity %+v", terms.Price, terms.Capacity)
	}
	terms, _ = Compose([]*SLA{free}, nil)
	if terms.Price.Increment != DefaultIncrement || terms.Price.PerMinute != 0 || !terms.Valid.From.IsZero() {
		t.Errorf("free path: %+v", terms)
	}

	// Increments: the largest First wins, then the largest Next.
	c := func(first, next int) *SLA {
		return &SLA{ID: "x", Kind: NodeProvider, Price: Price{PerMinute: 1, Currency: "EUR", Increment: Increment{first, next}}}
	}
	for _, tc := range []struct {
		slas []*SLA
		want Increment
	}{
		{[]*SLA{c(1, 1), c(30, 6)}, Increment{30, 6}},
		{[]*SLA{c(30, 6), c(30, 30), c(1, 60)}, Increment{30, 30}},
		{[]*SLA{c(60, 1), c(30, 30)}, Increment{60, 1}},
	} {
		terms, _ := Compose(tc.slas, nil)
		if terms.Price.Increment != tc.want {
			t.Errorf("increment %v, want %v", terms.Price.Increment, tc.want)
		}
	}

	// A node-node SLA stands for its direct link.
	nn := &SLA{ID: "A-B", Kind: NodeNode, Between: [2]string{"A", "B"}, MarkupPerMinute: MustMoney("0.5"),
		Direct: &Direct{PerMinute: MustMoney("0.002"), MaxDelayMs: 15, MaxLossPct: 0.5}}
	terms, err = Compose([]*SLA{nn}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if terms.Guarantees != (Guarantees{MaxDelayMs: 15, MaxLossPct: 0.5}) || terms.Price.PerMinute != MustMoney("0.002") {
		t.Errorf("direct link terms %+v", terms)
	}

	for _, tc := range []struct {
		slas    []*SLA
		markups []Money
		msg     string
	}{
		{nil, nil, "no SLA"},
		{[]*SLA{a, nil}, nil, "SLA 1 is nil"},
		{[]*SLA{a}, []Money{-1}, "markup 0 is negative"},
		{[]*SLA{{ID: "A-B", Kind: NodeNode}}, nil, "has no direct link"},
		{[]*SLA{a, {ID: "usd", Price: Price{PerMinute: 1, Currency: "USD"}}}, nil, `SLA "usd" is priced in USD, the path so far in EUR`},
	} {
		if _, err := Compose(tc.slas, tc.markups); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("err = %v, want %q", err, tc.msg)
		}
	}
}

// The compounded loss lies between the largest loss and the sum.
func TestComposeLossProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 6).Draw(t, "n")
		var slas []*SLA
		worst, sum := 0.0, 0.0
		for i := range n {
			l := rapid.Float64Range(0.001, 100).Draw(t, "loss")
			slas = append(slas, &SLA{ID: string(rune('a' + i)), Guarantees: Guarantees{MaxLossPct: l}})
			worst, sum = max(worst, l), sum+l
		}
		terms, err := Compose(slas, nil)
		if err != nil {
			t.Fatal(err)
		}
		if l := terms.Guarantees.MaxLossPct; l < worst-1e-9 || l > min(sum, 100)+1e-9 {
			t.Fatalf("loss %v outside [%v, %v]", l, worst, sum)
		}
	})
}
