package host

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stampede-load/stampede"
)

// groupsFixture reads testdata/groups/proc1 and, two seconds later, proc2
// through a symlink, as the probe with opts sees them.
func groupsFixture(t *testing.T, opts Options) (first, second stampede.Sample) {
	t.Helper()
	proc := filepath.Join(t.TempDir(), "proc")
	opts.Proc = proc
	p := New(opts)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i, snap := range []string{"proc1", "proc2"} {
		os.Remove(proc)
		if err := os.Symlink(mustAbs(t, filepath.Join("testdata/groups", snap)), proc); err != nil {
			t.Fatal(err)
		}
		s, err := p.Sample(context.Background(), t0.Add(time.Duration(i)*2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = s
		} else {
			second = s
		}
	}
	return first, second
}

// TestCPUGroups reads the fixture's two snapshots, 2 s apart. In ticks
// (100 a second), between them:
//
//	postgres  postmaster 600 +1, checkpointer +1, idle backend +2, busy
//	          backend 603 +150, a backend forked since (605) 70 in full,
//	          and backend 604 exited: the postmaster's cutime+cstime grew
//	          40, 30 of which were counted before → 234 ticks: 117%
//	pgbouncer 50: 25%; redis-server 6: 3%; nginx master 0 + worker 20: 10%
//	app       gunicorn master 0, worker 801 +110, worker 802 exited (its
//	          final 380, 340 counted: reaped 40 more), new worker 803 35,
//	          and a python3 script 20 → 205: 102.5%
//	stampede  pid 500 +40 and its child sh +0: 20%
//	other     process_api 2, kthreadd 0, ksoftirqd 10, "my (weird) proc"
//	          2, node_exporter 4 → 18: 9%
//
// With the target's pid (the gunicorn master), app is its tree only (185:
// 92.5%, as proc_cpu_pct) and the python3 script is other (38: 19%).
func TestCPUGroups(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		want    map[string]float64
		app     string
		top     string
		absent  []string
		procPct float64
	}{
		{
			name: "by command name",
			opts: Options{Self: 500},
			want: map[string]float64{"cpu_pct:postgres": 117, "cpu_pct:pgbouncer": 25, "cpu_pct:redis": 3, "cpu_pct:nginx": 10,
				"cpu_pct:app": 102.5, "cpu_pct:stampede": 20, "cpu_pct:other": 9, "pg_backends": 3, "pg_backends_busy": 2},
			app: "gunicorn, python3",
			top: "603\tpostgres\tpostgres\t75.0\n801\tgunicorn\tapp\t55.0\n605\tpostgres\tpostgres\t35.0\n" +
				"700\tpgbouncer\tpgbouncer\t25.0\n500\tstampede\tstampede\t20.0",
			absent: []string{"cpu_pct:haproxy", "cpu_pct:envoy", "proc_cpu_pct"},
		},
		{
			name: "with the target's pid",
			opts: Options{Self: 500, PID: 800},
			want: map[string]float64{"cpu_pct:postgres": 117, "cpu_pct:app": 92.5, "cpu_pct:other": 19, "cpu_pct:stampede": 20,
				"proc_cpu_pct": 92.5, "proc_count": 3},
			app: "gunicorn",
		},
		{
			// Not stampede's own process: the fixture's stampede is other.
			name:   "another stampede",
			opts:   Options{Self: 4242},
			want:   map[string]float64{"cpu_pct:other": 29, "cpu_pct:app": 102.5},
			app:    "gunicorn, python3",
			absent: []string{"cpu_pct:stampede"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first, got := groupsFixture(t, tt.opts)
			for k := range first.Values {
				if strings.HasPrefix(k, "cpu_pct:") {
					t.Errorf("first reading has %s: rates need two readings", k)
				}
			}
			if first.Values["pg_backends"] != 3 || first.Values["pg_backends_busy"] != 1 {
				t.Errorf("first reading: pg_backends %v, pg_backends_busy %v; want 3 and 1", first.Values["pg_backends"], first.Values["pg_backends_busy"])
			}
			for k, w := range tt.want {
				if g, ok := got.Values[k]; !ok || math.Abs(g-w) > 1e-9 {
					t.Errorf("%s = %v (present %v), want %v", k, g, ok, w)
				}
			}
			for _, k := range tt.absent {
				if v, ok := got.Values[k]; ok {
					t.Errorf("%s = %v, want it absent", k, v)
				}
			}
			if got.Info["cpu_app"] != tt.app {
				t.Errorf("cpu_app = %q, want %q", got.Info["cpu_app"], tt.app)
			}
			if tt.top != "" && got.Info["cpu_top"] != tt.top {
				t.Errorf("cpu_top =\n%s\nwant\n%s", got.Info["cpu_top"], tt.top)
			}
			// The gunicorn master's command line holds a password: command
			// lines are never reported.
			for _, s := range []stampede.Sample{first, got} {
				for k, v := range s.Info {
					if strings.Contains(v, "s3cret") || strings.Contains(v, "DATABASE_URL") {
						t.Errorf("info %s = %q holds a command line", k, v)
					}
				}
			}
		})
	}
}

