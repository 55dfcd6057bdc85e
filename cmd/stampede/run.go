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
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/metrics"
	"github.com/stampede-load/stampede/internal/report"
	"github.com/stampede-load/stampede/internal/rundir"
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
	users                         int
	spawn                         float64
	quiet, authOnly, noDiagnose   bool
	probePG, probePGB, probeRedis string
	probeProm                     string
	probeHost                     bool
	cpuprofile                    string
	pid                           int
	interval                      time.Duration
	logs                          logFlags
	resolve                       logFlags // HOST=IP pairs, same syntax
	set                           map[string]bool
}

func (f *runFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "url", "", "target URL; without a scenario file, each user GETs it in a loop (like wrk/hey)")
	fs.IntVar(&f.users, "u", 0, "virtual users (overrides load.users)")
	fs.Float64Var(&f.spawn, "r", 0, "users started per second (overrides load.spawn_rate)")
	fs.StringVar(&f.duration, "t", "", "duration, e.g. 30s or 5m (overrides load.duration; default 1m)")
	fs.StringVar(&f.out, "out", "", "run directory (default runs/<timestamp>)")
	fs.StringVar(&f.think, "think", "", "think time between tasks: 1s or 1s..3s (overrides think)")
	fs.BoolVar(&f.quiet, "quiet", false, "no live progress")
	fs.BoolVar(&f.authOnly, "auth-only", false, "run on_start (the login) only")
	fs.BoolVar(&f.noDiagnose, "no-diagnose", false, "skip the diagnosis at the end")
	fs.StringVar(&f.probePG, "probe-postgres", "", "PostgreSQL DSN to sample during the run")
	fs.StringVar(&f.probePGB, "probe-pgbouncer", "", "PgBouncer admin console DSN (database pgbouncer)")
	fs.StringVar(&f.probeRedis, "probe-redis", "", "Redis URL to sample during the run")
	fs.StringVar(&f.probeProm, "probe-prometheus", "", "metrics URL exporting PgBouncer's pools as pgbouncer_exporter does (instead of the admin console)")
	fs.BoolVar(&f.probeHost, "probe-host", true, "sample this host's CPU, load and memory")
	fs.IntVar(&f.pid, "pid", 0, "the target's process id, to sample its CPU")
	fs.DurationVar(&f.interval, "interval", time.Second, "probe sampling interval")
	fs.Var(&f.logs, "log", "server log to tail and classify, NAME=PATH (repeatable)")
	fs.Var(&f.resolve, "resolve", "dial HOST at IP instead, keeping the name (like curl --resolve), HOST=IP (repeatable)")
	fs.StringVar(&f.cpuprofile, "cpuprofile", "", "write stampede's own CPU profile to this file (for tuning stampede)")
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f runFlags
	f.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: stampede run [flags] [SCENARIO.yaml]\n       stampede run --url URL -u USERS -r SPAWN_RATE -t DURATION\n\nFlags:")
		fs.PrintDefaults()
	}
	// Flags may come after the scenario file too.
	positional, err := parseAnyOrder(fs, args)
	if err != nil {
		return err
	}
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	if len(positional) > 1 {
		return withHint(fmt.Errorf("run: one scenario file at a time, got %d", len(positional)), "stampede run scenario.yaml")
	}
	sc, plan, err := buildPlan(&f, positional)
	if err != nil {
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
	opts := runOptions{flags: &f, stdout: stdout, stderr: stderr, argv: append([]string{"stampede", "run"}, redactArgs(args)...)}
	res, err := executeRun(ctx, sc, plan, opts)
	if err != nil {
		return err
	}
	if !res.thresholdsOK {
		return &thresholdError{failed: res.failedThresholds}
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
		if err := applyResolve(plan, f.resolve); err != nil {
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
	if f.think != "" {
		sc.Think = f.think
	}
	plan, err := sc.Compile()
	if err != nil {
		return nil, nil, err
	}
	plan.AuthOnly = f.authOnly
	if err := applyResolve(plan, f.resolve); err != nil {
		return nil, nil, err
	}
	return sc, plan, nil
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

// runOptions are the settings of one execution that are not in the plan.
type runOptions struct {
	flags          *runFlags
	stdout, stderr io.Writer
	argv           []string
	// label prefixes progress lines (the demo runs twice).
	label string
	// sharedProcess says the target runs in this process (the demo's lab).
	sharedProcess bool
}

// runResult is what a finished run leaves for its caller.
type runResult struct {
	dir              string
	summary          *metrics.Summary
	thresholdsOK     bool
	failedThresholds []string
	partial          bool
	diagnosis        *stampede.Diagnosis
}

func defaultRunDir() string {
	return filepath.Join("runs", time.Now().Format("20060102-150405"))
}

// executeRun runs the plan with probes and log tailing, writing the run
// directory as it goes, then writes the final files and prints the summary.
func executeRun(ctx context.Context, sc *load.Scenario, plan *load.Plan, o runOptions) (*runResult, error) {
	f := o.flags
	dir := f.out
	if dir == "" {
		dir = defaultRunDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("run: create run directory: %w", err)
	}
	var thresholds []metrics.Threshold
	if sc != nil && len(sc.Thresholds) > 0 {
		var err error
		if thresholds, err = metrics.ParseThresholds(sc.Thresholds); err != nil {
			return nil, fmt.Errorf("%s: thresholds: %w", sc.Pos("$.thresholds"), err)
		}
	}
	start := time.Now()
	host, _ := os.Hostname()
	meta := &rundir.Meta{
		Tool: "stampede", Version: stampede.Version, Run: filepath.Base(dir), Target: stampede.Redact(plan.Target.String()),
		Host: host, Command: o.argv, Start: start, Partial: true,
		Load: loadFacts(plan),
	}
	if sc != nil && sc.File() != "" {
		meta.Scenario = redactScenario(sc)
	}
	probes := probeSpecs(sc, f)
	meta.Probes = probes.names()
	logs := logSpecs(sc, f)
	for _, l := range logs {
		meta.Logs = append(meta.Logs, rundir.LogRef{Name: l.Name, Path: l.Path})
	}
	if err := rundir.WriteMeta(dir, meta); err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	reqw, err := rundir.NewRequestWriter(dir)
	if err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	timeline, err := rundir.NewJSONLWriter(filepath.Join(dir, rundir.TimelineFile))
	if err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	evw, err := rundir.NewJSONLWriter(filepath.Join(dir, rundir.EvidenceFile))
	if err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	out, err := newOutputs(dir, start)
	if err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}

	engine := load.New(plan)
	m := metrics.New(start)

	// Side goroutines (self-watch, probes, log tailers, progress) live
	// until the load is over; sideCtx ends them.
	sideCtx, stopSide := context.WithCancel(context.Background())
	var side sync.WaitGroup
	side.Add(1)
	go func() {
		defer side.Done()
		sw := load.NewSelfWatch(engine)
		sw.SharedWithTarget = o.sharedProcess
		sw.Run(sideCtx, time.Second, func(s stampede.Sample) { _ = timeline.Write(s) })
	}()
	stopProbes, perr := startProbes(sideCtx, probes, f.interval, func(s stampede.Sample) { _ = timeline.Write(s) }, o.stderr)
	if perr != nil {
		stopSide()
		return nil, perr
	}
	stopLogs, lerr := startLogs(sideCtx, logs, func(e stampede.Evidence) { _ = evw.Write(e) }, o.stderr)
	if lerr != nil {
		stopSide()
		stopProbes()
		return nil, lerr
	}
	prog := newProgress(o.stdout, f.quiet, plan, o.label)
	side.Add(1)
	go func() {
		defer side.Done()
		prog.run(sideCtx, func() metrics.Progress { return m.Snapshot(time.Now()) }, engine)
	}()

	// The recorder owns the metrics: it adds every result, closes a second
	// every second, and flushes every file at that moment, so a kill -9
	// loses at most the last second.
	results := make(chan stampede.Result, 8192)
	recDone := make(chan struct{})
	go func() {
		defer close(recDone)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case r, ok := <-results:
				if !ok {
					return
				}
				_ = reqw.Write(&r)
				m.Add(&r)
			case now := <-tick.C:
				sec := m.Tick(now, engine.Users())
				m.SetDropped(engine.Dropped())
				out.second(m, sec, now)
				_ = reqw.Flush()
				_ = timeline.Flush()
				_ = evw.Flush()
			}
		}
	}()

	runErr := engine.Run(ctx, results)
	close(results)
	<-recDone
	interrupted := ctx.Err() != nil
	end := time.Now()
	// Let the probes take one more reading and the tailers read the last
	// lines the server wrote before stopping them.
	time.Sleep(min(f.interval, time.Second) / 2)
	stopSide()
	stopProbes()
	stopLogs()
	side.Wait()
	prog.finish()

	sec := m.Tick(end, 0)
	m.SetDropped(engine.Dropped())
	_ = out.lw.Write(m, sec)
	m.Close()
	sum := m.Summary(end)
	sum.Partial = interrupted
	errs := []error{runErr, out.final(m, sum), reqw.Close(), timeline.Close(), evw.Close()}
	if err := sum.WriteFile(filepath.Join(dir, rundir.SummaryFile)); err != nil {
		errs = append(errs, err)
	}
	meta.End, meta.Partial, meta.Dropped, meta.Aborted = end, interrupted, engine.Dropped(), engine.Aborted()
	meta.EndReason = "duration reached"
	if interrupted {
		meta.EndReason = "interrupted"
	}
	errs = append(errs, rundir.WriteMeta(dir, meta))
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("run: writing %s: %w", dir, err)
	}

	res := &runResult{dir: dir, summary: sum, partial: interrupted, thresholdsOK: true}
	printSummary(o.stdout, sum, plan, engine, interrupted)
	if len(thresholds) > 0 {
		rs := metrics.Evaluate(thresholds, sum)
		fmt.Fprintln(o.stdout, "\nThresholds:")
		for _, r := range rs {
			fmt.Fprintln(o.stdout, "  "+r.String())
			if !r.Pass {
				res.thresholdsOK = false
				res.failedThresholds = append(res.failedThresholds, r.Threshold.String())
			}
		}
	}
	if !f.noDiagnose {
		d, err := diagnoseDir(dir)
		if err != nil {
			fmt.Fprintf(o.stderr, "stampede: diagnosis: %v\n", err)
		} else if d != nil {
			res.diagnosis = d
			printDiagnosis(o.stdout, d)
		}
	}
	if err := report.WriteHTML(dir); err != nil {
		fmt.Fprintf(o.stderr, "stampede: report.html: %v\n", err)
	}
	fmt.Fprintf(o.stdout, "\nRun directory: %s (report.html)\n", dir)
	if interrupted {
		fmt.Fprintln(o.stdout, "The run was interrupted: its files are complete up to the interruption and marked partial.")
	}
	return res, nil
}

