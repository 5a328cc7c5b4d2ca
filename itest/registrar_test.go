package itest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/callmesh/callmesh/node"
	"github.com/callmesh/callmesh/node/accounts"
	"github.com/callmesh/callmesh/node/digest"
	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// addUser creates an account on node n.
func addUser(t testing.TB, n *node.Node, name, password string) {
	t.Helper()
	addUserAllowed(t, n, name, password, "p2p")
}

// addUserAllowed creates a bronze account with the given rights.
func addUserAllowed(t testing.TB, n *node.Node, name, password string, allow ...string) {
	t.Helper()
	domain := n.Config().Domain
	_, err := n.Accounts().Add(accounts.Account{
		Name: name, Class: accounts.Bronze, Allow: allow, MaxCalls: 2, Home: n.ID().String(),
		Realm: domain, Credentials: digest.NewCredentials(name, domain, password),
	})
	if err != nil {
		t.Fatalf("add user %s: %v", name, err)
	}
}

// waitDHT waits until every running node's DHT routing table holds at
// least min peers.
func waitDHT(t testing.TB, c *Cluster, min int) {
	t.Helper()
	for _, n := range c.Running() {
		Eventually(t, 20*time.Second, func() bool { return n.DHT().RoutingTable().Size() >= min }, "DHT of %s not filled", n.Name())
	}
}

// sipClient is a SIP user agent on 127.0.0.1 for tests.
type sipClient struct {
	ua     *sipgo.UserAgent
	client *sipgo.Client
}

func newSIPClient(t testing.TB) *sipClient {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("callmesh-test"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); ua.Close() })
	return &sipClient{ua: ua, client: c}
}

// newRegister builds a REGISTER for user@domain to the node at addr over
// transport ("UDP" or "TCP"); expires < 0 leaves the Expires header out.
func newRegister(addr, domain, transport, user, contact string, expires int) *sip.Request {
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: domain})
	req.SetDestination(addr)
	req.SetTransport(transport)
	to := &sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: domain}}
	req.AppendHeader(to)
	from := &sip.FromHeader{Address: to.Address, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(sip.NewHeader("Contact", contact))
	if expires >= 0 {
		req.AppendHeader(sip.NewHeader("Expires", fmt.Sprint(expires)))
	}
	return req
}

// do sends req, answering a digest challenge (401 or 407) as user with
// password, and returns the final response.
func (c *sipClient) do(t testing.TB, req *sip.Request, user, password string) *sip.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.client.Do(ctx, req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, user, err)
	}
	if res.StatusCode != sip.StatusUnauthorized && res.StatusCode != sip.StatusProxyAuthRequired {
		return res
	}
	res, err = c.client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: user, Password: password})
	if err != nil {
		t.Fatalf("%s %s with credentials: %v", req.Method, user, err)
	}
	return res
}

// register sends a REGISTER over UDP for user at the node's SIP address,
// answering a digest challenge with password, and returns the final
// response.
func (c *sipClient) register(t testing.TB, addr, domain, user, password string, expires int, contact string) *sip.Response {
	t.Helper()
	return c.do(t, newRegister(addr, domain, "UDP", user, contact, expires), user, password)
}

func TestRegisterAndLocateAcrossFederation(t *testing.T) {
	c := StartCluster(t, 3, Options{Logger: DebugLogger()})
	Eventually(t, 30*time.Second, c.Converged, "cluster did not converge")
	waitDHT(t, c, 2)
	n0, n1, n2 := c.Node(0), c.Node(1), c.Node(2)
	domain := n0.Config().Domain
	addUser(t, n0, "alice", "wonderland")
	ua := newSIPClient(t)

	if res := ua.register(t, n0.SIPAddr(), domain, "alice", "not-her-password", 300, "<sip:alice@127.0.0.1:5999>"); res.StatusCode != sip.StatusForbidden {
		t.Fatalf("wrong password: %d %s, want 403", res.StatusCode, res.Reason)
	}
	if res := ua.register(t, n0.SIPAddr(), domain, "mallory", "x", 300, "<sip:mallory@127.0.0.1:5999>"); res.StatusCode != sip.StatusForbidden {
		t.Fatalf("unknown user: %d %s, want 403 (the same as a wrong password)", res.StatusCode, res.Reason)
	}
	if res := ua.register(t, n0.SIPAddr(), domain, "alice", "wonderland", 1, "<sip:alice@127.0.0.1:5999>"); res.StatusCode != sip.StatusIntervalToBrief ||
		res.GetHeader("Min-Expires") == nil {
		t.Fatalf("expires below minimum: %d %s, want 423 with Min-Expires", res.StatusCode, res.Reason)
	}
	res := ua.register(t, n0.SIPAddr(), domain, "alice", "wonderland", 300, "<sip:alice@127.0.0.1:5999>")
	if res.StatusCode != sip.StatusOK {
		t.Fatalf("REGISTER: %d %s", res.StatusCode, res.Reason)
	}
	if cs := res.GetHeaders("Contact"); len(cs) != 1 {
		t.Fatalf("200 OK lists %d contacts, want 1: %v", len(cs), res)
	}

	aor := "alice@" + domain
	locatedAt(t, []*node.Node{n1, n2}, aor, n0)

	// Unregister: nobody finds alice any more.
	if res := ua.register(t, n0.SIPAddr(), domain, "alice", "wonderland", 0, "<sip:alice@127.0.0.1:5999>"); res.StatusCode != sip.StatusOK {
		t.Fatalf("unREGISTER: %d %s", res.StatusCode, res.Reason)
	}
	for _, n := range []*node.Node{n0, n1, n2} {
		Eventually(t, 10*time.Second, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := n.Locate(ctx, aor)
			return errors.Is(err, node.ErrNotRegistered)
		}, "%s still locates %s after unregistration", n.Name(), aor)
	}
}

