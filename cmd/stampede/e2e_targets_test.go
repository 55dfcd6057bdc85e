package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/testenv"
)

// The reference targets: real applications of several stacks (Django,
// Rails, Flask; internal/testenv), each behind PgBouncer, PostgreSQL and
// Redis, that nobody here tuned the diagnosis on. Each mode is a
// configuration of the real software; stampede runs the target's scenario
// against it with every probe and log, and the top finding must be the
// mode's id. Before the diagnosis is judged, the stack's fault check
// (faultChecks) asserts that the fault really happened, in the real
// software's own words, so a fault that did not show is told apart from a
// diagnosis that missed it.
//
// scripts/test runs one representative mode per stack live (ModeInfo's
// Representative); scripts/accuracy runs them all (STAMPEDE_MODES=all),
// the modes that used to flip three times each (STAMPEDE_REPEATS=1 and
// ModeInfo's Repeats).
// STAMPEDE_MODES also takes a list: "rails:all,flask:slow-query,django:healthy".

// liveRun is what a fault check reads of a live run.
type liveRun struct {
	results  []stampede.Result
	timeline []stampede.Sample
	// pgFrom is the size of the shared PostgreSQL log when the mode's
	// target started: its lines from there on are the mode's.
	pgFrom int64
	pgLog  string
}

// faultCheck asserts that a mode's fault happened in the real software
// (its logs, the probes, the failed requests), and logs what it saw.
type faultCheck func(t *testing.T, m testenv.ModeInfo, tg testenv.Target, run liveRun)

// faultChecks holds each stack's fault check, registered by the stack's
// test file.
var faultChecks = map[string]faultCheck{}

// stackLabel is the stack's name in the accuracy table.
func stackLabel(stack string) string {
	switch stack {
	case "django":
		return "Django"
	case "rails":
		return "Rails"
	case "flask":
		return "Flask"
	case "node":
		return "Node"
	}
	return stack
}

// selectedModes returns, per stack, the modes to run live: from
// STAMPEDE_MODES ("all", or "stack:mode" and "stack:all" items separated by
// commas), else each stack's representative mode.
func selectedModes(t *testing.T) map[string][]testenv.ModeInfo {
	t.Helper()
	spec := strings.TrimSpace(os.Getenv("STAMPEDE_MODES"))
	out := map[string][]testenv.ModeInfo{}
	for _, stack := range testenv.Stacks {
		ms, err := testenv.Modes(stack)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			want := m.Representative && spec == ""
			if spec == "all" {
				want = true
			}
			for _, item := range strings.Split(spec, ",") {
				s, mode, _ := strings.Cut(strings.TrimSpace(item), ":")
				if s == stack && (mode == "all" || mode == m.Name) {
					want = true
				}
			}
			if want {
				out[stack] = append(out[stack], m)
			}
		}
	}
	return out
}

// TestE2ETargets runs stampede live against the reference targets: each
// stack's representative mode, or the modes STAMPEDE_MODES names.
func TestE2ETargets(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end runs of the reference targets take minutes")
	}
	sel := selectedModes(t)
	for _, stack := range testenv.Stacks {
		modes := sel[stack]
		if len(modes) == 0 {
			continue
		}
		t.Run(stack, func(t *testing.T) {
			t0 := time.Now()
			st, sh := testenv.PrepareStack(t, stack)
			t.Logf("%s: PostgreSQL with schema and seed ready in %.1fs", stack, time.Since(t0).Seconds())
			for _, m := range modes {
				runs := 1
				if os.Getenv("STAMPEDE_REPEATS") != "" && m.Repeats > 1 {
					runs = m.Repeats
				}
				for k := 1; k <= runs; k++ {
					name := m.Name
					if runs > 1 {
						name = fmt.Sprintf("%s#%d", m.Name, k)
					}
					t.Run(name, func(t *testing.T) { liveMode(t, st, sh, m, name) })
				}
			}
		})
	}
}

