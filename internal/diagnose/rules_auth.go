package diagnose

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stampede-load/stampede"
)

// loginEndpoints returns the endpoints that submit the login form.
func (c *ctx) loginEndpoints() []*endpoint {
	var out []*endpoint
	for _, e := range c.eps {
		if e.login {
			out = append(out, e)
		}
	}
	return out
}

// peakPerMinute returns the most requests of es completed in any 60 s.
func (c *ctx) peakPerMinute(es []*endpoint) float64 {
	series := make([]float64, c.nsec)
	for _, e := range es {
		for s, v := range e.reqs {
			series[s] += v
		}
	}
	best, sum := 0.0, 0.0
	for s := range series {
		sum += series[s]
		if s >= 60 {
			sum -= series[s-60]
		}
		best = math.Max(best, sum)
	}
	return best
}

// ruleLoginRateLimit: logins throttled or locked out.
//
// Confirmed by the server's own answer: a 429, or a page or body carrying a
// throttle message ("Too many failed login attempts. Try again later.",
// "Terlalu banyak percobaan masuk…", "Account locked: too many login
// attempts…", "Retry later"), or a throttling log line (axes lockout,
// allauth 0.51's TemplateDoesNotExist: 429.html behind a 500).
func ruleLoginRateLimit(c *ctx) verdict {
	v := verdict{id: IDLoginRateLimit}
	throttled := c.failing(func(g *group) bool { return g.throttle })
	// allauth 0.51 renders a missing 429.html: the throttle hides behind a 500.
	var tmpl []*event
	var hidden []*group
	for _, e := range c.eventsOf(IDLoginRateLimit, nil) {
		if strings.Contains(strings.ToLower(e.Message+e.Exception), "429.html") {
			tmpl = append(tmpl, e)
		}
	}
	if len(tmpl) > 0 {
		hidden = c.failing(func(g *group) bool { return g.ep.login && g.class == Class5xx })
	}
	evs := c.eventsOf(IDLoginRateLimit, nil)
	// A throttle in front of the app (a proxy's limit_req answers 503)
	// or one whose answer the rule did not expect: the failures its own
	// log lines line up with — same endpoint, same seconds, same counts —
	// are its, whatever their status.
	var limiter []*event
	for _, e := range evs {
		if !strings.Contains(strings.ToLower(e.Message+e.Exception), "429.html") && e.Signature != "http-429" {
			limiter = append(limiter, e)
		}
	}
	aligned := c.alignedGroups(limiter, c.failing(func(g *group) bool {
		return !g.throttle && !g.csrf && !(g.class == ClassTransport && g.refused)
	}))
	for _, g := range aligned {
		// Throttled, not failed by a fault: the server-side rules leave
		// these to this one.
		g.throttle = true
		throttled = append(throttled, g)
	}
	if len(throttled) == 0 && len(hidden) == 0 && len(evs) == 0 {
		var loginFails []*group
		for _, e := range c.loginEndpoints() {
			loginFails = append(loginFails, e.groups...)
		}
		if n := countOf(loginFails); n > 0 {
			v.ruledOut = fmt.Sprintf("no 429 and no throttle message among %d failed logins", n)
		}
		return v
	}
	v.status, v.conf = stampede.Confirmed, 0.95
	if len(throttled) > 0 {
		v.claims = append(v.claims, claim{groups: throttled, all: true})
		v.evidence = append(v.evidence, c.groupRef(throttled))
	}
	if len(hidden) > 0 {
		ws := windowsWith(c.windows(hidden), tmpl, nil, nil)
		v.claims = append(v.claims, claim{groups: hidden, ws: ws})
		v.evidence = append(v.evidence, eventRefs(tmpl, "a missing 429.html (the rate limit tripped and rendered a 500)")...)
	}
	if len(throttled) == 0 && len(hidden) == 0 {
		v.status, v.conf = stampede.Likely, 0.6
	}
	other := []*event{}
	for _, e := range evs {
		if !strings.Contains(strings.ToLower(e.Message+e.Exception), "429.html") {
			other = append(other, e)
		}
	}
	v.evidence = append(v.evidence, eventRefs(other, "throttling")...)
	if soft := c.failing(func(g *group) bool { return g.throttle && g.Status != 429 }); len(soft) > 0 {
		if ref, ok := c.accessStatus("POST", true, '2', "answered the login form's POST with a page (2xx) instead of the redirect of a successful login (302): the form again, with the throttle's message"); ok {
			v.evidence = append(v.evidence, ref)
		}
	} else if ref, ok := c.accessStatus("POST", true, '4', "answered the login form's POST with 4xx (429 Too Many Requests)"); ok {
		v.evidence = append(v.evidence, ref)
	}

	soft, n429, nOther := 0, 0, 0
	msg := ""
	statuses := map[int]bool{}
	for _, g := range throttled {
		switch {
		case g.Status == 429:
			n429 += g.Count
		case g.class == ClassContent:
			soft += g.Count
			if msg == "" {
				msg = g.message
			}
		default:
			nOther += g.Count
			statuses[g.Status] = true
		}
	}
	if len(aligned) > 0 {
		v.evidence = append(v.evidence, noteRef("join", fmt.Sprintf("%d failed requests (%s) line up with the throttle's own log lines: the same endpoint, the same seconds, about as many lines as failures — the throttle answered them, whatever the status", countOf(aligned), groupsText(aligned))))
	}
	switch {
	case nOther > 0 && soft == 0 && n429 == 0:
		v.title = fmt.Sprintf("Logins throttled by a rate limit that answers %s", statusList(statuses))
		if len(limiter) > 0 && strings.Contains(strings.ToLower(limiter[0].Message), "limiting requests") {
			v.title = fmt.Sprintf("Logins throttled by the proxy's rate limit (nginx limit_req answers %s)", statusList(statuses))
		}
	case soft > 0 && n429 == 0 && nOther == 0:
		v.title = fmt.Sprintf("Logins throttled: the server answers with the login page again (%q)", msg)
	case n429 > 0 && soft == 0:
		v.title = "Logins throttled: the server answers 429 Too Many Requests"
	default:
		v.title = "Logins throttled by the server's login rate limit"
	}

	lf := c.in.Load
	logins := c.loginEndpoints()
	perMin := c.peakPerMinute(logins)
	ips := lf.SourceIPs
	if ips == 0 {
		ips = 1
	}
	st := c.stack()
	limiterName := throttleName(st, limiter, throttled)
	if perMin > 0 {
		text := fmt.Sprintf("peak %.0f login attempts per minute from %d source address(es) = %.0f per address per minute", perMin, ips, perMin/float64(ips))
		if limiterName == "allauth" {
			text += "; allauth allows 30/m/ip for login (≥0.63) and 10/m/ip plus 5 per 300 s per account for login_failed (≥0.61)"
		}
		v.evidence = append(v.evidence, noteRef("arithmetic", text))
	}
	shared := lf.Assignment == AssignShared || (lf.Accounts > 0 && lf.Users > lf.Accounts)
	if lf.Users > 0 && lf.Accounts > 0 && lf.Users > lf.Accounts {
		text := fmt.Sprintf("%d virtual users on %d account(s) (%s): %.1f users per account", lf.Users, lf.Accounts, orUnknown(lf.Assignment), float64(lf.Users)/float64(lf.Accounts))
		if limiterName == "allauth" {
			text += "; more than 5 logins in flight per account trip allauth's per-account counter even with correct passwords"
		}
		v.evidence = append(v.evidence, noteRef("arithmetic", text))
	}
	v.fix, v.next = throttleAdvice(limiterName, shared, ips)
	return v
}

