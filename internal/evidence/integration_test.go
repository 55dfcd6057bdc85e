package evidence_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"

	"github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/evidence"
	"github.com/stampede-load/stampede/internal/testenv"
)

// TestRealServers provokes each fault on real PostgreSQL, PgBouncer and
// Redis servers, then parses what the clients saw (logged the way an app
// logs its errors) and what the servers wrote to their logs, and checks the
// classes. Nothing here is written by hand: the texts are the servers'.
// The test skips when the binaries are missing (fails under CI=true).
func TestRealServers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real servers")
	}
	t.Run("pgbouncer-query-wait-timeout", testQueryWaitTimeout)
	t.Run("postgres", testPostgresFaults)
	t.Run("redis-maxclients", testRedisMaxClients)
	t.Run("postgres-latency", testPostgresLatency)
}

// appLog logs client errors the way a Go app would, and parses them.
type appLog struct {
	buf bytes.Buffer
	l   *log.Logger
}

func newAppLog() *appLog {
	a := &appLog{}
	a.l = log.New(&a.buf, "", log.LstdFlags|log.Lmicroseconds)
	return a
}

func (a *appLog) errorf(format string, args ...any) { a.l.Printf(format, args...) }

// parse parses the logged errors; with EVIDENCE_CAPTURE=DIR they are also
// saved as DIR/real-client-NAME.log (see waitLog).
func (a *appLog) parse(name string) []stampede.Evidence {
	if dir := os.Getenv("EVIDENCE_CAPTURE"); dir != "" {
		_ = os.WriteFile(filepath.Join(dir, "real-client-"+name+".log"), a.buf.Bytes(), 0o644)
	}
	return evidence.ParseText("app", "app.log", a.buf.String(), nil, time.Local)
}

