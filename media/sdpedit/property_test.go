package sdpedit

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

var (
	genAddr = rapid.SampledFrom([]string{"192.0.2.1", "198.51.100.77", "0.0.0.0", "2001:db8::5", "::", "10.1.2.3"})
	genDir  = rapid.SampledFrom([]string{"", "a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"})
	dynamic = []string{"opus/48000/2", "telephone-event/8000", "AMR-WB/16000", "H264/90000", "VP8/90000", "speex/16000"}
)

func connLine(a string) string {
	if strings.Contains(a, ":") {
		return "c=IN IP6 " + a
	}
	return "c=IN IP4 " + a
}

// genBody draws a valid description: session or media-level c=, directions
// at both levels, RTP and T.38 sections, static and dynamic payload types,
// a=rtcp with and without address, rtcp-mux, SRTP, ICE and unknown
// attributes in random order.
func genBody(t *rapid.T) string {
	var b strings.Builder
	line := func(s string) {
		if s != "" {
			b.WriteString(s)
			b.WriteString("\r\n")
		}
	}
	line("v=0")
	line(fmt.Sprintf("o=%s %d %d IN IP4 192.0.2.1",
		rapid.SampledFrom([]string{"-", "alice", "user1"}).Draw(t, "user"),
		rapid.Uint32().Draw(t, "sessid"), rapid.Uint32().Draw(t, "version")))
	line("s=-")
	sessConn := rapid.Bool().Draw(t, "sessConn")
	if sessConn {
		line(connLine(genAddr.Draw(t, "sessAddr")))
	}
	line("t=0 0")
	var sess []string
	sess = append(sess, genDir.Draw(t, "sessDir"))
	if rapid.Bool().Draw(t, "sessICE") {
		sess = append(sess, "a=ice-lite", "a=ice-options:trickle")
	}
	sess = append(sess, "a=tool:gen")
	for _, a := range rapid.Permutation(sess).Draw(t, "sessAttrs") {
		line(a)
	}
	for k := range rapid.IntRange(1, 4).Draw(t, "media") {
		port := 0
		if rapid.IntRange(0, 4).Draw(t, fmt.Sprint("active", k)) > 0 {
			port = rapid.IntRange(1024, 65534).Draw(t, fmt.Sprint("port", k))
		}
		var attrs []string
		if rapid.IntRange(0, 5).Draw(t, fmt.Sprint("t38", k)) == 0 {
			line(fmt.Sprintf("m=image %d udptl t38", port))
			attrs = append(attrs, "a=T38FaxVersion:0", "a=T38MaxBitRate:14400")
		} else {
			kind := rapid.SampledFrom([]string{"audio", "video"}).Draw(t, fmt.Sprint("kind", k))
			proto := rapid.SampledFrom([]string{"RTP/AVP", "RTP/SAVP", "RTP/AVPF", "UDP/TLS/RTP/SAVPF"}).Draw(t, fmt.Sprint("proto", k))
			pts := rapid.Permutation([]int{0, 8, 9, 13, 18, 31, 96, 97, 98, 101, 120})
			n := rapid.IntRange(1, 5).Draw(t, fmt.Sprint("nfmt", k))
			var fmts []string
			for _, pt := range pts.Draw(t, fmt.Sprint("pts", k))[:n] {
				fmts = append(fmts, fmt.Sprint(pt))
				if pt >= 96 && rapid.IntRange(0, 3).Draw(t, fmt.Sprint("map", k, pt)) > 0 {
					attrs = append(attrs, fmt.Sprintf("a=rtpmap:%d %s", pt, rapid.SampledFrom(dynamic).Draw(t, fmt.Sprint("enc", k, pt))))
				}
			}
			line(fmt.Sprintf("m=%s %d %s %s", kind, port, proto, strings.Join(fmts, " ")))
			if rapid.Bool().Draw(t, fmt.Sprint("rtcp", k)) {
				rtcp := fmt.Sprintf("a=rtcp:%d", rapid.IntRange(1, 65535).Draw(t, fmt.Sprint("rtcpPort", k)))
				if rapid.Bool().Draw(t, fmt.Sprint("rtcpAddr", k)) {
					rtcp += " " + strings.TrimPrefix(connLine(genAddr.Draw(t, fmt.Sprint("rtcpA", k))), "c=")
				}
				attrs = append(attrs, rtcp)
			}
			for _, opt := range []string{"a=rtcp-mux", "a=ptime:20", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:QUJD",
				"a=candidate:1 1 udp 1 192.0.2.9 5000 typ host", "a=ice-ufrag:u", "a=end-of-candidates", "a=label:1", "a=x-odd:"} {
				if rapid.IntRange(0, 2).Draw(t, fmt.Sprint(opt, k)) == 0 {
					attrs = append(attrs, opt)
				}
			}
		}
		if rapid.Bool().Draw(t, fmt.Sprint("info", k)) {
			line("i=stream")
		}
		if !sessConn && port != 0 || rapid.Bool().Draw(t, fmt.Sprint("mconn", k)) {
			line(connLine(genAddr.Draw(t, fmt.Sprint("maddr", k))))
		}
		if rapid.Bool().Draw(t, fmt.Sprint("bw", k)) {
			line("b=AS:64")
		}
		attrs = append(attrs, genDir.Draw(t, fmt.Sprint("dir", k)))
		for _, a := range rapid.Permutation(attrs).Draw(t, fmt.Sprint("attrs", k)) {
			line(a)
		}
	}
	return b.String()
}

