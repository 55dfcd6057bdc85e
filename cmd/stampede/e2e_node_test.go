package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/testenv"
)

// The Node.js reference target: a real Express 4 application (node-postgres'
// Pool behind PgBouncer, express-session in Redis through connect-redis and
// node-redis, express-rate-limit, bcrypt, pino and pino-http; testenv's Node
// target) that nobody here tuned the diagnosis on. checkNodeFault proves
// each mode's fault in the real software's own words before TestE2ETargets
// judges the diagnosis.

func init() { faultChecks["node"] = checkNodeFault }

// checkNodeFault asserts that the mode's fault happened: the errors of
// node-postgres, node-redis and the app in pino's log, PgBouncer's and
// PostgreSQL's messages, the readings of the probes, or the failures of the
// requests. It logs what it saw.
func checkNodeFault(t *testing.T, m testenv.ModeInfo, tg testenv.Target, run liveRun) {
	t.Helper()
	n := tg.(*testenv.Node)
	rs, tl := run.results, run.timeline
	pgLog := readFrom(t, run.pgLog, run.pgFrom)
	bouncerLog := readFrom(t, n.PgBouncerLog, 0)
	app := nodeAppLog(t, n.AppLog)
	seen := func(what, text string, count int) {
		t.Helper()
		if count == 0 {
			t.Errorf("%s: the fault did not show: no %s %q", m.Name, what, text)
			return
		}
		t.Logf("%s: fault seen: %d× %s %q", m.Name, count, what, text)
	}
	absent := func(what, text string, count int) {
		t.Helper()
		if count > 0 {
			t.Errorf("%s: %d× %s %q: another fault than the mode's", m.Name, count, what, text)
		}
	}
	reasons := func(text string) {
		t.Helper()
		seen("failed request", text, nodeFailedWith(rs, text))
	}
	failed := nodeFailedWith(rs, "")
	t.Logf("%s: pino-http times: %s", m.Name, app.summary())
	if errs := app.errorSummary(); errs != "" {
		t.Logf("%s: errors in app.log: %s", m.Name, errs)
	}
	switch m.Name {
	case "healthy":
		if failed > 0 || app.atLeast(50) > 0 {
			t.Errorf("healthy: %d failed requests, %d error lines in app.log:\n%s", failed, app.atLeast(50), testenv.Tail(n.AppLog, 10))
		}
	case "db-pool-wait-timeout-app":
		// pg-pool's own words, on the failed requests' lines.
		seen("app.log 500 line with err", "timeout exceeded when trying to connect", app.errors(500, "timeout exceeded when trying to connect"))
		reasons("HTTP 500")
		// The wait is in the application's pool: PgBouncer has room.
		absent("pgbouncer line", "query_wait_timeout", countLines(bouncerLog, "query_wait_timeout"))
		t.Logf("%s: PgBouncer clients waiting peak %.0f (want 0: the queue is in node-postgres' Pool)", m.Name, peak(tl, "pgbouncer", "cl_waiting"))
	case "db-pool-wait-timeout":
		seen("pgbouncer line", "closing because: query_wait_timeout", countLines(bouncerLog, "closing because: query_wait_timeout"))
		// node-postgres reports PgBouncer's FATAL as the query's error.
		seen("app.log 500 line with err", "query_wait_timeout", app.errors(500, "query_wait_timeout"))
		reasons("HTTP 500")
		absent("app.log line", "timeout exceeded when trying to connect", app.errors(0, "timeout exceeded when trying to connect"))
	case "login-rate-limit":
		reasons("HTTP 429")
		seen("app.log 429 line of", "POST /login", app.count("POST", "/login", 429))
	case "password-hash-cpu":
		if h := nodeStoredHash(t, n); !strings.HasPrefix(h, "$2b$13$") {
			t.Errorf("password-hash-cpu: stored hash %.7s..., want bcrypt cost 13 ($2b$13$)", h)
		}
		t.Logf("%s: %d failed requests (want few or none); host CPU busy peak %.0f%%, node's processes peak %.0f%% (100 = one core)",
			m.Name, failed, peak(tl, "host", "cpu_busy_pct"), peak(tl, "host", "proc_cpu_pct"))
		if peak(tl, "host", "cpu_busy_pct") < 85 {
			t.Errorf("%s: host CPU peaked at %.0f%%: the hashes did not saturate it", m.Name, peak(tl, "host", "cpu_busy_pct"))
		}
		seen("login slower than", "1 s", app.slower("POST", "/login", time.Second))
	case "redis-connection-limit":
		// node-redis hands the server's refusal to the queued command.
		seen("app.log 500 line with err", "ERR max number of clients reached", app.errors(500, "ERR max number of clients reached"))
		reasons("HTTP 500")
		rejected := int(peak(tl, "redis", "rejected_connections"))
		refused := 0
		for _, s := range tl {
			if s.Source == "redis" && strings.Contains(s.Err, "max number of clients reached") {
				refused++
			}
		}
		seen("Redis probe reading of", "rejected_connections, or a refused probe", rejected+refused)
	case "db-lock-contention":
		seen("postgres line", "still waiting for ShareLock on transaction", countLines(pgLog, "still waiting for ShareLock on transaction"))
		seen("postgres probe sample with", "wait:Lock", int(peak(tl, "postgres", "wait:Lock")))
		seen("login slower than", "2 s", app.slower("POST", "/login", 2*time.Second))
		t.Logf("%s: %d failed requests (the mode aims at none); host CPU busy peak %.0f%%", m.Name, failed, peak(tl, "host", "cpu_busy_pct"))
	case "slow-query":
		// The statement is written over several lines: its log event is
		// the "duration:" line and the indented lines after it.
		count := 0
		for _, e := range nodePGEvents(pgLog) {
			if strings.Contains(e, "duration:") && strings.Contains(e, "FROM analysis") {
				count++
			}
		}
		seen("postgres slow-statement event on", "FROM analysis", count)
		seen("recap slower than", "500 ms", app.slower("GET", "/recap", 500*time.Millisecond))
	case "app-worker-saturation":
		// One event loop on one core: the login form, which makes no
		// query, is slow for the users who arrive once the loop is busy,
		// while node's own time for it stays short; the process burns
		// about one core while the host has the other to spare.
		slow := 0
		for _, r := range rs {
			if r.Name == "[AUTH] Login GET" && r.Latency > 250*time.Millisecond {
				slow++
			}
		}
		server := app.median("GET", "/login")
		t.Logf("%s: login form: client median %s, pino-http's median %s; node's process peak %.0f%% of a core, host CPU peak %.0f%%, PostgreSQL active sessions peak %.0f",
			m.Name, nodeMedianLatency(rs, "[AUTH] Login GET"), server, peak(tl, "host", "proc_cpu_pct"), peak(tl, "host", "cpu_busy_pct"), peak(tl, "postgres", "state:active"))
		seen("login form (no query) slower for the client than", "250 ms", slow)
		if server > 50*time.Millisecond {
			t.Errorf("%s: node's own median for the login form is %s: the form itself is slow, not the wait for the loop", m.Name, server)
		}
		if p := peak(tl, "host", "proc_cpu_pct"); p < 70 {
			t.Errorf("%s: node's process peaked at %.0f%% of a core: the event loop was not CPU-bound", m.Name, p)
		}
		seen("report slower than", "100 ms in node", app.slower("GET", "/report", 100*time.Millisecond))
	case "csrf-failure":
		seen("app.log 403 line with err", "invalid csrf token", app.errors(403, "invalid csrf token"))
		reasons("HTTP 403")
	default:
		t.Fatalf("no fault check for mode %s", m.Name)
	}
}

