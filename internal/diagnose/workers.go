package diagnose

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/stampede-load/stampede"
)

// Blocked workers. An event loop busy with synchronous CPU work, a Ruby
// process whose interpreter lock one request holds, a pre-fork pool whose
// every process is stuck in a long request: every endpoint served by those
// workers slows together — a page that does no work as much as the heavy
// one — while the database, the pool and the host's other cores have
// capacity to spare. No statement, lock or pool explains it; the worker
// does. The endpoint that holds the worker longest is the one whose
// requests in flight move with the others' latency.

// lightFloor is the floor below which a page does little work: waiting
// for a worker, it shows the workers blocked, not its own cost.
const lightFloor = 100 * time.Millisecond

// togetherShare is the share of the seconds with slow requests in which
// most endpoints with requests were slow at once, for the slowness to be
// shared rather than one page's.
const togetherShare = 0.6

// blockedWorkers: requests slowed together on every endpoint while the
// database idled. Confirmed when a probe shows the worker's mechanism (an
// app process pinned at a full core while the host has cores to spare, or
// a worker, listen-queue or harakiri line in the slow windows); likely from
// the pattern with the database seen idle; possible with no database
// reading at all.
func (c *ctx) blockedWorkers(es []*endpoint) verdict {
	v := verdict{id: IDWorkerSaturation}
	var live []*endpoint // endpoints with requests
	for _, e := range c.eps {
		if e.Requests > 0 && e.slow.floor > 0 {
			live = append(live, e)
		}
	}
	if len(es) < 2 || len(live) < 2 {
		return v
	}
	ws := c.slowWindows(es)
	// Together: in the seconds with slow requests, most endpoints that
	// had requests were slow.
	slowSecs, together := 0, 0
	for s := 0; s < c.nsec; s++ {
		if !inWindows(c.at(s).Add(time.Second/2), ws) {
			continue
		}
		with, slow := 0, 0
		for _, e := range live {
			if e.reqs[s] <= 0 || e.lat[s] <= 0 {
				continue
			}
			with++
			if e.slow.loadSeries[s] > 0 || time.Duration(e.lat[s]*float64(time.Second)) > e.slow.loadBar {
				slow++
			}
		}
		if slow == 0 {
			continue
		}
		slowSecs++
		if with >= 2 && float64(slow) >= 0.6*float64(with) {
			together++
		}
	}
	// Or the other pages' latency moves with one heavy page's requests in
	// flight: the page that holds the workers (what an import's rolling
	// percentiles show better than second-by-second slowness).
	culprit, r := c.culprit(es)
	if slowSecs < 3 || (float64(together) < togetherShare*float64(slowSecs) && culprit == nil) {
		return v
	}
	// A page that does little work slowed too: the lightest slow
	// endpoint answers in tens of milliseconds alone (lightFloor), or is
	// the lightest endpoint of all.
	fastest, lightest := es[0], live[0]
	for _, e := range es {
		if e.slow.floor < fastest.slow.floor {
			fastest = e
		}
	}
	for _, e := range live {
		if e.slow.floor < lightest.slow.floor {
			lightest = e
		}
	}
	if fastest != lightest && fastest.slow.floor > lightFloor {
		return v
	}
	// The database had capacity: no lock waits, few active sessions, no
	// pool queue.
	cores := max(c.hostCores(), 1)
	lock := c.read("postgres", "wait:Lock", ws, false)
	active := c.read("postgres", "state:active", ws, false)
	queue := c.read("pgbouncer", "cl_waiting", ws, false)
	dbProbed := lock.n > 0 || queue.n > 0
	dbBusy := (lock.n > 0 && (lock.max >= 1 || active.mean > 2*cores)) || (queue.n > 0 && queue.max > 0)
	if dbBusy {
		return v
	}
	dbEvents := len(c.slowStatements()) > 0 || len(c.lockWaits()) > 0
	if !dbProbed && dbEvents {
		return v // the database's own log says it was busy
	}
	// The host had cores to spare (else the CPU is the bottleneck, not a
	// worker): and is one app process pinned at a full core?
	busy := c.read("host", "cpu_busy_pct", ws, false)
	if busy.n > 0 && busy.mean >= 85 {
		return v
	}
	pinned, pinnedText := c.pinnedWorker(ws)
	evs := c.eventsOf(IDWorkerSaturation, ws)
	switch {
	case dbProbed && (pinned != nil || len(evs) > 0):
		v.status, v.conf = stampede.Confirmed, 0.8
	case dbProbed || culprit != nil:
		// The database seen idle, or, without a probe of it, the other
		// pages' latency moving with the heavy page's requests in flight
		// while no log says the database was busy.
		v.status, v.conf = stampede.Likely, 0.6
	default:
		v.status, v.conf = stampede.Possible, 0.35
	}
	v.active = ws
	v.claims = []claim{{eps: es, ws: ws}}
	v.title = "App workers blocked: every page slows together while the database idles"
	if culprit != nil {
		v.culprit = culprit.Name
		if culprit.slow.n > 0 && !containsEp(es, culprit) {
			// Its own slow requests are the synchronous work itself.
			v.claims = append(v.claims, claim{eps: []*endpoint{culprit}, all: true})
		}
		v.title = fmt.Sprintf("App workers blocked by %s: every page slows together while the database idles", culprit.Name)
	}
	v.evidence = append(v.evidence, c.slowRef(es, ws))
	v.evidence = append(v.evidence, noteRef("requests", fmt.Sprintf("slow together: in %d of %d seconds with slow requests most endpoints were slow at once, %s (floor %s) among the slow ones — a page that does little work waits for a worker like the heavy ones", together, slowSecs, fastest.Name, secs(fastest.slow.floor))))
	if culprit != nil {
		v.evidence = append(v.evidence, noteRef("join", fmt.Sprintf("requests in flight on %s move with the other pages' latency (r=%.2f); it takes %s even with little else in flight: it holds the workers longest", culprit.Name, r, secs(culprit.slow.floor))))
	}
	switch {
	case lock.n > 0:
		v.evidence = append(v.evidence, probeRef(lock.peak, fmt.Sprintf("postgres: no session waited on a lock and %.1f were active on average (%d samples) while pages were slow: the database had capacity to spare", active.mean, lock.n)))
	case queue.n > 0:
		v.evidence = append(v.evidence, probeRef(queue.peak, fmt.Sprintf("pgbouncer: no client waited for a connection (%d samples) while pages were slow", queue.n)))
	default:
		v.evidence = append(v.evidence, noteRef("disagreement", "neither PostgreSQL nor PgBouncer was probed: that the database had capacity is assumed from the absence of slow statements and lock waits in the logs, not measured"))
	}
	if busy.n > 0 {
		v.evidence = append(v.evidence, noteRef("host", fmt.Sprintf("host CPU averaged %.0f%% (peak %.0f%%) of %.0f cores: cores to spare, so the wait is for a worker, not for the CPU", busy.mean, busy.max, cores)))
	}
	if pinned != nil {
		v.evidence = append(v.evidence, probeRef(pinned, pinnedText))
	}
	if ref, ok := c.lightServerTime(fastest, ws); ok {
		v.evidence = append(v.evidence, ref)
	} else if culprit != nil {
		if ref, ok := c.serverTimeOf(culprit); ok {
			v.evidence = append(v.evidence, ref)
		}
	}
	v.evidence = append(v.evidence, eventRefs(evs, "worker saturation")...)
	v.fix, v.next = workerAdvice(c.stack(), culprit, pinned != nil)
	return v
}

