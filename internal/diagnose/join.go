package diagnose

import (
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Joining server-side time to endpoints (latency-attribution.md §3, §5):
// a per-second series of what the database was doing (sessions waiting on
// a lock, statements running long) is set against each endpoint's
// requests in flight in the same seconds. The endpoint whose concurrency
// moves with the series issues the statements: it is the one whose
// requests contain the waits.

// sampleSeries returns a probe metric per second: each readable sample's
// value holds from its time until the next sample, at most twice the
// sampling interval.
func (c *ctx) sampleSeries(source, key string) []float64 {
	out := make([]float64, c.nsec)
	ss := c.samples[source]
	hold := c.pad
	if len(ss) >= 2 {
		if iv := ss[len(ss)-1].Time.Sub(ss[0].Time) / time.Duration(len(ss)-1); iv > 0 {
			hold = min(hold, 2*iv)
		}
	}
	for i, s := range ss {
		if s.Err != "" {
			continue
		}
		v := s.Values[key]
		if v == 0 {
			continue
		}
		from := s.Time
		to := from.Add(hold)
		if i+1 < len(ss) && ss[i+1].Time.Before(to) {
			to = ss[i+1].Time
		}
		for t := from; t.Before(to); t = t.Add(time.Second) {
			if t.Before(c.start) || !t.Before(c.at(c.nsec)) {
				continue
			}
			out[c.sec(t)] = math.Max(out[c.sec(t)], v)
		}
	}
	return out
}

// interval is a span during which something ran on the server: a
// statement, a lock wait.
type interval struct {
	from, to time.Time
	ms       float64
	ev       *event
}

// intervalSeries counts the intervals covering the middle of each second.
func (c *ctx) intervalSeries(ivs []interval) []float64 {
	out := make([]float64, c.nsec)
	for _, iv := range ivs {
		a, b := c.secCeilMid(iv.from), c.secCeilMid(iv.to)
		for s := a; s < b && s < c.nsec; s++ {
			out[s]++
		}
		if b <= a && a < c.nsec { // shorter than a second: its second
			out[c.sec(iv.to)] += iv.to.Sub(iv.from).Seconds()
		}
	}
	return out
}

// issuer is an endpoint with the correlation of its requests in flight to
// a server-side series.
type issuer struct {
	e *endpoint
	r float64
}

// minIssuerR is the correlation above which an endpoint is taken to issue
// what the series counts.
const minIssuerR = 0.5

// issuers returns the endpoints whose requests in flight correlate with x
// (Pearson's r over the seconds from the first to the last request), best
// first, keeping those at minIssuerR or more.
func (c *ctx) issuers(x []float64) []issuer {
	lo, hi := -1, -1
	for _, e := range c.eps {
		for s, v := range e.reqs {
			if v > 0 {
				if lo < 0 || s < lo {
					lo = s
				}
				hi = max(hi, s)
			}
		}
	}
	if lo < 0 || hi-lo < 4 {
		return nil
	}
	var out []issuer
	for _, e := range c.eps {
		if r := pearson(x[lo:hi+1], e.active[lo:hi+1]); r >= minIssuerR {
			out = append(out, issuer{e, r})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].r > out[j].r })
	return out
}

func pearson(x, y []float64) float64 {
	n := float64(min(len(x), len(y)))
	if n < 3 {
		return 0
	}
	var sx, sy, sxx, syy, sxy float64
	for i := 0; i < int(n); i++ {
		sx += x[i]
		sy += y[i]
		sxx += x[i] * x[i]
		syy += y[i] * y[i]
		sxy += x[i] * y[i]
	}
	vx := sxx - sx*sx/n
	vy := syy - sy*sy/n
	if vx <= 0 || vy <= 0 {
		return 0
	}
	return (sxy - sx*sy/n) / math.Sqrt(vx*vy)
}

