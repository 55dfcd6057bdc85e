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

// episodes merges the lock waits of one process that follow each other
// (gaps up to episodeGap) into one: a session queued behind a hot row
// waits on each holder in turn (the tuple, then the holder's transaction,
// again and again), and the request waits for the whole queue.
func episodes(waits []interval) []interval {
	by := map[string][]interval{}
	var pids []string
	for _, w := range waits {
		p := pidOf(w.ev)
		if _, ok := by[p]; !ok {
			pids = append(pids, p)
		}
		by[p] = append(by[p], w)
	}
	var out []interval
	for _, p := range pids {
		ws := by[p]
		sort.Slice(ws, func(i, j int) bool { return ws[i].from.Before(ws[j].from) })
		cur := ws[0]
		for _, w := range ws[1:] {
			if p != "" && !w.from.After(cur.to.Add(episodeGap)) {
				if w.to.After(cur.to) {
					cur.to = w.to
				}
				cur.ms = float64(cur.to.Sub(cur.from)) / float64(time.Millisecond)
				continue
			}
			out = append(out, cur)
			cur = w
		}
		out = append(out, cur)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].from.Before(out[j].from) })
	return out
}

// episodeGap is the longest pause between two lock waits of one process
// that still makes them one wait for the request: at most the
// deadlock_timeout (1 s by default) before the next wait is logged.
const episodeGap = time.Second

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

// span is one request's time in flight, for the containment join.
type span struct {
	from, to time.Time
	e        *endpoint
}

// spans returns the requests sorted by start, built once; nil for an
// import (no per-request records).
func (c *ctx) spans() []span {
	if c.byStart != nil || len(c.in.Results) == 0 {
		return c.byStart
	}
	byKey := map[epKey]*endpoint{}
	for _, e := range c.eps {
		byKey[epKey{e.Method, e.Name}] = e
	}
	out := make([]span, 0, len(c.in.Results))
	for i := range c.in.Results {
		r := &c.in.Results[i]
		if e := byKey[epKey{r.Method, r.Name}]; e != nil {
			out = append(out, span{r.Start, r.End(), e})
			c.maxLat = max(c.maxLat, r.Latency)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].from.Before(out[j].from) })
	c.byStart = out
	return out
}

// containSlack is how far a statement may start before, or end after, the
// request that issued it and still count as inside it: the clocks of the
// database's log and of the generator differ by that much at most.
const containSlack = 250 * time.Millisecond

// tightShare is the part of a request an interval must fill for the
// request to count as containing it in the join.
const tightShare = 0.3

// maxJoined caps the intervals a containment join looks at.
const maxJoined = 300

// minJoinSigma is how many standard deviations above chance an endpoint's
// containment of the intervals must be for a join that chance alone
// nearly reaches (see containers).
const minJoinSigma = 3

// aboveChance returns how many standard deviations hits lie above base, the
// hits chance gives, over n intervals: a binomial with p = base/n (kept
// within 5–95%, so that a chance read as nil or certain from a few shifts
// does not make every excess look significant or none).
func aboveChance(hits, base, n float64) float64 {
	if n <= 0 {
		return 0
	}
	p := min(max(base/n, 0.05), 0.95)
	return (hits - p*n) / math.Sqrt(n*p*(1-p))
}

