//go:build linux

package load

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// rtpengine, the reference media relay (Sipwise; Debian's rtpengine-daemon),
// driven over its NG control protocol: each message is a cookie, a space
// and a bencoded dictionary, over UDP; the reply repeats the cookie.

// findRTPEngine returns the rtpengine binary, or "" when it is not
// installed.
func findRTPEngine() string {
	if p, err := exec.LookPath("rtpengine"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/bin/rtpengine", "/usr/sbin/rtpengine"} {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// rtpengine is a running daemon in its own process group.
type rtpengine struct {
	bin     string
	version string
	ng      *ngClient
	pgid    int
	logFile string
	exited  chan struct{}
	calls   []string // call-ids of the open calls
}

// startRTPEngine runs rtpengine in the foreground with userspace
// forwarding only (--table=-1: no kernel module), on 127.0.0.1, taking
// RTP ports in [portMin, portMax], without reading the system's config file
// (/etc/rtpengine/rtpengine.conf) so that only these options apply. Calls
// are freed at once when deleted (--delete-delay=0), so their ports can be
// taken again by the next step. Everything else is left at its defaults,
// among them one worker thread per CPU. The test's cleanup stops it.
func startRTPEngine(t *testing.T, bin string, portMin, portMax int) (*rtpengine, error) {
	t.Helper()
	dir := t.TempDir()
	port := freeUDPPort(t)
	e := &rtpengine{bin: bin, logFile: filepath.Join(dir, "rtpengine.log"), exited: make(chan struct{})}
	if out, err := exec.Command(bin, "--version").CombinedOutput(); err == nil {
		// "Version: 10.5.3.5-1+deb12u1"
		if _, v, ok := strings.Cut(strings.TrimSpace(string(out)), "Version: "); ok {
			e.version = strings.Fields(v)[0]
		}
	}
	logf, err := os.Create(e.logFile)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	ngAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cmd := exec.Command(bin,
		"--config-file=none", "--table=-1", "--interface=127.0.0.1",
		"--listen-ng="+ngAddr, "--foreground", "--log-stderr", "--log-level=4",
		"--port-min="+strconv.Itoa(portMin), "--port-max="+strconv.Itoa(portMax),
		"--delete-delay=0")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	e.pgid = cmd.Process.Pid
	go func() { _ = cmd.Wait(); close(e.exited) }()
	t.Cleanup(e.stop)
	e.ng, err = newNGClient(ngAddr)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-e.exited:
			return nil, fmt.Errorf("rtpengine exited at start:\n%s", e.logTail())
		default:
		}
		r, err := e.ng.do(map[string]any{"command": "ping"}, 200*time.Millisecond, 1)
		if err == nil && r["result"] == "pong" {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("rtpengine did not answer ping on %s: %v\n%s", ngAddr, err, e.logTail())
		}
	}
	return e, nil
}

// stop ends rtpengine's process group: SIGTERM, then SIGKILL.
func (e *rtpengine) stop() {
	_ = syscall.Kill(-e.pgid, syscall.SIGTERM)
	select {
	case <-e.exited:
	case <-time.After(10 * time.Second):
	}
	_ = syscall.Kill(-e.pgid, syscall.SIGKILL)
	<-e.exited
	e.ng.close()
}

func (e *rtpengine) cpu() time.Duration { return groupCPU(e.pgid) }

func (e *rtpengine) logTail() string {
	data, _ := os.ReadFile(e.logFile)
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}

// rtpengineSetupWorkers is how many NG requests are in flight at once
// while calls are set up.
const rtpengineSetupWorkers = 8

// setup creates one call per call of g: an offer with A's SDP (rtpengine
// answers with the SDP for B, whose port is where B must send) and an
// answer with B's SDP (whose rewritten port is where A must send).
func (e *rtpengine) setup(step int, g *generator) error {
	ids := make([]string, g.calls)
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range rtpengineSetupWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c := int(next.Add(1)) - 1
				if c >= g.calls {
					return
				}
				id := fmt.Sprintf("load-%d-%d", step, c)
				err := e.setupCall(id, g, c)
				mu.Lock()
				if err == nil {
					ids[c] = id
				} else if firstErr == nil {
					firstErr = fmt.Errorf("call %d: %w", c, err)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != "" {
			e.calls = append(e.calls, id)
		}
	}
	return firstErr
}

