package testenv

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// PGOptions configures StartPostgres. The zero value is valid: a server with
// PostgreSQL's defaults, a database "app" owned by the user "app".
type PGOptions struct {
	// MaxConnections sets max_connections; 0 keeps the default (100).
	MaxConnections int
	// LogLockWaits sets log_lock_waits=on, so lock waits longer than
	// DeadlockTimeout are logged.
	LogLockWaits bool
	// DeadlockTimeout sets deadlock_timeout; 0 keeps the default (1s).
	DeadlockTimeout time.Duration
	// Settings are further server settings (name → value), passed as -c
	// name=value after the ones above, so they win.
	Settings map[string]string
	// Database, User and Password name the application database and its
	// owner; empty means "app", "app" and "app-secret".
	Database, User, Password string
	// Dir is where the log file goes; empty means the server's private
	// temporary directory, removed by Close.
	Dir string
}

// PG is a running PostgreSQL server.
type PG struct {
	// Host is always 127.0.0.1.
	Host string
	// Port is the TCP port.
	Port int
	// Database, User and Password are the application's.
	Database, User, Password string
	// SuperUser and SuperPassword are the bootstrap superuser's.
	SuperUser, SuperPassword string
	// SocketDir holds the Unix socket.
	SocketDir string
	// DataDir is the cluster's data directory.
	DataDir string
	// LogPath is the server's log (stderr, log_line_prefix '%m [%p] %q%u@%d ').
	LogPath string
	// PID is the postmaster's process id.
	PID int

	d      daemon
	closer closer
}

// DSN returns the application user's connection URL, password included.
func (p *PG) DSN() string { return pgURL(p.User, p.Password, p.Host, p.Port, p.Database) }

// SuperDSN returns the superuser's connection URL to the application
// database, password included.
func (p *PG) SuperDSN() string {
	return pgURL(p.SuperUser, p.SuperPassword, p.Host, p.Port, p.Database)
}

// Addr returns host:port.
func (p *PG) Addr() string { return net.JoinHostPort(p.Host, strconv.Itoa(p.Port)) }

// Close stops the server (fast shutdown) and removes its data directory.
// It is safe to call more than once.
func (p *PG) Close() error { return p.closer.close() }

func pgURL(user, password, host string, port int, db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(user, password),
		Host:     net.JoinHostPort(host, strconv.Itoa(port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// StartPostgres runs initdb into a private temporary directory, starts
// postgres on a free loopback port and creates the application role and
// database. The caller must Close it.
func StartPostgres(ctx context.Context, opts PGOptions) (_ *PG, err error) {
	bin, err := pgBinDir()
	if err != nil {
		return nil, err
	}
	u, err := serverUser()
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	p := &PG{
		Host:          "127.0.0.1",
		Database:      or(opts.Database, "app"),
		User:          or(opts.User, "app"),
		Password:      or(opts.Password, "app-secret"),
		SuperUser:     "postgres",
		SuperPassword: "postgres-secret",
	}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	priv, err := privateDir("stampede-pg-", u)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	p.closer.add(func() error { return os.RemoveAll(priv) })
	p.DataDir = filepath.Join(priv, "data")
	p.SocketDir = priv
	logs, err := logDir(opts.Dir, priv)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	p.LogPath = filepath.Join(logs, "postgresql.log")

	pwfile := filepath.Join(priv, "pwfile")
	if err := os.WriteFile(pwfile, []byte(p.SuperPassword+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if u.cred != nil {
		if err := os.Chown(pwfile, u.uid, u.gid); err != nil {
			return nil, fmt.Errorf("postgres: %w", err)
		}
	}
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
		"-D", p.DataDir, "-U", p.SuperUser, "--pwfile", pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256",
		"-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: u.cred}
	initdb.Dir = priv
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("postgres: initdb: %w:\n%s", err, lastLines(string(out), 20))
	}
	os.Remove(pwfile)

	err = retryBind(func() error {
		port, err := FreePort()
		if err != nil {
			return err
		}
		p.Port = port
		args := []string{"-D", p.DataDir, "-p", strconv.Itoa(port), "-k", p.SocketDir,
			"-c", "listen_addresses=127.0.0.1",
			"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
			"-c", "log_line_prefix=%m [%p] %q%u@%d ",
		}
		if opts.MaxConnections > 0 {
			args = append(args, "-c", "max_connections="+strconv.Itoa(opts.MaxConnections))
		}
		if opts.LogLockWaits {
			args = append(args, "-c", "log_lock_waits=on")
		}
		if opts.DeadlockTimeout > 0 {
			args = append(args, "-c", "deadlock_timeout="+strconv.FormatInt(opts.DeadlockTimeout.Milliseconds(), 10)+"ms")
		}
		for _, k := range sortedKeys(opts.Settings) {
			args = append(args, "-c", k+"="+opts.Settings[k])
		}
		proc, err := startProcess("postgres", u, p.LogPath, filepath.Join(bin, "postgres"), args...)
		if err != nil {
			return err
		}
		p.d.ready = func(ctx context.Context) error {
			c, err := pgx.Connect(ctx, p.superAdminDSN())
			if err != nil {
				return err
			}
			return c.Close(ctx)
		}
		if err := proc.waitReady(ctx, p.d.ready); err != nil {
			proc.stop(syscall.SIGQUIT, 5*time.Second)
			return err
		}
		p.d.proc = proc
		p.PID = proc.PID()
		// SIGINT is PostgreSQL's fast shutdown: roll back and exit.
		p.closer.add(func() error { return p.d.signal(syscall.SIGINT, 15*time.Second) })
		return nil
	}, bindErr)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := p.createApp(ctx); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return p, nil
}

// Stop shuts the server down as "pg_ctl stop -m fast" does (SIGINT: roll
// back open transactions, disconnect every client, checkpoint, exit) and
// waits until it has exited. Restart starts it again.
func (p *PG) Stop() error { return p.d.signal(syscall.SIGINT, 15*time.Second) }

// Restart starts the server again after Stop, on the same port with the
// same data directory and settings, appending to the same log, and waits
// until it accepts connections. PID is the new postmaster's.
func (p *PG) Restart(ctx context.Context) error {
	pid, err := p.d.restart(ctx)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	p.PID = pid
	return nil
}

// superAdminDSN connects as the superuser to the "postgres" database.
func (p *PG) superAdminDSN() string {
	return pgURL(p.SuperUser, p.SuperPassword, p.Host, p.Port, "postgres")
}

func (p *PG) createApp(ctx context.Context) error {
	c, err := pgx.Connect(ctx, p.superAdminDSN())
	if err != nil {
		return fmt.Errorf("connect as superuser: %w", err)
	}
	defer c.Close(ctx)
	role := pgx.Identifier{p.User}.Sanitize()
	pw := "'" + strings.ReplaceAll(p.Password, "'", "''") + "'"
	if _, err := c.Exec(ctx, "CREATE ROLE "+role+" LOGIN PASSWORD "+pw); err != nil {
		return fmt.Errorf("create role %s: %w", p.User, err)
	}
	if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{p.Database}.Sanitize()+" OWNER "+role); err != nil {
		return fmt.Errorf("create database %s: %w", p.Database, err)
	}
	return nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
