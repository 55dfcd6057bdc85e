package report

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/metrics"
	"github.com/stampede-load/stampede/internal/rundir"
)

// HTMLFile is the name of the report WriteHTML writes in a run directory.
const HTMLFile = "report.html"

// assets holds the page templates, the page's script and style, and the
// chart library (uPlot, vendored from npm by scripts/vendor-assets). Every
// page inlines what it uses: a report opens with no network.
//
//go:embed assets
var assets embed.FS

// pageAssets are the inlined scripts and styles, read once.
type pageAssets struct {
	UPlotJS  template.JS
	UPlotCSS template.CSS
	JS       template.JS
	CSS      template.CSS
}

func loadAssets() pageAssets {
	read := func(name string) string {
		b, err := assets.ReadFile("assets/" + name)
		if err != nil {
			panic(err) // embedded at build time: cannot be missing
		}
		return string(b)
	}
	return pageAssets{
		UPlotJS:  template.JS(read("uPlot.iife.min.js")),
		UPlotCSS: template.CSS(read("uPlot.min.css")),
		JS:       template.JS(read("report.js")),
		CSS:      template.CSS(read("report.css")),
	}
}

// parsePage parses the shared layout with one page's template.
func parsePage(name string) *template.Template {
	return template.Must(template.New(name).Funcs(template.FuncMap{
		"lower": strings.ToLower,
	}).ParseFS(assets, "assets/layout.html.tmpl", "assets/"+name))
}

var reportTemplate = parsePage("report.html.tmpl")

