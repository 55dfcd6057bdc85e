// Package report renders a run's results and diagnosis for people: the
// terminal text printed at the end of a run, Markdown and JSON files for
// the run directory.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

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
// "stampede run": the verdict, then each finding with its status, title,
// the failures it explains, its top evidence lines with their refs, the fix
// and the next experiment; then the hypotheses ruled out.
func DiagnosisText(w io.Writer, d stampede.Diagnosis) error {
	b := &strings.Builder{}
	fmt.Fprintf(b, "Diagnosis: %s", strings.ToUpper(d.Verdict))
	if d.Run != "" {
		fmt.Fprintf(b, " (run %s)", d.Run)
	}
	b.WriteString("\n")
	if len(d.Findings) == 0 {
		b.WriteString("  No finding: nothing in the requests, probes or logs points at a problem.\n")
	}
	for i, f := range d.Findings {
		fmt.Fprintf(b, "\n%d. %s  [%s %s]\n", i+1, f.Title, strings.ToUpper(f.Status), f.ID)
		fmt.Fprintf(b, "   %s\n", explains(f.Explains))
		for _, e := range topEvidence(f.Evidence) {
			line := clip(e.Text, 300)
			if e.Ref != "" {
				line += " (" + e.Ref + ")"
			}
			if !e.Time.IsZero() {
				line = e.Time.UTC().Format("15:04:05") + " " + line
			}
			wrap(b, "   - ", "     ", line)
		}
		if n := len(f.Evidence) - maxEvidence; n > 0 {
			fmt.Fprintf(b, "   - (%d more in diagnosis.json)\n", n)
		}
		wrap(b, "   fix:  ", "         ", f.Fix)
		wrap(b, "   next: ", "         ", f.NextExperiment)
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
		b.WriteString("\nNothing in the requests, probes or logs points at a problem.\n")
	}
	for i, f := range d.Findings {
		fmt.Fprintf(b, "\n## %d. %s\n\n", i+1, mdText(f.Title))
		fmt.Fprintf(b, "`%s`, **%s** (confidence %.2f). %s.\n", f.ID, f.Status, f.Confidence, explainsMD(f.Explains))
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

func explains(x stampede.Explains) string {
	if x.Failures == 0 {
		return "explains no failure (a slowness or trust finding)"
	}
	return fmt.Sprintf("explains %s on %s", plural(x.Failures, "failure"), strings.Join(x.Endpoints, ", "))
}

func explainsMD(x stampede.Explains) string {
	if x.Failures == 0 {
		return "Explains no failure"
	}
	eps := make([]string, len(x.Endpoints))
	for i, e := range x.Endpoints {
		eps[i] = "`" + e + "`"
	}
	return fmt.Sprintf("Explains **%s** on %s", plural(x.Failures, "failure"), strings.Join(eps, ", "))
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
