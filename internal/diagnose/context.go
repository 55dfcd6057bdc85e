package diagnose

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/stampede-load/stampede"
)

// endpoint is an endpoint's totals with its per-second series, indexed by
// seconds since ctx.start.
type endpoint struct {
	EndpointTotals
	login    bool      // submits the login form
	reqs     []float64 // completions per second
	fails    []float64 // failures per second
	lat      []float64 // mean (or median) latency in seconds; 0 unknown
	inflight []float64 // requests in flight (Little's law)
	active   []float64 // requests in flight at the middle of each second
	pcts     []*pcts   // per second, when an import knows percentiles
	groups   []*group
	shape    LatencyShape
	slow     slowState
}

// group is a FailureGroup with what classify and the rules made of it.
type group struct {
	FailureGroup
	ep                                 *endpoint
	class, text, message               string
	throttle, csrf, loginPage, refused bool
	lead                               time.Duration // typical latency of these failures
	covered                            []bool        // per second, for timed groups
	coveredN                           int           // for untimed groups
}

// series returns the failures of g in second s: its own count when timed,
// else its share of the endpoint's failures.
func (g *group) series(s int) float64 {
	if g.PerSecond != nil {
		if s < len(g.PerSecond) {
			return float64(g.PerSecond[s])
		}
		return 0
	}
	if g.ep.Failures == 0 {
		return 0
	}
	return g.ep.fails[s] * float64(g.Count) / float64(g.ep.Failures)
}

// event is a piece of log evidence with the finding id it points at.
type event struct {
	*stampede.Evidence
	id string
}

// window is a span of time, both ends included.
type window struct{ from, to time.Time }

func inWindows(t time.Time, ws []window) bool {
	for _, w := range ws {
		if !t.Before(w.from) && !t.After(w.to) {
			return true
		}
	}
	return false
}

// ctx is one diagnosis in progress.
type ctx struct {
	in         *Input
	start, end time.Time
	nsec       int
	eps        []*endpoint
	groups     []*group
	events     []event
	samples    map[string][]*stampede.Sample
	pad        time.Duration // alignment slack between sources
	total      int
	failed     int
	anatomy    *Anatomy
	found      map[string]*verdict
	slowTotal  int              // slow requests over all endpoints
	byStart    []span           // requests sorted by start, for joins (lazy)
	maxLat     time.Duration    // the longest request, for joins
	rowLocks   *[]*rowLockGroup // the queued row-locking statements (lazy)
	stk        *stackInfo       // the software seen (lazy)
	shared     *bool            // the target ran in the generator's process (lazy)
}

// maxSeconds caps the per-second arrays at a week.
const maxSeconds = 7 * 24 * 3600

