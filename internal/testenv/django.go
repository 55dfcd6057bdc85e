package testenv

import (
	"context"
	"embed"
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

// The reference Django target: a small real Django 3.2 project
// (testdata/django) with allauth's login, pages with real queries, PostgreSQL
// behind PgBouncer, cache and sessions in Redis, served by gunicorn. Every
// fault mode is configuration only: settings, server options, schema.

//go:embed all:testdata/django
var djangoFiles embed.FS

const (
	// DjangoHost is a name the Django target accepts besides 127.0.0.1 and
	// localhost. Secure cookies over plain HTTP are dropped by clients for
	// such a name (browsers and stampede keep them for localhost and
	// 127.0.0.1), so the cookie modes are loaded at http://DjangoHost:PORT
	// with stampede's --resolve DjangoHost=127.0.0.1.
	DjangoHost = "django.test"
	// DjangoPassword is the password of every seeded user.
	DjangoPassword = "stampede-load-pw"

	djangoPython   = "/usr/bin/python3"
	djangoGunicorn = "/usr/bin/gunicorn"
	// djangoRecapIndex is the index on work_analysis(work_item_id), which
	// the recap page's per-item subqueries filter on.
	djangoRecapIndex = "work_analysis_item_idx"
)

// DjangoLoad is the load that makes a mode's fault show within half a
// minute on a 2-core machine.
type DjangoLoad struct {
	// Users is the number of virtual users; SpawnRate how many start per
	// second; Duration how long the load runs.
	Users     int
	SpawnRate float64
	Duration  time.Duration
	// Accounts is how many distinct accounts the users log in as: 0 means
	// one account each (user_assignment: unique); fewer than Users means
	// the users share them (round-robin).
	Accounts int
}

// DjangoMode is one configuration of the Django target.
type DjangoMode struct {
	// Name is the mode's name: the finding id it should produce, "healthy",
	// or an id with a suffix for a variant.
	Name string
	// Want is the finding id the diagnosis should put on top; "" means the
	// run should pass with no confirmed finding.
	Want string
	// About says what is configured and what the real software does with it.
	About string
	// Env holds the settings: environment variables read by settings.py and
	// gunicorn.conf.py, over djangoBaseEnv.
	Env map[string]string
	// Bouncer and Redis configure the servers the mode starts.
	Bouncer BouncerOptions
	Redis   RedisOptions
	// DropRecapIndex drops the index the recap page's query filters on
	// (work_analysis_item_idx); otherwise it is created if missing.
	DropRecapIndex bool
	// Load is the load that shows the fault.
	Load DjangoLoad
}

// djangoBaseEnv is the configuration every mode starts from: two gunicorn
// workers of four threads each, connections closed after each request, and
// the fast hasher Django's documentation recommends for test environments,
// so logins cost no CPU worth measuring unless a mode says otherwise.
var djangoBaseEnv = map[string]string{
	"GUNICORN_WORKERS": "2",
	"GUNICORN_THREADS": "4",
	"GUNICORN_TIMEOUT": "30",
	"DB_CONN_MAX_AGE":  "0",
	"PASSWORD_HASHERS": "django.contrib.auth.hashers.MD5PasswordHasher",
}

// djangoDefaultHashers is Django 3.2's own PASSWORD_HASHERS: PBKDF2-SHA256
// at 260,000 iterations first.
const djangoDefaultHashers = "django.contrib.auth.hashers.PBKDF2PasswordHasher,django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher,django.contrib.auth.hashers.Argon2PasswordHasher,django.contrib.auth.hashers.BCryptSHA256PasswordHasher"

// djangoStrongHashers puts the project's PBKDF2 at 1,000,000 iterations
// (work/hashers.py) before Django's own.
const djangoStrongHashers = "work.hashers.PBKDF2SHA256OneMillion," + djangoDefaultHashers

var djangoModes = []DjangoMode{
	{
		Name:  "healthy",
		About: "PgBouncer pool 20 (session pooling, query_wait_timeout 120 s), Redis maxclients 10000, CONN_MAX_AGE=0, MD5 hasher for the load environment; 10 users.",
		Load:  DjangoLoad{Users: 10, SpawnRate: 2, Duration: 20 * time.Second},
	},
	{
		Name: "db-pool-wait-timeout",
		Want: "db-pool-wait-timeout",
		About: "PgBouncer default_pool_size=2, query_wait_timeout=2 s, session pooling; gunicorn 2 workers × 8 threads with Django CONN_MAX_AGE=60, so each thread keeps its server connection: " +
			"two threads pin both slots, the others queue in PgBouncer and are dropped after 2 s (closing because: query_wait_timeout) → psycopg2 OperationalError while connecting → 500.",
		Env:     map[string]string{"DB_CONN_MAX_AGE": "60", "GUNICORN_THREADS": "8"},
		Bouncer: BouncerOptions{DefaultPoolSize: 2, QueryWaitTimeout: 2 * time.Second},
		Load:    DjangoLoad{Users: 50, SpawnRate: 10, Duration: 25 * time.Second},
	},
	{
		Name: "login-rate-limit",
		Want: "login-rate-limit",
		About: "allauth 0.51 with a strict ACCOUNT_LOGIN_ATTEMPTS_LIMIT=3 per login name, counted in the cache before the password check (a get then a set, not atomic) and cleared after a success; " +
			"Django's default PBKDF2 hasher, 2 workers × 8 threads; 50 users on one shared account start within a second, so more than 3 logins of the account are in flight → " +
			"200 with the login page and \"Too many failed login attempts. Try again later.\"",
		Env:  map[string]string{"PASSWORD_HASHERS": djangoDefaultHashers, "ACCOUNT_LOGIN_ATTEMPTS_LIMIT": "3", "GUNICORN_THREADS": "8"},
		Load: DjangoLoad{Users: 50, SpawnRate: 50, Duration: 20 * time.Second, Accounts: 1},
	},
	{
		Name: "password-hash-cpu",
		Want: "password-hash-cpu",
		About: "PASSWORD_HASHERS starts with work.hashers.PBKDF2SHA256OneMillion (PBKDF2PasswordHasher with iterations=1,000,000) and the stored hashes have that cost: " +
			"each login hashes for about 0.6 s of CPU, more logins than 2 cores can hash → logins slow, CPU pegged, no errors.",
		Env:  map[string]string{"PASSWORD_HASHERS": djangoStrongHashers},
		Load: DjangoLoad{Users: 40, SpawnRate: 6, Duration: 25 * time.Second},
	},
	{
		Name: "redis-connection-limit",
		Want: "redis-connection-limit",
		About: "Redis maxclients=2 below the connections django-redis' pools open for 4 gunicorn workers × 4 threads (each worker keeps its own pool); sessions in Redis (cache backend): " +
			"a worker that cannot connect gets \"max number of clients reached\": Django's cache session backend swallows the refused read (the user looks logged out, redirected to the login page) " +
			"and a refused write raises redis.exceptions.ConnectionError → 500 with traceback.",
		Env:   map[string]string{"GUNICORN_WORKERS": "4"},
		Redis: RedisOptions{MaxClients: 2},
		Load:  DjangoLoad{Users: 50, SpawnRate: 10, Duration: 20 * time.Second},
	},
	{
		Name: "redis-connection-limit-ignored",
		Want: "redis-connection-limit",
		About: "As redis-connection-limit, with django-redis IGNORE_EXCEPTIONS=True: refused reads and writes return nothing, so logins are lost and users look logged out " +
			"(login 302, next page bounced to the login page); nothing in the error log.",
		Env:   map[string]string{"GUNICORN_WORKERS": "4", "REDIS_IGNORE_EXCEPTIONS": "true"},
		Redis: RedisOptions{MaxClients: 2},
		Load:  DjangoLoad{Users: 50, SpawnRate: 10, Duration: 20 * time.Second},
	},
	{
		Name: "db-lock-contention",
		Want: "db-lock-contention",
		About: "ATOMIC_REQUESTS=True in the project with the 1,000,000-iteration hasher, whose allauth adapter counts login attempts in one row per day with select_for_update: " +
			"the lock is taken before the password check and held to the end of the request's transaction, across the hash; with 2 workers × 8 threads the logins queue on the row, " +
			"one hash at a time: PostgreSQL logs \"still waiting for ShareLock on transaction\", the blocker is idle in transaction, the CPU is not saturated; no request fails, logins take seconds.",
		Env:  map[string]string{"DB_ATOMIC_REQUESTS": "true", "PASSWORD_HASHERS": djangoStrongHashers, "GUNICORN_THREADS": "8"},
		Load: DjangoLoad{Users: 30, SpawnRate: 10, Duration: 25 * time.Second},
	},
	{
		Name: "csrf-failure",
		Want: "csrf-failure",
		About: "CSRF_COOKIE_SECURE=True served over plain HTTP at " + DjangoHost + ": the client drops the Secure csrftoken cookie, " +
			"the login POST gets 403 \"CSRF verification failed\", logged as Forbidden (CSRF cookie not set.).",
		Env:  map[string]string{"CSRF_COOKIE_SECURE": "true"},
		Load: DjangoLoad{Users: 20, SpawnRate: 5, Duration: 15 * time.Second},
	},
	{
		Name: "session-lost",
		Want: "session-lost",
		About: "SESSION_COOKIE_SECURE=True served over plain HTTP at " + DjangoHost + ": the login answers 302 with a Secure sessionid the client drops, " +
			"the next page redirects to /accounts/login/; nothing is logged as an error.",
		Env:  map[string]string{"SESSION_COOKIE_SECURE": "true"},
		Load: DjangoLoad{Users: 20, SpawnRate: 5, Duration: 15 * time.Second},
	},
	{
		Name: "slow-query",
		Want: "slow-query",
		About: "DROP INDEX work_analysis_item_idx: the recap's two subqueries per work item on work_analysis (300,000 rows) become sequential scans, about 2 s a page; " +
			"PostgreSQL's log_min_duration_statement names the recap's statement, the other pages stay fast.",
		DropRecapIndex: true,
		Load:           DjangoLoad{Users: 20, SpawnRate: 5, Duration: 25 * time.Second},
	},
}

// DjangoModes returns the modes of the Django target, healthy first.
func DjangoModes() []DjangoMode {
	out := make([]DjangoMode, len(djangoModes))
	copy(out, djangoModes)
	return out
}

// LookupDjangoMode returns the mode called name; "" is healthy.
func LookupDjangoMode(name string) (DjangoMode, error) {
	if name == "" {
		name = "healthy"
	}
	var names []string
	for _, m := range djangoModes {
		if m.Name == name {
			return m, nil
		}
		names = append(names, m.Name)
	}
	return DjangoMode{}, fmt.Errorf("django: unknown mode %q (modes: %s)", name, strings.Join(names, ", "))
}

// DjangoFile returns a file of the Django project (testdata/django), e.g.
// "scenario.yaml" or "locustfile.py".
func DjangoFile(name string) ([]byte, error) {
	return djangoFiles.ReadFile("testdata/django/" + name)
}

// DjangoInstalled reports whether Debian's python3-django, allauth,
// django-redis, psycopg2 and gunicorn are there; the error wraps
// ErrNotInstalled.
func DjangoInstalled() error {
	const hint = "apt-get install python3-django python3-django-allauth python3-django-redis python3-psycopg2 gunicorn"
	for _, p := range []string{djangoPython, djangoGunicorn} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("django: %s: %w (%s)", p, ErrNotInstalled, hint)
		}
	}
	cmd := exec.Command(djangoPython, "-c", "import django, allauth, django_redis, psycopg2, redis, gunicorn")
	cmd.Env = pythonEnv(nil)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("django: python modules: %w (%s): %s", ErrNotInstalled, hint, lastLines(string(out), 3))
	}
	return nil
}

