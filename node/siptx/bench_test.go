package siptx

import (
	"context"
	"net"
	"strconv"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/callmesh/callmesh/node/sipwire"
)

// benchLayer is a layer sending by a listener named with SendUDPFrom, as
// the edge runs it, with every request served on the caller's goroutine
// (Config.Inline) so that a benchmark iteration is one whole transaction.
// What it sends goes to a peer socket that drops it.
type benchLayer struct {
	l    *Layer
	peer string
}

func newBenchLayer(b *testing.B, h Handler) *benchLayer {
	b.Helper()
	pc, peer := udpPair(b)
	// A tiny receive buffer: what the layer sends is dropped by the
	// kernel, so nobody need read it.
	_ = peer.(*net.UDPConn).SetReadBuffer(1)
	cfg := testConfig
	cfg.Inline = func(*sip.Request) bool { return true }
	l := bareLayer(b, cfg)
	l.OnRequest(h)
	l.SendUDPFrom(&sip.UDPConnection{PacketConn: pc, PacketAddr: pc.LocalAddr().String(), Listener: true})
	return &benchLayer{l: l, peer: peer.LocalAddr().String()}
}

// parse reads a message as the edge does.
func parse(b *testing.B, text []byte) sip.Message {
	msg, err := sipwire.Parse(text)
	if err != nil {
		b.Fatal(err)
	}
	msg.SetTransport("UDP")
	return msg
}

// BenchmarkServerTransaction is a non-INVITE server transaction from the
// datagram read to the 200 sent: parsing, the key, the table, the
// handler's response written and sent.
func BenchmarkServerTransaction(b *testing.B) {
	bl := newBenchLayer(b, func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sipwire.Response(req, sip.StatusOK, "OK", "b1"))
	})
	b.ReportAllocs()
	for i := range b.N {
		req := parse(b, []byte(request("OPTIONS", "z9hG4bK-"+strconv.Itoa(i), bl.peer, 1)))
		req.SetSource(bl.peer)
		bl.l.Receive(req)
	}
}

// BenchmarkClientTransaction is a non-INVITE client transaction from the
// request handed to the layer to its 200 read and passed up: the key,
// the table, the request written and sent, the response parsed and
// matched.
func BenchmarkClientTransaction(b *testing.B) {
	bl := newBenchLayer(b, nil)
	host, port, _ := sip.ParseAddr(bl.peer)
	var answered int
	fn := func(res *sip.Response, err error) {
		if res != nil && res.StatusCode == sip.StatusOK {
			answered++
		}
	}
	b.ReportAllocs()
	for i := range b.N {
		req := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", User: "bob", Host: host, Port: port})
		req.AppendHeader(sip.NewHeader("From", "<sip:alice@example.org>;tag=a1"))
		req.AppendHeader(sip.NewHeader("To", "<sip:bob@example.org>"))
		req.AppendHeader(sip.NewHeader("Call-ID", "bench-"+strconv.Itoa(i)))
		req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.OPTIONS})
		req.SetTransport("UDP")
		req.SetDestination(bl.peer)
		AddVia(req, "127.0.0.1", 0)
		if _, err := bl.l.RequestFunc(context.Background(), req, fn); err != nil {
			b.Fatal(err)
		}
		// The peer's 200: the request's Via, as a UAS echoes it.
		res := sipwire.Response(req, sip.StatusOK, "OK", "b2")
		bl.l.Receive(parse(b, []byte(res.String())))
	}
	b.StopTimer()
	if answered != b.N {
		b.Fatalf("%d of %d requests answered", answered, b.N)
	}
}
