package evidence_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/testenv"
)

// latencyPIDs are the backends of provokePostgresLatency.
type latencyPIDs struct {
	slow            int32 // ran the slow statements
	holder, waiter  int32 // the row lock
	share1, share2  int32 // the two SHARE table locks
	durationOnlyPID int32 // ran with log_duration only
}

func backendPID(ctx context.Context, t *testing.T, c *pgx.Conn) int32 {
	t.Helper()
	var pid int32
	if err := c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	return pid
}

// provokePostgresLatency runs slow statements (simple and extended
// protocol, a multi-line one, a bare log_duration line) and lock waits (a
// row lock, and a table lock held by two sessions) on pg, and returns when
// every statement has finished.
func provokePostgresLatency(ctx context.Context, t *testing.T, pg *testenv.PG) latencyPIDs {
	t.Helper()
	var pids latencyPIDs
	setup := connect(ctx, t, pg.DSN())
	defer setup.Close(context.Background())
	pids.slow = backendPID(ctx, t, setup)
	mustExec(ctx, t, setup, `CREATE TABLE accounts (id int PRIMARY KEY, n int);
		INSERT INTO accounts VALUES (1, 0), (2, 0)`)

	// Slow statements: simple protocol, extended protocol (unnamed and
	// cached prepared statements, with a parameter), a multi-line one.
	mustExec(ctx, t, setup, "SELECT pg_sleep(0.12)")
	if _, err := setup.Exec(ctx, "SELECT pg_sleep($1)", pgx.QueryExecModeExec, 0.11); err != nil {
		t.Fatal(err)
	}
	if _, err := setup.Exec(ctx, "SELECT pg_sleep($1::float8) /* secret-param */", 0.1337); err != nil {
		t.Fatal(err)
	}
	mustExec(ctx, t, setup, "SELECT count(*), pg_sleep(0.06)\n  FROM generate_series(1, 300000) g\n  WHERE g % 7 = 3")
	// log_duration without a statement threshold: a bare duration line.
	su := connect(ctx, t, pg.SuperDSN())
	defer su.Close(context.Background())
	pids.durationOnlyPID = backendPID(ctx, t, su)
	mustExec(ctx, t, su, "SET log_min_duration_statement = -1")
	mustExec(ctx, t, su, "SET log_duration = on")
	mustExec(ctx, t, su, "SELECT pg_sleep(0.01)")
	mustExec(ctx, t, su, "RESET log_duration")
	// auto_explain: "duration: N ms  plan:" and the plan below, whose
	// Query Text is the statement.
	mustExec(ctx, t, su, "LOAD 'auto_explain'")
	mustExec(ctx, t, su, "SET auto_explain.log_min_duration = 0")
	mustExec(ctx, t, su, "SELECT pg_sleep(0.02) /* explained */")
	mustExec(ctx, t, su, "RESET auto_explain.log_min_duration")
	mustExec(ctx, t, su, "RESET log_min_duration_statement")

	// A row lock: the holder sits idle in its transaction while the
	// waiter's UPDATE waits past deadlock_timeout, then gets the lock.
	holder, waiter := connect(ctx, t, pg.DSN()), connect(ctx, t, pg.DSN())
	defer holder.Close(context.Background())
	defer waiter.Close(context.Background())
	pids.holder, pids.waiter = backendPID(ctx, t, holder), backendPID(ctx, t, waiter)
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mustExec(ctx, t, tx, "SELECT * FROM accounts WHERE id = 1 FOR UPDATE")
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := waiter.Exec(ctx, "UPDATE accounts\n   SET n = n + 1\n WHERE id = 1"); err != nil {
			t.Error(err)
		}
	})
	waitBlocked(ctx, t, setup, pids.waiter)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	// A table lock held by two sessions in SHARE mode: the waiter for
	// EXCLUSIVE mode names both holders.
	s1, s2 := connect(ctx, t, pg.DSN()), connect(ctx, t, pg.DSN())
	defer s1.Close(context.Background())
	defer s2.Close(context.Background())
	pids.share1, pids.share2 = backendPID(ctx, t, s1), backendPID(ctx, t, s2)
	tx1, err := s1.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx2, err := s2.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mustExec(ctx, t, tx1, "LOCK TABLE accounts IN SHARE MODE")
	mustExec(ctx, t, tx2, "LOCK TABLE accounts IN SHARE MODE")
	wg.Go(func() {
		wtx, err := waiter.Begin(ctx)
		if err == nil {
			_, err = wtx.Exec(ctx, "LOCK TABLE accounts IN EXCLUSIVE MODE")
		}
		if err == nil {
			err = wtx.Commit(ctx)
		}
		if err != nil {
			t.Error(err)
		}
	})
	waitBlocked(ctx, t, setup, pids.waiter)
	_ = tx1.Commit(ctx)
	_ = tx2.Commit(ctx)
	wg.Wait()
	return pids
}