// WriteHTML writes DIR/report.html, the run's self-contained report, from
// the files of the run directory dir: meta.json, requests.csv, summary.json,
// timeline.jsonl, evidence.jsonl and diagnosis.json. Only the directory is
// required: a missing file leaves its part of the page out, with a note
// saying why (a run not yet diagnosed, a run without probes). The file is
// written atomically.
func WriteHTML(dir string) error {
	var buf bytes.Buffer
	if err := RenderHTML(&buf, dir); err != nil {
		return err
	}
	path := filepath.Join(dir, HTMLFile)
	if err := rundir.WriteFileAtomic(path, buf.Bytes()); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// RenderHTML writes the report of the run directory dir to w, as WriteHTML
// writes it to report.html.
func RenderHTML(w io.Writer, dir string) error {
	rd, err := readRun(dir, 0)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := reportTemplate.Execute(w, buildReportPage(rd, time.Now())); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// reportPage is what report.html.tmpl renders.
type reportPage struct {
	pageAssets
	Title     string
	Run       runFacts
	Figures   []figure
	Diagnosis *stampede.Diagnosis
	Findings  []findingView
	// Thresholds are the failed thresholds with what explains them.
	Thresholds []stampede.ThresholdVerdict
	// SlowBySelf describes the endpoints slow even with little in flight.
	SlowBySelf []string
	Endpoints  []endpointRow
	Total      *endpointRow
	Failures   []failureRow
	Groups     []evidenceGroupView
	Probes     []probeView
	Notes      []string
	Generated  string
	Version    string
	Data       pageData
}

// pageData is the JSON the page's script draws from, embedded in the page:
// series aggregated per bucket, never per request.
//
//	{
//	  "t0": 1764240000,        // Unix seconds of bucket 0 (seconds since start when relative)
//	  "step": 1,               // seconds per bucket
//	  "n": 120,                // buckets per series
//	  "relative": false,       // x axis in seconds since start (compare) instead of clock time
//	  "charts": [{"id": "throughput", "title": "...", "axes": ["requests/s", "users"],
//	              "series": [{"label": "requests/s", "unit": "/s", "axis": 0,
//	                          "color": "#1f77b4", "values": [12.5, null, ...]}]}],
//	  "groups": [{"key": "db-pool-wait-timeout / pgbouncer-query-wait-timeout", "color": "#d62728",
//	              "count": 80, "example": EXCERPT, ...}],
//	  "markers": [{"t": 1764240012.25, "g": 0, "n": 3, "events": [EXCERPT, ...]}],
//	  "loads": [{"t": 1764240041.2, "label": "→ 200 users (ui)"},   // changes of the load
//	            {"t": 1764240090.5, "label": "stopped (ui)", "stop": true}]
//	}
//
// EXCERPT is {"time", "source", "level", "message", "exception", "stack", "ref"}.
type pageData struct {
	T0       float64         `json:"t0"`
	Step     float64         `json:"step"`
	N        int             `json:"n"`
	Relative bool            `json:"relative,omitempty"`
	Charts   []chartJSON     `json:"charts"`
	Groups   []evidenceGroup `json:"groups"`
	Markers  []markerJSON    `json:"markers"`
	// Loads are the changes of the load (and a stop) made while the run
	// ran, drawn on every time chart.
	Loads []loadMarkJSON `json:"loads,omitempty"`
}

// runFacts are the run's facts shown in the page's header.
type runFacts struct {
	ID, Dir, Target, Host string
	Start, End, Duration  string
	Load                  string
	Partial               bool
	EndReason             string
	Logs                  []string
	Probes                []string
	Verdict               string // "pass", "fail", "" when not diagnosed
}

// figure is one of the headline numbers.
type figure struct {
	Label, Value string
	Bad          bool
}

// findingView is a finding as the page shows it.
type findingView struct {
	stampede.Finding
	N          string // "1", "1.1" for what 1 caused
	Depth      int
	Confidence string
	Explains   string
	Top, More  []evidenceView
}

type evidenceView struct {
	Time, Source, Text, Ref string
	// T is the time in Unix seconds, for the page's script to open the log
	// events around it; "" without a time.
	T string
}

// endpointRow is one row of the endpoint table, formatted.
type endpointRow struct {
	Method, Name                          string
	Requests, Failures, FailPct           string
	Median, Avg, Min, Max, P95, P99, Size string
	RPS, FailPerSec                       string
	// Classes counts the failures by outcome class: "status 80, content 460".
	Classes string
	Failing bool
}

type failureRow struct {
	Method, Name, Reason, Outcome, Occurrences, First, Last string
}

type evidenceGroupView struct {
	evidenceGroup
	Index       int
	First, Last string
}

// probeView sums up one timeline source.
type probeView struct {
	Source, Samples, Errors, FirstError string
}

func buildReportPage(rd *runData, now time.Time) *reportPage {
	p := &reportPage{
		pageAssets: loadAssets(),
		Notes:      rd.Notes,
		Diagnosis:  rd.Diagnosis,
		Generated:  now.UTC().Format("2006-01-02 15:04:05 UTC"),
		Version:    stampede.Version,
	}
	p.Run = factsOf(rd)
	p.Title = "stampede report: " + p.Run.ID
	if rd.Summary != nil {
		p.Figures = figuresOf(rd.Summary)
		for _, e := range rd.Summary.Endpoints {
			p.Endpoints = append(p.Endpoints, endpointRowOf(&e))
		}
		t := endpointRowOf(&rd.Summary.Aggregated)
		p.Total = &t
		for _, f := range rd.Summary.Failures {
			p.Failures = append(p.Failures, failureRow{
				Method: f.Method, Name: f.Name, Reason: f.Reason, Outcome: f.Outcome,
				Occurrences: strconv.FormatInt(f.Occurrences, 10),
				First:       clock(f.FirstSeen), Last: clock(f.LastSeen),
			})
		}
	}
	if rd.Diagnosis != nil {
		for _, n := range Nest(rd.Diagnosis.Findings) {
			p.Findings = append(p.Findings, findingViewOf(n))
		}
		p.Thresholds = failedThresholds(rd.Diagnosis.Thresholds)
		for _, x := range slowBySelf(rd.Diagnosis.Slow) {
			p.SlowBySelf = append(p.SlowBySelf, selfLine(x))
		}
	}
	p.Probes = probesOf(rd.Timeline)

	g := gridFor(rd.Series, rd.Timeline, rd.Evidence)
	if rd.Series != nil {
		rd.Series.extend(g.n)
	}
	p.Data = pageData{T0: unixSeconds(g.t0), Step: g.step.Seconds(), N: g.n}
	if g.t0.IsZero() {
		p.Data.T0 = 0
	}
	var users floats
	series := map[string][]seriesJSON{}
	for _, o := range overlays {
		v := timelineSeries(rd.Timeline, o, g)
		if v == nil {
			continue
		}
		if o.chart == "throughput" {
			users = v
			continue
		}
		series[o.chart] = append(series[o.chart], seriesJSON{Label: o.label, Unit: o.unit, Axis: o.axis, Color: o.color, Span: true, Values: v})
	}
	p.Data.Charts = requestCharts(rd.Series, users)
	for _, c := range overlayCharts {
		if len(series[c.id]) > 0 {
			p.Data.Charts = append(p.Data.Charts, chartJSON{ID: c.id, Title: c.title, Axes: [2]string{c.left, c.right}, Series: series[c.id]})
		}
	}
	p.Data.Groups, p.Data.Markers = evidenceMarkers(rd.Evidence, g)
	p.Data.Loads = loadMarks(rd.Meta, rd.Timeline)
	for i, grp := range p.Data.Groups {
		p.Groups = append(p.Groups, evidenceGroupView{evidenceGroup: grp, Index: i, First: clock(grp.First), Last: clock(grp.Last)})
	}
	if p.Data.Charts == nil {
		p.Data.Charts = []chartJSON{}
	}
	return p
}

func factsOf(rd *runData) runFacts {
	f := runFacts{Dir: rd.Dir, ID: filepath.Base(filepath.Clean(rd.Dir))}
	var start, end time.Time
	if m := rd.Meta; m != nil {
		if m.Run != "" {
			f.ID = m.Run
		}
		f.Target, f.Host = m.Target, m.Host
		start, end = m.Start, m.End
		f.Partial, f.EndReason = m.Partial, m.EndReason
		f.Probes = m.Probes
		for _, l := range m.Logs {
			f.Logs = append(f.Logs, l.Name+" ("+l.Path+")")
		}
		f.Load = loadText(m.Load)
		if n := len(m.LoadChanges) - 1; n > 0 {
			f.Load += ", changed " + strconv.Itoa(n) + " time"
			if n > 1 {
				f.Load += "s"
			}
			f.Load += " during the run (the lines on the charts)"
		}
	}
	if s := rd.Summary; s != nil {
		if start.IsZero() {
			start = s.Start
		}
		if end.IsZero() {
			end = s.End
		}
		f.Partial = f.Partial || (rd.Meta == nil && s.Partial)
	}
	if d := rd.Diagnosis; d != nil {
		f.Verdict = d.Verdict
		if rd.Meta == nil && d.Run != "" {
			f.ID = d.Run
		}
	}
	if !start.IsZero() {
		f.Start = start.UTC().Format("2006-01-02 15:04:05 UTC")
	}
	if !end.IsZero() {
		f.End = end.UTC().Format("2006-01-02 15:04:05 UTC")
		if !start.IsZero() {
			f.Duration = end.Sub(start).Round(100 * time.Millisecond).String()
		}
	}
	return f
}

func loadText(l rundir.LoadFacts) string {
	var parts []string
	switch {
	case l.ArrivalRate > 0:
		parts = append(parts, fmt.Sprintf("open model, %s arrivals/s", trimFloat(l.ArrivalRate)))
		if l.Users > 0 {
			parts = append(parts, fmt.Sprintf("at most %d users", l.Users))
		}
	case l.Users > 0:
		s := fmt.Sprintf("%d users", l.Users)
		if l.SpawnRate > 0 {
			s += fmt.Sprintf(" spawned at %s/s", trimFloat(l.SpawnRate))
		}
		parts = append(parts, s)
	}
	if l.Duration != "" {
		parts = append(parts, "for "+l.Duration)
	}
	if l.ThinkMin != "" {
		think := l.ThinkMin
		if l.ThinkMax != "" && l.ThinkMax != l.ThinkMin {
			think += ".." + l.ThinkMax
		}
		parts = append(parts, "think "+think)
	}
	if l.Accounts > 0 {
		s := fmt.Sprintf("%d accounts", l.Accounts)
		if l.Assignment != "" {
			s += " (" + l.Assignment + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

func figuresOf(s *metrics.Summary) []figure {
	a := &s.Aggregated
	return []figure{
		{Label: "requests", Value: strconv.FormatInt(a.Requests, 10)},
		{Label: "failures", Value: fmt.Sprintf("%d (%s)", a.Failures, percent(a.FailureRate)), Bad: a.Failures > 0},
		{Label: "throughput", Value: trimFloat(a.RPS) + "/s"},
		{Label: "p50", Value: msText(a.Latency.Percentiles[0])},
		{Label: "p95", Value: msText(a.Latency.Percentiles[5])},
		{Label: "p99", Value: msText(a.Latency.Percentiles[7])},
		{Label: "users (peak)", Value: strconv.Itoa(s.UsersPeak)},
	}
}

func endpointRowOf(e *metrics.EndpointSummary) endpointRow {
	l := &e.Latency
	r := endpointRow{
		Method: e.Method, Name: e.Name,
		Requests: strconv.FormatInt(e.Requests, 10), Failures: strconv.FormatInt(e.Failures, 10),
		FailPct: percent(e.FailureRate),
		Median:  msNumber(l.Percentiles[0]), Avg: msNumber(l.Avg), Min: msNumber(l.Min), Max: msNumber(l.Max),
		P95: msNumber(l.Percentiles[5]), P99: msNumber(l.Percentiles[7]),
		Size: strconv.FormatFloat(math.Round(e.BytesAvg), 'f', 0, 64),
		RPS:  fmt.Sprintf("%.2f", e.RPS), FailPerSec: fmt.Sprintf("%.2f", e.FailuresPerSec),
		Failing: e.Failures > 0,
	}
	var classes []string
	for _, o := range []string{"status", "content", "transport", "timeout"} {
		if n := e.Outcomes[o]; n > 0 {
			classes = append(classes, fmt.Sprintf("%s %d", o, n))
		}
	}
	r.Classes = strings.Join(classes, ", ")
	return r
}

func findingViewOf(n Nested) findingView {
	f := n.Finding
	v := findingView{Finding: f, N: n.Label, Depth: n.Depth, Confidence: fmt.Sprintf("%.0f%%", f.Confidence*100)}
	v.Explains = explains(f.Explains)
	const top = 5
	for i, e := range f.Evidence {
		ev := evidenceView{Source: e.Source, Text: e.Text, Ref: e.Ref}
		if !e.Time.IsZero() {
			ev.Time = e.Time.UTC().Format("15:04:05.000")
			ev.T = strconv.FormatFloat(unixSeconds(e.Time), 'f', 3, 64)
		}
		if i < top {
			v.Top = append(v.Top, ev)
		} else {
			v.More = append(v.More, ev)
		}
	}
	return v
}

func probesOf(samples []stampede.Sample) []probeView {
	type acc struct {
		n, errs int
		first   string
	}
	var order []string
	by := map[string]*acc{}
	for _, s := range samples {
		if s.Source == controlSource {
			continue // markers of the changes of the load, not a probe
		}
		a := by[s.Source]
		if a == nil {
			a = &acc{}
			by[s.Source] = a
			order = append(order, s.Source)
		}
		a.n++
		if s.Err != "" {
			a.errs++
			if a.first == "" {
				a.first = clock(s.Time) + " " + clipText(s.Err, 300)
			}
		}
	}
	var out []probeView
	for _, name := range order {
		a := by[name]
		out = append(out, probeView{Source: name, Samples: strconv.Itoa(a.n), Errors: strconv.Itoa(a.errs), FirstError: a.first})
	}
	return out
}

// clock formats t as a UTC time of day with milliseconds; "" for zero.
func clock(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("15:04:05.000")
}

// msNumber formats d in milliseconds for a table column: one decimal below
// 10 ms, whole milliseconds above.
func msNumber(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	if ms < 10 {
		return strconv.FormatFloat(ms, 'f', 1, 64)
	}
	return strconv.FormatFloat(math.Round(ms), 'f', 0, 64)
}

// msText formats d for people: "734 ms", "3.4 ms", "2.10 s".
func msText(d time.Duration) string {
	if d >= 10*time.Second {
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s"
	}
	if d >= time.Second {
		return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + " s"
	}
	return msNumber(d) + " ms"
}

// percent formats a fraction as a percentage: "45%", "0.85%", "0%".
func percent(f float64) string {
	p := f * 100
	switch {
	case p == 0:
		return "0%"
	case p < 1:
		return strconv.FormatFloat(p, 'f', 2, 64) + "%"
	case p < 10:
		return strconv.FormatFloat(p, 'f', 1, 64) + "%"
	}
	return strconv.FormatFloat(p, 'f', 0, 64) + "%"
}

// trimFloat formats f with at most two decimals and no trailing zeros.
func trimFloat(f float64) string {
	return strconv.FormatFloat(math.Round(f*100)/100, 'f', -1, 64)
}
