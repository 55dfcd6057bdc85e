package load

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/stampede-load/stampede/internal/session"
)

// target is the load an engine follows: the plan's until SetUsers or
// SetArrivalRate changes it. A target is never modified once published;
// a change publishes a new one and closes the old one's changed channel,
// which wakes whoever waits on it (the spawner, the open model's idle
// users).
type target struct {
	// gen counts the changes: 0 is the plan's load.
	gen int
	// users is the closed model's users, the open model's max users.
	users int
	// rate is the closed model's spawn rate, the open model's arrival
	// rate, per second.
	rate float64
	// changed is closed when the next change is published.
	changed chan struct{}
}

// control holds an engine's target.
type control struct {
	mu  sync.Mutex // serializes changes
	cur *target    // read under mu or through get
}

func (c *control) get() *target {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur
}

func (c *control) set(users int, rate float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.cur
	c.cur = &target{gen: old.gen + 1, users: users, rate: rate, changed: make(chan struct{})}
	close(old.changed)
}

// SetUsers changes the closed model's load: from now on the engine starts
// (or stops) one user every 1/rate seconds, the first at once, until n
// users run. A user told to stop finishes the task it is in, so that no
// request is cut off or half recorded, then leaves; its number is free for
// a user started later. It may be called before or during Run, from any
// goroutine.
func (e *Engine) SetUsers(n int, rate float64) error {
	if e.plan.Model != Closed {
		return errors.New("users: the load has an open model (arrival rate); set the arrival rate")
	}
	if err := checkRate("spawn_rate", rate); err != nil {
		return err
	}
	if n < 0 {
		return fmt.Errorf("users: %d: want 0 or more", n)
	}
	if err := e.checkRows("users", n); err != nil {
		return err
	}
	e.ctl.set(n, rate)
	return nil
}

// SetArrivalRate changes the open model's load: from now on flows start at
// rate per second (the first 1/rate from now), with at most maxUsers users
// to run them. Users beyond a lowered maxUsers leave once their flow is
// over. It may be called before or during Run, from any goroutine.
func (e *Engine) SetArrivalRate(rate float64, maxUsers int) error {
	if e.plan.Model != Open {
		return errors.New("arrival_rate: the load has a closed model (users); set the users")
	}
	if err := checkRate("arrival_rate", rate); err != nil {
		return err
	}
	if maxUsers < 1 {
		return fmt.Errorf("max_users: %d: want 1 or more", maxUsers)
	}
	if err := e.checkRows("max_users", maxUsers); err != nil {
		return err
	}
	e.ctl.set(maxUsers, rate)
	return nil
}

// Target returns the load the engine follows: the closed model's users and
// spawn rate, or the open model's max users and arrival rate.
func (e *Engine) Target() (users int, rate float64) {
	t := e.ctl.get()
	return t.users, t.rate
}

func checkRate(name string, r float64) error {
	if math.IsNaN(r) || math.IsInf(r, 0) || r <= 0 {
		return fmt.Errorf("%s: %v: want a rate above 0 per second", name, r)
	}
	return nil
}

// checkRows refuses more users than a unique assignment has rows for: two
// users would log in with the same account.
func (e *Engine) checkRows(name string, n int) error {
	p := e.plan
	if p.Assignment != Unique || len(p.Rows) == 0 || n == 0 {
		return nil
	}
	if need := p.Segment.global(n - 1); need > len(p.Rows) {
		return fmt.Errorf("%s: %d: the users file has %d rows and user_assignment is unique (one account per user)", name, n, len(p.Rows))
	}
	return nil
}

// slots number the virtual users: a user takes the lowest free slot j (its
// number is Segment.global(j)) and frees it when its goroutine ends, so
// that a load going down and up again reuses the numbers, and the rows of
// the users file, of the users that left.
type slots struct {
	mu sync.Mutex
	// busy marks the slots of users whose goroutine runs.
	busy []bool
	// quit holds the stop channel of each active user (closed model):
	// nil once the user was told to stop, or for a free slot.
	quit   []chan struct{}
	active int // users not told to stop
}

// take returns the lowest free slot and its user's stop channel.
func (s *slots) take() (int, chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := 0
	for j < len(s.busy) && s.busy[j] {
		j++
	}
	if j == len(s.busy) {
		s.busy = append(s.busy, false)
		s.quit = append(s.quit, nil)
	}
	q := make(chan struct{})
	s.busy[j], s.quit[j] = true, q
	s.active++
	return j, q
}

// stopLast tells the active user of the highest slot to stop.
func (s *slots) stopLast() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for j := len(s.quit) - 1; j >= 0; j-- {
		if s.quit[j] != nil {
			close(s.quit[j])
			s.quit[j] = nil
			s.active--
			return
		}
	}
}

// free frees slot j once its user's goroutine is over.
func (s *slots) free(j int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.quit[j] != nil {
		s.active--
		s.quit[j] = nil
	}
	s.busy[j] = false
}

// count returns the number of active users: running and not told to stop.
func (s *slots) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active
}

// transports share connections between users: the first serves as many
// users as the plan has, each later one the users a raised load added
// beyond the ones before. One transport for every user would keep only the
// plan's number of idle connections: the users beyond it would open a new
// connection for most requests, and their latencies would measure that.
type transports struct {
	mu       sync.Mutex
	insecure bool
	hosts    session.Hosts
	pools    []*http.Transport
	bounds   []int // pools[i] serves the slots below bounds[i]
	// bound holds the transports of pools[i]'s slots that dial from one
	// source address (LocalIPs), created as users need them: a kept-alive
	// connection must only be reused by a user of its address.
	bound map[boundPool]*http.Transport
}

type boundPool struct {
	i    int
	from netip.Addr
}

// forSlot returns the transport of slot j, when the load wants users,
// dialling from the source address from (the system's choice when zero).
func (t *transports) forSlot(j, users int, from netip.Addr) *http.Transport {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := 0
	for i < len(t.bounds) && j >= t.bounds[i] {
		i++
	}
	if i == len(t.bounds) {
		lo := t.bounds[len(t.bounds)-1]
		hi := max(users, j+1)
		t.pools = append(t.pools, session.NewTransport(hi-lo, t.insecure, t.hosts))
		t.bounds = append(t.bounds, hi)
	}
	if !from.IsValid() {
		return t.pools[i]
	}
	k := boundPool{i, from}
	if tr := t.bound[k]; tr != nil {
		return tr
	}
	lo := 0
	if i > 0 {
		lo = t.bounds[i-1]
	}
	if t.bound == nil {
		t.bound = map[boundPool]*http.Transport{}
	}
	tr := session.NewTransportFrom(from, t.bounds[i]-lo, t.insecure, t.hosts)
	t.bound[k] = tr
	return tr
}

func (t *transports) closeIdle() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range t.pools {
		p.CloseIdleConnections()
	}
	for _, p := range t.bound {
		p.CloseIdleConnections()
	}
}

// waitUntil waits until at, the next change of the load (changed closed) or
// the end of ctx; it reports which.
func waitUntil(ctx context.Context, changed <-chan struct{}, at time.Time) waitEnd {
	if ctx.Err() != nil {
		return waitDone
	}
	select {
	case <-changed:
		return waitChanged
	default:
	}
	d := time.Until(at)
	if d <= 0 {
		return waitTime
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return waitDone
	case <-changed:
		return waitChanged
	case <-t.C:
		return waitTime
	}
}

type waitEnd int

const (
	waitTime waitEnd = iota
	waitChanged
	waitDone
)