// locatedAt waits until every node in nodes locates aor at node want.
func locatedAt(t *testing.T, nodes []*node.Node, aor string, want *node.Node) {
	t.Helper()
	start := time.Now()
	for _, n := range nodes {
		Eventually(t, 15*time.Second, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			loc, err := n.Locate(ctx, aor)
			return err == nil && loc.Node == want.ID()
		}, "%s did not locate %s at %s", n.Name(), aor, want.Name())
	}
	t.Logf("every node located %s at %s after %v", aor, want.Name(), time.Since(start).Round(time.Millisecond))
}

// A user created on node0 registers at node1 (node1 fetches the account
// from node0), is found there from node2, moves back to node0 and is found
// there by everyone; registrations survive a restart.
func TestUserRegistersAnywhereAndMoves(t *testing.T) {
	c := StartCluster(t, 3, Options{Logger: DebugLogger()})
	Eventually(t, 30*time.Second, c.Converged, "cluster did not converge")
	waitDHT(t, c, 2)
	n0, n1, n2 := c.Node(0), c.Node(1), c.Node(2)
	domain := n0.Config().Domain
	addUser(t, n0, "bob", "builder")
	aor := "bob@" + domain
	ua := newSIPClient(t)

	// node1 learns bob's home from the DHT once node0 has published it.
	// (Polling REGISTER instead would trip the block on repeated failures.)
	Eventually(t, 20*time.Second, func() bool {
		_, found, err := n1.Account(context.Background(), "bob")
		return err == nil && found
	}, "node1 never found bob's account homed at node0")
	if res := ua.register(t, n1.SIPAddr(), domain, "bob", "builder", 300, "<sip:bob@127.0.0.1:5998>"); res.StatusCode != sip.StatusOK {
		t.Fatalf("REGISTER at node1 with the account homed at node0: %d %s", res.StatusCode, res.Reason)
	}
	if res := ua.register(t, n1.SIPAddr(), domain, "bob", "wrong", 300, "<sip:bob@127.0.0.1:5998>"); res.StatusCode != sip.StatusForbidden {
		t.Fatalf("wrong password at node1: %d, want 403", res.StatusCode)
	}
	locatedAt(t, []*node.Node{n0, n1, n2}, aor, n1)

	// bob moves to node0: a newer registration wins everywhere.
	if res := ua.register(t, n0.SIPAddr(), domain, "bob", "builder", 300, "<sip:bob@127.0.0.1:5997>"); res.StatusCode != sip.StatusOK {
		t.Fatalf("REGISTER at node0: %d %s", res.StatusCode, res.Reason)
	}
	locatedAt(t, []*node.Node{n0, n1, n2}, aor, n0)

	// node0 restarts: its registration is still there, and still found.
	c.Stop(0)
	n0 = c.Start(0)
	Eventually(t, 30*time.Second, c.Converged, "cluster did not converge after restart")
	locatedAt(t, []*node.Node{n0, n1, n2}, aor, n0)
}

