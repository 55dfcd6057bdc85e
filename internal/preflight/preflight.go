// Package preflight checks, before a run's load starts, that this machine
// can hold the connections the run needs: open files (RLIMIT_NOFILE),
// ephemeral ports per source address and destination, and conntrack
// entries. Each check is a pure function of the need and of the values the
// system gave (System, read by Read); a failed check is an error that names
// its fix, so that a limit shows before the run rather than as connection
// errors in it.
package preflight

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strings"
)

// Need is what a run asks of this machine.
type Need struct {
	// Users is the number of virtual users alive at once: the closed
	// model's users, the open model's max users.
	Users int
	// Dials are the destinations (host:port) the users connect to. Each
	// user holds at most one kept-alive connection to each.
	Dials []string
	// Sources are the source addresses the users are spread over, one
	// each in turn (--local-ips); none means the system's choice (one).
	Sources []netip.Addr
	// Extra is the file descriptors the run opens beside the users'
	// connections: probes, followed logs, the run directory's files,
	// listeners.
	Extra int
	// Held, when above 0, is the number of users holding their
	// connections at once, fewer than Users: users that close a
	// connection once idle (idle_timeout) shorter than their think time
	// hold one only while they browse and just after.
	Held int
	// Closes is the connections the users close a second (one a task when
	// Held is set): each leaves its port in TIME_WAIT for 60 s, unless the
	// kernel reuses it (tcp_tw_reuse).
	Closes float64
}

// holding is the number of users holding connections at once.
func (n Need) holding() int {
	if n.Held > 0 && n.Held < n.Users {
		return n.Held
	}
	return n.Users
}

// Conns is the number of connections the users may hold at once.
func (n Need) Conns() int { return n.holding() * max(len(n.Dials), 1) }

// timeWaitSecs is how long a closed connection keeps its port (Linux's
// TCP_TIMEWAIT_LEN).
const timeWaitSecs = 60

// TimeWait is the number of ports in TIME_WAIT at once from the users'
// closes, per destination.
func (n Need) TimeWait() int { return int(math.Ceil(n.Closes * timeWaitSecs)) }

// Files is the number of file descriptors the run may hold at once.
func (n Need) Files() int { return n.Conns() + n.Extra }

// PerSource is the number of users of the busiest source address holding
// a connection at once: each holds at most one to each destination.
func (n Need) PerSource() int {
	s := max(len(n.Sources), 1)
	return (n.holding() + s - 1) / s
}

// Files is the RLIMIT_NOFILE of this process.
type Files struct {
	Cur, Max uint64 // soft and hard limits; math.MaxUint64 is unlimited
}

// Ports is the ephemeral port range (net.ipv4.ip_local_port_range, which
// IPv6 shares) less the reserved ports in it (ip_local_reserved_ports).
type Ports struct {
	Lo, Hi   int
	Reserved int
}

// Size is the number of ports a connection can take from one source
// address to one destination.
func (p Ports) Size() int { return max(p.Hi-p.Lo+1-p.Reserved, 0) }

// Conntrack is the netfilter connection-tracking table: its size and the
// entries in it.
type Conntrack struct {
	Max, Count int
}

// System are the limits read from this machine; nil where the system has
// none or did not say (no conntrack module loaded, not Linux).
type System struct {
	Files     *Files
	Ports     *Ports
	Conntrack *Conntrack
	// TwReuse is net.ipv4.tcp_tw_reuse: 1 lets a new connection take a
	// port in TIME_WAIT, 2 (Linux's default) on loopback only; nil when
	// not said.
	TwReuse *int
}

// Check runs every check on s that applies and returns the soft
// open-files limit to raise to (0: no raise), and the failed checks' errors
// joined.
func Check(n Need, s System) (raiseTo uint64, err error) {
	var errs []error
	if s.Files != nil {
		var e error
		raiseTo, e = CheckFiles(n, *s.Files)
		errs = append(errs, e)
	}
	if s.Ports != nil {
		errs = append(errs, CheckPorts(n, *s.Ports, s.TwReuse))
	}
	if s.Conntrack != nil {
		errs = append(errs, CheckConntrack(n, *s.Conntrack))
	}
	errs = append(errs, CheckRoutes(n))
	return raiseTo, errors.Join(errs...)
}

// CheckFiles checks the open-files limit: a soft limit below the need is
// to be raised to the hard limit (Go raises it at start already; a
// parent's setting or a failed raise may have left it lower), and a hard
// limit below the need is an error naming ulimit -n and LimitNOFILE.
func CheckFiles(n Need, f Files) (raiseTo uint64, err error) {
	need := uint64(n.Files())
	switch {
	case need <= f.Cur:
		return 0, nil
	case need <= f.Max:
		return f.Max, nil
	}
	want := roundUp(need, 1024)
	users, idle := fmt.Sprintf("%d users", n.Users), ""
	if h := n.holding(); h < n.Users {
		users = fmt.Sprintf("%d users holding connections at once", h)
	} else {
		// Closing idle connections is the other way out.
		idle = "; or let users close idle connections while they think: idle_timeout (--idle-timeout) shorter than the think time"
	}
	return 0, fmt.Errorf("open files: this run may hold %d file descriptors (%s × %d destination(s) + %d for probes, logs and the run's files), above the hard limit of %d; raise it: `ulimit -n %d` in the shell that starts stampede (as root, or in /etc/security/limits.conf), LimitNOFILE=%d in a systemd unit, `--ulimit nofile=%d` with docker run%s",
		need, users, max(len(n.Dials), 1), n.Extra, f.Max, want, want, want, idle)
}

