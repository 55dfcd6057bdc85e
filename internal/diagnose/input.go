package diagnose

import (
	"sort"
	"strings"
	"time"

	"github.com/stampede-load/stampede"
)

// Load models, as LoadFacts.Model names them.
const (
	ModelClosed = "closed" // N virtual users, each waiting for its response
	ModelOpen   = "open"   // starts at an arrival rate, free of coordinated omission
)

// Account assignments, as LoadFacts.Assignment names them (the scenario's
// user_assignment).
const (
	AssignUnique     = "unique"
	AssignShared     = "shared"
	AssignRoundRobin = "round-robin"
)

// LoadFacts describes how the load was made. Rules read it for capacity
// arithmetic (users against pool sizes) and for the throttling arithmetic
// (logins per account, logins per source IP). Zero fields are unknown.
type LoadFacts struct {
	// Model is ModelClosed or ModelOpen.
	Model string `json:"model,omitempty"`
	// Users is the number of virtual users (closed model) or the cap on
	// concurrent users (open model).
	Users int `json:"users,omitempty"`
	// SpawnRate is the number of users started per second (closed model).
	SpawnRate float64 `json:"spawn_rate,omitempty"`
	// ArrivalRate is the number of flow starts per second (open model).
	ArrivalRate float64 `json:"arrival_rate,omitempty"`
	// Accounts is the number of distinct login accounts the users logged in
	// with.
	Accounts int `json:"accounts,omitempty"`
	// Assignment is how accounts were given to users: AssignUnique,
	// AssignShared or AssignRoundRobin.
	Assignment string `json:"assignment,omitempty"`
	// SourceIPs is the number of client addresses the load came from; 1 for
	// one generator without address spreading.
	SourceIPs int `json:"source_ips,omitempty"`
	// LoginEndpoints names the endpoints that submit the login form. When
	// empty, a POST endpoint whose name mentions login or sign-in is one.
	LoginEndpoints []string `json:"login_endpoints,omitempty"`
	// Steps are the changes of the load made while the run ran, in order
	// (see LoadStep); the load above is the plan's, in force until the
	// first. A latency step or failures that begin right after a step up
	// are read as the higher load's, not as a fault's onset.
	Steps []LoadStep `json:"steps,omitempty"`
}

// EndpointTotals holds one endpoint's totals over the run, as Locust's
// stats.csv or stampede's summary.json give them.
type EndpointTotals struct {
	Method   string        `json:"method"`
	Name     string        `json:"name"`
	Requests int           `json:"requests"`
	Failures int           `json:"failures"`
	Min      time.Duration `json:"min"`
	Median   time.Duration `json:"median"`
	Mean     time.Duration `json:"mean"`
	P95      time.Duration `json:"p95"`
	P99      time.Duration `json:"p99"`
	Max      time.Duration `json:"max"`
	// TTFB is the mean time to the response's first byte; 0 when unknown
	// (an import). Far below Mean, the response was streamed: its time
	// went into sending, not into the work before the first byte.
	TTFB time.Duration `json:"ttfb,omitempty"`
	// Latency is the histogram of every request's latency; nil when only
	// the percentiles above are known (an import).
	Latency *Histogram `json:"-"`
}

// FailureGroup counts the failures of one endpoint that share a reason, as
// Locust's failures.csv does ("CatchResponseError('login POST HTTP 500')").
// Groups derived from per-request records also carry the status, the
// outcome, when the failures happened and how long they took.
type FailureGroup struct {
	Method string `json:"method"`
	Name   string `json:"name"`
	Reason string `json:"reason"`
	Count  int    `json:"count"`
	// Status is the HTTP status; 0 when no response arrived or when it is
	// unknown, in which case it is read from Reason ("HTTP 500",
	// "500 Server Error").
	Status int `json:"status,omitempty"`
	// Outcome is how the requests failed; stampede.OK means unknown, in
	// which case it is inferred from Status and Reason.
	Outcome stampede.Outcome `json:"outcome,omitempty"`
	// First and Last are the completion times of the first and last
	// failure; zero when unknown.
	First time.Time `json:"first,omitzero"`
	Last  time.Time `json:"last,omitzero"`
	// FirstRecord is the 1-based position in Input.Results of the group's
	// first failure (requests.csv holds it on line FirstRecord+1, under
	// the header); 0 when unknown (an import).
	FirstRecord int `json:"first_record,omitempty"`
	// PerSecond counts the failures by the second they completed in,
	// counted from Input.Start; nil when unknown (an import).
	PerSecond []int32 `json:"-"`
	// Latency is the histogram of the failed requests' latencies; nil when
	// unknown.
	Latency *Histogram `json:"-"`
}

