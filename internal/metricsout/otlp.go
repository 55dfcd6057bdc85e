package metricsout

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/semconv/v1.43.0/httpconv"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/secret"
)

// The attributes of stampede's own OTLP metrics; the request durations use
// the HTTP client semantic conventions' (semconv) besides endpointKey.
const (
	endpointKey      = attribute.Key("stampede.endpoint")
	probeSourceKey   = attribute.Key("stampede.probe.source")
	probeExporterKey = attribute.Key("stampede.probe.exporter")
	probeKeyKey      = attribute.Key("stampede.probe.key")
	findingIDKey     = attribute.Key("stampede.finding.id")
	findingStatusKey = attribute.Key("stampede.finding.status")
	logNameKey       = attribute.Key("stampede.log")
	logSignatureKey  = attribute.Key("stampede.log.signature")
	logClassKey      = attribute.Key("stampede.log.class")
	loadByKey        = attribute.Key("stampede.load.by")
)

// The resource attributes that say which run the metrics are of, beside
// service.name "stampede", service.version and service.instance.id.
const (
	RunIDKey    = attribute.Key("stampede.run.id")
	ScenarioKey = attribute.Key("stampede.scenario")
	SegmentKey  = attribute.Key("stampede.segment")
)

// DefaultOTLPPath is added to an OTLP base URL (http://collector:4318), as
// OTEL_EXPORTER_OTLP_ENDPOINT does.
const DefaultOTLPPath = "/v1/metrics"

// otlpTarget is where the OTLP push goes.
type otlpTarget struct {
	host, path string
	insecure   bool
}

// parseOTLP reads an OTLP URL. Its errors show the URL with any password
// masked.
func parseOTLP(raw string) (otlpTarget, error) {
	shown := secret.Mask(stampede.Redact(raw))
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return otlpTarget{}, fmt.Errorf("metricsout: OTLP URL %q: want http(s)://HOST:PORT of a collector's OTLP/HTTP receiver, e.g. http://127.0.0.1:4318", shown)
	}
	if u.User != nil {
		return otlpTarget{}, fmt.Errorf("metricsout: OTLP URL %q carries credentials: give them in OTEL_EXPORTER_OTLP_HEADERS (e.g. Authorization=Basic%%20...), which the push sends as headers", shown)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return otlpTarget{}, fmt.Errorf("metricsout: OTLP URL %q: want no query or fragment", shown)
	}
	t := otlpTarget{host: u.Host, path: u.EscapedPath(), insecure: u.Scheme == "http"}
	if t.path == "" || t.path == "/" {
		t.path = DefaultOTLPPath
	}
	return t, nil
}

// otelOut pushes the figures over OTLP/HTTP with the OpenTelemetry SDK: the
// counters and the histogram are updated per request (through attribute
// sets made once), the gauges are observed from the state at each push.
type otelOut struct {
	mp      *sdkmetric.MeterProvider
	ctx     context.Context
	timeout time.Duration
	server  []attribute.KeyValue // server.address, server.port

	dur        metric.Float64Histogram
	req, fail  metric.Int64Counter
	logs       metric.Int64Counter
	logMu      sync.Mutex
	logOptions map[[3]string][]metric.AddOption // bounded by state.logSeries
}

// otelEndpoint holds one endpoint's attribute sets, made once; dur grows
// by status code and outcome, on the recorder goroutine alone.
type otelEndpoint struct {
	base []attribute.KeyValue
	req  []metric.AddOption
	fail [numOutcomes][]metric.AddOption
	dur  map[durKey][]metric.RecordOption
}

type durKey struct{ status, outcome int }

func newOTLP(o Options, st *state) (*otelOut, error) {
	t, err := parseOTLP(o.OTLP)
	if err != nil {
		return nil, err
	}
	interval, timeout := o.OTLPInterval, o.OTLPTimeout
	if interval == 0 {
		interval = time.Second
	}
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	opts := []otlpmetrichttp.Option{otlpmetrichttp.WithEndpoint(t.host), otlpmetrichttp.WithURLPath(t.path), otlpmetrichttp.WithTimeout(timeout)}
	if t.insecure {
		opts = append(opts, otlpmetrichttp.WithInsecure())
	}
	ctx := context.Background()
	exp, err := otlpmetrichttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("metricsout: OTLP: %w", err)
	}
	attrs := []attribute.KeyValue{semconv.ServiceName("stampede"), semconv.ServiceVersion(stampede.Version),
		RunIDKey.String(o.Run), ScenarioKey.String(o.Scenario), SegmentKey.String(o.Segment)}
	if id := o.Run + segmentSuffix(o.Segment); id != "" {
		attrs = append(attrs, semconv.ServiceInstanceID(id))
	}
	// OTEL_RESOURCE_ATTRIBUTES (a pod's name and namespace, say) add to
	// these; a malformed one is ignored, the run's attributes stay.
	res, err := resource.New(ctx, resource.WithFromEnv(), resource.WithAttributes(attrs...), resource.WithSchemaURL(semconv.SchemaURL))
	if err != nil && res == nil {
		res = resource.NewWithAttributes(semconv.SchemaURL, attrs...)
	}
	reader := sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(interval), sdkmetric.WithTimeout(timeout))
	// No exemplars: there is no trace to point at, and offering each
	// measurement to a reservoir would cost on every request.
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(reader), sdkmetric.WithExemplarFilter(exemplar.AlwaysOffFilter))
	ot := &otelOut{mp: mp, ctx: ctx, timeout: timeout, logOptions: map[[3]string][]metric.AddOption{}}
	if o.Target != nil {
		ot.server = append(ot.server, semconv.ServerAddress(o.Target.Hostname()))
		if p := targetPort(o.Target); p != 0 {
			ot.server = append(ot.server, semconv.ServerPort(p))
		}
	}
	if err := ot.instruments(mp.Meter("github.com/stampede-load/stampede/internal/metricsout", metric.WithInstrumentationVersion(stampede.Version)), st); err != nil {
		_ = mp.Shutdown(ctx)
		return nil, fmt.Errorf("metricsout: OTLP instruments: %w", err)
	}
	return ot, nil
}

