package diagnose

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/stampede-load/stampede"
)

// Slowness is a symptom like failure. A request that did not fail is slow
// when its latency is above its endpoint's bar:
//
//   - the endpoint's latency threshold when the scenario sets one (the
//     tightest of p50…p100, avg, max);
//   - otherwise max(SlowFactor × floor, floor + SlowMargin), where the floor
//     is the endpoint's latency with little else in flight: the tenth
//     percentile of its successful requests started in the run's quiet
//     seconds (at most a quarter of the peak concurrency), the fastest of
//     them when fewer than ten started then, or the tenth percentile of
//     all its successful requests when none did — and never above its
//     earliest requests' (the median of its first earlyRequests successes,
//     sent before the ramp could queue them);
//   - an endpoint whose floor is already SlowBySelf or more is slow by
//     itself: its requests of SlowBySelf or more are slow, and only those
//     above max(SlowFactor × floor, floor + SlowMargin) are blamed on the
//     load. So is one whose typical latency with little else in flight
//     is SlowBySelf or more though its floor is under it (a page taking
//     0.45–1.2 s alone: its tenth percentile reads 0.48 s, its median
//     0.8 s): the typical latency is the lower of the median of its quiet
//     requests and the median of its earliest ones. It is never slow by
//     itself when its fastest request took a
//     tenth of its floor or less (selfRatio): a page that can answer in
//     25 ms is not slow by itself at 3 s, its floor was read too late,
//     once the load had ramped; its floor is then brought down to a tenth
//     of what was read, or to that fastest request when it is slower.
//
// SlowBySelf is the seed's criterion (p95 < 500 ms): a page that takes
// longer even when the server has nothing else to do is slow for its
// users whatever the load.
const (
	SlowFactor = 4
	SlowMargin = 500 * time.Millisecond
	SlowBySelf = 500 * time.Millisecond
)

// Limit is a latency bound for an endpoint taken from the scenario's
// thresholds ("p95 < 500ms"): a request above it is slow.
type Limit struct {
	// Endpoint is the endpoint name, or "all" (or "") for every endpoint.
	Endpoint string `json:"endpoint"`
	// Max is the bound.
	Max time.Duration `json:"max"`
	// Threshold is the threshold as written, for the evidence.
	Threshold string `json:"threshold"`
}

// ThresholdResult is one of the scenario's thresholds as evaluated at the
// end of the run.
type ThresholdResult struct {
	// Endpoint is the endpoint name or "all".
	Endpoint string `json:"endpoint"`
	// Text is the threshold as written ("[AUTH] Login POST: p95 < 500ms").
	Text string `json:"text"`
	// Latency is true for latency metrics (p50…p100, avg, min, max), false
	// for failure counts and rates, and other metrics.
	Latency bool `json:"latency"`
	// Failure is true for failure_rate and failures.
	Failure bool `json:"failure"`
	Pass    bool `json:"pass"`
	// Value is the measured value as text.
	Value string `json:"value,omitempty"`
}

// quietShare is the share of the peak concurrency at or below which a
// second counts as quiet for the floor.
const quietShare = 0.25

// floorQuantile is the percentile of quiet successful requests taken as
// the floor: low enough that the first requests of a ramp that already
// queue do not raise it.
const floorQuantile = 0.10

// minFloorSamples is how many quiet successful requests the floor needs;
// with fewer, every successful request counts.
const minFloorSamples = 10

// earlyRequests is how many of an endpoint's first successful requests (by
// start) stand for its latency before the load ramped.
const earlyRequests = 10

// selfRatio: an endpoint whose fastest request took 1/selfRatio of its
// floor or less is not slow by itself (see setBar).
const selfRatio = 10

// slowState is an endpoint's slowness: its floor and bar and its slow
// requests by the second they completed in.
type slowState struct {
	floor, bar time.Duration
	loadBar    time.Duration // above it, a request is slowed by the load
	self       bool
	streamed   bool          // slow by itself because it streams: nothing to explain
	limit      string        // the threshold defining the bar, if any
	lateFloor  time.Duration // the floor as read, when it was read under load (see setBar)
	alone      time.Duration // its typical latency with little else in flight, when slow by itself
	// aloneHot is the share of the requests its floor and typical latency
	// were read from that started while the host's CPU was saturated
	// (-1 when the host was not sampled): little else of the load in
	// flight, but the cores busy all the same, so not its own cost.
	aloneHot   float64
	series     []float64     // slow requests per second
	loadSeries []float64     // those of them slowed by the load, per second
	latSum     []float64     // their latency in seconds, per second
	covered    []bool        // per second: a finding explained them
	n          int           // slow requests
	loadN      int           // of them, slowed by the load
	hist       *Histogram    // latencies of the slow requests; nil for imports
	median     time.Duration // typical latency of a slow request
}