// throttleName says which throttle answered: the proxy's (nginx
// limit_req), or the app's limiter of the stack seen.
func throttleName(st stackInfo, limiter []*event, throttled []*group) string {
	for _, e := range limiter {
		m := strings.ToLower(e.Message)
		switch {
		case strings.Contains(m, "limiting requests") || strings.Contains(m, "limiting connections"):
			return "nginx"
		case strings.Contains(m, "axes"):
			return "axes"
		}
	}
	for _, g := range throttled {
		switch {
		case strings.Contains(g.text, "too many failed login attempts") || strings.Contains(g.text, "terlalu banyak"):
			return "allauth"
		case strings.Contains(g.text, "retry later"):
			return "rack-attack"
		case strings.Contains(g.text, "account locked"):
			return "axes"
		case strings.Contains(g.text, "too many attempts") && st.framework == "laravel":
			return "laravel"
		}
	}
	switch st.framework {
	case "django":
		return "allauth"
	case "rails":
		return "rack-attack"
	case "flask":
		return "flask-limiter"
	case "express":
		return "express-rate-limit"
	case "laravel":
		return "laravel"
	}
	return ""
}

// throttleAdvice is the fix and next experiment for a throttle: give each
// virtual user its own account when they shared some, else make the
// throttle count clients, not the generator's address.
func throttleAdvice(name string, shared bool, ips int) (fix, next string) {
	where := map[string]string{
		"allauth":            "ACCOUNT_RATE_LIMITS (and ACCOUNT_LOGIN_ATTEMPTS_LIMIT on allauth < 0.62) in the test settings, with the counters in a shared cache",
		"axes":               "AXES_FAILURE_LIMIT / AXES_ENABLED in the test settings",
		"rack-attack":        "the Rack::Attack.throttle rule on the sign-in path (its limit and period, or Rack::Attack.enabled = false in the load environment), with Rack::Attack.cache.store shared by every process",
		"flask-limiter":      "the Flask-Limiter limit on the login view (RATELIMIT_ENABLED=False or a higher limit in the load environment), with its storage in Redis shared by every worker",
		"express-rate-limit": "the express-rate-limit options on the login route (windowMs, max or limit) and its store",
		"laravel":            "the throttle middleware on the login route (RateLimiter::for('login') or ThrottlesLogins' maxAttempts/decayMinutes)",
		"nginx":              "nginx's limit_req zone and its burst on the login location (limit_req_zone … rate=, limit_req … burst= nodelay), or a geo/map that gives the generator's addresses an empty key so they are not limited",
	}[name]
	if where == "" {
		where = "the login rate limit (the app's limiter or the proxy's) in the load environment only"
	}
	if shared {
		fix = "Give each virtual user its own account (a users_file with one row per user, user_assignment: unique); in the load environment only, raise or disable " + where + "."
		next = "Rerun with one account per user: the throttle failures should vanish; if they remain, the per-address limit is next — rerun with it raised in the test environment."
		return fix, next
	}
	trusted := "configure the trusted proxy so each client counts on its own (X-Forwarded-For with the proxy trusted)"
	switch name {
	case "allauth":
		trusted = "configure the trusted proxy (ALLAUTH_TRUSTED_PROXY_COUNT / get_client_ip) so each client counts on its own"
	case "nginx":
		trusted = "key the zone on a client identity the load varies (not $binary_remote_addr alone when every virtual user comes from one address)"
	}
	fix = fmt.Sprintf("All logins come from %d source address(es), so the per-address limit throttles them: %s, spread the load over more source addresses, or raise %s.", ips, trusted, where)
	next = fmt.Sprintf("Rerun with %s raised (or off) in the test environment only: the throttle failures should vanish while capacity failures, if any, remain.", where)
	return fix, next
}

