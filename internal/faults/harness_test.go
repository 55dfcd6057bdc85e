package faults_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/faults"
	"github.com/stampede-load/stampede/internal/lab"
	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/rundir"
	"github.com/stampede-load/stampede/internal/runner"
	"github.com/stampede-load/stampede/internal/testenv"
)

// bin is the stampede binary, built without the race detector: it serves
// the lab as a process of its own (so the target can be killed) and runs
// the memory measurements; targetBin is cmd/stampede-target.
var bin, targetBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "stampede-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin, targetBin = filepath.Join(dir, "stampede"), filepath.Join(dir, "stampede-target")
	for out, pkg := range map[string]string{bin: "./cmd/stampede", targetBin: "./cmd/stampede-target"} {
		build := exec.Command("go", "build", "-o", out, pkg)
		build.Dir = filepath.Join("..", "..")
		if b, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, b)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// keepDir is where run directories are copied for a reader to look at
// (STAMPEDE_FAULTS_KEEP); "" keeps none.
func keepDir() string { return os.Getenv("STAMPEDE_FAULTS_KEEP") }

// labProc is the lab served by "stampede lab" in a process of its own.
type labProc struct {
	t    *testing.T
	addr string
	args []string
	logs string // the lab's --log-dir

	mu  sync.Mutex
	cmd *exec.Cmd
	out *bytes.Buffer
}

// startLabProc starts "stampede lab --addr ADDR --log-dir LOGS ARGS..." and
// waits until it listens; the test's cleanup kills it.
func startLabProc(t *testing.T, logs string, args ...string) *labProc {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	l := &labProc{t: t, addr: addr, logs: logs, args: append([]string{"lab", "--addr", addr, "--log-dir", logs}, args...)}
	if err := l.start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.cmd != nil && l.cmd.ProcessState == nil {
			_ = l.cmd.Process.Kill()
			_ = l.cmd.Wait()
		}
	})
	return l
}

