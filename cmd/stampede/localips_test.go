package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stampede-load/stampede/internal/rundir"
	"github.com/stampede-load/stampede/internal/testserver"
)

// sources is a target that records the source address of every connection
// it accepts and of every request that names its user (?vu=N).
type sources struct {
	mu    sync.Mutex
	conns map[string]int          // source address → connections
	users map[int]map[string]bool // vu → source addresses
	next  http.Handler
}

func newSources(next http.Handler) (*sources, *httptest.Server) {
	s := &sources{conns: map[string]int{}, users: map[int]map[string]bool{}, next: next}
	ts := httptest.NewUnstartedServer(s)
	ts.Config.ConnState = func(c net.Conn, st http.ConnState) {
		if st == http.StateNew {
			host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			s.mu.Lock()
			s.conns[host]++
			s.mu.Unlock()
		}
	}
	ts.Start()
	return s, ts
}

func (s *sources) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if vu, err := strconv.Atoi(r.URL.Query().Get("vu")); err == nil {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		s.mu.Lock()
		if s.users[vu] == nil {
			s.users[vu] = map[string]bool{}
		}
		s.users[vu][host] = true
		s.mu.Unlock()
	}
	s.next.ServeHTTP(w, r)
}

// runLocal runs stampede with args and fails the test unless it succeeds;
// it returns the run directory's meta.json.
func runLocal(t *testing.T, args ...string) *rundir.Meta {
	t.Helper()
	out := filepath.Join(t.TempDir(), "run")
	cmd := stampedeCmd(append(args, "--quiet", "--no-diagnose", "--out", out)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("run: %v\n%s", err, b)
	}
	meta, err := rundir.ReadMeta(out)
	if err != nil {
		t.Fatal(err)
	}
	return meta
}

// 8 users from --local-ips 127.0.0.1-127.0.0.4: the quick form's users
// (one kept-alive connection each) come from 4 addresses, 2 each.
func TestLocalIPsQuickForm(t *testing.T) {
	s, ts := newSources(testserver.New("x"))
	defer ts.Close()
	meta := runLocal(t, "run", "--url", ts.URL+"/", "-u", "8", "-r", "100", "-t", "1s", "--local-ips", "127.0.0.1-127.0.0.4")
	ts.Close() // no connection is opened after this
	s.mu.Lock()
	defer s.mu.Unlock()
	want := map[string]int{"127.0.0.1": 2, "127.0.0.2": 2, "127.0.0.3": 2, "127.0.0.4": 2}
	if fmt.Sprint(s.conns) != fmt.Sprint(want) {
		t.Errorf("connections by source address %v, want %v", s.conns, want)
	}
	if meta.Load.SourceIPs != 4 {
		t.Errorf("meta.json source_ips %d, want 4", meta.Load.SourceIPs)
	}
}

