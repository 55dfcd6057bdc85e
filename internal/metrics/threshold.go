package metrics

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// AllEndpoints is the threshold key that means the Aggregated row.
const AllEndpoints = "all"

// Kind is the unit of a threshold's metric.
type Kind int

// The kinds of metric.
const (
	// KindRate is a fraction (failure_rate): written "1%" or "0.01".
	KindRate Kind = iota
	// KindLatency is a duration (p50..p100, min, avg, max): written "500ms", "2s", or
	// a plain number of milliseconds.
	KindLatency
	// KindPerSecond is a rate per second (rps).
	KindPerSecond
	// KindCount is a number of requests (requests, failures).
	KindCount
)

// metricKinds lists the metrics a threshold may name.
var metricKinds = map[string]Kind{
	"failure_rate": KindRate,
	"avg":          KindLatency,
	"min":          KindLatency,
	"max":          KindLatency,
	"rps":          KindPerSecond,
	"requests":     KindCount,
	"failures":     KindCount,
}

func init() {
	for _, n := range PercentileNames {
		metricKinds[n] = KindLatency
	}
}

// Threshold is one parsed threshold expression, such as "p95 < 500ms" for
// the endpoint "[AUTH] Login POST".
type Threshold struct {
	// Endpoint is the key it was given under: an endpoint name, "METHOD name"
	// when the name alone is ambiguous, or "all" for the Aggregated row.
	Endpoint string
	// Expr is the expression as written.
	Expr string
	// Metric is failure_rate, p50..p100, min, avg, max, rps, requests or failures.
	Metric string
	// Op is one of < <= > >= ==.
	Op string
	// Value is the limit: a fraction for KindRate, nanoseconds for KindLatency,
	// a plain number otherwise.
	Value float64
	// Kind is the unit of Metric.
	Kind Kind
}

// ParseThresholds parses the thresholds of a scenario, keyed by endpoint
// name (or "all"), and returns them sorted by endpoint with "all" last, in
// the order written within an endpoint. Errors name the endpoint and the
// expression.
func ParseThresholds(spec map[string][]string) ([]Threshold, error) {
	keys := make([]string, 0, len(spec))
	for k := range spec {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		return cmp.Or(cmp.Compare(boolInt(a == AllEndpoints), boolInt(b == AllEndpoints)), cmp.Compare(a, b))
	})
	var out []Threshold
	for _, k := range keys {
		for _, expr := range spec[k] {
			t, err := ParseThreshold(k, expr)
			if err != nil {
				return nil, err
			}
			out = append(out, t)
		}
	}
	return out, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ParseThreshold parses one expression "METRIC OP VALUE" given for endpoint.
func ParseThreshold(endpoint, expr string) (Threshold, error) {
	t := Threshold{Endpoint: endpoint, Expr: expr}
	fail := func(format string, args ...any) (Threshold, error) {
		return Threshold{}, fmt.Errorf("threshold %q of endpoint %q: %s", expr, endpoint, fmt.Sprintf(format, args...))
	}
	if strings.TrimSpace(endpoint) == "" {
		return fail("empty endpoint name")
	}
	s := strings.TrimSpace(expr)
	i := strings.IndexAny(s, "<>=")
	if i < 0 {
		return fail("no comparator: want METRIC OP VALUE with OP one of < <= > >= ==")
	}
	t.Metric = strings.TrimSpace(s[:i])
	rest := s[i:]
	for _, op := range []string{"<=", ">=", "==", "<", ">"} {
		if strings.HasPrefix(rest, op) {
			t.Op = op
			break
		}
	}
	if t.Op == "" {
		return fail("unknown comparator in %q: want < <= > >= ==", rest)
	}
	value := strings.TrimSpace(rest[len(t.Op):])
	kind, ok := metricKinds[t.Metric]
	if !ok {
		if t.Metric == "" {
			return fail("no metric before %s", t.Op)
		}
		return fail("unknown metric %q: want failure_rate, p50, p66, p75, p80, p90, p95, p98, p99, p99.9, p99.99, p100, min, avg, max, rps, requests or failures", t.Metric)
	}
	t.Kind = kind
	if value == "" {
		return fail("no value after %s", t.Op)
	}
	v, err := parseValue(kind, value)
	if err != nil {
		return fail("%s", err)
	}
	t.Value = v
	return t, nil
}

