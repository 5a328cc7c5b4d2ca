package call

import (
	"fmt"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func acts(as []Action) string {
	var s []string
	for _, a := range as {
		s = append(s, a.String())
	}
	return strings.Join(s, " ")
}

type step struct {
	ev   Event
	want string
}

func run(t *testing.T, branches int, steps []step, final State) *Call {
	t.Helper()
	return runCall(t, New(branches), steps, final)
}

// runCall steps c through steps, checking each step's actions and the
// final state.
func runCall(t *testing.T, c *Call, steps []step, final State) *Call {
	t.Helper()
	for i, s := range steps {
		if got := acts(c.Step(s.ev)); got != s.want {
			t.Fatalf("step %d %+v: actions %q, want %q", i, s.ev, got, s.want)
		}
	}
	if c.State() != final {
		t.Fatalf("final state %s, want %s", c.State(), final)
	}
	return c
}

func TestAnsweredCallAndByeFromEitherSide(t *testing.T) {
	for _, side := range []Side{Caller, Callee} {
		want := "bye-branch(0) release"
		if side == Callee {
			want = "bye-caller release"
		}
		c := run(t, 1, []step{
			{Event{Kind: Provisional, Code: 100}, ""},
			{Event{Kind: Provisional, Code: 180}, "relay-provisional(0,180)"},
			{Event{Kind: Provisional, Code: 183, SDP: true}, "relay-provisional(0,183)"},
			{Event{Kind: Answer}, "answer-caller(0)"},
			{Event{Kind: Answer}, ""}, // retransmission before the ACK
			{Event{Kind: Ack}, ""},
			{Event{Kind: Answer}, "ack-branch(0)"}, // retransmission after it: ACK again
			{Event{Kind: Bye, Side: side}, want},
			{Event{Kind: Bye, Side: side.other()}, ""}, // crossing BYEs
		}, Ended)
		if c.EndedBy() != side.String()+" hung up" {
			t.Errorf("ended by %q", c.EndedBy())
		}
	}
}

func (s Side) other() Side { return 1 - s }

// StepAppend adds to what it is given, and a call's usual course, stepped
// into a buffer of the caller's, allocates nothing beyond New's one
// allocation: the B2BUA steps every call through it.
func TestStepAppend(t *testing.T) {
	c := New(2)
	keep := Action{Kind: Release}
	got := c.StepAppend([]Action{keep}, Event{Kind: Answer, Branch: 1})
	if len(got) != 3 || got[0] != keep || acts(got[1:]) != "answer-caller(1) cancel-branch(0)" || got[2].Reason != ReasonElsewhere {
		t.Fatalf("actions %q", acts(got))
	}

	course := []Event{{Kind: Provisional, Code: 180}, {Kind: Answer}, {Kind: Ack}, {Kind: Bye, Side: Caller}}
	var buf [4]Action
	allocs := testing.AllocsPerRun(100, func() {
		c := New(1)
		for _, ev := range course {
			c.StepAppend(buf[:0], ev)
		}
		if c.State() != Ended {
			t.Fatalf("state %s", c.State())
		}
	})
	if allocs != 1 {
		t.Errorf("a call's course allocated %v times, want 1 (New)", allocs)
	}
}

func TestForkFirstAnswerWinsOthersCancelledLateAnswerEnded(t *testing.T) {
	run(t, 3, []step{
		{Event{Kind: Provisional, Branch: 1, Code: 180}, "relay-provisional(1,180)"},
		{Event{Kind: Answer, Branch: 2}, "answer-caller(2) cancel-branch(0) cancel-branch(1)"},
		{Event{Kind: Failure, Branch: 0, Code: 487}, ""},
		{Event{Kind: Answer, Branch: 1}, "ack-branch(1) bye-branch(1)"}, // 2xx crossed the CANCEL
		{Event{Kind: Answer, Branch: 1}, "ack-branch(1)"},               // its retransmission
		{Event{Kind: Ack}, ""},
	}, Confirmed)
}

func TestCalleeOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		codes []int
		want  int
	}{
		{"busy", []int{486}, 486},
		{"decline", []int{603}, 603},
		{"not found on the device", []int{404}, 404},
		{"unavailable", []int{480}, 480},
		{"timeout or transport error", []int{408}, 480},
		{"redirect not followed", []int{302}, 480},
		{"device challenges", []int{407}, 480},
		{"callee 503 is not passed upstream", []int{503}, 500},
		{"callee 500", []int{500}, 500},
		{"busy beats unavailable", []int{480, 486}, 486},
		{"client error beats server error", []int{500, 404}, 404},
		{"offer refused beats unavailable", []int{488, 408}, 488},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New(len(tc.codes))
			var got []Action
			for i, code := range tc.codes {
				got = c.Step(Event{Kind: Failure, Branch: i, Code: code})
			}
			if len(got) != 2 || got[0].Kind != RejectCaller || got[0].Final.Code != tc.want || got[1].Kind != Release {
				t.Fatalf("actions %q (%+v), want reject-caller(%d) release", acts(got), got, tc.want)
			}
			if tc.want == 500 && got[0].Final.Callee {
				t.Error("a callee server error counted as the callee's own answer")
			}
		})
	}
}

