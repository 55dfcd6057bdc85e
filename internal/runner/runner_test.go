package runner_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/diagnose"
	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/metrics"
	"github.com/stampede-load/stampede/internal/rundir"
	"github.com/stampede-load/stampede/internal/runner"
	"github.com/stampede-load/stampede/internal/testserver"
)

// The secrets of the test scenario: neither may appear in a run directory.
const (
	password = "s3cret-pw"
	dbSecret = "hunter2"
)

// testScenario logs in (a password in the form), then mostly gets / and
// sometimes gets it expecting a 201, a failure. The PostgreSQL probe
// points at a closed port: it is recorded as unreachable.
const testScenario = `target: %s
load: {users: 4, spawn_rate: 4, duration: %s}
think: 20ms
on_start:
  - name: "[AUTH] Login GET"
    get: /accounts/login/
  - name: "[AUTH] Login POST"
    submit_form:
      fields: {login: user1, password: ` + password + `}
    expect: {status: [302], not_login_page: true}
tasks:
  - {name: home, weight: 3, steps: [{name: "GET /", get: /}]}
  - {name: wrong, weight: 1, steps: [{name: "GET / as 201", get: /, expect: {status: [201]}}]}
thresholds:
  all: ["failure_rate < 1%%"]
probes: {postgres: "postgres://app:` + dbSecret + `@127.0.0.1:1/app"}
`

// scenario writes the test scenario against target and compiles it.
func scenario(t *testing.T, target, duration string) (*load.Scenario, *load.Plan) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "scenario.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(testScenario, target, duration)), 0o644); err != nil {
		t.Fatal(err)
	}
	sc, err := load.ReadScenario(path)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := sc.Compile()
	if err != nil {
		t.Fatal(err)
	}
	return sc, plan
}

