package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/locust"
	"github.com/stampede-load/stampede/internal/metrics"
	"github.com/stampede-load/stampede/internal/rundir"
)

// diagnosisFile is the diagnosis written at the end of a run (DESIGN.md).
const diagnosisFile = "diagnosis.json"

// maxPoints bounds the points of every per-second series: a run longer than
// maxPoints seconds is drawn in buckets of several seconds, so the page stays
// small and quick whatever the length of the run.
const maxPoints = 2400

// lateBuckets is how far behind the newest bucket a request may complete and
// still count in its bucket's latency percentiles. requests.csv is written in
// completion order, so a row is at most a scheduling hiccup late; a row later
// than this still counts in the bucket's rates, not in its percentiles.
const lateBuckets = 30

// Evidence excerpts are clipped: the page shows a log excerpt, the log file
// itself keeps the rest.
const (
	maxExcerptText   = 2000
	maxExcerptFrames = 40
	maxFrameText     = 300
	// maxMarkerEvents is how many events a marker (one evidence group in one
	// bucket) carries for its excerpt; its count says how many there were.
	maxMarkerEvents = 3
)

// runData is what the reports read from one run directory. Every part but
// Dir may be missing: a run still running, killed, or not yet diagnosed.
type runData struct {
	Dir       string
	Meta      *rundir.Meta
	Summary   *metrics.Summary
	Diagnosis *stampede.Diagnosis
	Timeline  []stampede.Sample
	Evidence  []stampede.Evidence
	// Series are the per-bucket series computed from requests.csv (or from
	// Locust's history when there is no requests.csv).
	Series *runSeries
	// Notes say which files were missing or could not be read; the page shows
	// them, so a missing chart has a visible reason.
	Notes []string
}

// readRun reads the run directory dir. step is the bucket width of the
// series; 0 picks one from the run's length. Missing files are notes; a file
// that exists but cannot be read is an error naming it, except requests.csv
// and the timeline, whose torn last line the readers already forgive.
func readRun(dir string, step time.Duration) (*runData, error) {
	st, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("run directory %s does not exist", dir)
	}
	if err != nil {
		return nil, fmt.Errorf("run directory: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("run directory %s: not a directory", dir)
	}
	rd := &runData{Dir: dir}
	if m, err := rundir.ReadMeta(dir); err == nil {
		rd.Meta = m
	} else if errors.Is(err, fs.ErrNotExist) {
		rd.note("%s is missing: no run facts (target, load, start)", rundir.MetaFile)
	} else {
		return nil, err
	}
	if s, err := metrics.ReadSummary(filepath.Join(dir, rundir.SummaryFile)); err == nil {
		rd.Summary = s
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if d, err := readDiagnosis(dir); err == nil {
		rd.Diagnosis = d
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if rd.Timeline, err = rundir.ReadTimeline(dir); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, rundir.TimelineFile), err)
	}
	if len(rd.Timeline) == 0 {
		rd.note("%s is missing or empty: no server-side series", rundir.TimelineFile)
	}
	if rd.Evidence, err = rundir.ReadEvidence(dir); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, rundir.EvidenceFile), err)
	}

	start, end := rd.span()
	if step <= 0 {
		step = stepFor(end.Sub(start))
	}
	b := newSeriesBuilder(start, step)
	var m *metrics.Metrics // a summary made from requests.csv when summary.json is missing
	if rd.Summary == nil && !start.IsZero() {
		m = metrics.New(start)
	}
	// A run whose requests.csv is off or sampled counts its requests in
	// the Locust history only.
	if rm, merr := rd.requestsMode(); merr == nil && !rm.All() {
		if s, herr := seriesFromLocust(dir, start, step); herr == nil {
			rd.Series = s
			rd.note("requests.csv is %s in this run: the series come from locust_stats_history.csv (Locust's 10-second windows, no failure classes)", rm)
		} else {
			rd.note("requests.csv is %s in this run and %v: no per-second series", rm, herr)
		}
		if rd.Summary == nil {
			rd.note("%s is missing: no endpoint tables", rundir.SummaryFile)
		}
		return rd, nil
	}
	err = rundir.ReadRequests(dir, func(r *stampede.Result) error {
		if m == nil && rd.Summary == nil {
			m = metrics.New(r.Start)
		}
		if m != nil {
			m.Add(r)
		}
		b.add(r)
		return nil
	})
	switch {
	case err == nil:
		rd.Series = b.finish()
		if m != nil {
			m.Close()
			rd.Summary = m.Summary(time.Time{})
			rd.note("%s is missing: the endpoint tables were computed from %s", rundir.SummaryFile, rundir.RequestsFile)
		}
	case errors.Is(err, fs.ErrNotExist):
		if s, herr := seriesFromLocust(dir, start, step); herr == nil {
			rd.Series = s
			rd.note("%s is missing: the series come from locust_stats_history.csv (Locust's 10-second windows, no failure classes)", rundir.RequestsFile)
		} else {
			rd.note("%s is missing: no per-second series", rundir.RequestsFile)
		}
	default:
		return nil, err
	}
	if rd.Summary == nil {
		rd.note("%s is missing: no endpoint tables", rundir.SummaryFile)
	}
	return rd, nil
}

