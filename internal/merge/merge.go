// Package merge makes one run directory from the run directories of the
// segments of a load split across generators (stampede run --segment), as
// if one generator had made the whole load: records merged by time, the
// histograms and the thresholds of every request together.
package merge

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/metrics"
	"github.com/stampede-load/stampede/internal/rundir"
	"github.com/stampede-load/stampede/internal/runner"
)

// Options are the settings of Merge. The zero value is valid: a diagnosis,
// no command line in meta.json.
type Options struct {
	// NoDiagnose skips the diagnosis (it is the one step that holds every
	// request in memory).
	NoDiagnose bool
	// Command is the command line kept in meta.json.
	Command []string
}

// Result is what Merge leaves besides the files.
type Result struct {
	// Result is the merged run's, as runner.Finish derives it: summary,
	// thresholds evaluated once over every segment, diagnosis.
	*runner.Result
	// Meta is the merged run's meta.json.
	Meta *rundir.Meta
	// Segments is meta.json's "segments": merged, missing, partial.
	Segments rundir.Segments
	// Skipped are the directories given that hold no run (no meta.json),
	// each with why; a segment whose directory was skipped is missing.
	Skipped []string
	// Requests counts the requests of each merged segment, by index.
	Requests map[int]int64
}

// Failed reports whether the merged run is incomplete: a segment missing or
// not finished.
func (r *Result) Failed() bool { return len(r.Segments.Missing) > 0 || len(r.Segments.Partial) > 0 }

// readBuffer is the read buffer of each segment's files: the merge holds
// one per segment and file at once.
const readBuffer = 64 << 10

// input is one directory given to Merge.
type input struct {
	dir  string
	meta *rundir.Meta
}

// Merge writes into out the run directory of the segments whose run
// directories are dirs (in any order; an observer's too):
//
//   - requests.csv: every segment's requests, merged in completion order;
//   - timeline.jsonl and evidence.jsonl: every directory's, merged by time;
//   - meta.json: the whole load (its source_ips the client addresses of
//     the generator hosts, --local-ips counted), the earliest start and latest end, the dropped, aborted and
//     lost-session counts summed, and "segments"
//     naming those merged, missing (0..count-1 without a directory) and
//     partial (interrupted or killed); the run is partial if any is;
//   - then, by runner.Finish over those records: summary.json with
//     histograms of every request (so its percentiles are those of one
//     histogram of all the segments' requests, never an average), the
//     Locust CSVs with the per-second history summed over the segments,
//     the thresholds evaluated once, the diagnosis and report.html.
//
// It refuses directories of segments of different scenarios (digest),
// different start instants or different counts, two directories of one
// segment, and a run directory that is not a segment, with an error naming
// the directories. A directory without meta.json is skipped (its segment,
// if any, is then missing) and named in Result.Skipped.
//
// Memory: the records are streamed (a 64 KiB buffer per segment and file,
// one record per segment, and the last couple of seconds of requests to
// keep completion order); summary, CSVs and report are streamed by
// runner.Finish. The diagnosis alone holds every request (about 140 bytes
// each), as after a single run; Options.NoDiagnose skips it.
func Merge(ctx context.Context, out string, dirs []string, o Options) (*Result, error) {
	if len(dirs) == 0 {
		return nil, errors.New("merge: no run directory to merge")
	}
	res := &Result{Requests: map[int]int64{}}
	var segs, observers []input
	absOut, _ := filepath.Abs(out)
	for _, d := range dirs {
		if a, _ := filepath.Abs(d); a == absOut {
			return nil, fmt.Errorf("merge: the output %s is one of the directories to merge", out)
		}
		meta, err := rundir.ReadMeta(d)
		if errors.Is(err, os.ErrNotExist) {
			res.Skipped = append(res.Skipped, d+": not a run directory (no meta.json): skipped")
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("merge: %w", err)
		}
		switch {
		case meta.Segment == nil:
			return nil, fmt.Errorf("merge: %s is not a segment of a split load (meta.json has no segment: run it with --segment i/N)", d)
		case meta.Segment.Observer:
			observers = append(observers, input{d, meta})
		default:
			segs = append(segs, input{d, meta})
		}
	}
	if len(segs) == 0 {
		return nil, fmt.Errorf("merge: no segment among %s", strings.Join(dirs, ", "))
	}
	if err := check(segs, observers); err != nil {
		return nil, err
	}
	slices.SortFunc(segs, func(a, b input) int { return cmp.Compare(a.meta.Segment.Index, b.meta.Segment.Index) })
	first := segs[0].meta.Segment
	res.Segments = rundir.Segments{Count: first.Count, StartAt: first.StartAt, Digest: first.Digest,
		Observer: len(observers) > 0, Merged: []int{}, Missing: []int{}, Partial: []int{}}
	have := map[int]bool{}
	for _, s := range segs {
		i := s.meta.Segment.Index
		have[i] = true
		res.Segments.Merged = append(res.Segments.Merged, i)
		res.Segments.Dirs = append(res.Segments.Dirs, s.dir)
		if s.meta.Partial {
			res.Segments.Partial = append(res.Segments.Partial, i)
		}
	}
	for i := range first.Count {
		if !have[i] {
			res.Segments.Missing = append(res.Segments.Missing, i)
		}
	}
	for _, ob := range observers {
		res.Segments.Dirs = append(res.Segments.Dirs, ob.dir)
	}

	thresholds, err := parseThresholds(segs[0])
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fmt.Errorf("merge: create %s: %w", out, err)
	}
	clean(out)
	last, err := mergeRequests(ctx, out, segs, res.Requests)
	if err != nil {
		return nil, err
	}
	all := append(slices.Clone(segs), observers...)
	for _, f := range []string{rundir.TimelineFile, rundir.EvidenceFile} {
		if err := mergeJSONL(ctx, out, f, all); err != nil {
			return nil, err
		}
	}
	meta := mergedMeta(out, segs, observers, &res.Segments, last, o.Command)
	if err := rundir.WriteMeta(out, meta); err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	fin, err := runner.Finish(ctx, out, runner.FinishOptions{Thresholds: thresholds, NoDiagnose: o.NoDiagnose})
	if err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	fin.Aborted, fin.SessionsLost, fin.Relogins = meta.Aborted, meta.SessionsLost, meta.Relogins
	res.Result, res.Meta = fin, meta
	return res, nil
}

