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

	"github.com/redis/go-redis/v9"
	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/lab"
	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/runner"
)

func init() {
	commands["demo"] = command{summary: "the seed's story end to end on the embedded lab: fail, diagnose, fix, pass", run: cmdDemo}
}

// demoScenario is the seed's locustfile as a stampede scenario: 100 users
// log in (GET the form, POST it with its CSRF token) and browse the app.
// %s are the target and the spawn rate.
//
// The target is http://lab.test:PORT dialled at 127.0.0.1: a browser (and
// Go's cookie jar) treats 127.0.0.1 and localhost as secure origins and
// sends Secure cookies there over plain HTTP, so a Secure cookie is only
// dropped, as it is in production over http://, under a real host name.
const demoScenario = `# The seed's load: 100 users log in at %[2]s/s, then browse the AHSP app.
target: %[1]s
hosts: {lab.test: 127.0.0.1}
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
# The embedded pool exports its SHOW POOLS as pgbouncer_exporter does.
probes: {prometheus: "http://127.0.0.1:%[5]s/metrics", host: true}
logs:
  - {name: app-errors, path: %[4]s/errors.log}
  - {name: auth-debug, path: %[4]s/auth_debug.log}
  - {name: pgbouncer, path: %[4]s/pgbouncer.log}
  - {name: gunicorn, path: %[4]s/gunicorn.log}
  - {name: access, path: %[4]s/access.log}
  - {name: postgres, path: %[4]s/postgresql.log}
`

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "directory for the demo's run directories (default runs/demo-<timestamp>)")
	dur := fs.Duration("t", 45*time.Second, "duration of each run")
	quiet := fs.Bool("quiet", false, "no live progress")
	fault := fs.String("fault", "", "run one fault of the lab instead of the seed's story: "+strings.Join(faultNames(), ", "))
	redisURL := fs.String("redis", "", "Redis URL for the lab's sessions and rate limits, probed during the run (needed by --fault redis-connection-limit)")
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
		return runFault(ctx, *fault, demoOptions{dir: *out, d: *dur, quiet: *quiet, redis: *redisURL}, stdout, stderr)
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
	first, err := demoRun(ctx, seedCfg, demoOptions{dir: filepath.Join(*out, "1-seed"), spawn: "10", d: *dur, quiet: *quiet, label: "[seed]", redis: *redisURL}, stdout, stderr)
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return nil
	}
	fixCfg := lab.Config{}
	_ = fixCfg.Preset("fixed")
	fmt.Fprintln(stdout, "\n== Applying the fixes the diagnosis recommends")
	for _, line := range fixesFor(first.Diagnosis, seedCfg, fixCfg) {
		fmt.Fprintln(stdout, "  - "+line)
	}
	fmt.Fprintln(stdout, "  - users spawned at 5/s instead of 10/s, as the seed's success criteria were measured")
	fmt.Fprintln(stdout, "\n== Run 2: the fixed configuration")
	second, err := demoRun(ctx, fixCfg, demoOptions{dir: filepath.Join(*out, "2-fixed"), spawn: "5", d: *dur, quiet: *quiet, label: "[fixed]", redis: *redisURL}, stdout, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "\n== Comparison")
	printDemoComparison(stdout, first, second)
	fmt.Fprintf(stdout, "\nRun directories: %s and %s (report.html in each)\n", first.Dir, second.Dir)
	fmt.Fprintf(stdout, "Per endpoint, with significance: stampede compare %s %s\n", first.Dir, second.Dir)
	return nil
}

// demoOptions are the parts of a demo run besides the lab's knobs.
type demoOptions struct {
	dir, spawn, label string
	d                 time.Duration
	quiet             bool
	// redis is the Redis URL the lab keeps sessions and rate limits in
	// (probed during the run); "" keeps them in memory.
	redis string
	// stopAt stops the lab that long into the run (target-down); 0 never.
	stopAt time.Duration
	// redisStalls pauses Redis's clients 500 ms in every second during the run.
	redisStalls bool
}

