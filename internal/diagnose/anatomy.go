package diagnose

import (
	"math"
	"sort"
	"time"
)

// Anatomy describes a run's failures before any cause is named: what failed,
// how, when and with what latency. The report charts it.
type Anatomy struct {
	Start     time.Time         `json:"start"`
	End       time.Time         `json:"end"`
	Requests  int               `json:"requests"`
	Failures  int               `json:"failures"`
	Bursts    []Burst           `json:"bursts"`
	Endpoints []EndpointAnatomy `json:"endpoints"`
}

// EndpointAnatomy is one endpoint's part of the Anatomy.
type EndpointAnatomy struct {
	Method   string `json:"method"`
	Name     string `json:"name"`
	Login    bool   `json:"login,omitempty"`
	Requests int    `json:"requests"`
	Failures int    `json:"failures"`
	// Classes counts the failures by outcome class and reason, largest
	// first.
	Classes []ClassCount `json:"classes,omitempty"`
	// Bursts are the endpoint's failures grouped in time.
	Bursts  []Burst       `json:"bursts,omitempty"`
	Median  time.Duration `json:"median"`
	P95     time.Duration `json:"p95"`
	Max     time.Duration `json:"max"`
	Latency LatencyShape  `json:"latency"`
}

// ClassCount counts the failures of one outcome class (Class5xx, Class429,
// ClassContent …) sharing a reason. Message is the page's text for a soft
// failure ("Too many failed login attempts. Try again later.").
type ClassCount struct {
	Class   string `json:"class"`
	Status  int    `json:"status,omitempty"`
	Reason  string `json:"reason"`
	Message string `json:"message,omitempty"`
	Count   int    `json:"count"`
}

// Burst is a stretch of seconds with failures, gaps of up to BurstGap
// included.
type Burst struct {
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"` // end of the last second with a failure
	Failures int       `json:"failures"`
}

// BurstGap is the longest run of failure-free seconds inside one burst.
const BurstGap = 2 * time.Second

// LatencyShape is the latency structure of an endpoint.
//
// Slope and Intercept fit the mean latency of each second against the
// requests in flight in it (least squares). A straight line (Linear) means
// a fixed service rate: requests queue at one bottleneck and each costs
// Slope of it; with the bottleneck's cores known, Slope×cores is the work
// per request (a password hash is 0.2–0.6 s).
//
// ClusterAt is the latency at which at least half of the failed requests
// ended, within ±10%: the mark of a timeout (a pool's wait timeout, a
// proxy's read timeout). ClusterShare is the share found there.
type LatencyShape struct {
	Points       int           `json:"points"`
	Slope        time.Duration `json:"slope"`
	Intercept    time.Duration `json:"intercept"`
	R2           float64       `json:"r2"`
	Linear       bool          `json:"linear"`
	MinInFlight  float64       `json:"min_in_flight"`
	MaxInFlight  float64       `json:"max_in_flight"`
	ClusterAt    time.Duration `json:"cluster_at,omitempty"`
	ClusterShare float64       `json:"cluster_share,omitempty"`
}

// BuildAnatomy returns the anatomy of the run in.
func BuildAnatomy(in *Input) *Anatomy {
	return newCtx(in).anatomy
}

func (c *ctx) buildAnatomy() *Anatomy {
	a := &Anatomy{Start: c.start, End: c.end, Requests: c.total, Failures: c.failed}
	all := make([]float64, c.nsec)
	for _, e := range c.eps {
		for s, v := range e.fails {
			all[s] += v
		}
	}
	a.Bursts = c.bursts(all)
	for _, e := range c.eps {
		ea := EndpointAnatomy{Method: e.Method, Name: e.Name, Login: e.login,
			Requests: e.Requests, Failures: e.Failures, Median: e.Median, P95: e.P95, Max: e.Max}
		for _, g := range e.groups {
			ea.Classes = append(ea.Classes, ClassCount{Class: g.class, Status: g.Status, Reason: g.Reason, Message: g.message, Count: g.Count})
		}
		sort.SliceStable(ea.Classes, func(i, j int) bool { return ea.Classes[i].Count > ea.Classes[j].Count })
		ea.Bursts = c.bursts(e.fails)
		ea.Latency = c.shape(e)
		e.shape = ea.Latency
		a.Endpoints = append(a.Endpoints, ea)
	}
	return a
}

// bursts groups the seconds of series that hold failures.
func (c *ctx) bursts(series []float64) []Burst {
	var out []Burst
	gap := int(BurstGap / time.Second)
	cur, last := -1, -1
	sum := 0.0
	flush := func() {
		if cur >= 0 {
			out = append(out, Burst{Start: c.at(cur), End: c.at(last + 1), Failures: int(math.Round(sum))})
		}
	}
	for s, v := range series {
		if v <= 0 {
			continue
		}
		if cur >= 0 && s-last > gap+1 {
			flush()
			cur, sum = -1, 0
		}
		if cur < 0 {
			cur = s
		}
		last = s
		sum += v
	}
	flush()
	return out
}

// shape fits the endpoint's latency against its requests in flight.
func (c *ctx) shape(e *endpoint) LatencyShape {
	var sh LatencyShape
	var n, sx, sy, sxx, sxy, syy float64
	sh.MinInFlight = math.Inf(1)
	for s := range e.reqs {
		x, y := e.inflight[s], e.lat[s]
		// Seconds in which every request failed say more about the
		// failure (a client timeout, a pool timeout) than about the
		// service rate: they are the cluster's business, not the fit's.
		if e.reqs[s] <= 0 || y <= 0 || e.fails[s] >= e.reqs[s] {
			continue
		}
		n++
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
		syy += y * y
		sh.MinInFlight = math.Min(sh.MinInFlight, x)
		sh.MaxInFlight = math.Max(sh.MaxInFlight, x)
	}
	sh.Points = int(n)
	if n == 0 {
		sh.MinInFlight = 0
	}
	if n >= 5 {
		vx := sxx - sx*sx/n
		vy := syy - sy*sy/n
		cov := sxy - sx*sy/n
		if vx > 0 && vy > 0 {
			slope := cov / vx
			icpt := (sy - slope*sx) / n
			sh.Slope = time.Duration(slope * float64(time.Second))
			sh.Intercept = time.Duration(icpt * float64(time.Second))
			sh.R2 = cov * cov / (vx * vy)
			lo := icpt + slope*sh.MinInFlight
			hi := icpt + slope*sh.MaxInFlight
			// Linear: a good fit that at least triples the latency over the
			// range of concurrency seen.
			sh.Linear = slope > 0 && sh.R2 >= 0.6 && hi >= 3*math.Max(lo, 0.001)
		}
	}
	var h Histogram
	timed := false
	for _, g := range e.groups {
		if g.Latency != nil {
			timed = true
			for i, v := range g.Latency.counts {
				h.counts[i] += v
			}
			h.n += g.Latency.n
		}
	}
	switch {
	case timed && h.n >= 5:
		sh.ClusterAt, sh.ClusterShare = h.Cluster(0.5)
		if sh.ClusterAt < time.Second {
			sh.ClusterAt, sh.ClusterShare = 0, 0
		}
	case !timed && e.Failures >= 5 && e.Max >= time.Second && e.P95 >= e.Max*9/10:
		// Only percentiles are known: a p95 at the max says the slowest
		// twentieth stopped at one value.
		sh.ClusterAt = e.Max
	}
	return sh
}
