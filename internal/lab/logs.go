package lab

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Log files created in Config.LogDir when the lab starts. Each is written in
// the format of the real software the seed ran:
//
//	access.log      combined-like: host - user [time] "request" status bytes "referer" "ua" seconds
//	auth_debug.log  the seed's middleware: one line per request
//	errors.log      Django's logging: "asctime LEVEL logger message", then a
//	                Python-style traceback whose last line is the driver's error
//	gunicorn.log    gunicorn's error log: "[time] [pid] [LEVEL] message"
//	pgbouncer.log   embedded store only: the emulated PgBouncer's log lines
//	postgresql.log  embedded store only: PostgreSQL's slow-statement lines
//	                (log_min_duration_statement) for the app's queries
const (
	AccessLog    = "access.log"
	AuthDebugLog = "auth_debug.log"
	ErrorsLog    = "errors.log"
	GunicornLog  = "gunicorn.log"
	PgBouncerLog = "pgbouncer.log"
	PostgresLog  = "postgresql.log"
)

// logFile is an append-only log whose lines are written whole.
type logFile struct {
	mu sync.Mutex
	w  io.Writer
	c  io.Closer
}

func (l *logFile) write(s string) {
	if l == nil || l.w == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = io.WriteString(l.w, s)
}

type logs struct {
	dir                                                 string
	access, auth, errors, gunicorn, pgbouncer, postgres *logFile
}

// files returns each log with its file name.
func (l *logs) files() []struct {
	name string
	f    **logFile
} {
	return []struct {
		name string
		f    **logFile
	}{{AccessLog, &l.access}, {AuthDebugLog, &l.auth}, {ErrorsLog, &l.errors}, {GunicornLog, &l.gunicorn}, {PgBouncerLog, &l.pgbouncer}, {PostgresLog, &l.postgres}}
}