// Challenges offer the configured algorithms in order (MD5 first by
// default, for the clients that abort on SHA-256); a client that speaks
// SHA-256 registers with it when it is offered first.
func TestDigestAlgorithms(t *testing.T) {
	c := StartCluster(t, 2, Options{Configure: func(i int, cfg *node.Config) {
		if i == 1 {
			cfg.Auth.Algorithms = []string{"SHA-256", "MD5"}
		}
	}})
	for i, want := range [][]string{{"MD5", "SHA-256"}, {"SHA-256", "MD5"}} {
		n := c.Node(i)
		domain := n.Config().Domain
		addUser(t, n, "carol", "sha-me")
		if want[0] == "SHA-256" {
			// Spoil the MD5 HA1, so that success proves the client
			// answered the SHA-256 challenge.
			if _, err := n.Accounts().Update("carol", func(a *accounts.Account) error {
				a.Credentials.MD5 = digest.HA1(digest.MD5, "carol", domain, "another password")
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		ua := newSIPClient(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req := newRegister(n.SIPAddr(), domain, "UDP", "carol", "<sip:carol@127.0.0.1:5996>", -1)
		res, err := ua.client.Do(ctx, req)
		cancel()
		if err != nil || res.StatusCode != sip.StatusUnauthorized {
			t.Fatalf("node%d: unauthenticated REGISTER: %v, %v", i, res, err)
		}
		var got []string
		for _, h := range res.GetHeaders("WWW-Authenticate") {
			for _, alg := range []string{"SHA-256", "MD5"} {
				if strings.Contains(h.Value(), "algorithm="+alg) {
					got = append(got, alg)
					break
				}
			}
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("node%d offers %v, want %v", i, got, want)
		}
		if res := ua.register(t, n.SIPAddr(), domain, "carol", "sha-me", 300, "<sip:carol@127.0.0.1:5996>"); res.StatusCode != sip.StatusOK {
			t.Fatalf("node%d: REGISTER answering %s: %d %s", i, want[0], res.StatusCode, res.Reason)
		}
	}
}

// A 200 OK listing many bindings is larger than sipgo's default UDP limit;
// it still reaches the client.
func TestLargeRegisterResponseOverUDP(t *testing.T) {
	c := StartCluster(t, 1, Options{})
	n := c.Node(0)
	domain := n.Config().Domain
	addUser(t, n, "dave", "many-phones")
	ua := newSIPClient(t)
	var contacts []string
	for i := range n.Config().Registrar.MaxContacts {
		contacts = append(contacts, fmt.Sprintf("<sip:dave@127.0.0.1:%d;transport=udp;x-device=%s>;+sip.instance=\"<urn:uuid:%08d-0000-4000-8000-000000000000>\"",
			6000+i, strings.Repeat("d", 40), i))
	}
	// One small REGISTER per phone; the answers grow with the bindings.
	var res *sip.Response
	for _, ct := range contacts {
		res = ua.register(t, n.SIPAddr(), domain, "dave", "many-phones", 300, ct)
		if res.StatusCode != sip.StatusOK {
			t.Fatalf("REGISTER: %d %s", res.StatusCode, res.Reason)
		}
	}
	if got := len(res.GetHeaders("Contact")); got != len(contacts) {
		t.Fatalf("200 OK lists %d contacts, want %d", got, len(contacts))
	}
	if size := len(res.String()); size <= 1300 {
		t.Fatalf("response of %d bytes does not test the UDP limit", size)
	}
}

// An INVITE is challenged with 407, and the caller's rights are checked
// before anything else happens.
func TestInviteAuthenticatedAndAuthorized(t *testing.T) {
	c := StartCluster(t, 1, Options{})
	n := c.Node(0)
	domain := n.Config().Domain
	addUser(t, n, "erin", "calls") // rights: p2p only
	ua := newSIPClient(t)
	invite := func(target, password string) *sip.Response {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: target, Host: domain})
		req.SetDestination(n.SIPAddr())
		from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "erin", Host: domain}, Params: sip.NewParams()}
		from.Params.Add("tag", sip.GenerateTagN(8))
		req.AppendHeader(from)
		req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: target, Host: domain}})
		req.AppendHeader(sip.NewHeader("Contact", "<sip:erin@127.0.0.1:5995>"))
		res, err := ua.client.Do(ctx, req)
		if err != nil {
			t.Fatalf("INVITE %s: %v", target, err)
		}
		if res.StatusCode != sip.StatusProxyAuthRequired || res.GetHeader("Proxy-Authenticate") == nil {
			t.Fatalf("unauthenticated INVITE: %d %s, want 407 with Proxy-Authenticate", res.StatusCode, res.Reason)
		}
		res, err = ua.client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: "erin", Password: password})
		if err != nil {
			t.Fatalf("INVITE %s with credentials: %v", target, err)
		}
		return res
	}
	if res := invite("frank", "wrong"); res.StatusCode != sip.StatusForbidden {
		t.Errorf("wrong password: %d %s, want 403", res.StatusCode, res.Reason)
	}
	if res := invite("+4930123456", "calls"); res.StatusCode != sip.StatusForbidden || !strings.Contains(res.Reason, "external") {
		t.Errorf("call to a number without the right: %d %s, want 403 naming the missing right", res.StatusCode, res.Reason)
	}
	if res := invite("frank", "calls"); res.StatusCode != sip.StatusNotFound {
		t.Errorf("authorized call to nobody: %d %s, want 404", res.StatusCode, res.Reason)
	}
}

// A registration made while the node has no DHT peers is published once a
// peer arrives, not lost.
func TestLocationPublishedWhenPeersArrive(t *testing.T) {
	c := StartCluster(t, 1, Options{})
	n0 := c.Node(0)
	domain := n0.Config().Domain
	addUser(t, n0, "grace", "alone")
	if res := newSIPClient(t).register(t, n0.SIPAddr(), domain, "grace", "alone", 300, "<sip:grace@127.0.0.1:5994>"); res.StatusCode != sip.StatusOK {
		t.Fatalf("REGISTER: %d %s", res.StatusCode, res.Reason)
	}
	if n0.DHT().RoutingTable().Size() != 0 {
		t.Fatal("a lone node has DHT peers")
	}
	n1 := c.Node(c.Add())
	locatedAt(t, []*node.Node{n1}, "grace@"+domain, n0)
}
