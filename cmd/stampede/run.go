package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/rundir"
	"github.com/stampede-load/stampede/internal/runner"
	"github.com/stampede-load/stampede/internal/session"
)

func init() {
	commands["run"] = command{summary: "run a load test: stampede run SCENARIO.yaml, or --url URL -u N -r R -t D", run: cmdRun}
}

// logFlags collects repeated --log NAME=PATH flags.
type logFlags []load.LogSpec

func (l *logFlags) String() string { return fmt.Sprint(*l) }
func (l *logFlags) Set(v string) error {
	name, path, ok := strings.Cut(v, "=")
	if !ok || name == "" || path == "" {
		return fmt.Errorf("want NAME=PATH, got %q", v)
	}
	*l = append(*l, load.LogSpec{Name: name, Path: path})
	return nil
}

// runFlags are the flags of "stampede run".
type runFlags struct {
	url, duration, out, think     string
	localIPs                      string // --local-ips, k6's syntax
	idleTimeout                   string // --idle-timeout
	users                         int
	spawn                         float64
	quiet, authOnly, noDiagnose   bool
	check                         bool // --check: once as one user, then stop (har.go)
	probePG, probePGB, probeRedis string
	probeProm                     []string // --probe-prometheus URLs
	probeHost                     bool
	cpuprofile                    string
	memprofile                    string
	requestsCSV                   string
	pid                           int
	interval                      time.Duration
	logs                          logFlags
	resolve                       logFlags // HOST=IP pairs, same syntax
	split                         splitFlags
	ui                            uiFlags
	metrics                       metricsFlags
	set                           map[string]bool
}

