package sipedge

import (
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/callmesh/callmesh/media/rawudp"
	"github.com/callmesh/callmesh/node/sipwire"
)

func parseMsg(t *testing.T, raw string) sip.Message {
	t.Helper()
	m, err := sipwire.Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

const (
	newInvite = "INVITE sip:bob@callmesh.local SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n" +
		"From: <sip:alice@callmesh.local>;tag=a1\r\n" +
		"To: <sip:bob@callmesh.local>\r\n" +
		"Call-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n" +
		"Contact: <sip:alice@127.0.0.1:5070>\r\nContent-Length: 0\r\n\r\n"
	reInvite = "INVITE sip:alice@127.0.0.1:5070 SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-2\r\n" +
		"From: <sip:bob@callmesh.local>;tag=b1\r\n" +
		"To: <sip:alice@callmesh.local>;tag=a1\r\n" +
		"Call-ID: c1\r\nCSeq: 2 INVITE\r\nMax-Forwards: 70\r\n" +
		"Contact: <sip:bob@127.0.0.1:5080>\r\nContent-Length: 0\r\n\r\n"
	bye = "BYE sip:alice@127.0.0.1:5070 SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-3\r\n" +
		"From: <sip:bob@callmesh.local>;tag=b1\r\n" +
		"To: <sip:alice@callmesh.local>;tag=a1\r\n" +
		"Call-ID: c1\r\nCSeq: 3 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
	ok200 = "SIP/2.0 200 OK\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-4\r\n" +
		"From: <sip:alice@callmesh.local>;tag=a1\r\n" +
		"To: <sip:bob@callmesh.local>;tag=b1\r\n" +
		"Call-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
)

// Shedding starts once the backlog fills the set share of the buffer and
// sheds a share of new INVITEs that grows with it, all of them from
// halfway between there and full; only dialog-creating INVITEs are
// dropped, and each is counted.
func TestShedder(t *testing.T) {
	o := newShedder(0.5, slog.New(slog.DiscardHandler))
	now := time.Unix(1000, 0)
	invite, re, by, res := parseMsg(t, newInvite), parseMsg(t, reInvite), parseMsg(t, bye), parseMsg(t, ok200)

	for i, st := range []struct {
		queued int
		share  float64
	}{
		{0, 0},
		{4999, 0},
		{5000, 0}, // the set share: starts here
		{6250, 0.5},
		{7500, 1}, // halfway to full
		{9999, 1},
		{12000, 1}, // the kernel's count may pass its limit by a datagram
		{5625, 0.25},
		{1000, 0},
	} {
		got := o.observe(rawudp.Backlog{Queued: st.queued, Limit: 10000}, now.Add(time.Duration(i)*time.Millisecond))
		if math.Abs(got-st.share) > 1e-4 {
			t.Fatalf("queued %d of 10000: share %.4f, want %.4f", st.queued, got, st.share)
		}
	}

	// None shed at 0, every INVITE at 1, and never anything else.
	for _, share := range []float64{0, 1} {
		o.observe(rawudp.Backlog{Queued: int(5000 + share*2500), Limit: 10000}, now)
		before := o.shed.Load()
		for _, m := range []sip.Message{invite, re, by, res} {
			want := share == 1 && m == invite
			if got := o.drop(m); got != want {
				t.Fatalf("share %v: drop(%s) = %v, want %v", share, m, got, want)
			}
		}
		if want := before + uint64(share); o.shed.Load() != want {
			t.Fatalf("share %v: %d shed, want %d", share, o.shed.Load(), want)
		}
	}

	// In between, about that share of INVITEs (seeded: the same draw each
	// run; the tolerance is over six standard deviations).
	src := rand.New(rand.NewPCG(1, 2))
	o.rand = src.Uint32
	o.observe(rawudp.Backlog{Queued: 5500, Limit: 10000}, now) // a fifth
	before := o.shed.Load()
	const n = 10000
	for range n {
		o.drop(invite)
	}
	if got := o.shed.Load() - before; got < 1750 || got > 2250 {
		t.Fatalf("share 0.2: %d of %d INVITEs shed", got, n)
	}

	// A reading without a limit (the kernel told nothing) changes nothing.
	if got := o.observe(rawudp.Backlog{}, now); math.Abs(got-0.2) > 1e-4 {
		t.Fatalf("a reading without a limit changed the share to %v", got)
	}

	// An INVITE that answers a challenge is shed at 2s−1: none while
	// half the fresh ones or fewer are, then a growing share, all at 1.
	// The seeded draw goes on from above.
	creds := parseMsg(t, strings.Replace(newInvite, "Content-Length", `Proxy-Authorization: Digest username="alice", realm="callmesh.local", nonce="n", uri="sip:bob@callmesh.local", response="00"`+"\r\nContent-Length", 1))
	for _, st := range []struct {
		queued   int
		min, max uint64 // of n shed
	}{
		{5500, 0, 0},       // fresh: a fifth
		{6250, 0, 0},       // fresh: a half
		{6875, 4700, 5300}, // fresh: three quarters; answers: a half (six standard deviations)
		{7500, n, n},       // all
	} {
		o.observe(rawudp.Backlog{Queued: st.queued, Limit: 10000}, now)
		before := o.shed.Load()
		for range n {
			o.drop(creds)
		}
		if got := o.shed.Load() - before; got < st.min || got > st.max {
			t.Fatalf("queued %d of 10000: %d of %d INVITEs with credentials shed, want %d to %d", st.queued, got, n, st.min, st.max)
		}
	}
}

// The UDP readers shed dialog-creating INVITEs while shedding is on and
// keep answering everything else; a reading of the drained socket turns
// shedding off, and INVITEs are answered again.
func TestUDPShedsInvitesInOverload(t *testing.T) {
	// Over half the buffer: never reached here but by the test's say.
	s, server := testEdge(t, func(c *Config) { c.OverloadBacklog = 0.5 })
	if s.shed == nil {
		t.Skip("the socket's backlog cannot be read on this system")
	}
	u := newUDPClient(t, server)
	request := func(method, branch string) []byte { return u.request(method, "alice", "bob", branch) }
	send, answer := u.send, u.answer

	s.shed.share.Store(shareOne) // as after a reading of a deep backlog
	send(request("INVITE", "shed"))
	deadline := time.Now().Add(5 * time.Second)
	for s.shed.shed.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the INVITE was not shed")
		}
		time.Sleep(time.Millisecond)
	}
	// Every other request is answered meanwhile; enough of them that some
	// reader looks at the (empty) backlog again.
	for i := range 2 * backlogEvery * udpReaders() {
		branch := fmt.Sprintf("opt%d", i)
		send(request("OPTIONS", branch))
		if msg := answer(branch); !strings.HasPrefix(msg, "SIP/2.0 200 ") {
			t.Fatalf("OPTIONS while shedding: %q", msg)
		}
	}
	if s.shed.share.Load() != 0 {
		t.Fatal("still shedding after the backlog was read empty")
	}
	send(request("INVITE", "taken"))
	if msg := answer("taken"); !strings.HasPrefix(msg, "SIP/2.0 ") {
		t.Fatalf("INVITE after shedding: %q", msg)
	}
	if got := s.shed.shed.Load(); got != 1 {
		t.Fatalf("%d INVITEs shed, want the one sent while shedding", got)
	}
}

