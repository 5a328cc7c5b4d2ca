//go:build !linux

package media

import (
	"errors"
	"net"
	"net/netip"
)

// Elsewhere than Linux each socket is a net.UDPConn with a reader goroutine
// of its own.

// sock is one bound UDP socket of a leg.
type sock struct {
	conn *net.UDPConn
}

// listen binds a UDP socket to the relay's bind address and port.
func (r *Relay) listen(port int) (*sock, error) {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(r.cfg.Bind, uint16(port))))
	if err != nil {
		return nil, err
	}
	if n := r.cfg.SocketBuffer; n > 0 {
		_ = c.SetReadBuffer(n) // best effort: the kernel caps it
		_ = c.SetWriteBuffer(n)
	}
	return &sock{conn: c}, nil
}

// writeTo sends one datagram.
func (k *sock) writeTo(b []byte, dst netip.AddrPort) error {
	_, err := k.conn.WriteToUDPAddrPort(b, dst)
	return err
}

// close closes the socket; its reader ends (Session.wg).
func (k *sock) close() { k.conn.Close() }

type ioState struct{}

func (r *Relay) startIO() error    { return nil }
func (r *Relay) stopIO()           {}
func (r *Relay) assignIO(*Session) {}

// watch starts the socket's reader goroutine.
func (r *Relay) watch(l *Leg, k *sock, rtcpPort bool) error {
	l.s.wg.Add(1)
	go l.read(k.conn, rtcpPort)
	return nil
}

// read serves one socket until it is closed.
func (l *Leg) read(conn *net.UDPConn, rtcpPort bool) {
	defer l.s.wg.Done()
	buf := make([]byte, readBuffer)
	for {
		n, src, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. ICMP port unreachable reported on a later read
		}
		l.handle(buf[:n], src, rtcpPort)
	}
}