func (f *runFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "url", "", "target URL; without a scenario file, each user GETs it in a loop (like wrk/hey)")
	fs.IntVar(&f.users, "u", 0, "virtual users (overrides load.users)")
	fs.Float64Var(&f.spawn, "r", 0, "users started per second (overrides load.spawn_rate)")
	fs.StringVar(&f.duration, "t", "", "duration, e.g. 30s or 5m (overrides load.duration; default 1m)")
	fs.StringVar(&f.out, "out", "", "run directory (default runs/<timestamp>)")
	fs.StringVar(&f.think, "think", "", "think time between tasks: 1s or 1s..3s (overrides think)")
	fs.StringVar(&f.idleTimeout, "idle-timeout", "", "close a user's kept-alive connection idle this long, as browsers and servers do (default 90s; 0 = never; overrides idle_timeout): with think times of minutes, users hold sockets only while they browse")
	fs.BoolVar(&f.quiet, "quiet", false, "no live progress")
	fs.BoolVar(&f.authOnly, "auth-only", false, "run on_start (the login) only")
	fs.BoolVar(&f.check, "check", false, "run the scenario once as one user of the users file, check each step's expect and the login, and stop; exit 1 at the first step that fails")
	fs.BoolVar(&f.noDiagnose, "no-diagnose", false, "skip the diagnosis at the end")
	fs.StringVar(&f.probePG, "probe-postgres", "", "PostgreSQL DSN to sample during the run")
	fs.StringVar(&f.probePGB, "probe-pgbouncer", "", "PgBouncer admin console DSN (database pgbouncer)")
	fs.StringVar(&f.probeRedis, "probe-redis", "", "Redis URL to sample during the run")
	// Never an error here: the flag package would print the value, and a
	// URL may hold a password; the probe rejects a bad URL, redacted.
	fs.Func("probe-prometheus", "metrics URL of an exporter of the target's servers: pgbouncer_exporter (instead of the admin console), node_exporter, process-exporter, postgres_exporter (repeatable)", func(u string) error {
		f.probeProm = append(f.probeProm, u)
		return nil
	})
	fs.BoolVar(&f.probeHost, "probe-host", true, "sample this host's CPU, load and memory")
	fs.IntVar(&f.pid, "pid", 0, "the target's process id, to sample its CPU")
	fs.DurationVar(&f.interval, "interval", time.Second, "probe sampling interval")
	fs.Var(&f.logs, "log", "server log to tail and classify, NAME=PATH (repeatable)")
	fs.StringVar(&f.localIPs, "local-ips", "", "source addresses the users dial from, one each in turn, as k6's: 127.0.0.1-127.0.0.8, 127.0.0.0/29, 10.0.0.5,10.0.0.6 (overrides load.local_ips); on loopback each address adds an ephemeral port range")
	fs.Var(&f.resolve, "resolve", "dial HOST at IP instead, keeping the name (like curl --resolve), HOST=IP (repeatable)")
	fs.StringVar(&f.requestsCSV, "requests-csv", "", "what requests.csv records: all, off, or sample:P (e.g. sample:0.01) for very large runs; the summary and the diagnosis count every request (overrides requests_csv)")
	fs.StringVar(&f.cpuprofile, "cpuprofile", "", "write stampede's own CPU profile to this file (for tuning stampede)")
	fs.StringVar(&f.memprofile, "memprofile", "", "write stampede's own heap profile to this file when 90% of the load's duration has run, every user at its peak (for tuning stampede)")
	f.split.register(fs)
	f.ui.register(fs)
	f.metrics.register(fs)
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f runFlags
	f.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: stampede run [flags] [SCENARIO.yaml]\n       stampede run --url URL -u USERS -r SPAWN_RATE -t DURATION\n       stampede run SCENARIO.yaml --segment i/N [--start-at RFC3339] --out DIR   (one generator of N; then stampede merge)\n       stampede run SCENARIO.yaml --observe-only [--start-at RFC3339] --out DIR\n\nFlags:")
		fs.PrintDefaults()
	}
	// Flags may come after the scenario file too.
	positional, err := parseAnyOrder(fs, uiArgs(args))
	if err != nil {
		return err
	}
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	if len(positional) > 1 {
		return withHint(fmt.Errorf("run: one scenario file at a time, got %d", len(positional)), "stampede run scenario.yaml")
	}
	sp, err := resolveSplit(&f.split, os.Getenv, time.Now())
	if err != nil {
		return err
	}
	sc, plan, err := buildPlan(&f, positional)
	if err != nil {
		return err
	}
	if f.check {
		return runCheck(ctx, plan, stdout)
	}
	opts, err := runOptions(sc, &f)
	if err != nil {
		return err
	}
	if plan, err = applySplit(&f.split, sp, sc, plan, &opts); err != nil {
		return err
	}
	if f.cpuprofile != "" {
		pf, err := os.Create(f.cpuprofile)
		if err != nil {
			return fmt.Errorf("run: --cpuprofile: %w", err)
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return fmt.Errorf("run: --cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	tuneGC(plan)
	if f.memprofile != "" {
		stop, err := heapProfileAt(f.memprofile, plan.Duration*9/10, stderr)
		if err != nil {
			return err
		}
		defer stop()
	}
	opts.Command = append([]string{"stampede", "run"}, args...)
	// The exporter first: the live page serves its /metrics.
	mo, err := startMetricsOut(&f.metrics, f.ui.addr != "", sc, plan, &opts, stdout, stderr)
	if err != nil {
		return err
	}
	defer mo.close()
	ui, err := startUI(&f.ui, plan, &opts, stdout)
	if err != nil {
		return err
	}
	defer ui.close(ctx, stdout)
	defer mo.awaitScrape(ctx, stdout) // while the page's /metrics is still served
	if !sp.startAt.IsZero() {
		fmt.Fprintf(stdout, "Waiting until %s (%s) to start.\n", sp.startAt.Format(time.RFC3339), sp.atFrom)
	}
	res, err := executeRun(ctx, plan, opts, runView{stdout: stdout, stderr: stderr, quiet: f.quiet || opts.ObserveOnly})
	if err != nil {
		return err
	}
	switch {
	case opts.ObserveOnly:
		fmt.Fprintln(stdout, "Observer: probes and logs only; merge this directory with the segments' (stampede merge).")
	case opts.Segment != nil:
		fmt.Fprintf(stdout, "Segment %s (%s): its thresholds are evaluated by stampede merge, over every segment.\n", plan.Segment, sp.from)
	}
	if failed := res.FailedThresholds(); len(failed) > 0 {
		return &thresholdError{failed: failed}
	}
	return nil
}

// buildPlan reads the scenario (or builds the quick form) and applies flags.
func buildPlan(f *runFlags, positional []string) (*load.Scenario, *load.Plan, error) {
	if len(positional) == 0 {
		if f.url == "" {
			return nil, nil, withHint(errors.New("run: give a scenario file or --url"), "stampede run --url http://127.0.0.1:8000/ -u 50 -r 25 -t 10s")
		}
		users := f.users
		if users == 0 {
			users = 1
		}
		d := time.Minute
		if f.duration != "" {
			var err error
			if d, err = load.ParseDuration(f.duration); err != nil || d <= 0 {
				return nil, nil, fmt.Errorf("run: -t %q: want a positive duration such as 30s", f.duration)
			}
		}
		plan, err := load.QuickPlan(f.url, users, f.spawn, d)
		if err != nil {
			return nil, nil, fmt.Errorf("run: %w", err)
		}
		if f.think != "" {
			if plan.ThinkMin, plan.ThinkMax, err = load.ParseThink(f.think); err != nil {
				return nil, nil, fmt.Errorf("run: --think: %w", err)
			}
		}
		if f.idleTimeout != "" {
			if plan.IdleTimeout, err = load.ParseIdleTimeout(f.idleTimeout); err != nil {
				return nil, nil, fmt.Errorf("run: --idle-timeout: %w", err)
			}
		}
		if err := applyResolve(plan, f.resolve); err != nil {
			return nil, nil, err
		}
		if err := applyLocalIPs(plan, f); err != nil {
			return nil, nil, err
		}
		return &load.Scenario{Target: f.url}, plan, nil
	}
	sc, err := load.ReadScenario(positional[0])
	if err != nil {
		return nil, nil, err
	}
	if f.url != "" {
		sc.Target = f.url
	}
	if f.users != 0 {
		if sc.Load.ArrivalRate != "" {
			sc.Load.MaxUsers = f.users
		} else {
			sc.Load.Users = f.users
		}
	}
	if f.spawn != 0 {
		sc.Load.SpawnRate = f.spawn
	}
	if f.duration != "" {
		sc.Load.Duration = f.duration
	}
	if f.idleTimeout != "" {
		sc.IdleTimeout = f.idleTimeout
	}
	if f.think != "" {
		sc.Think = f.think
	}
	// --local-ips replaces load.local_ips, which is then not compiled; the
	// scenario keeps it as written: the addresses are this machine's, not
	// part of the load (the segments of a split load compare scenarios).
	field := sc.Load.LocalIPs
	if f.set["local-ips"] {
		sc.Load.LocalIPs = ""
	}
	plan, err := sc.Compile()
	sc.Load.LocalIPs = field
	if err != nil {
		return nil, nil, err
	}
	plan.AuthOnly = f.authOnly
	if err := applyResolve(plan, f.resolve); err != nil {
		return nil, nil, err
	}
	if err := applyLocalIPs(plan, f); err != nil {
		return nil, nil, err
	}
	return sc, plan, nil
}

// applyLocalIPs sets the plan's source addresses from --local-ips, parsed
// on its own so that an error names the flag.
func applyLocalIPs(plan *load.Plan, f *runFlags) error {
	if !f.set["local-ips"] {
		return nil
	}
	ips, err := load.ParseLocalIPs(f.localIPs)
	if err != nil {
		return withHint(fmt.Errorf("run: --local-ips %w", err), "--local-ips 127.0.0.1-127.0.0.8 (or 127.0.0.0/29, or addresses separated by commas)")
	}
	plan.LocalIPs = ips
	return nil
}

func applyResolve(plan *load.Plan, pairs logFlags) error {
	for _, p := range pairs {
		if net.ParseIP(p.Path) == nil {
			return fmt.Errorf("run: --resolve %s=%s: want an IP address", p.Name, p.Path)
		}
		if plan.Hosts == nil {
			plan.Hosts = session.Hosts{}
		}
		plan.Hosts[p.Name] = p.Path
	}
	return nil
}

// runOptions returns the options of a run: the scenario's probes, logs and
// thresholds, overridden by the flags.
func runOptions(sc *load.Scenario, f *runFlags) (runner.Options, error) {
	o, err := runner.ScenarioOptions(sc)
	if err != nil {
		return runner.Options{}, err
	}
	o.Dir, o.NoDiagnose = f.out, f.noDiagnose
	if f.requestsCSV != "" {
		rm, err := rundir.ParseRequestsMode(f.requestsCSV)
		if err != nil {
			return runner.Options{}, withHint(fmt.Errorf("--requests-csv: %w", err), "--requests-csv all|off|sample:0.01")
		}
		o.Requests = rm
	}
	p := &o.Probes
	if f.probePG != "" {
		p.Postgres = f.probePG
	}
	if f.probePGB != "" {
		p.PgBouncer = f.probePGB
	}
	if f.probeRedis != "" {
		p.Redis = f.probeRedis
	}
	if len(f.probeProm) > 0 {
		// runner.Probes.Prometheus holds the URLs separated by spaces.
		p.Prometheus = strings.Join(f.probeProm, " ")
	}
	if f.set["probe-host"] || !p.Host {
		p.Host = f.probeHost
	}
	if f.pid != 0 {
		p.PID = f.pid
	}
	p.Interval = f.interval
	// A --log naming a log the scenario has replaces its path.
next:
	for _, l := range f.logs {
		for i := range o.Logs {
			if o.Logs[i].Name == l.Name {
				o.Logs[i].Path = l.Path
				continue next
			}
		}
		o.Logs = append(o.Logs, l)
	}
	return o, nil
}

// runView is how a run shows on the terminal.
type runView struct {
	stdout, stderr io.Writer
	quiet          bool
	// label prefixes progress lines (the demo runs twice).
	label string
}

// executeRun runs the plan, showing its progress, then prints the summary,
// the thresholds, the diagnosis and where the run directory is.
func executeRun(ctx context.Context, plan *load.Plan, o runner.Options, v runView) (*runner.Result, error) {
	prog := newProgress(v.stdout, plan, v.label)
	o.Notes = v.stderr
	if !v.quiet {
		o.Progress, o.ProgressEvery = prog.report, prog.every()
	}
	res, err := runner.Run(ctx, plan, o)
	prog.finish()
	if err != nil {
		var pe *runner.ProbeError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("--probe-%s: %w", pe.Probe, pe.Err)
		}
		return nil, err
	}
	printSummary(v.stdout, res.Summary, plan.Target.Redacted(), plan.Model.String(), res.Aborted, res.Partial)
	if res.SessionsLost > 0 {
		fmt.Fprintf(v.stdout, "Sessions lost (a page sent a logged-in user back to the login form): %d; logged in again: %d\n", res.SessionsLost, res.Relogins)
	}
	if len(res.Thresholds) > 0 {
		fmt.Fprintln(v.stdout, "\nThresholds:")
		for _, r := range res.Thresholds {
			fmt.Fprintln(v.stdout, "  "+r.String())
		}
	}
	if res.DiagnosisErr != nil {
		fmt.Fprintf(v.stderr, "stampede: diagnosis: %v\n", res.DiagnosisErr)
	} else if res.Diagnosis != nil {
		printDiagnosis(v.stdout, res.Diagnosis)
	}
	if res.ReportErr != nil {
		fmt.Fprintf(v.stderr, "stampede: report.html: %v\n", res.ReportErr)
	}
	fmt.Fprintf(v.stdout, "\nRun directory: %s (report.html)\n", res.Dir)
	if res.Partial {
		fmt.Fprintln(v.stdout, "The run was interrupted: its files are complete up to the interruption and marked partial.")
	}
	return res, nil
}

// manyUsers is the number of users in think time from which the run
// collects garbage more often (tuneGC).
const manyUsers = 5000

// tuneGC sets the garbage collector's target to 50% (GOGC=50) for a run of
// many users with think time, unless GOGC is set: their sessions are most
// of the heap and long-lived, and they allocate little while they think,
// so collecting at 1.5 times the live heap rather than twice holds about a
// quarter less memory a user for little CPU.
func tuneGC(plan *load.Plan) {
	if os.Getenv("GOGC") != "" || plan.Users < manyUsers || plan.ThinkMin < time.Second {
		return
	}
	debug.SetGCPercent(50)
}

// heapProfileAt writes the heap profile to path after d (from now: the
// load's start, give or take the set-up), once a collection has run, so
// that it holds what is live then. stop cancels it if the run ends first.
func heapProfileAt(path string, d time.Duration, stderr io.Writer) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("run: --memprofile: %w", err)
	}
	// A sample every 4 KB allocated rather than 512 KB: a user's few
	// hundred bytes show (a tuning run, slower for it).
	runtime.MemProfileRate = 4096
	var mu sync.Mutex // the profile is written whole or not at all
	closed := false
	t := time.AfterFunc(d, func() {
		runtime.GC()
		mu.Lock()
		defer mu.Unlock()
		if closed {
			return
		}
		if err := pprof.WriteHeapProfile(f); err != nil {
			fmt.Fprintf(stderr, "run: --memprofile: %v\n", err)
		}
	})
	return func() {
		t.Stop()
		mu.Lock()
		defer mu.Unlock()
		closed = true
		_ = f.Close()
	}, nil
}
