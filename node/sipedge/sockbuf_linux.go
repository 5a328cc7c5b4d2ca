package sipedge

import (
	"net"
	"syscall"
)

// receiveBuffer is the receive buffer the kernel granted a socket, in the
// bytes that were asked for (Linux reports twice that, its bookkeeping
// included: socket(7)); 0 when unknown.
func receiveBuffer(c *net.UDPConn) int {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	_ = rc.Control(func(fd uintptr) {
		if v, err := syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF); err == nil {
			n = v / 2
		}
	})
	return n
}