func TestGlobalFailureStopsTheSearch(t *testing.T) {
	run(t, 3, []step{
		{Event{Kind: Provisional, Branch: 0, Code: 180}, "relay-provisional(0,180)"},
		{Event{Kind: Failure, Branch: 1, Code: 600}, "cancel-branch(0) cancel-branch(2) reject-caller(600) release"},
		{Event{Kind: Failure, Branch: 0, Code: 487}, ""},
		{Event{Kind: Answer, Branch: 2}, "ack-branch(2) bye-branch(2)"},
	}, Ended)
}

func TestCancelRingTimeoutAndNoAck(t *testing.T) {
	c := run(t, 2, []step{
		{Event{Kind: Provisional, Branch: 0, Code: 180}, "relay-provisional(0,180)"},
		{Event{Kind: Cancel}, "cancel-branch(0) cancel-branch(1) release"},
		{Event{Kind: Failure, Branch: 0, Code: 487}, ""},
		{Event{Kind: Answer, Branch: 1}, "ack-branch(1) bye-branch(1)"},
	}, Ended)
	if c.Final() != Cancelled {
		t.Errorf("final %+v", c.Final())
	}
	run(t, 1, []step{
		{Event{Kind: Provisional, Code: 180}, "relay-provisional(0,180)"},
		{Event{Kind: RingTimeout}, "cancel-branch(0) reject-caller(480) release"},
		{Event{Kind: RingTimeout}, ""},
	}, Ended)
	run(t, 1, []step{
		{Event{Kind: Answer}, "answer-caller(0)"},
		// The callee's 2xx is ACKed before its BYE: the caller's ACK,
		// which would have been passed on, never came.
		{Event{Kind: AckTimeout}, "bye-caller ack-branch(0) bye-branch(0) release"},
	}, Ended)
	// A caller that hangs up before its ACK is handled (a BYE overtaking
	// it): the same.
	run(t, 1, []step{
		{Event{Kind: Answer}, "answer-caller(0)"},
		{Event{Kind: Bye, Side: Caller}, "ack-branch(0) bye-branch(0) release"},
		{Event{Kind: Ack}, ""},
	}, Ended)
}

func TestMediaDeadAndShutdown(t *testing.T) {
	run(t, 1, []step{
		{Event{Kind: MediaDead, Side: Callee}, ""}, // not set up: nothing to end
		{Event{Kind: Answer}, "answer-caller(0)"},
		{Event{Kind: Ack}, ""},
		{Event{Kind: MediaDead, Side: Callee}, "bye-caller bye-branch(0) release"},
	}, Ended)
	c := run(t, 2, []step{
		{Event{Kind: Shutdown}, "cancel-branch(0) cancel-branch(1) reject-caller(503) release"},
	}, Ended)
	if c.Final().Code != 503 {
		t.Errorf("shutdown before answer: %+v", c.Final())
	}
	got := New(1)
	got.Step(Event{Kind: Answer})
	as := got.Step(Event{Kind: Shutdown})
	if acts(as) != "bye-caller ack-branch(0) bye-branch(0) release" {
		t.Fatalf("shutdown while the caller's ACK is awaited: %q", acts(as))
	}
	if as[0].Reason != ReasonShutdown || as[2].Reason != ReasonShutdown {
		t.Errorf("shutdown BYEs carry reasons %q, %q", as[0].Reason, as[2].Reason)
	}
}

func TestBadBranchIndexIsIgnored(t *testing.T) {
	c := New(1)
	for _, b := range []int{-1, 1, 99} {
		for _, k := range []EventKind{Provisional, Answer, Failure} {
			if got := c.Step(Event{Kind: k, Branch: b, Code: 180}); got != nil {
				t.Fatalf("branch %d: %v", b, got)
			}
		}
	}
}

