package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/metrics"
	"github.com/stampede-load/stampede/internal/runner"
)

// progress shows the run as it goes: a line redrawn every second on a
// terminal, a plain line every 5 seconds otherwise, nothing with --quiet
// (the run is then given no progress function).
type progress struct {
	w     io.Writer
	tty   bool
	plan  *load.Plan
	label string
	drawn bool
}

func newProgress(w io.Writer, p *load.Plan, label string) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	return &progress{w: w, tty: tty, plan: p, label: label}
}

// every is how often the line is drawn: every second on a terminal, every
// 5 seconds otherwise.
func (p *progress) every() time.Duration {
	if p.tty {
		return time.Second
	}
	return 5 * time.Second
}

// report draws the line of s; the run calls it every p.every().
func (p *progress) report(s runner.Status) {
	line := p.line(s)
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.drawn = true
	} else {
		fmt.Fprintln(p.w, line)
	}
}

func (p *progress) line(st runner.Status) string {
	s := st.Metrics
	el := s.Elapsed.Truncate(time.Second)
	rem := (p.plan.Duration - s.Elapsed).Truncate(time.Second)
	if rem < 0 {
		rem = 0
	}
	var b strings.Builder
	if p.label != "" {
		b.WriteString(p.label + " ")
	}
	fmt.Fprintf(&b, "%s elapsed, %s left | users %d/%d | %.0f req/s | %d requests, %d failed (%.1f%%) | p50 %s p95 %s",
		el, rem, st.Users, p.plan.Users, s.RPS, s.Requests, s.Failures, 100*s.FailureRate, ms(s.P50), ms(s.P95))
	if st.Dropped > 0 {
		fmt.Fprintf(&b, " | %d dropped", st.Dropped)
	}
	return b.String()
}

func (p *progress) finish() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}

func ms(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	case d < 10*time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}

// printSummary prints the per-endpoint table and the failure groups.
func printSummary(w io.Writer, s *metrics.Summary, target, model string, aborted int64, interrupted bool) {
	state := "completed"
	if interrupted {
		state = "interrupted (partial)"
	}
	fmt.Fprintf(w, "\nRun %s: %s, %s model, %d users peak, %s\n", state, target, model, s.UsersPeak, s.Duration.Round(100*time.Millisecond))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "Type\tName\tRequests\tFailed\tFail%\tReq/s\tp50\tp95\tp99\tMax\t")
	row := func(e *metrics.EndpointSummary) {
		l := e.Latency
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.1f%%\t%.1f\t%s\t%s\t%s\t%s\t\n", e.Method, e.Name, e.Requests, e.Failures, 100*e.FailureRate,
			e.RPS, ms(l.Percentiles[0]), ms(l.Percentiles[5]), ms(l.Percentiles[7]), ms(l.Max))
	}
	for i := range s.Endpoints {
		row(&s.Endpoints[i])
	}
	row(&s.Aggregated)
	tw.Flush()
	if s.Dropped > 0 {
		fmt.Fprintf(w, "Dropped starts (open model, no free user): %d\n", s.Dropped)
	}
	if aborted > 0 {
		fmt.Fprintf(w, "Cut off by the end of the run (in flight, not counted): %d requests\n", aborted)
	}
	if len(s.Failures) > 0 {
		fs := append([]metrics.FailureSummary(nil), s.Failures...)
		sort.SliceStable(fs, func(i, j int) bool { return fs[i].Occurrences > fs[j].Occurrences })
		fmt.Fprintln(w, "\nFailures:")
		for i, f := range fs {
			if i == 10 {
				fmt.Fprintf(w, "  ... and %d more groups (locust_failures.csv)\n", len(fs)-10)
				break
			}
			fmt.Fprintf(w, "  %6d  %s %s: %s\n", f.Occurrences, f.Method, f.Name, f.Reason)
		}
	}
}
