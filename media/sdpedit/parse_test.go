package sdpedit

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

var ip = netip.MustParseAddr

func TestParseBodies(t *testing.T) {
	pcmu := Format{0, "PCMU", 8000, 1}
	pcma := Format{8, "PCMA", 8000, 1}
	dtmf := func(pt uint8) Format { return Format{pt, "TELEPHONE-EVENT", 8000, 1} }
	tests := []struct {
		name string
		body string
		want Session
	}{
		{"sipp", bodySIPp, Session{"user1", "53655765", 2353687637, []Media{{
			Kind: "audio", Port: 6000, Proto: "RTP/AVP", Addr: ip("10.0.0.10"),
			RTCPPort: 6001, RTCPAddr: ip("10.0.0.10"), Dir: SendRecv,
			Formats: []Format{pcmu, dtmf(101)}, Fmts: []string{"0", "101"}, PtimeMs: 20,
		}}}},
		{"baresip", bodyBaresip, Session{"-", "1833468236", 2870442493, []Media{{
			Kind: "audio", Port: 10014, Proto: "RTP/AVP", Addr: ip("192.168.1.20"),
			RTCPPort: 10015, RTCPAddr: ip("192.168.1.20"),
			Formats: []Format{{96, "OPUS", 48000, 2}, {9, "G722", 8000, 1}, pcmu, pcma, dtmf(101)},
			Fmts:    []string{"96", "9", "0", "8", "101"}, PtimeMs: 20,
		}}}},
		{"srtp", bodySRTP, Session{"-", "3842341234", 3842341234, []Media{{
			Kind: "audio", Port: 20000, Proto: "RTP/SAVP", Addr: ip("198.51.100.7"),
			RTCPPort: 20001, RTCPAddr: ip("198.51.100.7"), Secure: true,
			Formats: []Format{pcma, pcmu, {13, "CN", 8000, 1}, dtmf(101)},
			Fmts:    []string{"8", "0", "13", "101"},
		}}}},
		{"webrtc", bodyWebRTC, Session{"-", "4611731400430051336", 2, []Media{{
			Kind: "audio", Port: 54321, Proto: "UDP/TLS/RTP/SAVPF", Addr: ip("203.0.113.5"),
			RTCPPort: 9, RTCPAddr: ip("0.0.0.0"), RTCPMux: true, Secure: true,
			Formats: []Format{{111, "OPUS", 48000, 2}, pcmu, pcma, dtmf(126)},
			Fmts:    []string{"111", "0", "8", "126"},
		}}}},
		{"session and media level", bodyLevels, Session{"alice", "2890844526", 2890844526, []Media{{
			Kind: "audio", Port: 49170, Proto: "RTP/AVP", Addr: ip("192.0.2.10"),
			RTCPPort: 49171, RTCPAddr: ip("192.0.2.10"), Dir: SendOnly,
			Formats: []Format{pcmu, pcma, {97, "ILBC", 8000, 1}}, Fmts: []string{"0", "8", "97"},
		}, {
			Index: 1, Kind: "video", Port: 51372, Proto: "RTP/AVP", Addr: ip("192.0.2.20"),
			RTCPPort: 51373, RTCPAddr: ip("192.0.2.20"), Dir: RecvOnly,
			Formats: []Format{{31, "H261", 90000, 0}, {32, "MPV", 90000, 0}}, Fmts: []string{"31", "32"},
		}}}},
		{"a=rtcp with and without address", bodyAV, Session{"bob", "2808844564", 2808844564, []Media{{
			Kind: "audio", Port: 49174, Proto: "RTP/AVP", Addr: ip("192.0.2.40"),
			RTCPPort: 49175, RTCPAddr: ip("192.0.2.41"),
			Formats: []Format{pcmu}, Fmts: []string{"0"},
		}, {
			Index: 1, Kind: "video", Port: 49170, Proto: "RTP/AVP", Addr: ip("192.0.2.40"),
			RTCPPort: 49180, RTCPAddr: ip("192.0.2.40"),
			Formats: []Format{{96, "H264", 90000, 0}}, Fmts: []string{"96"},
		}}}},
		{"hold by 0.0.0.0", bodyHold, Session{"-", "100", 101, []Media{{
			Kind: "audio", Port: 7078, Proto: "RTP/AVP", Addr: ip("0.0.0.0"),
			RTCPPort: 7079, RTCPAddr: ip("0.0.0.0"), Dir: SendOnly, Hold: true,
			Formats: []Format{{18, "G729", 8000, 1}, dtmf(101)}, Fmts: []string{"18", "101"},
		}}}},
		{"ipv6", bodyV6, Session{"-", "7", 7, []Media{{
			Kind: "audio", Port: 5004, Proto: "RTP/AVP", Addr: ip("2001:db8::10"),
			RTCPPort: 5005, RTCPAddr: ip("2001:db8::11"),
			Formats: []Format{{9, "G722", 8000, 1}, {13, "CN", 8000, 1}}, Fmts: []string{"9", "13"}, PtimeMs: 30,
		}}}},
		{"t38", bodyT38, Session{"-", "1", 2, []Media{{
			Kind: "image", Port: 40000, Proto: "udptl", Addr: ip("192.0.2.30"), Fmts: []string{"t38"},
		}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, body := range []string{crlf(tt.body), tt.body} { // CRLF and bare LF
				got, err := Parse([]byte(body))
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(*got, tt.want) {
					t.Errorf("Parse:\n got %+v\nwant %+v", *got, tt.want)
				}
			}
		})
	}
}

// head is a valid session part to build small bodies on.
const head = "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\n"

func parseOne(t *testing.T, body string) Media {
	t.Helper()
	s, err := Parse([]byte(crlf(body)))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Media) != 1 {
		t.Fatalf("%d media", len(s.Media))
	}
	return s.Media[0]
}

