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

// The Flask reference target (testenv's Flask: Flask 2.2, Flask-Login,
// SQLAlchemy's QueuePool, Flask-Limiter, Redis sessions, uWSGI behind
// nginx, JSON logs). Its fault check reads the app's JSON log as records,
// nginx's and uWSGI's logs as text, PostgreSQL's and PgBouncer's logs and
// the probes, and asserts each mode's fault in the real software's words.

func init() { faultChecks["flask"] = checkFlaskFault }

// appRecord is a record of the Flask app's JSON log.
type appRecord map[string]any

func (r appRecord) str(k string) string {
	s, _ := r[k].(string)
	return s
}

// readAppLog reads the app's JSON log; a line that is not a JSON object
// fails the test (the app writes nothing else there).
func readAppLog(t *testing.T, path string) []appRecord {
	t.Helper()
	var out []appRecord
	for _, l := range strings.Split(readFrom(t, path, 0), "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		var r appRecord
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Errorf("app log: not a JSON object: %.200q", l)
			continue
		}
		out = append(out, r)
	}
	return out
}

// checkFlaskFault asserts that the mode's fault happened: the real
// software's messages in its logs (the app's JSON records: error_type,
// error_message, exc_info), the refusals in the probes, or the failures in
// the requests. It logs what it saw.
func checkFlaskFault(t *testing.T, m testenv.ModeInfo, tg testenv.Target, run liveRun) {
	t.Helper()
	f := tg.(*testenv.Flask)
	rs, tl := run.results, run.timeline
	pgLog := readFrom(t, run.pgLog, run.pgFrom)
	app := readAppLog(t, f.AppLog)
	nginxErr := readFrom(t, f.NginxErrorLog, 0)
	uwsgiLog := readFrom(t, f.UWSGILog, 0)
	seen := func(what, text string, n int) {
		t.Helper()
		if n == 0 {
			t.Errorf("%s: the fault did not show: no %s %q", m.Name, what, text)
			return
		}
		t.Logf("%s: fault seen: %d× %s %q", m.Name, n, what, text)
	}
	inLog := func(name, body, text string) { t.Helper(); seen(name+" line", text, countLines(body, text)) }
	// appErrors counts the app's error records of type typ whose message
	// holds text, and checks that each carries its whole traceback.
	appErrors := func(typ, text string) {
		t.Helper()
		n := 0
		for _, r := range app {
			if r.str("levelname") == "ERROR" && r.str("error_type") == typ && strings.Contains(r.str("error_message"), text) {
				if !strings.HasPrefix(r.str("exc_info"), "Traceback (most recent call last):") {
					t.Errorf("%s: error record without its traceback in exc_info: %v", m.Name, r)
				}
				n++
			}
		}
		seen("app log ERROR record "+typ, text, n)
	}
	reasons := func(text string) {
		t.Helper()
		n := 0
		for _, r := range rs {
			if r.Outcome != stampede.OK && strings.Contains(r.Reason, text) {
				n++
			}
		}
		seen("failed request", text, n)
	}
	failed := 0
	for _, r := range rs {
		if r.Outcome != stampede.OK {
			failed++
		}
	}
	switch m.Name {
	case "healthy":
		errs := 0
		for _, r := range app {
			if r.str("levelname") == "ERROR" || r.str("levelname") == "WARNING" {
				errs++
			}
		}
		if failed > 0 || errs > 0 || countLines(nginxErr, "[error]") > 0 {
			t.Errorf("healthy: %d failed requests, %d app log errors or warnings; nginx error log:\n%s", failed, errs, testenv.Tail(f.NginxErrorLog, 10))
		}
	case "db-pool-wait-timeout-app":
		appErrors("sqlalchemy.exc.TimeoutError", "QueuePool limit of size 2 overflow 0 reached, connection timed out, timeout 1.00")
		reasons("HTTP 500")
		// The app's own pool: PgBouncer never queued anyone out.
		if n := countLines(readFrom(t, f.PgBouncerLog, 0), "query_wait_timeout"); n > 0 {
			t.Errorf("%s: PgBouncer logged query_wait_timeout %d times; the mode is the app's pool", m.Name, n)
		}
		t.Logf("%s: PgBouncer cl_waiting peak %.0f", m.Name, peak(tl, "pgbouncer", "cl_waiting"))
	case "db-pool-wait-timeout":
		inLog("pgbouncer", readFrom(t, f.PgBouncerLog, 0), "closing because: query_wait_timeout")
		// psycopg2 with libpq 15 reports PgBouncer's FATAL as "server
		// closed the connection unexpectedly"; SQLAlchemy wraps it.
		appErrors("sqlalchemy.exc.OperationalError", "(psycopg2.OperationalError)")
		reasons("HTTP 500")
	case "login-rate-limit":
		inLog("nginx-error", nginxErr, `limiting requests, excess: `)
		inLog("nginx-error", nginxErr, `by zone "login"`)
		inLog("access", readFrom(t, f.AccessLog, 0), `"POST /login HTTP/1.1" 503`)
		reasons("HTTP 503")
		// nginx answered them: the app saw no 503.
		for _, r := range app {
			if st, _ := r["status"].(float64); st == 503 {
				t.Errorf("%s: the app answered a 503 itself: %v", m.Name, r)
				break
			}
		}
	case "login-rate-limit-app":
		reasons("HTTP 429")
		n429, nlog := 0, 0
		for _, r := range app {
			if st, _ := r["status"].(float64); st == 429 && r.str("path") == "/login" {
				n429++
			}
			if r.str("name") == "flask-limiter" && strings.Contains(r.str("message"), "exceeded at endpoint: auth.login") {
				nlog++
			}
		}
		seen("app log request record with status", "429", n429)
		seen("app log flask-limiter record", "ratelimit ... exceeded at endpoint: auth.login", nlog)
	case "password-hash-cpu":
		hash := flaskStoredHash(t, f)
		if !strings.HasPrefix(hash, "pbkdf2:sha256:1000000$") {
			t.Errorf("password-hash-cpu: stored hash %.24s..., want pbkdf2:sha256:1000000$", hash)
		}
		logAppTimes(t, app)
		t.Logf("password-hash-cpu: %d failed requests (want few or none); host CPU busy peak %.0f%%", failed, peak(tl, "host", "cpu_busy_pct"))
	case "redis-connection-limit":
		appErrors("redis.exceptions.ConnectionError", "max number of clients reached")
		seen("Redis probe", "rejected_connections", int(peak(tl, "redis", "rejected_connections")))
		reasons("HTTP 500")
	case "db-lock-contention":
		inLog("postgres", pgLog, "still waiting for ShareLock on transaction")
		seen("postgres probe sample with", "wait:Lock", int(peak(tl, "postgres", "wait:Lock")))
		logAppTimes(t, app)
		t.Logf("db-lock-contention: %d failed requests (the mode aims at none); host CPU busy peak %.0f%%", failed, peak(tl, "host", "cpu_busy_pct"))
	case "slow-query":
		n := 0
		for _, l := range strings.Split(pgLog, "\n") {
			if strings.Contains(l, "duration:") && strings.Contains(l, "analysis") {
				n++
			}
		}
		seen("postgres slow-statement line on", "analysis", n)
		logAppTimes(t, app)
	case "app-worker-saturation":
		inLog("uwsgi", uwsgiLog, "uWSGI listen queue of socket")
		logAppTimes(t, app)
		t.Logf("app-worker-saturation: nginx: %d× \"upstream timed out\"; %d failed requests; host CPU busy peak %.0f%%, PostgreSQL active peak %.0f",
			countLines(nginxErr, "upstream timed out"), failed, peak(tl, "host", "cpu_busy_pct"), peak(tl, "postgres", "state:active"))
	case "csrf-failure":
		n := 0
		for _, r := range app {
			if r.str("name") == "estimates.csrf" && r.str("reason") == "The CSRF session token is missing." {
				n++
			}
		}
		seen("app log estimates.csrf record", "The CSRF session token is missing.", n)
		reasons("HTTP 400")
	default:
		t.Fatalf("no fault check for mode %s", m.Name)
	}
}

// logAppTimes logs the app's own request time (the JSON log's duration_ms)
// per method and path, median and max.
func logAppTimes(t *testing.T, app []appRecord) {
	t.Helper()
	times := map[string][]float64{}
	for _, r := range app {
		ms, ok := r["duration_ms"].(float64)
		if r.str("message") != "request" || !ok {
			continue
		}
		k := r.str("method") + " " + r.str("path")
		times[k] = append(times[k], ms)
	}
	keys := make([]string, 0, len(times))
	for k := range times {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var s []string
	for _, k := range keys {
		v := times[k]
		sort.Float64s(v)
		s = append(s, fmt.Sprintf("%s n=%d median %.0fms max %.0fms", k, len(v), v[len(v)/2], v[len(v)-1]))
	}
	t.Logf("app request times (duration_ms): %s", strings.Join(s, "; "))
}

// flaskStoredHash returns user001's stored password hash.
func flaskStoredHash(t *testing.T, f *testenv.Flask) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, f.PostgresDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var h string
	if err := c.QueryRow(ctx, "SELECT password_hash FROM users WHERE username = 'user001'").Scan(&h); err != nil {
		t.Fatal(err)
	}
	return h
}
