// Package load runs virtual users through a scenario, in the closed model
// (N users with think time) or the open model (an arrival rate, free of
// coordinated omission), and emits one stampede.Result per request.
package load

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/secret"
	"github.com/stampede-load/stampede/internal/session"
)

// Engine runs a plan. Results arrive on the channel given to Run.
type Engine struct {
	// Secrets masks the failure reasons of the results before they leave
	// the engine: a reason quotes the page's error text, a redirect's URL
	// or a transport error, any of which may echo a password or a token.
	// Nil masks by pattern only (package secret); set it before Run, from
	// Plan.Secrets and the run's other secrets.
	Secrets *secret.Masker

	plan  *Plan
	ctl   control // the load followed (SetUsers, SetArrivalRate)
	slots slots   // the users' numbers

	// actions are the forms' actions parsed, by their text: the same few
	// on every page of a scenario (read only: shared by the users).
	actions  sync.Map // string -> *url.URL
	nactions atomic.Int64

	releaseProcs func() // gives back the loops' P (loopProcs), when they run

	users    atomic.Int64 // virtual users alive
	inflight atomic.Int64 // requests in flight
	dropped  atomic.Int64 // open model: starts that found no free user
	started  atomic.Int64 // open model: flows started
	aborted  atomic.Int64 // requests cut off by the end of the run
	lost     atomic.Int64 // sessions lost after a login
	relogins atomic.Int64 // logins made again after a lost session

	cookies cookieRefusals // the cookies the users' browsers refused

	// loops run the users when they can (quickloop.go, browserloop.go).
	loops atomic.Pointer[loops]

	// keepPage says a step after think time reads the page before it (a
	// task or on_start that begins with submit_form): users then keep
	// their last page while they think.
	keepPage bool
}

// New returns an engine for the plan.
func New(p *Plan) *Engine {
	e := &Engine{plan: p, keepPage: p.firstStepReadsPage()}
	rate := p.SpawnRate
	if p.Model == Open {
		rate = p.ArrivalRate
	}
	e.ctl.cur = &target{users: p.Users, rate: rate, changed: make(chan struct{})}
	return e
}

// Users is the number of live virtual users.
func (e *Engine) Users() int { return int(e.users.Load()) }

// InFlight is the number of requests in flight.
func (e *Engine) InFlight() int {
	if g := e.loops.Load(); g != nil {
		return g.InFlight()
	}
	return int(e.inflight.Load())
}

// Dropped is the number of open-model starts that found no free user.
func (e *Engine) Dropped() int64 { return e.dropped.Load() }

// Aborted is the number of requests cut off by the end of the run (not
// recorded: they neither succeeded nor failed).
func (e *Engine) Aborted() int64 { return e.aborted.Load() }

// SessionsLost is the number of times a logged-in user was sent back to
// the login page.
func (e *Engine) SessionsLost() int64 { return e.lost.Load() }

// Relogins is the number of logins users made again, successfully, after
// their session was lost.
func (e *Engine) Relogins() int64 { return e.relogins.Load() }

// Run runs the plan until its duration is over or ctx is cancelled, sending
// every result to out. It returns when every virtual user has stopped; it
// does not close out.
func (e *Engine) Run(ctx context.Context, out chan<- stampede.Result) error {
	ctx, cancel := context.WithTimeout(ctx, e.plan.Duration)
	defer cancel()
	var wg sync.WaitGroup
	if l := e.newQuickLoop(out); l != nil {
		e.runLoop(ctx, loops{l})
		e.releaseProcs()
		return nil
	}
	if g := e.newBrowserLoops(ctx, out); g != nil {
		e.runLoop(ctx, g)
		e.releaseProcs()
		return nil
	}
	if e.plan.Model == Open {
		e.runOpen(ctx, out, &wg)
	} else {
		e.runClosed(ctx, out, &wg)
	}
	wg.Wait()
	return nil
}

