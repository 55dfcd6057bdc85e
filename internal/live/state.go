package live

import (
	"encoding/json"
	"math"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/metrics"
	"github.com/stampede-load/stampede/internal/report"
	"github.com/stampede-load/stampede/internal/runner"
)

// Bounds of what the page keeps besides the per-second columns.
const (
	maxFailureGroups = 50   // failure groups shown, the most frequent
	maxLoadChanges   = 1000 // load changes kept (markers)
	maxMessage       = 1000 // characters of a log event's message kept
	maxException     = 500
	maxFrames        = 15
	maxFrame         = 300
	maxFindingRefs   = 3
	maxRefText       = 300
)

// overlays are the server-side readings charted, as report.html charts
// them; overlayCol names each one's column.
var overlays = report.Overlays()

func overlayCol(o report.Overlay) string { return "o:" + o.Source + ":" + o.Key }

// column is one per-second series: value i is second i of the run (from
// t0). dirty is the first value changed since the last push.
type column struct {
	vals  []float64
	dirty int
}

func (c *column) set(i int, v float64) {
	for len(c.vals) <= i {
		c.vals = append(c.vals, math.NaN())
		c.dirty = min(c.dirty, len(c.vals)-1)
	}
	if old := c.vals[i]; old == v || math.IsNaN(old) && math.IsNaN(v) {
		return // unchanged: nothing to push
	}
	c.vals[i] = v
	c.dirty = min(c.dirty, i)
}

// state is what the page shows; Server.mu guards it. Per-second columns
// are pushed from their first changed value on; the other parts whole
// (they are small), or from what was not yet pushed (log events, load
// changes).
type state struct {
	o      Options
	status string // "waiting", "running", "ended"
	start  time.Time
	t0     time.Time // start truncated to the second: second 0 of the columns
	dir    string

	cols     map[string]*column
	colOrder []string

	table     []EndpointRow
	total     *EndpointRow
	users     int
	inFlight  int
	dropped   int64
	lastDrops int64

	failures     []FailureGroup
	failuresMore int

	events      []EvidenceEvent // the latest, at least o.KeepEvidence of them
	evTotal     int64
	evSeq       int64
	pushedEv    int64
	evByClass   map[string]int64
	probes      []*ProbeStatus
	probeBySrc  map[string]*ProbeStatus
	loads       []runner.LoadChange
	pushedLoads int

	diag       *DiagnosisView
	diagVer    int
	pushedDiag int
	first      map[string]float64 // finding id → first held, seconds since start
	since      map[string]statusMark

	end *EndInfo

	pushedCharts string // the charts last pushed, encoded

	seq int64
}

// statusMark is when a finding's present status first held.
type statusMark struct {
	status string
	at     float64
}

func (st *state) init(o Options) {
	st.o = o
	st.status = "waiting"
	st.dir = o.Dir
	st.cols = map[string]*column{}
	st.evByClass = map[string]int64{}
	st.probeBySrc = map[string]*ProbeStatus{}
	st.first = map[string]float64{}
	st.since = map[string]statusMark{}
}

// started records the run's start, once.
func (st *state) started(start time.Time) {
	if !st.start.IsZero() || start.IsZero() {
		return
	}
	st.start, st.t0 = start, start.Truncate(time.Second)
	if st.status == "waiting" {
		st.status = "running"
	}
	if st.dir == "" {
		st.dir = runner.DefaultDir(start)
	}
}

func (st *state) col(name string) *column {
	c := st.cols[name]
	if c == nil {
		c = &column{dirty: math.MaxInt}
		st.cols[name] = c
		st.colOrder = append(st.colOrder, name)
	}
	return c
}

// second returns the column index of t; -1 before the start.
func (st *state) second(t time.Time) int {
	if st.t0.IsZero() || t.Before(st.t0) {
		return -1
	}
	return int(t.Sub(st.t0) / time.Second)
}

