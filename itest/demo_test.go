package itest

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// demoOutput is what `callmesh demo --json` promises, by the names it
// promises them under.
type demoOutput struct {
	Nodes []struct {
		Name  string `json:"name"`
		SIP   string `json:"sip"`
		Admin string `json:"admin"`
	} `json:"nodes"`
	Users []struct {
		AOR      string `json:"aor"`
		Password string `json:"password"`
		Node     string `json:"node"`
		Class    string `json:"class"`
	} `json:"users"`
	Calls []demoCallOutput `json:"calls"`
	Steps []struct {
		AtMS          int64  `json:"at_ms"`
		Action        string `json:"action"`
		Provider      string `json:"provider"`
		InvitesBefore uint64 `json:"invites_before"`
	} `json:"steps"`
	Providers []struct {
		ID      string `json:"id"`
		Invites uint64 `json:"invites"`
	} `json:"providers"`
}

type demoCallOutput struct {
	Caller         string   `json:"caller"`
	Callee         string   `json:"callee"`
	Class          string   `json:"class"`
	Status         int      `json:"status"`
	Master         string   `json:"master"`
	Path           []string `json:"path"`
	PricePerMinute string   `json:"price_per_minute"`
	PredictedMOS   *float64 `json:"predicted_mos"`
	MeasuredMOS    *float64 `json:"measured_mos"`
	Attempts       int      `json:"attempts"`
	Tried          []struct {
		Path []string `json:"path"`
	} `json:"tried"`
	Kind      string `json:"kind"`
	Round     int    `json:"round"`
	StartedMS int64  `json:"started_ms"`
}

func (c demoCallOutput) answered() bool { return c.Status >= 200 && c.Status < 300 }

func (c demoCallOutput) String() string {
	return c.Caller + " → " + c.Callee + " (" + c.Class + "): " + strings.Join(c.Path, " → ")
}