// start starts the lab and waits until it accepts connections.
func (l *labProc) start(ctx context.Context) error {
	cmd := exec.Command(bin, l.args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	l.mu.Lock()
	l.cmd, l.out = cmd, &out
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if c, err := net.DialTimeout("tcp", l.addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	return fmt.Errorf("lab did not listen on %s:\n%s", l.addr, out.String())
}

// kill kills the lab with SIGKILL and waits for it.
func (l *labProc) kill() {
	l.mu.Lock()
	defer l.mu.Unlock()
	_ = l.cmd.Process.Kill()
	_ = l.cmd.Wait()
}

// signal sends sig to the lab.
func (l *labProc) signal(sig syscall.Signal) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cmd.Process.Signal(sig)
}

// services are the lab's PostgreSQL, PgBouncer and Redis.
type services struct {
	pg *testenv.PG
	b  *testenv.Bouncer
	r  *testenv.RedisServer
}

// startServices starts PostgreSQL, PgBouncer (session pooling, a pool of
// 20) and Redis with their logs in dir. PgBouncer retries a failed server
// login after 2 s (server_login_retry; 15 s by default, which would keep
// the app failing for 15 s after PostgreSQL is back and outlast a short run).
func startServices(t *testing.T, dir string) *services {
	t.Helper()
	pg := testenv.Postgres(t, testenv.PGOptions{Dir: dir, MaxConnections: 100})
	b := testenv.PgBouncer(t, pg, testenv.BouncerOptions{Dir: dir, DefaultPoolSize: 20, MaxClientConn: 500,
		Settings: map[string]string{"server_login_retry": "2"}})
	r := testenv.Redis(t, testenv.RedisOptions{Dir: dir})
	return &services{pg: pg, b: b, r: r}
}

// world is one fault test's lab, services and run.
type world struct {
	t   *testing.T
	dir string
	lab *labProc
	svc *services // nil on the embedded store
	run string    // the run directory

	users    int
	duration time.Duration
	tasks    string // extra tasks, YAML list items
	extra    string // extra scenario keys
	logs     []load.LogSpec
}

// labArgs are the lab's knobs common to every fault test: the healthy
// preset, a cheap password hash and a small data set.
var labArgs = []string{"--preset", "healthy", "--pbkdf2-iterations", "1000", "--users", "60", "--items", "300", "--rows-per-item", "20"}

// newWorld starts the lab with args over labArgs: on PostgreSQL through
// PgBouncer with Redis sessions when withServices, else on its embedded
// store with sessions in memory.
func newWorld(t *testing.T, withServices bool, args ...string) *world {
	t.Helper()
	dir := t.TempDir()
	w := &world{t: t, dir: dir, run: filepath.Join(dir, "run"), users: 30, duration: 20 * time.Second}
	labLogs := filepath.Join(dir, "lab-logs")
	a := append([]string{}, labArgs...)
	if withServices {
		w.svc = startServices(t, filepath.Join(dir, "servers"))
		a = append(a, "--store", "postgres", "--dsn", w.svc.b.DSN(), "--redis", w.svc.r.URL())
		w.logs = append(w.logs, load.LogSpec{Name: "postgres", Path: w.svc.pg.LogPath},
			load.LogSpec{Name: "pgbouncer", Path: w.svc.b.LogPath}, load.LogSpec{Name: "redis", Path: w.svc.r.LogPath})
	} else {
		a = append(a, "--db-path", filepath.Join(dir, "lab.sqlite"))
	}
	w.lab = startLabProc(t, labLogs, append(a, args...)...)
	w.logs = append([]load.LogSpec{{Name: "app-errors", Path: filepath.Join(labLogs, lab.ErrorsLog)},
		{Name: "gunicorn", Path: filepath.Join(labLogs, lab.GunicornLog)}}, w.logs...)
	if !withServices {
		w.logs = append(w.logs, load.LogSpec{Name: "pgbouncer", Path: filepath.Join(labLogs, lab.PgBouncerLog)})
	}
	return w
}

// scenario writes the run's scenario: users log in (GET the form, POST it)
// and browse; the probes of the services and the host; the logs.
func (w *world) scenario() *load.Scenario {
	t := w.t
	t.Helper()
	users := filepath.Join(w.dir, "users.csv")
	f, err := os.Create(users)
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.WriteUsersCSV(f, w.users); err != nil {
		t.Fatal(err)
	}
	f.Close()
	var b strings.Builder
	fmt.Fprintf(&b, "target: http://%s\n", w.lab.addr)
	fmt.Fprintf(&b, "load: {users: %d, spawn_rate: %d, duration: %s}\n", w.users, w.users, w.duration)
	b.WriteString(`think: 100ms..300ms
users_file: users.csv
user_assignment: unique
timeout: 5s
on_start:
  - {name: "[AUTH] Login GET", get: /accounts/login/}
  - name: "[AUTH] Login POST"
    submit_form: {fields: {login: "{{user.username}}", password: "{{user.password}}"}}
    expect: {status: [302], not_login_page: true}
tasks:
  - {name: dashboard, weight: 4, steps: [{name: "GET /dashboard/", get: /dashboard/}]}
  - {name: pekerjaan, weight: 3, steps: [{name: "GET /pekerjaan/", get: /pekerjaan/}]}
  - {name: rincian, weight: 2, steps: [{name: "GET /rincian-ahsp/[id]/", get: "/rincian-ahsp/{{vu}}/"}]}
`)
	b.WriteString(w.tasks)
	b.WriteString("probes:\n  host: true\n")
	if w.svc != nil {
		fmt.Fprintf(&b, "  postgres: %q\n  pgbouncer: %q\n  redis: %q\n", w.svc.pg.SuperDSN(), w.svc.b.StatsDSN(), w.svc.r.URL())
	}
	b.WriteString("logs:\n")
	for _, l := range w.logs {
		fmt.Fprintf(&b, "  - {name: %s, path: %q}\n", l.Name, l.Path)
	}
	b.WriteString(w.extra)
	path := filepath.Join(w.dir, "scenario.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	sc, err := load.ReadScenario(path)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// fault is what a test does to a server mid-run.
type fault struct {
	// at is when inject runs, from the run's start.
	at time.Duration
	// hold is how long the fault lasts before restore runs; restore may
	// be nil (a fault that is over at once).
	hold    time.Duration
	inject  func() error
	restore func() error
}

// outcome is what a run under a fault left.
type outcome struct {
	res       *runner.Result
	start     time.Time // the run's start, as meta.json has it
	injected  time.Time // when inject returned
	restored  time.Time // when restore returned: the server is back
	timeline  []stampede.Sample
	results   []stampede.Result
	evidence  []stampede.Evidence
	diagnosis stampede.Diagnosis
	maxConns  map[string]int // the most connections a probe held, by server
}

// runFault runs the scenario with runner.Run in this process, injects f on
// schedule, and checks what every fault test checks: the run completed
// with every file written, the generator's goroutines came back to their
// count before the run, and each probe held at most one connection during
// the run and none after it.
func (w *world) runFault(f fault) *outcome {
	t := w.t
	t.Helper()
	sc := w.scenario()
	plan, err := sc.Compile()
	if err != nil {
		t.Fatal(err)
	}
	o, err := runner.ScenarioOptions(sc)
	if err != nil {
		t.Fatal(err)
	}
	o.Dir = w.run

	baseline := runtime.NumGoroutine()
	watch := w.watchConns()
	oc := &outcome{}
	var schedErr error
	sched := make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), w.duration+90*time.Second)
	defer cancel()
	begin := time.Now()
	go func() {
		defer close(sched)
		if !sleepCtx(ctx, f.at-time.Since(begin)) {
			return
		}
		if schedErr = f.inject(); schedErr != nil {
			return
		}
		oc.injected = time.Now()
		if f.restore == nil {
			oc.restored = oc.injected
			return
		}
		if !sleepCtx(ctx, f.hold) {
			return
		}
		if schedErr = f.restore(); schedErr != nil {
			return
		}
		oc.restored = time.Now()
	}()
	res, err := runner.Run(ctx, plan, o)
	<-sched
	oc.maxConns = watch()
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if schedErr != nil {
		t.Fatalf("fault: %v", schedErr)
	}
	if oc.restored.IsZero() {
		t.Fatalf("the fault was not injected and restored within the run")
	}
	oc.res = res
	w.keep()
	w.checkFiles(oc)
	checkGoroutines(t, baseline)
	w.checkConns(oc.maxConns)
	return oc
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// keep copies the run directory and the servers' logs to STAMPEDE_FAULTS_KEEP/NAME.
func (w *world) keep() {
	k := keepDir()
	if k == "" {
		return
	}
	dst := filepath.Join(k, strings.TrimPrefix(w.t.Name(), "Test"))
	_ = os.RemoveAll(dst)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		w.t.Logf("keep: %v", err)
		return
	}
	// cp -r keeps it simple; the run directory holds no secret.
	for _, src := range []string{w.run, filepath.Join(w.dir, "lab-logs"), filepath.Join(w.dir, "servers"), filepath.Join(w.dir, "scenario.yaml")} {
		if _, err := os.Stat(src); err == nil {
			if out, err := exec.Command("cp", "-r", src, dst).CombinedOutput(); err != nil {
				w.t.Logf("keep %s: %v %s", src, err, out)
			}
		}
	}
	// The scenario names the probes' DSNs with their passwords: mask them.
	sp := filepath.Join(dst, "scenario.yaml")
	if b, err := os.ReadFile(sp); err == nil {
		var lines []string
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ": "); ok && strings.Contains(v, "://") {
				l = k + ": " + stampede.Redact(strings.Trim(v, `"`))
			}
			lines = append(lines, l)
		}
		_ = os.WriteFile(sp, []byte(strings.Join(lines, "\n")), 0o644)
	}
	w.t.Logf("run directory kept in %s", dst)
}