// sample charts a probe reading and counts it for its probe.
func (st *state) sample(s *stampede.Sample) {
	if s.Source == "control" { // the load changes' markers: LoadChanged has them
		return
	}
	p := st.probeBySrc[s.Source]
	if p == nil {
		p = &ProbeStatus{Source: s.Source}
		st.probeBySrc[s.Source] = p
		st.probes = append(st.probes, p)
	}
	p.Samples++
	p.Last = unix(s.Time)
	if s.Err != "" {
		p.Errors++
		p.LastError = clip(s.Err, maxRefText)
		return
	}
	i := st.second(s.Time)
	if i < 0 {
		return
	}
	for _, o := range overlays {
		if o.Source != s.Source {
			continue
		}
		v, ok := s.Values[o.Key]
		if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		c := st.col(overlayCol(o))
		switch old := at(c.vals, i); {
		case math.IsNaN(old):
			c.set(i, v)
		case o.Sum:
			c.set(i, old+v)
		default:
			c.set(i, max(old, v))
		}
	}
}

func at(v []float64, i int) float64 {
	if i < len(v) {
		return v[i]
	}
	return math.NaN()
}

// evidence keeps a log event, the latest KeepEvidence of them, and counts
// it by class.
func (st *state) evidence(e *stampede.Evidence) {
	st.evTotal++
	st.evSeq++
	class := e.Class
	if class == "" {
		class = "unclassified"
	}
	st.evByClass[class]++
	ev := EvidenceEvent{
		Seq: st.evSeq, T: unix(e.Time), Source: e.Source, Level: e.Level, Class: e.Class, Signature: e.Signature,
		Message: clip(e.Message, maxMessage), Exception: clip(e.Exception, maxException), Ref: e.Ref,
	}
	for i, f := range e.Stack {
		if i == maxFrames {
			ev.Stack = append(ev.Stack, "… "+strconv.Itoa(len(e.Stack)-maxFrames)+" more frames")
			break
		}
		ev.Stack = append(ev.Stack, clip(f, maxFrame))
	}
	st.events = append(st.events, ev)
	// Compacted to the latest KeepEvidence once twice that many are
	// held: a flood of log lines costs O(1) per line.
	if keep := st.o.KeepEvidence; len(st.events) >= 2*keep {
		st.events = append(st.events[:0], st.events[len(st.events)-keep:]...)
	}
}

// loadChanged keeps a load change (the plan's first).
func (st *state) loadChanged(c runner.LoadChange) {
	if c.By == "plan" {
		st.started(c.Time)
	}
	if len(st.loads) == maxLoadChanges {
		return
	}
	st.loads = append(st.loads, c)
}

// setFailures keeps the most frequent failure groups.
func (st *state) setFailures(fs []metrics.Failure) {
	groups := make([]FailureGroup, 0, min(len(fs), maxFailureGroups))
	order := make([]int, len(fs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return fs[order[a]].Occurrences > fs[order[b]].Occurrences })
	for _, i := range order[:min(len(order), maxFailureGroups)] {
		f := &fs[i]
		groups = append(groups, FailureGroup{Method: f.Method, Name: f.Name, Reason: f.Reason, Outcome: f.Outcome.String(),
			Occurrences: f.Occurrences, First: unix(f.First), Last: unix(f.Last)})
	}
	st.failures, st.failuresMore = groups, max(0, len(fs)-maxFailureGroups)
}

// setDiagnosis shows d, made over the records up to at seconds into the
// run in took, keeping when each finding first held.
func (st *state) setDiagnosis(d *stampede.Diagnosis, errText string, at float64, took time.Duration, final bool) {
	v := &DiagnosisView{At: at, TookMS: float64(took.Microseconds()) / 1000, Final: final, Error: errText}
	if d == nil {
		if st.diag != nil { // keep the last findings, with the error
			v.Findings, v.Verdict = st.diag.Findings, st.diag.Verdict
			for i := range v.Findings {
				v.Findings[i].Current = false
			}
		}
		st.diag, st.diagVer = v, st.diagVer+1
		return
	}
	v.Verdict = d.Verdict
	held := map[string]bool{}
	for _, f := range d.Findings {
		held[f.ID] = true
		if _, ok := st.first[f.ID]; !ok {
			st.first[f.ID] = at
		}
		if m, ok := st.since[f.ID]; !ok || m.status != f.Status {
			st.since[f.ID] = statusMark{status: f.Status, at: at}
		}
		v.Findings = append(v.Findings, findingViewOf(f, st.first[f.ID], st.since[f.ID].at))
	}
	// A finding that held before and no longer does stays, marked.
	if st.diag != nil {
		for _, f := range st.diag.Findings {
			if !held[f.ID] {
				f.Current = false
				v.Findings = append(v.Findings, f)
				held[f.ID] = true
			}
		}
	}
	for _, t := range d.Thresholds {
		if !t.Pass {
			v.FailedThresholds = append(v.FailedThresholds, t.Threshold)
		}
	}
	st.diag, st.diagVer = v, st.diagVer+1
}