// The socket's metrics read its backlog: a datagram left unread shows, and
// nothing has been dropped; the shed INVITEs are counted.
func TestSocketMetrics(t *testing.T) {
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c, err := rawudp.New(pc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Backlog(); err != nil {
		t.Skip("the socket's backlog cannot be read on this system")
	}
	if _, err := pc.WriteToUDP([]byte("unread"), pc.LocalAddr().(*net.UDPAddr)); err != nil {
		t.Fatal(err)
	}
	o := newShedder(0.6, slog.New(slog.DiscardHandler))
	o.shed.Add(3)
	reg := prometheus.NewRegistry()
	registerSocketMetrics(reg, c, o)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		got[mf.GetName()] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
	}
	if got["callmesh_sip_udp_backlog_bytes"] <= 0 {
		t.Errorf("backlog %v with a datagram unread", got["callmesh_sip_udp_backlog_bytes"])
	}
	if v, ok := got["callmesh_sip_udp_receive_drops_total"]; !ok || v != 0 {
		t.Errorf("drops %v (present %v), want 0", v, ok)
	}
	if got["callmesh_sip_overload_shed_invites_total"] != 3 {
		t.Errorf("shed %v, want 3", got["callmesh_sip_overload_shed_invites_total"])
	}
	if v, ok := got["callmesh_sip_overload_shed_share"]; !ok || v != 0 {
		t.Errorf("share %v (present %v), want 0", v, ok)
	}
}
