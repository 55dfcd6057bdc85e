package main

import (
	"path/filepath"
	"time"

	"github.com/stampede-load/stampede/internal/locust"
	"github.com/stampede-load/stampede/internal/metrics"
	"github.com/stampede-load/stampede/internal/rundir"
)

// outputs keeps the per-second files of a run current: summary.json and
// the Locust-compatible CSVs (what `locust --csv RUN/locust
// --csv-full-history` writes).
type outputs struct {
	dir string
	lw  *locust.Writer
}

func newOutputs(dir string, _ time.Time) (*outputs, error) {
	lw, err := locust.Create(filepath.Join(dir, "locust"))
	if err != nil {
		return nil, err
	}
	return &outputs{dir: dir, lw: lw}, nil
}

// second is called by the recorder right after each Tick.
func (o *outputs) second(m *metrics.Metrics, sec *metrics.Second, now time.Time) {
	_ = o.lw.Write(m, sec)
	s := m.Summary(now)
	s.Partial = true
	_ = s.WriteFile(filepath.Join(o.dir, rundir.SummaryFile))
}

// final rewrites the Locust files from the closed metrics and closes them.
func (o *outputs) final(m *metrics.Metrics, _ *metrics.Summary) error {
	err := o.lw.Write(m, nil)
	if cerr := o.lw.Close(); err == nil {
		err = cerr
	}
	return err
}
