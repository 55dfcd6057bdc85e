// Package report renders a run's results and diagnosis for people: the
// terminal text printed at the end of a run, Markdown and JSON files for
// the run directory.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/stampede-load/stampede"
)

// maxEvidence is how many evidence lines a finding shows in text and
// Markdown; diagnosis.json keeps them all.
const maxEvidence = 5

// textWidth is the column at which the terminal text wraps prose.
const textWidth = 100

// DiagnosisJSON writes d as diagnosis.json: the contract of DESIGN.md,
// indented, with a final newline.
func DiagnosisJSON(w io.Writer, d stampede.Diagnosis) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(d)
}

// DiagnosisText writes d as the compact text printed at the end of
// "stampede run": the verdict, then each root cause with its status, title,
// the failed and slow requests it explains, its top evidence lines with
// their refs, the fix and the next experiment, and under it the findings
// it caused; then the thresholds that failed with what explains them, the
// endpoints slow by themselves, and the hypotheses ruled out.
func DiagnosisText(w io.Writer, d stampede.Diagnosis) error {
	b := &strings.Builder{}
	fmt.Fprintf(b, "Diagnosis: %s", strings.ToUpper(d.Verdict))
	if d.Run != "" {
		fmt.Fprintf(b, " (run %s)", d.Run)
	}
	b.WriteString("\n")
	if len(d.Findings) == 0 {
		b.WriteString("  No finding: nothing failed, nothing was slow, and nothing in the requests, probes or logs points at a problem.\n")
	}
	for _, n := range Nest(d.Findings) {
		f := n.Finding
		in := strings.Repeat("   ", n.Depth)
		if n.Depth == 0 {
			fmt.Fprintf(b, "\n%s. %s  [%s %s]\n", n.Label, f.Title, strings.ToUpper(f.Status), f.ID)
		} else {
			fmt.Fprintf(b, "\n%s%s. caused by %s: %s  [%s %s]\n", in, n.Label, f.CausedBy, f.Title, strings.ToUpper(f.Status), f.ID)
		}
		in += "   "
		fmt.Fprintf(b, "%s%s\n", in, explains(f.Explains))
		if f.Explains.Latency != "" {
			wrap(b, in+"latency: ", in+"         ", f.Explains.Latency)
		}
		for _, e := range topEvidence(f.Evidence) {
			line := clip(e.Text, 300)
			if e.Ref != "" {
				line += " (" + e.Ref + ")"
			}
			if !e.Time.IsZero() {
				line = e.Time.UTC().Format("15:04:05") + " " + line
			}
			wrap(b, in+"- ", in+"  ", line)
		}
		if k := len(f.Evidence) - maxEvidence; k > 0 {
			fmt.Fprintf(b, "%s- (%d more in diagnosis.json)\n", in, k)
		}
		wrap(b, in+"fix:  ", in+"      ", f.Fix)
		wrap(b, in+"next: ", in+"      ", f.NextExperiment)
	}
	if failed := failedThresholds(d.Thresholds); len(failed) > 0 {
		b.WriteString("\nFailed thresholds:\n")
		for _, t := range failed {
			line := t.Threshold
			if t.Value != "" {
				line += " (got " + t.Value + ")"
			}
			if len(t.ExplainedBy) > 0 {
				line += ": explained by " + strings.Join(t.ExplainedBy, ", ")
			} else {
				line += ": no finding explains it"
			}
			wrap(b, "   - ", "     ", line)
		}
	}
	if self := slowBySelf(d.Slow); len(self) > 0 {
		b.WriteString("\nSlow by themselves (slow even with little else in flight; not the load's doing):\n")
		for _, s := range self {
			wrap(b, "   - ", "     ", selfLine(s))
		}
	}
	if len(d.RuledOut) > 0 {
		b.WriteString("\nRuled out:\n")
		for _, r := range d.RuledOut {
			wrap(b, "   - "+r.ID+": ", "     ", r.Why)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Nested is a finding in reading order: a root cause, then the findings it
// caused, depth first.
type Nested struct {
	stampede.Finding
	// Depth is 0 for a root, 1 for what it caused, and so on.
	Depth int
	// Label numbers it: "1", then "1.1" for the first finding it caused.
	Label string
}

// Nest orders findings for reading: each root cause (CausedBy empty, or
// naming a finding that is not there) in the diagnosis' order, followed by
// the findings it caused, depth first.
func Nest(fs []stampede.Finding) []Nested {
	ids := map[string]bool{}
	for _, f := range fs {
		ids[f.ID] = true
	}
	var out []Nested
	seen := map[int]bool{}
	var visit func(i, depth int, label string)
	visit = func(i, depth int, label string) {
		seen[i] = true
		out = append(out, Nested{Finding: fs[i], Depth: depth, Label: label})
		k := 0
		for j, g := range fs {
			if !seen[j] && g.CausedBy == fs[i].ID {
				k++
				visit(j, depth+1, fmt.Sprintf("%s.%d", label, k))
			}
		}
	}
	n := 0
	for i, f := range fs {
		if !seen[i] && (f.CausedBy == "" || !ids[f.CausedBy]) {
			n++
			visit(i, 0, fmt.Sprint(n))
		}
	}
	for i := range fs { // a cycle would leave some unvisited
		if !seen[i] {
			n++
			visit(i, 0, fmt.Sprint(n))
		}
	}
	return out
}

func failedThresholds(ts []stampede.ThresholdVerdict) []stampede.ThresholdVerdict {
	var out []stampede.ThresholdVerdict
	for _, t := range ts {
		if !t.Pass {
			out = append(out, t)
		}
	}
	return out
}

func slowBySelf(ss []stampede.SlowEndpoint) []stampede.SlowEndpoint {
	var out []stampede.SlowEndpoint
	for _, s := range ss {
		if s.BySelf {
			out = append(out, s)
		}
	}
	return out
}

func selfLine(s stampede.SlowEndpoint) string {
	line := fmt.Sprintf("%s: %s even with little else in flight (median %s)", s.Endpoint, dur(s.Floor), dur(s.Median))
	if s.Streamed {
		line += "; its response streams, so the time is spent sending"
	}
	return line
}

// dur formats a latency for people: 12 ms, 1.5 s, 12 s.
func dur(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.0f s", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	default:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
}

// DiagnosisMarkdown writes d as diagnosis.md: one section per finding with
// an evidence table (time, source, text, ref), the fix and the next
// experiment, then a table of the hypotheses ruled out.
func DiagnosisMarkdown(w io.Writer, d stampede.Diagnosis) error {
	b := &strings.Builder{}
	fmt.Fprintf(b, "# Diagnosis: %s\n\n", d.Verdict)
	if d.Run != "" {
		fmt.Fprintf(b, "Run `%s`. ", d.Run)
	}
	fmt.Fprintf(b, "%s, %s ruled out.\n", plural(len(d.Findings), "finding"), plural(len(d.RuledOut), "hypothesis"))
	if len(d.Findings) == 0 {
		b.WriteString("\nNothing failed, nothing was slow, and nothing in the requests, probes or logs points at a problem.\n")
	}
	for _, n := range Nest(d.Findings) {
		f := n.Finding
		if n.Depth == 0 {
			fmt.Fprintf(b, "\n## %s. %s\n\n", n.Label, mdText(f.Title))
		} else {
			fmt.Fprintf(b, "\n%s %s. %s\n\n", strings.Repeat("#", min(2+n.Depth, 6)), n.Label, mdText(f.Title))
			fmt.Fprintf(b, "Caused by `%s`. ", f.CausedBy)
		}
		fmt.Fprintf(b, "`%s`, **%s** (confidence %.2f). %s.\n", f.ID, f.Status, f.Confidence, explainsMD(f.Explains))
		if f.Explains.Latency != "" {
			fmt.Fprintf(b, "\nLatency: %s.\n", mdText(f.Explains.Latency))
		}
		if len(f.Evidence) > 0 {
			b.WriteString("\n| time | source | evidence | ref |\n|---|---|---|---|\n")
			for _, e := range topEvidence(f.Evidence) {
				t := ""
				if !e.Time.IsZero() {
					t = e.Time.UTC().Format("15:04:05")
				}
				ref := ""
				if e.Ref != "" {
					ref = "`" + strings.ReplaceAll(e.Ref, "`", "'") + "`"
				}
				fmt.Fprintf(b, "| %s | %s | %s | %s |\n", t, cell(e.Source), cell(e.Text), ref)
			}
			if n := len(f.Evidence) - maxEvidence; n > 0 {
				fmt.Fprintf(b, "\n%d more evidence lines in `diagnosis.json`.\n", n)
			}
		}
		fmt.Fprintf(b, "\n**Fix.** %s\n\n**Next experiment.** %s\n", mdText(f.Fix), mdText(f.NextExperiment))
	}
	if len(d.Thresholds) > 0 {
		b.WriteString("\n## Thresholds\n\n| threshold | value | result | explained by |\n|---|---|---|---|\n")
		for _, t := range d.Thresholds {
			res := "pass"
			if !t.Pass {
				res = "**fail**"
			}
			var by []string
			for _, id := range t.ExplainedBy {
				by = append(by, "`"+id+"`")
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s |\n", cell(t.Threshold), cell(t.Value), res, strings.Join(by, ", "))
		}
	}
	if self := slowBySelf(d.Slow); len(self) > 0 {
		b.WriteString("\n## Slow by themselves\n\n")
		for _, x := range self {
			fmt.Fprintf(b, "- %s\n", mdText(selfLine(x)))
		}
	}
	if len(d.RuledOut) > 0 {
		b.WriteString("\n## Ruled out\n\n| hypothesis | why |\n|---|---|\n")
		for _, r := range d.RuledOut {
			fmt.Fprintf(b, "| `%s` | %s |\n", r.ID, cell(r.Why))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// topEvidence picks the lines worth showing, at most maxEvidence: what the
// client saw and the lines pointing into a log or the timeline (a person
// can open them) first, then the rest; the finding's order is kept.
func topEvidence(es []stampede.EvidenceRef) []stampede.EvidenceRef {
	first := func(e stampede.EvidenceRef) bool { return e.Ref != "" || e.Source == "requests" }
	keep := make([]bool, len(es))
	n := 0
	for pass := 0; pass < 2; pass++ {
		for i, e := range es {
			if n < maxEvidence && !keep[i] && first(e) == (pass == 0) {
				keep[i] = true
				n++
			}
		}
	}
	var out []stampede.EvidenceRef
	for i, e := range es {
		if keep[i] {
			out = append(out, e)
		}
	}
	return out
}

// explained says what a finding explains: "80 failures and 35 slow
// requests", "" for nothing.
func explained(x stampede.Explains) string {
	var parts []string
	if x.Failures > 0 {
		parts = append(parts, plural(x.Failures, "failure"))
	}
	if x.Slow > 0 {
		parts = append(parts, plural(x.Slow, "slow request"))
	}
	return strings.Join(parts, " and ")
}

func explains(x stampede.Explains) string {
	what := explained(x)
	if what == "" {
		return "explains no failed or slow request"
	}
	return fmt.Sprintf("explains %s on %s", what, strings.Join(x.Endpoints, ", "))
}

func explainsMD(x stampede.Explains) string {
	what := explained(x)
	if what == "" {
		return "Explains no failed or slow request"
	}
	eps := make([]string, len(x.Endpoints))
	for i, e := range x.Endpoints {
		eps[i] = "`" + e + "`"
	}
	return fmt.Sprintf("Explains **%s** on %s", what, strings.Join(eps, ", "))
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	if strings.HasSuffix(word, "is") {
		return fmt.Sprintf("%d %ses", n, word[:len(word)-2])
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// clip shortens s to at most n runes, marking the cut.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// wrap writes text after first, wrapping at textWidth columns and
// indenting continuation lines with rest.
func wrap(b *strings.Builder, first, rest, text string) {
	line := first
	n := len([]rune(line))
	empty := true
	for _, word := range strings.Fields(text) {
		wl := len([]rune(word))
		if !empty && n+1+wl > textWidth {
			b.WriteString(line + "\n")
			line, n, empty = rest, len([]rune(rest)), true
		}
		if !empty {
			line += " "
			n++
		}
		line += word
		n += wl
		empty = false
	}
	b.WriteString(line + "\n")
}

// mdText escapes the characters Markdown would take for markup in prose.
func mdText(s string) string {
	// Underscores stay: GitHub's Markdown does not emphasise inside
	// words, and query_wait_timeout must stay greppable in the raw file.
	r := strings.NewReplacer("*", `\*`, "<", "&lt;", ">", "&gt;", "`", "'")
	return r.Replace(s)
}

// cell escapes text for a Markdown table cell.
func cell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(mdText(s), "|", `\|`), "\n", " ")
}