// DjangoDBOptions configures StartDjangoDB. The zero value is valid.
type DjangoDBOptions struct {
	// Dir is where postgresql.log goes; empty means a private directory.
	Dir string
	// Users, ItemsPerUser and LinesPerItem size the seed; 0 means 200
	// users, 20 work items each and 75 analysis lines per item (300,000
	// rows in work_analysis).
	Users, ItemsPerUser, LinesPerItem int
	// SlowStatement sets log_min_duration_statement; 0 means 200 ms.
	SlowStatement time.Duration
	// DeadlockTimeout sets deadlock_timeout, after which log_lock_waits
	// logs a wait; 0 means 200 ms. PostgreSQL's default (1 s) logs only
	// waits on one lock longer than that, and a queue on a hot row is made
	// of shorter waits, one per holder ahead.
	DeadlockTimeout time.Duration
}

// DjangoDB is PostgreSQL with the Django project's schema and seed, which
// several Django targets (one per mode) can share in turn: migrations and
// bulk data are made once.
type DjangoDB struct {
	// PG is the server: log_lock_waits=on with deadlock_timeout 200 ms,
	// log_min_duration_statement 200 ms, timestamps in the log
	// (log_line_prefix '%m [%p] %q%u@%d ').
	PG *PG
	// Users is the number of seeded users (user001, user002, ...).
	Users int

	project string // the extracted project directory
	closer  closer
}