// newVU returns the virtual user of slot j (numbered from 1 as in the
// whole plan when the plan is a segment), when the load wants users.
func (e *Engine) newVU(j, users int, out chan<- stampede.Result) *vu {
	n := e.plan.Segment.global(j)
	v := &vu{e: e, n: n, out: out, rng: rand.New(rand.NewPCG(uint64(n), uint64(time.Now().UnixNano())))}
	// The i-th user of this generator dials from its i-th source address:
	// the addresses are this machine's, whatever part of a split load it runs.
	from := e.plan.LocalIPs.At(j)
	if e.plan.Quick && e.plan.Target.Scheme == "http" {
		// The quick form's plain GET loop goes through a lean HTTP/1.1
		// client: one kept-alive connection per user, no goroutines.
		if fc, err := session.NewFastClient(e.plan.Target, e.plan.Timeout); err == nil {
			fc.DialTo(e.plan.Hosts.Map(e.plan.Target.Host))
			fc.BindTo(from)
			v.fast = fc
		}
	}
	// Each user has its own connections, as each browser does: no
	// goroutine and no buffer of its own while it thinks, closed once idle
	// for the plan's idle timeout: the user's think timer closes them
	// (sleep), so the transport keeps no timer of its own.
	v.ut = session.NewUserTransport(session.UserTransportOptions{From: from, Hosts: e.plan.Hosts,
		Insecure: e.plan.Insecure, IdleTimeout: -1})
	v.b = session.New(session.Options{Transport: v.ut, Timeout: e.plan.Timeout,
		// Called during v.b.Do, on the user's goroutine: v.endpoint is
		// the step whose response set the cookie.
		CookieRefused: func(r session.CookieRefusal) { e.cookies.add(&r, v.endpoint) }})
	v.vars.row = e.plan.row(n)
	v.vars.header = e.plan.Header
	v.vars.n = n
	return v
}

// runClosed starts the plan's users on its schedule, then follows the
// changes of the load (SetUsers): each change starts a ramp from the users
// active then to the users wanted, one user started or stopped every
// 1/rate seconds, the first at once.
func (e *Engine) runClosed(ctx context.Context, out chan<- stampede.Result, wg *sync.WaitGroup) {
	p := e.plan
	// The users in think time wait on timers, not goroutines: the end of
	// the run stops them (those under way end after their request, cut off).
	defer e.slots.stopAll()
	start := time.Now()
	t := e.ctl.get()
	ramp, k := start, 0 // a change's ramp: its start and the steps made
	for {
		active := e.slots.count()
		if active == t.users {
			select {
			case <-ctx.Done():
				return
			case <-t.changed:
				t, ramp, k = e.ctl.get(), time.Now(), 0
				continue
			}
		}
		// The plan's ramp keeps the plan's schedule (the j-th user at its
		// offset, whatever happened to the others: the segments of a split
		// load keep the whole one's); a change's ramp its own.
		at := start.Add(p.spawnOffset(active))
		if t.gen > 0 {
			at = ramp.Add(offset(k, t.rate))
		}
		switch waitUntil(ctx, t.changed, at) {
		case waitDone:
			return
		case waitChanged:
			t, ramp, k = e.ctl.get(), time.Now(), 0
			continue
		}
		k++
		if active > t.users {
			e.slots.stopLast()
			continue
		}
		j := e.slots.take()
		v := e.newVU(j, t.users, out)
		e.slots.attach(j, v)
		wg.Add(1)
		e.users.Add(1)
		v.start(ctx, func() {
			v.close()
			e.slots.release(j)
			e.users.Add(-1)
			wg.Done()
		})
	}
}

