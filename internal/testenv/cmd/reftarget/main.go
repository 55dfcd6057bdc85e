// Command reftarget starts a reference target — a real application of one
// stack (Django, Rails, Flask or Node.js) behind PgBouncer, PostgreSQL and Redis — in
// one of its modes (a healthy configuration or one fault), prints where
// everything is and the stampede run command line for the mode, and runs
// until Ctrl-C.
//
//	go run ./internal/testenv/cmd/reftarget --stack django --mode db-pool-wait-timeout
//	go run ./internal/testenv/cmd/reftarget --stack rails --list
//
// It needs Debian's packages of the stack (see the README), PostgreSQL,
// PgBouncer and redis-server. Everything listens on 127.0.0.1; the DSNs it
// prints carry the throwaway servers' passwords.
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
			fmt.Fprintln(os.Stderr, "Try: bash scripts/test (as root it installs every stack's Debian packages), or the apt-get line the error names")
		}
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("reftarget", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stack := fs.String("stack", "django", "the target's stack: "+strings.Join(testenv.Stacks, ", "))
	mode := fs.String("mode", "healthy", "the target's configuration (--list shows the stack's modes)")
	dir := fs.String("dir", "", "directory for the logs, users.csv and scenario.yaml (default: a new one in the temporary directory, kept)")
	list := fs.Bool("list", false, "list the stack's modes and what each configures")
	if err := fs.Parse(args); err != nil {
		return err
	}
	modes, err := testenv.Modes(*stack)
	if err != nil {
		return err
	}
	if *list {
		for _, m := range modes {
			want := m.Want
			if want == "" {
				want = "pass, nothing confirmed"
			}
			fmt.Fprintf(stdout, "%s  (expected: %s)\n    %s\n", m.Name, want, m.About)
		}
		return nil
	}
	m, err := testenv.LookupMode(*stack, *mode)
	if err != nil {
		return err
	}
	st, err := testenv.StarterFor(*stack)
	if err != nil {
		return err
	}
	if err := st.Installed(); err != nil {
		return err
	}
	if *dir == "" {
		if *dir, err = os.MkdirTemp("", "reftarget-"+*stack+"-"+m.Name+"-"); err != nil {
			return err
		}
	}
	if *dir, err = filepath.Abs(*dir); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	fmt.Fprintf(stdout, "Starting the %s target in mode %s (PostgreSQL with schema and seed, PgBouncer, Redis, the app)...\n", *stack, m.Name)
	t0 := time.Now()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	sh, err := st.Prepare(sctx, *dir)
	if err != nil {
		return err
	}
	defer sh.Close()
	tg, err := st.Start(sctx, sh, m.Name, *dir)
	if err != nil {
		return err
	}
	defer tg.Close()
	scenario, err := tg.WriteScenario(*dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Ready in %.1fs.\n\n", time.Since(t0).Seconds())
	fmt.Fprintf(stdout, "Mode %s: %s\n\n", m.Name, m.About)
	fmt.Fprintf(stdout, "URL:   %s", tg.BaseURL())
	if tg.BaseURL() != tg.DirectURL() {
		fmt.Fprintf(stdout, "  (the name resolves through stampede's --resolve; also %s)", tg.DirectURL())
	}
	fmt.Fprintf(stdout, "\nUsers: %s (written with the scenario)\n", filepath.Join(*dir, "users.csv"))
	fmt.Fprintln(stdout, "Logs:")
	for _, l := range tg.Logs() {
		fmt.Fprintf(stdout, "  %-12s %s\n", l[0], l[1])
	}
	fmt.Fprintf(stdout, "\nLoad it (from the repository root; go build -o stampede ./cmd/stampede):\n\n  ./stampede %s\n", shellJoin(tg.RunArgs(scenario)))
	users := "users.csv"
	if m.Load.Accounts > 0 {
		users = fmt.Sprintf("users.csv (its first %d rows: the mode's users share them)", m.Load.Accounts)
	}
	fmt.Fprintf(stdout, "\nOr with Locust (the stack's locustfile.py in internal/testenv/testdata/%s; %s):\n\n  %s=%s locust -f internal/testenv/testdata/%s/locustfile.py --headless -u %d -r %g -t %s --host %s --csv %s --csv-full-history\n",
		*stack, users, tg.LocustUsersEnv(), filepath.Join(*dir, "users.csv"), *stack,
		m.Load.Users, m.Load.SpawnRate, m.Load.Duration, tg.DirectURL(), filepath.Join(*dir, "locust"))
	fmt.Fprintln(stdout, "\nCtrl-C stops every server.")
	<-ctx.Done()
	fmt.Fprintln(stdout, "\nStopping.")
	return errors.Join(tg.Close(), sh.Close())
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
