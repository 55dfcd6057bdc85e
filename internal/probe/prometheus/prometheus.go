// Package prometheus is the probe of a Prometheus metrics endpoint, for a
// target whose servers are out of reach of the other probes (a managed
// pooler, a Kubernetes sidecar, a remote host) but whose exporters are
// not. One scrape may hold the families of several exporters (a
// federation endpoint, or a test); each source found yields its own sample,
// with the keys of the probe it stands in for (docs/run-directory.md) and
// Info["via"] = "prometheus" and Info["instance"] = the URL's host:port:
//
// "pgbouncer", from prometheus-community/pgbouncer_exporter, summed over the
// pools (per pool too, prefixed "pool:DB/USER:"):
//
//	pgbouncer_pools_client_active_connections   → cl_active
//	pgbouncer_pools_client_waiting_connections  → cl_waiting
//	pgbouncer_pools_server_active_connections   → sv_active
//	pgbouncer_pools_server_idle_connections     → sv_idle
//	pgbouncer_pools_server_used_connections     → sv_used
//	pgbouncer_pools_server_login_connections    → sv_login
//	pgbouncer_pools_client_maxwait_seconds      → maxwait_s (max over pools)
//	pgbouncer_config_max_client_connections     → max_client_conn
//	pgbouncer_databases_pool_size               → default_pool_size (max over databases)
//	pgbouncer_databases_reserve_pool            → reserve_pool_size (max over databases)
//	pgbouncer_up 0                              → a sample with Err
//
// "host", from prometheus/node_exporter and ncabatoff/process-exporter:
//
//	node_cpu_seconds_total{cpu,mode}    → cpu_busy_pct, cpu_iowait_pct,
//	                                      cpu_steal_pct (percent of all cores,
//	                                      since the previous scrape), cores
//	node_load1                          → load1
//	node_memory_MemTotal_bytes, node_memory_MemAvailable_bytes
//	                                    → mem_used_pct, mem_available_bytes
//	namedprocess_namegroup_cpu_seconds_total{groupname,mode}
//	                                    → cpu_pct:GROUP (100 = one core, since
//	                                      the previous scrape), each groupname
//	                                      mapped onto the host probe's groups
//	                                      (postgres, pgbouncer, redis, nginx,
//	                                      haproxy, envoy, app, other) by
//	                                      probe.CommGroup, or taken as it is
//	                                      when it is one of them; and
//	                                      cpu_pct:GROUPNAME for each groupname
//	                                      that is not a group's name
//	                                    → Info["cpu_app"]: the groupnames in app
//
// A process-exporter group counts while it has processes
// (namedprocess_namegroup_num_procs) or used CPU since the previous scrape.
//
// "postgres", from prometheus-community/postgres_exporter:
//
//	pg_stat_activity_count{state,backend_type,wait_event_type,wait_event}
//	                          → backends, state:STATE, wait:TYPE,
//	                            wait:Lock:EVENT, wait:CPU (client backends;
//	                            the wait keys from exporters that label
//	                            pg_stat_activity by wait event, v0.17.1 on)
//	pg_stat_activity_max_tx_duration → oldest_xact_s
//	pg_settings_max_connections, pg_settings_superuser_reserved_connections
//	                          → max_connections, superuser_reserved_connections
//	pg_locks_count{mode}      → locks:MODE (summed over databases)
//	pg_stat_database_{xact_commit,xact_rollback,deadlocks,temp_files,temp_bytes}
//	                          → the same keys, deltas since the previous
//	                            scrape summed over every database
//	pg_up 0                   → a sample with Err
//
// Counters become rates and deltas from the second scrape on; a counter
// that went backwards (the exporter restarted) is skipped for one scrape.
package prometheus

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/probe"
)

var _ probe.MultiProbe = (*Probe)(nil)

// Probe scrapes one metrics URL. Create it with New.
type Probe struct {
	url      string
	instance string // the URL's host:port, for Info["instance"]
	client   *http.Client

	mu      sync.Mutex
	st      state
	sources []string // the sources of the last good scrape
}

