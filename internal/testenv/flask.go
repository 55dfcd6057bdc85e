package testenv

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The reference Flask target: a small real Flask 2.2 app (testdata/flask,
// "estimates") with Flask-Login, a CSRF token kept in the session,
// SQLAlchemy 1.4's QueuePool over psycopg2 to PostgreSQL behind PgBouncer,
// server-side sessions in Redis, Flask-Limiter, JSON logs
// (python-json-logger), served by uWSGI behind nginx. Every fault mode is
// configuration only: environment variables the app reads, uWSGI options,
// nginx's configuration, server settings, schema.

//go:embed all:testdata/flask
var flaskFiles embed.FS

const (
	// FlaskHost is the name the Flask target is loaded at, resolved to
	// 127.0.0.1 by stampede's --resolve: clients drop a Secure cookie over
	// plain HTTP for such a name (they keep it for 127.0.0.1).
	FlaskHost = "flask.test"
	// FlaskPassword is the password of every seeded user.
	FlaskPassword = "stampede-load-pw"

	flaskUWSGI = "/usr/bin/uwsgi"
	// flaskRecapIndex is the index on analysis(work_item_id), which the
	// recap's per-item subqueries filter on.
	flaskRecapIndex = "analysis_work_item_idx"
	// flaskRatesLatency is how long the exchange-rates API the dashboard
	// calls takes to answer, in every mode: a distant API's round trip.
	flaskRatesLatency = 250 * time.Millisecond
)

// UWSGIOptions are uWSGI's options of a mode; zero fields keep the base
// configuration's.
type UWSGIOptions struct {
	// Processes (pre-forked workers) and Threads per process.
	Processes, Threads int
	// Listen is the socket's listen queue (backlog).
	Listen int
	// Harakiri kills a worker whose request runs longer, in seconds.
	Harakiri int
}

// flaskBaseUWSGI: two pre-forked processes of four threads, uWSGI's
// default listen queue (100) and a 30 s harakiri.
var flaskBaseUWSGI = UWSGIOptions{Processes: 2, Threads: 4, Listen: 100, Harakiri: 30}

// flaskBaseEnv is the app's configuration in every mode: SQLAlchemy's
// default pool (5 + 10 overflow, 30 s timeout), and PBKDF2 at 1,000
// iterations, the cheap hash a load environment uses, so logins cost no
// CPU worth measuring unless a mode says otherwise.
var flaskBaseEnv = map[string]string{
	"DB_POOL_SIZE":         "5",
	"DB_MAX_OVERFLOW":      "10",
	"DB_POOL_TIMEOUT":      "30",
	"PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
	"RATES_TIMEOUT":        "5",
}

// flaskStrongHash is PBKDF2-SHA256 at 1,000,000 iterations: about 0.3 s of
// CPU per login here.
const flaskStrongHash = "pbkdf2:sha256:1000000"

// FlaskMode is one configuration of the Flask target.
type FlaskMode struct {
	// Name, Want and About are as in ModeInfo.
	Name, Want, About string
	// Env holds the app's settings (estimates/config.py) over flaskBaseEnv.
	Env map[string]string
	// UWSGI overrides the base uWSGI options.
	UWSGI UWSGIOptions
	// Bouncer and Redis configure the servers the mode starts.
	Bouncer BouncerOptions
	Redis   RedisOptions
	// LimitReq puts an nginx limit_req in front of the app.
	LimitReq *NginxLimitReq
	// UpstreamConnectTimeout sets nginx's uwsgi_connect_timeout; 0 keeps
	// nginx's 60 s.
	UpstreamConnectTimeout time.Duration
	// DropRecapIndex drops the index the recap filters on; otherwise it is
	// created if missing.
	DropRecapIndex bool
	// Load is the load that shows the fault.
	Load Load
}

var flaskModes = []FlaskMode{
	{
		Name: "healthy",
		About: "uWSGI 2 processes × 4 threads behind nginx; SQLAlchemy pool 5 + 10 overflow per process, PgBouncer pool 20 (session pooling), Redis maxclients 10000; " +
			"PBKDF2 at 1,000 iterations for the load environment; the dashboard calls a rates API answering in 250 ms; 10 users.",
		Load: Load{Users: 10, SpawnRate: 2, Duration: 20 * time.Second},
	},
	{
		Name: "db-pool-wait-timeout-app",
		Want: "db-pool-wait-timeout",
		About: "SQLAlchemy QueuePool pool_size=2, max_overflow=0, pool_timeout=1 s in one uWSGI process of 16 threads; a request keeps its connection to its end, " +
			"across the dashboard's 250 ms call to the rates API: threads wait for a connection and give up after 1 s → " +
			"sqlalchemy.exc.TimeoutError \"QueuePool limit of size 2 overflow 0 reached, connection timed out, timeout 1.00\" → 500; PgBouncer and PostgreSQL stay quiet.",
		Env:   map[string]string{"DB_POOL_SIZE": "2", "DB_MAX_OVERFLOW": "0", "DB_POOL_TIMEOUT": "1"},
		UWSGI: UWSGIOptions{Processes: 1, Threads: 16},
		Load:  Load{Users: 50, SpawnRate: 10, Duration: 25 * time.Second},
	},
	{
		Name: "db-pool-wait-timeout",
		Want: "db-pool-wait-timeout",
		About: "PgBouncer default_pool_size=2, query_wait_timeout=2 s, session pooling; uWSGI 2 processes × 8 threads, each process's SQLAlchemy pool keeping 8 connections open: " +
			"two client connections pin both server connections, the others queue in PgBouncer and are dropped after 2 s (closing because: query_wait_timeout) → psycopg2 OperationalError → 500.",
		Env:     map[string]string{"DB_POOL_SIZE": "8", "DB_MAX_OVERFLOW": "0"},
		UWSGI:   UWSGIOptions{Threads: 8},
		Bouncer: BouncerOptions{DefaultPoolSize: 2, QueryWaitTimeout: 2 * time.Second},
		Load:    Load{Users: 50, SpawnRate: 10, Duration: 25 * time.Second},
	},
	{
		Name: "login-rate-limit",
		Want: "login-rate-limit",
		About: "nginx limit_req on POST /login per client address, rate 2r/s with burst 4 (nodelay): every user comes from the one load generator's address, " +
			"so the logins beyond it are refused by nginx with 503 (\"limiting requests, excess: ... by zone \\\"login\\\"\" in nginx's error log); the app never sees them.",
		LimitReq: &NginxLimitReq{Path: "/login", Method: "POST", Rate: "2r/s", Burst: 4},
		Load:     Load{Users: 30, SpawnRate: 10, Duration: 20 * time.Second},
	},
	{
		Name: "login-rate-limit-app",
		Want: "login-rate-limit",
		About: "Flask-Limiter 3.3 with \"10 per minute\" on the login POST keyed on the client address (get_remote_address), counted in Redis: behind nginx every request comes from 127.0.0.1, " +
			"so every user shares one bucket; the logins beyond it get 429 Too Many Requests (\"10 per 1 minute\").",
		Env:  map[string]string{"LOGIN_RATE_LIMIT": "10 per minute"},
		Load: Load{Users: 30, SpawnRate: 10, Duration: 20 * time.Second},
	},
	{
		Name: "password-hash-cpu",
		Want: "password-hash-cpu",
		About: "PASSWORD_HASH_METHOD=pbkdf2:sha256:1000000 and the stored hashes have that cost: each login hashes for about 0.3 s of CPU (hashlib releases the GIL, " +
			"so uWSGI's 2 × 4 threads hash in parallel); 50 users logging in within 2 s are more logins than 2 cores can hash → logins slow, CPU pegged, no errors.",
		Env:  map[string]string{"PASSWORD_HASH_METHOD": flaskStrongHash},
		Load: Load{Users: 50, SpawnRate: 25, Duration: 25 * time.Second},
	},
	{
		Name: "redis-connection-limit",
		Want: "redis-connection-limit",
		About: "Redis maxclients=3 below the connections redis-py's pools open for uWSGI's 4 processes × 4 threads (each process keeps its own pool); sessions are read and written in Redis " +
			"on every request: a connection Redis refuses raises redis.exceptions.ConnectionError \"max number of clients reached\" → 500 with the traceback in the JSON log.",
		UWSGI: UWSGIOptions{Processes: 4},
		Redis: RedisOptions{MaxClients: 3},
		Load:  Load{Users: 50, SpawnRate: 10, Duration: 20 * time.Second},
	},
	{
		Name: "db-lock-contention",
		Want: "db-lock-contention",
		About: "LOGIN_COUNTER_IN_TRANSACTION=true with PBKDF2 at 1,000,000 iterations: each login locks the day's login_counter row (SELECT ... FOR UPDATE) in its own transaction " +
			"and keeps it across the password check until the commit; with 2 processes × 8 threads the logins queue on the row, one hash at a time: PostgreSQL logs " +
			"\"still waiting for ShareLock on transaction\", the blocker is idle in transaction, the CPU is not saturated; no request fails, logins take seconds.",
		Env:   map[string]string{"LOGIN_COUNTER_IN_TRANSACTION": "true", "PASSWORD_HASH_METHOD": flaskStrongHash},
		UWSGI: UWSGIOptions{Threads: 8},
		Load:  Load{Users: 30, SpawnRate: 10, Duration: 25 * time.Second},
	},
	{
		Name: "slow-query",
		Want: "slow-query",
		About: "DROP INDEX analysis_work_item_idx: the recap's two correlated subqueries per work item on analysis (300,000 rows) become sequential scans, seconds a page; " +
			"PostgreSQL's log_min_duration_statement names the recap's statement, the other pages stay fast.",
		DropRecapIndex: true,
		Load:           Load{Users: 20, SpawnRate: 5, Duration: 25 * time.Second},
	},
	{
		Name: "app-worker-saturation",
		Want: "app-worker-saturation",
		About: "uWSGI with 2 processes of 1 thread each and a listen queue of 8: the dashboard's synchronous call to the rates API (250 ms) holds a whole worker, " +
			"so both workers are busy, requests queue in the socket's backlog (uWSGI: \"listen queue of socket ... full\"), every endpoint slows together and nginx gives up " +
			"connecting after 3 s (504, \"upstream timed out ... while connecting to upstream\"); the CPU and the database idle.",
		UWSGI:                  UWSGIOptions{Processes: 2, Threads: 1, Listen: 8},
		UpstreamConnectTimeout: 3 * time.Second,
		Load:                   Load{Users: 40, SpawnRate: 10, Duration: 25 * time.Second},
	},
	{
		Name: "csrf-failure",
		Want: "csrf-failure",
		About: "SESSION_COOKIE_SECURE=true served over plain HTTP at " + FlaskHost + ": the client drops the Secure session cookie the login form set, so the CSRF token kept in " +
			"the session is gone at the login POST → 400 Bad Request \"The CSRF session token is missing.\" (Flask-WTF's words), logged as a warning.",
		Env:  map[string]string{"SESSION_COOKIE_SECURE": "true"},
		Load: Load{Users: 20, SpawnRate: 5, Duration: 15 * time.Second},
	},
}

func init() {
	stackModes["flask"] = func() []ModeInfo {
		out := make([]ModeInfo, 0, len(flaskModes))
		for _, m := range flaskModes {
			out = append(out, m.info())
		}
		return out
	}
	stackStarters["flask"] = flaskStarter{}
}

// info is the mode as a ModeInfo.
func (m FlaskMode) info() ModeInfo {
	return ModeInfo{Stack: "flask", Name: m.Name, Want: m.Want, About: m.About, Load: m.Load,
		Representative: m.Name == "db-pool-wait-timeout-app"}
}

// FlaskModes returns the modes of the Flask target, healthy first.
func FlaskModes() []FlaskMode {
	out := make([]FlaskMode, len(flaskModes))
	copy(out, flaskModes)
	return out
}

// LookupFlaskMode returns the mode called name; "" is healthy.
func LookupFlaskMode(name string) (FlaskMode, error) {
	if name == "" {
		name = "healthy"
	}
	var names []string
	for _, m := range flaskModes {
		if m.Name == name {
			return m, nil
		}
		names = append(names, m.Name)
	}
	return FlaskMode{}, fmt.Errorf("flask: unknown mode %q (modes: %s)", name, strings.Join(names, ", "))
}

// FlaskFile returns a file of the Flask project (testdata/flask), e.g.
// "scenario.yaml" or "locustfile.py".
func FlaskFile(name string) ([]byte, error) {
	return flaskFiles.ReadFile("testdata/flask/" + name)
}

// FlaskInstalled reports whether Debian's python3-flask, flask-login,
// flask-limiter, sqlalchemy, psycopg2, redis, python-json-logger, uWSGI with
// its python3 plugin and nginx are there; the error wraps ErrNotInstalled.
func FlaskInstalled() error {
	const hint = "apt-get install python3-flask python3-flask-login python3-flask-limiter python3-sqlalchemy python3-psycopg2 python3-redis python3-pythonjsonlogger python3-requests uwsgi uwsgi-plugin-python3 nginx"
	for _, p := range []string{djangoPython, flaskUWSGI, "/usr/lib/uwsgi/plugins/python3_plugin.so"} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("flask: %s: %w (%s)", p, ErrNotInstalled, hint)
		}
	}
	if err := NginxInstalled(); err != nil {
		return fmt.Errorf("flask: %w", err)
	}
	cmd := exec.Command(djangoPython, "-c", "import flask, flask_login, flask_limiter, sqlalchemy, psycopg2, redis, pythonjsonlogger, requests")
	cmd.Env = pythonEnv(nil)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("flask: python modules: %w (%s): %s", ErrNotInstalled, hint, lastLines(string(out), 3))
	}
	return nil
}