// CheckPorts checks that no source address needs more connections to one
// destination than the ephemeral range holds: a connection is named by its
// source address and port and its destination, so each (source,
// destination) pair has the range's ports to itself. The fix is more source
// addresses (--local-ips, any 127.x.y.z for a loopback destination) or a
// wider range.
//
// Ports of connections the users closed stay in TIME_WAIT for 60 s and
// count too, unless tcp_tw_reuse (twReuse: nil when unknown) lets new
// connections take them: 1, or 2 (the default) on loopback.
func CheckPorts(n Need, p Ports, twReuse *int) error {
	dests, loop := "the target", len(n.Dials) > 0
	if len(n.Dials) > 0 {
		dests = strings.Join(n.Dials, ", ")
	}
	for _, d := range n.Dials {
		loop = loop && isLoopback4(d)
	}
	srcs := max(len(n.Sources), 1)
	held, waiting := n.holding(), 0
	if reuse := twReuse != nil && (*twReuse == 1 || *twReuse == 2 && loop); !reuse {
		waiting = n.TimeWait()
	}
	per, size := (held+waiting+srcs-1)/srcs, p.Size()
	if per <= size {
		return nil
	}
	users := fmt.Sprintf("%d users connect", n.Users)
	if held < n.Users {
		users = fmt.Sprintf("%d users (%d at once, idle_timeout) connect", n.Users, held)
	}
	if waiting > 0 {
		users += fmt.Sprintf(", their closed connections leaving %d ports in TIME_WAIT (net.ipv4.tcp_tw_reuse off),", waiting)
	}
	msg := fmt.Sprintf("ephemeral ports: %s to %s from %d source address(es), %d from the busiest, but the port range %d-%d (net.ipv4.ip_local_port_range, less %d reserved) gives %d connections per source address and destination",
		users, dests, srcs, per, p.Lo, p.Hi, p.Reserved, size)
	if need := (held + waiting + size - 1) / max(size, 1); loop && size > 0 && need <= 254 {
		return fmt.Errorf("%s; spread the users over %d loopback addresses: --local-ips 127.0.0.1-127.0.0.%d (or load.local_ips in the scenario)", msg, need, need)
	}
	return fmt.Errorf("%s; widen the range: `sysctl -w net.ipv4.ip_local_port_range=\"1024 65535\"`, or spread the users over more addresses of this machine with --local-ips", msg)
}

// CheckConntrack checks that the conntrack table has room for the run's
// connections beside the entries already in it.
func CheckConntrack(n Need, c Conntrack) error {
	need, room := n.Conns(), c.Max-c.Count
	if need <= room {
		return nil
	}
	want := roundUp(uint64(c.Count+need), 65536)
	return fmt.Errorf("conntrack: this run may hold %d connections, but the connection-tracking table has room for %d more (nf_conntrack_max %d, %d entries in use), and a full table drops new connections; raise it: `sysctl -w net.netfilter.nf_conntrack_max=%d`",
		need, max(room, 0), c.Max, c.Count, want)
}

// CheckRoutes checks that every source address can reach every
// destination given as an address: a loopback source reaches only
// loopback, and an IPv4 source only IPv4. Destinations given by name are
// left to the dial.
func CheckRoutes(n Need) error {
	for _, d := range n.Dials {
		host, _, err := net.SplitHostPort(d)
		if err != nil {
			continue
		}
		dst, err := netip.ParseAddr(host)
		if err != nil {
			continue
		}
		dst = dst.Unmap()
		for _, s := range n.Sources {
			switch {
			case s.Is4() != dst.Is4():
				return fmt.Errorf("local IPs (--local-ips, load.local_ips): %s cannot connect to %s: one is IPv4, the other IPv6", s, d)
			case s.IsLoopback() && !dst.IsLoopback():
				return fmt.Errorf("local IPs (--local-ips, load.local_ips): %s is a loopback address, which cannot reach %s; give addresses of the interface that reaches the target", s, d)
			}
		}
	}
	return nil
}

// isLoopback4 reports whether a destination is on IPv4 loopback, where
// any 127.x.y.z can be a source address: an address in 127.0.0.0/8 or the
// name localhost.
func isLoopback4(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap().Is4() && a.IsLoopback()
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}

// roundUp rounds n up to a multiple of m.
func roundUp(n, m uint64) uint64 {
	if n > math.MaxUint64-m {
		return n
	}
	return (n + m - 1) / m * m
}