// Close stops PostgreSQL and removes the extracted project. It is safe to
// call more than once.
func (db *DjangoDB) Close() error { return db.closer.close() }

// StartDjangoDB starts PostgreSQL, extracts the Django project, runs its
// migrations and seeds it. The caller must Close it, after the targets
// using it.
func StartDjangoDB(ctx context.Context, opts DjangoDBOptions) (_ *DjangoDB, err error) {
	if err := DjangoInstalled(); err != nil {
		return nil, err
	}
	db := &DjangoDB{Users: orInt(opts.Users, 200)}
	defer func() {
		if err != nil {
			db.Close()
		}
	}()
	if db.project, err = extractDjango(); err != nil {
		return nil, err
	}
	project := db.project
	db.closer.add(func() error { return os.RemoveAll(project) })
	slow := opts.SlowStatement
	if slow <= 0 {
		slow = 200 * time.Millisecond
	}
	deadlock := opts.DeadlockTimeout
	if deadlock <= 0 {
		deadlock = 200 * time.Millisecond
	}
	db.PG, err = StartPostgres(ctx, PGOptions{
		Dir:             opts.Dir,
		LogLockWaits:    true,
		DeadlockTimeout: deadlock,
		Settings: map[string]string{
			"log_min_duration_statement": strconv.FormatInt(slow.Milliseconds(), 10) + "ms",
			"log_timezone":               "UTC",
		},
	})
	if err != nil {
		return nil, err
	}
	db.closer.add(db.PG.Close)
	env := djangoDirectEnv(db.PG, djangoBaseEnv)
	if err := db.manage(ctx, env, "migrate", "--noinput"); err != nil {
		return nil, err
	}
	err = db.manage(ctx, env, "seed", "--password", DjangoPassword,
		"--users", strconv.Itoa(db.Users),
		"--items", strconv.Itoa(orInt(opts.ItemsPerUser, 20)),
		"--lines", strconv.Itoa(orInt(opts.LinesPerItem, 75)))
	if err != nil {
		return nil, err
	}
	return db, nil
}