// waitLog parses a server's log until want(evidence) holds or a deadline
// passes, and returns the last parse.
//
// With EVIDENCE_CAPTURE=DIR the log is also copied to DIR/real-NAME.log,
// which is how testdata/parse/real-*.log were made (then run TestFixtures
// with -update).
func waitLog(t *testing.T, path, name string, want func([]stampede.Evidence) bool) []stampede.Evidence {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs, err := evidence.ParseFile(context.Background(), path, name)
		if err != nil {
			t.Fatal(err)
		}
		if want(evs) || time.Now().After(deadline) {
			if dir := os.Getenv("EVIDENCE_CAPTURE"); dir != "" {
				if data, err := os.ReadFile(path); err == nil {
					_ = os.WriteFile(filepath.Join(dir, "real-"+name+".log"), data, 0o644)
				}
			}
			return evs
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func hasSig(evs []stampede.Evidence, sig string) bool {
	for _, ev := range evs {
		if ev.Signature == sig {
			return true
		}
	}
	return false
}

func hasClass(evs []stampede.Evidence, class string) bool {
	for _, ev := range evs {
		if ev.Class == class {
			return true
		}
	}
	return false
}

func dump(t *testing.T, what string, evs []stampede.Evidence) {
	t.Helper()
	for _, ev := range evs {
		t.Logf("%s: %s sig=%s class=%s msg=%q exc=%q", what, ev.Ref, ev.Signature, ev.Class, ev.Message, ev.Exception)
	}
}

func testQueryWaitTimeout(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	b := testenv.PgBouncer(t, pg, testenv.BouncerOptions{DefaultPoolSize: 1, QueryWaitTimeout: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Session pooling with one server connection: the first client pins
	// it, the second waits in PgBouncer's queue until query_wait_timeout.
	c1, err := pgx.Connect(ctx, b.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close(context.Background())
	if _, err := c1.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	app := newAppLog()
	c2, err := pgx.Connect(ctx, b.DSN())
	if err == nil {
		_, err = c2.Exec(ctx, "SELECT 1")
		c2.Close(context.Background())
	}
	if err == nil {
		t.Fatal("second client got a server connection; want query_wait_timeout")
	}
	app.errorf("login failed: %v", err)

	client := app.parse("pgbouncer")
	if !hasClass(client, "db-pool-wait-timeout") {
		dump(t, "client", client)
		t.Errorf("client error %q: want class db-pool-wait-timeout", err)
	}
	server := waitLog(t, b.LogPath, "pgbouncer", func(evs []stampede.Evidence) bool {
		return hasSig(evs, "pgbouncer-query-wait-timeout") && hasSig(evs, "pgbouncer-pooler-error-query-wait-timeout")
	})
	for _, sig := range []string{"pgbouncer-query-wait-timeout", "pgbouncer-pooler-error-query-wait-timeout"} {
		if !hasSig(server, sig) {
			dump(t, "pgbouncer", server)
			t.Errorf("PgBouncer log: no %s", sig)
		}
	}
	for _, ev := range server {
		if ev.Signature != "" && ev.Class != "db-pool-wait-timeout" {
			t.Errorf("PgBouncer log %s: class %s (%s), want db-pool-wait-timeout", ev.Ref, ev.Class, ev.Message)
		}
	}
}

func testPostgresFaults(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t, testenv.PGOptions{
		MaxConnections:  6,
		LogLockWaits:    true,
		DeadlockTimeout: 100 * time.Millisecond,
		Settings:        map[string]string{"superuser_reserved_connections": "0"},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	app := newAppLog()

	setup, err := pgx.Connect(ctx, pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := setup.Exec(ctx, `CREATE TABLE accounts (id int PRIMARY KEY, n int);
		INSERT INTO accounts VALUES (1, 0), (2, 0)`); err != nil {
		t.Fatal(err)
	}
	setup.Close(ctx)

	// Lock timeout: a second session waits on a row the first one holds.
	c1, c2 := connect(ctx, t, pg.DSN()), connect(ctx, t, pg.DSN())
	tx1, err := c1.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mustExec(ctx, t, tx1, "UPDATE accounts SET n = n + 1 WHERE id = 1")
	mustExec(ctx, t, c2, "SET lock_timeout = '300ms'")
	_, err = c2.Exec(ctx, "UPDATE accounts SET n = n + 1 WHERE id = 1")
	if err == nil {
		t.Fatal("update under lock: no lock timeout")
	}
	app.errorf("update failed: %v", err)
	_ = tx1.Rollback(ctx)
	mustExec(ctx, t, c2, "SET lock_timeout = 0")

	// Deadlock: two sessions update two rows in opposite orders.
	tx1, err = c1.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx2, err := c2.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mustExec(ctx, t, tx1, "UPDATE accounts SET n = n + 1 WHERE id = 1")
	mustExec(ctx, t, tx2, "UPDATE accounts SET n = n + 1 WHERE id = 2")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Go(func() { _, errs[0] = tx1.Exec(ctx, "UPDATE accounts SET n = n + 1 WHERE id = 2") })
	time.Sleep(50 * time.Millisecond)
	wg.Go(func() { _, errs[1] = tx2.Exec(ctx, "UPDATE accounts SET n = n + 1 WHERE id = 1") })
	wg.Wait()
	deadlocked := errors.Join(errs...)
	if deadlocked == nil {
		t.Fatal("opposite-order updates: no deadlock")
	}
	app.errorf("update failed: %v", deadlocked)
	_ = tx1.Rollback(ctx)
	_ = tx2.Rollback(ctx)
	c1.Close(ctx)
	c2.Close(ctx)

	// Too many clients: hold connections until the server refuses one.
	var held []*pgx.Conn
	defer func() {
		for _, c := range held {
			c.Close(context.Background())
		}
	}()
	var refused error
	for range 20 {
		c, err := pgx.Connect(ctx, pg.DSN())
		if err != nil {
			refused = err
			break
		}
		held = append(held, c)
	}
	if refused == nil {
		t.Fatal("20 connections with max_connections=6: none refused")
	}
	app.errorf("connect failed: %v", refused)

	client := app.parse("postgres")
	want := []struct{ sig, class string }{
		{"pg-lock-timeout", "db-lock-contention"},
		{"pg-deadlock", "db-lock-contention"},
		{"pg-too-many-clients", "db-connection-limit"},
	}
	if len(client) != len(want) {
		dump(t, "client", client)
		t.Fatalf("client errors: %d events, want %d:\n%s", len(client), len(want), app.buf.String())
	}
	for i, w := range want {
		if client[i].Signature != w.sig || client[i].Class != w.class {
			t.Errorf("client %q: got %s/%s, want %s/%s", client[i].Message, client[i].Signature, client[i].Class, w.sig, w.class)
		}
	}
	server := waitLog(t, pg.LogPath, "postgres", func(evs []stampede.Evidence) bool {
		return hasSig(evs, "pg-lock-timeout") && hasSig(evs, "pg-deadlock") && hasSig(evs, "pg-too-many-clients")
	})
	for _, w := range append(want, struct{ sig, class string }{"pg-lock-wait", "db-lock-contention"}) {
		found := false
		for _, ev := range server {
			if ev.Signature == w.sig {
				found = true
				if ev.Class != w.class {
					t.Errorf("postgres log %s: class %s, want %s", ev.Ref, ev.Class, w.class)
				}
				if w.sig == "pg-deadlock" && !strings.Contains(ev.Fields["detail"], "blocked by process") {
					t.Errorf("postgres log %s: deadlock DETAIL not attached: %v", ev.Ref, ev.Fields)
				}
			}
		}
		if !found {
			dump(t, "postgres", server)
			t.Errorf("postgres log: no %s", w.sig)
		}
	}
}

func testRedisMaxClients(t *testing.T) {
	t.Parallel()
	r := testenv.Redis(t, testenv.RedisOptions{MaxClients: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opt, err := redis.ParseURL(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	opt.MaxRetries = -1
	c1 := redis.NewClient(opt)
	defer c1.Close()
	if err := c1.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	// Redis writes "-ERR max number of clients reached" and closes at once;
	// go-redis may see that reply or, when its HELLO loses the race, a
	// broken pipe. Retry for the reply, then read it off a raw socket.
	for range 5 {
		c2 := redis.NewClient(opt)
		err = c2.Ping(ctx).Err()
		c2.Close()
		if err == nil {
			t.Fatal("second client accepted with maxclients 1")
		}
		if strings.Contains(err.Error(), "max number of clients") {
			break
		}
	}
	if !strings.Contains(err.Error(), "max number of clients") {
		conn, derr := net.DialTimeout("tcp", r.Addr(), 5*time.Second)
		if derr != nil {
			t.Fatal(derr)
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		reply, _ := bufio.NewReader(conn).ReadString('\n')
		conn.Close()
		err = errors.New(strings.TrimSpace(strings.TrimPrefix(reply, "-")))
	}
	app := newAppLog()
	app.errorf("session store: %v", err)
	client := app.parse("redis")
	if len(client) != 1 || client[0].Class != "redis-connection-limit" {
		dump(t, "client", client)
		t.Errorf("client error %q: want class redis-connection-limit", err)
	}
	// Redis logs nothing when it refuses a client (§3); its log must at
	// least parse without false alarms.
	evs, err := evidence.ParseFile(ctx, r.LogPath, "redis")
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.Class != "" {
			t.Errorf("redis log %s: unexpected class %s (%s)", ev.Ref, ev.Class, ev.Message)
		}
	}
	if _, err := os.Stat(r.LogPath); err != nil {
		t.Error(err)
	}
}

type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func mustExec(ctx context.Context, t *testing.T, c execer, sql string) {
	t.Helper()
	if _, err := c.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func connect(ctx context.Context, t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
