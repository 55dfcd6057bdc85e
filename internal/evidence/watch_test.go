package evidence

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stampede-load/stampede"
)

func TestWatch(t *testing.T) {
	dir := t.TempDir()
	app := filepath.Join(dir, "errors.log")
	bouncer := filepath.Join(dir, "pgbouncer.log") // created later
	stderr := filepath.Join(dir, "stderr.log")     // no timestamps
	write := func(path, text string) {
		t.Helper()
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(text); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	write(app, "2026-01-11 12:00:00,000 ERROR before the run: Internal Server Error: /old/\n")

	var mu sync.Mutex
	var got []stampede.Evidence
	w, err := Watch(context.Background(), []Log{{"app-errors", app}, {"pgbouncer", bouncer}, {"stderr", stderr}},
		WatchOptions{Poll: 10 * time.Millisecond, Location: time.UTC}, func(ev stampede.Evidence) {
			mu.Lock()
			got = append(got, ev)
			mu.Unlock()
		})
	if err != nil {
		t.Fatal(err)
	}
	write(app, `2026-01-11 12:59:17,123 ERROR django.request Internal Server Error: /accounts/login/
Traceback (most recent call last):
  File "/app/views.py", line 3, in login
psycopg.errors.ProtocolViolation: query_wait_timeout
`)
	write(bouncer, "2026-01-11 12:59:17.100 UTC [1] WARNING C-0x1: app/app@127.0.0.1:5 pooler error: query_wait_timeout\n")
	write(stderr, "redis.exceptions.ConnectionError: max number of clients reached\n")

	// The traceback is the last thing written: it must come out once the
	// log is quiet, without waiting for Close.
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	w.Close()
	mu.Lock()
	defer mu.Unlock()
	bySig := map[string]stampede.Evidence{}
	for _, ev := range got {
		bySig[ev.Signature] = ev
	}
	if len(got) != 3 {
		t.Fatalf("got %d events, want 3: %+v", len(got), got)
	}
	if ev := bySig["psycopg-query-wait-timeout"]; ev.Source != "app-errors" || ev.Ref != app+":2" {
		t.Errorf("traceback: %+v", ev)
	}
	if ev := bySig["pgbouncer-pooler-error-query-wait-timeout"]; ev.Source != "pgbouncer" || ev.Ref != bouncer+":1" {
		t.Errorf("pgbouncer: %+v", ev)
	}
	if ev := bySig["redis-max-clients"]; ev.Time.IsZero() || ev.Fields["time_source"] != "observed" {
		t.Errorf("untimed line: %+v", ev)
	}
}

func TestWatchBadInput(t *testing.T) {
	if _, err := Watch(context.Background(), []Log{{"a", "x"}, {"a", "y"}}, WatchOptions{}, func(stampede.Evidence) {}); err == nil {
		t.Error("duplicate names accepted")
	}
}