func loadFacts(p *load.Plan) rundir.LoadFacts {
	lf := rundir.LoadFacts{Model: p.Model.String(), Users: p.Users, Duration: p.Duration.String(),
		Accounts: p.Accounts(), Assignment: string(p.Assignment), SourceIPs: 1, LoginEndpoints: p.LoginSteps()}
	if p.Model == load.Open {
		lf.ArrivalRate = p.ArrivalRate
	} else {
		lf.SpawnRate = p.SpawnRate
	}
	if p.ThinkMax > 0 {
		lf.ThinkMin, lf.ThinkMax = p.ThinkMin.String(), p.ThinkMax.String()
	}
	if len(p.Rows) == 0 {
		lf.Assignment = ""
	}
	return lf
}

// redactScenario returns the scenario for meta.json with DSN passwords
// masked and form fields that look like secrets replaced.
func redactScenario(sc *load.Scenario) any {
	c := *sc
	c.Probes.Postgres = stampede.Redact(c.Probes.Postgres)
	c.Probes.PgBouncer = stampede.Redact(c.Probes.PgBouncer)
	c.Probes.Redis = stampede.Redact(c.Probes.Redis)
	c.Probes.Prometheus = stampede.Redact(c.Probes.Prometheus)
	red := func(steps []load.StepSpec) []load.StepSpec {
		out := make([]load.StepSpec, len(steps))
		for i, s := range steps {
			if s.SubmitForm != nil {
				sf := *s.SubmitForm
				sf.Fields = redactFields(sf.Fields)
				s.SubmitForm = &sf
			}
			s.Form = redactFields(s.Form)
			s.Headers = redactFields(s.Headers)
			out[i] = s
		}
		return out
	}
	c.OnStart = red(c.OnStart)
	c.Tasks = append([]load.TaskSpec(nil), c.Tasks...)
	for i := range c.Tasks {
		c.Tasks[i].Steps = red(c.Tasks[i].Steps)
	}
	c.Headers = redactFields(c.Headers)
	return &c
}

func redactFields(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		lk := strings.ToLower(k)
		if (strings.Contains(lk, "pass") || strings.Contains(lk, "secret") || strings.Contains(lk, "token") ||
			strings.Contains(lk, "authorization") || strings.Contains(lk, "cookie")) && !strings.Contains(v, "{{") {
			v = "xxxxx"
		}
		out[k] = v
	}
	return out
}

// redactArgs masks DSN passwords in the command line kept in meta.json.
func redactArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = stampede.Redact(a)
		if k, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(k, "-") {
			out[i] = k + "=" + stampede.Redact(v)
		}
	}
	return out
}
