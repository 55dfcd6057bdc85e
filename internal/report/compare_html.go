package report

import (
	"fmt"
	"io"
	"math"
	"time"

	"github.com/stampede-load/stampede"
)

var compareTemplate = parsePage("compare.html.tmpl")

// WriteHTML writes the comparison as one self-contained page, like
// report.html: the tables of WriteText, and both runs' requests/s,
// failures/s and p95 drawn on one axis of seconds since each run's start.
// It reads requests.csv of both runs; a run without one is left out of the
// charts.
func (c *Comparison) WriteHTML(w io.Writer) error {
	p, err := buildComparePage(c, time.Now())
	if err != nil {
		return err
	}
	if err := compareTemplate.Execute(w, p); err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	return nil
}

// comparePage is what compare.html.tmpl renders.
type comparePage struct {
	pageAssets
	*Comparison
	Title     string
	Rows      []compareRow
	Generated string
	Version   string
	Data      pageData
}

// compareRow is an endpoint of the comparison, formatted for the table.
type compareRow struct {
	Title, Only                     string
	Requests, Success, SuccessDelta string
	P50, P95, P99, RPS              [3]string // A, B, change
	Test                            string
	// Worse and Better mark the cells whose change is bad or good news:
	// success rate down, latency significantly up.
	SuccessWorse, SuccessBetter bool
	LatencyWorse, LatencyBetter bool
	Significant                 bool
}

func buildComparePage(c *Comparison, now time.Time) (*comparePage, error) {
	p := &comparePage{
		pageAssets: loadAssets(), Comparison: c,
		Title:     fmt.Sprintf("stampede compare: %s → %s", c.A.Run, c.B.Run),
		Generated: now.UTC().Format("2006-01-02 15:04:05 UTC"),
		Version:   stampede.Version,
	}
	for _, e := range c.Endpoints {
		r := compareRow{Title: endpointTitle(e)}
		switch e.In {
		case "a":
			r.Only = fmt.Sprintf("only in A (%d requests)", e.A.Requests)
		case "b":
			r.Only = fmt.Sprintf("only in B (%d requests)", e.B.Requests)
		default:
			r.Requests = fmt.Sprintf("%d → %d", e.A.Requests, e.B.Requests)
			r.Success = percentText(e.A.SuccessRate) + " → " + percentText(e.B.SuccessRate)
			r.SuccessDelta = pointsText(e.SuccessRateDelta)
			r.SuccessWorse, r.SuccessBetter = e.SuccessRateDelta < -0.0005, e.SuccessRateDelta > 0.0005
			r.P50 = [3]string{msFloatText(e.A.P50), msFloatText(e.B.P50), msDeltaText(e.A.P50, e.B.P50)}
			r.P95 = [3]string{msFloatText(e.A.P95), msFloatText(e.B.P95), msDeltaText(e.A.P95, e.B.P95)}
			r.P99 = [3]string{msFloatText(e.A.P99), msFloatText(e.B.P99), msDeltaText(e.A.P99, e.B.P99)}
			r.RPS = [3]string{trimFloat(e.A.RPS) + "/s", trimFloat(e.B.RPS) + "/s", ratioText(e.RPSRatio)}
			r.Test = testText(e, c.Alpha)
			if t := e.Latency; t != nil && t.Significant {
				r.Significant = true
				r.LatencyWorse, r.LatencyBetter = t.BSlower, !t.BSlower
			}
		}
		p.Rows = append(p.Rows, r)
	}

	// Both runs on one axis of seconds since their start, in buckets of the
	// same width.
	step := stepFor(time.Duration(max(c.A.DurationS, c.B.DurationS) * float64(time.Second)))
	ra, err := readRun(c.A.Dir, step)
	if err != nil {
		return nil, fmt.Errorf("compare: %w", err)
	}
	rb, err := readRun(c.B.Dir, step)
	if err != nil {
		return nil, fmt.Errorf("compare: %w", err)
	}
	p.Data = comparisonData(ra.Series, rb.Series, step)
	return p, nil
}

// comparisonData draws both runs' series on one relative time axis.
func comparisonData(a, b *runSeries, step time.Duration) pageData {
	d := pageData{Step: step.Seconds(), Relative: true, Charts: []chartJSON{}}
	for _, s := range []*runSeries{a, b} {
		if s != nil {
			d.N = max(d.N, s.Len())
		}
	}
	if d.N == 0 {
		return d
	}
	type line struct {
		s     *runSeries
		tag   string
		color string
		dash  bool
	}
	lines := []line{{a, "A", "#1f77b4", true}, {b, "B", "#ff7f0e", false}}
	pad := func(v []float64) floats {
		out := make(floats, d.N)
		for i := range out {
			out[i] = math.NaN()
			if i < len(v) {
				out[i] = v[i]
			}
		}
		return out
	}
	rate := func(s *runSeries, col int) floats {
		v := pad(s.Counts[col])
		if !s.Rates {
			for i := range v {
				v[i] /= s.Step.Seconds()
			}
		}
		return v
	}
	tp := chartJSON{ID: "throughput", Title: "Throughput, A and B", Axes: [2]string{"requests/s", ""}}
	fc := chartJSON{ID: "failures", Title: "Failures, A and B", Axes: [2]string{"failures/s", ""}}
	lc := chartJSON{ID: "latency", Title: "Latency p95, A and B", Axes: [2]string{"ms", ""}}
	for _, l := range lines {
		if l.s == nil || l.s.Len() == 0 {
			continue
		}
		tp.Series = append(tp.Series, seriesJSON{Label: l.tag + " requests/s", Unit: "/s", Color: l.color, Dash: l.dash, Values: rate(l.s, colRequests)})
		fc.Series = append(fc.Series, seriesJSON{Label: l.tag + " failures/s", Unit: "/s", Color: l.color, Dash: l.dash, Values: rate(l.s, colFailures)})
		lc.Series = append(lc.Series, seriesJSON{Label: l.tag + " p95", Unit: "ms", Color: l.color, Dash: l.dash, Values: pad(l.s.P95)})
	}
	d.Charts = append(d.Charts, tp, fc, lc)
	return d
}