func genAnchors(t *rapid.T, n int) []Anchor {
	an := make([]Anchor, n)
	for k := range an {
		if rapid.IntRange(0, 3).Draw(t, fmt.Sprint("refuse", k)) == 0 {
			continue
		}
		an[k] = Anchor{
			Addr: netip.MustParseAddr(rapid.SampledFrom([]string{"203.0.113.1", "203.0.113.2", "2001:db8::1", "0.0.0.0"}).Draw(t, fmt.Sprint("aaddr", k))),
			RTP:  rapid.IntRange(1, 65534).Draw(t, fmt.Sprint("artp", k)),
		}
		if rapid.Bool().Draw(t, fmt.Sprint("artcp?", k)) {
			an[k].RTCP = rapid.IntRange(1, 65535).Draw(t, fmt.Sprint("artcp", k))
		}
	}
	return an
}

// kept is what Rewrite must pass through untouched, in order.
func kept(body string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(body, "\r\n"), "\r\n") {
		key, _, _ := strings.Cut(strings.TrimPrefix(l, "a="), ":")
		switch {
		case l == "", l[0] == 'o', l[0] == 'c', l[0] == 'm',
			l[0] == 'a' && (isICE(key) || key == "rtcp"):
			continue
		}
		out = append(out, l)
	}
	return out
}

