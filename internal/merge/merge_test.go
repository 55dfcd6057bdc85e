package merge_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/locust"
	"github.com/stampede-load/stampede/internal/merge"
	"github.com/stampede-load/stampede/internal/metrics"
	"github.com/stampede-load/stampede/internal/rundir"
)

// thresholds hold in every segment alone and fail over the sum: the case
// of per-instance thresholds (k6's, each instance judging its own share).
var thresholds = map[string][]string{"all": {"requests < 2500", "failures < 60", "p50 < 10s"}}

func threeSegments(t *testing.T) (dirs []string, all []stampede.Result) {
	t.Helper()
	root := t.TempDir()
	for i, f := range []fakeSegment{
		{users: 4, requests: 2400, failEvery: 50},
		{users: 3, requests: 2000, failEvery: 50},
		{users: 3, requests: 2000, failEvery: 50, slow: 400 * time.Millisecond}, // one slow segment
	} {
		f.index, f.count, f.wholeUsers, f.thresholds, f.seed = i, 3, 10, thresholds, 7
		dir := filepath.Join(root, "seg-"+string(rune('0'+i)))
		os.MkdirAll(dir, 0o755)
		all = append(all, f.write(t, dir, true)...)
		dirs = append(dirs, dir)
	}
	obs := filepath.Join(root, "observer")
	os.MkdirAll(obs, 0o755)
	fakeSegment{index: -1, count: 3, observer: true, wholeUsers: 10, thresholds: thresholds}.write(t, obs, false)
	return append(dirs, obs), all
}

