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
	"slices"
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

// djangoLocustFixtures holds the Locust recordings of the Django target.
const djangoLocustFixtures = "../../internal/diagnose/testdata/django-locust"

// TestE2EDjango runs stampede against the Django target in every mode.
func TestE2EDjango(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end runs of the Django target take minutes")
	}
	t0 := time.Now()
	db := testenv.DjangoDatabase(t)
	t.Logf("PostgreSQL with schema and seed ready in %.1fs", time.Since(t0).Seconds())
	only := os.Getenv("STAMPEDE_DJANGO_MODES") // e.g. "db-lock-contention,slow-query"
	for _, m := range testenv.DjangoModes() {
		if only != "" && !slices.Contains(strings.Split(only, ","), m.Name) {
			continue
		}
		t.Run(m.Name, func(t *testing.T) {
			start := time.Now()
			dir := t.TempDir()
			pgFrom := fileSize(db.PG.LogPath)
			d := testenv.DjangoTarget(t, testenv.DjangoOptions{Mode: m.Name, DB: db, Dir: filepath.Join(dir, "logs")})
			ready := time.Since(start)
			sc, err := d.WriteScenario(dir)
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "run")
			runStampede(t, m.Load.Duration+2*time.Minute, append(d.RunArgs(sc), "--quiet", "--out", out)...)
			rs := readResults(t, out)
			diag := readDiagnosis(t, out)
			t.Logf("%s: target ready in %.1fs, %d requests, %s; run %.0fs in all",
				m.Name, ready.Seconds(), len(rs), failureSummary(rs), time.Since(start).Seconds())
			t.Logf("%s: client latency %s", m.Name, latencySummary(rs))
			t.Logf("%s: diagnosis %s", m.Name, summarize(diag))
			keepArtifacts(t, "django-"+m.Name, dir)
			recordAccuracy(t, "Django (live)", m.Name, m.Want, diag)
			checkDjangoFault(t, m, d, rs, readTimeline(t, out), pgFrom)
			if m.Want == "" {
				if diag.Verdict != "pass" {
					t.Errorf("%s: verdict %s", m.Name, summarize(diag))
				}
				for _, f := range diag.Findings {
					if f.Status == stampede.Confirmed {
						t.Errorf("%s: confirmed finding %s", m.Name, summarize(diag))
					}
				}
				return
			}
			checkTop(t, diag, m.Want)
			checkChains(t, diag, m.Want, failedCount(rs))
			if m.Want == "db-lock-contention" {
				// With the PostgreSQL probe, the blockers themselves, from
				// pg_blocking_pids: "pid P (wait) blocked by Q (state, xact
				// AGE: QUERY), ...: QUERY". pg_stat_activity shows a
				// blocker's last statement: the FOR UPDATE while it runs,
				// a later one when it sits idle in transaction holding the
				// lock (the login's password check), and then the FOR
				// UPDATE is the waiters' statement.
				chain := ""
				for _, e := range diag.Findings[0].Evidence {
					if strings.HasPrefix(e.Text, "blocking chain:") {
						chain = e.Text
					}
				}
				blockers, waiter, _ := strings.Cut(chain, "): ")
				ok := strings.Contains(blockers, " blocked by ") && strings.Contains(strings.ToLower(blockers), "select")
				if !strings.Contains(strings.ToLower(blockers), "for update") {
					ok = ok && strings.Contains(blockers, "idle in transaction") && strings.Contains(strings.ToLower(waiter), "for update")
				}
				if !ok {
					t.Errorf("db-lock-contention: no blocking chain naming the blocker and its query (%q)", chain)
				}
				t.Logf("%s", chain)
			}
		})
	}
}

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

