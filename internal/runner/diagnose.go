package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/diagnose"
	"github.com/stampede-load/stampede/internal/evidence"
	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/locust"
	"github.com/stampede-load/stampede/internal/metrics"
	"github.com/stampede-load/stampede/internal/report"
	"github.com/stampede-load/stampede/internal/rundir"
	"github.com/stampede-load/stampede/internal/secret"
)

// Files of the diagnosis in a run directory.
const (
	DiagnosisJSONFile = "diagnosis.json"
	DiagnosisMDFile   = "diagnosis.md"
)

// NotRunDirError reports a directory that holds no run: no meta.json.
type NotRunDirError struct{ Dir string }

func (e *NotRunDirError) Error() string {
	return e.Dir + " is not a run directory (no meta.json)"
}

// Diagnose analyses the run directory dir from its records and writes
// diagnosis.json and diagnosis.md into it.
func Diagnose(dir string) (*stampede.Diagnosis, error) {
	in, err := LoadInput(dir)
	if err != nil {
		return nil, err
	}
	d := diagnose.Diagnose(in)
	if err := WriteDiagnosis(dir, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// WriteDiagnosis writes d as diagnosis.json and diagnosis.md into dir,
// creating it if needed.
func WriteDiagnosis(dir string, d *stampede.Diagnosis) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := rundir.WriteJSON(filepath.Join(dir, DiagnosisJSONFile), d); err != nil {
		return fmt.Errorf("diagnose: %w", err)
	}
	var md bytes.Buffer
	if err := report.DiagnosisMarkdown(&md, *d); err != nil {
		return err
	}
	if err := rundir.WriteFileAtomic(filepath.Join(dir, DiagnosisMDFile), md.Bytes()); err != nil {
		return fmt.Errorf("diagnose: %w", err)
	}
	return nil
}

// LoadInput reads the run directory dir into a diagnosis input: meta.json's
// load facts (with the steps of its load_changes), every record of
// requests.csv, timeline.jsonl and evidence.jsonl. A run killed before it
// wrote its end ends at its last response. A directory without meta.json is
// a *NotRunDirError.
//
// A run whose requests.csv is off or sampled (meta.json requests_csv) is
// read from its aggregates instead, which count every request: the
// per-endpoint totals and latency histograms and the failure groups of
// summary.json, and the per-second history of locust_stats_history.csv.
// The diagnosis then works as on a Locust import: without per-request
// records, so slow requests are not joined to statements one by one.
func LoadInput(dir string) (*diagnose.Input, error) {
	return loadInput(dir, 0)
}

// LiveRequestsBytes is the size of requests.csv beyond which LoadInputLive
// reads a running run from its aggregates: about 35,000 requests, whose
// reading costs some 0.1 s of CPU — at most a few percent of a core when
// the diagnosis so far runs every 5 s.
const LiveRequestsBytes = 4 << 20

// LoadInputLive reads a run directory as LoadInput does, for the diagnosis
// so far of a run that is still going (the live page, the findings sent
// out as they form): once requests.csv holds more than LiveRequestsBytes,
// from the aggregates flushed every second (summary.json, the Locust
// history), as a sampled run is read — so that diagnosing again every few
// seconds costs the same at the hundredth minute as at the first, not a
// re-read of every request so far.
func LoadInputLive(dir string) (*diagnose.Input, error) {
	return loadInput(dir, LiveRequestsBytes)
}

// loadInput is LoadInput, from the aggregates when aggregatesOver > 0 and
// requests.csv is larger.
func loadInput(dir string, aggregatesOver int64) (*diagnose.Input, error) {
	meta, err := rundir.ReadMeta(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("diagnose: %w", &NotRunDirError{Dir: dir})
		}
		return nil, fmt.Errorf("diagnose: %w", err)
	}
	rm, err := meta.RequestsMode()
	if err != nil {
		return nil, fmt.Errorf("diagnose: %s: %w", filepath.Join(dir, rundir.MetaFile), err)
	}
	var in *diagnose.Input
	big := false
	if aggregatesOver > 0 {
		if st, err := os.Stat(filepath.Join(dir, rundir.RequestsFile)); err == nil && st.Size() > aggregatesOver {
			big = true
		}
	}
	if rm.All() && !big {
		// Sized from meta.json's row count, so a large run's records are
		// not copied while the slice doubles; a count the file's size
		// cannot hold (a damaged meta.json) is not trusted.
		var results []stampede.Result
		if st, err := os.Stat(filepath.Join(dir, rundir.RequestsFile)); err == nil && meta.RequestsRows > 0 && meta.RequestsRows <= st.Size()/16 {
			results = make([]stampede.Result, 0, meta.RequestsRows)
		}
		if err := rundir.ReadRequests(dir, func(r *stampede.Result) error { results = append(results, *r); return nil }); err != nil {
			return nil, fmt.Errorf("diagnose: %w", err)
		}
		end := meta.End
		if end.IsZero() && len(results) > 0 { // a killed run
			for _, r := range results {
				if e := r.End(); e.After(end) {
					end = e
				}
			}
		}
		in = diagnose.NewInput(meta.Run, meta.Start, end, results)
	} else if in, err = aggregateInput(dir, meta, rm); err != nil {
		return nil, fmt.Errorf("diagnose: %w", err)
	}
	if in.Timeline, err = rundir.ReadTimeline(dir); err != nil {
		return nil, fmt.Errorf("diagnose: %w", err)
	}
	if in.Evidence, err = rundir.ReadEvidence(dir); err != nil {
		return nil, fmt.Errorf("diagnose: %w", err)
	}
	l := meta.Load
	in.Load = diagnose.LoadFacts{Model: l.Model, Users: l.Users, SpawnRate: l.SpawnRate, ArrivalRate: l.ArrivalRate,
		Accounts: l.Accounts, Assignment: l.Assignment, SourceIPs: l.SourceIPs, LoginEndpoints: l.LoginEndpoints}
	for _, ch := range meta.LoadChanges {
		// The plan's entry is the load above; the others are its steps.
		if ch.By != "plan" {
			in.Load.Steps = append(in.Load.Steps, diagnose.LoadStep{Time: ch.T, Users: ch.Users, SpawnRate: ch.SpawnRate,
				ArrivalRate: ch.ArrivalRate, MaxUsers: ch.MaxUsers, By: ch.By})
		}
	}
	if err := thresholdInput(dir, meta.Thresholds, meta.Segment == nil, in); err != nil {
		return nil, fmt.Errorf("diagnose: %w", err)
	}
	return in, nil
}