// liveMode runs one mode of a target live and judges the diagnosis; run
// names the run in the accuracy table ("db-lock-contention#2" for a
// repeated mode).
func liveMode(t *testing.T, st testenv.Starter, sh testenv.Shared, m testenv.ModeInfo, run string) {
	start := time.Now()
	dir := t.TempDir()
	pgFrom := fileSize(sh.PostgresLog())
	tg := testenv.StartTarget(t, st, sh, m.Name, filepath.Join(dir, "logs"))
	ready := time.Since(start)
	sc, err := tg.WriteScenario(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "run")
	runStampede(t, m.Load.Duration+2*time.Minute, append(tg.RunArgs(sc), "--quiet", "--out", out)...)
	rs := readResults(t, out)
	diag := readDiagnosis(t, out)
	t.Logf("%s/%s: target ready in %.1fs, %d requests, %s; run %.0fs in all",
		m.Stack, m.Name, ready.Seconds(), len(rs), failureSummary(rs), time.Since(start).Seconds())
	t.Logf("%s/%s: client latency %s", m.Stack, m.Name, latencySummary(rs))
	t.Logf("%s/%s: diagnosis %s", m.Stack, m.Name, summarize(diag))
	keepArtifacts(t, m.Stack+"-"+run, dir)
	recordAccuracy(t, stackLabel(m.Stack)+" (live)", run, m.Want, diag)
	check := faultChecks[m.Stack]
	if check == nil {
		t.Fatalf("no fault check for stack %s", m.Stack)
	}
	check(t, m, tg, liveRun{results: rs, timeline: readTimeline(t, out), pgFrom: pgFrom, pgLog: sh.PostgresLog()})
	if m.Want == "" {
		checkHealthy(t, m.Stack+"/"+m.Name, diag)
		return
	}
	checkTop(t, diag, m.Want)
	checkChains(t, diag, m.Want, failedCount(rs))
	if m.Want == "db-lock-contention" {
		checkBlockingChain(t, diag)
	}
}

// checkHealthy asserts a healthy mode's diagnosis: verdict pass, nothing
// confirmed.
func checkHealthy(t *testing.T, name string, diag stampede.Diagnosis) {
	t.Helper()
	if diag.Verdict != "pass" {
		t.Errorf("%s: verdict %s", name, summarize(diag))
	}
	for _, f := range diag.Findings {
		if f.Status == stampede.Confirmed {
			t.Errorf("%s: confirmed finding %s", name, summarize(diag))
		}
	}
}

// checkBlockingChain asserts that lock contention, found live with the
// PostgreSQL probe, names the blockers themselves, from pg_blocking_pids:
// "pid P (wait) blocked by Q (state, xact AGE: QUERY), ...: QUERY".
// pg_stat_activity shows a blocker's last statement: the FOR UPDATE while
// it runs, a later one when it sits idle in transaction holding the lock
// (the login's password check), and then the FOR UPDATE is the waiters'
// statement.
func checkBlockingChain(t *testing.T, diag stampede.Diagnosis) {
	t.Helper()
	chain := ""
	for _, e := range diag.Findings[0].Evidence {
		if strings.HasPrefix(e.Text, "blocking chain:") {
			chain = e.Text
		}
	}
	blockers, waiter, _ := strings.Cut(chain, "): ")
	low := strings.ToLower(blockers)
	ok := strings.Contains(blockers, " blocked by ") && (strings.Contains(low, "select") || strings.Contains(low, "update"))
	if !strings.Contains(low, "for update") {
		ok = ok && strings.Contains(blockers, "idle in transaction") && strings.Contains(strings.ToLower(waiter), "for update")
	}
	if !ok {
		t.Errorf("db-lock-contention: no blocking chain naming the blocker and its query (%q)", chain)
	}
	t.Logf("%s", chain)
}

// locustFixtures is where the Locust recordings of the targets are kept,
// one directory per stack: STACK-locust/MODE.
const locustFixtures = "../../internal/diagnose/testdata"

// fixtureLogs reads a recording's "logs" file ("NAME FILE" per line: the
// --log name and the file in the recording), or the Django recordings'
// fixed names.
func fixtureLogs(t *testing.T, dir string) [][2]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "logs"))
	if errors.Is(err, os.ErrNotExist) {
		return [][2]string{{"app-errors", "errors.log"}, {"access", "access.log"}, {"gunicorn", "gunicorn.log"},
			{"pgbouncer", "pgbouncer.log"}, {"postgres", "postgresql.log"}}
	}
	if err != nil {
		t.Fatal(err)
	}
	var out [][2]string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			t.Fatalf("%s/logs: bad line %q (want NAME FILE)", dir, line)
		}
		out = append(out, [2]string{f[0], f[1]})
	}
	return out
}

