package sim

import (
	"errors"
	"log/slog"
	"sync"
	"time"
)

// The demo: a local federation of three nodes and four emulated providers
// on 127.0.0.1, with simulated users registered at every node, placing real
// calls with real RTP in rounds. Midway the cheap provider's media is
// degraded (the provider emulator's own impairment: the nodes are told
// nothing and must notice by measuring); later another provider goes down
// for a while and calls fail over. `callmesh demo` runs it.

// DemoConfig shapes a demo run.
type DemoConfig struct {
	// Dir holds the nodes' data and the trunk's password file.
	Dir string
	// Duration is about how long calls are placed; it sets the number of
	// rounds (at least 5).
	Duration time.Duration
	// Hold is how long each answered call lasts (default 4s); Gap the pause
	// between rounds (default 3s): two of the nodes' measurement intervals
	// and a second, time for the round's measurements to be published by
	// the nodes that took them and judged by every node before the next
	// round.
	Hold, Gap time.Duration
	// Guests adds an account per node for a real phone (`--keep`).
	Guests bool
	// Logger receives the nodes', providers' and user agents' logs
	// (default: discarded).
	Logger *slog.Logger
	// OnEvent, when set, is told of progress: called from the demo's
	// goroutines, never concurrently.
	OnEvent func(DemoEvent)
}

// DemoResult is what a demo run found; `callmesh demo --json` prints it.
type DemoResult struct {
	Nodes     []DemoNode     `json:"nodes"`
	Users     []DemoUser     `json:"users"`
	Providers []DemoProvider `json:"providers"`
	// Steps are what the demo did to the providers, in order.
	Steps []DemoStep `json:"steps"`
	// Feedback is how the nodes' standing of the providers changed (ok,
	// demoted, quarantined, probation), as the demo saw it.
	Feedback []DemoJudgement `json:"feedback"`
	Calls    []DemoCall      `json:"calls"`
	// Rounds is the number of call rounds; ElapsedMS the time they took.
	Rounds    int   `json:"rounds"`
	ElapsedMS int64 `json:"elapsed_ms"`
}

// DemoDirectory is who is there: enough for another program (or a real
// phone) to join in.
type DemoDirectory struct {
	Nodes     []DemoNode     `json:"nodes"`
	Users     []DemoUser     `json:"users"`
	Providers []DemoProvider `json:"providers,omitempty"`
}

// DemoNode is one node of the demo.
type DemoNode struct {
	Name  string `json:"name"`
	ID    string `json:"id"`
	SIP   string `json:"sip"`
	Admin string `json:"admin"`
}

// DemoUser is an account of the demo: a simulated user, or a guest
// account for a real phone.
type DemoUser struct {
	AOR      string `json:"aor"`
	Password string `json:"password"`
	Node     string `json:"node"`
	Class    string `json:"class"`
	Guest    bool   `json:"guest,omitempty"`
}

// DemoProvider is one emulated provider.
type DemoProvider struct {
	ID          string `json:"id"`
	Role        string `json:"role"`
	AccessPoint string `json:"access_point"`
	Admin       string `json:"admin"`
	About       string `json:"about"`
	// Invites counts the INVITE transactions it received while up (a
	// challenged INVITE and its retry are two).
	Invites uint64 `json:"invites"`
}

// DemoStep is something the demo did to a provider.
type DemoStep struct {
	AtMS     int64  `json:"at_ms"` // since the first round started
	Round    int    `json:"round"`
	Action   string `json:"action"` // degrade, down, up
	Provider string `json:"provider"`
	Detail   string `json:"detail"`
	// InvitesBefore is the provider's Invites when the step was taken.
	InvitesBefore uint64 `json:"invites_before"`
}

// Steps' actions.
const (
	ActionDegrade = "degrade"
	ActionDown    = "down"
	ActionUp      = "up"
)

// DemoJudgement is a node's new standing of a provider.
type DemoJudgement struct {
	AtMS     int64  `json:"at_ms"`
	Node     string `json:"node"`
	Provider string `json:"provider"`
	State    string `json:"state"`
}

