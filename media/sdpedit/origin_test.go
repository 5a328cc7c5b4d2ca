package sdpedit

import (
	"net/netip"
	"strings"
	"sync"
	"testing"
)

// originOf rewrites body through o and returns the parsed o= fields.
func originOf(t *testing.T, o *Origin, body string, anchors ...Anchor) *Session {
	t.Helper()
	out, err := Rewrite([]byte(crlf(body)), anchors, o)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestOriginReoffers follows RFC 3264 §8: a re-offer that changes nothing
// keeps the version, one that changes something bumps it by exactly one; the
// username and session id never change.
func TestOriginReoffers(t *testing.T) {
	o := NewOrigin("callmesh", 4242, relay)
	a := Anchor{relay, 30000, 30001}
	hold := strings.Replace(bodySIPp, "a=ptime:20\n", "a=ptime:20\na=sendonly\n", 1)
	steps := []struct {
		name    string
		body    string
		anchor  Anchor
		version uint64
	}{
		{"initial offer", bodySIPp, a, 4242},
		{"session refresh, same body", bodySIPp, a, 4242},
		{"peer's o= version moved, nothing else", strings.Replace(bodySIPp, "2353687637", "2353687638", 1), a, 4242},
		{"hold: a=sendonly", hold, a, 4243},
		{"hold again", hold, a, 4243},
		{"resume", bodySIPp, a, 4244},
		{"new relay port", bodySIPp, Anchor{relay, 30010, 30011}, 4245},
		{"peer moved, relay did not", strings.ReplaceAll(bodySIPp, "10.0.0.10", "10.0.0.99"), Anchor{relay, 30010, 30011}, 4245},
	}
	for _, st := range steps {
		s := originOf(t, o, st.body, st.anchor)
		if s.OriginUser != "callmesh" || s.OriginSessID != "4242" || s.OriginVersion != st.version {
			t.Errorf("%s: o= %s %s %d, want callmesh 4242 %d", st.name, s.OriginUser, s.OriginSessID, s.OriginVersion, st.version)
		}
		if o.Version() != st.version {
			t.Errorf("%s: Version() = %d", st.name, o.Version())
		}
	}
	if o.SessionID() != 4242 {
		t.Error(o.SessionID())
	}
}

func TestOriginFields(t *testing.T) {
	o := NewOrigin("bad user", 1<<63+5, netip.Addr{})
	out, err := Rewrite([]byte(bodyV6), []Anchor{{relay6, 30000, 0}}, o)
	if err != nil {
		t.Fatal(err)
	}
	if want := "o=- 9223372036854775813 5 IN IP6 2001:db8::1\r\n"; !strings.Contains(string(out), want) {
		t.Errorf("got\n%s\nwant %q", out, want)
	}
	// An origin address of its own wins over the anchor's.
	o = NewOrigin("", 9, ip("::ffff:192.0.2.200"))
	out, err = Rewrite([]byte(bodyV6), []Anchor{{relay6, 30000, 0}}, o)
	if err != nil {
		t.Fatal(err)
	}
	if want := "\r\no=- 9 9 IN IP4 192.0.2.200\r\ns=-\r\n"; !strings.Contains(string(out), want) {
		t.Errorf("got\n%s\nwant %q", out, want)
	}
	// A failing Rewrite leaves the origin alone.
	if _, err := Rewrite([]byte(bodyV6), nil, o); err == nil {
		t.Fatal("no error")
	}
	if o.Version() != 9 {
		t.Error(o.Version())
	}
}

// TestOriginConcurrent is for the race detector: one Origin shared by
// goroutines rewriting two bodies ends with a version that counts changes.
func TestOriginConcurrent(t *testing.T) {
	o := NewOrigin("-", 1, relay)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				body := bodySIPp
				if (g+i)%2 == 0 {
					body = bodyHold
				}
				if _, err := Rewrite([]byte(body), []Anchor{{relay, 30000, 0}}, o); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if v := o.Version(); v < 2 || v > 200 {
		t.Errorf("version %d", v)
	}
}