func (e *rtpengine) setupCall(id string, g *generator, c int) error {
	a, b := g.addr(2*c), g.addr(2*c+1)
	r, err := e.ng.do(map[string]any{
		"command": "offer", "call-id": id, "from-tag": "a-" + id,
		"sdp": audioSDP(a, uint64(c)), "replace": []any{"origin", "session-connection"}, "ICE": "remove",
	}, time.Second, 3)
	if err != nil {
		return fmt.Errorf("offer: %w", err)
	}
	forB, err := sdpAudio(r)
	if err != nil {
		return fmt.Errorf("offer: %w", err)
	}
	r, err = e.ng.do(map[string]any{
		"command": "answer", "call-id": id, "from-tag": "a-" + id, "to-tag": "b-" + id,
		"sdp": audioSDP(b, uint64(c)), "replace": []any{"origin", "session-connection"}, "ICE": "remove",
	}, time.Second, 3)
	if err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	forA, err := sdpAudio(r)
	if err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	if err := g.connect(2*c, forA); err != nil {
		return err
	}
	return g.connect(2*c+1, forB)
}

// teardown deletes every open call.
func (e *rtpengine) teardown() error {
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	ids := make(chan string)
	for range rtpengineSetupWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				_, err := e.ng.do(map[string]any{"command": "delete", "call-id": id, "from-tag": "a-" + id}, time.Second, 3)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("delete %s: %w", id, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, id := range e.calls {
		ids <- id
	}
	close(ids)
	wg.Wait()
	e.calls = nil
	return firstErr
}

// audioSDP is the SDP of an endpoint receiving 20 ms PCMU at addr.
func audioSDP(addr netip.AddrPort, session uint64) string {
	ip := addr.Addr().String()
	return "v=0\r\n" +
		"o=- " + strconv.FormatUint(session+1, 10) + " 1 IN IP4 " + ip + "\r\n" +
		"s=-\r\n" +
		"c=IN IP4 " + ip + "\r\n" +
		"t=0 0\r\n" +
		"m=audio " + strconv.Itoa(int(addr.Port())) + " RTP/AVP 0\r\n" +
		"a=rtpmap:0 PCMU/8000\r\n" +
		"a=ptime:20\r\n" +
		"a=sendrecv\r\n"
}

// sdpAudio returns the address of the first audio stream of the SDP in an
// NG reply: the m= port, at the media-level c= address or else the
// session-level one.
func sdpAudio(reply map[string]any) (netip.AddrPort, error) {
	sdp, _ := reply["sdp"].(string)
	if sdp == "" {
		return netip.AddrPort{}, fmt.Errorf("reply without SDP: %v", reply)
	}
	var session, media netip.Addr
	port := -1
	done := false
	for _, line := range strings.Split(sdp, "\n") {
		line = strings.TrimRight(line, "\r")
		if done {
			break
		}
		switch {
		case strings.HasPrefix(line, "c="):
			f := strings.Fields(line[2:])
			if len(f) < 3 {
				continue
			}
			a, err := netip.ParseAddr(strings.SplitN(f[2], "/", 2)[0])
			if err != nil {
				return netip.AddrPort{}, fmt.Errorf("SDP %q: %v", line, err)
			}
			if port < 0 {
				session = a
			} else if !media.IsValid() {
				media = a
			}
		case strings.HasPrefix(line, "m="):
			if port >= 0 {
				done = true // only the first audio stream counts
				continue
			}
			f := strings.Fields(line[2:])
			if len(f) < 2 || f[0] != "audio" {
				continue
			}
			p, err := strconv.Atoi(strings.SplitN(f[1], "/", 2)[0])
			if err != nil || p <= 0 || p > 65535 {
				return netip.AddrPort{}, fmt.Errorf("SDP %q: bad port", line)
			}
			port = p
		}
	}
	addr := media
	if !addr.IsValid() {
		addr = session
	}
	if port < 0 || !addr.IsValid() {
		return netip.AddrPort{}, fmt.Errorf("no audio stream with an address in SDP:\n%s", sdp)
	}
	return netip.AddrPortFrom(addr, uint16(port)), nil
}

// ngClient speaks the NG protocol to one daemon. Requests may be made
// from many goroutines; each takes a socket from a pool.
type ngClient struct {
	addr  *net.UDPAddr
	next  atomic.Uint64
	mu    sync.Mutex
	conns []*net.UDPConn
	all   []*net.UDPConn
}

func newNGClient(addr string) (*ngClient, error) {
	a, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	return &ngClient{addr: a}, nil
}

func (c *ngClient) conn() (*net.UDPConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.conns); n > 0 {
		conn := c.conns[n-1]
		c.conns = c.conns[:n-1]
		return conn, nil
	}
	conn, err := net.DialUDP("udp", nil, c.addr)
	if err != nil {
		return nil, err
	}
	c.all = append(c.all, conn)
	return conn, nil
}