// limitFor returns the tightest latency limit for endpoint name.
func (c *ctx) limitFor(name string) (time.Duration, string) {
	var best time.Duration
	text := ""
	for _, l := range c.in.Limits {
		if l.Max <= 0 || (l.Endpoint != name && l.Endpoint != "" && l.Endpoint != "all") {
			continue
		}
		if best == 0 || l.Max < best {
			best, text = l.Max, l.Threshold
		}
	}
	return best, text
}

// setBar sets the endpoint's bars from its floor and limit. fastest is
// the endpoint's fastest (successful) request, 0 when unknown: an
// endpoint that answered selfRatio times faster than its floor once is not
// slow by itself — the floor was read under load — and its floor comes
// down to a tenth of what was read, or to fastest when that is slower.
// typical is its typical latency with little else in flight (0 when
// unknown): SlowBySelf or more, the endpoint is slow by itself even when
// its floor is under SlowBySelf.
func (c *ctx) setBar(e *endpoint, floor, fastest, typical time.Duration) {
	if fastest > 0 && fastest*selfRatio <= floor {
		e.slow.lateFloor = floor
		floor = max(fastest, floor/selfRatio)
	}
	e.slow.floor = floor
	// What "alone" reads: the floor, or the typical latency when only
	// that one says slow by itself (and it was not read under load).
	e.slow.alone = floor
	if floor < SlowBySelf && typical >= SlowBySelf && e.slow.lateFloor == 0 && (fastest <= 0 || fastest*selfRatio > typical) {
		e.slow.alone = typical
	}
	e.slow.loadBar = max(SlowFactor*floor, floor+SlowMargin)
	limit, text := c.limitFor(e.Name)
	switch {
	case limit > 0:
		e.slow.bar, e.slow.limit = limit, text
		e.slow.self = e.slow.alone >= limit && e.slow.alone >= SlowBySelf && e.slow.lateFloor == 0
		if !e.slow.self {
			// Fast alone, over its threshold under load: the load's.
			e.slow.loadBar = limit
		}
	case e.slow.lateFloor > 0 && floor >= SlowBySelf:
		// Read under load and still high after the correction: not slow
		// by itself (it answered fast once), slow above the load's bar.
		e.slow.bar = e.slow.loadBar
	case e.slow.alone >= SlowBySelf && e.TTFB > 0 && e.Mean > 0 && e.TTFB < e.Mean/3:
		// A response that streams (its first byte comes early): its time
		// goes into sending by design, not into waiting. Slow by itself,
		// with no slow request to explain.
		e.slow.self, e.slow.streamed = true, true
	case e.slow.alone >= SlowBySelf:
		e.slow.bar, e.slow.self = SlowBySelf, true
	default:
		e.slow.bar = e.slow.loadBar
	}
}