// demoRun starts the lab in-process with cfg, runs the demo scenario
// against it and stops the lab.
func demoRun(ctx context.Context, cfg lab.Config, o demoOptions, stdout, stderr io.Writer) (*runner.Result, error) {
	dir := o.dir
	logDir := filepath.Join(dir, "lab-logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	absLogs, _ := filepath.Abs(logDir)
	cfg.LogDir = absLogs
	cfg.Store = lab.StoreEmbedded
	cfg.DBPath = filepath.Join(absLogs, "..", "lab.sqlite")
	cfg.Redis = o.redis
	stopLab, addr, err := startLab(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer stopLab()
	if o.stopAt > 0 {
		t := time.AfterFunc(o.stopAt, stopLab)
		defer t.Stop()
	}
	if o.redisStalls {
		stop, err := stallRedis(ctx, o.redis)
		if err != nil {
			return nil, err
		}
		defer stop()
	}
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
	_, port, _ := net.SplitHostPort(addr)
	text := fmt.Sprintf(demoScenario, "http://lab.test:"+port, o.spawn, o.d.String(), absLogs, port)
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
	f := runFlags{out: dir, quiet: o.quiet, probeHost: true, interval: time.Second, probeRedis: o.redis, set: map[string]bool{}}
	opts, err := runOptions(sc, &f)
	if err != nil {
		return nil, err
	}
	opts.Command = []string{"stampede", "run", scPath, "--out", dir}
	if o.redis != "" {
		opts.Command = append(opts.Command, "--probe-redis", o.redis)
	}
	opts.SharedProcess = true
	return executeRun(ctx, plan, opts, runView{stdout: stdout, stderr: stderr, quiet: o.quiet, label: o.label})
}

// stallRedis makes Redis stop answering for 500 ms in every second (CLIENT
// PAUSE 500 ALL), as a fork for BGSAVE or a slow command stalls it, until
// stop is called.
func stallRedis(ctx context.Context, url string) (stop func(), err error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("demo: --redis: %w", err)
	}
	rdb := redis.NewClient(opt)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_ = rdb.Do(ctx, "CLIENT", "PAUSE", 500, "ALL").Err()
			}
		}
	}()
	return func() {
		cancel()
		wg.Wait()
		_ = rdb.Close()
	}, nil
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
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			srv.Close()
		})
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