func newCtx(in *Input) *ctx {
	if len(in.Results) > 0 && len(in.Endpoints) == 0 {
		cp := *in
		cp.aggregate()
		in = &cp
	}
	c := &ctx{in: in, samples: map[string][]*stampede.Sample{}, found: map[string]*verdict{}}
	c.span()
	c.nsec = int(c.end.Sub(c.start)/time.Second) + 2
	if c.nsec > maxSeconds {
		c.nsec = maxSeconds
	}
	byKey := map[epKey]*endpoint{}
	get := func(method, name string) *endpoint {
		k := epKey{method, name}
		if e := byKey[k]; e != nil {
			return e
		}
		// Locust's failures.csv may name a method the stats do not; fall
		// back to the name alone.
		for kk, e := range byKey {
			if kk.name == name && (method == "" || kk.method == "") {
				return e
			}
		}
		e := &endpoint{EndpointTotals: EndpointTotals{Method: method, Name: name}}
		e.reqs = make([]float64, c.nsec)
		e.fails = make([]float64, c.nsec)
		e.lat = make([]float64, c.nsec)
		e.inflight = make([]float64, c.nsec)
		e.pcts = make([]*pcts, c.nsec)
		e.login = c.isLogin(method, name)
		byKey[k] = e
		c.eps = append(c.eps, e)
		return e
	}
	for _, t := range in.Endpoints {
		e := get(t.Method, t.Name)
		e.EndpointTotals = t
	}
	for _, p := range in.History {
		if p.Name == "" || p.Name == "Aggregated" {
			continue
		}
		e := get(p.Method, p.Name)
		s := c.sec(p.Time)
		e.reqs[s] += p.Requests
		e.fails[s] += p.Failures
		lat := p.Mean
		if lat == 0 {
			lat = p.Median
		}
		e.lat[s] = lat.Seconds()
		if p.InFlight > 0 {
			e.inflight[s] += p.InFlight
		} else {
			e.inflight[s] += p.Requests * lat.Seconds()
		}
		if n := min(len(p.Quantiles), len(p.Latencies)); n > 0 && p.Latencies[n-1] > 0 {
			e.pcts[s] = &pcts{q: p.Quantiles[:n], v: p.Latencies[:n]}
		}
	}
	for i := range in.Failures {
		g := &group{FailureGroup: in.Failures[i]}
		g.ep = get(g.Method, g.Name)
		classify(g)
		if g.Latency != nil {
			g.lead = g.Latency.Quantile(0.5)
		} else {
			g.lead = g.ep.Median // refined below, once the anatomy knows clusters
		}
		if g.PerSecond != nil {
			g.covered = make([]bool, len(g.PerSecond))
		}
		g.ep.groups = append(g.ep.groups, g)
		c.groups = append(c.groups, g)
	}
	for _, e := range c.eps {
		n := 0
		for _, g := range e.groups {
			n += g.Count
		}
		if n > e.Failures {
			e.Failures = n
		}
		if e.Requests < e.Failures {
			e.Requests = e.Failures
		}
		c.total += e.Requests
		c.failed += e.Failures
	}
	for i := range in.Evidence {
		e := &in.Evidence[i]
		c.events = append(c.events, event{e, classifyEvent(e)})
	}
	for i := range in.Timeline {
		s := &in.Timeline[i]
		if bg := s.Values["cpu_pct:background"]; bg > 0 && s.Source == "host" {
			s = withoutBackground(s, bg)
		}
		c.samples[s.Source] = append(c.samples[s.Source], s)
	}
	c.remoteHost()
	c.pad = 5 * time.Second
	for _, ss := range c.samples {
		sort.SliceStable(ss, func(i, j int) bool { return ss[i].Time.Before(ss[j].Time) })
		if len(ss) >= 2 {
			if iv := ss[len(ss)-1].Time.Sub(ss[0].Time) / time.Duration(len(ss)-1); 2*iv > c.pad {
				c.pad = 2 * iv
			}
		}
	}
	if len(in.Results) > 0 {
		c.slowFromResults(in.Results)
	} else {
		c.slowFromHistory()
	}
	for _, e := range c.eps {
		if e.active == nil {
			e.active = e.inflight
		}
	}
	c.anatomy = c.buildAnatomy()
	// Imports: the lead of a group is the endpoint's cluster when known.
	for _, g := range c.groups {
		if g.Latency == nil && g.ep.shape.ClusterAt > 0 {
			g.lead = g.ep.shape.ClusterAt
		}
	}
	return c
}

// span sets c.start and c.end from the input, or from the data when unset.
func (c *ctx) span() {
	c.start, c.end = c.in.Start, c.in.End
	if !c.start.IsZero() && !c.end.IsZero() {
		return
	}
	var lo, hi time.Time
	see := func(t time.Time) {
		if t.IsZero() {
			return
		}
		if lo.IsZero() || t.Before(lo) {
			lo = t
		}
		if t.After(hi) {
			hi = t
		}
	}
	for _, p := range c.in.History {
		see(p.Time)
	}
	for _, g := range c.in.Failures {
		see(g.First)
		see(g.Last)
	}
	for _, s := range c.in.Timeline {
		see(s.Time)
	}
	for _, e := range c.in.Evidence {
		see(e.Time)
	}
	if c.start.IsZero() {
		c.start = lo
	}
	if c.end.IsZero() {
		c.end = hi
	}
	if c.end.Before(c.start) {
		c.end = c.start
	}
}

