package prometheus

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stampede-load/stampede"
)

// exporter serves, at its n-th scrape, the n-th set of files of scrapes
// (testdata, concatenated as one exposition), or answers HTTP 500 for an
// empty set; past the last set it serves the last one again.
func exporter(t *testing.T, scrapes ...[]string) *httptest.Server {
	t.Helper()
	var bodies []string
	for _, files := range scrapes {
		var b strings.Builder
		for _, f := range files {
			if f == "pgbouncer" {
				b.WriteString(exporterText)
				continue
			}
			c, err := os.ReadFile(filepath.Join("testdata", f))
			if err != nil {
				t.Fatal(err)
			}
			b.Write(c)
		}
		bodies = append(bodies, b.String())
	}
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := min(int(n.Add(1))-1, len(bodies)-1)
		if bodies[i] == "" {
			http.Error(w, "collector failed", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Write([]byte(bodies[i]))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// scrapeTwice reads srv twice, two seconds apart by the probe's clock, and
// returns the samples of each scrape.
func scrapeTwice(t *testing.T, srv *httptest.Server) (first, second []stampede.Sample) {
	t.Helper()
	p, err := New(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if first, err = p.SampleAll(context.Background(), t0); err != nil {
		t.Fatal(err)
	}
	if second, err = p.SampleAll(context.Background(), t0.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	return first, second
}

func bySource(smps []stampede.Sample) map[string]stampede.Sample {
	m := map[string]stampede.Sample{}
	for _, s := range smps {
		m[s.Source] = s
	}
	return m
}

func checkValues(t *testing.T, what string, got map[string]float64, want map[string]float64, absent ...string) {
	t.Helper()
	for k, w := range want {
		if g, ok := got[k]; !ok || math.Abs(g-w) > 1e-6 {
			t.Errorf("%s: %s = %v (present %v), want %v", what, k, g, ok, w)
		}
	}
	for _, k := range absent {
		if v, ok := got[k]; ok {
			t.Errorf("%s: %s = %v, want it absent", what, k, v)
		}
	}
}

// TestNodeExporter: between the two scrapes each of the 2 CPUs spent 2 s:
// 0.8 s idle and 0.2 s iowait of 4 (75% busy, 5% iowait), 0.1 s stolen
// (2.5%); 1.6 GB of 8 GB available (80% used).
func TestNodeExporter(t *testing.T) {
	srv := exporter(t, []string{"node1.prom"}, []string{"node2.prom"})
	first, second := scrapeTwice(t, srv)
	if len(first) != 1 || len(second) != 1 || second[0].Source != "host" {
		t.Fatalf("samples %v then %v; want one host sample each", first, second)
	}
	checkValues(t, "first", first[0].Values, map[string]float64{"cores": 2, "load1": 1.5, "mem_used_pct": 75, "mem_available_bytes": 2e9},
		"cpu_busy_pct", "cpu_iowait_pct")
	checkValues(t, "second", second[0].Values, map[string]float64{"cores": 2, "load1": 3.25, "cpu_busy_pct": 75, "cpu_iowait_pct": 5,
		"cpu_steal_pct": 2.5, "mem_used_pct": 80, "mem_available_bytes": 1.6e9})
	if info := second[0].Info; info["via"] != "prometheus" || info["instance"] != strings.TrimPrefix(srv.URL, "http://") {
		t.Errorf("info %v", info)
	}
}

// TestProcessExporter: process-exporter's groups by command name, 2 s
// apart: postgres used 1.5 s (75%), gunicorn 0.6 (30%: app), pgbouncer
// 0.2, redis-server 0.04, node_exporter 0.2 (other), sshd nothing but has
// processes; oldjob has none and is absent.
func TestProcessExporter(t *testing.T) {
	srv := exporter(t, []string{"process1.prom"}, []string{"process2.prom"})
	first, second := scrapeTwice(t, srv)
	if len(first) != 1 || len(second) != 1 || second[0].Source != "host" {
		t.Fatalf("samples %v then %v; want one host sample each", first, second)
	}
	for k := range first[0].Values {
		if strings.HasPrefix(k, "cpu_pct:") {
			t.Errorf("first scrape has %s: rates need two", k)
		}
	}
	checkValues(t, "second", second[0].Values, map[string]float64{
		"cpu_pct:postgres": 75, "cpu_pct:app": 30, "cpu_pct:gunicorn": 30, "cpu_pct:pgbouncer": 10,
		"cpu_pct:redis": 2, "cpu_pct:redis-server": 2, "cpu_pct:other": 10, "cpu_pct:node_exporter": 10, "cpu_pct:sshd": 0,
	}, "cpu_pct:oldjob", "cpu_pct:stampede", "cpu_pct:nginx", "cores")
	if got := second[0].Info["cpu_app"]; got != "gunicorn" {
		t.Errorf("cpu_app = %q, want gunicorn", got)
	}
}

// TestPostgresExporter reads postgres_exporter's pg_stat_activity (client
// backends only: the autovacuum worker is left out), settings, locks and
// pg_stat_database counters, whose deltas are summed over databases.
func TestPostgresExporter(t *testing.T) {
	srv := exporter(t, []string{"postgres1.prom"}, []string{"postgres2.prom"})
	first, second := scrapeTwice(t, srv)
	if len(first) != 1 || len(second) != 1 || second[0].Source != "postgres" {
		t.Fatalf("samples %v then %v; want one postgres sample each", first, second)
	}
	activity := map[string]float64{
		"backends": 17, "state:active": 6, "state:idle": 10, "state:idle in transaction": 1,
		"state:idle in transaction (aborted)": 0, "wait:CPU": 3, "wait:Lock": 2, "wait:Lock:transactionid": 2,
		"wait:LWLock": 1, "wait:Client": 11, "wait:IO": 0, "oldest_xact_s": 30.25,
		"max_connections": 100, "superuser_reserved_connections": 3,
		"locks:accesssharelock": 6, "locks:rowexclusivelock": 4, "locks:exclusivelock": 2, "locks:sharelock": 0,
	}
	checkValues(t, "first", first[0].Values, activity, "xact_commit", "deadlocks", "state:disabled")
	for k, v := range map[string]float64{"xact_commit": 102, "xact_rollback": 3, "deadlocks": 1, "temp_files": 2, "temp_bytes": 2 << 20} {
		activity[k] = v
	}
	checkValues(t, "second", second[0].Values, activity)
	if second[0].Info["via"] != "prometheus" || second[0].Err != "" {
		t.Errorf("info %v, err %q", second[0].Info, second[0].Err)
	}
}

// TestPostgresExporterVersions: an exporter before v0.17.1 labels
// pg_stat_activity by database and state only (no wait keys); one that
// cannot reach PostgreSQL says pg_up 0, an error sample.
func TestPostgresExporterVersions(t *testing.T) {
	_, old := scrapeTwice(t, exporter(t, []string{"postgres_v0.15.prom"}))
	if len(old) != 1 {
		t.Fatalf("samples %v", old)
	}
	checkValues(t, "v0.15", old[0].Values, map[string]float64{"backends": 11, "state:active": 4, "state:idle": 7,
		"state:idle in transaction": 0, "oldest_xact_s": 4.5}, "wait:CPU", "wait:Client", "max_connections")
	_, down := scrapeTwice(t, exporter(t, []string{"postgres_down.prom"}))
	if len(down) != 1 || down[0].Source != "postgres" || !strings.Contains(down[0].Err, "pg_up 0") || len(down[0].Values) != 0 {
		t.Errorf("pg_up 0: %+v", down)
	}
}

// TestCombinedScrape: one endpoint with every exporter's families (a
// federation endpoint) yields a host, a postgres and a pgbouncer sample,
// the host one with node_exporter's and process-exporter's keys; when it
// then fails, the failure stands for the three sources.
func TestCombinedScrape(t *testing.T) {
	all1 := []string{"node1.prom", "process1.prom", "postgres1.prom", "pgbouncer"}
	all2 := []string{"node2.prom", "process2.prom", "postgres2.prom", "pgbouncer"}
	srv := exporter(t, all1, all2, nil)
	_, second := scrapeTwice(t, srv)
	var sources []string
	for _, s := range second {
		sources = append(sources, s.Source)
	}
	if strings.Join(sources, ",") != "host,postgres,pgbouncer" {
		t.Fatalf("sources %v, want host, postgres, pgbouncer", sources)
	}
	m := bySource(second)
	checkValues(t, "host", m["host"].Values, map[string]float64{"cpu_busy_pct": 75, "cpu_pct:postgres": 75, "cores": 2})
	checkValues(t, "postgres", m["postgres"].Values, map[string]float64{"backends": 17, "xact_commit": 102})
	checkValues(t, "pgbouncer", m["pgbouncer"].Values, map[string]float64{"cl_waiting": 7, "max_client_conn": 100})

	// A fresh endpoint: two good scrapes, then HTTP 500.
	p, _ := New(exporter(t, all1, all2, nil).URL)
	defer p.Close()
	for i := range 2 {
		if smps, err := p.SampleAll(context.Background(), time.Now()); err != nil || len(smps) != 3 {
			t.Fatalf("scrape %d: %v, %v", i, smps, err)
		}
	}
	smps, err := p.SampleAll(context.Background(), time.Now())
	if err == nil || !strings.Contains(err.Error(), "HTTP 500") || len(smps) != 3 || smps[0].Source != "host" || smps[2].Source != "pgbouncer" {
		t.Errorf("failed scrape: %v, %v; want an error for the 3 sources", smps, err)
	}
}

// TestPgBouncerExporterDown: pgbouncer_exporter says pgbouncer_up 0 when
// it cannot reach PgBouncer.
func TestPgBouncerExporterDown(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("# HELP pgbouncer_up The pgbouncer scrape succeeded\n# TYPE pgbouncer_up gauge\npgbouncer_up 0\n"))
	}))
	defer srv.Close()
	p, _ := New(srv.URL)
	smps, err := p.SampleAll(context.Background(), time.Now())
	if err != nil || len(smps) != 1 || smps[0].Source != "pgbouncer" || !strings.Contains(smps[0].Err, "pgbouncer_up 0") {
		t.Errorf("samples %+v, %v", smps, err)
	}
}

// TestUnknownExporter: an endpoint with none of the exporters' families is
// an error, under the probe's name since no source is known.
func TestUnknownExporter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("# TYPE go_goroutines gauge\ngo_goroutines 8\n"))
	}))
	defer srv.Close()
	p, _ := New(srv.URL)
	smps, err := p.SampleAll(context.Background(), time.Now())
	if err == nil || len(smps) != 0 || !strings.Contains(err.Error(), "none of the metrics") {
		t.Errorf("samples %v, %v", smps, err)
	}
	if p.Name() != "prometheus" {
		t.Errorf("Name = %q", p.Name())
	}
}

