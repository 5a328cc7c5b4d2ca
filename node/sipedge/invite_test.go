package sipedge

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callmesh/callmesh/node/accounts"
	"github.com/callmesh/callmesh/node/digest"
	"github.com/callmesh/callmesh/node/sipwire"
	"github.com/emiago/sipgo/sip"
)

// homeAccounts holds "cached" itself; any other user's account is on its
// home node: on a context that may not wait that is ErrWouldWait, and a
// fetch waits for fetched to close.
type homeAccounts struct {
	fetched chan struct{}
	mu      sync.Mutex
	asked   []string // "user" per Credentials, "user+" per Permit, quick ones marked "!"
}

func (a *homeAccounts) note(ctx context.Context, what string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if strings.HasPrefix(what, "cached") {
		a.asked = append(a.asked, what)
		return nil
	}
	if !MayWait(ctx) {
		a.asked = append(a.asked, what+"!")
		return ErrWouldWait
	}
	a.asked = append(a.asked, what)
	a.mu.Unlock()
	<-a.fetched
	a.mu.Lock()
	return nil
}

func (a *homeAccounts) Credentials(ctx context.Context, user string) (digest.Credentials, bool, error) {
	if err := a.note(ctx, user); err != nil {
		return digest.Credentials{}, false, err
	}
	return digest.NewCredentials(user, "example.com", "secret"), true, nil
}

func (a *homeAccounts) Permit(ctx context.Context, user string, _ accounts.Request) (Limits, error) {
	if err := a.note(ctx, user+"+"); err != nil {
		return Limits{}, err
	}
	return Limits{Known: true, MaxCalls: 1}, nil
}

func (a *homeAccounts) log() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return strings.Join(a.asked, " ")
}

// farCalls answers every INVITE 486; a callee named "far" must be found
// through the federation, which a quick Invite does not do.
type farCalls struct {
	mu      sync.Mutex
	invites []string // callee, with "!" when quick
}

func (c *farCalls) Invite(req *sip.Request, tx sip.ServerTransaction, _ Caller, quick bool) bool {
	c.mu.Lock()
	mark := ""
	if quick {
		mark = "!"
	}
	c.invites = append(c.invites, req.Recipient.User+mark)
	c.mu.Unlock()
	if quick && req.Recipient.User == "far" {
		return false
	}
	_ = tx.Respond(sipwire.Response(req, sip.StatusBusyHere, "Busy Here", "b1"))
	return true
}

func (c *farCalls) InDialog(*sip.Request, sip.ServerTransaction) bool { return false }

func (c *farCalls) log() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.invites, " ")
}

// An INVITE is served on the reader as far as it goes without waiting:
// an account on its home node, or a callee the federation must find, hands
// the rest to a goroutine that may wait, and the reader serves other
// requests meanwhile. What was done on the reader is not done again: the
// digest nonce is used once (a second use would be answered with a new
// challenge, not with the calls' 486).
func TestInviteHandsOverWhatWaits(t *testing.T) {
	cfg := Config{
		Domain: "example.com", Listen: "127.0.0.1:0",
		Policy:     RegisterPolicy{MinExpires: time.Minute, MaxExpires: time.Hour, DefaultExpires: time.Hour, MaxContacts: 1},
		Algorithms: []digest.Algorithm{digest.MD5},
		Nonce:      digest.NonceConfig{Secret: []byte("0123456789abcdef0123456789abcdef")},
	}
	accts := &homeAccounts{fetched: make(chan struct{})}
	var fetchedOnce sync.Once
	fetched := func() { fetchedOnce.Do(func() { close(accts.fetched) }) }
	s, err := Start(cfg, accts, noBindings{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fetched(); s.Close() })
	calls := &farCalls{}
	s.SetCalls(calls)
	server, err := net.ResolveUDPAddr("udp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}

	u := newUDPClient(t, server)
	request, send, answer := u.request, u.send, u.answer
	// authorized answers the challenge of a 407 for user.
	authorized := func(challenge, user, callee string) string {
		t.Helper()
		for _, line := range strings.Split(challenge, "\r\n") {
			if v, ok := strings.CutPrefix(line, "Proxy-Authenticate: "); ok {
				ch, err := digest.ParseChallenge(v)
				if err != nil {
					t.Fatal(err)
				}
				return "Proxy-Authorization: " + digest.Answer(ch, user, "secret", "INVITE", "sip:"+callee+"@example.com")
			}
		}
		t.Fatalf("no challenge in %q", challenge)
		return ""
	}

	// An account on its home node: the reader challenges (no account read
	// for that), then hands over where the credentials must be fetched.
	send(request("INVITE", "alice", "bob", "i1"))
	chal := answer("i1")
	if !strings.HasPrefix(chal, "SIP/2.0 407 ") {
		t.Fatalf("first INVITE: %q", chal)
	}
	send(request("INVITE", "alice", "bob", "i2", authorized(chal, "alice", "bob")))
	send(request("OPTIONS", "alice", "bob", "o1"))
	if msg := answer("o1"); !strings.HasPrefix(msg, "SIP/2.0 200 ") {
		t.Fatalf("OPTIONS while an account is fetched: %q", msg)
	}
	fetched()
	if msg := answer("i2"); !strings.HasPrefix(msg, "SIP/2.0 486 ") {
		t.Fatalf("INVITE after its account was fetched: %q", msg)
	}
	if got, want := accts.log(), "alice! alice alice+"; got != want {
		t.Errorf("accounts asked %q, want %q", got, want)
	}

	// An account held here and a callee the federation must find: the
	// reader authenticates, and the calls are asked again off the reader.
	send(request("INVITE", "cached", "far", "i3"))
	chal = answer("i3")
	send(request("INVITE", "cached", "far", "i4", authorized(chal, "cached", "far")))
	if msg := answer("i4"); !strings.HasPrefix(msg, "SIP/2.0 486 ") {
		t.Fatalf("INVITE to a far callee: %q", msg)
	}
	if got, want := calls.log(), "bob far! far"; got != want {
		t.Errorf("calls asked %q, want %q", got, want)
	}
}