// groupsText names the statuses and reasons of gs briefly.
func groupsText(gs []*group) string {
	var parts []string
	for i, g := range gs {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("%d more", len(gs)-3))
			break
		}
		parts = append(parts, fmt.Sprintf("%d× %q on %s", g.Count, clipText(g.Reason, 60), g.Name))
	}
	return strings.Join(parts, ", ")
}

// statusList writes the statuses as "HTTP 503" or "HTTP 502 and 503".
func statusList(st map[int]bool) string {
	var ns []int
	for n := range st {
		if n > 0 {
			ns = append(ns, n)
		}
	}
	if len(ns) == 0 {
		return "without a response"
	}
	sort.Ints(ns)
	var ss []string
	for _, n := range ns {
		ss = append(ss, strconv.Itoa(n))
	}
	return "HTTP " + strings.Join(ss, " and ")
}

func orUnknown(s string) string {
	if s == "" {
		return "assignment unknown"
	}
	return s
}

func countOf(gs []*group) int {
	n := 0
	for _, g := range gs {
		n += g.Count
	}
	return n
}

// sustainedRate returns the requests of es completed per second over the
// span of their slow requests (their whole span when none was slow): the
// throughput a queue in front of them sustained.
func (c *ctx) sustainedRate(es []*endpoint) float64 {
	lo, hi := -1, -1
	for pass := 0; pass < 2 && lo < 0; pass++ {
		for _, e := range es {
			series := e.slow.series
			if pass == 1 {
				series = e.reqs
			}
			for s, v := range series {
				if v > 0 {
					if lo < 0 || s < lo {
						lo = s
					}
					hi = max(hi, s)
				}
			}
		}
	}
	if lo < 0 {
		return 0
	}
	n := 0.0
	for _, e := range es {
		for s := lo; s <= hi && s < len(e.reqs); s++ {
			n += e.reqs[s]
		}
	}
	return n / float64(hi-lo+1)
}

// hostCores returns the target host's cores, 0 when unknown.
func (c *ctx) hostCores() float64 { return c.setting("host", "cores") }

// cpuHigh reports whether a host sample shows the CPU busy: 85% of all
// cores, or the target process at 85% of them.
func cpuHigh(s *stampede.Sample, cores float64) bool {
	if s.Values["cpu_busy_pct"] >= 85 {
		return true
	}
	return cores > 0 && appCPU(s) >= 85*cores
}

// appWorkerBound reports whether, in ws, the app was the main consumer of
// the host's CPU (background processes left out) and burned at least most
// of a core: its workers are busy on the CPU even though the host is not.
func appWorkerBound(c *ctx, ws []window) bool {
	sp := c.cpuSplitIn(ws, nil)
	dom, ok := sp.dominant()
	return ok && dom == "app" && sp.of("app") >= 80
}

// loginWindows returns the windows in which logins were in flight.
func (c *ctx) loginWindows(logins []*endpoint) []window {
	series := make([]float64, c.nsec)
	for _, e := range logins {
		for s := range e.reqs {
			if e.reqs[s] > 0 {
				series[s] += e.reqs[s]
			}
		}
	}
	var lead time.Duration
	for _, e := range logins {
		if e.P95 > lead {
			lead = e.P95
		}
	}
	var ws []window
	for _, b := range c.bursts(series) {
		ws = append(ws, window{b.Start.Add(-lead - c.pad), b.End.Add(c.pad)})
	}
	return ws
}