func (c *ctx) sec(t time.Time) int {
	s := int(t.Sub(c.start) / time.Second)
	if s < 0 {
		return 0
	}
	if s >= c.nsec {
		return c.nsec - 1
	}
	return s
}

func (c *ctx) at(s int) time.Time { return c.start.Add(time.Duration(s) * time.Second) }

func (c *ctx) isLogin(method, name string) bool {
	if len(c.in.Load.LoginEndpoints) > 0 {
		for _, n := range c.in.Load.LoginEndpoints {
			if n == name {
				return true
			}
		}
		return false
	}
	if !isLoginName(name) {
		return false
	}
	m := strings.ToUpper(method)
	return m == "POST" || (m == "" && strings.Contains(strings.ToUpper(name), "POST"))
}

// windows returns the failure windows of gs: the bursts of their failures,
// reaching back by the failures' latency (the time they were in flight, when
// the server was failing them) and padded by c.pad for clock and sampling
// slack. Groups whose timing is unknown give the whole run.
func (c *ctx) windows(gs []*group) []window {
	if len(gs) == 0 {
		return nil
	}
	series := make([]float64, c.nsec)
	var lead time.Duration
	any := false
	for _, g := range gs {
		for s := range series {
			if v := g.series(s); v > 0 {
				series[s] += v
				any = true
			}
		}
		if g.lead > lead {
			lead = g.lead
		}
	}
	if lead > 10*time.Minute {
		lead = 10 * time.Minute
	}
	if !any {
		return []window{{c.start.Add(-c.pad), c.end.Add(c.pad)}}
	}
	var ws []window
	for _, b := range c.bursts(series) {
		ws = append(ws, window{b.Start.Add(-lead - c.pad), b.End.Add(c.pad)})
	}
	return ws
}

// failing returns the failure groups for which keep is true.
func (c *ctx) failing(keep func(g *group) bool) []*group {
	var out []*group
	for _, g := range c.groups {
		if keep(g) {
			out = append(out, g)
		}
	}
	return out
}

// serverSide reports whether a failure is one a server fault can cause:
// a 5xx, a client timeout, or a reset without a response.
func serverSide(g *group) bool {
	if g.throttle || g.csrf || g.loginPage {
		return false
	}
	return g.class == Class5xx || g.class == ClassTimeout || (g.class == ClassTransport && !g.refused)
}

// withoutBackground returns a copy of a host sample whose busy CPU leaves
// out the background processes' (cpu_pct:background, nice > 0): they run
// on the cycles nobody else wants, so they saturate nothing for the
// target — a build running at nice 19 beside the load is not a busy host.
func withoutBackground(s *stampede.Sample, bg float64) *stampede.Sample {
	cp := *s
	cp.Values = make(map[string]float64, len(s.Values))
	for k, v := range s.Values {
		cp.Values[k] = v
	}
	if cores := s.Values["cores"]; cores > 0 {
		cp.Values["cpu_busy_pct"] = max(s.Values["cpu_busy_pct"]-bg/cores, 0)
	}
	return &cp
}

// eventsOf returns the events pointing at id inside ws (all of them when ws
// is nil). Events without a time are kept: they cannot be placed.
func (c *ctx) eventsOf(id string, ws []window) []*event {
	var out []*event
	for i := range c.events {
		e := &c.events[i]
		if e.id != id {
			continue
		}
		if ws == nil || e.Time.IsZero() || inWindows(e.Time, ws) {
			out = append(out, e)
		}
	}
	return out
}

// reading summarises one metric of one source over the samples inside ws
// (or outside them when outside is set): the peak, the mean and the sample
// holding the peak. Samples that could not be read are skipped; a key
// absent from a readable sample reads 0.
type reading struct {
	n         int
	max, mean float64
	peak      *stampede.Sample
}

func (c *ctx) read(source, key string, ws []window, outside bool) reading {
	var r reading
	sum := 0.0
	for _, s := range c.samples[source] {
		if s.Err != "" {
			continue
		}
		if ws != nil && inWindows(s.Time, ws) == outside {
			continue
		}
		v := s.Values[key]
		if r.n == 0 || v > r.max {
			r.max, r.peak = v, s
		}
		sum += v
		r.n++
	}
	if r.n > 0 {
		r.mean = sum / float64(r.n)
	}
	return r
}

