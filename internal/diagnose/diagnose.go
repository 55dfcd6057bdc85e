package diagnose

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/stampede-load/stampede"
)

// FailureTolerance is the share of failed requests a run may have and still
// pass when no threshold fails and no confirmed finding explains them: 0.1%.
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
	// active holds the windows in which the finding's mechanism was seen
	// (the lock waits, the refusals, the hot CPU); the chain attaches a
	// consequence whose requests fall inside them. Empty: the windows of
	// its own claims.
	active []window
	// latency says how much of the slow requests' latency the mechanism
	// accounts for (Explains.Latency).
	latency  string
	causedBy string
	// dominance is, for a slow query, the share of the cores' time its
	// logged runs took, or PostgreSQL's share of the busy CPU: whether it
	// can be what burns the CPU.
	dominance float64
	// consumer is, for the CPU, the process group that burns most of it
	// ("postgres", "app", "stampede"), when one does (see cpu.go).
	consumer string
	// culprit is, for blocked workers, the endpoint that holds them.
	culprit string
	// stmtShare is, for a slow query, the share of its issuers' latency
	// its logged statement takes: whether the query is what holds them.
	stmtShare float64
	// ownCPU is, for a slow query, the evidence that it burns the CPU by
	// itself rather than waiting for it: PostgreSQL the CPU's main
	// consumer, or a page that issues it slow alone while the host's
	// CPU was not saturated. Empty: only its logged runs' wall time.
	ownCPU string
	// cpuHeld is, for a slow query, whether the host's CPU was seen
	// saturated while its statements ran.
	cpuHeld  bool
	ruledOut string
	// ruledOutIfExplained rules the hypothesis out when, in the end, every
	// server-side failure is explained by a confirmed finding.
	ruledOutIfExplained string

	own, total tally // what it explains alone, and with its consequences
}

// generic findings name a resource (the host's CPU) that every request
// shares: they explain what the specific findings leave.
var generic = map[string]bool{IDCPUSaturation: true}

// rules run in this order; later rules may read the verdicts of earlier
// ones (c.found), e.g. app-worker-saturation stands aside for a confirmed
// pool timeout behind a 504.
var rules = []func(*ctx) verdict{
	ruleGenerator,
	ruleTargetDown,
	ruleDBUnavailable,
	ruleLoginRateLimit,
	ruleCSRF,
	ruleRedisUnavailable,
	ruleRedis,
	ruleSessionLost,
	rulePoolWait,
	ruleConnLimit,
	ruleLock,
	ruleSlowQuery,
	rulePasswordHash,
	ruleWorkers,
	ruleCPU,
}

