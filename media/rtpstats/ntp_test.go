package rtpstats_test

import (
	"testing"
	"time"

	"github.com/callmesh/callmesh/media/rtpstats"
)

// RFC 3550 §6.4.1, Figure 2: an SR sent 10 Nov 1995 11:33:25.125 UTC carries
// NTP 0xb44db705:20000000; its middle 32 bits, 0xb705:2000, come back as
// LSR. The RR arrives at A = 0xb710:8000 with DLSR 0x0005:4000 (5.25 s):
// A − LSR − DLSR = 0x0006:2000 = 6.125 s.
func TestRFC3550Example(t *testing.T) {
	sent := time.Date(1995, 11, 10, 11, 33, 25, 125e6, time.UTC).UnixNano()
	ntp := rtpstats.NTP(sent)
	if ntp != 0xb44db705_20000000 {
		t.Fatalf("NTP = %#x", ntp)
	}
	if lsr := rtpstats.Mid32(ntp); lsr != 0xb7052000 {
		t.Fatalf("Mid32 = %#x", lsr)
	}
	rtt, ok := rtpstats.RTT(0xb7108000, 0xb7052000, 0x00054000)
	if !ok || rtt != 6125*time.Millisecond {
		t.Errorf("RTT = %v, %v; want 6.125s", rtt, ok)
	}
	// A as the relay would compute it: 11.375 s after the SR.
	a := rtpstats.Mid32(rtpstats.NTP(sent + 11375*int64(time.Millisecond)))
	if a != 0xb7108000 {
		t.Errorf("A = %#x", a)
	}
}

func TestNTP(t *testing.T) {
	for _, c := range []struct {
		unixNano int64
		want     uint64
	}{
		{0, 2208988800 << 32},
		{1_500_000_000, (2208988800+1)<<32 | 0x80000000},
		{-250_000_000, (2208988800-1)<<32 | 0xc0000000}, // 23:59:59.75 on 31 Dec 1969
		{1, 2208988800<<32 | 4},                         // 2^32/1e9 = 4.29…: truncated
	} {
		if got := rtpstats.NTP(c.unixNano); got != c.want {
			t.Errorf("NTP(%d) = %#x, want %#x", c.unixNano, got, c.want)
		}
	}
}

func TestRTTEdges(t *testing.T) {
	if _, ok := rtpstats.RTT(0xb7108000, 0, 0x00054000); ok {
		t.Error("LSR 0 must not give an RTT")
	}
	if _, ok := rtpstats.RTT(0x00010000, 0x00010000, 0x00000001); ok {
		t.Error("negative RTT must not be ok")
	}
	if rtt, ok := rtpstats.RTT(0x00010000, 0x00010000, 0); !ok || rtt != 0 {
		t.Errorf("zero RTT = %v, %v", rtt, ok)
	}
	// Across the wrap of the middle 32 bits: A = 0x0000:8000, LSR 0xffff:8000,
	// DLSR 0: one second.
	if rtt, ok := rtpstats.RTT(0x00008000, 0xffff8000, 0); !ok || rtt != time.Second {
		t.Errorf("RTT across wrap = %v, %v", rtt, ok)
	}
	// 1/65536 s rounds to 15259 ns (15258.789…).
	if rtt, _ := rtpstats.RTT(0x00010001, 0x00010000, 0); rtt != 15259 {
		t.Errorf("one unit = %d ns", rtt)
	}
}

func TestSRLog(t *testing.T) {
	var l rtpstats.SRLog
	wall := time.Date(1995, 11, 10, 11, 33, 25, 125e6, time.UTC).UnixNano()
	const mono = int64(1_000 * time.Second) // the relay's monotonic clock at the SR
	l.Sent(0xAAAA, rtpstats.NTP(wall), mono)
	l.Sent(0xBBBB, rtpstats.NTP(wall), mono+time.Second.Nanoseconds()) // same NTP, other SSRC

	// The §6.4.1 numbers, timed on the relay's clock: RR 11.375 s after the
	// SR left, DLSR 5.25 s.
	at := mono + 11375*int64(time.Millisecond)
	rtt, ok := l.Answer(0xAAAA, 0xb7052000, 0x00054000, at)
	if !ok || rtt != 6125*time.Millisecond {
		t.Errorf("Answer = %v, %v; want 6.125s", rtt, ok)
	}
	if rtt, ok := l.Answer(0xBBBB, 0xb7052000, 0x00054000, at); !ok || rtt != 5125*time.Millisecond {
		t.Errorf("other SSRC: %v, %v; want 5.125s", rtt, ok)
	}
	for _, c := range []struct {
		name            string
		ssrc, lsr, dlsr uint32
		at              int64
	}{
		{"unknown SSRC", 0xCCCC, 0xb7052000, 0x00054000, at},
		{"unknown LSR", 0xAAAA, 0xb7052001, 0x00054000, at},
		{"LSR 0", 0xAAAA, 0, 0x00054000, at},
		{"negative", 0xAAAA, 0xb7052000, 0x00054000, mono + 5*time.Second.Nanoseconds()},
	} {
		if rtt, ok := l.Answer(c.ssrc, c.lsr, c.dlsr, c.at); ok {
			t.Errorf("%s: got %v, want not ok", c.name, rtt)
		}
	}

	// Sixteen later SRs push the first two out of the ring.
	for i := range 16 {
		l.Sent(0xAAAA, rtpstats.NTP(wall+int64(i+1)*int64(time.Second)), mono+int64(i+2)*int64(time.Second))
	}
	if _, ok := l.Answer(0xAAAA, 0xb7052000, 0x00054000, at); ok {
		t.Error("an SR evicted from the ring was still answered")
	}
	last := rtpstats.Mid32(rtpstats.NTP(wall + 16*int64(time.Second)))
	if rtt, ok := l.Answer(0xAAAA, last, 0, mono+17*int64(time.Second)+20*int64(time.Millisecond)); !ok || rtt != 20*time.Millisecond {
		t.Errorf("newest SR: %v, %v", rtt, ok)
	}
	// The same SR forwarded again later (a retransmission): the newest wins.
	l.Sent(0xAAAA, rtpstats.NTP(wall+16*int64(time.Second)), mono+18*int64(time.Second))
	if rtt, ok := l.Answer(0xAAAA, last, 0, mono+18*int64(time.Second)+30*int64(time.Millisecond)); !ok || rtt != 30*time.Millisecond {
		t.Errorf("newest of two copies: %v, %v", rtt, ok)
	}
	if a := testing.AllocsPerRun(100, func() {
		l.Sent(1, 2, 3)
		l.Answer(1, 2, 3, 4)
	}); a != 0 {
		t.Errorf("SRLog allocates %v times", a)
	}
}