// runOpen starts flows at the plan's arrival rate, then at the rate of
// each change (SetArrivalRate), from the change on: the first 1/rate after
// it. A start that finds no free user and no room for a new one (max
// users) is dropped.
func (e *Engine) runOpen(ctx context.Context, out chan<- stampede.Result, wg *sync.WaitGroup) {
	p := e.plan
	work := make(chan time.Time)
	start := time.Now()
	t := e.ctl.get()
	ramp, k := start, 0
	for {
		at := start.Add(p.arrivalOffset(k))
		if t.gen > 0 {
			at = ramp.Add(offset(k, t.rate))
		}
		// Keep the schedule: when the pacer is late it starts the overdue
		// arrivals at once, each stamped with its intended time.
		switch waitUntil(ctx, t.changed, at) {
		case waitDone:
			return
		case waitChanged:
			t, ramp, k = e.ctl.get(), time.Now(), 1
			continue
		}
		if ended(ctx, time.Now()) {
			return // past the deadline, the context not done yet (vu.run)
		}
		k++
		select {
		case work <- at:
			e.started.Add(1)
			continue
		default:
		}
		// Only this goroutine adds users: the count cannot pass the max.
		if e.users.Load() >= int64(t.users) {
			e.dropped.Add(1)
			continue
		}
		j := e.slots.take()
		v := e.newVU(j, t.users, out)
		wg.Add(1)
		e.users.Add(1)
		e.started.Add(1)
		go func(first time.Time) {
			defer wg.Done()
			defer e.slots.release(j)
			defer v.close()
			v.iterate(ctx, first)
			for {
				cur := e.ctl.get()
				if e.leave(cur.users) {
					return
				}
				select {
				case <-ctx.Done():
					e.users.Add(-1)
					return
				case at := <-work:
					v.iterate(ctx, at)
				case <-cur.changed:
				}
			}
		}(at)
	}
}

// leave takes an open-model user out of the count when there are more
// than max, and reports whether it did: that user leaves.
func (e *Engine) leave(max int) bool {
	for {
		n := e.users.Load()
		if n <= int64(max) {
			return false
		}
		if e.users.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

// firstStepReadsPage reports whether a task or on_start begins with a step
// that reads the page before it (submit_form).
func (p *Plan) firstStepReadsPage() bool {
	if len(p.OnStart) > 0 && p.OnStart[0].SubmitForm {
		return true
	}
	for _, t := range p.Tasks {
		if len(t.Steps) > 0 && t.Steps[0].SubmitForm {
			return true
		}
	}
	return false
}

// vu is one virtual user.
type vu struct {
	e        *Engine
	n        int
	b        *session.Browser
	fast     *session.FastClient    // quick form over http only
	ut       *session.UserTransport // the browser's connections
	out      chan<- stampede.Result
	batch    *[]stampede.Result // the event loop's results of a pass, in place of out
	rng      *rand.Rand
	vars     vars
	started  bool   // on_start done
	loggedIn bool   // a not_login_page step succeeded
	relogin  bool   // the session was lost: on_start runs again, marked so
	endpoint string // name of the step whose request is under way
	// sent are the values of the secret fields (csrfmiddlewaretoken,
	// password) of the last form the user submitted, masked in its reasons
	// with its cookies.
	sent []string

	// The closed model's user between tasks (start): ctx is the run's, done
	// is called when the user ends; mu guards the rest against stop and the
	// timer.
	ctx      context.Context
	done     func()
	mu       sync.Mutex
	timer    *time.Timer // think time; reused
	armed    bool        // timer set and not fired
	thinking bool        // waiting on timer (or, with --auth-only, for the end)
	// rest is the think time left after the timer, set to the idle
	// timeout, wakes the user to close its connections (below 0: until
	// the end, --auth-only).
	rest time.Duration
	quit bool // told to stop
}

// vars resolves template variables for one user.
type vars struct {
	header []string
	row    []string
	n      int
	ext    map[string]string
}

func (v *vars) get(name string) string {
	if col, ok := strings.CutPrefix(name, "user."); ok {
		for i, h := range v.header {
			if h == col && i < len(v.row) {
				return v.row[i]
			}
		}
		return ""
	}
	if name == "vu" {
		return strconv.Itoa(v.n)
	}
	return v.ext[name]
}

func (v *vu) close() {
	if v.fast != nil {
		_ = v.fast.Close()
	}
	if v.ut != nil {
		v.ut.CloseIdleConnections()
	}
}

// start runs the closed model's user until ctx ends or it is told to stop
// (stop), then calls done once. quit is only looked at between tasks: a
// user told to stop finishes the task it is in, every request of it
// recorded. Its tasks run on a goroutine, its think times on a timer: a
// user in think time holds no goroutine and no stack, only its state (the
// memory of 100,000 logged-in users is that of their sessions).
func (v *vu) start(ctx context.Context, done func()) {
	v.ctx, v.done = ctx, done
	go v.run()
}

// run runs tasks until the user thinks, stops or the run ends.
func (v *vu) run() {
	p := v.e.plan
	// ended, not only ctx.Err: past the run's deadline a request fails at
	// once (its connection's deadline is the run's) while the context's own
	// timer may not have run yet, on a CPU kept busy by the users; a user
	// that went round again would cut off request after request, counted
	// as aborted, until it did.
	for !ended(v.ctx, time.Now()) && !v.told() {
		v.iterate(v.ctx, time.Time{})
		if p.AuthOnly && v.started {
			// Logged in and holding its session until the end.
			if !v.sleep(-1) {
				break
			}
			return
		}
		if p.ThinkMax > 0 {
			d := p.ThinkMin
			if p.ThinkMax > p.ThinkMin {
				d += time.Duration(v.rng.Int64N(int64(p.ThinkMax - p.ThinkMin)))
			}
			if !v.e.keepPage {
				// Nothing after think time reads this page: it is not
				// kept while the user thinks.
				v.b.Rest()
			}
			if !v.sleep(d) {
				break
			}
			return
		}
	}
	v.end()
}

// told reports whether the user was told to stop.
func (v *vu) told() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.quit
}

// sleep arms the think timer for d (forever when d < 0) and reports
// whether it did: not when the user was told to stop or the run is over.
func (v *vu) sleep(d time.Duration) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.quit || v.ctx.Err() != nil {
		return false
	}
	v.thinking = true
	if idle := v.e.plan.ConnIdleTimeout(); idle > 0 && (d < 0 || d > idle) {
		// The connections close once idle that long: the timer wakes the
		// user then to close them, and again at the end of its think time.
		v.rest = d
		if d > 0 {
			v.rest = d - idle
		}
		d = idle
	}
	switch {
	case d < 0:
	case v.timer == nil:
		v.armed = true
		v.timer = time.AfterFunc(d, v.wake)
	default:
		v.armed = true
		v.timer.Reset(d)
	}
	return true
}

