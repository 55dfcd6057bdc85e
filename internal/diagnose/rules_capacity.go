package diagnose

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/stampede-load/stampede"
)

// generatorSaturated reports whether a generator sample says the generator
// was the bottleneck: its own flag, CPU above 90% of its cores, or timer
// lag above 50 ms.
func generatorSaturated(s *stampede.Sample) bool {
	v := s.Values
	if v["saturated"] >= 1 || v["lag_ms"] > 50 {
		return true
	}
	return v["cores"] > 0 && v["cpu_pct"] >= 90*v["cores"]
}

// ruleGenerator: the load generator itself was the bottleneck.
//
// Confirmed when a generator sample is saturated (CPU ≥ 90% of its cores or
// scheduling lag > 50 ms) during a failure window or in ≥ 10% of samples,
// or when Locust logged its "CPU usage above 90%" warning. It claims the
// client-side timeouts inside saturated windows: their figures are not the
// server's.
func ruleGenerator(c *ctx) verdict {
	v := verdict{id: IDGeneratorSat}
	ss := c.samples["generator"]
	evs := c.eventsOf(IDGeneratorSat, nil)
	var sat []*stampede.Sample
	peakCPU, peakLag, cores := 0.0, 0.0, 0.0
	n := 0
	for _, s := range ss {
		if s.Err != "" {
			continue
		}
		n++
		if generatorSaturated(s) {
			sat = append(sat, s)
		}
		peakCPU = max(peakCPU, s.Values["cpu_pct"])
		peakLag = max(peakLag, s.Values["lag_ms"])
		cores = max(cores, s.Values["cores"])
	}
	fails := c.failing(func(g *group) bool { return true })
	ws := c.windows(fails)
	inWin := 0
	for _, s := range sat {
		if inWindows(s.Time, ws) {
			inWin++
		}
	}
	if len(evs) == 0 && (len(sat) == 0 || (inWin == 0 && float64(len(sat)) < 0.1*float64(n))) {
		if n > 0 {
			v.ruledOut = fmt.Sprintf("the generator kept up: CPU peaked at %.0f%% (100 = one core, %.0f cores), timer lag at %.0f ms", peakCPU, cores, peakLag)
		}
		return v
	}
	v.status, v.conf = stampede.Confirmed, 0.9
	if len(evs) == 0 && inWin < 2 && float64(len(sat)) < 0.1*float64(n) {
		// One saturated second is a hiccup (a GC, the OS), not a generator
		// that distorted the run: worth naming, not confirming.
		v.status, v.conf = stampede.Possible, 0.4
	}
	shared := false
	for _, s := range ss {
		if s.Info["shared_with_target"] == "true" {
			shared = true
			break
		}
	}
	if shared && len(evs) == 0 {
		// The target served from the generator's own process: its CPU and
		// timer lag are the target's work as much as the generator's, so
		// they cannot show that the generator was the bottleneck.
		v.status, v.conf = stampede.Possible, 0.3
		v.evidence = append(v.evidence, noteRef("disagreement", "the target ran inside the generator's process, so the process's CPU and timer lag include the target's own work"))
	}
	v.title = "The load generator was saturated: latencies and rates in these windows are the generator's, not the server's"
	timeouts := c.failing(func(g *group) bool { return g.class == ClassTimeout })
	if len(timeouts) > 0 && len(sat) > 0 {
		satWs := make([]window, 0, len(sat))
		for _, s := range sat {
			satWs = append(satWs, window{s.Time.Add(-c.pad), s.Time.Add(c.pad)})
		}
		v.claims = []claim{{groups: timeouts, ws: satWs}}
	}
	// Slow requests are the generator's only where its timers lagged: a
	// busy CPU alone may be the target's work on a shared host, but a late
	// timer delays the requests themselves.
	if v.status == stampede.Confirmed {
		var lagWs []window
		for _, s := range sat {
			if s.Values["lag_ms"] > 50 {
				lagWs = append(lagWs, window{s.Time.Add(-c.pad), s.Time.Add(c.pad)})
			}
		}
		v.active = lagWs
		if es := c.slowEndpoints(nil); len(es) > 0 && len(lagWs) > 0 {
			v.claims = append(v.claims, claim{eps: es, ws: lagWs})
		}
	}
	if len(sat) > 0 {
		worst := sat[0]
		for _, s := range sat {
			if s.Values["lag_ms"]+s.Values["cpu_pct"] > worst.Values["lag_ms"]+worst.Values["cpu_pct"] {
				worst = s
			}
		}
		v.evidence = append(v.evidence, probeRef(worst, fmt.Sprintf("generator: CPU %.0f%% of %.0f cores (100 = one core), timer lag %.0f ms, %.0f requests in flight", worst.Values["cpu_pct"], worst.Values["cores"], worst.Values["lag_ms"], worst.Values["inflight"])))
		v.evidence = append(v.evidence, noteRef("generator", fmt.Sprintf("saturated in %d of %d samples (%d inside failure windows)", len(sat), n, inWin)))
	}
	v.evidence = append(v.evidence, eventRefs(evs, "generator CPU warnings")...)
	v.fix = "Give the generator more CPU or spread it over several machines; lower think-time-free loops; do not trust latency figures from the saturated windows."
	v.next = "Rerun with the same load from two generators (or half the users per generator): if the server-side figures change, the generator was distorting them."
	return v
}

