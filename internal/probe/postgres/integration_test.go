package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/testenv"
)

// TestRowLock holds a row lock in one session (BEGIN; SELECT ... FOR
// UPDATE; then idle in transaction) while another session UPDATEs the same
// row: the probe must show blocked ≥ 1, blockers ≥ 1, wait:Lock ≥ 1 (on a
// transactionid), an open transaction, Info["blocked"] naming the
// blocker's pid, its state "idle in transaction" and its last query, and
// Info["active"] the waiter's query under Lock:transactionid. Once the
// holder commits, nothing is blocked any more and the commits show up in
// the xact_commit delta. The server has no pg_stat_statements: no
// statement keys, no error; once the extension is created without the
// library preloaded, the sample notes why it cannot be read and is good
// otherwise.
func TestRowLock(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()

	connect := func() *pgx.Conn {
		t.Helper()
		c, err := pgx.Connect(ctx, pg.DSN())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	holder, waiter := connect(), connect()
	if _, err := holder.Exec(ctx, `CREATE TABLE account (id int PRIMARY KEY, n int); INSERT INTO account VALUES (1, 0)`); err != nil {
		t.Fatal(err)
	}

	p, err := New(pg.SuperDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	base, err := p.Sample(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if base.Values["blocked"] != 0 || base.Values["backends"] != 2 || base.Values["max_connections"] != 100 {
		t.Fatalf("baseline: %v", base.Values)
	}
	if _, ok := base.Values["xact_commit"]; ok {
		t.Errorf("first sample has a delta: %v", base.Values)
	}
	if _, ok := base.Values["stmt_exec_ms_delta"]; ok || base.Info["statements_error"] != "" {
		t.Errorf("no pg_stat_statements, yet %v %v", base.Values, base.Info)
	}

	var holderPID int32
	if err := holder.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&holderPID); err != nil {
		t.Fatal(err)
	}
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT * FROM account WHERE id = 1 FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	updated := make(chan error, 1)
	go func() {
		_, err := waiter.Exec(ctx, "UPDATE account SET n = n + 1 WHERE id = 1")
		updated <- err
	}()

	var got stampede.Sample
	for {
		got, err = p.Sample(ctx, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if got.Values["blocked"] >= 1 || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	v := got.Values
	if v["blocked"] < 1 || v["blockers"] < 1 || v["wait:Lock"] < 1 || v["wait:Lock:transactionid"] < 1 {
		t.Errorf("while blocked: %v", v)
	}
	if v["state:idle in transaction"] < 1 || v["oldest_xact_s"] <= 0 || v["oldest_query_s"] <= 0 {
		t.Errorf("holder not seen idle in transaction, or no ages: %v", v)
	}
	want := fmt.Sprintf(`^pid \d+ \(transactionid\) blocked by %d \(idle in transaction, xact \d+\.\ds: SELECT \* FROM account WHERE id = \? FOR UPDATE\): UPDATE account SET n = n \+ \? WHERE id = \?$`, holderPID)
	t.Logf("Info[blocked]: %s\nInfo[active]: %q", got.Info["blocked"], got.Info["active"])
	if info := got.Info["blocked"]; !regexp.MustCompile(want).MatchString(info) {
		t.Errorf("Info[blocked] = %q, want it to match %s", info, want)
	}
	if active := got.Info["active"]; active != "1\tLock:transactionid\tUPDATE account SET n = n + ? WHERE id = ?" {
		t.Errorf("Info[active] = %q", active)
	}
	if strings.Contains(fmt.Sprint(got), pg.SuperPassword) {
		t.Error("sample contains the password")
	}

	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-updated; err != nil {
		t.Fatalf("update: %v", err)
	}
	// pg_stat_database is flushed by backends about once a second.
	var commits float64
	for commits == 0 && ctx.Err() == nil {
		time.Sleep(300 * time.Millisecond)
		after, err := p.Sample(ctx, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if after.Values["blocked"] != 0 || after.Info["blocked"] != "" {
			t.Errorf("after commit: blocked %v, info %q", after.Values["blocked"], after.Info["blocked"])
		}
		commits += after.Values["xact_commit"]
	}
	if commits == 0 {
		t.Error("xact_commit delta stayed 0 after commits")
	}

	su, err := pgx.Connect(ctx, pg.SuperDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(context.Background())
	if _, err := su.Exec(ctx, "CREATE EXTENSION pg_stat_statements"); err != nil {
		t.Fatal(err)
	}
	p.stmts.recheck = 0
	s, err := p.Sample(ctx, time.Now())
	if err != nil {
		t.Fatalf("sample with an unloaded pg_stat_statements: %v", err)
	}
	if e := s.Info["statements_error"]; !strings.Contains(e, "shared_preload_libraries") || s.Values["backends"] != 3 {
		t.Errorf("statements_error = %q, values %v", e, s.Values)
	}
}

// TestStatements reads pg_stat_statements on a server that preloads it:
// the first reading has no deltas; after the application ran three slow
// and ten quick statements, stmt_exec_ms_delta holds at least the sleeps,
// stmt_calls_delta the calls, and Info["statements"] the slow statement
// first, normalized, with its calls. The probe's own queries never show,
// and once recognised no longer count.
func TestStatements(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t, testenv.PGOptions{Settings: map[string]string{"shared_preload_libraries": "pg_stat_statements"}})
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	su, err := pgx.Connect(ctx, pg.SuperDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(context.Background())
	if _, err := su.Exec(ctx, "CREATE EXTENSION pg_stat_statements"); err != nil {
		t.Fatal(err)
	}
	app, err := pgx.Connect(ctx, pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(context.Background())

	p, err := New(pg.SuperDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	first, err := p.Sample(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := first.Values["stmt_exec_ms_delta"]; ok || first.Info["statements_error"] != "" {
		t.Fatalf("first reading: %v %v", first.Values, first.Info)
	}
	for range 3 {
		if _, err := app.Exec(ctx, "SELECT pg_sleep($1)", 0.05); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		if _, err := app.Exec(ctx, "SELECT count(*) FROM pg_class WHERE relpages > "+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := p.Sample(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got.Values["stmt_exec_ms_delta"] < 150 || got.Values["stmt_calls_delta"] < 13 {
		t.Errorf("deltas: %v", got.Values)
	}
	t.Logf("stmt_exec_ms_delta %v, stmt_calls_delta %v, Info[statements]:\n%s", got.Values["stmt_exec_ms_delta"], got.Values["stmt_calls_delta"], got.Info["statements"])
	lines := strings.Split(got.Info["statements"], "\n")
	f := strings.Split(lines[0], "\t")
	if len(f) != 4 || f[0] != "3" || f[3] != "SELECT pg_sleep($1)" {
		t.Fatalf("Info[statements] =\n%s\nwant the sleeps first", got.Info["statements"])
	}
	total, _ := strconv.ParseFloat(f[1], 64)
	mean, _ := strconv.ParseFloat(f[2], 64)
	if total < 150 || math.Abs(mean-total/3) > 0.01 {
		t.Errorf("sleeps: total %v mean %v", total, mean)
	}
	// Ten literals, one normalized statement.
	if !strings.Contains(got.Info["statements"], "10\t") || !strings.Contains(got.Info["statements"], "SELECT count(*) FROM pg_class WHERE relpages > $1") {
		t.Errorf("Info[statements] =\n%s\nwant the ten counts as one statement", got.Info["statements"])
	}
	// Idle: only the probe runs; its queries are recognised and left out.
	for i := range 3 {
		idle, err := p.Sample(ctx, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(idle.Info["statements"], "stampede-probe") {
			t.Errorf("the probe's own query shows: %s", idle.Info["statements"])
		}
		if i == 2 && (idle.Values["stmt_calls_delta"] != 0 || idle.Info["statements"] != "") {
			t.Errorf("idle: calls %v, statements %q", idle.Values["stmt_calls_delta"], idle.Info["statements"])
		}
	}
}

// TestRefused checks that a server out of connection slots is reported as
// the probe's error, without the password, and that the probe reconnects
// once a slot is free.
func TestRefused(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t, testenv.PGOptions{MaxConnections: 5})
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	// 5 slots, 3 reserved for superusers: the app user gets 2.
	var conns []*pgx.Conn
	for range 2 {
		c, err := pgx.Connect(ctx, pg.DSN())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	p, err := New(pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_, err = p.Sample(ctx, time.Now())
	if err == nil {
		t.Fatal("probe connected past max_connections")
	}
	if !strings.Contains(err.Error(), "remaining connection slots are reserved") && !strings.Contains(err.Error(), "too many clients") {
		t.Errorf("err = %v, want the slot refusal", err)
	}
	if strings.Contains(err.Error(), pg.Password) {
		t.Errorf("error leaks the password: %v", err)
	}
	conns[0].Close(ctx)
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, err := p.Sample(ctx, time.Now())
		if err == nil {
			if s.Values["backends"] != 1 {
				t.Errorf("backends = %v, want 1 (the probe's own excluded)", s.Values["backends"])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("probe did not reconnect: %v", errors.Unwrap(err))
		}
		time.Sleep(100 * time.Millisecond)
	}
	conns[1].Close(ctx)
}

// TestSeqScans reads a table by sequential scans between two readings
// (a filter on a column without an index) and another by its index: the
// first is named in Info["seq_scans"] with the rows its scans read, and
// the deltas count both kinds of scans.
func TestSeqScans(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	app, err := pgx.Connect(ctx, pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(context.Background())
	if _, err := app.Exec(ctx, `CREATE TABLE analysis (id int PRIMARY KEY, item int, cost int);
		INSERT INTO analysis SELECT g, g % 100, g FROM generate_series(1, 5000) g;
		CREATE TABLE item (id int PRIMARY KEY, name text); INSERT INTO item SELECT g, 'x' FROM generate_series(1, 100) g;
		ANALYZE analysis; ANALYZE item`); err != nil {
		t.Fatal(err)
	}
	p, err := New(pg.SuperDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	first, err := p.Sample(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := first.Values["seq_scan_delta"]; ok {
		t.Errorf("first reading has deltas: %v", first.Values)
	}
	for i := range 4 {
		if _, err := app.Exec(ctx, "SELECT sum(cost) FROM analysis WHERE item = $1", i); err != nil {
			t.Fatal(err)
		}
		if _, err := app.Exec(ctx, "SELECT name FROM item WHERE id = $1", i+1); err != nil {
			t.Fatal(err)
		}
	}
	// A backend publishes its table statistics at a transaction's end at
	// most once a second (PostgreSQL 15), or once idle for a while: ask
	// for the next end to publish them.
	if _, err := app.Exec(ctx, "SELECT pg_stat_force_next_flush()"); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	var got stampede.Sample
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if got, err = p.Sample(ctx, time.Now()); err != nil {
			t.Fatal(err)
		}
		if got.Values["seq_scan_delta"] >= 4 {
			break
		}
		// a reading without them: the next one's deltas start here
	}
	t.Logf("seq_scan_delta %v seq_tup_read_delta %v idx_scan_delta %v, Info[seq_scans]: %q", got.Values["seq_scan_delta"], got.Values["seq_tup_read_delta"], got.Values["idx_scan_delta"], got.Info["seq_scans"])
	if got.Values["seq_scan_delta"] < 4 || got.Values["seq_tup_read_delta"] < 4*5000 {
		t.Errorf("deltas: %v", got.Values)
	}
	f := strings.Split(strings.Split(got.Info["seq_scans"], "\n")[0], "\t")
	if len(f) != 4 || f[0] != "public.analysis" {
		t.Errorf("Info[seq_scans] = %q, want public.analysis first", got.Info["seq_scans"])
	}
}
