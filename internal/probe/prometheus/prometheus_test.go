package prometheus

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const exporterText = `# HELP pgbouncer_pools_client_waiting_connections Client connections waiting on a server connection
# TYPE pgbouncer_pools_client_waiting_connections gauge
pgbouncer_pools_client_waiting_connections{database="app",user="app"} 7
pgbouncer_pools_client_waiting_connections{database="pgbouncer",user="pgbouncer"} 0
pgbouncer_pools_client_active_connections{database="app",user="app"} 3
pgbouncer_pools_server_active_connections{database="app",user="app"} 3
pgbouncer_pools_server_idle_connections{database="app",user="app"} 0
pgbouncer_pools_client_maxwait_seconds{database="app",user="app"} 1.5
pgbouncer_config_max_client_connections 100
pgbouncer_databases_pool_size{database="app",host="127.0.0.1",port="5432"} 3
go_goroutines 12
`

func TestPgBouncerFromExporter(t *testing.T) {
	ms, err := Parse(strings.NewReader(exporterText))
	if err != nil {
		t.Fatal(err)
	}
	s := PgBouncer(ms)
	want := map[string]float64{"cl_waiting": 7, "cl_active": 3, "sv_active": 3, "sv_idle": 0, "maxwait_s": 1.5,
		"max_client_conn": 100, "default_pool_size": 3, "pool:app/app:cl_waiting": 7}
	for k, v := range want {
		if got, ok := s.Values[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	if s.Source != "pgbouncer" || s.Info["via"] != "prometheus" {
		t.Errorf("source %q info %v", s.Source, s.Info)
	}
}

func TestProbeScrapes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, exporterText)
	}))
	defer srv.Close()
	p, err := New(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s, err := p.Sample(context.Background(), time.Now())
	if err != nil || s.Values["cl_waiting"] != 7 {
		t.Fatalf("sample %+v, %v", s, err)
	}
	bad, _ := New(srv.URL + "/nope")
	if _, err := bad.Sample(context.Background(), time.Now()); err == nil || !strings.Contains(err.Error(), "HTTP 404") {
		t.Errorf("404 error = %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{"name_only\n", `m{a="x" 1` + "\n", "m{a=x} 1\n", "m 1 2 3\n", "m abc\n"} {
		if _, err := Parse(strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("Parse(%q) error = %v, want one naming line 1", in, err)
		}
	}
	ms, err := Parse(strings.NewReader(`m{a="q\"x",b="y"} +Inf 1712` + "\n"))
	if err != nil || len(ms) != 1 || ms[0].Labels["a"] != `q"x` || ms[0].Labels["b"] != "y" {
		t.Errorf("escaped label: %+v %v", ms, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(exporterText)
	f.Add(`m{a="\\",} NaN`)
	f.Fuzz(func(t *testing.T, in string) {
		ms, _ := Parse(strings.NewReader(in))
		_ = PgBouncer(ms)
	})
}