func (c *ngClient) put(conn *net.UDPConn) {
	c.mu.Lock()
	c.conns = append(c.conns, conn)
	c.mu.Unlock()
}

func (c *ngClient) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.all {
		conn.Close()
	}
	c.all, c.conns = nil, nil
}

// do sends msg and returns the reply's dictionary, trying up to tries
// times, waiting timeout for each reply. A reply with "result": "error"
// is an error.
func (c *ngClient) do(msg map[string]any, timeout time.Duration, tries int) (map[string]any, error) {
	conn, err := c.conn()
	if err != nil {
		return nil, err
	}
	defer c.put(conn)
	body, err := bencode(msg)
	if err != nil {
		return nil, err
	}
	cookie := strconv.Itoa(os.Getpid()) + "_" + strconv.FormatUint(c.next.Add(1), 10)
	req := append([]byte(cookie+" "), body...)
	buf := make([]byte, 65536)
	err = errors.New("no reply")
	for range tries {
		if _, err = conn.Write(req); err != nil {
			continue
		}
		_ = conn.SetReadDeadline(time.Now().Add(timeout))
		for {
			n, rerr := conn.Read(buf)
			if rerr != nil {
				err = rerr
				break
			}
			got, rest, ok := bytes.Cut(buf[:n], []byte(" "))
			if !ok || string(got) != cookie {
				continue // the late reply to an earlier try
			}
			v, derr := bdecode(rest)
			if derr != nil {
				return nil, fmt.Errorf("reply %q: %w", rest, derr)
			}
			d, isDict := v.(map[string]any)
			if !isDict {
				return nil, fmt.Errorf("reply %q: not a dictionary", rest)
			}
			if d["result"] == "error" {
				return nil, fmt.Errorf("%v: %v", msg["command"], d["error-reason"])
			}
			return d, nil
		}
	}
	return nil, err
}

// bencode encodes v: strings and byte slices, integers, lists ([]any,
// []string) and dictionaries (map[string]any, keys in sorted order).
func bencode(v any) ([]byte, error) { return appendBencode(nil, v) }

func appendBencode(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case string:
		b = strconv.AppendInt(b, int64(len(v)), 10)
		b = append(b, ':')
		return append(b, v...), nil
	case []byte:
		b = strconv.AppendInt(b, int64(len(v)), 10)
		b = append(b, ':')
		return append(b, v...), nil
	case int:
		return appendBencodeInt(b, int64(v)), nil
	case int64:
		return appendBencodeInt(b, v), nil
	case int32:
		return appendBencodeInt(b, int64(v)), nil
	case uint16:
		return appendBencodeInt(b, int64(v)), nil
	case []string:
		b = append(b, 'l')
		for _, s := range v {
			b, _ = appendBencode(b, s)
		}
		return append(b, 'e'), nil
	case []any:
		b = append(b, 'l')
		for _, x := range v {
			var err error
			if b, err = appendBencode(b, x); err != nil {
				return nil, err
			}
		}
		return append(b, 'e'), nil
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, 'd')
		for _, k := range keys {
			b, _ = appendBencode(b, k)
			var err error
			if b, err = appendBencode(b, v[k]); err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
		}
		return append(b, 'e'), nil
	}
	return nil, fmt.Errorf("bencode: cannot encode %T", v)
}

