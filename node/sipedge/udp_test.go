package sipedge

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/callmesh/callmesh/node/digest"
)

// testEdge starts an edge on a free port of 127.0.0.1, without accounts or
// bindings, and returns it with its UDP address; set changes its
// configuration first.
func testEdge(t *testing.T, set ...func(*Config)) (*Server, *net.UDPAddr) {
	t.Helper()
	cfg := Config{
		Domain: "example.com", Listen: "127.0.0.1:0",
		Policy:     RegisterPolicy{MinExpires: time.Minute, MaxExpires: time.Hour, DefaultExpires: time.Hour, MaxContacts: 1},
		Algorithms: []digest.Algorithm{digest.MD5},
		Nonce:      digest.NonceConfig{Secret: []byte("0123456789abcdef0123456789abcdef")},
	}
	for _, f := range set {
		f(&cfg)
	}
	s, err := Start(cfg, noAccounts{}, noBindings{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	server, err := net.ResolveUDPAddr("udp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	return s, server
}

// Answers over UDP leave from the listening port, to the source of the
// request, however many sources write to the edge; and the edge keeps no
// state per source (sipgo's ServeUDP kept each in its connection pool for
// as long as the listener lived).
func TestUDPAnswersFromListenerWithoutStatePerSource(t *testing.T) {
	s, server := testEdge(t)

	const sources = 40
	for i := range sources {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		msg := strings.Join([]string{
			"OPTIONS sip:example.com SIP/2.0",
			fmt.Sprintf("Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK-src%d;rport", port, i),
			"Max-Forwards: 70",
			"From: <sip:probe@example.com>;tag=p" + fmt.Sprint(i),
			"To: <sip:example.com>",
			fmt.Sprintf("Call-ID: src-%d@test", i),
			"CSeq: 1 OPTIONS",
			"Content-Length: 0",
			"", ""}, "\r\n")
		if _, err := c.WriteToUDP([]byte(msg), server); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := c.ReadFromUDP(buf)
		c.Close()
		if err != nil {
			t.Fatalf("source %d: no answer: %v", i, err)
		}
		if from.String() != server.String() {
			t.Fatalf("source %d: answered from %s, not the listener %s", i, from, server)
		}
		if !strings.HasPrefix(string(buf[:n]), "SIP/2.0 200 ") {
			t.Fatalf("source %d: %q", i, buf[:n])
		}
	}
	// The listener, under its own address: the only entry requests name
	// as their local address.
	if n := s.tpl.Pool("udp").Size(); n != 1 {
		t.Fatalf("%d entries in the UDP connection pool after %d sources, want the listener's alone", n, sources)
	}
}

// A request to a contact that registered over UDP leaves from the
// listening port too: the port the contact's NAT let the REGISTER out to.
func TestUDPRequestFromListener(t *testing.T) {
	s, server := testEdge(t)
	phone, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer phone.Close()
	from := make(chan string, 1)
	go func() {
		buf := make([]byte, 4096)
		n, src, err := phone.ReadFromUDP(buf)
		if err != nil {
			return
		}
		from <- src.String()
		msg, err := sip.ParseMessage(buf[:n])
		if err != nil {
			return
		}
		res := sip.NewResponseFromRequest(msg.(*sip.Request), 200, "OK", nil)
		_, _ = phone.WriteToUDP([]byte(res.String()), src)
	}()

	b := Binding{AOR: "ivan@example.com", URI: "sip:ivan@" + phone.LocalAddr().String(), Source: phone.LocalAddr().String(), Transport: "udp"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := s.Qualify(ctx, b)
	if err != nil {
		t.Fatalf("Qualify: %v", err)
	}
	if res.StatusCode != 200 {
		t.Fatalf("answer %d", res.StatusCode)
	}
	if got := <-from; got != server.String() {
		t.Fatalf("OPTIONS came from %s, not the listener %s", got, server)
	}
}

// A reader names its sources without formatting one anew per datagram:
// the names of the last four are kept, an IPv4-mapped source is named in
// dotted form, and a fifth source replaces the oldest.
func TestSourceNames(t *testing.T) {
	var c sourceNames
	a := netip.MustParseAddrPort("[::ffff:192.0.2.1]:5060")
	b := netip.MustParseAddrPort("[2001:db8::1]:5070")
	if got := c.of(a); got != "192.0.2.1:5060" {
		t.Errorf("mapped source named %q", got)
	}
	if got := c.of(b); got != "[2001:db8::1]:5070" {
		t.Errorf("IPv6 source named %q", got)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if c.of(a) != "192.0.2.1:5060" || c.of(b) != "[2001:db8::1]:5070" {
			t.Fatal("a kept name changed")
		}
	})
	if allocs != 0 {
		t.Errorf("naming sources it knows allocated %.1f times", allocs)
	}
	for i := range 4 {
		p := netip.AddrPortFrom(netip.MustParseAddr("198.51.100.7"), uint16(6000+i))
		if got, want := c.of(p), fmt.Sprintf("198.51.100.7:%d", 6000+i); got != want {
			t.Errorf("source %d named %q, want %q", i, got, want)
		}
	}
	if got := c.of(a); got != "192.0.2.1:5060" {
		t.Errorf("a source named again after it was replaced: %q", got)
	}
}

// udpClient is a SIP peer over UDP on 127.0.0.1 for the edge's tests.
type udpClient struct {
	t      *testing.T
	c      *net.UDPConn
	server *net.UDPAddr
	port   int
}

func newUDPClient(t *testing.T, server *net.UDPAddr) *udpClient {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &udpClient{t: t, c: c, server: server, port: c.LocalAddr().(*net.UDPAddr).Port}
}

// request is a request from user to callee in example.com, out of any
// dialog, its branch, tags and Call-ID made from branch.
func (u *udpClient) request(method, user, callee, branch string, extra ...string) []byte {
	lines := []string{
		method + " sip:" + callee + "@example.com SIP/2.0",
		fmt.Sprintf("Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK-%s;rport", u.port, branch),
		"Max-Forwards: 70",
		"From: <sip:" + user + "@example.com>;tag=a-" + branch,
		"To: <sip:" + callee + "@example.com>",
		"Call-ID: " + branch + "@test",
		"CSeq: 1 " + method,
		fmt.Sprintf("Contact: <sip:%s@127.0.0.1:%d>", user, u.port),
	}
	lines = append(lines, extra...)
	return []byte(strings.Join(append(lines, "Content-Length: 0", "", ""), "\r\n"))
}

func (u *udpClient) send(b []byte) {
	u.t.Helper()
	if _, err := u.c.WriteToUDP(b, u.server); err != nil {
		u.t.Fatal(err)
	}
}

// answer reads datagrams until a response to branch other than 100.
func (u *udpClient) answer(branch string) string {
	u.t.Helper()
	buf := make([]byte, 4096)
	_ = u.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		n, _, err := u.c.ReadFromUDP(buf)
		if err != nil {
			u.t.Fatalf("no answer to %s: %v", branch, err)
		}
		msg := string(buf[:n])
		if strings.Contains(msg, "branch=z9hG4bK-"+branch) && !strings.HasPrefix(msg, "SIP/2.0 100 ") {
			return msg
		}
	}
}
