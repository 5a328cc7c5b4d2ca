// Package siptx is the node's SIP transaction layer (RFC 3261 §17, with
// RFC 6026's Accepted states), over sipgo's transport layer and messages.
//
// sipgo has a transaction layer of its own; this one does the same work
// at a fraction of the cost, which is what a node's call rate is made of:
//
//   - Responses and retransmissions are matched and handled on the
//     transport's reader, without a goroutine per message; a new request's
//     handler runs on a kept goroutine (pool), not a fresh one, or on the
//     reader itself for the requests Config.Inline picks.
//   - Every transaction timer lives in one timing wheel (wheel), not in a
//     runtime timer each.
//   - A request's connection is looked up once, without a context and its
//     timer.
//
// The TU sees sipgo's interfaces (sip.ServerTransaction,
// sip.ClientTransaction), with sipgo's semantics where the TU depends on
// them: a server transaction ends when its handler returns without a final
// response (unless the TU keeps it to answer later: Keep); a CANCEL is
// answered 200 and its INVITE 487 by the layer, and the TU is told through
// OnCancel; responses are passed up in order on Responses, 2xx
// retransmissions on OnRetransmission.
//
// Responses to requests that came over UDP go to the request's source
// address and port (as RFC 3581 asks when rport is present, and as every
// NAT-facing SBC does without it).
package siptx

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/callmesh/callmesh/media/rawudp"
	"github.com/callmesh/callmesh/node/internal/gopool"
	"github.com/callmesh/callmesh/node/sipwire"
)

// Config holds the layer's timers; zero values take RFC 3261's.
type Config struct {
	T1, T2, T4 time.Duration // §17.1.1.1: 500 ms, 4 s, 5 s
	// Wait is how long a completed transaction is kept to absorb
	// retransmissions: Timers D and J over UDP, L and M (RFC 6026);
	// 64·T1 by default.
	Wait time.Duration
	// Trying is how long an INVITE may wait for the TU's first response
	// before the layer sends 100 Trying itself (§17.2.1: 200 ms).
	Trying time.Duration
	// Tick is the timer wheel's resolution (10 ms).
	Tick time.Duration
	// Connect bounds opening a connection for a request (a TCP dial, a
	// DNS lookup): 10 s.
	Connect time.Duration
	// Inline reports the requests whose handler runs on the transport's
	// reader that read them, rather than on a goroutine of the layer's:
	// one hand-over less per request, for handlers that never block (an
	// ACK, a BYE). Nil: none.
	Inline func(*sip.Request) bool
	Log    *slog.Logger
}

