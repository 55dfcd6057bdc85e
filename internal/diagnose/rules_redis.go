package diagnose

import (
	"fmt"
	"strings"
	"time"

	"github.com/stampede-load/stampede"
)

// redisDown reports whether a Redis probe sample says the server was not
// answering: refused, reset or timed out (a refusal at maxclients is the
// connection limit's, not an outage).
func redisDown(s *stampede.Sample) bool {
	if s.Err == "" {
		return false
	}
	e := strings.ToLower(s.Err)
	return !strings.Contains(e, "max number of clients")
}

// redisSlowPing is the PING round trip above which Redis counts as not
// answering in time: app clients commonly time out at a fraction of a
// second to a few seconds.
const redisSlowPing = 250.0 // ms

// outages groups the samples of a source for which bad holds into
// stretches: from the first bad sample to the first good one after it.
func (c *ctx) outages(source string, bad func(*stampede.Sample) bool) []window {
	var out []window
	var cur *window
	for _, s := range c.samples[source] {
		if bad(s) {
			if cur == nil {
				cur = &window{s.Time, s.Time}
			} else {
				cur.to = s.Time
			}
			continue
		}
		if cur != nil {
			cur.to = s.Time
			out = append(out, *cur)
			cur = nil
		}
	}
	if cur != nil {
		out = append(out, *cur)
	}
	return out
}

// ruleRedisUnavailable: Redis down, restarting, paused or timing out (not a
// client limit).
//
// Confirmed by the Redis probe failing to read the server (refused, reset,
// timed out) or answering PING slowly while requests failed or were slow,
// or by the app's own Redis connection errors and timeouts in the logs
// there. It claims the server errors and the slow requests inside the
// outage; the sessions it made the app lose are attached by the chain.
func ruleRedisUnavailable(c *ctx) verdict {
	v := verdict{id: IDRedisUnavailable}
	cand := c.failing(serverSide)
	lost := c.failing(lostSession)
	slowEps := c.loadSlowEndpoints()
	if len(cand) == 0 && len(lost) == 0 && len(slowEps) == 0 {
		return v
	}
	if refusedNotDown(c) {
		// Up and refusing at maxclients: the connection limit's finding,
		// which takes the app's errors of these windows too.
		return v
	}
	ws := append(c.symptomWindows(cand, slowEps), c.windows(lost)...)
	// A refusal is Redis's own answer. A timeout or a slow PING is only
	// Redis's fault when the observer was not starved meanwhile: a
	// generator whose timers lag, or whose other probes could not read
	// either, waited for the CPU itself.
	starved := c.observerStarved("redis")
	isDown := func(s *stampede.Sample) bool {
		return redisDown(s) && (refusal(s.Err) || !starved(s.Time))
	}
	isSlow := func(s *stampede.Sample) bool {
		return s.Err == "" && s.Values["ping_ms"] >= redisSlowPing && !starved(s.Time)
	}
	down := c.outages("redis", isDown)
	slow := c.outages("redis", isSlow)
	bad := func(s *stampede.Sample) bool { return isDown(s) || isSlow(s) }
	evs := c.eventsOf(IDRedisUnavailable, ws)
	var hit []window
	for _, w := range append(append([]window{}, down...), slow...) {
		// One bad reading is a moment, unless the app's own errors say
		// Redis failed it then; two in a row are an outage.
		if overlaps(w, ws) && (c.samplesIn("redis", w, bad) >= 2 || len(c.eventsOf(IDRedisUnavailable, []window{{w.from.Add(-c.pad), w.to.Add(c.pad)}})) > 0) {
			hit = append(hit, w)
		}
	}
	if len(hit) == 0 && len(evs) == 0 {
		if n := len(c.samples["redis"]); n > 0 && len(down)+len(slow) == 0 && len(c.eventsOf(IDRedisUnavailable, nil)) == 0 {
			v.ruledOut = fmt.Sprintf("Redis answered all %d probe samples and no log line reports a Redis connection error or timeout", n)
		}
		return v
	}
	v.status, v.conf = stampede.Confirmed, 0.9
	v.active = c.outageWindows(hit, evs, ws)
	if len(cand) > 0 {
		v.claims = append(v.claims, claim{groups: cand, ws: v.active})
		v.evidence = append(v.evidence, c.groupRef(cand))
	}
	if len(slowEps) > 0 {
		v.claims = append(v.claims, claim{eps: slowEps, ws: v.active})
		if n, _ := c.totalSlowIn(slowEps, v.active); n >= 1 {
			v.evidence = append(v.evidence, c.slowRef(slowEps, v.active))
		}
	}
	from, to := spanOf(hit, nil)
	kind := "not answering"
	if len(down) > 0 {
		kind = "down or not answering"
	}
	if !from.IsZero() {
		v.title = fmt.Sprintf("Redis was %s from %s to %s", kind, from.Format(clock), to.Format(clock))
	} else {
		v.title = "Redis connections failed or timed out (the app's logs)"
	}
	for _, w := range down {
		if !overlaps(w, ws) {
			continue
		}
		for _, s := range c.samples["redis"] {
			if s.Time.Equal(w.from) {
				v.evidence = append(v.evidence, probeRef(s, fmt.Sprintf("redis probe: %s (outage %s–%s, %s)", firstLine(s.Err), w.from.Format(clock), w.to.Format(clock), secs(w.to.Sub(w.from)))))
			}
		}
	}
	for _, w := range slow {
		if p := c.read("redis", "ping_ms", []window{w}, false); p.peak != nil && overlaps(w, ws) {
			v.evidence = append(v.evidence, probeRef(p.peak, fmt.Sprintf("redis probe: PING took %.0f ms (%s–%s)", p.max, w.from.Format(clock), w.to.Format(clock))))
		}
	}
	v.evidence = append(v.evidence, eventRefs(evs, "Redis connection errors or timeouts")...)
	if len(lost) > 0 {
		v.evidence = append(v.evidence, noteRef("requests", fmt.Sprintf("%d pages were sent back to the login page: sessions kept in Redis could not be read", countOf(lost))))
	}
	v.fix = "Keep Redis up and answering during the load: find why it stopped (its log: a restart, a persistence fork, a blocking command such as KEYS, CLIENT PAUSE, memory); give the app's Redis client short socket timeouts and retries, and keep sessions where a Redis outage does not log every user out (cached_db)."
	v.next = "Watch redis-cli --latency and INFO persistence during the rerun, and read the Redis log at the outage's start: the cause is logged there; rerun without it: the errors and slow requests should vanish."
	return v
}

