package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// BouncerOptions configures StartPgBouncer. The zero value is valid:
// PgBouncer's defaults (session pooling, pool size 20, 120 s queue wait).
type BouncerOptions struct {
	// PoolMode is session, transaction or statement; empty means session.
	PoolMode string
	// DefaultPoolSize sets default_pool_size; 0 keeps the default (20).
	DefaultPoolSize int
	// ReservePoolSize sets reserve_pool_size; 0 keeps the default (0).
	ReservePoolSize int
	// QueryWaitTimeout sets query_wait_timeout, rounded up to whole
	// seconds; 0 keeps the default (120 s). Use Settings to disable it ("0").
	QueryWaitTimeout time.Duration
	// MaxClientConn sets max_client_conn; 0 keeps the default (100).
	MaxClientConn int
	// Settings are further [pgbouncer] settings (name → value), written
	// after the ones above.
	Settings map[string]string
	// Dir is where the log file goes; empty means the bouncer's private
	// temporary directory, removed by Close.
	Dir string
}

// Bouncer is a running PgBouncer in front of a PG.
type Bouncer struct {
	// Host is always 127.0.0.1.
	Host string
	// Port is the TCP port.
	Port int
	// Database is the pooled database's name (the PG's application
	// database); User and Password are the application's.
	Database, User, Password string
	// AdminUser (in admin_users) and StatsUser (in stats_users) may use the
	// admin console; their passwords are AdminPassword and StatsPassword.
	AdminUser, AdminPassword, StatsUser, StatsPassword string
	// ConfigPath is the generated pgbouncer.ini.
	ConfigPath string
	// LogPath is PgBouncer's log.
	LogPath string
	// PID is the process id.
	PID int

	d      daemon
	closer closer
}

// DSN returns the application's connection URL through the bouncer,
// password included.
func (b *Bouncer) DSN() string { return pgURL(b.User, b.Password, b.Host, b.Port, b.Database) }

// AdminDSN returns the admin console's URL (database "pgbouncer", an
// admin_users user), in simple-protocol mode as the console requires.
func (b *Bouncer) AdminDSN() string {
	return pgURL(b.AdminUser, b.AdminPassword, b.Host, b.Port, "pgbouncer") + "&default_query_exec_mode=simple_protocol"
}

// StatsDSN is like AdminDSN for the read-only stats_users user.
func (b *Bouncer) StatsDSN() string {
	return pgURL(b.StatsUser, b.StatsPassword, b.Host, b.Port, "pgbouncer") + "&default_query_exec_mode=simple_protocol"
}

// Addr returns host:port.
func (b *Bouncer) Addr() string { return net.JoinHostPort(b.Host, strconv.Itoa(b.Port)) }

// Close stops PgBouncer and removes its private directory. It is safe to
// call more than once.
func (b *Bouncer) Close() error { return b.closer.close() }

// Kill kills PgBouncer with SIGKILL, as a crash or the OOM killer would:
// every client and server connection drops at once. It waits until the
// process has exited. Restart starts it again.
func (b *Bouncer) Kill() error { return b.d.signal(syscall.SIGKILL, 10*time.Second) }

// Restart starts PgBouncer again after Kill, on the same port with the same
// configuration, appending to the same log, and waits until its admin
// console answers. PID is the new process's.
func (b *Bouncer) Restart(ctx context.Context) error {
	pid, err := b.d.restart(ctx)
	if err != nil {
		return fmt.Errorf("pgbouncer: %w", err)
	}
	b.PID = pid
	return nil
}

