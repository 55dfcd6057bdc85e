package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/metrics"
	"github.com/stampede-load/stampede/internal/rundir"
)

// CompareAlpha is the significance level of the latency test of Compare.
const CompareAlpha = 0.05

// Comparison is what changed from run A (before) to run B (after): per
// endpoint, the success rate, latency percentiles and throughput, with a
// Mann-Whitney U test on the latency distributions; the findings that
// appeared or disappeared; the verdict. Its JSON (WriteJSON) is:
//
//	{
//	  "a": RUN, "b": RUN,
//	  "alpha": 0.05,
//	  "verdict": {"a": "fail", "b": "pass", "changed": true},   // "" when not diagnosed; changed only when both were
//	  "endpoints": [{                       // by name then method, the Aggregated row last
//	    "method": "POST", "name": "[AUTH] Login POST",
//	    "in": "both",                       // "both", "a" (only in run A) or "b"
//	    "a": FIGURES, "b": FIGURES,         // absent for the run that lacks the endpoint
//	    "success_rate_delta": 0.2,          // B - A, a fraction (0.2 = +20 points)
//	    "rps_ratio": 1.05,                  // B / A; 0 when A has no throughput
//	    "latency_test": {"u": 1234.5, "z": -8.1, "p": 1e-15, "significant": true, "b_slower": false},
//	    "not_tested": "..."                 // why there is no latency_test, when there is none
//	  }],
//	  "findings_compared": true,            // false unless both runs have a diagnosis.json
//	  "findings": [{"id": "db-pool-wait-timeout", "change": "disappeared",  // appeared, disappeared, changed, unchanged
//	                "title": "...", "status_a": "confirmed", "status_b": "",
//	                "failures_a": 120, "failures_b": 0}]
//	}
//
// RUN is {"dir", "run", "start", "duration_s", "partial", "diagnosed", "verdict"};
// FIGURES is {"requests", "failures", "success_rate", "rps", "p50_ms", "p95_ms", "p99_ms"}.
type Comparison struct {
	A         RunInfo          `json:"a"`
	B         RunInfo          `json:"b"`
	Alpha     float64          `json:"alpha"`
	Verdict   VerdictChange    `json:"verdict"`
	Endpoints []EndpointChange `json:"endpoints"`
	// FindingsCompared is false when a run has no diagnosis.json.
	FindingsCompared bool            `json:"findings_compared"`
	Findings         []FindingChange `json:"findings"`
}

// RunInfo identifies one side of a Comparison.
type RunInfo struct {
	Dir       string    `json:"dir"`
	Run       string    `json:"run"`
	Start     time.Time `json:"start,omitzero"`
	DurationS float64   `json:"duration_s"`
	Partial   bool      `json:"partial"`
	Diagnosed bool      `json:"diagnosed"`
	Verdict   string    `json:"verdict,omitempty"`
}

// VerdictChange is the diagnosis' verdict of each run ("pass", "fail"; ""
// when the run was not diagnosed).
type VerdictChange struct {
	A       string `json:"a"`
	B       string `json:"b"`
	Changed bool   `json:"changed"`
}

// EndpointChange compares one endpoint (method and name) across the runs.
type EndpointChange struct {
	Method string `json:"method"`
	Name   string `json:"name"`
	// In is "both", "a" (only in run A) or "b" (only in run B).
	In string           `json:"in"`
	A  *EndpointFigures `json:"a,omitempty"`
	B  *EndpointFigures `json:"b,omitempty"`
	// SuccessRateDelta is B's success rate minus A's, a fraction.
	SuccessRateDelta float64 `json:"success_rate_delta"`
	// RPSRatio is B's throughput over A's; 0 when A has none.
	RPSRatio float64 `json:"rps_ratio"`
	// Latency is the Mann-Whitney U test of the two latency distributions;
	// nil when it could not run, NotTested says why.
	Latency   *LatencyTest `json:"latency_test,omitempty"`
	NotTested string       `json:"not_tested,omitempty"`
}

// EndpointFigures are one run's figures of an endpoint.
type EndpointFigures struct {
	Requests    int64   `json:"requests"`
	Failures    int64   `json:"failures"`
	SuccessRate float64 `json:"success_rate"`
	RPS         float64 `json:"rps"`
	P50         float64 `json:"p50_ms"`
	P95         float64 `json:"p95_ms"`
	P99         float64 `json:"p99_ms"`
}

