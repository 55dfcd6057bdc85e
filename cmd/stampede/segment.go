package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/runner"
)

// The environment a Kubernetes Indexed Job gives each pod: the pod's index
// (set by Kubernetes), and the segment count and start instant (set by the
// Job that stampede k8s writes).
const (
	envIndex    = "JOB_COMPLETION_INDEX"
	envSegments = "STAMPEDE_SEGMENTS"
	envStartAt  = "STAMPEDE_START_AT"
)

// splitFlags are the flags of "stampede run" for a load split across
// generators.
type splitFlags struct {
	segment, startAt       string
	observeOnly, noObserve bool
}

func (f *splitFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.segment, "segment", "", "run segment i/N (0-based) of a load split across N generators: its share of users and rates, users numbered as in the whole load (default $"+envIndex+"/$"+envSegments+" when both are set); merge the run directories with stampede merge")
	fs.StringVar(&f.startAt, "start-at", "", "wait until this RFC 3339 instant to start, e.g. 2026-03-01T12:00:00Z, so the segments' seconds line up (default $"+envStartAt+")")
	fs.BoolVar(&f.observeOnly, "observe-only", false, "run the probes and logs for the run's duration without load: the one observer of a split load")
	fs.BoolVar(&f.noObserve, "no-observe", false, "segment 0 runs no probe and follows no log (a separate --observe-only process does)")
}

// split is what the flags and the environment make of a run: a segment
// (Count 0: the whole load), where it came from, and a start instant.
type split struct {
	seg     load.Segment
	from    string // "--segment" or the environment variables
	count   int    // the segment count, known to an observer too
	startAt time.Time
	atFrom  string
}

// resolveSplit reads the flags, then the environment through getenv, at
// now. A start instant more than a few seconds past is an error naming
// where it came from.
func resolveSplit(f *splitFlags, getenv func(string) string, now time.Time) (split, error) {
	var s split
	switch idx, n := getenv(envIndex), getenv(envSegments); {
	case f.segment != "":
		seg, err := load.ParseSegment(f.segment)
		if err != nil {
			return s, fmt.Errorf("run: --segment: %w", err)
		}
		s.seg, s.from = seg, "--segment"
	case idx != "" && n != "":
		from := "$" + envIndex + "/$" + envSegments
		i, err1 := strconv.Atoi(strings.TrimSpace(idx))
		c, err2 := strconv.Atoi(strings.TrimSpace(n))
		if err1 != nil || err2 != nil {
			return s, fmt.Errorf("run: %s = %q/%q: want two integers", from, idx, n)
		}
		seg := load.Segment{Index: i, Count: c}
		if err := seg.Validate(); err != nil {
			return s, fmt.Errorf("run: %s: %w", from, err)
		}
		s.seg, s.from = seg, from
	case n != "":
		// An observer pod knows the count without an index.
		if c, err := strconv.Atoi(strings.TrimSpace(n)); err == nil && c > 0 {
			s.count = c
		}
	}
	if s.seg.Count > 0 {
		s.count = s.seg.Count
	}
	at, from := f.startAt, "--start-at"
	if at == "" {
		at, from = getenv(envStartAt), "$"+envStartAt
	}
	if at != "" {
		t, err := time.Parse(time.RFC3339, strings.TrimSpace(at))
		if err != nil {
			return s, fmt.Errorf("run: %s %q: want an RFC 3339 instant such as 2026-03-01T12:00:00Z", from, at)
		}
		if err := runner.CheckStartAt(t, now); err != nil {
			return s, fmt.Errorf("run: %s: %w", from, err)
		}
		s.startAt, s.atFrom = t, from
	}
	if f.observeOnly && f.segment != "" {
		return s, fmt.Errorf("run: --observe-only runs no load: it takes no --segment")
	}
	return s, nil
}

// applySplit makes the run's plan and options the split asks for: segment
// s.seg of the whole plan, observed (probes and logs) by segment 0 alone
// unless noObserve; or the observer, with the probes and logs and no load.
func applySplit(f *splitFlags, s split, sc *load.Scenario, whole *load.Plan, o *runner.Options) (*load.Plan, error) {
	o.StartAt = s.startAt
	if f.observeOnly {
		o.ObserveOnly = true
		o.Segment = runner.NewObserver(sc, whole, s.count, s.startAt)
		return whole, nil
	}
	if s.seg.Count == 0 {
		return whole, nil
	}
	plan, err := whole.ForSegment(s.seg)
	if err != nil {
		return nil, fmt.Errorf("run: %s: %w", s.from, err)
	}
	o.Segment = runner.NewSegment(sc, whole, s.seg, s.startAt)
	if s.seg.Index != 0 || f.noObserve {
		// The server side is watched once: by segment 0, or by the
		// observer.
		o.Probes = runner.Probes{Interval: o.Probes.Interval}
		o.Logs = nil
	}
	return plan, nil
}
