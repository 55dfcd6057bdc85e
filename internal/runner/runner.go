// Package runner runs a load plan into a run directory and derives the run's final files from its records.
package runner

import (
	"fmt"
	"io"
	"path/filepath"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/metrics"
	"github.com/stampede-load/stampede/internal/rundir"
)

// Options are the settings of a run that are not in its plan. The zero
// value is valid: a run directory under runs/, the generator's own samples
// but no probe, no log, no threshold, no progress report, and a diagnosis
// at the end.
type Options struct {
	// Dir is the run directory, created if missing; "" is
	// runs/YYYYMMDD-HHMMSS of the moment Run starts (DefaultDir).
	Dir string
	// Scenario, when it was read from a file, is kept in meta.json with its
	// secrets masked. Run runs the plan alone: the scenario's probes, logs
	// and thresholds take effect through the fields below (ScenarioOptions
	// fills them).
	Scenario *load.Scenario
	// Command is the command line kept in meta.json; Run masks the
	// passwords in it.
	Command []string
	// Probes are the servers sampled during the run, into timeline.jsonl.
	Probes Probes
	// Logs are the server logs followed during the run and classified into
	// evidence.jsonl.
	Logs []load.LogSpec
	// Thresholds are evaluated against the summary once the run is over.
	Thresholds []metrics.Threshold
	// SharedProcess says the target runs in this process (the demo's lab):
	// the generator's samples then say the process's CPU is the target's
	// as much as the generator's.
	SharedProcess bool
	// NoDiagnose skips the diagnosis at the end.
	NoDiagnose bool
	// Requests says which requests requests.csv records: every one (the
	// zero value), none, or a random sample, for runs where it would be
	// too large. The summary, the Locust files and the diagnosis count
	// every request either way: the histograms hold them all.
	Requests rundir.RequestsMode
	// Progress, if not nil, is called every ProgressEvery while the load
	// runs, from a goroutine of its own; the last call returns before Run
	// writes the final files.
	Progress func(Status)
	// ProgressEvery is the interval of Progress; 0 is one second.
	ProgressEvery time.Duration
	// StartAt, when not zero, is the wall-clock instant the run starts at:
	// Run waits for it, so that the segments of a split load, each waiting
	// for the same instant, have per-second histories that line up. An
	// instant more than StartAtTolerance in the past is an error.
	StartAt time.Time
	// Segment, when not nil, marks the run as one segment of a load split
	// across generators (the plan is load.Plan.ForSegment's; see
	// NewSegment) or, with ObserveOnly, as their observer. meta.json keeps
	// it. A segment's figures are not the run's: its thresholds are kept in
	// meta.json but not evaluated (stampede merge evaluates them once, over
	// every segment), nor shown to its diagnosis.
	Segment *rundir.Segment
	// ObserveOnly runs the probes and log followers for the plan's
	// duration without any load: the one observer of a split load whose
	// segments only make load. It writes no diagnosis.
	ObserveOnly bool
	// Observers see the run as it goes (see Observer): the live page, the
	// metrics sent out.
	Observers []Observer
	// Control, when not nil, changes the load of the running run and
	// stops it (the live page, its HTTP API); nil means neither is
	// possible. A Control serves one run.
	Control *Control
	// Notes, if not nil, receives one-line notes on the run's setup that
	// are not errors: the open-files limit the preflight raised.
	Notes io.Writer
}

// StartAtTolerance is how far in the past Options.StartAt may be: a
// generator that starts later than that would not line up with the others.
const StartAtTolerance = 5 * time.Second

// CheckStartAt reports a start instant more than StartAtTolerance before
// now.
func CheckStartAt(at, now time.Time) error {
	if late := now.Sub(at); !at.IsZero() && late > StartAtTolerance {
		return fmt.Errorf("start at %s: %s in the past (more than %s): this generator would not line up with the others",
			at.Format(time.RFC3339), late.Round(time.Second), StartAtTolerance)
	}
	return nil
}

// Validate reports options that cannot run.
func (o Options) Validate() error {
	if err := o.Probes.Validate(); err != nil {
		return err
	}
	if o.Requests.Sample < 0 || o.Requests.Sample > 1 || o.Requests.Sample != o.Requests.Sample {
		return fmt.Errorf("runner: requests.csv sample %v: want a share between 0 and 1", o.Requests.Sample)
	}
	if o.ProgressEvery < 0 {
		return fmt.Errorf("runner: progress interval %v: want 0 or more", o.ProgressEvery)
	}
	for i, l := range o.Logs {
		if l.Name == "" || l.Path == "" {
			return fmt.Errorf("runner: log %d (%q=%q): want a name and a path", i+1, l.Name, l.Path)
		}
	}
	if o.Segment != nil && o.Segment.Observer != o.ObserveOnly {
		return fmt.Errorf("runner: segment observer %v with ObserveOnly %v: an observer (NewObserver) observes only", o.Segment.Observer, o.ObserveOnly)
	}
	return nil
}

