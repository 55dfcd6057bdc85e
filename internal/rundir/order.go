package rundir

import (
	"time"

	stampede "github.com/stampede-load/stampede"
)

// DefaultSlack is the disorder EndOrder absorbs by default: a result written
// up to 2 seconds of completions after its turn.
const DefaultSlack = 2 * time.Second

// EndOrder puts a stream of results back into completion order (by End,
// ties in arrival order) with bounded memory. requests.csv is written in
// the order results reach the recorder, which is their completion order but
// for the moments between a user's reading of the clock and its send; a
// merge of several files by their heads keeps that disorder. EndOrder holds
// the results of the last Slack of completions: a result arriving after
// others that completed more than Slack later than it is emitted late
// (at once, out of order), never lost.
//
// The zero value is ready, with DefaultSlack. Push every result, then Flush.
type EndOrder struct {
	// Slack is how far back in completion time a result may arrive and
	// still take its place; 0 is DefaultSlack.
	Slack time.Duration

	h      []ordered         // a min-heap of small keys
	slots  []stampede.Result // the results held, by ordered.slot
	free   []int32           // slots free for reuse
	seq    uint64
	maxEnd int64 // latest End pushed, Unix ns
	max    int   // the most results held at once
}

// ordered is a held result's key; the result itself stays in its slot, so
// the heap moves 24 bytes, not a result's 136 (and its pointers).
type ordered struct {
	end  int64 // Unix ns
	seq  uint64
	slot int32
}

func (a *ordered) less(b *ordered) bool {
	return a.end < b.end || (a.end == b.end && a.seq < b.seq)
}

// Push adds r (copied) and emits, in order, every held result that no
// later arrival can precede: those that completed Slack or more before the
// latest completion pushed so far.
func (o *EndOrder) Push(r *stampede.Result, emit func(*stampede.Result) error) error {
	slack := o.Slack
	if slack <= 0 {
		slack = DefaultSlack
	}
	end := r.End().UnixNano()
	o.seq++
	var slot int32
	if n := len(o.free); n > 0 {
		slot, o.free = o.free[n-1], o.free[:n-1]
		o.slots[slot] = *r
	} else {
		slot = int32(len(o.slots))
		o.slots = append(o.slots, *r)
	}
	o.push(ordered{end: end, seq: o.seq, slot: slot})
	if end > o.maxEnd {
		o.maxEnd = end
	}
	o.max = max(o.max, len(o.h))
	for len(o.h) > 0 && o.h[0].end <= o.maxEnd-int64(slack) {
		if err := o.emitMin(emit); err != nil {
			return err
		}
	}
	return nil
}

// Flush emits every held result, in order.
func (o *EndOrder) Flush(emit func(*stampede.Result) error) error {
	for len(o.h) > 0 {
		if err := o.emitMin(emit); err != nil {
			return err
		}
	}
	return nil
}

// emitMin emits the earliest result held and frees its slot.
func (o *EndOrder) emitMin(emit func(*stampede.Result) error) error {
	x := o.pop()
	err := emit(&o.slots[x.slot])
	o.free = append(o.free, x.slot)
	return err
}

// Held is the most results held at once so far: the memory EndOrder took.
func (o *EndOrder) Held() int { return o.max }

// push and pop keep o.h a binary min-heap of ordered values without
// boxing them in interfaces (container/heap would allocate per result).
func (o *EndOrder) push(x ordered) {
	o.h = append(o.h, x)
	i := len(o.h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !o.h[i].less(&o.h[p]) {
			break
		}
		o.h[i], o.h[p] = o.h[p], o.h[i]
		i = p
	}
}

func (o *EndOrder) pop() ordered {
	top := o.h[0]
	n := len(o.h) - 1
	o.h[0] = o.h[n]
	o.h[n] = ordered{}
	o.h = o.h[:n]
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && o.h[l].less(&o.h[m]) {
			m = l
		}
		if r < n && o.h[r].less(&o.h[m]) {
			m = r
		}
		if m == i {
			break
		}
		o.h[i], o.h[m] = o.h[m], o.h[i]
		i = m
	}
	return top
}
