package gossip

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// viewSelf is the holder of every view under test.
const viewSelf = peer.ID("self")

// viewAt returns the synthetic time d after the start of every test's clock.
func viewAt(d time.Duration) time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(d) }

func viewSeq(inc, ctr uint64) Seq { return Seq{Inc: inc, Ctr: ctr} }

func viewHB(name string) Heartbeat {
	return Heartbeat{Name: name, P2P: []string{"/ip4/192.0.2.1/udp/4001/quic-v1"}, Capacity: 10, Version: "test"}
}

// newViewPeerID returns the ID of a freshly generated Ed25519 identity.
func newViewPeerID(t testing.TB) peer.ID {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(k.GetPublic())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// newFastView returns a view with FastViewConfig: suspect after 600ms of
// silence, dead after 2s of suspicion, forgotten after 1m dead.
func newFastView(t testing.TB) *View {
	t.Helper()
	return NewView(viewSelf, FastViewConfig())
}

// viewJoin observes a first heartbeat of id at now and fails unless it is accepted.
func viewJoin(t testing.TB, v *View, id peer.ID, now time.Time) {
	t.Helper()
	if ok, _ := v.Observe(id, viewSeq(1, 1), viewHB(string(id)), now); !ok {
		t.Fatalf("first heartbeat of %s rejected", id)
	}
}

func mustViewState(t testing.TB, v *View, id peer.ID, want State) {
	t.Helper()
	m, ok := v.Get(id)
	switch {
	case want == 0 && ok:
		t.Fatalf("%s: in the view as %v, want absent", id, m.State)
	case want == 0:
	case !ok:
		t.Fatalf("%s: absent, want %v", id, want)
	case m.State != want:
		t.Fatalf("%s: state %v, want %v", id, m.State, want)
	}
}

func mustViewTransition(t testing.TB, tr *Transition, id peer.ID, from, to State, reason string) {
	t.Helper()
	want := Transition{ID: id, Name: string(id), From: from, To: to, Reason: reason}
	if tr == nil || *tr != want {
		t.Fatalf("transition %+v, want %+v", tr, want)
	}
}

func TestViewStateText(t *testing.T) {
	for _, tc := range []struct {
		s    State
		text string
	}{{0, "none"}, {Live, "live"}, {Suspect, "suspect"}, {Dead, "dead"}} {
		if got := tc.s.String(); got != tc.text {
			t.Errorf("State(%d).String() = %q, want %q", tc.s, got, tc.text)
		}
		b, err := tc.s.MarshalText()
		if err != nil || string(b) != tc.text {
			t.Errorf("State(%d).MarshalText() = %q, %v", tc.s, b, err)
		}
		var back State
		if err := back.UnmarshalText([]byte(strings.ToUpper(tc.text))); err != nil || back != tc.s {
			t.Errorf("UnmarshalText(%q) = %v, %v", tc.text, back, err)
		}
	}
	if got := State(9).String(); got != "state(9)" {
		t.Errorf("State(9).String() = %q", got)
	}
	if _, err := State(9).MarshalText(); err == nil {
		t.Error("State(9).MarshalText: no error")
	}
	var s State
	if err := s.UnmarshalText([]byte("alive")); err == nil {
		t.Error(`UnmarshalText("alive"): no error`)
	}
	b, err := json.Marshal(Transition{ID: "a", Name: "a", To: Live, Reason: "x"})
	if err != nil || !strings.Contains(string(b), `"from":"none","to":"live"`) {
		t.Errorf("json of a transition: %s, %v", b, err)
	}
}

func TestViewConfigValidate(t *testing.T) {
	ok := DefaultViewConfig()
	for _, tc := range []struct {
		name string
		edit func(*ViewConfig)
		want []string // substrings of the error, none for a valid config
	}{
		{"default", func(*ViewConfig) {}, nil},
		{"fast", func(c *ViewConfig) { *c = FastViewConfig() }, nil},
		{"interval zero", func(c *ViewConfig) { c.Interval = 0 }, []string{"membership.interval: must be > 0, got 0s"}},
		{"interval negative", func(c *ViewConfig) { c.Interval = -time.Second }, []string{"membership.interval: must be > 0, got -1s"}},
		{"suspect missed zero", func(c *ViewConfig) { c.SuspectMissed = 0 }, []string{"membership.suspect_missed: must be >= 1, got 0"}},
		{"suspect missed overflow", func(c *ViewConfig) { c.SuspectMissed = 1 << 40 }, []string{"membership.suspect_missed:", "overflow"}},
		{"dead after", func(c *ViewConfig) { c.DeadAfter = 0 }, []string{"membership.dead_after: must be > 0, got 0s"}},
		{"forget after", func(c *ViewConfig) { c.ForgetAfter = -time.Minute }, []string{"membership.forget_after: must be > 0, got -1m0s"}},
		{"all zero", func(c *ViewConfig) { *c = ViewConfig{} }, []string{
			"membership.interval:", "membership.suspect_missed:", "membership.dead_after:", "membership.forget_after:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestNewViewPanicsOnInvalidConfig(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "membership.interval") {
			t.Fatalf("recovered %v, want a panic naming membership.interval", r)
		}
	}()
	NewView(viewSelf, ViewConfig{})
}

func TestViewObserve(t *testing.T) {
	for _, tc := range []struct {
		name   string
		id     peer.ID
		first  Seq // accepted first, unless zero
		seq    Seq
		accept bool
	}{
		{"new member", "a", Seq{}, viewSeq(5, 1), true},
		{"newer counter", "a", viewSeq(5, 1), viewSeq(5, 2), true},
		{"duplicate", "a", viewSeq(5, 2), viewSeq(5, 2), false},
		{"stale counter", "a", viewSeq(5, 2), viewSeq(5, 1), false},
		{"older incarnation higher counter", "a", viewSeq(5, 2), viewSeq(4, 99), false},
		{"restart: newer incarnation lower counter", "a", viewSeq(5, 99), viewSeq(6, 1), true},
		{"zero sequence on a new member", "a", Seq{}, Seq{}, false},
		{"self", viewSelf, Seq{}, viewSeq(5, 1), false},
		{"empty id", "", Seq{}, viewSeq(5, 1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newFastView(t)
			if !tc.first.IsZero() {
				if ok, _ := v.Observe(tc.id, tc.first, viewHB("before"), viewAt(0)); !ok {
					t.Fatal("first heartbeat rejected")
				}
			}
			before, had := v.Get(tc.id)
			ok, tr := v.Observe(tc.id, tc.seq, viewHB("after"), viewAt(time.Millisecond))
			if ok != tc.accept {
				t.Fatalf("Observe(%v) accepted = %v, want %v", tc.seq, ok, tc.accept)
			}
			m, has := v.Get(tc.id)
			switch {
			case !tc.accept:
				if tr != nil || has != had || !reflect.DeepEqual(m, before) {
					t.Fatalf("rejected heartbeat changed the view: %+v, %+v → %+v", tr, before, m)
				}
			case !had:
				want := Transition{ID: tc.id, Name: "after", To: Live, Reason: "first heartbeat"}
				if tr == nil || *tr != want {
					t.Fatalf("transition %+v, want %+v", tr, want)
				}
				if m.State != Live || m.Since != viewAt(time.Millisecond) {
					t.Fatalf("new member %+v, want live since now", m)
				}
			default:
				if tr != nil {
					t.Fatalf("heartbeat of a live member made transition %+v", tr)
				}
				if m.Since != viewAt(0) {
					t.Fatalf("Since moved to %v without a state change", m.Since)
				}
			}
			if tc.accept && (m.Seq != tc.seq || m.Name != "after" || m.LastSeen != viewAt(time.Millisecond)) {
				t.Fatalf("accepted heartbeat not stored: %+v", m)
			}
			if tc.id == viewSelf && has {
				t.Fatal("self is a member of its own view")
			}
		})
	}
}

func TestViewObserveCopiesP2P(t *testing.T) {
	v := newFastView(t)
	h := viewHB("a")
	v.Observe("a", viewSeq(1, 1), h, viewAt(0))
	h.P2P[0] = "changed by the caller"
	if m, _ := v.Get("a"); m.P2P[0] == "changed by the caller" {
		t.Fatal("view shares the heartbeat's P2P slice with the caller")
	}
}

func TestViewTickBoundaries(t *testing.T) {
	cfg := FastViewConfig()
	suspectAfter := time.Duration(cfg.SuspectMissed) * cfg.Interval
	for _, tc := range []struct {
		name   string
		setup  func(*View) time.Time // brings "a" to its state; returns when it entered it
		limit  time.Duration         // how long "a" may stay in that state
		before State
		after  State // after the limit is exceeded (0: removed)
		reason string
	}{
		{"live to suspect", func(v *View) time.Time { return viewAt(0) }, suspectAfter, Live, Suspect, "missed heartbeats"},
		{"suspect to dead", func(v *View) time.Time {
			v.Disconnected("a", viewAt(time.Second))
			return viewAt(time.Second)
		}, cfg.DeadAfter, Suspect, Dead, "suspicion timeout"},
		{"dead to forgotten", func(v *View) time.Time {
			v.Disconnected("a", viewAt(time.Second))
			v.ProbeFailed("a", viewAt(2*time.Second))
			return viewAt(2 * time.Second)
		}, cfg.ForgetAfter, Dead, 0, "forgotten"},
	} {
		for _, step := range []struct {
			offset time.Duration
			moves  bool
		}{{-time.Nanosecond, false}, {0, false}, {time.Nanosecond, true}} {
			t.Run(fmt.Sprintf("%s/limit%+v", tc.name, step.offset), func(t *testing.T) {
				v := newFastView(t)
				viewJoin(t, v, "a", viewAt(0))
				since := tc.setup(v)
				mustViewState(t, v, "a", tc.before)
				trs := v.Tick(since.Add(tc.limit + step.offset))
				if !step.moves {
					if len(trs) != 0 {
						t.Fatalf("Tick at the limit%+v: %+v, want none", step.offset, trs)
					}
					mustViewState(t, v, "a", tc.before)
					return
				}
				want := []Transition{{ID: "a", Name: "a", From: tc.before, To: tc.after, Reason: tc.reason}}
				if !reflect.DeepEqual(trs, want) {
					t.Fatalf("Tick past the limit: %+v, want %+v", trs, want)
				}
				mustViewState(t, v, "a", tc.after)
			})
		}
	}
}

func TestViewTickOneStepPerCall(t *testing.T) {
	v := newFastView(t)
	viewJoin(t, v, "a", viewAt(0))
	now := viewAt(time.Hour) // long past every limit
	if trs := v.Tick(now); len(trs) != 1 || trs[0].To != Suspect {
		t.Fatalf("first Tick after a long silence: %+v, want one step to suspect", trs)
	}
	if trs := v.Tick(now); len(trs) != 0 {
		t.Fatalf("second Tick at the same time: %+v, want none", trs)
	}
	if m, _ := v.Get("a"); m.Since != now {
		t.Fatalf("Since = %v, want the Tick's time %v", m.Since, now)
	}
}

func TestViewFailureAndRecovery(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps func(t *testing.T, v *View)
	}{
		{"disconnect, heartbeat", func(t *testing.T, v *View) {
			mustViewTransition(t, v.Disconnected("a", viewAt(1*time.Second)), "a", Live, Suspect, "disconnected")
			_, tr := v.Observe("a", viewSeq(1, 2), viewHB("a"), viewAt(2*time.Second))
			mustViewTransition(t, tr, "a", Suspect, Live, "heartbeat")
		}},
		{"disconnect, probe failed, heartbeat", func(t *testing.T, v *View) {
			mustViewTransition(t, v.Disconnected("a", viewAt(1*time.Second)), "a", Live, Suspect, "disconnected")
			mustViewTransition(t, v.ProbeFailed("a", viewAt(2*time.Second)), "a", Suspect, Dead, "probe failed")
			_, tr := v.Observe("a", viewSeq(1, 2), viewHB("a"), viewAt(3*time.Second))
			mustViewTransition(t, tr, "a", Dead, Live, "heartbeat")
		}},
		{"silence, suspicion timeout, restart", func(t *testing.T, v *View) {
			trs := v.Tick(viewAt(time.Second))
			mustViewTransition(t, &trs[0], "a", Live, Suspect, "missed heartbeats")
			trs = v.Tick(viewAt(4 * time.Second))
			mustViewTransition(t, &trs[0], "a", Suspect, Dead, "suspicion timeout")
			_, tr := v.Observe("a", viewSeq(2, 1), viewHB("a"), viewAt(5*time.Second))
			mustViewTransition(t, tr, "a", Dead, Live, "heartbeat")
		}},
		{"stale heartbeat does not revive", func(t *testing.T, v *View) {
			v.Disconnected("a", viewAt(time.Second))
			v.ProbeFailed("a", viewAt(time.Second))
			if ok, tr := v.Observe("a", viewSeq(1, 1), viewHB("a"), viewAt(2*time.Second)); ok || tr != nil {
				t.Fatalf("duplicate heartbeat: %v, %+v", ok, tr)
			}
			mustViewState(t, v, "a", Dead)
		}},
		{"probe failed on live does nothing", func(t *testing.T, v *View) {
			if tr := v.ProbeFailed("a", viewAt(time.Second)); tr != nil {
				t.Fatalf("ProbeFailed on a live member: %+v", tr)
			}
			mustViewState(t, v, "a", Live)
		}},
		{"probe failed on dead and unknown does nothing", func(t *testing.T, v *View) {
			v.Disconnected("a", viewAt(time.Second))
			v.ProbeFailed("a", viewAt(time.Second))
			if tr := v.ProbeFailed("a", viewAt(2*time.Second)); tr != nil {
				t.Fatalf("ProbeFailed on a dead member: %+v", tr)
			}
			if m, _ := v.Get("a"); m.Since != viewAt(time.Second) {
				t.Fatalf("Since moved to %v", m.Since)
			}
			if tr := v.ProbeFailed("nobody", viewAt(2*time.Second)); tr != nil {
				t.Fatalf("ProbeFailed on an unknown peer: %+v", tr)
			}
		}},
		{"disconnect of suspect and dead keeps state", func(t *testing.T, v *View) {
			v.Tick(viewAt(time.Second))
			if tr := v.Disconnected("a", viewAt(time.Second)); tr != nil {
				t.Fatalf("Disconnected on a suspect member: %+v", tr)
			}
			v.ProbeFailed("a", viewAt(time.Second))
			if tr := v.Disconnected("a", viewAt(2*time.Second)); tr != nil {
				t.Fatalf("Disconnected on a dead member: %+v", tr)
			}
			mustViewState(t, v, "a", Dead)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newFastView(t)
			viewJoin(t, v, "a", viewAt(0))
			tc.steps(t, v)
		})
	}
}

func TestViewConnected(t *testing.T) {
	v := newFastView(t)
	v.Connected("early", viewAt(0)) // connects before its first heartbeat
	v.Connected("gone", viewAt(0))
	v.Disconnected("gone", viewAt(0))
	v.Connected(viewSelf, viewAt(0))
	if len(v.Members()) != 0 {
		t.Fatal("a connection alone made a member")
	}
	snap := v.Clone()
	viewJoin(t, v, "early", viewAt(time.Second))
	viewJoin(t, v, "gone", viewAt(time.Second))
	viewJoin(t, v, "late", viewAt(time.Second))
	v.Connected("late", viewAt(2*time.Second))
	for id, want := range map[peer.ID]bool{"early": true, "gone": false, "late": true} {
		if m, _ := v.Get(id); m.Connected != want || m.State != Live {
			t.Errorf("%s: connected %v state %v, want connected %v live", id, m.Connected, m.State, want)
		}
	}
	v.Disconnected("late", viewAt(3*time.Second))
	if m, _ := v.Get("late"); m.Connected || m.State != Suspect {
		t.Errorf("late after disconnect: connected %v state %v", m.Connected, m.State)
	}
	if _, ok := v.Get(viewSelf); ok {
		t.Error("self is a member")
	}
	viewJoin(t, snap, "early", viewAt(time.Second))
	if m, _ := snap.Get("early"); !m.Connected {
		t.Error("a clone lost the connections reported before first heartbeats")
	}
}

func TestViewForget(t *testing.T) {
	cfg := FastViewConfig()
	v := newFastView(t)
	viewJoin(t, v, "a", viewAt(0))
	v.Connected("a", viewAt(0))
	v.Disconnected("a", viewAt(time.Second))
	v.ProbeFailed("a", viewAt(time.Second))
	v.Connected("a", viewAt(time.Second)) // reconnected, yet silent
	trs := v.Tick(viewAt(time.Second + cfg.ForgetAfter + 1))
	want := []Transition{{ID: "a", Name: "a", From: Dead, To: 0, Reason: "forgotten"}}
	if !reflect.DeepEqual(trs, want) {
		t.Fatalf("Tick: %+v, want %+v", trs, want)
	}
	mustViewState(t, v, "a", 0)
	if l, s, d := v.Counts(); l+s+d != 0 {
		t.Fatalf("Counts after forgetting: %d %d %d", l, s, d)
	}
	// Once forgotten, any sequence is accepted again, as for a new member.
	ok, tr := v.Observe("a", viewSeq(1, 1), viewHB("a"), viewAt(2*time.Hour))
	if !ok || tr == nil || tr.From != 0 || tr.To != Live {
		t.Fatalf("heartbeat after forgetting: %v, %+v", ok, tr)
	}
	if m, _ := v.Get("a"); !m.Connected {
		t.Fatal("a forgotten member still connected lost its connection")
	}
}

func TestViewListings(t *testing.T) {
	v := newFastView(t)
	for _, id := range []peer.ID{"d", "b", "e", "a", "c", "f"} {
		viewJoin(t, v, id, viewAt(0))
	}
	v.Disconnected("e", viewAt(time.Second))
	v.Disconnected("b", viewAt(time.Second))
	v.Disconnected("f", viewAt(time.Second))
	v.ProbeFailed("f", viewAt(time.Second))

	ids := func(ms []Member) (out []peer.ID) {
		for _, m := range ms {
			out = append(out, m.ID)
		}
		return out
	}
	if got, want := ids(v.Members()), []peer.ID{"a", "b", "c", "d", "e", "f"}; !slices.Equal(got, want) {
		t.Errorf("Members: %v, want %v", got, want)
	}
	if got, want := ids(v.Live()), []peer.ID{"a", "c", "d"}; !slices.Equal(got, want) {
		t.Errorf("Live: %v, want %v", got, want)
	}
	if got, want := v.Suspects(), []peer.ID{"b", "e"}; !slices.Equal(got, want) {
		t.Errorf("Suspects: %v, want %v", got, want)
	}
	if l, s, d := v.Counts(); l != 3 || s != 2 || d != 1 {
		t.Errorf("Counts: %d %d %d, want 3 2 1", l, s, d)
	}
	trs := v.Tick(viewAt(10 * time.Second))
	var got []peer.ID
	for _, tr := range trs {
		got = append(got, tr.ID)
	}
	if want := []peer.ID{"a", "b", "c", "d", "e"}; !slices.Equal(got, want) {
		t.Errorf("Tick transitions by ID: %v, want %v", got, want)
	}
}

func TestViewCopiesNotAliased(t *testing.T) {
	v := newFastView(t)
	viewJoin(t, v, "a", viewAt(0))
	viewJoin(t, v, "b", viewAt(0))
	var want []Member // built apart from the view, so that it shares nothing with it
	for _, id := range []peer.ID{"a", "b"} {
		want = append(want, Member{ID: id, Heartbeat: viewHB(string(id)), Seq: viewSeq(1, 1),
			State: Live, LastSeen: viewAt(0), Since: viewAt(0)})
	}

	ms := v.Members()
	ms[0].P2P[0] = "mutated"
	ms[0].State = Dead
	ms[1].Name = "mutated"
	live := v.Live()
	live[0].P2P[0] = "mutated"
	m, _ := v.Get("a")
	m.P2P[0] = "mutated"
	if got := v.Members(); !reflect.DeepEqual(got, want) {
		t.Fatalf("mutating copies changed the view:\n got %+v\nwant %+v", got, want)
	}

	snap := v.Clone()
	v.Observe("a", viewSeq(1, 2), viewHB("renamed"), viewAt(time.Second))
	v.Disconnected("b", viewAt(time.Second))
	viewJoin(t, v, "c", viewAt(time.Second))
	if got := snap.Members(); !reflect.DeepEqual(got, want) {
		t.Fatalf("changing the view changed its clone:\n got %+v\nwant %+v", got, want)
	}
	cms := snap.Members()
	cms[0].P2P[0] = "mutated"
	if got := snap.Members(); !reflect.DeepEqual(got, want) {
		t.Fatalf("mutating copies changed the clone:\n got %+v\nwant %+v", got, want)
	}
	snap.Observe("a", viewSeq(1, 9), viewHB("in clone"), viewAt(2*time.Second))
	if m, _ := v.Get("a"); m.Name != "renamed" || m.P2P[0] == "mutated" {
		t.Fatalf("changing the clone changed the view: %+v", m)
	}
}

func TestViewMemberJSON(t *testing.T) {
	v := newFastView(t)
	id := newViewPeerID(t) // peer.ID's JSON form needs a real identity
	v.Observe(id, viewSeq(1, 1), viewHB("node-a"), viewAt(0))
	m, _ := v.Get(id)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var back Member
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, m) || !strings.Contains(string(b), `"state":"live"`) {
		t.Fatalf("round trip %s → %+v, want %+v", b, back, m)
	}
}