func (c *Config) defaults() {
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&c.T1, 500 * time.Millisecond}, {&c.T2, 4 * time.Second}, {&c.T4, 5 * time.Second},
		{&c.Trying, 200 * time.Millisecond}, {&c.Tick, 10 * time.Millisecond}, {&c.Connect, 10 * time.Second},
	} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	if c.Wait <= 0 {
		c.Wait = 64 * c.T1 // after T1 has its default
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// Handler serves a new request. The transaction ends when the handler
// returns, unless it was answered with a final response or kept (Keep).
type Handler func(req *sip.Request, tx sip.ServerTransaction)

// Layer is the transaction layer.
type Layer struct {
	tpl     *sip.TransportLayer
	cfg     Config
	wheel   *wheel
	workers *gopool.Pool
	handler Handler
	stray   atomic.Pointer[StrayFunc]
	ack     ackTx // what the handler gets with a 2xx's ACK

	udp atomic.Pointer[udpListener] // SendUDPFrom

	mu      sync.Mutex
	servers map[string]*serverTx
	clients map[string]*clientTx
	closed  bool

	stats Stats
}

// Stats counts what the layer absorbed or could not place.
type Stats struct {
	retransmissions atomic.Uint64 // requests matched to a live transaction
	unmatched       atomic.Uint64 // responses of no live transaction
	rejected        atomic.Uint64 // requests without a usable Via or CSeq
}

// Retransmissions is the number of retransmitted requests absorbed.
func (s *Stats) Retransmissions() uint64 { return s.retransmissions.Load() }

// Unmatched is the number of responses that matched no transaction.
func (s *Stats) Unmatched() uint64 { return s.unmatched.Load() }

// Rejected is the number of requests answered 400 for a missing or broken
// Via or CSeq.
func (s *Stats) Rejected() uint64 { return s.rejected.Load() }

// idleWorkers bounds the handler goroutines kept idle.
const idleWorkers = 256

// New starts a transaction layer on tpl; it takes every message tpl reads,
// and any its owner passes to Receive.
func New(tpl *sip.TransportLayer, cfg Config) *Layer {
	cfg.defaults()
	l := &Layer{tpl: tpl, cfg: cfg, wheel: newWheel(cfg.Tick), workers: gopool.New(idleWorkers),
		servers: make(map[string]*serverTx), clients: make(map[string]*clientTx),
		handler: func(req *sip.Request, tx sip.ServerTransaction) {
			if !req.IsAck() {
				_ = tx.Respond(sipwire.Response(req, sip.StatusNotImplemented, "Not Implemented", ""))
			}
		}}
	l.ack = ackTx{&serverTx{base: base{l: l, server: true, state: terminated, err: sip.ErrTransactionTerminated}}}
	tpl.OnMessage(l.Receive)
	return l
}

// udpListener is the socket every UDP message leaves by (SendUDPFrom).
type udpListener struct {
	conn  *sip.UDPConnection
	laddr sip.Addr     // its address, as a request's Laddr names it
	raw   *rawudp.Conn // its socket, written by raw system calls; nil if not a net.UDPConn
}

// SendUDPFrom names the listening socket every UDP message of the layer
// leaves by, so that a peer, and a NAT in front of it, sees the port it
// wrote to or registered from (RFC 3581 §4): the answers to requests read
// over UDP, and requests that name no other local address. It puts conn
// in the transport's connection pool under its own address, where sipgo
// finds a request's Laddr. Without it the layer asks the pool for each
// request's source, which then must hold every source ever read (sipgo's
// ServeUDP adds each and never removes one), and a request opens a socket
// of its own.
func (l *Layer) SendUDPFrom(conn *sip.UDPConnection) {
	ua, _ := conn.LocalAddr().(*net.UDPAddr)
	if ua == nil {
		return
	}
	u := &udpListener{conn: conn, laddr: sip.Addr{IP: ua.IP, Port: ua.Port}}
	if pc, ok := conn.PacketConn.(*net.UDPConn); ok {
		u.raw, _ = rawudp.New(pc) // without it, the net package's writes
	}
	l.tpl.Pool("udp").Add(u.laddr.String(), conn)
	l.udp.Store(u)
}

// direct returns the listener, referenced, for a request that leaves by
// it (its Laddr) and that send writes itself (to an IP address), as
// sipgo's ClientRequestConnection would find it in the pool, and fills in
// the top Via's sent-by as that does when the TU left it open. It spares
// each request sipgo's parsing of the destination, its two addresses made
// into strings and its pool lookup. False for anything else (a name to
// resolve, another local address), which sipgo connects: sipgo's WriteMsg
// needs the address its lookup resolves.
func (u *udpListener) direct(req *sip.Request) (sip.Connection, bool) {
	if req.Laddr.Port != u.laddr.Port || !req.Laddr.IP.Equal(u.laddr.IP) {
		return nil, false
	}
	via := req.Via()
	if via == nil {
		return nil, false // sipgo's error
	}
	if _, _, ok := datagramTo(u.conn, req); !ok {
		return nil, false
	}
	if via.Host == "" {
		via.Host = u.laddr.IP.String()
	}
	if via.Port == 0 {
		via.Port = u.laddr.Port
	}
	u.conn.Ref(1)
	return u.conn, true
}

// serverConn is the connection a request's answers leave by, referenced
// (the caller releases it with TryClose).
func (l *Layer) serverConn(req *sip.Request) (sip.Connection, error) {
	if u := l.udp.Load(); u != nil && isUDP(req.Transport()) {
		u.conn.Ref(1)
		return u.conn, nil
	}
	return l.tpl.GetConnection(req.Transport(), req.Source())
}

func isUDP(transport string) bool { return strings.EqualFold(transport, "UDP") }

// OnRequest sets the handler of new requests; set it before serving.
func (l *Layer) OnRequest(h Handler) { l.handler = h }

// StrayFunc takes a 2xx response that matched no transaction: RFC 3261
// §17.1.1.2 hands such a response to the core, and a UA's core has a
// duty toward a 2xx to an INVITE alone (§13.2.2.4: ACK it); other stray
// responses are only counted. It runs on a goroutine of the layer's, not
// on the transport's reader.
type StrayFunc func(*sip.Response)

// OnStray sets what takes the 2xx responses that match no transaction
// (nil: they are only counted); it may be set or changed while serving.
func (l *Layer) OnStray(f StrayFunc) {
	if f == nil {
		l.stray.Store(nil)
		return
	}
	l.stray.Store(&f)
}

// Stats returns the layer's counters.
func (l *Layer) Stats() *Stats { return &l.stats }

// Close ends every transaction, waits for the running handlers and stops
// the timers. The transport layer is closed by its owner.
func (l *Layer) Close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	servers := make([]*serverTx, 0, len(l.servers))
	for _, tx := range l.servers {
		servers = append(servers, tx)
	}
	clients := make([]*clientTx, 0, len(l.clients))
	for _, tx := range l.clients {
		clients = append(clients, tx)
	}
	l.mu.Unlock()
	for _, tx := range clients {
		tx.terminate(sip.ErrTransactionTerminated)
	}
	for _, tx := range servers {
		tx.terminate(nil)
	}
	l.workers.Close()
	l.wheel.close()
}

