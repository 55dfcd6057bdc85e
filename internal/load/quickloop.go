package load

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/evloop"
	"github.com/stampede-load/stampede/internal/session"
)

// EnvQuickLoop turns the quick form's event loop off when set to "off":
// its users then run as goroutines over session.FastClient, as before the
// loop (for comparing the two, and as a way out should the loop misbehave
// on a system).
const EnvQuickLoop = "STAMPEDE_QUICK_LOOP"

// newQuickLoop returns the event loop (internal/evloop) that runs the quick
// form's users, or nil when the plan is not the quick form's plain-HTTP
// closed model or the loop is not available here (not Linux): the users
// are then goroutines.
func (e *Engine) newQuickLoop(out chan<- stampede.Result) *evloop.Loop {
	p := e.plan
	if !p.Quick || p.Model != Closed || p.Target.Scheme != "http" || len(p.Tasks) != 1 || len(p.Tasks[0].Steps) != 1 || len(p.OnStart) > 0 {
		return nil
	}
	if os.Getenv(EnvQuickLoop) == "off" {
		return nil
	}
	fc, err := session.NewFastClient(p.Target, p.Timeout)
	if err != nil {
		return nil
	}
	fc.DialTo(p.Hosts.Map(fc.Addr()))
	s := p.Tasks[0].Steps[0]
	// The results of a pass of the loop go to the recorder together, at its
	// end: the recorder is woken once a pass, not once a request.
	var batch []stampede.Result
	cfg := evloop.Config{Addr: fc.Addr(), Request: fc.Request(), Timeout: p.Timeout,
		From: func(user int) netip.Addr { return p.LocalIPs.At(user - 1) },
		OnResult: func(r evloop.Result) {
			res := stampede.Result{Name: s.Name, Method: "GET", User: p.Segment.global(r.User - 1),
				Start: r.Start, Latency: r.Latency, Connect: r.Connect, TTFB: r.TTFB}
			switch {
			case r.Err != nil:
				res.Outcome = stampede.FailTransport
				if session.IsTimeout(r.Err) {
					res.Outcome = stampede.FailTimeout
				}
				res.Reason = e.Secrets.Mask(session.Describe(r.Err))
			case !statusOK(s.Status, r.Status):
				res.Status, res.Bytes = r.Status, r.Size
				res.Outcome, res.Reason = stampede.FailStatus, "HTTP "+strconv.Itoa(r.Status)
			default:
				res.Status, res.Bytes = r.Status, r.Size
			}
			batch = append(batch, res)
		},
		OnPass: func() {
			for i := range batch {
				out <- batch[i]
			}
			clear(batch)
			batch = batch[:0]
			if cap(batch) > 4096 {
				batch = nil // a burst's (many users' timeouts in one pass) is not kept
			}
		}}
	if p.ThinkMax > 0 {
		// Called on the loop's goroutine only.
		rng := rand.New(rand.NewPCG(uint64(p.Segment.global(0)), uint64(time.Now().UnixNano())))
		cfg.Think = func() time.Duration {
			d := p.ThinkMin
			if p.ThinkMax > p.ThinkMin {
				d += time.Duration(rng.Int64N(int64(p.ThinkMax - p.ThinkMin)))
			}
			return d
		}
	}
	_, keepP, release := loopProcs(1)
	cfg.KeepP = keepP
	l, err := evloop.New(cfg)
	if err != nil {
		release()
		return nil
	}
	e.releaseProcs = release
	return l
}

// The Ps of the loops. A loop keeps its P while it waits for events
// (evloop.Config.KeepP) when the process has another P for its other
// goroutines (the recorder, the probes, the log tails, the live page):
// loopProcs gives it one, raising GOMAXPROCS by one while loops run, unless
// GOMAXPROCS was set: it is then kept, a loop a P, and the loops wait as
// the scheduler sees (with fewer users than Ps, a P is left anyway).
var (
	procsMu    sync.Mutex
	procsUsers int // runs whose loops hold the P added
	procsAdded int // the P added, while procsUsers > 0
)

// loopProcs returns how many loops to run for users (one a P, no more
// than the users) and whether they keep their Ps, and release, to call
// once they have stopped.
func loopProcs(users int) (n int, keepP bool, release func()) {
	procsMu.Lock()
	defer procsMu.Unlock()
	procs := runtime.GOMAXPROCS(0) - procsAdded
	n = max(1, min(procs, users))
	if _, set := os.LookupEnv("GOMAXPROCS"); set {
		return n, procs > n, func() {}
	}
	if n < procs {
		return n, true, func() {}
	}
	if procsUsers == 0 {
		runtime.GOMAXPROCS(procs + 1)
		procsAdded = 1
	}
	procsUsers++
	return n, true, sync.OnceFunc(func() {
		procsMu.Lock()
		defer procsMu.Unlock()
		if procsUsers--; procsUsers == 0 {
			procsAdded = 0
			runtime.SetDefaultGOMAXPROCS()
		}
	})
}

// loops are the event loops a run's users are spread over: user slot s
// (from 0) runs on loop s%len as its user s/len+1, so that the users
// started last, the first to stop, are spread over the loops too.
type loops []*evloop.Loop

// slot returns the slot (from 0) of loop i's user n.
func (g loops) slot(i, n int) int { return (n-1)*len(g) + i }

// SetUsers runs slots 0..n-1.
func (g loops) SetUsers(n int) {
	k := len(g)
	for i, l := range g {
		l.SetUsers(max(0, (n-i+k-1)/k))
	}
}

// InFlight is the requests under way on the loops.
func (g loops) InFlight() (n int) {
	for _, l := range g {
		n += l.InFlight()
	}
	return n
}

// runLoop runs the closed model's users on the event loops g: the plan's
// users started on its schedule, then the changes of the load followed
// (SetUsers), as runClosed does with goroutines. A user told to stop ends
// after its request under way (a scenario's, after its task: see
// browserLoop.Next); the loops stop with ctx, their requests cut off
// counted as aborted.
func (e *Engine) runLoop(ctx context.Context, g loops) {
	p := e.plan
	e.loops.Store(&g)
	var wg sync.WaitGroup
	for _, l := range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = l.Run(ctx)
		}()
	}
	defer func() {
		wg.Wait()
		for _, l := range g {
			e.aborted.Add(l.Aborted())
		}
		e.users.Store(0)
	}()
	l := g
	start := time.Now()
	t := e.ctl.get()
	ramp, k, n := start, 0, 0
	for {
		if n == t.users {
			select {
			case <-ctx.Done():
				return
			case <-t.changed:
				t, ramp, k = e.ctl.get(), time.Now(), 0
				continue
			}
		}
		at := start.Add(p.spawnOffset(n))
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
		if n > t.users {
			n--
		} else {
			n++
		}
		l.SetUsers(n)
		e.users.Store(int64(n))
	}
}