// ruleTargetDown: connections refused or reset: the target was not there.
//
// Confirmed by "connection refused" (nothing listened), or by a crash,
// OOM kill or nginx "connect() failed (111: Connection refused)" line in
// the failure windows. Resets and EOFs count as likely when no listen-queue
// overflow or worker-timeout evidence points at saturated workers instead.
func ruleTargetDown(c *ctx) verdict {
	v := verdict{id: IDTargetDown}
	refused := c.failing(func(g *group) bool { return g.class == ClassTransport && g.refused })
	resets := c.failing(func(g *group) bool { return g.class == ClassTransport && !g.refused })
	f502 := c.failing(func(g *group) bool { return g.Status == 502 })
	all := append(append(append([]*group{}, refused...), resets...), f502...)
	if len(all) == 0 {
		if c.failed > 0 {
			v.ruledOut = "no connection was refused or reset and no 502 was returned: the target was listening"
		}
		return v
	}
	ws := c.windows(all)
	evs := c.eventsOf(IDTargetDown, ws)
	overflow := c.read("host", "listen_overflows_delta", c.windows(resets), false)
	workerEvs := c.eventsOf(IDWorkerSaturation, c.windows(resets))
	resetsAreDown := len(resets) > 0 && overflow.max == 0 && len(workerEvs) == 0
	switch {
	case len(refused) > 0 || len(evs) > 0:
		v.status, v.conf = stampede.Confirmed, 0.9
	case resetsAreDown:
		v.status, v.conf = stampede.Likely, 0.6
	default:
		return v
	}
	if len(refused) > 0 {
		v.claims = append(v.claims, claim{groups: refused, all: true})
	}
	if resetsAreDown {
		v.claims = append(v.claims, claim{groups: resets, all: true})
	}
	if len(evs) > 0 && len(f502) > 0 {
		v.claims = append(v.claims, claim{groups: f502, ws: windowsWith(c.windows(f502), evs, nil, nil)})
	}
	v.active = c.windows(all)
	from, to := outageSpan(append(append([]*group{}, refused...), resets...))
	v.title = "The target was down: connections refused"
	if len(refused) == 0 {
		v.title = "The target dropped connections (reset or closed without a response)"
	}
	if !from.IsZero() {
		v.title += fmt.Sprintf(" from %s to %s", from.Format(clock), to.Format(clock))
	}
	shown := append(append([]*group{}, refused...), resets...)
	if len(shown) > 0 {
		v.evidence = append(v.evidence, c.groupRef(shown))
		// How much of the traffic failed in those windows.
		tot, bad := 0.0, 0.0
		sws := c.windows(shown)
		for _, e := range c.eps {
			for s, r := range e.reqs {
				if r > 0 && inWindows(c.at(s).Add(time.Second/2), sws) {
					tot += r
				}
			}
		}
		for _, g := range shown {
			for s := 0; s < c.nsec; s++ {
				if x := g.series(s); x > 0 && inWindows(c.at(s).Add(time.Second/2), sws) {
					bad += x
				}
			}
		}
		if tot > 0 {
			v.evidence = append(v.evidence, noteRef("requests", fmt.Sprintf("%.0f of %.0f requests in those windows failed without a response (%.0f%%) across all endpoints", bad, tot, 100*bad/tot)))
		}
	}
	v.evidence = append(v.evidence, eventRefs(evs, "crashes or refused upstream connections")...)
	if h := c.read("host", "cpu_busy_pct", ws, false); h.n > 0 {
		last := h.peak
		for _, s := range c.samples["host"] {
			if s.Err == "" && inWindows(s.Time, ws) {
				last = s
			}
		}
		v.evidence = append(v.evidence, probeRef(last, fmt.Sprintf("the host probe kept answering (%d samples in the failure windows, CPU %.0f%% busy here): the machine was up, the app process was not", h.n, last.Values["cpu_busy_pct"])))
	}
	v.fix = "Find why the app stopped listening: its supervisor's log and exit code, dmesg for oom-kill, a crash loop (worker respawning too fast); give it a restart policy and memory headroom, and do not start the load before the app is ready."
	v.next = "Rerun with the target's pid probed and its stdout/stderr logged (--log): the last lines before the first refusal name the crash; check dmesg for oom-kill at that time."
	return v
}

