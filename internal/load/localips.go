package load

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// LocalIPs is the pool of source addresses the virtual users dial from
// (k6's --local-ips): the i-th user of this generator (its slot, from 0)
// opens every connection from address i mod Len. A pool spreads the users
// over several source addresses, each with its own ephemeral ports: on
// loopback, 127.0.0.1-127.0.0.8 gives eight times the connections one
// address can hold towards the same host and port.
type LocalIPs struct {
	spec   string
	blocks []ipBlock
	n      uint64 // addresses in all blocks, saturated at MaxUint64
}

// ipBlock is a run of consecutive addresses.
type ipBlock struct {
	first netip.Addr
	count uint64 // saturated at MaxUint64 (a large IPv6 network)
}

// ParseLocalIPs parses k6's --local-ips syntax: addresses, ranges
// (127.0.0.1-127.0.0.8, both ends included) and CIDR networks
// (127.0.0.0/29), separated by commas. As in k6, an IPv4 network larger
// than /31 leaves out its first and last addresses (the network and
// broadcast addresses): 127.0.0.0/29 is 127.0.0.1 to 127.0.0.6. Errors
// quote the item at fault.
func ParseLocalIPs(s string) (*LocalIPs, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("empty: want addresses, ranges or CIDR networks separated by commas, e.g. 127.0.0.1-127.0.0.8")
	}
	l := &LocalIPs{}
	var norm []string
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		b, err := parseIPBlock(item)
		if err != nil {
			if item == "" {
				return nil, fmt.Errorf("%q: an empty item (two commas, or one at an end)", s)
			}
			return nil, fmt.Errorf("%q: %w", item, err)
		}
		l.blocks = append(l.blocks, b)
		l.n = addSat(l.n, b.count)
		norm = append(norm, item)
	}
	l.spec = strings.Join(norm, ",")
	return l, nil
}

func parseIPBlock(item string) (ipBlock, error) {
	if lo, hi, ok := strings.Cut(item, "-"); ok {
		a, err := parseSource(strings.TrimSpace(lo))
		if err != nil {
			return ipBlock{}, err
		}
		b, err := parseSource(strings.TrimSpace(hi))
		if err != nil {
			return ipBlock{}, err
		}
		if a.Is4() != b.Is4() {
			return ipBlock{}, errors.New("a range from an IPv4 to an IPv6 address")
		}
		if a.Zone() != "" || b.Zone() != "" {
			return ipBlock{}, errors.New("a range of addresses with a zone (%): give the address alone")
		}
		if b.Less(a) {
			return ipBlock{}, errors.New("the range ends before it starts")
		}
		return ipBlock{first: a, count: addSat(distance(a, b), 1)}, nil
	}
	if strings.Contains(item, "/") {
		p, err := netip.ParsePrefix(item)
		if err != nil {
			return ipBlock{}, errors.New("not an address, a range (A-B) or a CIDR network (A/N)")
		}
		p = p.Masked()
		first := p.Addr()
		hostBits := first.BitLen() - p.Bits()
		var count uint64 = math.MaxUint64
		if hostBits < 64 {
			count = 1 << hostBits
		}
		if first.Is4() && count > 2 {
			first, count = first.Next(), count-2
		}
		if err := checkSource(first); err != nil {
			return ipBlock{}, err
		}
		return ipBlock{first: first, count: count}, nil
	}
	a, err := parseSource(item)
	if err != nil {
		return ipBlock{}, err
	}
	return ipBlock{first: a, count: 1}, nil
}

// parseSource parses one source address.
func parseSource(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, errors.New("not an address, a range (A-B) or a CIDR network (A/N)")
	}
	a = a.Unmap()
	return a, checkSource(a)
}

// checkSource refuses the addresses a connection cannot come from.
func checkSource(a netip.Addr) error {
	if a.IsUnspecified() || a.IsMulticast() || (a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255})) {
		return fmt.Errorf("%s cannot be a connection's source address", a)
	}
	return nil
}

