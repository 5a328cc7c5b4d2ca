package sdpedit

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

var (
	relay  = ip("203.0.113.1")
	relay2 = ip("198.51.100.9")
	relay6 = ip("2001:db8::1")
)

func TestRewrite(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		anchors []Anchor
		origin  *Origin
		want    string
	}{{
		name: "sipp", body: bodySIPp, anchors: []Anchor{{relay, 30000, 0}},
		want: `v=0
o=user1 53655765 2353687637 IN IP4 203.0.113.1
s=-
c=IN IP4 203.0.113.1
t=0 0
m=audio 30000 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
`,
	}, {
		name: "sipp, RTCP not on RTP+1: a=rtcp added", body: bodySIPp, anchors: []Anchor{{relay, 30000, 40001}},
		want: `v=0
o=user1 53655765 2353687637 IN IP4 203.0.113.1
s=-
c=IN IP4 203.0.113.1
t=0 0
m=audio 30000 RTP/AVP 0 101
a=rtcp:40001
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
`,
	}, {
		name: "baresip with origin", body: bodyBaresip, anchors: []Anchor{{relay, 30000, 30001}},
		origin: NewOrigin("callmesh", 1000, relay),
		want: `v=0
o=callmesh 1000 1000 IN IP4 203.0.113.1
s=-
c=IN IP4 203.0.113.1
t=0 0
a=tool:baresip 1.0.0
m=audio 30000 RTP/AVP 96 9 0 8 101
b=AS:128
a=rtpmap:96 opus/48000/2
a=fmtp:96 stereo=1;sprop-stereo=1
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
a=label:1
a=rtcp-rsize
a=ssrc:3283472541 cname:8f3d0f9a-7d3c-4f5e-9a61-3c1a1f1f1b2e
a=ptime:20
`,
	}, {
		name: "srtp", body: bodySRTP, anchors: []Anchor{{relay, 30000, 30001}},
		want: `v=0
o=- 3842341234 3842341234 IN IP4 203.0.113.1
s=SIP Call
c=IN IP4 203.0.113.1
t=0 0
m=audio 30000 RTP/SAVP 8 0 13 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32
a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20|1:32
a=rtcp:30001 IN IP4 203.0.113.1
a=sendrecv
`,
	}, {
		name: "srtp toward IPv6", body: bodySRTP, anchors: []Anchor{{relay6, 30000, 30001}},
		want: `v=0
o=- 3842341234 3842341234 IN IP6 2001:db8::1
s=SIP Call
c=IN IP6 2001:db8::1
t=0 0
m=audio 30000 RTP/SAVP 8 0 13 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32
a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20|1:32
a=rtcp:30001 IN IP6 2001:db8::1
a=sendrecv
`,
	}, {
		name: "webrtc: ICE stripped, rtcp-mux kept", body: bodyWebRTC, anchors: []Anchor{{relay, 30000, 30001}},
		want: `v=0
o=- 4611731400430051336 2 IN IP4 203.0.113.1
s=-
t=0 0
a=group:BUNDLE 0
a=extmap-allow-mixed
a=msid-semantic: WMS
m=audio 30000 UDP/TLS/RTP/SAVPF 111 0 8 126
c=IN IP4 203.0.113.1
a=rtcp:30000 IN IP4 203.0.113.1
a=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08
a=setup:actpass
a=mid:0
a=sendrecv
a=msid:- 1f6b2c0e-5d2a-4c1e-9a0b-3c4d5e6f7a8b
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=rtcp-fb:111 transport-cc
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:126 telephone-event/8000
a=ssrc:1001 cname:Y2hyb21l
`,
	}, {
		name: "session and media level c= and direction", body: bodyLevels,
		anchors: []Anchor{{relay, 30000, 0}, {relay2, 30002, 30003}},
		want: `v=0
o=alice 2890844526 2890844526 IN IP4 203.0.113.1
s=-
c=IN IP4 203.0.113.1
t=0 0
a=sendonly
m=audio 30000 RTP/AVP 0 8 97
a=rtpmap:97 iLBC/8000
m=video 30002 RTP/AVP 31 32
c=IN IP4 198.51.100.9
a=recvonly
`,
	}, {
		name: "media-level c= added where the anchor differs", body: bodyAV,
		anchors: []Anchor{{relay, 30000, 0}, {relay2, 30002, 0}},
		want: `v=0
o=bob 2808844564 2808844564 IN IP4 203.0.113.1
s=-
c=IN IP4 203.0.113.1
t=0 0
m=audio 30000 RTP/AVP 0
a=rtcp:30001 IN IP4 203.0.113.1
m=video 30002 RTP/AVP 96
c=IN IP4 198.51.100.9
a=rtpmap:96 H264/90000
a=fmtp:96 profile-level-id=42e01f;packetization-mode=1
a=rtcp:30003
`,
	}, {
		name: "second stream refused", body: bodyAV,
		anchors: []Anchor{{relay, 30000, 0}, {}},
		want: `v=0
o=bob 2808844564 2808844564 IN IP4 203.0.113.1
s=-
c=IN IP4 203.0.113.1
t=0 0
m=audio 30000 RTP/AVP 0
a=rtcp:30001 IN IP4 203.0.113.1
m=video 0 RTP/AVP 96
a=rtpmap:96 H264/90000
a=fmtp:96 profile-level-id=42e01f;packetization-mode=1
`,
	}, {
		name: "first stream refused, its c= follows the session", body: bodyLevels,
		anchors: []Anchor{{}, {relay2, 30002, 0}},
		want: `v=0
o=alice 2890844526 2890844526 IN IP4 198.51.100.9
s=-
c=IN IP4 198.51.100.9
t=0 0
a=sendonly
m=audio 0 RTP/AVP 0 8 97
a=rtpmap:97 iLBC/8000
m=video 30002 RTP/AVP 31 32
c=IN IP4 198.51.100.9
a=recvonly
`,
	}, {
		name: "all refused without addresses: c= and o= kept", body: bodyLevels,
		anchors: []Anchor{{}, {}},
		want: `v=0
o=alice 2890844526 2890844526 IN IP4 192.0.2.10
s=-
c=IN IP4 192.0.2.10
t=0 0
a=sendonly
m=audio 0 RTP/AVP 0 8 97
a=rtpmap:97 iLBC/8000
m=video 0 RTP/AVP 31 32
c=IN IP4 192.0.2.20
a=recvonly
`,
	}, {
		name: "IPv6 offer, IPv4 anchor", body: bodyV6, anchors: []Anchor{{relay, 30000, 30001}},
		want: `v=0
o=- 7 7 IN IP4 203.0.113.1
s=-
t=0 0
m=audio 30000 RTP/AVP 9 13
c=IN IP4 203.0.113.1
a=rtcp:30001 IN IP4 203.0.113.1
a=ptime:30
`,
	}, {
		name: "hold kept with an unspecified anchor", body: bodyHold, anchors: []Anchor{{ip("0.0.0.0"), 30000, 0}},
		want: `v=0
o=- 100 101 IN IP4 0.0.0.0
s=-
c=IN IP4 0.0.0.0
t=0 0
m=audio 30000 RTP/AVP 18 101
a=rtpmap:101 telephone-event/8000
a=fmtp:18 annexb=no
a=sendonly
`,
	}, {
		name: "t38", body: bodyT38, anchors: []Anchor{{ip("::ffff:203.0.113.1"), 30000, 40000}},
		want: `v=0
o=- 1 2 IN IP4 203.0.113.1
s=-
c=IN IP4 203.0.113.1
t=0 0
m=image 30000 udptl t38
a=T38FaxVersion:0
a=T38MaxBitRate:14400
a=T38FaxRateManagement:transferredTCF
a=T38FaxMaxDatagram:400
a=T38FaxUdpEC:t38UDPRedundancy
`,
	}, {
		name: "rtcp-mux without a=rtcp, ICE at both levels", body: head + "a=ice-lite\na=ice-options:ice2\n" +
			"m=audio 4000 RTP/AVP 0\na=ice-ufrag:x\na=rtcp-mux\na=remote-candidates:1 192.0.2.1 4000\na=ICE-PWD:y\na=ice-pacing:50\na=ice-mismatch\n",
		anchors: []Anchor{{relay, 30000, 30001}},
		want: `v=0
o=- 1 1 IN IP4 203.0.113.1
s=-
c=IN IP4 203.0.113.1
t=0 0
m=audio 30000 RTP/AVP 0
a=rtcp:30000
a=rtcp-mux
`,
	}, {
		name: "odd layout: LF, blank lines, spacing, port count, two c=, two a=rtcp, i= before c=",
		body: "v=0\n\no=jo  5 6 IN IP4 192.0.2.1\ns=-\nt=0 0\nm=audio  4000/2  RTP/AVP  0  8\ni=voice\n" +
			"c=IN IP4 192.0.2.7\nc=IN IP4 192.0.2.8\nb=AS:64\na=rtcp:4001\na=rtcp:4009\na=x:\n\n",
		anchors: []Anchor{{relay, 30000, 30005}},
		want: `v=0
o=jo 5 6 IN IP4 203.0.113.1
s=-
t=0 0
m=audio  30000  RTP/AVP  0  8
i=voice
c=IN IP4 203.0.113.1
b=AS:64
a=rtcp:30005
a=x:
`,
	}, {
		name:    "c= inserted after i= when the section had none",
		body:    strings.Replace(head, "c=IN IP4 192.0.2.1\n", "", 1) + "m=audio 0 RTP/AVP 0\ni=x\nb=AS:1\n",
		anchors: []Anchor{{relay, 30000, 0}},
		want: `v=0
o=- 1 1 IN IP4 203.0.113.1
s=-
t=0 0
m=audio 30000 RTP/AVP 0
i=x
c=IN IP4 203.0.113.1
b=AS:1
`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Rewrite([]byte(tt.body), tt.anchors, tt.origin)
			if err != nil {
				t.Fatal(err)
			}
			if want := crlf(tt.want); string(got) != want {
				t.Errorf("Rewrite:\n%s\nwant:\n%s", got, want)
			}
			again, err := Rewrite([]byte(tt.body), tt.anchors, nil)
			if err != nil || tt.origin == nil && string(again) != string(got) {
				t.Errorf("not deterministic: %v\n%s", err, again)
			}
			if _, err := Parse(got); err != nil {
				t.Errorf("output does not parse: %v", err)
			}
		})
	}
}