// ruleRedis: Redis maxclients or the app's Redis client pool exhausted.
//
// Confirmed by the refusal or pool exhaustion in the logs inside a failure
// window ("max number of clients reached", "Too many connections", "No
// connection available.", "redis: connection pool timeout"), or by the
// Redis probe there: connected_clients at maxclients or rejected
// connections rising.
func ruleRedis(c *ctx) verdict {
	v := verdict{id: IDRedisConnLimit}
	// A refused session read is a 500, or, when the app ignores cache
	// errors (django-redis IGNORE_EXCEPTIONS), a user who looks logged out.
	cand := c.failing(func(g *group) bool { return serverSide(g) || lostSession(g) })
	if len(cand) == 0 {
		return v
	}
	ws := c.windows(cand)
	cand = c.failing(serverSide)
	evs := c.eventsOf(IDRedisConnLimit, ws)
	full := redisFull
	conn := c.read("redis", "connected_clients", ws, false)
	rej := c.read("redis", "rejected_connections_delta", ws, false)
	probeFull := false
	var fullSample *stampede.Sample
	for _, s := range c.samples["redis"] {
		if s.Err == "" && inWindows(s.Time, ws) && full(s) {
			probeFull, fullSample = true, s
			break
		}
	}
	if refusedNotDown(c) {
		// Redis answered the probe and refused clients at maxclients:
		// the app's session-store and connection errors in those windows
		// are the refusals as the app saw them (an app that ignores cache
		// errors logs only that its session could not be stored).
		evs = append(evs, c.eventsOf(IDRedisUnavailable, ws)...)
	}
	maxc := c.setting("redis", "maxclients")
	if len(evs) == 0 && !probeFull {
		if conn.n > 0 && len(c.eventsOf(IDRedisConnLimit, nil)) == 0 {
			v.ruledOut = fmt.Sprintf("Redis was healthy during the failure windows: connected_clients peaked at %.0f of maxclients %.0f, no rejected connections, and no log line reports a Redis connection limit", conn.max, maxc)
		}
		return v
	}
	v.status, v.conf = stampede.Confirmed, 0.9
	v.active = windowsWith(ws, evs, c.samples["redis"], full)
	if len(cand) > 0 {
		v.claims = []claim{{groups: cand, ws: v.active}}
		v.evidence = append(v.evidence, c.groupRef(cand))
	}
	v.evidence = append(v.evidence, eventRefs(evs, "Redis connection errors")...)
	serverCap := probeFull
	for _, e := range evs {
		if strings.Contains(strings.ToLower(e.Message+e.Exception), "max number of clients") {
			serverCap = true
		}
	}
	if fullSample != nil {
		v.evidence = append(v.evidence, probeRef(fullSample, fmt.Sprintf("redis: connected_clients %.0f of maxclients %.0f, %.0f connections rejected in the interval", fullSample.Values["connected_clients"], fullSample.Values["maxclients"], fullSample.Values["rejected_connections_delta"])))
	}
	if serverCap {
		v.title = "Redis refused connections at maxclients"
		v.fix = "Share one connection pool per process with max_connections set (BlockingConnectionPool with a timeout), close connections at request teardown, set Redis `timeout 300` to reap leaked clients; raise maxclients with ulimit -n only after that."
		v.next = "Group CLIENT LIST by addr during the load and compare processes × pool size with maxclients; rerun with a bounded pool per process: rejected_connections should stay flat."
	} else {
		v.title = "The app's Redis client pool ran out of connections"
		if conn.n > 0 && rej.max == 0 {
			v.evidence = append(v.evidence, noteRef("disagreement", fmt.Sprintf("Redis itself was healthy (connected_clients peak %.0f of %.0f, no rejections) while the app reported pool exhaustion: the limit is the client pool in the app, not Redis", conn.max, maxc)))
		}
		v.fix = "Raise the app's Redis pool (max_connections) to at least its threads, or find the slow holders (a connection kept across a slow call) and leaks; set socket_timeout so failures are fast."
		v.next = "Rerun with the client pool ×2: if the errors move or vanish while Redis stays healthy, the client pool was the limit."
	}
	return v
}