// pinnedWorker returns a host sample in ws in which one app process used a
// full core (90% or more) while the host as a whole had a core to spare,
// and says so: a worker busy on the CPU (an event loop, an interpreter
// lock) rather than waiting.
func (c *ctx) pinnedWorker(ws []window) (*stampede.Sample, string) {
	var best *stampede.Sample
	bestPct := 0.0
	bestLine := ""
	for _, s := range c.samples["host"] {
		if s.Err != "" || !inWindows(s.Time, ws) || s.Values["cpu_busy_pct"] >= 85 {
			continue
		}
		for _, l := range strings.Split(s.Info["cpu_top"], "\n") {
			f := strings.Split(l, "\t")
			if len(f) < 4 || f[2] != "app" {
				continue
			}
			p, err := strconv.ParseFloat(f[3], 64)
			if err == nil && p >= 90 && p > bestPct {
				best, bestPct, bestLine = s, p, fmt.Sprintf("%s (pid %s)", f[1], f[0])
			}
		}
	}
	if best == nil {
		return nil, ""
	}
	return best, fmt.Sprintf("host: app process %s at %.0f%% of one core while the host was %.0f%% busy: one worker busy on the CPU, holding what the others wait for (an event loop, an interpreter lock, a single worker)", bestLine, bestPct, best.Values["cpu_busy_pct"])
}

