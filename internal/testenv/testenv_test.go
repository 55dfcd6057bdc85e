package testenv_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/testenv"
)

// TestStack starts all three servers and talks to each: PostgreSQL
// directly (as the app and as the superuser), through PgBouncer, the
// PgBouncer admin console, and Redis.
func TestStack(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t, testenv.PGOptions{MaxConnections: 30, LogLockWaits: true, DeadlockTimeout: 200 * time.Millisecond})
	b := testenv.PgBouncer(t, pg, testenv.BouncerOptions{DefaultPoolSize: 2, QueryWaitTimeout: 5 * time.Second})
	r := testenv.Redis(t, testenv.RedisOptions{MaxClients: 10})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	query := func(dsn, sql string) string {
		t.Helper()
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatalf("connect %s: %v", stampede.Redact(dsn), err)
		}
		defer c.Close(ctx)
		var s string
		if err := c.QueryRow(ctx, sql).Scan(&s); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return s
	}
	if got := query(pg.DSN(), "SELECT current_user"); got != pg.User {
		t.Errorf("direct: current_user = %q, want %q", got, pg.User)
	}
	if got := query(pg.SuperDSN(), "SHOW max_connections"); got != "30" {
		t.Errorf("max_connections = %q, want 30", got)
	}
	if got := query(pg.SuperDSN(), "SHOW log_lock_waits"); got != "on" {
		t.Errorf("log_lock_waits = %q, want on", got)
	}
	if got := query(pg.SuperDSN(), "SHOW deadlock_timeout"); got != "200ms" {
		t.Errorf("deadlock_timeout = %q, want 200ms", got)
	}
	if got := query(b.DSN(), "SELECT current_database()"); got != pg.Database {
		t.Errorf("via pgbouncer: current_database = %q, want %q", got, pg.Database)
	}

	for _, dsn := range []string{b.AdminDSN(), b.StatsDSN()} {
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatalf("admin console: %v", err)
		}
		rows, err := c.Query(ctx, "SHOW CONFIG")
		if err != nil {
			t.Fatalf("SHOW CONFIG: %v", err)
		}
		cfg := map[string]string{}
		for rows.Next() {
			v := rows.RawValues()
			cfg[string(v[0])] = string(v[1])
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("SHOW CONFIG: %v", err)
		}
		c.Close(ctx)
		if cfg["default_pool_size"] != "2" || cfg["query_wait_timeout"] != "5" {
			t.Errorf("SHOW CONFIG: default_pool_size=%q query_wait_timeout=%q, want 2 and 5",
				cfg["default_pool_size"], cfg["query_wait_timeout"])
		}
	}

	opt, err := redis.ParseURL(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opt)
	defer rc.Close()
	if err := rc.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("redis SET: %v", err)
	}
	if got, _ := rc.ConfigGet(ctx, "maxclients").Result(); got["maxclients"] != "10" {
		t.Errorf("redis maxclients = %v, want 10", got)
	}

	for name, path := range map[string]string{"postgres": pg.LogPath, "pgbouncer": b.LogPath, "redis": r.LogPath} {
		if st, err := os.Stat(path); err != nil || st.Size() == 0 {
			t.Errorf("%s log %s is missing or empty (%v)", name, path, err)
		}
	}
	if !strings.Contains(testenv.Tail(b.LogPath, 50), "listening on") {
		t.Errorf("pgbouncer log lacks its startup lines:\n%s", testenv.Tail(b.LogPath, 50))
	}
}

// TestStart starts and stops the whole stack without a testing.T, as
// benchmark scripts do, and checks that Close removes what it made.
func TestStart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	s, err := testenv.Start(ctx, testenv.StackOptions{Dir: dir})
	if err != nil {
		if os.Getenv("CI") != "true" && errors.Is(err, testenv.ErrNotInstalled) {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	data := s.PG.DataDir
	c, err := pgx.Connect(ctx, s.Bouncer.DSN())
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	c.Close(ctx)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("data directory %s still exists after Close (%v)", data, err)
	}
	for _, f := range []string{"postgresql.log", "pgbouncer.log", "redis.log"} {
		if _, err := os.Stat(dir + "/" + f); err != nil {
			t.Errorf("log kept in Dir: %v", err)
		}
	}
}

// TestStopKillRestart stops PostgreSQL (fast shutdown), kills PgBouncer and
// Redis, and starts each again on its port: clients reach them again, the
// PIDs are new, and Redis comes back empty.
func TestStopKillRestart(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	b := testenv.PgBouncer(t, pg)
	r := testenv.Redis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	ping := func(dsn string) error {
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		return c.Ping(ctx)
	}
	rc := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1})
	defer rc.Close()
	if err := rc.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name    string
		pid     func() int
		stop    func() error
		restart func(context.Context) error
		check   func() error
	}{
		{"postgres", func() int { return pg.PID }, pg.Stop, pg.Restart, func() error { return ping(pg.DSN()) }},
		{"pgbouncer", func() int { return b.PID }, b.Kill, b.Restart, func() error { return ping(b.DSN()) }},
		{"redis", func() int { return r.PID }, r.Kill, r.Restart, func() error { return rc.Ping(ctx).Err() }},
	} {
		before := tc.pid()
		if err := tc.stop(); err != nil {
			t.Fatalf("%s: stop: %v", tc.name, err)
		}
		if err := tc.check(); err == nil {
			t.Errorf("%s: answered after stop", tc.name)
		}
		if err := tc.restart(ctx); err != nil {
			t.Fatalf("%s: restart: %v", tc.name, err)
		}
		if err := tc.restart(ctx); err == nil {
			t.Errorf("%s: a second restart of a running server succeeded", tc.name)
		}
		if err := tc.check(); err != nil {
			t.Errorf("%s: after restart: %v", tc.name, err)
		}
		if after := tc.pid(); after == before || after == 0 {
			t.Errorf("%s: pid %d after restart, was %d", tc.name, after, before)
		}
	}
	// PgBouncer reaches the restarted PostgreSQL too.
	if err := ping(b.DSN()); err != nil {
		t.Errorf("pgbouncer to the restarted postgres: %v", err)
	}
	if n, err := rc.Exists(ctx, "k").Result(); err != nil || n != 0 {
		t.Errorf("redis after restart: EXISTS k = %d, %v; want 0 (no persistence)", n, err)
	}
}
