package metrics_test

import (
	"fmt"
	"time"

	"github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/metrics"
)

func Example() {
	start := time.Date(2025, 1, 2, 15, 4, 5, 0, time.UTC)
	m := metrics.New(start)
	for i := range 100 {
		r := &stampede.Result{Start: start, Method: "POST", Name: "[AUTH] Login POST", Latency: time.Duration(i+1) * 10 * time.Millisecond}
		if i%10 == 0 {
			r.Outcome, r.Reason = stampede.FailStatus, "HTTP 500"
		}
		m.Add(r) // on the recorder goroutine
	}
	sec := m.Tick(start.Add(time.Second), 10) // once a second
	fmt.Println("second", sec.Index, "rps", sec.Total.RPS)
	m.Close()

	s := m.Summary(time.Time{})
	ts, err := metrics.ParseThresholds(map[string][]string{
		"[AUTH] Login POST": {"failure_rate < 1%", "p95 < 500ms"},
		"all":               {"requests >= 100"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range metrics.Evaluate(ts, s) {
		fmt.Println(r)
	}
	// Output:
	// second 1 rps 100
	// POST [AUTH] Login POST: failure_rate < 1%: 10% FAIL
	// POST [AUTH] Login POST: p95 < 500ms: 950.271ms FAIL
	// all: requests >= 100: 100 ok
}