// redisFull reports whether a Redis probe sample shows the server at its
// client limit: connections rejected in the interval, or connected_clients
// at maxclients.
func redisFull(s *stampede.Sample) bool {
	m := s.Values["maxclients"]
	return s.Values["rejected_connections_delta"] > 0 || (m > 0 && s.Values["connected_clients"] >= m)
}

// refusedNotDown reports whether the Redis probe read the server all
// along, answering PING quickly, and saw it at its client limit (see
// redisFull): Redis was up, refusing connections. As for an outage (see
// ruleRedisUnavailable), one slow or failed reading is a moment, not a
// server down — a busy host delays a PING now and then — and a reading
// taken while the observer itself was starved says nothing of Redis: two
// bad readings in a row, or a refused connection, are needed.
func refusedNotDown(c *ctx) bool {
	starved := c.observerStarved("redis")
	refused, run := false, 0
	for _, s := range c.samples["redis"] {
		if redisFull(s) {
			refused = true
		}
		down := redisDown(s) && (refusal(s.Err) || !starved(s.Time))
		slow := s.Err == "" && s.Values["ping_ms"] >= redisSlowPing && !starved(s.Time)
		switch {
		case down && refusal(s.Err):
			return false
		case down || slow:
			if run++; run >= 2 {
				return false
			}
		default:
			run = 0
		}
	}
	return refused
}

// Known app-server and proxy timeouts: gunicorn's 30 s, nginx's 60 s.
var workerTimeouts = []time.Duration{30 * time.Second, 60 * time.Second}

