package metricsout

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configgrpc"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/runner"
	"github.com/stampede-load/stampede/internal/testserver"
)

// otlpReceiver starts the OpenTelemetry Collector's own OTLP receiver,
// OTLP/HTTP only, on a free loopback port, into a sink; it returns the
// receiver's base URL.
func otlpReceiver(t *testing.T) (string, *consumertest.MetricsSink) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	f := otlpreceiver.NewFactory()
	cfg := f.CreateDefaultConfig().(*otlpreceiver.Config)
	cfg.Protocols.GRPC = configoptional.None[configgrpc.ServerConfig]()
	cfg.Protocols.HTTP.GetOrInsertDefault().ServerConfig.NetAddr.Endpoint = addr
	sink := new(consumertest.MetricsSink)
	r, err := f.CreateMetrics(context.Background(), receivertest.NewNopSettings(f.Type()), cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	return "http://" + addr, sink
}

// otlpPoint is the latest data point of one metric and attribute set.
type otlpPoint struct {
	attrs    map[string]any
	value    float64 // a sum's or gauge's value, a histogram's count
	ts       pcommon.Timestamp
	resource map[string]any
}

// otlpLatest returns, by metric name, the latest data point of each
// attribute set (the metrics are cumulative: the latest is the total).
func otlpLatest(all []pmetric.Metrics) map[string][]otlpPoint {
	latest := map[string]map[string]otlpPoint{}
	add := func(name string, res pcommon.Map, attrs pcommon.Map, ts pcommon.Timestamp, v float64) {
		raw := attrs.AsRaw()
		key := fmt.Sprint(sortedKV(raw))
		if latest[name] == nil {
			latest[name] = map[string]otlpPoint{}
		}
		if p, ok := latest[name][key]; !ok || ts >= p.ts {
			latest[name][key] = otlpPoint{attrs: raw, value: v, ts: ts, resource: res.AsRaw()}
		}
	}
	num := func(dp pmetric.NumberDataPoint) float64 {
		if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
			return float64(dp.IntValue())
		}
		return dp.DoubleValue()
	}
	for _, md := range all {
		for i := 0; i < md.ResourceMetrics().Len(); i++ {
			rm := md.ResourceMetrics().At(i)
			for j := 0; j < rm.ScopeMetrics().Len(); j++ {
				ms := rm.ScopeMetrics().At(j).Metrics()
				for k := 0; k < ms.Len(); k++ {
					m := ms.At(k)
					switch m.Type() {
					case pmetric.MetricTypeSum:
						for d := 0; d < m.Sum().DataPoints().Len(); d++ {
							dp := m.Sum().DataPoints().At(d)
							add(m.Name(), rm.Resource().Attributes(), dp.Attributes(), dp.Timestamp(), num(dp))
						}
					case pmetric.MetricTypeGauge:
						for d := 0; d < m.Gauge().DataPoints().Len(); d++ {
							dp := m.Gauge().DataPoints().At(d)
							add(m.Name(), rm.Resource().Attributes(), dp.Attributes(), dp.Timestamp(), num(dp))
						}
					case pmetric.MetricTypeHistogram:
						for d := 0; d < m.Histogram().DataPoints().Len(); d++ {
							dp := m.Histogram().DataPoints().At(d)
							add(m.Name(), rm.Resource().Attributes(), dp.Attributes(), dp.Timestamp(), float64(dp.Count()))
						}
					}
				}
			}
		}
	}
	out := map[string][]otlpPoint{}
	for name, byKey := range latest {
		for _, p := range byKey {
			out[name] = append(out[name], p)
		}
	}
	return out
}

func sortedKV(m map[string]any) []string {
	var kv []string
	for k, v := range m {
		kv = append(kv, fmt.Sprintf("%s=%v", k, v))
	}
	sort.Strings(kv)
	return kv
}

// otlpSum sums the latest points of name whose attributes include want.
func otlpSum(points map[string][]otlpPoint, name string, want map[string]any) (float64, int) {
	var sum float64
	n := 0
next:
	for _, p := range points[name] {
		for k, v := range want {
			if fmt.Sprint(p.attrs[k]) != fmt.Sprint(v) {
				continue next
			}
		}
		sum += p.value
		n++
	}
	return sum, n
}

