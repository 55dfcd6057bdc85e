package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/testenv"
)

// The Rails reference target: a real Rails 6.1 application (Devise,
// rack-attack, redis-actionpack sessions, lograge, ActiveRecord behind
// PgBouncer, Puma; testenv's Rails target) that nobody here tuned the
// diagnosis on. checkRailsFault proves each mode's fault in the real
// software's own words before TestE2ETargets judges the diagnosis.

func init() { faultChecks["rails"] = checkRailsFault }

// checkRailsFault asserts that the mode's fault happened: the messages of
// Rails, rack-attack, PgBouncer and PostgreSQL in their logs, the readings
// of the probes, or the failures of the requests. It logs what it saw.
func checkRailsFault(t *testing.T, m testenv.ModeInfo, tg testenv.Target, run liveRun) {
	t.Helper()
	r := tg.(*testenv.Rails)
	rs, tl := run.results, run.timeline
	pgLog := readFrom(t, run.pgLog, run.pgFrom)
	railsLog := readFrom(t, r.RailsLog, 0)
	bouncerLog := readFrom(t, r.PgBouncerLog, 0)
	seen := func(what, text string, n int) {
		t.Helper()
		if n == 0 {
			t.Errorf("%s: the fault did not show: no %s %q", m.Name, what, text)
			return
		}
		t.Logf("%s: fault seen: %d× %s %q", m.Name, n, what, text)
	}
	absent := func(what, text string, n int) {
		t.Helper()
		if n > 0 {
			t.Errorf("%s: %d× %s %q: another fault than the mode's", m.Name, n, what, text)
		}
	}
	inLog := func(name, body, text string) { t.Helper(); seen(name+" line", text, countLines(body, text)) }
	reasons := func(text string) {
		t.Helper()
		seen("failed request", text, failedWith(rs, text))
	}
	failed := failedWith(rs, "")
	lograge := railsRequests(t, r)
	switch m.Name {
	case "healthy":
		if failed > 0 || countLines(railsLog, "FATAL --") > 0 || countLines(railsLog, "ERROR --") > 0 {
			t.Errorf("healthy: %d failed requests; Rails' log:\n%s", failed, testenv.Tail(r.RailsLog, 20))
		}
	case "db-pool-wait-timeout-app":
		inLog("rails", railsLog, "ActiveRecord::ConnectionTimeoutError (could not obtain a connection from the pool within 0.200 seconds")
		seen("lograge 500 line with", "ActiveRecord::ConnectionTimeoutError", lograge.errors["ActiveRecord::ConnectionTimeoutError"])
		reasons("HTTP 500")
		// The wait is in the application's pool: PgBouncer has room.
		absent("pgbouncer line", "query_wait_timeout", countLines(bouncerLog, "query_wait_timeout"))
		t.Logf("%s: PgBouncer clients waiting peak %.0f (want 0: the queue is in ActiveRecord's pool)", m.Name, peak(tl, "pgbouncer", "cl_waiting"))
	case "db-pool-wait-timeout":
		inLog("pgbouncer", bouncerLog, "closing because: query_wait_timeout")
		// Ruby's pg reports PgBouncer's FATAL as a connection closed or
		// refused, which ActiveRecord wraps: only PgBouncer's log names
		// query_wait_timeout.
		seen("rails exception line", "PG::ConnectionBad / ActiveRecord::ConnectionNotEstablished / PG::UnableToSend",
			countLines(railsLog, "PG::ConnectionBad")+countLines(railsLog, "ActiveRecord::ConnectionNotEstablished")+countLines(railsLog, "PG::UnableToSend"))
		reasons("HTTP 500")
		absent("rails line", "ActiveRecord::ConnectionTimeoutError", countLines(railsLog, "ActiveRecord::ConnectionTimeoutError"))
	case "login-rate-limit":
		reasons("HTTP 429")
		inLog("rails", railsLog, "Rack::Attack throttled logins/ip")
	case "password-hash-cpu":
		if h := railsStoredHash(t, r); !strings.HasPrefix(h, "$2a$13$") {
			t.Errorf("password-hash-cpu: stored hash %.7s..., want bcrypt cost 13 ($2a$13$)", h)
		}
		t.Logf("%s: lograge times: %s", m.Name, lograge.summary())
		t.Logf("%s: %d failed requests (want few or none); host CPU busy peak %.0f%%, Puma's processes peak %.0f%% (100 = one core)",
			m.Name, failed, peak(tl, "host", "cpu_busy_pct"), peak(tl, "host", "proc_cpu_pct"))
		if peak(tl, "host", "cpu_busy_pct") < 85 {
			t.Errorf("%s: host CPU peaked at %.0f%%: the hashes did not saturate it", m.Name, peak(tl, "host", "cpu_busy_pct"))
		}
	case "redis-connection-limit":
		inLog("rails", railsLog, "max number of clients reached")
		seen("Redis probe", "rejected_connections", int(peak(tl, "redis", "rejected_connections")))
		reasons("HTTP 500")
	case "db-lock-contention":
		inLog("postgres", pgLog, "still waiting for ShareLock on transaction")
		seen("postgres probe sample with", "wait:Lock", int(peak(tl, "postgres", "wait:Lock")))
		t.Logf("%s: lograge times: %s", m.Name, lograge.summary())
		t.Logf("%s: %d failed requests (the mode aims at none); host CPU busy peak %.0f%%", m.Name, failed, peak(tl, "host", "cpu_busy_pct"))
	case "slow-query":
		n := 0
		for _, l := range strings.Split(pgLog, "\n") {
			if strings.Contains(l, "duration:") && strings.Contains(l, "analyses") {
				n++
			}
		}
		seen("postgres slow-statement line on", "analyses", n)
		t.Logf("%s: lograge times: %s", m.Name, lograge.summary())
	case "app-worker-saturation":
		// One Puma process: it accepts a connection only when one of its
		// threads is free, and the report's Ruby keeps them busy, so
		// connections wait in the listen backlog. Every page slows for
		// the client, the sign-in form too (no query), by time spent
		// before Rails: Rails' own times (lograge) stay short, and
		// PostgreSQL has next to nothing running.
		seen("host probe reading of connections waiting to be accepted,", "listen_queue", int(peak(tl, "host", "listen_queue")))
		for _, ep := range [][2]string{{"[AUTH] Login GET", "GET /users/sign_in"}, {"GET /dashboard", "GET /dashboard"}, {"GET /items", "GET /items"}} {
			client, server := slowerThan(rs, ep[0], time.Second), lograge.slower(ep[1], time.Second)
			t.Logf("%s: %s: %d requests over 1 s for the client, %d in Rails", m.Name, ep[0], client, server)
			if client < server+3 {
				t.Errorf("%s: %s: %d requests over 1 s for the client and %d in Rails: no wait before the app", m.Name, ep[0], client, server)
			}
		}
		t.Logf("%s: lograge times: %s", m.Name, lograge.summary())
		t.Logf("%s: Puma's processes peak %.0f%% of a core, host CPU peak %.0f%%, PostgreSQL active sessions peak %.0f, listen queue peak %.0f",
			m.Name, peak(tl, "host", "proc_cpu_pct"), peak(tl, "host", "cpu_busy_pct"), peak(tl, "postgres", "state:active"), peak(tl, "host", "listen_queue"))
		if a := peak(tl, "postgres", "state:active"); a > 4 {
			t.Errorf("%s: %.0f PostgreSQL sessions active at once: the database was busy", m.Name, a)
		}
	case "csrf-failure":
		inLog("rails", railsLog, "Can't verify CSRF token authenticity.")
		inLog("rails", railsLog, "ActionController::InvalidAuthenticityToken")
		reasons("HTTP 422")
	default:
		t.Fatalf("no fault check for mode %s", m.Name)
	}
}

