package runner_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/rundir"
	"github.com/stampede-load/stampede/internal/runner"
	"github.com/stampede-load/stampede/internal/testserver"
)

// TestRunSegment: a segment waits for its start instant, records itself
// in meta.json with the whole load, tags its generator samples, keeps the
// scenario's thresholds in meta.json but evaluates none of them.
func TestRunSegment(t *testing.T) {
	ts := httptest.NewServer(testserver.New(password))
	defer ts.Close()
	sc, whole := scenario(t, ts.URL, "2s")
	sg := load.Segment{Index: 1, Count: 2}
	plan, err := whole.ForSegment(sg)
	if err != nil {
		t.Fatal(err)
	}
	o, err := runner.ScenarioOptions(sc)
	if err != nil {
		t.Fatal(err)
	}
	o.Probes = runner.Probes{}
	o.Dir = t.TempDir()
	o.StartAt = time.Now().Add(700 * time.Millisecond)
	o.Segment = runner.NewSegment(sc, whole, sg, o.StartAt)
	res, err := runner.Run(context.Background(), plan, o)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := rundir.ReadMeta(o.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Start.Before(o.StartAt) {
		t.Errorf("started at %v, before the start instant %v", meta.Start, o.StartAt)
	}
	s := meta.Segment
	if s == nil || s.Index != 1 || s.Count != 2 || !s.StartAt.Equal(o.StartAt) || !strings.HasPrefix(s.Digest, "sha256:") ||
		s.WholeLoad == nil || s.WholeLoad.Users != 4 || meta.Load.Users != 2 {
		t.Fatalf("meta.json segment %+v, load %+v", s, meta.Load)
	}
	if len(res.Thresholds) != 0 || len(meta.Thresholds) == 0 {
		t.Errorf("a segment evaluated thresholds %v (meta.json keeps %v)", res.Thresholds, meta.Thresholds)
	}
	if res.Diagnosis != nil && len(res.Diagnosis.Thresholds) != 0 {
		t.Errorf("a segment's diagnosis evaluated thresholds: %+v", res.Diagnosis.Thresholds)
	}
	for _, r := range readRecords(t, o.Dir) {
		if r.User != 2 && r.User != 4 {
			t.Errorf("segment 1/2 ran user %d, want 2 and 4", r.User)
		}
	}
	timeline, err := rundir.ReadTimeline(o.Dir)
	if err != nil {
		t.Fatal(err)
	}
	gen := 0
	for _, x := range timeline {
		if x.Source == "generator" {
			gen++
			if x.Info["segment"] != "1/2" {
				t.Errorf("generator sample without its segment: %+v", x)
			}
		}
	}
	if gen == 0 {
		t.Error("no generator sample")
	}
}

func TestRunStartAtInThePast(t *testing.T) {
	ts := httptest.NewServer(testserver.New(password))
	defer ts.Close()
	_, plan := scenario(t, ts.URL, "1s")
	dir := filepath.Join(t.TempDir(), "run")
	_, err := runner.Run(context.Background(), plan, runner.Options{Dir: dir, StartAt: time.Now().Add(-time.Minute)})
	if err == nil || !strings.Contains(err.Error(), "in the past") {
		t.Fatalf("a start instant a minute ago: %v", err)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Error("the refused run created its directory")
	}
	if err := runner.CheckStartAt(time.Now().Add(-2*time.Second), time.Now()); err != nil {
		t.Errorf("2 s late: %v", err)
	}
}

// TestObserveOnly: the observer samples its probes for the run's duration
// and sends no request.
func TestObserveOnly(t *testing.T) {
	var hits atomic.Int64
	srv := testserver.New(password)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		srv.ServeHTTP(w, r)
	}))
	defer ts.Close()
	sc, whole := scenario(t, ts.URL, "2s")
	o := runner.Options{Dir: t.TempDir(), ObserveOnly: true, Probes: runner.Probes{Host: true, Interval: 200 * time.Millisecond},
		Segment: runner.NewObserver(sc, whole, 3, time.Time{})}
	begin := time.Now()
	res, err := runner.Run(context.Background(), whole, o)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begin); took < 2*time.Second {
		t.Errorf("observed for %v, want the run's 2 s", took)
	}
	if hits.Load() != 0 || res.Summary.Aggregated.Requests != 0 || res.Diagnosis != nil {
		t.Errorf("observer: %d hits, %d requests, diagnosis %v", hits.Load(), res.Summary.Aggregated.Requests, res.Diagnosis)
	}
	timeline, err := rundir.ReadTimeline(o.Dir)
	if err != nil {
		t.Fatal(err)
	}
	sources := map[string]int{}
	for _, x := range timeline {
		sources[x.Source]++
	}
	if sources["host"] == 0 || sources["generator"] != 0 {
		t.Errorf("observer timeline sources %v: want host samples and no generator", sources)
	}
	meta, _ := rundir.ReadMeta(o.Dir)
	if meta == nil || meta.Segment == nil || !meta.Segment.Observer || meta.Segment.Index != -1 {
		t.Errorf("observer meta.json segment: %+v", meta)
	}
	o.Segment = runner.NewSegment(sc, whole, load.Segment{Index: 0, Count: 3}, time.Time{})
	if err := o.Validate(); err == nil {
		t.Error("ObserveOnly with a load segment validates")
	}
}

func TestScenarioDigest(t *testing.T) {
	sc, whole := scenario(t, "http://127.0.0.1:1", "10s")
	base := runner.ScenarioDigest(sc, whole)
	if !strings.HasPrefix(base, "sha256:") || len(base) != len("sha256:")+64 {
		t.Fatalf("digest %q", base)
	}
	again, wholeAgain := scenario(t, "http://127.0.0.1:1", "10s")
	if got := runner.ScenarioDigest(again, wholeAgain); got != base {
		t.Errorf("the same scenario read twice: %s, %s", got, base)
	}
	other, otherPlan := scenario(t, "http://127.0.0.1:1", "11s")
	if runner.ScenarioDigest(other, otherPlan) == base {
		t.Error("a scenario with another duration has the same digest")
	}
	more := *whole
	more.Users = 5
	if runner.ScenarioDigest(sc, &more) == base {
		t.Error("a plan with more users (-u) has the same digest")
	}
	if runner.ScenarioDigest(nil, whole) == base {
		t.Error("the quick form has the digest of a scenario")
	}
}
