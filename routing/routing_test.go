package routing

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callmesh/callmesh/media/quality"
	"github.com/callmesh/callmesh/sla"
)

// Catalogue builders for the table tests.

var at = monday.Add(10 * time.Hour)

func money(s string) sla.Money { return sla.MustMoney(s) }

// provider: a proxy (or trunk) offering transit everywhere and
// termination on the given prefixes.
func provider(id string, mode sla.Mode, term ...string) sla.Provider {
	p := sla.Provider{ID: id, AccessPoints: []sla.AccessPoint{{URI: "sip:" + id, Mode: mode}},
		Services: []sla.Service{{Type: sla.Transit, Segments: []sla.Segment{{Location: "*"}}}}}
	if len(term) > 0 {
		sv := sla.Service{Type: sla.Termination}
		for _, loc := range term {
			sv.Segments = append(sv.Segments, sla.Segment{Location: loc})
		}
		p.Services = append(p.Services, sv)
	}
	return p
}

func contract(id, a, b, price string, delay float64) sla.SLA {
	return sla.SLA{ID: id, Kind: sla.NodeProvider, Between: [2]string{a, b},
		Price:      sla.Price{PerMinute: money(price), Currency: "EUR"},
		Guarantees: sla.Guarantees{MaxDelayMs: delay, MaxLossPct: 0.1}}
}

func interconnect(id, a, b, price string, delay float64) sla.SLA {
	s := contract(id, a, b, price, delay)
	s.Kind = sla.ProviderProvider
	return s
}

func peering(id, a, b, markup string) sla.SLA {
	return sla.SLA{ID: id, Kind: sla.NodeNode, Between: [2]string{a, b},
		Price: sla.Price{Currency: "EUR"}, MarkupPerMinute: money(markup)}
}

func catalogue(provs []sla.Provider, slas ...sla.SLA) *sla.Catalogue {
	return &sla.Catalogue{Providers: provs, SLAs: slas, Policy: sla.Policy{Classes: map[string]sla.ClassPolicy{
		"gold": {}, "silver": {},
	}}}
}

