package runner

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/rundir"
)

// MaxControlUsers is the most virtual users (closed model) or max users
// (open model) a change of the load may ask for.
const MaxControlUsers = 1_000_000

// MaxControlRate is the highest spawn or arrival rate, per second, a change
// of the load may ask for.
const MaxControlRate = 1_000_000.0

// Control changes a running run's load and stops it; nil Options.Control
// means neither is possible. Safe for concurrent use.
//
// A Control serves one run: Run attaches it at its start and detaches it
// at its end. Until the run starts, Model is "" and Load the zero
// LoadChange; SetLoad is refused before the start and after the end. Stop
// before the start is kept: the run then ends as soon as it starts.
type Control struct {
	// seq orders the changes: one is applied and recorded (timeline,
	// meta.json, observers) before the next starts. It is held while the
	// observers' LoadChanged runs: an observer must not call SetLoad or
	// Stop from LoadChanged.
	seq sync.Mutex

	mu      sync.Mutex // guards the fields below
	state   controlState
	model   string
	load    LoadChange
	stopped string // who stopped the run, "" until then
	used    bool   // Run took it (begin)
	cancel  func() // ends the run's context; set by begin
	run     controlHooks
}

type controlState int

const (
	controlIdle controlState = iota
	controlRunning
	controlEnded
)

// controlHooks are how a Control reaches its run; Run sets them.
type controlHooks struct {
	// apply changes the engine's load to ch (complete: no zero field
	// left to keep), returning an error when it cannot.
	apply func(ch LoadChange) error
	// record writes a change's marker (timeline, meta.json, observers);
	// action is "load" or "stop".
	record func(ch LoadChange, action string)
	// noLoad, when not "", says why this run's load cannot change (the
	// observer of a split load makes none).
	noLoad string
}

// NewControl returns a Control for one run, to be given in Options.Control.
func NewControl() *Control { return &Control{} }

// Stop ends the run as Ctrl-C does: every file written, marked partial,
// EndReason "stopped by ui|api". by is "ui" or "api". Stopping a run that
// is over, or stopped already, does nothing.
func (c *Control) Stop(by string) {
	if by == "" {
		by = "api"
	}
	c.seq.Lock()
	defer c.seq.Unlock()
	c.mu.Lock()
	if c.stopped != "" || c.state == controlEnded {
		c.mu.Unlock()
		return
	}
	c.stopped = by
	state, hooks, cur, cancel := c.state, c.run, c.load, c.cancel
	c.mu.Unlock()
	if state == controlRunning {
		cur.Time, cur.By = time.Now(), by
		hooks.record(cur, "stop")
	}
	if cancel != nil {
		cancel()
	}
}

// SetLoad changes the load: closed model Users (and SpawnRate, the rate of
// the ramp up or down), open model ArrivalRate (and MaxUsers); zero fields
// keep their value. It returns the load now in force, or an error naming
// the field when the change does not fit the model or the run is not
// running (before its start, after its end).
//
// ch.By says who asks ("ui" or "api"; "" is "api"); ch.Time is set by
// SetLoad. Users and MaxUsers go up to MaxControlUsers, rates to
// MaxControlRate; a negative or not finite value is an error. Users 0 is
// "keep": to stop the load, Stop the run.
func (c *Control) SetLoad(ch LoadChange) (LoadChange, error) {
	if err := checkChange(ch); err != nil {
		return c.Load(), err
	}
	c.seq.Lock()
	defer c.seq.Unlock()
	c.mu.Lock()
	state, model, hooks, cur, stopped := c.state, c.model, c.run, c.load, c.stopped
	c.mu.Unlock()
	switch {
	case state == controlIdle:
		return cur, errors.New("load: the run has not started")
	case state == controlEnded:
		return cur, errors.New("load: the run is over")
	case stopped != "":
		return cur, fmt.Errorf("load: the run is stopping (stopped by %s)", stopped)
	case hooks.noLoad != "":
		return cur, errors.New("load: " + hooks.noLoad)
	}
	if model == "open" {
		if ch.Users != 0 {
			return cur, errors.New("users: the run has an open model (arrival rate); set arrival_rate and max_users")
		}
		if ch.SpawnRate != 0 {
			return cur, errors.New("spawn_rate: the run has an open model (arrival rate); set arrival_rate and max_users")
		}
		if ch.ArrivalRate == 0 && ch.MaxUsers == 0 {
			return cur, errors.New("arrival_rate: want a new arrival rate or max_users")
		}
	} else {
		if ch.ArrivalRate != 0 {
			return cur, errors.New("arrival_rate: the run has a closed model (users); set users")
		}
		if ch.MaxUsers != 0 {
			return cur, errors.New("max_users: the run has a closed model (users); set users")
		}
		if ch.Users == 0 && ch.SpawnRate == 0 {
			return cur, errors.New("users: want a new number of users or spawn_rate")
		}
	}
	next := cur
	if ch.Users != 0 {
		next.Users = ch.Users
	}
	if ch.SpawnRate != 0 {
		next.SpawnRate = ch.SpawnRate
	}
	if ch.ArrivalRate != 0 {
		next.ArrivalRate = ch.ArrivalRate
	}
	if ch.MaxUsers != 0 {
		next.MaxUsers = ch.MaxUsers
	}
	next.By = ch.By
	if next.By == "" {
		next.By = "api"
	}
	next.Time = time.Now()
	if err := hooks.apply(next); err != nil {
		return cur, err
	}
	c.mu.Lock()
	c.load = next
	c.mu.Unlock()
	hooks.record(next, "load")
	return next, nil
}

