package metrics

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/stampede-load/stampede"
)

// Summary is the content of summary.json: the run's totals per endpoint.
//
//	{
//	  "start": "2025-01-02T15:04:05.123456789Z",  // RFC 3339, the start of the run
//	  "end": "2025-01-02T15:05:05.2Z",            // the last second closed, or the last response
//	  "duration_s": 60.08,                        // end - start, seconds
//	  "users_peak": 100,                          // most users active at once
//	  "dropped": 0,                               // open model: starts that found no free user
//	  "partial": false,                           // true while running and when interrupted
//	  "endpoints": [ENDPOINT, ...],               // sorted by name, then method
//	  "aggregated": ENDPOINT,                     // every endpoint together, name "Aggregated", method ""
//	  "failures": [FAILURE, ...]                  // sorted by method, name, reason
//	}
//
// See EndpointSummary and FailureSummary for ENDPOINT and FAILURE.
type Summary struct {
	Start      time.Time         `json:"start"`
	End        time.Time         `json:"end"`
	Duration   time.Duration     `json:"-"` // written as duration_s
	UsersPeak  int               `json:"users_peak"`
	Dropped    int64             `json:"dropped"`
	Partial    bool              `json:"partial"`
	Endpoints  []EndpointSummary `json:"endpoints"`
	Aggregated EndpointSummary   `json:"aggregated"`
	Failures   []FailureSummary  `json:"failures"`
}

// EndpointSummary is the summary of one endpoint (or of the Aggregated
// total) over the whole run:
//
//	{
//	  "method": "POST",                  // HTTP method; "" for the Aggregated total
//	  "name": "[AUTH] Login POST",       // endpoint name; "Aggregated" for the total
//	  "requests": 1200,                  // every request, failed or not
//	  "failures": 540,                   // requests whose outcome is not "ok"
//	  "failure_rate": 0.45,              // failures / requests, a fraction (0 without requests)
//	  "outcomes": {"ok": 660, "status": 80, "content": 460, "transport": 0, "timeout": 0},
//	                                     // requests by outcome class (every class present)
//	  "rps": 19.97,                      // requests / duration_s
//	  "failures_per_s": 8.99,            // failures / duration_s
//	  "latency_ms": {"min": 1.2, "avg": 340.5, "max": 3012.7,
//	                 "p50": 320, "p66": ..., "p75": ..., "p80": ..., "p90": ..., "p95": ...,
//	                 "p98": ..., "p99": ..., "p99.9": ..., "p99.99": ..., "p100": 3012.7},
//	                                     // milliseconds with microsecond precision; min, avg,
//	                                     // max and p100 exact, the percentiles within 0.1%;
//	                                     // all 0 without requests
//	  "bytes_avg": 5120.5,               // response body bytes per request
//	  "bytes_total": 6144600,            // response body bytes
//	  "histogram": "HISTFAAA..."         // base64 of the latency HDR histogram (µs, V2
//	                                     // compressed), only once the run is closed;
//	                                     // read it with DecodeHistogram
//	}
type EndpointSummary struct {
	Method         string           `json:"method"`
	Name           string           `json:"name"`
	Requests       int64            `json:"requests"`
	Failures       int64            `json:"failures"`
	FailureRate    float64          `json:"failure_rate"`
	Outcomes       map[string]int64 `json:"outcomes"`
	RPS            float64          `json:"rps"`
	FailuresPerSec float64          `json:"failures_per_s"`
	Latency        Latency          `json:"latency_ms"`
	BytesAvg       float64          `json:"bytes_avg"`
	BytesTotal     int64            `json:"bytes_total"`
	Histogram      string           `json:"histogram,omitempty"`
}

// FailureSummary is a failure group in summary.json:
//
//	{
//	  "method": "POST", "name": "[AUTH] Login POST",
//	  "reason": "HTTP 500",                  // the failure reason shown to people
//	  "outcome": "status",                   // the outcome class of its first occurrence
//	  "occurrences": 80,
//	  "first_seen": "2025-...Z",             // start of the first failure, RFC 3339
//	  "last_seen": "2025-...Z"               // end of the last failure
//	}
type FailureSummary struct {
	Method      string    `json:"method"`
	Name        string    `json:"name"`
	Reason      string    `json:"reason"`
	Outcome     string    `json:"outcome"`
	Occurrences int64     `json:"occurrences"`
	FirstSeen   time.Time `json:"first_seen"`
	LastSeen    time.Time `json:"last_seen"`
}

// Latency holds an endpoint's latency figures. In JSON each is a number of
// milliseconds, under the keys "min", "avg", "max" and PercentileNames.
type Latency struct {
	Min, Avg, Max time.Duration
	// Percentiles are the latencies at Percentiles.
	Percentiles [NumPercentiles]time.Duration
}

// Percentile returns the latency named name ("p95", "min", "avg", "max"),
// and false for an unknown name.
func (l *Latency) Percentile(name string) (time.Duration, bool) {
	switch name {
	case "min":
		return l.Min, true
	case "avg":
		return l.Avg, true
	case "max":
		return l.Max, true
	}
	for i, n := range PercentileNames {
		if n == name {
			return l.Percentiles[i], true
		}
	}
	return 0, false
}

