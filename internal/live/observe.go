package live

import (
	"math"
	"path/filepath"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/metrics"
	"github.com/stampede-load/stampede/internal/rundir"
	"github.com/stampede-load/stampede/internal/runner"
)

// Result counts one request into its second and its endpoint; it runs on
// the runner's recorder goroutine and takes no lock.
func (s *Server) Result(r *stampede.Result) {
	if s.rec.t0.IsZero() {
		s.mu.Lock()
		s.st.started(r.Start) // only when LoadChanged did not say
		s.rec.t0 = s.st.t0
		s.mu.Unlock()
	}
	s.rec.add(r)
}

// Second publishes the second just closed: the request columns up to it,
// the endpoint table, the engine's counts and the failure groups.
func (s *Server) Second(v *runner.SecondView) {
	s.mu.Lock()
	s.st.started(v.Start)
	s.mu.Unlock()
	if s.rec.t0.IsZero() {
		s.mu.Lock()
		s.rec.t0 = s.st.t0
		s.mu.Unlock()
	}
	// The second of v.Time is still open: publish those before it.
	upto := max(0, int(v.Time.Sub(s.rec.t0)/time.Second))
	s.rec.grow(upto)
	pfirst := s.rec.percentiles(upto, false)
	rows := s.tableRows(v.Second)
	s.mu.Lock()
	s.publish(upto, pfirst)
	s.st.table, s.st.total = rows[1:], &rows[0]
	s.st.users, s.st.inFlight, s.st.dropped = v.Users, v.InFlight, v.Dropped
	if i := upto - 1; i >= 0 {
		s.st.col("dropped").set(i, float64(v.Dropped-s.st.lastDrops))
	}
	s.st.lastDrops = v.Dropped
	s.st.setFailures(v.Failures)
	s.mu.Unlock()
	s.push()
}

// publish copies the recorder's columns changed since the last publish,
// up to second upto, into the page's state. pfirst is the first second
// whose percentiles changed. Server.mu is held.
func (s *Server) publish(upto, pfirst int) {
	r := &s.rec
	from := min(r.dirty, pfirst, upto)
	for c, name := range reqCols {
		col := s.st.col(name)
		for i := min(from, len(col.vals)); i < upto; i++ {
			col.set(i, r.counts[c][i])
		}
	}
	for name, vals := range map[string][]float64{"p50": r.p50, "p95": r.p95, "p99": r.p99} {
		col := s.st.col(name)
		for i := min(from, len(col.vals)); i < upto; i++ {
			col.set(i, vals[i])
		}
	}
	for k, e := range r.order {
		key := epKeyName(k)
		req, fail := s.st.col(key+":requests"), s.st.col(key+":failures")
		for i := min(from, len(req.vals)); i < upto; i++ {
			req.set(i, at0(e.req, i))
			fail.set(i, at0(e.fail, i))
		}
	}
	// A request of the open second was counted already: it is published
	// with that second.
	r.dirty = math.MaxInt
	if len(r.p50) > upto {
		r.dirty = upto
	}
}

// reqCols name the recorder's count columns, in their order.
var reqCols = func() []string {
	names := []string{"requests", "failures"}
	for _, c := range failureClasses {
		names = append(names, "f:"+c.Key)
	}
	return names
}()

func at0(v []float64, i int) float64 {
	if i < len(v) {
		return v[i]
	}
	return 0
}

func epKeyName(k int) string { return "e" + itoa(k) }

// tableRows returns the Aggregated row then a row per endpoint, with the
// current rates of the second's history rows. It runs on the recorder
// goroutine.
func (s *Server) tableRows(sec *metrics.Second) []EndpointRow {
	rate := map[epKey]*metrics.Row{}
	if sec != nil {
		for i := range sec.Endpoints {
			rate[epKey{sec.Endpoints[i].Method, sec.Endpoints[i].Name}] = &sec.Endpoints[i]
		}
	}
	row := func(e *endpoint, key string, h *metrics.Row) EndpointRow {
		out := EndpointRow{Key: key, Method: e.method, Name: e.name, Requests: e.requests, Failures: e.failures,
			Median: ms(e.percentile(0.50)), P95: ms(e.percentile(0.95)), P99: ms(e.percentile(0.99)), Max: ms(e.max)}
		if e.requests > 0 {
			out.FailureRate = float64(e.failures) / float64(e.requests)
			out.Avg = ms(e.sum / time.Duration(e.requests))
		}
		if h != nil {
			out.RPS, out.FailuresPerS = round3(h.RPS), round3(h.FailuresPerSec)
		}
		return out
	}
	var total *metrics.Row
	if sec != nil {
		total = &sec.Total
	}
	rows := []EndpointRow{row(&s.rec.total, "", total)}
	for k, e := range s.rec.order {
		rows = append(rows, row(e, epKeyName(k), rate[epKey{e.method, e.name}]))
	}
	sortRows(rows[1:])
	return rows
}

