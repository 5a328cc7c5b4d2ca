package load

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/callmesh/callmesh/gossip"
	"github.com/callmesh/callmesh/itest"
	"github.com/callmesh/callmesh/node"
	"github.com/callmesh/callmesh/node/accounts"
	"github.com/callmesh/callmesh/node/digest"
)

const (
	// loadUsers is how many distinct accounts register: user00000 to
	// user09999, each with password "pw-" + name (the Kamailio config
	// derives it the same way).
	loadUsers = 10000
	// loadExpires is the expiry each REGISTER asks for: longer than the
	// whole run, so a user met again on a later pass refreshes a live
	// binding.
	loadExpires = 3600
	// failureLimit: a step with this share of failed registrations or more
	// ends the ladder.
	failureLimit = 0.001
	// sustainedShare: a step in which SIPp started calls at less than this
	// share of the target rate ends the ladder too: the server answered
	// too slowly for SIPp's limit of open calls, or SIPp itself ran out of
	// CPU. Either way the rate was not reached on this machine.
	sustainedShare = 0.95
	// keptPace: location publishing keeps pace with a step when it is done
	// at most this long after SIPp ends.
	keptPace = time.Second
	// retransmitMs is SIPp's first UDP retransmission timer (the
	// scenario's retrans): a p99 at or above it means that 1% of the calls
	// or more were not answered before SIPp sent again.
	retransmitMs = 500
	// federationSize is the number of nodes; node 0 takes the load.
	federationSize = 3
	// drainTimeout bounds the wait for a node's DHT publishing to catch up.
	drainTimeout = 5 * time.Minute
)

// defaultRates are the rising steps, registrations per second.
var defaultRates = []int{500, 1000, 1500, 2000, 2500, 3000, 4000, 5000, 6000, 8000, 10000, 12000, 16000}

// plan is what a run measures.
type plan struct {
	rates   []int
	step    time.Duration
	servers []string
}

func loadPlan(t *testing.T) plan {
	t.Helper()
	p := plan{rates: defaultRates, step: 5 * time.Second, servers: []string{"callmesh", "kamailio"}}
	p.rates = envCounts(t, "CALLMESH_LOAD_RATES", p.rates)
	if s := os.Getenv("CALLMESH_LOAD_STEP"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < time.Second {
			t.Fatalf("CALLMESH_LOAD_STEP=%q: want a duration of at least 1s", s)
		}
		p.step = d
	}
	if s := os.Getenv("CALLMESH_LOAD_SERVERS"); s != "" {
		p.servers = nil
		for _, f := range strings.Split(s, ",") {
			switch f = strings.TrimSpace(f); f {
			case "callmesh", "kamailio":
				p.servers = append(p.servers, f)
			default:
				t.Fatalf("CALLMESH_LOAD_SERVERS=%q: unknown server %q (callmesh, kamailio)", s, f)
			}
		}
	}
	return p
}

// server is a registrar under load.
type server struct {
	name, title string
	addr        string
	// cpu returns the CPU time the server has used so far.
	cpu func() time.Duration
	// settle, when set, is called after each step: it waits for the
	// server's background work caused by the step and describes it.
	settle func(t *testing.T) background
	// logTail, when set, returns the end of the server's log, shown when
	// a step fails.
	logTail func() string
	notes   []string
}

// background is a step's work that outlives its SIP transactions: a
// callmesh node publishes each registration's location in the DHT.
type background struct {
	puts     int           // location records put while SIPp ran
	total    int           // and until publishing caught up
	errors   int           // puts that failed (retried)
	drained  time.Duration // after SIPp ended, until publishing caught up
	cpu      time.Duration // the server's CPU time (cpu func) then
	timedOut bool          // publishing had not caught up after drainTimeout
}

// step is one measured step of the ladder.
type step struct {
	rate, calls, fresh  int
	successful, failed  int
	reached             float64 // calls started per second
	p50, p99, mean, max float64 // response time 1, ms
	serverCores         float64 // while SIPp ran
	sippCores           float64
	cpuPerReg           float64 // server CPU ms per successful registration, background work included
	bg                  *background
	sippErrors          string
}