// setting returns the last non-zero reading of a setting-like key.
func (c *ctx) setting(source, key string) float64 {
	ss := c.samples[source]
	for i := len(ss) - 1; i >= 0; i-- {
		if v := ss[i].Values[key]; v > 0 {
			return v
		}
	}
	return 0
}

// claim is a rule's claim on failed and slow requests: the groups'
// failures and the endpoints' slow requests inside ws, or all of them when
// all is set. A frozen claim holds its selection explicitly (see fresh).
type claim struct {
	groups []*group
	eps    []*endpoint // slow requests of these endpoints
	ws     []window
	all    bool
	rest   bool // only the requests no finding has explained yet
	frozen *selection
}

// selection is the requests a claim covers: per group the seconds of its
// failures (or, for an untimed group, how many), per endpoint the seconds
// of its slow requests.
type selection struct {
	g  map[*group][]bool
	gn map[*group]int
	e  map[*endpoint][]bool
}

func newSelection() *selection {
	return &selection{g: map[*group][]bool{}, gn: map[*group]int{}, e: map[*endpoint][]bool{}}
}

// add ORs what cl covers into sel.
func (c *ctx) add(sel *selection, cl claim) {
	if cl.frozen != nil {
		for g, secs := range cl.frozen.g {
			dst := sel.gsecs(g)
			for s, on := range secs {
				dst[s] = dst[s] || on
			}
		}
		for g, n := range cl.frozen.gn {
			sel.gn[g] = max(sel.gn[g], n)
		}
		for e, secs := range cl.frozen.e {
			dst := sel.esecs(e)
			for s, on := range secs {
				dst[s] = dst[s] || on
			}
		}
		return
	}
	mid := func(s int) time.Time { return c.at(s).Add(time.Second / 2) }
	in := func(s int) bool { return cl.all || inWindows(mid(s), cl.ws) }
	for _, g := range cl.groups {
		switch {
		case g.PerSecond != nil:
			dst := sel.gsecs(g)
			for s, v := range g.PerSecond {
				if v == 0 {
					continue
				}
				if cl.rest {
					dst[s] = dst[s] || !g.covered[s]
				} else if in(s) {
					dst[s] = true
				}
			}
		case cl.rest:
			sel.gn[g] = max(sel.gn[g], g.Count-g.coveredN)
		case cl.all:
			sel.gn[g] = g.Count
		default:
			tot, n := 0.0, 0.0
			for s, v := range g.ep.fails {
				if v == 0 {
					continue
				}
				tot += v
				if in(s) {
					n += v
				}
			}
			k := g.Count // no timing at all: the claim's evidence stands for the whole run
			if tot > 0 {
				k = int(math.Round(float64(g.Count) * n / tot))
			}
			sel.gn[g] = max(sel.gn[g], k)
		}
	}
	for _, e := range cl.eps {
		dst := sel.esecs(e)
		for s, v := range e.slow.series {
			if v <= 0 {
				continue
			}
			if cl.rest {
				dst[s] = dst[s] || !e.slow.covered[s]
			} else if in(s) {
				dst[s] = true
			}
		}
	}
}

func (sel *selection) gsecs(g *group) []bool {
	if sel.g[g] == nil {
		sel.g[g] = make([]bool, len(g.PerSecond))
	}
	return sel.g[g]
}

func (sel *selection) esecs(e *endpoint) []bool {
	if sel.e[e] == nil {
		sel.e[e] = make([]bool, len(e.slow.series))
	}
	return sel.e[e]
}