// ms formats d as milliseconds, rounded to the microsecond.
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Round(time.Microsecond))/1e6, 'f', -1, 64)
}

// MarshalJSON writes the latencies as milliseconds, in a fixed key order.
func (l Latency) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"min":` + ms(l.Min) + `,"avg":` + ms(l.Avg) + `,"max":` + ms(l.Max))
	for i, n := range PercentileNames {
		b.WriteString(`,"` + n + `":` + ms(l.Percentiles[i]))
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads what MarshalJSON writes; missing keys are zero.
func (l *Latency) UnmarshalJSON(data []byte) error {
	var m map[string]float64
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("latency_ms: %w", err)
	}
	d := func(v float64) time.Duration { return time.Duration(math.Round(v * 1e6)) }
	*l = Latency{Min: d(m["min"]), Avg: d(m["avg"]), Max: d(m["max"])}
	for i, n := range PercentileNames {
		l.Percentiles[i] = d(m[n])
	}
	return nil
}

type summaryJSON Summary // without the methods, to avoid recursion

// MarshalJSON adds duration_s (seconds) to the fields of the summary.
func (s *Summary) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		*summaryJSON
		DurationS float64 `json:"duration_s"`
	}{(*summaryJSON)(s), s.Duration.Seconds()})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *Summary) UnmarshalJSON(data []byte) error {
	v := struct {
		*summaryJSON
		DurationS float64 `json:"duration_s"`
	}{summaryJSON: (*summaryJSON)(s)}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	s.Duration = time.Duration(math.Round(v.DurationS * 1e9))
	return nil
}

// Summary returns the summary of the run so far, ending at now; once Close
// was called, it ends where the run ended and carries the histograms. A
// summary made before Close is Partial; a caller whose run was interrupted
// sets Partial on the one it makes after Close.
func (m *Metrics) Summary(now time.Time) *Summary {
	s := &Summary{Start: m.start, End: now, UsersPeak: m.usersPeak, Dropped: m.dropped, Partial: !m.closed}
	if m.closed {
		s.End = m.end
	}
	s.Duration = s.End.Sub(s.Start)
	eps := m.Endpoints()
	s.Endpoints = make([]EndpointSummary, len(eps))
	for i, e := range eps {
		s.Endpoints[i] = m.endpointSummary(e, s.Duration)
	}
	s.Aggregated = m.endpointSummary(m.total, s.Duration)
	fs := m.Failures()
	s.Failures = make([]FailureSummary, len(fs))
	for i, f := range fs {
		s.Failures[i] = FailureSummary{
			Method: f.Method, Name: f.Name, Reason: f.Reason, Outcome: f.Outcome.String(),
			Occurrences: f.Occurrences, FirstSeen: f.First, LastSeen: f.Last,
		}
	}
	return s
}

func (m *Metrics) endpointSummary(e *Endpoint, d time.Duration) EndpointSummary {
	es := EndpointSummary{
		Method:      e.Method,
		Name:        e.Name,
		Requests:    e.Requests,
		Failures:    e.Failures,
		FailureRate: e.FailureRate(),
		Outcomes:    make(map[string]int64, NumOutcomes),
		BytesTotal:  e.Bytes,
		Latency:     Latency{Min: e.Min, Avg: e.Mean(), Max: e.Max},
	}
	for o, n := range e.Outcomes {
		es.Outcomes[stampede.Outcome(o).String()] = n
	}
	if sec := d.Seconds(); sec > 0 {
		es.RPS = float64(e.Requests) / sec
		es.FailuresPerSec = float64(e.Failures) / sec
	}
	if e.Requests > 0 {
		es.BytesAvg = float64(e.Bytes) / float64(e.Requests)
		for i, q := range Percentiles {
			es.Latency.Percentiles[i] = e.Percentile(q)
		}
	}
	if m.closed {
		if b, err := e.hist.Encode(hdrhistogram.V2CompressedEncodingCookieBase); err == nil {
			es.Histogram = string(b)
		}
	}
	return es
}

// DecodeHistogram reads the "histogram" field of an EndpointSummary.
func DecodeHistogram(s string) (*hdrhistogram.Histogram, error) {
	h, err := hdrhistogram.Decode([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("histogram: %w", err)
	}
	return h, nil
}

// WriteFile writes the summary as indented JSON to path, atomically: to a
// temporary file in the same directory, renamed over path.
func (s *Summary) WriteFile(path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("summary: %w", err)
	}
	return WriteFileAtomic(path, append(b, '\n'))
}

// WriteFileAtomic writes data to a temporary file next to path and renames
// it over path, so a reader sees the old content or the new, never a part.
func WriteFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// CreateTemp makes the file private; the run directory's files are for
	// everyone who may read the directory.
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// ReadSummary reads a summary.json.
func ReadSummary(path string) (*Summary, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("summary: %w", err)
	}
	var s Summary
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("summary: %s: %w", path, err)
	}
	return &s, nil
}