// slowFromResults finds the floors and the slow requests of every endpoint
// from the per-request records: one pass for the concurrency per second,
// one for the floors, one for the slow requests.
func (c *ctx) slowFromResults(rs []stampede.Result) {
	byKey := map[epKey]*endpoint{}
	for _, e := range c.eps {
		byKey[epKey{e.Method, e.Name}] = e
		e.slow.series = make([]float64, c.nsec)
		e.slow.loadSeries = make([]float64, c.nsec)
		e.slow.latSum = make([]float64, c.nsec)
		e.slow.covered = make([]bool, c.nsec)
		e.slow.hist = new(Histogram)
	}
	// Requests in flight at the middle of each second.
	diff := make([]int32, c.nsec+1)
	for i := range rs {
		a := c.secCeilMid(rs[i].Start)
		b := c.secCeilMid(rs[i].End())
		if b > a {
			diff[a]++
			diff[b]--
		}
	}
	active := make([]int32, c.nsec)
	peak := int32(0)
	run := int32(0)
	for s := 0; s < c.nsec; s++ {
		run += diff[s]
		active[s] = run
		peak = max(peak, run)
	}
	quiet := int32(max(2, math.Floor(quietShare*float64(peak))))
	type floors struct {
		ok, quiet        Histogram
		early            []*stampede.Result // the first successes by start, at most earlyRequests
		quietHot, quietN int                // quiet successes, and of them those started on a saturated CPU
	}
	hot := c.hostHotSeconds()
	fl := make(map[*endpoint]*floors, len(c.eps))
	for _, e := range c.eps {
		fl[e] = &floors{}
	}
	for i := range rs {
		r := &rs[i]
		if r.Outcome != stampede.OK {
			continue
		}
		e := byKey[epKey{r.Method, r.Name}]
		if e == nil {
			continue
		}
		f := fl[e]
		f.ok.Add(r.Latency)
		if active[c.sec(r.Start)] <= quiet {
			f.quiet.Add(r.Latency)
			f.quietN++
			if hot != nil && hot[c.sec(r.Start)] {
				f.quietHot++
			}
		}
		f.early = keepEarliest(f.early, r)
	}
	for _, e := range c.eps {
		f := fl[e]
		floor := f.quiet.Quantile(floorQuantile)
		switch n := f.quiet.Count(); {
		case n == 0:
			floor = f.ok.Quantile(floorQuantile)
		case n < minFloorSamples:
			// A queue that forms at once (every user logs in at the
			// start): the few requests of the quiet first seconds, the
			// fastest of them, are all there is of the floor.
			floor = min(f.quiet.Quantile(0), f.ok.Quantile(floorQuantile))
		}
		if f.ok.Count() == 0 {
			floor = e.Latency.Quantile(floorQuantile)
		}
		var fastest, typical time.Duration
		if f.quiet.Count() >= minFloorSamples {
			typical = f.quiet.Quantile(0.5)
		}
		if f.ok.Count() > 0 {
			fastest = f.ok.Quantile(0)
			if len(f.early) >= 3 {
				lat := make([]time.Duration, len(f.early))
				for i, r := range f.early {
					lat[i] = r.Latency
				}
				early := medianOf(lat)
				floor = min(floor, early)
				if typical == 0 || early < typical {
					typical = early
				}
			}
		}
		c.setBar(e, floor, fastest, typical)
		e.slow.aloneHot = -1
		if hot != nil {
			n, h := f.quietN, f.quietHot
			for _, r := range f.early {
				n++
				if hot[c.sec(r.Start)] {
					h++
				}
			}
			if n > 0 {
				e.slow.aloneHot = float64(h) / float64(n)
			}
		}
	}
	for i := range rs {
		r := &rs[i]
		if r.Outcome != stampede.OK {
			continue
		}
		e := byKey[epKey{r.Method, r.Name}]
		if e == nil || e.slow.bar <= 0 || r.Latency <= e.slow.bar {
			continue
		}
		s := c.sec(r.End())
		e.slow.series[s]++
		if r.Latency > e.slow.loadBar {
			e.slow.loadSeries[s]++
		}
		e.slow.latSum[s] += r.Latency.Seconds()
		e.slow.n++
		e.slow.hist.Add(r.Latency)
	}
	for _, e := range c.eps {
		e.slow.median = e.slow.hist.Quantile(0.5)
		c.significant(e)
		e.slow.loadN = int(math.Round(sum(e.slow.loadSeries)))
		c.slowTotal += e.slow.n
	}
}

// minSlowShare is the share of an endpoint's requests that must be slow
// (and at least minSlow of them) for its slowness to be a symptom: with
// more than one in twenty slow, its p95 is slow; a few outliers (a pause,
// a cold cache, a busy neighbour) are not a slow endpoint.
const (
	minSlowShare = 0.05
	minSlow      = 5
)

// significant clears an endpoint's slowness when it is only a few
// outliers.
func (c *ctx) significant(e *endpoint) {
	// Over its own latency threshold, even one request is what the user
	// asked about.
	if e.slow.limit != "" || float64(e.slow.n) >= max(minSlow, minSlowShare*float64(e.Requests)) {
		return
	}
	e.slow.n = 0
	for s := range e.slow.series {
		e.slow.series[s], e.slow.loadSeries[s], e.slow.latSum[s] = 0, 0, 0
	}
}

// keepEarliest adds r to early, the requests that started first, keeping
// at most earlyRequests of them.
func keepEarliest(early []*stampede.Result, r *stampede.Result) []*stampede.Result {
	if len(early) < earlyRequests {
		return append(early, r)
	}
	latest := 0
	for i, x := range early {
		if x.Start.After(early[latest].Start) {
			latest = i
		}
	}
	if r.Start.Before(early[latest].Start) {
		early[latest] = r
	}
	return early
}

// secCeilMid returns the first second whose middle is at or after t.
func (c *ctx) secCeilMid(t time.Time) int {
	d := t.Sub(c.start) - time.Second/2
	s := 0
	if d > 0 {
		s = int((d + time.Second - 1) / time.Second)
	}
	return min(s, c.nsec)
}

