package faults_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/faults"
	"github.com/stampede-load/stampede/internal/lab"
	"github.com/stampede-load/stampede/internal/testenv"
)

// The target killed (SIGKILL) and started again mid-run. The lab keeps its
// sessions in memory (the embedded store, as Django's LocMemCache), so the
// restart loses every session: the users log in again and browse on.
func TestFaultTargetRestart(t *testing.T) {
	w := newWorld(t, false)
	oc := w.runFault(fault{at: 6 * time.Second, hold: 4 * time.Second,
		inject:  func() error { w.lab.kill(); return nil },
		restore: func() error { return w.lab.start(t.Context()) },
	})
	refused := 0
	for _, r := range oc.results {
		if r.Outcome == stampede.FailTransport && strings.Contains(r.Reason, "refused") {
			refused++
			if r.End().Before(oc.injected.Add(-time.Second)) || r.Start.After(oc.restored.Add(time.Second)) {
				t.Errorf("connection refused outside the outage: %+v", r)
			}
		}
	}
	if refused == 0 {
		t.Error("no request was refused while the target was down")
	}
	checkRelogin(t, oc)
	top := checkFinding(t, oc, expect{id: "target-down", from: oc.injected, to: oc.restored})
	checkWithoutRecords(t, w, oc)
	for _, f := range oc.diagnosis.Findings {
		if f.ID == "session-lost" && f.CausedBy != "target-down" {
			t.Errorf("session-lost caused by %q, want target-down", f.CausedBy)
		}
	}
	row(t, faults.Row{Section: faults.SectionFault, Name: "Target killed (SIGKILL) and restarted; sessions in memory",
		Injected: "the lab (embedded store, sessions in memory) killed at 6 s, started again 4 s later",
		Recorded: recorded(oc), Diagnosis: top})
}

// checkRelogin checks that the users whose session was lost logged in
// again and that their later pages succeeded: requests.csv has re-login
// rows, and every user that lost its session has a successful page after
// its re-login.
func checkRelogin(t *testing.T, oc *outcome) {
	t.Helper()
	lostAt := map[int]time.Time{} // user → first lost session
	for _, r := range oc.results {
		if r.Failed() && strings.Contains(r.Reason, "session lost") {
			if _, ok := lostAt[r.User]; !ok {
				lostAt[r.User] = r.End()
			}
		}
	}
	if len(lostAt) == 0 {
		t.Fatal("no user lost its session to the restart")
	}
	relogins, reloginOK := 0, map[int]time.Time{}
	for _, r := range oc.results {
		if r.Relogin {
			relogins++
			if r.Method == "POST" && r.Outcome == stampede.OK {
				if _, ok := reloginOK[r.User]; !ok {
					reloginOK[r.User] = r.End()
				}
			}
		}
	}
	if relogins == 0 {
		t.Error("requests.csv has no relogin row")
	}
	if oc.res.SessionsLost == 0 || oc.res.Relogins == 0 {
		t.Errorf("sessions lost %d, re-logins %d: want both counted", oc.res.SessionsLost, oc.res.Relogins)
	}
	recovered := 0
	for u, at := range lostAt {
		ok, ok2 := reloginOK[u]
		if !ok2 || ok.Before(at) {
			t.Errorf("user %d lost its session at %s and never logged in again", u, at.Format(clock))
			continue
		}
		for _, r := range oc.results {
			if r.User == u && !r.Relogin && r.Outcome == stampede.OK && r.Start.After(ok) && !strings.Contains(r.Name, "AUTH") {
				recovered++
				break
			}
		}
	}
	if recovered != len(lostAt) {
		t.Errorf("%d of %d users that lost their session browsed successfully after logging in again", recovered, len(lostAt))
	}
	t.Logf("%d users lost their session; %d relogin rows; %d browsed again", len(lostAt), relogins, recovered)
}

