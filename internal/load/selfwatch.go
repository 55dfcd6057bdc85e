package load

import (
	"context"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	stampede "github.com/stampede-load/stampede"
)

// Thresholds above which the generator counts as the bottleneck of an
// interval: its figures then measure stampede, not the target.
const (
	SaturatedCPU = 0.90                  // share of the machine's cores in use by stampede
	SaturatedLag = 50 * time.Millisecond // worst lateness of a 10 ms timer
)

// SelfWatch samples the generator itself: its CPU use and how late its
// timers fire (scheduling lag; with the users on event loops, the loops'
// longest turn too), once per interval, as "generator" samples.
// The samples of a segment of a split load (Plan.Segment) carry it as
// Info["segment"] = "i/N".
type SelfWatch struct {
	// SharedWithTarget says the target runs in this process (stampede demo
	// serves the lab in-process): the process's CPU and timer lag are then
	// the target's as much as the generator's. Samples carry it as
	// Info["shared_with_target"] = "true".
	SharedWithTarget bool

	e      *Engine
	maxLag atomic.Int64
	prevDr int64
}

// NewSelfWatch returns a watch over the engine's own process.
func NewSelfWatch(e *Engine) *SelfWatch { return &SelfWatch{e: e} }

// Run samples every interval until ctx ends, passing each sample to emit.
func (w *SelfWatch) Run(ctx context.Context, interval time.Duration, emit func(stampede.Sample)) {
	go w.lagLoop(ctx)
	prevCPU := cpuTime()
	prev := time.Now()
	heap := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			cpu := cpuTime()
			wall := now.Sub(prev)
			pct := 0.0
			if wall > 0 {
				pct = 100 * float64(cpu-prevCPU) / float64(wall)
			}
			prevCPU, prev = cpu, now
			lag := time.Duration(w.maxLag.Swap(0))
			if g := w.e.loops.Load(); g != nil {
				// The users' event loops: their longest turn is how late
				// a response or a wake-up was handled.
				for _, l := range *g {
					lag = max(lag, l.Turn())
				}
			}
			cores := runtime.NumCPU()
			dr := w.e.Dropped()
			sat := 0.0
			if pct >= SaturatedCPU*100*float64(cores) || lag >= SaturatedLag {
				sat = 1
			}
			var info map[string]string
			if w.SharedWithTarget {
				info = map[string]string{"shared_with_target": "true"}
			}
			if sg := w.e.plan.Segment; sg.split() {
				// The users of the segments add up: runner.Finish sums
				// each segment's latest sample by this key.
				if info == nil {
					info = map[string]string{}
				}
				info["segment"] = sg.String()
			}
			vals := map[string]float64{
				"cpu_pct":    pct,
				"cores":      float64(cores),
				"lag_ms":     float64(lag) / float64(time.Millisecond),
				"goroutines": float64(runtime.NumGoroutine()),
				"users":      float64(w.e.Users()),
				"dropped":    float64(dr - w.prevDr),
				"inflight":   float64(w.e.InFlight()),
				"saturated":  sat,
			}
			if rss, ok := residentBytes(); ok {
				vals["rss_bytes"] = float64(rss)
			}
			metrics.Read(heap)
			if heap[0].Value.Kind() == metrics.KindUint64 {
				vals["heap_bytes"] = float64(heap[0].Value.Uint64())
			}
			emit(stampede.Sample{Time: now, Source: "generator", Info: info, Values: vals})
			w.prevDr = dr
		}
	}
}

// lagLoop measures scheduling lag: how late a 10 ms timer fires.
func (w *SelfWatch) lagLoop(ctx context.Context) {
	const tick = 10 * time.Millisecond
	t := time.NewTimer(tick)
	defer t.Stop()
	want := time.Now().Add(tick)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if late := now.Sub(want); late > time.Duration(w.maxLag.Load()) {
				w.maxLag.Store(int64(late))
			}
			want = time.Now().Add(tick)
			t.Reset(tick)
		}
	}
}

// residentBytes returns the process's resident set size from
// /proc/self/statm (its second field, in pages); false where there is no
// /proc.
func residentBytes() (int64, bool) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, false
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, false
	}
	return pages * int64(os.Getpagesize()), true
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
