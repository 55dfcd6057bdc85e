package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/locust"
	"github.com/stampede-load/stampede/internal/metrics"
	"github.com/stampede-load/stampede/internal/rundir"
	"github.com/stampede-load/stampede/internal/secret"
)

// recorderNap is how long the recorder leaves the results to gather in
// their channel between two batches: at 30,000 requests a second, about 60
// a batch; a run at rest costs it 500 wake-ups a second, a few thousandths
// of a CPU.
const recorderNap = 2 * time.Millisecond

// Run runs plan until its duration is over or ctx ends, with the probes and
// log followers of o, and writes the run directory as it goes: meta.json
// first (marked partial), then requests.csv, timeline.jsonl,
// evidence.jsonl, summary.json and the Locust CSVs, all flushed every
// second so that a run killed with kill -9 loses at most its last second.
// Once the load is over it writes the final summary.json, Locust CSVs and
// meta.json, evaluates the thresholds, and writes the diagnosis and
// report.html (see Finish).
//
// A run interrupted by ctx is not an error: its files are complete up to
// the interruption and marked partial, and Result.Partial is set. Errors
// are bad options, a probe that cannot be set up (ProbeError), or files
// that cannot be written.
func Run(ctx context.Context, plan *load.Plan, o Options) (*Result, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	notes := o.Notes
	if notes == nil {
		notes = io.Discard
	}
	if err := checkMachine(plan, o, notes); err != nil {
		return nil, err
	}
	if c := o.Control; c != nil {
		// Stop ends the run as Ctrl-C does: through its context.
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		if err := c.begin(cancel); err != nil {
			return nil, err
		}
		defer c.end()
	}
	if !o.StartAt.IsZero() {
		if err := CheckStartAt(o.StartAt, time.Now()); err != nil {
			return nil, fmt.Errorf("run: %w", err)
		}
		if !sleepUntil(ctx, o.StartAt) {
			return nil, fmt.Errorf("run: interrupted while waiting to start at %s", o.StartAt.Format(time.RFC3339))
		}
	}
	start := time.Now()
	dir := o.Dir
	if dir == "" {
		dir = DefaultDir(start)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("run: create run directory: %w", err)
	}
	if o.Probes.Host && o.Probes.Port == 0 {
		o.Probes.Port = localPort(plan)
	}
	meta := newMeta(dir, plan, o, start)
	if err := rundir.WriteMeta(dir, meta); err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	// Every text that enters the run directory is masked on the way in:
	// failure reasons, log evidence, probe readings (see package secret).
	secrets := secret.New(runSecrets(plan, o)...)
	w, err := createWriters(dir, o.Requests)
	if err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	if w.requests != nil {
		w.requests.Secrets = secrets
	}

	engine := load.New(plan)
	engine.Secrets = secrets
	m := metrics.New(start)
	obs := observers(o.Observers)
	planLoad := planLoadChange(plan, start)
	obs.loadChanged(planLoad)
	if o.Control != nil {
		meta.LoadChanges = []rundir.LoadChange{metaLoadChange(planLoad)}
		if err := rundir.WriteMeta(dir, meta); err != nil {
			w.close()
			return nil, fmt.Errorf("run: %w", err)
		}
		o.Control.start(plan.Model.String(), planLoad, controlHooks{
			apply: func(ch LoadChange) error {
				if plan.Model == load.Open {
					return engine.SetArrivalRate(ch.ArrivalRate, ch.MaxUsers)
				}
				return engine.SetUsers(ch.Users, ch.SpawnRate)
			},
			// Called under the Control's order (one change at a time), and
			// never after the load is over (Control.end below): meta is
			// not touched by anything else meanwhile.
			record: func(ch LoadChange, action string) {
				s := controlSample(ch, action)
				_ = w.timeline.Write(s)
				if action == "load" {
					meta.LoadChanges = append(meta.LoadChanges, metaLoadChange(ch))
					_ = rundir.WriteMeta(dir, meta) // kept by a kill -9; rewritten at the end
					obs.loadChanged(ch)
				}
			},
			noLoad: noLoad(o),
		})
	}

	// Side goroutines (self-watch, probes, log followers, progress) live
	// until the load is over; sideCtx ends them.
	sideCtx, stopSide := context.WithCancel(context.Background())
	var side sync.WaitGroup
	if !o.ObserveOnly {
		side.Go(func() {
			sw := load.NewSelfWatch(engine)
			sw.SharedWithTarget = o.SharedProcess
			sw.Run(sideCtx, time.Second, func(s stampede.Sample) {
				_ = w.timeline.Write(s)
				obs.sample(s)
			})
		})
	}
	stopProbes, err := startProbes(sideCtx, o.Probes, func(s stampede.Sample) {
		secrets.Sample(&s)
		_ = w.timeline.Write(s)
		obs.sample(s)
	})
	if err != nil {
		stopSide()
		side.Wait()
		w.close()
		return nil, err
	}
	stopLogs, err := startLogs(sideCtx, o.Logs, secrets, func(e stampede.Evidence) {
		_ = w.evidence.Write(e)
		obs.evidence(e)
	})
	if err != nil {
		stopSide()
		stopProbes()
		side.Wait()
		w.close()
		return nil, err
	}
	if o.Progress != nil {
		every := o.ProgressEvery
		if every == 0 {
			every = time.Second
		}
		side.Go(func() {
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-sideCtx.Done():
					return
				case now := <-t.C:
					o.Progress(Status{Metrics: m.Snapshot(now), Users: engine.Users(), Dropped: engine.Dropped()})
				}
			}
		})
	}

	// The recorder owns the metrics: it adds every result, closes a second
	// every second, and flushes every file at that moment, so a kill -9
	// loses at most the last second.
	results := make(chan stampede.Result, 8192)
	recDone := make(chan struct{})
	keep := sampler(o.Requests, start)
	var rows int64 // written to requests.csv; read after recDone
	go func() {
		defer close(recDone)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		// The recorder takes the results in batches, napping between them,
		// rather than waiting on the channel: a goroutine waiting on a
		// channel is woken by every send, a switch to it and back for every
		// request, and with more than one CPU a wake-up of another thread
		// (a futex call) as often. Napping, it lets the users' sends fill
		// the channel's buffer and wakes nobody; a nap is short beside a
		// second, and the results sent before a second closes are taken into
		// it.
		nap := time.NewTimer(recorderNap)
		defer nap.Stop()
		// drain records what the channel holds and reports false once it is
		// closed and empty. It takes at most what was there when it began:
		// the users, on other CPUs, may send as fast as it records.
		// r is the one result being recorded: declared once, as its address
		// goes to the writers (a variable per result would be one allocation
		// per request).
		var r stampede.Result
		var ok bool
		drain := func() bool {
			for n := max(len(results), 1); n > 0; n-- {
				select {
				case r, ok = <-results:
					if !ok {
						return false
					}
					if w.requests != nil && keep() {
						_ = w.requests.Write(&r)
						rows++
					}
					m.Add(&r)
					obs.result(&r)
				default:
					return true
				}
			}
			return true
		}
		for {
			select {
			case <-nap.C:
				if !drain() {
					return
				}
				nap.Reset(recorderNap)
			case now := <-tick.C:
				if !drain() {
					return
				}
				sec := m.Tick(now, engine.Users())
				m.SetDropped(engine.Dropped())
				writeClientEvidence(engine, secrets, w.evidence, obs)
				w.second(m, sec, now)
				if len(obs) > 0 {
					obs.second(&SecondView{Second: sec, Failures: m.Failures(), Users: engine.Users(),
						InFlight: engine.InFlight(), Dropped: engine.Dropped(), Start: start})
				}
			}
		}
	}()

	var runErr error
	if o.ObserveOnly {
		// The observer watches for as long as the segments load.
		sleepUntil(ctx, start.Add(plan.Duration))
	} else {
		runErr = engine.Run(ctx, results)
	}
	stoppedBy := ""
	if o.Control != nil {
		stoppedBy = o.Control.end() // no change from now on
	}
	close(results)
	<-recDone
	writeClientEvidence(engine, secrets, w.evidence, obs)
	interrupted := ctx.Err() != nil
	end := time.Now()
	// Let the probes take one more reading and the followers read the last
	// lines the server wrote before stopping them.
	time.Sleep(min(o.Probes.interval(), time.Second) / 2)
	stopSide()
	stopProbes()
	stopLogs()
	side.Wait()

	sec := m.Tick(end, 0)
	m.SetDropped(engine.Dropped())
	_ = w.locust.Write(m, sec)
	m.Close()
	sum := m.Summary(end)
	sum.Partial = interrupted
	errs := []error{runErr, w.final(m)}
	if err := sum.WriteFile(filepath.Join(dir, rundir.SummaryFile)); err != nil {
		errs = append(errs, err)
	}
	meta.End, meta.Partial, meta.Dropped, meta.Aborted = end, interrupted, engine.Dropped(), engine.Aborted()
	meta.SessionsLost, meta.Relogins = engine.SessionsLost(), engine.Relogins()
	meta.RequestsRows = rows
	meta.EndReason = "duration reached"
	switch {
	case stoppedBy != "":
		meta.EndReason = "stopped by " + stoppedBy
	case interrupted:
		meta.EndReason = "interrupted"
	}
	errs = append(errs, rundir.WriteMeta(dir, meta))
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("run: writing %s: %w", dir, err)
	}
	res := &Result{Dir: dir, Summary: sum, Partial: interrupted, Aborted: engine.Aborted(),
		SessionsLost: engine.SessionsLost(), Relogins: engine.Relogins()}
	thresholds := o.Thresholds
	if o.Segment != nil {
		thresholds = nil // evaluated once, by the merge of every segment
	}
	derive(dir, res, thresholds, o.NoDiagnose || o.ObserveOnly)
	obs.end(res)
	return res, nil
}

