package main

import (
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/stampede-load/stampede/internal/check"
	"github.com/stampede-load/stampede/internal/har"
	"github.com/stampede-load/stampede/internal/load"
)

func init() {
	commands["har"] = command{
		summary: "make a scenario from a browser recording: stampede har RECORDING.har [-o scenario.yaml] [--check]",
		run:     cmdHAR,
	}
}

// harFlags are the flags of "stampede har".
type harFlags struct {
	out, usersFile, origin, target string
	keepStatic, noCorrelate, check bool
	user                           int
}

func cmdHAR(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("har", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f harFlags
	fs.StringVar(&f.out, "o", "", "write the scenario to this file (default: print it), and the users file's header beside it")
	fs.StringVar(&f.usersFile, "users-file", "", "the users file the scenario names (default users.csv beside it); an existing one's columns are used, a missing one is written with its header only")
	fs.StringVar(&f.origin, "origin", "", "the target's origin, scheme://host[:port], when the recording's pages come from several")
	fs.StringVar(&f.target, "target", "", "the scenario's target URL (default: the recording's origin), e.g. a fresh test instance")
	fs.BoolVar(&f.keepStatic, "keep-static", false, "keep the target's own static assets (scripts, styles, images) as steps, as a browser loads them")
	fs.BoolVar(&f.noCorrelate, "no-correlate", false, "send every value as recorded (a naive converter's scenario: its login fails where the server checks a token)")
	fs.BoolVar(&f.check, "check", false, "run the scenario once as one user of the users file and compare each step with the recording; exit 1 at the first that differs")
	fs.IntVar(&f.user, "user", 1, "with --check: the users file's row (from 1) to log in with")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: stampede har RECORDING.har [-o scenario.yaml] [--users-file users.csv] [--check]\n\nReads a HAR recording (Chromium, Firefox and Safari DevTools' \"Save all as HAR\", mitmproxy, Charles,\nFiddler, Proxyman) and writes a scenario that logs in as the users file's users, every token traced\nto the response that handed it out.\n\nFlags:")
		fs.PrintDefaults()
	}
	positional, err := parseAnyOrder(fs, args)
	if err != nil {
		return err
	}
	if len(positional) != 1 {
		return withHint(fmt.Errorf("har: want one recording, got %d", len(positional)), "stampede har recording.har -o scenario.yaml")
	}
	src := positional[0]
	l, err := har.ReadFile(src, nil)
	if err != nil {
		return withHint(fmt.Errorf("har: %w", err), "export the recording from the browser's DevTools: Network tab, \"Save all as HAR\" (with content)")
	}

	scenarioPath := f.out
	usersRef := f.usersFile // as the scenario names it
	usersPath := ""         // where it is on disk
	switch {
	case usersRef == "":
		usersRef = "users.csv"
		usersPath = "users.csv"
		if scenarioPath != "" {
			usersPath = filepath.Join(filepath.Dir(scenarioPath), "users.csv")
		}
	case scenarioPath != "" && !filepath.IsAbs(usersRef):
		// The flag names a file from here; the scenario names it from
		// its own directory.
		usersPath = usersRef
		if rel, err := filepath.Rel(filepath.Dir(scenarioPath), usersRef); err == nil {
			usersRef = rel
		}
	default:
		usersPath = usersRef
	}
	header, rows, herr := readUsersHeader(usersPath)
	opts := har.Options{FilterOptions: har.FilterOptions{Origin: f.origin, KeepStatic: f.keepStatic},
		NoCorrelate: f.noCorrelate, Target: f.target, UsersFile: filepath.ToSlash(usersRef), UsersHeader: header, Source: filepath.Base(src)}
	res, err := har.Convert(l, opts)
	if err != nil {
		var oe *har.OriginsError
		if errors.As(err, &oe) {
			return withHint(fmt.Errorf("har: %w", err), "stampede har "+src+" --origin "+oe.Origins[0].Origin)
		}
		return fmt.Errorf("har: %s: %w", src, err)
	}
	report := stdout
	if scenarioPath == "" {
		report = stderr
		if _, err := stdout.Write(res.Scenario); err != nil {
			return fmt.Errorf("har: %w", err)
		}
	} else if err := os.WriteFile(scenarioPath, res.Scenario, 0o644); err != nil {
		return fmt.Errorf("har: %w", err)
	}
	printHARReport(report, src, l, res)
	if scenarioPath != "" {
		fmt.Fprintf(report, "Wrote %s.\n", scenarioPath)
	}
	if res.UsersHeader != nil {
		switch {
		case herr == nil && len(rows) > 0:
			fmt.Fprintf(report, "Users file %s: %d accounts (columns %s).\n", usersPath, len(rows), strings.Join(header, ","))
		case herr == nil:
			fmt.Fprintf(report, "Users file %s has no account yet: add one row per account under its header.\n", usersPath)
		case errors.Is(herr, os.ErrNotExist) && scenarioPath != "":
			if err := writeUsersHeader(usersPath, res.UsersHeader); err != nil {
				return fmt.Errorf("har: %w", err)
			}
			fmt.Fprintf(report, "Wrote %s with its header only (%s): add one row per account (for the lab: stampede lab users --count 20 > %s).\n",
				usersPath, strings.Join(res.UsersHeader, ","), usersPath)
		case errors.Is(herr, os.ErrNotExist):
			fmt.Fprintf(report, "The scenario needs a users file %s with the header %s and one row per account.\n", usersPath, strings.Join(res.UsersHeader, ","))
		default:
			return fmt.Errorf("har: --users-file: %w", herr)
		}
	}
	if !f.check {
		if scenarioPath != "" {
			fmt.Fprintf(report, "Next: stampede har %s -o %s --check (runs it once as one user), then stampede run %s\n", src, scenarioPath, scenarioPath)
		}
		return nil
	}
	if res.UsersHeader != nil && len(rows) == 0 {
		return withHint(fmt.Errorf("har: --check: the users file %s has no account to log in with", usersPath),
			"add a row of a real account under the header "+strings.Join(res.UsersHeader, ","))
	}
	name := scenarioPath
	if name == "" {
		name = "scenario.yaml" // its users file is named from here
	}
	sc, err := load.ParseScenario(name, res.Scenario)
	if err != nil {
		return fmt.Errorf("har: the scenario made does not parse (a bug): %w", err)
	}
	plan, err := sc.Compile()
	if err != nil {
		return fmt.Errorf("har: --check: %w", err)
	}
	recorded := map[[2]int]*check.Recorded{}
	for _, s := range res.Steps {
		recorded[[2]int{s.Task, s.Index}] = recordedOf(&s)
	}
	rep, err := check.Run(ctx, plan, check.Options{User: f.user, Recorded: func(task, i int) *check.Recorded { return recorded[[2]int{task, i}] }})
	return printCheck(report, plan, f.user, rep, err, "the recording")
}

// recordedOf is what the recording got for a step.
func recordedOf(s *har.StepRecord) *check.Recorded {
	e := s.Entry
	r := &check.Recorded{Status: e.Response.Status, Location: s.Location, ContentType: e.Response.MimeType,
		Size: e.Response.Size, LoginPage: har.IsLoginPage(e)}
	for _, src := range s.Sources {
		r.Sources = append(r.Sources, check.Source(src))
	}
	return r
}

// runCheck is stampede run --check: the scenario once as one user, each
// step against its own expect and the login against the pages after it.
func runCheck(ctx context.Context, plan *load.Plan, w io.Writer) error {
	rep, err := check.Run(ctx, plan, check.Options{User: 1})
	return printCheck(w, plan, 1, rep, err, "")
}

// printCheck prints a check's steps and returns the first difference as
// an error (exit status 1).
func printCheck(w io.Writer, plan *load.Plan, user int, rep *check.Report, err error, against string) error {
	who := fmt.Sprintf("user %d", user)
	if len(plan.Header) > 0 {
		who += " of the users file"
	}
	fmt.Fprintf(w, "\nCheck: the scenario once as %s against %s", who, plan.Target.Redacted())
	if against != "" {
		fmt.Fprintf(w, ", each step compared with %s", against)
	}
	fmt.Fprintln(w, ":")
	if rep != nil {
		width := 0
		for _, s := range rep.Steps {
			width = max(width, len(s.Name))
		}
		for _, s := range rep.Steps {
			mark := "ok  "
			if s.Problem != "" {
				mark = "FAIL"
			}
			line := fmt.Sprintf("  %s %-*s %3d", mark, width, s.Name, s.Status)
			if s.Location != "" {
				line += " → " + s.Location
			} else if s.ContentType != "" {
				line += fmt.Sprintf(" %s %d B", s.ContentType, s.Size)
			}
			fmt.Fprintln(w, line)
		}
	}
	if err != nil {
		return err
	}
	if rep.Failed != nil {
		fmt.Fprintf(w, "\n%s: %s\n", rep.Failed.Name, rep.Failed.Problem)
		return fmt.Errorf("check: %s: %s", rep.Failed.Name, rep.Failed.Problem)
	}
	fmt.Fprintf(w, "\nCheck passed: %d steps did as %s.\n", len(rep.Steps), map[bool]string{true: "recorded", false: "expected"}[against != ""])
	return nil
}

// printHARReport prints what was left out, the login, each correlation and
// every value sent as recorded. It never prints a value that could be a
// secret: only the constants' short values.
func printHARReport(w io.Writer, src string, l *har.Log, res *har.Result) {
	tool := strings.TrimSpace(l.Creator.Name + " " + l.Creator.Version)
	fmt.Fprintf(w, "Read %s: %d entries", src, len(l.Entries))
	if tool != "" {
		fmt.Fprintf(w, " (%s)", tool)
	}
	fmt.Fprintf(w, "; target %s.\n", res.Origin)
	for _, warn := range l.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", warn)
	}
	if len(res.LeftOut) > 0 {
		keys := make([]string, 0, len(res.LeftOut))
		for k := range res.LeftOut {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			p := fmt.Sprintf("%d %s", res.LeftOut[k], k)
			if k == har.LeftThirdParty {
				var hosts []string
				for h, n := range res.ThirdParty {
					hosts = append(hosts, fmt.Sprintf("%s %d", h, n))
				}
				sort.Strings(hosts)
				p += " (" + strings.Join(hosts, ", ") + ")"
			}
			parts = append(parts, p)
		}
		fmt.Fprintf(w, "Left out: %s.\n", strings.Join(parts, "; "))
	}
	if lg := res.Login; lg != nil {
		how := "a form post"
		switch {
		case lg.JSON:
			how = "a JSON post"
		case lg.SubmitForm:
			how = "submit_form, carrying the form's hidden fields"
		}
		fmt.Fprintf(w, "Login: %s in on_start (%s): %s.\n", lg.Step, how, strings.Join(lg.Fields, ", "))
	} else {
		fmt.Fprintln(w, "Login: none found (no request sent a password field); the scenario has no on_start.")
	}
	if len(res.Correlations) > 0 {
		fmt.Fprintf(w, "Correlated (%d):\n", len(res.Correlations))
		for _, c := range res.Correlations {
			name := "carried"
			if c.Var != "" {
				name = "{{" + c.Var + "}}"
			}
			line := fmt.Sprintf("  %s from %s (%s) by %s", name, c.From, fmt.Sprintf("log.entries[%d]", c.FromEntry), c.Rule)
			if c.Approximate {
				line += " (the first such link: the recording followed another)"
			}
			if len(c.UsedIn) > 0 {
				line += "; used in " + strings.Join(c.UsedIn, ", ")
			}
			if c.NotExpressed != "" {
				line += "; SENT AS RECORDED: " + c.NotExpressed
			}
			fmt.Fprintln(w, line)
		}
	}
	groups := map[string][]har.Unresolved{}
	for _, u := range res.Unresolved {
		groups[u.Kind] = append(groups[u.Kind], u)
	}
	for _, g := range []struct{ kind, title string }{
		{har.NotTraced, "Not traced (sent as recorded; a value the server checks will fail)"},
		{har.ClientMade, "Made by the page's script (sent as recorded)"},
		{har.ScriptCookie, "Cookies set by the page's script (not sent)"},
		{har.Constant, "Constants (sent as recorded)"},
	} {
		us := groups[g.kind]
		if len(us) == 0 {
			continue
		}
		fmt.Fprintf(w, "%s (%d):\n", g.title, len(us))
		for i, u := range us {
			if i == 12 {
				fmt.Fprintf(w, "  … and %d more\n", len(us)-i)
				break
			}
			line := "  " + u.Step + " " + u.Sent
			if u.Value != "" {
				line += " = " + u.Value
			}
			if u.Why != "" {
				line += ": " + u.Why
			}
			fmt.Fprintln(w, line)
		}
	}
	for _, warn := range res.Warnings {
		fmt.Fprintf(w, "Warning: %s\n", warn)
	}
	tasks := map[int]bool{}
	onStart := 0
	for _, s := range res.Steps {
		if s.Task < 0 {
			onStart++
		} else {
			tasks[s.Task] = true
		}
	}
	fmt.Fprintf(w, "Scenario: %d on_start steps, %d tasks, think %s.\n", onStart, len(tasks), res.Think)
}

// readUsersHeader reads an existing users file's header and rows.
func readUsersHeader(path string) ([]string, [][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.TrimLeadingSpace = true
	recs, err := r.ReadAll()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(recs) == 0 {
		return nil, nil, nil
	}
	recs[0][0] = strings.TrimPrefix(recs[0][0], "\ufeff")
	return recs[0], recs[1:], nil
}

func writeUsersHeader(path string, header []string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write(header)
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