// ruleWorkers: all app workers busy.
//
// Confirmed by a worker timeout, upstream timeout, listen-queue or
// harakiri line in the failure windows, or by listen-queue overflows on the
// host there. Likely from 502/504 answers or client timeouts clustering at
// a worker or proxy timeout (30 s, 60 s) with no other cause confirmed.
func ruleWorkers(c *ctx) verdict {
	v := verdict{id: IDWorkerSaturation}
	cand := c.failing(serverSide)
	if len(cand) == 0 {
		if es := c.loadSlowEndpoints(); len(es) > 0 {
			q := c.queueBeforeApp(es)
			if q.status != "" {
				return q
			}
			if b := c.blockedWorkers(es); b.status != "" {
				return b
			}
			return q
		}
		return v
	}
	ws := c.windows(cand)
	evs := c.eventsOf(IDWorkerSaturation, ws)
	overflow := func(s *stampede.Sample) bool {
		return s.Values["listen_overflows_delta"] > 0 || s.Values["listen_drops_delta"] > 0
	}
	ov := c.read("host", "listen_overflows_delta", ws, false)
	probe := ov.peak != nil && overflow(ov.peak)
	gateway := c.failing(func(g *group) bool { return g.Status == 502 || g.Status == 504 })
	var clustered []*group
	for _, g := range cand {
		at := g.ep.shape.ClusterAt
		if g.Latency != nil {
			at, _ = g.Latency.Cluster(0.5)
		}
		for _, t := range workerTimeouts {
			if near(at, t) && (g.class == ClassTimeout || g.Status == 502 || g.Status == 504) {
				clustered = append(clustered, g)
				break
			}
		}
	}
	switch {
	case len(evs) > 0 || probe:
		v.status, v.conf = stampede.Confirmed, 0.85
		v.claims = []claim{{groups: cand, ws: windowsWith(ws, evs, c.samples["host"], overflow)}}
	case len(gateway) > 0 || len(clustered) > 0:
		if f := c.found[IDPoolWaitTimeout]; f != nil && f.status == stampede.Confirmed {
			return v // a 504 in front of a pool timeout is the pool's
		}
		v.status, v.conf = stampede.Likely, 0.6
		gs := append(append([]*group{}, gateway...), clustered...)
		v.claims = []claim{{groups: dedupe(gs), all: true}}
	default:
		hostProbed := c.read("host", "cpu_busy_pct", ws, false).n > 0
		if hostProbed && len(c.eventsOf(IDWorkerSaturation, nil)) == 0 {
			v.ruledOut = "no 502/504, no worker or upstream timeout in the logs and no listen-queue overflow on the host during the failure windows"
		}
		return v
	}
	v.title = "All app workers busy: requests queue, time out or are turned away (502/504)"
	v.evidence = append(v.evidence, c.groupRef(cand))
	v.evidence = append(v.evidence, eventRefs(evs, "worker saturation")...)
	if probe {
		v.evidence = append(v.evidence, probeRef(ov.peak, fmt.Sprintf("host: %.0f listen-queue overflows in the interval: connections arrived faster than workers accepted them", ov.max)))
	}
	if x, w := c.throughput(); x > 0 {
		v.evidence = append(v.evidence, noteRef("arithmetic", fmt.Sprintf("peak throughput %.1f req/s at mean latency %s: by Little's law about %.0f requests were inside the server at once; with fewer workers × threads than that, the rest queue", x, secs(w), x*w.Seconds())))
	}
	if lf := c.in.Load; lf.Model == ModelOpen && lf.ArrivalRate > 0 {
		var w time.Duration
		for _, e := range c.eps {
			w = max(w, e.Mean)
		}
		v.evidence = append(v.evidence, noteRef("arithmetic", fmt.Sprintf("open model: %.1f arrivals/s × up to %s mean latency per endpoint ⇒ about %.0f requests in the server at once (Little's law); workers × threads below that means a growing queue", lf.ArrivalRate, secs(w), lf.ArrivalRate*w.Seconds())))
	}
	if cpu := c.read("host", "cpu_busy_pct", ws, false); cpu.n > 0 {
		kind := "workers are blocked on I/O or locks, not short of CPU: more workers (or threads) should help"
		if cpu.max >= 85 {
			kind = "the CPU is saturated too: more workers will not help (see cpu-saturation)"
		}
		v.evidence = append(v.evidence, noteRef("host", fmt.Sprintf("host CPU peaked at %.0f%% in the failure windows: %s", cpu.max, kind)))
	}
	v.fix = workerPoolFix(c.stack())
	v.next = "Rerun with twice the workers: if throughput doubles and the 502/504s drop while CPU stays below 100%, it was too few workers; if throughput stays flat with CPU at 100%, it is CPU."
	return v
}

