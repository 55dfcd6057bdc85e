package merge_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/rundir"
)

// startAt is the start instant of the synthetic segments.
var startAt = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeSegment describes a synthetic segment's run directory: what
// stampede run --segment would write, without running.
type fakeSegment struct {
	index, count int
	digest       string
	startAt      time.Time
	users        int           // this segment's users (numbered as the whole load's)
	wholeUsers   int           // every segment's
	requests     int           // spread evenly over duration
	duration     time.Duration // of the load
	slow         time.Duration // added to every latency: a slow segment
	failEvery    int           // every failEvery-th request fails (0: none)
	partial      bool          // killed: no end, marked partial
	observer     bool
	thresholds   map[string][]string
	seed         uint64
}

// write writes the segment's meta.json, requests.csv (in completion
// order, as the recorder writes it) and timeline.jsonl (a generator sample
// a second, with the segment's users) into dir, and returns its records.
// keep says whether to return them (a benchmark's million would not fit
// the point).
func (f fakeSegment) write(tb testing.TB, dir string, keep bool) []stampede.Result {
	tb.Helper()
	if f.digest == "" {
		f.digest = "sha256:same"
	}
	if f.startAt.IsZero() {
		f.startAt = startAt
	}
	if f.duration == 0 {
		f.duration = 10 * time.Second
	}
	start := f.startAt.Add(time.Duration(max(f.index, 0)) * time.Millisecond) // each generator a little late
	meta := &rundir.Meta{Tool: "stampede", Run: filepath.Base(dir), Target: "http://127.0.0.1:8000", Host: fmt.Sprintf("pod-%d", f.index),
		Start: start, Partial: f.partial, Thresholds: f.thresholds,
		Load: rundir.LoadFacts{Model: "closed", Users: f.users, SpawnRate: 10 / float64(f.count), Duration: f.duration.String(), Accounts: f.users, Assignment: "unique", SourceIPs: 1},
		Segment: &rundir.Segment{Index: f.index, Count: f.count, StartAt: f.startAt, Digest: f.digest,
			WholeLoad: &rundir.LoadFacts{Model: "closed", Users: f.wholeUsers, SpawnRate: 10, Duration: f.duration.String(), Accounts: f.wholeUsers, Assignment: "unique", SourceIPs: 1}}}
	if f.observer {
		meta.Segment.Index, meta.Segment.Observer = -1, true
		meta.Probes = []string{"host"}
	}
	if !f.partial {
		meta.End, meta.EndReason = start.Add(f.duration), "duration reached"
	}
	if err := rundir.WriteMeta(dir, meta); err != nil {
		tb.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(f.seed, uint64(f.index)))
	names := []struct{ method, name string }{{"GET", "/"}, {"GET", "/dashboard/"}, {"POST", "[AUTH] Login POST"}, {"GET", "/pekerjaan/"}, {"GET", "/export/"}}
	var out []stampede.Result
	w, err := rundir.NewRequestWriter(dir)
	if err != nil {
		tb.Fatal(err)
	}
	ran := f.duration
	if f.partial {
		ran /= 2 // killed halfway
	}
	step := ran / time.Duration(max(f.requests, 1))
	for i := range f.requests {
		// Lognormal latencies around 20 ms, a tail to seconds.
		lat := time.Duration(math.Exp(rng.NormFloat64()*0.9+math.Log(20e3)))*time.Microsecond + f.slow
		end := start.Add(time.Duration(i+1) * step).Truncate(time.Microsecond)
		n := names[rng.IntN(len(names))]
		r := stampede.Result{Start: end.Add(-lat.Truncate(time.Microsecond)), Latency: lat.Truncate(time.Microsecond), Name: n.name, Method: n.method,
			Status: 200, Bytes: 1000 + int64(rng.IntN(5000)), User: f.index + rng.IntN(f.users)*f.count + 1}
		if f.failEvery > 0 && i%f.failEvery == 0 {
			r.Status, r.Outcome, r.Reason = 500, stampede.FailStatus, "HTTP 500"
		}
		if err := w.Write(&r); err != nil {
			tb.Fatal(err)
		}
		if keep {
			out = append(out, r)
		}
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	tl, err := rundir.NewJSONLWriter(filepath.Join(dir, rundir.TimelineFile))
	if err != nil {
		tb.Fatal(err)
	}
	for s := time.Second; s <= ran; s += time.Second {
		if f.observer {
			tl.Write(stampede.Sample{Time: start.Add(s), Source: "host", Values: map[string]float64{"cpu_busy_pct": 50}})
			continue
		}
		tl.Write(stampede.Sample{Time: start.Add(s), Source: "generator", Info: map[string]string{"segment": fmt.Sprintf("%d/%d", f.index, f.count)},
			Values: map[string]float64{"users": float64(f.users), "cpu_pct": 10, "cores": 2}})
	}
	if err := tl.Close(); err != nil {
		tb.Fatal(err)
	}
	return out
}
