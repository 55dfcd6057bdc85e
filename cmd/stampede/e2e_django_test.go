package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/testenv"
)

// The second reference target: a real Django 3.2 project (allauth,
// PgBouncer, PostgreSQL, Redis sessions, gunicorn; testenv's Django target)
// that nobody here tuned the diagnosis on. Each mode is a configuration of
// the real software; stampede runs the target's scenario against it with
// every probe and log, and the top finding must be the mode's id. Before
// the diagnosis is judged, the test checks that the fault really happened,
// in the real software's own words (djangoFaultChecks), so a fault that did
// not show is told apart from a diagnosis that missed it.

// runStampede runs the built binary, bounded by limit; the exit status may
// be 0 or 3 (a threshold failed).
func runStampede(t *testing.T, limit time.Duration, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && (!errors.As(err, &ee) || ee.ExitCode() != 3 || ctx.Err() != nil) {
		t.Fatalf("stampede %s: %v\n%s", args[0], err, out.String())
	}
}

func init() { faultChecks["django"] = checkDjangoFault }

// checkDjangoFault asserts that the mode's fault happened: the real
// software's messages in its logs, the refusals in the probes, or the
// failures in the requests. It logs what it saw.
func checkDjangoFault(t *testing.T, m testenv.ModeInfo, tg testenv.Target, run liveRun) {
	t.Helper()
	d := tg.(*testenv.Django)
	rs, tl := run.results, run.timeline
	pgLog := readFrom(t, run.pgLog, run.pgFrom)
	errLog := readFrom(t, d.ErrorsLog, 0)
	seen := func(what, text string, n int) {
		t.Helper()
		if n == 0 {
			t.Errorf("%s: the fault did not show: no %s %q", m.Name, what, text)
			return
		}
		t.Logf("%s: fault seen: %d× %s %q", m.Name, n, what, text)
	}
	inLog := func(name, body, text string) { t.Helper(); seen(name+" line", text, countLines(body, text)) }
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
		if failed > 0 || strings.TrimSpace(errLog) != "" {
			t.Errorf("healthy: %d failed requests; errors log:\n%s", failed, testenv.Tail(d.ErrorsLog, 20))
		}
	case "db-pool-wait-timeout":
		inLog("pgbouncer", readFrom(t, d.PgBouncerLog, 0), "closing because: query_wait_timeout")
		// psycopg2 2.9 with libpq 15 reports PgBouncer's FATAL while
		// connecting as "server closed the connection unexpectedly":
		// only PgBouncer's log names query_wait_timeout.
		inLog("app-errors", errLog, "django.db.utils.OperationalError")
		inLog("app-errors", errLog, "Traceback (most recent call last):")
		reasons("HTTP 500")
	case "login-rate-limit":
		reasons("Too many failed login attempts. Try again later.")
	case "password-hash-cpu":
		hash := storedHash(t, d)
		if !strings.HasPrefix(hash, "pbkdf2_sha256$1000000$") {
			t.Errorf("password-hash-cpu: stored hash %.30s..., want pbkdf2_sha256$1000000$", hash)
		}
		logServerTimes(t, d)
		t.Logf("password-hash-cpu: %d failed requests (want few or none); host CPU busy peak %.0f%%", failed, peak(tl, "host", "cpu_busy_pct"))
	case "redis-connection-limit":
		inLog("app-errors", errLog, "redis.exceptions.ConnectionError: max number of clients reached")
		seen("Redis probe", "rejected_connections", int(peak(tl, "redis", "rejected_connections")))
		reasons("HTTP 500")
	case "redis-connection-limit-ignored":
		seen("Redis probe", "rejected_connections", int(peak(tl, "redis", "rejected_connections")))
		reasons("session lost")
		t.Logf("%s: errors log has %d lines (IGNORE_EXCEPTIONS hides the refusals)", m.Name, countLines(errLog, ""))
	case "db-lock-contention":
		inLog("postgres", pgLog, "still waiting for ShareLock on transaction")
		seen("postgres probe sample with", "wait:Lock", int(peak(tl, "postgres", "wait:Lock")))
		logServerTimes(t, d)
		t.Logf("db-lock-contention: %d failed requests (the mode aims at none)", failed)
	case "csrf-failure":
		inLog("app-errors", errLog, "Forbidden (CSRF cookie not set.): /accounts/login/")
		reasons("HTTP 403")
	case "session-lost":
		reasons("redirected to login page: session lost")
		inLog("access", readFrom(t, d.AccessLog, 0), `"GET /dashboard/ HTTP/1.1" 302`)
	case "slow-query":
		n := 0
		for _, l := range strings.Split(pgLog, "\n") {
			if strings.Contains(l, "duration:") && strings.Contains(l, "work_analysis") {
				n++
			}
		}
		seen("postgres slow-statement line on", "work_analysis", n)
		logServerTimes(t, d)
	default:
		t.Fatalf("no fault check for mode %s", m.Name)
	}
}

// failureSummary counts failed requests by reason.
func failureSummary(rs []stampede.Result) string {
	by := map[string]int{}
	failed := 0
	for _, r := range rs {
		if r.Outcome != stampede.OK {
			failed++
			reason := r.Reason
			if len(reason) > 70 {
				reason = reason[:70] + "…"
			}
			by[r.Name+": "+reason]++
		}
	}
	if failed == 0 {
		return "0 failed"
	}
	keys := make([]string, 0, len(by))
	for k := range by {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return by[keys[i]] > by[keys[j]] })
	if len(keys) > 4 {
		keys = keys[:4]
	}
	var s []string
	for _, k := range keys {
		s = append(s, fmt.Sprintf("%d× %s", by[k], k))
	}
	return fmt.Sprintf("%d failed (%s)", failed, strings.Join(s, "; "))
}