// New returns a probe of the metrics endpoint at url.
func New(rawURL string) (*Probe, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("prometheus probe: %s is not an http(s) URL", stampede.Redact(rawURL))
	}
	return &Probe{url: rawURL, instance: u.Host, client: &http.Client{Timeout: 2 * time.Second}}, nil
}

// Name returns "prometheus": a failure before the first good scrape, when
// the sources the endpoint exports are not known yet, is reported under
// it.
func (p *Probe) Name() string { return "prometheus" }

// Close releases idle connections.
func (p *Probe) Close() error { p.client.CloseIdleConnections(); return nil }

// Sample scrapes the endpoint once and returns the first source's sample
// (the Sampler calls SampleAll).
func (p *Probe) Sample(ctx context.Context, now time.Time) (stampede.Sample, error) {
	smps, err := p.SampleAll(ctx, now)
	if len(smps) == 0 {
		return stampede.Sample{}, err
	}
	return smps[0], err
}

// SampleAll scrapes the endpoint once and returns a sample per source it
// exports: "host", "postgres", "pgbouncer", in that order. A failed scrape
// is an error for every source of the last good one.
func (p *Probe) SampleAll(ctx context.Context, now time.Time) ([]stampede.Sample, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ms, err := p.scrape(ctx)
	if err != nil {
		var failed []stampede.Sample
		for _, src := range p.sources {
			failed = append(failed, stampede.Sample{Time: now, Source: src})
		}
		return failed, err
	}
	smps := p.st.samples(ms, now)
	if len(smps) == 0 {
		return nil, fmt.Errorf("prometheus probe: %s exports none of the metrics of pgbouncer_exporter, node_exporter, process-exporter or postgres_exporter", stampede.Redact(p.url))
	}
	p.sources = p.sources[:0]
	for i := range smps {
		smps[i].Info["instance"] = p.instance
		p.sources = append(p.sources, smps[i].Source)
	}
	return smps, nil
}

