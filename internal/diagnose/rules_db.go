package diagnose

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/stampede-load/stampede"
)

// near reports whether a and b are within 15% of each other.
func near(a, b time.Duration) bool {
	if a <= 0 || b <= 0 {
		return false
	}
	r := float64(a) / float64(b)
	return r > 0.85 && r < 1.15
}

// windowsWith keeps the windows of ws that hold an event of es or a sample
// for which hit is true.
func windowsWith(ws []window, es []*event, samples []*stampede.Sample, hit func(*stampede.Sample) bool) []window {
	var out []window
	for _, w := range ws {
		keep := false
		for _, e := range es {
			if e.Time.IsZero() || inWindows(e.Time, []window{w}) {
				keep = true
				break
			}
		}
		if !keep && hit != nil {
			for _, s := range samples {
				if s.Err == "" && inWindows(s.Time, []window{w}) && hit(s) {
					keep = true
					break
				}
			}
		}
		if keep {
			out = append(out, w)
		}
	}
	return out
}

// Known pool wait timeouts (fault-signatures.md §1, §9): PgBouncer's
// query_wait_timeout default, SQLAlchemy/psycopg_pool/HikariCP's 30 s,
// ActiveRecord's 5 s.
var poolTimeouts = []time.Duration{120 * time.Second, 30 * time.Second, 5 * time.Second}