// Point is one second of one endpoint's history, as a row of Locust's
// stats_history.csv. A Point with an empty Name (or Locust's "Aggregated")
// covers every endpoint.
type Point struct {
	// Time is the start of the second.
	Time   time.Time `json:"t"`
	Method string    `json:"method,omitempty"`
	Name   string    `json:"name,omitempty"`
	// Users is the number of active virtual users; 0 when unknown.
	Users int `json:"users,omitempty"`
	// Requests and Failures are the requests and failures completed per
	// second.
	Requests float64 `json:"requests"`
	Failures float64 `json:"failures"`
	// Mean is the mean latency of the requests that succeeded in the second
	// (of all of them when none did), from per-request records: a client
	// timeout's latency is the client's, not the server's. Median is
	// Locust's rolling median. Either may be 0 when unknown.
	Mean   time.Duration `json:"mean,omitempty"`
	Median time.Duration `json:"median,omitempty"`
	// InFlight is the mean number of the endpoint's requests in flight
	// during the second, by Little's law (completions × mean latency); 0
	// when unknown, in which case it is estimated from Requests and Median.
	InFlight float64 `json:"in_flight,omitempty"`
	// Quantiles and Latencies are the second's latency percentiles when
	// known (Locust's history columns, over its window of about 10 s):
	// Latencies[i] is the latency at Quantiles[i], ascending.
	Quantiles []float64       `json:"-"`
	Latencies []time.Duration `json:"-"`
}

// Input is everything a diagnosis looks at. The stampede path fills it with
// NewInput from the run's requests; the Locust path fills Endpoints,
// Failures and History from Locust's CSVs and leaves Results nil. Both paths
// add the timeline, the evidence and the load facts.
type Input struct {
	// Run is the run's id, copied to Diagnosis.Run.
	Run string
	// Start and End bound the run; when zero they are taken from the data.
	Start, End time.Time
	// Results holds every request when known. Diagnose derives Endpoints,
	// Failures and History from it when Endpoints is empty.
	Results []stampede.Result
	// Endpoints holds the per-endpoint totals.
	Endpoints []EndpointTotals
	// Failures holds the failure groups.
	Failures []FailureGroup
	// History holds the per-second history.
	History []Point
	// Timeline holds the probe samples (keys in docs/run-directory.md).
	Timeline []stampede.Sample
	// Evidence holds the events parsed from the server's logs.
	Evidence []stampede.Evidence
	// Load describes how the load was made.
	Load LoadFacts
	// Limits are the latency thresholds of the scenario: a request above
	// its endpoint's limit is slow.
	Limits []Limit
	// Thresholds are the scenario's thresholds as evaluated at the end of
	// the run; the diagnosis says which findings explain the failed ones.
	Thresholds []ThresholdResult
}

// NewInput returns an Input holding results and the aggregates derived from
// them in one pass: per-endpoint totals with latency histograms, failure
// groups counted per second, and a per-second history per endpoint. Start
// and End may be zero, in which case they span the results. Seconds are
// counted by completion time, as Locust and the server's logs count them.
func NewInput(run string, start, end time.Time, results []stampede.Result) *Input {
	in := &Input{Run: run, Start: start, End: end, Results: results}
	in.aggregate()
	return in
}

type epKey struct{ method, name string }

type groupKey struct {
	ep      int
	outcome stampede.Outcome
	status  int
	reason  string
}

// maxExactReasons caps the cache of raw reasons; past it every new reason is
// normalised on the spot (reasons that embed a port number are the case).
const maxExactReasons = 10000

