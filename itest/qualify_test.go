package itest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// A registered contact is reached the way it registered: over the same TCP
// connection when it registered over TCP, over UDP to its source address
// otherwise.
func TestContactsReachedTheWayTheyRegistered(t *testing.T) {
	c := StartCluster(t, 1, Options{})
	n := c.Node(0)
	domain := n.Config().Domain
	for _, transport := range []string{"TCP", "UDP"} {
		t.Run(transport, func(t *testing.T) {
			user := "heidi" + transport
			addUser(t, n, user, "pw")
			ua, err := sipgo.NewUA(sipgo.WithUserAgent("phone"))
			if err != nil {
				t.Fatal(err)
			}
			srv, err := sipgo.NewServer(ua)
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan string, 4)
			srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
				got <- req.Transport()
				_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
			})
			client, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { client.Close(); ua.Close() })
			phone := &sipClient{ua: ua, client: client}
			contact := fmt.Sprintf("<sip:%s@127.0.0.1:1;transport=%s>", user, transport)
			if res := phone.do(t, newRegister(n.SIPAddr(), domain, transport, user, contact, 300), user, "pw"); res.StatusCode != sip.StatusOK {
				t.Fatalf("REGISTER over %s: %d %s", transport, res.StatusCode, res.Reason)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			codes, err := n.QualifyContacts(ctx, user+"@"+domain)
			if err != nil {
				t.Fatal(err)
			}
			for uri, code := range codes {
				if code != sip.StatusOK {
					t.Fatalf("OPTIONS to %s: %d, want 200 (the contact's own port 1 is unreachable: only the registration's path works)", uri, code)
				}
			}
			select {
			case tp := <-got:
				if tp != transport {
					t.Fatalf("OPTIONS arrived over %s, want %s", tp, transport)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the phone got no OPTIONS")
			}
		})
	}
}
