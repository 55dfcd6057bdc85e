package probe_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/probe"
)

// counter is a probe that fails while fail() says so.
type counter struct {
	name   string
	fail   func(n int) bool
	calls  atomic.Int32
	closed atomic.Bool
}

func (c *counter) Name() string { return c.name }
func (c *counter) Close() error { c.closed.Store(true); return nil }
func (c *counter) Sample(ctx context.Context, now time.Time) (stampede.Sample, error) {
	n := int(c.calls.Add(1))
	if c.fail(n) {
		return stampede.Sample{}, errors.New("dial postgres://app:hunter2@127.0.0.1:1/app: connection refused")
	}
	return stampede.Sample{Values: map[string]float64{"n": float64(n)}}, nil
}

type collector struct {
	mu sync.Mutex
	s  []stampede.Sample
}

func (c *collector) add(s stampede.Sample) { c.mu.Lock(); c.s = append(c.s, s); c.mu.Unlock() }
func (c *collector) all() []stampede.Sample {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]stampede.Sample(nil), c.s...)
}

// TestSampler runs a healthy probe and one that always fails for 500 ms at
// a 20 ms interval: the healthy one is read at every tick, the failing one
// is reported as Err samples with its password redacted and backed off
// (20, 40, 80, 80 ... ms), samples come in time order, and Close closes
// both probes.
func TestSampler(t *testing.T) {
	ok := &counter{name: "ok", fail: func(int) bool { return false }}
	bad := &counter{name: "bad", fail: func(int) bool { return true }}
	var got collector
	s := probe.Start(context.Background(), probe.Options{Interval: 20 * time.Millisecond, MaxBackoff: 80 * time.Millisecond}, got.add, ok, bad)
	time.Sleep(500 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !ok.closed.Load() || !bad.closed.Load() {
		t.Error("Close did not close the probes")
	}
	samples := got.all()
	var nOK, nBad int
	for i, smp := range samples {
		if i > 0 && smp.Time.Before(samples[i-1].Time) {
			t.Errorf("sample %d at %v is before sample %d at %v", i, smp.Time, i-1, samples[i-1].Time)
		}
		switch smp.Source {
		case "ok":
			nOK++
			if smp.Err != "" {
				t.Errorf("ok probe: Err %q", smp.Err)
			}
		case "bad":
			nBad++
			if smp.Err == "" || strings.Contains(smp.Err, "hunter2") {
				t.Errorf("bad probe: Err %q, want a refusal without the password", smp.Err)
			}
		}
	}
	// Without backoff the failing probe would be read ~25 times.
	if nOK < 15 || nBad < 4 || nBad > 12 {
		t.Errorf("readings: ok %d (want ≥15), bad %d (want 4..12)", nOK, nBad)
	}
	if n := len(samples); n != len(got.all()) {
		t.Errorf("samples emitted after Close returned")
	}
}

// TestSamplerRecovers checks that a probe failing twice is read at every
// tick again once it succeeds.
func TestSamplerRecovers(t *testing.T) {
	flaky := &counter{name: "flaky", fail: func(n int) bool { return n <= 2 }}
	var got collector
	s := probe.Start(context.Background(), probe.Options{Interval: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond}, got.add, flaky)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		var good int
		for _, smp := range got.all() {
			if smp.Err == "" {
				good++
			}
		}
		if good >= 5 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.Close()
	smps := got.all()
	if len(smps) < 7 || smps[0].Err == "" || smps[1].Err == "" || smps[2].Err != "" {
		t.Fatalf("want 2 errors then successes, got %v", smps)
	}
}

func TestErrText(t *testing.T) {
	err := errors.New("connect postgres://app:pw1@h/db failed; token s3cret")
	got := probe.ErrText(err, "s3cret")
	if strings.Contains(got, "pw1") || strings.Contains(got, "s3cret") {
		t.Errorf("ErrText = %q", got)
	}
}

func TestRedacted(t *testing.T) {
	base := errors.New("auth failed for postgres://u:pw@h/db")
	err := probe.Redacted(base)
	if !errors.Is(err, base) || strings.Contains(err.Error(), "pw@") {
		t.Errorf("Redacted = %v (is base: %v)", err, errors.Is(err, base))
	}
	if probe.Redacted(nil) != nil {
		t.Error("Redacted(nil) != nil")
	}
}

// multi is a MultiProbe reading two sources; fail(n) makes the n-th
// reading fail, and part(n) makes only its "db" source fail.
type multi struct {
	calls atomic.Int32
	fail  func(n int) bool
	part  func(n int) bool
}

func (m *multi) Name() string { return "exporter" }
func (m *multi) Close() error { return nil }
func (m *multi) Sample(ctx context.Context, now time.Time) (stampede.Sample, error) {
	smps, err := m.SampleAll(ctx, now)
	if len(smps) == 0 {
		return stampede.Sample{}, err
	}
	return smps[0], err
}
func (m *multi) SampleAll(_ context.Context, _ time.Time) ([]stampede.Sample, error) {
	n := int(m.calls.Add(1))
	switch {
	case m.fail(n) && n == 1:
		return nil, errors.New("scrape http://u:hunter2@127.0.0.1:1/metrics: connection refused")
	case m.fail(n):
		return []stampede.Sample{{Source: "host"}, {Source: "db"}}, errors.New("scrape: connection refused")
	case m.part(n):
		return []stampede.Sample{{Source: "host", Values: map[string]float64{"n": float64(n)}},
			{Source: "db", Err: "db down: postgres://a:hunter2@h/db"}}, nil
	}
	return []stampede.Sample{{Source: "host", Values: map[string]float64{"n": float64(n)}},
		{Source: "db", Values: map[string]float64{"n": float64(n)}}}, nil
}

// TestSamplerMultiProbe: a probe reading two sources emits both in order
// at each tick. Its first reading fails with no source known (reported
// under its Name), the next three fail for both sources they name, the
// fifth succeeds but for "db", whose Err is kept without a backoff;
// passwords are redacted everywhere.
func TestSamplerMultiProbe(t *testing.T) {
	m := &multi{fail: func(n int) bool { return n <= 4 }, part: func(n int) bool { return n == 5 }}
	var got collector
	s := probe.Start(context.Background(), probe.Options{Interval: 10 * time.Millisecond, MaxBackoff: 400 * time.Millisecond}, got.add, m)
	deadline := time.Now().Add(5 * time.Second)
	for len(got.all()) < 13 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	s.Close()
	smps := got.all()
	type row struct {
		source string
		err    bool
		n      float64
	}
	want := []row{{"exporter", true, 0}}
	for range 3 {
		want = append(want, row{"host", true, 0}, row{"db", true, 0})
	}
	want = append(want, row{"host", false, 5}, row{"db", true, 0}, row{"host", false, 6}, row{"db", false, 6})
	if len(smps) < len(want) {
		t.Fatalf("%d samples, want %d or more: %v", len(smps), len(want), smps)
	}
	for i, w := range want {
		smp := smps[i]
		g := row{smp.Source, smp.Err != "", smp.Values["n"]}
		if g != w {
			t.Errorf("sample %d = %+v, want %+v (%v)", i, g, w, smp)
		}
		if strings.Contains(smp.Err, "hunter2") {
			t.Errorf("sample %d: password in %q", i, smp.Err)
		}
		if i > 0 && smp.Time.Before(smps[i-1].Time) {
			t.Errorf("sample %d out of time order", i)
		}
	}
	// The partial failure of the fifth reading did not back off: counted
	// as the fifth failure in a row, it would have delayed the sixth
	// reading by 160 ms less a tenth of the interval; the fourth failure
	// delayed the fifth by 80 ms less that.
	if d := smps[9].Time.Sub(smps[7].Time); d >= 120*time.Millisecond {
		t.Errorf("reading after a partial failure came %v later, want the next tick", d)
	}
	if d := smps[7].Time.Sub(smps[5].Time); d < 70*time.Millisecond {
		t.Errorf("reading after the fourth failure came %v later, want a backoff of 80 ms", d)
	}
}
