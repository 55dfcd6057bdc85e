// Package prometheus is the probe of a Prometheus metrics endpoint that
// exports PgBouncer's pools the way prometheus-community/pgbouncer_exporter
// names them: where the admin console is out of reach (a managed pooler, a
// Kubernetes sidecar) the exporter usually is not.
//
// It scrapes the text exposition format and emits a "pgbouncer" sample with
// the admin console probe's keys (docs/run-directory.md), summed over the
// pools, plus the per-pool keys:
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
//
// Info["via"] is "prometheus" so a reader knows the sample came from the
// exporter, not the console.
package prometheus

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/probe"
)

var _ probe.Probe = (*Probe)(nil)

// Probe scrapes one metrics URL. Create it with New.
type Probe struct {
	url    string
	client *http.Client
}

// New returns a probe of the metrics endpoint at url.
func New(url string) (*Probe, error) {
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		return nil, fmt.Errorf("prometheus probe: %s is not an http(s) URL", stampede.Redact(url))
	}
	return &Probe{url: url, client: &http.Client{Timeout: 2 * time.Second}}, nil
}

// Name returns "pgbouncer": the probe stands in for the admin console.
func (p *Probe) Name() string { return "pgbouncer" }

// Close releases idle connections.
func (p *Probe) Close() error { p.client.CloseIdleConnections(); return nil }

// Sample scrapes the endpoint once.
func (p *Probe) Sample(ctx context.Context, now time.Time) (stampede.Sample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return stampede.Sample{}, fmt.Errorf("prometheus probe: %w", err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := p.client.Do(req)
	if err != nil {
		return stampede.Sample{}, fmt.Errorf("prometheus probe: %s", probe.ErrText(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return stampede.Sample{}, fmt.Errorf("prometheus probe: %s answered HTTP %d", stampede.Redact(p.url), resp.StatusCode)
	}
	ms, err := Parse(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return stampede.Sample{}, fmt.Errorf("prometheus probe: %w", err)
	}
	s := PgBouncer(ms)
	s.Time = now
	if len(s.Values) == 0 {
		return s, fmt.Errorf("prometheus probe: %s exports no pgbouncer_pools_* metric", stampede.Redact(p.url))
	}
	return s, nil
}

// Metric is one sample line of the exposition format.
type Metric struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Parse reads the Prometheus text exposition format. Comment lines and
// blank lines are skipped; a malformed line is an error naming its number.
func Parse(r io.Reader) ([]Metric, error) {
	var out []Metric
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		m, err := parseLine(line)
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
