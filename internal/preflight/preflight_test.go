package preflight

import (
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// addrs parses addresses for a test's table.
func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// debianPorts is Debian's default range, 28232 ports.
var debianPorts = Ports{Lo: 32768, Hi: 60999}

func TestCheckFiles(t *testing.T) {
	for _, tc := range []struct {
		name  string
		need  Need
		files Files
		raise uint64
		err   []string // substrings of the error; nil: no error
	}{
		{"under the soft limit", Need{Users: 900, Dials: []string{"127.0.0.1:80"}, Extra: 64}, Files{Cur: 1024, Max: 4096}, 0, nil},
		{"at the soft limit", Need{Users: 960, Dials: []string{"127.0.0.1:80"}, Extra: 64}, Files{Cur: 1024, Max: 4096}, 0, nil},
		{"soft raised to hard", Need{Users: 961, Dials: []string{"127.0.0.1:80"}, Extra: 64}, Files{Cur: 1024, Max: 4096}, 4096, nil},
		{"two destinations each", Need{Users: 2000, Dials: []string{"a:80", "b:443"}, Extra: 64}, Files{Cur: 4063, Max: 4064}, 4064, nil},
		{"unlimited hard", Need{Users: 100000, Extra: 64}, Files{Cur: 1024, Max: math.MaxUint64}, math.MaxUint64, nil},
		{"hard too low", Need{Users: 30000, Dials: []string{"127.0.0.1:80"}, Extra: 64}, Files{Cur: 19999, Max: 20000}, 0,
			[]string{"30064 file descriptors", "hard limit of 20000", "ulimit -n 30720", "LimitNOFILE=30720", "nofile=30720"}},
		{"no destination counts one", Need{Users: 5000, Extra: 64}, Files{Cur: 4096, Max: 4096}, 0, []string{"5064 file descriptors", "5000 users × 1 destination(s) + 64"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raise, err := CheckFiles(tc.need, tc.files)
			if raise != tc.raise {
				t.Errorf("raise to %d, want %d", raise, tc.raise)
			}
			checkErr(t, err, tc.err)
		})
	}
}

func TestCheckPorts(t *testing.T) {
	loop := []string{"127.0.0.1:8000"}
	reuse0, reuse1, reuse2 := 0, 1, 2
	for _, tc := range []struct {
		name  string
		need  Need
		ports Ports
		reuse *int // tcp_tw_reuse
		err   []string
	}{
		{"fits exactly", Need{Users: 28232, Dials: loop}, debianPorts, nil, nil},
		{"one over", Need{Users: 28233, Dials: loop}, debianPorts, nil,
			[]string{"28233 users connect to 127.0.0.1:8000 from 1 source address(es)", "32768-60999", "gives 28232", "--local-ips 127.0.0.1-127.0.0.2"}},
		{"100k on loopback", Need{Users: 100000, Dials: loop}, debianPorts, nil, []string{"over 4 loopback addresses: --local-ips 127.0.0.1-127.0.0.4"}},
		{"100k over 4 addresses", Need{Users: 100000, Dials: loop, Sources: addrs("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4")}, debianPorts, nil, nil},
		{"100k over 3 addresses", Need{Users: 100000, Dials: loop, Sources: addrs("127.0.0.1", "127.0.0.2", "127.0.0.3")}, debianPorts, nil,
			[]string{"from 3 source address(es), 33334 from the busiest", "--local-ips 127.0.0.1-127.0.0.4"}},
		{"localhost is loopback", Need{Users: 60000, Dials: []string{"localhost:8000"}}, debianPorts, nil, []string{"--local-ips 127.0.0.1-127.0.0.3"}},
		{"IPv6 loopback has one address", Need{Users: 60000, Dials: []string{"[::1]:8000"}}, debianPorts, nil, []string{`sysctl -w net.ipv4.ip_local_port_range="1024 65535"`}},
		{"remote target", Need{Users: 30000, Dials: []string{"10.0.0.5:80"}}, debianPorts, nil, []string{"10.0.0.5:80", "sysctl -w net.ipv4.ip_local_port_range"}},
		{"one remote of two", Need{Users: 30000, Dials: []string{"127.0.0.1:80", "cdn.test:443"}}, debianPorts, nil, []string{"127.0.0.1:80, cdn.test:443", "sysctl -w"}},
		{"reserved ports count", Need{Users: 28230, Dials: loop}, Ports{Lo: 32768, Hi: 60999, Reserved: 3}, nil, []string{"less 3 reserved", "gives 28229"}},
		{"wide range", Need{Users: 64512, Dials: loop}, Ports{Lo: 1024, Hi: 65535}, nil, nil},
		// 100,000 users thinking 1-3 min, closing connections idle 10 s:
		// 12,500 hold one at once, 833 close a second.
		{"100k holding 12.5k", Need{Users: 100000, Dials: loop, Held: 12500, Closes: 833}, debianPorts, &reuse2, nil},
		{"TIME_WAIT reused on loopback (2)", Need{Users: 100000, Dials: loop, Held: 12500, Closes: 833}, debianPorts, &reuse2, nil},
		{"TIME_WAIT unknown counts", Need{Users: 100000, Dials: loop, Held: 12500, Closes: 833}, debianPorts, nil,
			[]string{"100000 users (12500 at once, idle_timeout) connect, their closed connections leaving 49980 ports in TIME_WAIT", "--local-ips 127.0.0.1-127.0.0.3"}},
		{"TIME_WAIT counts off loopback with 2", Need{Users: 100000, Dials: []string{"10.0.0.5:80"}, Held: 12500, Closes: 833}, debianPorts, &reuse2,
			[]string{"49980 ports in TIME_WAIT", "62480 from the busiest", "sysctl -w"}},
		{"TIME_WAIT reused anywhere with 1", Need{Users: 100000, Dials: []string{"10.0.0.5:80"}, Held: 12500, Closes: 833}, debianPorts, &reuse1, nil},
		{"TIME_WAIT with reuse off", Need{Users: 20000, Dials: loop, Held: 2500, Closes: 200}, debianPorts, &reuse0, nil},
		{"held above users is users", Need{Users: 28233, Dials: loop, Held: 50000}, debianPorts, &reuse2, []string{"28233 users connect to"}},
	} {
		t.Run(tc.name, func(t *testing.T) { checkErr(t, CheckPorts(tc.need, tc.ports, tc.reuse), tc.err) })
	}
}

func TestCheckConntrack(t *testing.T) {
	for _, tc := range []struct {
		name string
		need Need
		ct   Conntrack
		err  []string
	}{
		{"room", Need{Users: 1000, Dials: []string{"127.0.0.1:80"}}, Conntrack{Max: 262144, Count: 1530}, nil},
		{"exactly the room", Need{Users: 260614}, Conntrack{Max: 262144, Count: 1530}, nil},
		{"full", Need{Users: 260615}, Conntrack{Max: 262144, Count: 1530},
			[]string{"260615 connections", "room for 260614 more", "nf_conntrack_max 262144, 1530 entries", "sysctl -w net.netfilter.nf_conntrack_max=327680"}},
		{"two destinations", Need{Users: 100000, Dials: []string{"a:80", "b:80"}}, Conntrack{Max: 65536, Count: 0}, []string{"200000 connections", "nf_conntrack_max=262144"}},
		{"over full already", Need{Users: 1}, Conntrack{Max: 100, Count: 120}, []string{"room for 0 more"}},
	} {
		t.Run(tc.name, func(t *testing.T) { checkErr(t, CheckConntrack(tc.need, tc.ct), tc.err) })
	}
}

func TestCheckRoutes(t *testing.T) {
	for _, tc := range []struct {
		name string
		need Need
		err  []string
	}{
		{"no sources", Need{Dials: []string{"10.0.0.5:80"}}, nil},
		{"loopback to loopback", Need{Sources: addrs("127.0.0.2", "127.0.0.3"), Dials: []string{"127.0.0.1:80"}}, nil},
		{"names are left to the dial", Need{Sources: addrs("127.0.0.2"), Dials: []string{"app.test:80"}}, nil},
		{"loopback to remote", Need{Sources: addrs("127.0.0.2"), Dials: []string{"127.0.0.1:80", "10.0.0.5:80"}}, []string{"127.0.0.2 is a loopback address, which cannot reach 10.0.0.5:80"}},
		{"IPv4 to IPv6", Need{Sources: addrs("127.0.0.2"), Dials: []string{"[::1]:80"}}, []string{"127.0.0.2 cannot connect to [::1]:80"}},
		{"IPv6 to IPv4", Need{Sources: addrs("::1"), Dials: []string{"127.0.0.1:80"}}, []string{"::1 cannot connect"}},
		{"remote to remote", Need{Sources: addrs("10.0.0.2"), Dials: []string{"10.0.0.5:80"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) { checkErr(t, CheckRoutes(tc.need), tc.err) })
	}
}

// Check runs the checks whose values the system gave, and joins their
// errors.
func TestCheck(t *testing.T) {
	need := Need{Users: 100000, Dials: []string{"127.0.0.1:8000"}, Extra: 64}
	raise, err := Check(need, System{})
	if raise != 0 || err != nil {
		t.Errorf("no values: raise %d, %v", raise, err)
	}
	raise, err = Check(need, System{Files: &Files{Cur: 1024, Max: 20000}, Ports: &debianPorts, Conntrack: &Conntrack{Max: 65536}})
	if raise != 0 {
		t.Errorf("raise %d with a failing hard limit", raise)
	}
	checkErr(t, err, []string{"open files:", "ulimit -n", "ephemeral ports:", "--local-ips 127.0.0.1-127.0.0.4", "conntrack:", "nf_conntrack_max"})
	raise, err = Check(Need{Users: 5000, Extra: 64}, System{Files: &Files{Cur: 1024, Max: 1 << 20}, Ports: &debianPorts})
	if raise != 1<<20 || err != nil {
		t.Errorf("raise %d, %v; want 1<<20, nil", raise, err)
	}
}

func TestReadProc(t *testing.T) {
	for _, tc := range []struct {
		dir   string
		ports *Ports
		ct    *Conntrack
		err   string
	}{
		{"debian", &Ports{Lo: 32768, Hi: 60999}, nil, ""},
		// 8080 and 9000-9010 are in the range, 70-80 is not.
		{"conntrack", &Ports{Lo: 1024, Hi: 65535, Reserved: 12}, &Conntrack{Max: 262144, Count: 1530}, ""},
		{"none", nil, nil, ""},
		{"badrange", nil, nil, "ip_local_port_range"},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			s, err := ReadProc(os.DirFS(filepath.Join("testdata", tc.dir)))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one naming %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (s.Ports == nil) != (tc.ports == nil) || (s.Ports != nil && *s.Ports != *tc.ports) {
				t.Errorf("ports %+v, want %+v", s.Ports, tc.ports)
			}
			if (s.Conntrack == nil) != (tc.ct == nil) || (s.Conntrack != nil && *s.Conntrack != *tc.ct) {
				t.Errorf("conntrack %+v, want %+v", s.Conntrack, tc.ct)
			}
			if s.Files != nil {
				t.Error("ReadProc read the open-files limit")
			}
		})
	}
}