// rulePasswordHash: login latency dominated by CPU-bound password hashing.
//
// The symptom is a slow login (median ≥ 250 ms and ≥ 5× the other
// endpoints' median) whose latency grows linearly with the logins in flight
// (LatencyShape.Linear). Confirmed when, in addition, the host CPU is busy
// (≥ 85%) while logins are in flight, or a stack shows the hasher
// (pbkdf2, argon2, bcrypt). Likely with the symptom alone when the host was
// not probed. Ruled out when the host CPU stayed below 50% while logins were
// in flight, or when logins are fast.
func rulePasswordHash(c *ctx) verdict {
	v := verdict{id: IDPasswordHashCPU}
	logins := c.loginEndpoints()
	if len(logins) == 0 {
		return v
	}
	var login *endpoint
	for _, e := range logins {
		if login == nil || e.Requests > login.Requests {
			login = e
		}
	}
	// The other pages, as the login is compared with them: those with
	// enough requests to have a floor and a median of their own. A page
	// reached only a few times, after hashing had taken the CPU (a user
	// gets past the login rarely then), read its few latencies under that
	// load: they are the hash's queue, not the page's cost.
	var pages []*endpoint
	for _, e := range c.eps {
		if !e.login && e.Requests >= minFloorSamples {
			pages = append(pages, e)
		}
	}
	if len(pages) == 0 {
		for _, e := range c.eps {
			if !e.login && e.Requests > 0 {
				pages = append(pages, e)
			}
		}
	}
	var others []time.Duration
	for _, e := range pages {
		if e.Median > 0 {
			others = append(others, e.Median)
		}
	}
	otherMed := medianOf(others)
	sh := login.shape
	lws := c.loginWindows(logins)
	cores := c.hostCores()
	cpu := c.read("host", "cpu_busy_pct", lws, false)
	hot, procHot := false, false
	var hotSample *stampede.Sample
	for _, s := range c.samples["host"] {
		if s.Err == "" && inWindows(s.Time, lws) && cpuHigh(s, cores) {
			hot = true
			// The target's own processes, measured, not the host as a
			// whole (which may be the generator's or another tenant's).
			procHot = procHot || (cores > 0 && appCPU(s) >= 85*cores)
			if hotSample == nil || s.Values["cpu_busy_pct"] > hotSample.Values["cpu_busy_pct"] {
				hotSample = s
			}
		}
	}
	// Slow: the login costs far more than other pages; or, when hashing
	// starves the host's CPU, other pages queue for it too and the login
	// stands out less, but its latency still grows in a line with the
	// logins in flight.
	// A CPU shared with other work (another process, the generator) makes
	// the queue less of a clean line; a login several times slower than
	// the other pages on a pegged CPU still points at the hash.
	slow := login.Median >= 250*time.Millisecond && (otherMed == 0 || login.Median >= 5*otherMed ||
		(hot && sh.Linear && login.Median >= 2*otherMed) || (hot && login.Median >= 3*otherMed))
	evs := c.eventsOf(IDPasswordHashCPU, nil)
	// Who burned the CPU while logins were in flight: hashing burns the
	// app's; a CPU held by PostgreSQL (a missing index) or the generator
	// is not the hash's, however slow the logins.
	sp := c.cpuSplitIn(lws, func(s *stampede.Sample) bool { return cpuHigh(s, cores) })
	if dom, ok := sp.dominant(); ok && dom != "app" && len(evs) == 0 {
		v.ruledOut = fmt.Sprintf("while logins were in flight the CPU went to %s, not to the app's workers (%s): hashing is not what burns it", groupNames[dom], sp.text())
		return v
	}
	// Capacity arithmetic: hashing can only make logins queue if the
	// logins' demand for CPU (completions per second × the cost of one
	// login at its floor) reaches the cores (one, when unknown).
	rate := c.sustainedRate(logins)
	floor := login.slow.floor
	if floor <= 0 {
		floor = login.Min
	}
	demand := rate * floor.Seconds()
	enough := demand >= 0.8*max(cores, 1)
	// A login slow even when little else is in flight, far slower than
	// the other pages are then: its own work is heavy (the hash).
	var otherFloors []time.Duration
	for _, e := range pages {
		if e.slow.floor > 0 {
			otherFloors = append(otherFloors, e.slow.floor)
		}
	}
	heavy := floor >= 250*time.Millisecond && (len(otherFloors) == 0 || floor >= 5*medianOf(otherFloors))
	// When hashing starves the CPU, every page waits for it and the login
	// stands out by its floor rather than its median.
	slow = slow || (heavy && login.Median >= 250*time.Millisecond)
	switch {
	case len(evs) > 0 || (hot && slow && (sh.Linear || sh.Points < 5)) || (procHot && slow && heavy):
		v.status, v.conf = stampede.Confirmed, 0.85
	case hot && slow:
		v.status, v.conf = stampede.Likely, 0.65
	case slow && heavy && !hot && appWorkerBound(c, lws):
		// The host has cores to spare, but the app's workers spend
		// them: fewer workers than cores (one event loop, an
		// interpreter lock, a small pool), each held on the CPU by a
		// login's hash while the other pages wait for it.
		v.status, v.conf = stampede.Likely, 0.7
		sp := c.cpuSplitIn(lws, nil)
		v.evidence = append(v.evidence, sp.ref("while logins were in flight"),
			noteRef("arithmetic", fmt.Sprintf("the host had cores to spare, but the app burned %.0f%% of a core while logins were in flight and %s takes %s even alone: the hash holds the app's workers on the CPU, the other pages wait for a worker", sp.of("app"), login.Name, secs(floor))))
	case slow && (sh.Linear || heavy) && cpu.n == 0 && enough:
		v.status, v.conf = stampede.Likely, 0.6
		if !sh.Linear {
			v.evidence = append(v.evidence, noteRef("latency", fmt.Sprintf("%s takes %s even with little else in flight, %s for the other pages: its own work is heavy; at %.1f logins/s that is %.1f cores of work, enough to queue for the CPU", login.Name, secs(floor), secs(medianOf(otherFloors)), rate, demand)))
		}
	case slow && (sh.Linear || heavy) && cpu.n == 0:
		v.status, v.conf = stampede.Possible, 0.3
		v.evidence = append(v.evidence, noteRef("arithmetic", fmt.Sprintf("logins completed at %.1f/s × %s each at their floor = %.2f cores of work: not enough to make them queue for the CPU, so their wait is elsewhere", rate, secs(floor), demand)))
	case slow && sh.Linear && !hot && cpu.n > 0 && cpu.max >= 50:
		v.status, v.conf = stampede.Possible, 0.3
	default:
		switch {
		case cpu.n > 0 && cpu.max < 50 && (slow || login.Failures > 0):
			v.ruledOut = fmt.Sprintf("host CPU peaked at %.0f%% while logins were in flight: hashing did not saturate the CPU", cpu.max)
		case login.Failures > 0 && !slow && login.Median < 250*time.Millisecond:
			v.ruledOut = fmt.Sprintf("logins are fast (median %s)", secs(login.Median))
		case login.Failures > 0 && !slow:
			v.ruledOut = fmt.Sprintf("logins (median %s) are not much slower than other pages (median %s): the cost is not in the login", secs(login.Median), secs(otherMed))
		}
		return v
	}
	v.title = fmt.Sprintf("Login latency dominated by CPU-bound password hashing (median %s, %s for other pages)", secs(login.Median), secs(otherMed))
	// Claims: login failures while the CPU was hot.
	fails := c.failing(func(g *group) bool { return g.ep.login && serverSide(g) })
	if len(fails) > 0 {
		if hot {
			v.claims = []claim{{groups: fails, ws: windowsWith(c.windows(fails), nil, c.samples["host"], func(s *stampede.Sample) bool { return cpuHigh(s, cores) })}}
		} else if v.status != stampede.Possible {
			v.claims = []claim{{groups: c.failing(func(g *group) bool { return g.ep.login && g.class == ClassTimeout }), all: true}}
		}
		v.evidence = append(v.evidence, c.groupRef(fails))
	}
	// The mechanism is active while logins are in flight on a hot CPU
	// (or, with no host probe, while logins are in flight).
	if hot {
		v.active = windowsWith(lws, nil, c.samples["host"], func(s *stampede.Sample) bool { return cpuHigh(s, cores) })
	} else {
		v.active = lws
	}
	// Slow logins: their latency is the hash's work and the queue for the
	// CPU it makes.
	var slowLogins []*endpoint
	for _, e := range logins {
		if e.slow.n > 0 {
			slowLogins = append(slowLogins, e)
		}
	}
	if len(slowLogins) > 0 && v.status != stampede.Possible {
		v.claims = append(v.claims, claim{eps: slowLogins, all: true})
		v.evidence = append(v.evidence, c.slowRef(slowLogins, nil))
		if cores > 0 && sh.Slope > 0 {
			tHash := time.Duration(float64(sh.Slope) * cores)
			v.latency = fmt.Sprintf("a login costs about %s of CPU; slow logins took a median of %s, the rest of it queued for the CPU behind other logins' hashes", secs(tHash), secs(login.slow.median))
		}
	}
	if sh.Points >= 5 {
		text := fmt.Sprintf("%s latency grows linearly with logins in flight: +%s per concurrent login (r²=%.2f, %.0f to %.0f in flight)", login.Name, secs(sh.Slope), sh.R2, sh.MinInFlight, sh.MaxInFlight)
		if !sh.Linear {
			text = fmt.Sprintf("%s latency against logins in flight: slope %s, r²=%.2f (not a clean line)", login.Name, secs(sh.Slope), sh.R2)
		}
		v.evidence = append(v.evidence, noteRef("latency", text))
	}
	if sp.n > 0 {
		v.evidence = append(v.evidence, sp.ref("while logins were in flight"))
	}
	if hotSample != nil {
		text := fmt.Sprintf("host CPU %.0f%% busy", hotSample.Values["cpu_busy_pct"])
		if p := hotSample.Values["proc_cpu_pct"]; p > 0 {
			text += fmt.Sprintf(", target process %.0f%% (100 = one core)", p)
		}
		if cores > 0 {
			text += fmt.Sprintf(", %.0f cores", cores)
		}
		v.evidence = append(v.evidence, probeRef(hotSample, text+" while logins were in flight"))
	}
	if cores > 0 && sh.Slope > 0 {
		tHash := time.Duration(float64(sh.Slope) * cores)
		text := fmt.Sprintf("%s per login × %.0f cores ⇒ about %s of CPU per login (PBKDF2 at 600k–1M iterations costs 0.25–0.6 s); the host can finish at most %.1f logins/s", secs(sh.Slope), cores, secs(tHash), cores/tHash.Seconds())
		if sr := c.in.Load.SpawnRate; sr > 0 {
			text += fmt.Sprintf(", users arrive at %.1f/s", sr)
		}
		v.evidence = append(v.evidence, noteRef("arithmetic", text))
	}
	v.evidence = append(v.evidence, eventRefs(evs, "password hashing in stacks")...)
	if ref, ok := c.serverTime("POST", true); ok {
		v.evidence = append(v.evidence, ref)
	}
	if otherMed > 0 {
		v.evidence = append(v.evidence, noteRef("latency", fmt.Sprintf("other pages' median is %s, %.1f× faster than the login: the cost is in the login itself", secs(otherMed), float64(login.Median)/float64(otherMed))))
	}
	v.fix = "Do not weaken production hashing blindly: scale CPU for the login path or move auth to dedicated workers; in the load environment only, use a fast hasher (PASSWORD_HASHERS = MD5PasswordHasher) with re-seeded users; pre-upgrade stored hashes so must_update re-hashing is not measured; hold no DB transaction across authenticate()."
	v.next = "Time make_password('x') on the server, then rerun at concurrency 1, cores and 2×cores: latency should grow by about t_hash/cores per concurrent login; rerun with a fast hasher in the test settings: login latency should collapse."
	return v
}