// Receive takes a message read from the network, with its transport and
// source set. It runs on the reader of the connection the message came
// on: the transport layer's own readers call it, and so may the owner of
// a socket it reads itself.
func (l *Layer) Receive(msg sip.Message) {
	switch m := msg.(type) {
	case *sip.Request:
		l.handleRequest(m)
	case *sip.Response:
		l.handleResponse(m)
	}
}

func (l *Layer) handleResponse(res *sip.Response) {
	var kb keyBuf
	key, ok := appendClientKey(kb[:0], res)
	if !ok {
		l.stats.unmatched.Add(1)
		return
	}
	l.mu.Lock()
	tx := l.clients[string(key)]
	l.mu.Unlock()
	if tx == nil {
		// A 2xx retransmitted after its transaction ended, or a stray:
		// RFC 3261 §17.1.1.2 hands it to the core (OnStray). A 2xx to an
		// INVITE still wants its ACK (§13.2.2.4) when the call that sent
		// it has been forgotten.
		l.stats.unmatched.Add(1)
		if f := l.stray.Load(); f != nil && res.IsSuccess() {
			l.workers.Go(func() { (*f)(res) })
		}
		return
	}
	tx.receive(res)
}

func (l *Layer) handleRequest(req *sip.Request) {
	var kb keyBuf
	key, ok := appendServerKey(kb[:0], req, req.Method)
	if !ok {
		l.stats.rejected.Add(1)
		if !req.IsAck() {
			l.writeStateless(req, sip.StatusBadRequest, "Bad Request (Via or CSeq missing)")
		}
		return
	}
	switch {
	case req.IsCancel():
		// The CANCEL's own transaction key names the INVITE it cancels
		// (§9.2: same branch and sent-by, method INVITE).
		var ib keyBuf
		inv, _ := appendServerKey(ib[:0], req, sip.INVITE)
		l.mu.Lock()
		tx := l.servers[string(inv)]
		l.mu.Unlock()
		if tx != nil {
			// Off the reader: the TU's OnCancel may block. The 200 to the
			// CANCEL goes first: its sender stops retransmitting.
			l.workers.Go(func() {
				l.writeStateless(req, sip.StatusOK, "OK")
				tx.cancel(req)
			})
			return
		}
	case req.IsAck():
		l.mu.Lock()
		tx := l.servers[string(key)]
		l.mu.Unlock()
		if tx != nil && tx.receive(req) {
			return
		}
		// A 2xx's ACK is a transaction of its own: for the TU, with no
		// response possible. It has no state, so every ACK shares one.
		if l.inline(req) {
			l.handler(req, l.ack)
		} else {
			l.workers.Go(func() { l.handler(req, l.ack) })
		}
		return
	}
	// The transaction is made before the lookup, so that one hold of the
	// lock both looks for the request's transaction and stores the new
	// one: a retransmission, the rarer case, throws it away.
	conn, err := l.serverConn(req)
	if err != nil {
		l.cfg.Log.Debug("SIP request dropped: no connection to answer on", "source", req.Source(), "err", err)
		return
	}
	tx := newServerTx(l, string(key), req, conn)
	l.mu.Lock()
	if old := l.servers[tx.key]; old != nil || l.closed {
		// A retransmission (read here or on another reader first), or
		// the layer has closed.
		l.mu.Unlock()
		_, _ = conn.TryClose()
		if old != nil {
			old.receive(req)
		}
		return
	}
	l.servers[tx.key] = tx
	tx.stored = true
	l.mu.Unlock()
	tx.started()
	if l.inline(req) {
		l.handler(req, tx)
		tx.handled()
		return
	}
	if !l.workers.Go(func() { l.handler(req, tx); tx.handled() }) {
		tx.terminate(nil) // the layer is closing
	}
}