func (s step) failureRate() float64 { return float64(s.failed) / float64(s.calls) }

// passed reports whether the step counts: fewer failures than
// failureLimit at a rate SIPp sustained.
func (s step) passed() bool {
	return s.failureRate() < failureLimit && s.reached >= sustainedShare*float64(s.rate)
}

// report is one server's ladder, filled step by step.
type report struct {
	srv   server
	steps []step
}

// TestLoadRegister is the registrar load benchmark: SIPp registers
// distinct users with digest authentication (REGISTER, 401, REGISTER with
// credentials, 200) over UDP at rising rates, first against one node of a
// 3-node federation, then against Kamailio configured as an equivalent
// registrar, on the same cores. Each step runs for CALLMESH_LOAD_STEP; the
// ladder ends at the first step with 0.1% failures or more, or in which
// SIPp could not keep the rate. Per step it reports the rate SIPp reached,
// failures, p50/p99 of the time from the first REGISTER to the 200, the
// CPU of the server and of SIPp, and for callmesh how far the node's DHT
// location publishing kept up.
//
// It runs only with CALLMESH_LOAD=1 (make load-register).
func TestLoadRegister(t *testing.T) {
	if os.Getenv("CALLMESH_LOAD") != "1" {
		t.Skip("load benchmark: set CALLMESH_LOAD=1 (make load-register)")
	}
	p := loadPlan(t)
	users := make([]user, loadUsers)
	for i := range users {
		name := fmt.Sprintf("user%05d", i)
		users[i] = user{name: name, password: "pw-" + name}
	}
	var reports []*report
	for _, name := range p.servers {
		t.Run(name, func(t *testing.T) {
			r := &report{}
			switch name {
			case "callmesh":
				r.srv = startCallmesh(t, users)
			case "kamailio":
				r.srv = kamailioServer(t)
			}
			reports = append(reports, r)
			ladder(t, r, users, p)
		})
	}
	md := markdown(p, reports)
	for _, line := range strings.Split(md, "\n") {
		t.Log(line)
	}
	if out := os.Getenv("CALLMESH_LOAD_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
			t.Errorf("CALLMESH_LOAD_OUT: %v", err)
		}
	}
}

// startCallmesh starts the federation on production timers and Badger
// defaults, creates the accounts on node 0 and waits until their user-home
// records are in the DHT, so that the ladder measures registrations only.
func startCallmesh(t *testing.T, users []user) server {
	t.Helper()
	gc := gossip.DefaultConfig()
	c := itest.StartCluster(t, federationSize, itest.Options{
		Configure: func(_ int, cfg *node.Config) {
			def := node.DefaultConfig()
			cfg.Membership = def.Membership
			cfg.DHT.Republish = def.DHT.Republish
			cfg.Store = def.Store
		},
		Gossip: &gc,
	})
	itest.Eventually(t, time.Minute, c.Converged, "%d nodes did not converge", federationSize)
	for i := range federationSize {
		itest.Eventually(t, time.Minute, func() bool { return c.Node(i).DHT().RoutingTable().Size() >= federationSize-1 },
			"node%d's DHT routing table has fewer than %d peers", i, federationSize-1)
	}
	n := c.Node(0)
	domain := n.Config().Domain
	var notes []string

	putsBefore, _ := recordPuts(n)
	start := time.Now()
	for _, u := range users {
		_, err := n.Accounts().Add(accounts.Account{
			Name: u.name, Class: accounts.Bronze, Allow: []string{accounts.RightP2P}, MaxCalls: 2,
			Home: n.ID().String(), Realm: domain, Credentials: digest.NewCredentials(u.name, domain, u.password),
		})
		if err != nil {
			t.Fatalf("add account %s: %v", u.name, err)
		}
	}
	added := time.Since(start)
	notes = append(notes, fmt.Sprintf("%d accounts added on node0 in %.1f s (%.2f ms per durable Add)",
		len(users), added.Seconds(), ms(added)/float64(len(users))))
	t.Log(notes[len(notes)-1])

	start = time.Now()
	itest.Eventually(t, drainTimeout, func() bool { ok, _ := recordPuts(n); return ok-putsBefore >= len(users) },
		"user-home records of %d accounts not published", len(users))
	notes = append(notes, fmt.Sprintf("their user-home records were in the DHT %.1f s later (%.0f puts/s)",
		time.Since(start).Seconds(), float64(len(users))/time.Since(start).Seconds()))
	t.Log(notes[len(notes)-1])

	cpu0, t0 := processCPU(), time.Now()
	time.Sleep(5 * time.Second)
	idle := (processCPU() - cpu0).Seconds() / time.Since(t0).Seconds()
	notes = append(notes, fmt.Sprintf("idle federation process: %.3f cores", idle))
	t.Log(notes[len(notes)-1])

	return server{
		name:  "callmesh",
		title: fmt.Sprintf("callmesh %s: node0 of a %d-node federation in one process", node.Version, federationSize),
		addr:  n.SIPAddr(),
		cpu:   processCPU,
		notes: notes,
	}.withDHT(n)
}

