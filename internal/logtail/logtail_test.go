package logtail

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// collector gathers emitted lines for the tests.
type collector struct {
	mu    sync.Mutex
	lines []Line
}

func (c *collector) emit(l Line) {
	c.mu.Lock()
	c.lines = append(c.lines, l)
	c.mu.Unlock()
}

func (c *collector) texts() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, l := range c.lines {
		out = append(out, fmt.Sprintf("%d:%s", l.Num, l.Text))
	}
	return out
}

// waitFor polls until the collected lines equal want, or fails after a
// bounded time.
func (c *collector) waitFor(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := c.texts()
		if strings.Join(got, "|") == strings.Join(want, "|") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("lines = %q, want %q", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func appendTo(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func start(t *testing.T, opts Options, files ...File) *collector {
	t.Helper()
	c := &collector{}
	opts.Poll = 10 * time.Millisecond
	tl, err := Follow(context.Background(), files, opts, c.emit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tl.Close() })
	return c
}

func TestFromNowSkipsExistingLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	appendTo(t, path, "old 1\nold 2\nhalf")
	c := start(t, Options{}, File{"app", path})
	appendTo(t, path, " done\nnew\n")
	// The line being written when the run started is the run's.
	c.waitFor(t, "3:half done", "4:new")
}

func TestFromStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	appendTo(t, path, "a\nb\n")
	c := start(t, Options{FromStart: true}, File{"app", path})
	appendTo(t, path, "c\r\n")
	c.waitFor(t, "1:a", "2:b", "3:c")
}

func TestFileAppearsLater(t *testing.T) {
	path := filepath.Join(t.TempDir(), "later.log")
	c := start(t, Options{}, File{"later", path})
	time.Sleep(30 * time.Millisecond)
	appendTo(t, path, "first\nsecond\n")
	c.waitFor(t, "1:first", "2:second")
}

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	appendTo(t, path, "before\n")
	c := start(t, Options{}, File{"app", path})
	appendTo(t, path, "a1\na2\n")
	c.waitFor(t, "2:a1", "3:a2")
	// logrotate's default: rename, then the app reopens a new file. A last
	// line written to the old file after the rename is not lost.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendTo(t, path+".1", "a3\n")
	appendTo(t, path, "b1\nb2\n")
	c.waitFor(t, "2:a1", "3:a2", "4:a3", "1:b1", "2:b2")
}

func TestTruncation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	c := start(t, Options{}, File{"app", path})
	appendTo(t, path, "one\ntwo\nthree\n")
	c.waitFor(t, "1:one", "2:two", "3:three")
	// copytruncate: the file keeps its inode and starts again at 0.
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(30 * time.Millisecond)
	appendTo(t, path, "x\n")
	c.waitFor(t, "1:one", "2:two", "3:three", "1:x")
}

func TestLongLinesAndIdle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	var mu sync.Mutex
	idle := 0
	c := start(t, Options{MaxLine: 4, Idle: func(File) { mu.Lock(); idle++; mu.Unlock() }}, File{"app", path})
	appendTo(t, path, "abcdefghij\nok\n")
	c.waitFor(t, "1:abcd", "1:efgh", "1:ij", "2:ok")
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := idle
		mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("idle called %d times, want 1", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCloseStopsEmitting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	var mu sync.Mutex
	closed := false
	tl, err := Follow(context.Background(), []File{{"app", path}}, Options{Poll: time.Millisecond}, func(Line) {
		mu.Lock()
		defer mu.Unlock()
		if closed {
			t.Error("emit after Close")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	appendTo(t, path, "x\n")
	time.Sleep(10 * time.Millisecond)
	tl.Close()
	mu.Lock()
	closed = true
	mu.Unlock()
	appendTo(t, path, "y\n")
	time.Sleep(10 * time.Millisecond)
}

func TestOptionsValidate(t *testing.T) {
	if _, err := Follow(context.Background(), nil, Options{Poll: -1}, func(Line) {}); err == nil {
		t.Error("negative poll accepted")
	}
	if _, err := Follow(context.Background(), []File{{Name: "x"}}, Options{}, func(Line) {}); err == nil || !strings.Contains(err.Error(), "x") {
		t.Errorf("empty path: err = %v", err)
	}
}

func TestTruncationRewrittenPastOffset(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	c := start(t, Options{}, File{"app", path})
	appendTo(t, path, "2026-01-11 12:00:00 one\n")
	c.waitFor(t, "1:2026-01-11 12:00:00 one")
	// Truncated and written again, longer than before, within one poll.
	if err := os.WriteFile(path, []byte("2026-01-11 12:00:05 two\n2026-01-11 12:00:06 three\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, "1:2026-01-11 12:00:00 one", "1:2026-01-11 12:00:05 two", "2:2026-01-11 12:00:06 three")
}

// TestDirectory: a directory given as a file is an error naming it; a
// file replaced by a directory is waited out like a missing one, and
// read from its start once it is a file again.
func TestDirectory(t *testing.T) {
	dir := t.TempDir()
	_, err := Follow(context.Background(), []File{{Name: "app", Path: dir}}, Options{}, func(Line) {})
	if err == nil || !strings.Contains(err.Error(), "app: "+dir+" is a directory") {
		t.Fatalf("Follow(dir) = %v, want an error naming it", err)
	}
	path := filepath.Join(dir, "app.log")
	appendTo(t, path, "one\n")
	c := start(t, Options{FromStart: true}, File{Name: "app", Path: path})
	c.waitFor(t, "1:one")
	os.Remove(path)
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // polls that see the directory
	os.Remove(path)
	appendTo(t, path, "two\n")
	c.waitFor(t, "1:one", "1:two")
}

// TestBinaryAndHugeLines: bytes of any value pass through as they are,
// and a line far longer than MaxLine comes in pieces of MaxLine.
func TestBinaryAndHugeLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	appendTo(t, path, "\x00\xff\xfe\r\n"+strings.Repeat("x", 10_000)+"\nend\n")
	c := start(t, Options{FromStart: true, MaxLine: 4096}, File{Name: "app", Path: path})
	c.waitFor(t, "1:\x00\xff\xfe", "2:"+strings.Repeat("x", 4096), "2:"+strings.Repeat("x", 4096), "2:"+strings.Repeat("x", 10_000-8192), "3:end")
}