// FlaskDBOptions configures StartFlaskDB. The zero value is valid.
type FlaskDBOptions struct {
	// Dir is where postgresql.log goes; empty means a private directory.
	Dir string
	// Users, ItemsPerUser and LinesPerItem size the seed; 0 means 200
	// users, 20 work items each and 75 analysis lines per item (300,000
	// rows in analysis).
	Users, ItemsPerUser, LinesPerItem int
}

// FlaskDB is PostgreSQL with the Flask app's schema and seed, which several
// Flask targets (one per mode) can share in turn.
type FlaskDB struct {
	// PG is the server: log_lock_waits=on with deadlock_timeout 200 ms,
	// log_min_duration_statement 200 ms, timestamps in UTC.
	PG *PG
	// Users is the number of seeded users (user001, user002, ...).
	Users int

	project string // the extracted project directory
	closer  closer
}

// Close stops PostgreSQL and removes the extracted project. It is safe to
// call more than once.
func (db *FlaskDB) Close() error { return db.closer.close() }

// PostgresLog returns PostgreSQL's log.
func (db *FlaskDB) PostgresLog() string { return db.PG.LogPath }

// StartFlaskDB starts PostgreSQL, extracts the Flask project and makes its
// schema and seed in bulk SQL (schema.sql, seed.sql). The users have no
// password until a target stores its mode's hash. The caller must Close it,
// after the targets using it.
func StartFlaskDB(ctx context.Context, opts FlaskDBOptions) (_ *FlaskDB, err error) {
	if err := FlaskInstalled(); err != nil {
		return nil, err
	}
	db := &FlaskDB{Users: orInt(opts.Users, 200)}
	defer func() {
		if err != nil {
			db.Close()
		}
	}()
	if db.project, err = extractFlask(); err != nil {
		return nil, err
	}
	project := db.project
	db.closer.add(func() error { return os.RemoveAll(project) })
	db.PG, err = StartPostgres(ctx, PGOptions{
		Dir:             opts.Dir,
		LogLockWaits:    true,
		DeadlockTimeout: 200 * time.Millisecond,
		Settings: map[string]string{
			"log_min_duration_statement": "200ms",
			"log_timezone":               "UTC",
		},
	})
	if err != nil {
		return nil, err
	}
	db.closer.add(db.PG.Close)
	schema, err := FlaskFile("schema.sql")
	if err != nil {
		return nil, fmt.Errorf("flask: %w", err)
	}
	seed, err := FlaskFile("seed.sql")
	if err != nil {
		return nil, fmt.Errorf("flask: %w", err)
	}
	sizes := strings.NewReplacer("{{users}}", strconv.Itoa(db.Users),
		"{{items}}", strconv.Itoa(orInt(opts.ItemsPerUser, 20)), "{{lines}}", strconv.Itoa(orInt(opts.LinesPerItem, 75)))
	c, err := pgx.Connect(ctx, db.PG.DSN())
	if err != nil {
		return nil, fmt.Errorf("flask: %w", err)
	}
	defer c.Close(ctx)
	// Without arguments Exec uses the simple protocol: a script of several
	// statements runs as one, in one transaction.
	for _, sql := range []string{string(schema), sizes.Replace(string(seed)), "ANALYZE"} {
		if _, err := c.Exec(ctx, sql); err != nil {
			return nil, fmt.Errorf("flask: schema and seed: %w", err)
		}
	}
	return db, nil
}

