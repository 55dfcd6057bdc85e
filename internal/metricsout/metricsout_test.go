package metricsout

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/metrics"
	"github.com/stampede-load/stampede/internal/runner"
)

// series finds the value of the series of family name whose labels include
// want: a counter's or gauge's value, a histogram's sample count.
func series(t *testing.T, g prometheus.Gatherer, name string, want map[string]string) (float64, bool) {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue(), true
			case dto.MetricType_GAUGE:
				return m.GetGauge().GetValue(), true
			case dto.MetricType_HISTOGRAM:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

// count returns the number of series of family name.
func count(t *testing.T, g prometheus.Gatherer, name string) int {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return len(f.GetMetric())
		}
	}
	return 0
}

func result(method, name string, o stampede.Outcome, status int, lat time.Duration) *stampede.Result {
	return &stampede.Result{Method: method, Name: name, Outcome: o, Status: status, Latency: lat}
}

// Requests count per endpoint, failures per endpoint and class, latencies
// land in their buckets; every series carries the run and segment.
func TestMetricsRequestCounts(t *testing.T) {
	e, err := New(Options{Run: "20260301-120000", Segment: "1/3"})
	if err != nil {
		t.Fatal(err)
	}
	rs := []*stampede.Result{
		result("GET", "[AUTH] Login GET", stampede.OK, 200, 3*time.Millisecond),
		result("GET", "[AUTH] Login GET", stampede.OK, 200, 40*time.Millisecond),
		result("POST", "[AUTH] Login POST", stampede.OK, 302, 120*time.Millisecond),
		result("POST", "[AUTH] Login POST", stampede.FailContent, 200, 90*time.Millisecond),
		result("POST", "[AUTH] Login POST", stampede.FailStatus, 500, 2*time.Second),
		result("POST", "[AUTH] Login POST", stampede.FailStatus, 500, 2*time.Second),
		result("GET", "GET /dashboard/", stampede.FailTimeout, 0, 60*time.Second),
		result("GET", "GET /dashboard/", stampede.FailTransport, 0, time.Millisecond),
		result("GET", "GET /dashboard/", stampede.Outcome(42), 0, time.Millisecond), // unknown: a status failure
	}
	for _, r := range rs {
		e.Result(r)
	}
	run := map[string]string{"run": "20260301-120000", "segment": "1/3"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range run {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		family string
		labels map[string]string
		want   float64
	}{
		{"stampede_requests_total", with("name", "[AUTH] Login GET", "method", "GET"), 2},
		{"stampede_requests_total", with("name", "[AUTH] Login POST", "method", "POST"), 4},
		{"stampede_requests_total", with("name", "GET /dashboard/", "method", "GET"), 3},
		{"stampede_request_failures_total", with("name", "[AUTH] Login POST", "class", "status"), 2},
		{"stampede_request_failures_total", with("name", "[AUTH] Login POST", "class", "content"), 1},
		{"stampede_request_failures_total", with("name", "[AUTH] Login POST", "class", "timeout"), 0},
		{"stampede_request_failures_total", with("name", "GET /dashboard/", "class", "timeout"), 1},
		{"stampede_request_failures_total", with("name", "GET /dashboard/", "class", "transport"), 1},
		{"stampede_request_failures_total", with("name", "GET /dashboard/", "class", "status"), 1},
		{"stampede_request_failures_total", with("name", "[AUTH] Login GET", "class", "status"), 0},
		{"stampede_request_duration_seconds", with("name", "[AUTH] Login POST"), 4},
	}
	for _, tt := range tests {
		got, ok := series(t, e.Gatherer(), tt.family, tt.labels)
		if !ok || got != tt.want {
			t.Errorf("%s%v = %v (found %v), want %v", tt.family, tt.labels, got, ok, tt.want)
		}
	}
	// The buckets: Login POST's 90 ms and 120 ms are under 0.25 s, its two
	// 2 s ones under 2.5 s; the sum is exact.
	fams, _ := e.Gatherer().Gather()
	for _, f := range fams {
		if f.GetName() != "stampede_request_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			if !hasLabel(m, "name", "[AUTH] Login POST") {
				continue
			}
			h := m.GetHistogram()
			if got, want := h.GetSampleSum(), 0.09+0.12+4; math.Abs(got-want) > 1e-9 {
				t.Errorf("Login POST latency sum %v, want %v", got, want)
			}
			for _, b := range h.GetBucket() {
				want := map[float64]uint64{0.075: 0, 0.1: 1, 0.25: 2, 1: 2, 2.5: 4, 60: 4}[b.GetUpperBound()]
				if _, listed := map[float64]bool{0.075: true, 0.1: true, 0.25: true, 1: true, 2.5: true, 60: true}[b.GetUpperBound()]; listed && b.GetCumulativeCount() != want {
					t.Errorf("Login POST bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
				}
			}
		}
	}
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// A whole run has no segment label; a run without a name no run label.
func TestMetricsConstLabels(t *testing.T) {
	for _, tt := range []struct {
		o    Options
		want map[string]bool // label name → present
	}{
		{Options{Run: "r1"}, map[string]bool{"run": true, "segment": false}},
		{Options{}, map[string]bool{"run": false, "segment": false}},
		{Options{Run: "r1", Segment: "observer"}, map[string]bool{"run": true, "segment": true}},
	} {
		e, err := New(tt.o)
		if err != nil {
			t.Fatal(err)
		}
		e.Result(result("GET", "/", stampede.OK, 200, time.Millisecond))
		fams, _ := e.Gatherer().Gather()
		for _, f := range fams {
			for _, m := range f.GetMetric() {
				for name, present := range tt.want {
					has := false
					for _, l := range m.GetLabel() {
						has = has || l.GetName() == name
					}
					if has != present {
						t.Errorf("%+v: %s has label %s: %v, want %v", tt.o, f.GetName(), name, has, present)
					}
				}
			}
		}
	}
}

// Past MaxEndpoints, new endpoints count under OtherEndpoint, so that a
// scenario with ids in its step names cannot blow up the series count.
func TestMetricsEndpointBound(t *testing.T) {
	e, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range MaxEndpoints + 50 {
		e.Result(result("GET", "/item/"+strconv.Itoa(i), stampede.OK, 200, time.Millisecond))
	}
	if n := count(t, e.Gatherer(), "stampede_requests_total"); n != MaxEndpoints+1 {
		t.Errorf("%d request series, want %d endpoints and %s", n, MaxEndpoints, OtherEndpoint)
	}
	if got, _ := series(t, e.Gatherer(), "stampede_requests_total", map[string]string{"name": OtherEndpoint}); got != 50 {
		t.Errorf("%s counted %v requests, want 50", OtherEndpoint, got)
	}
}

// Probe readings: a gauge per source, exporter and key; a key gone from the
// next sample goes; a failed sample keeps the last readings and marks the
// source down; the generator's own readings have their own names; the
// load-change markers are not probe readings; past the bound, keys are
// dropped and counted.
func TestMetricsProbeGauges(t *testing.T) {
	e, err := New(Options{Run: "r", MaxProbeSeries: 12})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	e.Sample(stampede.Sample{Time: now, Source: "pgbouncer", Values: map[string]float64{"cl_waiting": 7, "maxwait_s": 1.5, "pool:app/app:cl_waiting": 7}, Info: map[string]string{"pool_mode": "transaction"}})
	e.Sample(stampede.Sample{Time: now, Source: "postgres", Values: map[string]float64{"wait:Lock": 3, "wait:Lock:tuple": 2}})
	e.Sample(stampede.Sample{Time: now, Source: "host", Values: map[string]float64{"cpu_busy_pct": 55}, Info: map[string]string{"via": "prometheus", "instance": "db1:9100"}})
	e.Sample(stampede.Sample{Time: now, Source: "host", Values: map[string]float64{"cpu_busy_pct": 20}})
	e.Sample(stampede.Sample{Time: now, Source: "generator", Values: map[string]float64{"cpu_pct": 130, "lag_ms": 12, "saturated": 0, "users": 40}})
	e.Sample(stampede.Sample{Time: now, Source: "control", Values: map[string]float64{"users": 80}})
	// The next second: the lock tag is gone, the pool drained, PostgreSQL
	// could not be read.
	e.Sample(stampede.Sample{Time: now.Add(time.Second), Source: "postgres", Err: "connection refused"})
	e.Sample(stampede.Sample{Time: now.Add(time.Second), Source: "pgbouncer", Values: map[string]float64{"cl_waiting": 0, "pool:app/app:cl_waiting": 0}})
	g := e.Gatherer()
	tests := []struct {
		family string
		labels map[string]string
		want   float64
		found  bool
	}{
		{"stampede_probe_value", map[string]string{"source": "pgbouncer", "key": "cl_waiting", "exporter": "", "run": "r"}, 0, true},
		{"stampede_probe_value", map[string]string{"source": "pgbouncer", "key": "pool:app/app:cl_waiting"}, 0, true},
		{"stampede_probe_value", map[string]string{"source": "pgbouncer", "key": "maxwait_s"}, 0, false},
		{"stampede_probe_value", map[string]string{"source": "postgres", "key": "wait:Lock:tuple"}, 2, true},
		{"stampede_probe_up", map[string]string{"source": "postgres"}, 0, true},
		{"stampede_probe_up", map[string]string{"source": "pgbouncer"}, 1, true},
		{"stampede_probe_value", map[string]string{"source": "host", "exporter": "db1:9100", "key": "cpu_busy_pct"}, 55, true},
		{"stampede_probe_value", map[string]string{"source": "host", "exporter": "", "key": "cpu_busy_pct"}, 20, true},
		{"stampede_probe_value", map[string]string{"source": "generator", "key": "cpu_pct"}, 130, true},
		{"stampede_probe_value", map[string]string{"source": "control"}, 0, false},
		{"stampede_generator_cpu_percent", nil, 130, true},
		{"stampede_generator_timer_lag_seconds", nil, 0.012, true},
		{"stampede_generator_saturated", nil, 0, true},
		{"stampede_probe_readings_dropped_total", nil, 0, true},
	}
	for _, tt := range tests {
		got, found := series(t, g, tt.family, tt.labels)
		if found != tt.found || (found && math.Abs(got-tt.want) > 1e-9) {
			t.Errorf("%s%v = %v (found %v), want %v (found %v)", tt.family, tt.labels, got, found, tt.want, tt.found)
		}
	}
	// 2 pgbouncer + 2 postgres + 2 host + 4 generator = 10 of 12: a source
	// with 5 new keys gets 2 of them.
	e.Sample(stampede.Sample{Time: now, Source: "redis", Values: map[string]float64{"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}})
	if n := count(t, g, "stampede_probe_value"); n != 12 {
		t.Errorf("%d probe series, want the bound, 12", n)
	}
	if got, _ := series(t, g, "stampede_probe_readings_dropped_total", nil); got != 3 {
		t.Errorf("dropped %v readings, want 3", got)
	}
}

// The engine's counts, the load in force, the findings as they form and the
// final ones: a finding that changes status replaces its series.
func TestMetricsRunGauges(t *testing.T) {
	e, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Unix(1_800_000_000, 0)
	e.LoadChanged(runner.LoadChange{Time: start, Users: 100, SpawnRate: 10, By: "plan"})
	e.LoadChanged(runner.LoadChange{Time: start.Add(time.Minute), Users: 150, By: "ui"})
	e.Second(&runner.SecondView{Second: &metrics.Second{}, Users: 37, InFlight: 12, Dropped: 4, Start: start})
	e.SetFindings([]stampede.Finding{{ID: "db-pool-wait-timeout", Status: stampede.Likely, Confidence: 0.6}})
	g := e.Gatherer()
	check := func(when, family string, labels map[string]string, want float64, wantFound bool) {
		t.Helper()
		got, found := series(t, g, family, labels)
		if found != wantFound || (found && got != want) {
			t.Errorf("%s: %s%v = %v (found %v), want %v (found %v)", when, family, labels, got, found, want, wantFound)
		}
	}
	check("running", "stampede_users", nil, 37, true)
	check("running", "stampede_requests_in_flight", nil, 12, true)
	check("running", "stampede_dropped_arrivals_total", nil, 4, true)
	check("running", "stampede_run_start_time_seconds", nil, 1_800_000_000, true)
	check("running", "stampede_run_finished", nil, 0, true)
	check("running", "stampede_load_users", nil, 150, true)
	check("running", "stampede_load_spawn_rate", nil, 10, true)
	check("running", "stampede_load_arrival_rate", nil, 0, false)
	check("running", "stampede_load_changes_total", map[string]string{"by": "ui"}, 1, true)
	check("running", "stampede_finding", map[string]string{"id": "db-pool-wait-timeout", "status": "likely"}, 0.6, true)

	e.SetFindings([]stampede.Finding{{ID: "db-pool-wait-timeout", Status: stampede.Confirmed, Confidence: 0.95}})
	check("confirmed", "stampede_finding", map[string]string{"id": "db-pool-wait-timeout", "status": "likely"}, 0, false)
	check("confirmed", "stampede_finding", map[string]string{"id": "db-pool-wait-timeout", "status": "confirmed"}, 0.95, true)

	e.End(&runner.Result{Summary: &metrics.Summary{Dropped: 5}, Diagnosis: &stampede.Diagnosis{Findings: []stampede.Finding{
		{ID: "db-pool-wait-timeout", Status: stampede.Confirmed, Confidence: 0.97},
		{ID: "login-rate-limit", Status: stampede.Likely, Confidence: 0.7},
	}}})
	check("end", "stampede_users", nil, 0, true)
	check("end", "stampede_dropped_arrivals_total", nil, 5, true)
	check("end", "stampede_run_finished", nil, 1, true)
	check("end", "stampede_finding", map[string]string{"id": "db-pool-wait-timeout", "status": "confirmed"}, 0.97, true)
	check("end", "stampede_finding", map[string]string{"id": "login-rate-limit", "status": "likely"}, 0.7, true)
	// A diagnosis so far that lands after the end does not replace the
	// run's final one.
	e.SetFindings([]stampede.Finding{{ID: "cpu-saturation", Status: stampede.Likely, Confidence: 0.5}})
	check("late", "stampede_finding", map[string]string{"id": "cpu-saturation", "status": "likely"}, 0, false)
	check("late", "stampede_finding", map[string]string{"id": "login-rate-limit", "status": "likely"}, 0.7, true)
	if err := e.Close(); err != nil {
		t.Errorf("Close without OTLP: %v", err)
	}
}

// Log events count by log, signature and class.
func TestMetricsLogEvents(t *testing.T) {
	e, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		e.Evidence(stampede.Evidence{Source: "app-errors", Signature: "pgbouncer-query-wait-timeout", Class: "db-pool-wait-timeout", Message: "query_wait_timeout"})
	}
	e.Evidence(stampede.Evidence{Source: "access", Message: "GET / 200"})
	if got, _ := series(t, e.Gatherer(), "stampede_log_events_total", map[string]string{"log": "app-errors", "class": "db-pool-wait-timeout"}); got != 3 {
		t.Errorf("app-errors events %v, want 3", got)
	}
	if got, _ := series(t, e.Gatherer(), "stampede_log_events_total", map[string]string{"log": "access", "signature": ""}); got != 1 {
		t.Errorf("unclassified access events %v, want 1", got)
	}
}

// Nothing secret leaves through /metrics: not the passwords of the users
// file or the DSNs (in endpoint names, reasons, probe errors and textual
// readings, log messages, finding evidence), nor a token in a quick-form
// URL's query.
func TestMetricsNoSecretInExposition(t *testing.T) {
	const (
		userPW = "Users-File-Pw-91"
		dsnPW  = "Dsn-Pw-Secr3t-77"
		token  = "tok-8d7f6e5a4b3c"
	)
	e, err := New(Options{Run: "r", Secrets: []string{userPW, dsnPW}})
	if err != nil {
		t.Fatal(err)
	}
	feedSecrets(e, userPW, dsnPW, token)
	srv := httptest.NewServer(e.Handler())
	defer srv.Close()
	body := get(t, srv.URL)
	for _, s := range []string{userPW, dsnPW, token} {
		if strings.Contains(body, s) {
			t.Errorf("/metrics holds the secret %q", s)
		}
	}
	if !strings.Contains(body, `name="/login?user=a&password=`) || !strings.Contains(body, "api_key=") {
		t.Errorf("the endpoints with masked secrets are missing:\n%s", grepLines(body, "stampede_requests_total"))
	}
}

// feedSecrets shows e a run whose every text holds secrets.
func feedSecrets(e *Exporter, userPW, dsnPW, token string) {
	e.LoadChanged(runner.LoadChange{Time: time.Now(), Users: 2, By: "plan"})
	e.Result(&stampede.Result{Method: "POST", Name: "/login?user=a&password=" + userPW, Outcome: stampede.FailContent, Status: 200, Reason: "login page returned: wrong password " + userPW, Latency: time.Millisecond})
	e.Result(&stampede.Result{Method: "GET", Name: "/?api_key=" + token, Outcome: stampede.OK, Status: 200, Latency: time.Millisecond})
	e.Result(&stampede.Result{Method: "GET", Name: "step " + dsnPW, Outcome: stampede.OK, Status: 200, Latency: time.Millisecond})
	e.Sample(stampede.Sample{Source: "postgres", Err: "connect postgres://app:" + dsnPW + "@db/app: refused"})
	e.Sample(stampede.Sample{Source: "host", Values: map[string]float64{"cpu_busy_pct": 3}, Info: map[string]string{"cpu_top": "1\tpsql password=" + dsnPW}})
	e.Evidence(stampede.Evidence{Source: "app-errors", Signature: "django-db-error", Class: "db-pool-wait-timeout", Message: "password " + userPW, Fields: map[string]string{"password": userPW}})
	e.SetFindings([]stampede.Finding{{ID: "login-rate-limit", Status: stampede.Likely, Confidence: 0.5, Title: userPW,
		Evidence: []stampede.EvidenceRef{{Source: "app-errors", Text: "password=" + userPW}}}})
	e.Second(&runner.SecondView{Second: &metrics.Second{}, Users: 2, Start: time.Now()})
}

func get(t *testing.T, u string) string {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d, %v", u, resp.StatusCode, err)
	}
	return string(b)
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// WaitScrape: nobody ever read /metrics, no wait; a read before End does
// not count; the first read after End releases the wait.
func TestMetricsWaitScrape(t *testing.T) {
	e, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.WaitScrape(context.Background()); !errors.Is(err, ErrNoScraper) {
		t.Fatalf("never scraped: %v, want ErrNoScraper", err)
	}
	srv := httptest.NewServer(e.Handler())
	defer srv.Close()
	get(t, srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := e.WaitScrape(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("scraped before the end only: %v, want the deadline", err)
	}
	e.End(&runner.Result{Summary: &metrics.Summary{}})
	done := make(chan error, 1)
	go func() { done <- e.WaitScrape(context.Background()) }()
	time.Sleep(50 * time.Millisecond)
	if body := get(t, srv.URL); !regexp.MustCompile(`(?m)^stampede_run_finished 1$`).MatchString(body) {
		t.Errorf("the scrape after End lacks stampede_run_finished 1")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("WaitScrape after a final scrape: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WaitScrape still waits after a scrape that followed End")
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tt := range []struct {
		o       Options
		wantErr string // "" for valid
	}{
		{Options{}, ""},
		{Options{OTLP: "http://127.0.0.1:4318"}, ""},
		{Options{OTLP: "https://otel.example.com/otlp/v1/metrics"}, ""},
		{Options{OTLP: "127.0.0.1:4318"}, "want http(s)://"},
		{Options{OTLP: "ftp://h/"}, "want http(s)://"},
		{Options{OTLP: "http://user:Hunter2-pw@h:4318"}, "OTEL_EXPORTER_OTLP_HEADERS"},
		{Options{OTLP: "http://h:4318/?x=1"}, "no query"},
		{Options{MaxProbeSeries: -1}, "max probe series"},
		{Options{OTLPInterval: -time.Second}, "OTLP interval"},
	} {
		err := tt.o.Validate()
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%+v: %v", tt.o, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%+v: %v, want an error with %q", tt.o, err, tt.wantErr)
		case err != nil && strings.Contains(err.Error(), "Hunter2-pw"):
			t.Errorf("the error shows the password: %v", err)
		}
	}
}

func TestParseOTLP(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want otlpTarget
	}{
		{"http://127.0.0.1:4318", otlpTarget{host: "127.0.0.1:4318", path: "/v1/metrics", insecure: true}},
		{"http://collector:4318/", otlpTarget{host: "collector:4318", path: "/v1/metrics", insecure: true}},
		{"https://otel.example.com/otlp/v1/metrics", otlpTarget{host: "otel.example.com", path: "/otlp/v1/metrics"}},
	} {
		got, err := parseOTLP(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("parseOTLP(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

// Every metric family is documented in docs/metrics.md.
func TestMetricsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Options{Run: "r"})
	if err != nil {
		t.Fatal(err)
	}
	feedSecrets(e, "a-password-1", "a-password-2", "a-token-3")
	e.Sample(stampede.Sample{Source: "generator", Values: map[string]float64{"cpu_pct": 1}})
	fams, err := e.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(fams) < 15 {
		t.Fatalf("only %d families gathered", len(fams))
	}
	for _, f := range fams {
		if !strings.Contains(string(doc), "`"+f.GetName()+"`") {
			t.Errorf("docs/metrics.md does not document %s", f.GetName())
		}
	}
}
