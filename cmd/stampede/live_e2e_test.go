package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/rundir"
)

// chromium returns the Chromium to drive: $STAMPEDE_CHROMIUM, or the first
// found of the usual names; "" when there is none.
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

// pageRead is what the test reads of the live page at one moment.
type pageRead struct {
	Updates  int    `json:"updates"`
	Status   string `json:"status"`
	N        int    `json:"n"`
	Canvas   string `json:"canvas"`
	Charts   int    `json:"charts"`
	Users    string `json:"users"`
	JSErrors string `json:"jsErrors"`
	Title    string `json:"diagTitle"`
	Report   string `json:"report"`
	Message  string `json:"message"`
	Rows     []struct {
		Name   string             `json:"name"`
		Method string             `json:"method"`
		Total  bool               `json:"total"`
		V      map[string]float64 `json:"v"`
	} `json:"rows"`
	Findings []struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Text   string `json:"text"`
	} `json:"findings"`
}

const readPageJS = `(function () {
  var root = document.documentElement, q = function (s) { return document.querySelector(s); };
  var fig = q('[data-fig="users"] .value'), tp = q('[data-chart="throughput"]'), c = q('[data-chart="throughput"] canvas');
  var a = q('#report-a');
  return {
    updates: Number(root.getAttribute("data-updates") || 0), status: root.getAttribute("data-status") || "",
    n: tp ? Number(tp.getAttribute("data-n")) : 0, canvas: c ? c.toDataURL() : "",
    charts: Number(root.getAttribute("data-charts") || 0), users: fig ? fig.textContent : "",
    jsErrors: root.getAttribute("data-js-errors") || "", diagTitle: q("#diag-title").textContent,
    report: a ? a.getAttribute("href") : "", message: q("#control-msg").textContent,
    rows: Array.prototype.map.call(document.querySelectorAll("#endpoints tbody tr, #endpoints tfoot tr"), function (tr) {
      var v = {};
      tr.querySelectorAll("td[data-k]").forEach(function (td) { v[td.getAttribute("data-k")] = Number(td.getAttribute("data-v")); });
      return { name: tr.getAttribute("data-name"), method: tr.getAttribute("data-method"), total: tr.hasAttribute("data-total"), v: v };
    }),
    findings: Array.prototype.map.call(document.querySelectorAll("#findings li[data-id]"), function (li) {
      return { id: li.getAttribute("data-id"), status: li.getAttribute("data-status"), text: li.textContent };
    })
  };
})()`

