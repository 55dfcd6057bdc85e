// Command reftarget starts the reference Django target in one of its modes
// (a healthy configuration or one fault), prints where everything is and
// the stampede run command line for the mode, and runs until Ctrl-C.
//
//	go run ./internal/testenv/cmd/reftarget --mode db-pool-wait-timeout
//
// It needs Debian's python3-django, python3-django-allauth,
// python3-django-redis, python3-psycopg2, gunicorn, PostgreSQL, PgBouncer
// and redis-server. Everything listens on 127.0.0.1; the DSNs it prints
// carry the throwaway servers' passwords.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/stampede-load/stampede/internal/testenv"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		if errors.Is(err, testenv.ErrNotInstalled) {
			fmt.Fprintln(os.Stderr, "Try: apt-get install python3-django python3-django-allauth python3-django-redis python3-psycopg2 gunicorn postgresql pgbouncer redis-server")
		}
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("reftarget", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mode := fs.String("mode", "healthy", "the target's configuration: "+modeNames())
	dir := fs.String("dir", "", "directory for the logs, users.csv and scenario.yaml (default: a new one in the temporary directory, kept)")
	list := fs.Bool("list", false, "list the modes and what each configures")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *list {
		for _, m := range testenv.DjangoModes() {
			fmt.Fprintf(stdout, "%s\n    %s\n", m.Name, m.About)
		}
		return nil
	}
	m, err := testenv.LookupDjangoMode(*mode)
	if err != nil {
		return err
	}
	if *dir == "" {
		if *dir, err = os.MkdirTemp("", "reftarget-"+m.Name+"-"); err != nil {
			return err
		}
	}
	if *dir, err = filepath.Abs(*dir); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	fmt.Fprintf(stdout, "Starting the Django target in mode %s (PostgreSQL, seed, PgBouncer, Redis, gunicorn)...\n", m.Name)
	t0 := time.Now()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	db, err := testenv.StartDjangoDB(sctx, testenv.DjangoDBOptions{Dir: *dir})
	if err != nil {
		return err
	}
	defer db.Close()
	d, err := testenv.StartDjango(sctx, testenv.DjangoOptions{Mode: m.Name, DB: db, Dir: *dir})
	if err != nil {
		return err
	}
	defer d.Close()
	scenario, err := d.WriteScenario(*dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Ready in %.1fs.\n\n", time.Since(t0).Seconds())
	fmt.Fprintf(stdout, "Mode %s: %s\n\n", m.Name, m.About)
	fmt.Fprintf(stdout, "URL:          %s  (also %s, with --resolve %s=127.0.0.1)\n", d.URL, d.NamedURL, testenv.DjangoHost)
	fmt.Fprintf(stdout, "gunicorn PID: %d (master)\n", d.PID)
	fmt.Fprintf(stdout, "Users:        user001..user%03d, password %s (users.csv in %s)\n", db.Users, testenv.DjangoPassword, *dir)
	fmt.Fprintf(stdout, "PostgreSQL:   %s\n", d.PostgresDSN)
	fmt.Fprintf(stdout, "PgBouncer:    %s\n", d.PgBouncerDSN)
	fmt.Fprintf(stdout, "Redis:        %s\n", d.RedisURL)
	fmt.Fprintln(stdout, "Logs:")
	for _, l := range d.Logs() {
		fmt.Fprintf(stdout, "  %-11s %s\n", l[0], l[1])
	}
	fmt.Fprintf(stdout, "  %-11s %s\n", "redis", d.RedisLog)
	fmt.Fprintf(stdout, "\nLoad it (from the repository root; go build -o stampede ./cmd/stampede):\n\n  ./stampede %s\n", shellJoin(d.RunArgs(scenario)))
	fmt.Fprintf(stdout, "\nOr with Locust:\n\n  DJANGO_USERS=%s locust -f %s --headless -u %d -r %g -t %s --host %s --csv %s --csv-full-history\n",
		filepath.Join(*dir, "users.csv"), "internal/testenv/testdata/django/locustfile.py",
		m.Load.Users, m.Load.SpawnRate, m.Load.Duration, d.URL, filepath.Join(*dir, "locust"))
	fmt.Fprintln(stdout, "\nCtrl-C stops every server.")
	<-ctx.Done()
	fmt.Fprintln(stdout, "\nStopping.")
	return errors.Join(d.Close(), db.Close())
}

func modeNames() string {
	var n []string
	for _, m := range testenv.DjangoModes() {
		n = append(n, m.Name)
	}
	return strings.Join(n, ", ")
}

// shellJoin quotes what a POSIX shell would split or expand.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$&;|<>()*?[]#~`!{}") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}