// rulePoolWait: requests wait for a pooled DB connection and time out.
//
// Confirmed by a pool-timeout log line (PgBouncer query_wait_timeout, an
// app pool's timeout) inside a failure window, or by PgBouncer showing the
// queue there: cl_waiting > 0 with sv_idle = 0 and maxwait reaching 80% of
// query_wait_timeout. Likely when PgBouncer queued without reaching the
// timeout, or when failed requests cluster at a known pool timeout.
func rulePoolWait(c *ctx) verdict {
	v := verdict{id: IDPoolWaitTimeout}
	cand := c.failing(serverSide)
	slowEps := c.loadSlowEndpoints()
	if len(cand) == 0 {
		if len(slowEps) > 0 {
			return c.poolQueueSlow(slowEps)
		}
		return v
	}
	ws := c.windows(cand)
	evs := c.eventsOf(IDPoolWaitTimeout, ws)
	allEvs := c.eventsOf(IDPoolWaitTimeout, nil)
	pgb := c.samples["pgbouncer"]
	qwt := time.Duration(c.setting("pgbouncer", "query_wait_timeout_s") * float64(time.Second))
	pool := c.setting("pgbouncer", "default_pool_size")
	reserve := c.setting("pgbouncer", "reserve_pool_size")
	queued := func(s *stampede.Sample) bool {
		return s.Values["cl_waiting"] > 0 && s.Values["sv_idle"] == 0
	}
	wait := c.read("pgbouncer", "cl_waiting", ws, false)
	maxwait := c.read("pgbouncer", "maxwait_s", ws, false)
	probeQueued := wait.n > 0 && wait.peak != nil && queued(wait.peak)
	timedOut := probeQueued && (qwt == 0 || maxwait.max >= 0.8*qwt.Seconds())

	// Failed requests that stopped at a pool's timeout.
	var clustered []*group
	var clusterAt time.Duration
	for _, g := range cand {
		// A pool timeout is an unhandled exception: a 500. A 502/504 at
		// the same latency is the app server's or the proxy's timeout.
		if g.Status != 500 {
			continue
		}
		at := g.ep.shape.ClusterAt
		if g.Latency != nil {
			at, _ = g.Latency.Cluster(0.5)
		}
		if at == 0 {
			continue
		}
		ok := qwt > 0 && near(at, qwt)
		for _, t := range poolTimeouts {
			ok = ok || near(at, t)
		}
		if ok {
			clustered = append(clustered, g)
			clusterAt = at
		}
	}

	switch {
	case len(evs) > 0 || timedOut:
		v.status, v.conf = stampede.Confirmed, 0.95
		if len(evs) == 0 {
			v.conf = 0.85
		}
	case probeQueued || len(clustered) > 0:
		v.status, v.conf = stampede.Likely, 0.65
	case len(allEvs) > 0:
		v.status, v.conf = stampede.Possible, 0.35
	default:
		if len(pgb) > 0 && wait.n > 0 && wait.max == 0 {
			v.ruledOut = fmt.Sprintf("PgBouncer was healthy during the failure windows: cl_waiting 0 in %d samples, maxwait %.0f s, and no log line reports a pool wait timeout", wait.n, maxwait.max)
		}
		return v
	}

	// Claims: the failure windows holding the evidence.
	claimWs := windowsWith(ws, evs, pgb, queued)
	v.active = claimWs
	switch {
	case len(claimWs) > 0:
		v.claims = append(v.claims, claim{groups: cand, ws: claimWs})
	case len(clustered) > 0:
		v.claims = append(v.claims, claim{groups: clustered, all: true})
	case len(allEvs) > 0:
		v.claims = append(v.claims, claim{groups: cand, ws: windowsWith(ws, allEvs, nil, nil)})
	}

	// Which pool: PgBouncer's queue, or one inside the app (SQLAlchemy,
	// psycopg_pool, HikariCP, ActiveRecord) in front of a quiet bouncer.
	bouncerText := false
	for _, e := range append(append([]*event{}, evs...), allEvs...) {
		t := strings.ToLower(e.Message + e.Exception)
		if strings.Contains(t, "query_wait_timeout") || strings.Contains(t, "no server connection available") {
			bouncerText = true
		}
	}
	appEvs := 0
	lib := ""
	for _, e := range allEvs {
		if k, l := poolKind(e); k == "app" {
			appEvs++
			if lib == "" {
				lib = l
			}
		}
	}
	appSide := !bouncerText && !probeQueued && len(allEvs) > 0
	v.title = "Requests fail waiting for a pooled database connection"
	if bouncerText || probeQueued {
		v.title = "Requests fail waiting for a PgBouncer server connection (query_wait_timeout)"
	}
	if appSide {
		v.title = "Requests fail waiting for a connection from the app's own database pool"
		if lib != "" {
			v.title += " (" + lib + ")"
		}
		// Joined with the probes: where PgBouncer and PostgreSQL had
		// capacity at the failures' moments, the queue was in the app.
		if note, ok := c.appPoolCapacity(ws); ok {
			v.evidence = append(v.evidence, note)
		}
	}
	if bouncerText && appEvs > 0 {
		v.evidence = append(v.evidence, noteRef("disagreement", fmt.Sprintf("%d of the pool timeouts are the app's own pool's and the others PgBouncer's: both queues filled; PgBouncer's pool is behind the app's", appEvs)))
	}
	v.evidence = append(v.evidence, c.groupRef(cand))
	v.evidence = append(v.evidence, eventRefs(evs, "pool wait timeouts")...)
	if len(evs) == 0 && len(allEvs) > 0 {
		v.evidence = append(v.evidence, eventRefs(allEvs, "pool wait timeouts outside the failure windows")...)
	}
	if wait.n > 0 && wait.peak != nil && !appSide {
		p := wait.peak.Values
		text := fmt.Sprintf("pgbouncer: cl_waiting %.0f, cl_active %.0f, sv_active %.0f, sv_idle %.0f; maxwait peaked at %.0f s", p["cl_waiting"], p["cl_active"], p["sv_active"], p["sv_idle"], maxwait.max)
		if pool > 0 {
			text += fmt.Sprintf("; pool size %.0f (+%.0f reserve)", pool, reserve)
		}
		if qwt > 0 {
			text += fmt.Sprintf(", query_wait_timeout %s", secs(qwt))
		}
		v.evidence = append(v.evidence, probeRef(wait.peak, text))
		out := c.read("pgbouncer", "cl_waiting", ws, true)
		if out.n > 0 {
			v.evidence = append(v.evidence, noteRef("pgbouncer", fmt.Sprintf("outside the failure windows cl_waiting averaged %.1f (%.1f inside)", out.mean, wait.mean)))
		}
		if pool > 0 {
			demand := p["cl_active"] + p["cl_waiting"]
			v.evidence = append(v.evidence, noteRef("arithmetic", fmt.Sprintf("%.0f clients wanted a server connection at once against a pool of %.0f: %.0f had to queue", demand, pool+reserve, math.Max(0, demand-pool-reserve))))
		}
	}
	if len(evs) > 0 && len(pgb) > 0 && wait.n > 0 && wait.max == 0 {
		v.evidence = append(v.evidence, noteRef("disagreement", fmt.Sprintf("the logs report pool wait timeouts but PgBouncer showed no waiting client in %d samples of the failure windows: the timeout comes from another pool (the app's own pool or another bouncer)", wait.n)))
	}
	if probeQueued && len(allEvs) == 0 && len(c.events) > 0 {
		v.evidence = append(v.evidence, noteRef("disagreement", "PgBouncer queued clients but no log line reports the timeout: the app may swallow the error or log it without a traceback"))
	}
	if clusterAt > 0 {
		v.evidence = append(v.evidence, noteRef("latency", fmt.Sprintf("failed requests cluster at %s, a pool's wait timeout", secs(clusterAt))))
	}
	// pg_stat_activity tells a slow database from pinned slots.
	if act := c.read("postgres", "state:active", ws, false); act.n > 0 && act.peak != nil && !appSide {
		p := act.peak.Values
		idle := p["state:idle"] + p["state:idle in transaction"]
		kind := "mostly idle: slots are pinned by clients doing nothing (session pooling, persistent connections, open transactions)"
		if p["state:active"] > idle {
			kind = "mostly active: the database itself is slow to give connections back"
		}
		v.evidence = append(v.evidence, probeRef(act.peak, fmt.Sprintf("postgres backends at peak: %.0f active, %.0f idle or idle in transaction — %s", p["state:active"], idle, kind)))
	}
	if u := c.in.Load.Users; u > 0 && pool > 0 && float64(u) > pool+reserve && !appSide {
		v.evidence = append(v.evidence, noteRef("arithmetic", fmt.Sprintf("%d virtual users against a pool of %.0f: when each request holds a connection, up to %.0f wait (Little's law: connections in use = request rate × connection hold time)", u, pool+reserve, float64(u)-pool-reserve)))
	}
	// Requests slowed by the queue without timing out.
	if len(slowEps) > 0 && probeQueued && !appSide {
		qws := c.windowsOf(c.sampleSeries("pgbouncer", "cl_waiting"))
		v.claims = append(v.claims, claim{eps: slowEps, ws: qws})
		v.active = append(v.active, qws...)
	}
	size := "default_pool_size"
	if pool > 0 {
		size = fmt.Sprintf("default_pool_size (now %.0f)", pool)
	}
	v.fix = "Give connections back sooner and size the pool to what PostgreSQL can run at once (about cores×2–4): pool_mode=transaction if the app allows it, CONN_MAX_AGE=0 behind a session-mode bouncer, no transaction held across slow work such as the password hash; set query_wait_timeout below the app and proxy timeouts so the error stays attributable."
	v.next = fmt.Sprintf("Rerun with %s ×2: failure onset should move later or vanish while PostgreSQL CPU stays low; if PostgreSQL saturates instead, the database is the bottleneck.", size)
	if appSide {
		setting := appPoolSetting(lib, c.stack())
		v.fix = fmt.Sprintf("Make the app's pool at least as large as the threads that use it (%s ≥ threads per process; processes × that ≤ what PgBouncer or PostgreSQL accept), hold no connection across slow work (the password hash, HTTP calls), and look for leaked connections; keep its acquire timeout below the app server's request timeout.", setting)
		v.next = fmt.Sprintf("Rerun with %s doubled: failure onset should move while PgBouncer and PostgreSQL stay quiet; if it does not, connections leak (held across requests or never returned).", setting)
	}
	return v
}

