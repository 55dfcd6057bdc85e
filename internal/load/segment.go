package load

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Segment names one part of a load split across several generators: the
// Index-th (from 0) of Count. The zero value, and any Count of 1 or less, is
// the whole load.
//
// The split interleaves: segment i runs the whole plan's users (closed
// model) or arrivals (open model) whose 0-based number k has k mod Count =
// i, each at the moment the whole plan would start it, and numbers its
// virtual users as the whole plan would (i+1, i+1+Count, ...). So the
// segments together start exactly the users and arrivals of the whole plan,
// on its schedule: no user is lost or doubled, the ramp of the sum is the
// whole ramp, the users numbers (requests.csv's user column) and the rows of
// a unique users file are disjoint across segments.
type Segment struct {
	Index int
	Count int
}

// ParseSegment parses "i/N", 0 <= i < N.
func ParseSegment(s string) (Segment, error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil {
		return Segment{}, fmt.Errorf("segment %q: want i/N, e.g. 0/3 for the first of three", s)
	}
	sg := Segment{Index: i, Count: n}
	return sg, sg.Validate()
}

// Validate reports a segment that names no part of a load.
func (s Segment) Validate() error {
	if s.Count < 1 || s.Index < 0 || s.Index >= s.Count {
		return fmt.Errorf("segment %d/%d: want i/N with N >= 1 and 0 <= i < N", s.Index, s.Count)
	}
	return nil
}

// String is "i/N".
func (s Segment) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// split reports whether s divides the load (Count > 1).
func (s Segment) split() bool { return s.Count > 1 }

// Share returns the segment's share of total: the number of k in [0, total)
// with k mod Count = Index. The shares of the Count segments sum to total
// and differ by one at most, the larger first (100 over 3: 34, 33, 33).
func (s Segment) Share(total int) int {
	if !s.split() {
		return total
	}
	n := total / s.Count
	if s.Index < total%s.Count {
		n++
	}
	return n
}

// global returns the whole plan's number (from 1) of the segment's j-th
// (from 0) user.
func (s Segment) global(j int) int {
	if !s.split() {
		return j + 1
	}
	return s.Index + j*s.Count + 1
}

// ForSegment returns the plan of segment s of p: its share of the users
// (closed model) or of max_users (open model), the spawn or arrival rate
// divided by s.Count (the segment starts every Count-th user or arrival of
// the whole schedule), and p's users file whole (the segment's users take
// their own rows by their global numbers). p is the whole plan; it is not
// modified. A segment left without a user is an error.
func (p *Plan) ForSegment(s Segment) (*Plan, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if p.Segment.split() {
		return nil, fmt.Errorf("segment %s of a plan that is already segment %s", s, p.Segment)
	}
	c := *p
	c.Segment = s
	if !s.split() {
		return &c, nil
	}
	c.Users = s.Share(p.Users)
	if c.Users == 0 {
		what := "load.users"
		if p.Model == Open {
			what = "load.max_users"
		}
		return nil, fmt.Errorf("segment %s: %s %d is fewer than the %d segments: segment %d would run no user", s, what, p.Users, s.Count, s.Index)
	}
	n := float64(s.Count)
	c.wholeRate = p.SpawnRate
	if p.Model == Open {
		c.wholeRate = p.ArrivalRate
		c.ArrivalRate = p.ArrivalRate / n
	} else {
		c.SpawnRate = p.SpawnRate / n
	}
	return &c, nil
}

// spawnOffset is when, from the start of the load, the closed model starts
// its j-th user (from 0): when the whole plan starts user global(j), at
// (global(j)-1)/rate of the whole plan. Computed from the whole plan's
// rate, the segments' schedules are the whole one's to the nanosecond.
func (p *Plan) spawnOffset(j int) time.Duration {
	return offset(p.Segment.global(j)-1, p.rate(p.SpawnRate))
}

// arrivalOffset is when, from the start of the load, the open model starts
// its i-th flow (from 0): the whole plan's arrival number global(i)-1.
func (p *Plan) arrivalOffset(i int) time.Duration {
	return offset(p.Segment.global(i)-1, p.rate(p.ArrivalRate))
}

// rate returns the whole plan's rate of a segment whose own rate is own.
func (p *Plan) rate(own float64) float64 {
	if p.Segment.split() {
		return p.wholeRate
	}
	return own
}

func offset(k int, rate float64) time.Duration {
	return time.Duration(float64(k) * float64(time.Second) / rate)
}
