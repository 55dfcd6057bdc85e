package report

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stampede-load/stampede/internal/rundir"
)

func TestLoadChangeLabel(t *testing.T) {
	closed := rundir.LoadChange{Users: 50, SpawnRate: 10}
	open := rundir.LoadChange{ArrivalRate: 20, MaxUsers: 100}
	cases := []struct {
		prev, cur rundir.LoadChange
		by, want  string
	}{
		{closed, rundir.LoadChange{Users: 200, SpawnRate: 10}, "ui", "→ 200 users (ui)"},
		{closed, rundir.LoadChange{Users: 200, SpawnRate: 25}, "api", "→ 200 users at 25/s (api)"},
		{closed, rundir.LoadChange{Users: 50, SpawnRate: 2.5}, "ui", "→ 50 users at 2.5/s (ui)"},
		{open, rundir.LoadChange{ArrivalRate: 60, MaxUsers: 100}, "ui", "→ 60 arrivals/s (ui)"},
		{open, rundir.LoadChange{ArrivalRate: 60, MaxUsers: 500}, "api", "→ 60 arrivals/s, max 500 users (api)"},
		{open, rundir.LoadChange{ArrivalRate: 20, MaxUsers: 500}, "api", "→ max 500 users (api)"},
		{closed, rundir.LoadChange{Users: 10, SpawnRate: 10}, "", "→ 10 users"},
	}
	for _, c := range cases {
		if got := LoadChangeLabel(c.prev, c.cur, c.by); got != c.want {
			t.Errorf("LoadChangeLabel(%+v, %+v, %q) = %q, want %q", c.prev, c.cur, c.by, got, c.want)
		}
	}
}

// writeLoadRun writes the fixture run with two changes of its load (at
// 00:20 by the page, at 00:40 by a script) and a stop at 00:55 by the page.
func writeLoadRun(t *testing.T, dir string) {
	t.Helper()
	writeRunDir(t, dir, fixtureRun())
	m, err := rundir.ReadMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	at := func(s int) time.Time { return fixtureStart.Add(time.Duration(s) * time.Second) }
	m.Partial, m.EndReason = true, "stopped by ui"
	m.LoadChanges = []rundir.LoadChange{
		{T: at(0), Users: 50, SpawnRate: 10, By: "plan"},
		{T: at(20), Users: 100, SpawnRate: 20, By: "ui"},
		{T: at(40), Users: 30, SpawnRate: 20, By: "api"},
	}
	if err := rundir.WriteMeta(dir, m); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, rundir.TimelineFile), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		`{"t":"2025-11-27T10:00:20Z","source":"control","values":{"users":100,"spawn_rate":20},"info":{"by":"ui","action":"load"}}`,
		`{"t":"2025-11-27T10:00:40Z","source":"control","values":{"users":30,"spawn_rate":20},"info":{"by":"api","action":"load"}}`,
		`{"t":"2025-11-27T10:00:55Z","source":"control","values":{"users":30,"spawn_rate":20},"info":{"by":"ui","action":"stop"}}`,
	} {
		if _, err := f.WriteString(line + "\n"); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// A run whose load was changed carries its changes and its stop to the
// page, labelled, for every chart to draw; the control source is not
// listed as a probe.
func TestHTMLLoadMarks(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	writeLoadRun(t, dir)
	page := readPage(t, dir)
	d := pageDataOf(t, page)
	want := []loadMarkJSON{
		{T: unixSeconds(fixtureStart.Add(20 * time.Second)), Label: "→ 100 users at 20/s (ui)"},
		{T: unixSeconds(fixtureStart.Add(40 * time.Second)), Label: "→ 30 users (api)"},
		{T: unixSeconds(fixtureStart.Add(55 * time.Second)), Label: "stopped (ui)", Stop: true},
	}
	if len(d.Loads) != len(want) {
		t.Fatalf("loads %+v, want %+v", d.Loads, want)
	}
	for i := range want {
		if d.Loads[i] != want[i] {
			t.Errorf("load mark %d: %+v, want %+v", i, d.Loads[i], want[i])
		}
	}
	if !strings.Contains(page, "changed 2 times during the run") || !strings.Contains(page, "stopped by ui") {
		t.Errorf("the page's facts do not say the load changed twice and the run was stopped by ui")
	}
	if strings.Contains(page, "<td>control</td>") {
		t.Errorf("the control markers are listed as a probe")
	}

	// A run without changes has no marks.
	plain := filepath.Join(t.TempDir(), "plain")
	writeRunDir(t, plain, fixtureRun())
	if d := pageDataOf(t, readPage(t, plain)); len(d.Loads) != 0 {
		t.Errorf("a run without changes has load marks %+v", d.Loads)
	}
}

// In Chromium, every chart draws the changes of the load: a dark dashed
// line at each change's time, and the page has no script error.
func TestBrowserLoadMarks(t *testing.T) {
	bin := chromiumPath()
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium not found (apt-get install chromium, or set STAMPEDE_CHROMIUM)")
		}
		t.Skip("chromium not found: apt-get install chromium, or set STAMPEDE_CHROMIUM")
	}
	dir := filepath.Join(t.TempDir(), "run")
	writeLoadRun(t, dir)
	if err := WriteHTML(dir); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	b := startBrowser(ctx, t, bin)
	b.open(ctx, t, filepath.Join(dir, HTMLFile))
	b.waitDrawn(ctx, t, 5)
	if got := b.eval(ctx, t, `document.documentElement.getAttribute("data-load-marks")`); got != "3" {
		t.Errorf("data-load-marks = %v, want 3", got)
	}
	// On each chart, the dark pixels in the column of the change at 00:20
	// (the line, #333) against those of a column a few seconds before it.
	got := b.eval(ctx, t, `(function () {
		var d = JSON.parse(document.getElementById("report-data").textContent);
		var out = [];
		document.querySelectorAll(".chart").forEach(function (box) {
			var over = box.querySelector(".u-over"), cv = box.querySelector("canvas");
			var ro = over.getBoundingClientRect(), rc = cv.getBoundingClientRect();
			var k = cv.width / rc.width;
			var dark = function (t) {
				var x = Math.round((ro.left - rc.left + (t - d.t0) / ((d.n - 1) * d.step) * ro.width) * k);
				var px = cv.getContext("2d").getImageData(x, Math.round((ro.top - rc.top) * k), 1, Math.round(ro.height * k)).data;
				var n = 0;
				for (var i = 0; i < px.length; i += 4) {
					if (px[i+3] > 0 && Math.abs(px[i] - 51) < 40 && Math.abs(px[i+1] - 51) < 40 && Math.abs(px[i+2] - 51) < 40) n++;
				}
				return n;
			};
			out.push([box.getAttribute("data-chart"), dark(d.loads[0].t), dark(d.loads[0].t - 5)]);
		});
		return out;
	})()`)
	rows, _ := got.([]any)
	if len(rows) != 5 {
		t.Fatalf("charts measured: %v", got)
	}
	for _, r := range rows {
		row, _ := r.([]any)
		if len(row) != 3 {
			t.Fatalf("chart measure %v", r)
		}
		at, before := row[1].(float64), row[2].(float64)
		if at < 20 || at < 3*before {
			t.Errorf("chart %v: %v dark pixels in the column of the change, %v a few seconds before: no line drawn", row[0], at, before)
		}
	}
	shot := os.Getenv("STAMPEDE_ARTIFACTS")
	if shot == "" {
		shot = t.TempDir()
	}
	b.screenshot(ctx, t, filepath.Join(shot, "report-loads.png"))
	for _, e := range b.errors() {
		t.Errorf("browser: %s", e)
	}
}