// wake ends a think time: the timer's own goroutine runs the next task.
// Woken at the idle timeout first (rest set), it closes the user's
// connections and sleeps the rest.
func (v *vu) wake() {
	v.mu.Lock()
	v.armed = false
	if !v.thinking {
		v.mu.Unlock()
		return
	}
	if rest := v.rest; rest != 0 {
		v.rest = 0
		if rest > 0 {
			v.armed = true
			v.timer.Reset(rest)
		}
		v.mu.Unlock()
		v.ut.CloseIdleConnections()
		return
	}
	v.thinking = false
	v.mu.Unlock()
	v.run()
}

// stop tells the user to stop: in think time it ends at once, under way
// after its task.
func (v *vu) stop() {
	v.mu.Lock()
	v.quit = true
	now := v.thinking && (!v.armed || v.timer.Stop())
	if now {
		v.thinking = false
	}
	v.mu.Unlock()
	if now {
		v.end()
	}
}

// end ends the user: called once, by whoever finds it stopping.
func (v *vu) end() {
	if v.done != nil {
		v.done()
	}
}

// iterate runs on_start once per user, then one task picked by weight. In
// the open model, intended is the scheduled start of the flow: the first
// request's latency counts from it.
func (v *vu) iterate(ctx context.Context, intended time.Time) {
	p := v.e.plan
	if !v.started {
		// on_start runs until it succeeds: a user whose login failed
		// tries again on its next iteration (after think time), as a
		// person would, and never browses logged out.
		for _, s := range p.OnStart {
			if !v.step(ctx, s, intended) {
				return
			}
			intended = time.Time{}
		}
		v.started = true
		if v.relogin {
			v.relogin = false
			v.e.relogins.Add(1)
		}
		if p.AuthOnly || ctx.Err() != nil {
			return
		}
	}
	if len(p.Tasks) == 0 {
		return
	}
	t := p.Tasks[0]
	if len(p.Tasks) > 1 {
		r := v.rng.IntN(p.totalWeight)
		for _, c := range p.Tasks {
			if r < c.cum {
				t = c
				break
			}
		}
	}
	for _, s := range t.Steps {
		if !v.step(ctx, s, intended) {
			return
		}
		intended = time.Time{}
	}
}