// containers returns the endpoints whose requests contain the intervals
// (a statement, a lock wait) far above chance. A request contains an
// interval tightly when the interval also fills a good part of it
// (tightShare): the statement is what the request waited for. For each
// endpoint: the share of intervals one of its requests contains tightly,
// against the share of the same intervals shifted away in time (what
// chance gives). An endpoint issues them when it contains at least half of
// them and twice as many as chance, or, when its requests are in flight all
// the time (a saturated queue: chance is high too), when it contains most of
// them and twice as many as any other endpoint, or, when chance is high
// because its requests are long and many (a page slow by itself under
// load), when it contains half again as many as chance and that excess is
// at least minJoinSigma standard deviations of what chance gives (a
// binomial over the intervals): 21 of 30 statements inside recap requests
// where chance gives 11.5 is no accident. Best first. Without
// per-request records it falls back to the correlation of the endpoints'
// requests in flight with the intervals per second.
func (c *ctx) containers(ivs []interval) []issuer {
	sp := c.spans()
	if sp == nil {
		return c.issuers(c.intervalSeries(ivs))
	}
	if len(ivs) > maxJoined {
		step := float64(len(ivs)) / maxJoined
		var s []interval
		for i := 0.0; int(i) < len(ivs); i += step {
			s = append(s, ivs[int(i)])
		}
		ivs = s
	}
	hits := map[*endpoint]float64{}
	base := map[*endpoint]float64{}
	lookback := min(c.maxLat, 10*time.Minute) + containSlack
	count := func(from, to time.Time, into map[*endpoint]float64, w float64) {
		hi := sort.Search(len(sp), func(i int) bool { return sp[i].from.After(from.Add(containSlack)) })
		seen := map[*endpoint]bool{}
		for i := hi - 1; i >= 0 && !sp[i].from.Before(from.Add(-lookback)); i-- {
			r := &sp[i]
			if seen[r.e] || r.to.Before(to.Add(-containSlack)) {
				continue
			}
			if float64(to.Sub(from)) < tightShare*float64(r.to.Sub(r.from)) {
				continue // contained, but a small part of a long request: chance
			}
			seen[r.e] = true
			into[r.e] += w
		}
	}
	for _, iv := range ivs {
		count(iv.from, iv.to, hits, 1)
		shift := iv.to.Sub(iv.from) + 3*time.Second
		count(iv.from.Add(-shift), iv.to.Add(-shift), base, 0.5)
		count(iv.from.Add(shift), iv.to.Add(shift), base, 0.5)
	}
	n := float64(len(ivs))
	var best, second float64
	var bestE *endpoint
	for e, h := range hits {
		if h > best {
			second, best, bestE = best, h, e
		} else if h > second {
			second = h
		}
	}
	var out []issuer
	for e, h := range hits {
		if h < 2 || h/n < 0.5 {
			continue
		}
		if h >= 2*base[e] || (e == bestE && h/n >= 0.6 && h >= 2*second) || (h >= 1.5*base[e] && aboveChance(h, base[e], n) >= minJoinSigma) {
			out = append(out, issuer{e: e, r: h / n})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].r != out[j].r {
			return out[i].r > out[j].r
		}
		return out[i].e.Name < out[j].e.Name
	})
	return out
}

// stmtGroup is the logged statements of one query text.
type stmtGroup struct {
	text    string
	ivs     []interval
	totalMs float64
}

// groupStatements groups intervals by their statement's text with the
// literals taken out, heaviest (most time) first.
func groupStatements(ivs []interval) []*stmtGroup {
	by := map[string]*stmtGroup{}
	var out []*stmtGroup
	for _, iv := range ivs {
		k := normalizeSQL(statementOf(iv.ev))
		g := by[k]
		if g == nil {
			g = &stmtGroup{text: statementOf(iv.ev)}
			by[k] = g
			out = append(out, g)
		}
		g.ivs = append(g.ivs, iv)
		g.totalMs += iv.ms
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].totalMs > out[j].totalMs })
	return out
}

// normalizeSQL collapses blanks and replaces numbers and quoted strings by
// "?", so the same query with other values groups together.
func normalizeSQL(s string) string {
	var b strings.Builder
	inNum := false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '\'':
			j := i + 1
			for j < len(s) {
				if s[j] == '\'' {
					if j+1 < len(s) && s[j+1] == '\'' { // an escaped quote
						j += 2
						continue
					}
					break
				}
				j++
			}
			b.WriteByte('?')
			i = j
			inNum = false
		case ch >= '0' && ch <= '9' && !inNum && (i == 0 || !isWordByte(s[i-1])):
			b.WriteByte('?')
			inNum = true
		case inNum && (ch >= '0' && ch <= '9' || ch == '.'):
		case ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r':
			inNum = false
			if b.Len() > 0 && !strings.HasSuffix(b.String(), " ") {
				b.WriteByte(' ')
			}
		default:
			inNum = false
			b.WriteByte(ch)
		}
	}
	return strings.TrimSpace(b.String())
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
