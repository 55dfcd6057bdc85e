// Package logtail follows log files while they grow, through rotation
// (rename and a new file), truncation (copytruncate) and files that do not
// exist yet, by polling: portable, and cheap at a few files every 200 ms.
//
// A rotation is seen as a new file identity at the path (the old file is
// read to its end first); a truncation as a file shorter than what was read,
// or whose first bytes changed (so a file truncated and written past the old
// offset within one poll is still read from its start).
package logtail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// File is a log to follow.
type File struct {
	// Name is the log's name as the user gave it ("pgbouncer").
	Name string
	// Path is the file's path.
	Path string
}

// Line is one line of a followed file.
type Line struct {
	// File is the file the line was read from.
	File File
	// Num is the line's number in the file, from 1. It starts again at 1
	// in a new file after a rotation and after a truncation.
	Num int
	// Text is the line without its line ending.
	Text string
}

// Options configures Follow. The zero value is valid.
type Options struct {
	// Poll is how often the files are checked; 0 means 200 ms.
	Poll time.Duration
	// FromStart reads what the files hold when Follow starts. By default
	// a run follows from its start: lines already there are skipped (but
	// counted, so line numbers stay those of the file). Files that appear,
	// are replaced or are truncated later are always read from their start.
	FromStart bool
	// MaxLine bounds a line's length; longer lines are cut into pieces of
	// this size. 0 means 1 MiB.
	MaxLine int
	// Idle, when set, is called for a file once it has been quiet for a
	// whole poll after delivering lines: the moment to end a pending
	// multi-line event. It runs on the same goroutine as emit.
	Idle func(File)
}

// Validate reports options that cannot work.
func (o Options) Validate() error {
	if o.Poll < 0 {
		return fmt.Errorf("logtail: negative poll interval %v", o.Poll)
	}
	if o.MaxLine < 0 {
		return fmt.Errorf("logtail: negative line limit %d", o.MaxLine)
	}
	return nil
}