func TestParsePorts(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Ports
		err  bool
	}{
		{"32768\t60999\n", Ports{Lo: 32768, Hi: 60999}, false},
		{"1024 65535", Ports{Lo: 1024, Hi: 65535}, false},
		{"60999 32768", Ports{}, true},
		{"0 100", Ports{}, true},
		{"1024", Ports{}, true},
		{"a b", Ports{}, true},
		{"1024 70000", Ports{}, true},
	} {
		got, err := ParsePortRange(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParsePortRange(%q) = %+v, %v", tc.in, got, err)
		}
	}
	for _, tc := range []struct {
		in   string
		want int
		err  bool
	}{
		{"", 0, false},
		{"\n", 0, false},
		{"8080", 1, false},
		{"8080,9000-9010", 12, false},
		{"100-200,32760-32770,60990-61010", 3 + 10, false}, // clipped to 32768-60999
		{"9010-9000", 0, true},
		{"80,x", 0, true},
	} {
		got, err := ParseReserved(tc.in, 32768, 60999)
		if tc.in == "8080" || tc.in == "8080,9000-9010" {
			got, err = ParseReserved(tc.in, 1024, 65535)
		}
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseReserved(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

// Any 127.x.y.z is this machine's on Linux loopback; TEST-NET-3 is nobody's.
func TestCheckBind(t *testing.T) {
	if err := CheckBind(addrs("127.0.0.1", "127.0.0.2", "127.0.0.254")); err != nil {
		t.Errorf("loopback: %v", err)
	}
	if err := CheckBind(nil); err != nil {
		t.Errorf("no address: %v", err)
	}
	err := CheckBind(addrs("127.0.0.2", "203.0.113.1", "203.0.113.2"))
	checkErr(t, err, []string{"203.0.113.1, 203.0.113.2: not an address of this machine", "ip -brief address"})
	if err != nil && strings.Contains(err.Error(), "127.0.0.2") {
		t.Errorf("error names a good address: %v", err)
	}
	var many []string
	for i := 1; i <= 7; i++ {
		many = append(many, "203.0.113."+string(rune('0'+i)))
	}
	checkErr(t, CheckBind(addrs(many...)), []string{"203.0.113.5 and 2 more"})
}

// checkErr checks that err contains each of want, or that it is nil when
// want is.
func checkErr(t *testing.T, err error, want []string) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Errorf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error; want one with %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
}
