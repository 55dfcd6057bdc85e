package runner

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/rundir"
)

// TestRecorderLosesNothing checks that the recorder, taking the results in
// batches between naps, records every request the server answered but for
// those cut off by the end of the run: recorded <= served <= recorded + cut
// off (a request cut off may have been answered, its response not read, or
// not yet reached the server's handler), with the users on the event loop
// (their results sent a pass at a time) and as goroutines (one at a time).
func TestRecorderLosesNothing(t *testing.T) {
	for _, loop := range []string{"on", "off"} {
		t.Run("loop="+loop, func(t *testing.T) {
			t.Setenv(load.EnvQuickLoop, loop)
			var served atomic.Int64
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				served.Add(1)
				w.Write([]byte("ok"))
			}))
			defer ts.Close()
			p, err := load.QuickPlan(ts.URL+"/", 8, 0, 1500*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			res, err := Run(context.Background(), p, Options{Dir: dir, NoDiagnose: true})
			if err != nil {
				t.Fatal(err)
			}
			meta, err := rundir.ReadMeta(dir)
			if err != nil {
				t.Fatal(err)
			}
			ts.Close() // every handler has returned
			rec := res.Summary.Aggregated.Requests
			if rec == 0 || res.Summary.Aggregated.Failures != 0 {
				t.Fatalf("%d requests recorded, %d failed", rec, res.Summary.Aggregated.Failures)
			}
			if s := served.Load(); rec > s || s > rec+meta.Aborted {
				t.Errorf("server answered %d requests; recorded %d, cut off by the end %d: want recorded <= answered <= recorded + cut off",
					s, rec, meta.Aborted)
			}
			if meta.RequestsRows != rec {
				t.Errorf("requests.csv has %d rows, the summary %d requests", meta.RequestsRows, rec)
			}
		})
	}
}