// openLogs creates every log file in dir (truncating none), so a tailer can
// open them before the first line. An empty dir discards the logs.
func openLogs(dir string) (*logs, error) {
	l := &logs{dir: dir}
	targets := l.files()
	if dir == "" {
		for _, t := range targets {
			*t.f = &logFile{}
		}
		return l, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("log dir: %w", err)
	}
	for _, t := range targets {
		f, err := os.OpenFile(filepath.Join(dir, t.name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			l.close()
			return nil, fmt.Errorf("log dir: %w", err)
		}
		*t.f = &logFile{w: f, c: f}
	}
	return l, nil
}

// reopen opens every log file again by its name, creating it if it is
// gone, and closes the old descriptor: after a rotation that renamed the
// files, the lines go to new files at the old paths (gunicorn's USR1,
// nginx's USR1, logrotate's postrotate step). Lines are never split
// between the two files.
func (l *logs) reopen() error {
	if l.dir == "" {
		return nil
	}
	var errs []error
	for _, t := range l.files() {
		lf := *t.f
		f, err := os.OpenFile(filepath.Join(l.dir, t.name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			errs = append(errs, fmt.Errorf("reopen %s: %w", t.name, err))
			continue
		}
		lf.mu.Lock()
		old := lf.c
		closed := lf.w == nil // the lab was closed: stay closed
		if !closed {
			lf.w, lf.c = f, f
		}
		lf.mu.Unlock()
		if closed {
			_ = f.Close()
		} else if old != nil {
			_ = old.Close()
		}
	}
	return errors.Join(errs...)
}

func (l *logs) close() {
	for _, f := range []*logFile{l.access, l.auth, l.errors, l.gunicorn, l.pgbouncer, l.postgres} {
		if f == nil {
			continue
		}
		f.mu.Lock()
		if f.c != nil {
			_ = f.c.Close()
		}
		f.w = nil
		f.mu.Unlock()
	}
}

// pyTime formats t like Python logging's asctime: 2026-11-27 10:00:00,123.
func pyTime(t time.Time) string {
	return t.Format("2006-01-02 15:04:05") + fmt.Sprintf(",%03d", t.Nanosecond()/1e6)
}

// django writes one Python-logging line: "asctime LEVEL logger message".
func (l *logs) django(level, logger, msg string) {
	l.errors.write(fmt.Sprintf("%s %s %s %s\n", pyTime(time.Now()), level, logger, msg))
}

// gunicornf writes a line of gunicorn's error log.
func (l *logs) gunicornf(pid int, level, format string, args ...any) {
	l.gunicorn.write(fmt.Sprintf("[%s] [%d] [%s] %s\n", time.Now().Format("2006-01-02 15:04:05 -0700"), pid, level, fmt.Sprintf(format, args...)))
}

// pgbouncerf writes a line of PgBouncer's log with a client prefix.
func (l *logs) pgbouncerf(level, client, format string, args ...any) {
	l.pgbouncer.write(fmt.Sprintf("%s [%d] %s %s %s\n", time.Now().UTC().Format("2006-01-02 15:04:05.000 MST"), os.Getpid(), level, client, fmt.Sprintf(format, args...)))
}

// slowStatement writes PostgreSQL's log_min_duration_statement line for a
// statement of the extended protocol, as a pgx or psycopg client sends it:
// "duration: D ms  execute <unnamed>: SQL" then its parameters.
func (l *logs) slowStatement(pid int, d time.Duration, sql string, args []any) {
	now := time.Now().UTC().Format("2006-01-02 15:04:05.000 MST")
	var b strings.Builder
	fmt.Fprintf(&b, "%s [%d] app@ahsp LOG:  duration: %.3f ms  execute <unnamed>: %s\n", now, pid, float64(d)/float64(time.Millisecond), strings.Join(strings.Fields(sql), " "))
	if len(args) > 0 {
		var ps []string
		for i, a := range args {
			ps = append(ps, fmt.Sprintf("$%d = '%v'", i+1, a))
		}
		fmt.Fprintf(&b, "%s [%d] app@ahsp DETAIL:  parameters: %s\n", now, pid, strings.Join(ps, ", "))
	}
	l.postgres.write(b.String())
}

// internalError writes Django's "Internal Server Error: PATH" entry followed by
// a Python-style traceback of err: one block for the root cause, whose last
// line carries the driver's own text (e.g. "pgconn.PgError: FATAL:
// query_wait_timeout (SQLSTATE 08P01)"), and one for the whole chain, joined
// by Python's "direct cause" line. Frames are the Go frames of the handler.
func (l *logs) internalError(path string, err error, stack []uintptr) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s ERROR django.request Internal Server Error: %s\n", pyTime(time.Now()), path)
	root := err
	for {
		next := errors.Unwrap(root)
		if next == nil {
			break
		}
		root = next
	}
	frames := formatFrames(stack)
	b.WriteString("Traceback (most recent call last):\n")
	b.WriteString(frames)
	fmt.Fprintf(&b, "%s: %s\n", errTypeName(root), oneLine(root.Error()))
	if root != err {
		b.WriteString("\nThe above exception was the direct cause of the following exception:\n\n")
		b.WriteString("Traceback (most recent call last):\n")
		b.WriteString(frames)
		fmt.Fprintf(&b, "lab.InternalServerError: %s\n", oneLine(err.Error()))
	}
	l.errors.write(b.String())
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// errTypeName names err's dynamic type like a Python exception class:
// *pgconn.PgError becomes pgconn.PgError.
func errTypeName(err error) string {
	t := reflect.TypeOf(err)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	pkg := t.PkgPath()
	if i := strings.LastIndex(pkg, "/"); i >= 0 {
		pkg = pkg[i+1:]
	}
	if pkg == "" || t.Name() == "" {
		return "error"
	}
	return pkg + "." + t.Name()
}

func formatFrames(pcs []uintptr) string {
	if len(pcs) == 0 {
		return ""
	}
	var b strings.Builder
	frames := runtime.CallersFrames(pcs)
	var lines []string
	for {
		f, more := frames.Next()
		if !strings.HasPrefix(f.Function, "runtime.") {
			fn := f.Function
			if i := strings.LastIndex(fn, "/"); i >= 0 {
				fn = fn[i+1:]
			}
			lines = append(lines, fmt.Sprintf("  File %q, line %d, in %s\n", f.File, f.Line, fn))
		}
		if !more {
			break
		}
	}
	// Python prints the outermost call first.
	for i := len(lines) - 1; i >= 0; i-- {
		b.WriteString(lines[i])
	}
	return b.String()
}
