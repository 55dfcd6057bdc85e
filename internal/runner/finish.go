package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/locust"
	"github.com/stampede-load/stampede/internal/metrics"
	"github.com/stampede-load/stampede/internal/report"
	"github.com/stampede-load/stampede/internal/rundir"
)

// FinishOptions are the settings of Finish. The zero value is valid: no
// threshold, and a diagnosis.
type FinishOptions struct {
	// Thresholds are evaluated against the replayed summary.
	Thresholds []metrics.Threshold
	// NoDiagnose skips the diagnosis.
	NoDiagnose bool
}

// Finish (re)writes the files of the run directory dir that derive from its
// records, as a run writes them once its load is over: summary.json and
// the four Locust CSVs, replayed from meta.json, requests.csv and the
// generator's samples in timeline.jsonl; then it evaluates the thresholds
// and writes diagnosis.json, diagnosis.md and report.html. It serves a run
// directory whose records were put together otherwise, such as the merge
// of several generators' segments.
//
// The replay closes a second every second from meta.json's start, adding
// the results that ended by then, and a last one at meta.json's end (at the
// last response for a run killed before it wrote its end), as the recorder
// does live. A second's users are the sum, over the segments, of the users
// of each segment's latest generator sample (up to 3 seconds old: a
// segment that stopped early stops counting); a segment is named by the
// sample's Info["segment"], empty for a run of one generator. The dropped
// and aborted counts and the partial mark come from meta.json. Latencies
// and times are those of requests.csv, to the microsecond: the figures
// match the live run's to within that.
//
// The replay streams requests.csv: its memory does not grow with the
// number of requests (the diagnosis, which keeps every request, does).
// A run whose requests.csv is off or sampled cannot be replayed: Finish
// says so.
func Finish(ctx context.Context, dir string, o FinishOptions) (*Result, error) {
	meta, err := rundir.ReadMeta(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("finish: %w", &NotRunDirError{Dir: dir})
		}
		return nil, fmt.Errorf("finish: %w", err)
	}
	if rm, err := meta.RequestsMode(); err != nil || !rm.All() {
		if err == nil {
			err = fmt.Errorf("requests.csv is %s (meta.json requests_csv): the run cannot be replayed from it; its summary.json and Locust files are already final", rm)
		}
		return nil, fmt.Errorf("finish: %s: %w", dir, err)
	}
	m, err := replay(ctx, dir, meta)
	if err != nil {
		return nil, fmt.Errorf("finish: %w", err)
	}
	sum := m.Summary(meta.End)
	sum.Partial = meta.Partial
	if err := sum.WriteFile(filepath.Join(dir, rundir.SummaryFile)); err != nil {
		return nil, fmt.Errorf("finish: %w", err)
	}
	res := &Result{Dir: dir, Summary: sum, Partial: meta.Partial, Aborted: meta.Aborted}
	derive(dir, res, o.Thresholds, o.NoDiagnose)
	return res, nil
}

// segmentSilence is how long after its last generator sample (one a
// second) a segment's users still count in a merged run's history.
const segmentSilence = 3 * time.Second

// replay rebuilds the metrics of the run in dir from its records, writes
// the Locust CSVs from them and returns them closed. A killed run's
// meta.End is set to its last response.
//
// It streams requests.csv in completion order (rundir.ReadRequestsByEnd):
// its memory is the results of a couple of seconds, the generator's
// samples and the metrics' histograms, whatever the number of requests.
func replay(ctx context.Context, dir string, meta *rundir.Meta) (*metrics.Metrics, error) {
	timeline, err := rundir.ReadTimeline(dir)
	if err != nil {
		return nil, err
	}
	var gen []stampede.Sample
	for _, s := range timeline {
		if s.Source == "generator" && s.Err == "" {
			gen = append(gen, s)
		}
	}
	slices.SortStableFunc(gen, func(a, b stampede.Sample) int { return a.Time.Compare(b.Time) })
	killed := meta.End.IsZero() // the run ends at its last response

	m := metrics.New(meta.Start)
	hist := []byte(locust.HistoryHeader + "\r\n")
	// Users by segment, from its latest generator sample. A segment whose
	// samples stopped (it was killed or interrupted before the others
	// ended) stops counting segmentSilence after its last one.
	type latest struct {
		users int
		at    time.Time
	}
	users := map[string]latest{}
	j := 0
	next := meta.Start.Add(time.Second) // the next second to close
	// tick closes every second before t (and before the end of a run that
	// was not killed), as the recorder closed one every second.
	tick := func(t time.Time) {
		for next.Before(t) && (killed || next.Before(meta.End)) {
			for ; j < len(gen) && !gen[j].Time.After(next); j++ {
				users[gen[j].Info["segment"]] = latest{int(gen[j].Values["users"]), gen[j].Time}
			}
			n := 0
			for seg, u := range users {
				if seg == "" || next.Sub(u.at) <= segmentSilence {
					n += u.users
				}
			}
			hist = locust.AppendHistory(hist, m, m.Tick(next, n))
			next = next.Add(time.Second)
		}
	}
	last := meta.Start
	n := 0
	err = rundir.ReadRequestsByEnd(dir, 0, func(r *stampede.Result) error {
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		end := r.End()
		tick(end) // a result ending at a second's close belongs to it
		m.Add(r)
		if end.After(last) {
			last = end
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if killed {
		meta.End = last
	}
	tick(meta.End)
	hist = locust.AppendHistory(hist, m, m.Tick(meta.End, 0))
	m.SetDropped(meta.Dropped)
	m.Close()

	prefix := filepath.Join(dir, LocustPrefix)
	for _, f := range []struct {
		suffix string
		data   []byte
	}{
		{locust.StatsSuffix, locust.AppendStats([]byte(locust.StatsHeader+"\r\n"), m)},
		{locust.HistorySuffix, hist},
		{locust.FailuresSuffix, locust.AppendFailures([]byte(locust.FailuresHeader+"\r\n"), m)},
		{locust.ExceptionsSuffix, []byte(locust.ExceptionsHeader + "\r\n")},
	} {
		if err := rundir.WriteFileAtomic(prefix+f.suffix, f.data); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// derive evaluates the thresholds against res.Summary and writes the
// diagnosis and report.html of dir into res. A diagnosis or report that
// cannot be written is kept in res, not returned: the run's records and
// summary stand without them.
func derive(dir string, res *Result, thresholds []metrics.Threshold, noDiagnose bool) {
	if len(thresholds) > 0 {
		res.Thresholds = metrics.Evaluate(thresholds, res.Summary)
	}
	if !noDiagnose {
		res.Diagnosis, res.DiagnosisErr = Diagnose(dir)
	}
	res.ReportErr = report.WriteHTML(dir)
}
