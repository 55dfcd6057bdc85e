package diagnose

import (
	"strings"
	"testing"
	"time"

	"github.com/stampede-load/stampede"
)

// The app's own pool times out (SQLAlchemy's QueuePool, logged as a JSON
// line) while PgBouncer has idle server connections and PostgreSQL is far
// from max_connections, on a busy host: the queue is in the app. Not the
// CPU, not PgBouncer.
func TestAppPoolTimeout(t *testing.T) {
	s := newSim(40 * time.Second)
	fail := func(sec int) (int, stampede.Outcome, string) {
		if sec >= 10 && sec%3 == 0 {
			return 500, stampede.FailStatus, "HTTP 500 (Internal Server Error)"
		}
		return 0, stampede.OK, ""
	}
	s.reqs(0, 40, 3, "POST", "[AUTH] Login POST", constLat(ms(80)), nil)
	s.reqs(0, 40, 4, "GET", "GET /items/", func(sec int) time.Duration {
		if sec >= 10 && sec%3 == 0 {
			return ms(2010)
		}
		return ms(40)
	}, fail)
	for sec := 10; sec < 40; sec += 3 {
		for k := 0; k < 4; k++ {
			e := stampede.Evidence{Time: s.at(float64(sec) + 1.9 + 0.01*float64(k)), Source: "app", Signature: "sqlalchemy-pool-timeout",
				Class: IDPoolWaitTimeout, Level: "ERROR", Message: "Exception on /items/ [GET]",
				Exception: "sqlalchemy.exc.TimeoutError: QueuePool limit of size 2 overflow 0 reached, connection timed out, timeout 2.00",
				Ref:       "app.log:1"}
			s.ev = append(s.ev, e)
		}
	}
	for sec := 0; sec < 42; sec++ {
		s.sample(sec, "pgbouncer", map[string]float64{"cl_active": 4, "cl_waiting": 0, "sv_active": 2, "sv_idle": 8, "maxwait_s": 0, "default_pool_size": 20}, nil, "")
		s.sample(sec, "postgres", map[string]float64{"backends": 6, "max_connections": 100, "state:active": 1, "wait:Lock": 0}, nil, "")
		s.sample(sec, "host", map[string]float64{"cores": 2, "cpu_busy_pct": 95, "proc_cpu_pct": 185}, nil, "")
	}
	d := Diagnose(s.input())
	t.Log(describe(d))
	if len(d.Findings) == 0 || d.Findings[0].ID != IDPoolWaitTimeout || d.Findings[0].Status != stampede.Confirmed {
		t.Fatalf("want db-pool-wait-timeout confirmed on top; got %s", describe(d))
	}
	top := d.Findings[0]
	if !strings.Contains(top.Title, "app's own database pool (SQLAlchemy)") {
		t.Errorf("the title should name the app's pool and its library: %q", top.Title)
	}
	if !hasEvidence(&top, "PgBouncer had no client waiting") {
		t.Errorf("the evidence should say PgBouncer had capacity: %+v", top.Evidence)
	}
	if !strings.Contains(top.Fix, "pool_size + max_overflow") {
		t.Errorf("the fix should name SQLAlchemy's setting: %q", top.Fix)
	}
	if top.Explains.Failures != 40 {
		t.Errorf("explains %d failures, want 40", top.Explains.Failures)
	}
}