// setPassword stores FlaskPassword as every seeded user's password, hashed
// once by the app's own manage.py with the method env configures.
func (db *FlaskDB) setPassword(ctx context.Context, env map[string]string) error {
	e := map[string]string{}
	for k, v := range env {
		e[k] = v
	}
	e["DATABASE_URL"] = flaskDatabaseURL(db.PG.Host, db.PG.Port, db.PG.User, db.PG.Password, db.PG.Database)
	cmd := exec.CommandContext(ctx, djangoPython, "manage.py", "set-password", "--password-env", "SEED_PASSWORD")
	cmd.Dir = db.project
	cmd.Env = append(pythonEnv(e), "SEED_PASSWORD="+FlaskPassword)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("flask: manage.py set-password: %w:\n%s", err, lastLines(string(out), 30))
	}
	return nil
}

// recapIndex creates the recap's index if missing (on) or drops it (off).
func (db *FlaskDB) recapIndex(ctx context.Context, on bool) error {
	c, err := pgx.Connect(ctx, db.PG.DSN())
	if err != nil {
		return fmt.Errorf("flask: %w", err)
	}
	defer c.Close(ctx)
	sql := "DROP INDEX IF EXISTS " + flaskRecapIndex
	if on {
		sql = "CREATE INDEX IF NOT EXISTS " + flaskRecapIndex + " ON analysis (work_item_id)"
	}
	if _, err := c.Exec(ctx, sql); err != nil {
		return fmt.Errorf("flask: %s: %w", sql, err)
	}
	return nil
}

