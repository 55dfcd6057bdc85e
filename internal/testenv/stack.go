package testenv

import (
	"context"
	"errors"
	"os"
	"testing"
)

// Stack is PostgreSQL with PgBouncer in front, plus Redis: the services of
// the lab's reference target.
type Stack struct {
	PG      *PG
	Bouncer *Bouncer
	Redis   *RedisServer
}

// StackOptions configures Start. The zero value is valid.
type StackOptions struct {
	// Dir, when set, receives every server's log (it overrides the Dir of
	// the options below).
	Dir     string
	PG      PGOptions
	Bouncer BouncerOptions
	Redis   RedisOptions
}

// Start starts PostgreSQL, PgBouncer and Redis. On error, whatever started
// is stopped again. The caller must Close the Stack.
func Start(ctx context.Context, opts StackOptions) (*Stack, error) {
	if opts.Dir != "" {
		opts.PG.Dir, opts.Bouncer.Dir, opts.Redis.Dir = opts.Dir, opts.Dir, opts.Dir
	}
	s := &Stack{}
	var err error
	if s.PG, err = StartPostgres(ctx, opts.PG); err != nil {
		return nil, err
	}
	if s.Bouncer, err = StartPgBouncer(ctx, s.PG, opts.Bouncer); err != nil {
		s.Close()
		return nil, err
	}
	if s.Redis, err = StartRedis(ctx, opts.Redis); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close stops every server of the stack, PgBouncer before PostgreSQL.
func (s *Stack) Close() error {
	var errs []error
	if s.Redis != nil {
		errs = append(errs, s.Redis.Close())
	}
	if s.Bouncer != nil {
		errs = append(errs, s.Bouncer.Close())
	}
	if s.PG != nil {
		errs = append(errs, s.PG.Close())
	}
	return errors.Join(errs...)
}

// Postgres starts a PostgreSQL server for the test and stops it in
// t.Cleanup. At most one PGOptions is used. When the binaries are missing
// the test is skipped, or failed when the environment has CI=true.
func Postgres(t testing.TB, opts ...PGOptions) *PG {
	t.Helper()
	var o PGOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	pg, err := StartPostgres(ctx, o)
	check(t, err)
	cleanup(t, pg.Close, pg.LogPath)
	return pg
}

// PgBouncer starts PgBouncer in front of pg for the test and stops it in
// t.Cleanup (before pg, which was started first). At most one
// BouncerOptions is used. Missing binaries skip the test, or fail it
// under CI=true.
func PgBouncer(t testing.TB, pg *PG, opts ...BouncerOptions) *Bouncer {
	t.Helper()
	var o BouncerOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	b, err := StartPgBouncer(ctx, pg, o)
	check(t, err)
	cleanup(t, b.Close, b.LogPath)
	return b
}

// Redis starts redis-server for the test and stops it in t.Cleanup. At most
// one RedisOptions is used. A missing binary skips the test, or fails it
// under CI=true.
func Redis(t testing.TB, opts ...RedisOptions) *RedisServer {
	t.Helper()
	var o RedisOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	r, err := StartRedis(ctx, o)
	check(t, err)
	cleanup(t, r.Close, r.LogPath)
	return r
}

// check skips or fails t on a start error.
func check(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if errors.Is(err, ErrNotInstalled) && os.Getenv("CI") != "true" {
		t.Skipf("skipping: %v", err)
	}
	t.Fatal(err)
}

// cleanup stops a server when the test ends; if the test failed, the tail of
// the server's log goes into the test output first, since Close removes it.
func cleanup(t testing.TB, closeFn func() error, logPath string) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tail of %s:\n%s", logPath, Tail(logPath, 30))
		}
		if err := closeFn(); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
}
