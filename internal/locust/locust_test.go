package locust

import (
	"bytes"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/metrics"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// Copied from peers/locust-csv.md, which quotes Locust 2.12.1's files.
const (
	wantStats      = "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%\r\n"
	wantHistory    = "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,Total Average Response Time,Total Min Response Time,Total Max Response Time,Total Average Content Size\r\n"
	wantFailures   = "Method,Name,Error,Occurrences\r\n"
	wantExceptions = "Count,Message,Traceback,Nodes\r\n"
)

var t0 = time.Unix(1795772100, 0).UTC()

// run feeds a fixed, small run into a Metrics: 3 seconds, two endpoints,
// failures of two kinds, one endpoint name that needs CSV quoting.
func run(t testing.TB, w *Writer) *metrics.Metrics {
	m := metrics.New(t0)
	add := func(at, lat time.Duration, method, name string, o stampede.Outcome, reason string) {
		m.Add(&stampede.Result{Start: t0.Add(at), Method: method, Name: name, Latency: lat, Status: 200, Bytes: 998, Outcome: o, Reason: reason})
	}
	for s := range 3 {
		base := time.Duration(s) * time.Second
		for i := range 5 {
			add(base+time.Duration(i)*100*time.Millisecond, 263660621+time.Duration(i*s)*27_000_000, "POST", "[AUTH] Login POST", stampede.OK, "")
		}
		add(base+500*time.Millisecond, 374325619, "POST", "[AUTH] Login POST", stampede.FailStatus, "HTTP 500")
		add(base+600*time.Millisecond, 12500*time.Microsecond, "GET", `/search/?q="a,b"`, stampede.FailContent, "login page returned: it's locked")
		add(base+700*time.Millisecond, 2500*time.Microsecond, "GET", "/dashboard/", stampede.OK, "")
		sec := m.Tick(t0.Add(base+time.Second), 5*(s+1))
		if w != nil {
			if err := w.Write(m, sec); err != nil {
				t.Fatal(err)
			}
		}
	}
	m.Close()
	return m
}

func TestFilesHeadersAndGolden(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, DefaultPrefix)
	w, err := Create(prefix)
	if err != nil {
		t.Fatal(err)
	}
	// Before any Write: headers only.
	for suffix, want := range map[string]string{StatsSuffix: wantStats, HistorySuffix: wantHistory, FailuresSuffix: wantFailures, ExceptionsSuffix: wantExceptions} {
		if got, _ := os.ReadFile(prefix + suffix); string(got) != want {
			t.Errorf("%s = %q, want %q", suffix, got, want)
		}
	}
	run(t, w)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for suffix, header := range map[string]string{StatsSuffix: wantStats, HistorySuffix: wantHistory, FailuresSuffix: wantFailures, ExceptionsSuffix: wantExceptions} {
		got, err := os.ReadFile(prefix + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(got, []byte(header)) {
			t.Errorf("%s does not start with Locust's header", suffix)
		}
		if n := bytes.Count(got, []byte("\n")); n != bytes.Count(got, []byte("\r\n")) {
			t.Errorf("%s has a bare \\n line end", suffix)
		}
		golden(t, "golden/locust"+suffix, got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 4 {
		t.Errorf("run directory holds %d files, want the 4 CSVs (no temporary left)", len(entries))
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestRoundTrip(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "locust")
	w, err := Create(prefix)
	if err != nil {
		t.Fatal(err)
	}
	m := run(t, w)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := Read(prefix)
	if err != nil {
		t.Fatal(err)
	}
	agg := r.Stats.Aggregated()
	if agg == nil {
		t.Fatal("no Aggregated row")
	}
	tot := m.Total()
	if agg.Requests != tot.Requests || agg.Failures != tot.Failures || agg.Max != float64(tot.Max)/1e6 || agg.Min != float64(tot.Min)/1e6 {
		t.Errorf("aggregated %+v, metrics %+v", agg, tot.Totals)
	}
	var sum, fails int64
	for _, row := range r.Stats.Rows {
		if row.Name != metrics.AggregatedName {
			sum += row.Requests
			fails += row.Failures
		}
	}
	if sum != tot.Requests || fails != tot.Failures {
		t.Errorf("rows sum to %d requests, %d failures; want %d, %d", sum, fails, tot.Requests, tot.Failures)
	}
	if len(r.Stats.Rows) != 4 || r.Stats.Rows[1].Name != `/search/?q="a,b"` {
		t.Errorf("rows = %+v", r.Stats.Rows)
	}
	if len(r.History.Rows) != 12 || r.History.Rows[11].TotalRequests != tot.Requests || r.History.Rows[11].Users != 15 {
		t.Errorf("history = %+v", r.History.Rows)
	}
	var occ int64
	for _, f := range r.Failures {
		occ += f.Occurrences
	}
	if occ != tot.Failures || r.Failures[0].Reason() != "login page returned: it's locked" {
		t.Errorf("failures = %+v", r.Failures)
	}
	if len(r.Exceptions) != 0 {
		t.Errorf("exceptions = %+v", r.Exceptions)
	}
}

func TestReadSeed(t *testing.T) {
	r, err := Read(filepath.Join("testdata", "seed"))
	if err != nil {
		t.Fatal(err)
	}
	login := r.Stats.Rows[0]
	if login.Method != "POST" || login.Requests != 15 || login.Median != 360 || login.Average != 341.5001999333451 || login.Percentiles[10] != 370 {
		t.Errorf("login row = %+v", login)
	}
	if empty := r.Stats.Rows[2]; empty.Name != "/search/?q=a,b" || !math.IsNaN(empty.Percentiles[0]) {
		t.Errorf("empty row = %+v", empty)
	}
	if len(r.Stats.Quantiles) != 11 || r.Stats.Quantiles[9] != 0.9999 {
		t.Errorf("quantiles = %v", r.Stats.Quantiles)
	}
	h := r.History.Rows[2]
	if h.Time.Unix() != 1795772105 || h.Users != 15 || h.Method != "" || h.TotalAvgContentSize != 998 || h.TotalMin != 263.6606210000991 {
		t.Errorf("history row = %+v", h)
	}
	if got := r.Failures[1].Reason(); got != "login POST HTTP 500" {
		t.Errorf("reason = %q", got)
	}
	if len(r.Exceptions) != 1 || !strings.Contains(r.Exceptions[0].Traceback, `File "locustfile.py"`) || r.Exceptions[0].Nodes != "host-1_abc, host-2_def" {
		t.Errorf("exceptions = %+v", r.Exceptions)
	}

	f, err := os.Open("testdata/seed_failures_seen.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fs, err := ReadFailures(f, "seed_failures_seen.csv")
	if err != nil {
		t.Fatal(err)
	}
	if fs[0].Reason() != "it's locked" || fs[0].FirstSeen.UnixMilli() != 1795772105250 || fs[0].LastSeen.Year() != 2026 {
		t.Errorf("failure = %+v", fs[0])
	}
}

func TestReadErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
		read           func(string) error
	}{
		{"empty", "", "x.csv: empty file", stats},
		{"missing column", "Type,Name\r\n", `x.csv: line 1: no column "Request Count"`, stats},
		{"bad count", wantStats + "GET,/,12x,0,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1\r\n", `x.csv: line 2, column 7 (Request Count): invalid integer "12x"`, stats},
		{"bad percentile", wantStats + "GET,/,1,0,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,fast\r\n", `line 2, column 45 (100%): invalid number "fast"`, stats},
		{"short row", wantStats + "GET,/,1\r\n", "x.csv: line 2: 3 fields, want 22", stats},
		{"bad quote", wantFailures + "GET,/,\"oops,1\r\n", "x.csv: line 2, column", failures},
		{"bad time", "Method,Name,Error,Occurrences,First Seen\r\nGET,/,e,1,yesterday\r\n", `line 2, column 11 (First Seen): invalid time "yesterday"`, failures},
		{"bad users", wantHistory + "1,-5,,Aggregated,0,0,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,0,0,0,0,0,0,0\r\n", "(User Count): invalid user count -5", history},
	}
	for _, tt := range tests {
		err := tt.read(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}

func stats(s string) error {
	_, err := ReadStats(strings.NewReader(s), "x.csv")
	return err
}

func history(s string) error {
	_, err := ReadHistory(strings.NewReader(s), "x.csv")
	return err
}

func failures(s string) error {
	_, err := ReadFailures(strings.NewReader(s), "x.csv")
	return err
}

func TestPyFloat(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0.0"}, {360, "360.0"}, {341.5001999333451, "341.5001999333451"}, {998, "998.0"},
		{0.1, "0.1"}, {1e-5, "1e-05"}, {0.0001, "0.0001"}, {1e16, "1e+16"}, {123456789012345.6, "123456789012345.6"},
	}
	for _, tt := range tests {
		if got := pyFloat(tt.in); got != tt.want {
			t.Errorf("pyFloat(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestPyRepr(t *testing.T) {
	tests := []struct{ in, want string }{
		{"HTTP 500", `'HTTP 500'`},
		{"it's", `"it's"`},
		{`it's "x"`, `'it\'s "x"'`},
		{"a\\b\n\t\x01é\u00a0", `'a\\b\n\t\x01é\xa0'`},
	}
	for _, tt := range tests {
		got := pyRepr(tt.in)
		if got != tt.want {
			t.Errorf("pyRepr(%q) = %s, want %s", tt.in, got, tt.want)
		}
		if back, ok := unrepr(got); !ok || back != tt.in {
			t.Errorf("unrepr(%s) = %q, %v", got, back, ok)
		}
	}
}

func TestAppendRowQuotesLikePython(t *testing.T) {
	got := string(appendRow(nil, "GET", " lead", `a,b`, `say "hi"`, "l1\nl2", ""))
	want := "GET, lead,\"a,b\",\"say \"\"hi\"\"\",\"l1\nl2\",\r\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
