package diagnose

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stampede-load/stampede"
)

// sim builds a run second by second: requests per endpoint with their
// latency and outcome, probe samples and log events. It is for the cases
// the recorded fixtures cannot isolate: one mechanism at a time, with the
// timing controlled.
type sim struct {
	t0  time.Time
	rs  []stampede.Result
	tl  []stampede.Sample
	ev  []stampede.Evidence
	dur time.Duration
}

func newSim(d time.Duration) *sim {
	return &sim{t0: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC), dur: d}
}

func (s *sim) at(sec float64) time.Time {
	return s.t0.Add(time.Duration(sec * float64(time.Second)))
}

// reqs adds n requests per second from second a to b (excluded) of one
// endpoint, started evenly in each second, with latency lat(second).
func (s *sim) reqs(a, b int, n int, method, name string, lat func(sec int) time.Duration, fail func(sec int) (int, stampede.Outcome, string)) {
	for sec := a; sec < b; sec++ {
		for i := 0; i < n; i++ {
			r := stampede.Result{Start: s.at(float64(sec) + float64(i)/float64(n)), Name: name, Method: method, Status: 200, Latency: lat(sec), TTFB: lat(sec) * 9 / 10}
			if fail != nil {
				if st, out, reason := fail(sec); out != stampede.OK {
					r.Status, r.Outcome, r.Reason = st, out, reason
				}
			}
			s.rs = append(s.rs, r)
		}
	}
}

func (s *sim) sample(sec int, source string, values map[string]float64, info map[string]string, err string) {
	s.tl = append(s.tl, stampede.Sample{Time: s.at(float64(sec)), Source: source, Values: values, Info: info, Err: err})
}

func (s *sim) event(sec float64, source, class, msg string, fields map[string]string) {
	s.ev = append(s.ev, stampede.Evidence{Time: s.at(sec), Source: source, Class: class, Message: msg, Fields: fields,
		Ref: fmt.Sprintf("%s.log:%d", source, len(s.ev)+1)})
}

func (s *sim) input() *Input {
	in := NewInput("sim", s.t0, s.t0.Add(s.dur), s.rs)
	in.Timeline, in.Evidence = s.tl, s.ev
	in.Load = LoadFacts{Model: ModelClosed, Users: 50, SpawnRate: 10, Accounts: 50, Assignment: AssignUnique, SourceIPs: 1,
		LoginEndpoints: []string{"[AUTH] Login POST"}}
	return in
}

func constLat(d time.Duration) func(int) time.Duration { return func(int) time.Duration { return d } }

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func findingOf(d stampede.Diagnosis, id string) *stampede.Finding {
	for i := range d.Findings {
		if d.Findings[i].ID == id {
			return &d.Findings[i]
		}
	}
	return nil
}

func describe(d stampede.Diagnosis) string {
	var s []string
	for _, f := range d.Findings {
		id := f.ID
		if f.CausedBy != "" {
			id = f.CausedBy + ">" + id
		}
		s = append(s, fmt.Sprintf("%s(%s,%d+%d slow)", id, f.Status, f.Explains.Failures, f.Explains.Slow))
	}
	return d.Verdict + ": " + strings.Join(s, " ")
}

func hasEvidence(f *stampede.Finding, text string) bool {
	for _, e := range f.Evidence {
		if strings.Contains(strings.ToLower(e.Text), strings.ToLower(text)) {
			return true
		}
	}
	return false
}

