package faults_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stampede-load/stampede/internal/faults"
	"github.com/stampede-load/stampede/internal/lab"
	"github.com/stampede-load/stampede/internal/rundir"
)

// The memory bounds (README, docs/reliability.md). A run of at least
// 1,000,000 requests (the quick form against cmd/stampede-target, run to
// its end, diagnosis and report included) peaks below:
const (
	// millionOffMB with requests.csv off or sampled: the histograms and
	// the per-second history, whatever the number of requests (measured:
	// 26-28 MB).
	millionOffMB = 48
	// millionAllMB with requests.csv on: the diagnosis reads every record
	// (about 135 bytes a request), so it grows with the run (measured:
	// 160-164 MB).
	millionAllMB = 256
	// soakGrowth is the most the generator's RSS may grow over a soak,
	// after its warm-up.
	soakGrowth = 0.05
)

// memoryEnv gates the memory measurements: they take minutes, so they run
// from scripts/soak (and scripts/reliability), not in the suite.
const memoryEnv = "STAMPEDE_MEMORY"

// startTarget starts cmd/stampede-target on a free port; the test's
// cleanup stops it.
func startTarget(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(targetBin, "-addr", addr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for range 100 {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return addr
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("stampede-target did not listen on %s", addr)
	return ""
}

// millionRun is one run of TestMemoryMillion.
type millionRun struct {
	mode     string
	requests int64
	rows     int64
	peakMB   float64
	wall     time.Duration
}

// TestMemoryMillion: the quick form against cmd/stampede-target until
// 1,000,000 requests are done (then Ctrl-C: the run writes every file,
// its diagnosis and report.html included), with requests.csv on and off.
// The peak RSS of the stampede process (getrusage's ru_maxrss) stays under
// millionAllMB and millionOffMB.
func TestMemoryMillion(t *testing.T) {
	if os.Getenv(memoryEnv) == "" {
		t.Skipf("a run of 1,000,000 requests takes a minute or two: set %s=1 (scripts/soak does)", memoryEnv)
	}
	n := int64(1_000_000)
	if s := os.Getenv("STAMPEDE_MEMORY_REQUESTS"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v <= 0 {
			t.Fatalf("STAMPEDE_MEMORY_REQUESTS=%q: want a count", s)
		}
		n = v
	}
	addr := startTarget(t)
	var runs []millionRun
	for _, tc := range []struct {
		mode  string
		bound float64
	}{{"all", millionAllMB}, {"off", millionOffMB}, {"sample:0.01", millionOffMB}} {
		r := runMillion(t, addr, tc.mode, n)
		runs = append(runs, r)
		t.Logf("requests.csv %s: %d requests (%d rows) in %v, peak RSS %.1f MB (bound %.0f MB)", r.mode, r.requests, r.rows, r.wall.Round(time.Second), r.peakMB, tc.bound)
		if r.requests < n {
			t.Errorf("requests.csv %s: %d requests, want at least %d", r.mode, r.requests, n)
		}
		if r.peakMB > tc.bound {
			t.Errorf("requests.csv %s: peak RSS %.1f MB, above the bound of %.0f MB", r.mode, r.peakMB, tc.bound)
		}
	}
	var parts []string
	for _, r := range runs {
		parts = append(parts, fmt.Sprintf("requests.csv %s: %s requests, peak RSS %.0f MB", r.mode, thousands(r.requests), r.peakMB))
	}
	row(t, faults.Row{Section: faults.SectionMemory, Name: fmt.Sprintf("A run of %s requests (quick form, 50 users, against stampede-target)", thousands(n)),
		Recorded: strings.Join(parts, "; ") + fmt.Sprintf(" (bounds: %d MB with requests.csv on, %d MB off or sampled; diagnosis and report.html included)", millionAllMB, millionOffMB)})
}

// thousands writes n with commas between its thousands: 1,000,000.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// runMillion runs the quick form against addr with requests.csv mode until
// n requests are done, and returns its figures.
func runMillion(t *testing.T, addr, mode string, n int64) millionRun {
	t.Helper()
	out := filepath.Join(t.TempDir(), "run")
	cmd := exec.Command(bin, "run", "--url", "http://"+addr+"/", "-u", "50", "-r", "10000", "-t", "30m", "--quiet",
		"--probe-host=false", "--requests-csv", mode, "--out", out)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// summary.json is rewritten every second: interrupt once it counts n.
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Minute)
	defer cancel()
	interrupted := false
	for !interrupted {
		select {
		case err := <-done:
			t.Fatalf("stampede ended before %d requests: %v\n%s", n, err, log.String())
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			t.Fatalf("%d requests not reached within 20 minutes", n)
		case <-tick.C:
			var sum struct {
				Aggregated struct {
					Requests int64 `json:"requests"`
				} `json:"aggregated"`
			}
			if b, err := os.ReadFile(filepath.Join(out, rundir.SummaryFile)); err == nil && json.Unmarshal(b, &sum) == nil && sum.Aggregated.Requests >= n {
				_ = cmd.Process.Signal(os.Interrupt)
				interrupted = true
			}
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("stampede: %v\n%s", err, log.String())
	}
	r := millionRun{mode: mode, wall: time.Since(start)}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.peakMB = float64(ru.Maxrss) / 1024 // kilobytes on Linux
	}
	meta, err := rundir.ReadMeta(out)
	if err != nil {
		t.Fatal(err)
	}
	var sum struct {
		Aggregated struct {
			Requests int64 `json:"requests"`
		} `json:"aggregated"`
	}
	readJSON(t, filepath.Join(out, rundir.SummaryFile), &sum)
	r.requests, r.rows = sum.Aggregated.Requests, meta.RequestsRows
	for _, f := range []string{"diagnosis.json", "report.html", "locust_stats.csv"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("requests.csv %s: %s: %v", mode, f, err)
		}
	}
	return r
}