// culprit returns the endpoint whose requests in flight move with the
// latency of the other endpoints, and that is heavy by itself (its floor
// at least three times the others' median floor): the one that holds the
// workers.
func (c *ctx) culprit(es []*endpoint) (*endpoint, float64) {
	var best *endpoint
	bestR := 0.0
	inflight, byStart := c.startSeries()
	for _, cand := range c.eps {
		if cand.Requests == 0 {
			continue
		}
		var floors []time.Duration
		others := make([]float64, c.nsec)
		n := make([]float64, c.nsec)
		for _, e := range c.eps {
			if e == cand || e.Requests == 0 {
				continue
			}
			floors = append(floors, e.slow.floor)
			for s := range others {
				if e.reqs[s] > 0 && e.lat[s] > 0 {
					others[s] += e.lat[s] * e.reqs[s]
					n[s] += e.reqs[s]
				}
			}
		}
		if len(floors) == 0 || cand.slow.floor < 3*medianOf(floors) {
			continue
		}
		var x, y []float64
		if inflight != nil {
			// From the records: the candidate's requests in flight at
			// the middle of each second, against the latency of the
			// other requests started in it.
			lat, cnt := make([]float64, c.nsec), make([]float64, c.nsec)
			for e, st := range byStart {
				if e == cand {
					continue
				}
				for s := range st.sum {
					lat[s] += st.sum[s]
					cnt[s] += st.n[s]
				}
			}
			for s := range lat {
				if cnt[s] > 0 {
					x = append(x, float64(inflight[cand][s]))
					y = append(y, lat[s]/cnt[s])
				}
			}
		} else {
			for s := range others {
				if n[s] > 0 {
					x = append(x, cand.active[s])
					y = append(y, others[s]/n[s])
				}
			}
		}
		if r := pearson(x, y); r >= minIssuerR && r > bestR {
			best, bestR = cand, r
		}
	}
	if best == nil || math.IsNaN(bestR) {
		return nil, 0
	}
	return best, bestR
}

// workerAdvice is the fix and the next experiment for blocked workers, in
// the words of the app server seen.
func workerAdvice(st stackInfo, culprit *endpoint, pinned bool) (fix, next string) {
	page := "the heavy page"
	if culprit != nil {
		page = culprit.Name
	}
	switch {
	case st.framework == "express" || st.server == "node":
		fix = fmt.Sprintf("Keep synchronous work off the event loop: move what %s computes to worker_threads or a job queue, stream or paginate it, and run a process per core (cluster, PM2) so one busy loop does not hold every request.", page)
	case st.server == "puma" || st.framework == "rails":
		fix = fmt.Sprintf("One request holding Ruby's interpreter lock stalls every thread of its Puma process: run more processes (Puma workers) than threads for CPU-bound pages, move what %s computes to a background job (Active Job), and set a request timeout (Rack::Timeout) so a stuck request frees its thread.", page)
	case st.server == "uwsgi":
		fix = fmt.Sprintf("Every uWSGI process was busy: give the pool enough processes for the slow requests (processes, cheaper), move what %s does to a background task, set harakiri below the proxy's timeout, and keep the listen queue short enough to fail fast (listen).", page)
	case st.server == "gunicorn":
		fix = fmt.Sprintf("Every gunicorn worker was busy: move what %s does out of the request (a task queue), run gthread/async workers for I/O-bound views and enough processes for CPU-bound ones, and keep timeout below the proxy's.", page)
	case st.server == "php-fpm":
		fix = fmt.Sprintf("Every PHP-FPM child was busy: raise pm.max_children within memory, move what %s does to a queue, and set request_terminate_timeout below the proxy's timeout.", page)
	default:
		fix = fmt.Sprintf("Keep long synchronous work out of the request path: move what %s does to a background job or another service, run enough workers (processes for CPU-bound work, threads or async for I/O-bound work) that one slow page cannot hold them all, and time requests out before the proxy does.", page)
	}
	if pinned {
		next = fmt.Sprintf("Rerun without %s in the scenario (or with its work moved out): the other pages should return to their floor while the database stays as idle; then rerun with twice the worker processes: if the pages recover with it, the workers were the limit.", page)
	} else {
		next = fmt.Sprintf("Rerun without %s in the scenario: the other pages should return to their floor; a worker busy but not on the CPU waits on something (a sleep, a call to another service, a lock in the app): profile a worker during the load to see on what.", page)
	}
	return fix, next
}