func plan(t *testing.T, cat *sla.Catalogue, req Request) Result {
	t.Helper()
	g, err := NewGraph(cat, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if req.At.IsZero() {
		req.At = at
	}
	if req.Class == "" {
		req.Class = "gold"
	}
	res, err := g.Plan(req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// routes renders paths as "A>p>B[s1,s2] price" for compact comparison.
func routes(res Result) []string {
	out := []string{}
	for _, p := range res.Paths {
		out = append(out, fmt.Sprintf("%s[%s] %s", strings.Join(p.Hops, ">"), strings.Join(p.SLAs, ","), p.PricePerMinute))
	}
	return out
}

func wantRoutes(t *testing.T, res Result, want ...string) {
	t.Helper()
	if got := routes(res); !slices.Equal(got, want) {
		t.Errorf("paths\n got  %q\n want %q\n rejected %v, reason %q", got, want, res.Rejected, res.Reason)
	}
}

func hasRejection(res Result, id, reason string) bool {
	return slices.Contains(res.Rejected, Rejection{ID: id, Reason: reason})
}

func TestPeeringUsesPeersContract(t *testing.T) {
	// A has no contract of its own; it peers with B, whose contract with
	// cheapnet it uses for a markup. C is reached through cheapnet's
	// contract with D, C's peer.
	cat := catalogue([]sla.Provider{provider("cheapnet", sla.Proxy)},
		contract("B-cheap", "B", "cheapnet", "0.0020", 10),
		peering("A-B", "A", "B", "0.0005"),
		contract("D-cheap", "cheapnet", "D", "0.0010", 10),
		peering("C-D", "C", "D", "0.0003"),
	)
	res := plan(t, cat, Request{From: "A", To: "C"})
	wantRoutes(t, res, "A>cheapnet>C[B-cheap,A-B,D-cheap,C-D] 0.0038")
	// B itself can reach C with its own contract and D's via the peering.
	res = plan(t, cat, Request{From: "B", To: "C"})
	wantRoutes(t, res, "B>cheapnet>C[B-cheap,D-cheap,C-D] 0.0033")
	// A peer is not a hop: B may be the egress of a path entering through
	// B's own contract.
	res = plan(t, cat, Request{From: "A", To: "B"})
	wantRoutes(t, res, "A>cheapnet>B[B-cheap,A-B,B-cheap] 0.0045")
	if p := res.Paths[0]; p.DelayMs != 20 {
		t.Errorf("delay %v, want 20 (the peering adds none)", p.DelayMs)
	}
}

func TestOneWayPeering(t *testing.T) {
	cat := catalogue([]sla.Provider{provider("P", sla.Proxy)},
		contract("B-P", "B", "P", "0.001", 10),
		contract("C-P", "C", "P", "0.001", 10),
	)
	q := peering("A-B", "A", "B", "0.001")
	q.OneWay = true // A may use B's contracts, not the other way
	cat.SLAs = append(cat.SLAs, q, contract("A-P2", "A", "P2", "0.001", 10))
	cat.Providers = append(cat.Providers, provider("P2", sla.Proxy))
	wantRoutes(t, plan(t, cat, Request{From: "A", To: "C"}), "A>P>C[B-P,A-B,C-P] 0.0030")
	wantRoutes(t, plan(t, cat, Request{From: "C", To: "A"}), "C>P>A[C-P,B-P,A-B] 0.0030")
	// B cannot use A's contract with P2.
	res := plan(t, cat, Request{From: "B", To: "C"})
	wantRoutes(t, res, "B>P>C[B-P,C-P] 0.0020")
}

func TestDirectLink(t *testing.T) {
	q := peering("A-B", "A", "B", "0.0005")
	q.Direct = &sla.Direct{PerMinute: money("0.0010"), MaxDelayMs: 5}
	cat := catalogue([]sla.Provider{provider("P", sla.Proxy)},
		q,
		contract("A-P", "A", "P", "0.0005", 10),
		contract("B-P", "B", "P", "0.0010", 10),
	)
	res := plan(t, cat, Request{From: "A", To: "B"})
	// The equal-price provider paths tie on MOS, hops and hop ids; edge by
	// edge, A-P (B reaching P through its peer A's contract) precedes B-P.
	wantRoutes(t, res,
		"A>B[A-B] 0.0010",
		"A>P>B[A-P,A-P,A-B] 0.0015",
		"A>P>B[A-P,B-P] 0.0015",
	)
	if p := res.Paths[0]; p.DelayMs != 5 || math.Abs(p.LossPct-DefaultLossPct) > 1e-12 {
		t.Errorf("direct link figures %v ms %v %%, want 5 ms and the default loss", p.DelayMs, p.LossPct)
	}
	// A one-way node-node SLA B→A: no direct link from A, and only B may
	// use A's contracts.
	q.OneWay = true
	q.Between = [2]string{"B", "A"}
	cat.SLAs[0] = q
	wantRoutes(t, plan(t, cat, Request{From: "A", To: "B"}), "A>P>B[A-P,A-P,A-B] 0.0015", "A>P>B[A-P,B-P] 0.0015")
	wantRoutes(t, plan(t, cat, Request{From: "B", To: "A"}), "B>A[A-B] 0.0010", "B>P>A[A-P,A-B,A-P] 0.0015", "B>P>A[B-P,A-P] 0.0015")
}

func TestTrunkOnlyLast(t *testing.T) {
	cat := catalogue([]sla.Provider{provider("trunkco", sla.Trunk, "+49"), provider("proxyco", sla.Proxy)},
		contract("A-trunk", "A", "trunkco", "0.001", 10),
		contract("A-proxy", "A", "proxyco", "0.002", 10),
		interconnect("trunk-proxy", "trunkco", "proxyco", "0.001", 10),
		contract("proxy-B", "proxyco", "B", "0.001", 10),
		contract("trunk-B", "trunkco", "B", "0.005", 10),
	)
	// A>trunkco>proxyco>B would be cheapest but trunkco cannot be followed.
	res := plan(t, cat, Request{From: "A", To: "B", K: 5})
	wantRoutes(t, res,
		"A>proxyco>B[A-proxy,proxy-B] 0.0030",
		"A>trunkco>B[A-trunk,trunk-B] 0.0060",
		"A>proxyco>trunkco>B[A-proxy,trunk-proxy,trunk-B] 0.0080",
	)
	// A trunk may terminate a number as the last provider.
	res = plan(t, cat, Request{From: "A", Number: "+4930123", K: 5})
	wantRoutes(t, res,
		"A>trunkco[A-trunk] 0.0010",
		"A>proxyco>trunkco[A-proxy,trunk-proxy] 0.0030",
	)
	// Without termination anywhere else, a trunk-only provider in the
	// middle of a number path is reported.
	cat.Providers[1] = provider("proxyco", sla.Proxy, "+4930")
	res = plan(t, cat, Request{From: "A", Number: "+4930123", K: 5})
	wantRoutes(t, res, "A>proxyco[A-proxy] 0.0020")
	if !hasRejection(res, "trunkco", ReasonShorterPrefix) {
		t.Errorf("rejected %v", res.Rejected)
	}
	cat.Providers[0] = provider("trunkco", sla.Trunk)
	res = plan(t, cat, Request{From: "A", Number: "+4930123", K: 5})
	if !hasRejection(res, "trunkco", ReasonTrunkNotLast) {
		t.Errorf("rejected %v", res.Rejected)
	}
}

func TestTerminationLongestPrefix(t *testing.T) {
	cat := catalogue([]sla.Provider{
		provider("any", sla.Proxy, "*"),
		provider("de", sla.Proxy, "+49"),
		provider("berlin", sla.Proxy, "+4930", "+33"),
	},
		contract("A-any", "A", "any", "0.001", 10),
		contract("A-de", "A", "de", "0.002", 10),
		contract("A-berlin", "A", "berlin", "0.009", 10),
	)
	wantRoutes(t, plan(t, cat, Request{From: "A", Number: "+4930555"}), "A>berlin[A-berlin] 0.0090")
	wantRoutes(t, plan(t, cat, Request{From: "A", Number: "+4940555"}), "A>de[A-de] 0.0020")
	wantRoutes(t, plan(t, cat, Request{From: "A", Number: "+1555"}), "A>any[A-any] 0.0010")
	// The cheaper providers may carry the call to berlin.
	cat.SLAs = append(cat.SLAs, interconnect("any-berlin", "any", "berlin", "0.001", 10))
	wantRoutes(t, plan(t, cat, Request{From: "A", Number: "+4930555"}),
		"A>any>berlin[A-any,any-berlin] 0.0020", "A>berlin[A-berlin] 0.0090")
	// A quarantined longest-prefix provider still hides the shorter ones
	// (de offers no transit here, so it is left out when reached).
	cat.Providers[1].Services = cat.Providers[1].Services[1:]
	cat.SLAs = append(cat.SLAs, interconnect("de-berlin", "de", "berlin", "0.001", 10))
	res := plan(t, cat, Request{From: "A", Number: "+4930555", Quarantined: map[string]bool{"berlin": true}})
	wantRoutes(t, res)
	if res.Reason == "" || !hasRejection(res, "berlin", ReasonQuarantined) || !hasRejection(res, "de", ReasonShorterPrefix) {
		t.Errorf("reason %q, rejected %v", res.Reason, res.Rejected)
	}
	// Termination outside its hours does not count.
	cat.Providers[2].Services[1].Segments[0].Hours = sla.Hours{{Days: [7]bool{true, false, false, false, false, false, true}, Start: 0, End: 1440}}
	wantRoutes(t, plan(t, cat, Request{From: "A", Number: "+4930555"}),
		"A>de[A-de] 0.0020", "A>any>berlin>de[A-any,any-berlin,de-berlin] 0.0030", "A>berlin>de[A-berlin,de-berlin] 0.0100")
}

func TestOneWayContracts(t *testing.T) {
	in := contract("A-P", "P", "A", "0.001", 10) // P → A only
	in.OneWay = true
	out := contract("P-B", "P", "B", "0.001", 10)
	out.OneWay = true
	cat := catalogue([]sla.Provider{provider("P", sla.Proxy)}, in, out)
	res := plan(t, cat, Request{From: "A", To: "B"})
	wantRoutes(t, res)
	if res.Reason == "" {
		t.Error("no reason")
	}
	cat.SLAs = append(cat.SLAs, contract("C-P", "C", "P", "0.002", 10))
	wantRoutes(t, plan(t, cat, Request{From: "C", To: "A"}), "C>P>A[C-P,A-P] 0.0030")
	wantRoutes(t, plan(t, cat, Request{From: "C", To: "B"}), "C>P>B[C-P,P-B] 0.0030")
	wantRoutes(t, plan(t, cat, Request{From: "B", To: "C"}))
	// Interconnects too.
	x := interconnect("Q-P", "Q", "P", "0.001", 10)
	x.OneWay = true
	cat.SLAs = append(cat.SLAs, x, contract("A-Q", "A", "Q", "0.001", 10), contract("C-Q", "C", "Q", "0.001", 10))
	cat.Providers = append(cat.Providers, provider("Q", sla.Proxy))
	wantRoutes(t, plan(t, cat, Request{From: "A", To: "B", K: 5}), "A>Q>P>B[A-Q,Q-P,P-B] 0.0030")
	wantRoutes(t, plan(t, cat, Request{From: "C", To: "A", K: 5}), "C>Q>A[C-Q,A-Q] 0.0020", "C>P>A[C-P,A-P] 0.0030", "C>Q>P>A[C-Q,Q-P,A-P] 0.0030")
}

func TestPolicyLimits(t *testing.T) {
	cat := catalogue([]sla.Provider{provider("fast", sla.Proxy), provider("slow", sla.Proxy), provider("x", sla.Proxy), provider("y", sla.Proxy)},
		contract("A-fast", "A", "fast", "0.004", 5),
		contract("fast-B", "fast", "B", "0.004", 5),
		contract("A-slow", "A", "slow", "0.001", 150),
		contract("slow-B", "slow", "B", "0.001", 150),
		contract("A-x", "A", "x", "0.001", 5),
		interconnect("x-y", "x", "y", "0.001", 5),
		contract("y-B", "y", "B", "0.001", 5),
	)
	base := []string{
		"A>slow>B[A-slow,slow-B] 0.0020",
		"A>x>y>B[A-x,x-y,y-B] 0.0030",
		"A>fast>B[A-fast,fast-B] 0.0080",
	}
	for _, tc := range []struct {
		name   string
		pol    sla.ClassPolicy
		want   []string
		reason string
	}{
		{"none", sla.ClassPolicy{}, base, ""},
		{"max delay", sla.ClassPolicy{MaxDelayMs: 100}, base[1:], ""},
		{"min mos", sla.ClassPolicy{MinMOS: 4.2}, base[1:], ""},
		{"max hops", sla.ClassPolicy{MaxHops: 1}, []string{base[0], base[2]}, ""},
		{"max price", sla.ClassPolicy{MaxPricePerMinute: money("0.003")}, base[:2], ""},
		{"max loss", sla.ClassPolicy{MaxLossPct: 0.25}, []string{base[0], base[2]}, ""},
		{"nothing left", sla.ClassPolicy{MaxPricePerMinute: money("0.0025"), MaxDelayMs: 100}, nil, "max_price_per_minute, max_delay_ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cat.Policy.Classes["gold"] = tc.pol
			res := plan(t, cat, Request{From: "A", To: "B"})
			wantRoutes(t, res, tc.want...)
			if !strings.Contains(res.Reason, tc.reason) || (tc.reason != "") != (res.Reason != "") {
				t.Errorf("reason %q, want one naming %q", res.Reason, tc.reason)
			}
		})
	}
	cat.Policy.Classes["gold"] = sla.ClassPolicy{MaxPricePerMinute: money("0.003")}
	res := plan(t, cat, Request{From: "A", To: "B"})
	if !hasRejection(res, "A-fast", ReasonOverPolicy+": max_price_per_minute") {
		t.Errorf("rejected %v", res.Rejected)
	}
}

func TestMeasurementOverridesGuarantee(t *testing.T) {
	cat := catalogue([]sla.Provider{provider("P", sla.Proxy), provider("Q", sla.Proxy)},
		contract("A-P", "A", "P", "0.001", 10),
		contract("P-B", "P", "B", "0.001", 10),
		contract("A-Q", "A", "Q", "0.001", 20),
		contract("Q-B", "Q", "B", "0.001", 0), // no delay promised: 50 ms
	)
	res := plan(t, cat, Request{From: "A", To: "B"})
	wantRoutes(t, res, "A>P>B[A-P,P-B] 0.0020", "A>Q>B[A-Q,Q-B] 0.0020")
	if res.Paths[0].DelayMs != 20 || res.Paths[1].DelayMs != 70 {
		t.Errorf("delays %v, %v", res.Paths[0].DelayMs, res.Paths[1].DelayMs)
	}
	if !(res.Paths[0].MOS > res.Paths[1].MOS) {
		t.Errorf("MOS %v, %v", res.Paths[0].MOS, res.Paths[1].MOS)
	}
	// P-B measured far worse than promised: the order flips.
	cat.Measurements = []sla.Measurement{{SLA: "P-B", DelayMs: 300, LossPct: 2, Samples: 100}}
	res = plan(t, cat, Request{From: "A", To: "B"})
	wantRoutes(t, res, "A>Q>B[A-Q,Q-B] 0.0020", "A>P>B[A-P,P-B] 0.0020")
	if p := res.Paths[1]; p.DelayMs != 310 || p.Measured {
		t.Errorf("%+v", p)
	}
}

func TestWholePathMeasurement(t *testing.T) {
	// X = A>pa>w dominates Y = A>pa>pb>w (same price, fewer providers,
	// better composed figures), but the whole path through Y is measured
	// far better than composed.
	cat := catalogue([]sla.Provider{provider("pa", sla.Proxy), provider("pb", sla.Proxy), provider("w", sla.Proxy)},
		contract("A-pa", "A", "pa", "0.001", 10),
		interconnect("pa-w", "pa", "w", "0.001", 10),
		interconnect("pa-pb", "pa", "pb", "0.0005", 10),
		interconnect("pb-w", "pb", "w", "0.0005", 10),
		contract("w-B", "w", "B", "0.001", 10),
	)
	wantRoutes(t, plan(t, cat, Request{From: "A", To: "B", K: 1}), "A>pa>w>B[A-pa,pa-w,w-B] 0.0030")
	cat.Measurements = []sla.Measurement{
		{Path: []string{"A-pa", "pa-pb", "pb-w", "w-B"}, DelayMs: 3, LossPct: 0, Samples: 10},
		{Path: []string{"A-pa", "pa-w"}, DelayMs: 1, Samples: 10}, // a prefix: no path
	}
	res := plan(t, cat, Request{From: "A", To: "B", K: 1})
	wantRoutes(t, res, "A>pa>pb>w>B[A-pa,pa-pb,pb-w,w-B] 0.0030")
	if p := res.Paths[0]; !p.Measured || p.DelayMs != 3 || p.LossPct != 0 {
		t.Errorf("%+v", p)
	}
	// The measured path meets a delay limit its composed figures break.
	cat.Policy.Classes["gold"] = sla.ClassPolicy{MaxDelayMs: 15}
	res = plan(t, cat, Request{From: "A", To: "B", K: 3})
	wantRoutes(t, res, "A>pa>pb>w>B[A-pa,pa-pb,pb-w,w-B] 0.0030")
	// And a measured path can be worse than composed.
	cat.Policy.Classes["gold"] = sla.ClassPolicy{}
	cat.Measurements = []sla.Measurement{{Path: []string{"A-pa", "pa-w", "w-B"}, DelayMs: 400, LossPct: 5, Samples: 10}}
	res = plan(t, cat, Request{From: "A", To: "B", K: 3})
	wantRoutes(t, res, "A>pa>pb>w>B[A-pa,pa-pb,pb-w,w-B] 0.0030", "A>pa>w>B[A-pa,pa-w,w-B] 0.0030")
}

// TestDominanceRespectsVisited: labels X1 = A>p1>a>w and X2 = A>p1>b>w
// beat Y = A>p2>c>w on every figure, but Y's only completion runs through
// p1, which they have visited. Idle providers make every real provider
// share a bit of the planner's visited masks, so only the exact subset
// check can tell.
func TestDominanceRespectsVisited(t *testing.T) {
	var provs []sla.Provider
	for _, id := range []string{"p1", "p2", "a", "b", "c", "w"} {
		provs = append(provs, provider(id, sla.Proxy))
		for j := range 63 {
			provs = append(provs, sla.Provider{ID: fmt.Sprintf("%s-idle%02d", id, j)})
		}
	}
	cat := catalogue(provs,
		contract("A-p1", "A", "p1", "0.001", 1),
		interconnect("p1-a", "p1", "a", "0", 1),
		interconnect("p1-b", "p1", "b", "0", 1),
		interconnect("a-w", "a", "w", "0", 1),
		interconnect("b-w", "b", "w", "0", 1),
		contract("A-p2", "A", "p2", "0.002", 5),
		interconnect("p2-c", "p2", "c", "0.001", 5),
		interconnect("c-w", "c", "w", "0.001", 5),
		interconnect("w-p1", "w", "p1", "0", 5),
		contract("p1-B", "p1", "B", "0.001", 5),
	)
	cat.SLAs[len(cat.SLAs)-2].OneWay = true // w → p1
	res := plan(t, cat, Request{From: "A", To: "B", K: 2})
	wantRoutes(t, res,
		"A>p1>B[A-p1,p1-B] 0.0020",
		"A>p2>c>w>p1>B[A-p2,p2-c,c-w,w-p1,p1-B] 0.0050",
	)
}

func TestCurrencyMismatch(t *testing.T) {
	cat := catalogue([]sla.Provider{provider("P", sla.Proxy)},
		contract("A-P", "A", "P", "0.001", 10),
		contract("B-P", "B", "P", "0.001", 10),
	)
	cat.SLAs[1].Price.Currency = "USD"
	_, err := NewGraph(cat, Options{})
	if !errors.Is(err, ErrCurrency) || !strings.Contains(err.Error(), "B-P") || !strings.Contains(err.Error(), "USD") {
		t.Fatalf("err = %v", err)
	}
}

func TestRequestErrors(t *testing.T) {
	cat := catalogue([]sla.Provider{provider("P", sla.Proxy)}, contract("A-P", "A", "P", "0.001", 10), contract("B-P", "B", "P", "0.001", 10))
	g, err := NewGraph(cat, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		req  Request
		want error
	}{
		{Request{From: "A", To: "B", Class: "bronze", At: at}, ErrUnknownClass},
		{Request{From: "A", To: "Z", Class: "gold", At: at}, ErrUnknownNode},
		{Request{From: "P", To: "B", Class: "gold", At: at}, ErrUnknownNode},
		{Request{From: "A", To: "B", Class: "gold"}, ErrRequest},
		{Request{From: "A", Class: "gold", At: at}, ErrRequest},
		{Request{From: "A", To: "B", Number: "+49", Class: "gold", At: at}, ErrRequest},
		{Request{From: "A", To: "A", Class: "gold", At: at}, ErrRequest},
		{Request{From: "A", To: "B", Class: "gold", At: at, Codec: "opus"}, ErrUnknownCodec},
	} {
		if _, err := g.Plan(tc.req); !errors.Is(err, tc.want) {
			t.Errorf("%+v: err %v, want %v", tc.req, err, tc.want)
		}
	}
	// A class the policy does not list is an error, except "", which has
	// no limits.
	if _, err := g.Plan(Request{From: "A", To: "B", At: at}); err != nil {
		t.Error(err)
	}
}

func TestEmptyResultReasons(t *testing.T) {
	expired := contract("A-P", "A", "P", "0.001", 10)
	expired.Valid.Until = at.Add(-time.Hour)
	full := contract("B-P", "B", "P", "0.001", 10)
	full.Capacity.MaxCalls = 2
	hours := contract("A-Q", "A", "Q", "0.001", 10)
	hours.Segments = []sla.Segment{{Location: "*", Hours: sla.Hours{{Days: [7]bool{true}, Start: 0, End: 60}}}}
	cat := catalogue([]sla.Provider{provider("P", sla.Proxy), provider("Q", sla.Proxy), provider("R", sla.Proxy)},
		expired, full, hours, contract("Q-B", "Q", "B", "0.001", 10),
		contract("A-R", "A", "R", "0.001", 10), contract("R-B", "R", "B", "0.001", 10))
	cat.Calls = []sla.CallCount{{SLA: "B-P", Active: 2}}
	res := plan(t, cat, Request{From: "A", To: "B", Quarantined: map[string]bool{"R": true}})
	wantRoutes(t, res)
	for _, r := range []Rejection{{"A-P", ReasonExpired}, {"A-Q", ReasonSegment}, {"R", ReasonQuarantined}} {
		if !hasRejection(res, r.ID, r.Reason) {
			t.Errorf("missing %v in %v", r, res.Rejected)
		}
	}
	if !strings.Contains(res.Reason, "no feasible path from A to B") {
		t.Errorf("reason %q", res.Reason)
	}
	// Live counts in the request replace the catalogue's.
	res = plan(t, cat, Request{From: "B", To: "A", Active: map[string]int{"B-P": 1}})
	if hasRejection(res, "B-P", ReasonCapacity) {
		t.Errorf("rejected %v", res.Rejected)
	}
	res = plan(t, cat, Request{From: "B", To: "A"})
	if !hasRejection(res, "B-P", ReasonCapacity) {
		t.Errorf("rejected %v", res.Rejected)
	}
	// A transit provider without a transit segment for the destination.
	cat.Providers[2].Services = nil
	res = plan(t, cat, Request{From: "A", To: "B"})
	if !hasRejection(res, "R", ReasonNoTransit) {
		t.Errorf("rejected %v", res.Rejected)
	}
	res = plan(t, cat, Request{From: "A", Number: "+4930"})
	if !strings.Contains(res.Reason, "no provider terminates +4930") {
		t.Errorf("reason %q", res.Reason)
	}
}

func TestAccessLegsAndMaxDuration(t *testing.T) {
	cat := catalogue([]sla.Provider{provider("P", sla.Proxy)},
		contract("A-P", "A", "P", "0.001", 10),
		contract("P-B", "P", "B", "0.001", 10),
	)
	cat.Providers[0].Services[0].Segments[0].MaxDuration = 3 * time.Hour
	cat.SLAs[1].Segments = []sla.Segment{{Location: "*", MaxDuration: 2 * time.Hour}, {Location: "*", Quality: "gold", MaxDuration: 30 * time.Minute}}
	before := plan(t, cat, Request{From: "A", To: "B"}).Paths[0]
	if before.MaxDuration != 2*time.Hour {
		// Both SLA segments match; the first of equal prefix is taken.
		t.Errorf("max duration %v", before.MaxDuration)
	}
	cat.SLAs[1].Segments = cat.SLAs[1].Segments[1:]
	cat.SLAs = append(cat.SLAs,
		sla.SLA{ID: "A-gold", Kind: sla.UserAccess, Between: [2]string{"A", "gold"}, Guarantees: sla.Guarantees{MaxDelayMs: 100, MaxLossPct: 2}},
		sla.SLA{ID: "B-silver", Kind: sla.UserAccess, Between: [2]string{"B", "silver"}, Guarantees: sla.Guarantees{MaxDelayMs: 100, MaxLossPct: 2}},
	)
	after := plan(t, cat, Request{From: "A", To: "B"}).Paths[0]
	silver := plan(t, cat, Request{From: "A", To: "B", ToClass: "silver"}).Paths[0]
	if after.DelayMs != before.DelayMs || after.LossPct != before.LossPct || !(after.MOS < before.MOS) || !(silver.MOS < after.MOS) {
		t.Errorf("access legs: before %+v, after %+v, silver %+v", before, after, silver)
	}
	if after.MaxDuration != 30*time.Minute {
		t.Errorf("max duration %v", after.MaxDuration)
	}
}

func TestResultJSONShape(t *testing.T) {
	cat := catalogue([]sla.Provider{provider("P", sla.Proxy)}, contract("A-P", "A", "P", "0.0040", 10), contract("P-B", "P", "B", "0.001", 10))
	res := plan(t, cat, Request{From: "A", To: "B"})
	if res.Currency != "EUR" || len(res.Paths) != 1 {
		t.Fatalf("%+v", res)
	}
	// The figures from the catalogue, not from the result: both contracts
	// promise 10 ms and 0.1 %; no access legs, so the mouth-to-ear delay
	// adds the 40 ms jitter buffer and G.711's 20 ms packet time (no
	// look-ahead) to the network's 20 ms (package documentation, "Figures").
	loss := (1 - (1-0.001)*(1-0.001)) * 100
	codec, ok := quality.LookupCodec("G.711", true)
	if !ok {
		t.Fatal("no G.711")
	}
	r, mos := quality.Estimate(codec, 20+40+20, loss, 1)
	got := res.Paths[0]
	for _, f := range []struct {
		name      string
		got, want float64
	}{{"loss", got.LossPct, loss}, {"R", got.R, r}, {"MOS", got.MOS, mos}} {
		if math.Abs(f.got-f.want) > 1e-9 {
			t.Errorf("%s %v, want %v", f.name, f.got, f.want)
		}
	}
	want := Path{Hops: []string{"A", "P", "B"}, SLAs: []string{"A-P", "P-B"}, PricePerMinute: money("0.005"),
		DelayMs: 20, LossPct: got.LossPct, R: got.R, MOS: got.MOS}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%+v", got)
	}

	// The wire shape node/admin_slas.go serves.
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		t.Fatal(err)
	}
	if keys := slices.Sorted(maps.Keys(top)); !slices.Equal(keys, []string{"currency", "paths"}) {
		t.Errorf("result keys %v in %s", keys, b)
	}
	var paths []map[string]json.RawMessage
	if err := json.Unmarshal(top["paths"], &paths); err != nil || len(paths) != 1 {
		t.Fatalf("paths %s: %v", top["paths"], err)
	}
	wantKeys := []string{"delay_ms", "hops", "loss_pct", "mos", "price_per_minute", "r", "slas"}
	if keys := slices.Sorted(maps.Keys(paths[0])); !slices.Equal(keys, wantKeys) {
		t.Errorf("path keys %v, want %v", keys, wantKeys)
	}
	// Money is an exact decimal string, not a binary float.
	if p := string(paths[0]["price_per_minute"]); p != `"0.0050"` {
		t.Errorf("price_per_minute %s, want \"0.0050\"", p)
	}
	var back Result
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, res) {
		t.Errorf("round trip: %+v, %v", back, err)
	}
	// A capped, measured path names both.
	capped := got
	capped.MaxDuration, capped.Measured = time.Minute, true
	if b, _ := json.Marshal(capped); !strings.Contains(string(b), `"max_duration":60000000000,"measured":true`) {
		t.Errorf("path %s", b)
	}
	// An empty result still has "paths", as a list, then the rejections
	// and the reason.
	cat.SLAs[1].Valid.Until = at
	b, err = json.Marshal(plan(t, cat, Request{From: "A", To: "B"}))
	if err != nil {
		t.Fatal(err)
	}
	clear(top)
	if err := json.Unmarshal(b, &top); err != nil {
		t.Fatal(err)
	}
	if keys := slices.Sorted(maps.Keys(top)); !slices.Equal(keys, []string{"currency", "paths", "reason", "rejected"}) || string(top["paths"]) != "[]" {
		t.Errorf("empty result %s", b)
	}
	if r := string(top["rejected"]); r != `[{"id":"P-B","reason":"expired"}]` {
		t.Errorf("rejected %s", r)
	}
}

