package session

import "syscall"

// ipBindAddressNoPort is Linux's IP_BIND_ADDRESS_NO_PORT (linux/in.h; 4.2
// and later), which package syscall does not name.
const ipBindAddressNoPort = 24

// bindNoPort asks the kernel to choose a socket's source port when it
// connects rather than when it binds to its source address: a port is then
// only taken per destination (as it is for a socket that connects unbound),
// so one source address holds a whole ephemeral range per target instead
// of one range for all. An older kernel refuses the option; the socket
// then binds as usual.
func bindNoPort(_, _ string, c syscall.RawConn) error {
	return c.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
	})
}