// waitBlocked waits until pid has been blocked for longer than the
// server's deadlock_timeout (100 ms here), so log_lock_waits has written
// its "still waiting" line.
func waitBlocked(ctx context.Context, t *testing.T, c *pgx.Conn, pid int32) {
	t.Helper()
	for ctx.Err() == nil {
		var waited float64
		err := c.QueryRow(ctx, `SELECT coalesce(extract(epoch FROM now() - state_change), 0)::float8
			FROM pg_stat_activity WHERE pid = $1 AND cardinality(pg_blocking_pids(pid)) > 0`, pid).Scan(&waited)
		if err == nil && waited > 0.3 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("pid %d never blocked", pid)
}

// testPostgresLatency checks the fields of slow statements and lock waits
// as real PostgreSQL servers log them, with the default log_line_prefix of
// testenv and with a pgBadger-style one.
func testPostgresLatency(t *testing.T) {
	for _, tc := range []struct{ name, prefix string }{
		{"postgres-latency", ""},
		{"postgres-latency-prefix", "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			settings := map[string]string{"log_min_duration_statement": "50"}
			if tc.prefix != "" {
				settings["log_line_prefix"] = tc.prefix
			}
			pg := testenv.Postgres(t, testenv.PGOptions{
				LogLockWaits:    true,
				DeadlockTimeout: 100 * time.Millisecond,
				Settings:        settings,
			})
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			pids := provokePostgresLatency(ctx, t, pg)
			checkLatencyLog(t, pg, tc.name, pids)
		})
	}
}