// TestE2ELocustRecordings diagnoses each Locust recording of the reference
// targets (locustFixtures/STACK-locust/MODE: Locust's CSVs and the server
// logs of the run) with "stampede diagnose --locust PREFIX --log ...", as a
// Locust user would, and checks the result against the recording's want
// file: "top ID" (the top finding, confirmed or likely, with evidence
// refs), or "verdict pass" and "no-confirmed". It needs no server.
func TestE2ELocustRecordings(t *testing.T) {
	for _, stack := range testenv.Stacks {
		wants, err := filepath.Glob(filepath.Join(locustFixtures, stack+"-locust", "*", "want"))
		if err != nil {
			t.Fatal(err)
		}
		if len(wants) == 0 {
			if stack == "django" {
				t.Fatalf("no Locust recordings of %s in %s (record them with STAMPEDE_RECORD_LOCUST)", stack, locustFixtures)
			}
			t.Logf("no Locust recordings of %s yet", stack)
			continue
		}
		for _, w := range wants {
			dir := filepath.Dir(w)
			t.Run(stack+"/"+filepath.Base(dir), func(t *testing.T) { diagnoseRecording(t, stack, dir, w) })
		}
	}
}

func diagnoseRecording(t *testing.T, stack, dir, wantFile string) {
	out := t.TempDir()
	args := []string{"diagnose", "--locust", filepath.Join(dir, "locust"), "--out", out}
	for _, l := range fixtureLogs(t, dir) {
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
	t.Logf("%s/%s (Locust): %s", stack, filepath.Base(dir), summarize(d))
	want, err := os.ReadFile(wantFile)
	if err != nil {
		t.Fatal(err)
	}
	wantTop := ""
	for _, line := range strings.Split(string(want), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "top" {
			wantTop = f[1]
		}
	}
	recordAccuracy(t, stackLabel(stack)+" (Locust import)", filepath.Base(dir), wantTop, d)
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
			t.Fatalf("%s: bad line %q", wantFile, line)
		}
	}
}

// TestRecordLocust records the Locust fixtures: with
// STAMPEDE_RECORD_LOCUST=DIR (normally internal/diagnose/testdata, from the
// repository root) it runs Debian's Locust with each target's locustfile
// against the modes STAMPEDE_MODES selects (as TestE2ETargets does; "all"
// for every mode of every stack) and writes DIR/STACK-locust/MODE/: the
// CSVs of "locust --csv .../locust --csv-full-history", each server log cut
// to the bytes written during the run (PgBouncer's per-connection login and
// close lines left out, long error logs sampled), "logs", "want" and
// "about".
func TestRecordLocust(t *testing.T) {
	root := os.Getenv("STAMPEDE_RECORD_LOCUST")
	if root == "" {
		t.Skip("set STAMPEDE_RECORD_LOCUST=DIR (and STAMPEDE_MODES) to record the targets under Locust")
	}
	root, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	locust, err := exec.LookPath("locust")
	if err != nil {
		t.Fatal("locust not installed (apt-get install python3-locust)")
	}
	sel := selectedModes(t)
	for _, stack := range testenv.Stacks {
		modes := sel[stack]
		if len(modes) == 0 {
			continue
		}
		t.Run(stack, func(t *testing.T) {
			st, sh := testenv.PrepareStack(t, stack)
			for _, m := range modes {
				t.Run(m.Name, func(t *testing.T) { recordMode(t, locust, root, st, sh, m) })
			}
		})
	}
}

