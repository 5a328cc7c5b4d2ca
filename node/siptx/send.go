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
	uc, ok := conn.(*sip.UDPConnection)
	if !ok {
		return conn.WriteMsg(msg)
	}
	pc, ok := uc.PacketConn.(*net.UDPConn)
	if !ok {
		return conn.WriteMsg(msg)
	}
	to, ok := address(msg.Destination())
	if !ok {
		return conn.WriteMsg(msg)
	}
	buf := sendBuffers.Get().(*bytes.Buffer)
	defer putSendBuffer(buf)
	buf.Reset()
	sipwire.Write(buf, msg)
	// sipgo's limit on a datagram, kept so that a message too large for
	// UDP fails here as it would in WriteMsg.
	if buf.Len() > sip.UDPMTUSize-200 {
		return sip.ErrUDPMTUCongestion
	}
	var err error
	if u := l.udp.Load(); u != nil && u.conn == uc && u.raw != nil {
		err = u.raw.WriteTo(buf.Bytes(), to)
	} else {
		_, err = pc.WriteToUDPAddrPort(buf.Bytes(), to)
	}
	if err != nil {
		return fmt.Errorf("udp conn %s: %w", uc.PacketAddr, err)
	}
	return nil
}

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