// slowFromHistory estimates the slow requests of an import (Locust's
// aggregates): the floor is the lowest median of any second with requests
// (the start of the ramp), and the slow requests of a second are its
// requests times the share above the bar, read from the second's
// percentiles when known, else all of them when the second's latency is
// above the bar.
func (c *ctx) slowFromHistory() {
	for _, e := range c.eps {
		e.slow.series = make([]float64, c.nsec)
		e.slow.loadSeries = make([]float64, c.nsec)
		e.slow.latSum = make([]float64, c.nsec)
		e.slow.covered = make([]bool, c.nsec)
		floor := time.Duration(0)
		for s := range e.reqs {
			if e.reqs[s] <= 0 || e.lat[s] <= 0 {
				continue
			}
			v := time.Duration(e.lat[s] * float64(time.Second))
			if p := e.pcts[s]; p != nil {
				v = p.at(0.5)
			}
			if v > 0 && (floor == 0 || v < floor) {
				floor = v
			}
		}
		if floor == 0 {
			floor = max(e.Min, e.Median/SlowFactor)
		}
		// Locust's minimum response time is the one reading of the
		// endpoint with nothing in its way that an import has.
		c.setBar(e, floor, e.Min, floor)
		bar := e.slow.bar
		if bar <= 0 {
			continue
		}
		n := 0.0
		var lat []time.Duration
		for s := range e.reqs {
			ok := e.reqs[s] - e.fails[s]
			if ok <= 0 {
				continue
			}
			share, load := 0.0, 0.0
			if p := e.pcts[s]; p != nil {
				share, load = p.above(bar), p.above(e.slow.loadBar)
			} else {
				if e.lat[s] > bar.Seconds() {
					share = 1
				}
				if e.lat[s] > e.slow.loadBar.Seconds() {
					load = 1
				}
			}
			if share <= 0 {
				continue
			}
			k := ok * share
			e.slow.series[s] = k
			e.slow.loadSeries[s] = ok * min(load, share)
			e.slow.latSum[s] = k * math.Max(e.lat[s], bar.Seconds())
			n += k
			lat = append(lat, time.Duration(math.Max(e.lat[s], bar.Seconds())*float64(time.Second)))
		}
		e.slow.n = int(math.Round(n))
		e.slow.median = medianOf(lat)
		c.significant(e)
		e.slow.loadN = int(math.Round(sum(e.slow.loadSeries)))
		c.slowTotal += e.slow.n
	}
}

// pcts is one second's latency percentiles (Locust's history columns).
type pcts struct {
	q []float64 // ascending quantiles, e.g. 0.5, 0.66, … 1
	v []time.Duration
}

// at returns the latency at quantile q (the nearest known one above).
func (p *pcts) at(q float64) time.Duration {
	for i, x := range p.q {
		if x >= q {
			return p.v[i]
		}
	}
	return p.v[len(p.v)-1]
}

// above returns the share of requests slower than bar, interpolated
// between the known percentiles (below the lowest one, the share of the
// lowest is assumed).
func (p *pcts) above(bar time.Duration) float64 {
	if len(p.q) == 0 || p.v[len(p.v)-1] <= bar {
		return 0
	}
	prevQ, prevV := 0.0, time.Duration(0)
	for i, q := range p.q {
		v := p.v[i]
		if v > bar {
			if i == 0 {
				return 1 - q/2
			}
			// bar lies between prevV and v: interpolate the quantile.
			f := float64(bar-prevV) / float64(max(v-prevV, 1))
			return 1 - (prevQ + f*(q-prevQ))
		}
		prevQ, prevV = q, v
	}
	return 0
}

// slowWindows returns the windows of the slow requests of es: the bursts
// of their completions, reaching back by their typical latency (the time
// they were in flight) and padded by c.pad.
func (c *ctx) slowWindows(es []*endpoint) []window {
	series := make([]float64, c.nsec)
	var lead time.Duration
	for _, e := range es {
		for s, v := range e.slow.series {
			series[s] += v
		}
		lead = max(lead, e.slow.median)
	}
	lead = min(lead, 10*time.Minute)
	var ws []window
	for _, b := range c.bursts(series) {
		ws = append(ws, window{b.Start.Add(-lead - c.pad), b.End.Add(c.pad)})
	}
	return ws
}

