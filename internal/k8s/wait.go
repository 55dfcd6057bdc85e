package k8s

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/stampede-load/stampede/internal/rundir"
)

// Wait waits until every run directory of dirs has finished, or until the
// instant until, looking every poll. A run has finished when its meta.json
// has an end: "stampede run" writes it last but for the diagnosis and
// report.html, also when the run was interrupted (marked partial). Wait
// writes a line to log as each finishes, and returns the directories still
// unfinished at until (nil when all finished): the merge names them. It
// returns an error only when ctx ends first.
func Wait(ctx context.Context, dirs []string, until time.Time, poll time.Duration, log io.Writer) ([]string, error) {
	if poll <= 0 {
		poll = 2 * time.Second
	}
	pending := append([]string(nil), dirs...)
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		left := pending[:0]
		for _, dir := range pending {
			if end, ok := finished(dir); ok {
				fmt.Fprintf(log, "%s: finished at %s\n", filepath.Base(dir), end.UTC().Format(time.RFC3339))
				continue
			}
			left = append(left, dir)
		}
		pending = left
		if len(pending) == 0 {
			return nil, nil
		}
		if !time.Now().Before(until) {
			for _, dir := range pending {
				fmt.Fprintf(log, "%s: not finished at %s: merged as it is\n", filepath.Base(dir), until.UTC().Format(time.RFC3339))
			}
			return pending, nil
		}
		select {
		case <-ctx.Done():
			return pending, fmt.Errorf("wait: %d of %d segments unfinished: %w", len(pending), len(dirs), ctx.Err())
		case <-t.C:
		}
	}
}

// finished reports whether dir holds a run that has ended, and when.
func finished(dir string) (time.Time, bool) {
	m, err := rundir.ReadMeta(dir)
	if err != nil || m.End.IsZero() {
		return time.Time{}, false
	}
	return m.End, true
}
