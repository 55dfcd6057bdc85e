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
	switch {
	case len(c.events) == 0:
		v.evidence = append(v.evidence, noteRef("disagreement", "the client saw these failures but no server log was given: nothing on the server side can confirm or rule out a cause"))
		capture = append(capture, "tail the app's error log and the proxy's and pooler's logs (--log NAME=PATH); with Django and DEBUG=False, add a LOGGING handler writing django.request at ERROR to a file — by default tracebacks go only to mail_admins")
	case len(errs) == 0:
		v.evidence = append(v.evidence, noteRef("disagreement", fmt.Sprintf("the client saw these failures but none of the %d log events falls in their windows with an error: the errors are not logged where stampede reads", len(c.events))))
		capture = append(capture, "point --log at the log that receives django.request (or the app server's error log) and check it records exceptions, not only access lines")
	case noTrace:
		v.evidence = append(v.evidence, noteRef("disagreement", "the server logged the errors without a traceback: the exception that caused them is not captured"))
		capture = append(capture, "log the exception with its traceback (logger.exception / exc_info=True, a LOGGING handler for django.request at ERROR)")
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
