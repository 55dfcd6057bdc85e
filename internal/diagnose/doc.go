// Package diagnose names the causes of a load test's failures from data
// alone: the run's requests (or Locust's aggregates), the probes' timeline
// and the evidence parsed from the server's logs. It does no I/O.
//
// The work has two stages. The anatomy (BuildAnatomy) describes the
// failures: per endpoint, the outcome classes, the bursts in time and the
// latency structure (does latency grow linearly with concurrency, do failed
// requests cluster at a timeout value). Rules, one per finding id of
// DESIGN.md, then weigh the client's symptoms, the probe readings inside
// the failure windows against those outside, the log evidence and capacity
// arithmetic (Little's law) and claim the failures they explain. Every
// failure no rule claims is counted under unexplained-server-error, which
// says what to capture next.
//
// The load may change while the run goes (LoadFacts.Steps: the live
// page's changes): slowness or failures that begin with a step up of the
// load are read as a capacity reading of the higher load, said so in the
// finding's evidence, never as a fault appearing by itself mid-run.
//
// A finding is confirmed only by direct evidence: a log signature in the
// failure window, a probe reading that shows the mechanism, or the server's
// own answer (a 429, a throttle or CSRF message in the page). Symptoms and
// arithmetic alone make it likely; consistency alone makes it possible.
//
// The verdict is "fail" when more than FailureTolerance of the requests
// failed, any finding is confirmed, or a likely finding explains failures;
// "pass" otherwise (a likely slowness finding that explains no failure is
// reported but left to the thresholds).
package diagnose
