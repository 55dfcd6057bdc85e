package diagnose

import (
	"math"
	"time"
)

// histBase is the ratio between the bounds of neighbouring buckets: 4%, so
// a percentile read from a Histogram is within 2% of the true value.
const histBase = 1.04

// histBuckets covers 1 µs to about 1,000 s.
const histBuckets = 540

var logBase = math.Log(histBase)

// Histogram counts latencies in logarithmic buckets 4% wide, from 1 µs to
// about 1,000 s. The zero value is empty and ready to use; Add allocates
// nothing.
type Histogram struct {
	counts [histBuckets]uint32
	n      int
}

func bucketOf(d time.Duration) int {
	us := float64(d) / float64(time.Microsecond)
	if us <= 1 {
		return 0
	}
	i := int(math.Log(us) / logBase)
	if i >= histBuckets {
		i = histBuckets - 1
	}
	return i
}

func bucketValue(i int) time.Duration {
	return time.Duration(math.Pow(histBase, float64(i)+0.5) * float64(time.Microsecond))
}

// Add counts one latency.
func (h *Histogram) Add(d time.Duration) {
	h.counts[bucketOf(d)]++
	h.n++
}

// Count returns the number of latencies added.
func (h *Histogram) Count() int {
	if h == nil {
		return 0
	}
	return h.n
}

// Quantile returns the latency below which the fraction q of the counted
// latencies lie; 0 when the histogram is empty or nil.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h == nil || h.n == 0 {
		return 0
	}
	want := int(math.Ceil(q * float64(h.n)))
	if want < 1 {
		want = 1
	}
	seen := 0
	for i, c := range h.counts {
		seen += int(c)
		if seen >= want {
			return bucketValue(i)
		}
	}
	return bucketValue(histBuckets - 1)
}

// Cluster reports the latency around which at least share of the counted
// latencies lie within ±10%, and the share found there. It returns 0 when no
// such value exists. A pool's wait timeout or a proxy's read timeout shows
// as a cluster: every request that gave up waited the same time.
func (h *Histogram) Cluster(share float64) (time.Duration, float64) {
	if h == nil || h.n == 0 {
		return 0, 0
	}
	// ±10% is about ±2.5 buckets of 4%: a window of five buckets.
	const w = 5
	best, bestAt := 0, 0
	sum := 0
	for i := 0; i < histBuckets; i++ {
		sum += int(h.counts[i])
		if i >= w {
			sum -= int(h.counts[i-w])
		}
		if sum > best {
			best, bestAt = sum, i-w/2
		}
	}
	got := float64(best) / float64(h.n)
	if got < share {
		return 0, got
	}
	// The window's weighted centre, not its middle bucket: the first
	// window holding the most may have the cluster at its edge.
	var vsum, wsum float64
	for i := max(bestAt-w/2, 0); i <= bestAt+w/2 && i < histBuckets; i++ {
		vsum += float64(h.counts[i]) * float64(bucketValue(i))
		wsum += float64(h.counts[i])
	}
	return time.Duration(vsum / wsum), got
}