// step runs one step and records its result. It reports whether the flow
// should go on: a failed step ends the task, as a failed page would stop a
// person.
func (v *vu) step(ctx context.Context, s *Step, intended time.Time) bool {
	res := stampede.Result{Name: s.Name, Method: s.Method, User: v.n}
	var req session.Request
	if !v.prepare(ctx, s, intended, &req, &res) {
		return false
	}
	v.e.inflight.Add(1)
	sent := time.Now()
	var page session.Page
	var tm session.Timing
	var err error
	if v.fast != nil {
		page.Status, page.Size, tm, err = v.fast.Get(ctx)
	} else {
		v.endpoint = s.Name
		page, tm, err = v.b.Do(ctx, &req)
	}
	end := time.Now()
	v.e.inflight.Add(-1)
	res.Start = sent
	if !intended.IsZero() && intended.Before(sent) {
		res.Start = intended
	}
	res.Latency = end.Sub(res.Start)
	return v.finish(ctx, s, &res, end, &page, tm, err)
}

// action returns a form's action parsed, from the ones parsed before when
// it can (the first 256 kept), or nil when it does not parse back to the
// same text (Request.Parsed's rule).
func (e *Engine) action(text string) *url.URL {
	if u, ok := e.actions.Load(text); ok {
		return u.(*url.URL)
	}
	u, err := url.Parse(text)
	if err != nil || u.String() != text {
		return nil
	}
	if e.nactions.Add(1) <= 256 {
		e.actions.Store(text, u)
	}
	return u
}

// prepare builds the request of step s into req. When it cannot be sent
// (no form on the page, a bad URL), it records why and returns false.
func (v *vu) prepare(ctx context.Context, s *Step, intended time.Time, req *session.Request, res *stampede.Result) bool {
	p := v.e.plan
	*req = session.Request{Method: s.Method, NoRedirect: s.NoRedirect, KeepBody: !p.Quick}
	switch {
	case v.fast != nil:
		// The quick form's one URL: nothing to build per request.
	case s.SubmitForm:
		last := v.b.Last
		f, err := session.FindForm(last.Body, last.URL, s.Selector)
		if err != nil {
			// The POST could not be sent; it is recorded all the same, so
			// a login that never happened is not missing from the counts.
			res.Start = time.Now()
			if !intended.IsZero() {
				res.Start = intended
			}
			res.Outcome = stampede.FailContent
			res.Reason = "not sent: " + noFormReason(err, &last)
			v.emit(ctx, res)
			return false
		}
		var overBuf, pairBuf [8]session.Field
		over := overBuf[:0]
		for k, t := range s.Fields {
			over = append(over, session.Field{Name: k, Value: t.render(&v.vars)})
		}
		req.Method = f.Method
		res.Method = f.Method
		req.URL, req.Parsed = f.Action, v.e.action(f.Action)
		pairs := f.Pairs(pairBuf[:0], over)
		v.sent = v.sent[:0]
		for _, fl := range pairs {
			if secret.IsKey(fl.Name) {
				v.sent = append(v.sent, fl.Value)
			}
		}
		if f.Method == "GET" {
			u, _ := url.Parse(f.Action)
			u.RawQuery = string(session.AppendQuery(nil, pairs))
			req.URL, req.Parsed = u.String(), nil
		} else {
			n := 0
			for _, fl := range pairs {
				n += len(fl.Name) + len(fl.Value) + 2
			}
			req.Body = session.AppendQuery(make([]byte, 0, n+n/4), pairs)
			req.ContentType = "application/x-www-form-urlencoded"
		}
	case s.abs != nil && s.absBase == p.Target:
		// The URL resolved at compile time (read only: shared by the users).
		req.URL, req.Parsed = s.absText, s.abs
		v.bodyOf(s, req)
	default:
		raw := s.URL.render(&v.vars)
		ref, err := p.Target.Parse(raw)
		if err != nil {
			res.Start, res.Outcome, res.Reason = time.Now(), stampede.FailContent, fmt.Sprintf("not sent: bad URL %q", raw)
			v.emit(ctx, res)
			return false
		}
		req.URL, req.Parsed = ref.String(), ref
		v.bodyOf(s, req)
	}
	if len(s.Headers) > 0 {
		req.Header = make(http.Header, len(s.Headers))
		for k, t := range s.Headers {
			req.Header.Set(k, t.render(&v.vars))
		}
	}
	return true
}

