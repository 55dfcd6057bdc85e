package metrics

import (
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stampede-load/stampede"
)

var t0 = time.Date(2025, 1, 2, 15, 4, 5, 0, time.UTC)

func ms2d(v float64) time.Duration { return time.Duration(v * 1e6) }

func TestCoarseIndex(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want int64 // key, ms
	}{
		{0, 0},
		{ms2d(0.4), 0},
		{ms2d(0.5), 0}, // half to even
		{ms2d(1.5), 2},
		{ms2d(2.5), 2},
		{ms2d(2.500001), 3},
		{ms2d(99.4), 99},
		{ms2d(99.7), 100},
		{ms2d(100), 100},
		{ms2d(145), 140}, // round(145.0, -1) == 140.0 in Python
		{ms2d(147), 150}, // Locust's own example
		{ms2d(155), 160},
		{ms2d(999.9), 1000},
		{ms2d(3432), 3400}, // Locust's own example
		{ms2d(9960), 10000},
		{ms2d(58760), 59000}, // Locust's own example
		{2 * time.Hour, 3600000},
		{-time.Second, 0},
	}
	for _, tt := range tests {
		i := coarseIndex(tt.in)
		if got := coarseKey(i); got != tt.want {
			t.Errorf("coarse(%v) = %d (index %d), want %d", tt.in, got, i, tt.want)
		}
	}
}

// locustPercentile is Locust's calculate_response_time_percentile, over a
// {key: count} map, written as plainly as in Python.
func locustPercentile(times map[int64]int64, n int64, q float64) int64 {
	want := int64(float64(n) * q)
	var keys []int64
	for k := range times {
		keys = append(keys, k)
	}
	// descending
	for i := range keys {
		for j := i + 1; j < len(keys); j++ {
			if keys[j] > keys[i] {
				keys[i], keys[j] = keys[j], keys[i]
			}
		}
	}
	var seen int64
	for _, k := range keys {
		seen += times[k]
		if n-seen <= want {
			return k
		}
	}
	return 0
}

func TestCoarsePercentileMatchesLocust(t *testing.T) {
	var c coarse
	times := map[int64]int64{}
	lat := []float64{0.3, 1.2, 5, 5, 17, 99.8, 120, 147, 356, 360, 374, 999, 1234, 3432, 15000, 58760}
	for i, v := range lat {
		for range i + 1 {
			idx := coarseIndex(ms2d(v))
			c.add(idx)
			times[coarseKey(idx)]++
		}
	}
	for _, q := range Percentiles {
		if got, want := c.percentile(q, nil), locustPercentile(times, c.n, q); got != want {
			t.Errorf("percentile(%v) = %d, want %d", q, got, want)
		}
	}
	// median_from_dict over 136 values: position 67.5.
	if got := c.median(); got != 1000 {
		t.Errorf("median = %d, want 1000", got)
	}
}

func result(start time.Time, method, name string, lat time.Duration, o stampede.Outcome, reason string) *stampede.Result {
	return &stampede.Result{Start: start, Method: method, Name: name, Latency: lat, Status: 200, Bytes: 100, Outcome: o, Reason: reason}
}