// Sample charts a probe reading (masked by the run).
func (s *Server) Sample(smp stampede.Sample) {
	s.mu.Lock()
	s.st.sample(&smp)
	s.mu.Unlock()
}

// Evidence keeps a log event (masked by the run).
func (s *Server) Evidence(e stampede.Evidence) {
	s.mu.Lock()
	s.st.evidence(&e)
	s.mu.Unlock()
}

// LoadChanged keeps a change of the load, a marker on every chart. It must
// not call the Control (the Control is locked while it runs).
func (s *Server) LoadChanged(c runner.LoadChange) {
	s.mu.Lock()
	s.st.loadChanged(c)
	s.mu.Unlock()
	s.push()
}

// End shows the run's end: the table of summary.json, the final diagnosis,
// how the run ended and the link to report.html. It runs once the
// recorder has stopped.
func (s *Server) End(res *runner.Result) {
	// The recorder is done: its last seconds are published whole.
	upto := len(s.rec.p50)
	pfirst := s.rec.percentiles(upto, true)
	var meta *rundir.Meta
	if res != nil {
		meta, _ = rundir.ReadMeta(res.Dir)
	}
	s.mu.Lock()
	s.publish(upto, pfirst)
	end := &EndInfo{}
	if res != nil {
		s.st.dir = res.Dir
		end.Dir, end.Partial = res.Dir, res.Partial
		if sum := res.Summary; sum != nil {
			s.st.table, s.st.total = summaryRows(sum, s.rec.order)
			end.Elapsed = math.Round(sum.Duration.Seconds()*10) / 10
		}
		if res.ReportErr != nil {
			end.ReportError = res.ReportErr.Error()
		} else if _, err := osStat(filepath.Join(res.Dir, reportFile)); err == nil {
			end.Report = reportFile
		}
		end.FailedThresholds = res.FailedThresholds()
		switch {
		case res.Diagnosis != nil:
			s.st.setDiagnosis(res.Diagnosis, "", end.Elapsed, 0, true)
		case res.DiagnosisErr != nil:
			s.st.setDiagnosis(nil, res.DiagnosisErr.Error(), end.Elapsed, 0, true)
		}
	}
	if meta != nil {
		end.Reason = meta.EndReason
	}
	s.st.users, s.st.inFlight = 0, 0
	s.st.end, s.st.status = end, "ended"
	s.mu.Unlock()
	s.endMu.Do(func() { close(s.ended) })
	s.push()
}

// summaryRows returns the endpoint table of summary.json, with the keys of
// the endpoints' columns.
func summaryRows(sum *metrics.Summary, order []*endpoint) ([]EndpointRow, *EndpointRow) {
	keys := map[epKey]string{}
	for k, e := range order {
		keys[epKey{e.method, e.name}] = epKeyName(k)
	}
	row := func(e *metrics.EndpointSummary) EndpointRow {
		l := &e.Latency
		return EndpointRow{Key: keys[epKey{e.Method, e.Name}], Method: e.Method, Name: e.Name, Requests: e.Requests, Failures: e.Failures,
			FailureRate: e.FailureRate, Median: ms(l.Percentiles[0]), P95: ms(l.Percentiles[5]), P99: ms(l.Percentiles[7]),
			Max: ms(l.Max), Avg: ms(l.Avg), RPS: e.RPS, FailuresPerS: e.FailuresPerSec}
	}
	rows := make([]EndpointRow, len(sum.Endpoints))
	for i := range sum.Endpoints {
		rows[i] = row(&sum.Endpoints[i])
	}
	total := row(&sum.Aggregated)
	total.Key = ""
	return rows, &total
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
