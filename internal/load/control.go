package load

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
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
// number is Segment.global(j)) and frees it when it ends, so that a load
// going down and up again reuses the numbers, and the rows of the users
// file, of the users that left. Taking and freeing cost O(log n): a load of
// 100,000 users starts without scanning the slots before each.
type slots struct {
	mu sync.Mutex
	// busy marks the slots of users that have not ended.
	busy []bool
	// user holds each closed-model user, so that it can be told to stop;
	// told marks those told already.
	user []*vu
	told []bool
	// free holds the free slots below len(busy), lowest first.
	free   slotHeap
	active int // users not told to stop
}

// take returns the lowest free slot, counted as active.
func (s *slots) take() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := len(s.busy)
	if len(s.free) > 0 {
		j = heap.Pop(&s.free).(int)
	} else {
		s.busy = append(s.busy, false)
		s.user = append(s.user, nil)
		s.told = append(s.told, false)
	}
	s.busy[j], s.user[j], s.told[j] = true, nil, false
	s.active++
	return j
}

// attach records the closed-model user of slot j, so that stopLast and
// stopAll can reach it.
func (s *slots) attach(j int, v *vu) {
	s.mu.Lock()
	s.user[j] = v
	s.mu.Unlock()
}

// stopLast tells the active user of the highest slot to stop: it ends at
// once in think time, after its task otherwise.
func (s *slots) stopLast() {
	s.mu.Lock()
	var v *vu
	for j := len(s.busy) - 1; j >= 0; j-- {
		if s.busy[j] && !s.told[j] {
			s.told[j] = true
			s.active--
			v = s.user[j]
			break
		}
	}
	s.mu.Unlock()
	if v != nil {
		v.stop() // outside the lock: a user in think time ends, and frees its slot, at once
	}
}

// stopAll tells every closed-model user to stop (the end of the run).
func (s *slots) stopAll() {
	s.mu.Lock()
	var vs []*vu
	for j, v := range s.user {
		if s.busy[j] && v != nil {
			vs = append(vs, v)
		}
	}
	s.mu.Unlock()
	for _, v := range vs {
		v.stop()
	}
}

// release frees slot j once its user has ended.
func (s *slots) release(j int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.told[j] {
		s.active--
	}
	s.busy[j], s.user[j], s.told[j] = false, nil, false
	heap.Push(&s.free, j)
}

// count returns the number of active users: running and not told to stop.
func (s *slots) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active
}

// slotHeap is a min-heap of slot numbers (container/heap).
type slotHeap []int

func (h slotHeap) Len() int           { return len(h) }
func (h slotHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h slotHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *slotHeap) Push(x any)        { *h = append(*h, x.(int)) }
func (h *slotHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
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