// checkDjangoFault asserts that the mode's fault happened: the real
// software's messages in its logs, the refusals in the probes, or the
// failures in the requests. It logs what it saw.
func checkDjangoFault(t *testing.T, m testenv.DjangoMode, d *testenv.Django, rs []stampede.Result, tl []stampede.Sample, pgFrom int64) {
	t.Helper()
	pgLog := readFrom(t, d.PostgresLog, pgFrom)
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

// djangoFixtureLogs maps the log files of a Locust recording to the names
// given to stampede's --log.
var djangoFixtureLogs = [][2]string{
	{"app-errors", "errors.log"}, {"access", "access.log"}, {"gunicorn", "gunicorn.log"},
	{"pgbouncer", "pgbouncer.log"}, {"postgres", "postgresql.log"},
}

// TestE2EDjangoLocust diagnoses each Locust recording of the Django target
// (djangoLocustFixtures/MODE: Locust's CSVs and the server logs of the run)
// with "stampede diagnose --locust PREFIX --log ...", as a Locust user
// would, and checks the result against the recording's want file: "top ID"
// (the top finding, confirmed or likely, with evidence refs), or "verdict
// pass" and "no-confirmed". It needs no server.
func TestE2EDjangoLocust(t *testing.T) {
	wants, err := filepath.Glob(filepath.Join(djangoLocustFixtures, "*", "want"))
	if err != nil || len(wants) == 0 {
		t.Fatalf("no Locust recordings in %s (record them with STAMPEDE_RECORD_LOCUST): %v", djangoLocustFixtures, err)
	}
	for _, w := range wants {
		dir := filepath.Dir(w)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			out := t.TempDir()
			args := []string{"diagnose", "--locust", filepath.Join(dir, "locust"), "--out", out}
			for _, l := range djangoFixtureLogs {
				if p := filepath.Join(dir, l[1]); fileSize(p) > 0 {
					args = append(args, "--log", l[0]+"="+p)
				}
			}
			cmd := stampedeCmd(args...)
			var buf bytes.Buffer
			cmd.Stdout, cmd.Stderr = &buf, &buf
			if err := cmd.Run(); err != nil {
				t.Fatalf("diagnose --locust: %v\n%s", err, buf.String())
			}
			d := readDiagnosis(t, out)
			t.Logf("%s (Locust): %s", filepath.Base(dir), summarize(d))
			want, err := os.ReadFile(w)
			if err != nil {
				t.Fatal(err)
			}
			wantTop := ""
			for _, line := range strings.Split(string(want), "\n") {
				if f := strings.Fields(line); len(f) == 2 && f[0] == "top" {
					wantTop = f[1]
				}
			}
			recordAccuracy(t, "Django (Locust import)", filepath.Base(dir), wantTop, d)
			for _, line := range strings.Split(strings.TrimSpace(string(want)), "\n") {
				f := strings.Fields(line)
				switch {
				case len(f) == 2 && f[0] == "top":
					checkTop(t, d, f[1])
				case len(f) == 2 && f[0] == "verdict":
					if d.Verdict != f[1] {
						t.Errorf("verdict: want %s; got %s", f[1], summarize(d))
					}
				case len(f) == 1 && f[0] == "no-confirmed":
					for _, x := range d.Findings {
						if x.Status == stampede.Confirmed {
							t.Errorf("confirmed finding: %s", summarize(d))
						}
					}
				default:
					t.Fatalf("%s: bad line %q", w, line)
				}
			}
		})
	}
}