// queueBeforeApp: no request failed, but requests waited before the app
// saw them (latency-attribution.md §4): the client's time far above the
// server's own (an access log with the request time) or connections
// waiting in the listen queue (the host probe). Both say every worker was
// busy; what kept them busy is the chain's business.
func (c *ctx) queueBeforeApp(es []*endpoint) verdict {
	v := verdict{id: IDWorkerSaturation}
	ws := c.slowWindows(es)
	// Client against server time, second by second.
	client := make([]float64, c.nsec) // latency sum, seconds
	creq := make([]float64, c.nsec)
	for _, e := range c.eps {
		for s, n := range e.reqs {
			if n > 0 && e.lat[s] > 0 {
				client[s] += n * e.lat[s]
				creq[s] += n
			}
		}
	}
	server := make([]float64, c.nsec)
	sreq := make([]float64, c.nsec)
	var timing []*event
	for i := range c.events {
		e := &c.events[i]
		if e.Signature != "access-timing" || e.Time.IsZero() {
			continue
		}
		n, _ := strconv.ParseFloat(e.Fields["count"], 64)
		sum, _ := strconv.ParseFloat(e.Fields["server_ms_sum"], 64)
		if n <= 0 {
			continue
		}
		s := c.sec(e.Time)
		server[s] += sum / 1000
		sreq[s] += n
		timing = append(timing, e)
	}
	gap := make([]float64, c.nsec)
	var cl, sv []time.Duration
	for s := range gap {
		if creq[s] == 0 || sreq[s] == 0 || !inWindows(c.at(s).Add(time.Second/2), ws) {
			continue
		}
		cm, sm := client[s]/creq[s], server[s]/sreq[s]
		cl = append(cl, time.Duration(cm*float64(time.Second)))
		sv = append(sv, time.Duration(sm*float64(time.Second)))
		if cm-sm >= 0.2 && cm-sm >= cm/2 {
			gap[s] = cm - sm
		}
	}
	queued := func(s *stampede.Sample) bool { return s.Values["listen_queue"] > 0 }
	lq := c.read("host", "listen_queue", ws, false)
	// A queue in one sample is a moment; a queue in several is a backlog.
	lqN := 0
	for _, s := range c.samples["host"] {
		if s.Err == "" && inWindows(s.Time, ws) && queued(s) {
			lqN++
		}
	}
	if lqN < 2 {
		lq.peak = nil
	}
	gapSecs := 0
	for _, g := range gap {
		if g > 0 {
			gapSecs++
		}
	}
	// The queue must be the rule, not an accident of a few seconds: most
	// compared seconds show it, and the typical client time is mostly
	// spent before the app.
	cm, sm := medianOf(cl), medianOf(sv)
	gapped := gapSecs >= 2 && float64(gapSecs) >= 0.3*float64(len(cl)) && cm-sm >= cm/2
	if !gapped {
		gapSecs = 0
		for s := range gap {
			gap[s] = 0
		}
	}
	if !gapped && (lq.peak == nil || !queued(lq.peak)) {
		if len(cl) >= 3 {
			v.ruledOut = fmt.Sprintf("the server's own request time (median %s) accounts for the client's (median %s) while requests were slow: they did not queue before the app", secs(medianOf(sv)), secs(medianOf(cl)))
		}
		return v
	}
	v.status, v.conf = stampede.Confirmed, 0.8
	v.active = c.windowsOf(gap)
	if lq.peak != nil && queued(lq.peak) {
		v.active = append(v.active, windowsWith(ws, nil, c.samples["host"], queued)...)
	}
	v.claims = []claim{{eps: es, ws: v.active}}
	v.title = "All app workers busy: requests wait before the app sees them"
	v.evidence = append(v.evidence, c.slowRef(es, v.active))
	if gapped {
		v.evidence = append(v.evidence, noteRef("access-log", fmt.Sprintf("while requests were slow, the client waited a median of %s per request and the server's own request time was %s (%d seconds compared): the difference was spent before the app saw the request — in the listen backlog or a proxy's queue", secs(cm), secs(sm), len(cl))))
		if len(timing) > 0 {
			ref := eventRef(timing[len(timing)/2])
			ref.Text = fmt.Sprintf("access log: %s %s answered by the server in a median of %s ms", timing[len(timing)/2].Fields["method"], timing[len(timing)/2].Fields["path"], timing[len(timing)/2].Fields["server_ms_p50"])
			v.evidence = append(v.evidence, ref)
		}
		var names []string
		for _, e := range es {
			names = append(names, e.Name)
		}
		v.latency = accounted(names, "before the app", cm-sm, cm)
	}
	if lq.peak != nil && queued(lq.peak) {
		v.evidence = append(v.evidence, probeRef(lq.peak, fmt.Sprintf("host: %.0f connections waiting in the listen queue of the target's port (backlog %.0f): accepted by the kernel, not yet by a worker", lq.max, lq.peak.Values["listen_backlog"])))
	}
	if cpu := c.read("host", "cpu_busy_pct", v.active, false); cpu.n > 0 {
		kind := "workers are blocked (on the database, a lock, another service), not short of CPU: more workers or threads help only if what blocks them can take more"
		if cpu.max >= 85 {
			kind = "the CPU is saturated too: more workers will not help (see cpu-saturation)"
		}
		v.evidence = append(v.evidence, noteRef("host", fmt.Sprintf("host CPU peaked at %.0f%% meanwhile: %s", cpu.max, kind)))
	}
	v.fix = "Find what keeps the workers busy (a finding above this one, when it is attached) and fix that first; then run enough workers for the concurrency (gthread or async workers for I/O-bound views) and keep the listen backlog short enough to fail fast."
	v.next = "Rerun with twice the workers or threads: if the queue before the app shrinks and throughput grows, workers were the limit; if not, what blocks them (the database, a lock, the CPU) is."
	return v
}

func dedupe(gs []*group) []*group {
	seen := map[*group]bool{}
	var out []*group
	for _, g := range gs {
		if !seen[g] {
			seen[g] = true
			out = append(out, g)
		}
	}
	return out
}

// throughput returns the peak completions per second over all endpoints and
// the mean latency in that second.
func (c *ctx) throughput() (float64, time.Duration) {
	best, bestLat := 0.0, 0.0
	for s := 0; s < c.nsec; s++ {
		x, lat := 0.0, 0.0
		for _, e := range c.eps {
			x += e.reqs[s]
			lat += e.reqs[s] * e.lat[s]
		}
		if x > best {
			best, bestLat = x, lat/x
		}
	}
	return best, time.Duration(bestLat * float64(time.Second))
}