// dhtQuiet is how long node 0's DHT put counters must stand still for its
// location publishing to count as caught up: the publisher puts pending
// records as they come and retries failed ones every second.
const dhtQuiet = 3 * time.Second

// withDHT makes the server's settle step wait until node n has put the
// location records of the step's registrations in the DHT.
func (s server) withDHT(n *node.Node) server {
	okBefore, errBefore := recordPuts(n)
	s.settle = func(t *testing.T) background {
		ok, failed := recordPuts(n)
		bg := background{puts: ok - okBefore}
		end := time.Now()
		changed, cpu := end, s.cpu()
		for time.Since(changed) < dhtQuiet {
			if time.Since(end) > drainTimeout {
				bg.timedOut = true
				t.Logf("DHT publishing still busy %v after the step", drainTimeout)
				break
			}
			time.Sleep(250 * time.Millisecond)
			if o, f := recordPuts(n); o != ok || f != failed {
				ok, failed = o, f
				changed, cpu = time.Now(), s.cpu()
			}
		}
		bg.drained, bg.cpu = changed.Sub(end), cpu
		bg.total, bg.errors = ok-okBefore, failed-errBefore
		okBefore, errBefore = ok, failed
		return bg
	}
	return s
}

// recordPuts returns how many of its signed records node n has put in the
// DHT, successfully and not.
func recordPuts(n *node.Node) (ok, failed int) {
	mfs, err := n.Registry().Gather()
	if err != nil {
		return 0, 0
	}
	for _, mf := range mfs {
		if mf.GetName() != "callmesh_dht_record_puts_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() != "result" {
					continue
				}
				switch l.GetValue() {
				case "ok":
					ok = int(m.GetCounter().GetValue())
				case "error":
					failed = int(m.GetCounter().GetValue())
				}
			}
		}
	}
	return ok, failed
}

func kamailioServer(t *testing.T) server {
	t.Helper()
	k := startKamailio(t, node.DefaultDomain)
	return server{
		name:    "kamailio",
		title:   fmt.Sprintf("Kamailio %s: registrar with digest, %s", k.version, k.tuning),
		addr:    k.addr,
		cpu:     k.cpu,
		logTail: k.logTail,
	}
}