func appendBencodeInt(b []byte, n int64) []byte {
	b = append(b, 'i')
	b = strconv.AppendInt(b, n, 10)
	return append(b, 'e')
}

// bdecode decodes one bencoded value that must fill b: strings come back
// as string, integers as int64, lists as []any, dictionaries as
// map[string]any.
func bdecode(b []byte) (any, error) {
	v, rest, err := bdecodeValue(b, 0)
	if err != nil {
		return nil, err
	}
	if len(rest) > 0 {
		return nil, fmt.Errorf("bencode: %d bytes after the value", len(rest))
	}
	return v, nil
}

// bdecodeMaxDepth bounds nesting, so hostile input cannot exhaust the stack.
const bdecodeMaxDepth = 64

func bdecodeValue(b []byte, depth int) (any, []byte, error) {
	if len(b) == 0 {
		return nil, nil, errors.New("bencode: unexpected end")
	}
	if depth > bdecodeMaxDepth {
		return nil, nil, errors.New("bencode: nested too deep")
	}
	switch c := b[0]; {
	case c == 'i':
		end := bytes.IndexByte(b, 'e')
		if end < 0 {
			return nil, nil, errors.New("bencode: unterminated integer")
		}
		digits := string(b[1:end])
		if digits == "" || digits == "-" || digits == "-0" ||
			(len(digits) > 1 && digits[0] == '0') || (len(digits) > 2 && digits[0] == '-' && digits[1] == '0') {
			return nil, nil, fmt.Errorf("bencode: bad integer %q", digits)
		}
		n, err := strconv.ParseInt(digits, 10, 64)
		if err != nil {
			return nil, nil, fmt.Errorf("bencode: bad integer %q", digits)
		}
		return n, b[end+1:], nil
	case c >= '0' && c <= '9':
		colon := bytes.IndexByte(b, ':')
		if colon < 0 {
			return nil, nil, errors.New("bencode: string without length")
		}
		ls := string(b[:colon])
		if len(ls) > 1 && ls[0] == '0' {
			return nil, nil, fmt.Errorf("bencode: bad string length %q", ls)
		}
		n, err := strconv.Atoi(ls)
		if err != nil {
			return nil, nil, fmt.Errorf("bencode: bad string length %q", ls)
		}
		rest := b[colon+1:]
		if n > len(rest) {
			return nil, nil, fmt.Errorf("bencode: string of %d bytes, %d left", n, len(rest))
		}
		return string(rest[:n]), rest[n:], nil
	case c == 'l':
		list := []any{}
		rest := b[1:]
		for {
			if len(rest) == 0 {
				return nil, nil, errors.New("bencode: unterminated list")
			}
			if rest[0] == 'e' {
				return list, rest[1:], nil
			}
			v, r, err := bdecodeValue(rest, depth+1)
			if err != nil {
				return nil, nil, err
			}
			list, rest = append(list, v), r
		}
	case c == 'd':
		dict := map[string]any{}
		rest := b[1:]
		for {
			if len(rest) == 0 {
				return nil, nil, errors.New("bencode: unterminated dictionary")
			}
			if rest[0] == 'e' {
				return dict, rest[1:], nil
			}
			k, r, err := bdecodeValue(rest, depth+1)
			if err != nil {
				return nil, nil, err
			}
			key, isString := k.(string)
			if !isString {
				return nil, nil, fmt.Errorf("bencode: dictionary key %v is not a string", k)
			}
			v, r, err := bdecodeValue(r, depth+1)
			if err != nil {
				return nil, nil, fmt.Errorf("bencode: %s: %w", key, err)
			}
			dict[key], rest = v, r
		}
	}
	return nil, nil, fmt.Errorf("bencode: unexpected %q", b[0])
}

