package runner

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/evidence"
	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/probe"
	"github.com/stampede-load/stampede/internal/probe/host"
	"github.com/stampede-load/stampede/internal/probe/pgbouncer"
	"github.com/stampede-load/stampede/internal/probe/postgres"
	"github.com/stampede-load/stampede/internal/probe/prometheus"
	"github.com/stampede-load/stampede/internal/probe/redis"
	"github.com/stampede-load/stampede/internal/secret"
)

// startProbes starts the sampler until ctx ends or stop is called; a probe
// with a bad DSN is an input error (ProbeError), a server that cannot be
// reached is recorded by the sampler as a sample with an error.
func startProbes(ctx context.Context, ps Probes, emit func(stampede.Sample)) (stop func(), err error) {
	var probes []probe.Probe
	fail := func(name string, err error) (func(), error) {
		for _, p := range probes {
			_ = p.Close()
		}
		return nil, &ProbeError{Probe: name, Err: err}
	}
	if ps.Postgres != "" {
		p, err := postgres.New(ps.Postgres)
		if err != nil {
			return fail("postgres", err)
		}
		probes = append(probes, p)
	}
	if ps.PgBouncer != "" {
		p, err := pgbouncer.New(ps.PgBouncer)
		if err != nil {
			return fail("pgbouncer", err)
		}
		probes = append(probes, p)
	}
	if ps.Redis != "" {
		p, err := redis.New(ps.Redis)
		if err != nil {
			return fail("redis", err)
		}
		probes = append(probes, p)
	}
	// Prometheus holds one metrics URL or several separated by spaces
	// (--probe-prometheus, repeated); each is a probe of its own, read and
	// backed off on its own.
	for _, url := range strings.Fields(ps.Prometheus) {
		p, err := prometheus.New(url)
		if err != nil {
			return fail("prometheus", err)
		}
		probes = append(probes, p)
	}
	if ps.Host {
		probes = append(probes, host.New(host.Options{PID: ps.PID, Port: ps.Port}))
	}
	if len(probes) == 0 {
		return func() {}, nil
	}
	s := probe.Start(ctx, probe.Options{Interval: ps.interval()}, emit, probes...)
	return func() { _ = s.Close() }, nil
}

// startLogs follows each log from the run's start (through rotation and
// truncation; a file created during the run is read from its start),
// classifies what is written and emits the evidence, masked with secrets,
// until ctx ends or stop is called.
func startLogs(ctx context.Context, logs []load.LogSpec, secrets *secret.Masker, emit func(stampede.Evidence)) (stop func(), err error) {
	if len(logs) == 0 {
		return func() {}, nil
	}
	ls := make([]evidence.Log, len(logs))
	for i, l := range logs {
		ls[i] = evidence.Log{Name: l.Name, Path: l.Path}
	}
	w, err := evidence.Watch(ctx, ls, evidence.WatchOptions{Secrets: secrets}, emit)
	if err != nil {
		return nil, fmt.Errorf("run: logs: %w", err)
	}
	return func() { _ = w.Close() }, nil
}

// localPort returns the target's port when the target is on this host
// (a loopback address, localhost, or a name the plan dials at loopback),
// 0 otherwise: the listen queue can only be read on the target's host.
func localPort(p *load.Plan) int {
	h := p.Target.Hostname()
	if ip, ok := p.Hosts[h]; ok {
		h = ip
	}
	ip := net.ParseIP(h)
	if h != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return 0
	}
	if port, err := strconv.Atoi(p.Target.Port()); err == nil {
		return port
	}
	if p.Target.Scheme == "https" {
		return 443
	}
	return 80
}
