package runner

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/preflight"
)

// quick is a quick-form plan of users against target, from local IPs
// spec ("" for none).
func quick(t *testing.T, target string, users int, spec string) *load.Plan {
	t.Helper()
	p, err := load.QuickPlan(target, users, 0, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if spec != "" {
		if p.LocalIPs, err = load.ParseLocalIPs(spec); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// meta.json's source_ips counts the addresses the users dialled from.
func TestLoadFactsSourceIPs(t *testing.T) {
	for _, tc := range []struct {
		users int
		spec  string
		want  int
	}{
		{8, "", 1},
		{8, "127.0.0.1-127.0.0.4", 4},
		{3, "127.0.0.1-127.0.0.4", 3},
		{8, "127.0.0.0/8", 8},
	} {
		if got := loadFacts(quick(t, "http://127.0.0.1:1/", tc.users, tc.spec)).SourceIPs; got != tc.want {
			t.Errorf("%d users from %q: source_ips %d, want %d", tc.users, tc.spec, got, tc.want)
		}
	}
}

func TestMachineNeed(t *testing.T) {
	p := quick(t, "http://localhost:8000/", 10, "127.0.0.1-127.0.0.4")
	n := machineNeed(p, Options{Logs: []load.LogSpec{{Name: "a", Path: "a"}}, Probes: Probes{Redis: "redis://127.0.0.1:1"}})
	if n.Users != 10 || len(n.Dials) != 1 || n.Dials[0] != "localhost:8000" || len(n.Sources) != 4 || n.Extra != preflightExtra+4+2 {
		t.Errorf("need %+v", n)
	}
	if n.PerSource() != 3 {
		t.Errorf("per source %d, want 3 (10 users over 4 addresses)", n.PerSource())
	}
}

// A run that needs more ports than the range gives one source address
// fails before anything is written, naming the --local-ips that fits; with
// those addresses, the ports are no longer the matter.
func TestRunPreflightPorts(t *testing.T) {
	sys, err := preflight.Read()
	if err != nil || sys.Ports == nil {
		t.Skipf("no ephemeral port range here (%v)", err)
	}
	users := sys.Ports.Size() + 1
	dir := filepath.Join(t.TempDir(), "run")
	_, err = Run(context.Background(), quick(t, "http://127.0.0.1:1/", users, ""), Options{Dir: dir, NoDiagnose: true})
	if err == nil || !strings.Contains(err.Error(), "preflight: ") || !strings.Contains(err.Error(), "--local-ips 127.0.0.1-127.0.0.2") {
		t.Errorf("%d users from one address: %v", users, err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("run directory after a failed preflight: %v", err)
	}
	// Checked, not run: the open files or conntrack of this machine may
	// still refuse the run, or not.
	if _, err = preflight.Check(machineNeed(quick(t, "http://127.0.0.1:1/", users, "127.0.0.1-127.0.0.2"), Options{}), sys); err != nil && strings.Contains(err.Error(), "ephemeral ports") {
		t.Errorf("two source addresses: %v", err)
	}
}

// An address that is not this machine's fails before the run.
func TestRunPreflightForeignAddress(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	_, err := Run(context.Background(), quick(t, "http://127.0.0.1:1/", 2, "127.0.0.1,203.0.113.7"), Options{Dir: dir, NoDiagnose: true})
	if err == nil || !strings.Contains(err.Error(), "203.0.113.7: not an address of this machine") {
		t.Errorf("error %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("run directory after a failed preflight: %v", err)
	}
}

// Users thinking longer than the idle timeout close their connections
// while they think: the need counts those holding one at once and the
// closes a second; shorter think times (or no idle timeout) hold one each.
func TestMachineNeedIdleTimeout(t *testing.T) {
	p := quick(t, "http://127.0.0.1:8000/", 100000, "")
	p.ThinkMin, p.ThinkMax = time.Minute, 3*time.Minute
	p.IdleTimeout = 10 * time.Second
	n := machineNeed(p, Options{})
	// (10 s + 5 s) / (120 s + 5 s) of the users, with a quarter more.
	if n.Held != 15000 || n.Closes < 799 || n.Closes > 801 {
		t.Errorf("think 1-3 min, idle 10 s: held %d, closes %.1f/s; want 15000 and 800", n.Held, n.Closes)
	}
	if n.Files() != 15000+preflightExtra {
		t.Errorf("files %d, want %d", n.Files(), 15000+preflightExtra)
	}
	for _, tc := range []struct {
		name string
		idle time.Duration
		min  time.Duration
	}{
		{"default idle timeout (90 s) above the think time", 0, time.Minute},
		{"never", -1, time.Minute},
		{"think shorter than the idle timeout", 10 * time.Second, 5 * time.Second},
	} {
		p.IdleTimeout, p.ThinkMin = tc.idle, tc.min
		if n := machineNeed(p, Options{}); n.Held != 0 || n.Closes != 0 || n.Files() != 100000+preflightExtra {
			t.Errorf("%s: held %d, closes %.1f, files %d: want every user holding one", tc.name, n.Held, n.Closes, n.Files())
		}
	}
}
