package probe

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/stampede-load/stampede"
)

// Options configures a Sampler. The zero value is valid.
type Options struct {
	// Interval between readings; 0 means 1s.
	Interval time.Duration
	// MaxBackoff caps the wait before retrying a failing probe; 0 means 8s.
	// The wait doubles from Interval on each consecutive failure.
	MaxBackoff time.Duration
	// Timeout bounds one reading; 0 means Interval, at least 1s.
	Timeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 8 * time.Second
	}
	if o.MaxBackoff < o.Interval {
		o.MaxBackoff = o.Interval
	}
	if o.Timeout <= 0 {
		o.Timeout = max(o.Interval, time.Second)
	}
	return o
}

// Sampler reads a set of probes every interval until its context ends or
// Close is called. It owns its goroutine and the probes.
type Sampler struct {
	opts   Options
	emit   func(stampede.Sample)
	probes []*state
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	err    error
}

// state is the backoff bookkeeping of one probe.
type state struct {
	p     Probe
	fails int
	next  time.Time // no reading before this time
}

// Start starts sampling probes at once and then every opts.Interval. Each
// tick reads the due probes concurrently and then calls emit with their
// samples, in the order of probes, from a single goroutine, so emit sees
// samples in time order and needs no locking. A failed reading is emitted
// as a Sample with Err set, and the probe is next read after a backoff
// that doubles from Interval up to MaxBackoff.
func Start(ctx context.Context, opts Options, emit func(stampede.Sample), probes ...Probe) *Sampler {
	ctx, cancel := context.WithCancel(ctx)
	s := &Sampler{opts: opts.withDefaults(), emit: emit, cancel: cancel}
	for _, p := range probes {
		s.probes = append(s.probes, &state{p: p})
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.run(ctx)
	}()
	return s
}

func (s *Sampler) run(ctx context.Context) {
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	s.tick(ctx, time.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.tick(ctx, now)
		}
	}
}

// tick reads every due probe at now and emits the samples.
func (s *Sampler) tick(ctx context.Context, now time.Time) {
	out := make([][]stampede.Sample, len(s.probes))
	var wg sync.WaitGroup
	for i, st := range s.probes {
		if now.Before(st.next) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = s.read(ctx, st, now)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return // stopping: a reading cut short by Close is not evidence
	}
	for _, smps := range out {
		for _, smp := range smps {
			s.emit(smp)
		}
	}
}

// read takes one reading of a probe: one sample, or one per source of a
// MultiProbe. A failure is a sample with Err set (one per source the
// failure stands for) and starts the backoff.
func (s *Sampler) read(ctx context.Context, st *state, now time.Time) []stampede.Sample {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	var smps []stampede.Sample
	var err error
	if mp, ok := st.p.(MultiProbe); ok {
		smps, err = mp.SampleAll(ctx, now)
		if err != nil && len(smps) == 0 {
			smps = []stampede.Sample{{}}
		}
	} else {
		var smp stampede.Sample
		smp, err = st.p.Sample(ctx, now)
		smp.Source = st.p.Name()
		smps = []stampede.Sample{smp}
	}
	for i := range smps {
		smp := &smps[i]
		if smp.Source == "" {
			smp.Source = st.p.Name()
		}
		if smp.Time.IsZero() {
			smp.Time = now
		}
		if err != nil {
			smp.Err = ErrText(err)
		} else if smp.Err != "" {
			smp.Err = ErrText(errors.New(smp.Err))
		}
	}
	if err != nil {
		st.fails++
		st.next = now.Add(s.backoff(st.fails))
		return smps
	}
	st.fails, st.next = 0, time.Time{}
	return smps
}

// backoff returns the wait after the n-th consecutive failure: Interval,
// 2×, 4×, … capped at MaxBackoff. The first retry comes at the next tick.
func (s *Sampler) backoff(n int) time.Duration {
	d := s.opts.Interval
	for i := 1; i < n && d < s.opts.MaxBackoff; i++ {
		d *= 2
	}
	// Ticks come every Interval; a retry due a hair after a tick would
	// wait one more, so aim slightly early.
	return min(d, s.opts.MaxBackoff) - s.opts.Interval/10
}

// Close stops sampling, waits for the sampler's goroutine and closes the
// probes. It is safe to call more than once.
func (s *Sampler) Close() error {
	s.once.Do(func() {
		s.cancel()
		s.wg.Wait()
		var errs []error
		for _, st := range s.probes {
			if err := st.p.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		s.err = errors.Join(errs...)
	})
	return s.err
}