// LatencyTest is the result of a Mann-Whitney U test on the latency
// histograms of an endpoint in both runs (metrics.Compare).
type LatencyTest struct {
	U float64 `json:"u"`
	Z float64 `json:"z"`
	P float64 `json:"p"`
	// Significant reports P < Comparison.Alpha.
	Significant bool `json:"significant"`
	// BSlower reports that B's latencies tend to be higher than A's.
	BSlower bool `json:"b_slower"`
}

// FindingChange is a finding id seen in either run's diagnosis.
type FindingChange struct {
	ID string `json:"id"`
	// Change is "appeared" (only in B), "disappeared" (only in A),
	// "changed" (status differs) or "unchanged".
	Change    string `json:"change"`
	Title     string `json:"title"`
	StatusA   string `json:"status_a"`
	StatusB   string `json:"status_b"`
	FailuresA int    `json:"failures_a"`
	FailuresB int    `json:"failures_b"`
	SlowA     int    `json:"slow_a"`
	SlowB     int    `json:"slow_b"`
}

// Compare compares the run directories dirA (before) and dirB (after) from
// their summary.json (required: it holds the latency histograms) and
// diagnosis.json (optional). Errors name the directory or file at fault.
func Compare(dirA, dirB string) (*Comparison, error) {
	sa, da, err := readCompareSide(dirA)
	if err != nil {
		return nil, err
	}
	sb, db, err := readCompareSide(dirB)
	if err != nil {
		return nil, err
	}
	c := &Comparison{
		A: runInfo(dirA, sa, da), B: runInfo(dirB, sb, db),
		Alpha: CompareAlpha,
	}
	c.Verdict = VerdictChange{A: c.A.Verdict, B: c.B.Verdict}
	c.Verdict.Changed = c.A.Diagnosed && c.B.Diagnosed && c.A.Verdict != c.B.Verdict
	c.Endpoints = compareEndpoints(sa, sb)
	if da != nil && db != nil {
		c.FindingsCompared = true
		c.Findings = compareFindings(da, db)
	}
	return c, nil
}

// readCompareSide reads what Compare needs of one run directory.
func readCompareSide(dir string) (*metrics.Summary, *stampede.Diagnosis, error) {
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil, fmt.Errorf("compare: run directory %s does not exist", dir)
	case err != nil:
		return nil, nil, fmt.Errorf("compare: %w", err)
	case !st.IsDir():
		return nil, nil, fmt.Errorf("compare: %s is not a run directory", dir)
	}
	path := filepath.Join(dir, rundir.SummaryFile)
	s, err := metrics.ReadSummary(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("compare: %s is missing: %s is not a run directory, or its run never got going", path, dir)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("compare: %w", err)
	}
	d, err := readDiagnosis(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("compare: %w", err)
	}
	return s, d, nil
}

func runInfo(dir string, s *metrics.Summary, d *stampede.Diagnosis) RunInfo {
	ri := RunInfo{
		Dir: dir, Run: filepath.Base(filepath.Clean(dir)),
		Start: s.Start, DurationS: math.Round(s.Duration.Seconds()*100) / 100, Partial: s.Partial,
	}
	if m, err := rundir.ReadMeta(dir); err == nil && m.Run != "" {
		ri.Run = m.Run
	}
	if d != nil {
		ri.Diagnosed, ri.Verdict = true, d.Verdict
	}
	return ri
}