// ruleCPU: the target host's CPU is the bottleneck for other reasons than
// password hashing.
//
// Confirmed when the target process used ≥ 90% of the cores during the
// failure windows; likely when the host was ≥ 90% busy there. It stands
// aside when password-hash-cpu is found, and notes the generator's share
// when both run on one host.
func ruleCPU(c *ctx) verdict {
	v := verdict{id: IDCPUSaturation}
	cand := c.failing(serverSide)
	hash := c.found[IDPasswordHashCPU]
	hashing := hash != nil && hash.status != stampede.Possible
	// The slow logins are the hash's own when hashing is found; the CPU
	// it saturates slows the other pages.
	slowEps := c.slowEndpoints(func(e *endpoint) bool { return e.slow.loadN > 0 && !(hashing && e.login) })
	if len(cand) == 0 && len(slowEps) == 0 {
		return v
	}
	ws := c.symptomWindows(cand, slowEps)
	cores := c.hostCores()
	busy := c.read("host", "cpu_busy_pct", ws, false)
	proc := c.read("host", "proc_cpu_pct", ws, false)
	procHot := cores > 0 && proc.max >= 90*cores
	hot := func(s *stampede.Sample) bool {
		return s.Values["cpu_busy_pct"] >= 90 || (cores > 0 && appCPU(s) >= 90*cores)
	}
	for _, s := range c.samples["host"] {
		if s.Err == "" && inWindows(s.Time, ws) && cores > 0 && s.Values["cpu_pct:app"] >= 90*cores {
			procHot = true
		}
	}
	switch {
	case procHot:
		v.status, v.conf = stampede.Confirmed, 0.8
	case busy.max >= 90:
		v.status, v.conf = stampede.Likely, 0.55
	default:
		if busy.n > 0 && busy.max < 70 {
			v.ruledOut = fmt.Sprintf("host CPU peaked at %.0f%% during the failure windows", busy.max)
		}
		return v
	}
	v.title = "The target host's CPU is saturated"
	v.active = windowsWith(ws, nil, c.samples["host"], hot)
	// The CPU is a generic cause: it takes what the specific findings
	// (a pool, a lock, a query) did not explain (see generic).
	if len(cand) > 0 {
		v.claims = append(v.claims, claim{groups: cand, ws: v.active})
		v.evidence = append(v.evidence, c.groupRef(cand))
	}
	if n, _ := c.totalSlowIn(slowEps, v.active); n >= 1 {
		v.claims = append(v.claims, claim{eps: slowEps, ws: v.active})
		v.evidence = append(v.evidence, c.slowRef(slowEps, v.active))
	}
	// Who burns it: one consumer holding most of it is the root's
	// business (the query, the hash, the generator); the CPU is a root
	// only when none does.
	sp := c.cpuSplitIn(v.active, hot)
	if sp.n > 0 {
		v.evidence = append(v.evidence, sp.ref("while it was saturated"))
		if dom, ok := sp.dominant(); ok {
			v.consumer = dom
			switch dom {
			case "postgres":
				v.title = "The target host's CPU is saturated by PostgreSQL"
				v.fix = "Find the statements that burn the database's CPU and cut their cost: pg_stat_statements ordered by total_exec_time, the slow-statement log (log_min_duration_statement), EXPLAIN (ANALYZE, BUFFERS) — a missing index turns every request of a page into sequential scans; then give PostgreSQL its own cores, apart from the app and the generator."
				v.next = "Rerun with log_min_duration_statement=250ms and pg_stat_statements (or the PostgreSQL probe, which samples them): the statement holding the CPU will be named; EXPLAIN it, fix its plan, rerun: PostgreSQL's share of the CPU should fall with it."
			case "app":
				v.title = "The target host's CPU is saturated by the app's workers"
				if sp.app != "" {
					v.title += " (" + sp.app + ")"
				}
				v.fix = "Find what the app's workers burn the CPU on and cut it, or give the app more cores: " + c.stack().profileAdvice() + "; CPU-bound work (hashing, rendering, serialising) scales only with cores."
				v.next = "Profile the app under the same load, then rerun with half the load or twice the cores: failure and slowness onset should move with the CPU budget."
			case "stampede":
				v.title = "The host's CPU is saturated by stampede itself"
				v.status, v.conf = stampede.Possible, 0.3
				v.evidence = append(v.evidence, noteRef("disagreement", "most of the busy CPU is the generator's own: the target shares its host with the load, and its latency includes waiting for cores the generator holds (see load-generator-saturation)"))
				v.fix = "Run the generator on another machine than the target, or give it fewer users per core; its figures on a shared, saturated host are the generator's as much as the target's."
				v.next = "Rerun with the generator on its own host: if the target's latency drops, the generator was starving it."
			default:
				v.title = "The target host's CPU is saturated by " + groupNames[dom]
			}
		} else if len(sp.shares) > 1 {
			v.evidence = append(v.evidence, noteRef("host", "no single consumer holds half of the busy CPU: the machine itself is short of cores for what runs on it together"))
		}
	}
	peak := busy.peak
	if procHot && proc.peak != nil {
		peak = proc.peak
	}
	v.evidence = append(v.evidence, probeRef(peak, fmt.Sprintf("host CPU %.0f%% busy (iowait %.0f%%, steal %.0f%%), target process %.0f%% (100 = one core), load1 %.1f on %.0f cores", peak.Values["cpu_busy_pct"], peak.Values["cpu_iowait_pct"], peak.Values["cpu_steal_pct"], peak.Values["proc_cpu_pct"], peak.Values["load1"], cores)))
	out := c.read("host", "cpu_busy_pct", ws, true)
	if out.n > 0 {
		v.evidence = append(v.evidence, noteRef("host", fmt.Sprintf("CPU averaged %.0f%% in the failure windows against %.0f%% outside them", busy.mean, out.mean)))
	}
	if g := c.read("generator", "cpu_pct", ws, false); g.n > 0 && cores > 0 && g.max/cores >= 25 {
		v.evidence = append(v.evidence, noteRef("disagreement", fmt.Sprintf("the generator itself used %.0f%% of a core (%.0f%% of the host): if it runs on the target's host, part of this CPU is the generator's", g.max, g.max/cores)))
	}
	if v.fix == "" {
		v.fix = "Find what burns the CPU (" + c.stack().profileAdvice() + ", perf, or the host probe's per-process CPU with --pid) and cut it, or scale out; keep the generator off the target's host."
		v.next = "Rerun with twice the cores or half the load: failure onset should move with the CPU budget; probe the host (host: true) to see which process holds the CPU."
	}
	return v
}

