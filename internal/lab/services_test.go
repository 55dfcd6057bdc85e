package lab

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stampede-load/stampede/internal/testenv"
)

// The tests in this file run the lab on real PostgreSQL, PgBouncer and Redis
// started by internal/testenv (skipped when the binaries are missing, failed
// under CI=true).

// stack starts PostgreSQL, a PgBouncer sized as cfg describes, and Redis,
// and points cfg at them.
func stack(t *testing.T, cfg *Config) *testenv.Bouncer {
	t.Helper()
	pg := testenv.Postgres(t, testenv.PGOptions{MaxConnections: 150})
	size := cfg.PoolSize
	if size == 0 {
		size = 100
	}
	b := testenv.PgBouncer(t, pg, testenv.BouncerOptions{DefaultPoolSize: size, ReservePoolSize: cfg.ReservePoolSize,
		QueryWaitTimeout: cfg.QueryWaitTimeout, MaxClientConn: max(cfg.MaxClientConn, 1000),
		Settings: map[string]string{"reserve_pool_timeout": fmt.Sprint(cfg.ReservePoolTimeout.Seconds())}})
	r := testenv.Redis(t)
	cfg.Store, cfg.DSN, cfg.Redis = StorePostgres, b.DSN(), r.URL()
	return b
}

// Acceptance 1: --preset seed on PostgreSQL + PgBouncer + Redis.
func TestPresetSeedPostgres(t *testing.T) {
	cfg := presetConfig(t, "seed")
	b := stack(t, &cfg)
	_, base := startLab(t, cfg)
	c := run(base, seedLoad(10, 16*time.Second))
	logins, browse := summarize(t, c)
	if n := count(logins, rateLimitedPage); n < 3 {
		t.Errorf("%d logins answered with the rate-limit page, want at least 3", n)
	}
	if n := count(logins, status5xx) + count(browse, status5xx); n < 10 {
		t.Errorf("%d 500s, want at least 10: the PgBouncer pool did not starve", n)
	}
	if errs := readLog(t, cfg.LogDir, ErrorsLog); !strings.Contains(errs, "pgconn.PgError: FATAL: query_wait_timeout (SQLSTATE 08P01)") {
		t.Errorf("errors.log lacks pgx's query_wait_timeout:\n%.1500s", errs)
	}
	if pgb := testenv.Tail(b.LogPath, 2000); !strings.Contains(pgb, "closing because: query_wait_timeout") {
		t.Errorf("PgBouncer's log lacks closing because: query_wait_timeout")
	}
}

// Acceptance 2: --preset fixed on PostgreSQL + PgBouncer + Redis, 5/s.
func TestPresetFixedPostgres(t *testing.T) {
	cfg := presetConfig(t, "fixed")
	stack(t, &cfg)
	_, base := startLab(t, cfg)
	c := run(base, seedLoad(5, 22*time.Second))
	logins, browse := summarize(t, c)
	if ok := count(logins, loginOK); ok*100 < 99*len(logins) || len(logins) != 100 {
		t.Errorf("%d/%d logins succeeded, want at least 99%%", ok, len(logins))
	}
	if n := count(logins, status5xx) + count(browse, status5xx); n != 0 {
		t.Errorf("%d 5xx, want none", n)
	}
	checkP95(t, logins, "")
}

// The default data makes /rekap-rab/ cost 50-300 ms on PostgreSQL, and
// PostgreSQL's own errors reach the error log: the hot row's lock_timeout.
func TestPostgresRekapCostAndHotRow(t *testing.T) {
	pg := testenv.Postgres(t)
	cfg := testConfig(t)
	cfg.Items, cfg.RowsPerItem = 0, 0 // the defaults
	cfg.Store, cfg.DSN = StorePostgres, pg.DSN()
	// lock_timeout applies to each lock acquisition: a queue of logins each
	// waiting less than it on the tuple lock and then the holder's
	// transaction never trips it, so the hold must exceed the timeout.
	cfg.HotRowHold, cfg.LockTimeout = 400*time.Millisecond, 250*time.Millisecond
	_, base := startLab(t, cfg)
	v := loggedIn(t, base, 1)[0]
	var best time.Duration
	for range 5 {
		r := v.do("rekap", "GET", "/rekap-rab/", nil)
		if r.status != 200 {
			t.Fatalf("/rekap-rab/: %d", r.status)
		}
		if best == 0 || r.dur < best {
			best = r.dur
		}
	}
	t.Logf("/rekap-rab/ on PostgreSQL, 3000 items x 40 rows: best of 5 %v", best)
	if best < 50*time.Millisecond || best > 300*time.Millisecond {
		t.Errorf("/rekap-rab/ costs %v, want 50-300ms", best)
	}
	vus := make([]*vu, 6)
	for i := range vus {
		vus[i] = newVU(base)
	}
	res := all(vus, func(i int, v *vu) result { u, p := seedUser(i + 2); return v.login(u, p) })
	t.Logf("6 concurrent logins, row held 400ms, lock_timeout 250ms: %v", statusHistogram(res))
	if count(res, status5xx) < 3 {
		t.Errorf("want at least 3 lock timeouts")
	}
	if errs := readLog(t, cfg.LogDir, ErrorsLog); !strings.Contains(errs, "pgconn.PgError: ERROR: canceling statement due to lock timeout (SQLSTATE 55P03)") {
		t.Errorf("errors.log lacks PostgreSQL's lock timeout:\n%.1500s", errs)
	}
}