// ruleCSRF: CSRF token missing or invalid.
//
// Confirmed by the CSRF failure page's text in the failure reason, or by a
// django.security.csrf line ("Forbidden (CSRF cookie not set.): /path") in
// the logs while 403s occurred. A 403 on the login form without either is
// possible.
func ruleCSRF(c *ctx) verdict {
	v := verdict{id: IDCSRFFailure}
	texts := c.failing(func(g *group) bool { return g.csrf })
	f403 := c.failing(func(g *group) bool { return g.Status == 403 && !g.throttle && !g.csrf })
	var evs []*event
	if all := append(append([]*group{}, texts...), f403...); len(all) > 0 {
		evs = c.eventsOf(IDCSRFFailure, c.windows(all))
	}
	// The client's own evidence: a cookie it refused (the CSRF cookie,
	// or the session that holds the token) before the login form was
	// rejected with a status CSRF protection answers with.
	rejected := c.failing(func(g *group) bool { return !g.throttle && loginLike(g) && (g.csrf || csrfStatus(g.Status)) })
	cookies := c.cookieCauses(rejected)
	var fromCookie []*group
	if len(cookies) > 0 {
		fromCookie = rejected
	}
	switch {
	case len(texts) > 0 || len(evs) > 0 || len(fromCookie) > 0:
		v.status, v.conf = stampede.Confirmed, 0.95
	case len(f403) > 0 && anyLogin(f403):
		v.status, v.conf = stampede.Possible, 0.3
	default:
		if c.failed > 0 && len(f403) == 0 {
			v.ruledOut = "no 403 and no CSRF message among the failures"
		}
		return v
	}
	v.title = "Requests rejected by CSRF protection (403 CSRF verification failed)"
	if st := statusesOf(append(append([]*group{}, texts...), fromCookie...)); st != "" && st != "HTTP 403" {
		v.title = fmt.Sprintf("Requests rejected by CSRF protection (%s)", st)
	}
	if len(texts) > 0 {
		v.claims = append(v.claims, claim{groups: texts, all: true})
		v.evidence = append(v.evidence, c.groupRef(texts))
	}
	if len(fromCookie) > 0 {
		v.claims = append(v.claims, claim{groups: fromCookie, all: true})
		if len(texts) == 0 {
			v.evidence = append(v.evidence, c.groupRef(fromCookie))
		}
		r := cookies[0]
		v.title = fmt.Sprintf("Logins rejected by CSRF protection: the client dropped the cookie %q (%s)", r.name, r.why())
		for i, r := range cookies {
			if i == 3 {
				break
			}
			v.evidence = append(v.evidence, r.ref())
		}
		v.fix = cookieFix(r, c.stack())
		v.next = cookieNext(r)
		if len(texts) == 0 && len(evs) == 0 {
			v.evidence = append(v.evidence, noteRef("join", fmt.Sprintf("the login was rejected with %s after the client refused the cookie: without it the server could not match the form's token (the CSRF cookie, or the session that holds the token)", statusesOf(fromCookie))))
		}
	}
	if len(evs) > 0 {
		v.claims = append(v.claims, claim{groups: f403, ws: windowsWith(c.windows(f403), evs, nil, nil)})
	} else if len(f403) > 0 && v.status == stampede.Possible {
		v.claims = append(v.claims, claim{groups: f403, all: true})
	}
	if len(f403) > 0 {
		v.evidence = append(v.evidence, c.groupRef(f403))
	}
	v.evidence = append(v.evidence, eventRefs(evs, "CSRF rejections")...)
	if ref, ok := c.accessStatus("POST", true, '4', "answered the login form's POST with a 4xx (the CSRF failure page is a 403)"); ok && len(evs) == 0 {
		v.evidence = append(v.evidence, ref)
	}
	if len(fromCookie) > 0 {
		return v
	}
	reason := ""
	for _, e := range evs {
		reason += strings.ToLower(e.Message) + " "
	}
	for _, g := range texts {
		reason += g.text + " "
	}
	switch {
	case strings.Contains(reason, "cookie not set") && c.formFetched():
		v.fix = "The form was fetched but its CSRF cookie did not come back with the POST: CSRF_COOKIE_SECURE over plain HTTP (the client drops a Secure cookie) or a CSRF_COOKIE_DOMAIN that does not match the tested host; keep Secure cookies to HTTPS targets, or test over HTTPS."
		v.next = "Capture Set-Cookie on the login form's response and the Cookie header of the POST: a csrftoken marked Secure over http:// is never sent back; rerun over HTTPS or with CSRF_COOKIE_SECURE=False in the test settings: the 403s should vanish."
		return v
	case strings.Contains(reason, "cookie not set"):
		v.fix = "The script posts without the CSRF cookie: GET the form first in the same session and post its csrfmiddlewaretoken."
	case strings.Contains(reason, "origin checking failed") || strings.Contains(reason, "referer checking failed"):
		v.fix = "Behind TLS or a proxy, set CSRF_TRUSTED_ORIGINS with the scheme (https://host) and SECURE_PROXY_SSL_HEADER, and send Referer/Origin from the script."
	default:
		v.fix = "Post the token of a fresh GET per virtual user: Django rotates it at login, so a token captured before the login, or a cookie jar shared between users, is rejected."
	}
	v.next = "Capture the reason of django.security.csrf (Forbidden (<reason>): /path) and the Set-Cookie/Cookie headers of the failing user; rerun with one virtual user: if the 403 persists, the script's form handling is at fault, not load."
	return v
}