// distance returns b - a (b not before a, same family), saturated.
func distance(a, b netip.Addr) uint64 {
	if a.Is4() {
		x, y := a.As4(), b.As4()
		return uint64(binary.BigEndian.Uint32(y[:]) - binary.BigEndian.Uint32(x[:]))
	}
	x, y := a.As16(), b.As16()
	hi := binary.BigEndian.Uint64(y[:8]) - binary.BigEndian.Uint64(x[:8])
	lo, borrow := bits.Sub64(binary.BigEndian.Uint64(y[8:]), binary.BigEndian.Uint64(x[8:]), 0)
	if hi-borrow != 0 {
		return math.MaxUint64
	}
	return lo
}

// add returns a + k, within the block (k < count).
func add(a netip.Addr, k uint64) netip.Addr {
	if a.Is4() {
		x := a.As4()
		binary.BigEndian.PutUint32(x[:], binary.BigEndian.Uint32(x[:])+uint32(k))
		return netip.AddrFrom4(x)
	}
	x := a.As16()
	lo, carry := bits.Add64(binary.BigEndian.Uint64(x[8:]), k, 0)
	hi := binary.BigEndian.Uint64(x[:8]) + carry
	binary.BigEndian.PutUint64(x[:8], hi)
	binary.BigEndian.PutUint64(x[8:], lo)
	return netip.AddrFrom16(x).WithZone(a.Zone())
}

func addSat(a, b uint64) uint64 {
	if s, c := bits.Add64(a, b, 0); c == 0 {
		return s
	}
	return math.MaxUint64
}

// Len is the number of addresses in the pool, at most math.MaxInt.
func (l *LocalIPs) Len() int {
	if l == nil {
		return 0
	}
	return int(min(l.n, math.MaxInt))
}

// At returns the pool's address i mod Len; the zero Addr for a nil pool.
func (l *LocalIPs) At(i int) netip.Addr {
	if l == nil || l.n == 0 || i < 0 {
		return netip.Addr{}
	}
	k := uint64(i) % l.n
	for _, b := range l.blocks {
		if k < b.count {
			return add(b.first, k)
		}
		k -= b.count
	}
	return netip.Addr{} // unreachable: k < n
}

// Used returns the addresses users users dial from: the first
// min(users, Len) of the pool, in order.
func (l *LocalIPs) Used(users int) []netip.Addr {
	n := min(users, l.Len())
	out := make([]netip.Addr, 0, max(n, 0))
	for i := 0; i < n; i++ {
		out = append(out, l.At(i))
	}
	return out
}

// String returns the pool as it was given, spaces removed.
func (l *LocalIPs) String() string {
	if l == nil {
		return ""
	}
	return l.spec
}

// Dials returns the host:port addresses the plan's users connect to: the
// target's and those of the steps' absolute URLs whose host is written out
// (not a template), each mapped through Hosts, in order of first mention.
// The preflight counts the connections a run holds from them.
func (p *Plan) Dials() []string {
	var out []string
	seen := map[string]bool{}
	addHost := func(u *url.URL) {
		if u == nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return
		}
		port := u.Port()
		if port == "" {
			port = "80"
			if u.Scheme == "https" {
				port = "443"
			}
		}
		a := p.Hosts.Map(net.JoinHostPort(u.Hostname(), port))
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	addHost(p.Target)
	for _, s := range p.allSteps() {
		if len(s.URL) == 0 || !s.URL[0].lit {
			continue
		}
		raw := s.URL[0].s
		if !strings.HasPrefix(raw, "http://") && !strings.HasPrefix(raw, "https://") {
			continue
		}
		if len(s.URL) > 1 {
			// The host must be whole in the literal part: "http://{{h}}/" is
			// not a host, "http://a.test/{{p}}" is.
			rest := raw[strings.Index(raw, "//")+2:]
			if !strings.ContainsAny(rest, "/?#") {
				continue
			}
		}
		if u, err := url.Parse(raw); err == nil {
			addHost(u)
		}
	}
	return out
}