// flaskDatabaseURL is SQLAlchemy's URL for psycopg2.
func flaskDatabaseURL(host string, port int, user, password, db string) string {
	return strings.Replace(pgURL(user, password, host, port, db), "postgres://", "postgresql+psycopg2://", 1)
}

// extractFlask copies the embedded project to a new temporary directory.
func extractFlask() (string, error) {
	dir, err := os.MkdirTemp("", "stampede-flask-")
	if err != nil {
		return "", fmt.Errorf("flask: %w", err)
	}
	// uWSGI's workers run as root here, but the directory may be read by
	// anyone: it holds no secret.
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", fmt.Errorf("flask: %w", err)
	}
	const root = "testdata/flask"
	err = fs.WalkDir(flaskFiles, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.Contains(p, "__pycache__") {
			return nil
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, root), "/")
		dst := filepath.Join(dir, filepath.FromSlash(rel))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := flaskFiles.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("flask: extract project: %w", err)
	}
	return dir, nil
}

// FlaskOptions configures StartFlask. The zero value is valid: the healthy
// mode on its own PostgreSQL, logs in a private directory.
type FlaskOptions struct {
	// Mode names a FlaskModes mode; empty means healthy.
	Mode string
	// DB is a seeded PostgreSQL to use; nil means StartFlask starts one
	// (and Close stops it).
	DB *FlaskDB
	// Dir receives the logs: app.log, access.log, nginx-error.log,
	// uwsgi.log, pgbouncer.log, redis.log (and postgresql.log when the DB
	// is started here). Empty means a private directory removed by Close.
	Dir string
	// Env overrides settings of the mode (see FlaskMode.Env).
	Env map[string]string
}

