package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/load"
)

// TestStartProbesPrometheus starts a probe per metrics URL of
// Probes.Prometheus (space-separated, as --probe-prometheus repeated gives
// them): a node_exporter's host sample and a postgres_exporter's postgres
// sample both reach the timeline; a URL that is not one is a ProbeError
// without its password.
func TestStartProbesPrometheus(t *testing.T) {
	serve := func(text string) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, text) }))
		t.Cleanup(srv.Close)
		return srv
	}
	node := serve("# HELP node_load1 1m load average.\n# TYPE node_load1 gauge\nnode_load1 0.5\n")
	pg := serve("# HELP pg_settings_max_connections Server Parameter: max_connections\n# TYPE pg_settings_max_connections gauge\npg_settings_max_connections 100\n")
	var mu sync.Mutex
	got := map[string]stampede.Sample{}
	stop, err := startProbes(context.Background(), Probes{Prometheus: node.URL + "/metrics " + pg.URL + "/metrics", Interval: 20 * time.Millisecond},
		func(s stampede.Sample) { mu.Lock(); got[s.Source] = s; mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if got["host"].Values["load1"] != 0.5 || got["postgres"].Values["max_connections"] != 100 || got["host"].Info["via"] != "prometheus" {
		t.Errorf("samples %v", got)
	}

	_, err = startProbes(context.Background(), Probes{Prometheus: node.URL + " ftp://u:hunter2@h/metrics"}, func(stampede.Sample) {})
	var pe *ProbeError
	if !errors.As(err, &pe) || pe.Probe != "prometheus" || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("bad URL: %v", err)
	}
}

// Every exporter URL's password is a secret of the run, the second one's
// too, and meta.json's scenario carries none of them.
func TestPrometheusPasswordsMasked(t *testing.T) {
	urls := "http://a:first-secret@127.0.0.1:9100/metrics http://b:second-secret@127.0.0.1:9187/metrics"
	got := runSecrets(&load.Plan{}, Options{Probes: Probes{Prometheus: urls}})
	for _, pw := range []string{"first-secret", "second-secret"} {
		if !slices.Contains(got, pw) {
			t.Errorf("runSecrets %q: %s missing", got, pw)
		}
	}
	sc := &load.Scenario{}
	sc.Probes.Prometheus = urls
	b, err := json.Marshal(redactScenario(sc))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "secret") {
		t.Errorf("meta.json's scenario holds a password: %s", b)
	}
}