func findingViewOf(f stampede.Finding, first, since float64) FindingView {
	v := FindingView{ID: f.ID, Title: f.Title, Status: f.Status, Confidence: f.Confidence, CausedBy: f.CausedBy,
		Failures: f.Explains.Failures, Slow: f.Explains.Slow, Endpoints: f.Explains.Endpoints, Latency: f.Explains.Latency,
		Fix: f.Fix, FirstSeen: first, StatusSince: since, Current: true}
	for _, e := range f.Evidence {
		if len(v.Evidence) == maxFindingRefs {
			break
		}
		v.Evidence = append(v.Evidence, EvidenceRef{Source: e.Source, T: unix(e.Time), Text: clip(e.Text, maxRefText), Ref: e.Ref})
	}
	return v
}

// charts returns the charts of the columns there are, as report.html
// draws them.
func (st *state) buildCharts() []Chart {
	has := func(name string) bool { return st.cols[name] != nil }
	tp := Chart{ID: "throughput", Title: "Throughput", Axes: [2]string{"requests/s", "users"}, Series: []Series{
		{Col: "requests", Label: "requests/s", Unit: "/s", Color: "#1f77b4", Fill: true},
		{Col: "failures", Label: "failures/s", Unit: "/s", Color: "#d62728"},
	}}
	if has("dropped") && anyPositive(st.cols["dropped"].vals) {
		tp.Series = append(tp.Series, Series{Col: "dropped", Label: "dropped/s", Unit: "/s", Color: "#bcbd22"})
	}
	charts := []Chart{tp}
	fc := Chart{ID: "failures", Title: "Failures by class", Axes: [2]string{"failures/s", ""}}
	for _, c := range failureClasses {
		name := "f:" + c.Key
		if has(name) && anyPositive(st.cols[name].vals) {
			fc.Series = append(fc.Series, Series{Col: name, Label: c.Label + "/s", Unit: "/s", Color: c.Color, Fill: true})
		}
	}
	if len(fc.Series) > 0 {
		charts = append(charts, fc)
	}
	charts = append(charts, Chart{ID: "latency", Title: "Latency", Axes: [2]string{"ms", ""}, Series: []Series{
		{Col: "p50", Label: "p50", Unit: "ms", Color: "#2ca02c"},
		{Col: "p95", Label: "p95", Unit: "ms", Color: "#ff7f0e"},
		{Col: "p99", Label: "p99", Unit: "ms", Color: "#d62728"},
	}})
	byChart := map[string][]Series{}
	for _, o := range overlays {
		if !has(overlayCol(o)) {
			continue
		}
		s := Series{Col: overlayCol(o), Label: o.Label, Unit: o.Unit, Axis: o.Axis, Color: o.Color, Span: true}
		if o.Chart == "throughput" { // the users, on the right axis as report.html draws them
			s.Dash, s.Axis = true, 1
			charts[0].Series = append(charts[0].Series, s)
			continue
		}
		byChart[o.Chart] = append(byChart[o.Chart], s)
	}
	for _, c := range report.OverlayCharts() {
		if len(byChart[c.ID]) > 0 {
			charts = append(charts, Chart{ID: c.ID, Title: c.Title, Axes: [2]string{c.Left, c.Right}, Series: byChart[c.ID]})
		}
	}
	return charts
}

func anyPositive(v []float64) bool {
	for _, x := range v {
		if x > 0 {
			return true
		}
	}
	return false
}

