package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/stampede-load/stampede/internal/report"
	"github.com/stampede-load/stampede/internal/rundir"
)

func init() {
	commands["report"] = command{summary: "write a run's self-contained report.html again: stampede report RUN_DIR", run: cmdReport}
}

func cmdReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "write the page to FILE instead of RUN_DIR/report.html (- for standard output)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: stampede report [--out FILE] RUN_DIR\n\nWrites RUN_DIR/report.html from the run's files: one self-contained page\n(charts, findings, endpoint and failure tables) that opens with no network.\n\nFlags:")
		fs.PrintDefaults()
	}
	pos, err := parseAnyOrder(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return withHint(errors.New("report: give one run directory"), "stampede report runs/20261127-104500")
	}
	dir := pos[0]
	switch *out {
	case "":
		if err := report.WriteHTML(dir); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s\n", filepath.Join(dir, report.HTMLFile))
		return nil
	case "-":
		return report.RenderHTML(stdout, dir)
	}
	var buf bytes.Buffer
	if err := report.RenderHTML(&buf, dir); err != nil {
		return err
	}
	if err := rundir.WriteFileAtomic(*out, buf.Bytes()); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s\n", *out)
	return nil
}

// parseAnyOrder parses flags given before, between or after the positional
// arguments ("stampede compare A B --html out.html") and returns the
// positional ones in order. "--" ends the flags.
func parseAnyOrder(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