// manage runs manage.py with env, failing with the tail of its output.
func (db *DjangoDB) manage(ctx context.Context, env map[string]string, args ...string) error {
	cmd := exec.CommandContext(ctx, djangoPython, append([]string{"manage.py"}, args...)...)
	cmd.Dir = db.project
	cmd.Env = pythonEnv(env)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("django: manage.py %s: %w:\n%s", args[0], err, lastLines(string(out), 30))
	}
	return nil
}

// djangoDirectEnv is env with the database set to pg itself (not the
// bouncer), for migrations and seeding.
func djangoDirectEnv(pg *PG, env map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range env {
		out[k] = v
	}
	out["DB_HOST"], out["DB_PORT"] = pg.Host, strconv.Itoa(pg.Port)
	out["DB_NAME"], out["DB_USER"], out["DB_PASSWORD"] = pg.Database, pg.User, pg.Password
	out["DB_CONN_MAX_AGE"], out["DB_ATOMIC_REQUESTS"] = "0", "false"
	// Migrations need no cache; a dead Redis URL makes sure none is used.
	out["REDIS_URL"] = "redis://127.0.0.1:1/1"
	out["DJANGO_ERRORS_LOG"] = os.DevNull
	return out
}

// pythonEnv is a clean environment for Debian's python: no PYTHON* of a
// pyenv on PATH, no bytecode written into the project.
func pythonEnv(env map[string]string) []string {
	out := []string{
		"PATH=/usr/bin:/bin",
		"LANG=C.UTF-8",
		"PYTHONDONTWRITEBYTECODE=1",
		"DJANGO_SETTINGS_MODULE=reftarget.settings",
	}
	if t := os.Getenv("TMPDIR"); t != "" {
		out = append(out, "TMPDIR="+t)
	}
	for _, k := range sortedKeys(env) {
		out = append(out, k+"="+env[k])
	}
	return out
}

