package host

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stampede-load/stampede"
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
	if want := (PidStat{PPid: 1, UTime: 1000, STime: 500, StartTime: 53809}); err != nil || ps != want {
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
		"nettcp": "   0: 0100007F:1F40 00000000:0000 0A 00000080:00000005\n",
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
		case "nettcp":
			_, err = ParseNetTCP([]byte(b), 8000)
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
	f.Fuzz(func(t *testing.T, b []byte) {
		ps, err := ParsePidStat(b)
		if err == nil && (ps.UTime > 1<<53 || ps.STime > 1<<53 || ps.CUTime > 1<<53 || ps.CSTime > 1<<53) {
			t.Errorf("ticks out of range: %+v", ps)
		}
	})
}

func FuzzParseNetTCP(f *testing.F) {
	seeds(f, "net/tcp", "net/tcp6")
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := ParseNetTCP(b, 8000)
		if err == nil && q.Sockets == 0 && (q.Queue != 0 || q.Backlog != 0) {
			t.Errorf("queue without sockets: %+v", q)
		}
		for _, pid := range ParseChildren(b, nil) {
			if pid <= 0 {
				t.Errorf("child pid %d", pid)
			}
		}
		if q, backlog, ok := ParseDiagMsg(b, 8000); ok && len(b) < inetDiagMsgLen {
			t.Errorf("short message parsed: %d %d", q, backlog)
		}
	})
}

func FuzzParseNetstat(f *testing.F) {
	seeds(f, "proc1/net/netstat", "proc2/net/netstat")
	f.Fuzz(func(t *testing.T, b []byte) { ParseNetstat(b) })
}

func TestParseNetTCP(t *testing.T) {
	tests := []struct {
		file string
		port int
		want ListenQueue
	}{
		{"net/tcp", 8000, ListenQueue{Sockets: 2, Queue: 8}}, // not the established one
		{"net/tcp", 8001, ListenQueue{Sockets: 1, Queue: 12}},
		{"net/tcp", 50000, ListenQueue{}}, // a client port: established only
		{"net/tcp6", 8000, ListenQueue{Sockets: 1, Queue: 2}},
		{"net/tcp6", 22, ListenQueue{Sockets: 1, Queue: 0}},
	}
	for _, tt := range tests {
		got, err := ParseNetTCP(read(t, tt.file), tt.port)
		if err != nil || got != tt.want {
			t.Errorf("%s port %d: %+v, %v; want %+v", tt.file, tt.port, got, err, tt.want)
		}
	}
}

func TestParseChildren(t *testing.T) {
	if got := ParseChildren([]byte("123 456 \n"), []int{7}); len(got) != 3 || got[1] != 123 || got[2] != 456 {
		t.Errorf("ParseChildren = %v", got)
	}
	if got := ParseChildren([]byte(""), nil); got != nil {
		t.Errorf("ParseChildren of nothing = %v", got)
	}
}