// Flask is a running Flask target: nginx in front of uWSGI serving the app,
// with PgBouncer, Redis and the rates API started for its mode.
type Flask struct {
	// Config is the mode it runs in.
	Config FlaskMode
	// URL is nginx's http://127.0.0.1:PORT; NamedURL is
	// http://FlaskHost:PORT, for clients that resolve FlaskHost to
	// 127.0.0.1.
	URL, NamedURL string
	// Port is nginx's port; UWSGIPort uWSGI's socket (uwsgi protocol).
	Port, UWSGIPort int
	// PID is the uWSGI master's process id.
	PID int
	// AppLog is the app's JSON log (a "request" record per request with
	// method, path, status and duration_ms; errors with error_type,
	// error_message and exc_info, the traceback); AccessLog and
	// NginxErrorLog are nginx's; UWSGILog uWSGI's own log (text: startup,
	// listen queue, harakiri, respawns; what the app prints);
	// PgBouncerLog, RedisLog and PostgresLog the servers' logs.
	AppLog, AccessLog, NginxErrorLog, UWSGILog, PgBouncerLog, RedisLog, PostgresLog string
	// PostgresDSN is the superuser's DSN to the application database, for
	// stampede's PostgreSQL probe; PgBouncerDSN the admin console's stats
	// user; RedisURL the Redis server (database 0). Passwords included.
	PostgresDSN, PgBouncerDSN, RedisURL string
	// DB, Bouncer, Redis and Nginx are the servers around it.
	DB      *FlaskDB
	Bouncer *Bouncer
	Redis   *RedisServer
	Nginx   *Nginx

	closer closer
}

