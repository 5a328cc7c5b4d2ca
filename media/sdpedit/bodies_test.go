package sdpedit

import "strings"

// crlf turns the LF-separated bodies below into what arrives on the wire.
func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// Realistic bodies, shared by the table tests, the fuzz seed corpus and the
// benchmark. Lines are LF-separated here; crlf converts them.
const (
	// SIPp's uac scenario with a DTMF payload (RFC 4733) added.
	bodySIPp = `v=0
o=user1 53655765 2353687637 IN IP4 10.0.0.10
s=-
c=IN IP4 10.0.0.10
t=0 0
m=audio 6000 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
`

	// baresip 1.0 (libre's sdp_encode): session c=, a=tool, per-format
	// rtpmap, direction, then a=label, a=rtcp-rsize, a=ssrc, a=ptime.
	bodyBaresip = `v=0
o=- 1833468236 2870442493 IN IP4 192.168.1.20
s=-
c=IN IP4 192.168.1.20
t=0 0
a=tool:baresip 1.0.0
m=audio 10014 RTP/AVP 96 9 0 8 101
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
`

	// SDES-SRTP (RFC 4568) with CN (RFC 3389) and a=rtcp with an address.
	bodySRTP = `v=0
o=- 3842341234 3842341234 IN IP4 198.51.100.7
s=SIP Call
c=IN IP4 198.51.100.7
t=0 0
m=audio 20000 RTP/SAVP 8 0 13 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32
a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20|1:32
a=rtcp:20001 IN IP4 198.51.100.7
a=sendrecv
`

	// A browser-style offer: ICE candidates, DTLS-SRTP, rtcp-mux with the
	// RFC 5761 §5.1.3 fallback a=rtcp:9.
	bodyWebRTC = `v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0
a=extmap-allow-mixed
a=msid-semantic: WMS
a=ice-lite
m=audio 54321 UDP/TLS/RTP/SAVPF 111 0 8 126
c=IN IP4 203.0.113.5
a=rtcp:9 IN IP4 0.0.0.0
a=candidate:1 1 udp 2122260223 192.168.1.5 54321 typ host generation 0 network-id 1
a=candidate:2 1 udp 1686052607 203.0.113.5 54321 typ srflx raddr 192.168.1.5 rport 54321 generation 0
a=end-of-candidates
a=ice-ufrag:Fh3k
a=ice-pwd:4vL8e3h3wq2p7kXyZ0aBcDeF
a=ice-options:trickle
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
`

	// Session-level c= and direction, overridden by the video section
	// (RFC 8866 §5.7, RFC 3264 §5.1).
	bodyLevels = `v=0
o=alice 2890844526 2890844526 IN IP4 192.0.2.10
s=-
c=IN IP4 192.0.2.10
t=0 0
a=sendonly
m=audio 49170 RTP/AVP 0 8 97
a=rtpmap:97 iLBC/8000
m=video 51372 RTP/AVP 31 32
c=IN IP4 192.0.2.20
a=recvonly
`

	// Audio and video, both with a=rtcp (the video one without address).
	bodyAV = `v=0
o=bob 2808844564 2808844564 IN IP4 192.0.2.40
s=-
c=IN IP4 192.0.2.40
t=0 0
m=audio 49174 RTP/AVP 0
a=rtcp:49175 IN IP4 192.0.2.41
m=video 49170 RTP/AVP 96
a=rtpmap:96 H264/90000
a=fmtp:96 profile-level-id=42e01f;packetization-mode=1
a=rtcp:49180
`

	// RFC 2543 hold: c= 0.0.0.0, with the RFC 3264 §8.4 a=sendonly.
	bodyHold = `v=0
o=- 100 101 IN IP4 192.0.2.50
s=-
c=IN IP4 0.0.0.0
t=0 0
m=audio 7078 RTP/AVP 18 101
a=rtpmap:101 telephone-event/8000
a=fmtp:18 annexb=no
a=sendonly
`

	// IPv6 everywhere, media-level c= only.
	bodyV6 = `v=0
o=- 7 7 IN IP6 2001:db8::10
s=-
t=0 0
m=audio 5004 RTP/AVP 9 13
c=IN IP6 2001:db8::10
a=rtcp:5005 IN IP6 2001:db8::11
a=ptime:30
`

	// A T.38 fax re-offer (ITU-T T.38 Annex D) that pion/sdp cannot read
	// by itself.
	bodyT38 = `v=0
o=- 1 2 IN IP4 192.0.2.30
s=-
c=IN IP4 192.0.2.30
t=0 0
m=image 40000 udptl t38
a=T38FaxVersion:0
a=T38MaxBitRate:14400
a=T38FaxRateManagement:transferredTCF
a=T38FaxMaxDatagram:400
a=T38FaxUdpEC:t38UDPRedundancy
`
)

// corpus is every body above, for the fuzz seeds.
var corpus = []string{bodySIPp, bodyBaresip, bodySRTP, bodyWebRTC, bodyLevels, bodyAV, bodyHold, bodyV6, bodyT38}