// failedWith counts the failed requests whose reason contains text.
func failedWith(rs []stampede.Result, text string) int {
	n := 0
	for _, r := range rs {
		if r.Outcome != stampede.OK && strings.Contains(r.Reason, text) {
			n++
		}
	}
	return n
}

// slowerThan counts the requests called name that took the client longer
// than d.
func slowerThan(rs []stampede.Result, name string, d time.Duration) int {
	n := 0
	for _, r := range rs {
		if r.Name == name && r.Latency > d {
			n++
		}
	}
	return n
}

// railsRequestLog is what lograge logged: the duration of each request
// (Rails' own time, from the controller's start to its end), by
// "METHOD path", and the exceptions of the failed ones by class.
type railsRequestLog struct {
	times  map[string][]time.Duration
	errors map[string]int
}

// railsRequests reads lograge's lines: a JSON object each.
func railsRequests(t *testing.T, r *testenv.Rails) railsRequestLog {
	t.Helper()
	out := railsRequestLog{times: map[string][]time.Duration{}, errors: map[string]int{}}
	for _, l := range strings.Split(readFrom(t, r.LogrageLog, 0), "\n") {
		var e struct {
			Method, Path, Error string
			Duration            float64
		}
		if json.Unmarshal([]byte(l), &e) != nil {
			continue
		}
		k := e.Method + " " + e.Path
		out.times[k] = append(out.times[k], time.Duration(e.Duration*float64(time.Millisecond)))
		if e.Error != "" {
			class, _, _ := strings.Cut(e.Error, ":")
			if strings.HasPrefix(e.Error, class+"::") {
				class, _, _ = strings.Cut(e.Error, ": ")
			}
			out.errors[class]++
		}
	}
	for _, v := range out.times {
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	}
	return out
}

// slower counts key's requests that took Rails longer than d.
func (l railsRequestLog) slower(key string, d time.Duration) int {
	n := 0
	for _, x := range l.times[key] {
		if x > d {
			n++
		}
	}
	return n
}

func (l railsRequestLog) summary() string {
	keys := make([]string, 0, len(l.times))
	for k := range l.times {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var s []string
	for _, k := range keys {
		v := l.times[k]
		s = append(s, fmt.Sprintf("%s n=%d median %s max %s", k, len(v), v[len(v)/2].Round(time.Millisecond), v[len(v)-1].Round(time.Millisecond)))
	}
	return strings.Join(s, "; ")
}

// railsStoredHash returns user001's stored password hash.
func railsStoredHash(t *testing.T, r *testenv.Rails) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, r.PostgresDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var h string
	if err := c.QueryRow(ctx, "SELECT encrypted_password FROM users WHERE username = 'user001'").Scan(&h); err != nil {
		t.Fatal(err)
	}
	return h
}
