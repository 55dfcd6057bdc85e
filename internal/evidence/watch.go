package evidence

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/logtail"
	"github.com/stampede-load/stampede/internal/secret"
)

// Log names a log file to watch.
type Log struct {
	// Name is the log's name as the user gave it ("pgbouncer"); it becomes
	// Evidence.Source and must be unique.
	Name string
	// Path is the file's path; it becomes the file part of Evidence.Ref.
	Path string
}

// WatchOptions configures Watch. The zero value is valid.
type WatchOptions struct {
	// Catalog classifies the events; nil means DefaultCatalog.
	Catalog *Catalog
	// Location is the zone of timestamps that carry none; nil means
	// time.Local.
	Location *time.Location
	// Poll is how often the files are checked; 0 means 200 ms.
	Poll time.Duration
	// FromStart reads what the logs already hold; by default only what is
	// written after Watch is called (see logtail.Options.FromStart).
	FromStart bool
	// KeepAll returns every event, not only those worth keeping (see
	// Parser.KeepAll).
	KeepAll bool
	// TimingInterval is how often the access timings of each log are
	// checked for complete seconds (see Timings.Due); 0 means 1s.
	TimingInterval time.Duration
	// Secrets masks every event (see Parser.Secrets); nil masks by
	// pattern only.
	Secrets *secret.Masker
}

// Watcher follows logs and turns what they say into Evidence while a run
// goes on.
type Watcher struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// Watch follows logs from now on and calls emit with each event until ctx
// ends or Close is called; then the events still pending are flushed.
// emit is called from one goroutine at a time. A pending multi-line event
// is emitted once its log has been quiet for a poll. Events whose lines
// carry no timestamp get the time they were read, and the field
// "time_source": "observed".
//
// Request lines that carry the server's own time (see Parser.Timings) are
// aggregated per log into one access-timing Evidence per second per
// (method, normalized path), emitted one to two TimingIntervals after the
// last line of that second and endpoint; lines worth keeping on their own
// (a 5xx) are emitted as well, as always.
func Watch(ctx context.Context, logs []Log, opts WatchOptions, emit func(stampede.Evidence)) (*Watcher, error) {
	if opts.Catalog == nil {
		opts.Catalog = defaultCatalog()
	}
	if opts.TimingInterval <= 0 {
		opts.TimingInterval = time.Second
	}
	parsers := make(map[string]*Parser, len(logs))
	files := make([]logtail.File, len(logs))
	for i, l := range logs {
		if l.Name == "" {
			return nil, fmt.Errorf("evidence: log %s: empty name", l.Path)
		}
		if _, dup := parsers[l.Name]; dup {
			return nil, fmt.Errorf("evidence: log name %q used twice", l.Name)
		}
		p := NewParser(l.Name, l.Path, opts.Catalog, opts.Location)
		p.KeepAll = opts.KeepAll
		p.Secrets = opts.Secrets
		p.Timings = NewTimings(l.Name, l.Path)
		p.Timings.Secrets = opts.Secrets
		parsers[l.Name] = p
		files[i] = logtail.File{Name: l.Name, Path: l.Path}
	}
	var mu sync.Mutex // emit from the tailer, then from the final flush
	send := func(evs []stampede.Evidence) {
		if len(evs) == 0 {
			return
		}
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		for _, ev := range evs {
			if ev.Time.IsZero() {
				ev.Time = now
				if ev.Fields == nil {
					ev.Fields = map[string]string{}
				}
				ev.Fields["time_source"] = "observed"
			}
			emit(ev)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	tl, err := logtail.Follow(ctx, files, logtail.Options{
		Poll:      opts.Poll,
		FromStart: opts.FromStart,
		Idle:      func(f logtail.File) { send(parsers[f.Name].Flush()) },
	}, func(l logtail.Line) {
		send(parsers[l.File.Name].Feed(l.Text, l.Num))
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("evidence: %w", err)
	}
	w := &Watcher{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(opts.TimingInterval)
		defer tick.Stop()
		for ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-tick.C:
				for _, l := range logs {
					send(parsers[l.Name].Timings.Due())
				}
			}
		}
		tl.Close()
		for _, l := range logs {
			send(parsers[l.Name].Flush())
			send(parsers[l.Name].Timings.Flush())
		}
	}()
	return w, nil
}

// Close stops watching, emits the pending events and waits until emit
// will not be called again.
func (w *Watcher) Close() error {
	w.cancel()
	<-w.done
	return nil
}