// PgBouncer killed (SIGKILL) and started again: the lab's connections are
// refused, the PgBouncer probe cannot read the console, both come back.
func TestFaultPgBouncerRestart(t *testing.T) {
	w := newWorld(t, true)
	oc := w.runFault(fault{at: 6 * time.Second, hold: 4 * time.Second,
		inject:  w.svc.b.Kill,
		restore: func() error { return w.svc.b.Restart(t.Context()) },
	})
	pb := checkProbeOutage(t, oc, "pgbouncer")
	if n := failuresBetween(oc.results, oc.injected, oc.restored.Add(2*time.Second)); n == 0 {
		t.Error("no request failed while PgBouncer was down")
	}
	top := checkFinding(t, oc, expect{id: "db-unavailable", from: oc.injected, to: oc.restored})
	checkWithoutRecords(t, w, oc)
	row(t, faults.Row{Section: faults.SectionFault, Name: "PgBouncer killed (SIGKILL) and restarted",
		Injected: "PgBouncer killed at 6 s, started again on its port 4 s later",
		Recorded: recorded(oc, pb), Diagnosis: top})
}

// PostgreSQL restarted with a fast shutdown (pg_ctl stop -m fast, then
// start): PgBouncer stays up but its server connections go, the lab's
// queries fail, the PostgreSQL probe loses its connection and reconnects.
func TestFaultPostgresRestart(t *testing.T) {
	w := newWorld(t, true)
	oc := w.runFault(fault{at: 6 * time.Second, hold: 4 * time.Second,
		inject:  w.svc.pg.Stop,
		restore: func() error { return w.svc.pg.Restart(t.Context()) },
	})
	pg := checkProbeOutage(t, oc, "postgres")
	if n := failuresBetween(oc.results, oc.injected, oc.restored.Add(2*time.Second)); n == 0 {
		t.Error("no request failed while PostgreSQL was down")
	}
	top := checkFinding(t, oc, expect{id: "db-unavailable", from: oc.injected, to: oc.restored})
	row(t, faults.Row{Section: faults.SectionFault, Name: "PostgreSQL restarted (fast shutdown)",
		Injected: "PostgreSQL stopped with a fast shutdown at 6 s, started again on its port 4 s later (PgBouncer stays up, server_login_retry 2 s)",
		Recorded: recorded(oc, pg), Diagnosis: top})
}

// One backend terminated with pg_terminate_backend while it runs a query
// of the lab's heavy recap page (held at a lock for the moment, so that it
// is surely inside its query): that request fails with SQLSTATE 57P01,
// nothing else does; the server never goes down.
func TestFaultTerminateBackend(t *testing.T) {
	// Twice the analysis rows, so that the recap's aggregate runs long
	// enough to be caught running — but not so many that the recap itself
	// becomes slow under the load (a floor near the 500 ms bar makes a
	// second, legitimate slow-query finding that may outrank the one
	// failure).
	w := newWorld(t, true, "--items", "600", "--rows-per-item", "20")
	w.tasks = `  - {name: rekap, weight: 3, steps: [{name: "GET /rekap-rab/", get: /rekap-rab/}]}` + "\n"
	var pid int
	oc := w.runFault(fault{at: 7 * time.Second, inject: func() error {
		var err error
		pid, err = terminateActive(t, w.svc.pg)
		return err
	}})
	t.Logf("terminated backend %d at %s", pid, oc.injected.Format(clock))
	n57 := 0
	for _, e := range oc.evidence {
		if strings.Contains(e.Message+" "+e.Exception, "administrator command") {
			n57++
		}
	}
	if n57 == 0 {
		t.Error("no evidence of the termination (terminating connection due to administrator command)")
	}
	failed := failuresBetween(oc.results, oc.injected.Add(-2*time.Second), oc.injected.Add(2*time.Second))
	if failed == 0 {
		t.Error("no request failed at the termination")
	}
	for _, s := range oc.timeline {
		if (s.Source == "postgres" || s.Source == "pgbouncer") && s.Err != "" && !timedOut(s.Err) {
			t.Errorf("%s probe failed at %s though the server stayed up: %s", s.Source, s.Time.Format(clock), s.Err)
		}
	}
	top := checkFinding(t, oc, expect{id: "db-unavailable", from: oc.injected})
	row(t, faults.Row{Section: faults.SectionFault, Name: "One backend terminated (pg_terminate_backend)",
		Injected: "pg_terminate_backend of a backend running the recap's aggregate, at 7 s",
		Recorded: recorded(oc) + fmt.Sprintf("; %d log events of the termination", n57), Diagnosis: top})
}