// nodeLine is one pino line of the app log: pino-http's request lines
// (req, res, responseTime, err when it failed) and the app's own.
type nodeLine struct {
	Level        int
	Msg          string
	ResponseTime *float64
	Req          struct{ Method, URL string }
	Res          struct{ StatusCode int }
	Err          struct{ Type, Message string }
}

// nodeLog is the app log read whole.
type nodeLog []nodeLine

// nodeAppLog reads pino's JSON lines; a line that is not one fails the
// test.
func nodeAppLog(t *testing.T, path string) nodeLog {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out nodeLog
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var l nodeLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Errorf("app.log: not a pino line (%v): %.200s", err, sc.Text())
			continue
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// path is the request's path without its query.
func (l nodeLine) path() string {
	p, _, _ := strings.Cut(l.Req.URL, "?")
	return p
}

// errors counts the request lines of status (any when 0) whose err's
// message contains text.
func (g nodeLog) errors(status int, text string) int {
	c := 0
	for _, l := range g {
		if (status == 0 || l.Res.StatusCode == status) && strings.Contains(l.Err.Message, text) {
			c++
		}
	}
	return c
}

// atLeast counts the lines at level or above (pino: 40 warn, 50 error).
func (g nodeLog) atLeast(level int) int {
	c := 0
	for _, l := range g {
		if l.Level >= level {
			c++
		}
	}
	return c
}

// count counts the request lines of method and path with status.
func (g nodeLog) count(method, path string, status int) int {
	c := 0
	for _, l := range g {
		if l.Req.Method == method && l.path() == path && l.Res.StatusCode == status {
			c++
		}
	}
	return c
}

// times returns node's own time of each request of method and path
// (pino-http's responseTime), sorted.
func (g nodeLog) times(method, path string) []time.Duration {
	var v []time.Duration
	for _, l := range g {
		if l.ResponseTime != nil && l.Req.Method == method && l.path() == path {
			v = append(v, time.Duration(*l.ResponseTime*float64(time.Millisecond)))
		}
	}
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	return v
}

func (g nodeLog) median(method, path string) time.Duration {
	v := g.times(method, path)
	if len(v) == 0 {
		return 0
	}
	return v[len(v)/2]
}

// slower counts the requests of method and path that took node longer
// than d.
func (g nodeLog) slower(method, path string, d time.Duration) int {
	c := 0
	for _, x := range g.times(method, path) {
		if x > d {
			c++
		}
	}
	return c
}

// summary gives node's own times per "METHOD path": count, median, max.
func (g nodeLog) summary() string {
	keys := map[string][2]string{}
	for _, l := range g {
		if l.ResponseTime != nil && l.Req.Method != "" {
			keys[l.Req.Method+" "+l.path()] = [2]string{l.Req.Method, l.path()}
		}
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	var s []string
	for _, k := range names {
		v := g.times(keys[k][0], keys[k][1])
		s = append(s, fmt.Sprintf("%s n=%d median %s max %s", k, len(v), v[len(v)/2].Round(time.Millisecond), v[len(v)-1].Round(time.Millisecond)))
	}
	return strings.Join(s, "; ")
}

// errorSummary counts the logged errors by status, type and message.
func (g nodeLog) errorSummary() string {
	by := map[string]int{}
	for _, l := range g {
		if l.Err.Message != "" {
			msg := l.Err.Message
			if len(msg) > 80 {
				msg = msg[:80] + "…"
			}
			by[fmt.Sprintf("%d %s: %s", l.Res.StatusCode, l.Err.Type, msg)]++
		}
	}
	keys := make([]string, 0, len(by))
	for k := range by {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return by[keys[i]] > by[keys[j]] })
	if len(keys) > 5 {
		keys = keys[:5]
	}
	var s []string
	for _, k := range keys {
		s = append(s, fmt.Sprintf("%d× %s", by[k], k))
	}
	return strings.Join(s, "; ")
}

// nodePGEvents splits PostgreSQL's log into events: a line and the
// lines after it that start with blank space (a statement's next lines).
func nodePGEvents(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if len(out) > 0 && (strings.HasPrefix(l, "\t") || strings.HasPrefix(l, " ")) {
			out[len(out)-1] += "\n" + l
			continue
		}
		out = append(out, l)
	}
	return out
}

// nodeFailedWith counts the failed requests whose reason contains text.
func nodeFailedWith(rs []stampede.Result, text string) int {
	c := 0
	for _, r := range rs {
		if r.Outcome != stampede.OK && strings.Contains(r.Reason, text) {
			c++
		}
	}
	return c
}

// nodeMedianLatency is the median latency of the requests called name.
func nodeMedianLatency(rs []stampede.Result, name string) time.Duration {
	var v []time.Duration
	for _, r := range rs {
		if r.Name == name {
			v = append(v, r.Latency)
		}
	}
	if len(v) == 0 {
		return 0
	}
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	return v[len(v)/2]
}

// nodeStoredHash returns user001's stored password hash.
func nodeStoredHash(t *testing.T, n *testenv.Node) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, n.PostgresDSN)
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
