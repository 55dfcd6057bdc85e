package diagnose

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// A failure's cause comes from the evidence that lines up with it — the
// same endpoint, the same seconds, the same counts — not from the status
// the rule expected: a rate limit answers 200, 429 or 503; a pool timeout
// 500, 502 or 504; a killed worker 502.

// minAligned is the share of a group's failures that must fall in seconds
// with matching events for the group to be theirs.
const minAligned = 0.6

// alignedGroups returns the groups among cand whose failures line up with
// the events evs: on the endpoint the events name (their method and path
// fields, when they have them), in the same seconds (within alignSlack),
// and about as many events as failures (an event per refused request, as
// a throttle's or a pool's log writes one). Groups without timing line up
// through their endpoint's failures per second.
func (c *ctx) alignedGroups(evs []*event, cand []*group) []*group {
	if len(evs) == 0 || len(cand) == 0 {
		return nil
	}
	var out []*group
	for _, g := range cand {
		var mine []*event
		for _, e := range evs {
			if eventOnEndpoint(e, g.ep) {
				mine = append(mine, e)
			}
		}
		if len(mine) == 0 {
			continue
		}
		evSeries := make([]float64, c.nsec)
		untimed := 0
		for _, e := range mine {
			if e.Time.IsZero() {
				untimed++
				continue
			}
			n := 1.0
			if k := e.Fields["count"]; k != "" {
				if f, err := strconv.ParseFloat(k, 64); err == nil && f > 0 {
					n = f
				}
			}
			evSeries[c.sec(e.Time)] += n
		}
		slack := int(math.Ceil(alignSlack.Seconds()))
		matched, total := 0.0, 0.0
		avail := append([]float64(nil), evSeries...)
		for s := 0; s < c.nsec; s++ {
			f := g.series(s)
			if f <= 0 {
				continue
			}
			total += f
			for d := 0; d <= slack && f > 0; d++ {
				for _, x := range []int{s - d, s + d} {
					if x < 0 || x >= c.nsec || avail[x] <= 0 || f <= 0 {
						continue
					}
					take := math.Min(f, avail[x])
					avail[x] -= take
					f -= take
					matched += take
					if d == 0 {
						break
					}
				}
			}
		}
		if total == 0 {
			continue
		}
		if matched/total >= minAligned || (untimed > 0 && float64(untimed) >= minAligned*total) {
			out = append(out, g)
		}
	}
	return out
}

// alignSlack is how far apart in time a failure and its log line may be:
// the clocks of the generator and of the server's log, and a request's
// own time between the server's line and the client's completion.
const alignSlack = 2 * time.Second

// eventOnEndpoint reports whether an event can be about endpoint e: it
// names no request, or its method and path match the endpoint (the path
// in the endpoint's name, or, for the login form, a path that looks like a
// login).
func eventOnEndpoint(e *event, ep *endpoint) bool {
	path := e.Fields["path"]
	if path == "" {
		return true
	}
	if m := e.Fields["method"]; m != "" && ep.Method != "" && !strings.EqualFold(m, ep.Method) {
		return false
	}
	p, _, _ := strings.Cut(path, "?")
	if strings.Contains(ep.Name, p) {
		return true
	}
	return isLoginName(p) && (ep.login || isLoginName(ep.Name))
}
