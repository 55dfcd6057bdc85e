//go:build !linux

package session

import "net"

// connAlive cannot peek at a socket here: a connection closed by the
// server shows when the request fails, which is then sent again if it can
// be (see UserTransport.RoundTrip).
func connAlive(net.Conn) bool { return true }
