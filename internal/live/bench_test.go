package live

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/lab"
	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/metricsout"
	"github.com/stampede-load/stampede/internal/runner"
	"github.com/stampede-load/stampede/internal/testserver"
)

// benchRoleEnv makes the test binary one of the benchmarks' other
// processes instead of running the tests: "quick" the quick form's
// target (a testserver), "lab" the lab with the seed preset, "page" the
// page that follows a run (and scrapes /metrics). Each serves until its
// stdin closes. The benchmarks' process is then the generator alone, so
// that its CPU time (getrusage) is the generator's, the live page's and
// the exporter's, and nothing of the target's or the browser's.
const benchRoleEnv = "STAMPEDE_LIVE_BENCH_ROLE"

// The other settings of the roles, also passed in the environment.
const (
	benchLabUsersEnv  = "STAMPEDE_LIVE_BENCH_LAB_USERS"
	benchLabLogsEnv   = "STAMPEDE_LIVE_BENCH_LAB_LOGS"
	benchLabPBKDF2Env = "STAMPEDE_LIVE_BENCH_LAB_PBKDF2"
	benchPageURLEnv   = "STAMPEDE_LIVE_BENCH_PAGE_URL"
	benchPageScrape   = "STAMPEDE_LIVE_BENCH_PAGE_SCRAPE"
	// benchOthersCPUEnv, when set (e.g. "1"), runs the target and the
	// page under `taskset -c` those CPUs: run the benchmark itself under
	// `taskset -c 0` to pin the generator apart from them.
	benchOthersCPUEnv = "STAMPEDE_BENCH_OTHERS_CPU"
)

func TestMain(m *testing.M) {
	switch role := os.Getenv(benchRoleEnv); role {
	case "":
		os.Exit(m.Run())
	case "quick", "lab":
		serveBenchTarget(role)
	case "page":
		followBenchPage()
	default:
		fmt.Fprintf(os.Stderr, "%s=%q: want quick, lab or page\n", benchRoleEnv, role)
		os.Exit(2)
	}
}

