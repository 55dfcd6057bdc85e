package diagnose

import (
	"sort"

	"github.com/stampede-load/stampede"
)

// FailureTolerance is the share of failed requests a run may have and still
// pass, provided no finding is confirmed or likely: 0.1%.
const FailureTolerance = 0.001

// verdict is what a rule concludes: a finding (status set) or, failing
// that, why its hypothesis is ruled out (ruledOut set) or nothing.
type verdict struct {
	id       string
	status   string
	conf     float64
	title    string
	evidence []stampede.EvidenceRef
	fix      string
	next     string
	claims   []claim
	ruledOut string
	// ruledOutIfExplained rules the hypothesis out when, in the end, every
	// server-side failure is explained by a confirmed finding.
	ruledOutIfExplained string
}

// rules run in this order; later rules may read the verdicts of earlier
// ones (c.found), e.g. cpu-saturation stands aside for password-hash-cpu.
var rules = []func(*ctx) verdict{
	ruleGenerator,
	ruleTargetDown,
	ruleLoginRateLimit,
	ruleCSRF,
	ruleSessionLost,
	rulePoolWait,
	ruleConnLimit,
	ruleRedis,
	ruleLock,
	ruleSlowQuery,
	rulePasswordHash,
	ruleWorkers,
	ruleCPU,
}

// Diagnose names the causes of the run's failures: findings ordered by
// failures explained, then confidence; the hypotheses the evidence rules
// out; and the verdict. It reads in and does no I/O.
func Diagnose(in *Input) stampede.Diagnosis {
	c := newCtx(in)
	d := stampede.Diagnosis{Run: in.Run, Findings: []stampede.Finding{}, RuledOut: []stampede.RuledOut{}}
	var later []verdict
	for _, r := range rules {
		v := r(c)
		switch {
		case v.status != "":
			vv := v
			c.found[v.id] = &vv
			d.Findings = append(d.Findings, c.finding(&vv))
		case v.ruledOut != "":
			d.RuledOut = append(d.RuledOut, stampede.RuledOut{ID: v.id, Why: v.ruledOut})
		case v.ruledOutIfExplained != "":
			later = append(later, v)
		}
	}
	if v := ruleUnexplained(c); v.status != "" {
		d.Findings = append(d.Findings, c.finding(&v))
	}
	if len(later) > 0 && c.serverSideExplained() {
		for _, v := range later {
			d.RuledOut = append(d.RuledOut, stampede.RuledOut{ID: v.id, Why: v.ruledOutIfExplained})
		}
	}
	sort.SliceStable(d.Findings, func(i, j int) bool {
		a, b := &d.Findings[i], &d.Findings[j]
		if a.Explains.Failures != b.Explains.Failures {
			return a.Explains.Failures > b.Explains.Failures
		}
		// With no failure explained, a finding about the target (why it is
		// slow) comes before one about the measurement: a generator
		// starved by the target's own CPU on a shared host says the
		// figures are rough, not why the target is slow.
		if ta, tb := a.ID == IDGeneratorSat, b.ID == IDGeneratorSat; a.Explains.Failures == 0 && ta != tb {
			return tb
		}
		if a.Confidence != b.Confidence {
			return a.Confidence > b.Confidence
		}
		return a.ID < b.ID
	})
	d.Verdict = "pass"
	if c.total > 0 && float64(c.failed) > FailureTolerance*float64(c.total) {
		d.Verdict = "fail"
	}
	for _, f := range d.Findings {
		// A confirmed finding fails the run; a likely one only when it
		// explains failures: a slow page that never failed is worth naming
		// but is the thresholds' business, not a failed run.
		if f.Status == stampede.Confirmed || (f.Status == stampede.Likely && f.Explains.Failures > 0) {
			d.Verdict = "fail"
		}
	}
	return d
}

// finding turns a verdict into a Finding, counting (and marking) the
// failures its claims explain. Claims of one finding may overlap (two
// windows over one group); each failure counts once, so a group's count
// bounds what the finding takes from it.
func (c *ctx) finding(v *verdict) stampede.Finding {
	f := stampede.Finding{ID: v.id, Status: v.status, Confidence: v.conf, Title: v.title,
		Evidence: v.evidence, Fix: v.fix, NextExperiment: v.next,
		Explains: stampede.Explains{Endpoints: []string{}}}
	if f.Evidence == nil {
		f.Evidence = []stampede.EvidenceRef{}
	}
	per := map[*group]int{}
	for _, cl := range v.claims {
		for _, g := range cl.groups {
			n, _ := c.count(claim{groups: []*group{g}, ws: cl.ws, all: cl.all, rest: cl.rest}, false)
			per[g] = min(g.Count, per[g]+n)
		}
	}
	for _, cl := range v.claims {
		c.count(cl, true)
	}
	for _, g := range c.groups { // in input order, for a stable endpoint list
		if n := per[g]; n > 0 {
			f.Explains.Failures += n
			f.Explains.Endpoints = appendUnique(f.Explains.Endpoints, g.Name)
		}
	}
	return f
}

// serverSideExplained reports whether every server-side failure is covered
// and at least one confirmed finding covers some.
func (c *ctx) serverSideExplained() bool {
	confirmed := false
	for _, v := range c.found {
		if v.status == stampede.Confirmed && len(v.claims) > 0 {
			confirmed = true
		}
	}
	if !confirmed {
		return false
	}
	for _, g := range c.groups {
		if serverSide(g) && g.uncovered() > 0 {
			return false
		}
	}
	return true
}