func figures(e *metrics.EndpointSummary) *EndpointFigures {
	f := &EndpointFigures{
		Requests: e.Requests, Failures: e.Failures, RPS: e.RPS,
		P50: ms(e.Latency.Percentiles[0]), P95: ms(e.Latency.Percentiles[5]), P99: ms(e.Latency.Percentiles[7]),
	}
	if e.Requests > 0 {
		f.SuccessRate = 1 - e.FailureRate
	}
	return f
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func compareEndpoints(sa, sb *metrics.Summary) []EndpointChange {
	type key struct{ method, name string }
	byKey := map[key][2]*metrics.EndpointSummary{}
	var keys []key
	for side, s := range []*metrics.Summary{sa, sb} {
		for i := range s.Endpoints {
			e := &s.Endpoints[i]
			k := key{e.Method, e.Name}
			pair, seen := byKey[k]
			if !seen {
				keys = append(keys, k)
			}
			pair[side] = e
			byKey[k] = pair
		}
	}
	sort.SliceStable(keys, func(i, j int) bool {
		if keys[i].name != keys[j].name {
			return keys[i].name < keys[j].name
		}
		return keys[i].method < keys[j].method
	})
	var out []EndpointChange
	for _, k := range keys {
		p := byKey[k]
		out = append(out, compareEndpoint(p[0], p[1], "A", "B"))
	}
	return append(out, compareEndpoint(&sa.Aggregated, &sb.Aggregated, "A", "B"))
}

func compareEndpoint(a, b *metrics.EndpointSummary, nameA, nameB string) EndpointChange {
	var c EndpointChange
	switch {
	case a == nil:
		c.Method, c.Name, c.In, c.B = b.Method, b.Name, "b", figures(b)
		return c
	case b == nil:
		c.Method, c.Name, c.In, c.A = a.Method, a.Name, "a", figures(a)
		return c
	}
	c.Method, c.Name, c.In = a.Method, a.Name, "both"
	c.A, c.B = figures(a), figures(b)
	c.SuccessRateDelta = c.B.SuccessRate - c.A.SuccessRate
	if c.A.RPS > 0 {
		c.RPSRatio = c.B.RPS / c.A.RPS
	}
	switch {
	case a.Histogram == "":
		c.NotTested = "no latency histogram in " + nameA + "'s summary.json (run interrupted, or still running)"
	case b.Histogram == "":
		c.NotTested = "no latency histogram in " + nameB + "'s summary.json (run interrupted, or still running)"
	}
	if c.NotTested != "" {
		return c
	}
	ha, err := metrics.DecodeHistogram(a.Histogram)
	if err != nil {
		c.NotTested = nameA + "'s histogram: " + err.Error()
		return c
	}
	hb, err := metrics.DecodeHistogram(b.Histogram)
	if err != nil {
		c.NotTested = nameB + "'s histogram: " + err.Error()
		return c
	}
	r, err := metrics.Compare(ha, hb)
	if err != nil {
		c.NotTested = err.Error()
		return c
	}
	c.Latency = &LatencyTest{U: r.U, Z: r.Z, P: r.P, Significant: r.Significant(CompareAlpha), BSlower: r.Z < 0}
	return c
}

// findingOrder is the order of the changes in the findings list.
var findingOrder = map[string]int{"appeared": 0, "disappeared": 1, "changed": 2, "unchanged": 3}

func compareFindings(da, db *stampede.Diagnosis) []FindingChange {
	var out []FindingChange
	index := map[string]int{}
	for _, f := range db.Findings {
		index[f.ID] = len(out)
		out = append(out, FindingChange{ID: f.ID, Change: "appeared", Title: f.Title, StatusB: f.Status, FailuresB: f.Explains.Failures, SlowB: f.Explains.Slow})
	}
	for _, f := range da.Findings {
		i, ok := index[f.ID]
		if !ok {
			out = append(out, FindingChange{ID: f.ID, Change: "disappeared", Title: f.Title, StatusA: f.Status, FailuresA: f.Explains.Failures, SlowA: f.Explains.Slow})
			continue
		}
		c := &out[i]
		c.StatusA, c.FailuresA, c.SlowA = f.Status, f.Explains.Failures, f.Explains.Slow
		c.Change = "unchanged"
		if c.StatusA != c.StatusB {
			c.Change = "changed"
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return findingOrder[out[i].Change] < findingOrder[out[j].Change] })
	return out
}

// WriteJSON writes the comparison as indented JSON (see Comparison).
func (c *Comparison) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(c)
}