// startStats is an endpoint's requests by the second they started in:
// their count and summed latency (seconds).
type startStats struct{ n, sum []float64 }

// startSeries returns, from the per-request records, each endpoint's
// requests in flight at the middle of each second and its requests by
// start second; nil for an import.
func (c *ctx) startSeries() (map[*endpoint][]int32, map[*endpoint]*startStats) {
	if len(c.in.Results) == 0 {
		return nil, nil
	}
	byKey := map[epKey]*endpoint{}
	for _, e := range c.eps {
		byKey[epKey{e.Method, e.Name}] = e
	}
	diff := map[*endpoint][]int32{}
	starts := map[*endpoint]*startStats{}
	for i := range c.in.Results {
		r := &c.in.Results[i]
		e := byKey[epKey{r.Method, r.Name}]
		if e == nil {
			continue
		}
		d := diff[e]
		if d == nil {
			d = make([]int32, c.nsec+1)
			diff[e] = d
			starts[e] = &startStats{n: make([]float64, c.nsec), sum: make([]float64, c.nsec)}
		}
		if a, b := c.secCeilMid(r.Start), c.secCeilMid(r.End()); b > a {
			d[a]++
			d[b]--
		}
		s := c.sec(r.Start)
		starts[e].n[s]++
		starts[e].sum[s] += r.Latency.Seconds()
	}
	out := map[*endpoint][]int32{}
	for e, d := range diff {
		run := int32(0)
		a := make([]int32, c.nsec)
		for s := 0; s < c.nsec; s++ {
			run += d[s]
			a[s] = run
		}
		out[e] = a
	}
	return out, starts
}

// lightServerTime quotes the app's own request time (an access log's) for
// a light page inside the slow windows against outside them: a page that
// does little work taking far longer by the server's own clock stalled in
// the app (an event loop or a worker held by another request), since the
// database had nothing to do with it.
func (c *ctx) lightServerTime(e *endpoint, ws []window) (stampede.EvidenceRef, bool) {
	var in, out []time.Duration
	var at *event
	for i := range c.events {
		ev := &c.events[i]
		if ev.Signature != "access-timing" || ev.Time.IsZero() || !eventOnEndpoint(ev, e) {
			continue
		}
		p50, err := strconv.ParseFloat(ev.Fields["server_ms_p50"], 64)
		if err != nil {
			continue
		}
		d := time.Duration(p50 * float64(time.Millisecond))
		if inWindows(ev.Time, ws) {
			in = append(in, d)
			if at == nil || d > medianOf(append([]time.Duration(nil), in...)) {
				at = ev
			}
		} else {
			out = append(out, d)
		}
	}
	if len(in) < 2 || len(out) < 2 || at == nil {
		return stampede.EvidenceRef{}, false
	}
	mi, mo := medianOf(in), medianOf(out)
	if mi < 3*mo {
		return stampede.EvidenceRef{}, false
	}
	text := fmt.Sprintf("access log: the server's own time for %s %s was a median of %s while pages were slow, %s otherwise: a page that does little work stalled inside the app", at.Fields["method"], at.Fields["path"], secs(mi), secs(mo))
	ref := eventRef(at)
	ref.Text = text
	return ref, true
}

// serverTimeOf quotes the app's own request time (an access log's) for an
// endpoint: for the page that holds the workers, its time is its own work
// in the app.
func (c *ctx) serverTimeOf(e *endpoint) (stampede.EvidenceRef, bool) {
	var ds []time.Duration
	var at *event
	for i := range c.events {
		ev := &c.events[i]
		if ev.Signature != "access-timing" || !eventOnEndpoint(ev, e) {
			continue
		}
		p50, err := strconv.ParseFloat(ev.Fields["server_ms_p50"], 64)
		if err != nil {
			continue
		}
		ds = append(ds, time.Duration(p50*float64(time.Millisecond)))
		if at == nil {
			at = ev
		}
	}
	if at == nil {
		return stampede.EvidenceRef{}, false
	}
	ref := eventRef(at)
	ref.Text = fmt.Sprintf("access log: the app itself spent a median of %s on %s %s (its own request time): the page's work is done in the worker, holding it", secs(medianOf(ds)), at.Fields["method"], at.Fields["path"])
	return ref, true
}