// requestsMode is what the run's requests.csv holds, as meta.json says;
// every request when meta.json is missing.
func (rd *runData) requestsMode() (rundir.RequestsMode, error) {
	if rd.Meta == nil {
		return rundir.RequestsMode{}, nil
	}
	return rd.Meta.RequestsMode()
}

func (rd *runData) note(format string, args ...any) {
	rd.Notes = append(rd.Notes, fmt.Sprintf(format, args...))
}

// span returns the run's start and end as the files know them before
// requests.csv is read: meta.json, then summary.json, widened to the
// timeline's samples (probes may start before the first request). Zero
// times when nothing says.
func (rd *runData) span() (start, end time.Time) {
	widen := func(t time.Time) {
		if t.IsZero() {
			return
		}
		if start.IsZero() || t.Before(start) {
			start = t
		}
		if end.IsZero() || t.After(end) {
			end = t
		}
	}
	if rd.Meta != nil {
		widen(rd.Meta.Start)
		widen(rd.Meta.End)
	}
	if rd.Summary != nil {
		widen(rd.Summary.Start)
		widen(rd.Summary.End)
	}
	for _, s := range rd.Timeline {
		widen(s.Time)
	}
	return start, end
}

// readDiagnosis reads diagnosis.json of dir.
func readDiagnosis(dir string) (*stampede.Diagnosis, error) {
	path := filepath.Join(dir, diagnosisFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d stampede.Diagnosis
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &d, nil
}

// stepFor returns the bucket width that keeps a run of length d within
// maxPoints buckets: one second up to maxPoints seconds, whole seconds above.
func stepFor(d time.Duration) time.Duration {
	if d <= maxPoints*time.Second {
		return time.Second
	}
	n := (d + maxPoints*time.Second - 1) / (maxPoints * time.Second)
	return n * time.Second
}

// The columns of the request counts of a bucket.
const (
	colRequests = iota
	colFailures
	col5xx
	col4xx
	colStatusOther
	colContent
	colTransport
	colTimeout
	numCols
)

// runSeries holds the per-bucket series of a run. Bucket i covers the
// requests that completed in [T0 + i*Step, T0 + (i+1)*Step).
type runSeries struct {
	T0   time.Time
	Step time.Duration
	// Counts are request counts per bucket, by column (colRequests ...).
	Counts [numCols][]float64
	// Rates, when set, replace Counts/Step for requests/s and failures/s
	// (Locust's history gives rates, not counts).
	Rates bool
	// P50, P95 and P99 are the latency percentiles of the requests completed
	// in each bucket, in milliseconds; NaN for a bucket without requests.
	P50, P95, P99 []float64
	// Users, when known from Locust's history, is the user count per bucket.
	Users []float64
}

// Len returns the number of buckets.
func (s *runSeries) Len() int { return len(s.Counts[colRequests]) }

// seriesBuilder turns requests into per-bucket series in one pass, in
// memory bounded by the number of buckets: latencies go into one small HDR
// histogram per open bucket, closed (percentiles computed, histogram reused)
// once the file has moved lateBuckets past it.
type seriesBuilder struct {
	s       runSeries
	open    map[int]*hdrhistogram.Histogram
	free    []*hdrhistogram.Histogram
	closed  int // buckets below closed have their percentiles
	newest  int
	started bool
}

func newSeriesBuilder(t0 time.Time, step time.Duration) *seriesBuilder {
	b := &seriesBuilder{open: map[int]*hdrhistogram.Histogram{}}
	b.s.Step = step
	if !t0.IsZero() {
		b.s.T0 = t0.Truncate(time.Second)
		b.started = true
	}
	return b
}

// add counts r in the bucket of its completion.
func (b *seriesBuilder) add(r *stampede.Result) {
	end := r.End()
	if !b.started {
		b.s.T0 = r.Start.Truncate(time.Second)
		b.started = true
	}
	i := max(0, int(end.Sub(b.s.T0)/b.s.Step))
	b.grow(i + 1)
	c := &b.s.Counts
	c[colRequests][i]++
	if r.Outcome != stampede.OK {
		c[colFailures][i]++
		c[failureColumn(r)][i]++
	}
	if i < b.closed {
		return // too late for its bucket's percentiles; see lateBuckets
	}
	h := b.open[i]
	if h == nil {
		if n := len(b.free); n > 0 {
			h, b.free = b.free[n-1], b.free[:n-1]
		} else {
			// Two significant digits: percentiles within 1%, and a
			// histogram small enough to scan in a few microseconds.
			h = hdrhistogram.New(1, int64(time.Hour/time.Microsecond), 2)
		}
		b.open[i] = h
	}
	_ = h.RecordValue(min(max(int64(r.Latency/time.Microsecond), 1), h.HighestTrackableValue()))
	if i > b.newest {
		b.newest = i
		for ; b.closed < b.newest-lateBuckets; b.closed++ {
			b.close(b.closed)
		}
	}
}

// failureColumn returns the column of a failed request's class.
func failureColumn(r *stampede.Result) int {
	switch r.Outcome {
	case stampede.FailContent:
		return colContent
	case stampede.FailTransport:
		return colTransport
	case stampede.FailTimeout:
		return colTimeout
	}
	switch {
	case r.Status >= 500:
		return col5xx
	case r.Status >= 400:
		return col4xx
	}
	return colStatusOther
}

func (b *seriesBuilder) grow(n int) {
	for len(b.s.P50) < n {
		for c := range b.s.Counts {
			b.s.Counts[c] = append(b.s.Counts[c], 0)
		}
		b.s.P50 = append(b.s.P50, math.NaN())
		b.s.P95 = append(b.s.P95, math.NaN())
		b.s.P99 = append(b.s.P99, math.NaN())
	}
}

var seriesQuantiles = []float64{50, 95, 99}

func (b *seriesBuilder) close(i int) {
	h := b.open[i]
	if h == nil {
		return
	}
	v := h.ValueAtPercentilesSlice(seriesQuantiles)
	b.s.P50[i] = float64(v[0]) / 1000
	b.s.P95[i] = float64(v[1]) / 1000
	b.s.P99[i] = float64(v[2]) / 1000
	h.Reset()
	b.free = append(b.free, h)
	delete(b.open, i)
}

func (b *seriesBuilder) finish() *runSeries {
	for i := range b.open {
		b.close(i)
	}
	return &b.s
}

// seriesFromLocust reads the Aggregated rows of locust_stats_history.csv of
// dir: a run imported from Locust has no requests.csv. Its rates and
// percentiles are Locust's own (10-second windows); failures have no class.
func seriesFromLocust(dir string, t0 time.Time, step time.Duration) (*runSeries, error) {
	path := filepath.Join(dir, "locust_stats_history.csv")
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h, err := locust.ReadHistory(f, path)
	if err != nil {
		return nil, err
	}
	qi := [3]int{-1, -1, -1}
	for i, q := range h.Quantiles {
		for j, want := range []float64{0.5, 0.95, 0.99} {
			if math.Abs(q-want) < 1e-9 {
				qi[j] = i
			}
		}
	}
	b := newSeriesBuilder(t0, step)
	s := &b.s
	s.Rates = true
	for _, r := range h.Rows {
		if r.Name != metrics.AggregatedName {
			continue
		}
		if !b.started {
			s.T0 = r.Time.Truncate(time.Second)
			b.started = true
		}
		i := max(0, int(r.Time.Sub(s.T0)/s.Step))
		b.grow(i + 1)
		for len(s.Users) <= i {
			s.Users = append(s.Users, math.NaN())
		}
		s.Counts[colRequests][i] = r.RPS
		s.Counts[colFailures][i] = r.FailuresPerSec
		s.Users[i] = float64(r.Users)
		for j, p := range []*[]float64{&s.P50, &s.P95, &s.P99} {
			if qi[j] >= 0 && qi[j] < len(r.Percentiles) {
				(*p)[i] = r.Percentiles[qi[j]]
			}
		}
	}
	if s.Len() == 0 {
		return nil, fmt.Errorf("%s: no Aggregated row", path)
	}
	return s, nil
}

// floats is a series for the page: JSON numbers rounded to three decimals,
// null for NaN (a bucket without a value, a gap in the line).
type floats []float64

// MarshalJSON writes the series compactly, NaN as null.
func (f floats) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 4*len(f)+2)
	b = append(b, '[')
	for i, v := range f {
		if i > 0 {
			b = append(b, ',')
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			b = append(b, "null"...)
			continue
		}
		b = strconv.AppendFloat(b, math.Round(v*1000)/1000, 'f', -1, 64)
	}
	return append(b, ']'), nil
}

