package itest

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rawSIP sends one datagram to addr and returns the status line of the
// first response, or "" when none arrives within two seconds.
func rawSIP(t *testing.T, addr, msg string) string {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	port := conn.LocalAddr().(*net.UDPAddr).Port
	msg = strings.ReplaceAll(msg, "PORT", strconv.Itoa(port))
	msg = strings.ReplaceAll(msg, "\n", "\r\n")
	if _, err := conn.WriteTo([]byte(msg), raddr); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, _, err := conn.ReadFrom(buf)
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(string(buf[:n]), "\r\n")
	return line
}

// Bad input gets the right SIP answer, with a reason that says what is
// wrong; the node keeps serving.
func TestSIPBadInput(t *testing.T) {
	c := StartCluster(t, 1, Options{})
	n := c.Node(0)
	addr, domain := n.SIPAddr(), n.Config().Domain
	req := func(startLine string, headers ...string) string {
		base := map[string]string{
			"Via":          "SIP/2.0/UDP 127.0.0.1:PORT;branch=z9hG4bK-" + strconv.Itoa(int(time.Now().UnixNano()%1e9)),
			"Max-Forwards": "70",
			"To":           "<sip:alice@" + domain + ">",
			"From":         "<sip:alice@" + domain + ">;tag=1",
			"Call-ID":      "c-" + strconv.Itoa(int(time.Now().UnixNano()%1e9)) + "@test",
			"CSeq":         "1 " + strings.Fields(startLine)[0],
		}
		var b strings.Builder
		b.WriteString(startLine + "\n")
		order := []string{"Via", "Max-Forwards", "To", "From", "Call-ID", "CSeq"}
		extra := map[string]bool{}
		for _, h := range headers {
			name, _, _ := strings.Cut(h, ":")
			extra[name] = true
		}
		for _, name := range order {
			if v, ok := base[name]; ok && !extra[name] && !extra["-"+name] {
				b.WriteString(name + ": " + v + "\n")
			}
		}
		for _, h := range headers {
			if !strings.HasPrefix(h, "-") {
				b.WriteString(h + "\n")
			}
		}
		b.WriteString("Content-Length: 0\n\n")
		return b.String()
	}
	cases := []struct {
		name, msg, want string
	}{
		{"OPTIONS", req("OPTIONS sip:" + domain + " SIP/2.0"), "SIP/2.0 200"},
		{"unknown method", req("FOO sip:" + domain + " SIP/2.0"), "SIP/2.0 405"},
		{"malformed To", req("REGISTER sip:"+domain+" SIP/2.0", "To: <<<garbage"), "SIP/2.0 400 Malformed To header"},
		{"missing To", req("REGISTER sip:"+domain+" SIP/2.0", "-To:"), "SIP/2.0 400 Missing To header"},
		{"CSeq method mismatch", req("REGISTER sip:"+domain+" SIP/2.0", "CSeq: 1 INVITE"), "SIP/2.0 400 CSeq method mismatch"},
		{"unsupported scheme", req("REGISTER tel:+15551234 SIP/2.0"), "SIP/2.0 416"},
		{"unknown Require", req("REGISTER sip:"+domain+" SIP/2.0", "Require: teleportation"), "SIP/2.0 420"},
		{"wrong version", req("REGISTER sip:" + domain + " SIP/3.0"), "SIP/2.0 505"},
		{"other domain", req("REGISTER sip:example.org SIP/2.0"), "SIP/2.0 403"},
		{"unauthenticated REGISTER", req("REGISTER sip:"+domain+" SIP/2.0", "Contact: <sip:alice@127.0.0.1:PORT>"), "SIP/2.0 401"},
		{"bad credentials header", req("REGISTER sip:"+domain+" SIP/2.0", "Contact: <sip:alice@127.0.0.1:PORT>", `Authorization: Digest username="alice"`), "SIP/2.0 400"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := rawSIP(t, addr, tc.msg)
			if !strings.HasPrefix(got, tc.want) {
				t.Fatalf("response %q, want %q…\nrequest:\n%s", got, tc.want, tc.msg)
			}
		})
	}
	// A datagram that is no SIP message gets no answer (there is nobody to
	// address one to) and is counted; a keep-alive is neither.
	const unparsable = "callmesh_sip_unparsable_datagrams_total"
	before := counter(t, n.Registry(), unparsable, nil)
	for _, junk := range []string{"hello\n", "\x00\x01\x02 binary", "INVITE\n\n", "\n\n"} {
		if got := rawSIP(t, addr, junk); got != "" {
			t.Errorf("%q answered with %q", junk, got)
		}
	}
	if got := counter(t, n.Registry(), unparsable, nil) - before; got != 3 {
		t.Errorf("%s rose by %v, want 3 (the keep-alive is not counted)", unparsable, got)
	}
	// Still serving.
	if got := rawSIP(t, addr, req("OPTIONS sip:"+domain+" SIP/2.0")); !strings.HasPrefix(got, "SIP/2.0 200") {
		t.Fatalf("after bad input, OPTIONS got %q", got)
	}
}