// DemoCall is one call the demo placed, as the caller's node saw it.
type DemoCall struct {
	Round     int    `json:"round"`
	Phase     string `json:"phase"`
	StartedMS int64  `json:"started_ms"` // when the INVITE left, since the first round started
	Kind      string `json:"kind"`       // p2p, local, number
	Caller    string `json:"caller"`
	Callee    string `json:"callee"`
	Class     string `json:"class"`
	// Status is the final SIP status the caller got.
	Status int    `json:"status"`
	Reason string `json:"reason,omitempty"`
	// Master is the session's master; Path the hops of the path that
	// carried the call (or of the last one tried), the caller's node
	// alone for a call within a node.
	Master string   `json:"master"`
	Path   []string `json:"path"`
	// PricePerMinute and PredictedMOS are the caller's node's plan for
	// that path just before the call; MeasuredMOS the node's measurement
	// of the call's media (the worse direction) just before its BYE.
	PricePerMinute string   `json:"price_per_minute"`
	PredictedMOS   *float64 `json:"predicted_mos"`
	MeasuredMOS    *float64 `json:"measured_mos"`
	// Attempts counts the paths tried; Tried lists the ones that failed.
	Attempts int           `json:"attempts"`
	Tried    []DemoAttempt `json:"tried,omitempty"`
	// RTPReceived counts the RTP packets the caller received.
	RTPReceived uint64 `json:"rtp_received"`
}

// DemoAttempt is a path tried that did not carry the call.
type DemoAttempt struct {
	Path   []string `json:"path"`
	Status int      `json:"status"`
}

// DemoEvent is progress: a round starting, a step, a call done, or a
// periodic tick with the running totals.
type DemoEvent struct {
	Kind    string        // round, step, feedback, call, tick
	Elapsed time.Duration // since the first round started
	Text    string        // a line for people (round, step and feedback events)
	Call    *DemoCall     // call events
	Totals  DemoTotals
}

// DemoTotals are the running totals of a run.
type DemoTotals struct {
	Round, Rounds int
	Phase         string
	Placed        int // calls finished
	Answered      int
	Failed        int
	FailedOver    int // answered after more than one attempt
	Active        int // calls in progress
}

// Demo is a running demo federation. Close stops it.
type Demo struct {
	cfg       DemoConfig
	log       *slog.Logger
	fed       *Federation
	providers []*demoProvider
	users     []*demoUser
	dir       DemoDirectory

	evMu    sync.Mutex // serializes OnEvent
	mu      sync.Mutex
	start   time.Time
	totals  DemoTotals
	result  DemoResult
	stopped bool
}

// Directory lists the nodes, users and providers of a started demo.
func (d *Demo) Directory() DemoDirectory { return d.dir }

// Close stops the user agents, the nodes and the providers.
func (d *Demo) Close() error {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return nil
	}
	d.stopped = true
	d.mu.Unlock()
	var errs []error
	var wg sync.WaitGroup
	var emu sync.Mutex
	for _, u := range d.users {
		if u.ua == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := u.ua.Close(); err != nil {
				emu.Lock()
				errs = append(errs, err)
				emu.Unlock()
			}
		}()
	}
	wg.Wait()
	if d.fed != nil {
		errs = append(errs, d.fed.Close())
	}
	for _, p := range d.providers {
		if p.p != nil {
			errs = append(errs, p.p.Close())
		}
	}
	return errors.Join(errs...)
}

// emit tells OnEvent, one event at a time.
func (d *Demo) emit(ev DemoEvent) {
	if d.cfg.OnEvent == nil {
		return
	}
	d.mu.Lock()
	ev.Totals = d.totals
	if !d.start.IsZero() {
		ev.Elapsed = time.Since(d.start)
	}
	d.mu.Unlock()
	d.evMu.Lock()
	defer d.evMu.Unlock()
	d.cfg.OnEvent(ev)
}