func TestMergeIsExact(t *testing.T) {
	dirs, all := threeSegments(t)
	out := filepath.Join(t.TempDir(), "merged")
	// The directories in any order: the merge orders them.
	res, err := merge.Merge(context.Background(), out, []string{dirs[2], dirs[3], dirs[0], dirs[1]}, merge.Options{Command: []string{"stampede", "merge"}})
	if err != nil {
		t.Fatal(err)
	}

	// Every request, once, in completion order.
	var got []stampede.Result
	if err := rundir.ReadRequests(out, func(r *stampede.Result) error { got = append(got, *r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(all) || res.Requests[0]+res.Requests[1]+res.Requests[2] != int64(len(all)) {
		t.Fatalf("merged %d requests (counted %v), the segments hold %d", len(got), res.Requests, len(all))
	}
	if !slices.IsSortedFunc(got, func(a, b stampede.Result) int { return a.End().Compare(b.End()) }) {
		t.Error("merged requests.csv is not in completion order")
	}
	byEnd := func(a, b stampede.Result) int { return a.End().Compare(b.End()) }
	want := slices.Clone(all)
	slices.SortStableFunc(want, byEnd)
	gotSorted := slices.Clone(got)
	slices.SortStableFunc(gotSorted, byEnd)
	if !reflect.DeepEqual(multiset(gotSorted), multiset(want)) {
		t.Error("the merged requests are not the segments' requests")
	}

	// The summary is that of one generator that made every request: the
	// same histograms, so the same percentiles; never an average of the
	// segments' percentiles.
	one := metrics.New(startAt)
	for i := range want {
		one.Add(&want[i])
	}
	one.Close()
	wantSum := one.Summary(time.Time{})
	sum := res.Summary
	if sum.Aggregated.Histogram != wantSum.Aggregated.Histogram || sum.Aggregated.Latency != wantSum.Aggregated.Latency {
		t.Errorf("merged aggregated latency %+v, one histogram of every request %+v", sum.Aggregated.Latency, wantSum.Aggregated.Latency)
	}
	if len(sum.Endpoints) != len(wantSum.Endpoints) {
		t.Fatalf("%d endpoints, want %d", len(sum.Endpoints), len(wantSum.Endpoints))
	}
	for i, e := range sum.Endpoints {
		w := wantSum.Endpoints[i]
		if e.Name != w.Name || e.Requests != w.Requests || e.Failures != w.Failures || e.Histogram != w.Histogram || e.Latency != w.Latency {
			t.Errorf("endpoint %s: %d requests, %d failures, %+v; want %d, %d, %+v", e.Name, e.Requests, e.Failures, e.Latency, w.Requests, w.Failures, w.Latency)
		}
	}
	// The same, independently of the metrics package: an HDR histogram of
	// every latency.
	h := metrics.NewHistogram()
	for _, r := range all {
		h.RecordValue(r.Latency.Microseconds())
	}
	p95 := time.Duration(h.ValueAtQuantile(95)) * time.Microsecond
	if d := sum.Aggregated.Latency.Percentiles[5] - p95; d.Abs() > time.Microsecond {
		t.Errorf("merged p95 %v, one histogram's %v", sum.Aggregated.Latency.Percentiles[5], p95)
	}
	var avg time.Duration
	for _, d := range dirs[:3] {
		s := segmentSummary(t, d)
		avg += s.Aggregated.Latency.Percentiles[5] / 3
	}
	if d := (avg - p95).Abs(); d < 10*time.Millisecond {
		t.Fatalf("the average of the segments' p95 (%v) is the p95 of all (%v): the test cannot tell them apart", avg, p95)
	}

	// Thresholds, once, over the sum.
	if got, want := res.FailedThresholds(), []string{"all: requests < 2500", "all: failures < 60"}; !reflect.DeepEqual(got, want) {
		t.Errorf("failed thresholds %q, want %q", got, want)
	}
	if len(res.Thresholds) != 3 {
		t.Errorf("thresholds evaluated: %v", res.Thresholds)
	}
	if res.Diagnosis == nil || res.DiagnosisErr != nil || res.ReportErr != nil {
		t.Errorf("diagnosis %v (%v), report %v", res.Diagnosis, res.DiagnosisErr, res.ReportErr)
	}
	for _, f := range []string{"report.html", "diagnosis.json", "locust_stats.csv", "locust_failures.csv", "locust_exceptions.csv"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}

	// The per-second history sums the segments' users (4 + 3 + 3).
	f, err := os.Open(filepath.Join(out, "locust_stats_history.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hist, err := locust.ReadHistory(f, "history")
	if err != nil {
		t.Fatal(err)
	}
	peak, rows := 0, 0
	for _, r := range hist.Rows {
		if r.Name == "Aggregated" {
			peak, rows = max(peak, r.Users), rows+1
		}
	}
	if peak != 10 || rows < 10 || rows > 12 {
		t.Errorf("history: %d Aggregated rows, users peak %d; want 10 or 11 rows (10 s), 10 users", rows, peak)
	}
	if sum.UsersPeak != 10 {
		t.Errorf("summary users peak %d, want 10", sum.UsersPeak)
	}

	// Timeline: every directory's samples, by time.
	tl, err := rundir.ReadTimeline(out)
	if err != nil {
		t.Fatal(err)
	}
	sources := map[string]int{}
	for i, s := range tl {
		sources[s.Source+" "+s.Info["segment"]]++
		if i > 0 && s.Time.Before(tl[i-1].Time) {
			t.Fatalf("timeline.jsonl line %d goes back in time", i+1)
		}
	}
	if want := map[string]int{"generator 0/3": 10, "generator 1/3": 10, "generator 2/3": 10, "host ": 10}; !reflect.DeepEqual(sources, want) {
		t.Errorf("merged timeline %v, want %v", sources, want)
	}

	meta, err := rundir.ReadMeta(out)
	if err != nil {
		t.Fatal(err)
	}
	ss := meta.Segments
	if ss == nil || ss.Count != 3 || !reflect.DeepEqual(ss.Merged, []int{0, 1, 2}) || len(ss.Missing) != 0 || len(ss.Partial) != 0 || !ss.Observer || len(ss.Dirs) != 4 {
		t.Errorf("meta.json segments %+v", ss)
	}
	if meta.Load.SourceIPs != 3 {
		t.Errorf("meta.json source_ips %d, want the 3 generator hosts", meta.Load.SourceIPs)
	}
	if meta.Partial || meta.Load.Users != 10 || !meta.Start.Equal(startAt) || meta.Segment != nil || meta.Host != "pod--1,pod-0,pod-1,pod-2" ||
		!reflect.DeepEqual(meta.Probes, []string{"host"}) || !reflect.DeepEqual(meta.Thresholds, thresholds) {
		t.Errorf("meta.json: partial %v, users %d, start %v, host %q, probes %v, thresholds %v", meta.Partial, meta.Load.Users, meta.Start, meta.Host, meta.Probes, meta.Thresholds)
	}
	if res.Failed() {
		t.Error("a merge of every segment failed")
	}

	// Merging again into the same directory gives the same files.
	first, _ := os.ReadFile(filepath.Join(out, "summary.json"))
	if _, err := merge.Merge(context.Background(), out, dirs, merge.Options{NoDiagnose: true}); err != nil {
		t.Fatal(err)
	}
	again, _ := os.ReadFile(filepath.Join(out, "summary.json"))
	if string(first) != string(again) {
		t.Error("a second merge into the same directory wrote another summary.json")
	}
	if _, err := os.Stat(filepath.Join(out, "diagnosis.json")); err == nil {
		t.Error("the first merge's diagnosis outlived a merge without one")
	}
}

// multiset counts the results by value (their start as an instant,
// whatever its location).
func multiset(rs []stampede.Result) map[stampede.Result]int {
	m := map[stampede.Result]int{}
	for _, r := range rs {
		r.Start = time.UnixMicro(r.Start.UnixMicro()).UTC()
		m[r]++
	}
	return m
}

// segmentSummary is the summary of one segment's requests alone.
func segmentSummary(t *testing.T, dir string) *metrics.Summary {
	t.Helper()
	m := metrics.New(startAt)
	if err := rundir.ReadRequests(dir, func(r *stampede.Result) error { m.Add(r); return nil }); err != nil {
		t.Fatal(err)
	}
	m.Close()
	return m.Summary(time.Time{})
}

func TestMergeMissingAndPartial(t *testing.T) {
	root := t.TempDir()
	var dirs []string
	for _, f := range []fakeSegment{
		{index: 0, users: 3, requests: 300},
		{index: 1, users: 3, requests: 100, partial: true}, // killed
		{index: 3, users: 2, requests: 200},
	} {
		f.count, f.wholeUsers = 4, 10
		dir := filepath.Join(root, "seg-"+string(rune('0'+f.index)))
		os.MkdirAll(dir, 0o755)
		f.write(t, dir, false)
		dirs = append(dirs, dir)
	}
	empty := filepath.Join(root, "seg-2") // its pod died before writing anything
	os.MkdirAll(empty, 0o755)
	dirs = append(dirs, empty)
	out := filepath.Join(root, "merged")
	res, err := merge.Merge(context.Background(), out, dirs, merge.Options{NoDiagnose: true})
	if err != nil {
		t.Fatal(err)
	}
	ss := res.Segments
	if !reflect.DeepEqual(ss.Merged, []int{0, 1, 3}) || !reflect.DeepEqual(ss.Missing, []int{2}) || !reflect.DeepEqual(ss.Partial, []int{1}) || !res.Failed() {
		t.Errorf("segments %+v", ss)
	}
	if len(res.Skipped) != 1 || !strings.Contains(res.Skipped[0], empty) {
		t.Errorf("skipped %q, want %s named", res.Skipped, empty)
	}
	meta, err := rundir.ReadMeta(out)
	if err != nil {
		t.Fatal(err)
	}
	if !meta.Partial || !res.Summary.Partial || meta.Load.Users != 8 || !strings.Contains(meta.EndReason, "missing 2") || !strings.Contains(meta.EndReason, "not finished 1") {
		t.Errorf("meta.json: partial %v (summary %v), users %d, end reason %q", meta.Partial, res.Summary.Partial, meta.Load.Users, meta.EndReason)
	}
	if !reflect.DeepEqual(meta.Segments, &ss) {
		t.Errorf("meta.json segments %+v, result %+v", meta.Segments, ss)
	}
	if res.Summary.Aggregated.Requests != 600 {
		t.Errorf("%d requests, want 600", res.Summary.Aggregated.Requests)
	}
	// Users: 3 + 3 + 2 while the killed segment ran (5 s), 3 + 2 once
	// its samples stopped for longer than a few seconds.
	f, err := os.Open(filepath.Join(out, "locust_stats_history.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hist, err := locust.ReadHistory(f, "history")
	if err != nil {
		t.Fatal(err)
	}
	var users []int
	for _, r := range hist.Rows {
		if r.Name == "Aggregated" {
			users = append(users, r.Users)
		}
	}
	if len(users) < 10 || users[2] != 8 || users[9] != 5 {
		t.Errorf("users by second %v: want 8 at the start, 5 at the end", users)
	}
}

func TestMergeRefuses(t *testing.T) {
	root := t.TempDir()
	seg := func(name string, f fakeSegment) string {
		dir := filepath.Join(root, name)
		os.MkdirAll(dir, 0o755)
		if f.count == 0 {
			f.count = 2
		}
		f.users, f.requests, f.wholeUsers = 1, 10, 2
		f.write(t, dir, false)
		return dir
	}
	a := seg("a", fakeSegment{index: 0})
	b := seg("b", fakeSegment{index: 1})
	otherScenario := seg("other-scenario", fakeSegment{index: 1, digest: "sha256:other"})
	otherStart := seg("other-start", fakeSegment{index: 1, startAt: startAt.Add(time.Minute)})
	otherCount := seg("other-count", fakeSegment{index: 1, count: 3})
	twice := seg("twice", fakeSegment{index: 0})
	plain := filepath.Join(root, "plain")
	os.MkdirAll(plain, 0o755)
	rundir.WriteMeta(plain, &rundir.Meta{Run: "plain", Start: startAt})
	empty := filepath.Join(root, "empty")
	os.MkdirAll(empty, 0o755)
	for _, tc := range []struct {
		name string
		out  string
		dirs []string
		want []string // in the error
	}{
		{"scenarios", "", []string{a, b, otherScenario}, []string{"different scenarios", a, otherScenario, "sha256:other"}},
		{"start instants", "", []string{a, otherStart}, []string{"different start instants", a, otherStart}},
		{"counts", "", []string{a, otherCount}, []string{"different counts", otherCount, "3 segments"}},
		{"one segment twice", "", []string{a, b, twice}, []string{a, twice, "both segment 0/2"}},
		{"a run that is not a segment", "", []string{a, plain}, []string{plain, "not a segment", "--segment"}},
		{"nothing to merge", "", []string{empty}, []string{"no segment among", empty}},
		{"output among the inputs", a, []string{a, b}, []string{"output", a}},
		{"no directory", "", nil, []string{"no run directory"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := tc.out
			if out == "" {
				out = filepath.Join(t.TempDir(), "merged")
			}
			_, err := merge.Merge(context.Background(), out, tc.dirs, merge.Options{NoDiagnose: true})
			if err == nil {
				t.Fatal("merged")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