// TestInvariants drives calls with random events and checks what must hold
// whatever the order: the caller gets at most one final answer; Release
// comes once; every 2xx that did not win is ACKed and ended with one BYE;
// after an answer the caller is never rejected.
func TestInvariants(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 4).Draw(t, "branches")
		c := New(n)
		finals, releases := 0, 0
		answered := false
		byes := map[int]int{}
		steps := rapid.IntRange(1, 40).Draw(t, "steps")
		for i := 0; i < steps; i++ {
			ev := Event{
				Kind:   EventKind(rapid.IntRange(0, int(SessionExpired)).Draw(t, "kind")),
				Branch: rapid.IntRange(0, n-1).Draw(t, "branch"),
				Code:   rapid.SampledFrom([]int{100, 180, 183, 200, 404, 408, 480, 486, 487, 500, 503, 600, 603}).Draw(t, "code"),
				Side:   Side(rapid.IntRange(0, 1).Draw(t, "side")),
			}
			if ev.Kind == Answer {
				ev.Code = 200
			}
			if ev.Kind == Failure && ev.Code < 300 {
				ev.Code = 487
			}
			for _, a := range c.Step(ev) {
				switch a.Kind {
				case AnswerCaller:
					finals++
					answered = true
					if a.Branch != c.Winner() {
						t.Fatalf("answered with branch %d, winner %d", a.Branch, c.Winner())
					}
				case RejectCaller:
					finals++
					if answered {
						t.Fatal("rejected after answering")
					}
				case Release:
					releases++
				case ByeBranch:
					byes[a.Branch]++
				}
			}
			if finals > 1 || releases > 1 {
				t.Fatalf("finals %d releases %d", finals, releases)
			}
		}
		for b, k := range byes {
			if k > 1 {
				t.Fatalf("branch %d got %d BYEs", b, k)
			}
		}
	})
}

func TestStringsCoverEveryValue(t *testing.T) {
	for s := Calling; s <= Ended; s++ {
		if s.String() == "" {
			t.Fatal(s)
		}
	}
	for k := RelayProvisional; k <= Release; k++ {
		if k.String() == "" || fmt.Sprint(Action{Kind: k}) == "" {
			t.Fatal(k)
		}
	}
}

func runSerial(t *testing.T, paths int, steps []step, final State) *Call {
	t.Helper()
	return runCall(t, NewSerial(paths), steps, final)
}

func TestSerialFailsOverOnPathFaultsOnly(t *testing.T) {
	// A timeout, a 503 and a 500 from the paths: each starts the next path;
	// the third answers. The caller sees one call.
	c := runSerial(t, 4, []step{
		{Event{Kind: Failure, Branch: 0, Code: 408, Reason: "first hop timeout"}, "start-branch(1)"},
		{Event{Kind: Provisional, Branch: 1, Code: 100}, ""},
		{Event{Kind: Failure, Branch: 1, Code: 503}, "start-branch(2)"},
		{Event{Kind: Provisional, Branch: 2, Code: 180}, "relay-provisional(2,180)"},
		{Event{Kind: Answer, Branch: 2}, "answer-caller(2)"},
		{Event{Kind: Answer, Branch: 0}, "ack-branch(0) bye-branch(0)"}, // the abandoned path answered late
		{Event{Kind: Ack}, ""},
	}, Confirmed)
	if c.Attempts() != 3 || c.Winner() != 2 {
		t.Fatalf("attempts %d, winner %d; want 3, 2", c.Attempts(), c.Winner())
	}

	// The callee's own answers end the call at once, whatever is left.
	for _, ev := range []Event{
		{Kind: Failure, Code: 486, Callee: true},
		{Kind: Failure, Code: 486},                  // busy is the callee's even unmarked
		{Kind: Failure, Code: 500, Callee: true},    // the callee's side failed: another path cannot help
		{Kind: Failure, Code: 480, Callee: true},    // not registered, no answer
		{Kind: Failure, Code: 603},                  // global
		{Kind: Failure, Code: 407, Reason: "trunk"}, // a challenge nobody could answer
	} {
		c := NewSerial(3)
		got := acts(c.Step(ev))
		if !strings.HasPrefix(got, "reject-caller(") || c.Attempts() != 1 {
			t.Errorf("%+v: %q after %d attempts; want a rejection after 1", ev, got, c.Attempts())
		}
	}

	// Every path failing by its own fault: 503, no Retry-After leaking.
	c = runSerial(t, 2, []step{
		{Event{Kind: Failure, Branch: 0, Code: 502}, "start-branch(1)"},
		{Event{Kind: Failure, Branch: 1, Code: 408}, "reject-caller(503) release"},
	}, Ended)
	if c.Final() != NoPath {
		t.Fatalf("final %+v", c.Final())
	}

	// Cancel while the second path rings: only that one is cancelled.
	runSerial(t, 3, []step{
		{Event{Kind: Failure, Branch: 0, Code: 500}, "start-branch(1)"},
		{Event{Kind: Provisional, Branch: 1, Code: 180}, "relay-provisional(1,180)"},
		{Event{Kind: Cancel}, "cancel-branch(1) release"},
	}, Ended)
}

func TestRetryable(t *testing.T) {
	for code, want := range map[int]bool{408: true, 500: true, 502: true, 503: true, 504: true, 486: false, 404: false, 480: false, 487: false, 600: false, 603: false, 407: false} {
		if got := Retryable(Event{Code: code}); got != want {
			t.Errorf("Retryable(%d) = %v", code, got)
		}
		if Retryable(Event{Code: code, Callee: true}) {
			t.Errorf("Retryable(%d marked callee) = true", code)
		}
	}
}