// Diagnose names the causes of the run's failed and slow requests:
// findings with the requests they explain, consequences attached to their
// root causes, the hypotheses the evidence rules out, what explains each
// failed threshold, and the verdict. It reads in and does no I/O.
//
// Order: root causes first, then their consequences. Within each, a
// finding that explains requests before one that explains none, then
// confirmed before likely before possible, then by the failed requests
// explained, then the slow ones (a root counting those of its
// consequences), then confidence.
func Diagnose(in *Input) stampede.Diagnosis {
	c := newCtx(in)
	d := stampede.Diagnosis{Run: in.Run, Findings: []stampede.Finding{}, RuledOut: []stampede.RuledOut{}}
	var found []*verdict
	var later []verdict
	for _, r := range rules {
		v := r(c)
		switch {
		case v.status != "":
			vv := v
			c.found[v.id] = &vv
			found = append(found, &vv)
		case v.ruledOut != "":
			d.RuledOut = append(d.RuledOut, stampede.RuledOut{ID: v.id, Why: v.ruledOut})
		case v.ruledOutIfExplained != "":
			later = append(later, v)
		}
	}
	// Direct evidence first: what a confirmed finding explains, an indirect
	// one (likely, possible) does not take again, and a generic one (the
	// CPU) takes only what the specific ones left.
	for _, pass := range []func(v *verdict) bool{
		func(v *verdict) bool { return v.status == stampede.Confirmed && !generic[v.id] },
		func(v *verdict) bool { return v.status != stampede.Confirmed && !generic[v.id] },
		func(v *verdict) bool { return generic[v.id] },
	} {
		for _, v := range found {
			if !pass(v) {
				continue
			}
			if v.status != stampede.Confirmed || generic[v.id] {
				for i, cl := range v.claims {
					v.claims[i] = c.fresh(cl)
				}
			}
			v.own = c.tally(v.claims, true)
		}
	}
	for _, rule := range []func(*ctx) verdict{ruleUnexplained, ruleUnexplainedSlowness} {
		if v := rule(c); v.status != "" {
			vv := v
			vv.claims = []claim{c.fresh(claim{groups: v.claims[0].groups, eps: v.claims[0].eps, all: true})}
			vv.own = c.tally(vv.claims, true)
			c.found[v.id] = &vv
			found = append(found, &vv)
		}
	}
	if len(later) > 0 && c.serverSideExplained() {
		for _, v := range later {
			d.RuledOut = append(d.RuledOut, stampede.RuledOut{ID: v.id, Why: v.ruledOutIfExplained})
		}
	}
	c.chain(found)
	for _, v := range found {
		cls := append([]claim(nil), v.claims...)
		for _, x := range descendants(v, found) {
			cls = append(cls, x.claims...)
		}
		v.total = c.tally(cls, false)
	}
	sort.SliceStable(found, func(i, j int) bool { return less(found[i], found[j]) })
	noteClose(found)
	c.noteSteps(found)
	for _, v := range found {
		d.Findings = append(d.Findings, v.finding())
	}

	d.Verdict = "pass"
	if c.total > 0 && float64(c.failed) > FailureTolerance*float64(c.total) {
		d.Verdict = "fail"
	}
	for _, v := range found {
		if v.status == stampede.Confirmed && (v.own.failures > 0 || v.own.loadSlow > 0) {
			d.Verdict = "fail"
		}
	}
	for _, t := range in.Thresholds {
		tv := stampede.ThresholdVerdict{Threshold: t.Text, Pass: t.Pass, Value: t.Value}
		if !t.Pass {
			d.Verdict = "fail"
			tv.ExplainedBy = explainedBy(t, found)
		}
		d.Thresholds = append(d.Thresholds, tv)
	}
	d.Slow = c.slowReport()
	return d
}

// less orders findings (docs/diagnosis.md, "Ranking"): roots first; then
// explaining something before nothing; then by status; then a material
// difference in failures explained, then in failures plus slow requests;
// when two findings are close on both (closeRank), a specific mechanism
// before a generic resource (the CPU); then failures, slow requests,
// confidence and id. Counts that differ by a few requests are noise of the
// run, not a ranking: without closeRank the same fault, run twice, could
// put the CPU first once and the lock the next time.
func less(a, b *verdict) bool {
	if ra, rb := a.causedBy == "", b.causedBy == ""; ra != rb {
		return ra
	}
	if na, nb := a.total.failures+a.total.slow > 0, b.total.failures+b.total.slow > 0; na != nb {
		return na
	}
	if ra, rb := statusRank(a.status), statusRank(b.status); ra != rb {
		return ra > rb
	}
	// A failed request weighs more than a slow one: a finding that
	// explains materially more failures comes first.
	if fa, fb := a.total.failures, b.total.failures; !closeRank(fa, fb) {
		return fa > fb
	}
	if sa, sb := a.total.failures+a.total.slow, b.total.failures+b.total.slow; !closeRank(sa, sb) {
		return sa > sb
	}
	if ga, gb := generic[a.id], generic[b.id]; ga != gb {
		return gb
	}
	if fa, fb := a.total.failures, b.total.failures; fa != fb {
		return fa > fb
	}
	if sa, sb := a.total.slow, b.total.slow; sa != sb {
		return sa > sb
	}
	// With nothing explained, a finding about the target (why it is slow)
	// comes before one about the measurement: a generator starved by the
	// target's own CPU on a shared host says the figures are rough, not
	// why the target is slow.
	if ga, gb := a.id == IDGeneratorSat, b.id == IDGeneratorSat; ga != gb {
		return gb
	}
	if a.conf != b.conf {
		return a.conf > b.conf
	}
	return a.id < b.id
}

// closeRank reports whether two counts of explained requests are too close
// to rank by: within closeShare of the larger, or within closeAbs.
func closeRank(a, b int) bool {
	lo, hi := min(a, b), max(a, b)
	return hi-lo <= closeAbs || float64(lo) >= (1-closeShare)*float64(hi)
}

