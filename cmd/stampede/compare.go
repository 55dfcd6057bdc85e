package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/stampede-load/stampede/internal/report"
	"github.com/stampede-load/stampede/internal/rundir"
)

func init() {
	commands["compare"] = command{summary: "A/B: what changed from RUN_A to RUN_B, with significance: stampede compare RUN_A RUN_B", run: cmdCompare}
}

func cmdCompare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("format", "text", "output format: text or json")
	htmlOut := fs.String("html", "", "also write the comparison as a self-contained HTML page to FILE")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: stampede compare [--format text|json] [--html FILE] RUN_A RUN_B\n\nCompares run B (after) with run A (before): per endpoint, the success rate,\np50/p95/p99 and throughput, with a Mann-Whitney U test on the latency\ndistributions; the findings that appeared or disappeared; the verdict.\n\nFlags:")
		fs.PrintDefaults()
	}
	pos, err := parseAnyOrder(fs, args)
	if err != nil {
		return err
	}
	switch *format {
	case "text", "json":
	default:
		return fmt.Errorf("compare: --format %q: want text or json", *format)
	}
	if len(pos) != 2 {
		return withHint(errors.New("compare: give two run directories, before and after"), "stampede compare runs/before runs/after")
	}
	c, err := report.Compare(pos[0], pos[1])
	if err != nil {
		return err
	}
	if *htmlOut != "" {
		var buf bytes.Buffer
		if err := c.WriteHTML(&buf); err != nil {
			return err
		}
		if err := rundir.WriteFileAtomic(*htmlOut, buf.Bytes()); err != nil {
			return fmt.Errorf("compare: %w", err)
		}
	}
	if *format == "json" {
		return c.WriteJSON(stdout)
	}
	if err := c.WriteText(stdout); err != nil {
		return err
	}
	if *htmlOut != "" {
		fmt.Fprintf(stdout, "\nwrote %s\n", *htmlOut)
	}
	return nil
}