// extractDjango copies the embedded project to a new temporary directory.
func extractDjango() (string, error) {
	dir, err := os.MkdirTemp("", "stampede-django-")
	if err != nil {
		return "", fmt.Errorf("django: %w", err)
	}
	const root = "testdata/django"
	err = fs.WalkDir(djangoFiles, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, root), "/")
		if strings.Contains(p, "__pycache__") {
			return nil
		}
		dst := filepath.Join(dir, filepath.FromSlash(rel))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := djangoFiles.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("django: extract project: %w", err)
	}
	return dir, nil
}

// DjangoOptions configures StartDjango. The zero value is valid: the
// healthy mode on its own PostgreSQL, logs in a private directory.
type DjangoOptions struct {
	// Mode names a DjangoModes mode; empty means healthy.
	Mode string
	// DB is a seeded PostgreSQL to use; nil means StartDjango starts one
	// (and Close stops it).
	DB *DjangoDB
	// Dir receives the logs: errors.log, access.log, gunicorn.log,
	// pgbouncer.log, redis.log (and postgresql.log when the DB is started
	// here). Empty means a private directory removed by Close.
	Dir string
	// Env overrides settings of the mode (see DjangoMode.Env).
	Env map[string]string
}

// Django is a running Django target: gunicorn serving the project, with
// PgBouncer and Redis started for its mode.
type Django struct {
	// Config is the mode it runs in.
	Config DjangoMode
	// URL is http://127.0.0.1:PORT; NamedURL is http://DjangoHost:PORT,
	// for clients that resolve DjangoHost to 127.0.0.1.
	URL, NamedURL string
	// Port is gunicorn's port.
	Port int
	// PID is the gunicorn master's process id.
	PID int
	// ErrorsLog is Django's errors log (django.request at ERROR with
	// tracebacks, django.security.csrf at WARNING); AccessLog gunicorn's
	// access log (request time in seconds last); GunicornLog gunicorn's
	// error log; PgBouncerLog, RedisLog and PostgresLog the servers' logs.
	ErrorsLog, AccessLog, GunicornLog, PgBouncerLog, RedisLog, PostgresLog string
	// PostgresDSN is the superuser's DSN to the application database, for
	// stampede's PostgreSQL probe; PgBouncerDSN the admin console's
	// stats user; RedisURL the Redis server (database 0). Passwords
	// included.
	PostgresDSN, PgBouncerDSN, RedisURL string
	// DB, Bouncer and Redis are the servers behind it.
	DB      *DjangoDB
	Bouncer *Bouncer
	Redis   *RedisServer

	closer closer
}

// Close stops gunicorn, Redis and PgBouncer (and PostgreSQL when
// StartDjango started it), by their process ids. It is safe to call more
// than once.
func (d *Django) Close() error { return d.closer.close() }

// Logs returns the logs by the names stampede's --log flags give them.
func (d *Django) Logs() [][2]string {
	return [][2]string{
		{"app-errors", d.ErrorsLog}, {"access", d.AccessLog}, {"gunicorn", d.GunicornLog},
		{"pgbouncer", d.PgBouncerLog}, {"postgres", d.PostgresLog},
	}
}