// scrape reads the endpoint's metrics, those the probe uses only.
func (p *Probe) scrape(ctx context.Context) ([]Metric, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return nil, fmt.Errorf("prometheus probe: %s", probe.ErrText(err))
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("prometheus probe: %s", probe.ErrText(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("prometheus probe: %s answered HTTP %d", stampede.Redact(p.url), resp.StatusCode)
	}
	ms, err := parse(io.LimitReader(resp.Body, 16<<20), wanted)
	if err != nil {
		return nil, fmt.Errorf("prometheus probe: %s: %w", stampede.Redact(p.url), err)
	}
	return ms, nil
}

// Metric is one sample line of the exposition format.
type Metric struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Parse reads the Prometheus text exposition format. Comment lines and
// blank lines are skipped; a malformed line is an error naming its number.
func Parse(r io.Reader) ([]Metric, error) { return parse(r, nil) }

// parse is Parse keeping only the metrics whose name keep accepts (nil:
// all); the lines of the others are not parsed further, so a large
// exposition (node_exporter's) costs little.
func parse(r io.Reader, keep func(name []byte) bool) ([]Metric, error) {
	var out []Metric
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 || b[0] == '#' {
			continue
		}
		if keep != nil {
			name := b
			if i := bytes.IndexAny(b, "{ \t"); i >= 0 {
				name = b[:i]
			}
			if !keep(name) {
				continue
			}
		}
		m, err := parseLine(string(b))
		if err != nil {
			return out, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

func parseLine(line string) (Metric, error) {
	var m Metric
	i := strings.IndexAny(line, "{ \t")
	if i <= 0 {
		return m, fmt.Errorf("no value in %q", clip(line))
	}
	m.Name = line[:i]
	rest := line[i:]
	if rest[0] == '{' {
		end, labels, err := parseLabels(rest)
		if err != nil {
			return m, err
		}
		m.Labels, rest = labels, rest[end:]
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 || len(fields) > 2 {
		return m, fmt.Errorf("want a value (and a timestamp) after %s", m.Name)
	}
	v, err := parseValue(fields[0])
	if err != nil {
		return m, fmt.Errorf("%s: value %q: %w", m.Name, clip(fields[0]), err)
	}
	m.Value = v
	return m, nil
}

func parseValue(s string) (float64, error) {
	switch s {
	case "+Inf", "Inf":
		return math.Inf(1), nil
	case "-Inf":
		return math.Inf(-1), nil
	case "NaN":
		return math.NaN(), nil
	}
	return strconv.ParseFloat(s, 64)
}

// parseLabels reads {a="x",b="y"} from the start of s and returns the
// index just past the closing brace.
func parseLabels(s string) (int, map[string]string, error) {
	labels := map[string]string{}
	i := 1
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == ',') {
			i++
		}
		if i >= len(s) {
			return 0, nil, fmt.Errorf("unterminated label set")
		}
		if s[i] == '}' {
			return i + 1, labels, nil
		}
		eq := strings.IndexByte(s[i:], '=')
		if eq <= 0 || i+eq+1 >= len(s) || s[i+eq+1] != '"' {
			return 0, nil, fmt.Errorf("bad label at %q", clip(s[i:]))
		}
		name := strings.TrimSpace(s[i : i+eq])
		j := i + eq + 2
		var b strings.Builder
		for ; j < len(s) && s[j] != '"'; j++ {
			if s[j] == '\\' && j+1 < len(s) {
				j++
				switch s[j] {
				case 'n':
					b.WriteByte('\n')
				default:
					b.WriteByte(s[j])
				}
				continue
			}
			b.WriteByte(s[j])
		}
		if j >= len(s) {
			return 0, nil, fmt.Errorf("unterminated label value for %s", name)
		}
		labels[name] = b.String()
		i = j + 1
	}
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

// pools maps pgbouncer_exporter's pool gauges to the console probe's keys.
var pools = map[string]string{
	"pgbouncer_pools_client_active_connections":  "cl_active",
	"pgbouncer_pools_client_waiting_connections": "cl_waiting",
	"pgbouncer_pools_server_active_connections":  "sv_active",
	"pgbouncer_pools_server_idle_connections":    "sv_idle",
	"pgbouncer_pools_server_used_connections":    "sv_used",
	"pgbouncer_pools_server_login_connections":   "sv_login",
}

// PgBouncer turns pgbouncer_exporter's metrics into a "pgbouncer" sample
// with the admin console probe's keys. Pools of the admin database
// "pgbouncer" are left out, as the console probe leaves them out.
func PgBouncer(ms []Metric) stampede.Sample {
	s := stampede.Sample{Source: "pgbouncer", Values: map[string]float64{}, Info: map[string]string{"via": "prometheus"}}
	for _, m := range ms {
		if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
			continue
		}
		db := m.Labels["database"]
		if db == "pgbouncer" {
			continue
		}
		pool := "pool:" + db + "/" + m.Labels["user"] + ":"
		switch key, ok := pools[m.Name]; {
		case ok:
			s.Values[key] += m.Value
			s.Values[pool+key] += m.Value
		case m.Name == "pgbouncer_pools_client_maxwait_seconds":
			s.Values["maxwait_s"] = math.Max(s.Values["maxwait_s"], m.Value)
			s.Values[pool+"maxwait_s"] = m.Value
		case m.Name == "pgbouncer_config_max_client_connections":
			s.Values["max_client_conn"] = m.Value
		case m.Name == "pgbouncer_databases_pool_size":
			s.Values["default_pool_size"] = math.Max(s.Values["default_pool_size"], m.Value)
		case m.Name == "pgbouncer_databases_reserve_pool":
			s.Values["reserve_pool_size"] = math.Max(s.Values["reserve_pool_size"], m.Value)
		}
	}
	return s
}