// secretRun is a run whose scenario and probes carry secrets: the users
// file's passwords (one wrong, so that its logins fail), a DSN password
// (PostgreSQL on a port where nothing listens: the probe's errors quote the
// DSN), an API key in a step's URL.
type secretRun struct {
	plan   *load.Plan
	opts   runner.Options
	values []string // the secrets
}

func newSecretRun(t *testing.T, duration string) *secretRun {
	t.Helper()
	const (
		userPW = "Users-File-Pw-3141"
		badPW  = "Wrong-Pw-2718"
		dsnPW  = "Dsn-Secr3t-1618"
		apiKey = "apikey-5a4b3c2d1e"
	)
	ts := httptest.NewServer(testserver.New(userPW))
	t.Cleanup(ts.Close)
	dir := t.TempDir()
	users := "username,password\nada," + userPW + "\nbob," + userPW + "\ncyd," + badPW + "\n"
	if err := os.WriteFile(filepath.Join(dir, "users.csv"), []byte(users), 0o600); err != nil {
		t.Fatal(err)
	}
	sc := `target: ` + ts.URL + `
load: {users: 3, spawn_rate: 3, duration: ` + duration + `}
think: 20ms
users_file: users.csv
on_start:
  - name: "[AUTH] Login GET"
    get: /accounts/login/
  - name: "[AUTH] Login POST"
    submit_form:
      fields: {login: "{{user.username}}", password: "{{user.password}}"}
    expect: {status: [302], not_login_page: true}
tasks:
  - name: dashboard
    weight: 3
    steps:
      - {name: "GET /dashboard/", get: /dashboard/, expect: {status: [200]}}
  - name: keyed
    steps:
      - {get: "/?api_key=` + apiKey + `", expect: {status: [204]}}
`
	path := filepath.Join(dir, "s.yaml")
	if err := os.WriteFile(path, []byte(sc), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := load.ReadScenario(path)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := s.Compile()
	if err != nil {
		t.Fatal(err)
	}
	opts, err := runner.ScenarioOptions(s)
	if err != nil {
		t.Fatal(err)
	}
	opts.Dir = filepath.Join(dir, "run")
	opts.Probes.Postgres = "postgres://app:" + dsnPW + "@127.0.0.1:1/app?connect_timeout=1"
	opts.Probes.Host = true
	return &secretRun{plan: plan, opts: opts, values: []string{userPW, badPW, dsnPW, apiKey}}
}

// TestOTLPRun pushes a real run's metrics to the Collector's OTLP receiver
// and checks them against summary.json: the requests per endpoint, the
// failures per class, the request durations' counts with their semantic
// conventions, the resource attributes, the final figures (pushed at End),
// every name documented, and no secret anywhere. /metrics of the same
// exporter holds the same totals.
func TestOTLPRun(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-second run")
	}
	url, sink := otlpReceiver(t)
	sr := newSecretRun(t, "3s")
	e, err := New(Options{Run: "otlp-run", Scenario: "s", Target: sr.plan.Target,
		Secrets: append(sr.plan.Secrets(), "Dsn-Secr3t-1618"), OTLP: url, OTLPInterval: 250 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sr.opts.Observers = []runner.Observer{e}
	res, err := runner.Run(context.Background(), sr.plan, sr.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("the last push: %v", err)
	}
	sum := res.Summary
	if sum.Aggregated.Requests < 20 || sum.Aggregated.Failures == 0 {
		t.Fatalf("the run made %d requests, %d failed: want many, some failed", sum.Aggregated.Requests, sum.Aggregated.Failures)
	}
	pts := otlpLatest(sink.AllMetrics())

	if got, _ := otlpSum(pts, "stampede.requests", nil); int64(got) != sum.Aggregated.Requests {
		t.Errorf("stampede.requests = %v, summary.json %d", got, sum.Aggregated.Requests)
	}
	if got, _ := otlpSum(pts, "http.client.request.duration", nil); int64(got) != sum.Aggregated.Requests {
		t.Errorf("http.client.request.duration count = %v, summary.json %d", got, sum.Aggregated.Requests)
	}
	for _, ep := range sum.Endpoints {
		if got, _ := otlpSum(pts, "stampede.requests", map[string]any{"stampede.endpoint": e.mask.Mask(ep.Name), "http.request.method": ep.Method}); int64(got) != ep.Requests {
			t.Errorf("stampede.requests{%s %s} = %v, summary.json %d", ep.Method, ep.Name, got, ep.Requests)
		}
	}
	for class, n := range sum.Aggregated.Outcomes {
		if class == "ok" {
			continue
		}
		if got, _ := otlpSum(pts, "stampede.request.failures", map[string]any{"error.type": class}); int64(got) != n {
			t.Errorf("stampede.request.failures{error.type=%s} = %v, summary.json %d", class, got, n)
		}
	}
	// The semantic conventions: the method, the status code, the server.
	if _, n := otlpSum(pts, "http.client.request.duration", map[string]any{"http.request.method": "POST", "http.response.status_code": 302,
		"server.address": "127.0.0.1", "stampede.endpoint": "[AUTH] Login POST"}); n == 0 {
		t.Errorf("no http.client.request.duration point for the logins' 302 with their server: %v", pts["http.client.request.duration"])
	}
	if _, n := otlpSum(pts, "http.client.request.duration", map[string]any{"error.type": "content", "stampede.endpoint": "[AUTH] Login POST"}); n == 0 {
		t.Errorf("no http.client.request.duration point with error.type content for the failed logins")
	}
	p := pts["stampede.requests"]
	if len(p) == 0 {
		t.Fatal("no stampede.requests")
	}
	for k, want := range map[string]any{"service.name": "stampede", "stampede.run.id": "otlp-run", "stampede.scenario": "s", "service.instance.id": "otlp-run"} {
		if got := p[0].resource[k]; got != want {
			t.Errorf("resource %s = %v, want %v", k, got, want)
		}
	}
	if got, n := otlpSum(pts, "stampede.run.finished", nil); got != 1 || n != 1 {
		t.Errorf("stampede.run.finished = %v (%d points), want the final 1", got, n)
	}
	if got, n := otlpSum(pts, "stampede.probe.up", map[string]any{"stampede.probe.source": "postgres"}); got != 0 || n != 1 {
		t.Errorf("stampede.probe.up{postgres} = %v (%d points), want 0: nothing listens", got, n)
	}
	if _, n := otlpSum(pts, "stampede.probe.value", map[string]any{"stampede.probe.source": "host", "stampede.probe.key": "cpu_busy_pct"}); n != 1 {
		t.Errorf("no host cpu_busy_pct reading")
	}
	if got, _ := otlpSum(pts, "stampede.load.users", nil); got != 3 {
		t.Errorf("stampede.load.users = %v, want the plan's 3", got)
	}
	if res.Diagnosis != nil {
		for _, f := range res.Diagnosis.Findings {
			if got, n := otlpSum(pts, "stampede.finding", map[string]any{"stampede.finding.id": f.ID, "stampede.finding.status": f.Status}); n != 1 || got != f.Confidence {
				t.Errorf("stampede.finding{%s %s} = %v (%d points), want %v", f.ID, f.Status, got, n, f.Confidence)
			}
		}
	}

	doc, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	for name := range pts {
		if !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("docs/metrics.md does not document the OTLP metric %s", name)
		}
	}

	var all strings.Builder
	for _, md := range sink.AllMetrics() {
		b, err := (&pmetric.JSONMarshaler{}).MarshalMetrics(md)
		if err != nil {
			t.Fatal(err)
		}
		all.Write(b)
	}
	srv := httptest.NewServer(e.Handler())
	defer srv.Close()
	exposition := get(t, srv.URL)
	for _, s := range sr.values {
		if strings.Contains(all.String(), s) {
			t.Errorf("the OTLP push holds the secret %q", s)
		}
		if strings.Contains(exposition, s) {
			t.Errorf("/metrics holds the secret %q", s)
		}
	}
	var promTotal float64
	for _, ep := range sum.Endpoints {
		v, _ := series(t, e.Gatherer(), "stampede_requests_total", map[string]string{"name": e.mask.Mask(ep.Name), "method": ep.Method})
		promTotal += v
	}
	if int64(promTotal) != sum.Aggregated.Requests {
		t.Errorf("stampede_requests_total sums to %v, summary.json %d", promTotal, sum.Aggregated.Requests)
	}
}