// chartJSON is one chart of the page: series sharing the time axis of the
// page, on one or two y axes.
type chartJSON struct {
	ID     string       `json:"id"`
	Title  string       `json:"title"`
	Axes   [2]string    `json:"axes"` // labels of the left and right y axes
	Series []seriesJSON `json:"series"`
}

// seriesJSON is one line of a chart.
type seriesJSON struct {
	Label  string `json:"label"`
	Unit   string `json:"unit"`           // "/s", "ms", "s", "%", "" for counts
	Axis   int    `json:"axis"`           // 0 left, 1 right
	Color  string `json:"color"`          // CSS colour
	Fill   bool   `json:"fill,omitempty"` // fill under the line
	Dash   bool   `json:"dash,omitempty"`
	Span   bool   `json:"span,omitempty"` // draw across missing values (sampled series)
	Values floats `json:"values"`
}

// The colours of the failure classes and the latency percentiles, the same
// in every chart and table.
var classColors = map[int]string{
	col5xx:         "#d62728",
	col4xx:         "#ff7f0e",
	colStatusOther: "#bcbd22",
	colContent:     "#9467bd",
	colTransport:   "#8c564b",
	colTimeout:     "#e377c2",
}

var classLabels = map[int]string{
	col5xx:         "status 5xx",
	col4xx:         "status 4xx",
	colStatusOther: "status (other)",
	colContent:     "content (soft)",
	colTransport:   "transport",
	colTimeout:     "timeout",
}