// Tailer follows a set of files until its context ends or Close is called.
type Tailer struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Follow starts following files. emit is called for every line, in order
// per file, from a single goroutine (never concurrently). The files that
// exist are opened before Follow returns, so "from now" means from this
// call; files that do not exist yet are picked up when they appear. Call
// Close to stop and wait.
func Follow(ctx context.Context, files []File, opts Options, emit func(Line)) (*Tailer, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Poll == 0 {
		opts.Poll = 200 * time.Millisecond
	}
	if opts.MaxLine == 0 {
		opts.MaxLine = 1 << 20
	}
	fs := make([]*follower, len(files))
	for i, f := range files {
		if f.Path == "" {
			return nil, fmt.Errorf("logtail: %s: empty path", f.Name)
		}
		fs[i] = &follower{file: f, opts: &opts, emit: emit, buf: make([]byte, 64<<10)}
		if err := fs[i].open(!opts.FromStart); err != nil {
			for _, g := range fs[:i] {
				g.close()
			}
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	t := &Tailer{cancel: cancel}
	t.wg.Go(func() {
		defer func() {
			for _, f := range fs {
				f.close()
			}
		}()
		tick := time.NewTicker(opts.Poll)
		defer tick.Stop()
		for {
			for _, f := range fs {
				if ctx.Err() != nil {
					return
				}
				f.poll()
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	return t, nil
}

// Close stops following and waits until emit will not be called again.
func (t *Tailer) Close() error {
	t.cancel()
	t.wg.Wait()
	return nil
}

// follower is the state of one file.
type follower struct {
	file File
	opts *Options
	emit func(Line)

	fd      *os.File
	info    os.FileInfo // of fd, to recognise a replaced file
	off     int64       // bytes of fd consumed into lines or partial
	lineNo  int
	partial []byte // an unfinished last line
	buf     []byte
	fresh   bool // lines delivered since the last quiet poll
	// head holds the file's first bytes (up to headLen): when they change
	// while the file keeps its identity, it was truncated and written
	// again, even if it has already grown past the old offset.
	head, scratch []byte
}

const headLen = 64

// open opens the file if it exists. With skip, existing content is skipped
// up to its last complete line, and counted.
func (f *follower) open(skip bool) error {
	fd, err := os.Open(f.file.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // picked up when it appears
	}
	if err != nil {
		return fmt.Errorf("logtail: %s: %w", f.file.Name, err)
	}
	info, err := fd.Stat()
	if err != nil {
		fd.Close()
		return fmt.Errorf("logtail: %s: %w", f.file.Name, err)
	}
	if info.IsDir() {
		// A directory where the log should be: an error when Follow
		// starts; later (a file replaced by a directory) it is waited out
		// like a missing file.
		fd.Close()
		return fmt.Errorf("logtail: %s: %s is a directory, not a log file", f.file.Name, f.file.Path)
	}
	f.fd, f.info, f.off, f.lineNo, f.partial, f.head = fd, info, 0, 0, f.partial[:0], f.head[:0]
	if skip {
		lines, end, err := countLines(fd)
		if err != nil {
			fd.Close()
			f.fd = nil
			return fmt.Errorf("logtail: %s: %w", f.file.Name, err)
		}
		if _, err := fd.Seek(end, io.SeekStart); err != nil {
			fd.Close()
			f.fd = nil
			return fmt.Errorf("logtail: %s: %w", f.file.Name, err)
		}
		f.off, f.lineNo = end, lines
	}
	return nil
}

// countLines counts the complete lines of r and returns the offset after
// the last one (a line still being written is left to be read).
func countLines(r io.Reader) (lines int, end int64, err error) {
	buf := make([]byte, 256<<10)
	var pos int64
	for {
		n, err := r.Read(buf)
		if n > 0 {
			c := bytes.Count(buf[:n], []byte{'\n'})
			if c > 0 {
				lines += c
				end = pos + int64(bytes.LastIndexByte(buf[:n], '\n')) + 1
			}
			pos += int64(n)
		}
		if err == io.EOF {
			return lines, end, nil
		}
		if err != nil {
			return 0, 0, err
		}
	}
}

func (f *follower) close() {
	if f.fd != nil {
		f.fd.Close()
		f.fd = nil
	}
}

// poll reads what is new, then checks for rotation and truncation.
func (f *follower) poll() {
	if f.fd == nil {
		if err := f.open(false); err != nil || f.fd == nil {
			return
		}
	}
	// Truncation first: what lies past the old offset of a truncated and
	// rewritten file is not the continuation of what was read.
	if fi, err := f.fd.Stat(); err == nil && (fi.Size() < f.off || f.rewritten()) {
		// Truncated (copytruncate): read again from the start.
		f.flushPartial()
		if _, err := f.fd.Seek(0, io.SeekStart); err == nil {
			f.off, f.lineNo, f.head = 0, 0, f.head[:0]
		}
	}
	got := f.drain()
	st, err := os.Stat(f.file.Path)
	switch {
	case err != nil:
		// Renamed away and not yet replaced: keep reading the old file,
		// the writer may still hold it.
	case !os.SameFile(st, f.info):
		// Rotated: finish the old file, then start the new one.
		got = f.drain() || got
		f.flushPartial()
		f.close()
		if err := f.open(false); err == nil && f.fd != nil {
			got = f.drain() || got
		}
	}
	f.keepHead()
	if got {
		f.fresh = true
	} else if f.fresh {
		f.fresh = false
		if f.opts.Idle != nil {
			f.opts.Idle(f.file)
		}
	}
}

// keepHead records the file's first bytes, until it has headLen of them.
func (f *follower) keepHead() {
	if f.fd == nil || len(f.head) == headLen || f.off <= int64(len(f.head)) {
		return
	}
	if f.head == nil {
		f.head, f.scratch = make([]byte, 0, headLen), make([]byte, headLen)
	}
	n, _ := f.fd.ReadAt(f.head[:min(int64(headLen), f.off)], 0)
	f.head = f.head[:n]
}

// rewritten reports whether the file's first bytes changed.
func (f *follower) rewritten() bool {
	if len(f.head) == 0 {
		return false
	}
	n, _ := f.fd.ReadAt(f.scratch[:len(f.head)], 0)
	return n < len(f.head) || !bytes.Equal(f.scratch[:n], f.head)
}

// drain reads fd to its end, emitting complete lines, and reports whether
// it read anything.
func (f *follower) drain() bool {
	got := false
	for {
		n, err := f.fd.Read(f.buf)
		if n > 0 {
			got = true
			f.off += int64(n)
			f.split(f.buf[:n])
		}
		if err != nil || n == 0 {
			return got
		}
	}
}

// split emits the complete lines of b, keeping an unfinished tail.
func (f *follower) split(b []byte) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			f.partial = append(f.partial, b...)
			for len(f.partial) > f.opts.MaxLine {
				f.piece(f.partial[:f.opts.MaxLine])
				f.partial = append(f.partial[:0], f.partial[f.opts.MaxLine:]...)
			}
			return
		}
		if len(f.partial) > 0 {
			f.partial = append(f.partial, b[:i]...)
			f.line(f.partial)
			f.partial = f.partial[:0]
		} else {
			f.line(b[:i])
		}
		b = b[i+1:]
	}
}

// flushPartial emits an unfinished last line: its file is going away.
func (f *follower) flushPartial() {
	if len(f.partial) > 0 {
		f.line(f.partial)
		f.partial = f.partial[:0]
	}
}

// piece emits a piece of an over-long line; the pieces of a line share its
// number.
func (f *follower) piece(b []byte) {
	f.emit(Line{File: f.file, Num: f.lineNo + 1, Text: string(b)})
}

func (f *follower) line(b []byte) {
	for len(b) > f.opts.MaxLine {
		f.piece(b[:f.opts.MaxLine])
		b = b[f.opts.MaxLine:]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	f.lineNo++
	f.emit(Line{File: f.file, Num: f.lineNo, Text: string(b)})
}
