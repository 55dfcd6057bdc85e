// Package metricsout sends a run's figures out while it runs: Prometheus
// metrics on /metrics (through prometheus/client_golang) and, with an OTLP
// URL, the same figures pushed to an OpenTelemetry collector (through the
// OpenTelemetry Go SDK). An Exporter is a runner.Observer; docs/metrics.md
// lists every metric, its labels and how to sum the generators of a split
// run.
//
// Nothing that leaves carries a secret: label values are endpoint names from
// the scenario (masked like the run directory's texts), probe sources and
// keys, log names and signature ids, finding ids; no reason text, no URL, no
// log message, no probe error or textual reading leaves. Every label has a
// bounded set of values (MaxEndpoints, MaxProbeSeries).
package metricsout

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/runner"
	"github.com/stampede-load/stampede/internal/secret"
)

// Bounds on the number of series, so that a scenario or a probe cannot blow
// up a Prometheus server: past them, figures are folded or dropped (and
// counted), never added as new series.
const (
	// MaxEndpoints is the number of endpoints (method and name) with series
	// of their own; the requests of any further endpoint count under the
	// name OtherEndpoint.
	MaxEndpoints = 500
	// DefaultMaxProbeSeries is the default number of probe readings
	// (source, exporter, key) exposed at once; further keys are dropped
	// and counted in stampede_probe_readings_dropped_total.
	DefaultMaxProbeSeries = 2000
)

// OtherEndpoint is the name the requests of the endpoints past MaxEndpoints
// count under.
const OtherEndpoint = "(other)"

// Options say which run the metrics are of and where they go besides
// /metrics. The zero value is valid: Prometheus metrics without a run
// label, no OTLP push.
type Options struct {
	// Run names the run: the label run on every Prometheus series and the
	// resource attribute stampede.run.id. The generators of a split load
	// use the same Run, so that their series sum by it.
	Run string
	// Segment is the generator's part of a split load: "i/N" for segment
	// i of N, "observer" for the observer that runs the probes; "" for a
	// whole run (no segment label then).
	Segment string
	// Scenario names the scenario (the resource attribute
	// stampede.scenario of the OTLP push).
	Scenario string
	// Target is the target's URL: its host and port are the server.address
	// and server.port of the OTLP request durations. Nothing else of it
	// leaves.
	Target *url.URL
	// Secrets are the run's secret values (passwords of the users file
	// and the DSNs): masked out of endpoint names, as everything that
	// enters the run directory is (package secret).
	Secrets []string
	// MaxProbeSeries caps the probe readings exposed at once; 0 is
	// DefaultMaxProbeSeries.
	MaxProbeSeries int

	// OTLP, when not empty, is the URL of an OpenTelemetry collector's
	// OTLP/HTTP receiver the metrics are pushed to: a base URL
	// (http://collector:4318, to which /v1/metrics is added) or the full
	// metrics URL (a path other than "/" is kept). Headers (credentials)
	// come from OTEL_EXPORTER_OTLP_HEADERS, as for every OpenTelemetry
	// SDK; a URL with a password is refused.
	OTLP string
	// OTLPInterval is the push interval; 0 is one second.
	OTLPInterval time.Duration
	// OTLPTimeout bounds each push and the final one at End; 0 is 10
	// seconds.
	OTLPTimeout time.Duration
}

// Validate reports options that cannot work. Its errors never quote a
// password.
func (o Options) Validate() error {
	if o.MaxProbeSeries < 0 {
		return fmt.Errorf("metricsout: max probe series %d: want 0 or more", o.MaxProbeSeries)
	}
	if o.OTLPInterval < 0 || o.OTLPTimeout < 0 {
		return fmt.Errorf("metricsout: OTLP interval %v, timeout %v: want 0 or more", o.OTLPInterval, o.OTLPTimeout)
	}
	if o.OTLP != "" {
		if _, err := parseOTLP(o.OTLP); err != nil {
			return err
		}
	}
	return nil
}

// Exporter is a runner.Observer that keeps Prometheus metrics of the run,
// served by Handler from a registry of its own, and pushes the same figures
// over OTLP when Options.OTLP is set. Create it with New.
//
// Result is cheap: one map lookup per request (the endpoint's series are
// resolved once, at its first request), atomic additions, and no allocation
// once the endpoint was seen.
type Exporter struct {
	o    Options
	mask *secret.Masker
	reg  *prometheus.Registry
	st   *state
	otel *otelOut // nil without OTLP

	requests *prometheus.CounterVec
	failures *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	logs     *prometheus.CounterVec

	// eps is the recorder goroutine's alone (Result): no lock.
	eps   map[epKey]*endpoint
	other *endpoint

	ended atomic.Bool
	// findMu orders SetFindings and End: once the run's final findings
	// are set (findFinal), the diagnosis so far no longer replaces them.
	findMu    sync.Mutex
	findFinal bool
	scraped   atomic.Bool   // /metrics was read at least once
	final     chan struct{} // closed by the first read of /metrics after End
	finalOnce sync.Once
	endOnce   sync.Once
	closeOnce sync.Once
	closeErr  error
}

