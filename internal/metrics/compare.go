package metrics

import (
	"errors"
	"math"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Comparison compares the latencies of one endpoint in two runs, A (before)
// and B (after).
type Comparison struct {
	// NA and NB count the requests of each run.
	NA, NB int64
	// U is the Mann-Whitney U statistic of A: how many (a, b) pairs have
	// a > b, ties counting one half.
	U float64
	// Z is U standardised with the tie-corrected variance and a continuity
	// correction; negative when A tends to be faster than B.
	Z float64
	// P is the two-sided p-value of "the latency distributions differ"
	// (normal approximation): a small P says the change is not noise.
	P float64
	// P50, P95 and P99 compare those percentiles.
	P50, P95, P99 Change
}

// Change is how a percentile moved from A to B.
type Change struct {
	A, B time.Duration
	// Delta is B - A.
	Delta time.Duration
	// Ratio is B / A; 0 when A is 0.
	Ratio float64
}

// Significant reports whether P is below alpha (0.05, 0.01 ...).
func (c *Comparison) Significant(alpha float64) bool { return c.P < alpha }

// Compare runs a Mann-Whitney U test on two latency histograms made by this
// package (NewHistogram, Endpoint.Histogram, DecodeHistogram). It works from
// the histograms' buckets, so its cost does not depend on the number of
// requests: latencies within one bucket (0.1% wide) count as ties, which
// makes the test slightly conservative. It fails when either histogram is
// empty or their bounds differ.
func Compare(a, b *hdrhistogram.Histogram) (Comparison, error) {
	if a.LowestTrackableValue() != b.LowestTrackableValue() ||
		a.HighestTrackableValue() != b.HighestTrackableValue() ||
		a.SignificantFigures() != b.SignificantFigures() {
		return Comparison{}, errors.New("compare: histograms have different bounds")
	}
	c := Comparison{NA: a.TotalCount(), NB: b.TotalCount()}
	if c.NA == 0 || c.NB == 0 {
		return Comparison{}, errors.New("compare: a histogram has no latency")
	}
	// The same bounds give the same buckets, and bucket index order is value
	// order: ranks follow from the counts alone.
	ca, cb := a.Export().Counts, b.Export().Counts
	if len(ca) != len(cb) {
		return Comparison{}, errors.New("compare: histograms have different bucket counts")
	}
	na, nb := float64(c.NA), float64(c.NB)
	n := na + nb
	var below, rankSumA, ties float64 // values ranked so far; sum of A's ranks; Σ(t³ - t)
	for i := range ca {
		x, y := float64(ca[i]), float64(cb[i])
		t := x + y
		if t == 0 {
			continue
		}
		// The t tied values hold ranks below+1 .. below+t: each gets their mean.
		rankSumA += x * (below + (t+1)/2)
		ties += t*t*t - t
		below += t
	}
	c.U = rankSumA - na*(na+1)/2
	mean := na * nb / 2
	variance := na * nb / 12 * ((n + 1) - ties/(n*(n-1)))
	if variance > 0 {
		d := c.U - mean
		// Continuity correction: move half a unit toward the mean.
		d -= math.Copysign(math.Min(0.5, math.Abs(d)), d)
		c.Z = d / math.Sqrt(variance)
		c.P = math.Erfc(math.Abs(c.Z) / math.Sqrt2)
	} else {
		c.P = 1 // every value tied: nothing differs
	}
	pct := func(h *hdrhistogram.Histogram, q float64) time.Duration {
		return time.Duration(h.ValueAtQuantile(q)) * time.Microsecond
	}
	c.P50 = change(pct(a, 50), pct(b, 50))
	c.P95 = change(pct(a, 95), pct(b, 95))
	c.P99 = change(pct(a, 99), pct(b, 99))
	return c, nil
}

func change(a, b time.Duration) Change {
	ch := Change{A: a, B: b, Delta: b - a}
	if a > 0 {
		ch.Ratio = float64(b) / float64(a)
	}
	return ch
}