// outageSpan returns the first and last failure of gs, zero when unknown.
func outageSpan(gs []*group) (from, to time.Time) {
	for _, g := range gs {
		if g.First.IsZero() {
			continue
		}
		if from.IsZero() || g.First.Before(from) {
			from = g.First
		}
		if g.Last.After(to) {
			to = g.Last
		}
	}
	return from, to
}

// workerPoolFix says how to size the app server's pool and align its
// timeouts, in the words of the server seen.
func workerPoolFix(st stackInfo) string {
	switch st.server {
	case "gunicorn":
		return "Run enough gunicorn workers for the concurrency (sync workers ≈ 2–4× cores, or gthread/async workers for I/O-bound views), align timeouts (the app's DB/Redis timeouts < gunicorn's timeout < the proxy's read timeout), raise the backlog with net.core.somaxconn."
	case "uwsgi":
		return "Give uWSGI enough processes and threads for the concurrency (processes, threads, cheaper), set harakiri below the proxy's read timeout and the app's DB/Redis timeouts below harakiri, and size listen (with net.core.somaxconn) so a full pool fails fast."
	case "puma":
		return "Give Puma enough capacity for the concurrency (workers × threads, with the database pool at least the threads per process), time requests out (Rack::Timeout) below the proxy's read timeout, and raise the backlog only with headroom."
	case "php-fpm":
		return "Raise pm.max_children within memory (pm = dynamic/static), set request_terminate_timeout below the proxy's fastcgi_read_timeout, and size listen.backlog so a full pool fails fast."
	case "passenger":
		return "Raise passenger_max_pool_size within memory and passenger_max_request_queue_size with care; keep request timeouts below the proxy's."
	}
	return "Run enough app workers for the concurrency (processes for CPU-bound work, threads or async for I/O-bound work), align timeouts (the app's DB/Redis timeouts < the app server's request timeout < the proxy's read timeout), and raise the listen backlog (net.core.somaxconn) only with headroom."
}
