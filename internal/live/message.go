package live

import (
	"math"
	"strconv"

	"github.com/stampede-load/stampede/internal/runner"
)

// Message is what GET /api/state answers and what the event stream
// (GET /api/events) carries: first a snapshot (the whole run so far,
// event "snapshot"), then once a second an update (event "update") with
// what changed. docs/live.md documents every field; in short:
//
//	{
//	  "seq": 42,                      // updates are numbered; the snapshot has the number of the last one it includes
//	  "snapshot": true,               // absent in updates
//	  "status": "running",            // "waiting" (for --start-at), "running", "ended"
//	  "t0": 1764240000,               // Unix seconds of second 0 of the columns (the start, truncated)
//	  "start": 1764240000.412, "elapsed_s": 41.2,
//	  "n": 42,                        // length of the longest column
//	  "run": {...},                   // snapshot only: target (redacted), model, dir, segment...
//	  "columns": {"requests": {"from": 40, "values": [118, 121]}, ...},
//	                                  // per-second series, values from index "from" on (null: no value)
//	  "charts": [...],                // when they change: which columns each chart draws
//	  "endpoints": [ENDPOINT...], "total": ENDPOINT,
//	  "now": {"users": 100, "in_flight": 12, "dropped": 0},
//	  "failures": {"groups": [...], "more": 0},
//	  "evidence": {"events": [...], "total": 311, "by_class": {...}, "keep": 200},
//	                                  // updates carry the new events only
//	  "probes": [{"source": "pgbouncer", "samples": 41, "errors": 0}],
//	  "load": {"model": "closed", "current": {...}, "controls": true, "token_required": false},
//	  "load_changes": [...],          // updates carry the new ones only
//	  "diagnosis": {...},             // when a new diagnosis was made
//	  "end": {...}                    // once the run is over
//	}
type Message struct {
	Seq         int64                  `json:"seq"`
	Snapshot    bool                   `json:"snapshot,omitempty"`
	Version     string                 `json:"version"`
	Status      string                 `json:"status"`
	T0          float64                `json:"t0"`
	Start       float64                `json:"start"`
	Elapsed     float64                `json:"elapsed_s"`
	N           int                    `json:"n"`
	Run         *RunView               `json:"run,omitempty"`
	Columns     map[string]ColumnDelta `json:"columns"`
	Charts      []Chart                `json:"charts,omitempty"`
	Endpoints   []EndpointRow          `json:"endpoints"`
	Total       *EndpointRow           `json:"total,omitempty"`
	Now         *NowView               `json:"now"`
	Failures    *FailuresView          `json:"failures"`
	Evidence    *EvidenceView          `json:"evidence"`
	Probes      []ProbeStatus          `json:"probes"`
	Load        *LoadView              `json:"load"`
	LoadChanges []LoadChangeView       `json:"load_changes"`
	Diagnosis   *DiagnosisView         `json:"diagnosis,omitempty"`
	End         *EndInfo               `json:"end,omitempty"`
}

// RunView are the run's facts.
type RunView struct {
	RunFacts
	ID       string  `json:"id,omitempty"`
	Dir      string  `json:"dir,omitempty"`
	Duration float64 `json:"duration_s,omitempty"`
}

// ColumnDelta is a per-second series from index From on.
type ColumnDelta struct {
	From   int    `json:"from"`
	Values floats `json:"values"`
}

// floats is a series for the page: numbers rounded to three decimals, null
// for NaN (a second without a value).
type floats []float64

// MarshalJSON writes the series compactly, NaN as null.
func (f floats) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 2+len(f)*6)
	b = append(b, '[')
	for i, v := range f {
		if i > 0 {
			b = append(b, ',')
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			b = append(b, "null"...)
			continue
		}
		b = strconv.AppendFloat(b, math.Round(v*1000)/1000, 'f', -1, 64)
	}
	return append(b, ']'), nil
}

// Chart is one chart of the page: series of columns sharing the time axis,
// on one or two y axes, as report.html draws them.
type Chart struct {
	ID     string    `json:"id"`
	Title  string    `json:"title"`
	Axes   [2]string `json:"axes"`
	Series []Series  `json:"series"`
}

// Series is one line of a chart: the column it draws and how.
type Series struct {
	Col   string `json:"col"`
	Label string `json:"label"`
	Unit  string `json:"unit"`
	Axis  int    `json:"axis"`
	Color string `json:"color"`
	Fill  bool   `json:"fill,omitempty"`
	Dash  bool   `json:"dash,omitempty"`
	Span  bool   `json:"span,omitempty"`
}

// EndpointRow is a row of the endpoint table (Locust's statistics tab):
// since the start of the run; RPS and FailuresPerS are the current rates
// (over the last 10 seconds) while the run goes, and summary.json's (the
// run's average) once it has ended. Latencies are in milliseconds with
// microsecond precision, as in summary.json.
type EndpointRow struct {
	Key          string  `json:"key,omitempty"` // columns "KEY:requests" and "KEY:failures"
	Method       string  `json:"method"`
	Name         string  `json:"name"`
	Requests     int64   `json:"requests"`
	Failures     int64   `json:"failures"`
	FailureRate  float64 `json:"failure_rate"`
	Median       float64 `json:"median_ms"`
	P95          float64 `json:"p95_ms"`
	P99          float64 `json:"p99_ms"`
	Max          float64 `json:"max_ms"`
	Avg          float64 `json:"avg_ms"`
	RPS          float64 `json:"rps"`
	FailuresPerS float64 `json:"failures_per_s"`
}

