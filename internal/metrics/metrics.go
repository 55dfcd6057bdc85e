// Package metrics accumulates request results into per-endpoint HDR
// histograms, a per-second history, failure groups and the run's summary.
//
// One goroutine, the recorder, owns a Metrics: it calls Add for every
// result, Tick once a second, and Summary, Endpoints, Failures and Close
// whenever it needs them; none of these lock. Snapshot alone may be called
// from any goroutine, for live progress.
package metrics

import (
	"cmp"
	"slices"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/stampede-load/stampede"
)

// AggregatedName is the Name of the total over every endpoint, as Locust
// names it.
const AggregatedName = "Aggregated"

type key struct{ method, name string }

type failKey struct{ method, name, reason string }

// Failure is a group of failed requests sharing method, name and reason.
type Failure struct {
	Method string
	Name   string
	Reason string
	// Outcome is the outcome of the group's first failure.
	Outcome stampede.Outcome
	// Occurrences counts the group's failures.
	Occurrences int64
	// First and Last are the start of the first failure and the end of the
	// last.
	First, Last time.Time
}

// Metrics accumulates the results of one run. Create it with New.
type Metrics struct {
	start     time.Time
	byKey     map[key]*Endpoint
	sorted    []*Endpoint // by name, then method; nil when an endpoint was added since
	total     *Endpoint
	failures  map[failKey]*Failure
	scratch   *hdrhistogram.Histogram // merges a window's slots
	ticks     int                     // seconds closed so far
	tickTimes [window]time.Time       // when each of the last seconds closed
	lastTick  time.Time
	users     int
	usersPeak int
	dropped   int64
	closed    bool
	end       time.Time

	progress atomic.Pointer[Progress] // published by Tick and Close for Snapshot
}

// New returns an empty Metrics for a run that started at start.
func New(start time.Time) *Metrics {
	return &Metrics{
		start:    start,
		byKey:    make(map[key]*Endpoint),
		total:    newEndpoint("", AggregatedName),
		failures: make(map[failKey]*Failure),
		scratch:  NewHistogram(),
		lastTick: start,
	}
}

// Start returns the start of the run.
func (m *Metrics) Start() time.Time { return m.start }

// Add records one result. It runs on the recorder goroutine, takes no lock
// and allocates nothing per call once the result's endpoint (and, for a
// failure, its failure group) has been seen.
func (m *Metrics) Add(r *stampede.Result) {
	o := int(r.Outcome)
	if o >= NumOutcomes {
		o = int(stampede.FailStatus) // an unknown outcome is still a failure
	}
	e := m.byKey[key{r.Method, r.Name}]
	if e == nil {
		e = newEndpoint(r.Method, r.Name)
		m.byKey[key{r.Method, r.Name}] = e
		m.sorted = nil
	}
	ci := coarseIndex(r.Latency)
	e.add(r, o, ci)
	m.total.add(r, o, ci)
	if o != int(stampede.OK) {
		m.addFailure(r)
	}
}

func (m *Metrics) addFailure(r *stampede.Result) {
	f := m.failures[failKey{r.Method, r.Name, r.Reason}]
	if f == nil {
		f = &Failure{Method: r.Method, Name: r.Name, Reason: r.Reason, Outcome: r.Outcome, First: r.Start}
		m.failures[failKey{r.Method, r.Name, r.Reason}] = f
	}
	f.Occurrences++
	if r.Start.Before(f.First) {
		f.First = r.Start
	}
	if end := r.End(); end.After(f.Last) {
		f.Last = end
	}
}

// SetDropped sets the number of starts dropped so far (open model: arrivals
// that found no free user), for the summary.
func (m *Metrics) SetDropped(n int64) { m.dropped = n }

// Endpoints returns the endpoints seen so far, sorted by name then method
// as Locust sorts its rows. The slice is shared: do not modify it.
func (m *Metrics) Endpoints() []*Endpoint {
	if m.sorted == nil {
		m.sorted = make([]*Endpoint, 0, len(m.byKey))
		for _, e := range m.byKey {
			m.sorted = append(m.sorted, e)
		}
		slices.SortFunc(m.sorted, func(a, b *Endpoint) int {
			return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Method, b.Method))
		})
	}
	return m.sorted
}

// Endpoint returns the endpoint of method and name, or nil if none was seen.
func (m *Metrics) Endpoint(method, name string) *Endpoint { return m.byKey[key{method, name}] }

// Total returns the Aggregated total over every endpoint.
func (m *Metrics) Total() *Endpoint { return m.total }

// Failures returns the failure groups sorted by method, name and reason.
func (m *Metrics) Failures() []Failure {
	out := make([]Failure, 0, len(m.failures))
	for _, f := range m.failures {
		out = append(out, *f)
	}
	slices.SortFunc(out, func(a, b Failure) int {
		return cmp.Or(cmp.Compare(a.Method, b.Method), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Reason, b.Reason))
	})
	return out
}

// Users returns the number of users given to the last Tick.
func (m *Metrics) Users() int { return m.users }

// UsersPeak returns the largest number of users given to Tick.
func (m *Metrics) UsersPeak() int { return m.usersPeak }

// Close ends the run: a Summary made afterwards is not partial and ends at
// the last Tick or the last response, whichever is later. Add and Tick must
// not be called after Close.
func (m *Metrics) Close() {
	if m.closed {
		return
	}
	m.closed = true
	m.end = m.lastTick
	if m.total.Last.After(m.end) {
		m.end = m.total.Last
	}
	if p := m.progress.Load(); p != nil {
		done := *p
		done.Done = true
		m.progress.Store(&done)
	} else {
		m.progress.Store(&Progress{Time: m.end, Done: true})
	}
}
