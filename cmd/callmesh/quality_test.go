package main

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// runRoot runs the command tree in-process and returns stdout and the error.
func runRoot(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestQualityWorkedValues(t *testing.T) {
	for _, tc := range []struct {
		args []string
		r    float64
	}{
		// The two worked values: G.711 with PLC, Ta 150 and 300 ms,
		// T = Ta, Tr = 2·Ta, no loss.
		{[]string{"--codec", "PCMU", "--plc", "--delay-ms", "150", "--loss-pct", "0"}, 89.54},
		{[]string{"--codec", "PCMA", "--plc", "--delay-ms", "300", "--loss-pct", "0"}, 72.67},
	} {
		out, err := runRoot(t, append([]string{"quality", "--json"}, tc.args...)...)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		var res struct{ R, MOS float64 }
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("%v: output %q: %v", tc.args, out, err)
		}
		if math.Abs(res.R-tc.r) > 0.01 {
			t.Errorf("%v: R %.3f, want %.2f", tc.args, res.R, tc.r)
		}
		// G.107 Annex B, computed here from R.
		want := 1 + 0.035*res.R + res.R*(res.R-60)*(100-res.R)*7e-6
		if math.Abs(res.MOS-want) > 1e-9 {
			t.Errorf("%v: MOS %.4f, want %.4f from R", tc.args, res.MOS, want)
		}
	}
}

func TestQualityLossAndBurstLowerTheScore(t *testing.T) {
	score := func(args ...string) float64 {
		out, err := runRoot(t, append([]string{"quality", "--json", "--codec", "G729A", "--delay-ms", "100"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		var res struct{ R float64 }
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatal(err)
		}
		return res.R
	}
	clean, lossy, bursty := score("--loss-pct", "0"), score("--loss-pct", "2"), score("--loss-pct", "2", "--burst", "2")
	if !(clean > lossy && lossy > bursty) {
		t.Fatalf("R clean %.2f, 2%% random loss %.2f, 2%% bursty loss %.2f: want strictly falling", clean, lossy, bursty)
	}
}

func TestQualityBadInputNamesTheFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"--codec", "OPUS"}, "--codec"},
		{[]string{"--delay-ms", "-1"}, "--delay-ms"},
		{[]string{"--loss-pct", "101"}, "--loss-pct"},
		{[]string{"--burst", "0.5"}, "--burst"},
	} {
		_, err := runRoot(t, append([]string{"quality"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.flag) || exitCode(err) != 2 {
			t.Errorf("%v: error %v (exit %d), want exit 2 naming %s", tc.args, err, exitCode(err), tc.flag)
		}
	}
	out, err := runRoot(t, "quality", "--codec", "pcmu", "--delay-ms", "150", "--plc")
	if err != nil || !strings.Contains(out, "R 89.5") {
		t.Errorf("text output %q, %v: want R 89.5…", out, err)
	}
}
