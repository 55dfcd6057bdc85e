package report

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/metrics"
	"github.com/stampede-load/stampede/internal/rundir"
)

// fixtureStart is the start of the runs made by writeRunDir.
var fixtureStart = time.Date(2025, 11, 27, 10, 0, 0, 0, time.UTC)

// runSpec shapes a run directory made by writeRunDir.
type runSpec struct {
	seconds int
	// burst is the range of seconds [from, to) in which the login POST fails
	// with HTTP 500 while PgBouncer's cl_waiting rises.
	burstFrom, burstTo int
	// soft is the range in which the login POST fails with the login page
	// again (content).
	softFrom, softTo int
	// slow adds this much latency to every request (run B of a comparison).
	slow time.Duration
	// dashboardOnly leaves the login endpoints out (an endpoint only in one run).
	noDashboard bool
	diagnosis   *stampede.Diagnosis
	noTimeline  bool
	noEvidence  bool
	// partial writes the summary as an interrupted run leaves it: no
	// histograms.
	partial bool
}

// fixtureRun is the seed's story in one minute: a burst of 500s on the login
// POST lined up with a PgBouncer queue (cl_waiting), then a few soft failures
// (the login page again).
func fixtureRun() runSpec {
	return runSpec{
		seconds: 60, burstFrom: 20, burstTo: 32, softFrom: 40, softTo: 46,
		diagnosis: &stampede.Diagnosis{
			Run: "fixture", Verdict: "fail",
			Findings: []stampede.Finding{{
				ID: "db-pool-wait-timeout", Status: stampede.Confirmed, Confidence: 0.95,
				Title:    "Logins fail waiting for a PgBouncer server connection",
				Explains: stampede.Explains{Failures: 120, Endpoints: []string{"[AUTH] Login POST"}},
				Evidence: []stampede.EvidenceRef{
					{Source: "pgbouncer", Time: fixtureStart.Add(21 * time.Second), Text: "closing because: query_wait_timeout", Ref: "pgbouncer.log:12"},
					{Source: "timeline", Time: fixtureStart.Add(25 * time.Second), Text: "cl_waiting 40 while sv_active = pool size 20"},
				},
				Fix:            "Raise default_pool_size to 40 <or> shorten transactions.",
				NextExperiment: "Run again with default_pool_size=40: the 500s should go.",
			}},
			RuledOut: []stampede.RuledOut{{ID: "db-lock-contention", Why: "no session waited on a Lock during the burst"}},
		},
	}
}

