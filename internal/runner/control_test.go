package runner

import (
	"context"
	"math"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/rundir"
	"github.com/stampede-load/stampede/internal/testserver"
)

// userWatch is an Observer that keeps the load changes it is shown and the
// most users a second saw.
type userWatch struct {
	recorder
	umu      sync.Mutex // guards maxUsers
	maxUsers int
}

func (u *userWatch) Second(s *SecondView) {
	u.recorder.Second(s)
	u.umu.Lock()
	u.maxUsers = max(u.maxUsers, s.Users)
	u.umu.Unlock()
}

// A run with a Control that changes the load at 1 s and stops the run at
// 3 s: the users follow the change, the run ends at the stop as Ctrl-C
// ends it (every file written, marked partial), the change and the stop
// are markers in timeline.jsonl, meta.json lists the load's changes and
// says who stopped the run, the observers were told of each change.
func TestControlSetLoadAndStop(t *testing.T) {
	ts := httptest.NewServer(testserver.New("pw"))
	defer ts.Close()
	plan, err := load.QuickPlan(ts.URL+"/", 2, 10, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := NewControl()
	if _, err := c.SetLoad(LoadChange{Users: 5}); err == nil || !strings.Contains(err.Error(), "not started") {
		t.Errorf("SetLoad before the start: %v, want refused", err)
	}
	dir := filepath.Join(t.TempDir(), "run")
	watch := &userWatch{}
	type step struct {
		got LoadChange
		err error
	}
	steps := make(chan step, 4)
	go func() {
		time.Sleep(time.Second)
		_, err := c.SetLoad(LoadChange{ArrivalRate: 10, By: "ui"})
		steps <- step{err: err}
		got, err := c.SetLoad(LoadChange{Users: 6, SpawnRate: 20, By: "ui"})
		steps <- step{got, err}
		time.Sleep(2 * time.Second)
		c.Stop("ui")
		c.Stop("api") // a second stop changes nothing
	}()
	start := time.Now()
	res, err := Run(context.Background(), plan, Options{Dir: dir, NoDiagnose: true, Observers: []Observer{watch}, Control: c})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if s := <-steps; s.err == nil || !strings.HasPrefix(s.err.Error(), "arrival_rate: the run has a closed model") {
		t.Errorf("arrival rate in a closed run: %v, want refused naming arrival_rate", s.err)
	}
	s := <-steps
	if s.err != nil || s.got.Users != 6 || s.got.SpawnRate != 20 || s.got.By != "ui" {
		t.Errorf("SetLoad: %+v, %v: want 6 users at 20/s by ui", s.got, s.err)
	}
	if took > 6*time.Second || !res.Partial {
		t.Errorf("run took %v, partial %v: want stopped at about 3 s, partial", took, res.Partial)
	}
	if _, err := c.SetLoad(LoadChange{Users: 3}); err == nil || !strings.Contains(err.Error(), "over") {
		t.Errorf("SetLoad after the end: %v, want refused", err)
	}
	if got := c.Load(); got.Users != 6 || c.Model() != "closed" {
		t.Errorf("Load %+v, Model %q: want 6 users, closed", got, c.Model())
	}

	meta, err := rundir.ReadMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !meta.Partial || meta.EndReason != "stopped by ui" || meta.End.IsZero() {
		t.Errorf("meta.json: partial %v, end reason %q, end %v: want partial, stopped by ui", meta.Partial, meta.EndReason, meta.End)
	}
	lc := meta.LoadChanges
	if len(lc) != 2 || lc[0].By != "plan" || lc[0].Users != 2 || lc[0].SpawnRate != 10 ||
		lc[1].By != "ui" || lc[1].Users != 6 || lc[1].SpawnRate != 20 || !lc[1].T.After(lc[0].T) {
		t.Errorf("meta.json load_changes %+v: want the plan's 2 users, then 6 by ui", lc)
	}

	// The diagnosis reads the change as a step of the load.
	in, err := LoadInput(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st := in.Load.Steps; len(st) != 1 || st[0].Users != 6 || st[0].SpawnRate != 20 || st[0].By != "ui" || in.Load.Users != 2 {
		t.Errorf("diagnosis input: load %d users, steps %+v: want the plan's 2, then a step to 6 by ui", in.Load.Users, st)
	}

	tl, err := rundir.ReadTimeline(dir)
	if err != nil {
		t.Fatal(err)
	}
	var marks []stampede.Sample
	for _, x := range tl {
		if x.Source == ControlSource {
			marks = append(marks, x)
		}
	}
	if len(marks) != 2 ||
		marks[0].Info["action"] != "load" || marks[0].Info["by"] != "ui" || marks[0].Values["users"] != 6 || marks[0].Values["spawn_rate"] != 20 ||
		marks[1].Info["action"] != "stop" || marks[1].Info["by"] != "ui" || marks[1].Values["users"] != 6 {
		t.Errorf("timeline control markers %+v: want the load change to 6 users, then the stop, by ui", marks)
	}
	if len(marks) == 2 {
		if at := marks[1].Time.Sub(start); at < 2500*time.Millisecond || at > 5*time.Second {
			t.Errorf("stop marker at %v from the start, want about 3 s", at)
		}
	}

	watch.umu.Lock()
	maxUsers := watch.maxUsers
	watch.umu.Unlock()
	watch.recorder.mu.Lock()
	loads := watch.loads
	watch.recorder.mu.Unlock()
	if len(loads) != 2 || loads[0].By != "plan" || loads[0].Users != 2 || loads[1].By != "ui" || loads[1].Users != 6 {
		t.Errorf("observers' LoadChanged %+v: want the plan's 2 users, then 6 by ui", loads)
	}
	if maxUsers != 6 {
		t.Errorf("at most %d users in a second, want the 6 asked for", maxUsers)
	}
}

// SetLoad refuses a change out of bounds or that does not fit the model,
// naming the field; the open model takes arrival_rate and max_users.
func TestControlSetLoadOpenAndBounds(t *testing.T) {
	ts := httptest.NewServer(testserver.New("pw"))
	defer ts.Close()
	sc, err := load.ParseScenario("s.yaml", []byte("target: "+ts.URL+"\nload: {arrival_rate: 5/s, max_users: 10, duration: 3s}\ntasks:\n  - {name: home, steps: [{get: /}]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := sc.Compile()
	if err != nil {
		t.Fatal(err)
	}
	c := NewControl()
	type result struct {
		name string
		got  LoadChange
		err  error
	}
	results := make(chan result, 16)
	go func() {
		for c.Model() == "" {
			time.Sleep(10 * time.Millisecond)
		}
		for _, x := range []struct {
			name string
			ch   LoadChange
		}{
			{"users", LoadChange{Users: 5}},
			{"spawn_rate", LoadChange{SpawnRate: 5}},
			{"nothing", LoadChange{By: "api"}},
			{"negative", LoadChange{ArrivalRate: -1}},
			{"nan", LoadChange{ArrivalRate: math.NaN()}},
			{"inf", LoadChange{ArrivalRate: math.Inf(1)}},
			{"too many", LoadChange{MaxUsers: MaxControlUsers + 1}},
			{"rate", LoadChange{ArrivalRate: 20}},
			{"max", LoadChange{MaxUsers: 30, By: "ui"}},
		} {
			got, err := c.SetLoad(x.ch)
			results <- result{x.name, got, err}
		}
		close(results)
	}()
	if _, err := Run(context.Background(), plan, Options{Dir: filepath.Join(t.TempDir(), "run"), NoDiagnose: true, Control: c}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"users":      "users: the run has an open model",
		"spawn_rate": "spawn_rate: the run has an open model",
		"nothing":    "arrival_rate: want a new arrival rate or max_users",
		"negative":   "arrival_rate: -1: want",
		"nan":        "arrival_rate: NaN: want",
		"inf":        "arrival_rate: +Inf: want",
		"too many":   "max_users: 1000001: want",
	}
	for r := range results {
		switch r.name {
		case "rate":
			if r.err != nil || r.got.ArrivalRate != 20 || r.got.MaxUsers != 10 || r.got.By != "api" {
				t.Errorf("arrival rate 20: %+v, %v: want 20/s, max 10 kept, by api", r.got, r.err)
			}
		case "max":
			if r.err != nil || r.got.ArrivalRate != 20 || r.got.MaxUsers != 30 || r.got.By != "ui" {
				t.Errorf("max users 30: %+v, %v: want 20/s kept, max 30, by ui", r.got, r.err)
			}
		default:
			if r.err == nil || !strings.HasPrefix(r.err.Error(), want[r.name]) {
				t.Errorf("%s: %v, want %q...", r.name, r.err, want[r.name])
			}
		}
	}
	if c.Model() != "open" {
		t.Errorf("Model %q, want open", c.Model())
	}
}

// A Control stopped before its run starts ends the run at once; a Control
// serves one run only.
func TestControlStopBeforeStart(t *testing.T) {
	ts := httptest.NewServer(testserver.New("pw"))
	defer ts.Close()
	plan, err := load.QuickPlan(ts.URL+"/", 1, 1, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := NewControl()
	c.Stop("api")
	dir := filepath.Join(t.TempDir(), "run")
	start := time.Now()
	res, err := Run(context.Background(), plan, Options{Dir: dir, NoDiagnose: true, Control: c})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*time.Second || !res.Partial {
		t.Errorf("took %v, partial %v: want ended at once, partial", took, res.Partial)
	}
	meta, err := rundir.ReadMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	if meta.EndReason != "stopped by api" {
		t.Errorf("end reason %q, want stopped by api", meta.EndReason)
	}
	if _, err := Run(context.Background(), plan, Options{Dir: dir, NoDiagnose: true, Control: c}); err == nil {
		t.Errorf("a second run with the same Control: no error")
	}
}