// StartPgBouncer starts PgBouncer on a free loopback port, pooling pg's
// application database with auth_type=md5. The caller must Close it before
// closing pg.
func StartPgBouncer(ctx context.Context, pg *PG, opts BouncerOptions) (_ *Bouncer, err error) {
	bin, err := findBinary("pgbouncer", "/usr/sbin", "/usr/local/sbin", "/usr/local/bin")
	if err != nil {
		return nil, err
	}
	// PgBouncer refuses to run as root (without -u); run it as postgres.
	u, err := serverUser()
	if err != nil {
		return nil, fmt.Errorf("pgbouncer: %w", err)
	}
	b := &Bouncer{
		Host: "127.0.0.1", Database: pg.Database, User: pg.User, Password: pg.Password,
		AdminUser: "admin", AdminPassword: "admin-secret",
		StatsUser: "stats", StatsPassword: "stats-secret",
	}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	priv, err := privateDir("stampede-pgbouncer-", u)
	if err != nil {
		return nil, fmt.Errorf("pgbouncer: %w", err)
	}
	b.closer.add(func() error { return os.RemoveAll(priv) })
	logs, err := logDir(opts.Dir, priv)
	if err != nil {
		return nil, fmt.Errorf("pgbouncer: %w", err)
	}
	// PgBouncer logs to stderr in the same format as to a logfile; the
	// stderr file is opened here, so the server user needs no access to Dir.
	b.LogPath = filepath.Join(logs, "pgbouncer.log")
	b.ConfigPath = filepath.Join(priv, "pgbouncer.ini")
	userlist := filepath.Join(priv, "userlist.txt")
	var ul strings.Builder
	for _, up := range [][2]string{{b.User, b.Password}, {b.AdminUser, b.AdminPassword}, {b.StatsUser, b.StatsPassword}} {
		fmt.Fprintf(&ul, "%q %q\n", up[0], up[1])
	}
	if err := writeOwned(userlist, ul.String(), u); err != nil {
		return nil, fmt.Errorf("pgbouncer: %w", err)
	}

	err = retryBind(func() error {
		port, err := FreePort()
		if err != nil {
			return err
		}
		b.Port = port
		if err := writeOwned(b.ConfigPath, bouncerINI(b, pg, priv, userlist, opts), u); err != nil {
			return err
		}
		proc, err := startProcess("pgbouncer", u, b.LogPath, bin, b.ConfigPath)
		if err != nil {
			return err
		}
		b.d.ready = func(ctx context.Context) error {
			c, err := pgx.Connect(ctx, b.StatsDSN())
			if err != nil {
				return err
			}
			defer c.Close(ctx)
			_, err = c.Exec(ctx, "SHOW VERSION")
			return err
		}
		if err := proc.waitReady(ctx, b.d.ready); err != nil {
			proc.stop(syscall.SIGKILL, 5*time.Second)
			return err
		}
		b.d.proc = proc
		b.PID = proc.PID()
		// SIGINT is PgBouncer's safe shutdown (waits for clients); SIGTERM
		// exits at once, which is what a test's cleanup wants.
		b.closer.add(func() error { return b.d.signal(syscall.SIGTERM, 10*time.Second) })
		return nil
	}, bindErr)
	if err != nil {
		return nil, fmt.Errorf("pgbouncer: %w", err)
	}
	return b, nil
}

func bouncerINI(b *Bouncer, pg *PG, priv, userlist string, o BouncerOptions) string {
	var s strings.Builder
	fmt.Fprintf(&s, "[databases]\n%s = host=%s port=%d dbname=%s\n\n[pgbouncer]\n", b.Database, pg.Host, pg.Port, pg.Database)
	set := func(k string, v any) { fmt.Fprintf(&s, "%s = %v\n", k, v) }
	set("listen_addr", b.Host)
	set("listen_port", b.Port)
	set("unix_socket_dir", priv)
	set("pidfile", filepath.Join(priv, "pgbouncer.pid"))
	set("auth_type", "md5")
	set("auth_file", userlist)
	set("admin_users", b.AdminUser)
	set("stats_users", b.StatsUser)
	set("ignore_startup_parameters", "extra_float_digits")
	set("pool_mode", or(o.PoolMode, "session"))
	if o.DefaultPoolSize > 0 {
		set("default_pool_size", o.DefaultPoolSize)
	}
	if o.ReservePoolSize > 0 {
		set("reserve_pool_size", o.ReservePoolSize)
	}
	if o.QueryWaitTimeout > 0 {
		set("query_wait_timeout", int((o.QueryWaitTimeout+time.Second-1)/time.Second))
	}
	if o.MaxClientConn > 0 {
		set("max_client_conn", o.MaxClientConn)
	}
	for _, k := range sortedKeys(o.Settings) {
		set(k, o.Settings[k])
	}
	return s.String()
}

func writeOwned(path, content string, u osUser) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return err
	}
	if u.cred != nil {
		return os.Chown(path, u.uid, u.gid)
	}
	return nil
}
