package sipedge

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/callmesh/callmesh/node/accounts"
	"github.com/callmesh/callmesh/node/digest"
	"github.com/emiago/sipgo/sip"
)

type noAccounts struct{}

func (noAccounts) Credentials(context.Context, string) (digest.Credentials, bool, error) {
	return digest.Credentials{}, false, nil
}
func (noAccounts) Permit(context.Context, string, accounts.Request) (Limits, error) {
	return Limits{}, nil
}

type noBindings struct{}

func (noBindings) Load(string) ([]Binding, error) { return nil, nil }
func (noBindings) Save(string, []Binding) error   { return nil }

// A request to a contact that registered over UDP still goes over TCP when
// it is larger than 1300 bytes (RFC 3261 §18.1.1).
func TestQualifyLargeRequestGoesOverTCP(t *testing.T) {
	s, _ := testEdge(t)

	// The phone: a TCP listener only, so a UDP send would never arrive.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		var head []string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\r\n")
			if line == "" {
				break
			}
			head = append(head, line)
		}
		got <- head[0]
		req, err := sip.ParseMessage([]byte(strings.Join(head, "\r\n") + "\r\n\r\n"))
		if err != nil {
			return
		}
		res := sip.NewResponseFromRequest(req.(*sip.Request), 200, "OK", nil)
		_, _ = conn.Write([]byte(res.String()))
	}()

	b := Binding{AOR: "ivan@example.com", URI: "sip:ivan@127.0.0.1:1", Source: ln.Addr().String(), Transport: "udp"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := s.Qualify(ctx, b, sip.NewHeader("X-Padding", strings.Repeat("p", 1400)))
	if err != nil {
		t.Fatalf("Qualify: %v", err)
	}
	if res.StatusCode != 200 {
		t.Fatalf("answer %d", res.StatusCode)
	}
	if line := <-got; !strings.HasPrefix(line, "OPTIONS sip:ivan@127.0.0.1:1") {
		t.Fatalf("the phone got %q", line)
	}
}