func parseValue(kind Kind, s string) (float64, error) {
	if pct, ok := strings.CutSuffix(s, "%"); ok {
		if kind != KindRate {
			return 0, fmt.Errorf("value %q: a percentage fits failure_rate only", s)
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(pct), 64)
		if err != nil || v < 0 || v > 100 {
			return 0, fmt.Errorf("value %q: want a percentage from 0%% to 100%%", s)
		}
		return v / 100, nil
	}
	if v, err := strconv.ParseFloat(s, 64); err == nil {
		switch {
		case v < 0:
			return 0, fmt.Errorf("value %q is negative", s)
		case kind == KindRate && v > 1:
			return 0, fmt.Errorf("value %q: a failure rate is a fraction from 0 to 1, or a percentage like 1%%", s)
		case kind == KindLatency:
			return v * 1e6, nil // a plain number of milliseconds
		}
		return v, nil
	}
	if kind != KindLatency {
		return 0, fmt.Errorf("value %q: want a number", s)
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("value %q: want a duration such as 500ms or 2s", s)
	}
	return float64(d), nil
}

// String returns the threshold as "endpoint: expr".
func (t Threshold) String() string { return t.Endpoint + ": " + t.Expr }

// ThresholdResult is a threshold evaluated against a summary.
type ThresholdResult struct {
	Threshold
	// Method is the method of the row it was evaluated on (a threshold on a
	// name shared by several methods gives a result per method).
	Method string
	// Actual is the metric's value, in the unit of Threshold.Value.
	Actual float64
	// Pass reports whether the threshold held.
	Pass bool
	// Missing is set when no endpoint matched: the threshold fails, since a
	// limit on requests that never ran cannot be said to hold.
	Missing bool
}

// String formats the result for people: `[AUTH] Login POST: p95 < 500ms: 734ms FAIL`.
func (r ThresholdResult) String() string {
	verdict := "ok"
	if !r.Pass {
		verdict = "FAIL"
	}
	if r.Missing {
		return fmt.Sprintf("%s: no such endpoint (no request ran) FAIL", r.Threshold)
	}
	ep := r.Endpoint
	if r.Method != "" && !strings.HasPrefix(ep, r.Method+" ") {
		ep = r.Method + " " + ep
	}
	return fmt.Sprintf("%s: %s: %s %s", ep, r.Expr, FormatValue(r.Kind, r.Actual), verdict)
}

// FormatValue formats v, in the unit of kind, for people: "0.85%", "734ms",
// "12.5/s", "1200".
func FormatValue(kind Kind, v float64) string {
	switch kind {
	case KindRate:
		return strconv.FormatFloat(math.Round(v*1e4)/100, 'f', -1, 64) + "%"
	case KindLatency:
		return time.Duration(v).Round(time.Microsecond).String()
	case KindPerSecond:
		return strconv.FormatFloat(v, 'f', 2, 64) + "/s"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// Evaluate evaluates the thresholds against the summary, in order.
func Evaluate(ts []Threshold, s *Summary) []ThresholdResult {
	var out []ThresholdResult
	for _, t := range ts {
		rows := matchRows(t.Endpoint, s)
		if len(rows) == 0 {
			out = append(out, ThresholdResult{Threshold: t, Missing: true})
			continue
		}
		for _, e := range rows {
			actual := metricValue(t.Metric, e)
			out = append(out, ThresholdResult{Threshold: t, Method: e.Method, Actual: actual, Pass: compare(actual, t.Op, t.Value)})
		}
	}
	return out
}

// Passed reports whether every result passed.
func Passed(rs []ThresholdResult) bool {
	for _, r := range rs {
		if !r.Pass {
			return false
		}
	}
	return true
}

func matchRows(endpoint string, s *Summary) []*EndpointSummary {
	if endpoint == AllEndpoints {
		return []*EndpointSummary{&s.Aggregated}
	}
	var rows []*EndpointSummary
	for i := range s.Endpoints {
		if s.Endpoints[i].Name == endpoint {
			rows = append(rows, &s.Endpoints[i])
		}
	}
	if len(rows) > 0 {
		return rows
	}
	if method, name, ok := strings.Cut(endpoint, " "); ok {
		for i := range s.Endpoints {
			if s.Endpoints[i].Method == method && s.Endpoints[i].Name == name {
				rows = append(rows, &s.Endpoints[i])
			}
		}
	}
	return rows
}

func metricValue(metric string, e *EndpointSummary) float64 {
	switch metric {
	case "failure_rate":
		return e.FailureRate
	case "rps":
		return e.RPS
	case "requests":
		return float64(e.Requests)
	case "failures":
		return float64(e.Failures)
	}
	d, _ := e.Latency.Percentile(metric) // the metric was checked by ParseThreshold
	return float64(d)
}

func compare(a float64, op string, b float64) bool {
	switch op {
	case "<":
		return a < b
	case "<=":
		return a <= b
	case ">":
		return a > b
	case ">=":
		return a >= b
	}
	return a == b
}
