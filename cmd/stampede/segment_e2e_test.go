package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/metrics"
	"github.com/stampede-load/stampede/internal/rundir"
)

// segmentScenario is the scenario of the split-load test: an open model,
// so the number of requests is set by the arrival rate (about 30/s for 6 s:
// some 180 flows over the 3 segments, 60 each, plus one login per user),
// not by how fast this machine answers. "requests < 120" holds in every
// segment alone and fails over their sum: the threshold a per-instance
// evaluation (k6's distributed runs) gets wrong.
const segmentScenario = `target: http://%s
load: {arrival_rate: 30/s, max_users: 12, duration: 6s}
users_file: users.csv
user_assignment: unique
on_start:
  - {name: "[AUTH] Login GET", get: /accounts/login/}
  - name: "[AUTH] Login POST"
    submit_form:
      fields: {login: "{{user.username}}", password: "{{user.password}}"}
    expect: {status: [302], not_login_page: true}
tasks:
  - {name: dashboard, steps: [{name: "GET /dashboard/", get: /dashboard/, expect: {status: [200]}}]}
thresholds:
  all: ["requests < 120", "p99 < 30s"]
probes: {host: true}
logs:
  - {name: access, path: %s}
`

// TestE2ESegmentsAndMerge runs a load split in three as a Kubernetes
// Indexed Job runs it, on this machine: three processes of the built
// binary, each with only the environment and files a pod of the Job gets
// (JOB_COMPLETION_INDEX, STAMPEDE_SEGMENTS, STAMPEDE_START_AT, the
// scenario and users file where the ConfigMap is mounted, its run
// directory under the results volume), against the lab; then stampede
// merge of the results, as the merge Job runs it.
func TestE2ESegmentsAndMerge(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the lab and four stampede processes")
	}
	root := t.TempDir()
	mount := filepath.Join(root, "config")    // the ConfigMap: /config
	results := filepath.Join(root, "results") // the results volume: /results
	logs := filepath.Join(root, "lab-logs")
	for _, d := range []string{mount, results} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	addr := freeAddr(t)
	startLabProcess(t, addr, "--preset", "healthy", "--pbkdf2-iterations", "1000", "--log-dir", logs)
	users, err := stampedeCmd("lab", "users", "--count", "30").Output()
	if err != nil {
		t.Fatal(err)
	}
	scenario := filepath.Join(mount, "scenario.yaml")
	os.WriteFile(filepath.Join(mount, "users.csv"), users, 0o644)
	os.WriteFile(scenario, fmt.Appendf(nil, segmentScenario, addr, filepath.Join(logs, "access.log")), 0o644)

	// Every pod waits for the same instant, a few seconds ahead (the Job
	// sets it when it is made).
	const n = 3
	startAt := time.Now().Add(4 * time.Second).Truncate(time.Second).UTC().Format(time.RFC3339)
	var wg sync.WaitGroup
	outs := make([]bytes.Buffer, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			// The pod's command: stampede run /config/scenario.yaml --out /results/seg-$(JOB_COMPLETION_INDEX)
			cmd := exec.CommandContext(ctx, binary, "run", scenario, "--quiet", "--out", filepath.Join(results, fmt.Sprintf("seg-%d", i)))
			cmd.Env = append(os.Environ(), "NO_COLOR=1", fmt.Sprintf("JOB_COMPLETION_INDEX=%d", i), fmt.Sprintf("STAMPEDE_SEGMENTS=%d", n), "STAMPEDE_START_AT="+startAt)
			cmd.Dir = root
			cmd.Stdout, cmd.Stderr = &outs[i], &outs[i]
			errs[i] = cmd.Run()
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("segment %d: %v (a segment exits 0: thresholds are the merge's)\n%s", i, errs[i], outs[i].String())
		}
		if want := fmt.Sprintf("Segment %d/%d ($JOB_COMPLETION_INDEX/$STAMPEDE_SEGMENTS)", i, n); !strings.Contains(outs[i].String(), want) {
			t.Errorf("segment %d's output lacks %q:\n%s", i, want, outs[i].String())
		}
	}

	// What each segment did alone.
	thresholds, err := metrics.ParseThresholds(map[string][]string{"all": {"requests < 120", "p99 < 30s"}})
	if err != nil {
		t.Fatal(err)
	}
	var all []stampede.Result
	userSeg := map[int]int{}
	for i := range n {
		dir := filepath.Join(results, fmt.Sprintf("seg-%d", i))
		meta, err := rundir.ReadMeta(dir)
		if err != nil {
			t.Fatal(err)
		}
		if s := meta.Segment; s == nil || s.Index != i || s.Count != n || s.StartAt.Format(time.RFC3339) != startAt || meta.Start.Before(s.StartAt) {
			t.Errorf("segment %d: meta.json segment %+v, start %v", i, s, meta.Start)
		}
		rs := readResults(t, dir)
		for _, r := range rs {
			if (r.User-1)%n != i {
				t.Errorf("segment %d ran user %d", i, r.User)
			}
			if s, ok := userSeg[r.User]; ok && s != i {
				t.Errorf("user %d in segments %d and %d", r.User, s, i)
			}
			userSeg[r.User] = i
		}
		all = append(all, rs...)
		sum, err := metrics.ReadSummary(filepath.Join(dir, "summary.json"))
		if err != nil {
			t.Fatal(err)
		}
		if !metrics.Passed(metrics.Evaluate(thresholds, sum)) {
			t.Fatalf("segment %d alone fails the thresholds (%d requests): the test needs them to hold in every segment", i, sum.Aggregated.Requests)
		}
		// One observer: segment 0 samples the host and follows the log.
		tl, err := rundir.ReadTimeline(dir)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := rundir.ReadEvidence(dir)
		if err != nil {
			t.Fatal(err)
		}
		host := 0
		for _, s := range tl {
			if s.Source == "host" {
				host++
			}
		}
		if (host > 0) != (i == 0) || (len(meta.Probes) > 0) != (i == 0) || (len(meta.Logs) > 0) != (i == 0) || (i > 0 && len(ev) > 0) {
			t.Errorf("segment %d: %d host samples, %d evidence, probes %v, logs %v: only segment 0 observes", i, host, len(ev), meta.Probes, meta.Logs)
		}
	}
	if len(all) <= 120 {
		t.Fatalf("%d requests over the segments: the test needs more than the threshold's 120", len(all))
	}

	// The merge Job: stampede merge /results/merged /results/seg-*
	segDirs, _ := filepath.Glob(filepath.Join(results, "seg-*"))
	merged := filepath.Join(results, "merged")
	cmd := stampedeCmd(append([]string{"merge", merged}, segDirs...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitThreshold {
		t.Fatalf("merge: %v, want exit status %d (a threshold failed over the whole load)\n%s", err, exitThreshold, out.String())
	}
	for _, want := range []string{"Merged 3 of 3 segments", fmt.Sprintf("%d requests.", len(all)), "all: requests < 120: " + fmt.Sprint(len(all)) + " FAIL", "1 threshold(s) failed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("merge output lacks %q:\n%s", want, out.String())
		}
	}

	// Every request once; percentiles of one histogram of all of them.
	mr := readResults(t, merged)
	if len(mr) != len(all) {
		t.Errorf("merged %d requests, the segments made %d", len(mr), len(all))
	}
	sum, err := metrics.ReadSummary(filepath.Join(merged, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	h := metrics.NewHistogram()
	lo, hi := all[0].Latency, all[0].Latency
	for _, r := range all {
		h.RecordValue(r.Latency.Microseconds())
		lo, hi = min(lo, r.Latency), max(hi, r.Latency)
	}
	agg := sum.Aggregated
	if agg.Requests != int64(len(all)) {
		t.Errorf("summary: %d requests, want %d", agg.Requests, len(all))
	}
	for i, q := range metrics.Percentiles[:len(metrics.Percentiles)-1] {
		want := min(max(time.Duration(h.ValueAtQuantile(q*100))*time.Microsecond, lo), hi)
		if d := agg.Latency.Percentiles[i] - want; d.Abs() > time.Microsecond {
			t.Errorf("merged %s %v, one histogram of every request's %v", metrics.PercentileNames[i], agg.Latency.Percentiles[i], want)
		}
	}
	meta, err := rundir.ReadMeta(merged)
	if err != nil {
		t.Fatal(err)
	}
	if ss := meta.Segments; ss == nil || ss.Count != n || len(ss.Merged) != n || len(ss.Missing) != 0 || len(ss.Partial) != 0 || meta.Partial {
		t.Errorf("merged meta.json: segments %+v, partial %v", ss, meta.Partial)
	}
	var d stampede.Diagnosis
	if b, err := os.ReadFile(filepath.Join(merged, "diagnosis.json")); err != nil || json.Unmarshal(b, &d) != nil || d.Verdict != "fail" {
		t.Errorf("merged diagnosis: verdict %q, %v", d.Verdict, err)
	}
	for _, f := range []string{"report.html", "locust_stats_history.csv", "timeline.jsonl", "evidence.jsonl"} {
		if st, err := os.Stat(filepath.Join(merged, f)); err != nil || st.Size() == 0 {
			t.Errorf("merged %s: %v", f, err)
		}
	}

	// Bad input: a segment of another scenario is refused, exit status 1.
	other := filepath.Join(root, "other")
	os.MkdirAll(other, 0o755)
	m1, _ := rundir.ReadMeta(segDirs[1])
	m1.Segment.Digest = "sha256:another"
	rundir.WriteMeta(other, m1)
	cmd = stampedeCmd("merge", filepath.Join(root, "merged-bad"), segDirs[0], other)
	out.Reset()
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); !errors.As(err, &ee) || ee.ExitCode() != exitError || !strings.Contains(out.String(), "different scenarios") || !strings.Contains(out.String(), other) {
		t.Errorf("merge of another scenario's segment: %v\n%s", err, out.String())
	}
}
