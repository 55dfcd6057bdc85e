package host

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"
)

// The parts of the kernel's sock_diag interface (linux/sock_diag.h,
// linux/inet_diag.h) the listen queue needs.
const (
	netlinkSockDiag  = 4  // NETLINK_SOCK_DIAG
	sockDiagByFamily = 20 // SOCK_DIAG_BY_FAMILY
	inetDiagReqLen   = 56 // struct inet_diag_req_v2
	inetDiagMsgLen   = 72 // struct inet_diag_msg
)

// listenDiag asks the kernel, over NETLINK_SOCK_DIAG, for the TCP sockets
// listening on port in the probe's network namespace. Unlike
// /proc/net/tcp it gives a listener's backlog (idiag_wqueue, the limit of
// its accept queue) as well as the queue itself (idiag_rqueue); it is
// what "ss -ltn" shows as Send-Q and Recv-Q.
func listenDiag(port int) (ListenQueue, error) {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, netlinkSockDiag)
	if err != nil {
		return ListenQueue{}, fmt.Errorf("sock_diag: %w", err)
	}
	defer syscall.Close(fd)
	tv := syscall.Timeval{Sec: 1}
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		return ListenQueue{}, fmt.Errorf("sock_diag: %w", err)
	}
	var sum ListenQueue
	buf := make([]byte, 64<<10)
	for seq, family := range []uint8{syscall.AF_INET, syscall.AF_INET6} {
		req := diagRequest(family, uint32(seq+1))
		if err := syscall.Sendto(fd, req, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
			return ListenQueue{}, fmt.Errorf("sock_diag: %w", err)
		}
	recv:
		for {
			n, _, err := syscall.Recvfrom(fd, buf, 0)
			if err != nil {
				return ListenQueue{}, fmt.Errorf("sock_diag: %w", err)
			}
			msgs, err := syscall.ParseNetlinkMessage(buf[:n])
			if err != nil {
				return ListenQueue{}, fmt.Errorf("sock_diag: %w", err)
			}
			for _, m := range msgs {
				switch m.Header.Type {
				case syscall.NLMSG_DONE:
					break recv
				case syscall.NLMSG_ERROR:
					if len(m.Data) >= 4 {
						if errno := int32(binary.NativeEndian.Uint32(m.Data)); errno < 0 {
							if family == syscall.AF_INET6 && syscall.Errno(-errno) == syscall.ENOENT {
								break recv // no IPv6
							}
							return ListenQueue{}, fmt.Errorf("sock_diag: %w", syscall.Errno(-errno))
						}
					}
					break recv
				case sockDiagByFamily:
					if q, backlog, ok := ParseDiagMsg(m.Data, port); ok {
						sum.Sockets++
						sum.Queue += uint64(q)
						sum.Backlog += uint64(backlog)
					}
				}
			}
		}
	}
	return sum, nil
}

// diagRequest builds a dump request for the listening TCP sockets of a
// family: a netlink header and a struct inet_diag_req_v2.
func diagRequest(family uint8, seq uint32) []byte {
	b := make([]byte, syscall.NLMSG_HDRLEN+inetDiagReqLen)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(len(b)))
	ne.PutUint16(b[4:], sockDiagByFamily)
	ne.PutUint16(b[6:], syscall.NLM_F_REQUEST|syscall.NLM_F_DUMP)
	ne.PutUint32(b[8:], seq)
	r := b[syscall.NLMSG_HDRLEN:]
	r[0] = family
	r[1] = syscall.IPPROTO_TCP
	ne.PutUint32(r[4:], 1<<tcpListen) // idiag_states
	return b
}

// ParseDiagMsg reads a struct inet_diag_msg: when it is a LISTEN socket on
// port, its accept queue (idiag_rqueue) and backlog (idiag_wqueue).
func ParseDiagMsg(b []byte, port int) (queue, backlog uint32, ok bool) {
	if len(b) < inetDiagMsgLen || b[1] != tcpListen {
		return 0, 0, false
	}
	if int(binary.BigEndian.Uint16(b[4:])) != port { // idiag_sport, network order
		return 0, 0, false
	}
	ne := binary.NativeEndian
	return ne.Uint32(b[56:]), ne.Uint32(b[60:]), true
}

// sameNetns reports whether pid shares the probe's network namespace.
func sameNetns(proc string, pid int) bool {
	mine, err1 := os.Readlink("/proc/self/ns/net")
	theirs, err2 := os.Readlink(fmt.Sprintf("%s/%d/ns/net", proc, pid))
	return errors.Join(err1, err2) == nil && mine == theirs
}
