package live

import (
	"math"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/metrics"
	"github.com/stampede-load/stampede/internal/report"
)

// The request columns of a second, in the order of reqCols.
const (
	colRequests = iota
	colFailures
	numBaseCols
)

// lateBuckets is how long a second's latency histogram stays open for
// requests that complete in it but are recorded late (as report.html
// allows): after that they count in its rates, not in its percentiles.
const lateBuckets = 3

// failureClasses are the classes of failures, as report.html charts them.
var failureClasses = report.FailureClasses()

// classIndex maps a failure class key to its column after the base ones.
var classIndex = func() map[string]int {
	m := map[string]int{}
	for i, c := range failureClasses {
		m[c.Key] = numBaseCols + i
	}
	return m
}()

// recorder is the Server's state that only the runner's recorder goroutine
// touches (Result and Second), so Result takes no lock: it counts the
// request into its second (the second of its completion, as report.html
// buckets requests.csv) and into its endpoint, and nothing else.
type recorder struct {
	t0 time.Time // the start of the run, truncated to the second

	// counts[c][i] counts the requests of column c completed in second i.
	counts [][]float64
	// p50, p95, p99 are the latency percentiles of each second, in ms.
	p50, p95, p99 []float64
	open          map[int]*hdrhistogram.Histogram
	free          []*hdrhistogram.Histogram
	closed        int // seconds below closed have their final percentiles
	dirty         int // the first second changed since the last publish

	eps   map[epKey]*endpoint
	order []*endpoint
	total endpoint
}

type epKey struct{ method, name string }

// endpoint accumulates one endpoint's requests since the start: what the
// table shows, and its requests and failures per second.
type endpoint struct {
	method, name       string
	requests, failures int64
	sum, min, max      time.Duration
	hist               *hdrhistogram.Histogram
	req, fail          []float64 // per second
}

func (r *recorder) init() {
	r.counts = make([][]float64, numBaseCols+len(failureClasses))
	r.open = map[int]*hdrhistogram.Histogram{}
	r.eps = map[epKey]*endpoint{}
	r.total = endpoint{name: metrics.AggregatedName, hist: metrics.NewHistogram()}
	r.dirty = math.MaxInt
}

// add records one result. It allocates only when a second or an endpoint
// is new.
func (r *recorder) add(res *stampede.Result) {
	i := max(0, int(res.End().Sub(r.t0)/time.Second))
	r.grow(i + 1)
	r.counts[colRequests][i]++
	failed := res.Outcome != stampede.OK
	if failed {
		r.counts[colFailures][i]++
		r.counts[classIndex[report.FailureClassOf(res)]][i]++
	}
	if i >= r.closed {
		h := r.open[i]
		if h == nil {
			if n := len(r.free); n > 0 {
				h, r.free = r.free[n-1], r.free[:n-1]
			} else {
				// Two significant digits, as report.html's per-second
				// percentiles: within 1%, and small to scan.
				h = hdrhistogram.New(1, int64(time.Hour/time.Microsecond), 2)
			}
			r.open[i] = h
		}
		_ = h.RecordValue(min(max(int64(res.Latency/time.Microsecond), 1), h.HighestTrackableValue()))
	}
	r.dirty = min(r.dirty, i)

	e := r.eps[epKey{res.Method, res.Name}]
	if e == nil {
		e = &endpoint{method: res.Method, name: res.Name, hist: metrics.NewHistogram()}
		r.eps[epKey{res.Method, res.Name}] = e
		r.order = append(r.order, e)
	}
	e.add(res, failed)
	for len(e.req) <= i {
		e.req = append(e.req, 0)
		e.fail = append(e.fail, 0)
	}
	e.req[i]++
	if failed {
		e.fail[i]++
	}
	r.total.add(res, failed)
}

func (e *endpoint) add(res *stampede.Result, failed bool) {
	if e.requests == 0 || res.Latency < e.min {
		e.min = res.Latency
	}
	e.max = max(e.max, res.Latency)
	e.requests++
	if failed {
		e.failures++
	}
	e.sum += res.Latency
	// Clamped to the histogram's range, so recording cannot fail.
	_ = e.hist.RecordValue(min(max(int64(res.Latency/time.Microsecond), 1), e.hist.HighestTrackableValue()))
}

// percentile returns the latency at quantile q since the start, within
// 0.1% and never outside min..max, as summary.json computes it.
func (e *endpoint) percentile(q float64) time.Duration {
	if e.requests == 0 {
		return 0
	}
	if q >= 1 {
		return e.max
	}
	d := time.Duration(e.hist.ValueAtQuantile(q*100)) * time.Microsecond
	return min(max(d, e.min), e.max)
}

// grow makes room for n seconds.
func (r *recorder) grow(n int) {
	for len(r.p50) < n {
		for c := range r.counts {
			r.counts[c] = append(r.counts[c], 0)
		}
		r.p50 = append(r.p50, math.NaN())
		r.p95 = append(r.p95, math.NaN())
		r.p99 = append(r.p99, math.NaN())
	}
}

// percentiles computes the percentiles of the seconds below upto whose
// histograms are open, and closes those lateBuckets behind upto (or all of
// them with final). It reports the first second whose percentiles it set.
func (r *recorder) percentiles(upto int, final bool) int {
	first := math.MaxInt
	for i, h := range r.open {
		if i >= upto && !final {
			continue
		}
		first = min(first, i)
		v := h.ValueAtPercentilesSlice(seriesQuantiles)
		r.p50[i], r.p95[i], r.p99[i] = float64(v[0])/1000, float64(v[1])/1000, float64(v[2])/1000
		if final || i < upto-lateBuckets {
			h.Reset()
			r.free = append(r.free, h)
			delete(r.open, i)
		}
	}
	if final {
		r.closed = len(r.p50)
	} else {
		r.closed = max(r.closed, upto-lateBuckets)
	}
	return first
}

var seriesQuantiles = []float64{50, 95, 99}