// checkChange reports a field out of bounds, by its JSON name.
func checkChange(ch LoadChange) error {
	users := func(name string, n int) error {
		if n < 0 || n > MaxControlUsers {
			return fmt.Errorf("%s: %d: want 1 to %d (0 keeps the value)", name, n, MaxControlUsers)
		}
		return nil
	}
	rate := func(name string, r float64) error {
		if math.IsNaN(r) || math.IsInf(r, 0) || r < 0 || r > MaxControlRate {
			return fmt.Errorf("%s: %v: want a rate above 0 and at most %g per second (0 keeps the value)", name, r, MaxControlRate)
		}
		return nil
	}
	return errors.Join(users("users", ch.Users), rate("spawn_rate", ch.SpawnRate),
		rate("arrival_rate", ch.ArrivalRate), users("max_users", ch.MaxUsers))
}

// Load is the load in force (the plan's until a change).
func (c *Control) Load() LoadChange {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.load
}

// Model is "closed" or "open" ("" until the run starts).
func (c *Control) Model() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.model
}

// begin gives c the cancel function of the context of the run that takes
// it, called at once when the run was stopped already. A Control serves
// one run: a second is an error.
func (c *Control) begin(cancel func()) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.used {
		return errors.New("runner: the Control served another run already: give each run its own (NewControl)")
	}
	c.used, c.cancel = true, cancel
	if c.stopped != "" {
		cancel()
	}
	return nil
}

// start attaches c to a run of model whose plan's load is plan, and reports
// whether the run was stopped before it started (by whom).
func (c *Control) start(model string, plan LoadChange, hooks controlHooks) (stoppedBy string) {
	c.seq.Lock()
	defer c.seq.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.state, c.model, c.load, c.run = controlRunning, model, plan, hooks
	return c.stopped
}

// end detaches c from its run: SetLoad is refused from now on. It reports
// who stopped the run ("" when nobody did).
func (c *Control) end() (stoppedBy string) {
	c.seq.Lock()
	defer c.seq.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.state = controlEnded
	c.run, c.cancel = controlHooks{}, nil
	return c.stopped
}

// planLoadChange is the plan's load at start, as the observers and
// meta.json's load_changes see it.
func planLoadChange(p *load.Plan, start time.Time) LoadChange {
	if p.Model == load.Open {
		return LoadChange{Time: start, ArrivalRate: p.ArrivalRate, MaxUsers: p.Users, By: "plan"}
	}
	return LoadChange{Time: start, Users: p.Users, SpawnRate: p.SpawnRate, By: "plan"}
}

func metaLoadChange(c LoadChange) rundir.LoadChange {
	return rundir.LoadChange{T: c.Time, Users: c.Users, SpawnRate: c.SpawnRate, ArrivalRate: c.ArrivalRate, MaxUsers: c.MaxUsers, By: c.By}
}

// controlSample is the marker of a change (action "load") or of a stop
// (action "stop") in timeline.jsonl: source "control", the load in force
// after it (the model's two fields) and who made it:
//
//	{"t":"...","source":"control","values":{"users":200,"spawn_rate":10},"info":{"by":"ui","action":"load"}}
func controlSample(c LoadChange, action string) stampede.Sample {
	v := map[string]float64{}
	if c.ArrivalRate > 0 || c.MaxUsers > 0 {
		v["arrival_rate"], v["max_users"] = c.ArrivalRate, float64(c.MaxUsers)
	} else {
		v["users"], v["spawn_rate"] = float64(c.Users), c.SpawnRate
	}
	return stampede.Sample{Time: c.Time, Source: ControlSource, Values: v, Info: map[string]string{"by": c.By, "action": action}}
}

// ControlSource is the timeline.jsonl source of the markers of the changes
// of the load and of a stop (see Control).
const ControlSource = "control"

// noLoad says why a run's load cannot change, "" when it can.
func noLoad(o Options) string {
	if o.ObserveOnly {
		return "the observer of a split load makes no load: change the load of its segments"
	}
	return ""
}