// ladder runs the rising steps against r's server until one fails too
// often, adding each to r. Each step takes the next users in order,
// wrapping around: the first pass over the users registers them afresh,
// later ones refresh live bindings (from the same SIPp port, so with the
// same Contact).
func ladder(t *testing.T, r *report, users []user, p plan) {
	t.Helper()
	srv := r.srv
	registered := make([]bool, len(users))
	next := 0
	port := freeUDPPort(t)
	for _, rate := range p.rates {
		calls := int(math.Round(float64(rate) * p.step.Seconds()))
		batch := make([]user, calls)
		fresh := 0
		for i := range batch {
			k := (next + i) % len(users)
			batch[i] = users[k]
			if !registered[k] {
				fresh++
				registered[k] = true
			}
		}
		next = (next + calls) % len(users)

		cpu0 := srv.cpu()
		res := runSIPp(t, sippJob{
			addr: srv.addr, domain: node.DefaultDomain, port: port, users: batch, rate: rate,
			expires: loadExpires, timeout: p.step + time.Minute,
		})
		cpuEnd := srv.cpu()
		cpu := cpuEnd - cpu0
		times := sortedCopy(res.times)
		s := step{
			rate: rate, calls: calls, fresh: fresh,
			successful: res.successful, failed: calls - res.successful,
			p50: quantile(times, 0.50), p99: quantile(times, 0.99), mean: mean(times), max: quantile(times, 1),
			serverCores: cpu.Seconds() / res.wall.Seconds(),
			sippCores:   res.cpu.Seconds() / res.wall.Seconds(),
			reached:     res.started,
			sippErrors:  res.errors,
		}
		if srv.settle != nil {
			bg := srv.settle(t)
			s.bg = &bg
			cpuEnd = max(cpuEnd, bg.cpu)
		}
		if res.successful > 0 {
			s.cpuPerReg = ms(cpuEnd-cpu0) / float64(res.successful)
		}
		r.steps = append(r.steps, s)
		t.Logf("%s %5d/s: %d calls (%d fresh), %d ok, %d failed (%.3f%%), reached %.0f/s, p50 %.0f ms, p99 %.0f ms, mean %.1f ms, max %.0f ms, server %.2f cores, SIPp %.2f cores, %.3f ms CPU per registration%s",
			srv.name, rate, calls, fresh, s.successful, s.failed, 100*s.failureRate(), s.reached, s.p50, s.p99, s.mean, s.max,
			s.serverCores, s.sippCores, s.cpuPerReg, s.bgText())
		if !s.passed() {
			if res.errors != "" {
				t.Logf("SIPp errors:\n%s", res.errors)
			}
			if s.failed > 0 && srv.logTail != nil {
				t.Logf("%s log:\n%s", srv.name, srv.logTail())
			}
			break
		}
		time.Sleep(time.Second)
	}
}

func (s step) bgText() string {
	if s.bg == nil {
		return ""
	}
	late := ""
	if s.bg.timedOut {
		late = " (still busy)"
	}
	return fmt.Sprintf(", DHT: %d location puts while SIPp ran, %d in all, %d failed, caught up %.1f s after%s",
		s.bg.puts, s.bg.total, s.bg.errors, s.bg.drained.Seconds(), late)
}

