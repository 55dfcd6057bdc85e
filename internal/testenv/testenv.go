// Package testenv starts throwaway PostgreSQL, PgBouncer and Redis servers on
// free loopback ports, for integration tests and benchmark scripts, and real
// reference targets of several stacks on top of them, each in a healthy or a
// faulty configuration made of settings only: Django (Debian's Django,
// allauth and gunicorn serving testdata/django), Rails (Devise and Puma,
// testdata/rails), Flask (uWSGI behind nginx, testdata/flask) and Node
// (Express, testdata/node). Target, Starter and ModeInfo (target.go) are
// what every stack offers the end-to-end harness, scripts/accuracy and
// cmd/reftarget.
//
// Tests use Postgres, PgBouncer, Redis, DjangoDatabase and DjangoTarget,
// which skip the test when a server binary or package is missing (or fail it
// when CI=true) and stop the servers in t.Cleanup. Programs use
// StartPostgres, StartPgBouncer, StartRedis, Start, StartDjangoDB or
// StartDjango and call Close themselves.
//
// Every server listens on 127.0.0.1 only, keeps its data in a private
// temporary directory that Close removes, and writes its log to LogPath. When
// the process runs as root, PostgreSQL and PgBouncer (which both refuse root)
// run as the "postgres" OS user.
package testenv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrNotInstalled is returned (wrapped) when a server binary cannot be
// found. The test helpers turn it into t.Skip, or t.Fatal when CI=true.
var ErrNotInstalled = errors.New("not installed")

// startTimeout bounds how long the test helpers wait for a server to start.
// The machine may be shared and slow, so it is generous.
const startTimeout = 60 * time.Second

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago: it
// listens on port 0, takes the port the kernel chose and closes the
// listener. Another process may take it in between; the Start functions
// retry with a new port when a server fails to bind.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	return port, nil
}

// findBinary looks for name in $PATH, then in the given directories.
func findBinary(name string, dirs ...string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w (install it, e.g. apt-get install %s)", name, ErrNotInstalled, debianPackage(name))
}

func debianPackage(bin string) string {
	switch bin {
	case "pgbouncer":
		return "pgbouncer"
	case "redis-server":
		return "redis-server"
	default:
		return "postgresql"
	}
}

// pgBinDir returns the directory holding initdb and postgres: $PG_BIN when
// set, the directory of initdb in $PATH, or the newest
// /usr/lib/postgresql/*/bin (Debian keeps them out of $PATH).
func pgBinDir() (string, error) {
	if d := os.Getenv("PG_BIN"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			return "", fmt.Errorf("PG_BIN=%s: initdb: %w", d, ErrNotInstalled)
		}
		return d, nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("postgresql initdb: %w (install postgresql, or set PG_BIN)", ErrNotInstalled)
}

func pgMajor(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// osUser is whom PostgreSQL and PgBouncer run as.
type osUser struct {
	cred *syscall.Credential // nil: the current user
	uid  int
	gid  int
}

// serverUser returns the "postgres" OS user when running as root, and the
// current user otherwise.
func serverUser() (osUser, error) {
	if os.Geteuid() != 0 {
		return osUser{uid: os.Getuid(), gid: os.Getgid()}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return osUser{}, fmt.Errorf("running as root needs the postgres OS user (PostgreSQL refuses root): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return osUser{
		cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}},
		uid:  uid,
		gid:  gid,
	}, nil
}

// privateDir creates a temporary directory owned by u, reachable by u
// (it lives directly in os.TempDir, which everyone may traverse).
func privateDir(prefix string, u osUser) (string, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	if u.cred != nil {
		if err := os.Chown(dir, u.uid, u.gid); err != nil {
			os.RemoveAll(dir)
			return "", err
		}
	}
	return dir, nil
}

