package diagnose

import (
	"fmt"
	"math"
	"time"

	"github.com/stampede-load/stampede"
)

// LoadStep is a change of the load made while the run ran (stampede run
// --ui: the live page or its HTTP API; meta.json's load_changes after the
// plan's entry): the load in force from Time on. The closed model's steps
// hold Users and SpawnRate, the open model's ArrivalRate and MaxUsers.
type LoadStep struct {
	Time        time.Time `json:"t"`
	Users       int       `json:"users,omitempty"`
	SpawnRate   float64   `json:"spawn_rate,omitempty"`
	ArrivalRate float64   `json:"arrival_rate,omitempty"`
	MaxUsers    int       `json:"max_users,omitempty"`
	// By is who made it: "ui" or "api".
	By string `json:"by,omitempty"`
}

// A latency step (or the first failures) that follows a step up of the
// load is the load's: a reading of the capacity at the higher load, not a
// fault that appeared by itself mid-run. It follows the step when the
// symptoms begin within stepSettle of the end of the step's ramp, and at
// most stepBeforeShare of them came before the step.
const (
	stepSettle      = 15 * time.Second
	stepBeforeShare = 0.05
	maxStepRamp     = 5 * time.Minute
)

// stepUp is a step of the load that raised it, as the evidence words it.
type stepUp struct {
	at       time.Time
	rampLen  time.Duration // the closed model's ramp from the old users to the new
	from, to float64
	unit     string // "users", "arrivals/s"
	by       string
}

// steps returns the steps of the load that raised it, in order: their
// load before and after, and the time the closed model's ramp took.
func (c *ctx) steps() []stepUp {
	l := c.in.Load
	open := l.Model == ModelOpen
	var prev float64
	if open {
		prev = l.ArrivalRate
	} else {
		prev = float64(l.Users)
	}
	var out []stepUp
	for _, s := range l.Steps {
		next, unit := float64(s.Users), "users"
		if open {
			next, unit = s.ArrivalRate, "arrivals/s"
		}
		if next <= 0 { // a step that left this figure alone
			continue
		}
		if next > prev && prev > 0 {
			st := stepUp{at: s.Time, from: prev, to: next, unit: unit, by: s.By}
			if !open && s.SpawnRate > 0 {
				// The step takes effect over its ramp: the symptoms may
				// begin as late as its end.
				st.rampLen = min(time.Duration((next-prev)/s.SpawnRate*float64(time.Second)), maxStepRamp)
			}
			out = append(out, st)
		}
		prev = next
	}
	return out
}

// stepBefore returns the step up of the load whose symptoms series (per
// second from c.start) are: the first one after which they began within
// stepSettle of its ramp's end, with at most stepBeforeShare of them
// before it.
func (c *ctx) stepBefore(series []float64) (stepUp, bool) {
	total := sum(series)
	if total <= 0 {
		return stepUp{}, false
	}
	for _, st := range c.steps() {
		k := c.sec(st.at)
		if st.at.Before(c.start) || k >= len(series) {
			continue
		}
		before := sum(series[:k])
		if before > stepBeforeShare*total {
			continue
		}
		first := -1
		for s := k; s < len(series); s++ {
			if series[s] > 0 {
				first = s
				break
			}
		}
		if first < 0 {
			continue
		}
		if onset := c.at(first); onset.Sub(st.at) <= st.rampLen+stepSettle {
			return st, true
		}
	}
	return stepUp{}, false
}

// text words the step: "the load went from 100 to 200 users at 00:41 (by
// ui)".
func (st stepUp) text(c *ctx) string {
	by := ""
	if st.by != "" {
		by = " (by " + st.by + ")"
	}
	return fmt.Sprintf("the load went from %s to %s %s at %s%s", number(st.from), number(st.to), st.unit, sinceStart(st.at.Sub(c.start)), by)
}

// number formats a user count or a rate: "200", "12.5".
func number(x float64) string {
	if x == math.Trunc(x) {
		return fmt.Sprintf("%.0f", x)
	}
	return fmt.Sprintf("%.1f", x)
}

// sinceStart formats a time from the start of the run: "00:41", "1:02:03".
func sinceStart(d time.Duration) string {
	d = max(d, 0).Truncate(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%02d:%02d", m, s)
}

// stepNoteSkip are the findings the note of a load step does not go to:
// outages seen by the probes (their onset is the outage's, whatever the
// load), a configuration that fails at any load, and the rule that reads
// the step itself (session-lost).
var stepNoteSkip = map[string]bool{IDDBUnavailable: true, IDRedisUnavailable: true, IDCSRFFailure: true, IDSessionLost: true}

// noteSteps tells each root finding whose requests began right after a
// step up of the load that they did: the latency step or the failures are
// a capacity reading of the higher load, not a fault that appeared by
// itself mid-run.
func (c *ctx) noteSteps(found []*verdict) {
	if len(c.in.Load.Steps) == 0 {
		return
	}
	for _, v := range found {
		if v.causedBy != "" || stepNoteSkip[v.id] || v.own.failures+v.own.slow == 0 {
			continue
		}
		st, ok := c.stepBefore(c.claimSeries(v.claims))
		if !ok {
			continue
		}
		what := "latency rose"
		if v.own.failures > v.own.slow {
			what = "failures began"
		}
		ref := stampede.EvidenceRef{Source: "load", Time: st.at,
			Text: fmt.Sprintf("%s after %s, with none before: a reading of the capacity at the higher load, not a fault that appeared by itself", what, st.text(c))}
		// Second, after the finding's main evidence: the report shows the
		// first few.
		i := min(1, len(v.evidence))
		v.evidence = append(v.evidence[:i], append([]stampede.EvidenceRef{ref}, v.evidence[i:]...)...)
	}
}
