package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/rundir"
	"github.com/stampede-load/stampede/internal/testserver"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "stampede-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "stampede")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// stampedeCmd runs the built binary.
func stampedeCmd(args ...string) *exec.Cmd {
	c := exec.Command(binary, args...)
	c.Env = append(os.Environ(), "NO_COLOR=1")
	return c
}

func readResults(t *testing.T, dir string) []stampede.Result {
	t.Helper()
	var rs []stampede.Result
	if err := rundir.ReadRequests(dir, func(r *stampede.Result) error { rs = append(rs, *r); return nil }); err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestQuickForm(t *testing.T) {
	ts := httptest.NewServer(testserver.New("x"))
	defer ts.Close()
	out := filepath.Join(t.TempDir(), "run")
	cmd := stampedeCmd("run", "--url", ts.URL+"/", "-u", "50", "-r", "25", "-t", "3s", "--out", out)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("run: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	for _, want := range []string{"Run completed", "Aggregated", "Run directory: " + out + " (report.html)"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	rs := readResults(t, out)
	if len(rs) < 100 {
		t.Fatalf("%d requests recorded", len(rs))
	}
	checkLocustFiles(t, out, len(rs))
	var meta rundir.Meta
	b, _ := os.ReadFile(filepath.Join(out, "meta.json"))
	if err := json.Unmarshal(b, &meta); err != nil || meta.Partial || meta.End.IsZero() {
		t.Errorf("meta.json: partial=%v end=%v err=%v", meta.Partial, meta.End, err)
	}
}

// --requests-csv off writes no requests.csv and says so in meta.json; a
// bad value exits 1 naming the flag.
func TestRequestsCSVFlag(t *testing.T) {
	ts := httptest.NewServer(testserver.New("x"))
	defer ts.Close()
	out := filepath.Join(t.TempDir(), "run")
	cmd := stampedeCmd("run", "--url", ts.URL+"/", "-u", "5", "-r", "5", "-t", "1s", "--quiet", "--requests-csv", "off", "--out", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("run: %v\n%s", err, b)
	}
	if _, err := os.Stat(filepath.Join(out, "requests.csv")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("requests.csv with --requests-csv off: %v", err)
	}
	meta, err := rundir.ReadMeta(out)
	if err != nil || meta.RequestsCSV != "off" {
		t.Errorf("meta.json requests_csv %q, %v; want off", meta.RequestsCSV, err)
	}
	for _, f := range []string{"summary.json", "locust_stats.csv", "diagnosis.json", "report.html"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	cmd = stampedeCmd("run", "--url", ts.URL+"/", "-t", "1s", "--requests-csv", "sample:2", "--out", out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	var ee *exec.ExitError
	if err := cmd.Run(); !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), "--requests-csv") {
		t.Errorf("--requests-csv sample:2: %v, stderr %q; want exit 1 naming the flag", err, stderr.String())
	}
}

func TestBadInputExitsOne(t *testing.T) {
	dir := t.TempDir()
	sc := filepath.Join(dir, "bad.yaml")
	os.WriteFile(sc, []byte("target: http://127.0.0.1:1\nload:\n  users: 2\n  spwan_rate: 1\ntasks: [{steps: [{get: /}]}]\n"), 0o644)
	cmd := stampedeCmd("run", sc, "--out", filepath.Join(dir, "r"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1", err)
	}
	if !strings.Contains(stderr.String(), "bad.yaml:4:3") || !strings.Contains(stderr.String(), "spwan_rate") {
		t.Errorf("stderr %q does not name bad.yaml:4:3 and the key", stderr.String())
	}
}

// TestInterrupt: Ctrl-C mid-run gives complete files marked partial.
func TestInterrupt(t *testing.T) {
	ts := httptest.NewServer(testserver.New("x"))
	defer ts.Close()
	out := filepath.Join(t.TempDir(), "run")
	cmd := stampedeCmd("run", "--url", ts.URL+"/", "-u", "10", "-t", "60s", "--out", out, "--quiet")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("run did not stop within 20 s of Ctrl-C")
	}
	if !strings.Contains(stdout.String(), "interrupted") {
		t.Errorf("output does not say the run was interrupted:\n%s", stdout.String())
	}
	meta, err := rundir.ReadMeta(out)
	if err != nil || !meta.Partial || meta.EndReason != "interrupted" {
		t.Fatalf("meta: %+v %v", meta, err)
	}
	var sum struct {
		Partial    bool `json:"partial"`
		Aggregated struct {
			Requests int `json:"requests"`
		} `json:"aggregated"`
	}
	b, _ := os.ReadFile(filepath.Join(out, "summary.json"))
	if err := json.Unmarshal(b, &sum); err != nil || !sum.Partial {
		t.Fatalf("summary.json partial=%v err=%v", sum.Partial, err)
	}
	rs := readResults(t, out)
	if len(rs) != sum.Aggregated.Requests || len(rs) == 0 {
		t.Errorf("requests.csv has %d records, summary.json %d", len(rs), sum.Aggregated.Requests)
	}
	checkLocustFiles(t, out, len(rs))
}

// TestKill9: after kill -9 every record up to the last flush is readable.
func TestKill9(t *testing.T) {
	ts := httptest.NewServer(testserver.New("x"))
	defer ts.Close()
	out := filepath.Join(t.TempDir(), "run")
	cmd := stampedeCmd("run", "--url", ts.URL+"/", "-u", "5", "--think", "10ms", "-t", "60s", "--out", out, "--quiet")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3200 * time.Millisecond)
	killed := time.Now()
	cmd.Process.Kill()
	cmd.Wait()
	rs := readResults(t, out)
	if len(rs) < 100 {
		t.Fatalf("only %d records readable after kill -9", len(rs))
	}
	// Flushed at least every second: the newest readable record is less
	// than ~2 s older than the kill.
	var last time.Time
	for _, r := range rs {
		if e := r.End(); e.After(last) {
			last = e
		}
	}
	if gap := killed.Sub(last); gap > 2*time.Second {
		t.Errorf("newest readable record is %v older than the kill", gap)
	}
	meta, err := rundir.ReadMeta(out)
	if err != nil || !meta.Partial {
		t.Errorf("meta.json after kill -9: %+v, %v (want readable and partial)", meta, err)
	}
	if _, err := rundir.ReadTimeline(out); err != nil {
		t.Errorf("timeline after kill -9: %v", err)
	}
}

// Locust's headers, copied from shared/peers/locust-csv.md.
var locustHeaders = map[string]string{
	"locust_stats.csv":         "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%\r\n",
	"locust_stats_history.csv": "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,Total Average Response Time,Total Min Response Time,Total Max Response Time,Total Average Content Size\r\n",
	"locust_failures.csv":      "Method,Name,Error,Occurrences\r\n",
	"locust_exceptions.csv":    "Count,Message,Traceback,Nodes\r\n",
}

// checkLocustFiles: the four headers equal Locust's byte for byte, and the
// Aggregated request count equals the records and summary.json's total.
func checkLocustFiles(t *testing.T, dir string, records int) {
	t.Helper()
	for name, header := range locustHeaders {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte(header)) {
			t.Errorf("%s header:\n got %q\nwant %q", name, b[:min(len(b), len(header))], header)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "locust_stats.csv"))
	var agg string
	for _, line := range strings.Split(string(b), "\r\n") {
		if strings.HasPrefix(line, ",Aggregated,") {
			agg = strings.Split(line, ",")[2]
		}
	}
	var sum struct {
		Aggregated struct {
			Requests int `json:"requests"`
		} `json:"aggregated"`
	}
	sb, _ := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err := json.Unmarshal(sb, &sum); err != nil {
		t.Fatal(err)
	}
	if agg != fmt.Sprint(records) || sum.Aggregated.Requests != records {
		t.Errorf("Aggregated request count %s in locust_stats.csv, %d in summary.json, %d records", agg, sum.Aggregated.Requests, records)
	}
}