// TestViewProperties drives views through seeded random sequences of every
// operation and checks the invariants after each step.
func TestViewProperties(t *testing.T) {
	seeds, steps := 150, 400
	if testing.Short() {
		seeds = 30
	}
	for seed := range uint64(seeds) {
		checkViewRandomRun(t, seed, steps)
	}
}

// checkViewRandomRun runs one random sequence and reports the seed and the
// operations that led to the first broken invariant.
func checkViewRandomRun(t *testing.T, seed uint64, steps int) {
	t.Helper()
	cfg := FastViewConfig()
	cfg.ForgetAfter = 5 * time.Second // so that runs reach forgetting
	suspectAfter := time.Duration(cfg.SuspectMissed) * cfg.Interval
	ids := []peer.ID{"n1", "n2", "n3", "n4", "n5", viewSelf}

	r := mrand.New(mrand.NewPCG(seed, 0x6d656d62))
	v := NewView(viewSelf, cfg)
	start := viewAt(0)
	now := start
	var trace []string
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d, step %d: %s\nlast operations:\n  %s", seed, len(trace),
			fmt.Sprintf(format, args...), strings.Join(trace[max(0, len(trace)-25):], "\n  "))
	}

	lastSeq := map[peer.ID]Seq{}        // of the last accepted heartbeat, until forgotten
	observed := map[peer.ID]time.Time{} // when the last heartbeat was accepted
	disconnected := map[peer.ID]bool{}  // disconnected since that heartbeat
	states := func() map[peer.ID]State {
		s := map[peer.ID]State{}
		for _, m := range v.Members() {
			s[m.ID] = m.State
		}
		return s
	}

	for range steps {
		switch p := r.IntN(100); {
		case p < 10:
			now = now.Add(time.Duration(r.Int64N(int64(cfg.ForgetAfter + cfg.DeadAfter))))
		default:
			now = now.Add(time.Duration(r.Int64N(int64(cfg.Interval))))
		}
		id := ids[r.IntN(len(ids))]
		before := states()
		var trs []Transition
		switch op := r.IntN(100); {
		case op < 45:
			last := lastSeq[id]
			var seq Seq
			switch r.IntN(5) {
			case 0: // duplicate
				seq = last
			case 1: // stale
				seq = viewSeq(last.Inc, last.Ctr-min(last.Ctr, 1))
			case 2: // restart
				seq = viewSeq(last.Inc+1, uint64(r.IntN(3)))
			default:
				seq = viewSeq(max(last.Inc, 1), last.Ctr+1)
			}
			ok, tr := v.Observe(id, seq, viewHB(string(id)), now)
			trace = append(trace, fmt.Sprintf("%v Observe(%s, %v) = %v %+v", now.Sub(start), id, seq, ok, tr))
			if want := id != viewSelf && seq.Newer(last); ok != want {
				fail("Observe accepted %v, want %v (last %v)", ok, want, last)
			}
			if ok {
				lastSeq[id], observed[id], disconnected[id] = seq, now, false
			}
			if tr != nil {
				trs = append(trs, *tr)
			}
		case op < 55:
			v.Connected(id, now)
			trace = append(trace, fmt.Sprintf("%v Connected(%s)", now.Sub(start), id))
		case op < 65:
			tr := v.Disconnected(id, now)
			trace = append(trace, fmt.Sprintf("%v Disconnected(%s) = %+v", now.Sub(start), id, tr))
			disconnected[id] = true
			if tr != nil {
				trs = append(trs, *tr)
			}
		case op < 75:
			tr := v.ProbeFailed(id, now)
			trace = append(trace, fmt.Sprintf("%v ProbeFailed(%s) = %+v", now.Sub(start), id, tr))
			if before[id] == Live && tr != nil {
				fail("ProbeFailed changed a live member")
			}
			if tr != nil {
				trs = append(trs, *tr)
			}
		default:
			trs = v.Tick(now)
			trace = append(trace, fmt.Sprintf("%v Tick() = %+v", now.Sub(start), trs))
			st := states()
			for id, seen := range observed {
				if now.Sub(seen) <= suspectAfter && !disconnected[id] && st[id] != Live {
					fail("%s observed %v ago and not disconnected since is %v after Tick",
						id, now.Sub(seen), st[id])
				}
			}
		}

		after := states()
		for _, tr := range trs {
			if tr.From != before[tr.ID] || tr.To != after[tr.ID] || tr.From == tr.To || tr.Reason == "" {
				fail("transition %+v, state before %v, after %v", tr, before[tr.ID], after[tr.ID])
			}
			if tr.To == 0 {
				delete(lastSeq, tr.ID)
				delete(observed, tr.ID)
			}
		}
		for id, s := range after {
			if s != before[id] && !slices.ContainsFunc(trs, func(tr Transition) bool { return tr.ID == id }) {
				fail("%s went from %v to %v without a transition", id, before[id], s)
			}
		}
		for id, s := range before {
			if _, ok := after[id]; !ok && !slices.ContainsFunc(trs, func(tr Transition) bool { return tr.ID == id }) {
				fail("%s (%v) vanished without a transition", id, s)
			}
		}
		checkViewInvariants(v, now, lastSeq, fail)
	}
}