// requestCharts returns the charts computed from requests: throughput with
// users, failures by class, latency percentiles. users, when not nil, is
// drawn on the throughput chart's right axis.
func requestCharts(s *runSeries, users floats) []chartJSON {
	if s == nil || s.Len() == 0 {
		return nil
	}
	rate := func(c int) floats {
		out := make(floats, s.Len())
		for i, v := range s.Counts[c] {
			if s.Rates {
				out[i] = v
			} else {
				out[i] = v / s.Step.Seconds()
			}
		}
		return out
	}
	tp := chartJSON{ID: "throughput", Title: "Throughput", Axes: [2]string{"requests/s", "users"}}
	tp.Series = append(tp.Series,
		seriesJSON{Label: "requests/s", Unit: "/s", Color: "#1f77b4", Fill: true, Values: rate(colRequests)},
		seriesJSON{Label: "failures/s", Unit: "/s", Color: "#d62728", Values: rate(colFailures)})
	if s.Users != nil {
		users = floats(s.Users)
	}
	if users != nil {
		tp.Series = append(tp.Series, seriesJSON{Label: "users", Axis: 1, Color: "#7f7f7f", Dash: true, Span: true, Values: users})
	}
	charts := []chartJSON{tp}

	fc := chartJSON{ID: "failures", Title: "Failures by class", Axes: [2]string{"failures/s", ""}}
	for c := col5xx; c < numCols; c++ {
		if anyPositive(s.Counts[c]) {
			fc.Series = append(fc.Series, seriesJSON{Label: classLabels[c] + "/s", Unit: "/s", Color: classColors[c], Fill: true, Values: rate(c)})
		}
	}
	if len(fc.Series) == 0 && s.Rates && anyPositive(s.Counts[colFailures]) {
		fc.Series = append(fc.Series, seriesJSON{Label: "failures/s", Unit: "/s", Color: "#d62728", Fill: true, Values: rate(colFailures)})
	}
	if len(fc.Series) > 0 {
		charts = append(charts, fc)
	}

	lc := chartJSON{ID: "latency", Title: "Latency", Axes: [2]string{"ms", ""}}
	lc.Series = []seriesJSON{
		{Label: "p50", Unit: "ms", Color: "#2ca02c", Values: floats(s.P50)},
		{Label: "p95", Unit: "ms", Color: "#ff7f0e", Values: floats(s.P95)},
		{Label: "p99", Unit: "ms", Color: "#d62728", Values: floats(s.P99)},
	}
	return append(charts, lc)
}

