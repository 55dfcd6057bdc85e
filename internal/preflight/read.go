package preflight

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// The files of /proc/sys the checks read.
const (
	portRangeFile      = "net/ipv4/ip_local_port_range"
	reservedPortsFile  = "net/ipv4/ip_local_reserved_ports"
	conntrackMaxFile   = "net/netfilter/nf_conntrack_max"
	conntrackCountFile = "net/netfilter/nf_conntrack_count"
	twReuseFile        = "net/ipv4/tcp_tw_reuse"
)

// Read reads this machine's limits: the process's open-files limit and,
// from /proc/sys, the ephemeral port range and the conntrack table (absent
// when the module is not loaded).
func Read() (System, error) {
	s, err := ReadProc(os.DirFS("/proc/sys"))
	if err != nil {
		return s, err
	}
	s.Files = readFiles()
	return s, nil
}

// ReadProc reads the ephemeral port range and the conntrack table from
// fsys, a /proc/sys. A file that does not exist leaves its part nil (not
// Linux, no conntrack); one that cannot be parsed is an error.
func ReadProc(fsys fs.FS) (System, error) {
	var s System
	if b, err := fs.ReadFile(fsys, portRangeFile); err == nil {
		p, err := ParsePortRange(string(b))
		if err != nil {
			return s, fmt.Errorf("preflight: /proc/sys/%s: %w", portRangeFile, err)
		}
		if b, err := fs.ReadFile(fsys, reservedPortsFile); err == nil {
			if p.Reserved, err = ParseReserved(string(b), p.Lo, p.Hi); err != nil {
				return s, fmt.Errorf("preflight: /proc/sys/%s: %w", reservedPortsFile, err)
			}
		}
		s.Ports = &p
	} else if !errors.Is(err, fs.ErrNotExist) {
		return s, fmt.Errorf("preflight: %w", err)
	}
	bm, errMax := fs.ReadFile(fsys, conntrackMaxFile)
	bc, errCount := fs.ReadFile(fsys, conntrackCountFile)
	if errMax == nil && errCount == nil {
		m, err1 := strconv.Atoi(strings.TrimSpace(string(bm)))
		c, err2 := strconv.Atoi(strings.TrimSpace(string(bc)))
		if err := errors.Join(err1, err2); err != nil {
			return s, fmt.Errorf("preflight: /proc/sys/net/netfilter: %w", err)
		}
		s.Conntrack = &Conntrack{Max: m, Count: c}
	}
	if b, err := fs.ReadFile(fsys, twReuseFile); err == nil {
		v, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			return s, fmt.Errorf("preflight: /proc/sys/%s: %w", twReuseFile, err)
		}
		s.TwReuse = &v
	}
	return s, nil
}

// ParsePortRange parses ip_local_port_range: "32768\t60999".
func ParsePortRange(s string) (Ports, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return Ports{}, fmt.Errorf("%q: want two ports", s)
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || lo < 1 || hi > 65535 || lo > hi {
		return Ports{}, fmt.Errorf("%q: want two ports, the first not above the second", s)
	}
	return Ports{Lo: lo, Hi: hi}, nil
}

// ParseReserved counts the ports of ip_local_reserved_ports ("8080,9000-9010",
// or empty) that fall within lo..hi.
func ParseReserved(s string, lo, hi int) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	n := 0
	for _, item := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(strings.TrimSpace(item), "-")
		x, err1 := strconv.Atoi(a)
		y, err2 := x, error(nil)
		if isRange {
			y, err2 = strconv.Atoi(b)
		}
		if err1 != nil || err2 != nil || x > y {
			return 0, fmt.Errorf("%q: want ports and ranges of ports separated by commas", item)
		}
		// Ranges do not overlap in the kernel's list: the counts add up.
		if x, y = max(x, lo), min(y, hi); x <= y {
			n += y - x + 1
		}
	}
	return n, nil
}

// CheckBind checks that each address is one of this machine's: one a
// socket cannot be bound to is an error, before any user dials from it.
func CheckBind(addrs []netip.Addr) error {
	var bad []string
	var first error
	for _, a := range addrs {
		l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: a.AsSlice(), Zone: a.Zone()})
		if err != nil {
			if first == nil {
				first = err
			}
			bad = append(bad, a.String())
			continue
		}
		l.Close()
	}
	if len(bad) == 0 {
		return nil
	}
	list := strings.Join(bad[:min(len(bad), 5)], ", ")
	if len(bad) > 5 {
		list += fmt.Sprintf(" and %d more", len(bad)-5)
	}
	var oe *net.OpError
	if errors.As(first, &oe) {
		first = oe.Err
	}
	return fmt.Errorf("local IPs (--local-ips, load.local_ips): %s: not an address of this machine (%v); give addresses of its interfaces (ip -brief address), any of 127.0.0.0/8 on loopback", list, first)
}