// Logins queue on a row lock from second 5: no request fails, but the
// login takes seconds while PostgreSQL shows sessions waiting on the lock
// behind a blocker idle in transaction. The lock is named first, explains
// the slow logins, quotes the blocking query, and fails the run.
func TestLockContentionWithoutFailures(t *testing.T) {
	s := newSim(60 * time.Second)
	s.reqs(0, 60, 4, "POST", "[AUTH] Login POST", func(sec int) time.Duration {
		if sec < 5 {
			return ms(180)
		}
		return ms(3000 + 50*(sec%10))
	}, nil)
	s.reqs(0, 60, 10, "GET", "GET /dashboard/", constLat(ms(25)), nil)
	for sec := 0; sec < 62; sec++ {
		v := map[string]float64{"backends": 20, "wait:Lock": 0, "state:active": 2, "state:idle in transaction": 0, "blocked": 0, "blockers": 0}
		var info map[string]string
		if sec >= 5 {
			v["wait:Lock"], v["wait:Lock:transactionid"], v["blocked"], v["blockers"], v["state:idle in transaction"] = 12, 12, 12, 1, 1
			info = map[string]string{"blocked": "pid 201 (transactionid) blocked by 200 (idle in transaction, xact 2.1s: SELECT id, logins FROM site_counter WHERE id = 1 FOR UPDATE): SELECT id, logins FROM site_counter WHERE id = 1 FOR UPDATE"}
		}
		s.sample(sec, "postgres", v, info, "")
		s.sample(sec, "host", map[string]float64{"cpu_busy_pct": 35, "cores": 2}, nil, "")
	}
	d := Diagnose(s.input())
	t.Log(describe(d))
	if len(d.Findings) == 0 || d.Findings[0].ID != IDLockContention || d.Findings[0].Status != stampede.Confirmed {
		t.Fatalf("want db-lock-contention confirmed first; got %s", describe(d))
	}
	f := d.Findings[0]
	if f.Explains.Failures != 0 || f.Explains.Slow < 200 {
		t.Errorf("explains %+v, want the ~220 slow logins and no failure", f.Explains)
	}
	if len(f.Explains.Endpoints) != 1 || f.Explains.Endpoints[0] != "[AUTH] Login POST" {
		t.Errorf("endpoints %v, want the login only (the dashboard stays fast)", f.Explains.Endpoints)
	}
	if !hasEvidence(&f, "FOR UPDATE") {
		t.Errorf("the blocking query is not in the evidence: %+v", f.Evidence)
	}
	if f.Explains.Latency == "" {
		t.Errorf("no latency accounted for")
	}
	if d.Verdict != "fail" {
		t.Errorf("verdict %s, want fail: a confirmed finding explains load-induced slowness", d.Verdict)
	}
	if findingOf(d, IDUnexplainedSlow) != nil {
		t.Errorf("slowness left unexplained: %s", describe(d))
	}
}

// The same slow logins with no evidence at all: the slowness is counted
// under unexplained-slowness, which says what to capture; no cause is
// named, and the run is not called healthy.
func TestUnexplainedSlowness(t *testing.T) {
	s := newSim(60 * time.Second)
	s.reqs(0, 60, 4, "POST", "[AUTH] Login POST", func(sec int) time.Duration {
		if sec < 5 {
			return ms(180)
		}
		return ms(3000)
	}, nil)
	s.reqs(0, 60, 10, "GET", "GET /dashboard/", constLat(ms(25)), nil)
	d := Diagnose(s.input())
	t.Log(describe(d))
	f := findingOf(d, IDUnexplainedSlow)
	if f == nil || f.Explains.Slow < 200 || d.Findings[0].ID != IDUnexplainedSlow {
		t.Fatalf("want unexplained-slowness first with the slow logins; got %s", describe(d))
	}
	if !strings.Contains(f.NextExperiment, "log_min_duration_statement") {
		t.Errorf("next experiment does not say what to capture: %s", f.NextExperiment)
	}
	for _, x := range d.Findings {
		if x.ID == IDSlowQuery && (x.Status == stampede.Confirmed || x.Status == stampede.Likely) {
			t.Errorf("a slow query is blamed with no query in the evidence: %s", describe(d))
		}
	}
}