// poolQueueSlow: no request failed, but requests waited in PgBouncer's
// queue. Confirmed when clients queued (cl_waiting > 0 with no idle server)
// while requests were slow and the oldest waited a second or more.
func (c *ctx) poolQueueSlow(slowEps []*endpoint) verdict {
	v := verdict{id: IDPoolWaitTimeout}
	ws := c.slowWindows(slowEps)
	queued := func(s *stampede.Sample) bool {
		return s.Values["cl_waiting"] > 0 && s.Values["sv_idle"] == 0
	}
	wait := c.read("pgbouncer", "cl_waiting", ws, false)
	maxwait := c.read("pgbouncer", "maxwait_s", ws, false)
	if wait.n == 0 || wait.peak == nil || !queued(wait.peak) || maxwait.max < 1 {
		if wait.n > 0 && wait.max == 0 {
			v.ruledOut = fmt.Sprintf("PgBouncer queued no client while requests were slow (cl_waiting 0 in %d samples)", wait.n)
		}
		return v
	}
	v.status, v.conf = stampede.Confirmed, 0.85
	v.active = c.windowsOf(c.sampleSeries("pgbouncer", "cl_waiting"))
	v.claims = []claim{{eps: slowEps, ws: v.active}}
	v.title = "Requests wait for a PgBouncer server connection (the pool queue, no timeout yet)"
	v.evidence = append(v.evidence, c.slowRef(slowEps, v.active))
	p := wait.peak.Values
	pool := c.setting("pgbouncer", "default_pool_size")
	text := fmt.Sprintf("pgbouncer: cl_waiting %.0f, cl_active %.0f, sv_active %.0f, sv_idle %.0f; the oldest client waited %.1f s", p["cl_waiting"], p["cl_active"], p["sv_active"], p["sv_idle"], maxwait.max)
	if pool > 0 {
		text += fmt.Sprintf("; pool size %.0f", pool)
	}
	v.evidence = append(v.evidence, probeRef(wait.peak, text))
	if avg := c.read("pgbouncer", "avg_wait_us", v.active, false); avg.max > 0 {
		v.evidence = append(v.evidence, probeRef(avg.peak, fmt.Sprintf("pgbouncer SHOW STATS: transactions waited %s on average for a server connection in the worst interval", secs(time.Duration(avg.max)*time.Microsecond))))
		var names []string
		n, sum := 0.0, 0.0
		for _, e := range slowEps {
			a, b := c.slowIn(e, v.active)
			n, sum = n+a, sum+b
			names = append(names, e.Name)
		}
		if n >= 1 {
			v.latency = accounted(names, "for a pooled connection", time.Duration(avg.mean)*time.Microsecond, time.Duration(sum/n*float64(time.Second)))
		}
	}
	if q := c.setting("pgbouncer", "query_wait_timeout_s"); q > 0 {
		v.evidence = append(v.evidence, noteRef("arithmetic", fmt.Sprintf("the longest wait (%.1f s) against query_wait_timeout %.0f s: more load turns these waits into 500s", maxwait.max, q)))
	}
	v.fix = "Give connections back sooner and size the pool to what PostgreSQL can run at once (about cores×2–4): pool_mode=transaction if the app allows it, CONN_MAX_AGE=0 behind a session-mode bouncer, no transaction held across slow work such as the password hash."
	v.next = "Rerun with default_pool_size ×2: the waits (cl_waiting, maxwait) and the slow requests should shrink while PostgreSQL CPU stays low; if PostgreSQL saturates instead, the database is the bottleneck."
	return v
}

// ruleConnLimit: connections refused by PostgreSQL's max_connections or
// PgBouncer's max_client_conn.
//
// Confirmed by the refusal in the logs inside a failure window, or by the
// probes: client backends within one of max_connections − reserved, or
// PgBouncer clients at max_client_conn.
func ruleConnLimit(c *ctx) verdict {
	v := verdict{id: IDConnLimit}
	cand := c.failing(serverSide)
	if len(cand) == 0 {
		return v
	}
	ws := c.windows(cand)
	evs := c.eventsOf(IDConnLimit, ws)
	maxConn := c.setting("postgres", "max_connections")
	reserved := c.setting("postgres", "superuser_reserved_connections")
	maxClient := c.setting("pgbouncer", "max_client_conn")
	pgFull := func(s *stampede.Sample) bool {
		return maxConn > 0 && s.Source == "postgres" && s.Values["backends"] >= maxConn-reserved-1
	}
	bouncerFull := func(s *stampede.Sample) bool {
		return maxClient > 0 && s.Source == "pgbouncer" && s.Values["cl_active"]+s.Values["cl_waiting"] >= maxClient
	}
	backends := c.read("postgres", "backends", ws, false)
	clients := c.read("pgbouncer", "cl_active", ws, false)
	full := (backends.peak != nil && pgFull(backends.peak))
	for _, s := range c.samples["pgbouncer"] {
		if inWindows(s.Time, ws) && bouncerFull(s) {
			full = true
		}
	}
	if len(evs) == 0 && !full {
		if backends.n > 0 && maxConn > 0 && backends.max < 0.8*(maxConn-reserved) && (clients.n == 0 || maxClient == 0 || clients.max < 0.8*maxClient) {
			v.ruledOut = fmt.Sprintf("PostgreSQL client backends peaked at %.0f of max_connections %.0f during the failure windows, and no log line reports a refused connection", backends.max, maxConn)
		}
		return v
	}
	v.status, v.conf = stampede.Confirmed, 0.9
	samples := append(append([]*stampede.Sample{}, c.samples["postgres"]...), c.samples["pgbouncer"]...)
	v.claims = []claim{{groups: cand, ws: windowsWith(ws, evs, samples, func(s *stampede.Sample) bool { return pgFull(s) || bouncerFull(s) })}}
	v.title = "Database connections refused at the connection limit"
	v.evidence = append(v.evidence, c.groupRef(cand))
	v.evidence = append(v.evidence, eventRefs(evs, "refused connections")...)
	if backends.peak != nil && maxConn > 0 {
		v.evidence = append(v.evidence, probeRef(backends.peak, fmt.Sprintf("postgres: %.0f client backends of max_connections %.0f (%.0f reserved)", backends.max, maxConn, reserved)))
	}
	if clients.peak != nil && maxClient > 0 {
		p := clients.peak.Values
		v.evidence = append(v.evidence, probeRef(clients.peak, fmt.Sprintf("pgbouncer: %.0f clients of max_client_conn %.0f", p["cl_active"]+p["cl_waiting"], maxClient)))
	}
	fast := true
	for _, g := range cand {
		if g.lead > time.Second {
			fast = false
		}
	}
	if fast {
		v.evidence = append(v.evidence, noteRef("latency", "the failures are fast: refused at connect, not after a wait"))
	}
	v.fix = "Put PgBouncer (transaction pooling) in front so app connections are not 1:1 backends; cut per-worker app pool sizes so workers × threads × pool stays below max_client_conn / max_connections; raise the limits only with memory (and ulimit -n) headroom."
	v.next = "Count app-side connections (workers × threads × pool size) against the limit, then rerun with the pool behind PgBouncer or half the app pool size: the refusals should vanish."
	return v
}

