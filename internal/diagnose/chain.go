package diagnose

import (
	"fmt"
	"time"

	"github.com/stampede-load/stampede"
)

// causes lists, for a finding id, the findings whose mechanism can produce
// its symptoms, the most direct first (latency-attribution.md §7):
//
//   - the session store refusing or down → session reads fail → pages sent
//     back to the login (session lost);
//   - an app restart → in-memory sessions gone → logged-in users bounced;
//   - password hashing → the CPU saturated → every page slow;
//   - a lock held across work → backends and app workers blocked → the
//     pool queue grows, statements wait, requests queue before the app;
//   - a slow query or a pool queue → workers held → requests queue.
var causes = map[string][]string{
	IDSessionLost:      {IDRedisUnavailable, IDRedisConnLimit, IDTargetDown, IDDBUnavailable},
	IDCPUSaturation:    {IDPasswordHashCPU, IDSlowQuery},
	IDPasswordHashCPU:  {IDLockContention},
	IDSlowQuery:        {IDLockContention, IDPasswordHashCPU, IDCPUSaturation},
	IDPoolWaitTimeout:  {IDLockContention, IDSlowQuery, IDRedisUnavailable, IDDBUnavailable},
	IDWorkerSaturation: {IDLockContention, IDPoolWaitTimeout, IDSlowQuery, IDRedisUnavailable, IDRedisConnLimit, IDCPUSaturation, IDPasswordHashCPU},
	IDTargetDown:       {IDWorkerSaturation},
}

// canCause checks what timing alone cannot: that r's mechanism is strong
// enough to produce v. A busy host seen only as a whole (the CPU finding
// likely, not measured on the target's process) may be the generator's or
// another tenant's: it adopts no consequence. A query burns the CPU only if
// its runs take a good part of the cores' time.
func canCause(r, v *verdict) bool {
	switch {
	case r.id == IDPasswordHashCPU && v.id == IDSlowQuery:
		// Hashes hold the cores: every statement timed there waits for
		// one, and its logged runs, wall time, say nothing of what it
		// burns itself. It is a root beside the hashes only on evidence
		// of its own cost: PostgreSQL the CPU's main consumer, or its
		// page slow alone on a CPU that was not saturated. With the host
		// not seen saturated meanwhile, the runs' share of the cores'
		// time is all there is: half or more, the query burns them.
		return v.ownCPU == "" && (v.cpuHeld || v.dominance < 0.5)
	case r.id == IDCPUSaturation && v.id == IDSlowQuery:
		// On a host whose cores are busy with something else, every
		// statement timed there waits for a core too: its slowness is the
		// CPU's, unless the query itself is what burns it.
		return v.dominance < 0.5 && r.status == stampede.Confirmed
	case r.id == IDCPUSaturation:
		return r.status == stampede.Confirmed
	case r.id == IDSlowQuery && v.id == IDCPUSaturation:
		// The query burns the CPU when its runs take most of the cores,
		// or when PostgreSQL is the CPU's main consumer.
		return r.dominance >= 0.5 || v.consumer == "postgres"
	case r.id == IDSlowQuery && v.id == IDWorkerSaturation && v.culprit != "":
		// Workers blocked by a page: the query is the root only when it
		// is most of that page's time, not a step of its own work.
		return r.stmtShare >= 0.5
	case r.id == IDPasswordHashCPU && v.id == IDCPUSaturation:
		// Hashing burns the app's CPU, not the database's.
		return v.consumer == "" || v.consumer == "app"
	case r.id == IDLockContention && v.id == IDPasswordHashCPU:
		// Logins queued on a lock taken around the hash: the lock
		// serialises them, the hash is the slow work it is held across.
		return r.own.slow > 0 || r.own.failures > 0
	}
	return true
}

// chainShare is the share of a consequence's requests that must fall where
// its cause's mechanism was active for the two to be chained.
const chainShare = 0.6

// chain attaches each finding to the finding whose mechanism produced its
// symptoms, when both hold (the cause confirmed or likely) and the timing
// lines up. When a confirmed candidate's timing does not line up, the
// evidence says so: two independent faults can coexist.
func (c *ctx) chain(found []*verdict) {
	byID := map[string]*verdict{}
	for _, v := range found {
		byID[v.id] = v
	}
	for _, v := range found {
		for _, rid := range causes[v.id] {
			r := byID[rid]
			if r == nil || (r.status != stampede.Confirmed && r.status != stampede.Likely) || causedBy(r, v, byID) || !canCause(r, v) {
				continue
			}
			share, n := c.lineUp(v, r)
			if n == 0 {
				continue
			}
			if share >= chainShare {
				v.causedBy = r.id
				v.evidence = append(v.evidence, noteRef("chain", fmt.Sprintf("caused by %s: %.0f%% of these requests fall where its mechanism was active (%s)", r.id, 100*share, r.title)))
				if r.id == IDPasswordHashCPU && v.id == IDSlowQuery && v.cpuHeld && v.dominance >= minDominance {
					v.evidence = append(v.evidence, noteRef("arithmetic", fmt.Sprintf("its logged runs add up to %.0f%% of the cores' time while it ran, but that is wall time on cores the hashes held, waits for a core included: PostgreSQL was not the CPU's main consumer and no page that issues it was read slow on a CPU that was not saturated, so nothing says it burned them itself", 100*v.dominance)))
				}
				consequence(v, r)
				break
			}
			if r.status == stampede.Confirmed {
				v.evidence = append(v.evidence, noteRef("chain", fmt.Sprintf("independent of %s: only %.0f%% of these requests fall where its mechanism was active", r.id, 100*share)))
			}
		}
	}
}