// TestCPUGroupsSum: on the fixture, every tick of every process is in
// exactly one group: the groups add up to the same total whatever the
// options.
func TestCPUGroupsSum(t *testing.T) {
	var sums []float64
	for _, opts := range []Options{{Self: 500}, {Self: 500, PID: 800}, {Self: 4242}, {Self: 600}, {Self: 1}, {Self: 500, PID: 600}} {
		_, s := groupsFixture(t, opts)
		sum := 0.0
		for k, v := range s.Values {
			if strings.HasPrefix(k, "cpu_pct:") {
				sum += v
			}
		}
		sums = append(sums, sum)
	}
	for i, s := range sums {
		if math.Abs(s-sums[0]) > 1e-9 {
			t.Errorf("options %d: groups sum to %v, options 0 to %v", i, s, sums[0])
		}
	}
	// 234+50+6+20+205+40+18 ticks in 2 s.
	if want := 286.5; math.Abs(sums[0]-want) > 1e-9 {
		t.Errorf("groups sum to %v, want %v", sums[0], want)
	}
}

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		in   string
		comm string
		want PidStat
	}{
		{"4242 (my (weird) proc) S 1 4242 4242 0 -1 4194560 900 0 0 0 1000 500 0 0 20 0 4 0 53809 4141056 515\n",
			"my (weird) proc", PidStat{PPid: 1, UTime: 1000, STime: 500, StartTime: 53809}},
		// priority 39, nice 19: a build run with nice -n 19
		{"31000 (compile) R 30990 30990 26000 0 -1 4194304 5000 0 0 0 250 30 0 0 39 19 3 0 99000 4141056 515\n",
			"compile", PidStat{PPid: 30990, UTime: 250, STime: 30, StartTime: 99000, Nice: 19}},
		// nice -5: a priority raised
		{"31001 (postgres) S 1 1 1 0 -1 4194304 5000 0 0 0 7 3 0 0 15 -5 1 0 99001 4141056 515\n",
			"postgres", PidStat{PPid: 1, UTime: 7, STime: 3, StartTime: 99001, Nice: -5}},
		{"7 (a) b) c)) R 3 0 0 0 0 0 0 0 0 0 11 12 13 14", "a) b) c)", PidStat{PPid: 3, UTime: 11, STime: 12, CUTime: 13, CSTime: 14}},
		{"8 () S 0 0 0 0 0 0 0 0 0 0 1 2 -1 5 0 0 0 0 77", "", PidStat{UTime: 1, STime: 2, StartTime: 77}}, // negative cutime: 0
		{"9 (tab\there) S 2 0 0 0 0 0 0 0 0 0 3 4", "tab\there", PidStat{PPid: 2, UTime: 3, STime: 4}},
	}
	for _, tt := range tests {
		comm, ps, err := ParseProcStat([]byte(tt.in))
		if err != nil || string(comm) != tt.comm || ps != tt.want {
			t.Errorf("ParseProcStat(%q) = %q, %+v, %v; want %q, %+v", tt.in, comm, ps, err, tt.comm, tt.want)
		}
	}
	for _, in := range []string{"", "12 (x) R 1", "12 x) R 1 0 0 0 0 0 0 0 0 0 1 2", "12 (x R 1 0 0 0 0 0 0 0 0 0 1 2",
		"12 (x) R -1 0 0 0 0 0 0 0 0 0 1 2", "12 (x) R 1 0 0 0 0 0 0 0 0 0 1 99999999999999999999"} {
		if _, _, err := ParseProcStat([]byte(in)); err == nil {
			t.Errorf("ParseProcStat(%q): no error", in)
		}
	}
	line := []byte(tests[0].in)
	if n := testing.AllocsPerRun(100, func() { ParseProcStat(line) }); n != 0 {
		t.Errorf("ParseProcStat allocates %v times", n)
	}
}