// slowEndpoints returns the endpoints with slow requests for which keep is
// true (nil keep: all).
func (c *ctx) slowEndpoints(keep func(e *endpoint) bool) []*endpoint {
	var out []*endpoint
	for _, e := range c.eps {
		if e.slow.n > 0 && (keep == nil || keep(e)) {
			out = append(out, e)
		}
	}
	return out
}

// slowIn returns the slow requests of e completed inside ws and their
// summed latency in seconds.
func (c *ctx) slowIn(e *endpoint, ws []window) (n, latSum float64) {
	for s, v := range e.slow.series {
		if v > 0 && (ws == nil || inWindows(c.at(s).Add(time.Second/2), ws)) {
			n += v
			latSum += e.slow.latSum[s]
		}
	}
	return n, latSum
}

// slowRef quotes the slow requests of es for a finding's evidence.
func (c *ctx) slowRef(es []*endpoint, ws []window) stampede.EvidenceRef {
	var parts []string
	var first time.Time
	total := 0.0
	for _, e := range es {
		n, sum := c.slowIn(e, ws)
		if n < 0.5 {
			continue
		}
		total += n
		mean := time.Duration(sum / n * float64(time.Second))
		p := fmt.Sprintf("%.0f on %s (mean %s; floor %s, slow above %s", n, e.Name, secs(mean), secs(e.slow.floor), secs(e.slow.bar))
		if e.slow.self && e.slow.alone > e.slow.floor {
			p += fmt.Sprintf(", typically %s with little else in flight", secs(e.slow.alone))
		}
		if e.slow.limit != "" {
			p += ", the threshold " + e.slow.limit
		}
		parts = append(parts, p+")")
		for s, v := range e.slow.series {
			if v > 0 && (ws == nil || inWindows(c.at(s).Add(time.Second/2), ws)) {
				if t := c.at(s); first.IsZero() || t.Before(first) {
					first = t
				}
				break
			}
		}
	}
	text := fmt.Sprintf("client: %.0f slow requests: %s", total, joinMax(parts, 4))
	return stampede.EvidenceRef{Source: "requests", Time: first, Text: text}
}

// slowReport lists the endpoints with slow requests, most first.
func (c *ctx) slowReport() []stampede.SlowEndpoint {
	var out []stampede.SlowEndpoint
	for _, e := range c.eps {
		if e.slow.n == 0 && !e.slow.self {
			continue
		}
		out = append(out, stampede.SlowEndpoint{Endpoint: e.Name, Requests: e.Requests, Slow: e.slow.n,
			Floor: e.slow.floor, Bar: e.slow.bar, Median: e.Median, P95: e.P95, BySelf: e.slow.self,
			Streamed: e.slow.streamed, Threshold: e.slow.limit})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Slow > out[j].Slow })
	return out
}

func joinMax(parts []string, n int) string {
	if len(parts) > n {
		parts = append(parts[:n:n], fmt.Sprintf("%d more endpoints", len(parts)-n))
	}
	s := ""
	for i, p := range parts {
		if i > 0 {
			s += ", "
		}
		s += p
	}
	return s
}

func sum(xs []float64) float64 {
	t := 0.0
	for _, x := range xs {
		t += x
	}
	return t
}

// hostHotSeconds returns, per second of the run, whether the host's CPU
// was saturated (cpuHigh) in the sample that covers it; nil when the host
// was not sampled.
func (c *ctx) hostHotSeconds() []bool {
	if c.nsec <= 0 {
		return nil
	}
	var hot []bool
	cores := c.hostCores()
	next := 0 // the first second not yet covered by a sample
	for _, s := range c.samples["host"] {
		if s.Err == "" && s.Values != nil {
			if hot == nil {
				hot = make([]bool, c.nsec)
			}
			h := cpuHigh(s, cores)
			last := c.sec(s.Time)
			for i := next; i <= last; i++ {
				hot[i] = h
			}
			next = max(next, last+1)
		}
	}
	return hot
}

// aloneText says how slow e is alone, and whether that was read on a
// saturated CPU.
func (e *endpoint) aloneText() string {
	if e.slow.aloneHot >= hotAloneShare {
		return fmt.Sprintf("%s takes %s with little else of the load in flight, but the host's CPU was saturated during %.0f%% of those requests: that is not a clean reading of its own cost", e.Name, secs(e.slow.alone), 100*e.slow.aloneHot)
	}
	return fmt.Sprintf("%s is slow by itself: %s even with little else in flight", e.Name, secs(e.slow.alone))
}

// hotAloneShare is the share of an endpoint's quiet requests that must
// have run on a saturated CPU for its floor not to count as its own cost.
const hotAloneShare = 0.8
