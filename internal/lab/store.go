package lab

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // the embedded store's driver
)

// store is the app's database: SQLite behind the emulated PgBouncer, or
// PostgreSQL (directly or through a real PgBouncer).
type store struct {
	kind    string
	db      *sql.DB
	bouncer *bouncer // embedded store only
	hotRow  chan struct{}
	tmpDir  string
	lockTO  time.Duration
	// slowLog and logMin: the embedded store writes PostgreSQL's
	// slow-statement lines itself (a real server does on the postgres
	// store).
	slowLog *logs
	logMin  time.Duration
	nextPID atomic.Int32
}

func openStore(ctx context.Context, c Config, l *logs) (*store, error) {
	s := &store{kind: c.Store, lockTO: c.LockTimeout, hotRow: make(chan struct{}, 1)}
	if c.Store != StorePostgres && c.LogMinDurationStatement > 0 {
		s.slowLog, s.logMin = l, c.LogMinDurationStatement
	}
	s.nextPID.Store(int32(os.Getpid()%30000) + 1000)
	switch c.Store {
	case StorePostgres:
		pc, err := pgx.ParseConfig(c.DSN)
		if err != nil {
			return nil, fmt.Errorf("store: dsn: %w", err)
		}
		// Unnamed statements work through PgBouncer in any pool_mode.
		if !strings.Contains(c.DSN, "default_query_exec_mode") {
			pc.DefaultQueryExecMode = pgx.QueryExecModeExec
		}
		s.db = stdlib.OpenDB(*pc)
		// Django's CONN_MAX_AGE=0: a connection per request, closed at its
		// end, so PgBouncer's queue, not an app pool, is what limits.
		s.db.SetMaxOpenConns(c.PGMaxConns)
		s.db.SetMaxIdleConns(0)
	default:
		path := c.DBPath
		if path == "" {
			dir, err := os.MkdirTemp("", "stampede-lab-")
			if err != nil {
				return nil, fmt.Errorf("store: %w", err)
			}
			s.tmpDir, path = dir, filepath.Join(dir, "ahsp.sqlite3")
		}
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
		if err != nil {
			s.close()
			return nil, fmt.Errorf("store: %w", err)
		}
		s.db = db
		n := 64
		if c.PoolSize > 0 {
			n = c.PoolSize + c.ReservePoolSize + 1
		}
		db.SetMaxOpenConns(n)
		db.SetMaxIdleConns(n)
		s.bouncer = newBouncer(c, l)
	}
	if err := s.db.PingContext(ctx); err != nil {
		s.close()
		return nil, fmt.Errorf("store: %w", err)
	}
	return s, nil
}

func (s *store) close() {
	if s.db != nil {
		_ = s.db.Close()
	}
	if s.tmpDir != "" {
		_ = os.RemoveAll(s.tmpDir)
	}
}

// q rewrites ?-placeholders for PostgreSQL.
func (s *store) q(query string) string {
	if s.kind != StorePostgres {
		return query
	}
	return s.pgText(query)
}

// conn is a request's database connection, held until release like Django's
// per-request connection.
type conn struct {
	s   *store
	c   *sql.Conn
	bc  *bouncerClient
	pid int // the backend's process id in postgresql.log
}

// conn connects for one request: through the emulated PgBouncer on the
// embedded store (where it may fail with query_wait_timeout), or a new
// PostgreSQL connection.
func (s *store) conn(ctx context.Context) (*conn, error) {
	cn := &conn{s: s, pid: int(s.nextPID.Add(1))}
	if s.bouncer != nil {
		bc, err := s.bouncer.acquire(ctx)
		if err != nil {
			return nil, err
		}
		cn.bc = bc
	}
	c, err := s.db.Conn(ctx)
	if err != nil {
		cn.release()
		return nil, err
	}
	cn.c = c
	return cn, nil
}

func (c *conn) release() {
	if c == nil {
		return
	}
	if c.c != nil {
		_ = c.c.Close()
	}
	if c.bc != nil {
		c.bc.release()
	}
}

func (c *conn) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return c.c.QueryContext(ctx, c.s.q(query), args...)
}

func (c *conn) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return c.c.QueryRowContext(ctx, c.s.q(query), args...)
}

func (c *conn) exec(ctx context.Context, query string, args ...any) error {
	_, err := c.c.ExecContext(ctx, c.s.q(query), args...)
	return err
}

// logSlow writes the statement to postgresql.log when it ran longer than
// log_min_duration_statement; call it deferred, with the start time, once
// the statement's rows are read.
func (c *conn) logSlow(start time.Time, query string, args ...any) {
	if c.s.slowLog == nil {
		return
	}
	if d := time.Since(start); d >= c.s.logMin {
		c.s.slowLog.slowStatement(c.pid, d, c.s.pgText(query), args)
	}
}