// serveBenchTarget serves the quick form's target or the lab on loopback,
// prints its URL and serves until its stdin closes.
func serveBenchTarget(role string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	if role == "quick" {
		go func() { _ = http.Serve(ln, testserver.New("pw")) }()
		fmt.Printf("http://%s/\n", ln.Addr())
		_, _ = io.Copy(io.Discard, os.Stdin)
		return
	}
	cfg := lab.Config{LogDir: os.Getenv(benchLabLogsEnv)}
	if err := cfg.Preset("seed"); err != nil {
		fail(err)
	}
	if cfg.Users, err = strconv.Atoi(os.Getenv(benchLabUsersEnv)); err != nil {
		fail(err)
	}
	if cfg.PBKDF2Iterations, err = strconv.Atoi(os.Getenv(benchLabPBKDF2Env)); err != nil {
		fail(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := lab.New(ctx, cfg)
	if err != nil {
		fail(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	fmt.Printf("http://%s\n", ln.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	cancel()
	<-served
	srv.Close()
}

// followBenchPage is the page: it reads /api/state once, then follows
// /api/events, decoding every event as the browser's script does (and
// reconnecting as a browser's EventSource does, when the server drops
// it), and with benchPageScrape set reads /metrics every second, as
// Prometheus does. It prints "ready" once it has the stream's snapshot,
// and when its stdin closes "EVENTS BYTES SCRAPES RECONNECTS".
func followBenchPage() {
	base := os.Getenv(benchPageURLEnv)
	ctx, cancel := context.WithCancel(context.Background())
	var events, size, scrapes, reconnects atomic.Int64
	var wg sync.WaitGroup
	get := func(path string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			return nil, err
		}
		return http.DefaultClient.Do(req)
	}
	if resp, err := get("api/state"); err == nil {
		var m Message
		err = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if err != nil {
			fmt.Fprintln(os.Stderr, "page: /api/state:", err)
			os.Exit(1)
		}
	} else {
		fmt.Fprintln(os.Stderr, "page:", err)
		os.Exit(1)
	}
	var ready sync.Once
	wg.Go(func() {
		for ctx.Err() == nil {
			resp, err := get("api/events")
			if err == nil {
				r := bufio.NewReaderSize(resp.Body, 64<<10)
				for {
					line, err := r.ReadBytes('\n')
					size.Add(int64(len(line)))
					if data, ok := bytes.CutPrefix(line, []byte("data: ")); ok {
						var m Message
						if json.Unmarshal(data, &m) == nil {
							events.Add(1)
							ready.Do(func() { fmt.Println("ready") })
						}
					}
					if err != nil {
						break
					}
				}
				resp.Body.Close()
			}
			select { // the stream's "retry: 2000"
			case <-ctx.Done():
			case <-time.After(2 * time.Second):
				reconnects.Add(1)
			}
		}
	})
	if os.Getenv(benchPageScrape) == "1" {
		wg.Go(func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				if resp, err := get("metrics"); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						scrapes.Add(1)
					}
				}
			}
		})
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	cancel()
	wg.Wait()
	fmt.Println(events.Load(), size.Load(), scrapes.Load(), reconnects.Load())
}

// child is one of the benchmarks' other processes.
type child struct {
	role  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

// startChild starts the test binary in role with env added, and returns
// once it printed its first line (its URL, or "ready"), within limit.
func startChild(b *testing.B, role string, limit time.Duration, env ...string) (*child, string) {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if cpus := os.Getenv(benchOthersCPUEnv); cpus != "" {
		// The generator pinned apart from its target and page (the
		// benchmark run under `taskset -c 0`): the three no longer take
		// each other's core in turns, which moved the seed's CPU per
		// request by ±10% between runs of the same variant.
		cmd = exec.Command("taskset", "-c", cpus, os.Args[0], "-test.run=^$")
	}
	cmd.Env = append(append(os.Environ(), benchRoleEnv+"="+role), env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	c := &child{role: role, cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	line, err := c.line(limit)
	if err != nil {
		c.stop(b)
		b.Fatalf("%s: %v", role, err)
	}
	return c, line
}

// line reads the child's next line of output, within limit.
func (c *child) line(limit time.Duration) (string, error) {
	type read struct {
		s   string
		err error
	}
	ch := make(chan read, 1)
	go func() {
		s, err := c.out.ReadString('\n')
		ch <- read{strings.TrimSpace(s), err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return "", fmt.Errorf("printed %q: %w", r.s, r.err)
		}
		return r.s, nil
	case <-time.After(limit):
		return "", fmt.Errorf("printed nothing within %v", limit)
	}
}

// stop closes the child's stdin (it exits then) and returns its last
// line; it kills the child if it has not exited within 10 seconds.
func (c *child) stop(b *testing.B) string {
	c.stdin.Close()
	last, _ := c.line(10 * time.Second)
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
		b.Errorf("%s did not exit within 10 s of its stdin closing", c.role)
	}
	return last
}

// The variants of BenchmarkLiveCost.
const (
	variantPlain   = "plain"      // no page, no metrics
	variantUI      = "ui"         // --ui, a page open
	variantScraped = "ui+scraped" // --ui, a page open, /metrics on the page scraped every second
)

// workload is what a benchmark's runs load: the quick form or the seed
// scenario, against its target in a process of its own.
type workload struct {
	plan func(b *testing.B, d time.Duration) (*load.Plan, runner.Options)
}

// benchDuration returns the environment variable name as a duration, or
// def.
func benchDuration(b *testing.B, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		b.Fatalf("%s=%q: want a positive duration, e.g. 10s", name, v)
	}
	return d
}

// benchInt returns the environment variable name as a positive integer,
// or def.
func benchInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// quickWorkload is the quick form at its maximum rate (no think time):
// STAMPEDE_BENCH_USERS users (default 16, as BenchmarkExporterCost's)
// GETting a testserver in another process.
func quickWorkload(b *testing.B) workload {
	users := benchInt(b, "STAMPEDE_BENCH_USERS", 16)
	c, target := startChild(b, "quick", 30*time.Second)
	b.Cleanup(func() { c.stop(b) })
	return workload{plan: func(b *testing.B, d time.Duration) (*load.Plan, runner.Options) {
		plan, err := load.QuickPlan(target, users, float64(users), d)
		if err != nil {
			b.Fatal(err)
		}
		return plan, runner.Options{}
	}}
}

// seedWorkload is scenarios/seed.yaml, its probes and the logs it follows
// included, at STAMPEDE_BENCH_SEED_USERS users (default 1,000; every one
// started within the first two seconds), against the lab with the seed
// preset in another process (seeded with as many accounts, each user
// logging in with its own).
//
// The one change to the seed preset: the lab hashes passwords with
// STAMPEDE_BENCH_PBKDF2 PBKDF2 iterations (default 1,000) instead of the
// seed's 600,000. A thousand logins at 600,000 (some 0.1 s of CPU each)
// keep both cores of the project's VM busy for a minute, starving the
// generator whose cost is measured, and go on hashing after the run that
// sent them ended, into the next variant's run. What the generator does
// for a request does not depend on it.
func seedWorkload(b *testing.B) workload {
	users := benchInt(b, "STAMPEDE_BENCH_SEED_USERS", 1000)
	iterations := benchInt(b, "STAMPEDE_BENCH_PBKDF2", 1000)
	dir := b.TempDir()
	logs := filepath.Join(dir, "logs")
	c, target := startChild(b, "lab", 5*time.Minute, benchLabLogsEnv+"="+logs,
		benchLabUsersEnv+"="+strconv.Itoa(max(users, 100)), benchLabPBKDF2Env+"="+strconv.Itoa(iterations))
	b.Cleanup(func() { c.stop(b) })
	seed, err := os.ReadFile(filepath.Join("..", "..", "scenarios", "seed.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	scPath := filepath.Join(dir, "seed.yaml")
	if err := os.WriteFile(scPath, seed, 0o644); err != nil {
		b.Fatal(err)
	}
	var accounts bytes.Buffer
	if err := lab.WriteUsersCSV(&accounts, users); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.csv"), accounts.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	return workload{plan: func(b *testing.B, d time.Duration) (*load.Plan, runner.Options) {
		sc, err := load.ReadScenario(scPath)
		if err != nil {
			b.Fatal(err)
		}
		sc.Target = target
		sc.Load.Users, sc.Load.SpawnRate, sc.Load.Duration = users, float64(users)/2, d.String()
		for i := range sc.Logs { // the lab's logs: logs/NAME.log in the scenario
			sc.Logs[i].Path = filepath.Join(logs, filepath.Base(sc.Logs[i].Path))
		}
		plan, err := sc.Compile()
		if err != nil {
			b.Fatal(err)
		}
		o, err := runner.ScenarioOptions(sc)
		if err != nil {
			b.Fatal(err)
		}
		return plan, o
	}}
}

// runStats is what one run of a benchmark measured.
type runStats struct {
	cpu  time.Duration // the generator's CPU time over the seconds of load
	wall time.Duration // those seconds
	reqs int64         // the requests made in them
	page string        // the page's counts: "EVENTS BYTES SCRAPES RECONNECTS"
	mem  *memStats     // with measureMemory
}

// memStats is the live page's memory once its run has ended.
type memStats struct {
	heap    int64 // the heap the run left in use after a GC, the Server's state in it
	seconds int   // the seconds of the run's history
	size    stateSize
}

// benchRun runs one variant of workload w for d in dir, with the live
// page and its page process for ui variants; with measureMemory it reads
// the memory the page keeps once the run has ended.
func benchRun(b *testing.B, w workload, variant string, d time.Duration, dir string, measureMemory bool) runStats {
	plan, o := w.plan(b, d)
	defer os.RemoveAll(dir)
	cw := &benchCPU{}
	o.Dir = filepath.Join(dir, "run")
	// The final diagnosis comes after the seconds measured: skipped.
	o.NoDiagnose = true
	o.Observers = []runner.Observer{cw}
	var base int64
	if measureMemory {
		base = heapAfterGC()
	}
	var srv *Server
	var page *child
	var e *metricsout.Exporter
	if variant != variantPlain {
		// As startUI wires the page: its controls on, the diagnosis so
		// far on (the run's NoDiagnose above only skips the final one),
		// /metrics and the findings through the exporter when there is
		// one.
		lo := Options{Addr: "127.0.0.1:0", Dir: o.Dir, Control: runner.NewControl(),
			Run: RunFacts{Target: plan.Target.Redacted(), Model: plan.Model.String(), Duration: plan.Duration}}
		if variant == variantScraped {
			var err error
			if e, err = metricsout.New(metricsout.Options{Run: "bench", Target: plan.Target}); err != nil {
				b.Fatal(err)
			}
			o.Observers = append(o.Observers, e)
			lo.Metrics, lo.Findings = e.Handler(), e.SetFindings
		}
		var err error
		if srv, err = Start(lo); err != nil {
			b.Fatal(err)
		}
		o.Control = lo.Control
		o.Observers = append(o.Observers, srv)
		scrape := "0"
		if variant == variantScraped {
			scrape = "1"
		}
		page, _ = startChild(b, "page", 30*time.Second, benchPageURLEnv+"="+srv.URL(), benchPageScrape+"="+scrape)
	}
	if _, err := runner.Run(context.Background(), plan, o); err != nil {
		b.Fatal(err)
	}
	st := runStats{cpu: cw.last - cw.start, wall: cw.lastWall.Sub(cw.startWall), reqs: cw.reqs}
	if measureMemory && srv != nil {
		st.mem = &memStats{heap: heapAfterGC() - base, seconds: len(srv.rec.p50), size: measureState(srv)}
	}
	if srv != nil {
		if err := srv.Close(); err != nil {
			b.Error(err)
		}
		st.page = page.stop(b)
		var events, scrapes int64
		if _, err := fmt.Sscan(st.page, &events, new(int64), &scrapes); err != nil || events < 2 || variant == variantScraped && scrapes == 0 {
			b.Fatalf("%s: the page read %q (events, bytes, scrapes, reconnects): it did not follow the run", variant, st.page)
		}
	}
	if e != nil {
		if err := e.Close(); err != nil {
			b.Error(err)
		}
	}
	if st.reqs == 0 || st.wall <= 0 {
		b.Fatalf("%s: no request in %v", variant, d)
	}
	return st
}

// heapAfterGC returns the bytes of the heap's live objects after a
// collection.
func heapAfterGC() int64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// BenchmarkLiveCost measures what the live page costs the generator: its
// CPU per request with --ui and a page open ("ui": a page reads
// /api/state once, then follows /api/events, reading and decoding every
// event), and with /metrics on the page scraped every second as well
// ("ui+scraped"), against the same run without either ("plain"). Two
// workloads: the quick form at its maximum rate ("quick", 16 users, no
// think time) and the seed scenario at 1,000 users against the lab's
// seed preset ("seed", see seedWorkload). The target and the page each
// run in a process of their own (the test binary again), so the CPU
// counted (getrusage of this process, over the seconds of load: without
// the run's setup and its final files) is the generator's alone: its
// load, its recorder, the run directory, the probes and log followers,
// and for the variants the live Server (its recorder, its pushes, the
// diagnosis so far every 5 s) and the exporter.
//
// Each iteration runs every variant once, in a rotating order; the
// benchmark reports each variant's CPU µs per request and requests per
// second over all the iterations, and the median over the iterations of
// its ratio to plain's in the same iteration (the budget: within
// 1.05). Run it alone on the machine:
//
//	flock /tmp/stampede-live.lock go test -run '^$' -bench LiveCost -benchtime 10x -timeout 60m ./internal/live
//
// (About 15 minutes: each iteration is three runs of each workload.)
//
// STAMPEDE_BENCH_RUN sets each run's length (default 10s),
// STAMPEDE_BENCH_USERS the quick form's users (default 16),
// STAMPEDE_BENCH_SEED_USERS the seed's (default 1000), STAMPEDE_BENCH_PBKDF2
// the lab's password hashing (default 1000 iterations); -bench
// 'LiveCost/quick' or 'LiveCost/seed' runs one workload.
func BenchmarkLiveCost(b *testing.B) {
	runFor := benchDuration(b, "STAMPEDE_BENCH_RUN", 10*time.Second)
	for _, w := range workloads {
		b.Run(w.name, func(b *testing.B) { liveCost(b, w.start(b), runFor) })
	}
}

// workloads are the benchmarks' workloads, each started (its target
// process) only when its sub-benchmark runs.
var workloads = []struct {
	name  string
	start func(*testing.B) workload
}{{"quick", quickWorkload}, {"seed", seedWorkload}}

func liveCost(b *testing.B, w workload, runFor time.Duration) {
	variants := []string{variantPlain, variantUI, variantScraped}
	cpu, wall := map[string]time.Duration{}, map[string]time.Duration{}
	reqs := map[string]int64{}
	ratios := map[string][]float64{} // per iteration, to plain's of the same iteration
	dir := b.TempDir()
	// A first run, not counted, warms up the target, the connections and
	// the page cache.
	benchRun(b, w, variantPlain, min(runFor, 3*time.Second), filepath.Join(dir, "warm-up"), false)
	iters := 0
	for b.Loop() {
		per := map[string]float64{}
		var line []string
		for j := range variants {
			v := variants[(iters+j)%len(variants)]
			st := benchRun(b, w, v, runFor, filepath.Join(dir, fmt.Sprintf("%d-%d", iters, j)), false)
			cpu[v] += st.cpu
			wall[v] += st.wall
			reqs[v] += st.reqs
			per[v] = float64(st.cpu.Microseconds()) / float64(st.reqs)
			line = append(line, fmt.Sprintf("%s %.2f µs/req %.0f req/s", v, per[v], float64(st.reqs)/st.wall.Seconds()))
		}
		for _, v := range variants[1:] {
			ratios[v] = append(ratios[v], per[v]/per[variantPlain])
		}
		b.Logf("iteration %d: %s", iters, strings.Join(line, ", "))
		iters++
	}
	for _, v := range variants {
		b.ReportMetric(float64(cpu[v].Microseconds())/float64(max(reqs[v], 1)), v+"-cpu-µs/req")
		b.ReportMetric(float64(reqs[v])/max(wall[v].Seconds(), 1e-3), v+"-req/s")
		if v != variantPlain {
			// The median of the iterations' ratios: a run disturbed by
			// something else on the machine moves it least.
			b.ReportMetric(median(ratios[v]), v+"-ratio")
		}
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	switch {
	case len(s) == 0:
		return 0
	case len(s)%2 == 1:
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkLiveMemory measures what the live page keeps of a run, once
// the run has ended: a run with --ui and a page open of
// STAMPEDE_BENCH_SHORT (default 10s), then one of STAMPEDE_BENCH_LONG
// (default 40s), of each workload. It reports for both the heap the run
// left in use after a GC, the live Server still up (short-heap-KB,
// long-heap-KB, heap-ratio), and the Server's own state, measured by
// walking it (measureState):
//
//   - what grows with the run's length, by design: the per-second
//     history the page draws from the run's start (a few dozen columns of
//     one float64 a second: the requests, failures by class, p50/p95/p99,
//     dropped starts, the probes' readings, each endpoint's requests and
//     failures; the recorder's counts beside them). history-B/s is its
//     size per second of the long run: an hour costs 3,600 times that.
//   - what must not grow: the rest (bounded-KB of each run and
//     bounded-ratio): the latest KeepEvidence log events (200; older ones
//     are counted by class), the 50 most frequent failure groups, the
//     1,000 first load changes, the diagnosis so far (one finding per
//     rule), the endpoint table and histograms (one per endpoint: the
//     scenario's names, bounded), the open per-second histograms (the
//     last lateBuckets seconds, then reused). Its ratio stays near 1 where
//     the history's follows the length (4 by default).
//
// The heap figure holds both, and whatever the run left behind for the
// collector (the load's idle connections): its ratio lies between.
//
//	flock /tmp/stampede-live.lock go test -run '^$' -bench LiveMemory -benchtime 1x -timeout 30m ./internal/live
func BenchmarkLiveMemory(b *testing.B) {
	short := benchDuration(b, "STAMPEDE_BENCH_SHORT", 10*time.Second)
	long := benchDuration(b, "STAMPEDE_BENCH_LONG", 40*time.Second)
	for _, w := range workloads {
		b.Run(w.name, func(b *testing.B) {
			wl := w.start(b)
			dir := b.TempDir()
			var s, l *memStats
			for b.Loop() {
				s = benchRun(b, wl, variantUI, short, filepath.Join(dir, "short"), true).mem
				l = benchRun(b, wl, variantUI, long, filepath.Join(dir, "long"), true).mem
			}
			b.Logf("%v: %d s of history, heap %d KB, history %d B, bounded %d B; %v: %d s, heap %d KB, history %d B, bounded %d B",
				short, s.seconds, s.heap>>10, s.size.history, s.size.bounded, long, l.seconds, l.heap>>10, l.size.history, l.size.bounded)
			b.ReportMetric(float64(s.heap)/1024, "short-heap-KB")
			b.ReportMetric(float64(l.heap)/1024, "long-heap-KB")
			b.ReportMetric(float64(l.heap)/float64(max(s.heap, 1)), "heap-ratio")
			b.ReportMetric(float64(l.size.history)/float64(max(l.seconds, 1)), "history-B/s")
			b.ReportMetric(float64(s.size.bounded)/1024, "short-bounded-KB")
			b.ReportMetric(float64(l.size.bounded)/1024, "long-bounded-KB")
			b.ReportMetric(float64(l.size.bounded)/float64(max(s.size.bounded, 1)), "bounded-ratio")
		})
	}
}

// stateSize is the size of what a Server keeps of its run, in bytes:
// history the per-second columns (the page's and the recorder's), bounded
// the rest. Slices count by their capacity, strings by their length,
// the parts made of many small values by their JSON encoding (close to
// what they hold), histograms by their counts.
type stateSize struct{ history, bounded int }

// measureState walks s's state.
func measureState(s *Server) stateSize {
	var z stateSize
	jsonSize := func(v any) int {
		b, _ := json.Marshal(v)
		return len(b)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, r := &s.st, &s.rec
	for name, c := range st.cols {
		z.history += 8*cap(c.vals) + len(name)
	}
	for _, c := range r.counts {
		z.history += 8 * cap(c)
	}
	z.history += 8 * (cap(r.p50) + cap(r.p95) + cap(r.p99))
	for _, e := range r.order {
		z.history += 8 * (cap(e.req) + cap(e.fail))
		z.bounded += len(e.method) + len(e.name) + 8*len(e.hist.Export().Counts)
	}
	z.bounded += 8 * len(r.total.hist.Export().Counts)
	for _, h := range r.open {
		z.bounded += 8 * len(h.Export().Counts)
	}
	for _, h := range r.free {
		z.bounded += 8 * len(h.Export().Counts)
	}
	z.bounded += jsonSize(st.events[:cap(st.events)]) + jsonSize(st.evByClass) + jsonSize(st.probes)
	z.bounded += jsonSize(st.table) + jsonSize(st.total) + jsonSize(st.failures) + jsonSize(st.loads)
	z.bounded += jsonSize(st.diag) + jsonSize(st.first) + len(st.pushedCharts) + 16*len(st.since)
	return z
}

// benchCPU reads the process's CPU time when the load starts and at each
// second the recorder closes, with the requests made by then and the wall
// time: the cost of the load alone, without the run's setup and its final
// files.
type benchCPU struct {
	start, last         time.Duration // CPU time
	startWall, lastWall time.Time
	reqs                int64
}

func (w *benchCPU) Result(*stampede.Result) {}
func (w *benchCPU) Second(s *runner.SecondView) {
	w.last, w.lastWall, w.reqs = cpuTime(), time.Now(), s.Total.TotalRequests
}
func (w *benchCPU) Sample(stampede.Sample)     {}
func (w *benchCPU) Evidence(stampede.Evidence) {}
func (w *benchCPU) LoadChanged(c runner.LoadChange) {
	if c.By == "plan" {
		w.start, w.startWall = cpuTime(), time.Now()
	}
}
func (w *benchCPU) End(*runner.Result) {}

// cpuTime returns the CPU time (user and system) of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