// aggregate fills Endpoints, Failures and History from Results. It makes a
// single pass and allocates per endpoint and per distinct reason, never per
// request.
func (in *Input) aggregate() {
	rs := in.Results
	if len(rs) == 0 {
		return
	}
	if in.Start.IsZero() || in.End.IsZero() {
		lo, hi := rs[0].Start, rs[0].End()
		for i := range rs {
			if rs[i].Start.Before(lo) {
				lo = rs[i].Start
			}
			if e := rs[i].End(); e.After(hi) {
				hi = e
			}
		}
		if in.Start.IsZero() {
			in.Start = lo
		}
		if in.End.IsZero() {
			in.End = hi
		}
	}
	start := in.Start.UnixNano()
	nsec := int(in.End.Sub(in.Start)/time.Second) + 2
	if nsec < 1 {
		nsec = 1
	}

	type epAgg struct {
		tot    EndpointTotals
		hist   *Histogram
		sum    time.Duration
		ttfb   time.Duration
		reqs   []int32
		fails  []int32
		latSum []float64 // seconds, every request
		okSum  []float64 // seconds, successful requests
	}
	var eps []*epAgg
	epIndex := map[epKey]int{}
	type grAgg struct {
		g    FailureGroup
		hist *Histogram
	}
	var groups []*grAgg
	exact := map[groupKey]int{}
	norm := map[groupKey]int{}

	sec := func(t time.Time) int {
		s := int((t.UnixNano() - start) / int64(time.Second))
		if s < 0 {
			return 0
		}
		if s >= nsec {
			return nsec - 1
		}
		return s
	}
	for i := range rs {
		r := &rs[i]
		k := epKey{r.Method, r.Name}
		ei, ok := epIndex[k]
		if !ok {
			ei = len(eps)
			epIndex[k] = ei
			eps = append(eps, &epAgg{
				tot:    EndpointTotals{Method: r.Method, Name: r.Name, Min: r.Latency},
				hist:   new(Histogram),
				reqs:   make([]int32, nsec),
				fails:  make([]int32, nsec),
				latSum: make([]float64, nsec),
				okSum:  make([]float64, nsec),
			})
		}
		e := eps[ei]
		end := r.End()
		s := sec(end)
		e.tot.Requests++
		e.hist.Add(r.Latency)
		e.sum += r.Latency
		e.ttfb += r.TTFB
		if r.Latency < e.tot.Min {
			e.tot.Min = r.Latency
		}
		if r.Latency > e.tot.Max {
			e.tot.Max = r.Latency
		}
		e.reqs[s]++
		e.latSum[s] += r.Latency.Seconds()
		if r.Outcome == stampede.OK {
			e.okSum[s] += r.Latency.Seconds()
			continue
		}
		e.tot.Failures++
		e.fails[s]++
		gk := groupKey{ei, r.Outcome, r.Status, r.Reason}
		gi, ok := exact[gk]
		if !ok {
			nk := gk
			nk.reason = normalizeReason(r.Reason)
			gi, ok = norm[nk]
			if !ok {
				gi = len(groups)
				norm[nk] = gi
				groups = append(groups, &grAgg{
					g: FailureGroup{Method: r.Method, Name: r.Name, Reason: r.Reason,
						Status: r.Status, Outcome: r.Outcome, First: end, Last: end,
						FirstRecord: i + 1, PerSecond: make([]int32, nsec)},
					hist: new(Histogram),
				})
			}
			if len(exact) < maxExactReasons {
				exact[gk] = gi
			}
		}
		g := groups[gi]
		g.g.Count++
		g.g.PerSecond[s]++
		g.hist.Add(r.Latency)
		if end.Before(g.g.First) {
			g.g.First, g.g.FirstRecord = end, i+1
		}
		if end.After(g.g.Last) {
			g.g.Last = end
		}
	}

	in.Endpoints, in.History, in.Failures = nil, nil, nil
	for _, e := range eps {
		t := e.tot
		t.Latency = e.hist
		t.Median = e.hist.Quantile(0.5)
		t.P95 = e.hist.Quantile(0.95)
		t.P99 = e.hist.Quantile(0.99)
		t.Mean = e.sum / time.Duration(t.Requests)
		t.TTFB = e.ttfb / time.Duration(t.Requests)
		in.Endpoints = append(in.Endpoints, t)
		for s := range e.reqs {
			if e.reqs[s] == 0 {
				continue
			}
			n := float64(e.reqs[s])
			mean := e.latSum[s] / n
			if ok := n - float64(e.fails[s]); ok > 0 {
				mean = e.okSum[s] / ok
			}
			in.History = append(in.History, Point{
				Time:     in.Start.Add(time.Duration(s) * time.Second),
				Method:   t.Method,
				Name:     t.Name,
				Requests: n,
				Failures: float64(e.fails[s]),
				Mean:     time.Duration(mean * float64(time.Second)),
				InFlight: e.latSum[s],
			})
		}
	}
	sort.SliceStable(in.History, func(i, j int) bool { return in.History[i].Time.Before(in.History[j].Time) })
	for _, g := range groups {
		g.g.Latency = g.hist
		in.Failures = append(in.Failures, g.g)
	}
}

// normalizeReason replaces runs of four or more digits (ports, ids, byte
// counts) with "#", so "read tcp 127.0.0.1:53122->…" groups with its
// siblings while "HTTP 500" stays as it is.
func normalizeReason(s string) string {
	var b strings.Builder
	run := 0
	flush := func(end int) {
		if run >= 4 {
			b.WriteByte('#')
		} else {
			b.WriteString(s[end-run : end])
		}
		run = 0
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			run++
			continue
		}
		if run > 0 {
			flush(i)
		}
		b.WriteByte(s[i])
	}
	if run > 0 {
		flush(len(s))
	}
	return b.String()
}
