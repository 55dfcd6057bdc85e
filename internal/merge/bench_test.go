package merge_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stampede-load/stampede/internal/merge"
)

// BenchmarkMerge merges 16 segments of 62,500 requests each (1,000,000
// requests over 10 minutes, 1,667 per second) and reports, besides the
// time, the memory the merge took:
//
//	peak-heap-MB  the most heap in use while merging (runtime/metrics,
//	              sampled every 2 ms)
//	peak-rss-MB   the process's peak resident set (VmHWM) over the merge
//	              alone: reset through /proc/self/clear_refs before it
//	cpu-s         the process's CPU time (user and system) per merge, less
//	              sensitive than the time to other work on the machine
//
// "records" merges without the diagnosis: requests, timeline, evidence,
// summary, Locust CSVs, report.html, all streamed. "diagnosed" adds the
// diagnosis, which holds every request. Run it once:
//
//	go test -run '^$' -bench Merge -benchmem -benchtime 1x ./internal/merge
func BenchmarkMerge(b *testing.B) {
	dirs := segments16(b)
	for _, tc := range []struct {
		name       string
		noDiagnose bool
	}{{"records", true}, {"diagnosed", false}} {
		b.Run(tc.name, func(b *testing.B) {
			var peakHeap, peakRSS float64
			cpu0 := cpuTime()
			for range b.N {
				out := filepath.Join(b.TempDir(), "merged")
				runtime.GC()
				debug.FreeOSMemory()
				resetPeakRSS()
				stop := samplePeakHeap()
				res, err := merge.Merge(context.Background(), out, dirs, merge.Options{NoDiagnose: tc.noDiagnose})
				heap := stop()
				if err != nil {
					b.Fatal(err)
				}
				if got := res.Summary.Aggregated.Requests; got != 16*62_500 {
					b.Fatalf("merged %d requests, want 1,000,000", got)
				}
				peakHeap = max(peakHeap, heap)
				peakRSS = max(peakRSS, vmHWM())
			}
			b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s")
			b.ReportMetric(peakHeap/(1<<20), "peak-heap-MB")
			if peakRSS > 0 {
				b.ReportMetric(peakRSS/(1<<20), "peak-rss-MB")
			}
			b.ReportMetric(16*62_500, "requests")
		})
	}
}

var (
	benchOnce sync.Once
	benchDirs []string
	benchRoot string
)

// segments16 writes the 16 segments once per test binary, in a directory
// TestMain removes.
func segments16(b *testing.B) []string {
	b.Helper()
	benchOnce.Do(func() {
		root, err := os.MkdirTemp("", "stampede-merge-bench")
		if err != nil {
			b.Fatal(err)
		}
		benchRoot = root
		for i := range 16 {
			dir := filepath.Join(root, fmt.Sprintf("seg-%d", i))
			os.MkdirAll(dir, 0o755)
			fakeSegment{index: i, count: 16, users: 100, wholeUsers: 1600, requests: 62_500, duration: 10 * time.Minute,
				failEvery: 40, seed: 1, thresholds: map[string][]string{"all": {"p95 < 1s", "failure_rate < 5%"}}}.write(b, dir, false)
			benchDirs = append(benchDirs, dir)
		}
	})
	return benchDirs
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchRoot != "" {
		os.RemoveAll(benchRoot)
	}
	os.Exit(code)
}

// samplePeakHeap samples the heap in use (objects and the free space of
// their spans, MemStats' HeapInuse) every 2 ms until the returned function
// is called, which returns the most seen.
func samplePeakHeap() func() float64 {
	samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
	done := make(chan struct{})
	result := make(chan float64)
	go func() {
		peak := 0.0
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(samples)
			peak = max(peak, float64(samples[0].Value.Uint64()+samples[1].Value.Uint64()))
			select {
			case <-done:
				result <- peak
				return
			case <-t.C:
			}
		}
	}()
	return func() float64 {
		close(done)
		return <-result
	}
}

// cpuTime is the process's CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// resetPeakRSS resets the process's VmHWM to its current resident set
// (Linux: writing 5 to /proc/self/clear_refs); without it, vmHWM reports
// the process's peak since it started.
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// vmHWM returns the process's peak resident set in bytes, 0 when unknown.
func vmHWM() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			if err != nil {
				return 0
			}
			return kb * 1024
		}
	}
	return 0
}
