package siptx

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/callmesh/callmesh/node/sipwire"
	"github.com/emiago/sipgo/sip"
)

// send writes msg on conn. A datagram to an IP address is written by
// sipwire, which allocates nothing, and sent with one system call: a raw
// one (rawudp) on the listener named by SendUDPFrom, by which every UDP
// message normally leaves; anything else (a stream, a destination that is
// still a name) goes through sipgo's WriteMsg. Either way the destination
// is the one sipgo would use: a request's resolved Destination, a
// response's Destination (RFC 3581 §4: the request's source).
func (l *Layer) send(conn sip.Connection, msg sip.Message) error {
	uc, to, ok := datagramTo(conn, msg)
	if !ok {
		return conn.WriteMsg(msg)
	}
	buf := sendBuffers.Get().(*bytes.Buffer)
	defer putSendBuffer(buf)
	if err := encode(buf, msg); err != nil {
		return err
	}
	return l.sendDatagram(uc, buf.Bytes(), to)
}

// datagramTo returns the UDP connection and the address send writes msg
// to itself; false when it leaves msg to sipgo's WriteMsg.
func datagramTo(conn sip.Connection, msg sip.Message) (*sip.UDPConnection, netip.AddrPort, bool) {
	uc, ok := conn.(*sip.UDPConnection)
	if !ok {
		return nil, netip.AddrPort{}, false
	}
	if _, ok := uc.PacketConn.(*net.UDPConn); !ok {
		return nil, netip.AddrPort{}, false
	}
	to, ok := address(msg.Destination())
	return uc, to, ok
}

// encode writes msg into buf as a datagram.
func encode(buf *bytes.Buffer, msg sip.Message) error {
	buf.Reset()
	sipwire.Write(buf, msg)
	// sipgo's limit on a datagram, kept so that a message too large for
	// UDP fails here as it would in WriteMsg.
	if buf.Len() > sip.UDPMTUSize-200 {
		return sip.ErrUDPMTUCongestion
	}
	return nil
}

// sendDatagram writes b to to on uc: by a raw system call on the
// listener, by the net package's write on any other socket.
func (l *Layer) sendDatagram(uc *sip.UDPConnection, b []byte, to netip.AddrPort) error {
	var err error
	if u := l.udp.Load(); u != nil && u.conn == uc && u.raw != nil {
		err = u.raw.WriteTo(b, to)
	} else {
		_, err = uc.PacketConn.(*net.UDPConn).WriteToUDPAddrPort(b, to)
	}
	if err != nil {
		return fmt.Errorf("udp conn %s: %w", uc.PacketAddr, err)
	}
	return nil
}

// wire is a final response as it went out over UDP, which a completed
// server transaction keeps to answer retransmissions in place of the
// parsed message: a few hundred bytes the collector need not scan, where
// the message is a tree of headers and parameters. A node keeps one per
// call for 32 s (Timer J of the BYE's transaction).
type wire struct {
	uc *sip.UDPConnection
	b  []byte
	to netip.AddrPort
}

// wireOf returns res as send would write it on conn, or false when send
// would hand it to sipgo (a stream, a name) or refuse it (too large).
func wireOf(conn sip.Connection, res *sip.Response) (wire, bool) {
	uc, to, ok := datagramTo(conn, res)
	if !ok {
		return wire{}, false
	}
	buf := sendBuffers.Get().(*bytes.Buffer)
	defer putSendBuffer(buf)
	if encode(buf, res) != nil {
		return wire{}, false
	}
	return wire{uc: uc, b: bytes.Clone(buf.Bytes()), to: to}, true
}

// sendWire sends a response kept by wireOf: the first time, and again.
func (l *Layer) sendWire(w wire) error { return l.sendDatagram(w.uc, w.b, w.to) }

// address returns a destination ("host:port") whose host is an IP
// address, as the address to send to; false for a name, which must be
// looked up first. It allocates nothing.
func address(dest string) (netip.AddrPort, bool) {
	a, err := netip.ParseAddrPort(dest)
	if err != nil || a.Port() == 0 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()), true
}

// Immediate reports whether a request toward dest ("host:port") over
// transport goes out at once, with no dial and no name lookup: UDP to an
// address. Only then may it be sent from a goroutine that must not wait.
func Immediate(dest, transport string) bool {
	if sip.IsReliable(transport) {
		return false
	}
	_, ok := address(dest)
	return ok
}

var sendBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// putSendBuffer keeps a buffer for the next message unless an oversized
// one grew it.
func putSendBuffer(buf *bytes.Buffer) {
	if buf.Cap() <= 1<<16 {
		sendBuffers.Put(buf)
	}
}
