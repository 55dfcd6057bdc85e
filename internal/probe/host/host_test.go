package host

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func read(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParsers(t *testing.T) {
	cpu, err := ParseStat(read(t, "proc1/stat"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (CPU{User: 16849, System: 4111, Idle: 85766, IOWait: 326, SoftIRQ: 80, Steal: 25, Cores: 2}); cpu != want {
		t.Errorf("ParseStat = %+v, want %+v", cpu, want)
	}
	if l, err := ParseLoadavg(read(t, "proc2/loadavg")); err != nil || l != 1.75 {
		t.Errorf("ParseLoadavg = %v, %v; want 1.75", l, err)
	}
	m, err := ParseMeminfo(read(t, "proc1/meminfo"))
	if want := (Mem{Total: 24684084 * 1024, Available: 24223152 * 1024}); err != nil || m != want {
		t.Errorf("ParseMeminfo = %+v, %v; want %+v", m, err, want)
	}
	ps, err := ParsePidStat(read(t, "proc1/4242/stat"))
	if want := (PidStat{UTime: 1000, STime: 500}); err != nil || ps != want {
		t.Errorf("ParsePidStat = %+v, %v; want %+v (comm holds spaces and parentheses)", ps, err, want)
	}
	n, err := ParseNetstat(read(t, "proc1/net/netstat"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := n.TcpExt["ListenOverflows"]; !ok {
		t.Errorf("ParseNetstat: no ListenOverflows in %v", n.TcpExt)
	}
	for name, b := range map[string]string{
		"stat": "intr 1 2\n", "loadavg": "", "meminfo": "MemFree: 1 kB\n", "pid": "12 (x) R 1", "netstat": "IpExt: 1\n",
	} {
		var err error
		switch name {
		case "stat":
			_, err = ParseStat([]byte(b))
		case "loadavg":
			_, err = ParseLoadavg([]byte(b))
		case "meminfo":
			_, err = ParseMeminfo([]byte(b))
		case "pid":
			_, err = ParsePidStat([]byte(b))
		case "netstat":
			_, err = ParseNetstat([]byte(b))
		}
		if err == nil {
			t.Errorf("%s: malformed input %q parsed without error", name, b)
		}
	}
}

// TestProbeDeltas reads two snapshots of a fake /proc two seconds apart:
// CPU 17% busy (3% iowait, 2% steal) of 1000 ticks, the target process
// used 200 ticks (2 s of CPU in 2 s: 100%), 5 listen overflows, 7 drops.
func TestProbeDeltas(t *testing.T) {
	dir := t.TempDir()
	proc := filepath.Join(dir, "proc")
	p := New(Options{Proc: proc, PID: 4242})
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

	if err := os.Symlink(mustAbs(t, "testdata/proc1"), proc); err != nil {
		t.Fatal(err)
	}
	first, err := p.Sample(context.Background(), t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"cpu_busy_pct", "proc_cpu_pct", "listen_overflows_delta"} {
		if _, ok := first.Values[k]; ok {
			t.Errorf("first sample has %s; rates need two readings", k)
		}
	}
	if first.Values["cores"] != 2 || first.Values["load1"] != 0.43 {
		t.Errorf("first sample = %v", first.Values)
	}

	os.Remove(proc)
	if err := os.Symlink(mustAbs(t, "testdata/proc2"), proc); err != nil {
		t.Fatal(err)
	}
	got, err := p.Sample(context.Background(), t0.Add(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"cpu_busy_pct": 17, "cpu_iowait_pct": 3, "cpu_steal_pct": 2, "cores": 2, "load1": 1.75,
		"proc_cpu_pct": 100, "listen_overflows_delta": 5, "listen_drops_delta": 7,
		"mem_available_bytes": 24223152 * 1024, "mem_used_pct": 100 * float64(24684084-24223152) / 24684084,
	}
	for k, w := range want {
		if g, ok := got.Values[k]; !ok || math.Abs(g-w) > 1e-9 {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, w)
		}
	}
	if got.Source != "host" || !got.Time.Equal(t0.Add(2*time.Second)) {
		t.Errorf("sample source/time = %q %v", got.Source, got.Time)
	}
}

// TestProbeRealProc reads this machine's /proc with this process as the
// target.
func TestProbeRealProc(t *testing.T) {
	if _, err := os.Stat("/proc/stat"); err != nil {
		t.Skip("no /proc")
	}
	p := New(Options{PID: os.Getpid()})
	now := time.Now()
	if _, err := p.Sample(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	end := time.Now().Add(100 * time.Millisecond)
	for time.Now().Before(end) { // burn some CPU
	}
	s, err := p.Sample(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"cpu_busy_pct", "cores", "load1", "mem_used_pct", "mem_available_bytes", "proc_cpu_pct", "listen_overflows_delta"} {
		if _, ok := s.Values[k]; !ok {
			t.Errorf("missing %s in %v", k, s.Values)
		}
	}
	if v := s.Values["cpu_busy_pct"]; v < 0 || v > 100 {
		t.Errorf("cpu_busy_pct = %v, want 0..100", v)
	}

	gone := New(Options{PID: 1 << 30})
	s, err = gone.Sample(context.Background(), time.Now())
	if err != nil || s.Info["pid_error"] == "" {
		t.Errorf("missing pid: err %v, info %v; want a sample with pid_error", err, s.Info)
	}
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func seeds(f *testing.F, files ...string) {
	for _, name := range files {
		f.Add(read(f, name))
	}
}

func FuzzParseStat(f *testing.F) {
	seeds(f, "proc1/stat", "proc2/stat")
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseStat(b)
		if err == nil && c.Busy() > c.Total() {
			t.Errorf("busy %d > total %d", c.Busy(), c.Total())
		}
	})
}

func FuzzParseLoadavg(f *testing.F) {
	seeds(f, "proc1/loadavg", "proc2/loadavg")
	f.Fuzz(func(t *testing.T, b []byte) {
		if l, err := ParseLoadavg(b); err == nil && (l < 0 || math.IsNaN(l) || math.IsInf(l, 0)) {
			t.Errorf("load %v", l)
		}
	})
}

func FuzzParseMeminfo(f *testing.F) {
	seeds(f, "proc1/meminfo")
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := ParseMeminfo(b); err == nil && m.Available > m.Total {
			t.Errorf("available %d > total %d", m.Available, m.Total)
		}
	})
}

func FuzzParsePidStat(f *testing.F) {
	seeds(f, "proc1/4242/stat", "proc2/4242/stat")
	f.Fuzz(func(t *testing.T, b []byte) { ParsePidStat(b) })
}

func FuzzParseNetstat(f *testing.F) {
	seeds(f, "proc1/net/netstat", "proc2/net/netstat")
	f.Fuzz(func(t *testing.T, b []byte) { ParseNetstat(b) })
}
