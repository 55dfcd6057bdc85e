package diagnose_test

import (
	"fmt"
	"time"

	"github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/diagnose"
)

// A Locust run diagnosed from its aggregates and one log event: the 500s
// are PgBouncer's query_wait_timeout, the soft failures allauth's throttle.
func ExampleDiagnose() {
	t0 := time.Date(2026, 1, 11, 11, 40, 0, 0, time.UTC)
	in := &diagnose.Input{
		Run:   "hasil_test_v18",
		Start: t0, End: t0.Add(3 * time.Minute),
		Endpoints: []diagnose.EndpointTotals{
			{Method: "POST", Name: "[AUTH] Login POST", Requests: 100, Failures: 71, Median: 73 * time.Millisecond, P95: 120 * time.Second, Max: 120 * time.Second},
		},
		Failures: []diagnose.FailureGroup{
			{Method: "POST", Name: "[AUTH] Login POST", Reason: "CatchResponseError('login POST HTTP 500')", Count: 45},
			{Method: "POST", Name: "[AUTH] Login POST", Reason: "CatchResponseError('login page returned: Too many failed login attempts. Try again later.')", Count: 26},
		},
		Evidence: []stampede.Evidence{{
			Time: t0.Add(126 * time.Second), Source: "app-errors", Level: "ERROR",
			Message:   "Internal Server Error: /accounts/login/",
			Exception: "psycopg.errors.ProtocolViolation: query_wait_timeout",
			Ref:       "errors.log:1201",
		}},
		Load: diagnose.LoadFacts{Model: diagnose.ModelClosed, Users: 100, Accounts: 100, Assignment: diagnose.AssignUnique, SourceIPs: 1},
	}
	d := diagnose.Diagnose(in)
	fmt.Println("verdict:", d.Verdict)
	for _, f := range d.Findings {
		fmt.Printf("%s %s explains %d\n", f.ID, f.Status, f.Explains.Failures)
	}
	// Output:
	// verdict: fail
	// db-pool-wait-timeout confirmed explains 45
	// login-rate-limit confirmed explains 26
}