func FuzzSamples(f *testing.F) {
	for _, name := range []string{"node1.prom", "process1.prom", "postgres1.prom", "postgres_v0.15.prom", "postgres_down.prom"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, in string) {
		ms, _ := parse(strings.NewReader(in), wanted)
		var st state
		t0 := time.Unix(1e9, 0)
		st.samples(ms, t0)
		for _, s := range st.samples(ms, t0.Add(time.Second)) {
			for k, v := range s.Values {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Errorf("%s %s = %v", s.Source, k, v)
				}
			}
		}
	})
}

// BenchmarkScrapeParse is the parse of a node_exporter-sized exposition
// (node2.prom and 2000 lines of other families, as a real node_exporter
// serves 1000 to 3000) and its turning into a sample: "wanted" keeps only
// the families the probe reads, as a scrape does; "all" parses every line.
func BenchmarkScrapeParse(b *testing.B) {
	base, err := os.ReadFile("testdata/node2.prom")
	if err != nil {
		b.Fatal(err)
	}
	var sb strings.Builder
	sb.Write(base)
	sb.WriteString("# HELP node_network_receive_bytes_total Network device statistic receive_bytes.\n# TYPE node_network_receive_bytes_total counter\n")
	for i := range 2000 {
		fmt.Fprintf(&sb, "node_network_receive_bytes_total{device=\"veth%d\"} %d\n", i, 1000+i)
	}
	text := sb.String()
	for _, tt := range []struct {
		name string
		keep func([]byte) bool
	}{{"wanted", wanted}, {"all", nil}} {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			var st state
			now := time.Now()
			for i := 0; i < b.N; i++ {
				ms, err := parse(strings.NewReader(text), tt.keep)
				if err != nil {
					b.Fatal(err)
				}
				now = now.Add(time.Second)
				if smps := st.samples(ms, now); len(smps) != 1 {
					b.Fatal(smps)
				}
			}
		})
	}
}