// soakSample is a generator reading of the soak.
type soakSample struct {
	at        time.Duration // since the run's start
	rss, heap float64       // bytes
}

// TestSoak runs the lab (embedded store) and "stampede run" against it at
// a steady rate for STAMPEDE_SOAK (at least ten minutes for the record;
// scripts/soak), and checks that the generator's RSS stays flat: after a
// warm-up (the first fifth of the run, at least a minute), the mean of the
// last tenth of the run is within soakGrowth of the mean of the first
// tenth after the warm-up, and the least-squares slope of the RSS over the
// same span projects less than soakGrowth over it.
func TestSoak(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("STAMPEDE_SOAK"))
	if err != nil || d <= 0 {
		t.Skip("a soak takes ten minutes or more: set STAMPEDE_SOAK=10m (scripts/soak does)")
	}
	dir := t.TempDir()
	l := startLabProc(t, filepath.Join(dir, "lab-logs"), append(append([]string{}, labArgs...), "--db-path", filepath.Join(dir, "lab.sqlite"))...)
	users := filepath.Join(dir, "users.csv")
	f, err := os.Create(users)
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.WriteUsersCSV(f, 50); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// 50 users, 250 ms between pages: about 200 requests a second.
	sc := fmt.Sprintf(`target: http://%s
load: {users: 50, spawn_rate: 10, duration: %s}
think: 250ms
users_file: users.csv
on_start:
  - {name: "[AUTH] Login GET", get: /accounts/login/}
  - name: "[AUTH] Login POST"
    submit_form: {fields: {login: "{{user.username}}", password: "{{user.password}}"}}
    expect: {status: [302], not_login_page: true}
tasks:
  - {name: dashboard, weight: 4, steps: [{name: "GET /dashboard/", get: /dashboard/}]}
  - {name: pekerjaan, weight: 3, steps: [{name: "GET /pekerjaan/", get: /pekerjaan/}]}
  - {name: rincian, weight: 2, steps: [{name: "GET /rincian-ahsp/[id]/", get: "/rincian-ahsp/{{vu}}/"}]}
logs:
  - {name: app-errors, path: %q}
  - {name: access, path: %q}
`, l.addr, d, filepath.Join(l.logs, lab.ErrorsLog), filepath.Join(l.logs, lab.AccessLog))
	scPath := filepath.Join(dir, "soak.yaml")
	if err := os.WriteFile(scPath, []byte(sc), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "run")
	cmd := exec.CommandContext(t.Context(), bin, "run", scPath, "--quiet", "--out", out)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	if b, err := cmd.CombinedOutput(); err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
			t.Fatalf("stampede run: %v\n%s", err, b)
		}
	}
	timeline, err := rundir.ReadTimeline(out)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := rundir.ReadMeta(out)
	if err != nil {
		t.Fatal(err)
	}
	var ss []soakSample
	for _, s := range timeline {
		if s.Source == "generator" && s.Values["rss_bytes"] > 0 {
			ss = append(ss, soakSample{at: s.Time.Sub(meta.Start), rss: s.Values["rss_bytes"], heap: s.Values["heap_bytes"]})
		}
	}
	var sum struct {
		Aggregated struct {
			Requests int64   `json:"requests"`
			Failures int64   `json:"failures"`
			RPS      float64 `json:"rps"`
		} `json:"aggregated"`
	}
	readJSON(t, filepath.Join(out, rundir.SummaryFile), &sum)
	fig := soakFigures(ss, d)
	t.Logf("soak %v: %d requests (%.0f/s, %d failed); %s", d, sum.Aggregated.Requests, sum.Aggregated.RPS, sum.Aggregated.Failures, fig)
	if fig.samples < 20 {
		t.Fatalf("%d generator samples after the warm-up: too few", fig.samples)
	}
	if fig.growth > soakGrowth || fig.slopeGrowth > soakGrowth {
		t.Errorf("the generator's RSS grew %.1f%% (mean of the last tenth against the first tenth after warm-up), %.1f%% by its slope over the same span: the bound is %.0f%%",
			100*fig.growth, 100*fig.slopeGrowth, 100*soakGrowth)
	}
	row(t, faults.Row{Section: faults.SectionMemory, Name: fmt.Sprintf("Soak: %v against the lab at a steady rate", d),
		Recorded: fmt.Sprintf("%s requests at %.0f/s; %s (bound: growth under %.0f%% after warm-up)", thousands(sum.Aggregated.Requests), sum.Aggregated.RPS, fig, 100*soakGrowth)})
}

