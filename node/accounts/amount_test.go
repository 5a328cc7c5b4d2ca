package accounts

import (
	"encoding/json"
	"errors"
	"math"
	"testing"

	"pgregory.net/rapid"
)

func TestAccountAmountParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Amount
	}{
		{"0", 0},
		{"-0", 0},
		{"12", 120000},
		{"12.5", 125000},
		{"12.50", 125000},
		{"12.5000", 125000},
		{"0.0001", 1},
		{"-0.0125", -125},
		{"+3", 30000},
		{"007.1", 71000},
		{"922337203685477.5807", math.MaxInt64},
		{"-922337203685477.5808", math.MinInt64},
	} {
		got, err := ParseAmount(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseAmount(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{
		"", "-", "+", ".5", "12.", "1e3", "1E3", "12.34567", "0.00001", "1,5", " 1", "1 ", "abc", "--1", "+-1",
		"0x10", "1.2.3", "١٢", "922337203685477.5808", "-922337203685477.5809", "99999999999999999999",
		"NaN", "Inf",
	} {
		if got, err := ParseAmount(in); !errors.Is(err, ErrAmount) {
			t.Errorf("ParseAmount(%q) = %d, %v; want ErrAmount", in, got, err)
		}
	}
}

func TestAccountAmountString(t *testing.T) {
	for _, tc := range []struct {
		in   Amount
		want string
	}{
		{0, "0.00"},
		{1, "0.0001"},
		{125, "0.0125"},
		{-125, "-0.0125"},
		{5000, "0.50"},
		{125000, "12.50"},
		{123400, "12.34"},
		{123450, "12.345"},
		{-30000, "-3.00"},
		{math.MaxInt64, "922337203685477.5807"},
		{math.MinInt64, "-922337203685477.5808"},
	} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("Amount(%d).String() = %q, want %q", int64(tc.in), got, tc.want)
		}
	}
}

func TestAccountAmountJSON(t *testing.T) {
	type doc struct {
		Balance Amount `json:"balance"`
	}
	for _, a := range []Amount{0, 125000, -125, math.MaxInt64, math.MinInt64} {
		data, err := json.Marshal(doc{a})
		if err != nil {
			t.Fatalf("Marshal(%d): %v", int64(a), err)
		}
		var back doc
		if err := json.Unmarshal(data, &back); err != nil || back.Balance != a {
			t.Errorf("round trip of %d via %s: %d, %v", int64(a), data, int64(back.Balance), err)
		}
		// Every encoding is a valid JSON number.
		var n json.Number
		if err := json.Unmarshal([]byte(a.String()), &n); err != nil {
			t.Errorf("%s is not a JSON number: %v", a, err)
		}
	}
	if data, _ := json.Marshal(doc{125000}); string(data) != `{"balance":12.50}` {
		t.Errorf("Marshal = %s, want {\"balance\":12.50}", data)
	}
	for in, want := range map[string]Amount{
		`{"balance": 12.5}`:     125000,
		`{"balance": "12.50"}`:  125000,
		`{"balance": -0.0001}`:  -1,
		`{"balance": "-7"}`:     -70000,
		`{"balance": null}`:     0,
		`{"balance": 0.00}`:     0,
		`{"balance": "0.0125"}`: 125,
	} {
		var d doc
		if err := json.Unmarshal([]byte(in), &d); err != nil || d.Balance != want {
			t.Errorf("Unmarshal(%s) = %d, %v; want %d", in, int64(d.Balance), err, int64(want))
		}
	}
	for _, in := range []string{
		`{"balance": 1e3}`, `{"balance": 0.00001}`, `{"balance": "abc"}`, `{"balance": true}`,
		`{"balance": []}`, `{"balance": 1e400}`, `{"balance": "1.5e2"}`, `{"balance": 99999999999999999999}`,
	} {
		var d doc
		if err := json.Unmarshal([]byte(in), &d); err == nil {
			t.Errorf("Unmarshal(%s) = %d, want an error", in, int64(d.Balance))
		}
	}
}

// Every Amount formats to text that parses back to it.
func TestAccountAmountRoundTripProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a := Amount(rapid.Int64().Draw(t, "units"))
		back, err := ParseAmount(a.String())
		if err != nil || back != a {
			t.Fatalf("ParseAmount(%q) = %d, %v; want %d", a.String(), int64(back), err, int64(a))
		}
	})
}

func FuzzAccountAmount(f *testing.F) {
	for _, s := range []string{"0", "12.50", "-0.0125", "922337203685477.5807", "1e3", ".5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAmount(s)
		if err != nil {
			return
		}
		back, err := ParseAmount(a.String())
		if err != nil || back != a {
			t.Fatalf("%q parsed as %d, formatted %q, parsed back as %d, %v", s, int64(a), a.String(), int64(back), err)
		}
	})
}
