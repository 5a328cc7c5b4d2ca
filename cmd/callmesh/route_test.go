package main

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

type planJSON struct {
	Paths []struct {
		Hops           []string `json:"hops"`
		SLAs           []string `json:"slas"`
		PricePerMinute string   `json:"price_per_minute"`
		DelayMs        float64  `json:"delay_ms"`
		LossPct        float64  `json:"loss_pct"`
		R, MOS         float64
	} `json:"paths"`
	Reason string `json:"reason"`
}

func routePlan(t *testing.T, args ...string) (planJSON, error) {
	t.Helper()
	out, err := runRoot(t, append([]string{"route", "plan", "--catalogue", "testdata/catalogue.yaml", "--json",
		"--at", "2026-11-26T10:00:00Z"}, args...)...)
	var res planJSON
	if jerr := json.Unmarshal([]byte(out), &res); jerr != nil {
		t.Fatalf("route plan %v: output %q: %v (err %v)", args, out, jerr, err)
	}
	return res, err
}

func TestRoutePlanOffline(t *testing.T) {
	// Bronze allows the cheap provider even at its measured 2.5 % loss
	// (55 + 40 ms, 1 − 0.975·0.985 ≈ 3.96 % over the path).
	res, err := routePlan(t, "--from", "A", "--to", "B", "--class", "bronze")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Paths) != 2 || strings.Join(res.Paths[0].Hops, ",") != "A,cheapnet,B" || res.Paths[0].PricePerMinute != "0.0080" ||
		strings.Join(res.Paths[1].Hops, ",") != "A,clearnet,B" || res.Paths[1].PricePerMinute != "0.0200" {
		t.Fatalf("bronze A → B: %+v", res)
	}
	if d := res.Paths[0].DelayMs; d != 95 {
		t.Errorf("A → cheapnet → B delay %.1f ms, want 55 measured + 40 guaranteed", d)
	}

	// Gold (max loss 1 %) leaves only the clean provider.
	res, err = routePlan(t, "--from", "A", "--to", "B", "--class", "gold")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Paths) != 1 || strings.Join(res.Paths[0].Hops, ",") != "A,clearnet,B" {
		t.Fatalf("gold A → B: %+v", res)
	}

	// A number: termco terminates +4930 (longest prefix) behind clearnet.
	res, err = routePlan(t, "--from", "A", "--to", "+493012345")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Paths) != 1 || strings.Join(res.Paths[0].Hops, ",") != "A,clearnet,termco" || res.Paths[0].PricePerMinute != "0.0150" {
		t.Fatalf("A → +493012345: %+v", res)
	}

	// No provider terminates +1: an empty list, a reason and exit code 3.
	res, err = routePlan(t, "--from", "A", "--to", "+12125550100")
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitNoPath || len(res.Paths) != 0 || res.Reason == "" {
		t.Fatalf("A → +1…: err %v, result %+v; want exit code %d, no path and a reason", err, res, exitNoPath)
	}
}

func TestRoutePlanBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"route", "plan", "--from", "A", "--to", "B"}, "--catalogue"},
		{[]string{"route", "plan", "--catalogue", "testdata/catalogue.yaml", "--from", "A", "--to", "B", "--class", "platinum"}, "platinum"},
		{[]string{"route", "plan", "--catalogue", "testdata/catalogue.yaml", "--from", "A", "--to", "B", "--at", "yesterday"}, "--at"},
		{[]string{"route", "plan", "--catalogue", "testdata/catalogue.yaml", "--from", "Z", "--to", "B"}, "Z"},
	} {
		_, err := runRoot(t, tc.args...)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err %v, want exit code 2 naming %q", tc.args, err, tc.want)
		}
	}
}