func anyPositive(v []float64) bool {
	for _, x := range v {
		if x > 0 {
			return true
		}
	}
	return false
}

// overlay is a timeline metric drawn on the page when the timeline has it.
type overlay struct {
	chart, source, key, label, unit string
	axis                            int
	color                           string
	// sum adds the samples of a bucket (deltas); otherwise the bucket shows
	// their maximum, so a one-sample spike survives a wide bucket.
	sum bool
	// bySegment adds, bucket by bucket, the series of each segment of a
	// split load (the samples' Info["segment"]): the users of a merged
	// run are those of every generator.
	bySegment bool
}

// overlayCharts are the server-side charts in page order, with their titles
// and axis labels.
var overlayCharts = []struct{ id, title, left, right string }{
	{"pool", "DB pool and locks", "clients / sessions", "seconds"},
	{"redis", "Redis", "clients", "rejected"},
	{"cpu", "CPU", "%", "lag ms"},
}

var overlays = []overlay{
	{chart: "throughput", source: "generator", key: "users", label: "users", color: "#7f7f7f", bySegment: true},
	{chart: "pool", source: "pgbouncer", key: "cl_waiting", label: "PgBouncer clients waiting (cl_waiting)", color: "#d62728"},
	{chart: "pool", source: "postgres", key: "wait:Lock", label: "DB sessions waiting on locks (wait:Lock)", color: "#9467bd"},
	{chart: "pool", source: "pgbouncer", key: "maxwait_s", label: "PgBouncer longest wait (maxwait_s)", unit: "s", axis: 1, color: "#ff7f0e"},
	{chart: "redis", source: "redis", key: "connected_clients", label: "Redis connected_clients", color: "#1f77b4"},
	{chart: "redis", source: "redis", key: "rejected_connections_delta", label: "Redis rejected connections", axis: 1, color: "#d62728", sum: true},
	{chart: "cpu", source: "host", key: "cpu_busy_pct", label: "host CPU busy (% of all cores)", unit: "%", color: "#1f77b4"},
	{chart: "cpu", source: "host", key: "proc_cpu_pct", label: "target process CPU (% of one core)", unit: "%", color: "#17becf"},
	// Who burns the CPU: the host probe's process groups.
	{chart: "cpu", source: "host", key: "cpu_pct:postgres", label: "PostgreSQL CPU (% of one core)", unit: "%", color: "#9467bd"},
	{chart: "cpu", source: "host", key: "cpu_pct:app", label: "app CPU (% of one core)", unit: "%", color: "#2ca02c"},
	{chart: "cpu", source: "host", key: "cpu_pct:redis", label: "Redis CPU (% of one core)", unit: "%", color: "#d62728"},
	{chart: "cpu", source: "generator", key: "cpu_pct", label: "stampede CPU (% of one core)", unit: "%", color: "#7f7f7f"},
	{chart: "cpu", source: "generator", key: "lag_ms", label: "stampede timer lag", unit: "ms", axis: 1, color: "#bcbd22", sum: false},
}

// grid is the time axis of the page: n buckets of step from t0.
type grid struct {
	t0   time.Time
	step time.Duration
	n    int
}

// index returns the bucket of t, or -1 when t is outside the grid.
func (g grid) index(t time.Time) int {
	if t.Before(g.t0) {
		return -1
	}
	i := int(t.Sub(g.t0) / g.step)
	if i >= g.n {
		return -1
	}
	return i
}

