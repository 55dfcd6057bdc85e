package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/stampede-load/stampede/internal/diagnose"
	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/metricsout"
	"github.com/stampede-load/stampede/internal/runner"
	"github.com/stampede-load/stampede/internal/secret"
)

// metricsFlags are the flags of "stampede run" that send its metrics out
// (docs/metrics.md).
type metricsFlags struct {
	addr         string        // --metrics
	otlp         string        // --otlp
	otlpInterval time.Duration // --otlp-interval
	linger       time.Duration // --metrics-linger
}

func (f *metricsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.addr, "metrics", "", "serve Prometheus metrics at http://ADDR/metrics while the run goes; a port alone (9464 or :9464) binds 127.0.0.1; read-only, no secret in them (see docs/metrics.md)")
	// Never an error here: the flag package would print the value.
	fs.StringVar(&f.otlp, "otlp", "", "push the same metrics over OTLP/HTTP to an OpenTelemetry collector, e.g. http://127.0.0.1:4318 (headers from OTEL_EXPORTER_OTLP_HEADERS)")
	fs.DurationVar(&f.otlpInterval, "otlp-interval", time.Second, "interval of the --otlp push")
	fs.DurationVar(&f.linger, "metrics-linger", 15*time.Second, "after the run, keep /metrics up until it has been scraped once more, at most this long, so that the scraper gets the final figures (no wait when nothing ever scraped it)")
}

// metricsOut is a run's metrics exporter, with the /metrics server of
// --metrics when there is one.
type metricsOut struct {
	exp    *metricsout.Exporter
	srv    *http.Server // nil without --metrics
	url    string
	linger time.Duration
	stderr io.Writer
	otlp   *otlpErrors // nil without --otlp

	// The diagnosis so far, without the live page (which makes its own):
	// stopDiag ends it, diagDone says it has.
	stopDiag, diagDone chan struct{}

	closeOnce sync.Once
}

// metricsDiagnoseEvery is how often, at least, the findings sent out are
// recomputed over the records so far when no live page does it.
var metricsDiagnoseEvery = 5 * time.Second

// diagnoseAsItGoes feeds the exporter the diagnosis so far, so that an
// alert can fire on a finding while the load still runs (the live page
// does it when --ui is on): the run directory's records, flushed every
// second, diagnosed every metricsDiagnoseEvery at least and never more
// often than ten times what the last diagnosis took (a tenth of a core at
// most), until close. The run's own diagnosis at its end replaces it.
func (m *metricsOut) diagnoseAsItGoes(dir string) {
	m.stopDiag, m.diagDone = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(m.diagDone)
		wait := metricsDiagnoseEvery
		for {
			t := time.NewTimer(wait)
			select {
			case <-m.stopDiag:
				t.Stop()
				return
			case <-t.C:
			}
			began := time.Now()
			in, err := runner.LoadInputLive(dir)
			if err != nil {
				continue // meta.json not written yet
			}
			d := diagnose.Diagnose(in)
			m.exp.SetFindings(d.Findings)
			wait = max(metricsDiagnoseEvery, 10*time.Since(began))
		}
	}()
}

