package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/stampede-load/stampede/internal/merge"
)

func init() {
	commands["merge"] = command{summary: "merge the run directories of a split load's segments into one: stampede merge OUT RUN_DIR...", run: cmdMerge}
}

func cmdMerge(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("merge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	noDiagnose := fs.Bool("no-diagnose", false, "skip the diagnosis (the one step that holds every request in memory; run stampede diagnose OUT later)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `Usage: stampede merge [--no-diagnose] OUT RUN_DIR...

Makes OUT one run directory from the run directories of the segments of a
load split across generators (stampede run --segment i/N), and of their
observer (--observe-only): requests, timeline and evidence merged by time;
summary.json, the Locust CSVs and report.html from every request, with exact
histograms (the merged p95 is the p95 of every request, never an average);
the scenario's thresholds evaluated once over the whole load; the diagnosis.
A segment missing from 0..N-1 or that did not finish is named, here and in
OUT/meta.json ("segments"). Segments of different scenarios, start instants
or counts are refused.

Exit status: 0 every threshold held; 3 a threshold failed; 1 bad input.

Flags:`)
		fs.PrintDefaults()
	}
	pos, err := parseAnyOrder(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 2 {
		return withHint(errors.New("merge: give the output directory, then the segments' run directories"), "stampede merge runs/merged runs/seg-*")
	}
	out, dirs := pos[0], pos[1:]
	res, err := merge.Merge(ctx, out, dirs, merge.Options{NoDiagnose: *noDiagnose, Command: append([]string{"stampede", "merge"}, args...)})
	if err != nil {
		return err
	}
	for _, s := range res.Skipped {
		fmt.Fprintf(stderr, "stampede: %s\n", s)
	}
	ss := res.Segments
	total := int64(0)
	parts := make([]string, 0, len(ss.Merged))
	for _, i := range ss.Merged {
		total += res.Requests[i]
		parts = append(parts, fmt.Sprintf("%d (%d requests)", i, res.Requests[i]))
	}
	fmt.Fprintf(stdout, "Merged %d of %d segments: %s; %d requests.\n", len(ss.Merged), ss.Count, strings.Join(parts, ", "), total)
	if ss.Observer {
		fmt.Fprintln(stdout, "With the observer's probes and logs.")
	}
	if len(ss.Missing) > 0 {
		fmt.Fprintf(stderr, "stampede: segments missing (no run directory): %s: the merged run lacks their load and is marked partial\n", joinInts(ss.Missing))
	}
	if len(ss.Partial) > 0 {
		fmt.Fprintf(stderr, "stampede: segments that did not finish (interrupted or killed): %s: merged up to where they stopped; the run is marked partial\n", joinInts(ss.Partial))
	}
	printSummary(stdout, res.Summary, res.Meta.Target, res.Meta.Load.Model, res.Aborted, res.Partial)
	if res.SessionsLost > 0 {
		fmt.Fprintf(stdout, "Sessions lost (a page sent a logged-in user back to the login form): %d; logged in again: %d\n", res.SessionsLost, res.Relogins)
	}
	if len(res.Thresholds) > 0 {
		fmt.Fprintln(stdout, "\nThresholds (over every segment):")
		for _, r := range res.Thresholds {
			fmt.Fprintln(stdout, "  "+r.String())
		}
	}
	if res.DiagnosisErr != nil {
		fmt.Fprintf(stderr, "stampede: diagnosis: %v\n", res.DiagnosisErr)
	} else if res.Diagnosis != nil {
		printDiagnosis(stdout, res.Diagnosis)
	}
	if res.ReportErr != nil {
		fmt.Fprintf(stderr, "stampede: report.html: %v\n", res.ReportErr)
	}
	fmt.Fprintf(stdout, "\nRun directory: %s (report.html)\n", res.Dir)
	if failed := res.FailedThresholds(); len(failed) > 0 {
		return &thresholdError{failed: failed}
	}
	return nil
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ", ")
}
