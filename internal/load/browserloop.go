package load

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/evloop"
	"github.com/stampede-load/stampede/internal/session"
)

// EnvBrowserLoop turns the event loops of scenario users off when set to
// "off": they then run as goroutines over net/http's client (for comparing
// the two, as a way out should the loops misbehave, and for a scenario
// redirected from http to https, which the loops do not speak).
const EnvBrowserLoop = "STAMPEDE_BROWSER_LOOP"

// A scenario's users on an event loop.
//
// The users of a closed-model scenario over plain HTTP run on event loops
// (internal/evloop), one a CPU, rather than a goroutine each: a loop writes
// each user's requests and reads its responses over the user's one kept
// connection; the user's browser (session.Browser, its Begin, Field,
// BodyPart and End) builds the requests, stores the cookies and follows
// the redirects, and the user's steps are those of vu (prepare, finish)
// run as a state machine: on_start until it succeeds, then a task picked
// by weight, a think time between tasks. What goes on the wire, what is
// recorded and how a failure ends a task are those of the goroutine users.
// A user's connection goes where its request goes: to the target, or to
// another host a step or a redirect names (its name looked up once, on the
// loop: a pause for its users). What the loop does not do is TLS: a plan
// with an https target or step runs as goroutines, and an https URL met at
// run time (a redirect) fails its request (errLoopHTTPS).

// browserLoop is the event loop's Driver for a scenario's users.
type browserLoop struct {
	e     *Engine
	l     *evloop.Loop
	g     loops           // every loop of the run
	i     int             // this one's place in g
	ctx   context.Context // the run's
	dests map[string]*evloop.Dest
	users []*loopUser // by the loop's user number - 1
	batch []stampede.Result
	out   chan<- stampede.Result
	full  bool // the pages keep their whole header (a step extracts one)
	// noTransport is the browsers' transport, which they never use (the
	// loop is theirs): shared, so that none makes one of its own.
	noTransport http.RoundTripper
}

// loopUser is a virtual user on the event loop: a vu and where it is in its
// iteration.
type loopUser struct {
	vu
	phase loopPhase
	steps []*Step // the steps of on_start or of the task under way
	i     int     // the step under way, or next
	req   session.Request
	res   stampede.Result
}

type loopPhase uint8

const (
	lpIdle    loopPhase = iota // between iterations
	lpOnStart                  // in on_start
	lpTask                     // in a task
	lpOver                     // the iteration ended (a step failed, or the last succeeded)
)

// newBrowserLoops returns the event loops that run the plan's users, one a
// CPU the process may use (GOMAXPROCS; see loopProcs) and no more than the
// users, or nil
// when the plan is not a closed-model scenario over plain HTTP, the loops
// are turned off (EnvBrowserLoop) or not available here (not Linux).
func (e *Engine) newBrowserLoops(ctx context.Context, out chan<- stampede.Result) loops {
	p := e.plan
	if p.Quick || p.Model != Closed || p.Target.Scheme != "http" || os.Getenv(EnvBrowserLoop) == "off" {
		return nil
	}
	for _, s := range p.allSteps() {
		if u, err := p.Target.Parse(s.URL.literal()); err == nil && u.Scheme == "https" {
			return nil // a step over TLS: the users are goroutines
		}
	}
	full := false
	for _, s := range p.allSteps() {
		for _, x := range s.Extract {
			if x.Header != "" {
				full = true
			}
		}
	}
	n, keepP, release := loopProcs(p.Users)
	g := make(loops, n)
	unused := session.NewTransport(2, false, nil)
	for i := range g {
		d := &browserLoop{e: e, g: g, i: i, ctx: ctx, out: out, full: full, dests: map[string]*evloop.Dest{}, noTransport: unused}
		if g[i] = d.newLoop(keepP); g[i] == nil {
			release()
			return nil
		}
	}
	e.releaseProcs = release
	return g
}

