package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/diagnose"
	"github.com/stampede-load/stampede/internal/report"
	"github.com/stampede-load/stampede/internal/runner"
)

func init() {
	commands["diagnose"] = command{summary: "name the causes of a run's failures and slow requests: stampede diagnose RUN_DIR, or --locust PREFIX --log NAME=PATH", run: cmdDiagnose}
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
		d, err = diagnoseLocust(ctx, runner.LocustImport{Prefix: *prefix, Logs: logs, Users: *users, Accounts: *accounts, LoginEndpoint: *login})
		if err == nil && *out != "" {
			err = runner.WriteDiagnosis(*out, d)
		}
	} else {
		if len(pos) != 1 {
			return withHint(errors.New("diagnose: give one run directory"), "stampede diagnose runs/20261127-104500")
		}
		if len(logs) > 0 {
			return errors.New("diagnose: --log is for --locust imports; a run directory has its evidence already")
		}
		d, err = runner.Diagnose(pos[0])
		var nr *runner.NotRunDirError
		if errors.As(err, &nr) {
			err = withHint(err, "stampede diagnose runs/<timestamp>")
		}
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

// diagnoseLocust diagnoses a run made by Locust from its CSVs and the
// server's logs.
func diagnoseLocust(ctx context.Context, li runner.LocustImport) (*stampede.Diagnosis, error) {
	in, err := runner.LoadLocust(ctx, li)
	if err != nil {
		return nil, err
	}
	d := diagnose.Diagnose(in)
	return &d, nil
}

// printDiagnosis prints the diagnosis' terminal text after a run.
func printDiagnosis(w io.Writer, d *stampede.Diagnosis) {
	fmt.Fprintln(w)
	_ = report.DiagnosisText(w, *d)
}