// bodyOf sets the body of step s's request (not a form's).
func (v *vu) bodyOf(s *Step, req *session.Request) {
	if s.Form != nil {
		vals := url.Values{}
		for k, t := range s.Form {
			vals.Set(k, t.render(&v.vars))
		}
		req.Body = []byte(vals.Encode())
	} else if len(s.Body) > 0 {
		req.Body = []byte(s.Body.render(&v.vars))
	}
	req.ContentType = s.ContentType
}

// finish records the outcome of step s's request, sent at res.Start and
// ended at end (page and tm, or the transport's err), and reports whether
// the flow should go on.
func (v *vu) finish(ctx context.Context, s *Step, res *stampede.Result, end time.Time, page *session.Page, tm session.Timing, err error) bool {
	res.Connect, res.TTFB = tm.Connect, tm.TTFB
	if err != nil {
		if ended(ctx, end) {
			// Cut off by the end of the run: neither a success nor a failure.
			v.e.aborted.Add(1)
			return false
		}
		res.Outcome = stampede.FailTransport
		if session.IsTimeout(err) {
			res.Outcome = stampede.FailTimeout
		}
		res.Reason = session.Describe(err)
		v.emit(ctx, res)
		return false
	}
	res.Status, res.Bytes = page.Status, page.Size
	v.check(s, page, res)
	if res.Outcome == stampede.OK && len(s.Extract) > 0 {
		if v.vars.ext == nil {
			v.vars.ext = map[string]string{}
		}
		for name, x := range s.Extract {
			val, err := x.Extract(v.b, page)
			if err != nil {
				res.Outcome, res.Reason = stampede.FailContent, "extract "+name+": "+err.Error()
				break
			}
			v.vars.ext[name] = val
		}
	}
	v.emit(ctx, res)
	return res.Outcome == stampede.OK
}

// ended reports whether the run (ctx) was over at t: cancelled, or past its
// deadline (a connection's deadline set from it can fire before the
// context's own timer marks it done).
func ended(ctx context.Context, t time.Time) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !t.Before(d)
}

func noFormReason(err error, last *session.Page) string {
	if last.URL == nil {
		return "submit_form has no previous page to take the form from"
	}
	if last.Status >= 400 || last.Status == 0 {
		return fmt.Sprintf("no form on the previous page (HTTP %d)", last.Status)
	}
	if errors.Is(err, session.ErrNoForm) {
		return "no form on the previous page"
	}
	return err.Error()
}

// check applies the step's expectations and the session rule to a response.
func (v *vu) check(s *Step, page *session.Page, res *stampede.Result) {
	if s.NotLogin && page.Status < 400 && !statusOK(s.Status, page.Status) && session.IsLoginPage(page.Body) {
		// The login form again, whatever the status: the page's error text
		// says why ("Too many failed login attempts"), which "HTTP 200"
		// would hide.
		res.Outcome, res.Reason = stampede.FailContent, loginPageReason(page.Body, v.maskReason)
		return
	}
	if !statusOK(s.Status, page.Status) {
		res.Outcome = stampede.FailStatus
		res.Reason = "HTTP " + strconv.Itoa(page.Status)
		if page.Status >= 400 {
			if t := pageHint(page.Body, v.maskReason); t != "" {
				res.Reason += " (" + t + ")"
			}
		}
		return
	}
	if v.e.plan.Quick {
		return
	}
	// The page is searched for a password input only where the answer
	// matters, not on every page (it reads the whole body).
	if s.NotLogin {
		if session.IsLoginPage(page.Body) {
			res.Outcome, res.Reason = stampede.FailContent, loginPageReason(page.Body, v.maskReason)
			return
		}
		v.loggedIn = true
	} else if v.loggedIn && page.Status < 300 && len(page.Redirects) > 0 && session.IsLoginPage(page.Body) {
		// Logged in, asked for a page and was sent to a login form: the
		// session did not stick (a Secure cookie over HTTP, a session store
		// that lost it).
		res.Outcome = stampede.FailContent
		res.Reason = "redirected to login page: session lost"
		v.e.lost.Add(1)
		if len(v.e.plan.OnStart) > 0 && !v.e.plan.NoRelogin {
			// A person sent back to the login form logs in again: the
			// next iteration runs on_start before any task.
			v.started, v.loggedIn, v.relogin = false, false, true
		}
		return
	}
	if s.Contains != "" && !strings.Contains(string(page.Body), s.Contains) {
		res.Outcome, res.Reason = stampede.FailContent, "body does not contain "+strconv.Quote(clip(s.Contains, 60))
		return
	}
	if s.NotContains != "" && strings.Contains(string(page.Body), s.NotContains) {
		res.Outcome, res.Reason = stampede.FailContent, "body contains "+strconv.Quote(clip(s.NotContains, 60))
		return
	}
	if s.NotRedirect != "" {
		to := ""
		if page.Status >= 300 && page.Status < 400 {
			to = page.Header.Get("Location")
		} else if len(page.Redirects) > 0 {
			to = page.Redirects[len(page.Redirects)-1]
		}
		if to != "" && strings.Contains(to, s.NotRedirect) {
			res.Outcome, res.Reason = stampede.FailContent, "redirected to "+clip(v.maskReason(to), 80)
		}
	}
}

