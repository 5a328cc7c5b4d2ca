// Package rawudp sends and receives UDP datagrams with raw system calls on
// Linux, for the sockets that carry a node's heaviest traffic: the SIP
// listener and the media relay's ports.
//
// Go's own methods (net.UDPConn.WriteToUDPAddrPort, ReadFromUDPAddrPort)
// tell the scheduler of every system call they make. On a busy process
// with as many threads running as processors, the runtime's monitor
// (sysmon) then takes the processor from a goroutine whose sendto(2)
// outlasts its 20-µs tick, hands it to another thread, and the goroutine
// must win one back when the call returns: thread wake-ups and context
// switches around a call that never blocks. A non-blocking UDP socket's
// sendto and recvfrom return in microseconds, so here they are made as raw
// system calls, which the scheduler does not see. When the socket would
// block, the goroutine waits in the runtime's poller as before.
//
// Elsewhere than Linux, Conn and Reader use the net package's methods.
package rawudp

// Backlog is a socket's receive queue as the kernel accounts it: bytes of
// the datagrams waiting to be read, each with its buffer's overhead
// (several times a small datagram's length), against the limit past which
// the kernel drops what arrives. Limit is twice what SO_RCVBUF asked for,
// the kernel's bookkeeping included (socket(7)).
type Backlog struct {
	Queued int    // bytes queued
	Limit  int    // bytes the queue may hold
	Drops  uint64 // datagrams dropped on a full queue since the socket opened
}