// TestBencode checks the NG protocol's encoding; it runs always.
func TestBencode(t *testing.T) {
	enc := []struct {
		v    any
		want string
	}{
		{"", "0:"},
		{"offer", "5:offer"},
		{[]byte{0, 'e'}, "2:\x00e"},
		{0, "i0e"},
		{-42, "i-42e"},
		{int64(1) << 40, "i1099511627776e"},
		{[]any{}, "le"},
		{[]any{"a", 1, []any{"b"}}, "l1:ai1el1:bee"},
		{[]string{"origin", "session-connection"}, "l6:origin18:session-connectione"},
		{map[string]any{}, "de"},
		// keys sorted as raw strings
		{map[string]any{"sdp": "v=0", "command": "offer", "call-id": "x"}, "d7:call-id1:x7:command5:offer3:sdp3:v=0e"},
		{map[string]any{"d": map[string]any{"l": []any{}}}, "d1:dd1:lleee"},
	}
	for _, c := range enc {
		got, err := bencode(c.v)
		if err != nil || string(got) != c.want {
			t.Errorf("bencode(%#v) = %q, %v; want %q", c.v, got, err, c.want)
		}
	}
	if _, err := bencode(map[string]any{"x": 1.5}); err == nil {
		t.Error("bencode(float) did not fail")
	}

	// Round trip: what is encoded decodes to the same value, with
	// integers as int64 and strings as string.
	in := map[string]any{
		"result": "ok", "sdp": "v=0\r\nm=audio 30000 RTP/AVP 0\r\n", "n": int64(-7),
		"flags": []any{"a", int64(0), map[string]any{"k": ""}}, "empty": map[string]any{},
	}
	b, err := bencode(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := bdecode(b)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(out) != fmt.Sprint(in) {
		t.Errorf("round trip: got %v, want %v", out, in)
	}

	// A reply as rtpengine sends it (its keys are not sorted).
	v, err := bdecode([]byte("d6:result2:ok3:sdp4:v=0\n8:warningslee"))
	if err != nil {
		t.Fatal(err)
	}
	d := v.(map[string]any)
	if d["result"] != "ok" || d["sdp"] != "v=0\n" || len(d["warnings"].([]any)) != 0 {
		t.Errorf("decoded %v", d)
	}

	for _, bad := range []string{
		"", "i", "ie", "i-e", "i-0e", "i03e", "i1x2e", "i99999999999999999999e",
		"5:abc", "01:a", "x", "3", "l", "li1e", "d", "d1:a", "di1ei2ee", "d1:ai1e",
		"i1ei2e", "0:x", strings.Repeat("l", 100) + strings.Repeat("e", 100),
	} {
		if v, err := bdecode([]byte(bad)); err == nil {
			t.Errorf("bdecode(%q) = %#v, want an error", bad, v)
		}
	}
}

// TestSDPAudio checks the reading of rtpengine's rewritten SDP.
func TestSDPAudio(t *testing.T) {
	sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio 30004 RTP/AVP 0\r\na=rtcp:30005\r\nm=audio 30008 RTP/AVP 0\r\nc=IN IP4 127.0.0.9\r\n"
	got, err := sdpAudio(map[string]any{"sdp": sdp})
	if want := netip.MustParseAddrPort("127.0.0.1:30004"); err != nil || got != want {
		t.Errorf("session-level address: got %v, %v; want %v", got, err, want)
	}
	sdp = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 30010 RTP/AVP 0\r\nc=IN IP4 127.0.0.2\r\n"
	got, err = sdpAudio(map[string]any{"sdp": sdp})
	if want := netip.MustParseAddrPort("127.0.0.2:30010"); err != nil || got != want {
		t.Errorf("media-level address: got %v, %v; want %v", got, err, want)
	}
	for _, bad := range []string{"", "v=0\r\nc=IN IP4 127.0.0.1\r\n", "m=audio 0x RTP/AVP 0\r\nc=IN IP4 127.0.0.1\r\n", "m=audio 5000 RTP/AVP 0\r\n"} {
		if got, err := sdpAudio(map[string]any{"sdp": bad}); err == nil {
			t.Errorf("sdpAudio(%q) = %v, want an error", bad, got)
		}
	}
}