// lostSession reports whether g is a page sent back to the login page
// after the login: a session that did not stick.
func lostSession(g *group) bool {
	return g.loginPage && !g.throttle && !g.csrf && !g.ep.login
}

// formFetched reports whether the login form was fetched successfully: a
// GET endpoint named like the login with successes.
func (c *ctx) formFetched() bool {
	for _, e := range c.eps {
		if !e.login && isLoginName(e.Name) && strings.EqualFold(e.Method, "GET") && e.Requests > e.Failures {
			return true
		}
	}
	return false
}

func anyLogin(gs []*group) bool {
	for _, g := range gs {
		if g.ep.login || isLoginName(g.Name) {
			return true
		}
	}
	return false
}

// ruleSessionLost: login "succeeded" but the session did not stick.
//
// Confirmed when the login form was accepted (the login endpoint has
// successes) and later pages were sent back to the login page (the reason
// says so) without a throttle message.
func ruleSessionLost(c *ctx) verdict {
	v := verdict{id: IDSessionLost}
	lost := c.failing(lostSession)
	if len(lost) == 0 {
		return v
	}
	okLogins := 0
	for _, e := range c.loginEndpoints() {
		okLogins += e.Requests - e.Failures
	}
	if okLogins > 0 || len(c.loginEndpoints()) == 0 {
		v.status, v.conf = stampede.Confirmed, 0.85
	} else {
		v.status, v.conf = stampede.Likely, 0.55
	}
	n := countOf(lost)
	after := 0
	seen := map[*endpoint]bool{}
	for _, g := range lost {
		if !seen[g.ep] {
			after += g.ep.Requests
			seen[g.ep] = true
		}
	}
	share := float64(n) / math.Max(1, float64(after))
	v.title = fmt.Sprintf("Sessions lost after login: %.0f%% of pages after login went back to the login page", 100*share)
	v.claims = []claim{{groups: lost, all: true}}
	v.evidence = append(v.evidence, c.groupRef(lost))
	if okLogins > 0 {
		v.evidence = append(v.evidence, noteRef("requests", fmt.Sprintf("%d logins were accepted (302), then %d of %d requests on those pages were redirected to the login page", okLogins, n, after)))
	}
	if ref, ok := c.accessStatus("GET", false, '3', "redirected GET requests for pages other than the login (3xx): logged-in pages sending the user to the login form"); ok {
		v.evidence = append(v.evidence, ref)
	}
	if cookies := c.cookieCauses(lost); len(cookies) > 0 {
		r := cookies[0]
		v.title = fmt.Sprintf("Sessions lost after login: the client dropped the cookie %q (%s)", r.name, r.why())
		for i, r := range cookies {
			if i == 3 {
				break
			}
			v.evidence = append(v.evidence, r.ref())
		}
		v.fix = cookieFix(r, c.stack())
		v.next = cookieNext(r)
		return v
	}
	series := c.claimSeries(v.claims)
	bursts := c.bursts(series)
	biggest := Burst{}
	for _, b := range bursts {
		if b.Failures > biggest.Failures {
			biggest = b
		}
	}
	run := c.end.Sub(c.start)
	step, stepped := c.stepBefore(series)
	switch {
	case share < 0.95 && stepped:
		// They began when the load went up: the session store could not
		// keep the sessions of the higher load. Sessions lost together
		// would otherwise read as a restart or a flush, which a step of
		// the load is not.
		v.title = fmt.Sprintf("Sessions lost once the load went up to %s %s: pages after login went back to the login page", number(step.to), step.unit)
		v.evidence = append(v.evidence, stampede.EvidenceRef{Source: "load", Time: step.at, Text: fmt.Sprintf("the lost sessions began after %s, with none before: the session store lost sessions at the higher load (evicted or refused for lack of room), a capacity reading, not sessions dropped at once by a restart", step.text(c))})
		v.fix = "Give the session store room for every session of the load: memory and an eviction policy that keeps sessions (Redis maxmemory with volatile-* or noeviction, memcached's size), or keep sessions in the database."
		v.next = fmt.Sprintf("Rerun at %s and at %s %s with the session store probed (--probe-redis): sessions should be lost only at the higher load, as the store's evictions or refusals grow.", number(step.from), number(step.to), step.unit)
	case share < 0.95 && len(bursts) > 0 && float64(biggest.Failures) >= 0.8*float64(n) && biggest.End.Sub(biggest.Start) < run*3/10:
		// Concentrated in time: something dropped the sessions at once.
		v.title = fmt.Sprintf("Sessions dropped from %s to %s: pages after login went back to the login page", biggest.Start.Format(clock), biggest.End.Format(clock))
		v.evidence = append(v.evidence, noteRef("requests", fmt.Sprintf("%d of the %d lost sessions fall between %s and %s: the sessions were dropped at once (an app restart with in-memory sessions, a flushed or restarted session store), not lost at random", biggest.Failures, n, biggest.Start.Format(clock), biggest.End.Format(clock))))
		v.fix = "Keep sessions where a restart does not lose them (the database, a persistent Redis), and do not restart or flush the app or its store during the load."
		v.next = "Look in the app server's and the session store's logs for a restart or a flush just before the first lost session; rerun without it: the redirects should vanish."
	case share < 0.95:
		v.evidence = append(v.evidence, noteRef("arithmetic", fmt.Sprintf("a random %.0f%% spread over the run is the mark of a per-process session store: with LocMemCache and w workers about (w−1)/w of requests land on a worker that does not know the session (w=2 gives 50%%)", 100*share)))
		v.fix = "Store sessions where every worker sees them: the database, Redis or cached_db (SESSION_ENGINE), not LocMemCache under several workers."
		v.next = "Rerun with one app worker: if the lost sessions vanish, the session store is per process."
	default:
		v.evidence = append(v.evidence, noteRef("arithmetic", "every page after login was sent back: the session cookie never comes back (Secure cookie over plain HTTP, or a cookie domain that does not match the host tested)"))
		v.fix = "Make the session cookie come back: SESSION_COOKIE_SECURE only over HTTPS, SESSION_COOKIE_DOMAIN matching the tested host name (not an IP)."
		v.next = "Capture Set-Cookie on the login response and the Cookie header of the next request; rerun over HTTPS or with SESSION_COOKIE_SECURE=False in the test settings: the redirects should vanish."
	}
	return v
}

