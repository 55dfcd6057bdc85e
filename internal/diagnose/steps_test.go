package diagnose

import (
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stampede-load/stampede"
)

// stepBefore finds the step up that the symptoms follow: they begin within
// the settling time after the step's ramp, with (almost) none before it.
func TestStepBefore(t *testing.T) {
	t0 := time.Date(2026, 1, 11, 11, 40, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	// slowFrom returns a series of 120 s with 5 symptoms a second from s.
	slowFrom := func(s int) []float64 {
		x := make([]float64, 120)
		for i := s; i < len(x); i++ {
			x[i] = 5
		}
		return x
	}
	closed := LoadFacts{Model: ModelClosed, Users: 10, SpawnRate: 10}
	cases := []struct {
		name   string
		load   LoadFacts
		series []float64
		want   string // the step's words; "" for none
	}{
		{"no step", closed, slowFrom(30), ""},
		{"symptoms right after a step up",
			withSteps(closed, LoadStep{Time: at(30), Users: 40, SpawnRate: 10, By: "ui"}), slowFrom(32),
			"the load went from 10 to 40 users at 00:30 (by ui)"},
		{"symptoms at the end of a long ramp",
			withSteps(closed, LoadStep{Time: at(30), Users: 210, SpawnRate: 10, By: "api"}), slowFrom(60),
			"the load went from 10 to 210 users at 00:30 (by api)"},
		{"symptoms long after the step",
			withSteps(closed, LoadStep{Time: at(30), Users: 40, SpawnRate: 10}), slowFrom(70), ""},
		{"symptoms before the step",
			withSteps(closed, LoadStep{Time: at(30), Users: 40, SpawnRate: 10}), slowFrom(20), ""},
		{"a step down",
			withSteps(closed, LoadStep{Time: at(30), Users: 5, SpawnRate: 10}), slowFrom(31), ""},
		{"the second step up",
			withSteps(closed, LoadStep{Time: at(20), Users: 20, SpawnRate: 10}, LoadStep{Time: at(50), Users: 80, SpawnRate: 30, By: "ui"}), slowFrom(55),
			"the load went from 20 to 80 users at 00:50 (by ui)"},
		{"a change of the spawn rate alone",
			withSteps(closed, LoadStep{Time: at(30), SpawnRate: 50}), slowFrom(31), ""},
		{"open model",
			withSteps(LoadFacts{Model: ModelOpen, Users: 100, ArrivalRate: 20}, LoadStep{Time: at(40), ArrivalRate: 60, MaxUsers: 100, By: "ui"}), slowFrom(45),
			"the load went from 20 to 60 arrivals/s at 00:40 (by ui)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cx := &ctx{in: &Input{Load: c.load}, start: t0, nsec: 120}
			st, ok := cx.stepBefore(c.series)
			got := ""
			if ok {
				got = st.text(cx)
			}
			if got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func withSteps(l LoadFacts, steps ...LoadStep) LoadFacts {
	l.Steps = steps
	return l
}

// stepRun makes a run of 60 s: 10 users, then 40 from 00:30 (a step of
// the load by the page when stepped), each page taking 50 ms until
// slowFrom and about 0.9 s from then on.
func stepRun(stepped bool, slowFrom time.Duration) *Input {
	t0 := time.Date(2026, 1, 11, 11, 40, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(16, 16))
	var rs []stampede.Result
	user := func(u int, from time.Duration) {
		for at := from; at < time.Minute; {
			lat := 40*time.Millisecond + time.Duration(rng.Int64N(int64(20*time.Millisecond)))
			if at >= slowFrom {
				lat = 850*time.Millisecond + time.Duration(rng.Int64N(int64(200*time.Millisecond)))
			}
			if at+lat > time.Minute {
				break
			}
			rs = append(rs, stampede.Result{Start: t0.Add(at), User: u, Name: "GET /items/", Method: "GET", Status: 200, Latency: lat})
			at += lat + 900*time.Millisecond + time.Duration(rng.Int64N(int64(100*time.Millisecond)))
		}
	}
	for u := 1; u <= 10; u++ {
		user(u, time.Duration(u-1)*100*time.Millisecond)
	}
	for u := 11; u <= 40; u++ {
		user(u, 30*time.Second+time.Duration(u-11)*100*time.Millisecond)
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].Start.Before(rs[j].Start) })
	in := NewInput("step", t0, t0.Add(time.Minute), rs)
	in.Load = LoadFacts{Model: ModelClosed, Users: 10, SpawnRate: 10, SourceIPs: 1}
	if stepped {
		in.Load.Steps = []LoadStep{{Time: t0.Add(30 * time.Second), Users: 40, SpawnRate: 10, By: "ui"}}
	}
	return in
}

// The slowness that begins with a step of the load says so; the same
// slowness without a recorded step, or one that began before the step (a
// fault that appeared by itself), does not.
func TestLoadStepNote(t *testing.T) {
	const note = "latency rose after the load went from 10 to 40 users at 00:30 (by ui)"
	cases := []struct {
		name     string
		stepped  bool
		slowFrom time.Duration
		want     bool
	}{
		{"slow from the step", true, 30 * time.Second, true},
		{"slow from the step, no step recorded", false, 30 * time.Second, false},
		{"slow from 00:15, before the step", true, 15 * time.Second, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Diagnose(stepRun(c.stepped, c.slowFrom))
			var slow *stampede.Finding
			for i := range d.Findings {
				if d.Findings[i].ID == IDUnexplainedSlow {
					slow = &d.Findings[i]
				}
			}
			if slow == nil {
				t.Fatalf("no %s finding: %+v", IDUnexplainedSlow, d.Findings)
			}
			got := false
			for _, e := range slow.Evidence {
				if strings.Contains(e.Text, note) {
					got = true
				}
			}
			if got != c.want {
				t.Errorf("note of the step: %v, want %v; evidence %+v", got, c.want, slow.Evidence)
			}
		})
	}
}

// Sessions lost from the moment the load went up are the higher load's
// (a session store out of room), not sessions dropped at once by a
// restart, which the same burst without the step reads as.
func TestSessionLostAfterStep(t *testing.T) {
	t0 := time.Date(2026, 1, 11, 11, 40, 0, 0, time.UTC)
	var rs []stampede.Result
	for s := 0; s < 60; s++ {
		for u := 1; u <= 10; u++ {
			at := t0.Add(time.Duration(s)*time.Second + time.Duration(u)*50*time.Millisecond)
			if s == 0 {
				rs = append(rs, stampede.Result{Start: at, User: u, Name: "[AUTH] Login POST", Method: "POST", Status: 302, Latency: 80 * time.Millisecond})
				continue
			}
			r := stampede.Result{Start: at, User: u, Name: "GET /dashboard/", Method: "GET", Status: 200, Latency: 30 * time.Millisecond}
			if s >= 32 && s < 40 && u%2 == 0 {
				r.Outcome, r.Reason = stampede.FailContent, "redirected to login page: session lost"
			}
			rs = append(rs, r)
		}
	}
	for _, stepped := range []bool{false, true} {
		in := NewInput("lost", t0, t0.Add(time.Minute), rs)
		in.Load = LoadFacts{Model: ModelClosed, Users: 10, SpawnRate: 10, SourceIPs: 1, LoginEndpoints: []string{"[AUTH] Login POST"}}
		if stepped {
			in.Load.Steps = []LoadStep{{Time: t0.Add(30 * time.Second), Users: 40, SpawnRate: 20, By: "api"}}
		}
		d := Diagnose(in)
		var f *stampede.Finding
		for i := range d.Findings {
			if d.Findings[i].ID == IDSessionLost {
				f = &d.Findings[i]
			}
		}
		if f == nil {
			t.Fatalf("stepped %v: no session-lost finding: %+v", stepped, d.Findings)
		}
		all := f.Title + " " + f.Fix
		for _, e := range f.Evidence {
			all += " " + e.Text
		}
		restart := strings.Contains(all, "restart")
		step := strings.Contains(all, "after the load went from 10 to 40 users at 00:30 (by api)")
		if stepped && (!step || strings.Contains(f.Title, "dropped")) {
			t.Errorf("after a step: %q, evidence %+v: want the step named, not a drop", f.Title, f.Evidence)
		}
		if !stepped && (!restart || step) {
			t.Errorf("without a step: %q, evidence %+v: want the restart reading", f.Title, f.Evidence)
		}
	}
}
