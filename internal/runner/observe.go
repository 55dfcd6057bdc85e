package runner

import (
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/metrics"
)

// Observer sees a run as it goes: the live page (stampede run --ui) and the
// metrics sent out (--metrics, --otlp) are observers. Run calls each of
// Options.Observers:
//
//   - Result for every request, on the recorder goroutine, after the
//     request was recorded: it must be cheap and must not block (count,
//     observe a histogram; never I/O);
//   - Second once a second, on the recorder goroutine, with the second's
//     history rows and the failure groups so far (both shared: read them,
//     do not keep pointers into them past the call);
//   - Sample for every probe reading and Evidence for every log event, as
//     written to timeline.jsonl and evidence.jsonl (masked), from the
//     probes' and the log followers' goroutines;
//   - LoadChanged for every change of the load made through the run's
//     Control (and once at the start, with the plan's load);
//   - End once the run's files are written, with the result (its
//     diagnosis included when one was made).
//
// Calls of one kind come from one goroutine at a time, but different
// kinds may come concurrently: an observer guards its own state.
type Observer interface {
	Result(r *stampede.Result)
	Second(s *SecondView)
	Sample(s stampede.Sample)
	Evidence(e stampede.Evidence)
	LoadChanged(c LoadChange)
	End(r *Result)
}

// SecondView is one closed second of a run, as observers see it.
type SecondView struct {
	// Second holds the history rows of the second (per endpoint and the
	// Aggregated row), as the Locust history and summary are made of.
	*metrics.Second
	// Failures are the failure groups since the start of the run.
	Failures []metrics.Failure
	// Users, InFlight and Dropped are the engine's counts at the tick.
	Users    int
	InFlight int
	Dropped  int64
	// Start is when the run started.
	Start time.Time
}

// LoadChange is a change of the load of a running run, or the plan's load
// at its start (By "plan"). Zero fields keep their value: Users and
// SpawnRate for the closed model, ArrivalRate and MaxUsers for the open
// one.
type LoadChange struct {
	// Time is when the change was made.
	Time time.Time `json:"t"`
	// Users is the number of virtual users wanted (closed model).
	Users int `json:"users,omitempty"`
	// SpawnRate is how many users start (or stop) per second on the way.
	SpawnRate float64 `json:"spawn_rate,omitempty"`
	// ArrivalRate is the number of flow starts per second (open model).
	ArrivalRate float64 `json:"arrival_rate,omitempty"`
	// MaxUsers caps the concurrent users of the open model.
	MaxUsers int `json:"max_users,omitempty"`
	// By says who made it: "plan", "ui" (the live page), "api" (a script
	// through the HTTP endpoints).
	By string `json:"by"`
}

// observers fans each call out to every observer.
type observers []Observer

func (os observers) result(r *stampede.Result) {
	for _, o := range os {
		o.Result(r)
	}
}

func (os observers) second(s *SecondView) {
	for _, o := range os {
		o.Second(s)
	}
}

func (os observers) sample(s stampede.Sample) {
	for _, o := range os {
		o.Sample(s)
	}
}

func (os observers) evidence(e stampede.Evidence) {
	for _, o := range os {
		o.Evidence(e)
	}
}

func (os observers) loadChanged(c LoadChange) {
	for _, o := range os {
		o.LoadChanged(c)
	}
}

func (os observers) end(r *Result) {
	for _, o := range os {
		o.End(r)
	}
}