// fieldMs reads a duration in milliseconds from an event: the named field
// when the parser set it, else the number after marker in the message
// ("after 1000.052 ms", "duration: 1234.5 ms").
func fieldMs(e *event, field, marker string) float64 {
	if v, ok := e.Fields[field]; ok {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f
		}
	}
	m := e.Message
	i := strings.Index(m, marker)
	if i < 0 {
		return 0
	}
	rest := m[i+len(marker):]
	j := 0
	for j < len(rest) && (rest[j] >= '0' && rest[j] <= '9' || rest[j] == '.') {
		j++
	}
	if !strings.HasPrefix(strings.TrimSpace(rest[j:]), "ms") {
		return 0
	}
	f, err := strconv.ParseFloat(rest[:j], 64)
	if err != nil {
		return 0
	}
	return f
}

// statementOf returns the SQL an event names: the parser's statement
// field, else the text after "statement: " or "execute …: " in its
// message.
func statementOf(e *event) string {
	if s := e.Fields["statement"]; s != "" {
		return s
	}
	m := e.Message
	for _, mk := range []string{"statement: ", "execute "} {
		if i := strings.Index(m, mk); i >= 0 {
			s := m[i+len(mk):]
			if mk == "execute " {
				if j := strings.Index(s, ": "); j >= 0 {
					s = s[j+2:]
				}
			}
			return strings.Join(strings.Fields(s), " ")
		}
	}
	return ""
}

// lockWaits returns the lock waits the PostgreSQL log reports
// (log_lock_waits): "acquired … after N ms" gives a wait that ended, and
// "still waiting for … after N ms" one that had lasted N ms when logged
// (kept only when no acquired line of the same process follows). Each is
// the interval it spanned.
func (c *ctx) lockWaits() []interval {
	var out []interval
	acquired := map[string]time.Time{}
	for i := range c.events {
		e := &c.events[i]
		if e.id != IDLockContention || e.Time.IsZero() {
			continue
		}
		m := strings.ToLower(e.Message)
		if strings.Contains(m, " acquired ") || e.Fields["acquired"] == "true" {
			acquired[pidOf(e)] = e.Time
		}
	}
	for i := range c.events {
		e := &c.events[i]
		if e.id != IDLockContention || e.Time.IsZero() {
			continue
		}
		m := strings.ToLower(e.Message)
		ms := fieldMs(e, "wait_ms", "after ")
		if ms <= 0 {
			continue
		}
		isAcq := strings.Contains(m, " acquired ") || e.Fields["acquired"] == "true"
		if !isAcq {
			if t, ok := acquired[pidOf(e)]; ok && t.After(e.Time) && t.Sub(e.Time) < 10*time.Minute {
				continue
			}
		}
		d := time.Duration(ms * float64(time.Millisecond))
		out = append(out, interval{from: e.Time.Add(-d), to: e.Time, ms: ms, ev: e})
	}
	return out
}

// slowStatements returns the statements PostgreSQL logged with their
// duration (log_min_duration_statement): each ran from t − D to t.
func (c *ctx) slowStatements() []interval {
	var out []interval
	for i := range c.events {
		e := &c.events[i]
		if e.Time.IsZero() {
			continue
		}
		ms := fieldMs(e, "duration_ms", "duration: ")
		if ms <= 0 {
			continue
		}
		d := time.Duration(ms * float64(time.Millisecond))
		out = append(out, interval{from: e.Time.Add(-d), to: e.Time, ms: ms, ev: e})
	}
	return out
}

// pidOf returns the PostgreSQL process id of a log event: its pid field,
// or the number after "process " in its message.
func pidOf(e *event) string {
	if p := e.Fields["pid"]; p != "" {
		return p
	}
	m := e.Message
	if i := strings.Index(m, "process "); i >= 0 {
		rest := m[i+8:]
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		return rest[:j]
	}
	return ""
}

// medianMs returns the median of the intervals' durations.
func medianMs(ivs []interval) time.Duration {
	ds := make([]time.Duration, 0, len(ivs))
	for _, iv := range ivs {
		ds = append(ds, time.Duration(iv.ms*float64(time.Millisecond)))
	}
	return medianOf(ds)
}

// windowsOf returns windows around the seconds where x is positive.
func (c *ctx) windowsOf(x []float64) []window {
	var ws []window
	for _, b := range c.bursts(x) {
		ws = append(ws, window{b.Start.Add(-c.pad), b.End.Add(c.pad)})
	}
	return ws
}
