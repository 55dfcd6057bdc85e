package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/evidence"
)

func init() {
	commands["evidence"] = command{
		summary: "classify server logs offline: stampede evidence [--json] NAME=PATH|PATH...",
		run:     cmdEvidence,
	}
}

// cmdEvidence parses logs with the signature catalog and prints what it
// found: counts per class and signature, first and last time, examples with
// file:line. With --json it prints evidence.jsonl lines instead (one
// stampede.Evidence per line, the format of the run directory).
func cmdEvidence(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("evidence", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sigFiles []string
	fs.Func("signatures", "extra signature catalog `FILE` (YAML or JSON, the format of the built-in one); its entries win (repeatable)", func(v string) error {
		sigFiles = append(sigFiles, v)
		return nil
	})
	asJSON := fs.Bool("json", false, "print evidence.jsonl lines instead of the summary")
	all := fs.Bool("all", false, "keep every event, not only classified ones, warnings, errors and stack traces")
	tz := fs.String("tz", "Local", "time `ZONE` of timestamps written without one (IANA name, e.g. UTC or Asia/Jakarta)")
	examples := fs.Int("examples", 3, "examples printed per signature")
	list := fs.Bool("list", false, "print the signature catalog (built-in plus --signatures) and exit")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: stampede evidence [--signatures FILE] [--json] NAME=PATH|PATH...\n\n"+
			"Classifies server logs (app error logs, PgBouncer, PostgreSQL, Redis, gunicorn, nginx, access logs)\n"+
			"against the catalog of known error signatures.\n\nFlags:")
		fs.PrintDefaults()
	}
	logs, err := evidenceArgs(fs, args)
	if err != nil {
		return err
	}
	cat, err := evidence.LoadCatalog(sigFiles)
	if err != nil {
		return withHint(fmt.Errorf("evidence: %w", err), "stampede evidence --list shows the built-in catalog's format")
	}
	if *list {
		return printCatalog(stdout, cat)
	}
	if len(logs) == 0 {
		return withHint(errors.New("evidence: no log given"), "stampede evidence app=logs/errors.log pgbouncer=/var/log/postgresql/pgbouncer.log")
	}
	loc, err := time.LoadLocation(*tz)
	if err != nil {
		return fmt.Errorf("evidence: --tz %q: %w", *tz, err)
	}
	if *examples < 0 {
		return fmt.Errorf("evidence: --examples %d: want 0 or more", *examples)
	}

	var evs []stampede.Evidence
	enc := json.NewEncoder(stdout)
	for _, l := range logs {
		f, err := os.Open(l.Path)
		if err != nil {
			return fmt.Errorf("evidence: log %s: %w", l.Name, err)
		}
		p := evidence.NewParser(l.Name, l.Path, cat, loc)
		p.KeepAll = *all
		var encErr error
		err = evidence.ParseReader(ctx, f, p, func(ev stampede.Evidence) {
			if *asJSON {
				if encErr == nil {
					encErr = enc.Encode(ev)
				}
				return
			}
			evs = append(evs, ev)
		})
		f.Close()
		if err != nil {
			return fmt.Errorf("evidence: log %s: %s: %w", l.Name, l.Path, err)
		}
		if encErr != nil {
			return fmt.Errorf("evidence: writing: %w", encErr)
		}
	}
	if *asJSON {
		return nil
	}
	return evidence.Summarize(evs, *examples).WriteText(stdout)
}

// evidenceArgs parses flags and NAME=PATH or PATH arguments in any order.
// A bare PATH is named after its file, without extension.
func evidenceArgs(fs *flag.FlagSet, args []string) ([]evidence.Log, error) {
	var logs []evidence.Log
	seen := map[string]bool{}
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return logs, nil
		}
		arg := fs.Arg(0)
		args = fs.Args()[1:]
		name, path, ok := strings.Cut(arg, "=")
		if !ok || name == "" || strings.ContainsAny(name, `/\`) {
			path = arg
			name = strings.TrimSuffix(filepath.Base(arg), filepath.Ext(arg))
		}
		if path == "" {
			return nil, fmt.Errorf("evidence: %q: empty path", arg)
		}
		if seen[name] {
			return nil, withHint(fmt.Errorf("evidence: log name %q given twice", name), "name the logs: NAME=PATH")
		}
		seen[name] = true
		logs = append(logs, evidence.Log{Name: name, Path: path})
	}
}

// printCatalog lists the catalog: id, class, side and text.
func printCatalog(w io.Writer, cat *evidence.Catalog) error {
	for _, s := range cat.Signatures() {
		text := s.Literal
		switch {
		case s.Regex != "":
			text = "/" + s.Regex + "/"
		case len(s.Any) > 0:
			text = strings.Join(s.Any, " | ")
		case text == "":
			text = fmt.Sprint(s.Fields)
		}
		if _, err := fmt.Fprintf(w, "%-44s %-26s %-6s %s\n", s.ID, s.Class, s.Side, text); err != nil {
			return err
		}
	}
	return nil
}