// checkFiles checks that the run wrote every file and complete, and reads
// its records into oc.
func (w *world) checkFiles(oc *outcome) {
	t := w.t
	t.Helper()
	dir := w.run
	meta, err := rundir.ReadMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Partial || meta.End.IsZero() || meta.EndReason != "duration reached" {
		t.Errorf("meta.json: partial %v, end %v, end_reason %q: want a complete run", meta.Partial, meta.End, meta.EndReason)
	}
	oc.start = meta.Start
	for _, f := range []string{rundir.RequestsFile, rundir.TimelineFile, rundir.EvidenceFile, rundir.SummaryFile,
		"locust_stats.csv", "locust_stats_history.csv", "locust_failures.csv", "locust_exceptions.csv",
		runner.DiagnosisJSONFile, runner.DiagnosisMDFile, "report.html"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		// evidence.jsonl is empty when no log line was classified.
		if st.Size() == 0 && f != rundir.EvidenceFile {
			t.Errorf("%s is empty", f)
		}
	}
	var sum struct {
		Partial bool `json:"partial"`
	}
	readJSON(t, filepath.Join(dir, rundir.SummaryFile), &sum)
	if sum.Partial {
		t.Errorf("summary.json is marked partial")
	}
	if oc.res.DiagnosisErr != nil || oc.res.ReportErr != nil {
		t.Errorf("diagnosis: %v; report: %v", oc.res.DiagnosisErr, oc.res.ReportErr)
	}
	if oc.timeline, err = rundir.ReadTimeline(dir); err != nil {
		t.Fatal(err)
	}
	if oc.evidence, err = rundir.ReadEvidence(dir); err != nil {
		t.Fatal(err)
	}
	if err := rundir.ReadRequests(dir, func(r *stampede.Result) error { oc.results = append(oc.results, *r); return nil }); err != nil {
		t.Fatal(err)
	}
	readJSON(t, filepath.Join(dir, runner.DiagnosisJSONFile), &oc.diagnosis)
	if len(oc.results) == 0 {
		t.Fatal("requests.csv holds no request")
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// checkGoroutines waits up to ten seconds for the goroutines to come back
// to baseline, and fails with their stacks if they do not.
func checkGoroutines(t *testing.T, baseline int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	n := runtime.NumGoroutine()
	for n > baseline && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	if n > baseline {
		var b bytes.Buffer
		_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
		t.Errorf("%d goroutines after the run, %d before: a leak\n%s", n, baseline, b.String())
	} else {
		t.Logf("goroutines: %d before the run, %d after", baseline, n)
	}
}

// watchConns counts, every 250 ms until the returned function is called,
// the connections the probes hold on each server: PostgreSQL's
// pg_stat_activity rows with application_name stampede-probe, PgBouncer's
// SHOW CLIENTS rows of the probe's user, Redis's CLIENT LIST entries named
// stampede-probe. The function stops the watch and returns the most seen
// on each server.
func (w *world) watchConns() func() map[string]int {
	if w.svc == nil {
		return func() map[string]int { return nil }
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan map[string]int, 1)
	go func() {
		c := newConnCounter(w.svc)
		defer c.close()
		most := map[string]int{}
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			for k, v := range c.count(ctx) {
				most[k] = max(most[k], v)
			}
			select {
			case <-ctx.Done():
				done <- most
				return
			case <-t.C:
			}
		}
	}()
	return func() map[string]int { cancel(); return <-done }
}

// checkConns checks that each probe held at most one connection during the
// run and holds none after it.
func (w *world) checkConns(most map[string]int) {
	t := w.t
	t.Helper()
	if w.svc == nil {
		return
	}
	for _, k := range []string{"postgres", "pgbouncer", "redis"} {
		if most[k] > 1 {
			t.Errorf("the %s probe held %d connections at once, want at most 1", k, most[k])
		}
	}
	t.Logf("probe connections at most: %v", most)
	c := newConnCounter(w.svc)
	defer c.close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var now map[string]int
	for ctx.Err() == nil {
		now = c.count(ctx)
		if len(now) == 3 && now["postgres"]+now["pgbouncer"]+now["redis"] == 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("probe connections left after the run: %v, want none", now)
}

// connCounter reads the probes' connections from each server over
// connections of its own (the superuser, PgBouncer's admin user, a Redis
// client named otherwise), made again after any failure.
type connCounter struct {
	s      *services
	pg, pb *pgx.Conn
	rc     *goredis.Client
}

func newConnCounter(s *services) *connCounter {
	return &connCounter{s: s, rc: goredis.NewClient(&goredis.Options{Addr: s.r.Addr(), MaxRetries: -1, DisableIdentity: true,
		DialTimeout: 500 * time.Millisecond, ReadTimeout: 500 * time.Millisecond, PoolSize: 1, ClientName: "faults-watch"})}
}

// count returns the probes' connections on each server that answered.
func (c *connCounter) count(ctx context.Context) map[string]int {
	out := map[string]int{}
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if c.pg == nil {
		c.pg, _ = pgx.Connect(rctx, c.s.pg.SuperDSN())
	}
	if c.pg != nil {
		var n int
		if err := c.pg.QueryRow(rctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'stampede-probe'").Scan(&n); err == nil {
			out["postgres"] = n
		} else {
			c.pg.Close(context.Background())
			c.pg = nil
		}
	}
	if c.pb == nil {
		c.pb, _ = pgx.Connect(rctx, c.s.b.AdminDSN())
	}
	if c.pb != nil {
		if n, err := bouncerClients(rctx, c.pb, c.s.b.StatsUser); err == nil {
			out["pgbouncer"] = n
		} else {
			c.pb.Close(context.Background())
			c.pb = nil
		}
	}
	if list, err := c.rc.ClientList(rctx).Result(); err == nil {
		out["redis"] = strings.Count(list, " name=stampede-probe ")
	}
	return out
}

// bouncerClients counts SHOW CLIENTS rows of user.
func bouncerClients(ctx context.Context, c *pgx.Conn, user string) (int, error) {
	rows, err := c.Query(ctx, "SHOW CLIENTS")
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	col := -1
	for i, f := range rows.FieldDescriptions() {
		if f.Name == "user" {
			col = i
		}
	}
	n := 0
	for rows.Next() {
		v := rows.RawValues()
		if col >= 0 && col < len(v) && string(v[col]) == user {
			n++
		}
	}
	return n, rows.Err()
}

func (c *connCounter) close() {
	if c.pg != nil {
		c.pg.Close(context.Background())
	}
	if c.pb != nil {
		c.pb.Close(context.Background())
	}
	c.rc.Close()
}

// probeOutage is what one probe recorded of an outage.
type probeOutage struct {
	source      string
	errors      int       // samples with an error
	first, last time.Time // of those samples
	back        time.Time // the first good sample after them
	err         string    // the first error
}

func (p probeOutage) String() string {
	return fmt.Sprintf("%s probe: %d error samples %s–%s (%s), reading again at %s", p.source, p.errors,
		p.first.Format(clock), p.last.Format(clock), firstLine(p.err), p.back.Format(clock))
}

const clock = "15:04:05"

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}

// checkProbeOutage checks that source's probe recorded the outage from
// injected to restored in the timeline: good samples before it, samples
// with an error inside it and none outside it, retried with a backoff
// (the gaps between failed readings never shrink), and good samples again
// from within the sampler's longest backoff (8 s) of the server's return.
func checkProbeOutage(t *testing.T, oc *outcome, source string) probeOutage {
	t.Helper()
	var ss []stampede.Sample
	for _, s := range oc.timeline {
		if s.Source == source {
			ss = append(ss, s)
		}
	}
	p := probeOutage{source: source}
	var gaps []time.Duration
	for i, s := range ss {
		if s.Err == "" {
			if !p.last.IsZero() && p.back.IsZero() {
				p.back = s.Time
			}
			continue
		}
		if s.Time.Before(oc.injected.Add(-time.Second)) || s.Time.After(oc.restored.Add(time.Second)) {
			// A reading that timed out on a starved machine is what the
			// probe saw, not a fault of the probe: only other errors fail.
			if timedOut(s.Err) {
				t.Logf("%s probe: a reading timed out outside the outage, at %s: %s", source, s.Time.Format(clock), s.Err)
			} else {
				t.Errorf("%s probe: error outside the outage (%s–%s) at %s: %s", source, oc.injected.Format(clock), oc.restored.Format(clock), s.Time.Format(clock), s.Err)
			}
			continue
		}
		if p.errors == 0 {
			p.first, p.err = s.Time, s.Err
			if i == 0 {
				t.Errorf("%s probe: no good sample before the outage", source)
			}
		} else {
			gaps = append(gaps, s.Time.Sub(p.last))
		}
		p.errors++
		p.last = s.Time
	}
	if p.errors == 0 {
		t.Errorf("%s probe: no sample with an error during the outage %s–%s", source, oc.injected.Format(clock), oc.restored.Format(clock))
		return p
	}
	for i := 1; i < len(gaps); i++ {
		if gaps[i] < gaps[i-1]-300*time.Millisecond {
			t.Errorf("%s probe: retries at gaps %v: the backoff shrank", source, gaps)
			break
		}
	}
	if len(gaps) >= 2 && gaps[len(gaps)-1] < 1500*time.Millisecond {
		t.Errorf("%s probe: retries at gaps %v: no backoff", source, gaps)
	}
	switch {
	case p.back.IsZero():
		t.Errorf("%s probe: no good sample after the outage", source)
	case p.back.Sub(oc.restored) > 9*time.Second:
		t.Errorf("%s probe: reading again %v after the server's return, want within the 8 s backoff", source, p.back.Sub(oc.restored))
	}
	t.Log(p)
	return p
}

// timedOut reports whether a probe's error says its reading ran out of
// time rather than being refused or dropped.
func timedOut(err string) bool {
	e := strings.ToLower(err)
	return strings.Contains(e, "timeout") || strings.Contains(e, "deadline exceeded") || strings.Contains(e, "timed out")
}

// failuresBetween counts the failed requests that ended in [from, to].
func failuresBetween(rs []stampede.Result, from, to time.Time) int {
	n := 0
	for _, r := range rs {
		if r.Failed() && !r.End().Before(from) && !r.End().After(to) {
			n++
		}
	}
	return n
}

var clockRe = regexp.MustCompile(`\b\d\d:\d\d:\d\d\b`)

// expect is the finding a fault should give.
type expect struct {
	// id is the finding's id.
	id string
	// from and to bound the outage its title must give; a zero to asks
	// for one moment only.
	from, to time.Time
	// untimed says the finding is not an outage: its title gives no time.
	untimed bool
	// skip, when not empty, names an open point of the diagnosis rules:
	// it skips the subtest "diagnosis" only. skipAlone does the same for
	// the subtest "alone".
	skip, skipAlone string
}

// checkFinding checks that the diagnosis names the fault, in two subtests.
// "diagnosis": the top finding is e.id, confirmed or likely, a root cause
// that explains failures, whose title gives the outage's start and end (or
// its moment) within a few seconds of when it happened. "alone": no other
// root finding claims a fifth as many failures (the outage's failures are
// not also blamed on something else). It returns the top finding as
// "id (status): title" for the table.
func checkFinding(t *testing.T, oc *outcome, e expect) string {
	t.Helper()
	top := "(no finding)"
	if len(oc.diagnosis.Findings) > 0 {
		f := oc.diagnosis.Findings[0]
		top = fmt.Sprintf("%s (%s): %s", f.ID, f.Status, f.Title)
	}
	var ids []string
	for _, f := range oc.diagnosis.Findings {
		ids = append(ids, fmt.Sprintf("%s[%s, %d failures, caused_by %q]: %s", f.ID, f.Status, f.Explains.Failures, f.CausedBy, f.Title))
	}
	t.Logf("diagnosis:\n  %s", strings.Join(ids, "\n  "))
	var f *stampede.Finding
	for i := range oc.diagnosis.Findings {
		if oc.diagnosis.Findings[i].ID == e.id {
			f = &oc.diagnosis.Findings[i]
			break
		}
	}
	t.Run("diagnosis", func(t *testing.T) {
		if e.skip != "" {
			t.Skip("open point for the diagnosis rules: " + e.skip)
		}
		if f == nil {
			t.Fatalf("no %s finding", e.id)
		}
		if oc.diagnosis.Findings[0].ID != e.id {
			t.Errorf("top finding %s, want %s", oc.diagnosis.Findings[0].ID, e.id)
		}
		if f.Status != stampede.Confirmed && f.Status != stampede.Likely {
			t.Errorf("%s is %s, want confirmed or likely", e.id, f.Status)
		}
		if f.CausedBy != "" {
			t.Errorf("%s is caused by %s, want a root cause", e.id, f.CausedBy)
		}
		if f.Explains.Failures == 0 {
			t.Errorf("%s explains no failure", e.id)
		}
		// The failures of the outage are attached to it (a root's count
		// includes those of the findings it caused).
		if !e.to.IsZero() {
			if n := failuresBetween(oc.results, e.from.Add(-time.Second), e.to.Add(2*time.Second)); f.Explains.Failures*5 < n*4 {
				t.Errorf("%s explains %d failures; %d failed during the outage", e.id, f.Explains.Failures, n)
			}
		}
		if e.untimed {
			return
		}
		clocks := clockRe.FindAllString(f.Title, -1)
		want := 2
		if e.to.IsZero() {
			want = 1
		}
		if len(clocks) < want {
			t.Fatalf("title %q: want the outage's start and end", f.Title)
		}
		near := func(what, c string, at time.Time, before, after time.Duration) {
			got, err := time.ParseInLocation(clock, c, time.Local)
			if err != nil {
				t.Errorf("%s %q: %v", what, c, err)
				return
			}
			ref := at.Truncate(time.Second)
			got = time.Date(ref.Year(), ref.Month(), ref.Day(), got.Hour(), got.Minute(), got.Second(), 0, time.Local)
			if got.Before(ref.Add(-before)) || got.After(ref.Add(after)) {
				t.Errorf("title %q: %s %s, want within -%v/+%v of %s", f.Title, what, c, before, after, ref.Format(clock))
			}
		}
		near("start", clocks[0], e.from, 2*time.Second, 3*time.Second)
		if !e.to.IsZero() {
			near("end", clocks[1], e.to, 3*time.Second, 10*time.Second)
		}
	})
	t.Run("alone", func(t *testing.T) {
		if e.skipAlone != "" {
			t.Skip("open point for the diagnosis rules: " + e.skipAlone)
		}
		if f == nil {
			t.Skipf("no %s finding (see the subtest diagnosis)", e.id)
		}
		for _, g := range oc.diagnosis.Findings {
			if g.ID != e.id && g.CausedBy == "" && g.Explains.Failures*5 > f.Explains.Failures {
				t.Errorf("%s (%s) also claims %d failures: %s", g.ID, g.Status, g.Explains.Failures, g.Title)
			}
		}
	})
	return top
}

// checkWithoutRecords diagnoses the run again as if its requests.csv had
// been off (a copy of the run directory without it, meta.json saying so):
// read from summary.json and the Locust history, the diagnosis must give
// the same top finding, with the same title.
func checkWithoutRecords(t *testing.T, w *world, oc *outcome) {
	t.Helper()
	t.Run("requests.csv off", func(t *testing.T) {
		dir := t.TempDir()
		for _, f := range []string{rundir.MetaFile, rundir.TimelineFile, rundir.EvidenceFile, rundir.SummaryFile, "locust_stats_history.csv"} {
			if err := copyFile(filepath.Join(w.run, f), filepath.Join(dir, f)); err != nil {
				t.Fatal(err)
			}
		}
		meta, err := rundir.ReadMeta(dir)
		if err != nil {
			t.Fatal(err)
		}
		meta.RequestsCSV, meta.RequestsRows = "off", 0
		if err := rundir.WriteMeta(dir, meta); err != nil {
			t.Fatal(err)
		}
		d, err := runner.Diagnose(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Findings) == 0 || len(oc.diagnosis.Findings) == 0 {
			t.Fatalf("findings without records %d, with them %d", len(d.Findings), len(oc.diagnosis.Findings))
		}
		got, want := d.Findings[0], oc.diagnosis.Findings[0]
		if got.ID != want.ID || got.Title != want.Title {
			t.Errorf("without requests.csv the top finding is %s: %s; with it %s: %s", got.ID, got.Title, want.ID, want.Title)
		}
		t.Logf("without requests.csv: %s (%s, %d failures): %s", got.ID, got.Status, got.Explains.Failures, got.Title)
	})
}

// recorded sums up what the run recorded for the table.
func recorded(oc *outcome, outages ...probeOutage) string {
	failed := 0
	reasons := map[string]int{}
	for _, r := range oc.results {
		if r.Failed() {
			failed++
			reasons[r.Reason]++
		}
	}
	type kv struct {
		k string
		v int
	}
	var top []kv
	for k, v := range reasons {
		top = append(top, kv{k, v})
	}
	slices.SortFunc(top, func(a, b kv) int { return b.v - a.v })
	var parts []string
	for i, x := range top {
		if i == 2 {
			break
		}
		parts = append(parts, fmt.Sprintf("%d × %s", x.v, firstLine(x.k)))
	}
	s := fmt.Sprintf("%d requests, %d failed (%s)", len(oc.results), failed, strings.Join(parts, "; "))
	if oc.res.SessionsLost > 0 || oc.res.Relogins > 0 {
		s += fmt.Sprintf("; %d sessions lost, %d re-logins", oc.res.SessionsLost, oc.res.Relogins)
	}
	for _, p := range outages {
		s += fmt.Sprintf("; %s probe: %d error samples from +%s to +%s (%s), reading again %s after the return",
			p.source, p.errors, rel(oc.start, p.first), rel(oc.start, p.last), firstLine(p.err), p.back.Sub(oc.restored).Round(100*time.Millisecond))
	}
	return s
}

// rel is t's offset from start, in whole seconds.
func rel(start, t time.Time) string { return fmt.Sprintf("%.0f s", t.Sub(start).Seconds()) }

// row appends the test's row to the reliability table.
func row(t *testing.T, r faults.Row) {
	t.Helper()
	r.Test = t.Name()
	r.Held = !t.Failed()
	if err := faults.AppendRow(r); err != nil {
		t.Error(err)
	}
}

// copyFile copies src to dst.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