// writeRunDir writes a run directory as stampede run would: requests.csv
// (through rundir's writer), summary.json (metrics), timeline.jsonl and
// evidence.jsonl (one JSON object per line), meta.json and diagnosis.json.
func writeRunDir(t testing.TB, dir string, spec runSpec) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(dir, 0o755))
	rw, err := rundir.NewRequestWriter(dir)
	must(err)
	m := metrics.New(fixtureStart)
	user := 0
	add := func(r stampede.Result) {
		user = user%50 + 1
		r.User = user
		must(rw.Write(&r))
		m.Add(&r)
	}
	for s := 0; s < spec.seconds; s++ {
		sec := fixtureStart.Add(time.Duration(s) * time.Second)
		for k := 0; k < 10; k++ {
			at := sec.Add(time.Duration(k) * 90 * time.Millisecond)
			lat := time.Duration(20+k*3)*time.Millisecond + spec.slow
			if !spec.noDashboard {
				add(stampede.Result{Start: at, Name: "GET /dashboard/", Method: "GET", Status: 200, Latency: lat, Bytes: 5120})
			}
			if k%2 == 0 {
				add(stampede.Result{Start: at, Name: "[AUTH] Login GET", Method: "GET", Status: 200, Latency: lat / 2, Bytes: 2048})
				continue
			}
			r := stampede.Result{Start: at, Name: "[AUTH] Login POST", Method: "POST", Status: 302, Latency: 2*lat + spec.slow, Bytes: 0}
			switch {
			case s >= spec.burstFrom && s < spec.burstTo:
				r.Status, r.Outcome, r.Reason, r.Latency = 500, stampede.FailStatus, "HTTP 500", 5*time.Second
				r.Start = at.Add(-5 * time.Second) // it completes in this second
			case s >= spec.softFrom && s < spec.softTo:
				r.Status, r.Outcome, r.Reason = 200, stampede.FailContent, "login page returned: Too many failed login attempts. <script>alert(1)</script>"
			}
			add(r)
		}
		m.Tick(sec.Add(time.Second), 50)
	}
	must(rw.Close())
	end := fixtureStart.Add(time.Duration(spec.seconds) * time.Second)
	if spec.partial {
		must(m.Summary(end).WriteFile(filepath.Join(dir, rundir.SummaryFile)))
	} else {
		m.Close()
		must(m.Summary(time.Time{}).WriteFile(filepath.Join(dir, rundir.SummaryFile)))
	}

	must(rundir.WriteMeta(dir, &rundir.Meta{
		Tool: "stampede", Version: "test", Run: filepath.Base(dir), Target: "http://127.0.0.1:8000",
		Host: "lab", Start: fixtureStart, End: end, Partial: spec.partial,
		Load: rundir.LoadFacts{Model: "closed", Users: 50, SpawnRate: 10, Duration: fmt.Sprintf("%ds", spec.seconds), Accounts: 50, Assignment: "unique"},
		Logs: []rundir.LogRef{{Name: "pgbouncer", Path: "/var/log/pgbouncer.log"}, {Name: "app-errors", Path: "logs/errors.log"}},
	}))
	if !spec.noTimeline {
		tw, err := rundir.NewJSONLWriter(filepath.Join(dir, rundir.TimelineFile))
		must(err)
		for s := 0; s < spec.seconds; s++ {
			at := fixtureStart.Add(time.Duration(s)*time.Second + 500*time.Millisecond)
			waiting, maxwait := 0.0, 0.0
			if s >= spec.burstFrom-2 && s < spec.burstTo {
				waiting = float64(min(40, 5*(s-spec.burstFrom+3)))
				maxwait = float64(s-spec.burstFrom+2) * 0.8
			}
			must(tw.Write(stampede.Sample{Time: at, Source: "pgbouncer", Values: map[string]float64{"cl_waiting": waiting, "maxwait_s": maxwait, "cl_active": 20}}))
			must(tw.Write(stampede.Sample{Time: at, Source: "postgres", Values: map[string]float64{"wait:Lock": 0, "backends": 20}}))
			must(tw.Write(stampede.Sample{Time: at, Source: "host", Values: map[string]float64{"cpu_busy_pct": 35 + float64(s%7)}}))
			must(tw.Write(stampede.Sample{Time: at, Source: "generator", Values: map[string]float64{"cpu_pct": 12, "lag_ms": 1.5, "users": float64(min(50, 10*(s+1)))}}))
			if s == 3 {
				must(tw.Write(stampede.Sample{Time: at, Source: "redis", Err: "dial tcp 127.0.0.1:6379: connect: connection refused"}))
			}
		}
		must(tw.Close())
	}
	if !spec.noEvidence {
		ew, err := rundir.NewJSONLWriter(filepath.Join(dir, rundir.EvidenceFile))
		must(err)
		for s := spec.burstFrom; s < spec.burstTo; s++ {
			at := fixtureStart.Add(time.Duration(s)*time.Second + 200*time.Millisecond)
			must(ew.Write(stampede.Evidence{
				Time: at, Source: "pgbouncer", Signature: "pgbouncer-query-wait-timeout", Class: "db-pool-wait-timeout", Level: "LOG",
				Message: "C-0x55d: app/app@127.0.0.1:5432 closing because: query_wait_timeout (age=5s)",
				Ref:     fmt.Sprintf("pgbouncer.log:%d", 10+s),
			}))
			must(ew.Write(stampede.Evidence{
				Time: at.Add(10 * time.Millisecond), Source: "app-errors", Signature: "psycopg-query-wait-timeout", Class: "db-pool-wait-timeout", Level: "ERROR",
				Message:   "Internal Server Error: /accounts/login/ <b>bold</b>",
				Exception: "psycopg.errors.ProtocolViolation: query_wait_timeout",
				Stack:     []string{`File "/app/django/core/handlers/exception.py", line 55, in inner`, `File "/app/psycopg/connection.py", line 120, in connect`},
				Ref:       fmt.Sprintf("errors.log:%d", 100+s*20),
			}))
		}
		must(ew.Write(stampede.Evidence{Source: "app-errors", Message: "a line without a timestamp", Ref: "errors.log:1"}))
		must(ew.Close())
	}
	if spec.diagnosis != nil {
		must(rundir.WriteJSON(filepath.Join(dir, diagnosisFile), spec.diagnosis))
	}
}

