package main

import (
	"context"
	"fmt"
	"io"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/probe"
	"github.com/stampede-load/stampede/internal/probe/host"
	"github.com/stampede-load/stampede/internal/probe/pgbouncer"
	"github.com/stampede-load/stampede/internal/probe/postgres"
	"github.com/stampede-load/stampede/internal/probe/prometheus"
	"github.com/stampede-load/stampede/internal/probe/redis"
)

// probeSet is the probes a run asks for: the scenario's, overridden by flags.
type probeSet struct {
	postgres, pgbouncer, redis string
	prometheus                 string
	host                       bool
	pid                        int
}

func (p probeSet) names() []string {
	var n []string
	if p.postgres != "" {
		n = append(n, "postgres")
	}
	if p.pgbouncer != "" {
		n = append(n, "pgbouncer")
	}
	if p.redis != "" {
		n = append(n, "redis")
	}
	if p.prometheus != "" {
		n = append(n, "pgbouncer (prometheus)")
	}
	if p.host {
		n = append(n, "host")
	}
	return n
}

func probeSpecs(sc *load.Scenario, f *runFlags) probeSet {
	var p probeSet
	if sc != nil {
		p = probeSet{postgres: sc.Probes.Postgres, pgbouncer: sc.Probes.PgBouncer, redis: sc.Probes.Redis,
			prometheus: sc.Probes.Prometheus, host: sc.Probes.Host, pid: sc.Probes.Pid}
	}
	if f.probePG != "" {
		p.postgres = f.probePG
	}
	if f.probePGB != "" {
		p.pgbouncer = f.probePGB
	}
	if f.probeRedis != "" {
		p.redis = f.probeRedis
	}
	if f.probeProm != "" {
		p.prometheus = f.probeProm
	}
	if f.set["probe-host"] || !p.host {
		p.host = f.probeHost
	}
	if f.pid != 0 {
		p.pid = f.pid
	}
	return p
}

// startProbes starts the sampler; a probe with a bad DSN is an input error,
// a server that cannot be reached is recorded as evidence by the sampler.
func startProbes(ctx context.Context, ps probeSet, interval time.Duration, emit func(stampede.Sample), stderr io.Writer) (stop func(), err error) {
	var probes []probe.Probe
	fail := func(err error) (func(), error) {
		for _, p := range probes {
			_ = p.Close()
		}
		return nil, err
	}
	if ps.postgres != "" {
		p, err := postgres.New(ps.postgres)
		if err != nil {
			return fail(fmt.Errorf("--probe-postgres: %w", err))
		}
		probes = append(probes, p)
	}
	if ps.pgbouncer != "" {
		p, err := pgbouncer.New(ps.pgbouncer)
		if err != nil {
			return fail(fmt.Errorf("--probe-pgbouncer: %w", err))
		}
		probes = append(probes, p)
	}
	if ps.redis != "" {
		p, err := redis.New(ps.redis)
		if err != nil {
			return fail(fmt.Errorf("--probe-redis: %w", err))
		}
		probes = append(probes, p)
	}
	if ps.prometheus != "" {
		p, err := prometheus.New(ps.prometheus)
		if err != nil {
			return fail(fmt.Errorf("--probe-prometheus: %w", err))
		}
		probes = append(probes, p)
	}
	if ps.host {
		probes = append(probes, host.New(host.Options{PID: ps.pid}))
	}
	if len(probes) == 0 {
		return func() {}, nil
	}
	s := probe.Start(ctx, probe.Options{Interval: interval}, emit, probes...)
	return func() { _ = s.Close() }, nil
}

// logSpecs returns the scenario's logs with --log flags added; a flag
// naming a log the scenario has replaces its path.
func logSpecs(sc *load.Scenario, f *runFlags) []load.LogSpec {
	var out []load.LogSpec
	if sc != nil {
		out = append(out, sc.Logs...)
	}
next:
	for _, l := range f.logs {
		for i := range out {
			if out[i].Name == l.Name {
				out[i].Path = l.Path
				continue next
			}
		}
		out = append(out, l)
	}
	return out
}
