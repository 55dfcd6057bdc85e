package testenv

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// The reference targets are real applications of several stacks (Django,
// Rails, Flask), each behind PgBouncer, PostgreSQL and Redis, each with
// fault modes made of configuration only. Target is what every one of them
// offers to the end-to-end tests, the accuracy script and reftarget, so
// that one harness drives them all.

// Load is the load that makes a mode's fault show within half a minute on
// a 2-core machine.
type Load = DjangoLoad

// ModeInfo describes one mode of a reference target.
type ModeInfo struct {
	// Stack is the target's stack: "django", "rails", "flask".
	Stack string
	// Name is the mode's name: the finding id it should produce,
	// "healthy", or an id with a suffix for a variant.
	Name string
	// Want is the finding id the diagnosis should put on top of a live
	// run; "" means the run should pass with no confirmed finding.
	Want string
	// LocustWant is the finding id expected on top of a Locust recording
	// of the mode (server logs, no probes), when it differs from Want
	// because the logs cannot show what the probes show; "" means Want.
	LocustWant string
	// About says what is configured and what the real software does
	// with it.
	About string
	// Load is the load that shows the fault.
	Load Load
	// Representative marks the one mode of the target that scripts/test
	// runs live (the others run in scripts/accuracy).
	Representative bool
	// Repeats is how many times scripts/accuracy runs the mode live (0 or
	// 1: once): the modes whose top finding used to flip between runs
	// run three times, and must give the same answer each time.
	Repeats int
}

// WantFromLocust returns the finding expected on top of a Locust recording.
func (m ModeInfo) WantFromLocust() string {
	if m.LocustWant != "" {
		return m.LocustWant
	}
	return m.Want
}

// Target is a running reference target in one of its modes.
type Target interface {
	// Mode is the mode the target runs in.
	Mode() ModeInfo
	// BaseURL is the URL the load should use: http://NAME:PORT for the
	// modes that need a host name (Secure cookies over plain HTTP), with
	// ResolveArgs mapping NAME to 127.0.0.1, else http://127.0.0.1:PORT.
	BaseURL() string
	// DirectURL is http://127.0.0.1:PORT, for Locust and health checks.
	DirectURL() string
	// WriteScenario writes the target's stampede scenario and its users
	// file into dir and returns the scenario's path.
	WriteScenario(dir string) (string, error)
	// WriteUsers writes a users CSV (header username,password) of the
	// first n accounts to path (every account when n ≤ 0).
	WriteUsers(path string, n int) error
	// RunArgs returns the arguments of "stampede run" for the scenario at
	// path: the mode's load, the target's URL (and --resolve), every probe,
	// the app server's PID and every log.
	RunArgs(scenario string) []string
	// Logs returns the logs as (name for --log, path) pairs.
	Logs() [][2]string
	// Locustfile is the target's locustfile.py, for Debian's Locust; its
	// users file is named by the environment variable LocustUsersEnv.
	Locustfile() ([]byte, error)
	// LocustUsersEnv names the environment variable the locustfile reads
	// its users CSV path from.
	LocustUsersEnv() string
	// Close stops every server the target started.
	Close() error
}

// Stacks lists the reference targets' stacks, in the order the accuracy
// table shows them.
var Stacks = []string{"django", "rails", "flask", "node"}

// Modes returns the modes of a stack's target, healthy first.
func Modes(stack string) ([]ModeInfo, error) {
	switch stack {
	case "django":
		var out []ModeInfo
		for _, m := range djangoModes {
			out = append(out, m.info())
		}
		return out, nil
	}
	if f := stackModes[stack]; f != nil {
		return f(), nil
	}
	return nil, fmt.Errorf("testenv: unknown stack %q (stacks: %s)", stack, strings.Join(Stacks, ", "))
}

// LookupMode returns the mode called name of a stack; "" is healthy.
func LookupMode(stack, name string) (ModeInfo, error) {
	ms, err := Modes(stack)
	if err != nil {
		return ModeInfo{}, err
	}
	if name == "" {
		name = "healthy"
	}
	var names []string
	for _, m := range ms {
		if m.Name == name {
			return m, nil
		}
		names = append(names, m.Name)
	}
	return ModeInfo{}, fmt.Errorf("%s: unknown mode %q (modes: %s)", stack, name, strings.Join(names, ", "))
}

// stackModes and stackStarters are filled by the other stacks' files
// (rails.go, flask.go) in their init functions.
var (
	stackModes    = map[string]func() []ModeInfo{}
	stackStarters = map[string]Starter{}
)