// StartDjango starts the Django target in opts.Mode: PgBouncer and Redis as
// the mode configures them, the seeded users' password stored with the
// mode's hasher, the recap's index dropped or restored, then gunicorn; it
// returns once /accounts/login/ answers 200. The caller must Close it.
func StartDjango(ctx context.Context, opts DjangoOptions) (_ *Django, err error) {
	mode, err := LookupDjangoMode(opts.Mode)
	if err != nil {
		return nil, err
	}
	if err := DjangoInstalled(); err != nil {
		return nil, err
	}
	d := &Django{Config: mode, DB: opts.DB}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	dir := opts.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "stampede-django-logs-"); err != nil {
			return nil, fmt.Errorf("django: %w", err)
		}
		tmp := dir
		d.closer.add(func() error { return os.RemoveAll(tmp) })
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("django: %w", err)
	}
	if d.DB == nil {
		if d.DB, err = StartDjangoDB(ctx, DjangoDBOptions{Dir: dir}); err != nil {
			return nil, err
		}
		d.closer.add(d.DB.Close)
	}
	pg := d.DB.PG
	d.PostgresLog, d.PostgresDSN = pg.LogPath, pg.SuperDSN()

	bo := mode.Bouncer
	bo.Dir = dir
	if d.Bouncer, err = StartPgBouncer(ctx, pg, bo); err != nil {
		return nil, err
	}
	d.closer.add(d.Bouncer.Close)
	d.PgBouncerLog, d.PgBouncerDSN = d.Bouncer.LogPath, d.Bouncer.StatsDSN()
	ro := mode.Redis
	ro.Dir = dir
	if d.Redis, err = StartRedis(ctx, ro); err != nil {
		return nil, err
	}
	d.closer.add(d.Redis.Close)
	d.RedisLog, d.RedisURL = d.Redis.LogPath, d.Redis.URL()

	env := map[string]string{}
	for _, m := range []map[string]string{djangoBaseEnv, mode.Env, opts.Env} {
		for k, v := range m {
			env[k] = v
		}
	}
	// The password again, hashed with this mode's first hasher; the
	// recap's index as the mode wants it.
	if err := d.DB.manage(ctx, djangoDirectEnv(pg, env), "seed", "--passwords-only", "--password", DjangoPassword); err != nil {
		return nil, err
	}
	if err := d.DB.recapIndex(ctx, !mode.DropRecapIndex); err != nil {
		return nil, err
	}

	d.ErrorsLog = filepath.Join(dir, "errors.log")
	d.AccessLog = filepath.Join(dir, "access.log")
	d.GunicornLog = filepath.Join(dir, "gunicorn.log")
	// The logs exist before the first line, so a run can follow them
	// from its start.
	for _, p := range []string{d.ErrorsLog, d.AccessLog, d.GunicornLog} {
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("django: %w", err)
		}
		f.Close()
	}
	env["DB_HOST"], env["DB_PORT"] = d.Bouncer.Host, strconv.Itoa(d.Bouncer.Port)
	env["DB_NAME"], env["DB_USER"], env["DB_PASSWORD"] = d.Bouncer.Database, d.Bouncer.User, d.Bouncer.Password
	env["REDIS_URL"] = "redis://" + d.Redis.Addr() + "/1"
	env["DJANGO_ALLOWED_HOSTS"] = "127.0.0.1,localhost," + DjangoHost
	env["DJANGO_ERRORS_LOG"] = d.ErrorsLog
	env["GUNICORN_ERROR_LOG"] = d.GunicornLog
	env["GUNICORN_ACCESS_LOG"] = d.AccessLog

	me := osUser{uid: os.Getuid(), gid: os.Getgid()}
	err = retryBind(func() error {
		port, err := FreePort()
		if err != nil {
			return err
		}
		d.Port = port
		env["GUNICORN_BIND"] = "127.0.0.1:" + strconv.Itoa(port)
		// gunicorn.out catches what is printed before gunicorn's own
		// logging starts; the startup error messages are in its error log.
		proc, err := startProcessEnv("gunicorn", me, filepath.Join(dir, "gunicorn.out"), pythonEnv(env), djangoGunicorn,
			"--config", filepath.Join(d.DB.project, "gunicorn.conf.py"), "--chdir", d.DB.project)
		if err != nil {
			return err
		}
		proc.logPath = d.GunicornLog
		url := "http://127.0.0.1:" + strconv.Itoa(port) + "/accounts/login/"
		err = proc.waitReady(ctx, func(ctx context.Context) error { return getOK(ctx, url) })
		if err != nil {
			proc.stop(syscall.SIGKILL, 5*time.Second)
			return err
		}
		d.PID = proc.PID()
		d.closer.add(func() error { return stopGunicorn(proc) })
		return nil
	}, func(err error) bool { return bindErr(err) || strings.Contains(err.Error(), "Connection in use") })
	if err != nil {
		return nil, fmt.Errorf("django: %w", err)
	}
	d.URL = "http://127.0.0.1:" + strconv.Itoa(d.Port)
	d.NamedURL = "http://" + net.JoinHostPort(DjangoHost, strconv.Itoa(d.Port))
	return d, nil
}

