package diagnose

import (
	"strings"
	"testing"
	"time"

	"github.com/stampede-load/stampede"
)

// blockedSim: an event loop blocked by a CPU-bound export. When exports
// are in flight, every page waits — the login form too — while the
// database idles and the host has a core to spare.
func blockedSim(dbBusy bool) *sim {
	s := newSim(60 * time.Second)
	busy := func(sec int) bool { return sec >= 6 && sec%10 < 5 }
	s.reqs(0, 60, 1, "GET", "GET /export/", func(sec int) time.Duration {
		if busy(sec) {
			return ms(2600)
		}
		return ms(950)
	}, nil)
	slowWhenBusy := func(fast time.Duration) func(int) time.Duration {
		return func(sec int) time.Duration {
			if busy(sec) {
				return ms(1800) + fast
			}
			return fast
		}
	}
	s.reqs(0, 60, 2, "GET", "[AUTH] Login GET", slowWhenBusy(ms(8)), nil)
	s.reqs(0, 60, 3, "GET", "GET /dashboard/", slowWhenBusy(ms(25)), nil)
	for sec := 0; sec < 62; sec++ {
		lock, active := 0.0, 1.0
		if dbBusy && busy(sec) {
			lock, active = 6, 8
		}
		s.sample(sec, "postgres", map[string]float64{"backends": 6, "state:active": active, "wait:Lock": lock, "oldest_query_s": 0.1}, nil, "")
		s.sample(sec, "pgbouncer", map[string]float64{"cl_active": 4, "cl_waiting": 0, "sv_active": 1, "sv_idle": 3}, nil, "")
		top := "4242\tnode\tapp\t34.0"
		if busy(sec) {
			top = "4242\tnode\tapp\t99.0\n77\tstampede\tstampede\t6.0"
		}
		s.sample(sec, "host", map[string]float64{"cores": 2, "cpu_busy_pct": 54, "cpu_pct:app": 99, "cpu_pct:stampede": 6},
			map[string]string{"cpu_app": "node", "cpu_top": top}, "")
	}
	return s
}

func TestBlockedEventLoop(t *testing.T) {
	d := Diagnose(blockedSim(false).input())
	t.Log(describe(d))
	if len(d.Findings) == 0 || d.Findings[0].ID != IDWorkerSaturation || d.Findings[0].Status != stampede.Confirmed {
		t.Fatalf("want app-worker-saturation confirmed on top; got %s", describe(d))
	}
	top := d.Findings[0]
	if !strings.Contains(top.Title, "GET /export/") {
		t.Errorf("the title should name the page that holds the workers: %q", top.Title)
	}
	for _, want := range []string{"slow together", "[AUTH] Login GET", "at 99% of one core", "no session waited on a lock"} {
		if !hasEvidence(&top, want) {
			t.Errorf("no evidence with %q: %+v", want, top.Evidence)
		}
	}
	if !containsStr(top.Explains.Endpoints, "GET /dashboard/") || !containsStr(top.Explains.Endpoints, "[AUTH] Login GET") {
		t.Errorf("want the pages that wait for the worker explained: %v", top.Explains.Endpoints)
	}
	if f := findingOf(d, IDSlowQuery); f != nil && f.Explains.Total() > 0 {
		t.Errorf("slow-query named without a slow statement: %s", describe(d))
	}
}

// The same slowdown while sessions wait on locks: the database is busy,
// the workers are not the story.
func TestBlockedWorkersNeedIdleDatabase(t *testing.T) {
	d := Diagnose(blockedSim(true).input())
	t.Log(describe(d))
	if f := findingOf(d, IDWorkerSaturation); f != nil && f.CausedBy == "" && strings.Contains(f.Title, "blocked") {
		t.Errorf("blocked workers named while the database waited on locks: %s", describe(d))
	}
}

func containsStr(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