// TestRecordDjangoLocust records the Locust fixtures: with
// STAMPEDE_RECORD_LOCUST=DIR (normally internal/diagnose/testdata/django-locust,
// from the repository root) it runs Debian's Locust with the target's
// locustfile against every mode (or the modes listed in
// STAMPEDE_RECORD_MODES, comma-separated) and writes DIR/MODE/: the CSVs of
// "locust --csv DIR/MODE/locust --csv-full-history", each server log cut
// to the bytes written during the run (PgBouncer's per-connection login and
// close lines left out), "want" and "about".
func TestRecordDjangoLocust(t *testing.T) {
	root := os.Getenv("STAMPEDE_RECORD_LOCUST")
	if root == "" {
		t.Skip("set STAMPEDE_RECORD_LOCUST=DIR to record the Django target under Locust")
	}
	root, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	locust, err := exec.LookPath("locust")
	if err != nil {
		t.Fatal("locust not installed (apt-get install python3-locust)")
	}
	only := map[string]bool{}
	for _, m := range strings.Split(os.Getenv("STAMPEDE_RECORD_MODES"), ",") {
		if m = strings.TrimSpace(m); m != "" {
			only[m] = true
		}
	}
	lf, err := testenv.DjangoFile("locustfile.py")
	if err != nil {
		t.Fatal(err)
	}
	db := testenv.DjangoDatabase(t)
	for _, m := range testenv.DjangoModes() {
		if len(only) > 0 && !only[m.Name] {
			continue
		}
		t.Run(m.Name, func(t *testing.T) {
			tmp := t.TempDir()
			d := testenv.DjangoTarget(t, testenv.DjangoOptions{Mode: m.Name, DB: db, Dir: filepath.Join(tmp, "logs")})
			users := filepath.Join(tmp, "users.csv")
			accounts := m.Load.Users
			if m.Load.Accounts > 0 {
				accounts = m.Load.Accounts
			}
			if err := d.WriteUsers(users, accounts); err != nil {
				t.Fatal(err)
			}
			locustfile := filepath.Join(tmp, "locustfile.py")
			if err := os.WriteFile(locustfile, lf, 0o644); err != nil {
				t.Fatal(err)
			}
			logs := map[string]string{"errors.log": d.ErrorsLog, "access.log": d.AccessLog, "gunicorn.log": d.GunicornLog,
				"pgbouncer.log": d.PgBouncerLog, "postgresql.log": d.PostgresLog}
			from := map[string]int64{}
			for name, p := range logs {
				from[name] = fileSize(p)
			}
			dst := filepath.Join(root, m.Name)
			if err := os.RemoveAll(dst); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), m.Load.Duration+2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, locust, "-f", locustfile, "--headless",
				"-u", strconv.Itoa(m.Load.Users), "-r", strconv.FormatFloat(m.Load.SpawnRate, 'f', -1, 64),
				"-t", m.Load.Duration.String(), "--host", d.URL,
				"--csv", filepath.Join(dst, "locust"), "--csv-full-history", "--only-summary")
			cmd.Dir = tmp
			cmd.Env = append(os.Environ(), "DJANGO_USERS="+users)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			var ee *exec.ExitError
			if err != nil && (!errors.As(err, &ee) || ee.ExitCode() != 1 || ctx.Err() != nil) {
				t.Fatalf("locust: %v\n%s", err, out.String())
			}
			time.Sleep(time.Second) // the servers' last lines
			for name, p := range logs {
				body := readFrom(t, p, from[name])
				switch name {
				case "pgbouncer.log":
					body = dropLines(body, "login attempt: ", "closing because: client close request")
				case "errors.log":
					var kept, all int
					body, kept, all = sampleEvents(body, djangoErrorsLogCap)
					if kept < all {
						t.Logf("%s: errors.log: kept %d of %d events, spread over the run", m.Name, kept, all)
					}
				}
				if err := os.WriteFile(filepath.Join(dst, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want := "verdict pass\nno-confirmed\n"
			if m.Want != "" {
				want = "top " + m.Want + "\n"
			}
			if w, ok := djangoLocustWant[m.Name]; ok {
				want = "top " + w + "\n"
			}
			about := fmt.Sprintf("mode %s: %s\nlocust -u %d -r %g -t %s, %d accounts (Debian's Locust, %s)\n",
				m.Name, m.About, m.Load.Users, m.Load.SpawnRate, m.Load.Duration, accounts, time.Now().UTC().Format("2006-01-02"))
			for name, body := range map[string]string{"want": want, "about": about} {
				if err := os.WriteFile(filepath.Join(dst, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			t.Logf("%s: recorded in %s\n%s", m.Name, dst, lastLinesOf(out.String(), 14))
		})
	}
}

// djangoLocustWant overrides a mode's expected top finding for its Locust
// recording, which has the server logs but no probes. With django-redis'
// IGNORE_EXCEPTIONS no log says Redis refused anything (Redis itself logs
// no refusals): the lost sessions are all the evidence there is.
var djangoLocustWant = map[string]string{"redis-connection-limit-ignored": "session-lost"}

// djangoErrorsLogCap bounds a recorded errors.log: a traceback is a few KB
// and a fault may log hundreds.
const djangoErrorsLogCap = 160 << 10

// sampleEvents keeps whole events of a Python log (a line starting with a
// timestamp and the lines after it, its traceback) within max bytes: all
// of them when they fit, else every k-th one, the first and the last
// included, so the sample still spans the run. It returns the kept text
// and the numbers of events kept and found.
func sampleEvents(body string, max int) (string, int, int) {
	var events []string
	for _, l := range strings.SplitAfter(body, "\n") {
		if l == "" {
			continue
		}
		if len(events) == 0 || djangoLogStamp(l) {
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

// djangoLogStamp reports whether a line of Django's errors log starts an
// event ("2026-11-28 21:21:00,920 ERROR ...").
func djangoLogStamp(l string) bool {
	if len(l) < 23 {
		return false
	}
	_, err := time.Parse("2006-01-02 15:04:05,000", l[:23])
	return err == nil
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
		got, kept, n := sampleEvents(body, tc.max)
		if n != 10 || kept != tc.kept {
			t.Errorf("max %d: kept %d of %d, want %d of 10", tc.max, kept, n, tc.kept)
		}
		if strings.Count(got, "Traceback") != kept || !strings.Contains(got, tc.first) || !strings.HasSuffix(got, tc.last+"\n") {
			t.Errorf("max %d: events cut or out of order:\n%s", tc.max, got)
		}
	}
}