// aggregateInput fills a diagnosis input's Endpoints, Failures and History
// from a run's aggregates, for a run whose requests.csv does not hold
// every request: summary.json (required) and locust_stats_history.csv.
func aggregateInput(dir string, meta *rundir.Meta, rm rundir.RequestsMode) (*diagnose.Input, error) {
	path := filepath.Join(dir, rundir.SummaryFile)
	sum, err := metrics.ReadSummary(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s is missing, and requests.csv is %s (meta.json requests_csv): nothing counts the run's requests", path, rm)
	}
	if err != nil {
		return nil, err
	}
	in := &diagnose.Input{Run: meta.Run, Start: meta.Start, End: meta.End}
	if in.End.IsZero() {
		in.End = sum.End
	}
	p50, p95, p99 := percentileIndex(0.5), percentileIndex(0.95), percentileIndex(0.99)
	for _, e := range sum.Endpoints {
		t := diagnose.EndpointTotals{Method: e.Method, Name: e.Name, Requests: int(e.Requests), Failures: int(e.Failures),
			Min: e.Latency.Min, Median: e.Latency.Percentiles[p50], Mean: e.Latency.Avg,
			P95: e.Latency.Percentiles[p95], P99: e.Latency.Percentiles[p99], Max: e.Latency.Max}
		if e.Histogram != "" {
			h, err := metrics.DecodeHistogram(e.Histogram)
			if err != nil {
				return nil, fmt.Errorf("%s: endpoint %q: %w", path, e.Name, err)
			}
			t.Latency = new(diagnose.Histogram)
			for _, b := range h.Distribution() {
				d := time.Duration((b.From+b.To)/2) * time.Microsecond
				for range b.Count {
					t.Latency.Add(d)
				}
			}
		}
		in.Endpoints = append(in.Endpoints, t)
	}
	for _, f := range sum.Failures {
		o, _ := stampede.ParseOutcome(f.Outcome)
		in.Failures = append(in.Failures, diagnose.FailureGroup{Method: f.Method, Name: f.Name, Reason: f.Reason,
			Count: int(f.Occurrences), Outcome: o, First: f.FirstSeen, Last: f.LastSeen})
	}
	hp := filepath.Join(dir, LocustPrefix+locust.HistorySuffix)
	hf, err := os.Open(hp)
	if err != nil {
		return nil, err
	}
	defer hf.Close()
	h, err := locust.ReadHistory(hf, hp)
	if err != nil {
		return nil, err
	}
	in.History, _ = historyPoints(h)
	return in, nil
}

