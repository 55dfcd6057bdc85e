package postgres

import (
	"context"
	"errors"
	"fmt"
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
// transactionid), an open transaction, and Info["blocked"] naming the
// blocker's pid and its state "idle in transaction". Once the holder
// commits, nothing is blocked any more and the commits show up in the
// xact_commit delta.
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
	want := fmt.Sprintf("blocked by %d (idle in transaction, xact ", holderPID)
	if info := got.Info["blocked"]; !strings.Contains(info, want) || !strings.Contains(info, "(transactionid)") || !strings.Contains(info, "UPDATE account") {
		t.Errorf("Info[blocked] = %q, want it to contain %q, the wait event and the query", info, want)
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
