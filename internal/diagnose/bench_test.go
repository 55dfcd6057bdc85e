package diagnose

import (
	"fmt"
	"testing"
	"time"

	"github.com/stampede-load/stampede"
)

// synthetic returns n requests over ten minutes on six endpoints, 3% of
// them failing with a handful of reasons (one carrying a port number, as
// transport errors do), plus probe samples and log events.
func synthetic(n int) *Input {
	start := time.Date(2026, 1, 11, 11, 40, 0, 0, time.UTC)
	names := []string{"[AUTH] Login GET", "[AUTH] Login POST", "GET /dashboard/", "GET /rekap/", "GET /list-pekerjaan/", "POST /pekerjaan/update"}
	methods := []string{"GET", "POST", "GET", "GET", "GET", "POST"}
	ports := make([]string, 64)
	for i := range ports {
		ports[i] = fmt.Sprintf("read tcp 127.0.0.1:%d->127.0.0.1:8000: read: connection reset by peer", 40000+i)
	}
	rs := make([]stampede.Result, n)
	dur := 600 * time.Second
	for i := range rs {
		r := &rs[i]
		k := i % len(names)
		r.Start = start.Add(time.Duration(int64(dur) * int64(i) / int64(n)))
		r.Name, r.Method = names[k], methods[k]
		r.User = i%500 + 1
		r.Status = 200
		r.Latency = time.Duration(20+i%80) * time.Millisecond
		switch {
		case i%97 == 0 && k == 1:
			r.Status, r.Outcome, r.Reason, r.Latency = 500, stampede.FailStatus, "HTTP 500", 120*time.Second
		case i%89 == 0 && k == 1:
			r.Outcome, r.Reason = stampede.FailContent, "login page returned: Too many failed login attempts. Try again later."
		case i%211 == 0:
			r.Status, r.Outcome, r.Reason = 0, stampede.FailTransport, ports[i%len(ports)]
		case i%101 == 0:
			r.Status, r.Outcome, r.Reason, r.Latency = 502, stampede.FailStatus, "HTTP 502", 30*time.Second
		}
	}
	in := &Input{Run: "bench", Start: start, End: start.Add(dur + 2*time.Minute), Results: rs,
		Load: LoadFacts{Model: ModelClosed, Users: 500, SpawnRate: 50, Accounts: 500, Assignment: AssignUnique, SourceIPs: 1}}
	for t := time.Duration(0); t < dur; t += time.Second {
		at := start.Add(t)
		in.Timeline = append(in.Timeline,
			stampede.Sample{Time: at, Source: "pgbouncer", Values: map[string]float64{"cl_waiting": 30, "sv_idle": 0, "cl_active": 20, "maxwait_s": 100, "default_pool_size": 20, "query_wait_timeout_s": 120}},
			stampede.Sample{Time: at, Source: "postgres", Values: map[string]float64{"backends": 20, "max_connections": 100, "wait:Lock": 0, "oldest_query_s": 0.1}},
			stampede.Sample{Time: at, Source: "host", Values: map[string]float64{"cpu_busy_pct": 40, "cores": 4}})
		if t%(2*time.Second) == 0 {
			in.Evidence = append(in.Evidence, stampede.Evidence{Time: at.Add(120 * time.Second), Source: "pgbouncer",
				Message: "closing because: query_wait_timeout (age=120s)", Ref: fmt.Sprintf("pgbouncer.log:%d", t/time.Second)})
		}
	}
	return in
}

// BenchmarkDiagnose1M diagnoses a synthetic run of 1,000,000 requests from
// the per-request records: aggregation in one pass, then the rules.
func BenchmarkDiagnose1M(b *testing.B) {
	in := synthetic(1_000_000)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		d := Diagnose(in)
		if len(d.Findings) == 0 {
			b.Fatal("no findings")
		}
	}
}

func TestDiagnose1MUnder10s(t *testing.T) {
	if testing.Short() {
		t.Skip("large input")
	}
	in := synthetic(1_000_000)
	t0 := time.Now()
	d := Diagnose(in)
	el := time.Since(t0)
	limit := 10 * time.Second
	if raceEnabled {
		limit *= 6 // the race detector slows the single pass several times
	}
	if el > limit {
		t.Errorf("diagnosing 1,000,000 requests took %v, want < %v", el, limit)
	}
	if d.Verdict != "fail" || len(d.Findings) == 0 {
		t.Errorf("got verdict %s with %d findings", d.Verdict, len(d.Findings))
	}
	t.Logf("1,000,000 requests diagnosed in %v; findings: %d", el, len(d.Findings))
}
