package prometheus

import (
	"bytes"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/probe"
)

// wantedNames are the metrics the probe reads, besides those starting
// with "pgbouncer_".
var wantedNames = map[string]bool{
	"node_cpu_seconds_total":                     true,
	"node_load1":                                 true,
	"node_memory_MemTotal_bytes":                 true,
	"node_memory_MemAvailable_bytes":             true,
	"node_memory_MemFree_bytes":                  true,
	"node_memory_Buffers_bytes":                  true,
	"node_memory_Cached_bytes":                   true,
	processCPU:                                   true,
	processProcs:                                 true,
	"pg_up":                                      true,
	"pg_stat_activity_count":                     true,
	"pg_stat_activity_max_tx_duration":           true,
	"pg_settings_max_connections":                true,
	"pg_settings_superuser_reserved_connections": true,
	"pg_locks_count":                             true,
	"pg_stat_database_xact_commit":               true,
	"pg_stat_database_xact_rollback":             true,
	"pg_stat_database_deadlocks":                 true,
	"pg_stat_database_temp_files":                true,
	"pg_stat_database_temp_bytes":                true,
}

// wanted reports whether the probe reads the metric called name.
func wanted(name []byte) bool {
	return bytes.HasPrefix(name, []byte("pgbouncer_")) || wantedNames[string(name)]
}

// process-exporter's families.
const (
	processCPU   = "namedprocess_namegroup_cpu_seconds_total"
	processProcs = "namedprocess_namegroup_num_procs"
)

// state is what the probe keeps between scrapes: the counters of the
// previous one.
type state struct {
	prevAt  time.Time
	nodeCPU map[string]float64 // node_cpu_seconds_total by mode, summed over cpus
	groups  map[string]float64 // process-exporter CPU seconds by groupname
	pgStats map[string]float64 // pg_stat_database counters by "key/datname"
}

// samples turns one scrape into a sample per source found, host,
// postgres and pgbouncer in that order, and keeps its counters for the
// next.
func (st *state) samples(ms []Metric, now time.Time) []stampede.Sample {
	var out []stampede.Sample
	secs := now.Sub(st.prevAt).Seconds()
	if st.prevAt.IsZero() || secs <= 0 {
		secs = 0 // no rates from this scrape
	}
	if s, ok := st.host(ms, secs); ok {
		out = append(out, s)
	}
	if s, ok := st.postgres(ms, secs > 0); ok {
		out = append(out, s)
	}
	if hasFamily(ms, "pgbouncer_") {
		s := PgBouncer(ms)
		if up, ok := gauge(ms, "pgbouncer_up"); ok && up == 0 {
			s.Values = nil
			s.Err = "prometheus probe: pgbouncer_exporter reports pgbouncer_up 0: it cannot reach PgBouncer"
		}
		out = append(out, s)
	}
	for i := range out {
		out[i].Time = now
	}
	st.prevAt = now
	return out
}

// hasFamily reports whether a metric's name starts with prefix.
func hasFamily(ms []Metric, prefix string) bool {
	return slices.ContainsFunc(ms, func(m Metric) bool { return strings.HasPrefix(m.Name, prefix) })
}

