package diagnose

import (
	"fmt"
	"testing"
	"time"

	"github.com/stampede-load/stampede"
)

// locustInput turns the sim's requests into what an import of Locust's
// CSVs gives: per-endpoint totals without histograms, a history row per
// endpoint and second with Locust's rolling median (its window is about
// 10 s), failure groups without timing.
func (s *sim) locustInput() *Input {
	type key struct{ m, n string }
	byEp := map[key][]stampede.Result{}
	var order []key
	for _, r := range s.rs {
		k := key{r.Method, r.Name}
		if _, ok := byEp[k]; !ok {
			order = append(order, k)
		}
		byEp[k] = append(byEp[k], r)
	}
	in := &Input{Run: "sim-locust", Start: s.t0, End: s.t0.Add(s.dur)}
	nsec := int(s.dur / time.Second)
	for _, k := range order {
		rs := byEp[k]
		h := new(Histogram)
		tot := EndpointTotals{Method: k.m, Name: k.n, Min: rs[0].Latency}
		perSec := make([][]time.Duration, nsec+60)
		fails := make([]float64, nsec+60)
		var sum time.Duration
		for _, r := range rs {
			tot.Requests++
			h.Add(r.Latency)
			sum += r.Latency
			tot.Min = min(tot.Min, r.Latency)
			tot.Max = max(tot.Max, r.Latency)
			sec := int(r.End().Sub(s.t0) / time.Second)
			perSec[sec] = append(perSec[sec], r.Latency)
			if r.Outcome != stampede.OK {
				tot.Failures++
				fails[sec]++
			}
		}
		tot.Median, tot.P95, tot.P99 = h.Quantile(0.5), h.Quantile(0.95), h.Quantile(0.99)
		tot.Mean = sum / time.Duration(tot.Requests)
		in.Endpoints = append(in.Endpoints, tot)
		for sec := 0; sec < len(perSec); sec++ {
			if len(perSec[sec]) == 0 {
				continue
			}
			var window []time.Duration
			for w := max(0, sec-9); w <= sec; w++ {
				window = append(window, perSec[w]...)
			}
			med := medianOf(window)
			in.History = append(in.History, Point{Time: s.t0.Add(time.Duration(sec) * time.Second), Method: k.m, Name: k.n,
				Requests: float64(len(perSec[sec])), Failures: fails[sec], Median: med,
				Quantiles: []float64{0.5, 0.95, 1}, Latencies: []time.Duration{med, quantileOf(window, 0.95), quantileOf(window, 1)}})
		}
	}
	type gk struct{ m, n, r string }
	groups := map[gk]int{}
	var gorder []gk
	for _, r := range s.rs {
		if r.Outcome == stampede.OK {
			continue
		}
		k := gk{r.Method, r.Name, r.Reason}
		if _, ok := groups[k]; !ok {
			gorder = append(gorder, k)
		}
		groups[k]++
	}
	for _, k := range gorder {
		in.Failures = append(in.Failures, FailureGroup{Method: k.m, Name: k.n, Reason: k.r, Count: groups[k]})
	}
	in.Evidence = s.ev
	return in
}

func quantileOf(ds []time.Duration, q float64) time.Duration {
	medianOf(ds) // sorts
	i := int(q * float64(len(ds)-1))
	return ds[i]
}

// A page that answered in 25 ms once, then, with the load ramped, took
// seconds from the first row of Locust's history: its floor was read too
// late. It is not slow by itself; its slow requests are the load's, and
// the PostgreSQL log's slow statements, issued while it was slow, explain
// them: the run does not pass.
func TestLateFloorFromRecording(t *testing.T) {
	s := newSim(60 * time.Second)
	s.reqs(0, 60, 4, "GET", "GET /items/", func(sec int) time.Duration {
		if sec == 0 {
			return ms(25)
		}
		return ms(2800 + 40*(sec%5))
	}, nil)
	s.reqs(0, 60, 2, "GET", "GET /dashboard/", constLat(ms(30)), nil)
	for sec := 2; sec < 60; sec++ {
		s.event(float64(sec)+0.9, "postgres", "slow-query", "duration: 2750.100 ms  statement: SELECT * FROM work_item WHERE owner_id = 42 ORDER BY created DESC",
			map[string]string{"duration_ms": "2750.100", "statement": "SELECT * FROM work_item WHERE owner_id = 42 ORDER BY created DESC", "pid": fmt.Sprint(200 + sec%7)})
	}
	in := s.locustInput()
	in.Load = LoadFacts{Model: ModelClosed, Users: 50}
	// Locust's history reads seconds from the start: make its first
	// window already slow, as a ramp that queued at once leaves it.
	for i := range in.History {
		if in.History[i].Name == "GET /items/" {
			in.History[i].Median = max(in.History[i].Median, ms(2800))
			in.History[i].Latencies[0] = max(in.History[i].Latencies[0], ms(2800))
		}
	}
	d := Diagnose(in)
	t.Log(describe(d))
	var items *stampede.SlowEndpoint
	for i := range d.Slow {
		if d.Slow[i].Endpoint == "GET /items/" {
			items = &d.Slow[i]
		}
	}
	if items == nil || items.BySelf || items.Slow == 0 {
		t.Fatalf("GET /items/ (min 25 ms, then 2.8 s) should be slowed by the load, not slow by itself: %+v", d.Slow)
	}
	if items.Floor >= SlowBySelf {
		t.Errorf("floor %s: want it below %s once the fastest request (25 ms) is known", items.Floor, SlowBySelf)
	}
	if d.Verdict != "fail" {
		t.Errorf("verdict %s: a page at 2.8 s with slow statements logged is not a pass", d.Verdict)
	}
	if f := findingOf(d, IDSlowQuery); f == nil || f.Explains.Slow == 0 {
		t.Errorf("want slow-query explaining the slow requests; got %s", describe(d))
	}
}