// NowView are the engine's counts at the last second.
type NowView struct {
	Users    int   `json:"users"`
	InFlight int   `json:"in_flight"`
	Dropped  int64 `json:"dropped"`
}

// FailuresView are the failure groups (endpoint and reason), the most
// frequent first; More counts the groups left out.
type FailuresView struct {
	Groups []FailureGroup `json:"groups"`
	More   int            `json:"more"`
}

// FailureGroup is one failure group, as summary.json's failures.
type FailureGroup struct {
	Method      string  `json:"method"`
	Name        string  `json:"name"`
	Reason      string  `json:"reason"`
	Outcome     string  `json:"outcome"`
	Occurrences int64   `json:"occurrences"`
	First       float64 `json:"first"`
	Last        float64 `json:"last"`
}

// EvidenceView are the log events: the latest Keep, counted all by class.
type EvidenceView struct {
	Events  []EvidenceEvent  `json:"events"`
	Total   int64            `json:"total"`
	ByClass map[string]int64 `json:"by_class"`
	Keep    int              `json:"keep"`
}

// EvidenceEvent is one log event as evidence.jsonl holds it (masked),
// clipped.
type EvidenceEvent struct {
	Seq       int64    `json:"seq"`
	T         float64  `json:"t,omitempty"`
	Source    string   `json:"source"`
	Level     string   `json:"level,omitempty"`
	Class     string   `json:"class,omitempty"`
	Signature string   `json:"signature,omitempty"`
	Message   string   `json:"message"`
	Exception string   `json:"exception,omitempty"`
	Stack     []string `json:"stack,omitempty"`
	Ref       string   `json:"ref"`
}

// ProbeStatus counts one source's readings.
type ProbeStatus struct {
	Source    string  `json:"source"`
	Samples   int64   `json:"samples"`
	Errors    int64   `json:"errors"`
	LastError string  `json:"last_error,omitempty"`
	Last      float64 `json:"last,omitempty"`
}

// LoadView says which load is in force and what the page may change.
type LoadView struct {
	Model         string          `json:"model,omitempty"`
	Current       *LoadChangeView `json:"current,omitempty"`
	Controls      bool            `json:"controls"`
	ReadOnly      bool            `json:"read_only,omitempty"`
	TokenRequired bool            `json:"token_required"`
	Observer      bool            `json:"observer,omitempty"`
}

// LoadChangeView is a load change (or the load in force) with its time in
// Unix seconds.
type LoadChangeView struct {
	T           float64 `json:"t"`
	Users       int     `json:"users,omitempty"`
	SpawnRate   float64 `json:"spawn_rate,omitempty"`
	ArrivalRate float64 `json:"arrival_rate,omitempty"`
	MaxUsers    int     `json:"max_users,omitempty"`
	By          string  `json:"by"`
}

func loadChangeView(c runner.LoadChange) LoadChangeView {
	return LoadChangeView{T: unix(c.Time), Users: c.Users, SpawnRate: c.SpawnRate, ArrivalRate: c.ArrivalRate, MaxUsers: c.MaxUsers, By: c.By}
}

// DiagnosisView is the diagnosis so far (or the final one).
type DiagnosisView struct {
	// At is the second of the run the records went up to.
	At     float64 `json:"at_s"`
	TookMS float64 `json:"took_ms"`
	Final  bool    `json:"final"`
	// Verdict is "pass" or "fail" so far.
	Verdict          string        `json:"verdict,omitempty"`
	Findings         []FindingView `json:"findings"`
	FailedThresholds []string      `json:"failed_thresholds,omitempty"`
	// Error says why the last diagnosis could not be made.
	Error string `json:"error,omitempty"`
}

// FindingView is a finding with when it first held.
type FindingView struct {
	ID         string   `json:"id"`
	Title      string   `json:"title"`
	Status     string   `json:"status"`
	Confidence float64  `json:"confidence"`
	CausedBy   string   `json:"caused_by,omitempty"`
	Failures   int      `json:"failures"`
	Slow       int      `json:"slow"`
	Endpoints  []string `json:"endpoints,omitempty"`
	Latency    string   `json:"latency,omitempty"`
	Fix        string   `json:"fix,omitempty"`
	// FirstSeen is the second of the run of the first diagnosis that
	// found it; StatusSince that of the first with its present status.
	FirstSeen   float64 `json:"first_seen_s"`
	StatusSince float64 `json:"status_since_s"`
	// Current is false for a finding an earlier diagnosis made and the
	// latest did not.
	Current  bool          `json:"current"`
	Evidence []EvidenceRef `json:"evidence,omitempty"`
}

// EvidenceRef is a piece of a finding's evidence.
type EvidenceRef struct {
	Source string  `json:"source"`
	T      float64 `json:"t,omitempty"`
	Text   string  `json:"text"`
	Ref    string  `json:"ref,omitempty"`
}

// EndInfo says how the run ended.
type EndInfo struct {
	Partial bool    `json:"partial"`
	Reason  string  `json:"reason,omitempty"`
	Elapsed float64 `json:"elapsed_s"`
	// Report is the page's link to report.html; "" when none was written
	// (ReportError says why).
	Report      string `json:"report,omitempty"`
	ReportError string `json:"report_error,omitempty"`
	Dir         string `json:"dir"`
	// FailedThresholds are the thresholds that failed.
	FailedThresholds []string `json:"failed_thresholds,omitempty"`
}