// labForLive runs "stampede lab" with args until the test ends and returns
// its process id once it listens on addr.
func labForLive(t *testing.T, addr string, args ...string) int {
	t.Helper()
	cmd := stampedeCmd(append([]string{"lab", "--addr", addr}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return cmd.Process.Pid
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("lab did not listen on %s:\n%s", addr, out.String())
	return 0
}

// syncBuffer is a bytes.Buffer safe for a process's output and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLiveUIChromium drives the live page in headless Chromium during a
// run of the seed's load against the lab's seed preset (stampede run
// --ui): the charts and the endpoint table change between two reads,
// db-pool-wait-timeout shows before the run ends, a load change made with
// the page's control is a marker in meta.json and the timeline and the
// user count follows it, the page's Stop ends the run as Ctrl-C does (its
// files and exit status), the page logs no script error, and at the end
// its table equals summary.json. About a minute.
//
// With $STAMPEDE_LIVE_SCREENSHOT set, the page's screenshot is written
// there (scripts/live-screenshot writes docs/live-page.png).
func TestLiveUIChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("a minute of load on the lab in a browser")
	}
	bin := chromium()
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium not found (apt-get install chromium, or set STAMPEDE_CHROMIUM)")
		}
		t.Skip("chromium not found: apt-get install chromium, or set STAMPEDE_CHROMIUM")
	}
	artifacts := os.Getenv("STAMPEDE_ARTIFACTS")
	if artifacts == "" {
		artifacts = t.TempDir()
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	labAddr := freeAddr(t)
	labPID := labForLive(t, labAddr, "--preset", "seed", "--log-dir", logs)
	ub, err := stampedeCmd("lab", "users", "--count", "100").Output()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.csv"), ub, 0o644); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(labAddr)
	absLogs, _ := filepath.Abs(logs)
	scPath := filepath.Join(dir, "scenario.yaml")
	if err := os.WriteFile(scPath, fmt.Appendf(nil, demoScenario, "http://lab.test:"+port, "10", "75s", absLogs, port), 0o644); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(dir, "run")
	uiAddr := freeAddr(t)
	cmd := stampedeCmd("run", scPath, "--out", run, "--quiet", "--pid", strconv.Itoa(labPID), "--ui", uiAddr)
	cmd.Dir = dir
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	exited := make(chan struct{})
	var exitErr error
	go func() {
		exitErr = cmd.Wait()
		close(exited)
	}()
	defer func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
		keepArtifacts(t, "live-ui", run)
	}()
	url := "http://" + uiAddr + "/"
	waitFor(t, 30*time.Second, "the live page to answer", func() bool {
		r, err := http.Get(url + "api/state")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == 200
	})
	if !strings.Contains(out.String(), "Live page: "+url) {
		t.Errorf("stampede does not print the page's URL:\n%s", out.String())
	}

	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.WindowSize(1400, 1800))...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	// Every console message of the page, from the first.
	var consoleMu sync.Mutex
	var problems []string
	if err := chromedp.Do(bctx); err != nil {
		t.Fatal(err)
	}
	go func() {
		for m, err := range chromedp.Console(bctx) {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException || m.Type == chromedp.ConsoleWarning {
				consoleMu.Lock()
				problems = append(problems, fmt.Sprintf("%s: %s (%s:%d)", m.Type, m.Text, m.URL, m.Line))
				consoleMu.Unlock()
			}
		}
	}()
	ctx, cancel := context.WithTimeout(bctx, 3*time.Minute)
	defer cancel()
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v\nstampede:\n%s", what, err, out.String())
		}
	}
	read := func() pageRead {
		t.Helper()
		p, err := chromedp.Run(ctx, chromedp.Evaluate[pageRead](readPageJS))
		if err != nil {
			t.Fatalf("reading the page: %v", err)
		}
		return p
	}
	do("open the page", chromedp.Navigate(url))

	// The charts and the table move.
	var first pageRead
	waitFor(t, 30*time.Second, "the page to draw requests", func() bool {
		first = read()
		return first.Updates >= 2 && first.Charts >= 3 && total(first) > 0
	})
	time.Sleep(3 * time.Second)
	second := read()
	if second.N <= first.N || total(second) <= total(first) || hash(second.Canvas) == hash(first.Canvas) || second.Updates <= first.Updates {
		t.Errorf("the page did not change in 3 s: points %d → %d, requests %v → %v, updates %d → %d, throughput chart changed %v",
			first.N, second.N, total(first), total(second), first.Updates, second.Updates, hash(second.Canvas) != hash(first.Canvas))
	}

	// The diagnosis so far names the pool before the run ends.
	var found pageRead
	waitFor(t, 60*time.Second, "db-pool-wait-timeout on the page", func() bool {
		found = read()
		return finding(found, "db-pool-wait-timeout") != ""
	})
	if found.Status != "running" {
		t.Errorf("db-pool-wait-timeout showed once the run was %s", found.Status)
	}
	t.Logf("on the page while the load runs: %s", finding(found, "db-pool-wait-timeout"))
	// Let the seed's load run its ramp and its failures (25 s) before the
	// change, so that the charts show both sides of it.
	time.Sleep(time.Until(started.Add(25 * time.Second)))

	// Change the load from the page: 30 users, at 50/s.
	do("change the load",
		chromedp.SetValue(chromedp.ID("users-input"), "30"),
		chromedp.SetValue(chromedp.ID("spawn-input"), "50"),
		chromedp.Click(chromedp.ID("apply-load")))
	changedAt := time.Now()
	var after pageRead
	waitFor(t, 20*time.Second, "the user count to follow the change", func() bool {
		after = read()
		return after.Users == "30"
	})
	if !strings.Contains(after.Message, "Load now: 30 users") {
		t.Errorf("control message %q", after.Message)
	}
	time.Sleep(6 * time.Second) // the marker with a few seconds after it
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(artifacts, "live-page.png"), os.Getenv("STAMPEDE_LIVE_SCREENSHOT")} {
		if p != "" {
			if err := os.WriteFile(p, shot, 0o644); err != nil {
				t.Error(err)
			}
			t.Logf("screenshot: %s", p)
		}
	}

	// Stop from the page (two clicks: the first arms the button).
	do("stop the run", chromedp.Click(chromedp.ID("stop")), chromedp.Click(chromedp.ID("stop")))
	var end pageRead
	waitFor(t, 60*time.Second, "the end of the run on the page", func() bool {
		end = read()
		return end.Status == "ended" && end.Title == "Diagnosis"
	})
	if end.Report != "report.html" {
		t.Errorf("no link to report.html at the end (%q)", end.Report)
	} else {
		status, err := chromedp.Run(ctx, chromedp.Evaluate[string](`fetch("report.html").then(function (r) { return r.text().then(function (b) { return r.status + " " + (b.indexOf("stampede report") >= 0); }); })`, chromedp.EvalAwaitPromise))
		if err != nil || status != "200 true" {
			t.Errorf("report.html from the page: %q %v", status, err)
		}
	}
	if finding(end, "db-pool-wait-timeout") == "" {
		t.Errorf("the final diagnosis on the page lacks db-pool-wait-timeout: %+v", end.Findings)
	}
	checkTableIsSummary(t, end, run)
	if end.JSErrors != "" {
		t.Errorf("the page noted %s script errors", end.JSErrors)
	}

	// Close the page: stampede, which kept it up for its link, exits.
	do("close the page", chromedp.Navigate("about:blank"))
	var runErr error
	select {
	case <-exited:
		runErr = exitErr
	case <-time.After(30 * time.Second):
		t.Fatalf("stampede did not exit within 30 s of the page closing:\n%s", out.String())
	}
	consoleMu.Lock()
	for _, p := range problems {
		t.Errorf("browser console: %s", p)
	}
	consoleMu.Unlock()

	// The exit status and files of Ctrl-C: partial, every file written,
	// 3 when a threshold failed, 0 otherwise.
	code := 0
	var ee *exec.ExitError
	if errors.As(runErr, &ee) {
		code = ee.ExitCode()
	} else if runErr != nil {
		t.Fatal(runErr)
	}
	d := readDiagnosis(t, run)
	want := 0
	for _, th := range d.Thresholds {
		if !th.Pass {
			want = 3
		}
	}
	if code != want {
		t.Errorf("exit status %d after Stop, want %d (as after Ctrl-C)\n%s", code, want, out.String())
	}
	if !strings.Contains(out.String(), "The run was interrupted") {
		t.Errorf("stampede does not say the run was interrupted:\n%s", out.String())
	}
	meta, err := rundir.ReadMeta(run)
	if err != nil {
		t.Fatal(err)
	}
	if !meta.Partial || meta.EndReason != "stopped by ui" || meta.End.IsZero() {
		t.Errorf("meta.json: partial %v, end_reason %q, end %v", meta.Partial, meta.EndReason, meta.End)
	}
	var change *rundir.LoadChange
	for i, c := range meta.LoadChanges {
		if c.By == "ui" && c.Users == 30 && c.SpawnRate == 50 {
			change = &meta.LoadChanges[i]
		}
	}
	if change == nil {
		t.Fatalf("meta.json load_changes %+v lack the page's change to 30 users at 50/s", meta.LoadChanges)
	}
	for _, f := range []string{"summary.json", "requests.csv", "locust_stats.csv", "diagnosis.json", "report.html"} {
		if _, err := os.Stat(filepath.Join(run, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	checkTimelineControl(t, run, change.T, changedAt)
}

// total returns the requests of the page's Aggregated row.
func total(p pageRead) float64 {
	for _, r := range p.Rows {
		if r.Total {
			return r.V["requests"]
		}
	}
	return 0
}

func hash(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// finding returns the page's text of finding id, "" when it is not there.
func finding(p pageRead, id string) string {
	for _, f := range p.Findings {
		if f.ID == id {
			return strings.Join(strings.Fields(f.Text), " ")
		}
	}
	return ""
}

func waitFor(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", limit, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// checkTableIsSummary compares the page's endpoint table with summary.json,
// number for number.
func checkTableIsSummary(t *testing.T, p pageRead, run string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(run, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	type ep struct {
		Method, Name       string
		Requests, Failures float64
		RPS                float64            `json:"rps"`
		FPS                float64            `json:"failures_per_s"`
		Latency            map[string]float64 `json:"latency_ms"`
	}
	var sum struct {
		Endpoints  []ep `json:"endpoints"`
		Aggregated ep   `json:"aggregated"`
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	want := map[string]ep{"total": sum.Aggregated}
	for _, e := range sum.Endpoints {
		want[e.Method+" "+e.Name] = e
	}
	if len(p.Rows) != len(want) {
		t.Errorf("the page's table has %d rows, summary.json %d endpoints and the total", len(p.Rows), len(want))
	}
	for _, r := range p.Rows {
		key := r.Method + " " + r.Name
		if r.Total {
			key = "total"
		}
		w, ok := want[key]
		if !ok {
			t.Errorf("row %q is not in summary.json", key)
			continue
		}
		for k, v := range map[string]float64{"requests": w.Requests, "failures": w.Failures, "median_ms": w.Latency["p50"], "p95_ms": w.Latency["p95"],
			"p99_ms": w.Latency["p99"], "max_ms": w.Latency["max"], "avg_ms": w.Latency["avg"], "rps": w.RPS, "failures_per_s": w.FPS} {
			if r.V[k] != v {
				t.Errorf("%s %s: page %v, summary.json %v", key, k, r.V[k], v)
			}
		}
	}
}

// checkTimelineControl checks the timeline's marker of the page's change
// (at t, made at about changedAt), and that the generator's user count
// came down to 30 after it.
func checkTimelineControl(t *testing.T, run string, at, changedAt time.Time) {
	t.Helper()
	f, err := os.Open(filepath.Join(run, "timeline.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	marker, stop, users30 := false, false, false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var s stampede.Sample
		if json.Unmarshal(sc.Bytes(), &s) != nil {
			continue
		}
		switch {
		case s.Source == "control" && s.Info["by"] == "ui" && s.Info["action"] == "load" && s.Values["users"] == 30:
			marker = true
			if d := s.Time.Sub(at); d < -time.Second || d > time.Second {
				t.Errorf("the timeline's marker is at %v, meta.json's at %v", s.Time, at)
			}
		case s.Source == "control" && s.Info["action"] == "stop":
			stop = true
		case s.Source == "generator" && s.Time.After(changedAt) && s.Values["users"] == 30:
			users30 = true
		}
	}
	if !marker || !stop {
		t.Errorf("timeline.jsonl: load marker %v, stop marker %v", marker, stop)
	}
	if !users30 {
		t.Error("the generator's samples never show 30 users after the change")
	}
}
