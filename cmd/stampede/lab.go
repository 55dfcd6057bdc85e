package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/stampede-load/stampede/internal/lab"
)

func init() {
	commands["lab"] = command{
		summary: "run the reference target: the seed's app with its failures as knobs",
		run:     runLab,
	}
}

// runLab runs "stampede lab [flags]" and "stampede lab users --count N".
// Settings apply in order: --preset, then --config FILE, then the other flags.
func runLab(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "users" {
		return runLabUsers(args[1:], stdout, stderr)
	}

	// First pass: find the preset and config file only.
	var preset, file string
	var printBouncer bool
	pre := flag.NewFlagSet("lab", flag.ContinueOnError)
	pre.SetOutput(io.Discard)
	var scratch lab.Config
	scratch.RegisterFlags(pre)
	pre.StringVar(&preset, "preset", "", "")
	pre.StringVar(&file, "config", "", "")
	pre.BoolVar(&printBouncer, "print-pgbouncer", false, "")
	if err := pre.Parse(args); err != nil && !errors.Is(err, flag.ErrHelp) {
		return withHint(fmt.Errorf("lab: %w", err), "stampede help lab")
	}

	cfg := lab.Config{Addr: "127.0.0.1:8000", LogDir: "logs"}
	if preset != "" {
		if err := cfg.Preset(preset); err != nil {
			return withHint(fmt.Errorf("lab: %w", err), "--preset "+strings.Join(lab.Presets, "|"))
		}
	}
	if file != "" {
		if err := cfg.LoadFile(file); err != nil {
			return fmt.Errorf("lab: %w", err)
		}
	}
	fs := flag.NewFlagSet("lab", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: stampede lab [--preset seed|fixed|healthy] [--config FILE] [knobs]")
		fmt.Fprintln(stderr, "       stampede lab users --count N")
		fmt.Fprintln(stderr, "\nThe seed's app (allauth login, AHSP pages) with every failure a knob.")
		fmt.Fprintln(stderr, "Settings apply in order: preset, config file (YAML, keys are flag names), flags.")
		fmt.Fprintln(stderr, "SIGUSR1 reopens the log files (after a rotation that renamed them), as gunicorn's does.")
		fs.PrintDefaults()
	}
	cfg.RegisterFlags(fs)
	fs.StringVar(&preset, "preset", preset, "seed (the seed's failing setup), fixed (its success criteria) or healthy")
	fs.StringVar(&file, "config", file, "YAML config file whose keys are these flags' names")
	fs.BoolVar(&printBouncer, "print-pgbouncer", false, "print the pgbouncer.ini pool settings of this configuration and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return withHint(fmt.Errorf("lab: unexpected argument %q", fs.Arg(0)), "stampede help lab")
	}
	if err := cfg.Validate(); err != nil {
		return withHint(fmt.Errorf("lab: %w", err), "stampede help lab")
	}
	if printBouncer {
		_, err := io.WriteString(stdout, cfg.PgBouncerConfig())
		return err
	}

	srv, err := lab.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return withHint(fmt.Errorf("lab: %w", err), "choose another --addr")
	}
	logs := cfg.LogDir
	if logs == "" {
		logs = "(discarded)"
	}
	fmt.Fprintf(stdout, "stampede lab: http://%s  store=%s  preset=%s  logs=%s\n", ln.Addr(), srv.Config().Store, orDash(preset), logs)
	fmt.Fprintf(stdout, "users: stampede lab users --count %d > users.csv\n", srv.Config().Users)
	// USR1 reopens the log files, as gunicorn's does: the postrotate step
	// of a logrotate that renames them.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer func() { signal.Stop(usr1); close(usr1) }()
	go func() {
		for range usr1 {
			if err := srv.ReopenLogs(); err != nil {
				fmt.Fprintf(stderr, "stampede lab: %v\n", err)
			}
		}
	}()
	return srv.Serve(ctx, ln)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func runLabUsers(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("lab users", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("count", 100, "accounts to list (the lab seeds --users of them)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 0 {
		return fmt.Errorf("lab users: --count %d: must not be negative", *n)
	}
	return lab.WriteUsersCSV(stdout, *n)
}