// latencySummary gives each endpoint's median and maximum latency as the
// client saw it.
func latencySummary(rs []stampede.Result) string {
	by := map[string][]time.Duration{}
	for _, r := range rs {
		by[r.Name] = append(by[r.Name], r.Latency)
	}
	names := make([]string, 0, len(by))
	for n := range by {
		names = append(names, n)
	}
	sort.Strings(names)
	var s []string
	for _, n := range names {
		v := by[n]
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
		s = append(s, fmt.Sprintf("%s p50 %s max %s", n, v[len(v)/2].Round(time.Millisecond), v[len(v)-1].Round(time.Millisecond)))
	}
	return strings.Join(s, "; ")
}

// logServerTimes logs gunicorn's own request time (the access log's last
// field) per request line, median and max.
func logServerTimes(t *testing.T, d *testenv.Django) {
	t.Helper()
	times := map[string][]float64{}
	for _, l := range strings.Split(readFrom(t, d.AccessLog, 0), "\n") {
		q := strings.Index(l, `"`)
		if q < 0 {
			continue
		}
		e := strings.Index(l[q+1:], `"`)
		f := strings.Fields(l)
		if e < 0 || len(f) == 0 {
			continue
		}
		sec, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			continue
		}
		req := strings.Fields(l[q+1 : q+1+e])
		if len(req) >= 2 {
			path, _, _ := strings.Cut(req[1], "?")
			k := req[0] + " " + path
			times[k] = append(times[k], sec)
		}
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
		s = append(s, fmt.Sprintf("%s n=%d median %.3fs max %.3fs", k, len(v), v[len(v)/2], v[len(v)-1]))
	}
	t.Logf("gunicorn request times: %s", strings.Join(s, "; "))
}

// storedHash returns user001's stored password hash.
func storedHash(t *testing.T, d *testenv.Django) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, d.PostgresDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var h string
	if err := c.QueryRow(ctx, "SELECT password FROM auth_user WHERE username = 'user001'").Scan(&h); err != nil {
		t.Fatal(err)
	}
	return h
}

// readTimeline reads a run directory's timeline.jsonl.
func readTimeline(t *testing.T, dir string) []stampede.Sample {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "timeline.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []stampede.Sample
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var s stampede.Sample
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("timeline.jsonl: %v", err)
		}
		out = append(out, s)
	}
	return out
}

// peak returns the largest value of key in source's samples.
func peak(tl []stampede.Sample, source, key string) float64 {
	m := 0.0
	for _, s := range tl {
		if s.Source == source && s.Values[key] > m {
			m = s.Values[key]
		}
	}
	return m
}

// fileSize is the size of the file at path, 0 when it does not exist.
func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// readFrom returns the file at path from byte offset off.
func readFrom(t *testing.T, path string, off int64) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// countLines counts the lines of body containing text.
func countLines(body, text string) int {
	n := 0
	for _, l := range strings.Split(body, "\n") {
		if l != "" && strings.Contains(l, text) {
			n++
		}
	}
	return n
}

// sampleEvents keeps whole events of a log (a line for which isStart is
// true and the lines after it, its traceback) within max bytes: all of them
// when they fit, else every k-th one, the first and the last included, so
// the sample still spans the run. It returns the kept text and the numbers
// of events kept and found.
func sampleEvents(body string, max int, isStart func(string) bool) (string, int, int) {
	var events []string
	for _, l := range strings.SplitAfter(body, "\n") {
		if l == "" {
			continue
		}
		if len(events) == 0 || isStart(l) {
			events = append(events, l)
			continue
		}
		events[len(events)-1] += l
	}
	if len(body) <= max || len(events) < 3 {
		return body, len(events), len(events)
	}
	k := (len(body) + max - 1) / max
	var b strings.Builder
	kept := 0
	for i, e := range events {
		if i%k == 0 || i == len(events)-1 {
			b.WriteString(e)
			kept++
		}
	}
	return b.String(), kept, len(events)
}

// dropLines removes the lines of body containing any of texts.
func dropLines(body string, texts ...string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(body, "\n") {
		keep := l != ""
		for _, x := range texts {
			if strings.Contains(l, x) {
				keep = false
			}
		}
		if keep {
			b.WriteString(l)
		}
	}
	return b.String()
}

func lastLinesOf(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func TestSampleEvents(t *testing.T) {
	ev := func(i int) string {
		return fmt.Sprintf("2026-11-28 21:21:%02d,920 ERROR django.request Internal Server Error: /x/\nTraceback (most recent call last):\n  File \"a.py\", line 1, in f\nOperationalError: boom %02d\n", i, i)
	}
	var all strings.Builder
	for i := range 10 {
		all.WriteString(ev(i))
	}
	body := all.String()
	for _, tc := range []struct {
		max, kept int
		first     string
		last      string
	}{
		{len(body), 10, "boom 00", "boom 09"},
		{len(body)/2 + 4, 6, "boom 00", "boom 09"}, // every 2nd (0, 2, .., 8), and the last
		{len(body)/4 + 4, 4, "boom 00", "boom 09"}, // every 4th (0, 4, 8), and the last
	} {
		got, kept, n := sampleEvents(body, tc.max, startsEvent)
		if n != 10 || kept != tc.kept {
			t.Errorf("max %d: kept %d of %d, want %d of 10", tc.max, kept, n, tc.kept)
		}
		if strings.Count(got, "Traceback") != kept || !strings.Contains(got, tc.first) || !strings.HasSuffix(got, tc.last+"\n") {
			t.Errorf("max %d: events cut or out of order:\n%s", tc.max, got)
		}
	}
}