// TestRewriteSRTPByteForByte: apart from o=, c=, the m= port and a=rtcp,
// an RTP/SAVP offer passes through untouched.
func TestRewriteSRTPByteForByte(t *testing.T) {
	in := crlf(bodySRTP)
	out, err := Rewrite([]byte(in), []Anchor{{relay, 30000, 30001}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	inL, outL := strings.Split(in, "\r\n"), strings.Split(string(out), "\r\n")
	if len(inL) != len(outL) {
		t.Fatalf("%d lines in, %d out", len(inL), len(outL))
	}
	for i := range inL {
		switch {
		case strings.HasPrefix(inL[i], "o="), strings.HasPrefix(inL[i], "c="),
			strings.HasPrefix(inL[i], "m="), strings.HasPrefix(inL[i], "a=rtcp:"):
			if inL[i][:2] != outL[i][:2] {
				t.Errorf("line %d: %q became %q", i+1, inL[i], outL[i])
			}
		case inL[i] != outL[i]:
			t.Errorf("line %d: %q became %q", i+1, inL[i], outL[i])
		}
	}
}

func TestRewriteErrors(t *testing.T) {
	body := []byte(crlf(bodyAV))
	tests := []struct {
		name    string
		anchors []Anchor
		want    string
	}{
		{"too few", []Anchor{{relay, 30000, 0}}, "1 anchors for 2 m= lines"},
		{"too many", []Anchor{{relay, 30000, 0}, {}, {}}, "3 anchors for 2 m= lines"},
		{"bad RTP port", []Anchor{{relay, 70000, 0}, {}}, "anchor 0 (m= line 1): bad RTP port 70000"},
		{"negative", []Anchor{{}, {relay, -1, 0}}, "anchor 1 (m= line 2): bad RTP port -1"},
		{"no address", []Anchor{{netip.Addr{}, 30000, 0}, {}}, "no address"},
		{"bad RTCP port", []Anchor{{relay, 30000, 65536}, {}}, "bad RTCP port"},
		{"no RTCP above 65535", []Anchor{{relay, 65535, 0}, {}}, "no RTCP port above"},
	}
	for _, tt := range tests {
		_, err := Rewrite(body, tt.anchors, nil)
		if !errors.Is(err, ErrAnchors) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
	// With rtcp-mux the RTCP port is the RTP port, so 65535 is fine.
	mux := head + "m=audio 4000 RTP/AVP 0\na=rtcp-mux\n"
	if _, err := Rewrite([]byte(mux), []Anchor{{relay, 65535, 0}}, nil); err != nil {
		t.Error(err)
	}
}