// newLoop returns the loop d drives, or nil when there is none here.
func (d *browserLoop) newLoop(keepP bool) *evloop.Loop {
	p := d.e.plan
	host := p.Target.Host
	if p.Target.Port() == "" {
		host = net.JoinHostPort(p.Target.Hostname(), "80")
	}
	cfg := evloop.Config{Addr: p.Hosts.Map(host), Timeout: p.Timeout, Driver: d, KeepP: keepP,
		From: func(user int) netip.Addr { return p.LocalIPs.At(d.g.slot(d.i, user)) },
		OnPass: func() {
			for i := range d.batch {
				d.out <- d.batch[i]
			}
			clear(d.batch)
			d.batch = d.batch[:0]
			if cap(d.batch) > 4096 {
				d.batch = nil
			}
		}}
	if idle := p.ConnIdleTimeout(); idle > 0 {
		cfg.IdleClose = idle
	}
	l, err := evloop.New(cfg)
	if err != nil {
		return nil
	}
	d.l = l
	return l
}

// errLoopHTTPS fails a request to an https URL on the event loop.
// Its text is whole in the failure's reason (session.Describe keeps what
// follows the last ": ", so it has none).
var errLoopHTTPS = errors.New("an https URL, which the event loop does not speak (STAMPEDE_BROWSER_LOOP=off runs the users as goroutines, which do)")