// Compile-time check: the Exporter observes runs.
var _ runner.Observer = (*Exporter)(nil)

type epKey struct{ method, name string }

// endpoint holds one endpoint's series, resolved once.
type endpoint struct {
	requests prometheus.Counter
	latency  prometheus.Observer
	// failures is indexed by stampede.Outcome; OK's is nil.
	failures [numOutcomes]prometheus.Counter
	otel     *otelEndpoint
}

// numOutcomes is the number of stampede.Outcome values.
const numOutcomes = int(stampede.FailTimeout) + 1

// LatencyBuckets are the upper bounds, in seconds, of the buckets of
// stampede_request_duration_seconds: from 1 ms to a minute, denser where
// web requests usually are.
var LatencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60}

// New returns an Exporter for the run o describes. With o.OTLP it starts
// the periodic push at once; End (or Close) pushes the last figures and
// stops it.
func New(o Options) (*Exporter, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.MaxProbeSeries == 0 {
		o.MaxProbeSeries = DefaultMaxProbeSeries
	}
	e := &Exporter{
		o:     o,
		mask:  secret.New(o.Secrets...),
		reg:   prometheus.NewRegistry(),
		st:    newState(o.MaxProbeSeries),
		eps:   map[epKey]*endpoint{},
		final: make(chan struct{}),
	}
	constLabels := prometheus.Labels{}
	if o.Run != "" {
		constLabels["run"] = validUTF8(o.Run)
	}
	if o.Segment != "" {
		constLabels["segment"] = validUTF8(o.Segment)
	}
	e.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stampede_requests_total", ConstLabels: constLabels,
		Help: "Requests completed, failed or not, by endpoint (the scenario's step name) and method; summary.json's requests.",
	}, []string{"name", "method"})
	e.failures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stampede_request_failures_total", ConstLabels: constLabels,
		Help: "Failed requests by endpoint, method and failure class (status, content, transport, timeout); summary.json's outcomes.",
	}, []string{"name", "method", "class"})
	e.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "stampede_request_duration_seconds", ConstLabels: constLabels, Buckets: LatencyBuckets,
		Help: "Request latency in seconds, from the (scheduled) start to the last byte of the body, by endpoint and method.",
	}, []string{"name", "method"})
	e.logs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stampede_log_events_total", ConstLabels: constLabels,
		Help: "Events read from the server logs (evidence.jsonl), by log name, signature id and the finding id it points at (empty when unclassified).",
	}, []string{"log", "signature", "class"})
	e.reg.MustRegister(e.requests, e.failures, e.latency, e.logs, newGaugeCollector(e.st, constLabels))
	if o.OTLP != "" {
		var err error
		if e.otel, err = newOTLP(o, e.st); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// validUTF8 makes s a valid label value.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// Result counts one request. It runs on the recorder goroutine.
func (e *Exporter) Result(r *stampede.Result) {
	ep := e.eps[epKey{r.Method, r.Name}]
	if ep == nil {
		ep = e.addEndpoint(r.Method, r.Name)
	}
	o := int(r.Outcome)
	if o >= numOutcomes {
		o = int(stampede.FailStatus) // an unknown outcome is still a failure, as in package metrics
	}
	ep.requests.Inc()
	sec := r.Latency.Seconds()
	ep.latency.Observe(sec)
	if o != int(stampede.OK) {
		ep.failures[o].Inc()
	}
	if ep.otel != nil {
		e.otel.result(ep.otel, r.Status, o, sec)
	}
}

// addEndpoint resolves the series of a new endpoint: its name masked and
// made a valid label value, or OtherEndpoint past MaxEndpoints.
func (e *Exporter) addEndpoint(method, name string) *endpoint {
	if len(e.eps) >= MaxEndpoints {
		if e.other == nil {
			e.other = e.newEndpoint("", OtherEndpoint)
		}
		// Later requests of this endpoint find it in the map at once.
		e.eps[epKey{method, name}] = e.other
		return e.other
	}
	ep := e.newEndpoint(validUTF8(method), validUTF8(e.mask.Mask(name)))
	e.eps[epKey{method, name}] = ep
	return ep
}

func (e *Exporter) newEndpoint(method, name string) *endpoint {
	ep := &endpoint{
		requests: e.requests.WithLabelValues(name, method),
		latency:  e.latency.WithLabelValues(name, method),
	}
	for o := 1; o < numOutcomes; o++ {
		ep.failures[o] = e.failures.WithLabelValues(name, method, stampede.Outcome(o).String())
	}
	if e.otel != nil {
		ep.otel = e.otel.endpoint(method, name)
	}
	return ep
}

// Second takes the engine's counts of the second: active users, requests
// in flight, dropped arrivals.
func (e *Exporter) Second(s *runner.SecondView) {
	e.st.second(s.Users, s.InFlight, s.Dropped, s.Start)
}

// Sample takes a probe reading (or the generator's own): its numeric
// values become stampede_probe_value series; the generator's CPU and timer
// lag have series of their own too. Textual readings and errors stay in
// timeline.jsonl.
func (e *Exporter) Sample(s stampede.Sample) {
	e.st.sample(&s)
}

// Evidence counts a log event by log, signature and class; its text stays
// in evidence.jsonl.
func (e *Exporter) Evidence(ev stampede.Evidence) {
	log, sig, class := validUTF8(ev.Source), validUTF8(ev.Signature), validUTF8(ev.Class)
	if !e.st.logSeries(log, sig, class) {
		return
	}
	e.logs.WithLabelValues(log, sig, class).Inc()
	if e.otel != nil {
		e.otel.evidence(log, sig, class)
	}
}

// LoadChanged records the load in force: the plan's, then every change
// made through the run's control.
func (e *Exporter) LoadChanged(c runner.LoadChange) {
	e.st.loadChanged(c)
}

// SetFindings replaces the findings exposed (stampede_finding): the live
// diagnosis calls it as the findings form, and End with the final
// diagnosis. Safe for concurrent use.
func (e *Exporter) SetFindings(fs []stampede.Finding) {
	e.findMu.Lock()
	defer e.findMu.Unlock()
	if e.findFinal {
		return // the run's final diagnosis stands
	}
	e.st.setFindings(fs)
}

// End takes the run's final figures (the final diagnosis' findings, when
// one was made), marks the run finished, then pushes the last figures over
// OTLP and stops the push.
func (e *Exporter) End(r *runner.Result) {
	e.endOnce.Do(func() {
		var dropped int64
		if r != nil && r.Summary != nil {
			dropped = r.Summary.Dropped
		}
		e.st.end(dropped)
		e.findMu.Lock()
		e.findFinal = true
		if r != nil && r.Diagnosis != nil {
			e.st.setFindings(r.Diagnosis.Findings)
		}
		e.findMu.Unlock()
		// From here on, a read of /metrics has the run's final figures.
		e.ended.Store(true)
		e.shutdownOTLP()
	})
}

// shutdownOTLP pushes the last figures and stops the push, once.
func (e *Exporter) shutdownOTLP() {
	e.closeOnce.Do(func() {
		if e.otel == nil {
			return
		}
		e.closeErr = e.otel.shutdown()
	})
}

// Close stops the OTLP push (pushing the last figures) if End did not, and
// returns the error of that last push. A run that failed before its end
// never calls End: Close is the one call that always comes.
func (e *Exporter) Close() error {
	e.shutdownOTLP()
	return e.closeErr
}

// Handler serves the metrics in the Prometheus exposition format (text, or
// what the scraper negotiates) from the Exporter's own registry. It is
// read-only: no request changes anything but the count of reads that
// WaitScrape watches.
func (e *Exporter) Handler() http.Handler {
	h := promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ended := e.ended.Load()
		h.ServeHTTP(w, r)
		e.scraped.Store(true)
		if ended {
			e.finalOnce.Do(func() { close(e.final) })
		}
	})
}

// Gatherer returns the Exporter's registry, for tests and for a server
// that merges it with others.
func (e *Exporter) Gatherer() prometheus.Gatherer { return e.reg }

// ErrNoScraper is WaitScrape's answer when /metrics was never read: nobody
// scrapes it, and nobody waits for its final figures.
var ErrNoScraper = errors.New("metricsout: /metrics was never read")

// WaitScrape waits until /metrics has been read once since End, so that a
// scraper has the run's final figures before the process exits; it gives
// up when ctx ends (context.Cause). It returns ErrNoScraper at once when
// /metrics was never read at all.
func (e *Exporter) WaitScrape(ctx context.Context) error {
	if !e.scraped.Load() {
		return ErrNoScraper
	}
	select {
	case <-e.final:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