// loginPageReason is the reason of a login page shown again: its error
// text, masked (before it is cut, so that no part of a secret is left).
func loginPageReason(body []byte, mask func(string) string) string {
	if t := session.ErrorText(body); t != "" {
		return "login page returned: " + clip(mask(t), 160)
	}
	return "login page returned"
}

func statusOK(want []int, got int) bool {
	if len(want) == 0 {
		return got >= 200 && got < 400
	}
	for _, w := range want {
		if w == got {
			return true
		}
	}
	return false
}

// pageHint is a short text naming an error page: its error text, else its
// <title> or first heading, so failures group by what the server said;
// masked before it is cut.
func pageHint(body []byte, mask func(string) string) string {
	if t := session.ErrorText(body); t != "" {
		return clip(mask(t), 100)
	}
	s := string(body[:min(len(body), 4096)])
	for _, tag := range []string{"title", "h1"} {
		lo := strings.ToLower(s)
		i := strings.Index(lo, "<"+tag)
		if i < 0 {
			continue
		}
		j := strings.IndexByte(lo[i:], '>')
		if j < 0 {
			continue
		}
		k := strings.Index(lo[i+j:], "</"+tag)
		if k < 0 {
			continue
		}
		t := stripTags(s[i+j+1 : i+j+k])
		if t = strings.Join(strings.Fields(t), " "); t != "" {
			return clip(mask(t), 100)
		}
	}
	return ""
}

func stripTags(s string) string {
	var b strings.Builder
	in := false
	for _, r := range s {
		switch {
		case r == '<':
			in = true
		case r == '>':
			in = false
		case !in:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// clip cuts s to at most n bytes and an ellipsis, on a character's
// boundary: a page in any encoding must not leave half a character in a
// reason.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func (v *vu) emit(_ context.Context, r *stampede.Result) {
	// The channel is drained by the recorder until every user has stopped,
	// so this send never blocks for long and never loses a record.
	r.Relogin = r.Relogin || (v.relogin && !v.started)
	if r.Reason != "" {
		r.Reason = v.maskReason(r.Reason)
	}
	if v.batch != nil {
		*v.batch = append(*v.batch, *r) // on the event loop (browserloop.go)
		return
	}
	v.out <- *r
}

// maskReason masks a failure reason with the run's secrets and those of
// the user's session, which no file holds: its session and CSRF cookies,
// the secret fields of the last form it sent, and the values it extracted
// under a secret's name. Reasons are rare (failures only), so their cost
// does not matter.
func (v *vu) maskReason(reason string) string {
	vals := append([]string(nil), v.sent...)
	if v.b != nil {
		for _, u := range []*url.URL{v.e.plan.Target, v.b.Last.URL} {
			if u == nil {
				continue
			}
			for _, c := range v.b.Jar().Cookies(u) {
				if secret.IsKey(c.Name) || len(c.Value) >= 16 {
					vals = append(vals, c.Value)
				}
			}
		}
	}
	for k, x := range v.vars.ext {
		if secret.IsKey(k) {
			vals = append(vals, x)
		}
	}
	return v.e.Secrets.Mask(secret.MaskValues(reason, vals...))
}