// accessStatus sums, over the access log's per-second timing events
// (access-timing), the requests of method on the login path (login true)
// or on other paths (login false) answered with a status of class (the
// first digit), and quotes the total with the first such line's ref.
func (c *ctx) accessStatus(method string, login bool, class byte, what string) (stampede.EvidenceRef, bool) {
	n := 0
	var first, last *event
	paths := map[string]bool{}
	for i := range c.events {
		e := &c.events[i]
		if e.Signature != "access-timing" || !strings.EqualFold(e.Fields["method"], method) || isLoginName(e.Fields["path"]) != login {
			continue
		}
		k, _ := strconv.Atoi(e.Fields["status_"+string(class)+"xx"])
		if k == 0 {
			continue
		}
		n += k
		paths[e.Fields["path"]] = true
		if first == nil {
			first = e
		}
		last = e
	}
	if n == 0 {
		return stampede.EvidenceRef{}, false
	}
	var ps []string
	for p := range paths {
		ps = append(ps, p)
	}
	text := fmt.Sprintf("access log: the server %s %d times (%s %s)", what, n, method, joinMax(sortedStrings(ps), 3))
	if last != nil && !last.Time.IsZero() && !first.Time.IsZero() {
		text += fmt.Sprintf(", %s–%s", first.Time.Format(clock), last.Time.Format(clock))
	}
	return stampede.EvidenceRef{Source: first.Source, Time: first.Time, Text: text, Ref: first.Ref}, true
}