func TestParseDirections(t *testing.T) {
	tests := []struct {
		sess, media string
		want        Direction
	}{
		{"", "", SendRecv},
		{"", "a=sendonly\n", SendOnly},
		{"", "a=recvonly\n", RecvOnly},
		{"", "a=inactive\n", Inactive},
		{"", "a=sendrecv\n", SendRecv},
		{"a=inactive\n", "", Inactive},
		{"a=sendonly\n", "a=recvonly\n", RecvOnly}, // media level wins
		{"a=recvonly\n", "a=sendrecv\n", SendRecv},
	}
	for _, tt := range tests {
		m := parseOne(t, head+tt.sess+"m=audio 4000 RTP/AVP 0\n"+tt.media)
		if m.Dir != tt.want {
			t.Errorf("session %q media %q: Dir %v, want %v", tt.sess, tt.media, m.Dir, tt.want)
		}
	}
}

func TestDirectionMethods(t *testing.T) {
	tests := []struct {
		d                  Direction
		name               string
		sends, receives    bool
		reverse, withoutRx Direction
	}{
		{SendRecv, "sendrecv", true, true, SendRecv, SendOnly},
		{SendOnly, "sendonly", true, false, RecvOnly, SendOnly},
		{RecvOnly, "recvonly", false, true, SendOnly, Inactive},
		{Inactive, "inactive", false, false, Inactive, Inactive},
	}
	for _, tt := range tests {
		if tt.d.String() != tt.name || tt.d.Sends() != tt.sends || tt.d.Receives() != tt.receives || tt.d.Reverse() != tt.reverse {
			t.Errorf("%v: got %q %v %v %v", tt.name, tt.d.String(), tt.d.Sends(), tt.d.Receives(), tt.d.Reverse())
		}
		m := Media{Dir: tt.d, Hold: true}
		if m.EffectiveDir() != tt.withoutRx {
			t.Errorf("%v held: EffectiveDir %v, want %v", tt.name, m.EffectiveDir(), tt.withoutRx)
		}
	}
	if Direction(9).String() != "Direction(invalid)" {
		t.Error(Direction(9).String())
	}
}

