package session

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
)

// connAlive reports whether a kept-alive connection can carry a request:
// the server has not closed it (nor reset it) and has sent nothing unasked.
// It peeks at the socket without blocking and without going through the
// runtime's poller.
func connAlive(c net.Conn) bool {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true // not a socket (a pipe in tests): a failure shows in the request
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	err = rc.Control(func(fd uintptr) {
		var b [1]byte
		for {
			_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			// EAGAIN: nothing to read, the connection is open. 0 bytes:
			// end of stream, closed by the server. 1 byte: a byte nobody
			// asked for, the connection is out of step. Any other error
			// (a reset): dead.
			alive = errors.Is(err, syscall.EAGAIN)
			return
		}
	})
	return err == nil && alive
}