// TestRewriteRoundTrip: Parse(Rewrite(x)) shows the anchors' addresses and
// ports and the same formats and directions as Parse(x).
func TestRewriteRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		body := genBody(t)
		before, err := Parse([]byte(body))
		if err != nil {
			t.Fatalf("generated body refused: %v\n%s", err, body)
		}
		anchors := genAnchors(t, len(before.Media))
		var origin *Origin
		if rapid.Bool().Draw(t, "origin") {
			origin = NewOrigin("relay", 77, netip.Addr{})
		}
		out, err := Rewrite([]byte(body), anchors, origin)
		if err != nil {
			t.Fatalf("Rewrite: %v\n%s", err, body)
		}
		after, err := Parse(out)
		if err != nil {
			t.Fatalf("output refused: %v\n%s", err, out)
		}
		if origin != nil {
			if after.OriginUser != "relay" || after.OriginSessID != "77" || after.OriginVersion != 77 {
				t.Fatalf("o= %+v", after)
			}
		} else if after.OriginUser != before.OriginUser || after.OriginSessID != before.OriginSessID || after.OriginVersion != before.OriginVersion {
			t.Fatalf("o= changed: %+v", after)
		}
		for k, m := range after.Media {
			b, a := before.Media[k], anchors[k]
			if m.Kind != b.Kind || m.Proto != b.Proto || !reflect.DeepEqual(m.Formats, b.Formats) || !reflect.DeepEqual(m.Fmts, b.Fmts) ||
				m.Dir != b.Dir || m.RTCPMux != b.RTCPMux || m.Secure != b.Secure || m.PtimeMs != b.PtimeMs {
				t.Fatalf("media %d changed:\n%+v\n%+v\n%s", k, b, m, out)
			}
			if m.Port != a.RTP {
				t.Fatalf("media %d: port %d, anchor %+v", k, m.Port, a)
			}
			if a.RTP == 0 {
				if m.RTCPPort != 0 {
					t.Fatalf("refused media %d has RTCP %d", k, m.RTCPPort)
				}
				continue
			}
			if m.Addr != a.Addr || m.Hold != a.Addr.IsUnspecified() {
				t.Fatalf("media %d: addr %v hold %v, anchor %+v\n%s", k, m.Addr, m.Hold, a, out)
			}
			if m.Kind == "image" {
				continue
			}
			rtcp := a.RTCP
			switch {
			case b.RTCPMux:
				rtcp = a.RTP
			case rtcp == 0:
				rtcp = a.RTP + 1
			}
			if m.RTCPPort != rtcp || m.RTCPAddr != a.Addr {
				t.Fatalf("media %d: RTCP %v:%d, anchor %+v\n%s", k, m.RTCPAddr, m.RTCPPort, a, out)
			}
		}
		if k1, k2 := kept(body), kept(string(out)); !reflect.DeepEqual(k1, k2) {
			t.Fatalf("lines not kept:\n%q\n%q", k1, k2)
		}
		if strings.Contains(string(out), "candidate") || strings.Contains(string(out), "a=ice-") {
			t.Fatalf("ICE left:\n%s", out)
		}
		if origin == nil {
			again, err := Rewrite(out, anchors, nil)
			if err != nil || string(again) != string(out) {
				t.Fatalf("not idempotent: %v\n%s\n%s", err, out, again)
			}
		}
	})
}

// TestDescriptionIsParseAndRewrite: a Description reads as Parse and
// rewrites as Rewrite of the same body, byte for byte, origin versions
// included.
func TestDescriptionIsParseAndRewrite(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		body := []byte(genBody(t))
		want, err := Parse(body)
		if err != nil {
			t.Fatalf("generated body refused: %v\n%s", err, body)
		}
		d, err := ParseDescription(body)
		if err != nil {
			t.Fatalf("ParseDescription refused what Parse took: %v", err)
		}
		if !reflect.DeepEqual(d.Session(), want) {
			t.Fatalf("Session:\n%+v\nParse:\n%+v", d.Session(), want)
		}
		anchors := genAnchors(t, len(want.Media))
		o1, o2 := NewOrigin("relay", 77, netip.Addr{}), NewOrigin("relay", 77, netip.Addr{})
		for range 2 { // the second time the origins' versions move on
			a, errA := Rewrite(body, anchors, o1)
			b, errB := d.Rewrite(anchors, o2)
			if (errA == nil) != (errB == nil) || string(a) != string(b) {
				t.Fatalf("Rewrite:\n%s (%v)\nDescription.Rewrite:\n%s (%v)", a, errA, b, errB)
			}
		}
	})
	for _, body := range corpus {
		d, err := ParseDescription([]byte(body))
		if err != nil {
			t.Fatalf("corpus body refused: %v", err)
		}
		anchors := make([]Anchor, len(d.Session().Media))
		for i := range anchors {
			anchors[i] = Anchor{Addr: netip.MustParseAddr("203.0.113.9"), RTP: 40000 + 2*i}
		}
		a, errA := Rewrite([]byte(body), anchors, nil)
		b, errB := d.Rewrite(anchors, nil)
		if (errA == nil) != (errB == nil) || string(a) != string(b) {
			t.Fatalf("corpus body: Rewrite %q (%v), Description.Rewrite %q (%v)", a, errA, b, errB)
		}
	}
}