// gauge returns the value of the first metric called name.
func gauge(ms []Metric, name string) (float64, bool) {
	for _, m := range ms {
		if m.Name == name && finite(m.Value) {
			return m.Value, true
		}
	}
	return 0, false
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func newSample(source string) stampede.Sample {
	return stampede.Sample{Source: source, Values: map[string]float64{}, Info: map[string]string{"via": "prometheus"}}
}

// host reads node_exporter's and process-exporter's families into a "host"
// sample; secs is the time since the previous scrape (0: none).
func (st *state) host(ms []Metric, secs float64) (stampede.Sample, bool) {
	s := newSample("host")
	found := false
	byMode := map[string]float64{}
	cpus := map[string]bool{}
	mem := map[string]float64{}
	groups := map[string]float64{}
	procs := map[string]float64{}
	for _, m := range ms {
		if !finite(m.Value) {
			continue
		}
		switch {
		case m.Name == "node_cpu_seconds_total":
			byMode[m.Labels["mode"]] += m.Value
			cpus[m.Labels["cpu"]] = true
		case m.Name == "node_load1":
			s.Values["load1"] = m.Value
			found = true
		case strings.HasPrefix(m.Name, "node_memory_"):
			mem[m.Name] = m.Value
		case m.Name == processCPU:
			groups[m.Labels["groupname"]] += m.Value
		case m.Name == processProcs:
			procs[m.Labels["groupname"]] += m.Value
		}
	}
	if len(cpus) > 0 {
		found = true
		s.Values["cores"] = float64(len(cpus))
		if secs > 0 && st.nodeCPU != nil {
			nodeCPUPct(s.Values, byMode, st.nodeCPU)
		}
		st.nodeCPU = byMode
	}
	if total := mem["node_memory_MemTotal_bytes"]; total > 0 {
		found = true
		avail, ok := mem["node_memory_MemAvailable_bytes"]
		if !ok { // kernels before 3.14
			avail = mem["node_memory_MemFree_bytes"] + mem["node_memory_Buffers_bytes"] + mem["node_memory_Cached_bytes"]
		}
		avail = min(avail, total)
		s.Values["mem_used_pct"] = 100 * (total - avail) / total
		s.Values["mem_available_bytes"] = avail
	}
	if len(groups) > 0 {
		found = true
		if secs > 0 && st.groups != nil {
			groupCPUPct(&s, groups, procs, st.groups, secs)
		}
		st.groups = groups
	}
	return s, found
}

// nodeCPUPct sets the CPU percentages from two readings of
// node_cpu_seconds_total by mode, as the host probe computes them from
// /proc/stat (whose fields node_exporter exports): busy is every mode but
// idle and iowait. A reading whose counters went back is skipped.
func nodeCPUPct(v map[string]float64, cur, prev map[string]float64) {
	var total, prevTotal float64
	for _, x := range cur {
		total += x
	}
	for _, x := range prev {
		prevTotal += x
	}
	busy := total - cur["idle"] - cur["iowait"]
	prevBusy := prevTotal - prev["idle"] - prev["iowait"]
	d := total - prevTotal
	if d <= 0 || busy < prevBusy {
		return
	}
	v["cpu_busy_pct"] = 100 * (busy - prevBusy) / d
	// The kernel's iowait may go back a little (it is an estimate).
	v["cpu_iowait_pct"] = 100 * max(cur["iowait"]-prev["iowait"], 0) / d
	v["cpu_steal_pct"] = 100 * max(cur["steal"]-prev["steal"], 0) / d
}

// groupCPUPct sets cpu_pct:GROUP and cpu_pct:GROUPNAME from two readings
// of process-exporter's CPU seconds by groupname, secs apart.
func groupCPUPct(s *stampede.Sample, cur, procs, prev map[string]float64, secs float64) {
	var app []string
	for name, sec := range cur {
		old, ok := prev[name]
		if !ok || sec < old {
			continue // new, or the exporter restarted
		}
		pct := 100 * (sec - old) / secs
		if procs[name] <= 0 && pct == 0 {
			continue // a group with no process is absent
		}
		group := probe.CommGroup(name)
		if slices.Contains(probe.Groups, name) {
			group = name
		} else {
			s.Values["cpu_pct:"+name] = pct
		}
		s.Values["cpu_pct:"+group] += pct
		if group == probe.GroupApp {
			app = append(app, name)
		}
	}
	if len(app) > 0 {
		slices.Sort(app)
		s.Info["cpu_app"] = strings.Join(app, ", ")
	}
}

// pgStatDatabase are the pg_stat_database counters read as deltas, by
// metric name.
var pgStatDatabase = map[string]string{
	"pg_stat_database_xact_commit":   "xact_commit",
	"pg_stat_database_xact_rollback": "xact_rollback",
	"pg_stat_database_deadlocks":     "deadlocks",
	"pg_stat_database_temp_files":    "temp_files",
	"pg_stat_database_temp_bytes":    "temp_bytes",
}

// postgres reads postgres_exporter's families into a "postgres" sample
// with the postgres probe's keys where the exporter has them; rates tells
// whether the previous scrape's counters may be compared.
func (st *state) postgres(ms []Metric, rates bool) (stampede.Sample, bool) {
	if !hasFamily(ms, "pg_") {
		return stampede.Sample{}, false
	}
	s := newSample("postgres")
	if up, ok := gauge(ms, "pg_up"); ok && up == 0 {
		s.Values = nil
		s.Err = "prometheus probe: postgres_exporter reports pg_up 0: it cannot reach PostgreSQL"
		return s, true
	}
	v := s.Values
	stats := map[string]float64{}
	activity, waits := false, false
	for _, m := range ms {
		if !finite(m.Value) {
			continue
		}
		switch m.Name {
		case "pg_stat_activity_count", "pg_stat_activity_max_tx_duration":
			activity = true
			// Exporters from v0.17.1 label by backend_type and wait event:
			// count client backends only, as the postgres probe does (rows
			// of no session have an empty backend_type and a count of 0).
			if bt, ok := m.Labels["backend_type"]; ok && bt != "" && bt != "client backend" {
				continue
			}
			wt, hasWait := m.Labels["wait_event_type"]
			waits = waits || hasWait
			if m.Name == "pg_stat_activity_max_tx_duration" {
				v["oldest_xact_s"] = max(v["oldest_xact_s"], m.Value)
				continue
			}
			if m.Value == 0 {
				continue
			}
			state := m.Labels["state"]
			v["backends"] += m.Value
			if state != "" {
				v["state:"+state] += m.Value
			}
			switch {
			case !hasWait:
			case wt != "":
				v["wait:"+wt] += m.Value
				if ev := m.Labels["wait_event"]; wt == "Lock" && ev != "" {
					v["wait:Lock:"+ev] += m.Value
				}
			case state == "active":
				v["wait:CPU"] += m.Value
			}
		case "pg_settings_max_connections":
			v["max_connections"] = m.Value
		case "pg_settings_superuser_reserved_connections":
			v["superuser_reserved_connections"] = m.Value
		case "pg_locks_count":
			v["locks:"+m.Labels["mode"]] += m.Value
		default:
			if key, ok := pgStatDatabase[m.Name]; ok {
				stats[key+"/"+m.Labels["datname"]] += m.Value
			}
		}
	}
	if activity {
		// Present in every postgres probe sample, as there.
		for _, k := range []string{"backends", "state:active", "state:idle", "state:idle in transaction",
			"state:idle in transaction (aborted)", "oldest_xact_s"} {
			v[k] += 0
		}
		if waits {
			for _, k := range []string{"wait:Lock", "wait:LWLock", "wait:IO", "wait:Client", "wait:CPU"} {
				v[k] += 0
			}
		}
	}
	if len(stats) > 0 {
		if rates && st.pgStats != nil {
			for _, key := range pgStatDatabase {
				v[key] = 0
			}
			for k, cur := range stats {
				if old, ok := st.pgStats[k]; ok {
					key, _, _ := strings.Cut(k, "/")
					v[key] += probe.Delta(cur, old)
				}
			}
		}
		st.pgStats = stats
	}
	return s, true
}