// check refuses segments that are not parts of one load: another count,
// scenario or start instant, or one segment twice. Errors name the
// directories of each side.
func check(segs, observers []input) error {
	differ := func(what string, key func(*rundir.Segment) string, of []input) error {
		groups := map[string][]string{}
		for _, s := range of {
			k := key(s.meta.Segment)
			groups[k] = append(groups[k], s.dir)
		}
		if len(groups) < 2 {
			return nil
		}
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(groups)) {
			parts = append(parts, fmt.Sprintf("%s (%s)", strings.Join(groups[k], ", "), k))
		}
		return fmt.Errorf("merge: the directories are segments of %s: %s", what, strings.Join(parts, " vs "))
	}
	all := append(slices.Clone(segs), observers...)
	if err := differ("different scenarios (scenario_digest)", func(s *rundir.Segment) string { return s.Digest }, all); err != nil {
		return err
	}
	if err := differ("different start instants (start_at)", func(s *rundir.Segment) string {
		if s.StartAt.IsZero() {
			return "no start_at"
		}
		return s.StartAt.UTC().Format(time.RFC3339Nano)
	}, all); err != nil {
		return err
	}
	// An observer may not know the count (0).
	counted := slices.Clone(segs)
	for _, ob := range observers {
		if ob.meta.Segment.Count > 0 {
			counted = append(counted, ob)
		}
	}
	if err := differ("loads split in different counts", func(s *rundir.Segment) string { return fmt.Sprintf("%d segments", s.Count) }, counted); err != nil {
		return err
	}
	byIndex := map[int]string{}
	for _, s := range segs {
		i := s.meta.Segment.Index
		if i < 0 || i >= s.meta.Segment.Count {
			return fmt.Errorf("merge: %s: segment %d/%d: not a segment index", s.dir, i, s.meta.Segment.Count)
		}
		if d, dup := byIndex[i]; dup {
			return fmt.Errorf("merge: %s and %s are both segment %d/%d: merge one of them", d, s.dir, i, s.meta.Segment.Count)
		}
		byIndex[i] = s.dir
	}
	return nil
}