func TestParseHold(t *testing.T) {
	m := parseOne(t, strings.Replace(head, "c=IN IP4 192.0.2.1", "c=IN IP4 0.0.0.0", 1)+"m=audio 4000 RTP/AVP 0\n")
	if !m.Hold || m.Dir != SendRecv || m.EffectiveDir() != SendOnly {
		t.Errorf("hold by session c=: %+v", m)
	}
	m = parseOne(t, head+"m=audio 4000 RTP/AVP 0\nc=IN IP6 ::\n")
	if !m.Hold {
		t.Errorf("hold by c= ::: %+v", m)
	}
	m = parseOne(t, head+"m=audio 4000 RTP/AVP 0\n")
	if m.Hold || m.EffectiveDir() != SendRecv {
		t.Errorf("not held: %+v", m)
	}
}

func TestParseFormats(t *testing.T) {
	m := parseOne(t, head+"m=audio 4000 RTP/AVP 18 3 4 9 13 96 97 98\n"+
		"a=rtpmap:96 opus/48000/2\na=rtpmap:97 AMR-WB/16000\na=rtpmap:18 G729/8000\n"+
		"a=rtpmap:99 unused/1\na=rtpmap:96 second/1\na=ptime:30\n")
	want := []Format{{18, "G729", 8000, 1}, {3, "GSM", 8000, 1}, {4, "G723", 8000, 1},
		{9, "G722", 8000, 1}, {13, "CN", 8000, 1}, {96, "OPUS", 48000, 2},
		{97, "AMR-WB", 16000, 1}, {98, "", 0, 1}}
	if !reflect.DeepEqual(m.Formats, want) || m.PtimeMs != 30 {
		t.Errorf("got %+v ptime %d", m.Formats, m.PtimeMs)
	}
	if f, ok := m.FormatByPT(97); !ok || f.Name != "AMR-WB" {
		t.Errorf("FormatByPT(97) = %+v, %v", f, ok)
	}
	if _, ok := m.FormatByPT(0); ok {
		t.Error("FormatByPT(0) found")
	}
	v := parseOne(t, head+"m=video 4000 RTP/AVP 34 26 100\na=rtpmap:100 VP8/90000\n")
	want = []Format{{34, "H263", 90000, 0}, {26, "JPEG", 90000, 0}, {100, "VP8", 90000, 0}}
	if !reflect.DeepEqual(v.Formats, want) {
		t.Errorf("video: got %+v", v.Formats)
	}
}

func TestParsePtime(t *testing.T) {
	for v, want := range map[string]int{"20": 20, "20.0": 20, "12.5": 13, "x": 0, "-5": 0, "": 0, "1e9": 0} {
		if m := parseOne(t, head+"m=audio 4000 RTP/AVP 0\na=ptime:"+v+"\n"); m.PtimeMs != want {
			t.Errorf("a=ptime:%s: %d, want %d", v, m.PtimeMs, want)
		}
	}
}

func TestParseMisc(t *testing.T) {
	// Disabled stream without any c=, port count, a=crypto on RTP/AVP,
	// mixed-case attribute names, blank lines, no final newline.
	s, err := Parse([]byte("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n\r\n" +
		"m=audio 0 RTP/AVP 0\r\nm=audio 4000/2 RTP/AVP 0\r\nc=IN IP4 192.0.2.9/127\r\n" +
		"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\na=SendOnly\r\na=RTCP-MUX"))
	if err != nil {
		t.Fatal(err)
	}
	m0, m1 := s.Media[0], s.Media[1]
	if m0.Active() || m0.Addr.IsValid() || m0.RTCPPort != 0 {
		t.Errorf("disabled: %+v", m0)
	}
	if !m1.Active() || m1.Port != 4000 || m1.Addr != ip("192.0.2.9") || !m1.Secure || m1.Dir != SendOnly || !m1.RTCPMux || m1.RTCPPort != 4001 {
		t.Errorf("second: %+v", m1)
	}
}

