package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/lab"
	"github.com/stampede-load/stampede/internal/load"
)

func init() {
	commands["demo"] = command{summary: "the seed's story end to end on the embedded lab: fail, diagnose, fix, pass", run: cmdDemo}
}

// demoScenario is the seed's locustfile as a stampede scenario: 100 users
// log in (GET the form, POST it with its CSRF token) and browse the app.
// %s are the target and the spawn rate.
const demoScenario = `# The seed's load: 100 users log in at %[2]s/s, then browse the AHSP app.
target: %[1]s
load: {users: 100, spawn_rate: %[2]s, duration: %[3]s}
think: 1s..3s
users_file: users.csv
user_assignment: unique
on_start:
  - name: "[AUTH] Login GET"
    get: /accounts/login/
  - name: "[AUTH] Login POST"
    submit_form:
      fields: {login: "{{user.username}}", password: "{{user.password}}"}
    expect: {status: [302], not_login_page: true}
tasks:
  - {name: dashboard, weight: 5, steps: [{name: "GET /dashboard/", get: /dashboard/}]}
  - {name: pekerjaan, weight: 3, steps: [{name: "GET /pekerjaan/", get: /pekerjaan/}]}
  - {name: rincian, weight: 2, steps: [{name: "GET /rincian-ahsp/[id]/", get: "/rincian-ahsp/{{vu}}/"}]}
  - {name: rekap, weight: 1, steps: [{name: "GET /rekap-rab/", get: /rekap-rab/}]}
  - {name: audit, weight: 1, steps: [{name: "GET /audit-trail/", get: /audit-trail/}]}
  - {name: export, weight: 1, steps: [{name: "GET /export/", get: /export/}]}
thresholds:
  "[AUTH] Login POST": ["failure_rate < 1%%", "p95 < 500ms"]
  all: ["failure_rate < 1%%"]
logs:
  - {name: app-errors, path: %[4]s/errors.log}
  - {name: auth-debug, path: %[4]s/auth_debug.log}
  - {name: pgbouncer, path: %[4]s/pgbouncer.log}
  - {name: gunicorn, path: %[4]s/gunicorn.log}
`

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "directory for the demo's run directories (default runs/demo-<timestamp>)")
	dur := fs.Duration("t", 45*time.Second, "duration of each run")
	quiet := fs.Bool("quiet", false, "no live progress")
	fault := fs.String("fault", "", "run one fault of the lab instead of the seed's story: "+strings.Join(faultNames(), ", "))
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("demo: unexpected argument %q", fs.Arg(0))
	}
	if *out == "" {
		*out = filepath.Join("runs", "demo-"+time.Now().Format("20060102-150405"))
	}
	if *fault != "" {
		return runFault(ctx, *fault, *out, *dur, *quiet, stdout, stderr)
	}
	fmt.Fprintln(stdout, "stampede demo: the seed's day in one command.")
	fmt.Fprintln(stdout, "A Django-style login (allauth rate limits, a PgBouncer-style pool, PBKDF2) rebuilt as the lab,")
	fmt.Fprintln(stdout, "100 users logging in at 10/s and browsing, as the seed's Locust test did.")

	seedCfg := lab.Config{}
	_ = seedCfg.Preset("seed")
	limits := []string{}
	if seedCfg.RateLimitLogin != "" {
		limits = append(limits, "login="+seedCfg.RateLimitLogin)
	}
	if seedCfg.RateLimitLoginFailed != "" {
		limits = append(limits, "login_failed="+seedCfg.RateLimitLoginFailed)
	}
	fmt.Fprintf(stdout, "\n== Run 1: the seed's configuration (pool %d, reserve %d, query_wait_timeout %s; allauth %s)\n",
		seedCfg.PoolSize, seedCfg.ReservePoolSize, seedCfg.QueryWaitTimeout, strings.Join(limits, ", "))
	first, err := demoRun(ctx, seedCfg, filepath.Join(*out, "1-seed"), "10", *dur, *quiet, "[seed]", stdout, stderr)
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return nil
	}
	fixCfg := lab.Config{}
	_ = fixCfg.Preset("fixed")
	fmt.Fprintln(stdout, "\n== Applying the fixes the diagnosis recommends")
	for _, line := range fixesFor(first.diagnosis, seedCfg, fixCfg) {
		fmt.Fprintln(stdout, "  - "+line)
	}
	fmt.Fprintln(stdout, "  - users spawned at 5/s instead of 10/s, as the seed's success criteria were measured")
	fmt.Fprintln(stdout, "\n== Run 2: the fixed configuration")
	second, err := demoRun(ctx, fixCfg, filepath.Join(*out, "2-fixed"), "5", *dur, *quiet, "[fixed]", stdout, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "\n== Comparison")
	printDemoComparison(stdout, first, second)
	fmt.Fprintf(stdout, "\nRun directories: %s and %s (report.html in each)\n", first.dir, second.dir)
	return nil
}