// Close stops nginx, uWSGI, the rates API, Redis and PgBouncer (and
// PostgreSQL when StartFlask started it), by their process ids. It is safe
// to call more than once.
func (f *Flask) Close() error { return f.closer.close() }

// Mode returns the mode the target runs in.
func (f *Flask) Mode() ModeInfo { return f.Config.info() }

// BaseURL returns NamedURL: the Flask target is always loaded by name.
func (f *Flask) BaseURL() string { return f.NamedURL }

// DirectURL returns URL.
func (f *Flask) DirectURL() string { return f.URL }

// Locustfile returns testdata/flask/locustfile.py.
func (f *Flask) Locustfile() ([]byte, error) { return FlaskFile("locustfile.py") }

// LocustUsersEnv returns "FLASK_USERS".
func (f *Flask) LocustUsersEnv() string { return "FLASK_USERS" }

// Logs returns the logs by the names stampede's --log flags give them.
func (f *Flask) Logs() [][2]string {
	return [][2]string{
		{"app", f.AppLog}, {"access", f.AccessLog}, {"nginx-error", f.NginxErrorLog}, {"uwsgi", f.UWSGILog},
		{"pgbouncer", f.PgBouncerLog}, {"postgres", f.PostgresLog},
	}
}

// StartFlask starts the Flask target in opts.Mode: PgBouncer and Redis as
// the mode configures them, the seeded users' password stored with the
// mode's hash, the recap's index dropped or restored, the rates API, uWSGI
// and nginx in front; it returns once GET /login answers 200 through nginx.
// The caller must Close it.
func StartFlask(ctx context.Context, opts FlaskOptions) (_ *Flask, err error) {
	mode, err := LookupFlaskMode(opts.Mode)
	if err != nil {
		return nil, err
	}
	if err := FlaskInstalled(); err != nil {
		return nil, err
	}
	f := &Flask{Config: mode, DB: opts.DB}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	dir := opts.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "stampede-flask-logs-"); err != nil {
			return nil, fmt.Errorf("flask: %w", err)
		}
		tmp := dir
		f.closer.add(func() error { return os.RemoveAll(tmp) })
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("flask: %w", err)
	}
	if f.DB == nil {
		if f.DB, err = StartFlaskDB(ctx, FlaskDBOptions{Dir: dir}); err != nil {
			return nil, err
		}
		f.closer.add(f.DB.Close)
	}
	pg := f.DB.PG
	f.PostgresLog, f.PostgresDSN = pg.LogPath, pg.SuperDSN()

	bo := mode.Bouncer
	bo.Dir = dir
	if f.Bouncer, err = StartPgBouncer(ctx, pg, bo); err != nil {
		return nil, err
	}
	f.closer.add(f.Bouncer.Close)
	f.PgBouncerLog, f.PgBouncerDSN = f.Bouncer.LogPath, f.Bouncer.StatsDSN()
	ro := mode.Redis
	ro.Dir = dir
	if f.Redis, err = StartRedis(ctx, ro); err != nil {
		return nil, err
	}
	f.closer.add(f.Redis.Close)
	f.RedisLog, f.RedisURL = f.Redis.LogPath, f.Redis.URL()

	env := map[string]string{}
	for _, m := range []map[string]string{flaskBaseEnv, mode.Env, opts.Env} {
		for k, v := range m {
			env[k] = v
		}
	}
	if err := f.DB.setPassword(ctx, env); err != nil {
		return nil, err
	}
	if err := f.DB.recapIndex(ctx, !mode.DropRecapIndex); err != nil {
		return nil, err
	}
	rates, err := startRatesAPI(flaskRatesLatency)
	if err != nil {
		return nil, err
	}
	f.closer.add(rates.Close)

	f.AppLog = filepath.Join(dir, "app.log")
	f.UWSGILog = filepath.Join(dir, "uwsgi.log")
	for _, p := range []string{f.AppLog, f.UWSGILog} {
		fh, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("flask: %w", err)
		}
		fh.Close()
	}
	b := f.Bouncer
	env["DATABASE_URL"] = flaskDatabaseURL(b.Host, b.Port, b.User, b.Password, b.Database)
	env["REDIS_URL"] = "redis://" + f.Redis.Addr() + "/1"
	env["RATES_URL"] = "http://" + rates.Addr + "/v1/latest?base=IDR"
	env["APP_LOG"] = f.AppLog
	if err := f.startUWSGI(ctx, env, dir); err != nil {
		return nil, err
	}
	f.Nginx, err = StartNginx(ctx, NginxOptions{
		Upstream: net.JoinHostPort("127.0.0.1", strconv.Itoa(f.UWSGIPort)), Protocol: "uwsgi",
		ConnectTimeout: mode.UpstreamConnectTimeout, LimitReq: mode.LimitReq, Dir: dir,
	})
	if err != nil {
		return nil, fmt.Errorf("flask: %w", err)
	}
	f.closer.add(f.Nginx.Close)
	f.AccessLog, f.NginxErrorLog, f.Port = f.Nginx.AccessLog, f.Nginx.ErrorLog, f.Nginx.Port
	f.URL = f.Nginx.URL()
	f.NamedURL = "http://" + net.JoinHostPort(FlaskHost, strconv.Itoa(f.Port))
	// The app loads in each worker after the fork (lazy-apps): ready when
	// the login form comes back through nginx.
	login := f.URL + "/login"
	ready := func(ctx context.Context) error { return getOK(ctx, login) }
	for {
		tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := ready(tctx)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("flask: not ready: %w (last error: %v); uWSGI log ends with:\n%s", ctx.Err(), err, Tail(f.UWSGILog, 20))
		case <-time.After(200 * time.Millisecond):
		}
	}
	return f, nil
}

