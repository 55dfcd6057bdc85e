package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/diagnose"
	"github.com/stampede-load/stampede/internal/evidence"
	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/locust"
	"github.com/stampede-load/stampede/internal/report"
	"github.com/stampede-load/stampede/internal/rundir"
)

func init() {
	commands["diagnose"] = command{summary: "name the causes of a run's failures: stampede diagnose RUN_DIR, or --locust PREFIX --log NAME=PATH", run: cmdDiagnose}
}

func cmdDiagnose(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("diagnose", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("format", "text", "output format: text, md, json, html (the run's whole report page)")
	prefix := fs.String("locust", "", "diagnose a Locust run from its CSVs: the --csv PREFIX it was run with")
	var logs logFlags
	fs.Var(&logs, "log", "server log of the Locust run, NAME=PATH (repeatable)")
	users := fs.Int("users", 0, "Locust import: virtual users (default: the peak User Count of the history)")
	accounts := fs.Int("accounts", 0, "Locust import: distinct login accounts the users logged in with (0: unknown)")
	login := fs.String("login-endpoint", "", "Locust import: name of the login POST endpoint (default: guessed from names)")
	out := fs.String("out", "", "Locust import: directory to write diagnosis.json and diagnosis.md to")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: stampede diagnose [--format text|md|json] RUN_DIR\n       stampede diagnose --locust PREFIX [--log NAME=PATH ...]\n\nFlags:")
		fs.PrintDefaults()
	}
	pos, err := parseAnyOrder(fs, args)
	if err != nil {
		return err
	}
	switch *format {
	case "text", "md", "json", "html":
	default:
		return fmt.Errorf("diagnose: --format %q: want text, md, json or html", *format)
	}
	var d *stampede.Diagnosis
	if *prefix != "" {
		if len(pos) > 0 {
			return errors.New("diagnose: give either RUN_DIR or --locust PREFIX, not both")
		}
		d, err = diagnoseLocust(ctx, *prefix, logs, *users, *accounts, *login)
		if err == nil && *out != "" {
			err = writeDiagnosis(*out, d)
		}
	} else {
		if len(pos) != 1 {
			return withHint(errors.New("diagnose: give one run directory"), "stampede diagnose runs/20261127-104500")
		}
		if len(logs) > 0 {
			return errors.New("diagnose: --log is for --locust imports; a run directory has its evidence already")
		}
		d, err = diagnoseDir(pos[0])
	}
	if err != nil {
		return err
	}
	switch *format {
	case "html":
		if *prefix != "" {
			return errors.New("diagnose: --format html needs a run directory (for a Locust import, use --out DIR then stampede report DIR)")
		}
		return report.RenderHTML(stdout, pos[0])
	case "json":
		return report.DiagnosisJSON(stdout, *d)
	case "md":
		return report.DiagnosisMarkdown(stdout, *d)
	}
	return report.DiagnosisText(stdout, *d)
}

// diagnoseDir re-analyses a run directory and writes diagnosis.json and
// diagnosis.md into it.
func diagnoseDir(dir string) (*stampede.Diagnosis, error) {
	in, err := loadInput(dir)
	if err != nil {
		return nil, err
	}
	d := diagnose.Diagnose(in)
	if err := writeDiagnosis(dir, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

func writeDiagnosis(dir string, d *stampede.Diagnosis) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := rundir.WriteJSON(filepath.Join(dir, "diagnosis.json"), d); err != nil {
		return fmt.Errorf("diagnose: %w", err)
	}
	var md bytes.Buffer
	if err := report.DiagnosisMarkdown(&md, *d); err != nil {
		return err
	}
	if err := rundir.WriteFileAtomic(filepath.Join(dir, "diagnosis.md"), md.Bytes()); err != nil {
		return fmt.Errorf("diagnose: %w", err)
	}
	return nil
}

// loadInput reads a run directory into a diagnosis input.
func loadInput(dir string) (*diagnose.Input, error) {
	meta, err := rundir.ReadMeta(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, withHint(fmt.Errorf("diagnose: %s is not a run directory (no meta.json)", dir), "stampede diagnose runs/<timestamp>")
		}
		return nil, fmt.Errorf("diagnose: %w", err)
	}
	var results []stampede.Result
	if err := rundir.ReadRequests(dir, func(r *stampede.Result) error { results = append(results, *r); return nil }); err != nil {
		return nil, fmt.Errorf("diagnose: %w", err)
	}
	end := meta.End
	if end.IsZero() && len(results) > 0 { // a killed run
		for _, r := range results {
			if e := r.End(); e.After(end) {
				end = e
			}
		}
	}
	in := diagnose.NewInput(meta.Run, meta.Start, end, results)
	if in.Timeline, err = rundir.ReadTimeline(dir); err != nil {
		return nil, fmt.Errorf("diagnose: %w", err)
	}
	if in.Evidence, err = rundir.ReadEvidence(dir); err != nil {
		return nil, fmt.Errorf("diagnose: %w", err)
	}
	l := meta.Load
	in.Load = diagnose.LoadFacts{Model: l.Model, Users: l.Users, SpawnRate: l.SpawnRate, ArrivalRate: l.ArrivalRate,
		Accounts: l.Accounts, Assignment: l.Assignment, SourceIPs: l.SourceIPs, LoginEndpoints: l.LoginEndpoints}
	return in, nil
}