func TestParseErrors(t *testing.T) {
	m := "m=audio 4000 RTP/AVP 0\n"
	tests := []struct {
		name, body string
		line       int
		want       string // substring of the message
	}{
		{"empty", "", 0, "empty"},
		{"blank", "\r\n \r\n", 0, "empty"},
		{"not a line", "v=0\nhello\n", 2, "line 2: not a <type>=<value> line"},
		{"upper type", "v=0\nO=x\n", 2, "not a <type>=<value>"},
		{"nul", head + "a=x\x00y\n" + m, 6, "NUL"},
		{"bad port", head + "m=audio 99999 RTP/AVP 0\n", 6, `line 6 (m= line 1): bad port "99999"`},
		{"bad port in second m=", head + m + "m=video x RTP/AVP 31\n", 7, `line 7 (m= line 2): bad port "x"`},
		{"bad port count", head + "m=audio 4000/0 RTP/AVP 0\n", 6, "bad port count"},
		{"no proto", head + "m=audio 4000\n", 6, "missing transport"},
		{"no formats", head + "m=audio 4000 RTP/AVP\n", 6, "no media formats"},
		{"bad payload type", head + "m=audio 4000 RTP/AVP 0 128\n", 6, `bad RTP payload type "128"`},
		{"no c= for active stream", strings.Replace(head, "c=IN IP4 192.0.2.1\n", "", 1) + m, 5, "(m= line 1): no c= line"},
		{"host name", head + m + "c=IN IP4 media.example.com\n", 7, `(in m= section 1): c= address "media.example.com" is not an IP address`},
		{"family mismatch", head + m + "c=IN IP4 2001:db8::1\n", 7, "does not match IP4"},
		{"zone", head + m + "c=IN IP6 fe80::1%eth0\n", 7, "not an IP address"},
		{"c= without address", head + m + "c=IN IP4\n", 7, "c= line needs"},
		{"two lines in one", head + m + "c=IN IP4 192.0.2.1 a=x\n", 7, "c= line needs"},
		{"v= and o= in one", "v=0 o=- 1 1 IN IP4 192.0.2.1\ns=-\nt=0 0\n", 1, `v= line must be "v=0"`},
		{"o= too long", "v=0\no=- 1 1 IN IP4 192.0.2.1 s=-\nt=0 0\n", 2, "o= line has more"},
		{"t= with more", head + m + "t=0 0 a=x\n", 7, "t= line needs"},
		{"bad a=rtcp", head + m + "a=rtcp:0\n", 7, "bad a=rtcp port"},
		{"bad a=rtcp fields", head + m + "a=rtcp:5 IN IP4\n", 7, "bad a=rtcp"},
		{"bad a=rtcp address", head + m + "a=rtcp:5 IN IP4 foo\n", 7, "a=rtcp address"},
		{"bad rtpmap", head + "m=audio 4000 RTP/AVP 96\na=rtpmap:96 opus\n", 7, "bad a=rtpmap encoding"},
		{"bad rtpmap clock", head + "m=audio 4000 RTP/AVP 96\na=rtpmap:96 opus/0\n", 7, "clock rate"},
		{"bad o= version", "v=0\no=- 1 99999999999999999999999 IN IP4 192.0.2.1\ns=-\nt=0 0\n", 2, "bad o= session version"},
		{"pion: v=1", "v=1\no=- 1 1 IN IP4 192.0.2.1\ns=-\nt=0 0\n", 1, "malformed v= line"},
		{"pion: order", "v=0\no=- 1 1 IN IP4 192.0.2.1\nc=IN IP4 192.0.2.1\ns=-\nt=0 0\n", 3, "malformed c= line"},
		{"pion: unknown type", head + m + "x=1\n", 7, "malformed x= line"},
		{"pion: bad bandwidth", head + m + "a=sendrecv\nb=AS:x\n", 8, "malformed b= line"},
		{"pion: m= before t=", "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\n" + m, 5, "malformed m= line"},
		{"pion: no o=", "v=0\ns=-\n", 2, "malformed s= line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(crlf(tt.body)))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if e.Line != tt.line || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "sdp: ") {
				t.Errorf("err = %q (line %d), want line %d and %q", err, e.Line, tt.line, tt.want)
			}
			if _, err := Rewrite([]byte(crlf(tt.body)), nil, nil); err == nil {
				t.Error("Rewrite accepted what Parse refused")
			}
		})
	}
	if _, err := Parse(nil); !errors.Is(err, ErrEmpty) {
		t.Errorf("nil: %v", err)
	}
	if _, err := Parse(make([]byte, MaxSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("huge: %v", err)
	}
}