// Probes are the servers sampled during a run. The zero value samples
// nothing but the generator itself.
type Probes struct {
	// Postgres is a PostgreSQL DSN.
	Postgres string
	// PgBouncer is the DSN of PgBouncer's admin console (database pgbouncer).
	PgBouncer string
	// Redis is a Redis URL.
	Redis string
	// Prometheus holds metrics URLs, separated by spaces, of exporters
	// (pgbouncer_exporter when the admin console is out of reach,
	// node_exporter, process-exporter, postgres_exporter for a remote
	// target's host and database).
	Prometheus string
	// Host samples this host's CPU, load and memory.
	Host bool
	// PID is the target's process id, to sample its CPU with the host.
	PID int
	// Port is the target's TCP port on this host, for the listen queue
	// of its socket (connections not yet accepted by a worker); 0 takes it
	// from the target URL when that points at this host (loopback).
	Port int
	// Interval is the sampling interval; 0 is one second.
	Interval time.Duration
}

// Validate reports probe settings that cannot be sampled. A DSN is checked
// when the run starts its probe (ProbeError).
func (p Probes) Validate() error {
	if p.Interval < 0 {
		return fmt.Errorf("runner: probe interval %v: want 0 or more", p.Interval)
	}
	if p.PID < 0 {
		return fmt.Errorf("runner: pid %d: want a process id", p.PID)
	}
	return nil
}

// Names returns the names of the probes, as meta.json lists them.
func (p Probes) Names() []string {
	var n []string
	if p.Postgres != "" {
		n = append(n, "postgres")
	}
	if p.PgBouncer != "" {
		n = append(n, "pgbouncer")
	}
	if p.Redis != "" {
		n = append(n, "redis")
	}
	if p.Prometheus != "" {
		n = append(n, "prometheus exporters")
	}
	if p.Host {
		n = append(n, "host")
	}
	return n
}

func (p Probes) interval() time.Duration {
	if p.Interval == 0 {
		return time.Second
	}
	return p.Interval
}

// ProbeError reports a probe that could not be set up from its DSN or URL,
// an input error; a server that cannot be reached during the run is
// recorded in the timeline instead.
type ProbeError struct {
	// Probe is "postgres", "pgbouncer", "redis" or "prometheus".
	Probe string
	Err   error
}

func (e *ProbeError) Error() string { return "probe " + e.Probe + ": " + e.Err.Error() }
func (e *ProbeError) Unwrap() error { return e.Err }

// ScenarioOptions returns the options a scenario asks for: its probes, its
// logs, its thresholds and what requests.csv records; the caller adds the
// rest (or overrides). sc may be nil. A threshold or a requests_csv that
// does not parse is an error naming its position in the scenario file.
func ScenarioOptions(sc *load.Scenario) (Options, error) {
	o := Options{Scenario: sc}
	if sc == nil {
		return o, nil
	}
	rm, err := rundir.ParseRequestsMode(sc.RequestsCSV)
	if err != nil {
		return Options{}, fmt.Errorf("%s: requests_csv: %w", sc.Pos("$.requests_csv"), err)
	}
	o.Requests = rm
	o.Probes = Probes{Postgres: sc.Probes.Postgres, PgBouncer: sc.Probes.PgBouncer, Redis: sc.Probes.Redis,
		Prometheus: sc.Probes.Prometheus, Host: sc.Probes.Host, PID: sc.Probes.Pid}
	o.Logs = append([]load.LogSpec(nil), sc.Logs...)
	if len(sc.Thresholds) > 0 {
		ts, err := metrics.ParseThresholds(sc.Thresholds)
		if err != nil {
			return Options{}, fmt.Errorf("%s: thresholds: %w", sc.Pos("$.thresholds"), err)
		}
		o.Thresholds = ts
	}
	return o, nil
}

// DefaultDir is the run directory of a run started at t:
// runs/YYYYMMDD-HHMMSS.
func DefaultDir(t time.Time) string {
	return filepath.Join("runs", t.Format("20060102-150405"))
}

// Status is a running load's state, for a live display.
type Status struct {
	// Metrics are the recorder's figures as of the last second it closed,
	// with Elapsed as of now.
	Metrics metrics.Progress
	// Users are the users running now.
	Users int
	// Dropped counts the starts dropped so far (open model: arrivals that
	// found no free user).
	Dropped int64
}

// Result is what a run, or Finish, leaves for its caller besides the files.
type Result struct {
	// Dir is the run directory.
	Dir string
	// Summary is summary.json's content; its Dropped counts the dropped
	// starts.
	Summary *metrics.Summary
	// Partial says the run was interrupted: its files are complete up to
	// the interruption and marked partial.
	Partial bool
	// Aborted counts the requests in flight when the run ended, cut off and
	// not counted.
	Aborted int64
	// SessionsLost counts the pages that sent a logged-in user back to the
	// login form; Relogins the logins made again after that.
	SessionsLost, Relogins int64
	// Thresholds are the results of the options' thresholds, in order.
	Thresholds []metrics.ThresholdResult
	// Diagnosis is the diagnosis written to diagnosis.json and .md; nil
	// with NoDiagnose or when DiagnosisErr is set.
	Diagnosis *stampede.Diagnosis
	// DiagnosisErr and ReportErr say why the diagnosis or report.html
	// could not be written. Neither fails the run: its records and summary
	// are complete without them.
	DiagnosisErr, ReportErr error
}

// FailedThresholds returns the thresholds that failed, as
// "endpoint: expression"; none when every one held.
func (r *Result) FailedThresholds() []string {
	var failed []string
	for _, t := range r.Thresholds {
		if !t.Pass {
			failed = append(failed, t.Threshold.String())
		}
	}
	return failed
}
