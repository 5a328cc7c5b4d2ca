//go:build !linux

package rawudp

import (
	"errors"
	"net"
	"net/netip"
)

// Conn writes datagrams on a net.UDPConn, by its own methods here.
type Conn struct {
	pc *net.UDPConn
}

// New makes a Conn of pc's socket.
func New(pc *net.UDPConn) (*Conn, error) { return &Conn{pc: pc}, nil }

// WriteTo sends b to dst. Safe for concurrent use.
func (c *Conn) WriteTo(b []byte, dst netip.AddrPort) error {
	_, err := c.pc.WriteToUDPAddrPort(b, dst)
	return err
}

// Reader reads datagrams from a Conn's socket: one per goroutine.
type Reader struct {
	pc *net.UDPConn
}

// Reader makes a reader of the Conn's socket.
func (c *Conn) Reader() *Reader { return &Reader{pc: c.pc} }

// Read reads one datagram into buf and returns its length and source.
func (r *Reader) Read(buf []byte) (int, netip.AddrPort, error) {
	return r.pc.ReadFromUDPAddrPort(buf)
}

// Backlog is not measured here: it fails with errors.ErrUnsupported.
func (c *Conn) Backlog() (Backlog, error) { return Backlog{}, errors.ErrUnsupported }