// terminateActive terminates a backend of the application's user in the
// middle of a query on rincian_ahsp (at most five seconds to find one). A
// backend chosen while it ran could finish its query before the signal
// lands, and an idle server connection of PgBouncer's fails no request:
// so the table is locked for the moment it takes a recap's query to queue
// behind the lock, and that backend, sure to be inside its query, is the
// one terminated; the lock goes with the locking transaction.
func terminateActive(t *testing.T, pg *testenv.PG) (int, error) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	locker, err := pgx.Connect(ctx, pg.SuperDSN())
	if err != nil {
		return 0, err
	}
	defer locker.Close(context.Background())
	// The look-up runs on a connection of its own: a transaction sees
	// pg_stat_activity as it was at its first look.
	c, err := pgx.Connect(ctx, pg.SuperDSN())
	if err != nil {
		return 0, err
	}
	defer c.Close(context.Background())
	tx, err := locker.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // releases the lock; nothing to do about an error
	if _, err := tx.Exec(ctx, "LOCK TABLE rincian_ahsp IN ACCESS EXCLUSIVE MODE"); err != nil {
		return 0, err
	}
	for ctx.Err() == nil {
		var pid int
		var ok bool
		err := c.QueryRow(ctx, `SELECT pid, pg_terminate_backend(pid) FROM (
			SELECT pid FROM pg_stat_activity WHERE usename = $1 AND state = 'active'
			AND wait_event_type = 'Lock' AND query LIKE '%rincian_ahsp%'
			ORDER BY query_start DESC LIMIT 1) a`, pg.User).Scan(&pid, &ok)
		if err == nil {
			if !ok {
				return 0, fmt.Errorf("pg_terminate_backend(%d) returned false", pid)
			}
			return pid, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return 0, err
		}
		time.Sleep(time.Millisecond)
	}
	return 0, errors.New("no backend ran the recap within 5 s")
}

// Redis killed (SIGKILL) and started again, empty: the lab's session reads
// fail while it is down, and every session is gone after it: the users log
// in again.
func TestFaultRedisRestart(t *testing.T) {
	w := newWorld(t, true)
	oc := w.runFault(fault{at: 6 * time.Second, hold: 4 * time.Second,
		inject:  w.svc.r.Kill,
		restore: func() error { return w.svc.r.Restart(t.Context()) },
	})
	rp := checkProbeOutage(t, oc, "redis")
	if n := failuresBetween(oc.results, oc.injected, oc.restored.Add(2*time.Second)); n == 0 {
		t.Error("no request failed while Redis was down")
	}
	checkRelogin(t, oc)
	top := checkFinding(t, oc, expect{id: "redis-unavailable", from: oc.injected, to: oc.restored})
	checkWithoutRecords(t, w, oc)
	for _, f := range oc.diagnosis.Findings {
		if f.ID == "session-lost" && f.CausedBy != "redis-unavailable" {
			t.Errorf("session-lost caused by %q, want redis-unavailable", f.CausedBy)
		}
	}
	row(t, faults.Row{Section: faults.SectionFault, Name: "Redis killed (SIGKILL) and restarted, empty",
		Injected: "Redis (the lab's sessions) killed at 6 s, started again on its port 4 s later, without the sessions",
		Recorded: recorded(oc, rp), Diagnosis: top})
}