// startMetricsOut makes the exporter the flags ask for, for --metrics,
// --otlp or the live page's /metrics (ui), adds it to the run's
// observers and serves /metrics on --metrics ADDR. It sets o.Dir when it
// was empty (to the directory runner.Run would pick), since the run's name
// labels every series. It returns nil when nothing asks for metrics.
func startMetricsOut(f *metricsFlags, ui bool, sc *load.Scenario, plan *load.Plan, o *runner.Options, stdout, stderr io.Writer) (*metricsOut, error) {
	if f.addr == "" && f.otlp == "" && !ui {
		return nil, nil
	}
	if f.otlpInterval <= 0 {
		return nil, fmt.Errorf("run: --otlp-interval %v: want a positive duration", f.otlpInterval)
	}
	if o.Dir == "" {
		at := o.StartAt
		if at.IsZero() {
			at = time.Now()
		}
		o.Dir = runner.DefaultDir(at)
	}
	mo := metricsout.Options{Run: metricsRunName(o), Segment: metricsSegment(o), Scenario: scenarioName(sc),
		Target: plan.Target, Secrets: metricsSecrets(plan, o), OTLP: f.otlp, OTLPInterval: f.otlpInterval}
	m := &metricsOut{linger: f.linger, stderr: stderr}
	if f.otlp != "" {
		// The SDK reports a failed push to the global handler: say it once,
		// count the rest.
		m.otlp = &otlpErrors{w: stderr}
		otel.SetErrorHandler(m.otlp)
	}
	exp, err := metricsout.New(mo)
	if err != nil {
		return nil, withHint(fmt.Errorf("run: --otlp: %w", err), "--otlp http://127.0.0.1:4318")
	}
	m.exp = exp
	if f.addr != "" {
		if err := m.serve(f.addr, stdout, stderr); err != nil {
			_ = exp.Close()
			return nil, err
		}
	}
	if f.otlp != "" {
		fmt.Fprintf(stdout, "Metrics: pushed every %s over OTLP/HTTP to %s\n", f.otlpInterval, secret.Mask(f.otlp))
	}
	o.Observers = append(o.Observers, exp)
	if !ui && !o.NoDiagnose && !o.ObserveOnly {
		m.diagnoseAsItGoes(o.Dir)
	}
	return m, nil
}

// serve listens on addr (a port alone binds loopback) and serves /metrics.
func (m *metricsOut) serve(addr string, stdout, stderr io.Writer) error {
	la, err := metricsListenAddr(addr)
	if err != nil {
		return withHint(fmt.Errorf("run: --metrics %q: %w", addr, err), "--metrics 127.0.0.1:9464")
	}
	ln, err := net.Listen("tcp", la)
	if err != nil {
		return withHint(fmt.Errorf("run: --metrics %s: %w", la, err), "--metrics 127.0.0.1:0 picks a free port")
	}
	if ta, ok := ln.Addr().(*net.TCPAddr); !ok || !ta.IP.IsLoopback() {
		// The metrics are read-only and carry no secret, so no token
		// guards them; but the user should know who can read them.
		fmt.Fprintf(stderr, "stampede: WARNING: --metrics listens on %s, reachable from other machines: anyone who can reach it reads this run's metrics (read-only: endpoint names, probe readings, findings; no secret). Bind 127.0.0.1 unless a scraper elsewhere needs it.\n", ln.Addr())
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.exp.Handler())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "stampede: the run's Prometheus metrics are at /metrics")
	})
	m.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	m.url = metricsURL(ln.Addr())
	go func() { _ = m.srv.Serve(ln) }()
	fmt.Fprintf(stdout, "Metrics: %s\n", m.url)
	return nil
}

