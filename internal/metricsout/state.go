package metricsout

import (
	"slices"
	"strings"
	"sync"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/runner"
	"go.opentelemetry.io/otel/attribute"
)

// maxLogSeries bounds the (log, signature, class) series: the logs are the
// scenario's and the signatures the catalog's, so it is never reached but
// by a bug.
const maxLogSeries = 1000

// generatorSource is the source of the generator's own samples
// (load.SelfWatch); controlSource the one of the load-change markers,
// which LoadChanged already gives.
const (
	generatorSource = "generator"
	controlSource   = "control"
)

// state holds the gauges: the engine's counts, the probe readings, the
// load in force, the findings. The observer calls write it from their
// goroutines; the Prometheus collector and the OTLP callbacks read it at
// each scrape or push.
type state struct {
	mu sync.Mutex

	users, inFlight int
	dropped         int64
	start           time.Time
	finished        bool

	gen struct {
		ok                      bool
		cpuPct, lagS, saturated float64
	}

	maxProbes    int
	probeSeries  int // over every source
	probeDropped int64
	sources      map[sourceID]*source

	load        runner.LoadChange
	loadChanges map[string]int64 // by "plan", "ui", "api"

	findings []finding

	logs map[[3]string]bool
}

// sourceID names one source of readings: a probe ("pgbouncer") and, for
// the readings of a Prometheus exporter, its host:port (info.instance);
// empty for a probe of stampede's own.
type sourceID struct{ source, exporter string }

type source struct {
	up   bool
	keys map[string]*reading
	set  attribute.Set // the OTLP attributes of stampede.probe.up
}

// reading is the last value of one probe key.
type reading struct {
	key   string // valid UTF-8
	value float64
	seen  bool          // in the source's last good sample
	set   attribute.Set // its OTLP attributes, made once
}

type finding struct {
	id, status string
	confidence float64
	set        attribute.Set
}

func newState(maxProbes int) *state {
	return &state{maxProbes: maxProbes, sources: map[sourceID]*source{}, loadChanges: map[string]int64{}, logs: map[[3]string]bool{}}
}

func (st *state) second(users, inFlight int, dropped int64, start time.Time) {
	st.mu.Lock()
	st.users, st.inFlight, st.dropped, st.start = users, inFlight, dropped, start
	st.mu.Unlock()
}

// end marks the run over: no user left, nothing in flight.
func (st *state) end(dropped int64) {
	st.mu.Lock()
	st.users, st.inFlight, st.finished = 0, 0, true
	st.dropped = max(st.dropped, dropped)
	st.mu.Unlock()
}

// sample keeps the numeric readings of s. A key the source had in its
// previous sample but not in this one is no reading any more (a lock tag
// nobody waits on, a CPU group with no process): its series goes. A sample
// with an error keeps the last readings and marks the source down.
func (st *state) sample(s *stampede.Sample) {
	if s.Source == controlSource {
		return
	}
	id := sourceID{source: validUTF8(s.Source), exporter: validUTF8(s.Info["instance"])}
	st.mu.Lock()
	defer st.mu.Unlock()
	src := st.sources[id]
	if src == nil {
		src = &source{keys: map[string]*reading{}, set: attribute.NewSet(probeSourceKey.String(id.source), probeExporterKey.String(id.exporter))}
		st.sources[id] = src
	}
	src.up = s.Err == ""
	if !src.up {
		return
	}
	if s.Source == generatorSource {
		st.gen.ok = true
		st.gen.cpuPct = s.Values["cpu_pct"]
		st.gen.lagS = s.Values["lag_ms"] / 1000
		st.gen.saturated = s.Values["saturated"]
	}
	for _, r := range src.keys {
		r.seen = false
	}
	for k, v := range s.Values {
		r := src.keys[k]
		if r == nil {
			if st.probeSeries >= st.maxProbes {
				st.probeDropped++
				continue
			}
			key := validUTF8(k)
			r = &reading{key: key, set: attribute.NewSet(probeSourceKey.String(id.source), probeExporterKey.String(id.exporter), probeKeyKey.String(key))}
			src.keys[k] = r
			st.probeSeries++
		}
		r.value, r.seen = v, true
	}
	for k, r := range src.keys {
		if !r.seen {
			delete(src.keys, k)
			st.probeSeries--
		}
	}
}

func (st *state) loadChanged(c runner.LoadChange) {
	st.mu.Lock()
	defer st.mu.Unlock()
	// Zero fields keep their value.
	if c.Users != 0 {
		st.load.Users = c.Users
	}
	if c.SpawnRate != 0 {
		st.load.SpawnRate = c.SpawnRate
	}
	if c.ArrivalRate != 0 {
		st.load.ArrivalRate = c.ArrivalRate
	}
	if c.MaxUsers != 0 {
		st.load.MaxUsers = c.MaxUsers
	}
	by := c.By
	switch by {
	case "plan", "ui", "api":
	default:
		by = "other" // a bounded label, whatever a caller says
	}
	st.loadChanges[by]++
	if st.start.IsZero() && by == "plan" {
		st.start = c.Time
	}
}

// setFindings replaces the findings, ordered by id.
func (st *state) setFindings(fs []stampede.Finding) {
	out := make([]finding, 0, len(fs))
	for _, f := range fs {
		id, status := validUTF8(f.ID), validUTF8(f.Status)
		out = append(out, finding{id: id, status: status, confidence: f.Confidence,
			set: attribute.NewSet(findingIDKey.String(id), findingStatusKey.String(status))})
	}
	slices.SortFunc(out, func(a, b finding) int { return strings.Compare(a.id, b.id) })
	// One series per id: a diagnosis lists each id once, but the exposition
	// would refuse two series with the same labels.
	out = slices.CompactFunc(out, func(a, b finding) bool { return a.id == b.id && a.status == b.status })
	st.mu.Lock()
	st.findings = out
	st.mu.Unlock()
}

// logSeries reports whether the (log, signature, class) series may count:
// it is known, or there is room for it.
func (st *state) logSeries(log, sig, class string) bool {
	k := [3]string{log, sig, class}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.logs[k] {
		return true
	}
	if len(st.logs) >= maxLogSeries {
		return false
	}
	st.logs[k] = true
	return true
}