// Redis refuses connections from second 20 to 30: the app answers 500 and,
// where it ignores cache errors, sends users back to the login page. Redis
// is the root; the lost sessions are attached to it.
func TestRedisOutageChainsLostSessions(t *testing.T) {
	s := newSim(60 * time.Second)
	down := func(sec int) bool { return sec >= 20 && sec < 30 }
	s.reqs(0, 60, 10, "GET", "GET /dashboard/", constLat(ms(20)), func(sec int) (int, stampede.Outcome, string) {
		if down(sec) {
			if sec%2 == 0 {
				return 500, stampede.FailStatus, "HTTP 500"
			}
			return 302, stampede.FailContent, "redirected to login page: session lost"
		}
		return 0, stampede.OK, ""
	})
	s.reqs(0, 60, 2, "POST", "[AUTH] Login POST", constLat(ms(150)), nil)
	for sec := 0; sec < 62; sec++ {
		if down(sec) {
			s.sample(sec, "redis", nil, nil, "dial tcp 127.0.0.1:6379: connect: connection refused")
			s.event(float64(sec)+0.5, "app-errors", "redis-unavailable", "Internal Server Error: /dashboard/ — redis.exceptions.ConnectionError: Error 111 connecting to 127.0.0.1:6379. Connection refused.", nil)
			continue
		}
		s.sample(sec, "redis", map[string]float64{"connected_clients": 8, "maxclients": 10000, "ping_ms": 0.3}, nil, "")
	}
	d := Diagnose(s.input())
	t.Log(describe(d))
	if d.Findings[0].ID != IDRedisUnavailable {
		t.Fatalf("want redis-unavailable first; got %s", describe(d))
	}
	if !strings.Contains(d.Findings[0].Title, "10:00:20") {
		t.Errorf("the outage's start is not named: %q", d.Findings[0].Title)
	}
	lost := findingOf(d, IDSessionLost)
	if lost == nil || lost.CausedBy != IDRedisUnavailable {
		t.Fatalf("session-lost not attached to redis-unavailable: %s", describe(d))
	}
	if d.Findings[0].Explains.Failures != 100 {
		t.Errorf("the root explains %d failures, want all 100 (its 500s and the lost sessions)", d.Findings[0].Explains.Failures)
	}
}

// Redis at maxclients: refusals, 500s and lost sessions; the connection
// limit is the root, the lost sessions its consequence.
func TestRedisMaxClientsChainsLostSessions(t *testing.T) {
	s := newSim(60 * time.Second)
	full := func(sec int) bool { return sec >= 10 }
	s.reqs(0, 60, 10, "GET", "GET /dashboard/", constLat(ms(20)), func(sec int) (int, stampede.Outcome, string) {
		if full(sec) && sec%3 == 0 {
			return 302, stampede.FailContent, "redirected to login page: session lost"
		}
		if full(sec) && sec%3 == 1 {
			return 500, stampede.FailStatus, "HTTP 500"
		}
		return 0, stampede.OK, ""
	})
	s.reqs(0, 60, 2, "POST", "[AUTH] Login POST", constLat(ms(150)), nil)
	for sec := 0; sec < 62; sec++ {
		v := map[string]float64{"connected_clients": 5, "maxclients": 20}
		if full(sec) {
			v["connected_clients"], v["rejected_connections_delta"] = 20, 30
			if sec%3 == 1 {
				s.event(float64(sec)+0.5, "app-errors", "redis-connection-limit", "Internal Server Error: /dashboard/ — redis.exceptions.ConnectionError: max number of clients reached", nil)
			}
		}
		s.sample(sec, "redis", v, nil, "")
	}
	d := Diagnose(s.input())
	t.Log(describe(d))
	if d.Findings[0].ID != IDRedisConnLimit {
		t.Fatalf("want redis-connection-limit first; got %s", describe(d))
	}
	if lost := findingOf(d, IDSessionLost); lost == nil || lost.CausedBy != IDRedisConnLimit {
		t.Fatalf("session-lost not attached to redis-connection-limit: %s", describe(d))
	}
}

// The app restarts at second 20 (refused for 3 s) and has kept its
// sessions in memory: every logged-in user is bounced once right after.
// The restart is the root of the lost sessions, not a per-process store.
func TestRestartChainsLostSessions(t *testing.T) {
	s := newSim(60 * time.Second)
	s.reqs(0, 60, 10, "GET", "GET /dashboard/", constLat(ms(20)), func(sec int) (int, stampede.Outcome, string) {
		switch {
		case sec >= 20 && sec < 23:
			return 0, stampede.FailTransport, "dial tcp 127.0.0.1:8000: connect: connection refused"
		case sec >= 23 && sec < 28:
			return 302, stampede.FailContent, "redirected to login page: session lost"
		}
		return 0, stampede.OK, ""
	})
	s.reqs(0, 60, 2, "POST", "[AUTH] Login POST", constLat(ms(150)), nil)
	d := Diagnose(s.input())
	t.Log(describe(d))
	if d.Findings[0].ID != IDTargetDown {
		t.Fatalf("want target-down first; got %s", describe(d))
	}
	lost := findingOf(d, IDSessionLost)
	if lost == nil || lost.CausedBy != IDTargetDown {
		t.Fatalf("session-lost not attached to target-down: %s", describe(d))
	}
	if strings.Contains(lost.Fix, "LocMemCache") {
		t.Errorf("lost sessions after a restart blamed on a per-process store: %s", lost.Fix)
	}
}