// The Redis pool knobs: a client pool too small for the load gives
// go-redis's pool timeout; Redis's maxclients refuses the pool's extra
// connections. Both surface as 500s on login and on every page.
func TestRedisLimitsUnderLoad(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts testenv.RedisOptions
		set  func(*Config)
		want string
	}{
		{"client pool", testenv.RedisOptions{}, func(c *Config) { c.RedisPoolSize, c.RedisPoolTimeout = 2, 100*time.Millisecond }, "redis: connection pool timeout"},
		{"maxclients", testenv.RedisOptions{MaxClients: 4}, func(c *Config) { c.RedisPoolSize = 40 }, "ERR max number of clients reached"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := testenv.Redis(t, tc.opts)
			cfg := testConfig(t)
			cfg.Redis = r.URL()
			tc.set(&cfg)
			_, base := startLab(t, cfg)
			// Redis stalls now and then (a fork for BGSAVE, a slow KEYS):
			// commands queue, so the app needs more connections at once.
			admin := redis.NewClient(&redis.Options{Addr: r.Addr()})
			defer admin.Close()
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				for {
					select {
					case <-stop:
						return
					case <-time.After(300 * time.Millisecond):
						admin.Do(context.Background(), "CLIENT", "PAUSE", 300, "ALL")
					}
				}
			}()
			vus := make([]*vu, 40)
			for i := range vus {
				vus[i] = newVU(base)
			}
			res := all(vus, func(i int, v *vu) result {
				u, p := seedUser(i + 1)
				if r := v.login(u, p); !loginOK(r) {
					return r
				}
				// /accounts/logout/ (the confirmation page) only loads the
				// session: Redis is all it waits on.
				var worst result
				for end := time.Now().Add(2500 * time.Millisecond); time.Now().Before(end); {
					if r := v.do("GET", "GET", "/accounts/logout/", nil); r.status >= worst.status {
						worst = r
					}
				}
				return worst
			})
			t.Logf("40 users logging in and loading a session page for 2.5s: worst statuses %v", statusHistogram(res))
			if count(res, status5xx) == 0 {
				t.Fatalf("no 500s")
			}
			if errs := readLog(t, cfg.LogDir, ErrorsLog); !strings.Contains(errs, tc.want) {
				i := strings.LastIndex(errs, "Traceback")
				t.Errorf("errors.log lacks %q:\n%.1500s", tc.want, errs[max(i, 0):])
			}
		})
	}
}

// Sessions and rate-limit histories live in Redis: a session survives a
// lab restart, and the per-IP limit is shared by two labs on one Redis.
func TestRedisSessionsShared(t *testing.T) {
	r := testenv.Redis(t)
	cfg := testConfig(t)
	cfg.Redis, cfg.RateLimitLogin = r.URL(), "3/m/ip"
	_, base1 := startLab(t, cfg)
	cfg2 := cfg
	cfg2.LogDir = t.TempDir()
	_, base2 := startLab(t, cfg2)
	v := loggedIn(t, base1, 1)[0]
	v.base = base2 // same cookies, other lab
	if res := v.do("dash", "GET", "/dashboard/", nil); res.status != 200 {
		t.Errorf("session from lab 1 on lab 2: %d, want 200", res.status)
	}
	u, p := seedUser(2)
	for i, base := range []string{base1, base2, base2} {
		res := newVU(base).login(u, p)
		if i < 2 && !loginOK(res) {
			t.Errorf("login %d: %d", i+2, res.status)
		}
		if i == 2 && !rateLimitedPage(res) {
			t.Errorf("fourth login from one IP across two labs: %d, want the rate-limit page", res.status)
		}
	}
}