// serverTime quotes the server's own time (the access log's) for method on
// the login path (login true) against the other paths: a login whose time
// is spent inside the app, not queued in front of it.
func (c *ctx) serverTime(method string, login bool) (stampede.EvidenceRef, bool) {
	var mine, others []time.Duration
	var first *event
	for i := range c.events {
		e := &c.events[i]
		if e.Signature != "access-timing" {
			continue
		}
		p50, err := strconv.ParseFloat(e.Fields["server_ms_p50"], 64)
		if err != nil {
			continue
		}
		d := time.Duration(p50 * float64(time.Millisecond))
		if strings.EqualFold(e.Fields["method"], method) && isLoginName(e.Fields["path"]) == login {
			mine = append(mine, d)
			if first == nil {
				first = e
			}
		} else {
			others = append(others, d)
		}
	}
	if first == nil {
		return stampede.EvidenceRef{}, false
	}
	text := fmt.Sprintf("access log: the server itself spent a median of %s on %s %s", secs(medianOf(mine)), method, first.Fields["path"])
	if len(others) > 0 {
		text += fmt.Sprintf(", %s on the other requests: the time is spent inside the app, not queued in front of it", secs(medianOf(others)))
	}
	return stampede.EvidenceRef{Source: first.Source, Time: first.Time, Text: text, Ref: first.Ref}, true
}

// statusesOf names the statuses of gs ("HTTP 422"), "" when none.
func statusesOf(gs []*group) string {
	st := map[int]bool{}
	for _, g := range gs {
		if g.Status > 0 {
			st[g.Status] = true
		}
	}
	if len(st) == 0 {
		return ""
	}
	return statusList(st)
}