// A page slow at any concurrency (its fastest request as slow as its
// floor) stays slow by itself.
func TestSlowBySelfStays(t *testing.T) {
	s := newSim(60 * time.Second)
	s.reqs(0, 60, 1, "GET", "GET /export/", func(sec int) time.Duration { return ms(2000 + 10*(sec%7)) }, nil)
	s.reqs(0, 60, 4, "GET", "GET /dashboard/", constLat(ms(30)), nil)
	d := Diagnose(s.input())
	for _, e := range d.Slow {
		if e.Endpoint == "GET /export/" && !e.BySelf {
			t.Errorf("GET /export/ takes 2 s at any load: want slow by itself, got %+v", e)
		}
	}
	d = Diagnose(s.locustInput())
	for _, e := range d.Slow {
		if e.Endpoint == "GET /export/" && !e.BySelf {
			t.Errorf("(Locust) GET /export/ takes 2 s at any load: want slow by itself, got %+v", e)
		}
	}
}

// The results path: every user's first request already queued behind the
// ramp, but the earliest requests of the endpoint answered fast: the floor
// is theirs.
func TestEarlyRequestsSetTheFloor(t *testing.T) {
	s := newSim(40 * time.Second)
	// Ten fast requests at the very start, then the ramp's queue from the
	// same second on: no second of the run is quiet for this endpoint.
	for i := 0; i < 10; i++ {
		s.rs = append(s.rs, stampede.Result{Start: s.at(float64(i) / 100), Name: "GET /items/", Method: "GET", Status: 200, Latency: ms(40), TTFB: ms(36)})
	}
	for i := 0; i < 60; i++ {
		s.rs = append(s.rs, stampede.Result{Start: s.at(0.1 + float64(i)/75), Name: "GET /items/", Method: "GET", Status: 200, Latency: ms(1900), TTFB: ms(1800)})
	}
	s.reqs(1, 40, 30, "GET", "GET /items/", constLat(ms(1900)), nil)
	d := Diagnose(s.input())
	t.Log(describe(d))
	for _, e := range d.Slow {
		if e.Endpoint == "GET /items/" {
			if e.BySelf || e.Floor > ms(100) {
				t.Errorf("want the early requests' floor (40 ms), not slow by itself; got %+v", e)
			}
			return
		}
	}
	t.Errorf("GET /items/ at 1.9 s after 40 ms is slowed by the load: no slow endpoint in %+v", d.Slow)
}

// A page that takes 0.46–1.2 s even alone (a sequential scan whose cost
// varies with the user's rows) has its tenth percentile under SlowBySelf
// and its median well over it: it is slow by itself, and the statements
// logged for it explain its slow requests. A reading that flipped the
// verdict to a pass on the Rails stack when the floor read 0.48 s.
func TestSlowBySelfFromTypicalLatency(t *testing.T) {
	cycle := []time.Duration{ms(460), ms(1100), ms(700), ms(480), ms(900), ms(1200), ms(800), ms(470), ms(950), ms(1000)}
	s := newSim(40 * time.Second)
	s.reqs(0, 40, 1, "GET", "GET /recap/", func(sec int) time.Duration { return cycle[sec%len(cycle)] }, nil)
	s.reqs(0, 40, 4, "GET", "GET /dashboard/", constLat(ms(30)), nil)
	for sec := 0; sec < 40; sec++ {
		lat := cycle[sec%len(cycle)]
		if lat < ms(600) {
			continue
		}
		d := float64(lat/time.Millisecond) - 40
		s.event(float64(sec)+lat.Seconds()-0.02, "postgres", "slow-query", fmt.Sprintf("duration: %.3f ms  statement: SELECT count(*) FROM analyses WHERE work_item_id = 7", d),
			map[string]string{"duration_ms": fmt.Sprintf("%.3f", d), "statement": "SELECT count(*) FROM analyses WHERE work_item_id = 7", "pid": fmt.Sprint(300 + sec%5)})
	}
	d := Diagnose(s.input())
	t.Log(describe(d))
	var recap *stampede.SlowEndpoint
	for i := range d.Slow {
		if d.Slow[i].Endpoint == "GET /recap/" {
			recap = &d.Slow[i]
		}
	}
	if recap == nil || !recap.BySelf || recap.Slow < 20 {
		t.Fatalf("GET /recap/ at a median of 0.9 s alone: want slow by itself with its requests over 500 ms slow, got %+v", d.Slow)
	}
	// Slow by itself, not by the load: the verdict is the thresholds'
	// (docs/diagnosis.md, "Verdict"), the finding is named all the same.
	if f := findingOf(d, IDSlowQuery); f == nil || d.Findings[0].ID != IDSlowQuery || f.Status != stampede.Confirmed || f.Explains.Slow < 20 {
		t.Errorf("want slow-query on top explaining the recap; got %s", describe(d))
	}

	// The same page when its fastest request took a tenth of that: its
	// readings were taken under load, it is not slow by itself.
	s = newSim(40 * time.Second)
	s.reqs(0, 1, 1, "GET", "GET /recap/", constLat(ms(60)), nil)
	s.reqs(1, 40, 1, "GET", "GET /recap/", func(sec int) time.Duration { return cycle[sec%len(cycle)] }, nil)
	s.reqs(0, 40, 4, "GET", "GET /dashboard/", constLat(ms(30)), nil)
	d = Diagnose(s.input())
	for _, e := range d.Slow {
		if e.Endpoint == "GET /recap/" && e.BySelf {
			t.Errorf("GET /recap/ answered in 60 ms once: not slow by itself, got %+v", e)
		}
	}
}