// demoRun starts the lab in-process with cfg, runs the demo scenario
// against it and stops the lab.
func demoRun(ctx context.Context, cfg lab.Config, dir, spawn string, d time.Duration, quiet bool, label string, stdout, stderr io.Writer) (*runResult, error) {
	logDir := filepath.Join(dir, "lab-logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	absLogs, _ := filepath.Abs(logDir)
	cfg.LogDir = absLogs
	cfg.Store = lab.StoreEmbedded
	cfg.DBPath = filepath.Join(absLogs, "..", "lab.sqlite")
	stopLab, addr, err := startLab(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer stopLab()
	users, err := os.Create(filepath.Join(dir, "users.csv"))
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	if err := lab.WriteUsersCSV(users, 100); err != nil {
		users.Close()
		return nil, err
	}
	users.Close()
	scPath := filepath.Join(dir, "scenario.yaml")
	text := fmt.Sprintf(demoScenario, "http://"+addr, spawn, d.String(), absLogs)
	if err := os.WriteFile(scPath, []byte(text), 0o644); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	sc, err := load.ReadScenario(scPath)
	if err != nil {
		return nil, err
	}
	plan, err := sc.Compile()
	if err != nil {
		return nil, err
	}
	f := runFlags{out: dir, quiet: quiet, probeHost: true, pid: os.Getpid(), interval: time.Second, set: map[string]bool{}}
	return executeRun(ctx, sc, plan, runOptions{flags: &f, stdout: stdout, stderr: stderr, label: label,
		argv: []string{"stampede", "run", scPath, "--out", dir}})
}

// startLab serves the lab on a free loopback port until stop is called.
func startLab(ctx context.Context, cfg lab.Config) (stop func(), addr string, err error) {
	srv, err := lab.New(ctx, cfg)
	if err != nil {
		return nil, "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		return nil, "", fmt.Errorf("demo: listen: %w", err)
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = srv.Serve(sctx, ln)
	}()
	return func() {
		cancel()
		wg.Wait()
		srv.Close()
	}, ln.Addr().String(), nil
}

// fixesFor turns the first run's findings into the lab knobs that fix them.
func fixesFor(d *stampede.Diagnosis, from, to lab.Config) []string {
	var lines []string
	found := map[string]bool{}
	if d != nil {
		for _, f := range d.Findings {
			found[f.ID] = true
		}
	}
	if found["db-pool-wait-timeout"] || from.PoolSize != to.PoolSize {
		lines = append(lines, fmt.Sprintf("db-pool-wait-timeout: pool %d → %d with reserve %d, query_wait_timeout %s → %s",
			from.PoolSize, to.PoolSize, to.ReservePoolSize, from.QueryWaitTimeout, to.QueryWaitTimeout))
	}
	if found["login-rate-limit"] || from.RateLimitLogin != to.RateLimitLogin {
		lines = append(lines, "login-rate-limit: allauth login limits off in the load environment (ACCOUNT_RATE_LIMITS = False)")
	}
	return lines
}

func printDemoComparison(w io.Writer, a, b *runResult) {
	ids := func(r *runResult) map[string]string {
		m := map[string]string{}
		if r.diagnosis != nil {
			for _, f := range r.diagnosis.Findings {
				m[f.ID] = f.Status
			}
		}
		return m
	}
	fa, fb := ids(a), ids(b)
	var names []string
	for id := range fa {
		names = append(names, id)
	}
	sort.Strings(names)
	for _, id := range names {
		if _, still := fb[id]; still {
			fmt.Fprintf(w, "  %-24s still there (%s)\n", id, fb[id])
		} else {
			fmt.Fprintf(w, "  %-24s gone\n", id)
		}
	}
	for id, st := range fb {
		if _, was := fa[id]; !was {
			fmt.Fprintf(w, "  %-24s new (%s)\n", id, st)
		}
	}
	verdict := func(r *runResult) string {
		if r.diagnosis == nil {
			return "?"
		}
		return r.diagnosis.Verdict
	}
	fmt.Fprintf(w, "  verdict: %s → %s\n", verdict(a), verdict(b))
	login := func(r *runResult) string {
		for _, e := range r.summary.Endpoints {
			if e.Name == "[AUTH] Login POST" {
				return fmt.Sprintf("%d logins, %.1f%% failed, p95 %s", e.Requests, 100*e.FailureRate, ms(e.Latency.Percentiles[5]))
			}
		}
		return "no login"
	}
	fmt.Fprintf(w, "  login: %s → %s\n", login(a), login(b))
	if b.thresholdsOK {
		fmt.Fprintln(w, "  the seed's success criteria (login failure rate < 1%, p95 < 500 ms) are met")
	} else {
		fmt.Fprintln(w, "  the seed's success criteria are NOT met: "+strings.Join(b.failedThresholds, "; "))
	}
}

// faults maps --fault names to the lab knobs that cause them.
var faults = map[string]func(c *lab.Config){
	"pool-wait-timeout": func(c *lab.Config) { c.PoolSize, c.QueryWaitTimeout = 3, 2*time.Second },
	"login-rate-limit":  func(c *lab.Config) { c.RateLimitLogin, c.RateLimitLoginFailed = "30/m/ip", "10/m/ip,5/300s/key" },
	"password-hash-cpu": func(c *lab.Config) { c.PBKDF2Iterations = 2_000_000 },
	"db-lock-contention": func(c *lab.Config) {
		c.HotRowHold, c.LockTimeout = 300*time.Millisecond, 2*time.Second
	},
	"slow-query":            func(c *lab.Config) { c.MissingIndex = true },
	"app-worker-saturation": func(c *lab.Config) { c.Workers, c.WorkerQueueTimeout = 2, 3*time.Second },
	"csrf-failure":          func(c *lab.Config) { c.CSRFCookieSecure = true },
	"session-lost":          func(c *lab.Config) { c.SessionCookieSecure = true },
}

func faultNames() []string {
	n := make([]string, 0, len(faults))
	for k := range faults {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

func runFault(ctx context.Context, name, out string, d time.Duration, quiet bool, stdout, stderr io.Writer) error {
	set, ok := faults[name]
	if !ok {
		return withHint(fmt.Errorf("demo: unknown fault %q", name), "stampede demo --fault "+strings.Join(faultNames(), "|"))
	}
	cfg := lab.Config{}
	_ = cfg.Preset("healthy")
	set(&cfg)
	fmt.Fprintf(stdout, "== stampede demo --fault %s: the lab with one fault, 100 users logging in at 10/s and browsing\n", name)
	r, err := demoRun(ctx, cfg, filepath.Join(out, name), "10", d, quiet, "["+name+"]", stdout, stderr)
	if err != nil {
		return err
	}
	if r.diagnosis == nil || len(r.diagnosis.Findings) == 0 {
		return errors.New("demo: the diagnosis named no finding")
	}
	return nil
}
