package evidence

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stampede-load/stampede"
)

// within runs f and fails the test if it has not returned after d:
// hostile input must never hang a reader.
func within(t *testing.T, d time.Duration, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("no answer in %v", d)
	}
}

// watchAll follows path with a Watcher from its start until no event has
// arrived for a while, and returns the events.
func watchAll(t *testing.T, path string) []stampede.Evidence {
	t.Helper()
	var mu sync.Mutex
	var evs []stampede.Evidence
	last := time.Now()
	w, err := Watch(context.Background(), []Log{{Name: "app", Path: path}}, WatchOptions{FromStart: true, KeepAll: true, Poll: 10 * time.Millisecond,
		TimingInterval: 20 * time.Millisecond, Location: time.UTC}, func(ev stampede.Evidence) {
		mu.Lock()
		evs = append(evs, ev)
		last = time.Now()
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	for {
		time.Sleep(50 * time.Millisecond)
		mu.Lock()
		quiet := time.Since(last) > 500*time.Millisecond
		mu.Unlock()
		if quiet {
			break
		}
	}
	w.Close()
	mu.Lock()
	defer mu.Unlock()
	return evs
}

// checkJSON writes evs as evidence.jsonl does and reads them back: the
// text must be valid UTF-8 JSON whatever the log held.
func checkJSON(t *testing.T, evs []stampede.Evidence) {
	t.Helper()
	for _, ev := range evs {
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("%s: %v", ev.Ref, err)
		}
		if !utf8.Valid(b) {
			t.Fatalf("%s: evidence.jsonl line is not UTF-8: %q", ev.Ref, b)
		}
		var back stampede.Evidence
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s: %v", ev.Ref, err)
		}
	}
}

// TestHostileLogs parses and follows the logs of testdata/hostile (binary
// garbage, invalid UTF-8, NUL and control bytes, timestamps in the future,
// at the epoch and out of order, a 5,000-frame traceback): every one is
// read to its end, by ParseFile and by a Watcher alike, into valid JSON,
// in bounded time.
func TestHostileLogs(t *testing.T) {
	for _, tc := range []struct {
		file  string
		check func(t *testing.T, evs []stampede.Evidence)
	}{
		{"binary-garbage.log", nil},
		{"nul-and-controls.log", func(t *testing.T, evs []stampede.Evidence) {
			if len(evs) < 2 {
				t.Errorf("%d events, want the 2 ERROR lines", len(evs))
			}
		}},
		{"invalid-utf8.log", func(t *testing.T, evs []stampede.Evidence) {
			var msgs []string
			for _, ev := range evs {
				msgs = append(msgs, ev.Message+" | "+ev.Exception)
			}
			all := strings.Join(msgs, "\n")
			for _, want := range []string{"Internal Server Error", "ValueError: bad byte", "surrogate", "after a BOM", "GET /"} {
				if !strings.Contains(all, want) {
					t.Errorf("no event with %q in:\n%s", want, all)
				}
			}
			if strings.Contains(all, "password=\xff") {
				t.Errorf("a password is not masked:\n%s", all)
			}
		}},
		{"future-and-disorder.log", func(t *testing.T, evs []stampede.Evidence) {
			var years []int
			for _, ev := range evs {
				if ev.Signature != SignatureAccessTiming && ev.Level == "ERROR" {
					years = append(years, ev.Time.Year())
				}
			}
			// In the file's order, each with its own time; the impossible
			// date is an event without a time of its own.
			want := []int{2026, 2099, 2026, 1970, 9999}
			if len(years) < len(want) {
				t.Fatalf("years %v, want %v first", years, want)
			}
			for i, y := range want {
				if years[i] != y && !(y == 2026 && years[i] == time.Now().Year()) {
					t.Errorf("event %d: year %d, want %d (all: %v)", i, years[i], y, years)
				}
			}
			n := 0
			for _, ev := range evs {
				if ev.Signature == SignatureAccessTiming && ev.Fields["path"] == "/a" {
					c := 0
					json.Unmarshal([]byte(ev.Fields["count"]), &c)
					n += c
				}
			}
			if n != 6 {
				t.Errorf("access timings count %d requests, want the 6 lines", n)
			}
		}},
		{"json-hostile.log", func(t *testing.T, evs []stampede.Evidence) {
			// JSON nested past the limits, cut, with thousands of keys or
			// frames, invalid UTF-8, NUL and lone surrogates: each line is
			// read (as JSON or as text), and the line after them is too.
			var msgs []string
			for _, ev := range evs {
				msgs = append(msgs, ev.Message)
				if len(ev.Stack) > maxFrames || len(ev.Fields) > maxFields+8 {
					t.Errorf("%s: %d frames, %d fields", ev.Ref, len(ev.Stack), len(ev.Fields))
				}
				if strings.Contains(ev.Message+ev.Exception, "secretvalue1") || strings.Contains(ev.Fields["password"], "secretvalue1") {
					t.Errorf("%s: a password is not masked", ev.Ref)
				}
			}
			all := strings.Join(msgs, "\n")
			for _, want := range []string{"many", "huge string", "bad utf8", "nul ", "the line after"} {
				if !strings.Contains(all, want) {
					t.Errorf("no event with %q", want)
				}
			}
		}},
		{"deep-traceback.log", func(t *testing.T, evs []stampede.Evidence) {
			for _, ev := range evs {
				if ev.Exception == "RecursionError: maximum recursion depth exceeded" {
					if len(ev.Stack) > maxFrames {
						t.Errorf("%d frames kept, at most %d", len(ev.Stack), maxFrames)
					}
					return
				}
			}
			t.Errorf("the traceback's exception was not found")
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata/hostile", tc.file)
			var evs []stampede.Evidence
			var err error
			within(t, 20*time.Second, func() { evs, err = ParseFile(context.Background(), path, "app") })
			if err != nil {
				t.Fatal(err)
			}
			checkJSON(t, evs)
			if tc.check != nil {
				tc.check(t, evs)
			}
			var watched []stampede.Evidence
			within(t, 30*time.Second, func() { watched = watchAll(t, path) })
			checkJSON(t, watched)
		})
	}
}

