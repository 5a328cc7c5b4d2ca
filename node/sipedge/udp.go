package sipedge

import (
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/callmesh/callmesh/media/rawudp"
	"github.com/callmesh/callmesh/node/sipwire"
)

// readUDP reads SIP datagrams from the listener until it closes and hands
// each message to the transaction layer; several readers share the one
// socket (udpReaders). It is the edge's own loop rather than sipgo's
// TransportLayer.ServeUDP, which allocates a net.Addr for every datagram
// and a string of it, and logs every unparsable one at error level with
// its content. It reads by raw system calls (rawudp), which the Go
// scheduler does not see, and waits in the runtime's poller only when
// nothing is queued. Everything sent over UDP leaves from the listening port
// (RFC 3581 §4): the transaction layer sends by it (siptx SendUDPFrom).
// ServeUDP also put it in sipgo's connection pool under the source of
// every datagram read, and never took one out: a node reached by many
// NATed phones, or by a scanner sweeping source ports, grew that map for
// as long as it ran.
func (s *Server) readUDP(r *rawudp.Reader) {
	buf := make([]byte, udpDatagramMax)
	var sources sourceNames
	count := 0
	for {
		n, from, err := r.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A read error on an unconnected UDP socket concerns one
			// datagram (one too large for the buffer, say), not the
			// socket: log it and read on, a little later.
			s.log.Warn("SIP UDP read failed", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if s.shed != nil {
			if count++; count == backlogEvery {
				count = 0
				if b, err := s.rawUDP.Backlog(); err == nil {
					s.shed.observe(b, time.Now())
				}
			}
		}
		data := buf[:n]
		if keepalive(data) {
			continue
		}
		source := sources.of(from)
		// sipwire parses the common messages with a fraction of sipgo's
		// allocations and gives the same result; whatever it declines,
		// sipgo parses (and judges) as it always did.
		msg, err := sipwire.Parse(data)
		if err != nil {
			msg, err = s.parser.ParseSIP(data)
		}
		if err != nil {
			s.m.unparsable.Inc()
			s.log.Debug("SIP datagram dropped: cannot be parsed", "source", source, "err", err)
			continue
		}
		if s.shed != nil && s.shed.drop(msg) {
			continue
		}
		msg.SetTransport("UDP")
		msg.SetSource(source)
		s.txl.Receive(msg)
	}
}

// udpDatagramMax is the largest datagram read whole: UDP's own limit.
const udpDatagramMax = 65535

// keepalive reports whether a datagram is a keep-alive rather than a
// message: empty, or nothing but CR, LF and NUL bytes (RFC 5626 §4.4.1
// sends a CRLF; some devices send NULs).
func keepalive(data []byte) bool {
	for _, c := range data {
		if c != '\r' && c != '\n' && c != 0 {
			return false
		}
	}
	return true
}

// serveUDP makes the listener the socket the transaction layer sends by
// over UDP, and starts its readers.
func (s *Server) serveUDP(readers int) {
	conn := &sip.UDPConnection{PacketConn: s.udp, PacketAddr: s.udp.LocalAddr().String(), Listener: true}
	s.txl.SendUDPFrom(conn)
	s.wg.Add(readers)
	for range readers {
		r := s.rawUDP.Reader()
		go func() { defer s.wg.Done(); s.readUDP(r) }()
	}
}

// sourceNames remembers the strings of the last few sources a reader read
// from. A call's datagrams alternate between its two ends (and a node's
// between its peers), so remembering only the last one made a string per
// datagram, formatted anew.
type sourceNames struct {
	addr [4]netip.AddrPort
	name [4]string
	next int // the entry replaced next
}

// of returns from as a string. A dual-stack socket reports an IPv4 source
// as IPv4-mapped IPv6; the Vias and the registrations know it in dotted
// form.
func (c *sourceNames) of(from netip.AddrPort) string {
	for i := range c.addr {
		if c.addr[i] == from && c.name[i] != "" {
			return c.name[i]
		}
	}
	i := c.next
	c.next = (c.next + 1) % len(c.addr)
	c.addr[i] = from
	c.name[i] = netip.AddrPortFrom(from.Addr().Unmap(), from.Port()).String()
	return c.name[i]
}