func segmentSuffix(seg string) string {
	if seg == "" {
		return ""
	}
	return "/" + seg
}

// targetPort is the target's port, explicit or its scheme's.
func targetPort(u *url.URL) int {
	if p, err := strconv.Atoi(u.Port()); err == nil {
		return p
	}
	switch u.Scheme {
	case "https":
		return 443
	case "http":
		return 80
	}
	return 0
}

func (ot *otelOut) instruments(m metric.Meter, st *state) error {
	dur, err := httpconv.NewClientRequestDuration(m)
	ot.dur = dur.Inst()
	var errs []error
	errs = append(errs, err)
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	ot.req = counter("stampede.requests", "{request}", "Requests completed, failed or not, by endpoint and method; summary.json's requests.")
	ot.fail = counter("stampede.request.failures", "{request}", "Failed requests by endpoint, method and failure class (error.type: status, content, transport, timeout).")
	ot.logs = counter("stampede.log.events", "{event}", "Events read from the server logs, by log name, signature id and the finding id it points at.")

	ig := func(name, unit, desc string) metric.Int64ObservableGauge {
		g, err := m.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return g
	}
	fg := func(name, unit, desc string) metric.Float64ObservableGauge {
		g, err := m.Float64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return g
	}
	ic := func(name, unit, desc string) metric.Int64ObservableCounter {
		c, err := m.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	users := ig("stampede.users", "{user}", "Virtual users active (0 once the run is over).")
	inFlight := ig("stampede.requests.in_flight", "{request}", "Requests sent and not yet answered.")
	dropped := ic("stampede.dropped_arrivals", "{arrival}", "Open model: arrivals that found no free user and were dropped.")
	start := fg("stampede.run.start_time", "s", "When the run started, seconds since the Unix epoch.")
	finished := ig("stampede.run.finished", "1", "1 once the run is over and these are its final figures, else 0.")
	genCPU := fg("stampede.generator.cpu", "%", "The generator's own CPU over the last second, percent of one core.")
	genLag := fg("stampede.generator.timer_lag", "s", "How late the generator's 10 ms timer fired at worst in the last second.")
	genSat := ig("stampede.generator.saturated", "1", "1 when the generator was the bottleneck in the last second, else 0.")
	probeValue := fg("stampede.probe.value", "1", "Every numeric reading of the probes, by source, exporter and key (docs/run-directory.md).")
	probeUp := ig("stampede.probe.up", "1", "1 when the source's last sample was read, 0 when it failed.")
	probeDropped := ic("stampede.probe.readings_dropped", "{reading}", "Readings of keys left out because the probe series reached their bound.")
	loadUsers := ig("stampede.load.users", "{user}", "Closed model: the virtual users wanted.")
	loadSpawn := fg("stampede.load.spawn_rate", "{user}/s", "Closed model: users started (or stopped) per second on the way.")
	loadArrival := fg("stampede.load.arrival_rate", "{flow}/s", "Open model: flow starts per second wanted.")
	loadMax := ig("stampede.load.max_users", "{user}", "Open model: the cap on concurrent users.")
	loadChanges := ic("stampede.load.changes", "{change}", "Load settings taken: the plan's, then each change, by who made it.")
	findings := fg("stampede.finding", "1", "A finding of the diagnosis by id and status: its confidence, present while it holds.")
	if err := errors.Join(errs...); err != nil {
		return err
	}
	byAttrs := map[string]metric.ObserveOption{}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st.mu.Lock()
		defer st.mu.Unlock()
		o.ObserveInt64(users, int64(st.users))
		o.ObserveInt64(inFlight, int64(st.inFlight))
		o.ObserveInt64(dropped, st.dropped)
		if !st.start.IsZero() {
			o.ObserveFloat64(start, float64(st.start.UnixNano())/1e9)
		}
		o.ObserveInt64(finished, int64(b2f(st.finished)))
		if st.gen.ok {
			o.ObserveFloat64(genCPU, st.gen.cpuPct)
			o.ObserveFloat64(genLag, st.gen.lagS)
			o.ObserveInt64(genSat, int64(st.gen.saturated))
		}
		for _, src := range st.sources {
			o.ObserveInt64(probeUp, int64(b2f(src.up)), metric.WithAttributeSet(src.set))
			for _, r := range src.keys {
				o.ObserveFloat64(probeValue, r.value, metric.WithAttributeSet(r.set))
			}
		}
		o.ObserveInt64(probeDropped, st.probeDropped)
		if st.load.Users != 0 {
			o.ObserveInt64(loadUsers, int64(st.load.Users))
		}
		if st.load.SpawnRate != 0 {
			o.ObserveFloat64(loadSpawn, st.load.SpawnRate)
		}
		if st.load.ArrivalRate != 0 {
			o.ObserveFloat64(loadArrival, st.load.ArrivalRate)
		}
		if st.load.MaxUsers != 0 {
			o.ObserveInt64(loadMax, int64(st.load.MaxUsers))
		}
		for by, n := range st.loadChanges {
			opt := byAttrs[by]
			if opt == nil {
				opt = metric.WithAttributes(loadByKey.String(by))
				byAttrs[by] = opt
			}
			o.ObserveInt64(loadChanges, n, opt)
		}
		for _, f := range st.findings {
			o.ObserveFloat64(findings, f.confidence, metric.WithAttributeSet(f.set))
		}
		return nil
	}, users, inFlight, dropped, start, finished, genCPU, genLag, genSat, probeValue, probeUp, probeDropped,
		loadUsers, loadSpawn, loadArrival, loadMax, loadChanges, findings)
	return err
}