func TestParsePGTitle(t *testing.T) {
	tests := []struct {
		title string
		want  PGTitle
	}{
		{"postgres: app appdb 127.0.0.1(40000) idle", BackendIdle},
		{"postgres: 15/main: app appdb 127.0.0.1(40000) idle in transaction\x00\x00", BackendIdle},
		{"postgres: app appdb 127.0.0.1(40000) idle in transaction (aborted)", BackendIdle},
		{"postgres: app appdb 127.0.0.1(40002) SELECT", BackendBusy},
		{"postgres: app appdb [local] UPDATE waiting", BackendBusy},
		{"postgres: app appdb ::1(5432) authentication", BackendBusy},
		{"postgres: my user my db 10.0.0.1(5) COMMIT", BackendBusy}, // names with spaces
		{"postgres: app appdb 127.0.0.1(40000) ", BackendNoActivity},
		{"postgres: app appdb 127.0.0.1(40000)", BackendNoActivity},
		{"postgres: checkpointer ", NotBackend},
		{"postgres: 15/main: autovacuum worker appdb", NotBackend},
		{"postgres: parallel worker for PID 603", NotBackend},
		{"postgres: walsender repl 10.0.0.2(5555) streaming 0/3000148", NotBackend},
		{"/usr/lib/postgresql/15/bin/postgres\x00-D\x00/var/lib/postgresql/15/main", NotBackend},
		{"postgres", NotBackend},
		{"", NotBackend},
	}
	for _, tt := range tests {
		if got := ParsePGTitle([]byte(tt.title)); got != tt.want {
			t.Errorf("ParsePGTitle(%q) = %v, want %v", tt.title, got, tt.want)
		}
	}
	title := []byte(tests[1].title)
	if n := testing.AllocsPerRun(100, func() { ParsePGTitle(title) }); n != 0 {
		t.Errorf("ParsePGTitle allocates %v times", n)
	}
}

func FuzzParseProcStat(f *testing.F) {
	seeds(f, "proc1/4242/stat", "groups/proc1/900/stat", "groups/proc2/605/stat")
	f.Add([]byte("1 ((() R 1 2 3 4 5 6 7 8 9 10 11 12 13 14"))
	f.Fuzz(func(t *testing.T, b []byte) {
		comm, ps, err := ParseProcStat(b)
		if err != nil {
			return
		}
		if ps.UTime > 1<<53 || ps.STime > 1<<53 || ps.CUTime > 1<<53 || ps.CSTime > 1<<53 || ps.PPid < 0 {
			t.Errorf("out of range: %+v", ps)
		}
		if len(comm) >= len(b) {
			t.Errorf("comm %q as long as the line", comm)
		}
		// ParsePidStat reads the same fields.
		if ps2, err := ParsePidStat(b); err != nil || ps2 != ps {
			t.Errorf("ParsePidStat = %+v, %v; ParseProcStat %+v", ps2, err, ps)
		}
	})
}

func FuzzParsePGTitle(f *testing.F) {
	seeds(f, "groups/proc1/600/cmdline", "groups/proc1/601/cmdline", "groups/proc1/602/cmdline", "groups/proc2/605/cmdline")
	f.Add([]byte("postgres: x: : y (1) z"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got := ParsePGTitle(b)
		if got > BackendBusy {
			t.Errorf("title %d", got)
		}
		if got != NotBackend && !strings.HasPrefix(string(b), "postgres: ") {
			t.Errorf("%q read as a backend", b)
		}
	})
}

