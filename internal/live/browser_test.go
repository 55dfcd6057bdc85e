package live

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/metrics"
	"github.com/stampede-load/stampede/internal/runner"
)

func chromium() string {
	if p := os.Getenv("STAMPEDE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browserState is what TestLivePageInChromium reads of the page.
type browserState struct {
	Updates   int      `json:"updates"`
	Status    string   `json:"status"`
	Charts    []string `json:"charts"`
	N         int      `json:"n"`
	Rows      []string `json:"rows"`
	Findings  []string `json:"findings"`
	Events    int      `json:"events"`
	Controls  bool     `json:"controls"`
	Report    string   `json:"report"`
	JSErrors  string   `json:"jsErrors"`
	Users     string   `json:"users"`
	Failures  int      `json:"failures"`
	ProbeRows int      `json:"probes"`
	Title     string   `json:"title"`
	TokenBox  bool     `json:"tokenBox"`
	OpenForm  bool     `json:"openForm"`
}

const browserStateJS = `(function () {
  var root = document.documentElement, q = function (s) { return document.querySelector(s); };
  var all = function (s, f) { return Array.prototype.map.call(document.querySelectorAll(s), f); };
  var tp = q('[data-chart="throughput"]'), u = q('[data-fig="users"] .value'), a = q("#report-a");
  return {
    updates: Number(root.getAttribute("data-updates") || 0), status: root.getAttribute("data-status") || "",
    charts: all("[data-chart]", function (c) { return c.getAttribute("data-chart"); }),
    n: tp ? Number(tp.getAttribute("data-n")) : 0,
    rows: all("#endpoints tbody tr, #endpoints tfoot tr", function (tr) { return tr.getAttribute("data-name") + "=" + tr.querySelector('[data-k="requests"]').textContent; }),
    findings: all("#findings li[data-id]", function (li) { return li.textContent.replace(/\s+/g, " ").trim(); }),
    events: document.querySelectorAll("#evidence .event").length,
    controls: !q("#controls").hidden, report: a ? a.getAttribute("href") : "",
    jsErrors: root.getAttribute("data-js-errors") || "", users: u ? u.textContent : "",
    failures: document.querySelectorAll("#failures tbody tr").length, probes: document.querySelectorAll("#probes tbody tr").length,
    title: q("#diag-title").textContent,
    tokenBox: getComputedStyle(q("#token-box")).display !== "none",
    openForm: getComputedStyle(q("#open-fields")).display !== "none"
  };
})()`

// TestLivePageInChromium opens the page in headless Chromium on a run fed
// by hand (no load): it must draw the charts, the table, the failures,
// the log events, the diagnosis so far with when each finding first held,
// follow the updates, show the end with its link to report.html, and log
// no script error, CSP violation or failed load. It skips when Chromium is
// missing, unless CI=true.
func TestLivePageInChromium(t *testing.T) {
	bin := chromium()
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium not found (apt-get install chromium, or set STAMPEDE_CHROMIUM)")
		}
		t.Skip("chromium not found: apt-get install chromium, or set STAMPEDE_CHROMIUM")
	}
	dir := t.TempDir()
	s, err := Start(Options{Addr: "127.0.0.1:0", Dir: dir, NoDiagnose: true, Control: runner.NewControl(),
		Run: RunFacts{Target: "http://app.test/", Model: "closed", Duration: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f := &feeder{s: s, m: metrics.New(start)}
	s.LoadChanged(runner.LoadChange{Time: start, Users: 10, SpawnRate: 5, By: "plan"})
	at := start.Truncate(time.Second)
	second := func(i int) {
		for k := range 20 {
			lat := time.Duration(20+k*5+i) * time.Millisecond
			end := time.Duration(i)*time.Second + time.Duration(k)*40*time.Millisecond + 30*time.Millisecond
			name, outcome, status := "GET /dashboard/", stampede.OK, 200
			if k%4 == 0 {
				name = "[AUTH] Login POST"
			}
			if k%7 == 0 && i > 5 {
				outcome, status = stampede.FailStatus, 500
			}
			f.add(result(name, end, lat, outcome, status))
		}
		s.Sample(stampede.Sample{Time: at.Add(time.Duration(i)*time.Second + 500*time.Millisecond), Source: "pgbouncer",
			Values: map[string]float64{"cl_waiting": float64(i % 9), "maxwait_s": float64(i%5) / 2}})
		s.Sample(stampede.Sample{Time: at.Add(time.Duration(i)*time.Second + 600*time.Millisecond), Source: "host",
			Values: map[string]float64{"cpu_busy_pct": 40 + float64(i%10), "proc_cpu_pct": 80}})
		s.Sample(stampede.Sample{Time: at.Add(time.Duration(i)*time.Second + 700*time.Millisecond), Source: "generator",
			Values: map[string]float64{"users": 10, "cpu_pct": 12}})
		if i%3 == 0 {
			s.Evidence(stampede.Evidence{Time: at.Add(time.Duration(i) * time.Second), Source: "pgbouncer", Level: "LOG", Class: "db-pool-wait-timeout",
				Message: "closing because: query_wait_timeout <b>bold</b>", Ref: fmt.Sprintf("pgbouncer.log:%d", i), Stack: []string{"frame 1", "frame 2"}})
		}
		f.tick(time.Duration(i+1)*time.Second+400*time.Millisecond, 10)
	}
	for i := range 20 {
		second(i)
	}
	s.LoadChanged(runner.LoadChange{Time: at.Add(12 * time.Second), Users: 30, SpawnRate: 50, By: "ui"})
	s.mu.Lock()
	s.st.setDiagnosis(&stampede.Diagnosis{Verdict: "fail", Findings: []stampede.Finding{{ID: "db-pool-wait-timeout", Status: stampede.Confirmed,
		Confidence: 0.9, Title: "PgBouncer's query_wait_timeout fails requests", Explains: stampede.Explains{Failures: 12, Endpoints: []string{"GET /dashboard/"}},
		Evidence: []stampede.EvidenceRef{{Source: "pgbouncer", Time: at.Add(9 * time.Second), Text: "closing because: query_wait_timeout", Ref: "pgbouncer.log:9"}}}}},
		"", 18, 40*time.Millisecond, false)
	s.mu.Unlock()
	s.push()

	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.WindowSize(1400, 1800))...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	if err := chromedp.Do(bctx); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var problems []string
	go func() {
		for m, err := range chromedp.Console(bctx) {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException || m.Type == chromedp.ConsoleWarning {
				mu.Lock()
				problems = append(problems, fmt.Sprintf("%s: %s (%s:%d)", m.Type, m.Text, m.URL, m.Line))
				mu.Unlock()
			}
		}
	}()
	ctx, cancel := context.WithTimeout(bctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(s.URL())); err != nil {
		t.Fatal(err)
	}
	read := func() browserState {
		t.Helper()
		b, err := chromedp.Run(ctx, chromedp.Evaluate[browserState](browserStateJS))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var b browserState
	waitUntil(t, 10*time.Second, func() bool { b = read(); return b.Updates >= 1 && len(b.Charts) > 0 })
	if got := strings.Join(b.Charts, " "); got != "throughput failures latency pool cpu" {
		t.Errorf("charts %q", got)
	}
	if b.N != 20 || len(b.Rows) != 3 || b.Failures == 0 || b.Events != 7 || !b.Controls || b.ProbeRows != 3 || b.Users != "10" || b.TokenBox || b.OpenForm {
		t.Errorf("page = %+v", b)
	}
	if len(b.Findings) != 1 || !strings.Contains(b.Findings[0], "db-pool-wait-timeout (confirmed since 00:18)") || !strings.Contains(b.Findings[0], "confidence 90%") {
		t.Errorf("findings %q", b.Findings)
	}
	html, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("evidence").innerHTML`))
	if err != nil || strings.Contains(html, "<b>bold</b>") {
		t.Errorf("a log message is rendered as HTML (%v)", err)
	}

	// Updates: five more seconds, then the end.
	for i := 20; i < 25; i++ {
		second(i)
	}
	waitUntil(t, 10*time.Second, func() bool { b = read(); return b.N == 25 })
	f.m.Close()
	if err := os.WriteFile(filepath.Join(dir, "report.html"), []byte("<!doctype html><title>stampede report</title>"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.End(&runner.Result{Dir: dir, Summary: f.m.Summary(start.Add(25 * time.Second)), Partial: true})
	waitUntil(t, 10*time.Second, func() bool { b = read(); return b.Status == "ended" })
	if b.Report != "report.html" || b.Controls {
		t.Errorf("at the end: report %q, controls shown %v", b.Report, b.Controls)
	}
	if shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()); err == nil {
		if dir := os.Getenv("STAMPEDE_ARTIFACTS"); dir != "" {
			_ = os.WriteFile(filepath.Join(dir, "live-page-fed.png"), shot, 0o644)
		}
	}
	if b.JSErrors != "" {
		t.Errorf("%s script errors noted by the page", b.JSErrors)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Errorf("browser console: %s", p)
	}
}

func waitUntil(t *testing.T, limit time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s", limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