// Two pages are slow: /export/ spends its time outside the database (no
// statement runs long while it is in flight) and /recap/ runs a statement
// PostgreSQL logs as slow. The slow query is /recap/'s, not the slowest
// page's.
func TestSlowQueryJoinsStatementsToTheirEndpoint(t *testing.T) {
	s := newSim(60 * time.Second)
	s.reqs(0, 60, 5, "GET", "GET /dashboard/", constLat(ms(20)), nil)
	// /recap/ is fast until second 20, then its query gets slow.
	recapLat := func(sec int) time.Duration {
		if sec < 20 {
			return ms(80)
		}
		return ms(2500)
	}
	s.reqs(0, 60, 1, "GET", "GET /recap/", recapLat, nil)
	// /export/ is slower still, all run long, in bursts.
	s.reqs(0, 60, 1, "GET", "GET /export/", func(sec int) time.Duration {
		if sec%10 < 5 {
			return ms(9000)
		}
		return ms(60)
	}, nil)
	for sec := 20; sec < 60; sec++ {
		s.event(float64(sec)+2.45, "postgres", "slow-query", "duration: 2400.123 ms  execute <unnamed>: SELECT sum(amount) FROM ledger WHERE account_id = $1",
			map[string]string{"duration_ms": "2400.123", "statement": "SELECT sum(amount) FROM ledger WHERE account_id = $1", "pid": fmt.Sprint(100 + sec)})
	}
	for sec := 0; sec < 62; sec++ {
		s.sample(sec, "postgres", map[string]float64{"backends": 10, "state:active": 2, "wait:Lock": 0, "oldest_query_s": 0}, nil, "")
	}
	d := Diagnose(s.input())
	t.Log(describe(d))
	f := findingOf(d, IDSlowQuery)
	if f == nil || f.Status != stampede.Confirmed {
		t.Fatalf("want slow-query confirmed; got %s", describe(d))
	}
	if len(f.Explains.Endpoints) == 0 || f.Explains.Endpoints[0] != "GET /recap/" {
		t.Fatalf("slow-query explains %v, want GET /recap/", f.Explains.Endpoints)
	}
	for _, e := range f.Explains.Endpoints {
		if e == "GET /export/" {
			t.Errorf("slow-query blames /export/, whose time went elsewhere")
		}
	}
	if !strings.Contains(f.Title, "ledger") {
		t.Errorf("the title does not name the query: %q", f.Title)
	}
}

// Hashing saturates the CPU: logins grow slow with their concurrency and
// the other pages slow down with them. The hash is the root; the CPU
// saturation that slows the other pages is attached to it.
func TestHashChainsCPUSaturation(t *testing.T) {
	s := newSim(60 * time.Second)
	// Logins: 2 per second; latency grows with the logins in flight.
	s.reqs(0, 60, 2, "POST", "[AUTH] Login POST", func(sec int) time.Duration {
		return ms(300 + 150*min(sec, 40))
	}, nil)
	s.reqs(0, 60, 10, "GET", "GET /dashboard/", func(sec int) time.Duration {
		if sec < 10 {
			return ms(20)
		}
		return ms(900)
	}, nil)
	for sec := 0; sec < 62; sec++ {
		cpu := 40.0
		if sec >= 8 {
			cpu = 99
		}
		s.sample(sec, "host", map[string]float64{"cpu_busy_pct": cpu, "cores": 2, "proc_cpu_pct": cpu * 2, "load1": 6}, nil, "")
	}
	d := Diagnose(s.input())
	t.Log(describe(d))
	if d.Findings[0].ID != IDPasswordHashCPU {
		t.Fatalf("want password-hash-cpu first; got %s", describe(d))
	}
	cpu := findingOf(d, IDCPUSaturation)
	if cpu == nil || cpu.CausedBy != IDPasswordHashCPU {
		t.Fatalf("cpu-saturation not attached to password-hash-cpu: %s", describe(d))
	}
	if d.Findings[0].Explains.Slow < 400 {
		t.Errorf("the hash explains %d slow requests, want the slow logins and the slowed dashboards", d.Findings[0].Explains.Slow)
	}
}

