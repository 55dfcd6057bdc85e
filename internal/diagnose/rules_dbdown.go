package diagnose

import (
	"fmt"
	"strings"
	"time"

	"github.com/stampede-load/stampede"
)

// dbDownTexts are what PostgreSQL, PgBouncer and the drivers say when the
// database is down, restarting or has dropped a connection
// (fault-signatures.md §1, §2): SQLSTATE 57P01 (admin command), 57P03
// (starting up, shutting down, recovery), PgBouncer's fast-fail while the
// server login fails, a server connection that crashed.
var dbDownTexts = []string{
	"terminating connection due to administrator command",
	"the database system is shutting down",
	"the database system is starting up",
	"the database system is in recovery mode",
	"server login has been failing",
	"server conn crashed",
	"client_login_timeout (server down)",
	"could not connect to server: connection refused",
	"received fast shutdown request",
	"received smart shutdown request",
	"received immediate shutdown request",
	"database system is shut down",
	"sqlstate 57p01",
	"sqlstate 57p03",
}

// dbDown reports whether a PostgreSQL or PgBouncer probe sample says the
// server was not there: refused, reset, closed, shutting down or starting
// up. A refusal at a connection limit is db-connection-limit's; a reading
// that timed out, or an exporter's HTTP endpoint that did not answer (the
// Prometheus probe), says the observer was slow, not that the server was
// gone.
func dbDown(s *stampede.Sample) bool {
	if s.Err == "" {
		return false
	}
	e := strings.ToLower(s.Err)
	if strings.HasPrefix(e, "prometheus probe") || containsAny(e, []string{"too many clients", "remaining connection slots", "no more connections allowed", "max_client_conn"}) {
		return false
	}
	return containsAny(e, []string{"connection refused", "connection reset", "eof", "broken pipe", "server closed the connection",
		"shutting down", "starting up", "recovery mode", "terminating connection", "no such host", "server login has been failing", "57p01", "57p03"})
}

// ruleDBUnavailable: PostgreSQL or PgBouncer down, restarting, or
// dropping connections (a restart, pg_terminate_backend).
//
// Confirmed by the PostgreSQL or PgBouncer probe failing to read the
// server where requests failed, or by the real software's own words in the
// logs there (57P01 "terminating connection due to administrator command",
// 57P03 "the database system is shutting down", PgBouncer's "server login
// has been failing"). The outage runs from the first failed sample (or
// line) to the first good sample after it; the server errors and slow
// requests inside it are claimed.
func ruleDBUnavailable(c *ctx) verdict {
	v := verdict{id: IDDBUnavailable}
	cand := c.failing(serverSide)
	slowEps := c.loadSlowEndpoints()
	if len(cand) == 0 && len(slowEps) == 0 {
		return v
	}
	ws := c.symptomWindows(cand, slowEps)
	var down []window
	var downSrc []string
	for _, src := range []string{"postgres", "pgbouncer"} {
		for _, w := range c.outages(src, dbDown) {
			if overlaps(w, ws) {
				down = append(down, w)
				downSrc = append(downSrc, src)
			}
		}
	}
	evs := c.eventsOf(IDDBUnavailable, ws)
	if len(down) == 0 && len(evs) == 0 {
		return v
	}
	v.status, v.conf = stampede.Confirmed, 0.9
	v.active = c.outageWindows(down, evs, ws)
	if len(cand) > 0 {
		v.claims = append(v.claims, claim{groups: cand, ws: v.active})
		v.evidence = append(v.evidence, c.groupRef(cand))
	}
	// An outage slows what waits for it; a connection terminated at one
	// moment fails what it carried, and slows nothing else.
	if len(down) > 0 {
		dws := c.outageWindows(down, nil, nil)
		if n, _ := c.totalSlowIn(slowEps, dws); n >= 1 {
			v.claims = append(v.claims, claim{eps: slowEps, ws: dws})
			v.evidence = append(v.evidence, c.slowRef(slowEps, dws))
		}
	}
	from, to := spanOf(down, evs)
	terminated := false
	for _, e := range evs {
		if strings.Contains(strings.ToLower(e.Message+" "+e.Exception), "administrator command") {
			terminated = true
		}
	}
	switch {
	case len(down) > 0:
		v.title = fmt.Sprintf("The database was down from %s to %s (%s not answering)", from.Format(clock), to.Format(clock), strings.Join(uniq(downSrc), " and "))
	case terminated && to.Sub(from) < 2*time.Second:
		v.title = fmt.Sprintf("Database connections were terminated at %s (administrator command)", from.Format(clock))
	default:
		v.title = fmt.Sprintf("The database dropped or refused connections from %s to %s", from.Format(clock), to.Format(clock))
	}
	for i, w := range down {
		for _, s := range c.samples[downSrc[i]] {
			if s.Time.Equal(w.from) {
				v.evidence = append(v.evidence, probeRef(s, fmt.Sprintf("%s probe: %s (outage %s–%s, %s)", downSrc[i], firstLine(s.Err), w.from.Format(clock), w.to.Format(clock), secs(w.to.Sub(w.from)))))
			}
		}
	}
	v.evidence = append(v.evidence, eventRefs(evs, "database outage or dropped connections")...)
	v.fix = "Keep the database up during the load, or make the app survive a restart: retry a failed connection once (Django's CONN_HEALTH_CHECKS, a pool's pre-ping), keep PgBouncer in front so clients wait instead of failing, and schedule restarts, failovers and pg_terminate_backend outside the load window."
	v.next = "Read PostgreSQL's and PgBouncer's logs at the outage's start (shutdown request, crash, OOM, failover), then rerun without it: the failures in the window should vanish; to test resilience on purpose, restart the database mid-run and check the errors stop within seconds of its return."
	return v
}

func uniq(ss []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