// TestHugeLine: a 50 MB line, with a timestamp or without, is read in
// bounded memory (its first 64 KiB kept), and the lines after it are read.
func TestHugeLine(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 100 MB")
	}
	for _, head := range []string{"2026-11-28 21:15:00,000 ERROR app ", ""} {
		dir := t.TempDir()
		path := filepath.Join(dir, "huge.log")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(head)
		chunk := []byte(strings.Repeat("password=abcdefgh0123456789 ", 1<<15))
		for n := 0; n < 50<<20; n += len(chunk) {
			f.Write(chunk)
		}
		f.WriteString("\n2026-11-28 21:15:01,000 ERROR app the line after\n")
		f.Close()

		var evs []stampede.Evidence
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		within(t, 60*time.Second, func() { evs, err = ParseFile(context.Background(), path, "app") })
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatal(err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
			t.Errorf("head %q: ParseFile allocated %d MB for a 50 MB line, want less than 16", head, alloc>>20)
		}
		if n := len(evs); n == 0 || evs[n-1].Message != "app the line after" || !strings.HasSuffix(evs[n-1].Ref, "huge.log:2") {
			t.Errorf("head %q: last event %+v, want the line after (huge.log:2)", head, evs[max(n-1, 0)])
		}
		for _, ev := range evs {
			if len(ev.Message) > maxLineLen {
				t.Errorf("a message of %d bytes", len(ev.Message))
			}
			if strings.Contains(ev.Message, "abcdefgh0123456789") {
				t.Errorf("a password in %q…", ev.Message[:80])
			}
		}
		var watched []stampede.Evidence
		within(t, 60*time.Second, func() { watched = watchAll(t, path) })
		if n := len(watched); n == 0 || watched[n-1].Message != "app the line after" {
			t.Errorf("head %q: the watcher's last event is not the line after", head)
		}
	}
}

// TestLogIsADirectory: a directory given as a log is an error naming it;
// a log replaced by a directory while followed is waited out, and read
// again once it is a file.
func TestLogIsADirectory(t *testing.T) {
	dir := t.TempDir()
	if _, err := ParseFile(context.Background(), dir, "app"); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("ParseFile(dir): %v, want an error naming it", err)
	}
	_, err := Watch(context.Background(), []Log{{Name: "app", Path: dir}}, WatchOptions{}, func(stampede.Evidence) {})
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("Watch(dir): %v, want an error naming it", err)
	}

	path := filepath.Join(dir, "app.log")
	os.WriteFile(path, nil, 0o644)
	var mu sync.Mutex
	var msgs []string
	w, err := Watch(context.Background(), []Log{{Name: "app", Path: path}}, WatchOptions{Poll: 10 * time.Millisecond, Location: time.UTC}, func(ev stampede.Evidence) {
		mu.Lock()
		msgs = append(msgs, ev.Message)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			got := strings.Join(msgs, "\n")
			mu.Unlock()
			if strings.Contains(got, want) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("%q never read; read:\n%s", want, strings.Join(msgs, "\n"))
	}
	appendLine := func(s string) {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(s + "\n")
		f.Close()
	}
	appendLine("2026-11-28 21:15:00,000 ERROR app before")
	waitFor("app before")
	os.Remove(path)
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // some polls see the directory
	os.Remove(path)
	appendLine("2026-11-28 21:15:01,000 ERROR app after")
	waitFor("app after")
}
