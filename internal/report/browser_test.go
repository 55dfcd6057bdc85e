package report

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBrowserReport opens report.html pages in headless Chromium, driven
// through the DevTools protocol over a pipe (no dependency, no port): the
// page must load with no console error or exception, draw every chart,
// open a log excerpt when an evidence mark is clicked, and look right in
// a screenshot saved under $STAMPEDE_ARTIFACTS (or the test's temporary
// directory). It skips when Chromium is missing, unless CI=true.
func TestBrowserReport(t *testing.T) {
	bin := chromiumPath()
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

	tmp := t.TempDir()
	full := filepath.Join(tmp, "seed")
	writeRunDir(t, full, fixtureRun())
	bare := filepath.Join(tmp, "bare")
	spec := fixtureRun()
	spec.diagnosis, spec.noTimeline, spec.noEvidence = nil, true, true
	writeRunDir(t, bare, spec)
	fixed := filepath.Join(tmp, "fixed")
	writeRunDir(t, fixed, compareFixtures[0].b())
	for _, dir := range []string{full, bare} {
		if err := WriteHTML(dir); err != nil {
			t.Fatal(err)
		}
	}
	c, err := Compare(full, fixed)
	if err != nil {
		t.Fatal(err)
	}
	var cmp bytes.Buffer
	if err := c.WriteHTML(&cmp); err != nil {
		t.Fatal(err)
	}
	comparePath := filepath.Join(tmp, "compare.html")
	if err := os.WriteFile(comparePath, cmp.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	b := startBrowser(ctx, t, bin)

	// The full report: five charts, 24 evidence marks, an excerpt on click.
	b.open(ctx, t, filepath.Join(full, HTMLFile))
	b.waitDrawn(ctx, t, 5)
	if got := b.eval(ctx, t, `document.documentElement.getAttribute("data-markers")`); got != "24" {
		t.Errorf("data-markers = %v, want 24", got)
	}
	if got := b.eval(ctx, t, `document.querySelectorAll(".chart canvas").length`); got != float64(5) {
		t.Errorf("%v canvases, want 5", got)
	}
	shot := filepath.Join(artifacts, "report.png")
	b.screenshot(ctx, t, shot)
	checkScreenshot(t, shot)
	t.Logf("screenshot: %s", shot)

	// Click the first mark of the pool chart, where cl_waiting rises.
	pos := b.eval(ctx, t, `(function () {
		var over = document.querySelector('[data-chart="pool"] .u-over');
		over.scrollIntoView({block: "center"});
		var d = JSON.parse(document.getElementById("report-data").textContent);
		var m = d.markers[0], r = over.getBoundingClientRect();
		var x = (m.t - d.t0) / ((d.n - 1) * d.step) * r.width;
		return [r.left + x, r.top + r.height / 2];
	})()`)
	xy, ok := pos.([]any)
	if !ok || len(xy) != 2 {
		t.Fatalf("mark position = %v", pos)
	}
	b.click(ctx, t, xy[0].(float64), xy[1].(float64))
	excerpt := b.eval(ctx, t, `(function () {
		var p = document.getElementById("excerpt");
		return p.hidden ? "" : p.innerText;
	})()`)
	text, _ := excerpt.(string)
	for _, want := range []string{"query_wait_timeout", "pgbouncer.log:30", "psycopg.errors.ProtocolViolation", "connection.py", "errors.log:"} {
		if !strings.Contains(text, want) {
			t.Errorf("excerpt after clicking a mark lacks %q:\n%s", want, text)
		}
	}
	if html := b.eval(ctx, t, `document.getElementById("excerpt-body").innerHTML`); strings.Contains(fmt.Sprint(html), "<b>bold</b>") {
		t.Error("the excerpt renders a log message as HTML")
	}
	b.screenshot(ctx, t, filepath.Join(artifacts, "report-excerpt.png"))

	// A finding's evidence time opens the log events around it.
	excerpt = b.eval(ctx, t, `(function () {
		var p = document.getElementById("excerpt");
		p.hidden = true;
		document.querySelector("#findings button[data-t]").click();
		return p.hidden ? "" : p.innerText;
	})()`)
	if text, _ := excerpt.(string); !strings.Contains(text, "Log events around 10:00:21") || !strings.Contains(text, "pgbouncer.log:31") {
		t.Errorf("excerpt after clicking a finding's evidence time:\n%s", text)
	}

	// No diagnosis, no timeline: the request charts alone.
	b.open(ctx, t, filepath.Join(bare, HTMLFile))
	b.waitDrawn(ctx, t, 3)

	// The comparison page: three charts on a relative axis.
	b.open(ctx, t, comparePath)
	b.waitDrawn(ctx, t, 3)
	b.screenshot(ctx, t, filepath.Join(artifacts, "compare.png"))

	for _, e := range b.errors() {
		t.Errorf("browser: %s", e)
	}
}

// chromiumPath returns $STAMPEDE_CHROMIUM, or the first Chromium found.
func chromiumPath() string {
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

// checkScreenshot checks that the screenshot is a 1400x1800 PNG with
// something drawn on it.
func checkScreenshot(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	bnd := img.Bounds()
	if bnd.Dx() != 1400 || bnd.Dy() != 1800 {
		t.Errorf("screenshot is %dx%d, want 1400x1800", bnd.Dx(), bnd.Dy())
	}
	ink := 0
	for y := bnd.Min.Y; y < bnd.Max.Y; y += 4 {
		for x := bnd.Min.X; x < bnd.Max.X; x += 4 {
			r, g, b, _ := img.At(x, y).RGBA()
			if r < 0xe000 || g < 0xe000 || b < 0xe000 {
				ink++
			}
		}
	}
	if total := (bnd.Dx() / 4) * (bnd.Dy() / 4); ink < total/50 {
		t.Errorf("screenshot nearly blank: %d of %d sampled pixels drawn", ink, total)
	}
}

// browser is a headless Chromium driven through the DevTools protocol over
// --remote-debugging-pipe: JSON messages ending in a NUL byte, commands on
// the child's fd 3, answers and events on its fd 4.
type browser struct {
	w       io.Writer
	session string

	mu      sync.Mutex
	next    int
	pending map[int]chan cdpMessage
	errs    []string
	loaded  chan struct{}
}

type cdpMessage struct {
	ID        int             `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Error     *struct {
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

func startBrowser(ctx context.Context, t *testing.T, bin string) *browser {
	t.Helper()
	toChild, ours, err := os.Pipe() // the child reads commands from fd 3
	if err != nil {
		t.Fatal(err)
	}
	theirs, fromChild, err := os.Pipe() // the child writes to fd 4
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bin,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
		"--user-data-dir="+t.TempDir(), "--window-size=1400,1800", "--force-device-scale-factor=1",
		"--remote-debugging-pipe", "about:blank")
	cmd.ExtraFiles = []*os.File{toChild, fromChild}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	toChild.Close()
	fromChild.Close()
	b := &browser{w: ours, pending: map[int]chan cdpMessage{}, loaded: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.read(theirs)
	}()
	t.Cleanup(func() {
		ours.Close() // Chromium exits when its command pipe closes
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		theirs.Close()
		<-done
		if t.Failed() {
			t.Logf("chromium stderr:\n%s", lastLines(stderr.String(), 20))
		}
	})

	var targets struct {
		TargetInfos []struct{ TargetID, Type string } `json:"targetInfos"`
	}
	b.call(ctx, t, "", "Target.getTargets", nil, &targets)
	id := ""
	for _, ti := range targets.TargetInfos {
		if ti.Type == "page" {
			id = ti.TargetID
		}
	}
	if id == "" {
		t.Fatalf("no page target: %+v", targets)
	}
	var att struct {
		SessionID string `json:"sessionId"`
	}
	b.call(ctx, t, "", "Target.attachToTarget", map[string]any{"targetId": id, "flatten": true}, &att)
	b.session = att.SessionID
	for _, m := range []string{"Page.enable", "Runtime.enable", "Log.enable"} {
		b.call(ctx, t, b.session, m, nil, nil)
	}
	// The window's size includes its (invisible) frame: fix the viewport
	// itself to the size of a laptop-ish screen.
	b.call(ctx, t, b.session, "Emulation.setDeviceMetricsOverride",
		map[string]any{"width": 1400, "height": 1800, "deviceScaleFactor": 1, "mobile": false}, nil)
	return b
}

// lastLines returns the last n lines of s, without D-Bus complaints (there
// is no session bus in a container).
func lastLines(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if !strings.Contains(l, "dbus") {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// read dispatches answers to their callers and records the events that
// matter: console errors, exceptions, error log entries, page loads.
func (b *browser) read(r io.Reader) {
	br := bufio.NewReaderSize(r, 1<<20)
	for {
		raw, err := br.ReadBytes(0)
		if err != nil {
			return
		}
		var m cdpMessage
		if json.Unmarshal(raw[:len(raw)-1], &m) != nil {
			continue
		}
		b.mu.Lock()
		if m.ID != 0 {
			if ch := b.pending[m.ID]; ch != nil {
				ch <- m
				delete(b.pending, m.ID)
			}
			b.mu.Unlock()
			continue
		}
		switch m.Method {
		case "Page.loadEventFired":
			select {
			case b.loaded <- struct{}{}:
			default:
			}
		case "Runtime.exceptionThrown":
			b.errs = append(b.errs, "exception: "+string(m.Params))
		case "Runtime.consoleAPICalled":
			var p struct {
				Type string `json:"type"`
			}
			_ = json.Unmarshal(m.Params, &p)
			if p.Type == "error" || p.Type == "assert" || p.Type == "warning" {
				b.errs = append(b.errs, "console."+p.Type+": "+string(m.Params))
			}
		case "Log.entryAdded":
			var p struct {
				Entry struct{ Level, Text, URL string } `json:"entry"`
			}
			_ = json.Unmarshal(m.Params, &p)
			if p.Entry.Level == "error" {
				b.errs = append(b.errs, "log: "+p.Entry.Text+" "+p.Entry.URL)
			}
		}
		b.mu.Unlock()
	}
}

func (b *browser) errors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errs...)
}

// call sends a command and decodes its result into out (when not nil).
func (b *browser) call(ctx context.Context, t *testing.T, session, method string, params, out any) {
	t.Helper()
	if err := b.try(ctx, session, method, params, out); err != nil {
		t.Fatalf("%s: %v", method, err)
	}
}

func (b *browser) try(ctx context.Context, session, method string, params, out any) error {
	ch := make(chan cdpMessage, 1)
	b.mu.Lock()
	b.next++
	id := b.next
	b.pending[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	raw, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	if _, err := b.w.Write(append(raw, 0)); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case m := <-ch:
		if m.Error != nil {
			return errors.New(m.Error.Message)
		}
		if out != nil {
			return json.Unmarshal(m.Result, out)
		}
		return nil
	}
}

// open navigates to the file at path and waits for its load event.
func (b *browser) open(ctx context.Context, t *testing.T, path string) {
	t.Helper()
	select {
	case <-b.loaded: // a load event left over from a previous page
	default:
	}
	b.call(ctx, t, b.session, "Page.navigate", map[string]any{"url": "file://" + path}, nil)
	select {
	case <-b.loaded:
	case <-ctx.Done():
		t.Fatalf("%s: no load event", path)
	}
}

// eval evaluates a JavaScript expression in the page and returns its value.
func (b *browser) eval(ctx context.Context, t *testing.T, expr string) any {
	t.Helper()
	var r struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
		ExceptionDetails json.RawMessage `json:"exceptionDetails"`
	}
	b.call(ctx, t, b.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &r)
	if r.ExceptionDetails != nil {
		t.Fatalf("evaluating %s: %s", expr, r.ExceptionDetails)
	}
	return r.Result.Value
}

// waitDrawn waits until the page's script says it drew n charts.
func (b *browser) waitDrawn(ctx context.Context, t *testing.T, n int) {
	t.Helper()
	const expr = `[document.documentElement.getAttribute("data-ready"), document.documentElement.getAttribute("data-charts"),
		document.documentElement.getAttribute("data-charts-drawn"), document.documentElement.getAttribute("data-js-error")]`
	want := fmt.Sprint(n)
	var last any
	for ctx.Err() == nil {
		last = b.eval(ctx, t, expr)
		v, _ := last.([]any)
		if len(v) == 4 && v[3] != nil {
			t.Fatalf("page script error: %v", v[3])
		}
		if len(v) == 4 && v[0] == "1" && v[1] == want && v[2] == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("charts not drawn: [ready, charts, drawn, error] = %v, want %d charts", last, n)
}

// click clicks at the viewport position x, y like a person would.
func (b *browser) click(ctx context.Context, t *testing.T, x, y float64) {
	t.Helper()
	for _, typ := range []string{"mouseMoved", "mousePressed", "mouseReleased"} {
		p := map[string]any{"type": typ, "x": x, "y": y}
		if typ != "mouseMoved" {
			p["button"], p["clickCount"] = "left", 1
		}
		b.call(ctx, t, b.session, "Input.dispatchMouseEvent", p, nil)
	}
}

// screenshot saves the viewport as a PNG at path.
func (b *browser) screenshot(ctx context.Context, t *testing.T, path string) {
	t.Helper()
	var r struct {
		Data string `json:"data"`
	}
	b.call(ctx, t, b.session, "Page.captureScreenshot", map[string]any{"format": "png"}, &r)
	img, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, img, 0o644); err != nil {
		t.Fatal(err)
	}
}