// timelineSeries buckets the timeline's samples of one overlay onto g;
// nil when the timeline has no such metric.
func timelineSeries(samples []stampede.Sample, o overlay, g grid) floats {
	if !o.bySegment {
		return bucketSeries(samples, o, g, nil)
	}
	segs := map[string]bool{}
	for _, s := range samples {
		if s.Source == o.source {
			segs[s.Info["segment"]] = true
		}
	}
	if len(segs) < 2 {
		return bucketSeries(samples, o, g, nil)
	}
	var out floats
	for seg := range segs {
		v := bucketSeries(samples, o, g, func(s *stampede.Sample) bool { return s.Info["segment"] == seg })
		if v == nil {
			continue
		}
		if out == nil {
			out = v
			continue
		}
		for i, x := range v {
			switch {
			case math.IsNaN(x):
			case math.IsNaN(out[i]):
				out[i] = x
			default:
				out[i] += x
			}
		}
	}
	return out
}

// bucketSeries buckets the samples of one overlay that keep says to keep
// (nil: all) onto g; nil when there are none.
func bucketSeries(samples []stampede.Sample, o overlay, g grid, keep func(*stampede.Sample) bool) floats {
	var out floats
	for k := range samples {
		s := &samples[k]
		if s.Source != o.source || s.Err != "" || (keep != nil && !keep(s)) {
			continue
		}
		v, ok := s.Values[o.key]
		if !ok {
			continue
		}
		i := g.index(s.Time)
		if i < 0 {
			continue
		}
		if out == nil {
			out = make(floats, g.n)
			for j := range out {
				out[j] = math.NaN()
			}
		}
		switch {
		case math.IsNaN(out[i]):
			out[i] = v
		case o.sum:
			out[i] += v
		default:
			out[i] = max(out[i], v)
		}
	}
	return out
}

// gridFor returns the grid covering the request series and the timeline.
// The request series fix its start when they have any bucket (their T0
// already covers the run's span); otherwise the timeline, or the evidence,
// sets it.
func gridFor(s *runSeries, samples []stampede.Sample, evidence []stampede.Evidence) grid {
	g := grid{step: time.Second}
	fixed := s != nil && s.Len() > 0
	if s != nil {
		g.t0, g.step, g.n = s.T0, s.Step, s.Len()
	}
	var last time.Time
	consider := func(t time.Time) {
		if t.IsZero() {
			return
		}
		if g.t0.IsZero() || (!fixed && t.Before(g.t0)) {
			g.t0 = t.Truncate(time.Second)
		}
		if t.After(last) {
			last = t
		}
	}
	for _, x := range samples {
		consider(x.Time)
	}
	if !fixed && len(samples) == 0 {
		// Nothing else gives a span: the evidence alone may.
		for _, e := range evidence {
			consider(e.Time)
		}
	}
	if !last.IsZero() && !g.t0.IsZero() {
		if n := int(last.Sub(g.t0)/g.step) + 1; n > g.n {
			g.n = n
		}
	}
	return g
}

// extend pads s with empty buckets up to n.
func (s *runSeries) extend(n int) {
	for s.Len() < n {
		for c := range s.Counts {
			s.Counts[c] = append(s.Counts[c], 0)
		}
		s.P50 = append(s.P50, math.NaN())
		s.P95 = append(s.P95, math.NaN())
		s.P99 = append(s.P99, math.NaN())
		if s.Users != nil {
			s.Users = append(s.Users, math.NaN())
		}
	}
}

// markerJSON is an evidence marker: the events of one evidence group that
// fell in one bucket of the time axis.
type markerJSON struct {
	T      float64       `json:"t"` // Unix seconds of the first event
	Group  int           `json:"g"` // index into groups
	Count  int           `json:"n"`
	Events []excerptJSON `json:"events"` // the first maxMarkerEvents events
}

// excerptJSON is the log excerpt of one evidence event.
type excerptJSON struct {
	Time      string   `json:"time"`
	Source    string   `json:"source"`
	Level     string   `json:"level,omitempty"`
	Message   string   `json:"message"`
	Exception string   `json:"exception,omitempty"`
	Stack     []string `json:"stack,omitempty"`
	Ref       string   `json:"ref,omitempty"`
}

