package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configgrpc"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/metrics"
	"github.com/stampede-load/stampede/internal/rundir"
	"github.com/stampede-load/stampede/internal/runner"
	"github.com/stampede-load/stampede/internal/testserver"
)

func TestMetricsListenAddr(t *testing.T) {
	for _, tt := range []struct {
		in, want, err string
	}{
		{"9464", "127.0.0.1:9464", ""},
		{":9464", "127.0.0.1:9464", ""},
		{"127.0.0.1:0", "127.0.0.1:0", ""},
		{"0.0.0.0:9464", "0.0.0.0:9464", ""},
		{"[::1]:9464", "[::1]:9464", ""},
		{"localhost:9464", "localhost:9464", ""},
		{"metrics", "", "want HOST:PORT"},
		{"h:99999", "", "between 0 and 65535"},
	} {
		got, err := metricsListenAddr(tt.in)
		if got != tt.want || (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("metricsListenAddr(%q) = %q, %v; want %q, %q", tt.in, got, err, tt.want, tt.err)
		}
	}
}

// The run label: the run directory's name, or for the generators of a
// split load their common start instant; the segment label says which.
func TestMetricsRunLabels(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name     string
		o        runner.Options
		run, seg string
	}{
		{"whole run", runner.Options{Dir: "runs/20260301-115900"}, "20260301-115900", ""},
		{"segment", runner.Options{Dir: "/results/seg-2", StartAt: at, Segment: &rundir.Segment{Index: 2, Count: 4}}, "20260301-120000", "2/4"},
		{"observer", runner.Options{Dir: "/results/observer", StartAt: at, Segment: &rundir.Segment{Index: -1, Count: 4, Observer: true}}, "20260301-120000", "observer"},
		{"segment without start", runner.Options{Dir: "seg-0", Segment: &rundir.Segment{Index: 0, Count: 2}}, "seg-0", "0/2"},
	} {
		if got := metricsRunName(&tt.o); got != tt.run {
			t.Errorf("%s: run %q, want %q", tt.name, got, tt.run)
		}
		if got := metricsSegment(&tt.o); got != tt.seg {
			t.Errorf("%s: segment %q, want %q", tt.name, got, tt.seg)
		}
	}
}

// Bad --metrics and --otlp values exit 1 naming the flag, and the error
// never shows a password.
func TestMetricsFlagErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--metrics", "nowhere"}, "--metrics"},
		{[]string{"--otlp", "http://u:Otlp-Pw-4242@127.0.0.1:4318"}, "OTEL_EXPORTER_OTLP_HEADERS"},
		{[]string{"--otlp", "collector:4318"}, "--otlp"},
		{[]string{"--otlp", "http://127.0.0.1:4318", "--otlp-interval", "0s"}, "--otlp-interval"},
	} {
		cmd := stampedeCmd(append([]string{"run", "--url", "http://127.0.0.1:1/", "-t", "1s", "--out", filepath.Join(t.TempDir(), "r")}, tt.args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		var ee *exec.ExitError
		if err := cmd.Run(); !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("%q: %v, stderr %q; want exit 1 with %q", tt.args, err, stderr.String(), tt.want)
		}
		if strings.Contains(stderr.String(), "Otlp-Pw-4242") {
			t.Errorf("%q: the error shows the password: %s", tt.args, stderr.String())
		}
	}
}