func recordMode(t *testing.T, locust, root string, st testenv.Starter, sh testenv.Shared, m testenv.ModeInfo) {
	tmp := t.TempDir()
	tg := testenv.StartTarget(t, st, sh, m.Name, filepath.Join(tmp, "logs"))
	users := filepath.Join(tmp, "users.csv")
	accounts := m.Load.Users
	if m.Load.Accounts > 0 {
		accounts = m.Load.Accounts
	}
	if err := tg.WriteUsers(users, accounts); err != nil {
		t.Fatal(err)
	}
	lf, err := tg.Locustfile()
	if err != nil {
		t.Fatal(err)
	}
	locustfile := filepath.Join(tmp, "locustfile.py")
	if err := os.WriteFile(locustfile, lf, 0o644); err != nil {
		t.Fatal(err)
	}
	logs := tg.Logs()
	from := map[string]int64{}
	for _, l := range logs {
		from[l[1]] = fileSize(l[1])
	}
	dst := filepath.Join(root, m.Stack+"-locust", m.Name)
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
		"-t", m.Load.Duration.String(), "--host", tg.DirectURL(),
		"--csv", filepath.Join(dst, "locust"), "--csv-full-history", "--only-summary")
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), tg.LocustUsersEnv()+"="+users)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	var ee *exec.ExitError
	if err != nil && (!errors.As(err, &ee) || ee.ExitCode() != 1 || ctx.Err() != nil) {
		t.Fatalf("locust: %v\n%s", err, out.String())
	}
	time.Sleep(time.Second) // the servers' last lines
	var index strings.Builder
	for _, l := range logs {
		name, file := l[0], filepath.Base(l[1])
		body := readFrom(t, l[1], from[l[1]])
		if name == "pgbouncer" {
			body = dropLines(body, "login attempt: ", "closing because: client close request")
		}
		if len(body) > recordedLogCap {
			var kept, all int
			body, kept, all = sampleEvents(body, recordedLogCap, startsEvent)
			t.Logf("%s/%s: %s: kept %d of %d events, spread over the run", m.Stack, m.Name, file, kept, all)
		}
		if err := os.WriteFile(filepath.Join(dst, file), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&index, "%s %s\n", name, file)
	}
	want := "verdict pass\nno-confirmed\n"
	if w := m.WantFromLocust(); w != "" {
		want = "top " + w + "\n"
	}
	about := fmt.Sprintf("%s mode %s: %s\nlocust -u %d -r %g -t %s, %d accounts (Debian's Locust, %s)\n",
		m.Stack, m.Name, m.About, m.Load.Users, m.Load.SpawnRate, m.Load.Duration, accounts, time.Now().UTC().Format("2006-01-02"))
	for name, body := range map[string]string{"want": want, "about": about, "logs": index.String()} {
		if err := os.WriteFile(filepath.Join(dst, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%s/%s: recorded in %s\n%s", m.Stack, m.Name, dst, lastLinesOf(out.String(), 14))
}

// recordedLogCap bounds a recorded log: a traceback is a few KB and a fault
// may log hundreds; PostgreSQL may log thousands of slow statements.
const recordedLogCap = 160 << 10

// startsEvent reports whether a log line starts an event rather than
// continuing one (a stack frame, a traceback's lines, a chained cause): it
// does not start with blank space and is none of the continuation lines of
// Python, Java or Ruby traces.
func startsEvent(l string) bool {
	if l == "" || l[0] == ' ' || l[0] == '\t' || l == "\n" {
		return false
	}
	if l[0] == '{' {
		return true // a JSON line is an event of its own
	}
	if requestTagged(l) {
		// Rails' tagged logging: the lines after a message's first
		// carry only the request's tag, "[uuid] ...".
		return false
	}
	for _, p := range []string{"Traceback (", "During handling of", "The above exception", "Caused by: ", "\tfrom ", "DETAIL:", "HINT:", "CONTEXT:", "STATEMENT:"} {
		if strings.HasPrefix(l, p) {
			return false
		}
	}
	// A Python exception line ends a traceback ("pkg.Error: message"):
	// no timestamp, a dotted or capitalised name, a colon.
	if name, _, ok := strings.Cut(l, ": "); ok && !strings.ContainsAny(name, " []") && !startsWithDigit(name) {
		return false
	}
	return true
}

func startsWithDigit(s string) bool { return s != "" && s[0] >= '0' && s[0] <= '9' }

// requestTagged reports whether a line starts with a request id tag, as
// Rails' tagged logging prefixes each line of a multi-line message:
// "[d7a937b1-7c5c-4f8a-8b90-d93fac5f9302] activerecord (6.1.7) lib/...".
func requestTagged(l string) bool {
	end := strings.Index(l, "] ")
	if len(l) < 2 || l[0] != '[' || end < 9 {
		return false
	}
	for _, c := range l[1:end] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == '-') {
			return false
		}
	}
	return true
}
