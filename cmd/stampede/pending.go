package main

import (
	"context"
	"io"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/load"
)

func startLogs(ctx context.Context, logs []load.LogSpec, emit func(stampede.Evidence), stderr io.Writer) (func(), error) {
	return func() {}, nil
}

func diagnoseDir(dir string) (*stampede.Diagnosis, error) { return nil, nil }

func printDiagnosis(w io.Writer, d *stampede.Diagnosis) {}