// inline reports whether req's handler runs on the reader that read it
// (Config.Inline), rather than on a worker.
func (l *Layer) inline(req *sip.Request) bool { return l.cfg.Inline != nil && l.cfg.Inline(req) }

// writeStateless answers a request outside any transaction.
func (l *Layer) writeStateless(req *sip.Request, code int, reason string) {
	res := sipwire.Response(req, code, reason, "")
	conn, err := l.serverConn(req)
	if err != nil {
		return
	}
	_ = l.send(conn, res)
	_, _ = conn.TryClose()
}

// forget drops an ended transaction from the layer's tables.
func (l *Layer) forget(b *base) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !b.stored {
		return
	}
	// A key is stored only while absent and deleted only here, so the
	// entry under a stored transaction's key is the transaction itself.
	b.stored = false
	if b.server {
		delete(l.servers, b.key)
	} else {
		delete(l.clients, b.key)
	}
}

// connect finds or opens req's connection. Opening one (a TCP dial, a DNS
// lookup) is bounded by Config.Connect as well as ctx; a UDP request to an
// IP address opens nothing and needs no timer.
func (l *Layer) connect(ctx context.Context, req *sip.Request) (sip.Connection, error) {
	if u := l.udp.Load(); u != nil && isUDP(req.Transport()) {
		if req.Laddr.IP == nil {
			req.Laddr = u.laddr // SendUDPFrom
		}
		if c, ok := u.direct(req); ok {
			return c, nil
		}
	}
	if !Immediate(req.Destination(), req.Transport()) {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.cfg.Connect)
		defer cancel()
	}
	conn, err := l.tpl.ClientRequestConnection(ctx, req)
	return conn, transportErr(err)
}

// Request starts a client transaction for req, which carries its own top
// Via (AddVia). ctx bounds finding or opening the connection only: the
// transaction's own timers bound the rest.
func (l *Layer) Request(ctx context.Context, req *sip.Request) (sip.ClientTransaction, error) {
	return l.request(ctx, req, nil)
}

// FnResponse takes what a client transaction started by RequestFunc
// hears: each response in order (err nil), or, when the transaction ends
// without a final response, why (res nil): ErrTransactionTimeout or a
// transport error.
type FnResponse func(res *sip.Response, err error)

// RequestFunc starts a client transaction like Request, but hands every
// response to fn instead of a channel, so that no goroutine need wait on
// it. fn is called on the transport's reader or a timer, never during
// RequestFunc itself (a failure to send is its error, not fn's), and must
// not block. Responses come in the order read; an end without a final
// response is reported at most once and never after a final one, though
// a response read as a timer fires may reach fn just after the error,
// and one read as the TU calls Terminate just after Terminate. The TU's
// own Terminate is not reported, nor a 2xx retransmitted to an INVITE
// (see OnRetransmission). The transaction's Responses channel stays
// empty.
func (l *Layer) RequestFunc(ctx context.Context, req *sip.Request, fn FnResponse) (sip.ClientTransaction, error) {
	if fn == nil {
		return nil, fmt.Errorf("siptx: RequestFunc without a function")
	}
	return l.request(ctx, req, fn)
}

func (l *Layer) request(ctx context.Context, req *sip.Request, fn FnResponse) (sip.ClientTransaction, error) {
	if req.IsAck() {
		return nil, fmt.Errorf("siptx: an ACK has no transaction (use Write)")
	}
	var kb keyBuf
	k, ok := appendClientKey(kb[:0], req)
	if !ok {
		return nil, fmt.Errorf("siptx: request without a branch or CSeq")
	}
	key := string(k)
	conn, err := l.connect(ctx, req)
	if err != nil {
		return nil, err
	}
	tx := &clientTx{base: base{key: key, l: l, conn: conn}, origin: req, invite: req.IsInvite(),
		reliable: sip.IsReliable(req.Transport()), sink: fn}
	if fn == nil {
		tx.responses = make(chan *sip.Response)
	} else {
		tx.ender = tx // its end reaches fn (ended)
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		_, _ = conn.TryClose()
		return nil, ErrTerminated
	}
	if l.clients[key] != nil {
		l.mu.Unlock()
		_, _ = conn.TryClose()
		return nil, fmt.Errorf("siptx: a transaction with branch key %q is running", key)
	}
	l.clients[key] = tx
	tx.stored = true
	l.mu.Unlock()
	if err := tx.start(); err != nil {
		// The caller hears of it from the error alone, not from fn too.
		tx.mu.Lock()
		tx.sink = nil
		tx.mu.Unlock()
		tx.terminate(err)
		return nil, err
	}
	return tx, nil
}

