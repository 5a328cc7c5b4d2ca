package sim

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/callmesh/callmesh/node"
	"github.com/callmesh/callmesh/node/accounts"
	"github.com/callmesh/callmesh/node/digest"
)

// startUANode starts one node with accounts ann and ben (password "pw-"
// and the name) and user agents for both, registered.
func startUANode(t *testing.T) (*node.Node, *UA, *UA) {
	t.Helper()
	fed, err := New(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fed.Close() })
	if _, err := fed.Add(); err != nil {
		t.Fatal(err)
	}
	n := fed.Node(0)
	domain := n.Config().Domain
	var uas []*UA
	for _, name := range []string{"ann", "ben"} {
		_, err := n.Accounts().Add(accounts.Account{Name: name, Class: accounts.Silver, Allow: []string{"p2p"}, MaxCalls: 2,
			Home: n.ID().String(), Realm: domain, Credentials: digest.NewCredentials(name, domain, "pw-"+name)})
		if err != nil {
			t.Fatal(err)
		}
		ua, err := StartUA(UAConfig{User: name, Password: "pw-" + name, Domain: domain, Registrar: n.SIPAddr()}, testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := ua.Close(); err != nil {
				t.Errorf("close %s: %v", name, err)
			}
		})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = ua.Register(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		uas = append(uas, ua)
	}
	return n, uas[0], uas[1]
}

func TestUACallsThroughNode(t *testing.T) {
	n, ann, ben := startUANode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	call, err := ann.Dial(ctx, "ben")
	if err != nil {
		t.Fatalf("ann → ben: %v", err)
	}
	// Tone both ways through the node's relay, and the relay measures it.
	deadline := time.Now().Add(10 * time.Second)
	for ben.Counters().Received == 0 || call.Received().Packets < 50 || n.Calls().Len() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no media: ann received %d packets, ben answered %d calls, node has %d calls",
				call.Received().Packets, ben.Counters().Received, n.Calls().Len())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var mos float64
	for time.Now().Before(deadline) {
		if in := n.Calls().Calls(); len(in) == 1 && in[0].MOS > 0 && len(in[0].Legs) == 2 && in[0].Legs[1].Packets > 0 {
			mos = in[0].MOS
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if mos < 4 {
		t.Fatalf("node's MOS of a clean local call: %.2f", mos)
	}
	if st := call.Received(); st.LossPct > 1 || st.SSRC == 0 {
		t.Fatalf("ann's view of ben's tone: %+v", st)
	}
	if err := call.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	for ben.Counters().Active != 0 || n.Calls().Len() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("BYE did not end the call: ben %+v, node %d calls", ben.Counters(), n.Calls().Len())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A user that does not exist: the node's 404 comes back as the status.
	_, err = ann.Dial(ctx, "nobody")
	var ce *CallError
	if !errors.As(err, &ce) || ce.Status != 404 {
		t.Fatalf("call to nobody: %v, want a 404", err)
	}
	if c := ann.Counters(); c.Placed != 2 || c.Answered != 1 || c.Active != 0 {
		t.Fatalf("ann's counters %+v", c)
	}
}

func TestUAWrongPasswordIsRefused(t *testing.T) {
	n, _, _ := startUANode(t)
	ua, err := StartUA(UAConfig{User: "ann", Password: "wrong", Domain: n.Config().Domain, Registrar: n.SIPAddr()}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer ua.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ua.Register(ctx); err == nil {
		t.Fatal("registered with a wrong password")
	}
	if _, err := ua.Dial(ctx, "ben"); err == nil {
		t.Fatal("call with a wrong password was placed")
	}
}