// endpoint makes the attribute sets of one endpoint.
func (ot *otelOut) endpoint(method, name string) *otelEndpoint {
	base := append([]attribute.KeyValue{endpointKey.String(name), semconv.HTTPRequestMethodKey.String(method)}, ot.server...)
	ep := &otelEndpoint{base: base, dur: map[durKey][]metric.RecordOption{}}
	reqSet := attribute.NewSet(endpointKey.String(name), semconv.HTTPRequestMethodKey.String(method))
	ep.req = []metric.AddOption{metric.WithAttributeSet(reqSet)}
	for o := 1; o < numOutcomes; o++ {
		set := attribute.NewSet(endpointKey.String(name), semconv.HTTPRequestMethodKey.String(method), semconv.ErrorTypeKey.String(stampede.Outcome(o).String()))
		ep.fail[o] = []metric.AddOption{metric.WithAttributeSet(set)}
	}
	return ep
}

// result counts one request: on the recorder goroutine, allocation-free
// once its endpoint, status and outcome were seen.
func (ot *otelOut) result(ep *otelEndpoint, status, o int, sec float64) {
	ot.req.Add(ot.ctx, 1, ep.req...)
	k := durKey{status, o}
	opts := ep.dur[k]
	if opts == nil {
		opts = ep.durOptions(k)
		ep.dur[k] = opts
	}
	ot.dur.Record(ot.ctx, sec, opts...)
	if o != int(stampede.OK) {
		ot.fail.Add(ot.ctx, 1, ep.fail[o]...)
	}
}

// durOptions makes the attributes of http.client.request.duration for a
// status and outcome: http.response.status_code when a response came, and
// error.type, the failure class, when the request failed.
func (ep *otelEndpoint) durOptions(k durKey) []metric.RecordOption {
	attrs := append([]attribute.KeyValue(nil), ep.base...)
	if k.status != 0 {
		attrs = append(attrs, semconv.HTTPResponseStatusCode(k.status))
	}
	if k.outcome != int(stampede.OK) {
		attrs = append(attrs, semconv.ErrorTypeKey.String(stampede.Outcome(k.outcome).String()))
	}
	return []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attrs...))}
}

// evidence counts one log event.
func (ot *otelOut) evidence(log, sig, class string) {
	k := [3]string{log, sig, class}
	ot.logMu.Lock()
	defer ot.logMu.Unlock()
	opts := ot.logOptions[k]
	if opts == nil {
		opts = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(logNameKey.String(log), logSignatureKey.String(sig), logClassKey.String(class)))}
		ot.logOptions[k] = opts
	}
	ot.logs.Add(ot.ctx, 1, opts...)
}

// shutdown pushes the last figures and stops the push, within the timeout.
func (ot *otelOut) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), ot.timeout+time.Second)
	defer cancel()
	if err := ot.mp.Shutdown(ctx); err != nil {
		return fmt.Errorf("metricsout: OTLP: last push: %w", err)
	}
	return nil
}