// dest returns where the loop dials for u: nil for the target.
func (d *browserLoop) dest(u *url.URL) (*evloop.Dest, error) {
	if u.Scheme != "http" {
		if u.Scheme == "https" {
			return nil, errLoopHTTPS
		}
		return nil, fmt.Errorf("unsupported protocol scheme %q", u.Scheme)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	host = d.e.plan.Hosts.Map(host)
	if to, ok := d.dests[host]; ok {
		return to, nil
	}
	to, err := d.l.Dest(host)
	if err != nil {
		return nil, err
	}
	if len(d.dests) < 64 {
		d.dests[host] = to
	}
	return to, nil
}

// user returns loop user n's state, made at its first start.
func (d *browserLoop) user(n int) *loopUser {
	for len(d.users) < n {
		d.users = append(d.users, nil)
	}
	lu := d.users[n-1]
	if lu == nil {
		e := d.e
		gn := e.plan.Segment.global(d.g.slot(d.i, n))
		lu = &loopUser{vu: vu{e: e, n: gn, out: d.out, batch: &d.batch, rng: rand.New(rand.NewPCG(uint64(gn), uint64(time.Now().UnixNano())))}}
		lu.b = session.New(session.Options{Timeout: e.plan.Timeout, Transport: d.noTransport,
			// Called during End, on the loop's goroutine: lu.endpoint is
			// the step whose response set the cookie.
			CookieRefused: func(r session.CookieRefusal) { e.cookies.add(&r, lu.endpoint) }})
		lu.b.FullHeader(d.full)
		lu.vars.row = e.plan.row(gn)
		lu.vars.header = e.plan.Header
		lu.vars.n = gn
		lu.ctx = d.ctx
		d.users[n-1] = lu
	}
	return lu
}

// Next gives user's next request, or its pause. A user told to stop
// finishes the iteration it is in, as a goroutine user finishes its task.
func (d *browserLoop) Next(user int, stopping bool) ([]byte, *evloop.Dest, time.Duration) {
	lu := d.user(user)
	if stopping && (lu.phase == lpIdle || lu.phase == lpOver) {
		return nil, nil, 0
	}
	// A user whose steps fail before sending (no form on the page) goes
	// round without the loop: bounded, so that it cannot hold the others up.
	for range 64 {
		if lu.phase == lpOver {
			lu.phase = lpIdle
			if stopping {
				return nil, nil, 0
			}
			if pause := lu.pause(); pause != 0 {
				return nil, nil, pause
			}
		}
		if lu.phase == lpIdle && ended(d.ctx, time.Now()) {
			return nil, nil, -1 // the run is over: the loop stops
		}
		s := lu.nextStep()
		if s == nil {
			continue // the iteration is over
		}
		lu.res = stampede.Result{Name: s.Name, Method: s.Method, User: lu.n}
		if !lu.prepare(d.ctx, s, time.Time{}, &lu.req, &lu.res) {
			lu.phase = lpOver
			continue
		}
		wire, err := lu.b.Begin(&lu.req)
		var to *evloop.Dest
		if err == nil {
			if to, err = d.dest(lu.b.URL()); err != nil {
				lu.b.Abort()
			}
		}
		if err != nil {
			// As Do's failure to build the request: a transport failure.
			now := time.Now()
			lu.res.Start = now
			lu.finish(d.ctx, s, &lu.res, now, &session.Page{}, session.Timing{}, err)
			lu.phase = lpOver
			continue
		}
		lu.endpoint = s.Name
		return wire, to, 0
	}
	return nil, nil, 0
}

// nextStep returns the step to run now, or nil when the iteration is over
// (phase lpOver), as iterate runs them.
func (lu *loopUser) nextStep() *Step {
	p := lu.e.plan
	switch lu.phase {
	case lpIdle:
		if !lu.started && len(p.OnStart) > 0 {
			lu.phase, lu.steps, lu.i = lpOnStart, p.OnStart, 0
			return lu.steps[0]
		}
		if !lu.started {
			lu.loggedInAll()
			if p.AuthOnly {
				lu.phase = lpOver
				return nil
			}
		}
		return lu.startTask()
	case lpOnStart:
		if lu.i < len(lu.steps) {
			return lu.steps[lu.i]
		}
		lu.loggedInAll()
		if p.AuthOnly || lu.ctx.Err() != nil {
			lu.phase = lpOver
			return nil
		}
		return lu.startTask()
	case lpTask:
		if lu.i < len(lu.steps) {
			return lu.steps[lu.i]
		}
	}
	lu.phase = lpOver
	return nil
}

// loggedInAll marks on_start done, as iterate does.
func (lu *loopUser) loggedInAll() {
	lu.started = true
	if lu.relogin {
		lu.relogin = false
		lu.e.relogins.Add(1)
	}
}

// startTask picks a task by weight and returns its first step.
func (lu *loopUser) startTask() *Step {
	p := lu.e.plan
	if len(p.Tasks) == 0 {
		lu.phase = lpOver
		return nil
	}
	t := p.Tasks[0]
	if len(p.Tasks) > 1 {
		r := lu.rng.IntN(p.totalWeight)
		for _, c := range p.Tasks {
			if r < c.cum {
				t = c
				break
			}
		}
	}
	if len(t.Steps) == 0 {
		lu.phase = lpOver
		return nil
	}
	lu.phase, lu.steps, lu.i = lpTask, t.Steps, 0
	return lu.steps[0]
}

// pause is the pause after an iteration, as run takes it: held until the
// end once logged in with --auth-only, the think time, or none (0).
func (lu *loopUser) pause() time.Duration {
	p := lu.e.plan
	if p.AuthOnly && lu.started {
		lu.b.Pause()
		return -1
	}
	if p.ThinkMax > 0 {
		d := p.ThinkMin
		if p.ThinkMax > p.ThinkMin {
			d += time.Duration(lu.rng.Int64N(int64(p.ThinkMax - p.ThinkMin)))
		}
		if !lu.e.keepPage {
			lu.b.Rest()
		}
		lu.b.Pause()
		return max(d, time.Nanosecond)
	}
	return 0
}

// Field takes a header field of user's response.
func (d *browserLoop) Field(user int, name, value []byte) { d.users[user-1].b.Field(name, value) }

// Body takes body bytes of user's response.
func (d *browserLoop) Body(user int, p []byte) { d.users[user-1].b.BodyPart(p) }

// Done ends user's request: the next hop of a redirect, or the step's
// outcome recorded.
func (d *browserLoop) Done(r evloop.Result) ([]byte, *evloop.Dest) {
	lu := d.users[r.User-1]
	var page session.Page
	err := r.Err
	if err == nil {
		var hop []byte
		hop, page, err = lu.b.End(r.Status)
		if err == nil && hop != nil {
			to, derr := d.dest(lu.b.URL())
			if derr == nil {
				return hop, to
			}
			lu.b.Abort()
			err = derr
		}
	} else {
		lu.b.Abort()
	}
	s := lu.steps[lu.i]
	lu.res.Start, lu.res.Latency = r.Start, r.Latency
	tm := session.Timing{Connect: r.Connect, TTFB: r.TTFB, Reused: r.Reused}
	if lu.finish(d.ctx, s, &lu.res, r.Start.Add(r.Latency), &page, tm, err) {
		lu.i++
	} else {
		lu.phase = lpOver
	}
	return nil, nil
}

// Stop forgets user: started again, it is a new user (as a goroutine
// user's slot is given a new one).
func (d *browserLoop) Stop(user int) {
	if user <= len(d.users) {
		if lu := d.users[user-1]; lu != nil {
			lu.b.Abort()
			lu.b.Rest()
		}
		d.users[user-1] = nil
	}
}