// sleepUntil waits until at or until ctx ends, and reports whether ctx is
// still live.
func sleepUntil(ctx context.Context, at time.Time) bool {
	t := time.NewTimer(time.Until(at))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// sampler returns the recorder's choice of the requests requests.csv
// keeps: every one, or each with probability m.Sample (a Bernoulli sample,
// so that the rows are a uniform sample of the run's requests). It is
// called by the recorder goroutine only.
func sampler(m rundir.RequestsMode, start time.Time) func() bool {
	if !(m.Sample > 0 && m.Sample < 1) {
		return func() bool { return true }
	}
	rng := rand.New(rand.NewPCG(uint64(start.UnixNano()), 0x5eed))
	return func() bool { return rng.Float64() < m.Sample }
}

// writers are the files a run appends to while it runs. The recorder
// goroutine alone writes requests.csv and the Locust files; the timeline
// and evidence writers lock.
type writers struct {
	dir string
	// requests is nil when requests.csv is off.
	requests *rundir.RequestWriter
	timeline *rundir.JSONLWriter
	evidence *rundir.JSONLWriter
	// locust keeps the Locust-compatible CSVs current: what `locust --csv
	// RUN/locust --csv-full-history` writes.
	locust *locust.Writer
}

func createWriters(dir string, rm rundir.RequestsMode) (*writers, error) {
	w := &writers{dir: dir}
	var err error
	if rm.Off {
		// A requests.csv left by an earlier run in the same directory
		// would pass for this run's.
		if err := os.Remove(filepath.Join(dir, rundir.RequestsFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	} else if w.requests, err = rundir.NewRequestWriter(dir); err != nil {
		return nil, err
	}
	if w.timeline, err = rundir.NewJSONLWriter(filepath.Join(dir, rundir.TimelineFile)); err != nil {
		w.close()
		return nil, err
	}
	if w.evidence, err = rundir.NewJSONLWriter(filepath.Join(dir, rundir.EvidenceFile)); err != nil {
		w.close()
		return nil, err
	}
	if w.locust, err = locust.Create(filepath.Join(dir, LocustPrefix)); err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

// second is called by the recorder right after each Tick: it appends the
// second to the Locust history, rewrites the Locust stats and summary.json
// (marked partial) and flushes every file.
func (w *writers) second(m *metrics.Metrics, sec *metrics.Second, now time.Time) {
	_ = w.locust.Write(m, sec)
	s := m.Summary(now)
	s.Partial = true
	_ = s.WriteFile(filepath.Join(w.dir, rundir.SummaryFile))
	if w.requests != nil {
		_ = w.requests.Flush()
	}
	_ = w.timeline.Flush()
	_ = w.evidence.Flush()
}

// final rewrites the Locust files from the closed metrics and closes every
// file.
func (w *writers) final(m *metrics.Metrics) error {
	err := w.locust.Write(m, nil)
	return errors.Join(err, w.close())
}

// close closes the files that were opened.
func (w *writers) close() error {
	var errs []error
	if w.locust != nil {
		errs = append(errs, w.locust.Close())
	}
	if w.requests != nil {
		errs = append(errs, w.requests.Close())
	}
	if w.timeline != nil {
		errs = append(errs, w.timeline.Close())
	}
	if w.evidence != nil {
		errs = append(errs, w.evidence.Close())
	}
	return errors.Join(errs...)
}

// runSecrets are the secret values a run knows and masks wherever they
// appear: the plan's (target URL password, users-file passwords, the
// scenario's literal secrets) and the passwords of the probes' DSNs.
func runSecrets(plan *load.Plan, o Options) []string {
	out := plan.Secrets()
	dsns := []string{o.Probes.Postgres, o.Probes.PgBouncer, o.Probes.Redis}
	dsns = append(dsns, strings.Fields(o.Probes.Prometheus)...) // one URL or several
	for _, dsn := range dsns {
		if pw := secret.DSNPassword(dsn); pw != "" {
			out = append(out, pw)
		}
	}
	return out
}
