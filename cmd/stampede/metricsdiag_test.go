package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/runner"
)

// With --metrics alone (no live page), the findings go out as they form:
// the run directory's records so far are diagnosed every few seconds and
// stampede_finding follows. The run directory here is a diagnosis fixture's
// (a Redis at its client limit).
func TestMetricsFindingsAsTheyForm(t *testing.T) {
	dir := t.TempDir()
	writeTxtarDir(t, "../../internal/diagnose/testdata/redis-connection-limit.txtar", dir)
	defer func(d time.Duration) { metricsDiagnoseEvery = d }(metricsDiagnoseEvery)
	metricsDiagnoseEvery = 50 * time.Millisecond
	plan, err := load.QuickPlan("http://127.0.0.1:1/", 1, 1, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	o := runner.Options{Dir: dir}
	m, err := startMetricsOut(&metricsFlags{addr: "127.0.0.1:0", otlpInterval: time.Second}, false, nil, plan, &o, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if v, ok := findingGauge(t, m, "redis-connection-limit"); ok && v > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no stampede_finding{id=\"redis-connection-limit\"} within 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// With the live page, the page's own diagnosis feeds the exporter: no
	// second loop.
	var o2 runner.Options
	m2, err := startMetricsOut(&metricsFlags{otlpInterval: time.Second}, true, nil, plan, &o2, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if m2.stopDiag != nil {
		t.Error("a diagnosis loop runs beside the live page's")
	}
	m2.close()
}

func findingGauge(t *testing.T, m *metricsOut, id string) (float64, bool) {
	t.Helper()
	mfs, err := m.exporter().Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "stampede_finding" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			if labelOf(mt, "id") == id {
				return mt.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

func labelOf(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// writeTxtarDir writes the files of a txtar archive (its "-- name --"
// sections) into dir.
func writeTxtarDir(t *testing.T, archive, dir string) {
	t.Helper()
	b, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	var name string
	var cur strings.Builder
	flush := func() {
		if name != "" && name != "want" {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(cur.String()), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		cur.Reset()
	}
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if n, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), "-- "); ok && strings.HasSuffix(n, " --") {
			flush()
			name = strings.TrimSuffix(n, " --")
			continue
		}
		if name != "" {
			cur.WriteString(line)
		}
	}
	flush()
}
