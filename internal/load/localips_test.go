package load

import (
	"math"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestParseLocalIPs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want []string // the first addresses, in order
		last string   // the address at Len-1
	}{
		{"127.0.0.1", 1, []string{"127.0.0.1", "127.0.0.1"}, "127.0.0.1"},
		{"127.0.0.1-127.0.0.4", 4, []string{"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.1"}, "127.0.0.4"},
		{" 127.0.0.1 - 127.0.0.2 , 10.0.0.9 ", 3, []string{"127.0.0.1", "127.0.0.2", "10.0.0.9", "127.0.0.1"}, "10.0.0.9"},
		// As k6: an IPv4 network larger than /31 without its network and
		// broadcast addresses.
		{"127.0.0.0/29", 6, []string{"127.0.0.1", "127.0.0.2"}, "127.0.0.6"},
		{"127.0.0.8/30", 2, []string{"127.0.0.9", "127.0.0.10", "127.0.0.9"}, "127.0.0.10"},
		{"10.0.0.4/31", 2, []string{"10.0.0.4", "10.0.0.5"}, "10.0.0.5"},
		{"10.0.0.4/32", 1, []string{"10.0.0.4"}, "10.0.0.4"},
		{"127.0.0.5/29", 6, []string{"127.0.0.1"}, "127.0.0.6"}, // masked to its network
		{"10.0.0.255-10.0.1.1", 3, []string{"10.0.0.255", "10.0.1.0", "10.0.1.1"}, "10.0.1.1"},
		{"127.0.0.1,127.0.0.0/30,::1", 4, []string{"127.0.0.1", "127.0.0.1", "127.0.0.2", "::1", "127.0.0.1"}, "::1"},
		{"fd00::fe-fd00::101", 4, []string{"fd00::fe", "fd00::ff", "fd00::100", "fd00::101"}, "fd00::101"},
		{"::ffff:127.0.0.3", 1, []string{"127.0.0.3"}, "127.0.0.3"},
		{"fd00::/126", 4, []string{"fd00::", "fd00::1"}, "fd00::3"},
		{"fe80::1%lo", 1, []string{"fe80::1%lo"}, "fe80::1%lo"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			l, err := ParseLocalIPs(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if l.Len() != tc.n {
				t.Errorf("Len %d, want %d", l.Len(), tc.n)
			}
			var got []string
			for i := range tc.want {
				got = append(got, l.At(i).String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("At(0..) %v, want %v", got, tc.want)
			}
			if g := l.At(l.Len() - 1).String(); g != tc.last {
				t.Errorf("At(Len-1) %s, want %s", g, tc.last)
			}
		})
	}
}

// A network too large to count saturates: every user still gets an
// address, in order.
func TestLocalIPsHugeNetwork(t *testing.T) {
	l, err := ParseLocalIPs("2001:db8::/32,127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if l.Len() != math.MaxInt {
		t.Errorf("Len %d, want MaxInt", l.Len())
	}
	if got := l.At(70000).String(); got != "2001:db8::1:1170" {
		t.Errorf("At(70000) %s", got)
	}
	l, err = ParseLocalIPs("10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	if l.Len() != 1<<24-2 {
		t.Errorf("10.0.0.0/8: Len %d", l.Len())
	}
	if got := l.Used(3); len(got) != 3 || got[2] != netip.MustParseAddr("10.0.0.3") {
		t.Errorf("Used(3) %v", got)
	}
}

func TestParseLocalIPsErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "empty"},
		{"  ", "empty"},
		{"127.0.0.1,", "empty item"},
		{"127.0.0.1,,127.0.0.2", "empty item"},
		{"127.0.0.300", `"127.0.0.300": not an address`},
		{"localhost", `"localhost": not an address`},
		{"127.0.0.1-", `"127.0.0.1-": not an address`},
		{"127.0.0.4-127.0.0.1", `"127.0.0.4-127.0.0.1": the range ends before it starts`},
		{"127.0.0.1-::1", "from an IPv4 to an IPv6"},
		{"127.0.0.0/33", `"127.0.0.0/33": not an address`},
		{"127.0.0.1/8/2", "not an address"},
		{"0.0.0.0", "cannot be a connection's source address"},
		{"0.0.0.0/31", "cannot be a connection's source address"},
		{"224.0.0.1", "cannot be a connection's source address"},
		{"255.255.255.255", "cannot be a connection's source address"},
		{"::", "cannot be a connection's source address"},
		{"127.0.0.1,ff02::1", `"ff02::1"`},
		{"fe80::1%lo-fe80::2%lo", "zone"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			l, err := ParseLocalIPs(tc.in)
			if err == nil {
				t.Fatalf("no error; got %d addresses", l.Len())
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestLocalIPsNil(t *testing.T) {
	var l *LocalIPs
	if l.Len() != 0 || l.At(3).IsValid() || len(l.Used(5)) != 0 || l.String() != "" {
		t.Error("a nil pool must be empty")
	}
}

// The scenario's load.local_ips reaches the plan; an error names the field
// and its line.
func TestScenarioLocalIPs(t *testing.T) {
	sc, err := ParseScenario("s.yaml", []byte("target: http://127.0.0.1:1\nload: {users: 8, local_ips: \"127.0.0.1-127.0.0.4\"}\ntasks: [{steps: [{get: /}]}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := sc.Compile()
	if err != nil {
		t.Fatal(err)
	}
	if p.LocalIPs.Len() != 4 || p.LocalIPs.String() != "127.0.0.1-127.0.0.4" {
		t.Errorf("plan local IPs %q (%d)", p.LocalIPs, p.LocalIPs.Len())
	}
	sc, err = ParseScenario("s.yaml", []byte("target: http://127.0.0.1:1\nload:\n  users: 8\n  local_ips: 127.0.0.9-127.0.0.1\ntasks: [{steps: [{get: /}]}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = sc.Compile()
	if err == nil || !strings.Contains(err.Error(), "s.yaml:4:") || !strings.Contains(err.Error(), `load.local_ips: "127.0.0.9-127.0.0.1": the range ends before it starts`) {
		t.Errorf("error %v", err)
	}
}

func TestPlanDials(t *testing.T) {
	sc, err := ParseScenario("s.yaml", []byte(`target: http://app.test:8000
hosts: {app.test: 127.0.0.1}
load: {users: 1}
on_start: [{get: /login}]
tasks:
  - steps:
      - {get: "https://cdn.test/x.js"}
      - {get: "http://[::1]:9000/{{vu}}"}
      - {get: "http://app{{vu}}.test/"}
      - {get: "http://127.0.0.2/"}
      - {get: "/{{vu}}"}
      - {get: "http://app.test:8000/again"}
`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := sc.Compile()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"127.0.0.1:8000", "cdn.test:443", "[::1]:9000", "127.0.0.2:80"}
	if got := p.Dials(); !slices.Equal(got, want) {
		t.Errorf("Dials %v, want %v", got, want)
	}
	q, err := QuickPlan("http://localhost/x", 1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := q.Dials(); !slices.Equal(got, []string{"localhost:80"}) {
		t.Errorf("quick Dials %v", got)
	}
}