// ruleLock: sessions wait on row or table locks.
//
// Confirmed by sessions waiting on a Lock in pg_stat_activity where
// requests failed or were slow (more than elsewhere), or by lock-wait,
// lock-timeout or deadlock lines in the logs there. The lock waiters per
// second (the probe's, or the waits log_lock_waits reports) are set
// against each endpoint's requests in flight: the endpoints whose
// concurrency moves with them took the lock, and their slow requests are
// explained when the waits account for a good part of their latency.
// Ruled out when PostgreSQL was sampled during every failure burst and no
// session waited on a lock.
func ruleLock(c *ctx) verdict {
	v := verdict{id: IDLockContention}
	cand := c.failing(serverSide)
	slowEps := c.loadSlowEndpoints()
	if len(cand) == 0 && len(slowEps) == 0 {
		return v
	}
	ws := c.symptomWindows(cand, slowEps)
	evs := c.eventsOf(IDLockContention, ws)
	in := c.read("postgres", "wait:Lock", ws, false)
	out := c.read("postgres", "wait:Lock", ws, true)
	waited := in.n > 0 && in.max >= 1 && in.mean > out.mean
	// Row-locking statements that PostgreSQL logged as slow while their
	// peers ran: their words say they waited (see rowlock.go).
	var rowGroups []*rowLockGroup
	for _, g := range c.rowLockWaits() {
		for _, iv := range g.ivs {
			if inWindows(iv.to, ws) {
				rowGroups = append(rowGroups, g)
				break
			}
		}
	}
	if len(evs) == 0 && !waited && len(rowGroups) == 0 {
		what := "failure burst"
		if len(cand) == 0 {
			what = "stretch of slow requests"
		}
		if in.n > 0 && in.max == 0 && len(c.eventsOf(IDLockContention, nil)) == 0 {
			v.ruledOut = fmt.Sprintf("no session waited on a lock during any %s (%d postgres samples, wait:Lock 0), and no log line shows a lock wait, lock timeout or deadlock", what, in.n)
		} else if in.n == 0 && len(c.eventsOf(IDLockContention, nil)) == 0 {
			v.ruledOutIfExplained = "every server error is explained by a confirmed finding, and no log line shows a lock wait, lock timeout or deadlock (PostgreSQL was not probed)"
		}
		return v
	}
	v.status, v.conf = stampede.Confirmed, 0.9
	v.title = "Requests wait on database locks"
	if len(rowGroups) > 0 {
		g := rowGroups[0]
		v.title = fmt.Sprintf("Requests wait on a row lock of %s", g.lock.table)
		if g.lock.row != "" {
			v.title += fmt.Sprintf(" (%s)", clipText(g.lock.row, 60))
		}
	}

	// Where and how long sessions waited: the probe's waiters and the
	// waits the log reports, per second; without log_lock_waits, the
	// row-locking statements' own runs.
	waits := c.lockWaits()
	if len(waits) == 0 {
		for _, g := range rowGroups {
			waits = append(waits, g.ivs...)
		}
	}
	queued := episodes(waits) // what a request waited in all, holder after holder
	x := c.sampleSeries("postgres", "wait:Lock")
	for s, n := range c.intervalSeries(waits) {
		x[s] = max(x[s], n)
	}
	v.active = c.windowsOf(x)
	if len(v.active) == 0 {
		v.active = windowsWith(ws, evs, c.samples["postgres"], func(s *stampede.Sample) bool { return s.Values["wait:Lock"] >= 1 })
	}
	if len(cand) > 0 {
		v.claims = append(v.claims, claim{groups: cand, ws: v.active})
		v.evidence = append(v.evidence, c.groupRef(cand))
	}

	// Which endpoints took the lock: those whose requests contain the
	// logged waits, or, from the probe alone, whose requests in flight move
	// with the waiters.
	var takers []*endpoint
	iss := c.issuers(x)
	joined := func(is issuer) string {
		return fmt.Sprintf("requests in flight on %s move with the sessions waiting on locks (r=%.2f): its requests are the ones that wait", is.e.Name, is.r)
	}
	if len(waits) > 0 {
		if ci := c.containers(queued); len(ci) > 0 {
			iss = ci
			joined = func(is issuer) string {
				return fmt.Sprintf("the lock waits PostgreSQL logged fall inside requests on %s (%.0f%% of them, far above chance): its requests are the ones that wait", is.e.Name, 100*is.r)
			}
		}
	}
	for _, is := range iss {
		// Slow by the load, or slow by itself and queued too (a login
		// whose hash is heavy, waiting on the row besides).
		if is.e.slow.loadN > 0 || (is.e.slow.self && is.e.slow.n > 0) {
			takers = append(takers, is.e)
		}
	}
	if len(iss) == 0 {
		takers = slowEps // no per-second join possible (an import): all slow endpoints
	}
	if len(takers) == 0 && c.spans() == nil {
		// An import: the endpoints' requests in flight move together (a
		// user GETs the form and POSTs it), and the best correlated may
		// not be the slow one. The slow endpoint whose slow requests
		// overlap the waits most takes them.
		var best *endpoint
		bestN := 0.0
		for _, e := range c.slowEndpoints(nil) {
			if n, _ := c.slowIn(e, v.active); n > bestN {
				best, bestN = e, n
			}
		}
		if best != nil {
			takers = []*endpoint{best}
			v.evidence = append(v.evidence, noteRef("join", fmt.Sprintf("no request could be matched to the waits one by one; %s is the slow endpoint whose slow requests overlap them most", best.Name)))
		}
	}
	lockSecs := 0.0 // backend-seconds spent waiting on locks
	for _, n := range x {
		lockSecs += n
	}
	var names []string
	nSlow, latSum := 0.0, 0.0
	for _, e := range takers {
		n, sum := c.slowIn(e, v.active)
		nSlow += n
		latSum += sum
		names = append(names, e.Name)
	}
	switch {
	case nSlow >= 1 && lockSecs == 0 && len(waits) == 0:
		// Nothing measured how long sessions waited (no probe reading
		// of waiters, no logged wait): an unmeasured wait is not a short
		// one, and not a cause of the slowness either.
		v.evidence = append(v.evidence, noteRef("latency", fmt.Sprintf("no source measured how long requests waited on locks (no PostgreSQL probe reading of waiting sessions, no 'still waiting for …Lock' log lines): the %.0f slow requests on %s (mean %s) are not put down to the lock; probe PostgreSQL or set log_lock_waits=on to apportion them", nSlow, strings.Join(names, ", "), secs(time.Duration(latSum/nSlow*float64(time.Second))))))
	case nSlow >= 1:
		meanLat := latSum / nSlow
		perReq := lockSecs / nSlow
		wait := time.Duration(perReq * float64(time.Second))
		if len(waits) > 0 {
			wait = medianMs(queued)
		}
		share := wait.Seconds() / meanLat
		switch {
		case share >= 0.25:
			v.claims = append(v.claims, claim{eps: takers, ws: v.active})
			v.latency = accounted(names, "on a lock", wait, time.Duration(meanLat*float64(time.Second)))
			if len(waits) == 0 {
				v.latency = fmt.Sprintf("slow requests on %s waited on a lock for about %s each (%.0f session-seconds of lock waits sampled over %.0f slow requests) of their mean %s", strings.Join(names, ", "), secs(wait), lockSecs, nSlow, secs(time.Duration(meanLat*float64(time.Second))))
			}
			v.evidence = append(v.evidence, c.slowRef(takers, v.active))
		default:
			v.evidence = append(v.evidence, noteRef("latency", fmt.Sprintf("lock waits account for about %s of the %s mean latency of the slow requests on %s: too little to explain them", secs(wait), secs(time.Duration(meanLat*float64(time.Second))), strings.Join(names, ", "))))
		}
	}
	if len(v.claims) == 0 {
		// Sessions waited on locks, but no failure or slow request is
		// theirs: worth saying, not a cause.
		v.status, v.conf = stampede.Possible, 0.3
		v.title = "Sessions waited on database locks, too briefly to explain the failed or slow requests"
	}
	for i, is := range iss {
		if i == 3 {
			break
		}
		v.evidence = append(v.evidence, noteRef("join", joined(is)))
	}

	if in.peak != nil && in.max > 0 {
		p := in.peak.Values
		var tags []string
		for k, x := range p {
			if strings.HasPrefix(k, "wait:Lock:") && x > 0 {
				tags = append(tags, fmt.Sprintf("%s %.0f", strings.TrimPrefix(k, "wait:Lock:"), x))
			}
		}
		text := fmt.Sprintf("postgres: %.0f sessions waiting on a lock (%s), %.0f blocked by %.0f blockers, oldest transaction %.0f s", in.max, strings.Join(sortedStrings(tags), ", "), p["blocked"], p["blockers"], p["oldest_xact_s"])
		v.evidence = append(v.evidence, probeRef(in.peak, text))
		if b := in.peak.Info["blocked"]; b != "" {
			v.evidence = append(v.evidence, probeRef(in.peak, "blocking chain: "+firstLine(b)))
		}
		if p["state:idle in transaction"] > 0 {
			v.evidence = append(v.evidence, noteRef("postgres", fmt.Sprintf("%.0f sessions idle in transaction at that moment: a blocker idle in transaction is waiting on the application (work done while the transaction holds the lock), not on the database", p["state:idle in transaction"])))
		}
		v.evidence = append(v.evidence, noteRef("postgres", fmt.Sprintf("lock waiters averaged %.1f in the failure or slow windows against %.1f outside them", in.mean, out.mean)))
	}
	for i, g := range rowGroups {
		if i == 2 {
			break
		}
		h := heaviest(g.ivs)
		ref := eventRef(h.ev)
		ref.Text = g.describe()
		v.evidence = append(v.evidence, ref)
	}
	v.evidence = append(v.evidence, eventRefs(evs, "lock waits")...)
	if len(waits) > 0 && len(c.lockWaits()) > 0 {
		v.evidence = append(v.evidence, noteRef("postgres-log", fmt.Sprintf("%d lock waits logged (log_lock_waits), median %s, longest %s; one after another, a session waited a median of %s in all (longest %s)", len(waits), secs(medianMs(waits)), secs(maxMs(waits)), secs(medianMs(queued)), secs(maxMs(queued)))))
	}
	v.fix = "Shorten the transactions that hold the lock (often an idle-in-transaction session or a hot row updated by every request, e.g. a last_login or counter row taken FOR UPDATE), keep slow work (password hashing, HTTP calls) out of the transaction, avoid select_for_update on hot rows, order updates consistently, run migrations outside the load window; set idle_in_transaction_session_timeout and lock_timeout on the app role."
	v.next = "Rerun with log_lock_waits=on and lock_timeout='2s' on the app role: the slow requests should turn into 'canceling statement due to lock timeout' on the same endpoint, and pg_blocking_pids names the blocker; then move the row update out of the request's transaction and rerun: the waits should vanish."
	return v
}

