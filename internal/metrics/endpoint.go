package metrics

import (
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/stampede-load/stampede"
)

// Histogram bounds: latencies are recorded in microseconds from 1 µs to one
// hour with 3 significant digits (a relative error below 0.1%).
const (
	histMin    = 1
	histMax    = int64(maxLatency / time.Microsecond)
	histDigits = 3
)

// NewHistogram returns an empty latency histogram with the bounds every
// histogram of this package has: microseconds, 1 µs to one hour, 3
// significant digits. Histograms from Endpoint.Histogram and DecodeHistogram
// share them, so they can be merged and compared.
func NewHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(histMin, histMax, histDigits)
}

// micros converts a latency to the microseconds a histogram records,
// clamped to the histogram's range.
func micros(d time.Duration) int64 {
	us := int64(d / time.Microsecond)
	if us < 0 {
		return 0
	}
	if us > histMax {
		return histMax
	}
	return us
}

// NumOutcomes is the number of outcome classes counted: those of
// stampede.Outcome, with any unknown outcome counted as FailStatus.
const NumOutcomes = int(stampede.FailTimeout) + 1

// Percentiles are the quantiles reported everywhere, Locust's
// PERCENTILES_TO_REPORT: 50%, 66%, 75%, 80%, 90%, 95%, 98%, 99%, 99.9%,
// 99.99%, 100%.
var Percentiles = [NumPercentiles]float64{0.50, 0.66, 0.75, 0.80, 0.90, 0.95, 0.98, 0.99, 0.999, 0.9999, 1.0}

// NumPercentiles is the number of Percentiles.
const NumPercentiles = 11

// PercentileNames are the names of Percentiles in summary.json and in
// thresholds: "p50" ... "p99.99", "p100".
var PercentileNames = [NumPercentiles]string{"p50", "p66", "p75", "p80", "p90", "p95", "p98", "p99", "p99.9", "p99.99", "p100"}

// window is the number of seconds over which History rows and Progress
// report percentiles and rates, as Locust's stats history does.
const window = 10

// Totals are an endpoint's cumulative figures since the start of the run.
type Totals struct {
	// Requests counts every request, failed or not (as Locust does).
	Requests int64
	// Failures counts requests whose Outcome is not OK.
	Failures int64
	// Outcomes counts requests by stampede.Outcome.
	Outcomes [NumOutcomes]int64
	// LatencySum is the sum of all latencies.
	LatencySum time.Duration
	// Min and Max are the exact extreme latencies; zero without requests.
	Min, Max time.Duration
	// Bytes is the sum of the response body sizes.
	Bytes int64
	// First is the earliest request start, Last the latest response end.
	First, Last time.Time
}

// Mean returns the average latency, 0 without requests.
func (t *Totals) Mean() time.Duration {
	if t.Requests == 0 {
		return 0
	}
	return t.LatencySum / time.Duration(t.Requests)
}

// FailureRate returns Failures/Requests, 0 without requests.
func (t *Totals) FailureRate() float64 {
	if t.Requests == 0 {
		return 0
	}
	return float64(t.Failures) / float64(t.Requests)
}

func (t *Totals) add(r *stampede.Result, o int) {
	if t.Requests == 0 || r.Latency < t.Min {
		t.Min = r.Latency
	}
	if r.Latency > t.Max {
		t.Max = r.Latency
	}
	if t.First.IsZero() || r.Start.Before(t.First) {
		t.First = r.Start
	}
	if end := r.End(); end.After(t.Last) {
		t.Last = end
	}
	t.Requests++
	if o != int(stampede.OK) {
		t.Failures++
	}
	t.Outcomes[o]++
	t.LatencySum += r.Latency
	t.Bytes += r.Bytes
}

// Endpoint accumulates the results of one (method, name), or of all of them
// for the Aggregated total. Its fields and methods are read on the
// goroutine that calls Metrics.Add, never concurrently with it.
type Endpoint struct {
	// Method is the HTTP method; empty for the Aggregated total.
	Method string
	// Name is the endpoint name; "Aggregated" for the total.
	Name string
	// Totals are the cumulative figures. Callers read them, never write them.
	Totals

	hist *hdrhistogram.Histogram // every latency since the start, µs
	rnd  coarse                  // every latency since the start, Locust's keys

	// The open second, closed by Metrics.Tick.
	sec     Totals
	secHist *hdrhistogram.Histogram

	// Rings over the last `window` closed seconds, indexed by tick % window.
	slots    [window]*hdrhistogram.PackedHistogram // each closed second's latencies
	ringReqs [window]int64                         // each closed second's requests
	ringFail [window]int64                         // and failures
	ringRnd  [window]coarse                        // rnd as it was after each tick
}

func newEndpoint(method, name string) *Endpoint {
	e := &Endpoint{Method: method, Name: name, hist: NewHistogram(), secHist: NewHistogram()}
	for i := range e.slots {
		e.slots[i] = hdrhistogram.NewPacked(histMin, histMax, histDigits)
	}
	return e
}

// add records one result. It allocates nothing once the endpoint exists,
// except when a latency falls in a coarse bucket above all earlier ones.
func (e *Endpoint) add(r *stampede.Result, o, ci int) {
	e.Totals.add(r, o)
	e.sec.add(r, o)
	us := micros(r.Latency)
	// The value is clamped to the histograms' range, so recording cannot fail.
	_ = e.hist.RecordValue(us)
	_ = e.secHist.RecordValue(us)
	e.rnd.add(ci)
}

// Histogram returns the histogram of every latency of the endpoint, in
// microseconds (see NewHistogram). It is live: copy it with Clone to keep it.
func (e *Endpoint) Histogram() *hdrhistogram.Histogram { return e.hist }

// Percentile returns the latency at quantile q (0..1) over the whole run,
// within 0.1% and never outside Min..Max; 0 without requests. Quantile 1
// returns the exact Max.
func (e *Endpoint) Percentile(q float64) time.Duration {
	if e.Requests == 0 {
		return 0
	}
	if q >= 1 {
		return e.Max
	}
	// The histogram answers with the top of a bucket, which may lie past
	// the largest latency recorded (or, in µs, below the smallest).
	d := time.Duration(e.hist.ValueAtQuantile(q*100)) * time.Microsecond
	return min(max(d, e.Min), e.Max)
}

// CoarsePercentile returns the latency at quantile q (0..1) over the whole
// run in whole milliseconds, computed as Locust computes its percentile
// columns (its rounding into about two significant digits, then
// calculate_response_time_percentile); 0 without requests.
func (e *Endpoint) CoarsePercentile(q float64) int64 { return e.rnd.percentile(q, nil) }

// CoarseMedian returns the median as Locust's median_from_dict computes it
// over the coarse buckets, in milliseconds, before Locust clamps it between
// Min and Max; 0 without requests.
func (e *Endpoint) CoarseMedian() int64 { return e.rnd.median() }