// checkViewInvariants checks what must hold of a view after any operation.
func checkViewInvariants(v *View, now time.Time, lastSeq map[peer.ID]Seq, fail func(string, ...any)) {
	ms := v.Members()
	var live, suspect, dead int
	var suspects []peer.ID
	for i, m := range ms {
		if i > 0 && ms[i-1].ID >= m.ID {
			fail("Members not sorted: %s before %s", ms[i-1].ID, m.ID)
		}
		if m.ID == viewSelf {
			fail("self is a member")
		}
		switch m.State {
		case Live:
			live++
		case Suspect:
			suspect++
			suspects = append(suspects, m.ID)
		case Dead:
			dead++
		default:
			fail("%s has state %v", m.ID, m.State)
		}
		if m.Seq != lastSeq[m.ID] {
			fail("%s: Seq %v, want the last accepted %v", m.ID, m.Seq, lastSeq[m.ID])
		}
		if m.LastSeen.After(now) || m.Since.After(now) || m.State == Live && m.Since.After(m.LastSeen) {
			fail("%s: LastSeen %v Since %v at %v", m.ID, m.LastSeen, m.Since, now)
		}
	}
	if l, s, d := v.Counts(); l != live || s != suspect || d != dead {
		fail("Counts %d %d %d, members say %d %d %d", l, s, d, live, suspect, dead)
	}
	if got := v.Suspects(); !slices.Equal(got, suspects) {
		fail("Suspects %v, members say %v", got, suspects)
	}
	if got := v.Clone().Members(); !reflect.DeepEqual(got, ms) {
		fail("Clone differs from the view")
	}
}

func BenchmarkViewTick(b *testing.B) {
	v := NewView(viewSelf, DefaultViewConfig())
	for i := range 50 {
		v.Observe(newViewPeerID(b), viewSeq(1, 1), viewHB(fmt.Sprint("node", i)), viewAt(0))
	}
	now := viewAt(0).Add(time.Second) // every member stays live
	b.ReportAllocs()
	for b.Loop() {
		if trs := v.Tick(now); len(trs) != 0 {
			b.Fatal("unexpected transitions")
		}
	}
}