// soakStats are the figures of a soak's RSS after its warm-up.
type soakStats struct {
	samples             int
	warmup              time.Duration
	first, last, peak   float64 // RSS, bytes: means of the first and last tenth, the peak
	growth, slopeGrowth float64 // fractions of first
	heapFirst, heapLast float64
	slopePerMin         float64 // bytes per minute
}

func (s soakStats) String() string {
	mb := func(b float64) string { return fmt.Sprintf("%.1f MB", b/(1<<20)) }
	return fmt.Sprintf("generator RSS after a %v warm-up: %s at first, %s at the end (%+.1f%%), peak %s, slope %+.2f MB/min (%+.1f%% over the span); Go heap %s → %s",
		s.warmup, mb(s.first), mb(s.last), 100*s.growth, mb(s.peak), s.slopePerMin/(1<<20), 100*s.slopeGrowth, mb(s.heapFirst), mb(s.heapLast))
}

// soakFigures computes the RSS figures of a soak of duration d from its
// generator samples.
func soakFigures(ss []soakSample, d time.Duration) soakStats {
	warm := max(d/5, time.Minute)
	if d < 2*time.Minute {
		warm = d / 3
	}
	var post []soakSample
	for _, s := range ss {
		if s.at >= warm {
			post = append(post, s)
		}
	}
	st := soakStats{samples: len(post), warmup: warm}
	if len(post) < 10 {
		return st
	}
	tenth := max(len(post)/10, 3)
	mean := func(xs []soakSample, f func(soakSample) float64) float64 {
		t := 0.0
		for _, x := range xs {
			t += f(x)
		}
		return t / float64(len(xs))
	}
	rss := func(s soakSample) float64 { return s.rss }
	heap := func(s soakSample) float64 { return s.heap }
	st.first, st.last = mean(post[:tenth], rss), mean(post[len(post)-tenth:], rss)
	st.heapFirst, st.heapLast = mean(post[:tenth], heap), mean(post[len(post)-tenth:], heap)
	st.peak = slices.MaxFunc(post, func(a, b soakSample) int { return cmp.Compare(a.rss, b.rss) }).rss
	st.growth = (st.last - st.first) / st.first
	// Least-squares slope of RSS against time.
	var sx, sy, sxx, sxy float64
	for _, s := range post {
		x := s.at.Minutes()
		sx += x
		sy += s.rss
		sxx += x * x
		sxy += x * s.rss
	}
	n := float64(len(post))
	st.slopePerMin = (n*sxy - sx*sy) / (n*sxx - sx*sx)
	span := post[len(post)-1].at.Minutes() - post[0].at.Minutes()
	st.slopeGrowth = st.slopePerMin * span / st.first
	if math.IsNaN(st.slopeGrowth) {
		st.slopeGrowth = 0
	}
	return st
}