var dataRE = regexp.MustCompile(`(?s)<script type="application/json" id="report-data">(.*?)</script>`)

// pageDataOf returns the JSON embedded in a page.
func pageDataOf(t *testing.T, page string) pageData {
	t.Helper()
	m := dataRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no #report-data script in the page")
	}
	var d struct {
		pageData
		Charts []struct {
			ID     string `json:"id"`
			Series []struct {
				Label  string     `json:"label"`
				Axis   int        `json:"axis"`
				Values []*float64 `json:"values"`
			} `json:"series"`
		} `json:"charts"`
	}
	if err := json.Unmarshal([]byte(m[1]), &d); err != nil {
		t.Fatalf("embedded data: %v", err)
	}
	// The charts' values may hold null: decode them again as pointers.
	d.pageData.Charts = nil
	for _, c := range d.Charts {
		cj := chartJSON{ID: c.ID}
		for _, s := range c.Series {
			v := make(floats, len(s.Values))
			for i, p := range s.Values {
				v[i] = math.NaN()
				if p != nil {
					v[i] = *p
				}
			}
			cj.Series = append(cj.Series, seriesJSON{Label: s.Label, Axis: s.Axis, Values: v})
		}
		d.pageData.Charts = append(d.pageData.Charts, cj)
	}
	return d.pageData
}

func chartByID(d pageData, id string) *chartJSON {
	for i := range d.Charts {
		if d.Charts[i].ID == id {
			return &d.Charts[i]
		}
	}
	return nil
}

func seriesByLabel(c *chartJSON, label string) floats {
	if c == nil {
		return nil
	}
	for _, s := range c.Series {
		if s.Label == label {
			return s.Values
		}
	}
	return nil
}