// causedBy reports whether v is (transitively) caused by r.
func causedBy(v, r *verdict, byID map[string]*verdict) bool {
	for x, n := v, 0; x != nil && n < len(byID); n++ {
		if x.causedBy == r.id {
			return true
		}
		x = byID[x.causedBy]
	}
	return false
}

// descendants returns the findings caused, directly or not, by v.
func descendants(v *verdict, found []*verdict) []*verdict {
	var out []*verdict
	seen := map[*verdict]bool{v: true}
	frontier := []*verdict{v}
	for len(frontier) > 0 {
		cur := frontier[0]
		frontier = frontier[1:]
		for _, x := range found {
			if !seen[x] && x.causedBy == cur.id {
				seen[x] = true
				out = append(out, x)
				frontier = append(frontier, x)
			}
		}
	}
	return out
}

// lineUp returns the share of v's claimed requests (failed and slow, by
// second) that fall inside r's active windows, and how many there are.
// A consequence that explains nothing is weighed by its own active
// windows' seconds.
//
// Lost sessions after an outage are the outage's when they start within a
// minute of its end: users come back with cookies the restarted app (or
// the emptied store) no longer knows.
func (c *ctx) lineUp(v, r *verdict) (float64, float64) {
	ws := c.activeWindows(r)
	if v.id == IDSessionLost && (r.id == IDTargetDown || r.id == IDRedisUnavailable || r.id == IDDBUnavailable) {
		var ext []window
		for _, w := range ws {
			ext = append(ext, window{w.from, w.to.Add(time.Minute)})
		}
		ws = ext
	}
	series := c.claimSeries(v.claims)
	in, tot := 0.0, 0.0
	for s, x := range series {
		if x <= 0 {
			continue
		}
		tot += x
		if inWindows(c.at(s).Add(time.Second/2), ws) {
			in += x
		}
	}
	if tot == 0 {
		for _, w := range v.active {
			for t := w.from; !t.After(w.to); t = t.Add(time.Second) {
				tot++
				if inWindows(t, ws) {
					in++
				}
			}
		}
	}
	if tot == 0 {
		return 0, 0
	}
	return in / tot, tot
}

// activeWindows returns r's active windows, or the windows of its claimed
// requests when it has none.
func (c *ctx) activeWindows(r *verdict) []window {
	if len(r.active) > 0 {
		return r.active
	}
	var ws []window
	for _, b := range c.bursts(c.claimSeries(r.claims)) {
		ws = append(ws, window{b.Start.Add(-c.pad), b.End.Add(c.pad)})
	}
	return ws
}

// claimSeries returns the requests the claims cover per second (failed
// ones by completion, slow ones by completion), counting each once.
func (c *ctx) claimSeries(cls []claim) []float64 {
	series := make([]float64, c.nsec)
	sel := newSelection()
	for _, cl := range cls {
		c.add(sel, cl)
	}
	for g, secs := range sel.g {
		for s, on := range secs {
			if on {
				series[s] += float64(g.PerSecond[s])
			}
		}
	}
	for g, n := range sel.gn {
		// An untimed group: spread over its endpoint's failures.
		if g.ep.Failures == 0 || n == 0 {
			continue
		}
		for s := 0; s < c.nsec; s++ {
			series[s] += g.series(s) * float64(n) / float64(g.Count)
		}
	}
	for e, secs := range sel.e {
		for s, on := range secs {
			if on {
				series[s] += e.slow.series[s]
			}
		}
	}
	return series
}

// consequence rewrites the fix and next experiment of v, caused by r: the
// root carries the fix.
func consequence(v, r *verdict) {
	switch v.id {
	case IDSessionLost:
		v.title = fmt.Sprintf("Sessions lost after login because of %s: pages went back to the login page", r.id)
		v.fix = fmt.Sprintf("Fix %s first: the sessions were lost because the app could not read them (%s). Then keep sessions where an outage of the cache or a restart does not log every user out (the database, cached_db).", r.id, r.title)
	default:
		v.fix = fmt.Sprintf("Follows from %s (%s): fix that first. %s", r.id, r.title, v.fix)
	}
	v.next = fmt.Sprintf("Rerun after fixing %s: these requests should recover with it; if they do not, this is a cause of its own.", r.id)
}
