package runner_test

import (
	"context"
	"fmt"
	"time"

	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/runner"
)

// A run of 10 users getting a page for 30 seconds into runs/example, with
// the host sampled and the progress printed every 5 seconds.
func ExampleRun() {
	plan, err := load.QuickPlan("http://127.0.0.1:8000/", 10, 5, 30*time.Second)
	if err != nil {
		panic(err)
	}
	o := runner.Options{Dir: "runs/example", Probes: runner.Probes{Host: true}, ProgressEvery: 5 * time.Second,
		Progress: func(s runner.Status) { fmt.Println(s.Metrics.Elapsed, s.Users, s.Metrics.Requests) }}
	res, err := runner.Run(context.Background(), plan, o)
	if err != nil {
		panic(err)
	}
	fmt.Println(res.Dir, res.Summary.Aggregated.Requests, res.FailedThresholds())
}

// A run directory whose records were put together from elsewhere gets its
// summary, Locust CSVs, diagnosis and report.
func ExampleFinish() {
	res, err := runner.Finish(context.Background(), "runs/merged", runner.FinishOptions{})
	if err != nil {
		panic(err)
	}
	fmt.Println(res.Summary.Aggregated.Requests, res.Diagnosis.Verdict)
}