func readPage(t *testing.T, dir string) string {
	t.Helper()
	if err := WriteHTML(dir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, HTMLFile))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHTMLReport(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run1")
	spec := fixtureRun()
	writeRunDir(t, dir, spec)
	page := readPage(t, dir)
	d := pageDataOf(t, page)

	if d.T0 != float64(fixtureStart.Unix()) || d.Step != 1 {
		t.Errorf("t0, step = %v, %v; want %v, 1", d.T0, d.Step, fixtureStart.Unix())
	}
	if d.N < spec.seconds || d.N > spec.seconds+2 {
		t.Errorf("n = %d, want about %d", d.N, spec.seconds)
	}
	var ids []string
	for _, c := range d.Charts {
		ids = append(ids, c.ID)
		for _, s := range c.Series {
			if len(s.Values) != d.N {
				t.Errorf("chart %s series %q: %d values, want %d", c.ID, s.Label, len(s.Values), d.N)
			}
		}
	}
	if got, want := strings.Join(ids, ","), "throughput,failures,latency,pool,cpu"; got != want {
		t.Errorf("charts = %s, want %s (no redis: its only sample is an error)", got, want)
	}

	// Every request is counted once, in the second it completed.
	sum := func(v floats) (n float64) {
		for _, x := range v {
			if !math.IsNaN(x) {
				n += x
			}
		}
		return n
	}
	s, err := metrics.ReadSummary(filepath.Join(dir, rundir.SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	tp := chartByID(d, "throughput")
	if got, want := sum(seriesByLabel(tp, "requests/s")), float64(s.Aggregated.Requests); got != want {
		t.Errorf("sum of requests/s = %v, want %v", got, want)
	}
	if seriesByLabel(tp, "users") == nil {
		t.Error("throughput chart has no users series (generator's users)")
	}
	fc := chartByID(d, "failures")
	s5 := seriesByLabel(fc, "status 5xx/s")
	if got, want := sum(s5), float64(s.Aggregated.Outcomes["status"]); got != want {
		t.Errorf("sum of 5xx/s = %v, want %v", got, want)
	}
	if got, want := sum(seriesByLabel(fc, "content (soft)/s")), float64(s.Aggregated.Outcomes["content"]); got != want {
		t.Errorf("sum of content/s = %v, want %v", got, want)
	}
	if seriesByLabel(fc, "transport/s") != nil {
		t.Error("failures chart draws transport, a class with no failure")
	}
	// The burst lines up with the queue on the same time axis.
	clw := seriesByLabel(chartByID(d, "pool"), "PgBouncer clients waiting (cl_waiting)")
	if clw == nil {
		t.Fatal("pool chart has no cl_waiting series")
	}
	for i := range d.N {
		if s5[i] > 0 && !(clw[i] > 0) {
			t.Errorf("second %d: %v 5xx/s while cl_waiting = %v", i, s5[i], clw[i])
		}
	}
	if s5[spec.burstFrom] != 5 || s5[spec.burstFrom-1] != 0 {
		t.Errorf("5xx/s at seconds %d, %d = %v, %v; want 0, 5", spec.burstFrom-1, spec.burstFrom, s5[spec.burstFrom-1], s5[spec.burstFrom])
	}
	lat := seriesByLabel(chartByID(d, "latency"), "p99")
	if lat[spec.burstFrom] < 4990 || lat[spec.burstFrom] > 5050 {
		t.Errorf("p99 at the burst = %v ms, want about 5000", lat[spec.burstFrom])
	}

	// Evidence: one marker per group per second; the untimed event only in the table.
	if len(d.Groups) != 3 {
		t.Fatalf("groups = %+v, want 3", d.Groups)
	}
	if g := d.Groups[0]; g.Key != "db-pool-wait-timeout / pgbouncer-query-wait-timeout" || g.Count != spec.burstTo-spec.burstFrom {
		t.Errorf("group 0 = %q with %d events", g.Key, g.Count)
	}
	if got, want := len(d.Markers), 2*(spec.burstTo-spec.burstFrom); got != want {
		t.Errorf("markers = %d, want %d", got, want)
	}
	if m := d.Markers[1]; len(m.Events) != 1 || len(m.Events[0].Stack) != 2 || m.Events[0].Exception == "" || m.Events[0].Ref == "" {
		t.Errorf("marker excerpt = %+v, want message, exception, stack and ref", m.Events)
	}

	// Tables and findings, escaped.
	for _, want := range []string{
		"Logins fail waiting for a PgBouncer server connection",
		"Raise default_pool_size to 40 &lt;or&gt; shorten transactions.",
		"db-lock-contention",
		"[AUTH] Login POST", "Aggregated", "HTTP 500",
		"login page returned: Too many failed login attempts. &lt;script&gt;alert(1)&lt;/script&gt;",
		"connection refused",
		"unclassified (app-errors)",
		"verdict-fail",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, bad := range []string{"<script>alert(1)", "<b>bold</b>", `<script src=`, `<link `, "ZgotmplZ"} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
}

func TestHTMLWithoutDiagnosisOrTimeline(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	spec := fixtureRun()
	spec.diagnosis, spec.noTimeline, spec.noEvidence = nil, true, true
	writeRunDir(t, dir, spec)
	page := readPage(t, dir)
	d := pageDataOf(t, page)
	var ids []string
	for _, c := range d.Charts {
		ids = append(ids, c.ID)
	}
	if got, want := strings.Join(ids, ","), "throughput,failures,latency"; got != want {
		t.Errorf("charts = %s, want %s", got, want)
	}
	if len(d.Markers) != 0 || len(d.Groups) != 0 {
		t.Errorf("markers, groups = %d, %d; want none", len(d.Markers), len(d.Groups))
	}
	for _, want := range []string{"Not diagnosed yet", "not diagnosed", "timeline.jsonl is missing", "No log evidence"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

func TestHTMLFromRequestsOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	writeRunDir(t, dir, fixtureRun())
	for _, f := range []string{rundir.SummaryFile, rundir.MetaFile, rundir.TimelineFile, rundir.EvidenceFile, diagnosisFile} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	page := readPage(t, dir)
	d := pageDataOf(t, page)
	if len(d.Charts) != 3 {
		t.Errorf("%d charts, want 3", len(d.Charts))
	}
	if !strings.Contains(page, "the endpoint tables were computed from requests.csv") || !strings.Contains(page, "[AUTH] Login POST") {
		t.Error("no endpoint table computed from requests.csv")
	}
}

func TestHTMLEmptyDir(t *testing.T) {
	dir := t.TempDir()
	page := readPage(t, dir)
	d := pageDataOf(t, page)
	if len(d.Charts) != 0 {
		t.Errorf("%d charts in an empty run", len(d.Charts))
	}
	if err := WriteHTML(filepath.Join(dir, "nope")); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("missing dir: err = %v, want one naming it", err)
	}
	if err := os.WriteFile(filepath.Join(dir, diagnosisFile), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteHTML(dir); err == nil || !strings.Contains(err.Error(), diagnosisFile) {
		t.Errorf("bad diagnosis.json: err = %v, want one naming it", err)
	}
}

// TestHTMLLongRunIsBucketed checks that a long run is drawn in buckets of
// several seconds, so the page's size does not grow with the run.
func TestHTMLLongRunIsBucketed(t *testing.T) {
	if got := stepFor(10 * time.Hour); got != 15*time.Second {
		t.Errorf("stepFor(10h) = %v, want 15s", got)
	}
	if got := stepFor(30 * time.Minute); got != time.Second {
		t.Errorf("stepFor(30m) = %v, want 1s", got)
	}
	b := newSeriesBuilder(fixtureStart, 15*time.Second)
	for s := range 36000 {
		at := fixtureStart.Add(time.Duration(s) * time.Second)
		b.add(&stampede.Result{Start: at, Latency: time.Duration(s%100+1) * time.Millisecond})
		b.add(&stampede.Result{Start: at, Latency: time.Millisecond, Outcome: stampede.FailTimeout})
	}
	s := b.finish()
	if s.Len() != 2400 {
		t.Fatalf("%d buckets, want 2400", s.Len())
	}
	if s.Counts[colRequests][0] != 30 || s.Counts[colTimeout][0] != 15 {
		t.Errorf("bucket 0: %v requests, %v timeouts; want 30, 15", s.Counts[colRequests][0], s.Counts[colTimeout][0])
	}
	if len(b.open) != 0 || len(b.free) > lateBuckets+2 {
		t.Errorf("%d open and %d free histograms after finish", len(b.open), len(b.free))
	}
}

func TestHTMLExcerptClips(t *testing.T) {
	e := stampede.Evidence{Message: strings.Repeat("é", 3000), Stack: make([]string, 100), Ref: "x.log:1"}
	x := excerpt(&e)
	if len(x.Message) > maxExcerptText+len("…") || !strings.HasSuffix(x.Message, "…") {
		t.Errorf("message not clipped: %d bytes", len(x.Message))
	}
	if len(x.Stack) != maxExcerptFrames+1 || !strings.Contains(x.Stack[maxExcerptFrames], "60 more frames in x.log:1") {
		t.Errorf("stack: %d frames, last %q", len(x.Stack), x.Stack[len(x.Stack)-1])
	}
}

// TestHTMLFromLocustHistory checks a directory of Locust files alone (a
// run imported with diagnose --locust): the series come from the history.
func TestHTMLFromLocustHistory(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join("..", "locust", "testdata", "seed_stats_history.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "locust_stats_history.csv"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	page := readPage(t, dir)
	d := pageDataOf(t, page)
	var ids []string
	for _, c := range d.Charts {
		ids = append(ids, c.ID)
	}
	if got := strings.Join(ids, ","); !strings.HasPrefix(got, "throughput,") || !strings.HasSuffix(got, ",latency") {
		t.Errorf("charts = %s, want throughput ... latency", got)
	}
	if seriesByLabel(chartByID(d, "throughput"), "users") == nil {
		t.Error("no users series from the history's User Count")
	}
	if !strings.Contains(page, "locust_stats_history.csv") {
		t.Error("no note saying where the series come from")
	}
}

// TestHTMLTimelineWithoutRequests checks a run killed before its first
// request: the probes alone are drawn.
func TestHTMLTimelineWithoutRequests(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	writeRunDir(t, dir, fixtureRun())
	for _, f := range []string{rundir.SummaryFile, rundir.MetaFile} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, rundir.RequestsFile), []byte(rundir.RequestsHeader+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := pageDataOf(t, readPage(t, dir))
	if d.T0 != float64(fixtureStart.Unix()) || d.N != 60 {
		t.Errorf("t0, n = %v, %d; want %d, 60", d.T0, d.N, fixtureStart.Unix())
	}
	if chartByID(d, "pool") == nil || len(d.Markers) == 0 {
		t.Errorf("no pool chart or no markers: %d charts, %d markers", len(d.Charts), len(d.Markers))
	}
}

// TestUsersOfSegmentsAddUp: a merged run's generator samples come from
// several segments; the users line is their sum, the CPU line their
// maximum.
func TestUsersOfSegmentsAddUp(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var samples []stampede.Sample
	for s := range 4 {
		for seg, users := range map[string]float64{"0/3": 4, "1/3": 3, "2/3": 3} {
			samples = append(samples, stampede.Sample{Time: t0.Add(time.Duration(s)*time.Second + 100*time.Millisecond), Source: "generator",
				Info: map[string]string{"segment": seg}, Values: map[string]float64{"users": users, "cpu_pct": users * 10}})
		}
	}
	g := grid{t0: t0, step: time.Second, n: 4}
	var usersO, cpuO overlay
	for _, o := range overlays {
		switch {
		case o.source == "generator" && o.key == "users":
			usersO = o
		case o.source == "generator" && o.key == "cpu_pct":
			cpuO = o
		}
	}
	if got := timelineSeries(samples, usersO, g); !reflect.DeepEqual([]float64(got), []float64{10, 10, 10, 10}) {
		t.Errorf("users %v, want 10 a second (4+3+3)", got)
	}
	if got := timelineSeries(samples, cpuO, g); !reflect.DeepEqual([]float64(got), []float64{40, 40, 40, 40}) {
		t.Errorf("generator CPU %v, want the busiest segment's 40", got)
	}
	one := []stampede.Sample{{Time: t0, Source: "generator", Values: map[string]float64{"users": 5}}}
	if got := timelineSeries(one, usersO, g); got[0] != 5 {
		t.Errorf("one generator: users %v", got)
	}
}
