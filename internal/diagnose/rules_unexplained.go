package diagnose

import (
	"fmt"
	"strings"

	"github.com/stampede-load/stampede"
)

// ruleUnexplained counts every failure no finding explained and says what
// to capture next: the seed's hypothesis 5 ("we cannot diagnose without the
// stack trace"). It quotes the unclassified error lines found in the
// windows of those failures, and says when the client saw errors the logs
// do not show. Its status is possible: it names no cause.
func ruleUnexplained(c *ctx) verdict {
	v := verdict{id: IDUnexplained}
	var rest []*group
	n, n5xx := 0, 0
	for _, g := range c.groups {
		if u := g.uncovered(); u > 0 {
			rest = append(rest, g)
			n += u
			if g.class == Class5xx {
				n5xx += u
			}
		}
	}
	if n == 0 {
		return v
	}
	v.status, v.conf = stampede.Possible, 0.2
	v.title = fmt.Sprintf("%d failures with no evidence of their cause", n)
	if n5xx > 0 {
		v.title = fmt.Sprintf("%d failures (%d server errors) with no evidence of their cause", n, n5xx)
	}
	// Claims: exactly the uncovered failures.
	v.claims = []claim{{groups: rest, rest: true}}
	ref := c.groupRef(rest)
	ref.Text = fmt.Sprintf("client: %d unexplained of %s", n, strings.TrimPrefix(ref.Text, "client: "))
	v.evidence = append(v.evidence, ref)
	ws := c.windows(rest)
	var errs []*event
	for i := range c.events {
		e := &c.events[i]
		if !ruleIDs[e.id] && isErrorEvent(e.Evidence) && (e.Time.IsZero() || inWindows(e.Time, ws)) {
			errs = append(errs, e)
		}
	}
	v.evidence = append(v.evidence, eventRefs(errs, "unclassified errors")...)

	var capture []string
	noTrace := true
	for _, e := range errs {
		if e.Exception != "" || len(e.Stack) > 0 {
			noTrace = false
		}
	}
	st := c.stack()
	switch {
	case len(c.events) == 0:
		v.evidence = append(v.evidence, noteRef("disagreement", "the client saw these failures but no server log was given: nothing on the server side can confirm or rule out a cause"))
		capture = append(capture, "tail the app's error log and the proxy's and pooler's logs (--log NAME=PATH): "+st.errorLogAdvice())
	case len(errs) == 0:
		v.evidence = append(v.evidence, noteRef("disagreement", fmt.Sprintf("the client saw these failures but none of the %d log events falls in their windows with an error: the errors are not logged where stampede reads", len(c.events))))
		capture = append(capture, "point --log at the log that records the app's exceptions, not only access lines: "+st.errorLogAdvice())
	case noTrace:
		v.evidence = append(v.evidence, noteRef("disagreement", "the server logged the errors without a traceback or stack trace: the exception that caused them is not captured"))
		capture = append(capture, "log the exception with its stack trace: "+st.errorLogAdvice())
	default:
		capture = append(capture, "read the traceback quoted above: its final exception line names the failing component; add its signature to the catalog")
	}
	var probes []string
	for _, p := range []string{"pgbouncer", "postgres", "redis", "host"} {
		if len(c.samples[p]) == 0 {
			probes = append(probes, p)
		}
	}
	if len(probes) > 0 {
		capture = append(capture, "probe "+strings.Join(probes, ", ")+" during the run (--probe-postgres, --probe-pgbouncer, --probe-redis, host: true)")
	}
	v.fix = "None yet: the cause is not in the evidence. Capture it first."
	v.next = "Rerun the same load with: " + strings.Join(capture, "; ") + "."
	return v
}

// ruleUnexplainedSlowness counts the slow requests no finding explained
// and says what to capture next, as ruleUnexplained does for failures:
// the probes that were missing, PostgreSQL's slow-statement and lock-wait
// logs, the app server's own request time, a profile of the app. Its
// status is possible: it names no cause.
func ruleUnexplainedSlowness(c *ctx) verdict {
	v := verdict{id: IDUnexplainedSlow}
	var rest []*endpoint
	n := 0.0
	for _, e := range c.eps {
		if u := e.uncoveredSlow(); u >= 0.5 {
			rest = append(rest, e)
			n += u
		}
	}
	if n < 1 {
		return v
	}
	v.status, v.conf = stampede.Possible, 0.2
	v.title = fmt.Sprintf("%.0f slow requests with no evidence of why", n)
	v.claims = []claim{{eps: rest, rest: true}}
	var parts []string
	self := []string{}
	var hotSelf []*endpoint
	for _, e := range rest {
		p := fmt.Sprintf("%.0f on %s (floor %s, slow above %s, median %s)", e.uncoveredSlow(), e.Name, secs(e.slow.floor), secs(e.slow.bar), secs(e.Median))
		parts = append(parts, p)
		switch {
		case e.slow.self && e.slow.aloneHot >= hotAloneShare:
			hotSelf = append(hotSelf, e)
		case e.slow.self:
			self = append(self, e.Name)
		}
	}
	v.evidence = append(v.evidence, noteRef("requests", "client: unexplained slow requests: "+joinMax(parts, 5)))
	if len(self) > 0 {
		v.evidence = append(v.evidence, noteRef("latency", fmt.Sprintf("%s slow by itself: slow even with little else in flight, so the cost is the request's own work (a query, a computation, a call to another service), not the load", strings.Join(self, ", "))))
	}
	for _, e := range hotSelf {
		v.evidence = append(v.evidence, noteRef("latency", e.aloneText()))
	}
	var capture []string
	var probes []string
	for _, p := range []string{"postgres", "pgbouncer", "redis", "host"} {
		if len(c.samples[p]) == 0 {
			probes = append(probes, p)
		}
	}
	if len(probes) > 0 {
		capture = append(capture, "probe "+strings.Join(probes, ", ")+" during the run (--probe-postgres, --probe-pgbouncer, --probe-redis, --pid of the app for its CPU)")
	}
	pgLog, access := false, false
	for i := range c.events {
		e := &c.events[i]
		if e.id == IDSlowQuery || e.id == IDLockContention {
			pgLog = true
		}
		if e.Signature == "access-timing" {
			access = true
		}
	}
	if !pgLog {
		capture = append(capture, "tail PostgreSQL's log with log_min_duration_statement=250ms and log_lock_waits=on (--log postgres=PATH): slow statements and lock waits land there with their SQL")
	}
	st := c.stack()
	if !access {
		capture = append(capture, st.serverTimeAdvice())
	}
	capture = append(capture, st.profileAdvice()+" to see where a slow request spends its time")
	v.fix = "None yet: the cause of the slowness is not in the evidence. Capture it first."
	v.next = "Rerun the same load with: " + strings.Join(capture, "; ") + "."
	return v
}