// pgText numbers the ?-placeholders as PostgreSQL shows them ($1, $2).
func (s *store) pgText(query string) string {
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// lockTimeoutError is PostgreSQL's answer when lock_timeout expires.
func lockTimeoutError() error {
	return &ServerError{Severity: "ERROR", Code: "55P03", Message: "canceling statement due to lock timeout"}
}

// holdHotRow takes site_counter row 1 FOR UPDATE, holds it for hold (the
// transaction sits "idle in transaction" meanwhile), bumps the counter and
// commits. On the embedded store an in-process row lock stands in for the
// row lock and fails with PostgreSQL's lock_timeout error.
func (c *conn) holdHotRow(ctx context.Context, hold time.Duration) error {
	if c.s.kind != StorePostgres {
		var timeout <-chan time.Time
		if c.s.lockTO > 0 {
			t := time.NewTimer(c.s.lockTO)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case c.s.hotRow <- struct{}{}:
		case <-timeout:
			return fmt.Errorf("select site_counter for update: %w", lockTimeoutError())
		case <-ctx.Done():
			return ctx.Err()
		}
		defer func() { <-c.s.hotRow }()
		if err := sleepCtx(ctx, hold); err != nil {
			return err
		}
		if err := c.exec(ctx, "UPDATE site_counter SET logins = logins + 1 WHERE id = 1"); err != nil {
			return fmt.Errorf("update site_counter: %w", err)
		}
		return nil
	}
	tx, err := c.c.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if c.s.lockTO > 0 {
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", c.s.lockTO.Milliseconds())); err != nil {
			return fmt.Errorf("set lock_timeout: %w", err)
		}
	}
	var n int64
	if err := tx.QueryRowContext(ctx, "SELECT logins FROM site_counter WHERE id = 1 FOR UPDATE").Scan(&n); err != nil {
		return fmt.Errorf("select site_counter for update: %w", err)
	}
	if err := sleepCtx(ctx, hold); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE site_counter SET logins = $1 WHERE id = 1", n+1); err != nil {
		return fmt.Errorf("update site_counter: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

var klasifikasi = []string{"Pekerjaan Persiapan", "Pekerjaan Tanah", "Pekerjaan Pondasi", "Pekerjaan Beton",
	"Pekerjaan Pasangan", "Pekerjaan Plesteran", "Pekerjaan Lantai", "Pekerjaan Atap", "Pekerjaan Pengecatan", "Pekerjaan Sanitasi"}

var uraian = map[string][]string{
	"TK":  {"Pekerja", "Tukang batu", "Tukang kayu", "Tukang besi", "Kepala tukang", "Mandor"},
	"BHN": {"Semen Portland", "Pasir beton", "Kerikil", "Besi beton polos", "Kawat beton", "Bata merah", "Kayu kelas III", "Paku"},
	"ALT": {"Molen", "Vibrator", "Stamper", "Perancah"},
}

var satuanBahan = map[string]string{"TK": "OH", "BHN": "kg", "ALT": "hari"}

// migrate creates the schema and sets the rincian_ahsp index as configured.
func (s *store) migrate(ctx context.Context, missingIndex bool) error {
	pk, serial, float := "INTEGER PRIMARY KEY", "INTEGER PRIMARY KEY", "REAL"
	if s.kind == StorePostgres {
		pk, serial, float = "BIGINT PRIMARY KEY", "BIGSERIAL PRIMARY KEY", "DOUBLE PRECISION"
	}
	ddl := []string{
		"CREATE TABLE IF NOT EXISTS lab_meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)",
		"CREATE TABLE IF NOT EXISTS auth_user (id " + pk + ", username VARCHAR(150) NOT NULL UNIQUE, password VARCHAR(256) NOT NULL, is_active BOOLEAN NOT NULL, last_login BIGINT)",
		"CREATE TABLE IF NOT EXISTS site_counter (id " + pk + ", logins BIGINT NOT NULL)",
		"CREATE TABLE IF NOT EXISTS klasifikasi (id " + pk + ", nama TEXT NOT NULL)",
		"CREATE TABLE IF NOT EXISTS pekerjaan (id " + pk + ", kode TEXT NOT NULL, nama TEXT NOT NULL, satuan TEXT NOT NULL, volume " + float + " NOT NULL, klasifikasi_id BIGINT NOT NULL REFERENCES klasifikasi (id))",
		"CREATE TABLE IF NOT EXISTS rincian_ahsp (id " + pk + ", pekerjaan_id BIGINT NOT NULL REFERENCES pekerjaan (id), kategori TEXT NOT NULL, uraian TEXT NOT NULL, satuan TEXT NOT NULL, koefisien " + float + " NOT NULL, harga_satuan " + float + " NOT NULL)",
		"CREATE TABLE IF NOT EXISTS audit_trail (id " + serial + ", username TEXT NOT NULL, path TEXT NOT NULL, created_at BIGINT NOT NULL)",
		"CREATE INDEX IF NOT EXISTS audit_trail_username_idx ON audit_trail (username, id)",
	}
	if missingIndex {
		ddl = append(ddl, "DROP INDEX IF EXISTS rincian_ahsp_pekerjaan_id_idx")
	} else {
		ddl = append(ddl, "CREATE INDEX IF NOT EXISTS rincian_ahsp_pekerjaan_id_idx ON rincian_ahsp (pekerjaan_id)")
	}
	for _, q := range ddl {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	return nil
}

// seed fills the tables unless they already hold this exact seed.
func (s *store) seed(ctx context.Context, c Config, h hasher) error {
	want := fmt.Sprintf("users=%d items=%d rows=%d hasher=%s iterations=%d", c.Users, c.Items, c.RowsPerItem, c.Hasher, c.PBKDF2Iterations)
	var got string
	err := s.db.QueryRowContext(ctx, s.q("SELECT v FROM lab_meta WHERE k = ?"), "seed").Scan(&got)
	if err == nil && got == want {
		return nil
	}
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("seed: %w", err)
	}

	// Hash each distinct password once, concurrently.
	distinct := min(c.Users, len(passwordWords))
	hashes := make([]string, distinct)
	errs := make([]error, distinct)
	var wg sync.WaitGroup
	for i := range distinct {
		wg.Go(func() {
			_, pw := seedUser(i + 1)
			hashes[i], errs[i] = h.make(pw)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("seed: %w", err)
	}

	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	for _, t := range []string{"audit_trail", "rincian_ahsp", "pekerjaan", "klasifikasi", "site_counter", "auth_user", "lab_meta"} {
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+t); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
	}
	ins := func(table string, cols int, rows [][]any) error {
		const batch = 500
		for len(rows) > 0 {
			n := min(batch, len(rows))
			var b strings.Builder
			b.WriteString("INSERT INTO " + table + " VALUES ")
			args := make([]any, 0, n*cols)
			ph := "(" + strings.TrimSuffix(strings.Repeat("?,", cols), ",") + ")"
			for i := range n {
				if i > 0 {
					b.WriteString(",")
				}
				b.WriteString(ph)
				args = append(args, rows[i]...)
			}
			if _, err := tx.ExecContext(ctx, s.q(b.String()), args...); err != nil {
				return fmt.Errorf("seed %s: %w", table, err)
			}
			rows = rows[n:]
		}
		return nil
	}
	var rows [][]any
	for i := 1; i <= c.Users; i++ {
		u, _ := seedUser(i)
		rows = append(rows, []any{i, u, hashes[(i-1)%distinct], true, nil})
	}
	if err := ins("auth_user", 5, rows); err != nil {
		return err
	}
	if err := ins("site_counter", 2, [][]any{{1, 0}}); err != nil {
		return err
	}
	rows = rows[:0]
	for i, k := range klasifikasi {
		rows = append(rows, []any{i + 1, k})
	}
	if err := ins("klasifikasi", 2, rows); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(42, 2026))
	satuan := []string{"m3", "m2", "m'", "bh", "kg", "ls"}
	rows = rows[:0]
	for i := 1; i <= c.Items; i++ {
		k := rng.IntN(len(klasifikasi))
		rows = append(rows, []any{i, fmt.Sprintf("A.%d.%d.%d", k+1, i/100+1, i%100+1),
			fmt.Sprintf("%s item %d", klasifikasi[k], i), satuan[rng.IntN(len(satuan))], float64(rng.IntN(50000))/100 + 1, k + 1})
	}
	if err := ins("pekerjaan", 6, rows); err != nil {
		return err
	}
	cats := []string{"TK", "BHN", "ALT"}
	id := 0
	rows = rows[:0]
	for i := 1; i <= c.Items; i++ {
		for range c.RowsPerItem {
			id++
			cat := cats[rng.IntN(len(cats))]
			u := uraian[cat]
			rows = append(rows, []any{id, i, cat, u[rng.IntN(len(u))], satuanBahan[cat],
				float64(rng.IntN(5000)+1) / 1000, float64(rng.IntN(400000) + 5000)})
		}
		if len(rows) >= 5000 {
			if err := ins("rincian_ahsp", 7, rows); err != nil {
				return err
			}
			rows = rows[:0]
		}
	}
	if err := ins("rincian_ahsp", 7, rows); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, s.q("INSERT INTO lab_meta VALUES (?, ?)"), "seed", want); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, "ANALYZE"); err != nil {
		return fmt.Errorf("seed: analyze: %w", err)
	}
	return nil
}