// Starter starts a stack's target in a mode. A Starter may share one seeded
// database between the modes it starts (see Prepare).
type Starter interface {
	// Installed reports whether the stack's packages are there; the
	// error wraps ErrNotInstalled.
	Installed() error
	// Prepare starts and seeds what the modes share (PostgreSQL with the
	// schema and rows), with its logs in dir. Close releases it.
	Prepare(ctx context.Context, dir string) (Shared, error)
	// Start starts the target in mode on shared, its logs in dir.
	Start(ctx context.Context, shared Shared, mode string, dir string) (Target, error)
}

// Shared is what the modes of one stack share: the seeded database.
type Shared interface {
	// PostgresLog is the shared PostgreSQL's log.
	PostgresLog() string
	Close() error
}

// StarterFor returns the starter of a stack.
func StarterFor(stack string) (Starter, error) {
	if stack == "django" {
		return djangoStarter{}, nil
	}
	if s := stackStarters[stack]; s != nil {
		return s, nil
	}
	return nil, fmt.Errorf("testenv: unknown stack %q (stacks: %s)", stack, strings.Join(Stacks, ", "))
}

// info is the Django mode as a ModeInfo.
func (m DjangoMode) info() ModeInfo {
	info := ModeInfo{Stack: "django", Name: m.Name, Want: m.Want, LocustWant: djangoLocustWant[m.Name],
		About: m.About, Load: m.Load, Representative: m.Name == "db-pool-wait-timeout"}
	if m.Name == "db-lock-contention" || m.Name == "password-hash-cpu" {
		// Both used to flip with cpu-saturation between runs.
		info.Repeats = 3
	}
	return info
}

// djangoLocustWant overrides a mode's expected top finding for its Locust
// recording, which has the server logs but no probes. With django-redis'
// IGNORE_EXCEPTIONS no log says Redis refused anything (Redis itself logs
// no refusals): the lost sessions are all the evidence there is.
var djangoLocustWant = map[string]string{"redis-connection-limit-ignored": "session-lost"}

// djangoStarter starts the Django target.
type djangoStarter struct{}

func (djangoStarter) Installed() error { return DjangoInstalled() }

func (djangoStarter) Prepare(ctx context.Context, dir string) (Shared, error) {
	return StartDjangoDB(ctx, DjangoDBOptions{Dir: dir})
}

func (djangoStarter) Start(ctx context.Context, shared Shared, mode, dir string) (Target, error) {
	db, ok := shared.(*DjangoDB)
	if !ok {
		return nil, fmt.Errorf("django: shared database of another stack (%T)", shared)
	}
	return StartDjango(ctx, DjangoOptions{Mode: mode, DB: db, Dir: dir})
}

// PostgresLog returns PostgreSQL's log.
func (db *DjangoDB) PostgresLog() string { return db.PG.LogPath }

// Mode returns the mode the target runs in.
func (d *Django) Mode() ModeInfo { return d.Config.info() }

// BaseURL returns NamedURL: the Django target is always loaded by name.
func (d *Django) BaseURL() string { return d.NamedURL }

// DirectURL returns URL.
func (d *Django) DirectURL() string { return d.URL }

// Locustfile returns testdata/django/locustfile.py.
func (d *Django) Locustfile() ([]byte, error) { return DjangoFile("locustfile.py") }

// LocustUsersEnv returns "DJANGO_USERS".
func (d *Django) LocustUsersEnv() string { return "DJANGO_USERS" }

// Require skips the test when err says a package or server is missing
// (ErrNotInstalled), fails it under CI=true, and fails it on any other
// error.
func Require(t testing.TB, err error) {
	t.Helper()
	check(t, err)
}

// PrepareStack prepares what a stack's modes share for the test (its seeded
// database) and releases it in t.Cleanup; like the other helpers, missing
// packages skip the test, or fail it under CI=true.
func PrepareStack(t testing.TB, stack string) (Starter, Shared) {
	t.Helper()
	st, err := StarterFor(stack)
	if err != nil {
		t.Fatal(err)
	}
	check(t, st.Installed())
	ctx, cancel := context.WithTimeout(context.Background(), 5*startTimeout)
	defer cancel()
	sh, err := st.Prepare(ctx, t.TempDir())
	check(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tail of %s:\n%s", sh.PostgresLog(), clipLines(Tail(sh.PostgresLog(), 20), 200))
		}
		if err := sh.Close(); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	return st, sh
}

// StartTarget starts a stack's target in mode for the test, its logs in
// dir, and stops it in t.Cleanup (with the tails of its logs when the test
// failed).
func StartTarget(t testing.TB, st Starter, sh Shared, mode, dir string) Target {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*startTimeout)
	defer cancel()
	tg, err := st.Start(ctx, sh, mode, dir)
	check(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			for _, l := range tg.Logs() {
				t.Logf("tail of %s (%s):\n%s", l[0], l[1], clipLines(Tail(l[1], 15), 200))
			}
		}
		if err := tg.Close(); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	return tg
}
