package itest

import (
	"context"
	"crypto/rand"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/callmesh/callmesh/node"
	"github.com/callmesh/callmesh/node/sipedge"
)

// directLink is a peering with a direct voice link between node0 and node1:
// a path of no provider.
const directLink = `
slas:
  - id: node0-node1
    kind: node-node
    between: [node0, node1]
    markup_per_minute: "0.0010"
    direct: {per_minute: "0.0020", max_delay_ms: 10, max_loss_pct: 0.1}
`

// federationUsers registers alice at node0 and bob at node1 and waits until
// each node can locate the other's user.
func federationUsers(t *testing.T, c *Cluster) (alice, bob *phone) {
	t.Helper()
	waitDHT(t, c, 1)
	addUser(t, c.Node(0), "alice", "a-secret")
	addUser(t, c.Node(1), "bob", "b-secret")
	alice, bob = newPhone(t, c.Node(0), "alice", "a-secret"), newPhone(t, c.Node(1), "bob", "b-secret")
	alice.register()
	bob.register()
	locatedAt(t, []*node.Node{c.Node(0)}, "bob@"+c.Node(0).Config().Domain, c.Node(1))
	return alice, bob
}

func TestCallAcrossNodesOverDirectLink(t *testing.T) {
	c := StartCluster(t, 2, Options{Logger: DebugLogger(), Configure: func(i int, cfg *node.Config) {
		if i == 0 {
			if err := cfg.SetCatalogueYAML([]byte(directLink)); err != nil {
				t.Fatal(err)
			}
		}
	}})
	Eventually(t, 30*time.Second, c.Converged, "2 nodes did not converge")
	for _, n := range c.Running() {
		Eventually(t, 20*time.Second, func() bool { return hasSLAs(n, []string{"node0-node1"}) }, "%s lacks the peering", n.Name())
	}
	alice, bob := federationUsers(t, c)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := alice.call(ctx, "bob")
	if err != nil {
		t.Fatalf("call alice → bob across nodes: %v", err)
	}
	expectRelayed(t, ctx, alice, bob, d)

	in, eg := c.Node(0).Calls().Calls(), c.Node(1).Calls().Calls()
	if len(in) != 1 || len(eg) != 1 {
		t.Fatalf("calls: ingress %+v, egress %+v", in, eg)
	}
	if in[0].Role != "ingress" || eg[0].Role != "egress" || in[0].Session == "" || in[0].Session != eg[0].Session {
		t.Fatalf("roles and session: ingress %+v, egress %+v", in[0], eg[0])
	}
	if !slices.Equal(in[0].Path, []string{"node0", "node1"}) || !slices.Equal(eg[0].SLAs, []string{"node0-node1"}) || len(in[0].Attempts) != 1 {
		t.Fatalf("path: ingress %+v, egress %+v", in[0], eg[0])
	}
	ranking := c.Node(1).Elect(in[0].Session)
	if len(ranking) != 2 || ranking[0].Name != in[0].Master {
		t.Fatalf("master %q, but node1's view ranks %+v", in[0].Master, ranking)
	}
	if err := d.Bye(ctx); err != nil {
		t.Fatalf("BYE: %v", err)
	}
	Eventually(t, 10*time.Second, func() bool {
		return bob.byes.Load() == 1 && c.Node(0).Calls().Len() == 0 && c.Node(1).Calls().Len() == 0
	}, "BYE did not cross both nodes")
}

// tokenInvite is an initial INVITE to bob at node1 as a provider would
// forward it: the egress node's Route URI carries token.
func tokenInvite(n *node.Node, token string) *sip.Request {
	domain := n.Config().Domain
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "bob", Host: domain})
	req.SetDestination(n.SIPAddr())
	req.SetTransport("TCP")
	host, port, _ := net.SplitHostPort(n.SIPAddr())
	route := sip.Uri{Scheme: "sip", Host: host, UriParams: sip.NewParams()}
	route.Port, _ = strconv.Atoi(port)
	route.UriParams.Add("lr", "")
	route.UriParams.Add(sipedge.TokenParam, token)
	req.AppendHeader(&sip.RouteHeader{Address: route})
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: "bob", Host: domain}})
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: domain}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: "127.0.0.1", Port: 5999}})
	req.SetBody(nil)
	return req
}

func TestEgressRefusesBadTokens(t *testing.T) {
	c := StartCluster(t, 2, Options{Logger: DebugLogger()})
	Eventually(t, 30*time.Second, c.Converged, "2 nodes did not converge")
	_, bob := federationUsers(t, c)
	bob.setAnswer(func(d *sipgo.DialogServerSession) {
		_ = d.Respond(sip.StatusBusyHere, "Busy Here", nil)
	})
	n1 := c.Node(1)
	key0, id0, err := node.LoadIdentity(c.Config(0).Identity)
	if err != nil {
		t.Fatal(err)
	}
	outsiderKey, outsider := newKeyT(t)
	sign := func(key crypto.PrivKey, master peer.ID, ttl time.Duration) string {
		st := node.SessionToken{Session: "s-test", Master: master, Hops: []string{"node0", "p", "node1"}, SLAs: []string{"x"},
			Callee: "bob", Egress: "node1", Expires: time.Now().Add(ttl).UnixMilli()}
		s, err := st.Sign(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ua := newSIPClient(t)
	send := func(token string) *sip.Response {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := ua.client.Do(ctx, tokenInvite(n1, token))
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	good := sign(key0, id0, time.Minute)
	// The token admits the INVITE: bob is busy, and the answer says the
	// callee gave it (Reason), so an ingress node would not fail over.
	if res := send(good); res.StatusCode != sip.StatusBusyHere || res.GetHeader("Reason") == nil ||
		!strings.Contains(res.GetHeader("Reason").Value(), `text="callee"`) {
		t.Fatalf("valid token: %s", res.StartLine())
	}
	for name, token := range map[string]string{
		"reused":  good,
		"expired": sign(key0, id0, -time.Second),
		"forged":  sign(outsiderKey, outsider, time.Minute),
		"garbage": "abc.def",
	} {
		if res := send(token); res.StatusCode != sip.StatusForbidden {
			t.Errorf("%s token: %s, want 403", name, res.StartLine())
		} else {
			t.Logf("%s token: %s", name, res.StartLine())
		}
	}
}

func newKeyT(t *testing.T) (crypto.PrivKey, peer.ID) {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return k, id
}