// A scenario's logged-in browsers: user N dials every connection from
// address (N-1) mod 4, with --local-ips or the scenario's load.local_ips.
func TestLocalIPsScenario(t *testing.T) {
	for _, tc := range []struct{ name, field, flag string }{
		{"flag", "", "127.0.0.1-127.0.0.4"},
		{"scenario", "127.0.0.0/29", ""}, // 127.0.0.1-127.0.0.6: 8 users, the first 2 twice
		{"flag over scenario", "10.0.0.0/8", "127.0.0.1-127.0.0.4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ts := newSources(testserver.New("pw"))
			defer ts.Close()
			load := "{users: 8, spawn_rate: 100, duration: 1500ms}"
			if tc.field != "" {
				load = fmt.Sprintf("{users: 8, spawn_rate: 100, duration: 1500ms, local_ips: %q}", tc.field)
			}
			sc := filepath.Join(t.TempDir(), "s.yaml")
			yml := fmt.Sprintf(`target: %s
load: %s
think: 50ms
on_start:
  - {name: login form, get: "/accounts/login/?vu={{vu}}"}
  - name: login
    submit_form: {fields: {login: "user{{vu}}", password: pw}}
    expect: {status: [302], not_login_page: true}
tasks:
  - steps: [{name: dashboard, get: "/dashboard/?vu={{vu}}", expect: {body_contains: "user"}}]
`, ts.URL, load)
			if err := os.WriteFile(sc, []byte(yml), 0o644); err != nil {
				t.Fatal(err)
			}
			args := []string{"run", sc}
			if tc.flag != "" {
				args = append(args, "--local-ips", tc.flag)
			}
			meta := runLocal(t, args...)
			ts.Close()
			n := 4
			if tc.flag == "" {
				n = 6
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			perAddr := map[string]int{}
			for vu := 1; vu <= 8; vu++ {
				want := fmt.Sprintf("127.0.0.%d", (vu-1)%n+1)
				got := s.users[vu]
				if len(got) != 1 || !got[want] {
					t.Errorf("user %d came from %v, want %s only", vu, got, want)
				}
				perAddr[want]++
			}
			if len(s.users) != 8 {
				t.Errorf("%d users seen, want 8", len(s.users))
			}
			if tc.flag != "" && fmt.Sprint(perAddr) != "map[127.0.0.1:2 127.0.0.2:2 127.0.0.3:2 127.0.0.4:2]" {
				t.Errorf("users by address %v", perAddr)
			}
			for addr := range s.conns {
				if _, ok := perAddr[addr]; !ok {
					t.Errorf("a connection from %s, no user's address", addr)
				}
			}
			if meta.Load.SourceIPs != n {
				t.Errorf("meta.json source_ips %d, want %d", meta.Load.SourceIPs, n)
			}
		})
	}
}

// A bad --local-ips or load.local_ips, or an address not of this machine,
// exits 1 before the run, naming the flag or field and the item.
func TestLocalIPsBadInput(t *testing.T) {
	dir := t.TempDir()
	sc := filepath.Join(dir, "s.yaml")
	if err := os.WriteFile(sc, []byte("target: http://127.0.0.1:1\nload: {users: 2, duration: 1s, local_ips: \"127.0.0.1,127.0.0.x\"}\ntasks: [{steps: [{get: /}]}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"not an address", []string{"--url", "http://127.0.0.1:1/", "--local-ips", "127.0.0.1,127.0.0.300"},
			[]string{`Error: run: --local-ips "127.0.0.300": not an address, a range (A-B) or a CIDR network (A/N)`, "Try: --local-ips 127.0.0.1-127.0.0.8"}},
		{"reversed range", []string{"--url", "http://127.0.0.1:1/", "--local-ips", "127.0.0.8-127.0.0.1"},
			[]string{`--local-ips "127.0.0.8-127.0.0.1": the range ends before it starts`}},
		{"empty", []string{"--url", "http://127.0.0.1:1/", "--local-ips", ""}, []string{"--local-ips empty"}},
		{"bad flag over a scenario", []string{"--local-ips", "10.0.0.0/33", sc}, []string{`--local-ips "10.0.0.0/33"`}},
		{"scenario field", []string{sc}, []string{"s.yaml:2:", `load.local_ips: "127.0.0.x": not an address`}},
		{"not this machine's", []string{"--url", "http://127.0.0.1:1/", "-u", "2", "--local-ips", "127.0.0.1,203.0.113.9"},
			[]string{"Error: preflight: local IPs", "203.0.113.9: not an address of this machine"}},
		{"loopback to elsewhere", []string{"--url", "http://203.0.113.9:1/", "-u", "2", "--local-ips", "127.0.0.2"},
			[]string{"127.0.0.2 is a loopback address, which cannot reach 203.0.113.9:1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, "run-"+strings.ReplaceAll(tc.name, " ", "-"))
			cmd := stampedeCmd(append([]string{"run", "-t", "1s", "--quiet", "--out", out}, tc.args...)...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("exit %v, want status 1; stderr %q", err, stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr %q lacks %q", stderr.String(), w)
				}
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a run directory after bad input: %v", err)
			}
		})
	}
}