// Write sends a request outside any transaction: an ACK of a 2xx.
func (l *Layer) Write(req *sip.Request) error {
	conn, err := l.connect(context.Background(), req)
	if err != nil {
		return err
	}
	defer conn.TryClose()
	return transportErr(l.send(conn, req))
}

// Do sends req and returns its final response.
func (l *Layer) Do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	tx, err := l.Request(ctx, req)
	if err != nil {
		return nil, err
	}
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			return res, nil
		case <-tx.Done():
			// A final response may have been passed up just before.
			select {
			case res := <-tx.Responses():
				if !res.IsProvisional() {
					return res, nil
				}
			default:
			}
			return nil, tx.Err()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// AddVia puts a new top Via on req, sent by host:port over req's
// transport, with a fresh RFC 3261 branch. A port of 0 is filled in with
// the connection's when the request is sent.
func AddVia(req *sip.Request, host string, port int) {
	// The Via, its parameter list and its branch in one allocation, with
	// room for one parameter more (sip.NewParams makes room for five).
	v := new(struct {
		via    sip.ViaHeader
		kv     [2]sip.HeaderKV
		branch [branchLen]byte
	})
	putBranch(&v.branch)
	v.via = sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0",
		Transport: req.Transport(), Host: host, Port: port, Params: v.kv[:0]}
	v.via.Params.Add("branch", branchString(&v.branch))
	req.PrependHeader(&v.via)
}

// keyBuf holds a transaction key on the stack while it is looked up; only
// a transaction that is kept stores its key as a string. A longer key
// grows on the heap.
type keyBuf [128]byte

// appendServerKey appends the transaction key of a request (§17.2.3) to
// b: the top Via's branch and sent-by with the method (ACK counted as
// INVITE); for a branch without RFC 3261's magic cookie (RFC 2543 peers),
// the fields §17.2.3 lists for them.
func appendServerKey(b []byte, req *sip.Request, method sip.RequestMethod) ([]byte, bool) {
	via := req.Via()
	cseq := req.CSeq()
	if via == nil || cseq == nil {
		return b, false
	}
	if method == sip.ACK {
		method = sip.INVITE
	}
	port := via.Port
	if port <= 0 {
		port = sip.DefaultPort(via.Transport)
	}
	branch, _ := via.Params.Get("branch")
	if strings.HasPrefix(branch, sip.RFC3261BranchMagicCookie) && len(branch) > len(sip.RFC3261BranchMagicCookie) {
		b = append(b, branch...)
	} else {
		from, callID := req.From(), req.CallID()
		if from == nil || callID == nil {
			return b, false
		}
		fromTag, _ := from.Params.Get("tag")
		b = append(b, "2543|"...)
		b = append(b, req.Recipient.String()...)
		b = append(b, '|')
		b = append(b, fromTag...)
		b = append(b, '|')
		b = append(b, callID.Value()...)
		b = append(b, '|')
		b = strconv.AppendUint(b, uint64(cseq.SeqNo), 10)
	}
	b = append(b, '|')
	b = append(b, via.Host...)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(port), 10)
	b = append(b, '|')
	b = append(b, method...)
	return b, true
}

// appendClientKey appends the key a response matches its client
// transaction by (§17.1.3) to b: the top Via's branch and the CSeq
// method.
func appendClientKey(b []byte, msg sip.Message) ([]byte, bool) {
	via := msg.Via()
	cseq := msg.CSeq()
	if via == nil || cseq == nil {
		return b, false
	}
	branch, _ := via.Params.Get("branch")
	if branch == "" {
		return b, false
	}
	method := cseq.MethodName
	if method == sip.ACK {
		method = sip.INVITE
	}
	b = append(b, branch...)
	b = append(b, '|')
	return append(b, method...), true
}

func transportErr(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", sip.ErrTransactionTransport, err)
}

// ackTx is the transaction handed with a 2xx's ACK: nothing can be sent
// on it.
type ackTx struct{ *serverTx }

func (ackTx) Respond(*sip.Response) error {
	return fmt.Errorf("siptx: an ACK has no response")
}
