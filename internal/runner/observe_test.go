package runner

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/testserver"
)

// recorder is an Observer that counts what it is shown.
type recorder struct {
	mu                        sync.Mutex
	results, seconds, samples int
	lastTotal                 int64
	loads                     []LoadChange
	ended                     *Result
}

func (r *recorder) Result(*stampede.Result) { r.mu.Lock(); r.results++; r.mu.Unlock() }
func (r *recorder) Second(s *SecondView) {
	r.mu.Lock()
	r.seconds++
	r.lastTotal = s.Total.TotalRequests
	r.mu.Unlock()
}
func (r *recorder) Sample(stampede.Sample)     { r.mu.Lock(); r.samples++; r.mu.Unlock() }
func (r *recorder) Evidence(stampede.Evidence) {}
func (r *recorder) LoadChanged(c LoadChange) {
	r.mu.Lock()
	r.loads = append(r.loads, c)
	r.mu.Unlock()
}
func (r *recorder) End(res *Result) { r.mu.Lock(); r.ended = res; r.mu.Unlock() }

// Every request reaches the observers, the seconds come once a second with
// the running totals, the generator's own samples arrive, the plan's load
// is announced first and the end last, with the run's result.
func TestObservers(t *testing.T) {
	ts := httptest.NewServer(testserver.New("pw"))
	defer ts.Close()
	plan, err := load.QuickPlan(ts.URL+"/", 4, 4, 2500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	res, err := Run(context.Background(), plan, Options{Dir: filepath.Join(t.TempDir(), "run"), NoDiagnose: true, Observers: []Observer{rec}})
	if err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	total := res.Summary.Aggregated.Requests
	if int64(rec.results) != total || total == 0 {
		t.Errorf("observer saw %d results, the run made %d", rec.results, total)
	}
	if rec.seconds < 2 || rec.lastTotal == 0 || rec.lastTotal > total {
		t.Errorf("seconds %d, last running total %d of %d", rec.seconds, rec.lastTotal, total)
	}
	if rec.samples == 0 {
		t.Errorf("no generator sample")
	}
	if len(rec.loads) != 1 || rec.loads[0].By != "plan" || rec.loads[0].Users != 4 {
		t.Errorf("load changes %+v: want the plan's 4 users", rec.loads)
	}
	if rec.ended != res {
		t.Errorf("End saw %p, Run returned %p", rec.ended, res)
	}
}