// overlaps reports whether w overlaps any of ws.
func overlaps(w window, ws []window) bool {
	for _, x := range ws {
		if !w.to.Before(x.from) && !x.to.Before(w.from) {
			return true
		}
	}
	return false
}

// totalSlowIn returns the slow requests of es completed inside ws.
func (c *ctx) totalSlowIn(es []*endpoint, ws []window) (float64, float64) {
	n, sum := 0.0, 0.0
	for _, e := range es {
		a, b := c.slowIn(e, ws)
		n, sum = n+a, sum+b
	}
	return n, sum
}

// refusal reports whether a probe error is a refusal or a reset (the
// server answered, or is gone), not a wait.
func refusal(err string) bool {
	return containsAny(strings.ToLower(err), []string{"connection refused", "connection reset", "eof", "broken pipe", "no such host"})
}

// observerStarved returns a test of whether stampede itself could not run
// on time at a moment: its timers lagged (the generator's lag_ms over
// 250 ms), or every other probe failed to read as well. A probe's timeout
// then says nothing about the server it reads.
func (c *ctx) observerStarved(source string) func(time.Time) bool {
	var bad []window
	for _, s := range c.samples["generator"] {
		if s.Err == "" && s.Values["lag_ms"] >= 250 {
			bad = append(bad, window{s.Time.Add(-2 * time.Second), s.Time.Add(time.Second)})
		}
	}
	return func(t time.Time) bool {
		if inWindows(t, bad) {
			return true
		}
		others, failed := 0, 0
		for src, ss := range c.samples {
			if src == source || src == "generator" {
				continue
			}
			for _, s := range ss {
				if d := s.Time.Sub(t); d > -2*time.Second && d < 2*time.Second {
					others++
					if s.Err != "" {
						failed++
					}
				}
			}
		}
		return others > 0 && failed == others
	}
}

// samplesIn counts the samples of source inside w, ends included, for
// which keep is true.
func (c *ctx) samplesIn(source string, w window, keep func(*stampede.Sample) bool) int {
	n := 0
	for _, s := range c.samples[source] {
		if !s.Time.Before(w.from) && !s.Time.After(w.to) && keep(s) {
			n++
		}
	}
	return n
}

// outageWindows returns where an outage's mechanism was active: its
// windows and the times of its log events, padded; ws when it has neither.
func (c *ctx) outageWindows(down []window, evs []*event, ws []window) []window {
	var out []window
	for _, w := range down {
		out = append(out, window{w.from.Add(-c.pad), w.to.Add(c.pad)})
	}
	for _, e := range evs {
		if !e.Time.IsZero() {
			out = append(out, window{e.Time.Add(-c.pad), e.Time.Add(c.pad)})
		}
	}
	if len(out) == 0 {
		return ws
	}
	return out
}

// spanOf returns the first and last instant of the windows and events.
func spanOf(ws []window, evs []*event) (from, to time.Time) {
	see := func(a, b time.Time) {
		if from.IsZero() || a.Before(from) {
			from = a
		}
		if b.After(to) {
			to = b
		}
	}
	for _, w := range ws {
		see(w.from, w.to)
	}
	for _, e := range evs {
		if !e.Time.IsZero() {
			see(e.Time, e.Time)
		}
	}
	return from, to
}