// markdown renders the reports as a Markdown section.
func markdown(p plan, reports []*report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Registrar load (`make load-register`, %s): SIPp %s over UDP on 127.0.0.1, REGISTER → 401 → REGISTER with digest (MD5, qop=auth) → 200, "+
		"%d distinct users (fresh on the first pass, refreshes of live bindings after), %s per step, rising until a step has ≥ %.1f%% failures "+
		"or SIPp reaches less than %.0f%% of its rate; %d CPUs, GOMAXPROCS %d, %s.\n\n",
		time.Now().UTC().Format("2006-01-02"), sippVersion(), loadUsers, p.step, 100*failureLimit, 100*sustainedShare, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
	b.WriteString("Response time: from the first REGISTER sent to the 200 received (both transactions), as SIPp measures it; " +
		"its clock ticks about every 4 ms, so 0 means under 4 ms; SIPp retransmits a REGISTER after 500 ms, so a p99 " +
		"of 500 ms or more usually means that 1% of the calls or more needed a retransmission. Reached: the rate at which SIPp started the calls. Server CPU: cores used while SIPp ran; for callmesh the whole test " +
		"process, i.e. all three nodes. CPU per registration: the server's CPU time from the start of the step until its background " +
		"work for the step was done (for callmesh, until node0's DHT location puts stood still for 3 s), divided by the registrations.\n")
	for _, r := range reports {
		fmt.Fprintf(&b, "\n#### %s\n\n", r.srv.title)
		for _, n := range r.srv.notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		if len(r.srv.notes) > 0 {
			b.WriteString("\n")
		}
		dht := len(r.steps) > 0 && r.steps[0].bg != nil
		head := []string{"rate /s", "reached /s", "calls", "fresh", "successful", "failed", "failures",
			"p50 ms", "p99 ms", "mean ms", "max ms", "server CPU", "CPU per registration", "SIPp CPU"}
		if dht {
			head = append(head, "DHT puts while SIPp ran", "DHT caught up after")
		}
		b.WriteString("| " + strings.Join(head, " | ") + " |\n|" + strings.Repeat(" --- |", len(head)) + "\n")
		best, prompt, paced := -1, -1, -1
		for i, s := range r.steps {
			fmt.Fprintf(&b, "| %d | %.0f | %d | %d | %d | %d | %.3f%% | %.0f | %.0f | %.2f | %.0f | %.2f | %.3f ms | %.2f |",
				s.rate, s.reached, s.calls, s.fresh, s.successful, s.failed, 100*s.failureRate(),
				s.p50, s.p99, s.mean, s.max, s.serverCores, s.cpuPerReg, s.sippCores)
			if dht {
				late := ""
				if s.bg.timedOut {
					late = " (still busy)"
				}
				fmt.Fprintf(&b, " %d of %d | %.1f s%s |", s.bg.puts, s.bg.total, s.bg.drained.Seconds(), late)
			}
			b.WriteString("\n")
			if s.passed() {
				best = i
				if s.p99 < retransmitMs && prompt == i-1 {
					prompt = i
				}
				if dht && s.bg.drained <= keptPace && paced == i-1 {
					paced = i
				}
			}
		}
		b.WriteString("\n")
		if best < 0 {
			fmt.Fprintf(&b, "No step passed (< %.1f%% failures at ≥ %.0f%% of the rate).\n", 100*failureLimit, 100*sustainedShare)
			continue
		}
		s := r.steps[best]
		ended := "it was the ladder's last step"
		if best < len(r.steps)-1 {
			n := r.steps[best+1]
			ended = fmt.Sprintf("at %d/s %.2f%% failed and SIPp reached %.0f/s", n.rate, 100*n.failureRate(), n.reached)
		}
		fmt.Fprintf(&b, "Highest rate with < %.1f%% failures, sustained: **%d/s**, p99 %.0f ms, server %.2f cores; %s.\n",
			100*failureLimit, s.rate, s.p99, s.serverCores, ended)
		if prompt >= 0 {
			s := r.steps[prompt]
			fmt.Fprintf(&b, "Highest rate with p99 also under %d ms (no retransmission for 99%% of the calls): **%d/s**, p99 %.0f ms, server %.2f cores.\n",
				retransmitMs, s.rate, s.p99, s.serverCores)
		}
		if dht {
			if paced < 0 {
				b.WriteString("DHT location publishing kept pace with no step.\n")
			} else {
				fmt.Fprintf(&b, "DHT location publishing kept pace (done within %v of the step's end) up to %d/s.\n", keptPace, r.steps[paced].rate)
			}
		}
	}
	return b.String()
}

// sippVersion returns SIPp's version, such as "v3.6.1".
func sippVersion() string {
	out, _ := exec.Command("sipp", "-v").CombinedOutput()
	for _, f := range strings.Fields(string(out)) {
		if strings.HasPrefix(f, "v") && strings.Contains(f, ".") {
			v, _, _ := strings.Cut(f, "-")
			return strings.TrimSuffix(v, ".")
		}
	}
	return "(version unknown)"
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