// percentileIndex returns the index of q in metrics.Percentiles.
func percentileIndex(q float64) int {
	for i, p := range metrics.Percentiles {
		if p == q {
			return i
		}
	}
	panic(fmt.Sprintf("runner: no percentile %v in summary.json", q))
}

// thresholdInput gives the diagnosis the run's thresholds: the latency
// ones as the bars above which requests are slow, and, if evaluate, each
// one evaluated against summary.json (when the run wrote one), so the
// diagnosis can say what explains a failed one. A segment of a split load
// does not evaluate them: its figures are not the run's.
func thresholdInput(dir string, spec map[string][]string, evaluate bool, in *diagnose.Input) error {
	if len(spec) == 0 {
		return nil
	}
	ts, err := metrics.ParseThresholds(spec)
	if err != nil {
		return fmt.Errorf("meta.json thresholds: %w", err)
	}
	for _, t := range ts {
		if t.Kind == metrics.KindLatency && t.Metric != "min" && (t.Op == "<" || t.Op == "<=") {
			in.Limits = append(in.Limits, diagnose.Limit{Endpoint: t.Endpoint, Max: time.Duration(t.Value), Threshold: t.Endpoint + ": " + t.Expr})
		}
	}
	if !evaluate {
		return nil
	}
	sum, err := metrics.ReadSummary(filepath.Join(dir, rundir.SummaryFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, r := range metrics.Evaluate(ts, sum) {
		tr := diagnose.ThresholdResult{Endpoint: r.Endpoint, Text: r.Endpoint + ": " + r.Expr, Pass: r.Pass,
			Latency: r.Kind == metrics.KindLatency, Failure: r.Metric == "failure_rate" || r.Metric == "failures"}
		if !r.Missing {
			tr.Value = metrics.FormatValue(r.Kind, r.Actual)
		}
		in.Thresholds = append(in.Thresholds, tr)
	}
	return nil
}

// historyPoints turns Locust's stats history into the diagnosis's
// per-second points, and returns the peak user count. Locust's history
// holds running totals per entry; the per-second counts are their
// differences.
func historyPoints(h *locust.History) ([]diagnose.Point, int) {
	ms := func(v float64) time.Duration {
		if math.IsNaN(v) {
			return 0
		}
		return time.Duration(v * float64(time.Millisecond))
	}
	var pts []diagnose.Point
	peak := 0
	prev := map[string][2]int64{}
	for _, r := range h.Rows {
		key := r.Method + " " + r.Name
		p := prev[key]
		reqs, fails := r.TotalRequests-p[0], r.TotalFailures-p[1]
		prev[key] = [2]int64{r.TotalRequests, r.TotalFailures}
		name := r.Name
		if r.Method == "" && r.Name == "Aggregated" {
			name = ""
		}
		pt := diagnose.Point{Time: r.Time, Method: r.Method, Name: name, Users: r.Users,
			Requests: float64(max(reqs, 0)), Failures: float64(max(fails, 0))}
		for i, q := range h.Quantiles {
			if i < len(r.Percentiles) && !math.IsNaN(r.Percentiles[i]) {
				if q == 0.5 {
					pt.Median = ms(r.Percentiles[i])
				}
				pt.Quantiles = append(pt.Quantiles, q)
				pt.Latencies = append(pt.Latencies, ms(r.Percentiles[i]))
			}
		}
		pts = append(pts, pt)
		peak = max(peak, r.Users)
	}
	return pts, peak
}

// LocustImport names a run made by Locust: the prefix of its CSVs (the
// --csv PREFIX it ran with) and what the CSVs do not say. Only Prefix is
// required.
type LocustImport struct {
	// Prefix is the --csv PREFIX of PREFIX_stats.csv, PREFIX_failures.csv
	// and, if written with --csv-full-history, PREFIX_stats_history.csv.
	Prefix string
	// Logs are the server's logs during the run, parsed whole.
	Logs []load.LogSpec
	// Users is the number of virtual users; 0 is the peak User Count of the
	// history.
	Users int
	// Accounts counts the distinct accounts the users logged in with; 0 is
	// unknown.
	Accounts int
	// LoginEndpoint is the name of the login POST; "" lets the diagnosis
	// guess it from the names.
	LoginEndpoint string
}

// Validate reports an import that cannot be read.
func (li LocustImport) Validate() error {
	if li.Prefix == "" {
		return errors.New("diagnose: a Locust import needs the --csv prefix of its files")
	}
	if li.Users < 0 || li.Accounts < 0 {
		return fmt.Errorf("diagnose: Locust import: users %d, accounts %d: want 0 or more", li.Users, li.Accounts)
	}
	return nil
}

// LoadLocust reads a run made by Locust, from its CSVs and the server's
// logs, into a diagnosis input.
func LoadLocust(ctx context.Context, li LocustImport) (*diagnose.Input, error) {
	if err := li.Validate(); err != nil {
		return nil, err
	}
	run, err := locust.Read(li.Prefix)
	if err != nil {
		return nil, fmt.Errorf("diagnose: %w", err)
	}
	in := &diagnose.Input{Run: filepath.Base(li.Prefix)}
	ms := func(v float64) time.Duration {
		if math.IsNaN(v) {
			return 0
		}
		return time.Duration(v * float64(time.Millisecond))
	}
	pct := func(row []float64, qs []float64, q float64) time.Duration {
		for i, x := range qs {
			if x == q && i < len(row) {
				return ms(row[i])
			}
		}
		return 0
	}
	for _, r := range run.Stats.Rows {
		if r.Method == "" && r.Name == "Aggregated" {
			continue
		}
		in.Endpoints = append(in.Endpoints, diagnose.EndpointTotals{Method: r.Method, Name: r.Name, Requests: int(r.Requests), Failures: int(r.Failures),
			Min: ms(r.Min), Median: ms(r.Median), Mean: ms(r.Average), Max: ms(r.Max),
			P95: pct(r.Percentiles, run.Stats.Quantiles, 0.95), P99: pct(r.Percentiles, run.Stats.Quantiles, 0.99)})
	}
	for _, f := range run.Failures {
		// Locust writes the error as the client raised it: a URL with its
		// query, a response's text.
		g := diagnose.FailureGroup{Method: f.Method, Name: f.Name, Reason: secret.Mask(f.Reason()), Count: int(f.Occurrences), First: f.FirstSeen, Last: f.LastSeen}
		in.Failures = append(in.Failures, g)
	}
	peak := 0
	if run.History != nil {
		in.History, peak = historyPoints(run.History)
		for _, pt := range in.History {
			if in.Start.IsZero() || pt.Time.Before(in.Start) {
				in.Start = pt.Time
			}
			if pt.Time.After(in.End) {
				in.End = pt.Time
			}
		}
	}
	users := li.Users
	if users == 0 {
		users = peak
	}
	in.Load = diagnose.LoadFacts{Model: diagnose.ModelClosed, Users: users, Accounts: li.Accounts, SourceIPs: 1}
	if li.LoginEndpoint != "" {
		in.Load.LoginEndpoints = []string{li.LoginEndpoint}
	}
	for _, l := range li.Logs {
		evs, err := evidence.ParseFile(ctx, l.Path, l.Name)
		if err != nil {
			return nil, fmt.Errorf("diagnose: --log %s: %w", l.Name, err)
		}
		in.Evidence = append(in.Evidence, evs...)
	}
	sort.SliceStable(in.Evidence, func(i, j int) bool { return in.Evidence[i].Time.Before(in.Evidence[j].Time) })
	if in.Start.IsZero() && len(in.Evidence) > 0 {
		in.Start, in.End = in.Evidence[0].Time, in.Evidence[len(in.Evidence)-1].Time
	}
	return in, nil
}