// startUWSGI starts uWSGI's master on a free port (uwsgi protocol) with the
// mode's options, the app loaded in each pre-forked worker.
func (f *Flask) startUWSGI(ctx context.Context, env map[string]string, dir string) error {
	o := flaskBaseUWSGI
	m := f.Config.UWSGI
	for _, p := range [][2]*int{{&o.Processes, &m.Processes}, {&o.Threads, &m.Threads}, {&o.Listen, &m.Listen}, {&o.Harakiri, &m.Harakiri}} {
		if *p[1] != 0 {
			*p[0] = *p[1]
		}
	}
	me := osUser{uid: os.Getuid(), gid: os.Getgid()}
	err := retryBind(func() error {
		port, err := FreePort()
		if err != nil {
			return err
		}
		f.UWSGIPort = port
		args := []string{
			"--plugin", "python3", "--master", "--lazy-apps", "--need-app", "--enable-threads", "--single-interpreter",
			"--socket", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			"--processes", strconv.Itoa(o.Processes), "--threads", strconv.Itoa(o.Threads),
			"--listen", strconv.Itoa(o.Listen), "--harakiri", strconv.Itoa(o.Harakiri),
			"--chdir", f.DB.project, "--module", "wsgi:application",
			"--logto", f.UWSGILog, "--log-date", "--disable-logging",
			"--die-on-term", "--vacuum",
		}
		// uwsgi.out catches what is printed before uWSGI opens its log.
		proc, err := startProcessEnv("uwsgi", me, filepath.Join(dir, "uwsgi.out"), pythonEnv(env), flaskUWSGI, args...)
		if err != nil {
			return err
		}
		proc.logPath = f.UWSGILog
		// Ready when the socket accepts; the workers load the app after.
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		err = proc.waitReady(ctx, func(ctx context.Context) error {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				if b, _ := os.ReadFile(f.UWSGILog); strings.Contains(string(b), "Address already in use") {
					return fmt.Errorf("uwsgi: Address already in use")
				}
				return err
			}
			return c.Close()
		})
		if err != nil {
			_ = proc.stop(syscall.SIGKILL, 5*time.Second)
			_ = syscall.Kill(-proc.PID(), syscall.SIGKILL)
			return err
		}
		f.PID = proc.PID()
		f.closer.add(func() error { return stopUWSGI(proc) })
		return nil
	}, bindErr)
	if err != nil {
		return fmt.Errorf("flask: %w", err)
	}
	return nil
}

// stopUWSGI stops the master with SIGINT, uWSGI's immediate shutdown (the
// workers are killed); if it has not exited after 10 s, the master and its
// workers, which share the process group it was started in, are killed.
func stopUWSGI(p *process) error {
	pgid := p.PID()
	if err := p.stop(syscall.SIGINT, 10*time.Second); err != nil {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	return nil
}

// ratesAPI is the exchange-rates API the dashboard calls: a small HTTP
// service answering every request after a fixed latency.
type ratesAPI struct {
	Addr string
	srv  *http.Server
}

func startRatesAPI(latency time.Duration) (*ratesAPI, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("flask: rates API: %w", err)
	}
	body, _ := json.Marshal(map[string]any{
		"base":  "IDR",
		"rates": map[string]float64{"USD": 0.0000641, "EUR": 0.0000592, "SGD": 0.0000862, "JPY": 0.00963},
	})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(latency):
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return &ratesAPI{Addr: l.Addr().String(), srv: srv}, nil
}