// stopGunicorn stops the master with SIGINT, gunicorn's quick shutdown
// (workers get SIGQUIT). A worker thread stuck in a request can keep its
// worker from exiting; after 10 s the master and its workers, which share
// the process group the master was started in, are killed.
func stopGunicorn(p *process) error {
	pgid := p.PID()
	if err := p.stop(syscall.SIGINT, 10*time.Second); err != nil {
		// The master was killed; its workers are still in its group.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	return nil
}

// getOK GETs url and wants a 200.
func getOK(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// recapIndex creates the recap's index if missing (on) or drops it (off).
func (db *DjangoDB) recapIndex(ctx context.Context, on bool) error {
	c, err := pgx.Connect(ctx, db.PG.DSN())
	if err != nil {
		return fmt.Errorf("django: %w", err)
	}
	defer c.Close(ctx)
	sql := "DROP INDEX IF EXISTS " + djangoRecapIndex
	if on {
		sql = "CREATE INDEX IF NOT EXISTS " + djangoRecapIndex + " ON work_analysis (work_item_id)"
	}
	if _, err := c.Exec(ctx, sql); err != nil {
		return fmt.Errorf("django: %s: %w", sql, err)
	}
	return nil
}

func orInt(n, def int) int {
	if n == 0 {
		return def
	}
	return n
}

// WriteUsers writes a users file for stampede or Locust to path: a header
// "username,password" and the first n seeded users (all of them when n is
// 0 or too large).
func (d *Django) WriteUsers(path string, n int) error {
	if n <= 0 || n > d.DB.Users {
		n = d.DB.Users
	}
	var b strings.Builder
	b.WriteString("username,password\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "user%03d,%s\n", i, DjangoPassword)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("django: users file: %w", err)
	}
	return nil
}

// WriteScenario writes the target's stampede scenario (testdata/django/
// scenario.yaml) into dir with the users file it names: as many accounts as
// the mode's load uses, shared round-robin when there are fewer accounts
// than users. It returns the scenario's path.
func (d *Django) WriteScenario(dir string) (string, error) {
	sc, err := DjangoFile("scenario.yaml")
	if err != nil {
		return "", fmt.Errorf("django: %w", err)
	}
	l := d.Config.Load
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
		if d.Config.Want == "" && strings.Contains(line, `"p95 < 500ms"`) {
			lines[i] = strings.Replace(line, `, "p95 < 500ms"`, "", 1)
		}
	}
	if !found {
		return "", fmt.Errorf("django: scenario.yaml has no user_assignment line")
	}
	if err := d.WriteUsers(filepath.Join(dir, "users.csv"), accounts); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "scenario.yaml")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		return "", fmt.Errorf("django: scenario: %w", err)
	}
	return path, nil
}

// RunArgs returns the arguments of "stampede run" for the scenario at path
// against this target in its mode: the mode's load, the target at NamedURL
// resolved to 127.0.0.1, the three probes, gunicorn's master PID and every
// log.
func (d *Django) RunArgs(scenario string) []string {
	l := d.Config.Load
	args := []string{"run", scenario,
		"--url", d.NamedURL, "--resolve", DjangoHost + "=127.0.0.1",
		"-u", strconv.Itoa(l.Users), "-r", strconv.FormatFloat(l.SpawnRate, 'f', -1, 64), "-t", l.Duration.String(),
		"--probe-postgres", d.PostgresDSN, "--probe-pgbouncer", d.PgBouncerDSN, "--probe-redis", d.RedisURL,
		"--pid", strconv.Itoa(d.PID),
	}
	for _, l := range d.Logs() {
		args = append(args, "--log", l[0]+"="+l[1])
	}
	return args
}

// DjangoDatabase starts a seeded PostgreSQL for Django targets of the test
// and stops it in t.Cleanup. At most one DjangoDBOptions is used. When
// Debian's Django packages or the servers are missing the test is skipped,
// or failed when the environment has CI=true.
func DjangoDatabase(t testing.TB, opts ...DjangoDBOptions) *DjangoDB {
	t.Helper()
	var o DjangoDBOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*startTimeout)
	defer cancel()
	db, err := StartDjangoDB(ctx, o)
	check(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tail of %s:\n%s", db.PG.LogPath, clipLines(Tail(db.PG.LogPath, 20), 200))
		}
		if err := db.Close(); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	return db
}

// DjangoTarget starts the Django target for the test and stops it in
// t.Cleanup; like DjangoDatabase, missing packages skip the test, or fail
// it under CI=true.
func DjangoTarget(t testing.TB, opts DjangoOptions) *Django {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*startTimeout)
	defer cancel()
	d, err := StartDjango(ctx, opts)
	check(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range []string{d.GunicornLog, d.ErrorsLog} {
				t.Logf("tail of %s:\n%s", p, clipLines(Tail(p, 20), 200))
			}
		}
		if err := d.Close(); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	return d
}

// clipLines cuts the lines of s to n bytes (PostgreSQL logs whole
// statements).
func clipLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if len(l) > n {
			lines[i] = l[:n] + "…"
		}
	}
	return strings.Join(lines, "\n")
}
