package metrics

import "time"

// Row is one endpoint's figures for one second of the run.
type Row struct {
	// Method is the HTTP method, empty for the Aggregated row.
	Method string
	// Name is the endpoint name, "Aggregated" for the total.
	Name string
	// Requests and Failures count the results added during the second.
	Requests, Failures int64
	// Outcomes counts the second's results by stampede.Outcome.
	Outcomes [NumOutcomes]int64
	// RPS and FailuresPerSec are rates over the window: the last 10 seconds
	// (fewer at the start of the run), as Locust's "current" rates.
	RPS, FailuresPerSec float64
	// WindowRequests counts the requests of the window.
	WindowRequests int64
	// Percentiles are the latencies at Percentiles over the window, within
	// 0.1%; zero when the window has no request.
	Percentiles [NumPercentiles]time.Duration
	// Coarse are the same percentiles in whole milliseconds, computed as
	// Locust computes its history columns (see Endpoint.CoarsePercentile).
	Coarse [NumPercentiles]int64
	// TotalRequests and TotalFailures are the counts since the start.
	TotalRequests, TotalFailures int64
}

// Second is the history row set of one second: a Row per endpoint, sorted
// by name then method, and the Aggregated row.
type Second struct {
	// Index numbers the seconds of the run from 1.
	Index int
	// Time is when the second was closed (the now given to Tick).
	Time time.Time
	// Elapsed is Time minus the start of the run.
	Elapsed time.Duration
	// Users is the number of active users given to Tick.
	Users int
	// Endpoints holds a row per endpoint seen so far.
	Endpoints []Row
	// Total is the Aggregated row.
	Total Row
}

// Progress is the state of the run for a live display, as of the last Tick.
type Progress struct {
	// Time is when the last second was closed; Elapsed is the time since the
	// start of the run at the call to Snapshot.
	Time    time.Time
	Elapsed time.Duration
	// Users is the number of active users at the last Tick.
	Users int
	// Requests and Failures count every result since the start.
	Requests, Failures int64
	// FailureRate is Failures/Requests.
	FailureRate float64
	// RPS and FailuresPerSec are the rates of the last second; RPS10 the
	// request rate over the last 10 seconds.
	RPS, FailuresPerSec, RPS10 float64
	// P50 and P95 are latencies over the last 10 seconds.
	P50, P95 time.Duration
	// Endpoints are the last second's rows, Total its Aggregated row.
	Endpoints []Row
	Total     Row
	// Done is set once Close was called.
	Done bool
}

// Snapshot returns the progress as of the last Tick, with Elapsed computed
// at now. It is the one method that is safe to call from any goroutine,
// concurrently with Add and Tick.
func (m *Metrics) Snapshot(now time.Time) Progress {
	var p Progress
	if last := m.progress.Load(); last != nil {
		p = *last
	}
	p.Elapsed = now.Sub(m.start)
	return p
}

// Tick closes the current second at now with users active, and returns its
// history rows. Results added since the previous Tick belong to the second,
// whatever their own timestamps: the recorder adds them as they complete.
// The Second is shared with Snapshot's callers: read it, do not modify it.
func (m *Metrics) Tick(now time.Time, users int) *Second {
	slot := m.ticks % window
	since := m.start // the start of the window
	if m.ticks >= window {
		since = m.tickTimes[slot]
	}
	span := now.Sub(since).Seconds()
	secLen := now.Sub(m.lastTick).Seconds()

	s := &Second{Index: m.ticks + 1, Time: now, Elapsed: now.Sub(m.start), Users: users}
	eps := m.Endpoints()
	s.Endpoints = make([]Row, len(eps))
	for i, e := range eps {
		s.Endpoints[i] = m.tickEndpoint(e, slot, span)
	}
	s.Total = m.tickEndpoint(m.total, slot, span)

	m.tickTimes[slot] = now
	m.lastTick = now
	m.ticks++
	m.users = users
	m.usersPeak = max(m.usersPeak, users)

	p := &Progress{
		Time:        now,
		Users:       users,
		Requests:    m.total.Requests,
		Failures:    m.total.Failures,
		FailureRate: m.total.FailureRate(),
		RPS10:       s.Total.RPS,
		P50:         s.Total.Percentiles[0],
		P95:         s.Total.Percentiles[5],
		Endpoints:   s.Endpoints,
		Total:       s.Total,
	}
	if secLen > 0 {
		p.RPS = float64(s.Total.Requests) / secLen
		p.FailuresPerSec = float64(s.Total.Failures) / secLen
	}
	m.progress.Store(p)
	return s
}

// tickEndpoint closes e's second into ring slot slot and returns its row
// over a window of span seconds.
func (m *Metrics) tickEndpoint(e *Endpoint, slot int, span float64) Row {
	r := Row{
		Method:        e.Method,
		Name:          e.Name,
		Requests:      e.sec.Requests,
		Failures:      e.sec.Failures,
		Outcomes:      e.sec.Outcomes,
		TotalRequests: e.Requests,
		TotalFailures: e.Failures,
	}

	// The slot held the second closed `window` ticks ago: it leaves the
	// window now and this second takes its place.
	e.slots[slot].Reset()
	if e.sec.Requests > 0 {
		e.slots[slot].MergeFrom(e.secHist)
		e.secHist.Reset()
	}
	e.ringReqs[slot] = e.sec.Requests
	e.ringFail[slot] = e.sec.Failures
	e.sec = Totals{}

	var fails int64
	for i := range window {
		r.WindowRequests += e.ringReqs[i]
		fails += e.ringFail[i]
	}
	if span > 0 {
		r.RPS = float64(r.WindowRequests) / span
		r.FailuresPerSec = float64(fails) / span
	}
	if r.WindowRequests > 0 {
		m.scratch.Reset()
		for _, sl := range e.slots {
			sl.MergeInto(m.scratch)
		}
		for i, q := range Percentiles {
			r.Percentiles[i] = time.Duration(m.scratch.ValueAtQuantile(q*100)) * time.Microsecond
		}
	}

	// ringRnd[slot] is the cumulative count as of `window` ticks ago (empty
	// before that): the difference is the window, as in Locust's
	// get_current_response_time_percentile.
	base := &e.ringRnd[slot]
	for i, q := range Percentiles {
		r.Coarse[i] = e.rnd.percentile(q, base)
	}
	base.copyFrom(&e.rnd)
	return r
}
