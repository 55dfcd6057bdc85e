package main

import (
	"context"
	"fmt"
	"io"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/evidence"
	"github.com/stampede-load/stampede/internal/load"
)

// startLogs follows each log from the run's start (through rotation and
// truncation; a file created during the run is read from its start),
// classifies what is written and emits the evidence.
func startLogs(ctx context.Context, logs []load.LogSpec, emit func(stampede.Evidence), _ io.Writer) (func(), error) {
	if len(logs) == 0 {
		return func() {}, nil
	}
	ls := make([]evidence.Log, len(logs))
	for i, l := range logs {
		ls[i] = evidence.Log{Name: l.Name, Path: l.Path}
	}
	w, err := evidence.Watch(ctx, ls, evidence.WatchOptions{}, emit)
	if err != nil {
		return nil, fmt.Errorf("run: logs: %w", err)
	}
	return func() { _ = w.Close() }, nil
}