func checkLatencyLog(t *testing.T, pg *testenv.PG, name string, pids latencyPIDs) {
	id := func(p int32) string { return strconv.Itoa(int(p)) }
	lockWaits := func(evs []stampede.Evidence, sig string) []stampede.Evidence {
		var out []stampede.Evidence
		for _, ev := range evs {
			if ev.Signature == sig && ev.Fields["pid"] == id(pids.waiter) {
				out = append(out, ev)
			}
		}
		return out
	}
	evs := waitLog(t, pg.LogPath, name, func(evs []stampede.Evidence) bool {
		return len(lockWaits(evs, "pg-lock-acquired-late")) == 2
	})
	ms := func(ev stampede.Evidence, key string) float64 {
		v, _ := strconv.ParseFloat(ev.Fields[key], 64)
		return v
	}
	slow := map[string]stampede.Evidence{} // by statement
	for _, ev := range evs {
		if ev.Signature != "pg-slow-statement" {
			continue
		}
		if ev.Class != "slow-query" {
			t.Errorf("%s: class %q", ev.Ref, ev.Class)
		}
		if _, err := strconv.ParseFloat(ev.Fields["duration_ms"], 64); err != nil || !strings.Contains(ev.Fields["duration_ms"], ".") {
			t.Errorf("%s: duration_ms %q", ev.Ref, ev.Fields["duration_ms"])
		}
		if ev.Fields["pid"] == "" {
			t.Errorf("%s: no pid: %v", ev.Ref, ev.Fields)
		}
		if strings.Contains(fmt.Sprint(ev), "0.1337") {
			t.Errorf("%s: a bound parameter leaked: %+v", ev.Ref, ev)
		}
		// The longest of equal statements (log_duration's bare lines
		// include the SET that turned it on).
		if old, ok := slow[ev.Fields["statement"]]; !ok || ms(old, "duration_ms") < ms(ev, "duration_ms") {
			slow[ev.Fields["statement"]] = ev
		}
	}
	for _, w := range []struct {
		stmt, phase string
		pid         int32
		minMS       float64
	}{
		{"SELECT pg_sleep(0.12)", "statement", pids.slow, 120},
		{"SELECT pg_sleep($1)", "execute", pids.slow, 110},
		{"SELECT pg_sleep($1::float8) /* secret-param */", "execute", pids.slow, 133},
		{"SELECT count(*), pg_sleep(0.06) FROM generate_series(1, 300000) g WHERE g % 7 = 3", "statement", pids.slow, 60},
		{"UPDATE accounts SET n = n + 1 WHERE id = 1", "statement", pids.waiter, 300},
		{"LOCK TABLE accounts IN EXCLUSIVE MODE", "statement", pids.waiter, 300},
		{"", "", pids.durationOnlyPID, 10}, // log_duration's bare line
		{"SELECT pg_sleep(0.02) /* explained */", "plan", pids.durationOnlyPID, 20},
	} {
		ev, ok := slow[w.stmt]
		if !ok {
			t.Errorf("%s: no pg-slow-statement with statement %q", name, w.stmt)
			continue
		}
		if ev.Fields["phase"] != w.phase || ev.Fields["pid"] != id(w.pid) || ms(ev, "duration_ms") < w.minMS {
			t.Errorf("%s %q: fields %v, want phase %q, pid %d, duration ≥ %v ms", ev.Ref, w.stmt, ev.Fields, w.phase, w.pid, w.minMS)
		}
	}

	holders := []string{id(pids.share1), id(pids.share2)}
	slices.Sort(holders)
	waits := lockWaits(evs, "pg-lock-wait")
	acquired := lockWaits(evs, "pg-lock-acquired-late")
	if len(waits) != 2 || len(acquired) != 2 {
		dump(t, name, evs)
		t.Fatalf("%s: %d lock waits and %d acquisitions of pid %d, want 2 and 2", name, len(waits), len(acquired), pids.waiter)
	}
	for i, w := range []struct {
		mode, object, holders, stmt string
	}{
		{"ShareLock", "transaction ", id(pids.holder), "UPDATE accounts SET n = n + 1 WHERE id = 1"},
		{"ExclusiveLock", "relation ", strings.Join(holders, ","), "LOCK TABLE accounts IN EXCLUSIVE MODE"},
	} {
		f := waits[i].Fields
		got := strings.Split(f["holders"], ",")
		slices.Sort(got)
		if f["lock_mode"] != w.mode || !strings.HasPrefix(f["lock_object"], w.object) || strings.Join(got, ",") != w.holders ||
			f["statement"] != w.stmt || f["wait_queue"] != id(pids.waiter) || ms(waits[i], "wait_ms") < 100 || f["acquired"] != "" {
			t.Errorf("%s: lock wait %d: %v, want mode %s, object %s…, holders %s, statement %q", waits[i].Ref, i, f, w.mode, w.object, w.holders, w.stmt)
		}
		a := acquired[i].Fields
		if a["lock_mode"] != w.mode || a["lock_object"] != f["lock_object"] || a["acquired"] != "true" || ms(acquired[i], "wait_ms") <= ms(waits[i], "wait_ms") {
			t.Errorf("%s: acquired %d: %v (wait %v)", acquired[i].Ref, i, a, f)
		}
	}
}