// parseThresholds reads the scenario's thresholds, as a segment's meta.json
// keeps them (every segment has the same: the digest covers them).
func parseThresholds(s input) ([]metrics.Threshold, error) {
	if len(s.meta.Thresholds) == 0 {
		return nil, nil
	}
	ts, err := metrics.ParseThresholds(s.meta.Thresholds)
	if err != nil {
		return nil, fmt.Errorf("merge: %s thresholds: %w", filepath.Join(s.dir, rundir.MetaFile), err)
	}
	return ts, nil
}

// clean removes the derived files a previous merge into out left, so none
// outlives the records it came from (a diagnosis after NoDiagnose).
func clean(out string) {
	for _, f := range []string{rundir.SummaryFile, runner.DiagnosisJSONFile, runner.DiagnosisMDFile, "report.html"} {
		_ = os.Remove(filepath.Join(out, f))
	}
}

// mergedMeta is the merged run's meta.json: the whole load (the sum of the
// merged segments' shares when some are missing), the earliest start, the
// latest end, the counts summed, partial if a segment is missing or
// partial.
func mergedMeta(out string, segs, observers []input, ss *rundir.Segments, lastResponse time.Time, command []string) *rundir.Meta {
	m0 := segs[0].meta
	meta := &rundir.Meta{Tool: "stampede", Version: stampede.Version, Run: filepath.Base(out), Target: m0.Target,
		Command: runner.RedactArgs(command), Scenario: m0.Scenario, Start: m0.Start, Thresholds: m0.Thresholds, Segments: ss}
	hosts := map[string]bool{}
	loaders := map[string]int{} // the hosts that made load: their source addresses
	probes := map[string]bool{}
	logs := map[rundir.LogRef]bool{}
	end := lastResponse
	var sum rundir.LoadFacts
	for _, in := range append(slices.Clone(segs), observers...) {
		m := in.meta
		if m.Scenario != nil && meta.Scenario == nil {
			meta.Scenario = m.Scenario
		}
		if m.Start.Before(meta.Start) {
			meta.Start = m.Start
		}
		if m.End.After(end) {
			end = m.End
		}
		hosts[m.Host] = true
		for _, p := range m.Probes {
			probes[p] = true
		}
		for _, l := range m.Logs {
			logs[l] = true
		}
		meta.Dropped += m.Dropped
		meta.Aborted += m.Aborted
		meta.SessionsLost += m.SessionsLost
		meta.Relogins += m.Relogins
		if !m.Segment.Observer {
			// Segments on one host with --local-ips share its addresses:
			// the host counts the most any of them used.
			loaders[m.Host] = max(loaders[m.Host], m.Load.SourceIPs, 1)
			sum.Users += m.Load.Users
			sum.SpawnRate += m.Load.SpawnRate
			sum.ArrivalRate += m.Load.ArrivalRate
			sum.Accounts += m.Load.Accounts
		}
	}
	if end.Before(meta.Start) {
		end = meta.Start
	}
	meta.End = end
	delete(hosts, "")
	meta.Host = strings.Join(slices.Sorted(maps.Keys(hosts)), ",")
	meta.Probes = slices.Sorted(maps.Keys(probes))
	meta.Logs = slices.SortedFunc(maps.Keys(logs), func(a, b rundir.LogRef) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Path, b.Path))
	})
	meta.Load = m0.Load
	if w := m0.Segment.WholeLoad; w != nil {
		meta.Load = *w
	}
	if len(ss.Missing) > 0 {
		// The load that ran: the merged segments' shares.
		meta.Load.Users, meta.Load.SpawnRate, meta.Load.ArrivalRate, meta.Load.Accounts = sum.Users, sum.SpawnRate, sum.ArrivalRate, sum.Accounts
	}
	// Each generator host is a client address the server sees (a pod has
	// its own), or as many as it spread its users over (--local-ips):
	// login limits per IP apply to each.
	meta.Load.SourceIPs = 0
	for _, n := range loaders {
		meta.Load.SourceIPs += n
	}
	meta.Load.SourceIPs = max(meta.Load.SourceIPs, 1)
	meta.LoadChanges = mergedLoadChanges(segs)
	meta.Partial = len(ss.Missing) > 0 || len(ss.Partial) > 0
	meta.EndReason = fmt.Sprintf("merged %d of %d segments", len(ss.Merged), ss.Count)
	if len(ss.Missing) > 0 {
		meta.EndReason += fmt.Sprintf("; missing %s", ints(ss.Missing))
	}
	if len(ss.Partial) > 0 {
		meta.EndReason += fmt.Sprintf("; not finished %s", ints(ss.Partial))
	}
	return meta
}

