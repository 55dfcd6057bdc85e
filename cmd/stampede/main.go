// Command stampede load-tests a web application like a browser, watches its
// database, pool, cache and logs while the load runs, and names the causes of
// what failed. Run "stampede help" for the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"
)

// Exit codes, documented in the README.
const (
	exitOK        = 0 // ran, and every threshold held
	exitError     = 1 // bad input, or could not run
	exitThreshold = 3 // the run completed but a threshold failed
)

// command is one subcommand. It returns an error for the user; it never exits.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands is filled by each subcommand's file in its init function.
var commands = map[string]command{}

// hintError carries a suggestion printed after the error as "Try: ...".
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }

func withHint(err error, hint string) error { return &hintError{err: err, hint: hint} }

// thresholdError reports a completed run whose thresholds failed.
type thresholdError struct{ failed []string }

func (e *thresholdError) Error() string {
	return fmt.Sprintf("%d threshold(s) failed", len(e.failed))
}

func main() {
	// go-redis writes its pool's dial failures to stderr, in the middle of
	// the live progress; the Redis probe records them in the timeline (and
	// the lab in its errors.log) instead.
	redis.SetLogger(&logging.VoidLogger{})
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// A second Ctrl-C exits at once: the first one asked for a graceful stop.
		<-ctx.Done()
		stop()
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
		<-ch
		fmt.Fprintln(stderr, "\nstampede: second interrupt, exiting now")
		os.Exit(130)
	}()

	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				_ = c.run(ctx, []string{"-h"}, stdout, stderr)
				return exitOK
			}
		}
		usage(stdout)
		return exitOK
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "Error: unknown command %q\nTry: stampede help\n", args[0])
		return exitError
	}
	err := c.run(ctx, args[1:], stdout, stderr)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	}
	var te *thresholdError
	if errors.As(err, &te) {
		fmt.Fprintf(stderr, "stampede: %v\n", err)
		return exitThreshold
	}
	fmt.Fprintf(stderr, "Error: %v\n", err)
	var he *hintError
	if errors.As(err, &he) && he.hint != "" {
		fmt.Fprintf(stderr, "Try: %s\n", he.hint)
	}
	return exitError
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "stampede: load-test a web app like a browser and name why it fails.")
	fmt.Fprintln(w, "\nUsage: stampede COMMAND [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun \"stampede help COMMAND\" for a command's flags.")
	fmt.Fprintln(w, "Exit status: 0 ok; 1 bad input or could not run; 3 a threshold failed.")
}

func init() {
	commands["version"] = command{
		summary: "print the version",
		run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			fmt.Fprintln(stdout, "stampede", versionString())
			return nil
		},
	}
}