// Redis paused (CLIENT PAUSE ALL) for 4 s, longer than the lab's Redis
// read timeout (500 ms): session reads time out, then Redis answers again
// with the sessions intact.
func TestFaultRedisPause(t *testing.T) {
	w := newWorld(t, true, "--redis-read-timeout", "500ms", "--redis-write-timeout", "500ms")
	const pause = 4 * time.Second
	var ctl *goredis.Client
	oc := w.runFault(fault{at: 6 * time.Second, hold: pause,
		inject: func() error {
			ctl = goredis.NewClient(&goredis.Options{Addr: w.svc.r.Addr(), MaxRetries: -1, DisableIdentity: true, Protocol: 2})
			return ctl.Do(t.Context(), "CLIENT", "PAUSE", pause.Milliseconds(), "ALL").Err()
		},
		// The pause ends by itself; restore waits until Redis answers.
		restore: func() error {
			defer ctl.Close()
			for range 50 {
				if err := ctl.Ping(t.Context()).Err(); err == nil {
					return nil
				}
				time.Sleep(100 * time.Millisecond)
			}
			return errors.New("redis did not answer after its pause")
		},
	})
	rp := checkProbeOutage(t, oc, "redis")
	if n := failuresBetween(oc.results, oc.injected, oc.restored.Add(2*time.Second)); n == 0 {
		t.Error("no request failed while Redis was paused")
	}
	top := checkFinding(t, oc, expect{id: "redis-unavailable", from: oc.injected, to: oc.restored})
	row(t, faults.Row{Section: faults.SectionFault, Name: "Redis paused (CLIENT PAUSE 4 s) beyond the app's 500 ms timeout",
		Injected: "CLIENT PAUSE 4000 ALL at 6 s; the lab's Redis read/write timeout is 500 ms",
		Recorded: recorded(oc, rp), Diagnosis: top})
}

// The lab's pool too small for the load (2 connections, query_wait_timeout
// 1 s, an export holding its connection 2 s) fills errors.log and
// pgbouncer.log with tracebacks and timeouts while the logs are rotated or
// truncated mid-run.
var poolFault = []string{"--pool-size", "2", "--reserve-pool-size", "0", "--query-wait-timeout", "1s", "--export-hold", "2s"}

const exportTask = `  - {name: export, weight: 1, steps: [{name: "GET /export/", get: /export/}]}` + "\n"

// A rename rotation (logrotate's default, then the app told to reopen its
// logs, as gunicorn on USR1): every traceback is read once, from the
// renamed file to its end and then from the new file.
func TestFaultLogRotated(t *testing.T) {
	w := newWorld(t, false, poolFault...)
	w.tasks = exportTask
	logs := []string{filepath.Join(w.lab.logs, lab.ErrorsLog), filepath.Join(w.lab.logs, lab.PgBouncerLog)}
	oc := w.runFault(fault{at: 9 * time.Second, inject: func() error {
		for _, p := range logs {
			if err := os.Rename(p, p+".1"); err != nil {
				return err
			}
		}
		return w.lab.signal(syscall.SIGUSR1)
	}})
	inFiles := countTracebacks(t, logs[0]+".1") + countTracebacks(t, logs[0])
	got := checkLogEvidence(t, oc, inFiles)
	if got != inFiles {
		t.Errorf("%d tracebacks in errors.log.1 and errors.log, %d events read from them: lines lost or read twice", inFiles, got)
	}
	top := checkFinding(t, oc, expect{id: "db-pool-wait-timeout", untimed: true})
	row(t, faults.Row{Section: faults.SectionFault, Name: "Log rotated (renamed, app reopens)",
		Injected: "errors.log and pgbouncer.log renamed to .1 at 9 s, then the lab told to reopen them (SIGUSR1)",
		Recorded: recorded(oc) + fmt.Sprintf("; %d tracebacks in the two files, %d read, before and after the rotation", inFiles, got), Diagnosis: top})
}

