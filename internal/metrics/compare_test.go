package metrics

import (
	"math"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

func hist(us ...int64) *hdrhistogram.Histogram {
	h := NewHistogram()
	for _, v := range us {
		_ = h.RecordValue(v)
	}
	return h
}

// The expected figures follow the textbook normal approximation with tie
// correction and continuity correction (scipy.stats.mannwhitneyu with
// method="asymptotic" gives the same p-values).
func TestCompare(t *testing.T) {
	tests := []struct {
		name    string
		a, b    []int64
		u, z, p float64
	}{
		{"disjoint", []int64{1, 2, 3, 4, 5}, []int64{6, 7, 8, 9, 10}, 0, -2.5067182457620487, 0.012185780355344818},
		{"ties", []int64{1, 2, 2, 3, 7}, []int64{2, 3, 3, 4, 5, 6}, 9, -1.0229289554014698, 0.306341437827711},
		{"same", []int64{5, 5, 5}, []int64{5, 5}, 3, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Compare(hist(tt.a...), hist(tt.b...))
			if err != nil {
				t.Fatal(err)
			}
			if c.U != tt.u || math.Abs(c.Z-tt.z) > 1e-9 || math.Abs(c.P-tt.p) > 1e-9 {
				t.Errorf("U=%v Z=%v P=%v, want U=%v Z=%v P=%v", c.U, c.Z, c.P, tt.u, tt.z, tt.p)
			}
		})
	}
}

func TestCompareLarge(t *testing.T) {
	a, b := NewHistogram(), NewHistogram()
	for i := range int64(100000) {
		_ = a.RecordValues(1000+i%1000, 10) // 1.0-2.0 ms
		_ = b.RecordValues(1100+i%1000, 10) // shifted by 0.1 ms
	}
	c, err := Compare(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if c.NA != 1e6 || !c.Significant(0.001) || c.Z >= 0 {
		t.Errorf("comparison = %+v, want a significant slowdown", c)
	}
	if c.P50.Delta < 90*time.Microsecond || c.P50.Delta > 110*time.Microsecond || c.P99.Ratio <= 1 {
		t.Errorf("p50 %+v p99 %+v", c.P50, c.P99)
	}
	if _, err := Compare(a, NewHistogram()); err == nil {
		t.Error("no error for an empty histogram")
	}
	if _, err := Compare(a, hdrhistogram.New(1, 1000, 2)); err == nil {
		t.Error("no error for different bounds")
	}
}