// Two counts are close when they differ by at most closeAbs requests or by
// at most closeShare of the larger.
const (
	closeAbs   = 5
	closeShare = 0.25
)

// noteClose tells two roots of the same status whose counts are close
// (closeRank on failures and on all requests) that they are: the order
// between them is the tie-break's, and both are shown.
func noteClose(found []*verdict) {
	for i, a := range found {
		if a.causedBy != "" || a.total.failures+a.total.slow == 0 {
			continue
		}
		for _, b := range found[i+1:] {
			if b.causedBy != "" || b.total.failures+b.total.slow == 0 || statusRank(a.status) != statusRank(b.status) {
				continue
			}
			if !closeRank(a.total.failures, b.total.failures) || !closeRank(a.total.failures+a.total.slow, b.total.failures+b.total.slow) {
				continue
			}
			why := "the more specific mechanism first"
			if generic[a.id] == generic[b.id] {
				why = "then by failures, slow requests and confidence"
			}
			a.evidence = append(a.evidence, noteRef("ranking", fmt.Sprintf("close to %s (%d failures and %d slow requests against %d and %d): ranked first by the tie-break, %s; both are shown, and both may need fixing", b.id, a.total.failures, a.total.slow, b.total.failures, b.total.slow, why)))
			b.evidence = append(b.evidence, noteRef("ranking", fmt.Sprintf("close to %s (%d failures and %d slow requests against %d and %d): ranked after it by the tie-break, %s; both are shown, and both may need fixing", a.id, b.total.failures, b.total.slow, a.total.failures, a.total.slow, why)))
		}
	}
}

func statusRank(s string) int {
	switch s {
	case stampede.Confirmed:
		return 3
	case stampede.Likely:
		return 2
	case stampede.Possible:
		return 1
	}
	return 0
}

// finding turns a verdict into the Finding of diagnosis.json.
func (v *verdict) finding() stampede.Finding {
	f := stampede.Finding{ID: v.id, Status: v.status, Confidence: v.conf, Title: v.title, CausedBy: v.causedBy,
		Evidence: v.evidence, Fix: v.fix, NextExperiment: v.next,
		Explains: stampede.Explains{Failures: v.total.failures, Slow: v.total.slow, Endpoints: v.total.eps, Latency: v.latency}}
	if f.Evidence == nil {
		f.Evidence = []stampede.EvidenceRef{}
	}
	if f.Explains.Endpoints == nil {
		f.Explains.Endpoints = []string{}
	}
	return f
}

// explainedBy names the findings whose requests lie on the threshold's
// endpoint: failed ones for a failure threshold, failed or slow ones for a
// latency threshold; roots first, as the findings are ordered.
func explainedBy(t ThresholdResult, found []*verdict) []string {
	var out []string
	for _, v := range found {
		if v.total.failures+v.total.slow == 0 {
			continue
		}
		on := t.Endpoint == "" || t.Endpoint == "all"
		for _, e := range v.total.eps {
			if e == t.Endpoint {
				on = true
			}
		}
		if !on {
			continue
		}
		if t.Failure && v.total.failures == 0 {
			continue
		}
		out = append(out, v.id)
	}
	return out
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

// symptomWindows returns the windows of the server-side failures and of
// the slow requests: where a server-side mechanism must show.
func (c *ctx) symptomWindows(gs []*group, es []*endpoint) []window {
	return append(c.windows(gs), c.slowWindows(es)...)
}

// loadSlowEndpoints returns the endpoints with requests slowed by the load
// (above their load bar), slow by themselves or not: a page that takes
// 600 ms alone and 9 s under load is both.
func (c *ctx) loadSlowEndpoints() []*endpoint {
	return c.slowEndpoints(func(e *endpoint) bool { return e.slow.loadN > 0 })
}

// accounted says how much of the slow requests' latency a wait accounts
// for: "requests on X waited on Y for a median of A of their B".
func accounted(eps []string, what string, wait, of time.Duration) string {
	if wait <= 0 || of <= 0 {
		return ""
	}
	return fmt.Sprintf("slow requests on %s waited %s for a median of %s of their %s", strings.Join(eps, ", "), what, secs(min(wait, of)), secs(of))
}