// TestDemo runs `callmesh demo --duration 30s --json` as a user would and
// checks what it promises: every call has a final status, every answered
// call a measured MOS, calls in each class across nodes, within a node and
// to a number are answered, a call failed over, and once the cheap
// provider is degraded no call placed afterwards goes through it (the
// nodes are never told: their feedback loop must notice).
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo for 30 seconds")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, callmeshBin(t), "demo", "--duration", "30s", "--json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("callmesh demo: %v\nstderr:\n%s", err, stderr.String())
	}
	t.Logf("demo took %s; its progress:\n%s", time.Since(start).Round(time.Second), stderr.String())

	// Standard output is one JSON object and nothing else.
	dec := json.NewDecoder(bytes.NewReader(stdout.Bytes()))
	var raw map[string]json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		t.Fatalf("stdout is not a JSON object: %v\n%s", err, stdout.String())
	}
	if dec.More() {
		t.Fatalf("stdout holds more than one JSON value:\n%s", stdout.String())
	}
	requireKeys(t, raw, "nodes", []string{"name", "sip", "admin"})
	requireKeys(t, raw, "users", []string{"aor", "password", "node", "class"})
	requireKeys(t, raw, "calls", []string{"caller", "callee", "class", "status", "master", "path",
		"price_per_minute", "predicted_mos", "measured_mos", "attempts"})
	var out demoOutput
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatal(err)
	}

	// The federation: 3 nodes, users at every one.
	if len(out.Nodes) != 3 {
		t.Fatalf("%d nodes, want 3", len(out.Nodes))
	}
	var names []string
	for _, n := range out.Nodes {
		if n.SIP == "" || !strings.HasPrefix(n.Admin, "http://") {
			t.Errorf("node %+v lacks an address", n)
		}
		names = append(names, n.Name)
		have := false
		for _, u := range out.Users {
			have = have || (u.Node == n.Name && u.Password != "" && strings.Contains(u.AOR, "@"))
		}
		if !have {
			t.Errorf("no user registered at %s", n.Name)
		}
	}

	// Every call has a final status; answered calls have a measured MOS.
	if len(out.Calls) == 0 {
		t.Fatal("no calls")
	}
	for _, c := range out.Calls {
		if c.Status < 200 || c.Status > 699 {
			t.Errorf("%v: status %d is not a final SIP status", c, c.Status)
		}
		if !c.answered() {
			t.Logf("%v: failed with %d", c, c.Status)
			continue
		}
		if c.MeasuredMOS == nil || *c.MeasuredMOS < 1 || *c.MeasuredMOS > 5 {
			t.Errorf("%v: answered without a measured MOS (%v)", c, c.MeasuredMOS)
		}
		if c.Attempts < 1 || len(c.Path) == 0 || !slices.Contains(names, c.Master) {
			t.Errorf("%v: attempts %d, master %q", c, c.Attempts, c.Master)
		}
	}

	// The kinds of call the demo promises, answered: across nodes in each
	// class, within a node, to a number.
	answered := func(ok func(c demoCallOutput) bool) bool {
		for _, c := range out.Calls {
			if c.answered() && ok(c) {
				return true
			}
		}
		return false
	}
	for _, class := range []string{"gold", "silver", "bronze"} {
		across := func(c demoCallOutput) bool {
			return c.Class == class && !strings.HasPrefix(c.Callee, "+") && len(c.Path) >= 3 &&
				slices.Contains(names, c.Path[0]) && slices.Contains(names, c.Path[len(c.Path)-1]) && c.Path[0] != c.Path[len(c.Path)-1]
		}
		if !answered(across) {
			t.Errorf("no %s call across nodes was answered", class)
		}
	}
	if !answered(func(c demoCallOutput) bool { return len(c.Path) == 1 && slices.Contains(names, c.Path[0]) }) {
		t.Error("no call within a node was answered")
	}
	if !answered(func(c demoCallOutput) bool { return strings.HasPrefix(c.Callee, "+") }) {
		t.Error("no call to a number was answered")
	}

	// A provider went down and at least one call failed over to a later
	// path.
	if !answered(func(c demoCallOutput) bool { return c.Attempts > 1 }) {
		t.Error("no call failed over (answered after more than one attempt)")
	}

	// The cheap provider was degraded once. It carried calls before; of the
	// calls placed after, none went through it (nor tried it), no INVITE
	// reached it after, and the kind of calls it carried were still placed
	// and answered (elsewhere).
	var degraded []int
	for i, s := range out.Steps {
		if s.Action == "degrade" {
			degraded = append(degraded, i)
		}
	}
	if len(degraded) != 1 {
		t.Fatalf("steps %+v: want exactly one degradation", out.Steps)
	}
	step := out.Steps[degraded[0]]
	through := func(c demoCallOutput) bool { return slices.Contains(c.Path, step.Provider) }
	classes := map[string]bool{}
	for _, c := range out.Calls {
		if c.StartedMS < step.AtMS && c.answered() && through(c) {
			classes[c.Class] = true
		}
	}
	if len(classes) == 0 {
		t.Fatalf("%s carried no call before its degradation at %d ms: nothing to move away", step.Provider, step.AtMS)
	}
	var after []string
	for _, c := range out.Calls {
		if c.StartedMS < step.AtMS {
			continue
		}
		if through(c) {
			after = append(after, c.String())
		}
		for _, a := range c.Tried {
			if slices.Contains(a.Path, step.Provider) {
				after = append(after, c.String()+", after trying "+strings.Join(a.Path, " → "))
			}
		}
	}
	if len(after) > 0 {
		t.Errorf("%s, degraded at %d ms, carried %d new calls placed after:\n  %s", step.Provider, step.AtMS, len(after),
			strings.Join(after, "\n  "))
	}
	for _, p := range out.Providers {
		if p.ID == step.Provider && p.Invites != step.InvitesBefore {
			t.Errorf("%s received %d INVITEs after its degradation", p.ID, p.Invites-step.InvitesBefore)
		}
	}
	if !answered(func(c demoCallOutput) bool { return c.StartedMS >= step.AtMS && classes[c.Class] && !through(c) }) {
		t.Errorf("no call of the classes %s carried was answered after its degradation", step.Provider)
	}
}

// requireKeys checks that raw[list] is an array of objects that each have
// every key.
func requireKeys(t *testing.T, raw map[string]json.RawMessage, list string, keys []string) {
	t.Helper()
	var items []map[string]json.RawMessage
	if err := json.Unmarshal(raw[list], &items); err != nil {
		t.Fatalf("%q is not an array of objects: %v", list, err)
	}
	for i, it := range items {
		for _, k := range keys {
			if _, ok := it[k]; !ok {
				t.Errorf("%s[%d] has no %q", list, i, k)
			}
		}
	}
}