// WriteText writes the comparison for a terminal: the runs, the verdict,
// a block per endpoint (A → B, with the change and the latency test) and
// the findings that appeared or disappeared.
func (c *Comparison) WriteText(w io.Writer) error {
	b := &bytes.Buffer{}
	for _, side := range []struct {
		tag string
		r   RunInfo
	}{{"A", c.A}, {"B", c.B}} {
		fmt.Fprintf(b, "%s  %s  (", side.tag, side.r.Dir)
		if side.r.Run != filepath.Base(filepath.Clean(side.r.Dir)) {
			fmt.Fprintf(b, "run %s, ", side.r.Run)
		}
		if !side.r.Start.IsZero() {
			fmt.Fprintf(b, "%s, ", side.r.Start.UTC().Format("2006-01-02 15:04:05 UTC"))
		}
		fmt.Fprintf(b, "%gs", side.r.DurationS)
		if side.r.Partial {
			b.WriteString(", partial")
		}
		b.WriteString(")\n")
	}
	fmt.Fprintf(b, "\nVerdict: %s → %s", verdictText(c.Verdict.A), verdictText(c.Verdict.B))
	if c.Verdict.Changed {
		b.WriteString(" (changed)")
	}
	b.WriteString("\n")

	fmt.Fprintf(b, "\nEndpoints (A → B; latency: Mann-Whitney U test on the HDR histograms, alpha %g)\n", c.Alpha)
	for _, e := range c.Endpoints {
		b.WriteString("\n" + endpointTitle(e) + "\n")
		switch e.In {
		case "a":
			fmt.Fprintf(b, "  only in A (%d requests)\n", e.A.Requests)
			continue
		case "b":
			fmt.Fprintf(b, "  only in B (%d requests)\n", e.B.Requests)
			continue
		}
		row := func(label, a, bv, delta string) {
			line := fmt.Sprintf("  %-9s %-22s %s", label, a+" → "+bv, delta)
			b.WriteString(strings.TrimRight(line, " ") + "\n")
		}
		row("requests", fmt.Sprint(e.A.Requests), fmt.Sprint(e.B.Requests), "")
		row("success", percentText(e.A.SuccessRate), percentText(e.B.SuccessRate), pointsText(e.SuccessRateDelta))
		for _, p := range []struct {
			name string
			a, b float64
		}{{"p50", e.A.P50, e.B.P50}, {"p95", e.A.P95, e.B.P95}, {"p99", e.A.P99, e.B.P99}} {
			row(p.name, msFloatText(p.a), msFloatText(p.b), msDeltaText(p.a, p.b))
		}
		row("rps", trimFloat(e.A.RPS)+"/s", trimFloat(e.B.RPS)+"/s", ratioText(e.RPSRatio))
		fmt.Fprintf(b, "  %-9s %s\n", "latency", testText(e, c.Alpha))
	}

	b.WriteString("\nFindings (A → B)\n")
	switch {
	case !c.FindingsCompared:
		var missing []string
		if !c.A.Diagnosed {
			missing = append(missing, "A")
		}
		if !c.B.Diagnosed {
			missing = append(missing, "B")
		}
		fmt.Fprintf(b, "  not compared: no diagnosis.json in %s (run stampede diagnose first)\n", strings.Join(missing, " and "))
	case len(c.Findings) == 0:
		b.WriteString("  none in either run\n")
	}
	for _, f := range c.Findings {
		status := f.StatusB
		switch f.Change {
		case "disappeared":
			status = f.StatusA
		case "changed":
			status = f.StatusA + " → " + f.StatusB
		}
		fmt.Fprintf(b, "  %-11s %s (%s): %s\n", f.Change, f.ID, status, f.Title)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// endpointTitle is "METHOD name", or the name alone when it has no method
// or already starts with it ("GET /dashboard/").
func endpointTitle(e EndpointChange) string {
	if e.Method == "" || strings.HasPrefix(e.Name, e.Method+" ") {
		return e.Name
	}
	return e.Method + " " + e.Name
}

func verdictText(v string) string {
	if v == "" {
		return "not diagnosed"
	}
	return strings.ToUpper(v)
}

// testText says what the latency test found, in words.
func testText(e EndpointChange, alpha float64) string {
	t := e.Latency
	if t == nil {
		return "not tested: " + e.NotTested
	}
	p := fmt.Sprintf("p = %.3g", t.P)
	if t.P < 0.0001 {
		p = "p < 0.0001"
	}
	if !t.Significant {
		return fmt.Sprintf("%s, not significant at %g", p, alpha)
	}
	dir := "B faster"
	if t.BSlower {
		dir = "B slower"
	}
	return fmt.Sprintf("%s, significant at %g: %s", p, alpha, dir)
}

// percentText formats a fraction as a percentage with one decimal.
func percentText(f float64) string { return fmt.Sprintf("%.1f%%", f*100) }

// pointsText formats a change of a fraction in percentage points.
func pointsText(d float64) string {
	if math.Abs(d) < 0.0005 {
		return "="
	}
	return fmt.Sprintf("%+.1f pp", d*100)
}

// msFloatText formats milliseconds for people: "734 ms", "3.4 ms", "2.10 s".
func msFloatText(v float64) string {
	return msText(time.Duration(v * float64(time.Millisecond)))
}

// msDeltaText formats the change from a to b: "+50 ms (+86%)".
func msDeltaText(a, b float64) string {
	d := b - a
	if math.Abs(d) < 0.05 {
		return "="
	}
	sign := "+"
	if d < 0 {
		sign = "-"
	}
	s := sign + msFloatText(math.Abs(d))
	if a > 0 {
		s += fmt.Sprintf(" (%+.0f%%)", (b/a-1)*100)
	}
	return s
}

// ratioText formats B/A as a relative change: "+5%", "-40%".
func ratioText(r float64) string {
	if r == 0 {
		return ""
	}
	if math.Abs(r-1) < 0.005 {
		return "="
	}
	return fmt.Sprintf("%+.0f%%", (r-1)*100)
}