// Close stops the rates API and its open requests.
func (r *ratesAPI) Close() error {
	if err := r.srv.Close(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("flask: rates API: %w", err)
	}
	return nil
}

// WriteUsers writes a users file for stampede or Locust to path: a header
// "username,password" and the first n seeded users (all of them when n is
// 0 or too large).
func (f *Flask) WriteUsers(path string, n int) error {
	if n <= 0 || n > f.DB.Users {
		n = f.DB.Users
	}
	var b strings.Builder
	b.WriteString("username,password\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "user%03d,%s\n", i, FlaskPassword)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("flask: users file: %w", err)
	}
	return nil
}

// WriteScenario writes the target's stampede scenario (testdata/flask/
// scenario.yaml) into dir with the users file it names: as many accounts as
// the mode's load uses, shared round-robin when there are fewer accounts
// than users. It returns the scenario's path.
func (f *Flask) WriteScenario(dir string) (string, error) {
	sc, err := FlaskFile("scenario.yaml")
	if err != nil {
		return "", fmt.Errorf("flask: %w", err)
	}
	l := f.Config.Load
	accounts, assign := l.Users, "unique"
	if l.Accounts > 0 && l.Accounts < l.Users {
		accounts, assign = l.Accounts, "round-robin"
	}
	lines := strings.Split(string(sc), "\n")
	found := false
	for i, line := range lines {
		if strings.HasPrefix(line, "user_assignment:") {
			lines[i], found = "user_assignment: "+assign, true
		}
		// The healthy mode is judged on failures and findings, not on a
		// latency threshold that a busy test machine can break by itself.
		if f.Config.Want == "" && strings.Contains(line, `"p95 < 500ms"`) {
			lines[i] = strings.Replace(line, `, "p95 < 500ms"`, "", 1)
		}
	}
	if !found {
		return "", fmt.Errorf("flask: scenario.yaml has no user_assignment line")
	}
	if err := f.WriteUsers(filepath.Join(dir, "users.csv"), accounts); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "scenario.yaml")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		return "", fmt.Errorf("flask: scenario: %w", err)
	}
	return path, nil
}

// RunArgs returns the arguments of "stampede run" for the scenario at path
// against this target in its mode: the mode's load, the target at NamedURL
// resolved to 127.0.0.1, the three probes, uWSGI's master PID and every log.
func (f *Flask) RunArgs(scenario string) []string {
	l := f.Config.Load
	args := []string{"run", scenario,
		"--url", f.NamedURL, "--resolve", FlaskHost + "=127.0.0.1",
		"-u", strconv.Itoa(l.Users), "-r", strconv.FormatFloat(l.SpawnRate, 'f', -1, 64), "-t", l.Duration.String(),
		"--probe-postgres", f.PostgresDSN, "--probe-pgbouncer", f.PgBouncerDSN, "--probe-redis", f.RedisURL,
		"--pid", strconv.Itoa(f.PID),
	}
	for _, l := range f.Logs() {
		args = append(args, "--log", l[0]+"="+l[1])
	}
	return args
}

// flaskStarter starts the Flask target.
type flaskStarter struct{}

func (flaskStarter) Installed() error { return FlaskInstalled() }

func (flaskStarter) Prepare(ctx context.Context, dir string) (Shared, error) {
	return StartFlaskDB(ctx, FlaskDBOptions{Dir: dir})
}

func (flaskStarter) Start(ctx context.Context, shared Shared, mode, dir string) (Target, error) {
	db, ok := shared.(*FlaskDB)
	if !ok {
		return nil, fmt.Errorf("flask: shared database of another stack (%T)", shared)
	}
	return StartFlask(ctx, FlaskOptions{Mode: mode, DB: db, Dir: dir})
}

// FlaskTarget starts the Flask target for the test and stops it in
// t.Cleanup; missing packages skip the test, or fail it under CI=true.
func FlaskTarget(t testing.TB, opts FlaskOptions) *Flask {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*startTimeout)
	defer cancel()
	f, err := StartFlask(ctx, opts)
	check(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range []string{f.UWSGILog, f.AppLog, f.NginxErrorLog} {
				t.Logf("tail of %s:\n%s", p, clipLines(Tail(p, 20), 300))
			}
		}
		if err := f.Close(); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	return f
}
