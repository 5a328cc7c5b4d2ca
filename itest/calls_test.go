package itest

import (
	"context"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/callmesh/callmesh/node/accounts"
)

func TestCallThroughOneNode(t *testing.T) {
	c := StartCluster(t, 1, Options{Logger: DebugLogger()})
	n := c.Node(0)
	addUser(t, n, "alice", "a-secret")
	addUser(t, n, "bob", "b-secret")
	alice, bob := newPhone(t, n, "alice", "a-secret"), newPhone(t, n, "bob", "b-secret")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := alice.call(ctx, "bob")
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	// Media is anchored: alice is told to send to the relay, not to bob.
	relayed := mediaPeer(t, d.InviteResponse.Body())
	if relayed == bob.rtp.Addr() {
		t.Fatal("the answer names bob's RTP address: media not anchored")
	}
	alice.rtp.SetPeer(relayed, netipPlus(relayed, 1))
	bob.mu.Lock()
	bd := bob.dialogs[0]
	bob.mu.Unlock()
	toBob := mediaPeer(t, bd.InviteRequest.Body())
	bob.rtp.SetPeer(toBob, netipPlus(toBob, 1))
	if err := alice.rtp.Send(ctx, 20, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := bob.rtp.Send(ctx, 20, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 10*time.Second, func() bool { return bob.rtp.Stats().Packets == 20 && alice.rtp.Stats().Packets == 20 }, "RTP did not cross the relay")
	calls := n.Calls().Calls()
	if len(calls) != 1 || calls[0].State != "confirmed" || !calls[0].Anchored || calls[0].Legs[0].Packets != 20 {
		t.Fatalf("calls: %+v", calls)
	}
	if err := d.Bye(ctx); err != nil {
		t.Fatalf("BYE: %v", err)
	}
	Eventually(t, 10*time.Second, func() bool { return bob.byes.Load() == 1 && n.Calls().Len() == 0 }, "BYE did not reach bob")
	_ = accounts.Bronze
	_ = sip.BYE
	_ = sipgo.DialogClientSession{}
}