// evidenceGroup is the evidence of one class and signature, for the legend
// and the evidence table.
type evidenceGroup struct {
	Key       string `json:"key"`
	Class     string `json:"class,omitempty"`
	Signature string `json:"signature,omitempty"`
	Sources   string `json:"sources"`
	Color     string `json:"color"`
	Count     int    `json:"count"`
	// Untimed counts events without a timestamp: in the table, not on the
	// time axis.
	Untimed     int         `json:"untimed,omitempty"`
	First, Last time.Time   `json:"-"`
	Example     excerptJSON `json:"example"`
}

// groupPalette colours evidence groups in order of first appearance.
var groupPalette = []string{"#d62728", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#1f77b4", "#2ca02c", "#7f7f7f"}

// evidenceMarkers groups the evidence by class and signature and buckets
// each group on g: the page draws one mark per group and bucket, its count
// and first events in the excerpt it opens.
func evidenceMarkers(evs []stampede.Evidence, g grid) ([]evidenceGroup, []markerJSON) {
	sorted := make([]stampede.Evidence, len(evs))
	copy(sorted, evs)
	// In time order, events without a time last: groups are numbered (and
	// coloured) in order of first appearance.
	sort.SliceStable(sorted, func(i, j int) bool {
		ti, tj := sorted[i].Time, sorted[j].Time
		if ti.IsZero() || tj.IsZero() {
			return !ti.IsZero() && tj.IsZero()
		}
		return ti.Before(tj)
	})
	var groups []evidenceGroup
	byKey := map[string]int{}
	sources := map[int]map[string]bool{}
	type mk struct{ g, bucket int }
	markerAt := map[mk]int{}
	var markers []markerJSON
	for i := range sorted {
		e := &sorted[i]
		key := groupKey(e)
		gi, ok := byKey[key]
		if !ok {
			gi = len(groups)
			byKey[key] = gi
			groups = append(groups, evidenceGroup{
				Key: key, Class: e.Class, Signature: e.Signature,
				Color: groupPalette[gi%len(groupPalette)], Example: excerpt(e),
			})
			sources[gi] = map[string]bool{}
		}
		grp := &groups[gi]
		grp.Count++
		sources[gi][e.Source] = true
		if e.Time.IsZero() {
			grp.Untimed++
			continue
		}
		if grp.First.IsZero() {
			grp.First = e.Time
		}
		grp.Last = e.Time
		bucket := g.index(e.Time)
		if g.n == 0 {
			bucket = -1
		}
		if bucket < 0 {
			continue // outside the charts' span: still in the table
		}
		k := mk{gi, bucket}
		mi, ok := markerAt[k]
		if !ok {
			mi = len(markers)
			markerAt[k] = mi
			markers = append(markers, markerJSON{T: unixSeconds(e.Time), Group: gi})
		}
		m := &markers[mi]
		m.Count++
		if len(m.Events) < maxMarkerEvents {
			m.Events = append(m.Events, excerpt(e))
		}
	}
	for gi := range groups {
		names := make([]string, 0, len(sources[gi]))
		for s := range sources[gi] {
			names = append(names, s)
		}
		sort.Strings(names)
		groups[gi].Sources = strings.Join(names, ", ")
	}
	return groups, markers
}

// groupKey names an evidence event's group: its class and signature, or
// its source when the catalog knew neither.
func groupKey(e *stampede.Evidence) string {
	switch {
	case e.Class != "" && e.Signature != "":
		return e.Class + " / " + e.Signature
	case e.Class != "":
		return e.Class
	case e.Signature != "":
		return e.Signature
	}
	return "unclassified (" + e.Source + ")"
}

func excerpt(e *stampede.Evidence) excerptJSON {
	x := excerptJSON{
		Source: e.Source, Level: e.Level, Ref: e.Ref,
		Message:   clipText(e.Message, maxExcerptText),
		Exception: clipText(e.Exception, maxExcerptText),
	}
	if !e.Time.IsZero() {
		x.Time = e.Time.UTC().Format("2006-01-02 15:04:05.000")
	}
	for i, f := range e.Stack {
		if i == maxExcerptFrames {
			x.Stack = append(x.Stack, fmt.Sprintf("… %d more frames in %s", len(e.Stack)-i, e.Ref))
			break
		}
		x.Stack = append(x.Stack, clipText(f, maxFrameText))
	}
	return x
}

// clipText cuts s to at most n bytes on a rune boundary, marking the cut.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

func unixSeconds(t time.Time) float64 {
	return float64(t.UnixMicro()) / 1e6
}