// metricsListenAddr makes --metrics an address to listen on: a port alone
// (9464) or an empty host (:9464) is loopback's.
func metricsListenAddr(v string) (string, error) {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		if _, perr := strconv.Atoi(v); perr != nil {
			return "", errors.New("want HOST:PORT or a port, e.g. 127.0.0.1:9464")
		}
		host, port = "", v
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "", errors.New("want a port between 0 and 65535")
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// metricsURL is the URL to print for the listener: this host's name when
// it listens on every interface.
func metricsURL(a net.Addr) string {
	host, port, _ := net.SplitHostPort(a.String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
		if h, err := os.Hostname(); err == nil && h != "" {
			host = h
		}
	}
	return "http://" + net.JoinHostPort(host, port) + "/metrics"
}

// metricsRunName is the run label: the start instant of a split load
// (every generator waits for the same one, so that their series sum by
// it), else the run directory's name (meta.json's run).
func metricsRunName(o *runner.Options) string {
	if o.Segment != nil && !o.StartAt.IsZero() {
		return o.StartAt.UTC().Format("20060102-150405")
	}
	return filepath.Base(o.Dir)
}

// metricsSegment is the segment label: "i/N", "observer", or "" for a
// whole run.
func metricsSegment(o *runner.Options) string {
	switch {
	case o.Segment == nil:
		return ""
	case o.Segment.Observer:
		return "observer"
	}
	return fmt.Sprintf("%d/%d", o.Segment.Index, o.Segment.Count)
}

// scenarioName is the scenario file's name without its extension, or
// "quick" for the quick form.
func scenarioName(sc *load.Scenario) string {
	if sc == nil || sc.File() == "" {
		return "quick"
	}
	base := filepath.Base(sc.File())
	return strings.TrimSuffix(base, filepath.Ext(base))
}

// metricsSecrets are the values masked out of the endpoint names: the
// plan's (users file passwords, the target URL's) and the probes' DSN
// passwords, as runner.Run masks them in the run directory.
func metricsSecrets(plan *load.Plan, o *runner.Options) []string {
	out := plan.Secrets()
	dsns := append([]string{o.Probes.Postgres, o.Probes.PgBouncer, o.Probes.Redis}, strings.Fields(o.Probes.Prometheus)...)
	for _, dsn := range dsns {
		if pw := secret.DSNPassword(dsn); pw != "" {
			out = append(out, pw)
		}
	}
	return out
}

// exporter returns the run's exporter (nil without one): the live page
// serves its Handler at /metrics and feeds SetFindings with the diagnosis
// so far.
func (m *metricsOut) exporter() *metricsout.Exporter {
	if m == nil {
		return nil
	}
	return m.exp
}

// awaitScrape keeps /metrics up, once the run is over, until it has been
// scraped once more (so that the scraper has the final figures), at most
// --metrics-linger or until ctx ends (Ctrl-C); not at all when nothing
// ever scraped it. With the live page only, it waits while the page's
// /metrics is still served.
func (m *metricsOut) awaitScrape(ctx context.Context, stdout io.Writer) {
	if m == nil || ctx.Err() != nil || m.linger <= 0 {
		return
	}
	quick, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err := m.exp.WaitScrape(quick)
	cancel()
	if err == nil || errors.Is(err, metricsout.ErrNoScraper) || ctx.Err() != nil {
		return
	}
	fmt.Fprintf(stdout, "Metrics: waiting for a last scrape of the final figures (at most %s; --metrics-linger, Ctrl-C to exit now).\n", m.linger)
	wait, cancel := context.WithTimeout(ctx, m.linger)
	defer cancel()
	_ = m.exp.WaitScrape(wait)
}

// close stops the /metrics server and the OTLP push (pushing the last
// figures, if the run's end did not already), once.
func (m *metricsOut) close() {
	if m == nil {
		return
	}
	m.closeOnce.Do(func() {
		if m.stopDiag != nil {
			close(m.stopDiag)
			<-m.diagDone
		}
		if m.srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = m.srv.Shutdown(ctx)
			cancel()
		}
		if err := m.exp.Close(); err != nil {
			fmt.Fprintf(m.stderr, "stampede: --otlp: %v\n", err)
		}
		if m.otlp != nil {
			m.otlp.summary()
		}
	})
}

// otlpErrors is the OpenTelemetry SDK's error handler while --otlp pushes:
// the first error is printed, the others counted.
type otlpErrors struct {
	mu sync.Mutex
	w  io.Writer
	n  int
}

func (h *otlpErrors) Handle(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n++
	if h.n == 1 {
		fmt.Fprintf(h.w, "stampede: --otlp: %v (further errors are counted)\n", err)
	}
}

func (h *otlpErrors) summary() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n > 1 {
		fmt.Fprintf(h.w, "stampede: --otlp: %d errors in all while pushing\n", h.n)
	}
}