// fresh returns cl restricted to the requests no finding has explained so
// far, frozen: a generic finding (the CPU, the unexplained) takes what the
// specific ones left, and keeps exactly that whatever is marked later.
func (c *ctx) fresh(cl claim) claim {
	all := newSelection()
	c.add(all, cl)
	out := newSelection()
	for g, secs := range all.g {
		dst := out.gsecs(g)
		for s, on := range secs {
			dst[s] = on && !g.covered[s]
		}
	}
	for g, n := range all.gn {
		out.gn[g] = min(n, g.Count-g.coveredN)
	}
	for e, secs := range all.e {
		dst := out.esecs(e)
		for s, on := range secs {
			dst[s] = on && !e.slow.covered[s]
		}
	}
	return claim{groups: cl.groups, eps: cl.eps, frozen: out}
}

// tally is what a set of claims covers: each request counts once however
// many claims cover it.
type tally struct {
	failures int
	slow     int
	loadSlow int // slow requests on endpoints not slow by themselves
	eps      []string
}

// tally counts the requests the claims cover, on which endpoints (in
// input order); with mark set it records them as explained.
func (c *ctx) tally(cls []claim, mark bool) tally {
	var t tally
	sel := newSelection()
	for _, cl := range cls {
		c.add(sel, cl)
	}
	perEp := map[*endpoint]bool{}
	for _, g := range c.groups {
		k := 0
		if secs := sel.g[g]; secs != nil {
			for s, on := range secs {
				if on {
					k += int(g.PerSecond[s])
					if mark {
						g.covered[s] = true
					}
				}
			}
		} else if n, ok := sel.gn[g]; ok {
			k = n
			if mark && k > g.coveredN {
				g.coveredN = min(k, g.Count)
			}
		}
		if k > 0 {
			t.failures += k
			perEp[g.ep] = true
		}
	}
	for _, e := range c.eps {
		secs := sel.e[e]
		if secs == nil {
			continue
		}
		n, load := 0.0, 0.0
		for s, on := range secs {
			if on {
				n += e.slow.series[s]
				load += e.slow.loadSeries[s]
				if mark {
					e.slow.covered[s] = true
				}
			}
		}
		if k := int(math.Round(n)); k > 0 {
			t.slow += k
			t.loadSlow += int(math.Round(load))
			perEp[e] = true
		}
	}
	for _, e := range c.eps {
		if perEp[e] {
			t.eps = appendUnique(t.eps, e.Name)
		}
	}
	return t
}

// uncoveredSlow returns the slow requests of e no finding explained.
func (e *endpoint) uncoveredSlow() float64 {
	n := 0.0
	for s, v := range e.slow.series {
		if v > 0 && !e.slow.covered[s] {
			n += v
		}
	}
	return n
}

// uncovered returns the failures of g no finding explained.
func (g *group) uncovered() int {
	if g.PerSecond == nil {
		return g.Count - g.coveredN
	}
	n := 0
	for s, v := range g.PerSecond {
		if !g.covered[s] {
			n += int(v)
		}
	}
	return n
}

func appendUnique(ss []string, s string) []string {
	for _, x := range ss {
		if x == s {
			return ss
		}
	}
	return append(ss, s)
}

// Evidence references.

const clock = "15:04:05"

func eventRef(e *event) stampede.EvidenceRef {
	text := e.Message
	if e.Exception != "" && !strings.Contains(text, e.Exception) {
		text += " — " + e.Exception
	}
	return stampede.EvidenceRef{Source: e.Source, Time: e.Time, Text: text, Ref: e.Ref}
}

// eventRefs quotes the first and the last of es and counts the rest.
func eventRefs(es []*event, what string) []stampede.EvidenceRef {
	if len(es) == 0 {
		return nil
	}
	es = append([]*event(nil), es...)
	sort.SliceStable(es, func(i, j int) bool { return es[i].Time.Before(es[j].Time) })
	refs := []stampede.EvidenceRef{eventRef(es[0])}
	if len(es) > 1 {
		last := es[len(es)-1]
		refs = append(refs, eventRef(last))
		srcs := map[string]bool{}
		for _, e := range es {
			srcs[e.Source] = true
		}
		names := make([]string, 0, len(srcs))
		for s := range srcs {
			names = append(names, s)
		}
		sort.Strings(names)
		text := fmt.Sprintf("%d log events of %s in %s", len(es), what, strings.Join(names, ", "))
		if !es[0].Time.IsZero() && !last.Time.IsZero() {
			text += fmt.Sprintf(" from %s to %s", es[0].Time.Format(clock), last.Time.Format(clock))
		}
		refs = append(refs, stampede.EvidenceRef{Source: "logs", Text: text})
	}
	return refs
}