func TestSkippedSLAs(t *testing.T) {
	cat := catalogue([]sla.Provider{provider("P", sla.Proxy)},
		contract("A-P", "A", "P", "0.001", 10),
		contract("B-P", "B", "P", "0.001", 10),
		contract("X-Y", "X", "Y", "0.001", 10), // no provider
		contract("P-", "P", "", "0.001", 10),   // no node
		interconnect("P-Z", "P", "Z", "0", 10), // unknown provider
		peering("A-P2", "A", "P", "0"),         // a provider is no peer
		sla.SLA{ID: "odd", Kind: "odd", Between: [2]string{"A", "B"}},
	)
	g, err := NewGraph(cat, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range g.Skipped() {
		ids = append(ids, r.ID)
	}
	if want := []string{"X-Y", "P-", "P-Z", "A-P2", "odd"}; !slices.Equal(ids, want) {
		t.Errorf("skipped %v, want %v", g.Skipped(), want)
	}
	wantRoutes(t, plan(t, cat, Request{From: "A", To: "B"}), "A>P>B[A-P,B-P] 0.0020")
	cat.SLAs[0].Price.PerMinute = -1
	if _, err := NewGraph(cat, Options{}); !errors.Is(err, ErrCatalogue) {
		t.Errorf("negative price: %v", err)
	}
}

// A measurement whose delay nobody timed gives its loss, not its delay:
// the edge keeps its promised delay; a whole-path one is not used.
func TestMeasurementWithUnknownDelay(t *testing.T) {
	cat := catalogue([]sla.Provider{provider("P", sla.Proxy)},
		contract("A-P", "A", "P", "0.001", 10),
		contract("P-B", "P", "B", "0.001", 10),
	)
	cat.Measurements = []sla.Measurement{
		{SLA: "P-B", DelayMs: 0, DelayUnknown: true, LossPct: 3, Samples: 100},
		{Path: []string{"A-P", "P-B"}, DelayMs: 0, DelayUnknown: true, LossPct: 4, Samples: 100},
	}
	res := plan(t, cat, Request{From: "A", To: "B"})
	wantRoutes(t, res, "A>P>B[A-P,P-B] 0.0020")
	p := res.Paths[0]
	// A-P keeps its guarantee (0.1 %), P-B is measured at 3 %:
	// 1 − 0.999·0.97 = 3.097 %; the whole path's 4 % is not used.
	if p.DelayMs != 20 || p.Measured || p.LossPct < 3.09 || p.LossPct > 3.11 {
		t.Errorf("path %+v: want delay 20 ms (promised), loss 3.097 %%, not the whole-path figures", p)
	}
}

// TestPriceRejectionOnlyForTarget: a provider's over-price contract to
// another node is no reason the call to B failed, and is not listed.
func TestPriceRejectionOnlyForTarget(t *testing.T) {
	cat := catalogue([]sla.Provider{provider("P", sla.Proxy)},
		contract("A-P", "A", "P", "0.001", 10),
		contract("P-B", "P", "B", "0.001", 10),
		contract("P-C", "P", "C", "0.010", 10),
	)
	cat.Policy.Classes["gold"] = sla.ClassPolicy{MaxPricePerMinute: money("0.005")}
	res := plan(t, cat, Request{From: "A", To: "B"})
	wantRoutes(t, res, "A>P>B[A-P,P-B] 0.0020")
	for _, r := range res.Rejected {
		if r.ID == "P-C" {
			t.Errorf("rejected %v: P-C does not lead to B", res.Rejected)
		}
	}
	// With P-B expired, the expiry, not the price, leaves B unreachable.
	cat.SLAs[1].Valid.Until = at.Add(-time.Hour)
	res = plan(t, cat, Request{From: "A", To: "B"})
	wantRoutes(t, res)
	if !hasRejection(res, "P-B", ReasonExpired) || len(res.Rejected) != 1 {
		t.Errorf("rejected %v, want only P-B expired", res.Rejected)
	}
	if strings.Contains(res.Reason, "max_price_per_minute") || !strings.Contains(res.Reason, "no feasible path from A to B") {
		t.Errorf("reason %q", res.Reason)
	}
	// A contract to B over the limit is still named, when the search gets
	// to it: here P is reached on the strength of a cheaper way on through
	// Q, which is quarantined.
	cat.SLAs[1].Valid.Until = time.Time{}
	cat.SLAs[1].Price.PerMinute = money("0.006")
	cat.Providers = append(cat.Providers, provider("Q", sla.Proxy))
	cat.SLAs = append(cat.SLAs, interconnect("P-Q", "P", "Q", "0", 10), contract("Q-B", "Q", "B", "0.001", 10))
	res = plan(t, cat, Request{From: "A", To: "B", Quarantined: map[string]bool{"Q": true}})
	wantRoutes(t, res)
	want := []Rejection{{"P-B", ReasonOverPolicy + ": max_price_per_minute"}, {"Q", ReasonQuarantined}}
	if !slices.Equal(res.Rejected, want) || !strings.Contains(res.Reason, "max_price_per_minute") {
		t.Errorf("rejected %v, want %v; reason %q", res.Rejected, want, res.Reason)
	}
}