// A latency threshold defines slowness: the login's p95 < 500ms fails, and
// the diagnosis says which finding explains it.
func TestThresholdExplained(t *testing.T) {
	s := newSim(60 * time.Second)
	s.reqs(0, 60, 4, "POST", "[AUTH] Login POST", func(sec int) time.Duration {
		if sec < 5 {
			return ms(180)
		}
		return ms(700)
	}, nil)
	for sec := 0; sec < 62; sec++ {
		v := map[string]float64{"wait:Lock": 0}
		if sec >= 5 {
			v["wait:Lock"] = 3
		}
		s.sample(sec, "postgres", v, nil, "")
	}
	in := s.input()
	in.Limits = []Limit{{Endpoint: "[AUTH] Login POST", Max: ms(500), Threshold: "[AUTH] Login POST: p95 < 500ms"}}
	in.Thresholds = []ThresholdResult{{Endpoint: "[AUTH] Login POST", Text: "[AUTH] Login POST: p95 < 500ms", Latency: true, Pass: false, Value: "700ms"}}
	d := Diagnose(in)
	t.Log(describe(d))
	if d.Verdict != "fail" {
		t.Errorf("verdict %s with a failed threshold", d.Verdict)
	}
	if len(d.Thresholds) != 1 || len(d.Thresholds[0].ExplainedBy) == 0 || d.Thresholds[0].ExplainedBy[0] != IDLockContention {
		t.Errorf("thresholds %+v, want the failed one explained by db-lock-contention", d.Thresholds)
	}
	// 700 ms is under the load bar without the threshold (4 × 180 ms);
	// with it, every later login is slow.
	if f := findingOf(d, IDLockContention); f == nil || f.Explains.Slow < 200 {
		t.Errorf("lock contention does not explain the logins over the threshold: %s", describe(d))
	}
}

// A healthy run: nothing failed, nothing slow: pass with no finding.
func TestHealthyPasses(t *testing.T) {
	s := newSim(60 * time.Second)
	s.reqs(0, 60, 2, "POST", "[AUTH] Login POST", func(sec int) time.Duration { return ms(150 + 10*(sec%5)) }, nil)
	s.reqs(0, 60, 10, "GET", "GET /dashboard/", func(sec int) time.Duration { return ms(15 + sec%7) }, nil)
	d := Diagnose(s.input())
	if d.Verdict != "pass" || len(d.Findings) != 0 {
		t.Fatalf("want a pass with no finding; got %s", describe(d))
	}
}

// PostgreSQL restarts from second 30 to 34: both probes fail to read it,
// the app answers 500 with 57P01/57P03. The outage is named with its start
// and end and explains the 500s.
func TestDatabaseOutage(t *testing.T) {
	s := newSim(60 * time.Second)
	down := func(sec int) bool { return sec >= 30 && sec < 34 }
	s.reqs(0, 60, 10, "GET", "GET /dashboard/", constLat(ms(20)), func(sec int) (int, stampede.Outcome, string) {
		if down(sec) {
			return 500, stampede.FailStatus, "HTTP 500"
		}
		return 0, stampede.OK, ""
	})
	for sec := 0; sec < 62; sec++ {
		if down(sec) {
			s.sample(sec, "postgres", nil, nil, "failed to connect to `user=postgres database=app`: 127.0.0.1:5432 (127.0.0.1): dial error: dial tcp 127.0.0.1:5432: connect: connection refused")
			s.event(float64(sec)+0.5, "app-errors", "", "Internal Server Error: /dashboard/", nil)
			s.ev[len(s.ev)-1].Exception = "django.db.utils.OperationalError: terminating connection due to administrator command"
			continue
		}
		s.sample(sec, "postgres", map[string]float64{"backends": 5, "wait:Lock": 0}, nil, "")
	}
	d := Diagnose(s.input())
	t.Log(describe(d))
	if d.Findings[0].ID != IDDBUnavailable || d.Findings[0].Explains.Failures != 40 {
		t.Fatalf("want db-unavailable first explaining the 40 500s; got %s", describe(d))
	}
	if title := d.Findings[0].Title; !strings.Contains(title, "10:00:30") || !strings.Contains(title, "10:00:34") {
		t.Errorf("the outage's start and end are not named: %q", title)
	}
	if findingOf(d, IDUnexplained) != nil {
		t.Errorf("server errors left unexplained: %s", describe(d))
	}
}
