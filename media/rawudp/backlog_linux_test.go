package rawudp

import (
	"net"
	"testing"
)

// Backlog follows the receive queue: it grows with every datagram left
// unread, the kernel drops what arrives once it reaches its limit (and
// counts it), and it is empty again once everything is read.
func TestBacklog(t *testing.T) {
	pc, c, b := withBuffer(t, 16<<10)
	if b.Queued != 0 || b.Limit <= 0 || b.Drops != 0 {
		t.Fatalf("fresh socket: %+v, want nothing queued or dropped and a limit", b)
	}
	limit := b.Limit

	sender := listen(t, "udp4", "127.0.0.1:0")
	to := pc.LocalAddr().(*net.UDPAddr)
	msg := make([]byte, 200)
	prev := 0
	sent := 0
	var err error
	for b.Drops == 0 {
		if sent > 10000 {
			t.Fatalf("no drop after %d datagrams on a %d-byte queue: %+v", sent, limit, b)
		}
		if _, err := sender.WriteToUDP(msg, to); err != nil {
			t.Fatal(err)
		}
		sent++
		if b, err = c.Backlog(); err != nil {
			t.Fatal(err)
		}
		if b.Drops == 0 && b.Queued <= prev {
			t.Fatalf("datagram %d: queued %d after %d, want more", sent, b.Queued, prev)
		}
		prev = b.Queued
	}
	if b.Limit != limit || b.Queued > limit || b.Queued < limit/2 {
		t.Fatalf("after a drop: %+v, want the queue near its limit %d", b, limit)
	}
	if b.Drops != 1 {
		t.Fatalf("drops %d, want 1: the one datagram sent after the queue filled", b.Drops)
	}

	r := c.Reader()
	buf := make([]byte, 1500)
	for range sent - 1 {
		if _, _, err := r.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	if b, err = c.Backlog(); err != nil {
		t.Fatal(err)
	}
	if b.Queued != 0 || b.Drops != 1 {
		t.Fatalf("all read: %+v, want nothing queued and the one drop still counted", b)
	}
}

// The limit is twice the receive buffer granted (the kernel's bookkeeping
// included, socket(7)), so a grant under the kernel's cap reads back as
// what was asked for (net.core.rmem_max is at least 208 KiB on Linux).
func TestBacklogLimitIsTheGrant(t *testing.T) {
	const asked = 100_000
	_, _, b := withBuffer(t, asked)
	if got := b.Limit / 2; got != asked {
		t.Fatalf("granted %d (limit %d), want %d", got, b.Limit, asked)
	}
}

// withBuffer opens a socket on 127.0.0.1 that asks for a receive buffer of
// size, and returns it, its Conn and its first Backlog.
func withBuffer(t *testing.T, size int) (*net.UDPConn, *Conn, Backlog) {
	t.Helper()
	pc := listen(t, "udp4", "127.0.0.1:0")
	if err := pc.SetReadBuffer(size); err != nil {
		t.Fatal(err)
	}
	c, err := New(pc)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Backlog()
	if err != nil {
		t.Fatal(err)
	}
	return pc, c, b
}