func printDemoComparison(w io.Writer, a, b *runner.Result) {
	ids := func(r *runner.Result) map[string]string {
		m := map[string]string{}
		if r.Diagnosis != nil {
			for _, f := range r.Diagnosis.Findings {
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
	verdict := func(r *runner.Result) string {
		if r.Diagnosis == nil {
			return "?"
		}
		return r.Diagnosis.Verdict
	}
	fmt.Fprintf(w, "  verdict: %s → %s\n", verdict(a), verdict(b))
	login := func(r *runner.Result) string {
		for _, e := range r.Summary.Endpoints {
			if e.Name == "[AUTH] Login POST" {
				return fmt.Sprintf("%d logins, %.1f%% failed, p95 %s", e.Requests, 100*e.FailureRate, ms(e.Latency.Percentiles[5]))
			}
		}
		return "no login"
	}
	fmt.Fprintf(w, "  login: %s → %s\n", login(a), login(b))
	if failed := b.FailedThresholds(); len(failed) == 0 {
		fmt.Fprintln(w, "  the seed's success criteria (login failure rate < 1%, p95 < 500 ms) are met")
	} else {
		fmt.Fprintln(w, "  the seed's success criteria are NOT met: "+strings.Join(failed, "; "))
	}
}

// fault is one failure of the lab: the knobs that cause it, set over the
// healthy preset with a fast password hasher (see faultBase).
type fault struct {
	set func(c *lab.Config)
	// stopAt, as a share of the run, stops the lab mid-run.
	stopAt float64
	// redis: the fault needs --redis; the demo makes Redis stall 500 ms in
	// every second (CLIENT PAUSE) while the load runs.
	redis bool
}

// faults maps --fault names, the finding ids of DESIGN.md, to the lab
// knobs that cause them.
var faults = map[string]fault{
	"db-pool-wait-timeout": {set: func(c *lab.Config) {
		c.PoolSize, c.ReservePoolSize, c.QueryWaitTimeout = 3, 0, 2*time.Second
	}},
	"login-rate-limit": {set: func(c *lab.Config) {
		c.RateLimitLogin, c.RateLimitLoginFailed = "30/m/ip", "10/m/ip,5/300s/key"
	}},
	// PBKDF2 at 2M iterations: in Go about what Django 4.2–5.2's 600k–1M
	// cost in Python (0.3–0.6 s a hash); at the seed's login rate, more
	// hashing than the host's cores can do.
	"password-hash-cpu": {set: func(c *lab.Config) { c.PBKDF2Iterations = 2_000_000 }},
	// A go-redis pool of 2 with a short pool timeout in front of a Redis
	// that stalls now and then (as it does while it forks for BGSAVE):
	// commands queue and requests wait for a pooled connection.
	"redis-connection-limit": {redis: true, set: func(c *lab.Config) {
		c.RedisPoolSize, c.RedisPoolTimeout = 2, 100*time.Millisecond
	}},
	"db-lock-contention": {set: func(c *lab.Config) {
		c.HotRowHold, c.LockTimeout = 300*time.Millisecond, 2*time.Second
	}},
	// The missing index on a larger table (400 analysis rows per work
	// item): the pages that read rincian_ahsp scan it, the recap aggregates
	// it.
	"slow-query": {set: func(c *lab.Config) { c.MissingIndex, c.RowsPerItem = true, 400 }},
	"app-worker-saturation": {set: func(c *lab.Config) {
		c.Workers, c.WorkerQueueTimeout = 2, 3*time.Second
	}},
	"csrf-failure": {set: func(c *lab.Config) { c.CSRFCookieSecure = true }},
	"session-lost": {set: func(c *lab.Config) { c.SessionCookieSecure = true }},
	// The app stops listening halfway through the run.
	"target-down": {stopAt: 0.5, set: func(c *lab.Config) {}},
}

// faultAliases are the short names --fault accepted before it took the
// finding ids.
var faultAliases = map[string]string{"pool-wait-timeout": "db-pool-wait-timeout", "lock-contention": "db-lock-contention",
	"worker-saturation": "app-worker-saturation", "csrf": "csrf-failure", "redis": "redis-connection-limit"}

// faultBase is the lab a fault is set over: the healthy preset with a
// cheap PBKDF2 work factor, as a load environment uses to keep hashing out
// of the measurements, so each run shows one fault only.
func faultBase() lab.Config {
	cfg := lab.Config{}
	_ = cfg.Preset("healthy")
	cfg.PBKDF2Iterations = 20_000
	return cfg
}

func faultNames() []string {
	n := make([]string, 0, len(faults))
	for k := range faults {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

func runFault(ctx context.Context, name string, o demoOptions, stdout, stderr io.Writer) error {
	if alias, ok := faultAliases[name]; ok {
		name = alias
	}
	flt, ok := faults[name]
	if !ok {
		return withHint(fmt.Errorf("demo: unknown fault %q", name), "stampede demo --fault "+strings.Join(faultNames(), "|"))
	}
	if flt.redis && o.redis == "" {
		return withHint(fmt.Errorf("demo: --fault %s needs Redis", name), "stampede demo --fault "+name+" --redis redis://127.0.0.1:6379/0")
	}
	cfg := faultBase()
	flt.set(&cfg)
	fmt.Fprintf(stdout, "== stampede demo --fault %s: the lab with one fault, 100 users logging in at 10/s and browsing\n", name)
	o.dir, o.spawn, o.label = filepath.Join(o.dir, name), "10", "["+name+"]"
	o.redisStalls = flt.redis
	if flt.stopAt > 0 {
		o.stopAt = time.Duration(flt.stopAt * float64(o.d))
		fmt.Fprintf(stdout, "   the lab stops listening %s into the run\n", o.stopAt)
	}
	r, err := demoRun(ctx, cfg, o, stdout, stderr)
	if err != nil {
		return err
	}
	if r.Diagnosis == nil || len(r.Diagnosis.Findings) == 0 {
		return errors.New("demo: the diagnosis named no finding")
	}
	return nil
}