func TestTreeTicks(t *testing.T) {
	st := func(u, s, cu, cs, start uint64) PidStat {
		return PidStat{UTime: u, STime: s, CUTime: cu, CSTime: cs, StartTime: start}
	}
	tests := []struct {
		name      string
		prev, cur map[int]PidStat
		want      float64
	}{
		{"one process", map[int]PidStat{1: st(100, 50, 0, 0, 9)}, map[int]PidStat{1: st(150, 60, 0, 0, 9)}, 60},
		{"workers do the work",
			map[int]PidStat{1: st(10, 0, 0, 0, 9), 2: st(100, 10, 0, 0, 10), 3: st(200, 20, 0, 0, 11)},
			map[int]PidStat{1: st(10, 0, 0, 0, 9), 2: st(180, 20, 0, 0, 10), 3: st(290, 30, 0, 0, 11)}, 190},
		// Worker 2 exited at 130+10 ticks and was reaped by 1 (cutime +140,
		// of which 110 were counted before); worker 4 was forked and used
		// 25: 30 + 100 (worker 3) + 25.
		{"a worker exits, another is forked",
			map[int]PidStat{1: st(10, 0, 0, 0, 9), 2: st(100, 10, 0, 0, 10), 3: st(200, 20, 0, 0, 11)},
			map[int]PidStat{1: st(10, 0, 130, 10, 9), 3: st(300, 20, 0, 0, 11), 4: st(20, 5, 0, 0, 12)}, 155},
		// A pid reused by a new process: the old one's time is not
		// subtracted from the new one's.
		{"pid reused",
			map[int]PidStat{1: st(0, 0, 0, 0, 9), 2: st(500, 0, 0, 0, 10)},
			map[int]PidStat{1: st(0, 0, 520, 0, 9), 2: st(30, 0, 0, 0, 99)}, 30 + 20},
		// A child that left the tree unreaped (its parent died): its
		// last counted time is not taken from the others.
		{"reaped elsewhere",
			map[int]PidStat{1: st(0, 0, 0, 0, 9), 2: st(500, 0, 0, 0, 10)},
			map[int]PidStat{1: st(40, 0, 0, 0, 9)}, 40},
		{"first reading", nil, map[int]PidStat{1: st(40, 0, 7, 0, 9)}, 47},
	}
	for _, tt := range tests {
		if got := TreeTicks(tt.prev, tt.cur); got != tt.want {
			t.Errorf("%s: %v ticks, want %v", tt.name, got, tt.want)
		}
	}
}

// fakeProc writes a /proc with the host files of testdata/proc1 and the
// given processes: pid → stat line fields after the name, and children
// (written as task/PID/children unless scan is set).
type fakeProc struct {
	dir  string
	scan bool
}

