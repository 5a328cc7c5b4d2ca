package sdpedit

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// seeds are the table bodies, in CRLF and LF form, and a few broken ones.
func seeds(f *testing.F, add func(body []byte)) {
	for _, b := range corpus {
		add([]byte(crlf(b)))
		add([]byte(b))
	}
	for _, b := range []string{"", "v=0", "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 1/2 RTP/AVP 0 x\r\n",
		head + "m=image 9 udptl t38\nc=IN IP6 ::1\na=rtcp:9 IN IP6 ::2\n",
		head + "m=audio 65535 RTP/AVP 0\na=rtcp-mux\na=rtcp:1\na=rtcp:2\nc=IN IP4 1.1.1.1\n"} {
		add([]byte(b))
	}
}

// checkOutput asserts what holds of any successful Rewrite: the output
// parses again, shows the anchors' ports, and is a fixed point.
func checkOutput(t *testing.T, out []byte, anchors []Anchor) {
	t.Helper()
	if !bytes.HasSuffix(out, []byte("\r\n")) || bytes.Contains(bytes.ReplaceAll(out, []byte("\r\n"), nil), []byte("\n")) {
		t.Fatalf("line endings:\n%q", out)
	}
	s, err := Parse(out)
	if err != nil {
		t.Fatalf("output refused: %v\n%q", err, out)
	}
	if len(s.Media) != len(anchors) {
		t.Fatalf("%d media out, %d anchors", len(s.Media), len(anchors))
	}
	for k, m := range s.Media {
		if m.Port != anchors[k].RTP || m.Port != 0 && m.Addr != anchors[k].Addr.Unmap() {
			t.Fatalf("media %d: %v:%d, anchor %+v\n%q", k, m.Addr, m.Port, anchors[k], out)
		}
	}
	again, err := Rewrite(out, anchors, nil)
	if err != nil || !bytes.Equal(again, out) {
		t.Fatalf("not a fixed point: %v\n%q\n%q", err, out, again)
	}
}

func FuzzParse(f *testing.F) {
	seeds(f, func(b []byte) { f.Add(b) })
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || !strings.HasPrefix(err.Error(), "sdp: ") {
				t.Fatalf("error %T %v", err, err)
			}
			return
		}
		anchors := make([]Anchor, len(s.Media))
		for k := range anchors {
			anchors[k] = Anchor{Addr: relay, RTP: 10000 + 2*k}
		}
		out, err := Rewrite(data, anchors, nil)
		if err != nil {
			t.Fatalf("Parse accepted, Rewrite refused: %v", err)
		}
		checkOutput(t, out, anchors)
	})
}

func FuzzRewrite(f *testing.F) {
	seeds(f, func(b []byte) { f.Add(b, false, uint16(30000), uint16(0), true) })
	f.Add([]byte(crlf(bodyWebRTC)), true, uint16(65535), uint16(0), false)
	f.Add([]byte(crlf(bodyAV)), true, uint16(0), uint16(9), false)
	f.Fuzz(func(t *testing.T, data []byte, v6 bool, rtp, rtcp uint16, withOrigin bool) {
		addr := relay
		if v6 {
			addr = relay6
		}
		n := bytes.Count(data, []byte("\nm=")) // m= lines, give or take: a wrong count must be refused
		if n > 64 {
			n = 64
		}
		anchors := make([]Anchor, n)
		for k := range anchors {
			anchors[k] = Anchor{Addr: addr, RTP: int(rtp), RTCP: int(rtcp)}
		}
		var origin *Origin
		if withOrigin {
			origin = NewOrigin("fuzz", 1, netip.Addr{})
		}
		out, err := Rewrite(data, anchors, origin)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T %v", err, err)
			}
			return
		}
		checkOutput(t, out, anchors)
		if origin != nil {
			// Same input, same origin state: same bytes and version.
			out2, err := Rewrite(data, anchors, origin)
			if err != nil || !bytes.Equal(out, out2) || origin.Version() != 1 {
				t.Fatalf("not deterministic: %v v%d\n%q\n%q", err, origin.Version(), out, out2)
			}
		}
	})
}