func maxMs(ivs []interval) time.Duration {
	m := 0.0
	for _, iv := range ivs {
		m = math.Max(m, iv.ms)
	}
	return time.Duration(m * float64(time.Millisecond))
}

// ruleSlowQuery: a query's own cost dominates.
//
// It needs a query in the evidence: a statement PostgreSQL logged with its
// duration (log_min_duration_statement), a statement or query timeout, a
// pg_stat_statements reading, or a long query the probe saw active with no
// lock wait. The statements running per second are set against each
// endpoint's requests in flight: the endpoint whose concurrency moves with
// them issues the query, and its slow requests are explained. Statements
// that only waited on a lock are the lock's, not a slow query. Ruled out
// for the slow endpoints when PostgreSQL was probed and no query ran long
// while they were in flight: their time went elsewhere.
func ruleSlowQuery(c *ctx) verdict {
	v := verdict{id: IDSlowQuery}
	cand := c.failing(serverSide)
	slowEps := c.slowEndpoints(nil)
	if len(cand) == 0 && len(slowEps) == 0 {
		return v
	}
	ws := c.symptomWindows(cand, slowEps)
	var timeouts []*event
	if len(cand) > 0 {
		for _, e := range c.eventsOf(IDSlowQuery, c.windows(cand)) {
			if fieldMs(e, "duration_ms", "duration: ") == 0 { // a cancel or timeout, not a logged duration
				timeouts = append(timeouts, e)
			}
		}
	}
	var stmts []interval
	lockWaits := c.lockWaits()
	rowLockRuns := 0
	for _, iv := range c.slowStatements() {
		if !inWindows(iv.to, ws) || waitedOnLock(iv, lockWaits) {
			continue
		}
		if c.isRowLockWait(iv) {
			rowLockRuns++ // its time is the row lock's (db-lock-contention)
			continue
		}
		stmts = append(stmts, iv)
	}
	// The probe: long active queries without a lock wait, and
	// pg_stat_statements' heaviest statements.
	// A query active for long while its backend waits on the client
	// (Client:ClientRead/ClientWrite) is the app not reading, not the
	// query working: a blocked worker, not a slow plan.
	longQ := func(s *stampede.Sample) bool {
		return s.Values["oldest_query_s"] >= 1 && s.Values["wait:Lock"] == 0 &&
			s.Values["wait:Client"] < max(1, s.Values["state:active"]-s.Values["wait:Client"])
	}
	oldest := c.read("postgres", "oldest_query_s", ws, false)
	var longSample, stmtSample *stampede.Sample
	for _, s := range c.samples["postgres"] {
		if s.Err != "" || !inWindows(s.Time, ws) {
			continue
		}
		if longQ(s) && (longSample == nil || s.Values["oldest_query_s"] > longSample.Values["oldest_query_s"]) {
			longSample = s
		}
		if s.Info["statements"] != "" && (stmtSample == nil || s.Values["stmt_exec_ms_delta"] > stmtSample.Values["stmt_exec_ms_delta"]) {
			stmtSample = s
		}
	}
	// Who burns the CPU: PostgreSQL holding most of it while requests
	// were slow, with the probe's sessions on the CPU naming the query,
	// is the query's own cost even when no run lasted a second.
	sp := c.cpuSplitIn(ws, nil)
	pgDom := false
	if dom, ok := sp.dominant(); ok && dom == "postgres" {
		pgDom = true
		v.dominance = max(v.dominance, sp.of("postgres")/max(sp.total(), sp.busy))
	}
	var ash []stmtLoad
	if pgDom {
		ash = c.ashCPU(ws)
	}
	ashNamed := len(ash) > 0 && ash[0].backendSeconds >= 2
	switch {
	case len(stmts) > 0 || len(timeouts) > 0:
		v.status, v.conf = stampede.Confirmed, 0.85
	case pgDom && (ashNamed || stmtSample != nil):
		v.status, v.conf = stampede.Confirmed, 0.8
	case rowLockRuns > 0 && longSample == nil:
		v.ruledOut = fmt.Sprintf("the %d slow statements logged in these windows lock one row each and queued on it (db-lock-contention): none was slow by its own plan", rowLockRuns)
		return v
	case longSample != nil && (longSample.Info["active"] != "" || stmtSample != nil):
		v.status, v.conf = stampede.Likely, 0.6
	case oldest.n > 0 && oldest.max < 1:
		var names []string
		for _, e := range slowEps {
			names = append(names, e.Name)
		}
		if len(names) > 0 {
			v.ruledOut = fmt.Sprintf("no query ran longer than %s while %s were slow (%d postgres samples): their time went elsewhere", secs(time.Duration(oldest.max*float64(time.Second))), joinMax(names, 3), oldest.n)
		} else {
			v.ruledOut = fmt.Sprintf("no query ran longer than %s during the failure windows (%d postgres samples)", secs(time.Duration(oldest.max*float64(time.Second))), oldest.n)
		}
		return v
	default:
		return v
	}

	// Which endpoint issues each query: the one whose requests contain its
	// statements far above chance.
	var issuers []*endpoint
	var heavy *stmtGroup // the heaviest query with an issuer
	if len(stmts) > 0 {
		v.active = c.windowsOf(c.intervalSeries(stmts))
		for i, g := range groupStatements(stmts) {
			if i == 3 {
				break
			}
			gws := c.windowsOf(c.intervalSeries(g.ivs))
			// Does the query's own cost dominate, or is it a victim of
			// contention elsewhere? Its logged time against the cores'
			// time over the span it ran in (capacity arithmetic), and
			// whether its endpoint is slow even when quiet.
			dom := g.totalMs / 1000 / (windowsSeconds(gws) * max(c.hostCores(), 1))
			for _, is := range c.containers(g.ivs) {
				if is.e.slow.n == 0 && is.e.Failures == 0 {
					continue
				}
				own := is.e.slow.floor >= medianMs(g.ivs)/2
				if dom < minDominance && !own {
					v.evidence = append(v.evidence, noteRef("arithmetic", fmt.Sprintf("%s (from %s) ran %s in all, %.0f%% of the cores' time while it ran, and %s is fast when little else is in flight (%s): the statement is slowed by contention elsewhere, not by its own cost", clipText(g.text, 80), is.e.Name, secs(time.Duration(g.totalMs)*time.Millisecond), 100*dom, is.e.Name, secs(is.e.slow.floor))))
					break
				}
				if heavy == nil {
					heavy = g
					v.dominance = dom
				}
				v.claims = append(v.claims, claim{eps: []*endpoint{is.e}, ws: gws})
				if !containsEp(issuers, is.e) {
					issuers = append(issuers, is.e)
				}
				v.evidence = append(v.evidence, noteRef("join", fmt.Sprintf("%.0f%% of the %d logged runs of %s fall inside requests on %s (far above chance): it issues them", 100*is.r, len(g.ivs), clipText(g.text, 80), is.e.Name)))
				break
			}
		}
	} else if pgDom {
		// The seconds PostgreSQL held the CPU; the endpoint whose
		// requests in flight move with its CPU issues the query.
		pgHot := func(s *stampede.Sample) bool {
			return s.Values["cpu_pct:postgres"] >= dominantShare*s.Values["cpu_busy_pct"]*max(s.Values["cores"], 1)
		}
		v.active = windowsWith(ws, nil, c.samples["host"], pgHot)
		// Every request that needs the database, or a core, waits for
		// it: the slow requests of those seconds are the query's, on
		// whichever page.
		for _, e := range slowEps {
			if n, _ := c.slowIn(e, v.active); n >= 1 {
				issuers = append(issuers, e)
			}
		}
		if len(issuers) > 0 {
			v.claims = append(v.claims, claim{eps: issuers, ws: v.active})
			v.evidence = append(v.evidence, noteRef("join", "no statement was logged with its duration, so the page that issues the query is not told apart: every page slow while PostgreSQL held the CPU waited for it (log_min_duration_statement names the issuer)"))
		}
	} else {
		v.active = windowsWith(ws, nil, c.samples["postgres"], longQ)
		for _, is := range c.issuers(c.sampleSeries("postgres", "oldest_query_s")) {
			if is.e.slow.n > 0 || is.e.Failures > 0 {
				issuers = append(issuers, is.e)
				v.claims = append(v.claims, claim{eps: []*endpoint{is.e}, ws: v.active})
				v.evidence = append(v.evidence, noteRef("join", fmt.Sprintf("requests in flight on %s move with the long-running query (r=%.2f): it issues it", is.e.Name, is.r)))
				break
			}
		}
	}
	if len(issuers) == 0 && (len(stmts) == 0 || c.spans() == nil) {
		// No join possible (an import, or only the probe): the slow
		// endpoint whose slow requests overlap the statements most.
		var best *endpoint
		bestN := 0.0
		for _, e := range slowEps {
			if n, _ := c.slowIn(e, v.active); n > bestN {
				best, bestN = e, n
			}
		}
		if best != nil {
			issuers = []*endpoint{best}
			v.claims = append(v.claims, claim{eps: issuers, ws: v.active})
			v.evidence = append(v.evidence, noteRef("join", fmt.Sprintf("no request could be matched to the statements one by one; %s is the slow endpoint whose slow requests overlap them most", best.Name)))
		}
	}
	if len(issuers) > 0 {
		v.evidence = append(v.evidence, c.slowRef(issuers, v.active))
	}
	if len(timeouts) > 0 {
		v.claims = append(v.claims, claim{groups: cand, ws: windowsWith(c.windows(cand), timeouts, nil, nil)})
		v.evidence = append(v.evidence, c.groupRef(cand))
	}

	where := "an endpoint"
	if len(issuers) > 0 {
		var names []string
		for _, e := range issuers {
			names = append(names, e.Name)
		}
		where = strings.Join(names, ", ")
		if heavy != nil {
			n, sum := 0.0, 0.0
			for _, e := range issuers {
				a, b := c.slowIn(e, v.active)
				n, sum = n+a, sum+b
			}
			if n >= 1 {
				v.latency = fmt.Sprintf("slow requests on %s spent a median of %s in the logged statement of their mean %s", where, secs(medianMs(heavy.ivs)), secs(time.Duration(sum/n*float64(time.Second))))
				v.stmtShare = medianMs(heavy.ivs).Seconds() / (sum / n)
			}
		}
	}
	query := ""
	if heavy != nil {
		query = heavy.text
	} else if len(stmts) > 0 {
		query = statementOf(heaviest(stmts).ev)
	} else if ashNamed {
		query = ash[0].query
	} else if stmtSample != nil {
		query = fieldOfLine(firstLine(stmtSample.Info["statements"]), 3)
	} else if longSample != nil {
		query = fieldOfLine(firstLine(longSample.Info["active"]), 2)
	}
	v.title = fmt.Sprintf("A slow query dominates %s", where)
	if pgDom && len(stmts) == 0 {
		v.title = "A query burns the database's CPU and slows every page"
	}
	if query != "" {
		v.title += ": " + clipText(query, 100)
	}
	if len(stmts) > 0 {
		h := heaviest(stmts)
		if heavy != nil {
			h = heaviest(heavy.ivs)
		}
		ref := eventRef(h.ev)
		ref.Text = fmt.Sprintf("%s ran %s: %s", h.ev.Source, secs(time.Duration(h.ms*float64(time.Millisecond))), clipText(statementOf(h.ev), 300))
		v.evidence = append(v.evidence, ref)
		v.evidence = append(v.evidence, noteRef("postgres-log", fmt.Sprintf("%d statements logged slower than log_min_duration_statement in these windows, median %s, longest %s", len(stmts), secs(medianMs(stmts)), secs(maxMs(stmts)))))
	}
	v.evidence = append(v.evidence, eventRefs(timeouts, "statement or query timeouts")...)
	if ref, ok := c.seqScanRef(ws); ok {
		v.evidence = append(v.evidence, ref)
	}
	if pgDom {
		v.evidence = append(v.evidence, sp.ref("while requests were slow"))
		if ashNamed {
			total := 0.0
			for _, a := range ash {
				total += a.backendSeconds
			}
			v.evidence = append(v.evidence, probeRef(ash[0].sample, fmt.Sprintf("postgres: sessions on the CPU (no wait event), summed over the samples: %.0f backend-seconds of %.0f ran %s", ash[0].backendSeconds, total, clipText(ash[0].query, 200))))
		}
	}
	if stmtSample != nil {
		v.evidence = append(v.evidence, probeRef(stmtSample, "pg_stat_statements, heaviest in the interval (calls, total ms, mean ms, query): "+clipText(firstLine(stmtSample.Info["statements"]), 300)))
	}
	if longSample != nil {
		p := longSample.Values
		text := fmt.Sprintf("postgres: oldest active query %.1f s with no lock wait, %.0f active backends", p["oldest_query_s"], p["state:active"])
		if a := longSample.Info["active"]; a != "" {
			text += "; active: " + clipText(firstLine(a), 200)
		}
		v.evidence = append(v.evidence, probeRef(longSample, text))
	}
	if pgDom {
		v.ownCPU = "PostgreSQL held most of the busy CPU"
	}
	held := v.active
	if len(held) == 0 {
		held = ws
	}
	cores := c.hostCores()
	for _, s := range c.samples["host"] {
		if s.Err == "" && inWindows(s.Time, held) && cpuHigh(s, cores) {
			v.cpuHeld = true
			break
		}
	}
	for _, e := range issuers {
		if e.slow.self && e.slow.aloneHot < hotAloneShare && v.ownCPU == "" {
			v.ownCPU = e.Name + " slow alone on a CPU that was not saturated"
		}
		if e.slow.self {
			text := e.aloneText()
			if e.slow.aloneHot < hotAloneShare {
				text += ", so its cost is the query's own, not the load's"
			}
			v.evidence = append(v.evidence, noteRef("latency", text))
		}
	}
	if len(v.claims) == 0 {
		// Statements ran long, but no failed or slow request is theirs.
		v.status, v.conf = stampede.Possible, 0.3
		v.title = "Statements ran slowly, but they are not what made requests fail or slow"
		if query != "" {
			v.title += ": " + clipText(query, 100)
		}
	}
	v.fix = "EXPLAIN (ANALYZE, BUFFERS) the query named above and remove its cost: add the missing index, precompute or cache the heavy aggregate, paginate; set statement_timeout per role so a runaway query fails fast instead of holding a connection."
	v.next = "Run EXPLAIN (ANALYZE, BUFFERS) on the statement: a Seq Scan over a large table on a filtered column names the missing index; create it and rerun the slow endpoint alone at concurrency 1, then under the same load: its latency should drop to its floor."
	return v
}

// waitedOnLock reports whether a logged statement spent most of its time
// in lock waits of the same process (a queue behind a hot row is many
// waits in turn).
func waitedOnLock(st interval, waits []interval) bool {
	pid := pidOf(st.ev)
	if pid == "" {
		return false
	}
	var in time.Duration
	for _, w := range waits {
		if pidOf(w.ev) != pid {
			continue
		}
		if lo, hi := maxTime(st.from, w.from), minTime(st.to, w.to); hi.After(lo) {
			in += hi.Sub(lo)
		}
	}
	return in >= st.to.Sub(st.from)/2
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// heaviest returns the longest interval.
func heaviest(ivs []interval) interval {
	h := ivs[0]
	for _, iv := range ivs {
		if iv.ms > h.ms {
			h = iv
		}
	}
	return h
}

// fieldOfLine returns the tab-separated field i of a probe's info line.
func fieldOfLine(line string, i int) string {
	f := strings.Split(line, "\t")
	if i < len(f) {
		return f[i]
	}
	return ""
}

func clipText(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// medianOf returns the median of ds; it sorts ds.
func medianOf(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2]
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func sortedStrings(ss []string) []string {
	for i := 1; i < len(ss); i++ {
		for j := i; j > 0 && ss[j] < ss[j-1]; j-- {
			ss[j], ss[j-1] = ss[j-1], ss[j]
		}
	}
	return ss
}

// minDominance is the share of the cores' time a query's logged runs must
// take to count as the cause of its own slowness when its endpoint is fast
// when quiet.
const minDominance = 0.3

// windowsSeconds returns the seconds ws span (overlaps counted once).
func windowsSeconds(ws []window) float64 {
	if len(ws) == 0 {
		return 1
	}
	sorted := append([]window(nil), ws...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].from.Before(sorted[j].from) })
	total := 0.0
	cur := sorted[0]
	for _, w := range sorted[1:] {
		if w.from.After(cur.to) {
			total += cur.to.Sub(cur.from).Seconds()
			cur = w
			continue
		}
		if w.to.After(cur.to) {
			cur.to = w.to
		}
	}
	total += cur.to.Sub(cur.from).Seconds()
	return math.Max(total, 1)
}

func containsEp(es []*endpoint, e *endpoint) bool {
	for _, x := range es {
		if x == e {
			return true
		}
	}
	return false
}

// poolKind says whose pool an event's timeout is: "app" for an
// application-side pool's acquire timeout (the catalog's "…-pool-timeout"
// entries and the pool-timeout shape), "pgbouncer" for PgBouncer's queue,
// "" when unknown; and the library the catalog names.
func poolKind(e *event) (kind, lib string) {
	sig := e.Signature
	text := strings.ToLower(e.Message + " " + e.Exception)
	switch {
	case strings.HasPrefix(sig, "pgbouncer-") || strings.Contains(sig, "query-wait-timeout") ||
		strings.Contains(text, "query_wait_timeout") || strings.Contains(text, "no server connection available"):
		return "pgbouncer", "PgBouncer"
	case sig == "app-pool-timeout-shape":
		return "app", ""
	case strings.HasSuffix(sig, "-pool-timeout"):
		return "app", poolLibs[strings.TrimSuffix(sig, "-pool-timeout")]
	}
	for _, l := range []struct{ text, lib string }{
		{"queuepool limit", "SQLAlchemy"}, {"pooltimeout", "psycopg_pool"}, {"couldn't get a connection after", "psycopg_pool"},
		{"connection is not available, request timed out", "HikariCP"}, {"could not obtain a connection from the pool", "ActiveRecord"},
	} {
		if strings.Contains(text, l.text) {
			return "app", l.lib
		}
	}
	return "", ""
}

// poolLibs names the libraries of the catalog's pool-timeout entries.
var poolLibs = map[string]string{
	"node-postgres": "node-postgres", "knex": "knex", "tarn": "knex/tarn", "sequelize": "Sequelize", "prisma": "Prisma",
	"hikaricp": "HikariCP", "sqlalchemy": "SQLAlchemy", "psycopg": "psycopg_pool", "activerecord": "ActiveRecord",
	"npgsql": "Npgsql", "sqlclient": "SqlClient", "hyperf": "Hyperf", "go-acquire": "pgxpool or database/sql",
	"doctrine": "Doctrine", "pdo": "PDO",
}

// appPoolSetting names the pool size setting of the library or stack.
func appPoolSetting(lib string, st stackInfo) string {
	switch lib {
	case "SQLAlchemy":
		return "pool_size + max_overflow (create_engine)"
	case "psycopg_pool":
		return "the pool's max_size"
	case "HikariCP":
		return "maximumPoolSize"
	case "ActiveRecord":
		return "database.yml's pool (with RAILS_MAX_THREADS)"
	case "node-postgres":
		return "the pg Pool's max"
	case "knex", "knex/tarn":
		return "knex's pool.max"
	case "Sequelize":
		return "Sequelize's pool.max"
	case "Prisma":
		return "connection_limit in the datasource URL"
	case "Npgsql", "SqlClient":
		return "Max Pool Size in the connection string"
	case "pgxpool or database/sql":
		return "pgxpool's MaxConns (or database/sql's SetMaxOpenConns)"
	}
	switch st.framework {
	case "rails":
		return "database.yml's pool (with RAILS_MAX_THREADS)"
	case "flask", "fastapi":
		return "SQLAlchemy's pool_size + max_overflow"
	case "spring":
		return "maximumPoolSize"
	case "express":
		return "the pool's max"
	}
	return "the app's pool size"
}

// appPoolCapacity says, from the probes, whether PgBouncer and PostgreSQL
// had capacity while the app's pool timed out: no client waiting in
// PgBouncer and PostgreSQL's backends below max_connections mean the queue
// was in the app.
func (c *ctx) appPoolCapacity(ws []window) (stampede.EvidenceRef, bool) {
	wait := c.read("pgbouncer", "cl_waiting", ws, false)
	idle := c.read("pgbouncer", "sv_idle", ws, false)
	backends := c.read("postgres", "backends", ws, false)
	maxConn := c.setting("postgres", "max_connections")
	var parts []string
	var at *stampede.Sample
	if wait.n > 0 && wait.max == 0 {
		parts = append(parts, fmt.Sprintf("PgBouncer had no client waiting (%d samples, up to %.0f idle server connections)", wait.n, idle.max))
		at = wait.peak
	}
	if backends.n > 0 && maxConn > 0 && backends.max < maxConn {
		parts = append(parts, fmt.Sprintf("PostgreSQL had %.0f of max_connections %.0f backends", backends.max, maxConn))
		if at == nil {
			at = backends.peak
		}
	}
	if len(parts) == 0 {
		return stampede.EvidenceRef{}, false
	}
	text := "while the app's pool timed out, " + strings.Join(parts, " and ") + ": the wait was in the app's own pool, not in PgBouncer's queue or at PostgreSQL's connection limit"
	if at != nil {
		return probeRef(at, text), true
	}
	return noteRef("probes", text), true
}