// metricsScenario writes a scenario whose run carries secrets: the users
// file's passwords (one account's is wrong: its logins fail), an API key in
// a step's URL; with probeDSN, PostgreSQL with a password in its DSN, on a
// port where nothing listens. It returns the scenario's path and the
// secrets.
func metricsScenario(t *testing.T, target, duration string) (string, []string) {
	t.Helper()
	const (
		userPW = "Users-File-Pw-8080"
		badPW  = "Wrong-Pw-6060"
		apiKey = "apikey-0f9e8d7c6b"
	)
	dir := t.TempDir()
	users := "username,password\nada," + userPW + "\nbob," + userPW + "\ncyd," + badPW + "\n"
	if err := os.WriteFile(filepath.Join(dir, "users.csv"), []byte(users), 0o600); err != nil {
		t.Fatal(err)
	}
	sc := `target: ` + target + `
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
	path := filepath.Join(dir, "metrics.yaml")
	if err := os.WriteFile(path, []byte(sc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, []string{userPW, badPW, apiKey}
}

// startPrometheus starts Debian's Prometheus server on a free loopback
// port, scraping targets every second, with its data in a temporary
// directory; it stops it by its pid when the test ends. It skips the test
// when there is no prometheus binary, unless CI=true.
func startPrometheus(t *testing.T, targets ...string) promv1.API {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("no prometheus binary (Debian's prometheus package; scripts/test installs it)")
		}
		t.Skip("no prometheus binary (apt-get install prometheus)")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	conf := fmt.Sprintf("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: stampede\n    static_configs:\n      - targets: [%q]\n", strings.Join(targets, `", "`))
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("prometheus log:\n%s", b)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready at %s after 60s: %v", addr, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	c, err := promapi.NewClient(promapi.Config{Address: "http://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	return promv1.NewAPI(c)
}

// promScalar runs an instant query that yields one sample.
func promScalar(t *testing.T, api promv1.API, q string) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, warnings, _, err := api.Query(ctx, q, time.Now())
	if err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	if len(warnings) > 0 {
		t.Logf("query %s: warnings %v", q, warnings)
	}
	vec, ok := v.(model.Vector)
	if !ok || len(vec) != 1 {
		t.Fatalf("query %s: %v, want one sample", q, v)
	}
	return float64(vec[0].Value)
}

// TestPrometheusScrapesRun points a real Prometheus server at the
// /metrics of a "stampede run" (every second), and once the run is over
// asks its HTTP API for the sums of stampede's counters: they equal
// summary.json's totals, the last scrape had the final figures, and no
// label of any series holds a secret of the run (the users file's
// passwords, the DSN's password, an API key in a URL), nor does /metrics.
func TestPrometheusScrapesRun(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: a Prometheus server and a run")
	}
	metricsAddr := freeAddr(t)
	api := startPrometheus(t, metricsAddr)
	ts := httptest.NewServer(testserver.New("Users-File-Pw-8080"))
	defer ts.Close()
	scenario, secrets := metricsScenario(t, ts.URL, "6s")
	const dsnPW = "Dsn-Pw-Secr3t-9090"
	secrets = append(secrets, dsnPW)
	out := filepath.Join(t.TempDir(), "run")
	cmd := stampedeCmd("run", scenario, "--quiet", "--no-diagnose", "--out", out, "--metrics", metricsAddr,
		"--probe-postgres", "postgres://app:"+dsnPW+"@127.0.0.1:1/app?connect_timeout=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// /metrics itself, mid-run.
	time.Sleep(3 * time.Second)
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics mid-run: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "stampede_requests_total{") {
		t.Errorf("/metrics mid-run has no request counter:\n%s", body)
	}
	for _, s := range secrets {
		if strings.Contains(string(body), s) {
			t.Errorf("/metrics holds the secret %q", s)
		}
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("run: %v\n%s\n%s", err, stdout.String(), stderr.String())
		}
	case <-time.After(90 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("the run did not end in 90s\n%s\n%s", stdout.String(), stderr.String())
	}
	if want := "Metrics: http://" + metricsAddr + "/metrics"; !strings.Contains(stdout.String(), want) {
		t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
	}
	sum, err := metrics.ReadSummary(filepath.Join(out, rundir.SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Aggregated.Requests < 20 || sum.Aggregated.Failures == 0 {
		t.Fatalf("the run made %d requests, %d failed: want many, some failed", sum.Aggregated.Requests, sum.Aggregated.Failures)
	}
	// The series went stale when the process exited: last_over_time reads
	// their last scraped values, as a dashboard of a finished run does.
	for _, tt := range []struct {
		q    string
		want float64
	}{
		{`sum(last_over_time(stampede_requests_total{job="stampede"}[5m]))`, float64(sum.Aggregated.Requests)},
		{`sum(last_over_time(stampede_requests_total{job="stampede",run="run"}[5m]))`, float64(sum.Aggregated.Requests)},
		{`sum(last_over_time(stampede_request_failures_total{job="stampede"}[5m]))`, float64(sum.Aggregated.Failures)},
		{`sum(last_over_time(stampede_request_duration_seconds_count{job="stampede"}[5m]))`, float64(sum.Aggregated.Requests)},
		{`sum(last_over_time(stampede_request_failures_total{job="stampede",name="[AUTH] Login POST",class="content"}[5m]))`, float64(loginContentFailures(sum))},
		{`max(last_over_time(stampede_run_finished{job="stampede"}[5m]))`, 1},
		{`max(last_over_time(stampede_probe_up{job="stampede",source="postgres"}[5m]))`, 0},
		{`max(last_over_time(stampede_load_users{job="stampede"}[5m]))`, 3},
	} {
		got := promScalar(t, api, tt.q)
		if got != tt.want {
			t.Errorf("%s = %v, want %v", tt.q, got, tt.want)
		}
		t.Logf("%s = %v", tt.q, got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	series, _, _, err := api.Series(ctx, []string{`{job="stampede"}`}, time.Now().Add(-5*time.Minute), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, ls := range series {
		names[string(ls[model.MetricNameLabel])] = true
		for k, v := range ls {
			for _, s := range secrets {
				if strings.Contains(string(v), s) || strings.Contains(string(k), s) {
					t.Errorf("series %v holds the secret %q", ls, s)
				}
			}
		}
	}
	var got []string
	for n := range names {
		got = append(got, n)
	}
	sort.Strings(got)
	for _, want := range []string{"stampede_requests_total", "stampede_users", "stampede_generator_cpu_percent", "stampede_probe_value", "stampede_dropped_arrivals_total"} {
		if !names[want] {
			t.Errorf("Prometheus has no %s; it has %v", want, got)
		}
	}
}

// loginContentFailures is summary.json's count of logins answered by the
// login page again (the wrong password's).
func loginContentFailures(s *metrics.Summary) int64 {
	for _, ep := range s.Endpoints {
		if ep.Name == "[AUTH] Login POST" {
			return ep.Outcomes["content"]
		}
	}
	return 0
}

// TestOTLPFlag runs "stampede run --otlp URL" against the Collector's own
// OTLP receiver: the pushed request counts equal summary.json's, and the
// resource says which run they are of.
func TestOTLPFlag(t *testing.T) {
	if testing.Short() {
		t.Skip("a run")
	}
	addr := freeAddr(t)
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
	defer r.Shutdown(context.Background())

	ts := httptest.NewServer(testserver.New("pw"))
	defer ts.Close()
	out := filepath.Join(t.TempDir(), "otlp-run")
	cmd := stampedeCmd("run", "--url", ts.URL+"/", "-u", "3", "-r", "3", "-t", "3s", "--think", "20ms", "--quiet", "--no-diagnose",
		"--out", out, "--otlp", "http://"+addr, "--otlp-interval", "500ms")
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("run: %v\n%s", err, b)
	}
	if !strings.Contains(string(b), "Metrics: pushed every 500ms over OTLP/HTTP to http://"+addr) || strings.Contains(string(b), "--otlp:") {
		t.Errorf("output:\n%s", b)
	}
	sum, err := metrics.ReadSummary(filepath.Join(out, rundir.SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	// The counters are cumulative: the latest point of each series is its
	// total.
	type point struct {
		v  int64
		ts uint64
	}
	latest := map[string]point{}
	run := ""
	for _, md := range sink.AllMetrics() {
		for i := 0; i < md.ResourceMetrics().Len(); i++ {
			rm := md.ResourceMetrics().At(i)
			if v, ok := rm.Resource().Attributes().Get("stampede.run.id"); ok {
				run = v.Str()
			}
			for j := 0; j < rm.ScopeMetrics().Len(); j++ {
				ms := rm.ScopeMetrics().At(j).Metrics()
				for k := 0; k < ms.Len(); k++ {
					m := ms.At(k)
					if m.Name() != "stampede.requests" || m.Type() != pmetric.MetricTypeSum {
						continue
					}
					for d := 0; d < m.Sum().DataPoints().Len(); d++ {
						dp := m.Sum().DataPoints().At(d)
						key := fmt.Sprint(dp.Attributes().AsRaw())
						if p, ok := latest[key]; !ok || uint64(dp.Timestamp()) >= p.ts {
							latest[key] = point{dp.IntValue(), uint64(dp.Timestamp())}
						}
					}
				}
			}
		}
	}
	var total int64
	for _, p := range latest {
		total += p.v
	}
	if total != sum.Aggregated.Requests || total == 0 {
		t.Errorf("stampede.requests pushed %d, summary.json %d", total, sum.Aggregated.Requests)
	}
	if run != "otlp-run" {
		t.Errorf("resource stampede.run.id %q, want the run directory's name", run)
	}
}

// The live page only (--ui, without --metrics): the exporter exists for
// the page's /metrics, and nothing else listens.
func TestMetricsOutOnlyWhenAsked(t *testing.T) {
	plan, err := load.QuickPlan("http://127.0.0.1:1/", 1, 1, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		f    metricsFlags
		ui   bool
		want bool
	}{
		{metricsFlags{otlpInterval: time.Second}, false, false},
		{metricsFlags{otlpInterval: time.Second}, true, true},
	} {
		var o runner.Options
		m, err := startMetricsOut(&tt.f, tt.ui, nil, plan, &o, io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if (m.exporter() != nil) != tt.want || (len(o.Observers) == 1) != tt.want {
			t.Errorf("ui %v: exporter %v, observers %d; want one: %v", tt.ui, m.exporter() != nil, len(o.Observers), tt.want)
		}
		if tt.want && (o.Dir == "" || metricsRunName(&o) != filepath.Base(o.Dir)) {
			t.Errorf("ui %v: run dir %q, run label %q", tt.ui, o.Dir, metricsRunName(&o))
		}
		m.close()
	}
}
