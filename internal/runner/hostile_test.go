package runner_test

import (
	"bytes"
	"context"
	"flag"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/report"
	"github.com/stampede-load/stampede/internal/rundir"
	"github.com/stampede-load/stampede/internal/runner"
	"github.com/stampede-load/stampede/internal/testserver"
)

var regenHostile = flag.Bool("regen-hostile", false, "write testdata/hostile/rundir again from a fresh run")

// hostileBase is a small, whole run directory (its records only): the
// damaged run directories of TestHostileRunDirs are made from it.
const hostileBase = "testdata/hostile/rundir"

// TestRegenHostileBase writes hostileBase from a run of a second against
// the test server, with a log the run follows, when -regen-hostile is set.
func TestRegenHostileBase(t *testing.T) {
	if !*regenHostile {
		t.Skip("run with -regen-hostile to write " + hostileBase + " again")
	}
	ts := httptest.NewServer(testserver.New(password))
	defer ts.Close()
	sc, plan := scenario(t, ts.URL, "1s")
	plan.Users = 2
	o, err := runner.ScenarioOptions(sc)
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "app.log")
	os.WriteFile(logPath, nil, 0o644)
	o.Logs = []load.LogSpec{{Name: "app", Path: logPath}}
	o.Dir = t.TempDir()
	o.NoDiagnose = true
	go func() {
		time.Sleep(300 * time.Millisecond)
		f, _ := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
		f.WriteString(time.Now().Format("2006-01-02 15:04:05,000") + " ERROR django.request Internal Server Error: /\n" +
			"Traceback (most recent call last):\n  File \"/app/views.py\", line 3, in index\n    x()\n" +
			"django.db.utils.OperationalError: query_wait_timeout\n")
		f.Close()
	}()
	if _, err := runner.Run(context.Background(), plan, o); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(hostileBase)
	os.MkdirAll(hostileBase, 0o755)
	for _, name := range []string{rundir.MetaFile, rundir.RequestsFile, rundir.TimelineFile, rundir.EvidenceFile, rundir.SummaryFile} {
		// No temporary path in the fixture.
		b := bytes.ReplaceAll(readFile(t, filepath.Join(o.Dir, name)), []byte(filepath.Dir(logPath)), []byte("/var/log/app"))
		if err := os.WriteFile(filepath.Join(hostileBase, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestHostileRunDirs damages copies of hostileBase as kill -9, a crash, a
// full disk or a careless hand would, and reads each with LoadInput,
// Diagnose and the report: read as far as it is valid, or an error that
// names the file and the line, never a crash or a hang.
func TestHostileRunDirs(t *testing.T) {
	base := map[string][]byte{}
	for _, name := range []string{rundir.MetaFile, rundir.RequestsFile, rundir.TimelineFile, rundir.EvidenceFile, rundir.SummaryFile} {
		base[name] = readFile(t, filepath.Join(hostileBase, name))
	}
	rows := bytes.Count(base[rundir.RequestsFile], []byte("\n")) - 1
	events := bytes.Count(base[rundir.EvidenceFile], []byte("\n"))
	if rows < 10 || events < 1 {
		t.Fatalf("%s: %d requests and %d events: run with -regen-hostile", hostileBase, rows, events)
	}
	lineOf := func(b []byte, n int) int { // offset of line n (from 1)
		off := 0
		for i := 1; i < n; i++ {
			off += bytes.IndexByte(b[off:], '\n') + 1
		}
		return off
	}
	for _, tc := range []struct {
		name   string
		damage func(dir string, files map[string][]byte)
		want   string // an error matching this regexp; "" reads
		rows   int    // requests read when it reads
	}{
		{name: "whole", rows: rows},
		{name: "killed mid-write", rows: rows - 1, damage: func(dir string, f map[string][]byte) {
			// kill -9 mid-line: torn last lines, meta.json never rewritten.
			r := f[rundir.RequestsFile]
			f[rundir.RequestsFile] = r[:len(r)-9]
			e := f[rundir.EvidenceFile]
			f[rundir.EvidenceFile] = append(e[:len(e):len(e)], `{"t":"2026-11-28T21:15:00Z","source":"app","mess`...)
			tl := f[rundir.TimelineFile]
			f[rundir.TimelineFile] = tl[:len(tl)-5]
			f[rundir.MetaFile] = bytes.Replace(f[rundir.MetaFile], []byte(`"partial": false`), []byte(`"partial": true`), 1)
			f[rundir.MetaFile] = bytesWithout(f[rundir.MetaFile], `"end":`)
			delete(f, rundir.SummaryFile)
		}},
		{name: "zeros after a crash", rows: rows, damage: func(dir string, f map[string][]byte) {
			// A power loss leaves the file's last block full of zeros.
			f[rundir.RequestsFile] = append(f[rundir.RequestsFile], make([]byte, 4096)...)
		}},
		{name: "zeros then a line", want: "requests.csv:" + strconv.Itoa(rows+2) + ":", damage: func(dir string, f map[string][]byte) {
			f[rundir.RequestsFile] = append(append(f[rundir.RequestsFile], make([]byte, 100)...), "\n1,1,/,GET,200,5,0,0,2,ok,,\n"...)
		}},
		{name: "garbage in the middle", want: "requests.csv:5: ", damage: func(dir string, f map[string][]byte) {
			r := f[rundir.RequestsFile]
			at := lineOf(r, 5)
			f[rundir.RequestsFile] = append(append(append([]byte(nil), r[:at]...), "\xff\xfe garbage, not a request\n"...), r[at:]...)
		}},
		{name: "a 50 MB line", want: "requests.csv:3: ", damage: func(dir string, f map[string][]byte) {
			r := f[rundir.RequestsFile]
			at := lineOf(r, 3)
			f[rundir.RequestsFile] = append(append(append([]byte(nil), r[:at]...), bytes.Repeat([]byte("x,"), 25<<20)...), append([]byte("\n"), r[at:]...)...)
		}},
		{name: "wrong header", want: "requests.csv:1: header", damage: func(dir string, f map[string][]byte) {
			f[rundir.RequestsFile] = append([]byte("time,name,status\n"), f[rundir.RequestsFile]...)
		}},
		{name: "requests.csv is a directory", want: "requests.csv", damage: func(dir string, f map[string][]byte) {
			delete(f, rundir.RequestsFile)
			os.Mkdir(filepath.Join(dir, rundir.RequestsFile), 0o755)
		}},
		{name: "no requests.csv", want: "requests.csv: no such file", damage: func(dir string, f map[string][]byte) {
			delete(f, rundir.RequestsFile)
		}},
		{name: "empty meta.json", want: "meta.json is empty", damage: func(dir string, f map[string][]byte) {
			f[rundir.MetaFile] = nil
		}},
		{name: "meta.json cut short", want: `meta.json: line \d+, column \d+: unexpected end of JSON input`, damage: func(dir string, f map[string][]byte) {
			f[rundir.MetaFile] = f[rundir.MetaFile][:len(f[rundir.MetaFile])/2]
		}},
		{name: "meta.json of another shape", want: "meta.json: line 1, column 2: the file: want an object, got array", damage: func(dir string, f map[string][]byte) {
			f[rundir.MetaFile] = []byte(`["not", "a", "run"]`)
		}},
		{name: "meta.json with a wrong value", want: `meta.json: line \d+, column \d+: load.users: want a number, got string`, damage: func(dir string, f map[string][]byte) {
			f[rundir.MetaFile] = bytes.Replace(f[rundir.MetaFile], []byte(`"users": 2`), []byte(`"users": "two"`), 1)
		}},
		{name: "no meta.json", want: "is not a run directory", damage: func(dir string, f map[string][]byte) {
			delete(f, rundir.MetaFile)
		}},
		{name: "evidence line broken in the middle", want: "evidence.jsonl:1: ", damage: func(dir string, f map[string][]byte) {
			f[rundir.EvidenceFile] = append([]byte(`{"t":"2026-11-28T21:15:00Z","source":"app","message":`+"\n"), f[rundir.EvidenceFile]...)
		}},
		{name: "timeline of garbage", want: "timeline.jsonl:1: ", damage: func(dir string, f map[string][]byte) {
			f[rundir.TimelineFile] = []byte("\x00\x01\x02 garbage\n{}\n")
		}},
		{name: "summary.json cut short", want: "summary.json", damage: func(dir string, f map[string][]byte) {
			f[rundir.SummaryFile] = f[rundir.SummaryFile][:20]
		}},
		{name: "empty records", rows: 0, damage: func(dir string, f map[string][]byte) {
			f[rundir.RequestsFile] = []byte(rundir.RequestsHeader + "\n")
			f[rundir.TimelineFile] = nil
			f[rundir.EvidenceFile] = nil
			delete(f, rundir.SummaryFile)
		}},
		{name: "requests.csv empty", rows: 0, damage: func(dir string, f map[string][]byte) {
			f[rundir.RequestsFile] = nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			files := map[string][]byte{}
			for k, v := range base {
				files[k] = append([]byte(nil), v...)
			}
			if tc.damage != nil {
				tc.damage(dir, files)
			}
			for name, b := range files {
				if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var n int
			var err error
			within(t, 60*time.Second, func() {
				in, lerr := runner.LoadInput(dir)
				if lerr == nil {
					n = len(in.Results)
				}
				err = lerr
			})
			if tc.want != "" {
				if err == nil || !regexp.MustCompile(tc.want).MatchString(err.Error()) {
					t.Fatalf("LoadInput: %v\nwant an error matching %q", err, tc.want)
				}
				t.Log(err)
				var derr error
				within(t, 60*time.Second, func() { _, derr = runner.Diagnose(dir) })
				if derr == nil || derr.Error() != err.Error() {
					t.Errorf("Diagnose: %v, want the error of LoadInput", derr)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadInput: %v", err)
			}
			if n != tc.rows {
				t.Errorf("%d requests read, want %d", n, tc.rows)
			}
			var d *stampede.Diagnosis
			within(t, 60*time.Second, func() { d, err = runner.Diagnose(dir) })
			if err != nil || d == nil {
				t.Fatalf("Diagnose: %v", err)
			}
			within(t, 60*time.Second, func() { err = report.WriteHTML(dir) })
			if err != nil {
				t.Errorf("report: %v", err)
			}
		})
	}
}

func bytesWithout(b []byte, key string) []byte {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return b
	}
	j := bytes.IndexByte(b[i:], '\n')
	return append(append([]byte(nil), b[:i]...), b[i+j+1:]...)
}

// within runs f and fails the test if it has not returned after d.
func within(t *testing.T, d time.Duration, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("no answer in %v", d)
	}
}