// mergedLoadChanges adds up the load changes of the segments (each
// changed its own share, from its own live page or API): at each moment a
// segment changed its load, the whole load is the sum of every segment's
// load in force then. Nil when no segment's load was changed.
func mergedLoadChanges(segs []input) []rundir.LoadChange {
	changed := false
	var times []rundir.LoadChange // the changes, as moments
	for _, in := range segs {
		lc := in.meta.LoadChanges
		if len(lc) > 1 {
			changed = true
		}
		times = append(times, lc...)
	}
	if !changed {
		return nil
	}
	slices.SortStableFunc(times, func(a, b rundir.LoadChange) int { return a.T.Compare(b.T) })
	inForce := func(lc []rundir.LoadChange, t time.Time, plan rundir.LoadFacts) rundir.LoadChange {
		cur := rundir.LoadChange{Users: plan.Users, SpawnRate: plan.SpawnRate, ArrivalRate: plan.ArrivalRate}
		for _, c := range lc {
			if c.T.After(t) {
				break
			}
			cur = c
		}
		return cur
	}
	var out []rundir.LoadChange
	for _, at := range times {
		sum := rundir.LoadChange{T: at.T, By: at.By}
		for _, in := range segs {
			c := inForce(in.meta.LoadChanges, at.T, in.meta.Load)
			sum.Users += c.Users
			sum.SpawnRate += c.SpawnRate
			sum.ArrivalRate += c.ArrivalRate
			sum.MaxUsers += c.MaxUsers
		}
		if n := len(out); n > 0 && out[n-1].T.Equal(at.T) {
			out[n-1] = sum // several segments changed at once: one entry
			continue
		}
		if n := len(out); n > 0 && sameLoad(out[n-1], sum) {
			continue
		}
		out = append(out, sum)
	}
	return out
}

func sameLoad(a, b rundir.LoadChange) bool {
	return a.Users == b.Users && a.SpawnRate == b.SpawnRate && a.ArrivalRate == b.ArrivalRate && a.MaxUsers == b.MaxUsers
}

func ints(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ", ")
}

// head is a segment's next record in a merge by time.
type head struct {
	at  int64 // Unix ns: a request's end, a sample's or event's time
	src int   // the segment's position, which breaks ties
}

func (a head) less(b head) bool { return a.at < b.at || (a.at == b.at && a.src < b.src) }

// kway picks, among n sources, the one with the earliest head. It keeps
// the heads in a small binary heap of source positions.
type kway struct {
	h []head
}

func (k *kway) push(x head) {
	k.h = append(k.h, x)
	for i := len(k.h) - 1; i > 0; {
		p := (i - 1) / 2
		if !k.h[i].less(k.h[p]) {
			break
		}
		k.h[i], k.h[p] = k.h[p], k.h[i]
		i = p
	}
}

func (k *kway) pop() head {
	top := k.h[0]
	n := len(k.h) - 1
	k.h[0] = k.h[n]
	k.h = k.h[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && k.h[l].less(k.h[m]) {
			m = l
		}
		if r < n && k.h[r].less(k.h[m]) {
			m = r
		}
		if m == i {
			break
		}
		k.h[i], k.h[m] = k.h[m], k.h[i]
		i = m
	}
	return top
}