// copytruncate (logrotate's option for apps that cannot reopen): the file
// is copied and truncated in place while the app writes on. The tail reads
// the new lines from the start of the truncated file.
func TestFaultLogTruncated(t *testing.T) {
	w := newWorld(t, false, poolFault...)
	w.tasks = exportTask
	logs := []string{filepath.Join(w.lab.logs, lab.ErrorsLog), filepath.Join(w.lab.logs, lab.PgBouncerLog)}
	oc := w.runFault(fault{at: 9 * time.Second, inject: func() error {
		for _, p := range logs {
			if err := copyFile(p, p+".1"); err != nil {
				return err
			}
			if err := os.Truncate(p, 0); err != nil {
				return err
			}
		}
		return nil
	}})
	// copytruncate loses, to any reader that follows the path, what was
	// written after the reader's last poll (200 ms) before the truncation:
	// logrotate(8) warns of it. Every other traceback is read.
	inFiles := countTracebacks(t, logs[0]+".1") + countTracebacks(t, logs[0])
	window := countTracebacksBetween(t, logs[0]+".1", oc.injected.Add(-time.Second), oc.injected)
	got := checkLogEvidence(t, oc, inFiles)
	if got < inFiles-window {
		t.Errorf("%d tracebacks in errors.log.1 and errors.log (%d in the last second before the truncation), only %d events read", inFiles, window, got)
	}
	top := checkFinding(t, oc, expect{id: "db-pool-wait-timeout", untimed: true})
	row(t, faults.Row{Section: faults.SectionFault, Name: "Log truncated (copytruncate)",
		Injected: "errors.log and pgbouncer.log copied to .1 and truncated in place at 9 s, the lab writing on",
		Recorded: recorded(oc) + fmt.Sprintf("; %d tracebacks in the two files, %d read, before and after the truncation", inFiles, got), Diagnosis: top})
}

// countTracebacks counts the Django error reports in a log file.
func countTracebacks(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), " ERROR django.request Internal Server Error: ")
}

// countTracebacksBetween counts the Django error reports of a log file
// stamped in [from, to] (to the millisecond, in local time as the lab
// writes them).
func countTracebacksBetween(t *testing.T, path string, from, to time.Time) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		stamp, _, ok := strings.Cut(l, " ERROR django.request Internal Server Error: ")
		if !ok {
			continue
		}
		at, err := time.ParseInLocation("2006-01-02 15:04:05,000", stamp, time.Local)
		if err == nil && !at.Before(from.Truncate(time.Millisecond)) && !at.After(to) {
			n++
		}
	}
	return n
}

// checkLogEvidence checks the evidence read from errors.log: events before
// and after the fault, none read twice (at most one per HTTP 500 the run
// recorded), and returns how many there are.
func checkLogEvidence(t *testing.T, oc *outcome, inFiles int) int {
	t.Helper()
	var before, after, n int
	for _, e := range oc.evidence {
		if e.Source != "app-errors" || !strings.Contains(e.Message, "Internal Server Error") {
			continue
		}
		n++
		switch {
		case e.Time.Before(oc.injected):
			before++
		case e.Time.After(oc.injected.Add(time.Second)):
			after++
		}
	}
	n500 := 0
	for _, r := range oc.results {
		if r.Status == 500 {
			n500++
		}
	}
	t.Logf("errors.log: %d tracebacks in the files, %d events (%d before the fault, %d a second after it), %d HTTP 500 recorded, %d aborted",
		inFiles, n, before, after, n500, oc.res.Aborted)
	if before == 0 || after == 0 {
		t.Errorf("events before the fault: %d, after it: %d; want both", before, after)
	}
	if int64(n) > int64(n500)+oc.res.Aborted {
		t.Errorf("%d events for %d HTTP 500 (+%d aborted): tracebacks read twice", n, n500, oc.res.Aborted)
	}
	return n
}
