package metrics

import (
	"strings"
	"testing"
	"time"
)

func TestParseThreshold(t *testing.T) {
	tests := []struct {
		expr   string
		metric string
		op     string
		value  float64
	}{
		{"failure_rate < 1%", "failure_rate", "<", 0.01},
		{"failure_rate<=0.05", "failure_rate", "<=", 0.05},
		{"p95 < 500ms", "p95", "<", float64(500 * time.Millisecond)},
		{"p99.9 <= 2s", "p99.9", "<=", float64(2 * time.Second)},
		{"p99.99 < 1.5s", "p99.99", "<", float64(1500 * time.Millisecond)},
		{"avg < 250", "avg", "<", float64(250 * time.Millisecond)},
		{"max >= 1m", "max", ">=", float64(time.Minute)},
		{"rps > 100", "rps", ">", 100},
		{"requests >= 1000", "requests", ">=", 1000},
		{"failures == 0", "failures", "==", 0},
	}
	for _, tt := range tests {
		got, err := ParseThreshold("x", tt.expr)
		if err != nil {
			t.Errorf("%q: %v", tt.expr, err)
			continue
		}
		if got.Metric != tt.metric || got.Op != tt.op || got.Value != tt.value {
			t.Errorf("%q = %+v, want %s %s %v", tt.expr, got, tt.metric, tt.op, tt.value)
		}
	}
}

func TestParseThresholdErrors(t *testing.T) {
	tests := []struct{ expr, want string }{
		{"p95 500ms", "no comparator"},
		{"p97 < 1s", `unknown metric "p97"`},
		{"< 1s", "no metric"},
		{"p95 <", "no value"},
		{"p95 => 1s", "unknown comparator"},
		{"p95 < 1%", "percentage fits failure_rate only"},
		{"p95 < fast", "want a duration"},
		{"failure_rate < 5", "fraction from 0 to 1"},
		{"failure_rate < 120%", "from 0% to 100%"},
		{"rps > 1s", "want a number"},
		{"requests > -1", "negative"},
	}
	for _, tt := range tests {
		_, err := ParseThreshold("[AUTH] Login POST", tt.expr)
		if err == nil {
			t.Errorf("%q: no error", tt.expr)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tt.want) || !strings.Contains(msg, `"[AUTH] Login POST"`) || !strings.Contains(msg, tt.expr) {
			t.Errorf("%q: error %q should name the endpoint, the expression and say %q", tt.expr, msg, tt.want)
		}
	}
	if _, err := ParseThresholds(map[string][]string{"all": {"failure_rate < 1%"}, "/x": {"p95 <"}}); err == nil || !strings.Contains(err.Error(), `"/x"`) {
		t.Errorf("ParseThresholds error = %v, want one naming /x", err)
	}
}

func TestEvaluate(t *testing.T) {
	s := &Summary{
		Endpoints: []EndpointSummary{
			{Method: "POST", Name: "[AUTH] Login POST", Requests: 100, Failures: 45, FailureRate: 0.45,
				Latency: Latency{Percentiles: [NumPercentiles]time.Duration{5: 734 * time.Millisecond}}},
			{Method: "GET", Name: "/dashboard/", Requests: 100, RPS: 20},
		},
		Aggregated: EndpointSummary{Name: AggregatedName, Requests: 200, Failures: 45, FailureRate: 0.225},
	}
	ts, err := ParseThresholds(map[string][]string{
		"[AUTH] Login POST": {"failure_rate < 1%", "p95 < 500ms"},
		"GET /dashboard/":   {"rps >= 20"},
		"/missing/":         {"requests > 0"},
		"all":               {"failure_rate < 50%"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range Evaluate(ts, s) {
		got = append(got, r.String())
	}
	want := []string{
		"/missing/: requests > 0: no such endpoint (no request ran) FAIL",
		"GET /dashboard/: rps >= 20: 20.00/s ok",
		"POST [AUTH] Login POST: failure_rate < 1%: 45% FAIL",
		"POST [AUTH] Login POST: p95 < 500ms: 734ms FAIL",
		"all: failure_rate < 50%: 22.5% ok",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
