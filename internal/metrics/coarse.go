package metrics

import "time"

// Coarse latency buckets, rounded the way Locust rounds response times before
// it counts them (locust/stats.py, StatsEntry._log_response_time): below
// 100 ms to the millisecond, below 1 s to 10 ms, below 10 s to 100 ms, above
// to the second, each with Python's round-half-to-even. Counting with the same
// keys is what lets locust_stats.csv show the very percentiles Locust would:
// an HDR bucket can straddle one of Locust's rounding boundaries, a coarse
// bucket cannot.
//
// A key (milliseconds) maps to a dense index:
//
//	0..99 ms            index 0..99
//	100..990 ms by 10   index 100..189
//	1000..9900 ms by 100 index 190..279
//	10000.. ms by 1000  index 280..
//
// Rounding 99.7 ms gives key 100, which is index 100: the same key as the
// 100 ms of the next range, as in Locust's dict where 100 == 100.0.
const (
	coarseTens     = 100
	coarseHundreds = 190
	coarseSeconds  = 280
)

// maxLatency is the largest latency recorded as such: the histograms' upper
// bound (one hour). Longer latencies are counted as one hour.
const maxLatency = time.Hour

// roundHalfEven divides n (>= 0) by d, rounding half to even like Python's
// round().
func roundHalfEven(n, d int64) int64 {
	q, r := n/d, n%d
	if 2*r > d || (2*r == d && q%2 == 1) {
		q++
	}
	return q
}

// coarseIndex returns the dense index of latency d's coarse bucket.
func coarseIndex(d time.Duration) int {
	ns := int64(d)
	switch {
	case ns < 0:
		return 0
	case ns < 100e6:
		return int(roundHalfEven(ns, 1e6)) // 0..100
	case ns < 1000e6:
		return coarseTens + int(roundHalfEven(ns, 10e6)-10) // 100..190
	case ns < 10000e6:
		return coarseHundreds + int(roundHalfEven(ns, 100e6)-10) // 190..280
	default:
		if ns > int64(maxLatency) {
			ns = int64(maxLatency)
		}
		return coarseSeconds + int(roundHalfEven(ns, 1e9)-10)
	}
}

// coarseKey returns the key, in milliseconds, of the coarse bucket at index i.
func coarseKey(i int) int64 {
	switch {
	case i < coarseTens:
		return int64(i)
	case i < coarseHundreds:
		return 100 + int64(i-coarseTens)*10
	case i < coarseSeconds:
		return 1000 + int64(i-coarseHundreds)*100
	default:
		return 10000 + int64(i-coarseSeconds)*1000
	}
}

// coarse counts latencies by coarse bucket. The slice grows to the highest
// index seen, so it allocates only when a latency beats every earlier one's
// bucket: about 300 counters for latencies under 10 s.
type coarse struct {
	counts []int64
	n      int64
}

func (c *coarse) add(i int) {
	if i >= len(c.counts) {
		c.grow(i)
	}
	c.counts[i]++
	c.n++
}

func (c *coarse) grow(i int) {
	// Doubling, but never past the bucket of maxLatency: the last index.
	n := min(max(2*len(c.counts), i+1, 128), coarseIndex(maxLatency)+1)
	counts := make([]int64, n)
	copy(counts, c.counts)
	c.counts = counts
}

// copyFrom makes c equal to src, reusing c's storage when it is large enough.
func (c *coarse) copyFrom(src *coarse) {
	if cap(c.counts) < len(src.counts) {
		c.counts = make([]int64, len(src.counts))
	}
	c.counts = c.counts[:len(src.counts)]
	copy(c.counts, src.counts)
	c.n = src.n
}

// at returns the count at index i of c minus base (base may be nil).
func (c *coarse) at(i int, base *coarse) int64 {
	v := c.counts[i]
	if base != nil && i < len(base.counts) {
		v -= base.counts[i]
	}
	return v
}

// percentile is Locust's calculate_response_time_percentile over the counts
// of c minus base (the window since base was copied): the smallest key such
// that at most int(n*q) requests are above it, scanning from the top. It
// returns 0 when the difference is empty.
func (c *coarse) percentile(q float64, base *coarse) int64 {
	n := c.n
	if base != nil {
		n -= base.n
	}
	want := int64(float64(n) * q) // Python's int(num_requests * percent)
	var seen int64
	for i := len(c.counts) - 1; i >= 0; i-- {
		v := c.at(i, base)
		if v == 0 {
			continue
		}
		seen += v
		if n-seen <= want {
			return coarseKey(i)
		}
	}
	return 0
}

// median is Locust's median_from_dict: the key holding the request at
// position (n-1)/2 counting from the bottom. It returns 0 when c is empty.
func (c *coarse) median() int64 {
	if c.n == 0 {
		return 0
	}
	pos := float64(c.n-1) / 2
	last := 0
	for i, v := range c.counts {
		if v == 0 {
			continue
		}
		if pos < float64(v) {
			return coarseKey(i)
		}
		pos -= float64(v)
		last = i
	}
	return coarseKey(last)
}