// benchProc writes a /proc of n processes to dir, copies of the fixture's
// (testdata/groups/proc1) under new pids with the same parents' layout:
// PostgreSQL backends, gunicorn workers, proxies, kernel threads.
func benchProc(b *testing.B, dir string, n int) {
	src := "testdata/groups/proc1"
	ents, err := os.ReadDir(src)
	if err != nil {
		b.Fatal(err)
	}
	var pids []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		} else if err := os.WriteFile(filepath.Join(dir, e.Name()), read(b, "groups/proc1/"+e.Name()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		pid := pids[i%len(pids)]
		newPid := pid + 10000*(i/len(pids))
		if i < len(pids) {
			newPid = pid
		}
		d := filepath.Join(dir, strconv.Itoa(newPid))
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
		for _, name := range []string{"stat", "cmdline"} {
			c, err := os.ReadFile(filepath.Join(src, strconv.Itoa(pid), name))
			if err != nil {
				continue
			}
			if name == "stat" {
				c = []byte(strconv.Itoa(newPid) + string(c[len(strconv.Itoa(pid)):]))
			}
			if err := os.WriteFile(filepath.Join(d, name), c, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkCPUGroups is the cost of one reading of the CPU groups of a
// host with 500 processes (a quarter of them PostgreSQL's, whose titles are
// read too), from a /proc written to a temporary directory: the scan, the
// grouping and the keys; the reading of /stat, /loadavg and /meminfo is
// left out. "open" opens and closes every file at each reading, as the
// probe does outside procfs; "held" keeps them open as it does on procfs
// (the files do not change here, so the readings are the same).
func BenchmarkCPUGroups(b *testing.B) {
	dir := b.TempDir()
	benchProc(b, dir, 500)
	for _, held := range []bool{false, true} {
		name := "open"
		if held {
			name = "held"
		}
		b.Run(name, func(b *testing.B) {
			p := New(Options{Proc: dir, Self: 500})
			defer p.Close()
			if held {
				p.groups.procfs = 1
			}
			v := map[string]float64{}
			info := map[string]string{}
			setInfo := func(k, val string) { info[k] = val }
			now := time.Now()
			p.sampleGroups(now, 2, v, setInfo)
			if len(p.groups.cur) != 500 || (held && p.groups.nheld != 500+125) {
				b.Fatalf("%d processes read, %d files held; want 500 and 625 when held", len(p.groups.cur), p.groups.nheld)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				now = now.Add(time.Second)
				if !p.sampleGroups(now, 2, v, setInfo) {
					b.Fatal(info)
				}
			}
		})
	}
}

// BenchmarkCPUGroupsRealProc is the same on this machine's /proc.
func BenchmarkCPUGroupsRealProc(b *testing.B) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		b.Skip("no /proc")
	}
	p := New(Options{})
	defer p.Close()
	v := map[string]float64{}
	info := map[string]string{}
	setInfo := func(k, val string) { info[k] = val }
	now := time.Now()
	p.sampleGroups(now, 2, v, setInfo)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		now = now.Add(time.Second)
		if !p.sampleGroups(now, 2, v, setInfo) {
			b.Fatal(info)
		}
	}
	b.ReportMetric(float64(len(p.groups.cur)), "procs")
}

// TestGroupTicks covers what the fixture does not: processes whose parent
// exited in the same interval (reaped by init), and the bound on what a
// process new since the previous reading can add.
func TestGroupTicks(t *testing.T) {
	pr := func(ppid int, start, own, reaped uint64, group string) proc {
		return proc{ppid: ppid, start: start, own: own, reaped: reaped, group: group, comm: group}
	}
	tests := []struct {
		name      string
		prev, cur map[int]proc
		limit     float64
		want      map[string]float64
	}{
		{
			// A postmaster (10) and its backend (11) killed together: the
			// backend, orphaned, is reaped by init, whose cutime grows by
			// the backend's final 530 ticks, 500 of which were counted.
			name: "orphans reaped by init",
			prev: map[int]proc{1: pr(0, 1, 10, 0, "other"), 10: pr(1, 5, 100, 0, "postgres"), 11: pr(10, 6, 500, 0, "postgres"),
				20: pr(1, 7, 0, 0, "postgres")},
			cur:   map[int]proc{1: pr(0, 1, 10, 100+530, "other"), 20: pr(1, 7, 0, 0, "postgres")},
			limit: 200,
			// init reaped the postmaster (100) and the backend (530): 630,
			// less the 600 counted.
			want: map[string]float64{"other": 30, "postgres": 0},
		},
		{
			name:  "new process bounded",
			prev:  map[int]proc{1: pr(0, 1, 10, 0, "other")},
			cur:   map[int]proc{1: pr(0, 1, 12, 0, "other"), 7: pr(1, 99, 50000, 9000, "app")},
			limit: 200,
			want:  map[string]float64{"other": 2, "app": 400},
		},
		{
			// Reaped by a subreaper in another group than init's: bounded.
			name:  "reaped credit bounded",
			prev:  map[int]proc{1: pr(0, 1, 0, 0, "other"), 5: pr(1, 2, 0, 0, "app")},
			cur:   map[int]proc{1: pr(0, 1, 0, 0, "other"), 5: pr(1, 2, 0, 100000, "app")},
			limit: 200,
			want:  map[string]float64{"other": 0, "app": 200},
		},
	}
	for _, tt := range tests {
		g := newCPUGroups(0)
		g.prev, g.cur, g.hasPrev = tt.prev, tt.cur, true
		got := g.ticks(tt.limit).ticks
		if len(got) != len(tt.want) {
			t.Errorf("%s: groups %v, want %v", tt.name, got, tt.want)
		}
		for k, w := range tt.want {
			if g, ok := got[k]; !ok || g != w {
				t.Errorf("%s: %s = %v (present %v), want %v", tt.name, k, g, ok, w)
			}
		}
	}
}