// message returns what the page is sent: everything (full, the snapshot
// a page gets first) or what changed since the last push, and marks it
// pushed. cur is the load in force and model the run's model, read from
// the Control before the lock was taken.
func (st *state) message(full bool, now time.Time, cur runner.LoadChange, model string) *Message {
	m := &Message{Seq: st.seq, Snapshot: full, Status: st.status, Version: stampede.Version}
	if !st.start.IsZero() {
		m.T0 = unix(st.t0)
		m.Start = unix(st.start)
		m.Elapsed = math.Round(now.Sub(st.start).Seconds()*10) / 10
		if st.end != nil {
			m.Elapsed = st.end.Elapsed
		}
	}
	if full {
		r := RunView{RunFacts: st.o.Run, Dir: st.dir, Duration: st.o.Run.Duration.Seconds()}
		if st.dir != "" {
			r.ID = filepath.Base(filepath.Clean(st.dir))
		}
		m.Run = &r
	}
	// Columns: from their first change on, or whole.
	m.Columns = map[string]ColumnDelta{}
	for _, name := range st.colOrder {
		c := st.cols[name]
		m.N = max(m.N, len(c.vals))
		from := c.dirty
		if full {
			from = 0
		}
		if from < len(c.vals) {
			m.Columns[name] = ColumnDelta{From: from, Values: floats(c.vals[from:])}
		}
		if !full {
			c.dirty = math.MaxInt
		}
	}
	charts := st.buildCharts()
	sig, _ := json.Marshal(charts)
	if full || string(sig) != st.pushedCharts {
		m.Charts = charts
	}
	m.Endpoints, m.Total = st.table, st.total
	if m.Endpoints == nil {
		m.Endpoints = []EndpointRow{}
	}
	m.Now = &NowView{Users: st.users, InFlight: st.inFlight, Dropped: st.dropped}
	m.Failures = &FailuresView{Groups: st.failures, More: st.failuresMore}
	if m.Failures.Groups == nil {
		m.Failures.Groups = []FailureGroup{}
	}
	ev := &EvidenceView{Total: st.evTotal, ByClass: st.evByClass, Keep: st.o.KeepEvidence, Events: []EvidenceEvent{}}
	for _, e := range st.events[max(0, len(st.events)-st.o.KeepEvidence):] { // the latest Keep
		if full || e.Seq > st.pushedEv {
			ev.Events = append(ev.Events, e)
		}
	}
	m.Evidence = ev
	m.Probes = make([]ProbeStatus, len(st.probes))
	for i, p := range st.probes {
		m.Probes[i] = *p
	}
	if model == "" {
		model = st.o.Run.Model
	}
	m.Load = &LoadView{Model: model, Controls: st.o.controls(), ReadOnly: st.o.ReadOnly, TokenRequired: st.o.Token != "",
		Observer: st.o.Run.Observer}
	if cur != (runner.LoadChange{}) {
		v := loadChangeView(cur)
		m.Load.Current = &v
	} else if n := len(st.loads); n > 0 { // no Control: the plan's load
		v := loadChangeView(st.loads[n-1])
		m.Load.Current = &v
	}
	from := st.pushedLoads
	if full {
		from = 0
	}
	m.LoadChanges = []LoadChangeView{}
	for _, c := range st.loads[min(from, len(st.loads)):] {
		m.LoadChanges = append(m.LoadChanges, loadChangeView(c))
	}
	if st.diag != nil && (full || st.diagVer != st.pushedDiag) {
		m.Diagnosis = st.diag
	}
	m.End = st.end
	if !full {
		st.pushedEv = st.evSeq
		st.pushedLoads = len(st.loads)
		st.pushedDiag = st.diagVer
		st.pushedCharts = string(sig)
	}
	return m
}

// unix returns t in Unix seconds with millisecond precision; 0 for zero.
func unix(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return math.Round(float64(t.UnixNano())/1e6) / 1e3
}

// ms returns d in milliseconds with microsecond precision, as summary.json
// writes latencies.
func ms(d time.Duration) float64 {
	return float64(d.Round(time.Microsecond)) / 1e6
}

// clip shortens s to n bytes at most, on a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return strings.TrimSpace(s[:cut]) + " …"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }
