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
	if len(cand) == 0 {
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
	appSide := !bouncerText && !probeQueued && len(allEvs) > 0
	v.title = "Requests fail waiting for a pooled database connection"
	if bouncerText || probeQueued {
		v.title = "Requests fail waiting for a PgBouncer server connection (query_wait_timeout)"
	}
	if appSide {
		v.title = "Requests fail waiting for a connection from the app's own database pool"
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
	size := "default_pool_size"
	if pool > 0 {
		size = fmt.Sprintf("default_pool_size (now %.0f)", pool)
	}
	v.fix = "Give connections back sooner and size the pool to what PostgreSQL can run at once (about cores×2–4): pool_mode=transaction if the app allows it, CONN_MAX_AGE=0 behind a session-mode bouncer, no transaction held across slow work such as the password hash; set query_wait_timeout below the app and proxy timeouts so the error stays attributable."
	v.next = fmt.Sprintf("Rerun with %s ×2: failure onset should move later or vanish while PostgreSQL CPU stays low; if PostgreSQL saturates instead, the database is the bottleneck.", size)
	if appSide {
		v.fix = "Make the app's pool at least as large as the threads that use it (pool_size + max_overflow ≥ threads per process), hold no connection across slow work (the password hash, HTTP calls), and look for leaked connections; keep its timeout below the app server's."
		v.next = "Rerun with the app pool ×2 (pool_size/max_overflow, or the pool's max_size): failure onset should move while PgBouncer and PostgreSQL stay quiet; if it does not, connections leak."
	}
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
// Confirmed by sessions waiting on a Lock in pg_stat_activity during the
// failure windows (more than outside them), or by lock-wait, lock-timeout
// or deadlock lines in the logs there. Ruled out when PostgreSQL was
// sampled during every failure burst and no session waited on a lock.
func ruleLock(c *ctx) verdict {
	v := verdict{id: IDLockContention}
	cand := c.failing(serverSide)
	if len(cand) == 0 {
		return v
	}
	ws := c.windows(cand)
	evs := c.eventsOf(IDLockContention, ws)
	in := c.read("postgres", "wait:Lock", ws, false)
	out := c.read("postgres", "wait:Lock", ws, true)
	waited := in.n > 0 && in.max >= 1 && in.mean > out.mean
	if len(evs) == 0 && !waited {
		if in.n > 0 && in.max == 0 && len(c.eventsOf(IDLockContention, nil)) == 0 {
			v.ruledOut = fmt.Sprintf("no session waited on a lock during any failure burst (%d postgres samples, wait:Lock 0), and no log line shows a lock wait, lock timeout or deadlock", in.n)
		} else if in.n == 0 && len(c.eventsOf(IDLockContention, nil)) == 0 {
			v.ruledOutIfExplained = "every server error is explained by a confirmed finding, and no log line shows a lock wait, lock timeout or deadlock (PostgreSQL was not probed)"
		}
		return v
	}
	v.status, v.conf = stampede.Confirmed, 0.9
	v.claims = []claim{{groups: cand, ws: windowsWith(ws, evs, c.samples["postgres"], func(s *stampede.Sample) bool { return s.Values["wait:Lock"] >= 1 })}}
	v.title = "Requests wait on database locks"
	v.evidence = append(v.evidence, c.groupRef(cand))
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
			v.evidence = append(v.evidence, probeRef(in.peak, firstLine(b)))
		}
		v.evidence = append(v.evidence, noteRef("postgres", fmt.Sprintf("lock waiters averaged %.1f in the failure windows against %.1f outside them", in.mean, out.mean)))
	}
	v.evidence = append(v.evidence, eventRefs(evs, "lock waits")...)
	v.fix = "Shorten the transactions that hold the lock (often an idle-in-transaction session or a hot row updated by every request, e.g. a last_login counter), avoid select_for_update on hot rows, order updates consistently, run migrations outside the load window; set idle_in_transaction_session_timeout and lock_timeout on the app role."
	v.next = "Rerun with log_lock_waits=on and lock_timeout='2s' on the app role: the failures should turn into 'canceling statement due to lock timeout' on the same endpoint, and pg_blocking_pids names the blocker."
	return v
}

// ruleSlowQuery: a query's own cost dominates.
//
// Confirmed by statement-timeout or slow-statement (log_min_duration_statement)
// lines, or PgBouncer query_timeout, inside the failure windows. Likely when
// PostgreSQL's oldest active query reached 5 s in them while no session
// waited on a lock. Without failures, a slow endpoint (p95 ≥ 1 s) with such
// queries is reported with nothing explained.
func ruleSlowQuery(c *ctx) verdict {
	v := verdict{id: IDSlowQuery}
	cand := c.failing(serverSide)
	var ws []window
	if len(cand) > 0 {
		ws = c.windows(cand)
	} else {
		slow := false
		for _, e := range c.eps {
			if e.P95 >= time.Second {
				slow = true
			}
		}
		if !slow {
			return v
		}
		ws = []window{{c.start.Add(-c.pad), c.end.Add(c.pad)}}
	}
	evs := c.eventsOf(IDSlowQuery, ws)
	oldest := c.read("postgres", "oldest_query_s", ws, false)
	lockFree := oldest.peak != nil && oldest.peak.Values["wait:Lock"] == 0
	long := oldest.n > 0 && oldest.max >= 5 && lockFree
	slowest := c.slowEndpoint()
	switch {
	case len(evs) > 0:
		v.status, v.conf = stampede.Confirmed, 0.85
	case long:
		v.status, v.conf = stampede.Likely, 0.6
	case oldest.n > 0 && oldest.max < 1:
		if len(cand) > 0 {
			v.ruledOut = fmt.Sprintf("no query ran longer than %s during the failure windows (%d postgres samples)", secs(time.Duration(oldest.max*float64(time.Second))), oldest.n)
		}
		return v
	case slowest != nil && oldest.n == 0:
		// Not probed: the latency structure alone points at a per-request cost.
		v.status, v.conf = stampede.Likely, 0.5
	default:
		return v
	}
	if slowest == nil {
		slowest = c.eps[0]
		for _, e := range c.eps {
			if e.Median > slowest.Median {
				slowest = e
			}
		}
	}
	if len(cand) > 0 {
		var cws []window
		if v.conf == 0.5 {
			cand = c.failing(func(g *group) bool { return g.ep == slowest && serverSide(g) })
			cws = c.windows(cand)
		} else {
			cws = windowsWith(ws, evs, c.samples["postgres"], func(s *stampede.Sample) bool {
				return s.Values["oldest_query_s"] >= 5 && s.Values["wait:Lock"] == 0
			})
		}
		if len(cand) > 0 {
			v.claims = []claim{{groups: cand, ws: cws}}
			v.evidence = append(v.evidence, c.groupRef(cand))
		}
	}
	v.title = fmt.Sprintf("A slow query dominates %s (median %s)", slowest.Name, secs(slowest.Median))
	if v.conf == 0.5 {
		v.evidence = append(v.evidence, noteRef("disagreement", "PostgreSQL was not probed and no log names the query: a slow external call in the same view would look the same"))
	}
	v.evidence = append(v.evidence, eventRefs(evs, "slow or cancelled statements")...)
	if oldest.peak != nil && oldest.max > 0 {
		p := oldest.peak.Values
		v.evidence = append(v.evidence, probeRef(oldest.peak, fmt.Sprintf("postgres: oldest active query %.1f s, %.0f active backends, %.0f waiting on locks, temp files %.0f", oldest.max, p["state:active"], p["wait:Lock"], p["temp_files"])))
	}
	if oldest.n == 0 {
		// Not probed: the host shows whether the work was on the target.
		sws := c.endpointWindows(slowest)
		if h := c.read("host", "cpu_busy_pct", sws, false); h.peak != nil {
			v.evidence = append(v.evidence, probeRef(h.peak, fmt.Sprintf("host CPU %.0f%% busy while %s was in flight (median %s, first byte after %s on average): the time is spent working before the answer, not sending it", h.max, slowest.Name, secs(slowest.Median), secs(slowest.TTFB))))
		}
	}
	if slowest.shape.Points >= 5 && !slowest.shape.Linear {
		v.evidence = append(v.evidence, noteRef("latency", fmt.Sprintf("%s is slow at any concurrency (fit r²=%.2f): the cost is per request, not queueing", slowest.Name, slowest.shape.R2)))
	}
	v.fix = "EXPLAIN (ANALYZE, BUFFERS) the query behind the slow endpoint and remove its cost: add the missing index, precompute or cache the heavy aggregate, paginate; set statement_timeout per role so a runaway query fails fast instead of holding a connection."
	v.next = "Turn on log_min_duration_statement=500ms (or pg_stat_statements) and rerun; then rerun the slow endpoint alone at concurrency 1: if it is still slow, the query's own cost is the cause."
	return v
}

// slowEndpoint returns the endpoint that is slow per request: not a login,
// median ≥ 1 s and ≥ 10× the other endpoints' median, and its latency does
// not grow with concurrency (no clean line: the cost is the request's own,
// not a queue's). A streamed response (first byte within a third of its
// latency: a download paced by the sender or the network) is not a slow
// query: a query's cost comes before the first byte. Nil when there is none.
func (c *ctx) slowEndpoint() *endpoint {
	var best *endpoint
	for _, e := range c.eps {
		// A clean line against concurrency is a queue's mark, unless even
		// the fastest request was slow: then each request costs on its own.
		if e.login || e.Median < time.Second || (e.shape.Points >= 5 && e.shape.Linear && e.Min < 250*time.Millisecond) {
			continue
		}
		if e.TTFB > 0 && e.Mean > 0 && e.TTFB < e.Mean/3 {
			continue
		}
		var others []time.Duration
		for _, o := range c.eps {
			if o != e && o.Requests > 0 && o.Median > 0 {
				others = append(others, o.Median)
			}
		}
		if len(others) > 0 && e.Median < 10*medianOf(others) {
			continue
		}
		if best == nil || e.Median > best.Median {
			best = e
		}
	}
	return best
}

// endpointWindows returns the windows in which e's requests were in flight.
func (c *ctx) endpointWindows(e *endpoint) []window {
	var ws []window
	for _, b := range c.bursts(e.reqs) {
		ws = append(ws, window{b.Start.Add(-e.P95), b.End.Add(c.pad)})
	}
	return ws
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
