package metricsout

import (
	"github.com/prometheus/client_golang/prometheus"
)

// gaugeCollector exposes the state's figures at each scrape, as constant
// metrics made by client_golang: the series of a probe key that went away
// or of a finding that no longer holds disappear with it.
type gaugeCollector struct {
	st *state

	users, inFlight, dropped                *prometheus.Desc
	start, finished                         *prometheus.Desc
	genCPU, genLag, genSaturated            *prometheus.Desc
	probeValue, probeUp, probeDropped       *prometheus.Desc
	loadUsers, loadSpawn, loadArrival       *prometheus.Desc
	loadMaxUsers, loadChanges, findingValue *prometheus.Desc
}

func newGaugeCollector(st *state, constLabels prometheus.Labels) *gaugeCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, constLabels)
	}
	return &gaugeCollector{
		st:           st,
		users:        d("stampede_users", "Virtual users active (0 once the run is over)."),
		inFlight:     d("stampede_requests_in_flight", "Requests sent and not yet answered."),
		dropped:      d("stampede_dropped_arrivals_total", "Open model: arrivals that found no free user and were dropped (never delayed)."),
		start:        d("stampede_run_start_time_seconds", "When the run started, seconds since the Unix epoch."),
		finished:     d("stampede_run_finished", "1 once the run is over and these are its final figures, else 0."),
		genCPU:       d("stampede_generator_cpu_percent", "The generator's own CPU over the last second, percent of one core (200 = two cores busy)."),
		genLag:       d("stampede_generator_timer_lag_seconds", "How late the generator's 10 ms timer fired at worst in the last second: its scheduling lag."),
		genSaturated: d("stampede_generator_saturated", "1 when the generator was the bottleneck in the last second (CPU or timer lag past the thresholds), else 0."),
		probeValue:   d("stampede_probe_value", "Every numeric reading of the probes, as timeline.jsonl holds it, by source, exporter (host:port of a --probe-prometheus exporter, empty for stampede's own probes) and key (docs/run-directory.md).", "source", "exporter", "key"),
		probeUp:      d("stampede_probe_up", "1 when the source's last sample was read, 0 when it failed (the last readings stay).", "source", "exporter"),
		probeDropped: d("stampede_probe_readings_dropped_total", "Readings of keys left out because the probe series reached their bound."),
		loadUsers:    d("stampede_load_users", "Closed model: the virtual users wanted (the plan's, or the last change's)."),
		loadSpawn:    d("stampede_load_spawn_rate", "Closed model: users started (or stopped) per second on the way to the users wanted."),
		loadArrival:  d("stampede_load_arrival_rate", "Open model: flow starts per second wanted."),
		loadMaxUsers: d("stampede_load_max_users", "Open model: the cap on concurrent users."),
		loadChanges:  d("stampede_load_changes_total", "Load settings taken: the plan's at the start, then each change, by who made it (plan, ui, api).", "by"),
		findingValue: d("stampede_finding", "A finding of the diagnosis, by id and status (confirmed, likely, possible): its confidence (0 to 1), present while it holds; the live diagnosis as it forms, the final one at the end.", "id", "status"),
	}
}

func (c *gaugeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.users, c.inFlight, c.dropped, c.start, c.finished, c.genCPU, c.genLag, c.genSaturated,
		c.probeValue, c.probeUp, c.probeDropped, c.loadUsers, c.loadSpawn, c.loadArrival, c.loadMaxUsers, c.loadChanges, c.findingValue} {
		ch <- d
	}
}

func (c *gaugeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.st
	st.mu.Lock()
	defer st.mu.Unlock()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		// Label values were made valid UTF-8 on the way in: no error.
		if m, err := prometheus.NewConstMetric(d, prometheus.GaugeValue, v, labels...); err == nil {
			ch <- m
		}
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		if m, err := prometheus.NewConstMetric(d, prometheus.CounterValue, v, labels...); err == nil {
			ch <- m
		}
	}
	gauge(c.users, float64(st.users))
	gauge(c.inFlight, float64(st.inFlight))
	counter(c.dropped, float64(st.dropped))
	if !st.start.IsZero() {
		gauge(c.start, float64(st.start.UnixNano())/1e9)
	}
	gauge(c.finished, b2f(st.finished))
	if st.gen.ok {
		gauge(c.genCPU, st.gen.cpuPct)
		gauge(c.genLag, st.gen.lagS)
		gauge(c.genSaturated, st.gen.saturated)
	}
	for id, src := range st.sources {
		gauge(c.probeUp, b2f(src.up), id.source, id.exporter)
		for _, r := range src.keys {
			gauge(c.probeValue, r.value, id.source, id.exporter, r.key)
		}
	}
	counter(c.probeDropped, float64(st.probeDropped))
	if st.load.Users != 0 {
		gauge(c.loadUsers, float64(st.load.Users))
	}
	if st.load.SpawnRate != 0 {
		gauge(c.loadSpawn, st.load.SpawnRate)
	}
	if st.load.ArrivalRate != 0 {
		gauge(c.loadArrival, st.load.ArrivalRate)
	}
	if st.load.MaxUsers != 0 {
		gauge(c.loadMaxUsers, float64(st.load.MaxUsers))
	}
	for by, n := range st.loadChanges {
		counter(c.loadChanges, float64(n), by)
	}
	for _, f := range st.findings {
		gauge(c.findingValue, f.confidence, f.id, f.status)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