func readRecords(t *testing.T, dir string) []stampede.Result {
	t.Helper()
	var rs []stampede.Result
	if err := rundir.ReadRequests(dir, func(r *stampede.Result) error { rs = append(rs, *r); return nil }); err != nil {
		t.Fatal(err)
	}
	return rs
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// aggregatedCount returns the Request Count of locust_stats.csv's
// Aggregated row.
func aggregatedCount(t *testing.T, dir string) string {
	t.Helper()
	for _, line := range strings.Split(string(readFile(t, filepath.Join(dir, "locust_stats.csv"))), "\r\n") {
		if strings.HasPrefix(line, ",Aggregated,") {
			return strings.Split(line, ",")[2]
		}
	}
	t.Fatalf("%s: locust_stats.csv has no Aggregated row", dir)
	return ""
}

// historyTotals returns the number of Aggregated rows of
// locust_stats_history.csv and the Total Request Count of the last.
func historyTotals(t *testing.T, dir string) (rows int, total string) {
	t.Helper()
	for _, line := range strings.Split(string(readFile(t, filepath.Join(dir, "locust_stats_history.csv"))), "\r\n") {
		if f := strings.Split(line, ","); len(f) > 17 && f[2] == "" && f[3] == "Aggregated" {
			rows, total = rows+1, f[17]
		}
	}
	return rows, total
}

// copyRecords copies the records of run directory src (not its derived
// files) into a new directory.
func copyRecords(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	for _, name := range []string{rundir.MetaFile, rundir.RequestsFile, rundir.TimelineFile, rundir.EvidenceFile} {
		if err := os.WriteFile(filepath.Join(dst, name), readFile(t, filepath.Join(src, name)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func TestRun(t *testing.T) {
	ts := httptest.NewServer(testserver.New(password))
	defer ts.Close()
	sc, plan := scenario(t, ts.URL, "3s")
	o, err := runner.ScenarioOptions(sc)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "run")
	o.Dir = dir
	o.Command = []string{"stampede", "run", "--probe-postgres=postgres://app:" + dbSecret + "@127.0.0.1:1/app", sc.File()}
	var reports atomic.Int64
	var sawRequests atomic.Bool
	o.Progress = func(s runner.Status) {
		reports.Add(1)
		if s.Metrics.Requests > 0 && s.Users > 0 {
			sawRequests.Store(true)
		}
	}
	o.ProgressEvery = 100 * time.Millisecond

	res, err := runner.Run(context.Background(), plan, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Dir != dir || res.Partial {
		t.Errorf("result: dir %q partial %v, want %q, false", res.Dir, res.Partial, dir)
	}
	for _, name := range []string{"meta.json", "requests.csv", "timeline.jsonl", "evidence.jsonl", "summary.json",
		"locust_stats.csv", "locust_stats_history.csv", "locust_failures.csv", "locust_exceptions.csv",
		"diagnosis.json", "diagnosis.md", "report.html"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		for _, secret := range []string{password, dbSecret} {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s holds the secret %q", name, secret)
			}
		}
	}

	meta, err := rundir.ReadMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Partial || meta.EndReason != "duration reached" || meta.End.IsZero() || meta.Scenario == nil {
		t.Errorf("meta.json: partial %v, end reason %q, end %v, scenario kept %v", meta.Partial, meta.EndReason, meta.End, meta.Scenario != nil)
	}
	if want := []string{"postgres"}; !reflect.DeepEqual(meta.Probes, want) {
		t.Errorf("meta.json probes %v, want %v", meta.Probes, want)
	}
	if want := []string{"[AUTH] Login POST"}; !reflect.DeepEqual(meta.Load.LoginEndpoints, want) {
		t.Errorf("meta.json login endpoints %v, want %v", meta.Load.LoginEndpoints, want)
	}

	records := readRecords(t, dir)
	if len(records) < 20 {
		t.Fatalf("%d records", len(records))
	}
	sum := res.Summary
	if sum.Partial || sum.Aggregated.Requests != int64(len(records)) || sum.Aggregated.Failures == 0 {
		t.Errorf("summary: partial %v, %d requests, %d failures; %d records", sum.Partial, sum.Aggregated.Requests, sum.Aggregated.Failures, len(records))
	}
	if got := aggregatedCount(t, dir); got != fmt.Sprint(len(records)) {
		t.Errorf("locust_stats.csv counts %s requests, %d records", got, len(records))
	}
	if onDisk, err := metrics.ReadSummary(filepath.Join(dir, "summary.json")); err != nil || onDisk.Aggregated.Requests != sum.Aggregated.Requests {
		t.Errorf("summary.json: %v, %v", onDisk, err)
	}

	if got, want := res.FailedThresholds(), []string{"all: failure_rate < 1%"}; !reflect.DeepEqual(got, want) {
		t.Errorf("failed thresholds %q, want %q", got, want)
	}
	if res.Diagnosis == nil || res.DiagnosisErr != nil || res.ReportErr != nil {
		t.Fatalf("diagnosis %v (%v), report %v", res.Diagnosis, res.DiagnosisErr, res.ReportErr)
	}
	// The diagnosis knows the thresholds: the failed one is there, failed,
	// with its measured value, and the run's verdict fails.
	if d := res.Diagnosis; len(d.Thresholds) != 1 || d.Thresholds[0].Pass || d.Thresholds[0].Threshold != "all: failure_rate < 1%" || d.Thresholds[0].Value == "" || d.Verdict != "fail" {
		t.Errorf("diagnosis thresholds %+v, verdict %s", d.Thresholds, d.Verdict)
	}
	if reports.Load() == 0 || !sawRequests.Load() {
		t.Errorf("progress: %d reports, one with requests and users: %v", reports.Load(), sawRequests.Load())
	}

	timeline, err := rundir.ReadTimeline(dir)
	if err != nil {
		t.Fatal(err)
	}
	sources := map[string]int{}
	for _, s := range timeline {
		if s.Source == "postgres" && s.Err == "" {
			t.Errorf("a sample of the unreachable PostgreSQL without an error: %+v", s)
		}
		sources[s.Source]++
		if s.Source == "generator" && (s.Values["rss_bytes"] < 1<<20 || s.Values["heap_bytes"] < 1<<10) {
			t.Errorf("generator sample without its memory: rss_bytes %v, heap_bytes %v", s.Values["rss_bytes"], s.Values["heap_bytes"])
		}
	}
	if sources["generator"] == 0 || sources["postgres"] == 0 {
		t.Errorf("timeline sources %v: want generator and postgres samples", sources)
	}

	t.Run("finish replays the records", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			killed bool // meta.json as kill -9 leaves it: no end, partial
		}{{"complete", false}, {"killed", true}} {
			t.Run(tc.name, func(t *testing.T) {
				dst := copyRecords(t, dir)
				if tc.killed {
					m := *meta
					m.End, m.Partial, m.EndReason = time.Time{}, true, ""
					if err := rundir.WriteMeta(dst, &m); err != nil {
						t.Fatal(err)
					}
				}
				fin, err := runner.Finish(context.Background(), dst, runner.FinishOptions{Thresholds: o.Thresholds})
				if err != nil {
					t.Fatal(err)
				}
				for _, name := range []string{"locust_stats_history.csv", "locust_exceptions.csv", "diagnosis.json", "diagnosis.md", "report.html"} {
					if _, err := os.Stat(filepath.Join(dst, name)); err != nil {
						t.Error(err)
					}
				}
				if fin.Partial != tc.killed || fin.Summary.Partial != tc.killed {
					t.Errorf("partial: result %v, summary %v; want %v", fin.Partial, fin.Summary.Partial, tc.killed)
				}
				if !reflect.DeepEqual(fin.FailedThresholds(), res.FailedThresholds()) || fin.Diagnosis == nil {
					t.Errorf("finish: failed thresholds %q, diagnosis %v", fin.FailedThresholds(), fin.Diagnosis)
				}
				// Counts, latencies and failure groups are the run's own,
				// to the microsecond of requests.csv. Rates depend on the
				// end: only a complete run's are the same.
				if got := aggregatedCount(t, dst); got != fmt.Sprint(len(records)) {
					t.Errorf("replayed locust_stats.csv counts %s requests, want %d", got, len(records))
				}
				if len(fin.Summary.Endpoints) != len(sum.Endpoints) {
					t.Fatalf("replayed %d endpoints, want %d", len(fin.Summary.Endpoints), len(sum.Endpoints))
				}
				for i := range sum.Endpoints {
					checkEndpoint(t, fin.Summary.Endpoints[i], sum.Endpoints[i], !tc.killed)
				}
				checkEndpoint(t, fin.Summary.Aggregated, sum.Aggregated, !tc.killed)
				if len(fin.Summary.Failures) != len(sum.Failures) {
					t.Fatalf("replayed failures %+v, want %+v", fin.Summary.Failures, sum.Failures)
				}
				for i, f := range sum.Failures {
					got := fin.Summary.Failures[i]
					// A record's start and latency are each cut to the
					// microsecond: its end, up to two.
					if got.FirstSeen.Sub(f.FirstSeen).Abs() >= time.Microsecond || got.LastSeen.Sub(f.LastSeen).Abs() >= 2*time.Microsecond {
						t.Errorf("replayed failure %+v, want %+v", got, f)
					}
					got.FirstSeen, got.LastSeen, f.FirstSeen, f.LastSeen = time.Time{}, time.Time{}, time.Time{}, time.Time{}
					if got != f {
						t.Errorf("replayed failure %+v, want %+v", got, f)
					}
				}
				gotRows, gotTotal := historyTotals(t, dst)
				wantRows, _ := historyTotals(t, dir)
				if gotTotal != fmt.Sprint(len(records)) || gotRows < wantRows-1 || gotRows > wantRows+1 {
					t.Errorf("replayed history: %d Aggregated rows, the last with %s requests; want %d±1 rows, %d requests",
						gotRows, gotTotal, wantRows, len(records))
				}
				if !tc.killed {
					if got, want := readFile(t, filepath.Join(dst, "locust_failures.csv")), readFile(t, filepath.Join(dir, "locust_failures.csv")); !bytes.Equal(got, want) {
						t.Errorf("replayed locust_failures.csv:\n%s\nwant\n%s", got, want)
					}
					if !fin.Summary.End.Equal(sum.End) || fin.Summary.UsersPeak != plan.Users {
						t.Errorf("replayed end %v, users peak %d; want %v, %d", fin.Summary.End, fin.Summary.UsersPeak, sum.End, plan.Users)
					}
				}
			})
		}
	})
}

// checkEndpoint compares a replayed endpoint summary with the live one:
// counts and histograms equal, latencies within the microsecond that
// requests.csv keeps, rates within 0.1% if rates.
func checkEndpoint(t *testing.T, got, want metrics.EndpointSummary, rates bool) {
	t.Helper()
	near := func(a, b, tol float64) bool { return math.Abs(a-b) <= tol*math.Max(math.Abs(b), 1e-9) }
	ok := got.Method == want.Method && got.Name == want.Name && got.Requests == want.Requests && got.Failures == want.Failures &&
		reflect.DeepEqual(got.Outcomes, want.Outcomes) && got.BytesTotal == want.BytesTotal && got.Histogram == want.Histogram
	if rates {
		ok = ok && near(got.RPS, want.RPS, 1e-3) && near(got.FailuresPerSec, want.FailuresPerSec, 1e-3)
	}
	lat := []time.Duration{got.Latency.Min - want.Latency.Min, got.Latency.Avg - want.Latency.Avg, got.Latency.Max - want.Latency.Max}
	for i := range want.Latency.Percentiles {
		lat = append(lat, got.Latency.Percentiles[i]-want.Latency.Percentiles[i])
	}
	for _, d := range lat {
		ok = ok && d.Abs() < time.Microsecond
	}
	if !ok {
		t.Errorf("replayed %s %s:\n%+v\nwant\n%+v", want.Method, want.Name, got, want)
	}
}

// TestRunInterrupted: a run whose context ends is complete up to then and
// marked partial, and is not an error.
func TestRunInterrupted(t *testing.T) {
	ts := httptest.NewServer(testserver.New(password))
	defer ts.Close()
	_, plan := scenario(t, ts.URL, "1m")
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o := runner.Options{Dir: dir, NoDiagnose: true, ProgressEvery: 50 * time.Millisecond}
	// Interrupt once some requests were recorded, however slow the machine.
	o.Progress = func(s runner.Status) {
		if s.Metrics.Requests >= 10 {
			cancel()
		}
	}
	done := make(chan struct{})
	var res *runner.Result
	var err error
	go func() {
		defer close(done)
		res, err = runner.Run(ctx, plan, o)
	}()
	select {
	case <-done:
	case <-time.After(45 * time.Second):
		t.Fatal("the run did not stop within 45 s of its interruption")
	}
	if err != nil {
		t.Fatal(err)
	}
	if !res.Partial || !res.Summary.Partial || res.Diagnosis != nil {
		t.Errorf("result: partial %v, summary partial %v, diagnosis %v", res.Partial, res.Summary.Partial, res.Diagnosis)
	}
	meta, err := rundir.ReadMeta(dir)
	if err != nil || !meta.Partial || meta.EndReason != "interrupted" {
		t.Fatalf("meta.json: %+v, %v", meta, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "diagnosis.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("diagnosis.json with NoDiagnose: %v", err)
	}
	if n := len(readRecords(t, dir)); int64(n) != res.Summary.Aggregated.Requests || n == 0 {
		t.Errorf("%d records, summary %d requests", n, res.Summary.Aggregated.Requests)
	}
}

func TestRunBadOptions(t *testing.T) {
	ts := httptest.NewServer(testserver.New(password))
	defer ts.Close()
	_, plan := scenario(t, ts.URL, "1s")
	for _, tc := range []struct {
		name  string
		o     runner.Options
		probe string // the *ProbeError's probe, or "" for an invalid option
	}{
		{"negative interval", runner.Options{Probes: runner.Probes{Interval: -time.Second}}, ""},
		{"negative pid", runner.Options{Probes: runner.Probes{PID: -1}}, ""},
		{"negative progress", runner.Options{ProgressEvery: -time.Second}, ""},
		{"log without path", runner.Options{Logs: []load.LogSpec{{Name: "app"}}}, ""},
		{"bad postgres DSN", runner.Options{Probes: runner.Probes{Postgres: "postgres://app:" + dbSecret + "@127.0.0.1:99999999/x"}}, "postgres"},
		{"bad redis URL", runner.Options{Probes: runner.Probes{Redis: "nosuch://x"}}, "redis"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Dir = t.TempDir()
			_, err := runner.Run(context.Background(), plan, tc.o)
			if err == nil {
				t.Fatal("no error")
			}
			var pe *runner.ProbeError
			if got := errors.As(err, &pe); got != (tc.probe != "") || (got && pe.Probe != tc.probe) {
				t.Errorf("error %q: want a probe error of %q", err, tc.probe)
			}
			if tc.probe == "" && tc.o.Validate() == nil {
				t.Errorf("Validate accepts the options Run refused: %v", err)
			}
			if strings.Contains(err.Error(), dbSecret) {
				t.Errorf("error %q holds the password", err)
			}
		})
	}
	if err := (runner.Options{}).Validate(); err != nil {
		t.Errorf("zero options: %v", err)
	}
}

func TestScenarioOptions(t *testing.T) {
	sc, _ := scenario(t, "http://127.0.0.1:1", "1s")
	o, err := runner.ScenarioOptions(sc)
	if err != nil {
		t.Fatal(err)
	}
	want := runner.Probes{Postgres: "postgres://app:" + dbSecret + "@127.0.0.1:1/app"}
	if o.Probes != want || len(o.Thresholds) != 1 || o.Scenario != sc {
		t.Errorf("options %+v", o)
	}
	if o, err := runner.ScenarioOptions(nil); err != nil || !reflect.DeepEqual(o, runner.Options{}) {
		t.Errorf("nil scenario: %+v, %v", o, err)
	}

	path := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(path, []byte("target: http://127.0.0.1:1\ntasks: [{steps: [{get: /}]}]\nthresholds:\n  all: [\"p95 <> 1s\"]\n"), 0o644)
	bad, err := load.ReadScenario(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runner.ScenarioOptions(bad); err == nil || !strings.HasPrefix(err.Error(), path+":4:") || !strings.Contains(err.Error(), "p95 <> 1s") {
		t.Errorf("bad threshold: %v, want an error at %s:4 quoting it", err, path)
	}

	os.WriteFile(path, []byte("target: http://127.0.0.1:1\ntasks: [{steps: [{get: /}]}]\nrequests_csv: sample:2\n"), 0o644)
	if bad, err = load.ReadScenario(path); err != nil {
		t.Fatal(err)
	}
	if _, err := runner.ScenarioOptions(bad); err == nil || !strings.HasPrefix(err.Error(), path+":3:") || !strings.Contains(err.Error(), "requests_csv") {
		t.Errorf("bad requests_csv: %v, want an error at %s:3 naming it", err, path)
	}
	os.WriteFile(path, []byte("target: http://127.0.0.1:1\ntasks: [{steps: [{get: /}]}]\nrequests_csv: sample:1%\n"), 0o644)
	if bad, err = load.ReadScenario(path); err != nil {
		t.Fatal(err)
	}
	if o, err := runner.ScenarioOptions(bad); err != nil || o.Requests.Sample != 0.01 {
		t.Errorf("requests_csv sample:1%%: %+v, %v", o.Requests, err)
	}
}

func TestRedactArgs(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{nil, nil},
		{[]string{"stampede", "run", "s.yaml"}, []string{"stampede", "run", "s.yaml"}},
		{[]string{"--probe-postgres", "postgres://app:pw1@h/db"}, []string{"--probe-postgres", "postgres://app:xxxxx@h/db"}},
		{[]string{"--probe-redis=redis://:pw2@h:6379/0"}, []string{"--probe-redis=redis://:xxxxx@h:6379/0"}},
		{[]string{"run", "--ui", "0.0.0.0:8089", "--ui-token", "t0k3n-plain", "s.yaml"}, []string{"run", "--ui", "0.0.0.0:8089", "--ui-token", "xxxxx", "s.yaml"}},
		{[]string{"-ui-token=abc", "--api-key", "k1"}, []string{"-ui-token=xxxxx", "--api-key", "xxxxx"}},
	} {
		if got := runner.RedactArgs(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("RedactArgs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestNotRunDir(t *testing.T) {
	dir := t.TempDir()
	for name, f := range map[string]func() error{
		"LoadInput": func() error { _, err := runner.LoadInput(dir); return err },
		"Diagnose":  func() error { _, err := runner.Diagnose(dir); return err },
		"Finish":    func() error { _, err := runner.Finish(context.Background(), dir, runner.FinishOptions{}); return err },
	} {
		var nr *runner.NotRunDirError
		if err := f(); !errors.As(err, &nr) || nr.Dir != dir {
			t.Errorf("%s of an empty directory: %v, want a NotRunDirError", name, err)
		}
	}
}

func TestLoadLocust(t *testing.T) {
	prefix := filepath.Join("..", "locust", "testdata", "seed")
	in, err := runner.LoadLocust(context.Background(), runner.LocustImport{Prefix: prefix, Accounts: 10, LoginEndpoint: "[AUTH] Login POST"})
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Endpoints) == 0 || len(in.History) == 0 || in.Start.IsZero() || !in.End.After(in.Start) {
		t.Fatalf("input: %d endpoints, %d history points, %v..%v", len(in.Endpoints), len(in.History), in.Start, in.End)
	}
	peak := 0
	for _, p := range in.History {
		peak = max(peak, p.Users)
	}
	for _, e := range in.Endpoints {
		if e.Name == metrics.AggregatedName {
			t.Errorf("the Aggregated row is an endpoint: %+v", e)
		}
	}
	l := in.Load
	if l.Users != peak || l.Accounts != 10 || !reflect.DeepEqual(l.LoginEndpoints, []string{"[AUTH] Login POST"}) {
		t.Errorf("load facts %+v, want %d users (the peak)", l, peak)
	}
	if _, err := runner.LoadLocust(context.Background(), runner.LocustImport{}); err == nil {
		t.Error("an import without a prefix loads")
	}
	if _, err := runner.LoadLocust(context.Background(), runner.LocustImport{Prefix: filepath.Join(t.TempDir(), "none")}); err == nil {
		t.Error("an import of missing files loads")
	}
}

// A run's requests.csv can be sampled or turned off: the summary, the
// Locust files and the diagnosis still count every request, the report
// draws from the Locust history, and Finish refuses to replay it.
func TestRequestsCSVModes(t *testing.T) {
	ts := httptest.NewServer(testserver.New(password))
	defer ts.Close()
	for _, tc := range []struct {
		mode     string
		min, max float64 // share of the requests written
	}{
		{"all", 1, 1},
		{"sample:0.2", 0.05, 0.45},
		{"off", 0, 0},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			sc, plan := scenario(t, ts.URL, "2s")
			o, err := runner.ScenarioOptions(sc)
			if err != nil {
				t.Fatal(err)
			}
			if o.Requests, err = rundir.ParseRequestsMode(tc.mode); err != nil {
				t.Fatal(err)
			}
			o.Dir = filepath.Join(t.TempDir(), "run")
			res, err := runner.Run(context.Background(), plan, o)
			if err != nil {
				t.Fatal(err)
			}
			meta, err := rundir.ReadMeta(o.Dir)
			if err != nil {
				t.Fatal(err)
			}
			total := res.Summary.Aggregated.Requests
			var rows int64
			err = rundir.ReadRequests(o.Dir, func(*stampede.Result) error { rows++; return nil })
			if tc.mode == "off" {
				if !errors.Is(err, os.ErrNotExist) {
					t.Errorf("requests.csv with requests_csv off: %v", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if meta.RequestsCSV != tc.mode || meta.RequestsRows != rows {
				t.Errorf("meta.json: requests_csv %q, requests_rows %d; want %q, %d", meta.RequestsCSV, meta.RequestsRows, tc.mode, rows)
			}
			share := float64(rows) / float64(total)
			if total < 50 || share < tc.min || share > tc.max {
				t.Errorf("%d of %d requests written (%.2f), want a share in [%.2f, %.2f]", rows, total, share, tc.min, tc.max)
			}
			if got := aggregatedCount(t, o.Dir); got != fmt.Sprint(total) {
				t.Errorf("locust_stats.csv counts %s requests, the summary %d", got, total)
			}
			if res.DiagnosisErr != nil || res.ReportErr != nil || res.Diagnosis == nil {
				t.Fatalf("diagnosis %v, report %v", res.DiagnosisErr, res.ReportErr)
			}
			in, err := runner.LoadInput(o.Dir)
			if err != nil {
				t.Fatal(err)
			}
			n, f := 0, 0
			for _, e := range in.Endpoints {
				n += e.Requests
				f += e.Failures
			}
			if int64(n) != total || int64(f) != res.Summary.Aggregated.Failures {
				t.Errorf("the diagnosis counts %d requests, %d failures; the summary %d, %d", n, f, total, res.Summary.Aggregated.Failures)
			}
			_, ferr := runner.Finish(context.Background(), o.Dir, runner.FinishOptions{NoDiagnose: true})
			if (ferr == nil) != (tc.mode == "all") {
				t.Errorf("Finish: %v", ferr)
			}
			if tc.mode != "all" {
				html := readFile(t, filepath.Join(o.Dir, "report.html"))
				if !bytes.Contains(html, []byte("requests.csv is "+tc.mode)) {
					t.Errorf("report.html does not say requests.csv is %s", tc.mode)
				}
			}
		})
	}
}

// The diagnosis of a run read from its aggregates (requests.csv off)
// counts what the diagnosis of its records counts, and finds the same.
func TestLoadInputAggregates(t *testing.T) {
	ts := httptest.NewServer(testserver.New(password))
	defer ts.Close()
	_, plan := scenario(t, ts.URL, "3s")
	dir := filepath.Join(t.TempDir(), "run")
	if _, err := runner.Run(context.Background(), plan, runner.Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	all, err := runner.LoadInput(dir)
	if err != nil {
		t.Fatal(err)
	}
	off := copyRecords(t, dir)
	for _, f := range []string{"summary.json", "locust_stats_history.csv"} {
		if err := os.WriteFile(filepath.Join(off, f), readFile(t, filepath.Join(dir, f)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	meta, err := rundir.ReadMeta(off)
	if err != nil {
		t.Fatal(err)
	}
	meta.RequestsCSV = "off"
	if err := rundir.WriteMeta(off, meta); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(off, "requests.csv")); err != nil {
		t.Fatal(err)
	}
	agg, err := runner.LoadInput(off)
	if err != nil {
		t.Fatal(err)
	}
	if len(agg.Results) != 0 || len(agg.Endpoints) != len(all.Endpoints) {
		t.Fatalf("aggregates: %d results, %d endpoints; want 0, %d", len(agg.Results), len(agg.Endpoints), len(all.Endpoints))
	}
	near := func(a, b time.Duration) bool {
		d := math.Abs(float64(a - b))
		return d <= 0.05*float64(max(a, b))+float64(100*time.Microsecond)
	}
	for _, want := range all.Endpoints {
		var got *diagnose.EndpointTotals
		for i := range agg.Endpoints {
			if agg.Endpoints[i].Name == want.Name && agg.Endpoints[i].Method == want.Method {
				got = &agg.Endpoints[i]
			}
		}
		if got == nil {
			t.Errorf("endpoint %s %s missing", want.Method, want.Name)
			continue
		}
		// P95 and P99 are each histogram's own reading of a few hundred
		// requests (HDR's and the diagnosis's): the histograms are compared.
		if got.Requests != want.Requests || got.Failures != want.Failures || !near(got.Median, want.Median) ||
			got.Latency.Count() != want.Requests || !near(got.Latency.Quantile(0.95), want.Latency.Quantile(0.95)) {
			t.Errorf("%s: aggregates %d requests, %d failures, median %v, p95 %v, histogram %d (p95 %v); records %d, %d, %v, %v, %d (%v)",
				want.Name, got.Requests, got.Failures, got.Median, got.P95, got.Latency.Count(), got.Latency.Quantile(0.95),
				want.Requests, want.Failures, want.Median, want.P95, want.Latency.Count(), want.Latency.Quantile(0.95))
		}
		hist := 0.0
		for _, p := range agg.History {
			if p.Name == want.Name && p.Method == want.Method {
				hist += p.Requests
			}
		}
		if int(hist) != want.Requests {
			t.Errorf("%s: the history counts %v requests, want %d", want.Name, hist, want.Requests)
		}
	}
	count := func(gs []diagnose.FailureGroup) map[string]int {
		m := map[string]int{}
		for _, g := range gs {
			m[g.Name+" "+g.Reason] += g.Count
		}
		return m
	}
	if a, b := count(agg.Failures), count(all.Failures); !reflect.DeepEqual(a, b) {
		t.Errorf("failure groups: aggregates %v, records %v", a, b)
	}
	ids := func(in *diagnose.Input) []string {
		var s []string
		for _, f := range diagnose.Diagnose(in).Findings {
			s = append(s, f.ID)
		}
		return s
	}
	if a, b := ids(agg), ids(all); !reflect.DeepEqual(a, b) {
		t.Errorf("findings from the aggregates %v, from the records %v", a, b)
	}
}

// The diagnosis so far of a running run reads its records while they are
// few, and its aggregates once requests.csv is large: the same endpoints
// and counts, without re-reading every request each time.
func TestLoadInputLive(t *testing.T) {
	ts := httptest.NewServer(testserver.New(password))
	defer ts.Close()
	_, plan := scenario(t, ts.URL, "2s")
	dir := filepath.Join(t.TempDir(), "run")
	if _, err := runner.Run(context.Background(), plan, runner.Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	small, err := runner.LoadInputLive(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(small.Results) == 0 {
		t.Fatal("a small requests.csv is read record by record")
	}
	// A large requests.csv (sparse: only its size is read).
	if err := os.Truncate(filepath.Join(dir, "requests.csv"), runner.LiveRequestsBytes+1); err != nil {
		t.Fatal(err)
	}
	big, err := runner.LoadInputLive(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(big.Results) != 0 || len(big.Endpoints) != len(small.Endpoints) {
		t.Fatalf("large: %d results, %d endpoints; want 0 (the aggregates), %d", len(big.Results), len(big.Endpoints), len(small.Endpoints))
	}
	for _, e := range small.Endpoints {
		found := false
		for _, g := range big.Endpoints {
			if g.Name == e.Name && g.Method == e.Method {
				found = true
				if g.Requests != e.Requests || g.Failures != e.Failures {
					t.Errorf("%s: aggregates %d requests %d failures, records %d %d", e.Name, g.Requests, g.Failures, e.Requests, e.Failures)
				}
			}
		}
		if !found {
			t.Errorf("%s %s: not in the aggregates", e.Method, e.Name)
		}
	}
}