// diagnoseLocust diagnoses a run made by Locust from its CSVs and the
// server's logs.
func diagnoseLocust(ctx context.Context, prefix string, logs []load.LogSpec, users, accounts int, login string) (*stampede.Diagnosis, error) {
	run, err := locust.Read(prefix)
	if err != nil {
		return nil, fmt.Errorf("diagnose: %w", err)
	}
	in := &diagnose.Input{Run: filepath.Base(prefix)}
	ms := func(v float64) time.Duration {
		if math.IsNaN(v) {
			return 0
		}
		return time.Duration(v * float64(time.Millisecond))
	}
	pct := func(row []float64, qs []float64, q float64) time.Duration {
		for i, x := range qs {
			if x == q && i < len(row) {
				return ms(row[i])
			}
		}
		return 0
	}
	for _, r := range run.Stats.Rows {
		if r.Method == "" && r.Name == "Aggregated" {
			continue
		}
		in.Endpoints = append(in.Endpoints, diagnose.EndpointTotals{Method: r.Method, Name: r.Name, Requests: int(r.Requests), Failures: int(r.Failures),
			Min: ms(r.Min), Median: ms(r.Median), Mean: ms(r.Average), Max: ms(r.Max),
			P95: pct(r.Percentiles, run.Stats.Quantiles, 0.95), P99: pct(r.Percentiles, run.Stats.Quantiles, 0.99)})
	}
	for _, f := range run.Failures {
		g := diagnose.FailureGroup{Method: f.Method, Name: f.Name, Reason: f.Reason(), Count: int(f.Occurrences), First: f.FirstSeen, Last: f.LastSeen}
		in.Failures = append(in.Failures, g)
	}
	peak := 0
	if run.History != nil {
		// Locust's history holds running totals per entry; the per-second
		// counts are their differences.
		prev := map[string][2]int64{}
		for _, h := range run.History.Rows {
			key := h.Method + " " + h.Name
			p := prev[key]
			reqs, fails := h.TotalRequests-p[0], h.TotalFailures-p[1]
			prev[key] = [2]int64{h.TotalRequests, h.TotalFailures}
			name := h.Name
			if h.Method == "" && h.Name == "Aggregated" {
				name = ""
			}
			pt := diagnose.Point{Time: h.Time, Method: h.Method, Name: name, Users: h.Users,
				Requests: float64(max(reqs, 0)), Failures: float64(max(fails, 0)), Median: pct(h.Percentiles, run.History.Quantiles, 0.5)}
			for i, q := range run.History.Quantiles {
				if i < len(h.Percentiles) && !math.IsNaN(h.Percentiles[i]) {
					pt.Quantiles = append(pt.Quantiles, q)
					pt.Latencies = append(pt.Latencies, ms(h.Percentiles[i]))
				}
			}
			in.History = append(in.History, pt)
			peak = max(peak, h.Users)
			if in.Start.IsZero() || h.Time.Before(in.Start) {
				in.Start = h.Time
			}
			if h.Time.After(in.End) {
				in.End = h.Time
			}
		}
	}
	if users == 0 {
		users = peak
	}
	in.Load = diagnose.LoadFacts{Model: diagnose.ModelClosed, Users: users, Accounts: accounts, SourceIPs: 1}
	if login != "" {
		in.Load.LoginEndpoints = []string{login}
	}
	for _, l := range logs {
		evs, err := evidence.ParseFile(ctx, l.Path, l.Name)
		if err != nil {
			return nil, fmt.Errorf("diagnose: --log %s: %w", l.Name, err)
		}
		in.Evidence = append(in.Evidence, evs...)
	}
	sort.SliceStable(in.Evidence, func(i, j int) bool { return in.Evidence[i].Time.Before(in.Evidence[j].Time) })
	if in.Start.IsZero() && len(in.Evidence) > 0 {
		in.Start, in.End = in.Evidence[0].Time, in.Evidence[len(in.Evidence)-1].Time
	}
	d := diagnose.Diagnose(in)
	return &d, nil
}

// printDiagnosis prints the diagnosis' terminal text after a run.
func printDiagnosis(w io.Writer, d *stampede.Diagnosis) {
	fmt.Fprintln(w)
	_ = report.DiagnosisText(w, *d)
}