// logDir returns dir, created if needed, or fallback when dir is empty.
func logDir(dir, fallback string) (string, error) {
	if dir == "" {
		return fallback, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return dir, nil
}

// process is a started server process.
type process struct {
	name    string
	cmd     *exec.Cmd
	user    osUser
	outPath string        // where stdout and stderr go
	logPath string        // the server's log, quoted in errors
	done    chan struct{} // closed when the process has exited
	err     error         // Wait's result, valid after done
	log     *os.File
}

// startProcess starts bin with args as u, appending its stdout and stderr to
// logPath (opened by this process, so u needs no access to its directory).
func startProcess(name string, u osUser, logPath, bin string, args ...string) (*process, error) {
	return startProcessEnv(name, u, logPath, nil, bin, args...)
}

// startProcessEnv is startProcess with the environment env (nil: this
// process's).
func startProcessEnv(name string, u osUser, logPath string, env []string, bin string, args ...string) (*process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: log: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: u.cred,
		// A new process group keeps a Ctrl-C meant for the test run from
		// reaching the server before Close does; Pdeathsig reaps it if the
		// test binary dies without cleaning up.
		Setpgid:   true,
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: start %s: %w", name, bin, err)
	}
	p := &process{name: name, cmd: cmd, user: u, outPath: logPath, logPath: logPath, done: make(chan struct{}), log: f}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// PID returns the process id.
func (p *process) PID() int { return p.cmd.Process.Pid }

// exited reports whether the process has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig, waits up to grace, then kills the process.
func (p *process) stop(sig syscall.Signal, grace time.Duration) error {
	if p.exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("%s: did not stop within %v after %v; killed", p.name, grace, sig)
}

// again starts the command of p once more: the same binary, arguments,
// user and output file. p must have exited.
func (p *process) again() (*process, error) {
	if !p.exited() {
		return nil, fmt.Errorf("%s (pid %d) is still running", p.name, p.PID())
	}
	q, err := startProcess(p.name, p.user, p.outPath, p.cmd.Path, p.cmd.Args[1:]...)
	if err != nil {
		return nil, err
	}
	q.logPath = p.logPath
	return q, nil
}

// daemon is a server's current process, which a test may stop, kill and
// start again on the same port with the same data.
type daemon struct {
	mu    sync.Mutex
	proc  *process
	ready func(ctx context.Context) error // answers once the server serves
}

func (d *daemon) current() *process {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.proc
}

// signal sends sig to the current process and waits until it has exited,
// at most grace, after which it is killed.
func (d *daemon) signal(sig syscall.Signal, grace time.Duration) error {
	p := d.current()
	if p == nil {
		return nil
	}
	return p.stop(sig, grace)
}

// restart starts the server again after it stopped, retrying for a while
// if its port is still taken, and waits until it serves. It returns the new
// process id.
func (d *daemon) restart(ctx context.Context) (int, error) {
	old := d.current()
	if old == nil {
		return 0, errors.New("restart: the server was never started")
	}
	for {
		p, err := old.again()
		if err != nil {
			return 0, err
		}
		err = p.waitReady(ctx, d.ready)
		if err == nil {
			d.mu.Lock()
			d.proc = p
			d.mu.Unlock()
			return p.PID(), nil
		}
		_ = p.stop(syscall.SIGKILL, 5*time.Second)
		// The old process's port may linger a moment after a kill.
		if !bindErr(err) || ctx.Err() != nil {
			return 0, fmt.Errorf("restart: %w", err)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("restart: %w", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitReady calls try until it succeeds, the process exits or ctx ends.
// Failures carry the tail of the server's log.
func (p *process) waitReady(ctx context.Context, try func(ctx context.Context) error) error {
	var last error
	for {
		if p.exited() {
			return fmt.Errorf("%s exited during startup (%v); log %s ends with:\n%s",
				p.name, p.err, p.logPath, Tail(p.logPath, 20))
		}
		tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		last = try(tctx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w (last error: %v); log %s ends with:\n%s",
				p.name, ctx.Err(), last, p.logPath, Tail(p.logPath, 20))
		case <-p.done:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Tail returns the last n lines of the file at path, or a note saying why
// it could not be read. It is meant for error messages.
func Tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	if len(lines) == 0 {
		return "(log is empty)"
	}
	return strings.Join(lines, "\n")
}

// retryBind runs start up to three times while it fails and the log says
// the port was taken, since FreePort cannot reserve a port.
func retryBind(start func() error, isBindErr func(error) bool) error {
	var err error
	for range 3 {
		if err = start(); err == nil || !isBindErr(err) {
			return err
		}
	}
	return err
}

func bindErr(err error) bool {
	s := err.Error()
	return strings.Contains(s, "Address already in use") || strings.Contains(s, "could not bind")
}

// closer collects cleanup steps and runs them once, in reverse order.
type closer struct {
	once  sync.Once
	steps []func() error
	err   error
}

func (c *closer) add(f func() error) { c.steps = append(c.steps, f) }

func (c *closer) close() error {
	c.once.Do(func() {
		var errs []error
		for i := len(c.steps) - 1; i >= 0; i-- {
			if err := c.steps[i](); err != nil {
				errs = append(errs, err)
			}
		}
		c.err = errors.Join(errs...)
	})
	return c.err
}

// settingsArgs returns the keys of m in a stable order.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