// mergeRequests writes out's requests.csv: every segment's requests.csv
// merged by completion, put back in completion order where a file was not
// (rundir.EndOrder), counting each segment's into counts. It returns the
// latest response's end.
func mergeRequests(ctx context.Context, out string, segs []input, counts map[int]int64) (time.Time, error) {
	w, err := rundir.NewRequestWriter(out)
	if err != nil {
		return time.Time{}, fmt.Errorf("merge: %w", err)
	}
	readers := make([]*rundir.RequestReader, len(segs))
	cur := make([]stampede.Result, len(segs))
	defer func() {
		for _, rd := range readers {
			if rd != nil {
				rd.Close()
			}
		}
	}()
	var k kway
	next := func(i int) error {
		err := readers[i].Next(&cur[i])
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("merge: %w", err)
		}
		counts[segs[i].meta.Segment.Index]++
		k.push(head{at: cur[i].End().UnixNano(), src: i})
		return nil
	}
	for i, s := range segs {
		rd, err := rundir.OpenRequests(s.dir, readBuffer)
		if errors.Is(err, os.ErrNotExist) {
			continue // a segment killed before its first record
		}
		if err != nil {
			w.Close()
			return time.Time{}, fmt.Errorf("merge: %w", err)
		}
		readers[i] = rd
		if err := next(i); err != nil {
			w.Close()
			return time.Time{}, err
		}
	}
	var order rundir.EndOrder
	var last time.Time
	write := func(r *stampede.Result) error {
		if e := r.End(); e.After(last) {
			last = e
		}
		return w.Write(r)
	}
	for n := 0; len(k.h) > 0; n++ {
		if n%4096 == 0 && ctx.Err() != nil {
			w.Close()
			return time.Time{}, ctx.Err()
		}
		i := k.pop().src
		if err := order.Push(&cur[i], write); err != nil {
			w.Close()
			return time.Time{}, fmt.Errorf("merge: %s: %w", out, err)
		}
		if err := next(i); err != nil {
			w.Close()
			return time.Time{}, err
		}
	}
	err = order.Flush(write)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("merge: %s: %w", filepath.Join(out, rundir.RequestsFile), err)
	}
	return last, nil
}

// mergeJSONL writes out's file (timeline.jsonl or evidence.jsonl): the
// lines of every input's, merged by their time ("t"), each copied as it
// is. A missing file has no line.
func mergeJSONL(ctx context.Context, out, file string, ins []input) error {
	w, err := rundir.NewAppender(filepath.Join(out, file), "")
	if err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	readers := make([]*rundir.JSONLReader, len(ins))
	lines := make([][]byte, len(ins))
	defer func() {
		for _, r := range readers {
			if r != nil {
				r.Close()
			}
		}
	}()
	var k kway
	next := func(i int) error {
		b, err := readers[i].Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("merge: %w", err)
		}
		var t struct {
			T time.Time `json:"t"`
		}
		if err := json.Unmarshal(b, &t); err != nil {
			return fmt.Errorf("merge: %s:%d: %w", filepath.Join(ins[i].dir, file), readers[i].Line(), err)
		}
		lines[i] = append(append(lines[i][:0], b...), '\n')
		k.push(head{at: t.T.UnixNano(), src: i})
		return nil
	}
	fail := func(err error) error {
		w.Close()
		return err
	}
	for i, in := range ins {
		r, err := rundir.OpenJSONL(filepath.Join(in.dir, file), readBuffer)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fail(fmt.Errorf("merge: %w", err))
		}
		readers[i] = r
		if err := next(i); err != nil {
			return fail(err)
		}
	}
	for n := 0; len(k.h) > 0; n++ {
		if n%4096 == 0 && ctx.Err() != nil {
			return fail(ctx.Err())
		}
		i := k.pop().src
		if _, err := w.Write(lines[i]); err != nil {
			return fail(fmt.Errorf("merge: %s: %w", file, err))
		}
		if err := next(i); err != nil {
			return fail(err)
		}
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("merge: %s: %w", filepath.Join(out, file), err)
	}
	return nil
}