func TestAddTickSummary(t *testing.T) {
	m := New(t0)
	// Second 1: 10 GETs of 10..100 ms, 2 failing logins.
	for i := 1; i <= 10; i++ {
		m.Add(result(t0.Add(time.Duration(i)*10*time.Millisecond), "GET", "/", time.Duration(i)*10*time.Millisecond, stampede.OK, ""))
	}
	m.Add(result(t0.Add(200*time.Millisecond), "POST", "[AUTH] Login POST", 300*time.Millisecond, stampede.FailStatus, "HTTP 500"))
	m.Add(result(t0.Add(300*time.Millisecond), "POST", "[AUTH] Login POST", 500*time.Millisecond, stampede.FailContent, "login page returned"))
	s1 := m.Tick(t0.Add(time.Second), 5)
	if s1.Index != 1 || s1.Users != 5 || len(s1.Endpoints) != 2 {
		t.Fatalf("second 1 = %+v", s1)
	}
	if got := s1.Endpoints[0].Name; got != "/" {
		t.Errorf("first row %q, want / (sorted by name)", got)
	}
	if got := s1.Total; got.Requests != 12 || got.Failures != 2 || got.RPS != 12 || got.Outcomes[stampede.FailContent] != 1 {
		t.Errorf("total row = %+v", got)
	}
	if got := s1.Endpoints[0].Percentiles[0]; got < 50*time.Millisecond || got > 50050*time.Microsecond {
		t.Errorf("p50 of / = %v, want 50ms within 0.1%%", got)
	}
	// Locust counts from the top: with 10 requests, the p50 is the value
	// with at most int(10*0.5) = 5 requests above it, the 6th from the top.
	if got := s1.Endpoints[0].Coarse[0]; got != 60 {
		t.Errorf("coarse p50 of / = %v, want 60", got)
	}

	// Twelve more seconds of 1 fast GET each: the window then holds only them.
	for i := 2; i <= 13; i++ {
		at := t0.Add(time.Duration(i-1) * time.Second)
		m.Add(result(at, "GET", "/", time.Millisecond, stampede.OK, ""))
		s := m.Tick(at.Add(time.Second), 10)
		if i == 13 {
			if got := s.Endpoints[0]; got.WindowRequests != 10 || got.Percentiles[10] != time.Millisecond || got.Coarse[10] != 1 {
				t.Errorf("row / at second 13 = %+v, want 10 requests of 1ms in the window", got)
			}
			if got := s.Endpoints[1]; got.WindowRequests != 0 || got.Coarse[0] != 0 || got.TotalRequests != 2 {
				t.Errorf("row login at second 13 = %+v, want an empty window", got)
			}
			if math.Abs(s.Total.RPS-1) > 1e-9 {
				t.Errorf("rps = %v, want 1", s.Total.RPS)
			}
		}
	}

	p := m.Snapshot(t0.Add(13 * time.Second))
	if p.Requests != 24 || p.Failures != 2 || p.Users != 10 || p.RPS != 1 || p.P50 != time.Millisecond || p.Elapsed != 13*time.Second {
		t.Errorf("progress = %+v", p)
	}

	m.SetDropped(3)
	m.Close()
	s := m.Summary(time.Time{})
	if s.Partial || s.Duration != 13*time.Second || s.UsersPeak != 10 || s.Dropped != 3 {
		t.Errorf("summary header = %+v", s)
	}
	login := s.Endpoints[1]
	if login.Name != "[AUTH] Login POST" || login.Requests != 2 || login.FailureRate != 1 ||
		login.Outcomes["status"] != 1 || login.Outcomes["content"] != 1 || login.Outcomes["ok"] != 0 {
		t.Errorf("login = %+v", login)
	}
	if login.Latency.Min != 300*time.Millisecond || login.Latency.Max != 500*time.Millisecond || login.Latency.Avg != 400*time.Millisecond {
		t.Errorf("login latency = %+v", login.Latency)
	}
	if got := s.Aggregated; got.Requests != 24 || got.BytesAvg != 100 || got.Latency.Percentiles[10] != 500*time.Millisecond {
		t.Errorf("aggregated = %+v", got)
	}
	if len(s.Failures) != 2 || s.Failures[0].Reason != "HTTP 500" || s.Failures[1].Outcome != "content" {
		t.Errorf("failures = %+v", s.Failures)
	}
	if s.Aggregated.Histogram == "" {
		t.Error("no histogram after Close")
	}

	// summary.json round trip
	path := filepath.Join(t.TempDir(), "summary.json")
	if err := s.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	back, err := ReadSummary(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.Duration != s.Duration || back.Aggregated.Latency != s.Aggregated.Latency || back.Endpoints[1].Outcomes["content"] != 1 || !back.Start.Equal(s.Start) {
		t.Errorf("read back %+v, want %+v", back, s)
	}
	h, err := DecodeHistogram(back.Aggregated.Histogram)
	if err != nil || h.TotalCount() != 24 {
		t.Errorf("histogram: %v, %v", h, err)
	}
}

func TestSummaryJSONFields(t *testing.T) {
	m := New(t0)
	m.Add(result(t0, "GET", "/", 1500*time.Microsecond, stampede.OK, ""))
	b, err := json.Marshal(m.Summary(t0.Add(2 * time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"duration_s":2`, `"partial":true`, `"latency_ms":{"min":1.5,"avg":1.5,"max":1.5,"p50":1.5`,
		`"p99.99":1.5,"p100":1.5}`, `"outcomes":{"content":0,"ok":1,"status":0,"timeout":0,"transport":0}`,
		`"rps":0.5`, `"name":"Aggregated"`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("summary.json lacks %s:\n%s", want, b)
		}
	}
}

func TestSnapshotConcurrent(t *testing.T) {
	m := New(t0)
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
				_ = m.Snapshot(time.Now())
			}
		}
	})
	for s := range 50 {
		for i := range 100 {
			m.Add(result(t0, "GET", "/"+string(rune('a'+i%3)), time.Millisecond, stampede.OK, ""))
		}
		m.Tick(t0.Add(time.Duration(s+1)*time.Second), s)
	}
	close(done)
	wg.Wait()
	if got := m.Snapshot(t0).Requests; got != 5000 {
		t.Errorf("requests = %d", got)
	}
}

func TestAddDoesNotAllocate(t *testing.T) {
	m := New(t0)
	r := result(t0, "GET", "/", 12*time.Millisecond, stampede.FailStatus, "HTTP 500")
	m.Add(r)
	if n := testing.AllocsPerRun(1000, func() { m.Add(r) }); n != 0 {
		t.Errorf("Add allocates %v times per call", n)
	}
}

func BenchmarkAdd(b *testing.B) {
	m := New(t0)
	names := []string{"/", "/dashboard/", "[AUTH] Login GET", "[AUTH] Login POST", "/rekap/"}
	rs := make([]*stampede.Result, 1024)
	for i := range rs {
		o := stampede.OK
		if i%10 == 0 {
			o = stampede.FailStatus
		}
		rs[i] = result(t0, "GET", names[i%len(names)], time.Duration(200+i*37)*time.Microsecond, o, "HTTP 500")
	}
	for _, r := range rs {
		m.Add(r)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m.Add(rs[i&1023])
		i++
	}
}

func BenchmarkTick(b *testing.B) {
	m := New(t0)
	for i := range 20 {
		for j := range 1000 {
			m.Add(result(t0, "GET", "/"+string(rune('a'+i)), time.Duration(j)*time.Millisecond, stampede.OK, ""))
		}
	}
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Second)
		for i := range 20 {
			m.Add(result(t0, "GET", "/"+string(rune('a'+i)), time.Duration(i)*time.Millisecond, stampede.OK, ""))
		}
		m.Tick(now, 1)
	}
}