func probeRef(s *stampede.Sample, text string) stampede.EvidenceRef {
	return stampede.EvidenceRef{Source: s.Source, Time: s.Time, Text: text,
		Ref: "timeline:" + s.Source + "@" + s.Time.UTC().Format(time.RFC3339)}
}

func noteRef(source, text string) stampede.EvidenceRef {
	return stampede.EvidenceRef{Source: source, Text: text}
}

// groupRef quotes what the client saw for gs.
func (c *ctx) groupRef(gs []*group) stampede.EvidenceRef {
	n := 0
	var first, last time.Time
	firstRec := 0
	byReason := map[string]int{}
	var reasons []string
	eps := []string{}
	for _, g := range gs {
		n += g.Count
		if _, ok := byReason[g.Reason]; !ok {
			reasons = append(reasons, g.Reason)
		}
		byReason[g.Reason] += g.Count
		eps = appendUnique(eps, g.Name)
		if !g.First.IsZero() && (first.IsZero() || g.First.Before(first)) {
			first, firstRec = g.First, g.FirstRecord
		}
		if g.Last.After(last) {
			last = g.Last
		}
	}
	sort.SliceStable(reasons, func(i, j int) bool { return byReason[reasons[i]] > byReason[reasons[j]] })
	var parts []string
	for i, r := range reasons {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("%d more reasons", len(reasons)-3))
			break
		}
		parts = append(parts, fmt.Sprintf("%d× %q", byReason[r], r))
	}
	text := fmt.Sprintf("client: %d failures on %s: %s", n, strings.Join(eps, ", "), strings.Join(parts, ", "))
	if !first.IsZero() {
		text += fmt.Sprintf(", %s–%s", first.Format(clock), last.Format(clock))
	}
	ref := stampede.EvidenceRef{Source: "requests", Time: first, Text: text}
	if firstRec > 0 {
		// requests.csv: the header, then one row per request in
		// completion order, as Input.Results holds them.
		ref.Ref = fmt.Sprintf("requests.csv:%d", firstRec+1)
	}
	return ref
}

func secs(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.0f s", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	default:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
}

// remoteHost sorts out the host samples of a remote target. Exporters
// (node_exporter, process-exporter, read by --probe-prometheus) describe
// the target's host; /proc, read alongside by the host probe, is then the
// generator's machine, kept as source "generator-host". The exporters'
// samples of one second (one per exporter instance) are merged into one.
func (c *ctx) remoteHost() {
	var remote, local []*stampede.Sample
	for _, s := range c.samples["host"] {
		if s.Info["via"] == "prometheus" {
			remote = append(remote, s)
		} else {
			local = append(local, s)
		}
	}
	if len(remote) == 0 {
		return
	}
	if len(local) > 0 {
		c.samples["generator-host"] = local
	}
	sort.SliceStable(remote, func(i, j int) bool { return remote[i].Time.Before(remote[j].Time) })
	var merged []*stampede.Sample
	for _, s := range remote {
		if n := len(merged); n > 0 && s.Time.Sub(merged[n-1].Time) < time.Second && merged[n-1].Err == "" && s.Err == "" {
			m := merged[n-1]
			for k, v := range s.Values {
				if _, ok := m.Values[k]; !ok {
					m.Values[k] = v
				}
			}
			for k, v := range s.Info {
				if _, ok := m.Info[k]; !ok {
					m.Info[k] = v
				}
			}
			continue
		}
		cp := *s
		cp.Values = make(map[string]float64, len(s.Values))
		for k, v := range s.Values {
			cp.Values[k] = v
		}
		cp.Info = make(map[string]string, len(s.Info))
		for k, v := range s.Info {
			cp.Info[k] = v
		}
		merged = append(merged, &cp)
	}
	c.samples["host"] = merged
}