func newFakeProc(t *testing.T, scan bool) *fakeProc {
	dir := t.TempDir()
	for _, name := range []string{"stat", "loadavg", "meminfo"} {
		if err := os.WriteFile(filepath.Join(dir, name), read(t, "proc1/"+name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return &fakeProc{dir: dir, scan: scan}
}

func (f *fakeProc) set(t *testing.T, pid, ppid int, utime, stime, cutime, cstime, start uint64, children string) {
	t.Helper()
	d := filepath.Join(f.dir, strconv.Itoa(pid))
	if err := os.MkdirAll(filepath.Join(d, "task", strconv.Itoa(pid)), 0o755); err != nil {
		t.Fatal(err)
	}
	line := fmt.Sprintf("%d (worker %d) S %d %d %d 0 -1 4194560 900 0 0 0 %d %d %d %d 20 0 1 0 %d 4141056 515 18446744073709551615\n",
		pid, pid, ppid, pid, pid, utime, stime, cutime, cstime, start)
	if err := os.WriteFile(filepath.Join(d, "stat"), []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	if !f.scan {
		if err := os.WriteFile(filepath.Join(d, "task", strconv.Itoa(pid), "children"), []byte(children), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func (f *fakeProc) remove(t *testing.T, pid int) {
	if err := os.RemoveAll(filepath.Join(f.dir, strconv.Itoa(pid))); err != nil {
		t.Fatal(err)
	}
}

// TestProbeTree: a master (100) with workers 101 and 102, and 102's own
// child 104, read through the children files and by scanning /proc. Two
// seconds later 101 has exited (reaped: the master's cutime grew by its
// final 350 ticks, 300 of which were counted), 102 used 100 ticks, 104
// 20, and a new worker 103 40: 50+100+20+40 = 210 ticks in 2 s = 105%.
// A process outside the tree (200) is not counted.
func TestProbeTree(t *testing.T) {
	for _, scan := range []bool{false, true} {
		t.Run(fmt.Sprintf("scan=%v", scan), func(t *testing.T) {
			f := newFakeProc(t, scan)
			f.set(t, 100, 1, 10, 5, 0, 0, 1000, "101 102")
			f.set(t, 101, 100, 250, 50, 0, 0, 1001, "")
			f.set(t, 102, 100, 100, 0, 0, 0, 1002, "104 ")
			f.set(t, 104, 102, 10, 0, 0, 0, 1004, "")
			f.set(t, 200, 1, 5000, 0, 0, 0, 900, "")
			p := New(Options{Proc: f.dir, PID: 100})
			t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			first, err := p.Sample(context.Background(), t0)
			if err != nil {
				t.Fatal(err)
			}
			if first.Values["proc_count"] != 4 {
				t.Errorf("first proc_count = %v, want 4", first.Values["proc_count"])
			}
			f.remove(t, 101)
			f.set(t, 100, 1, 10, 5, 320, 30, 1000, "102 103")
			f.set(t, 102, 100, 190, 10, 0, 0, 1002, "104")
			f.set(t, 103, 100, 35, 5, 0, 0, 1003, "")
			f.set(t, 104, 102, 30, 0, 0, 0, 1004, "")
			f.set(t, 200, 1, 9000, 0, 0, 0, 900, "")
			got, err := p.Sample(context.Background(), t0.Add(2*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if got.Values["proc_cpu_pct"] != 105 || got.Values["proc_count"] != 4 {
				t.Errorf("proc_cpu_pct = %v, proc_count = %v; want 105 and 4", got.Values["proc_cpu_pct"], got.Values["proc_count"])
			}
		})
	}
}

// TestProbeTreeReal starts a shell with two busy children and one idle
// one: the tree counts 4 processes and its CPU is well above the shell's
// own, which is next to nothing.
func TestProbeTreeReal(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	cmd := exec.Command("/bin/sh", "-c", "while :; do :; done & while :; do :; done & sleep 60 & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sh := cmd.Process.Pid
	var kids []int
	t.Cleanup(func() {
		for _, k := range kids {
			syscall.Kill(k, syscall.SIGKILL)
		}
		cmd.Process.Kill()
		cmd.Wait()
	})
	p := New(Options{PID: sh})
	var first stampede.Sample
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		if first, err = p.Sample(context.Background(), time.Now()); err != nil {
			t.Fatal(err)
		}
		if first.Values["proc_count"] == 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, tid := range []string{strconv.Itoa(sh)} {
		b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(sh), "task", tid, "children"))
		kids = ParseChildren(b, kids)
	}
	if first.Values["proc_count"] != 4 || len(kids) != 3 {
		t.Fatalf("proc_count = %v, children %v; want 4 and 3", first.Values["proc_count"], kids)
	}
	own := func() float64 {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(sh), "stat"))
		if err != nil {
			t.Fatal(err)
		}
		ps, err := ParsePidStat(b)
		if err != nil {
			t.Fatal(err)
		}
		return float64(ps.UTime + ps.STime)
	}
	start, shStart := time.Now(), own()
	// Wait for the busy children to use CPU time, whatever the load.
	var got stampede.Sample
	for {
		time.Sleep(200 * time.Millisecond)
		var err error
		if got, err = p.Sample(context.Background(), time.Now()); err != nil {
			t.Fatal(err)
		}
		if got.Values["proc_cpu_pct"] > 0 || time.Since(start) > 10*time.Second {
			break
		}
	}
	shPct := 100 * (own() - shStart) / clockTicks / time.Since(start).Seconds()
	t.Logf("tree: proc_cpu_pct %.1f, proc_count %v; the shell alone %.1f%%", got.Values["proc_cpu_pct"], got.Values["proc_count"], shPct)
	if got.Values["proc_cpu_pct"] <= 0 || got.Values["proc_cpu_pct"] <= 5*shPct {
		t.Errorf("tree proc_cpu_pct = %v, the shell's own %v%%: the children are not counted", got.Values["proc_cpu_pct"], shPct)
	}
}

// TestListenQueueReal listens on a loopback port (IPv4, then IPv6 when
// the machine has it) without accepting and connects five clients: the
// five wait in the accept queue, whose limit is the kernel's somaxconn (Go
// listens with that backlog). Accepting empties the queue; a closed port
// has no listen keys.
func TestListenQueueReal(t *testing.T) {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("no /proc/net/tcp")
	}
	somaxconn, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err != nil {
		t.Fatal(err)
	}
	limit, _ := strconv.Atoi(strings.TrimSpace(string(somaxconn)))
	for _, addr := range []struct{ network, address string }{{"tcp4", "127.0.0.1:0"}, {"tcp6", "[::1]:0"}} {
		t.Run(addr.network, func(t *testing.T) {
			ln, err := net.Listen(addr.network, addr.address)
			if err != nil {
				t.Skipf("%s: %v", addr.network, err)
			}
			defer ln.Close()
			port := ln.Addr().(*net.TCPAddr).Port
			p := New(Options{PID: os.Getpid(), Port: port})
			s, err := p.Sample(context.Background(), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if s.Values["listen_queue"] != 0 || s.Values["listen_backlog"] <= 0 {
				t.Fatalf("idle listener: %v %v", s.Values, s.Info)
			}
			for range 5 {
				c, err := net.Dial(addr.network, ln.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
			}
			deadline := time.Now().Add(5 * time.Second)
			for s.Values["listen_queue"] != 5 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
				if s, err = p.Sample(context.Background(), time.Now()); err != nil {
					t.Fatal(err)
				}
			}
			t.Logf("5 connections not accepted: listen_queue %v, listen_backlog %v", s.Values["listen_queue"], s.Values["listen_backlog"])
			if s.Values["listen_queue"] != 5 || s.Values["listen_backlog"] != float64(min(limit, 65535)) {
				t.Errorf("listen_queue = %v, listen_backlog = %v; want 5 and %d (%v)", s.Values["listen_queue"], s.Values["listen_backlog"], limit, s.Info)
			}
			for range 5 {
				c, err := ln.Accept()
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
			}
			if s, err = p.Sample(context.Background(), time.Now()); err != nil || s.Values["listen_queue"] != 0 {
				t.Errorf("after accepting: %v, %v", s.Values, err)
			}
			ln.Close()
			s, err = p.Sample(context.Background(), time.Now())
			if _, ok := s.Values["listen_queue"]; err != nil || ok || !strings.Contains(s.Info["port_error"], "no socket listens") {
				t.Errorf("closed port: %v %v %v", s.Values, s.Info, err)
			}
		})
	}
}

// TestProbeListenFile reads the listen queue of a fake /proc from its
// net/tcp and tcp6 files: the queue, no backlog, and why.
func TestProbeListenFile(t *testing.T) {
	f := newFakeProc(t, false)
	if err := os.MkdirAll(filepath.Join(f.dir, "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"tcp", "tcp6"} {
		if err := os.WriteFile(filepath.Join(f.dir, "net", name), read(t, "net/"+name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := New(Options{Proc: f.dir, Port: 8000}).Sample(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Values["listen_backlog"]; ok || s.Values["listen_queue"] != 10 || !strings.Contains(s.Info["port_error"], "listen_backlog unknown") {
		t.Errorf("values %v, info %v; want listen_queue 10, no backlog, and why", s.Values, s.Info)
	}
}

// TestParseDiagMsg reads a struct inet_diag_msg as the kernel writes it.
func TestParseDiagMsg(t *testing.T) {
	m := make([]byte, inetDiagMsgLen)
	m[0], m[1] = syscall.AF_INET, tcpListen
	binary.BigEndian.PutUint16(m[4:], 8000)
	binary.NativeEndian.PutUint32(m[56:], 7)
	binary.NativeEndian.PutUint32(m[60:], 2048)
	if q, b, ok := ParseDiagMsg(m, 8000); !ok || q != 7 || b != 2048 {
		t.Errorf("ParseDiagMsg = %d %d %v", q, b, ok)
	}
	if _, _, ok := ParseDiagMsg(m, 8001); ok {
		t.Error("other port parsed")
	}
	m[1] = 1 // ESTABLISHED
	if _, _, ok := ParseDiagMsg(m, 8000); ok {
		t.Error("established socket parsed")
	}
	if _, _, ok := ParseDiagMsg(m[:40], 8000); ok {
		t.Error("short message parsed")
	}
	req := diagRequest(syscall.AF_INET6, 3)
	if len(req) != syscall.NLMSG_HDRLEN+inetDiagReqLen || binary.NativeEndian.Uint32(req) != uint32(len(req)) ||
		req[syscall.NLMSG_HDRLEN] != syscall.AF_INET6 || binary.NativeEndian.Uint32(req[syscall.NLMSG_HDRLEN+4:]) != 1<<tcpListen {
		t.Errorf("diagRequest = %x", req)
	}
}
