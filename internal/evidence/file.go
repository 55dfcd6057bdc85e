package evidence

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unsafe"

	"github.com/stampede-load/stampede"
)

// readChunk is how much ParseReader reads at a time. Lines are cut out of
// each chunk as substrings, so reading costs one allocation per chunk, not
// one per line.
const readChunk = 1 << 20

// ParseFile parses a whole log file with the default catalog and the local
// time zone, and returns the events worth keeping, followed by the
// access-timing Evidence of its request lines (see Timings). name is the
// log's name (Evidence.Source); the path is used in each Ref. See
// ParseReader for more control.
func ParseFile(ctx context.Context, path, name string) ([]stampede.Evidence, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("evidence: %w", err)
	}
	defer f.Close()
	var out []stampede.Evidence
	p := NewParser(name, path, nil, nil)
	p.Timings = NewTimings(name, path)
	err = ParseReader(ctx, f, p, func(ev stampede.Evidence) { out = append(out, ev) })
	if err != nil {
		return out, fmt.Errorf("evidence: %s: %w", path, err)
	}
	return out, nil
}

// ParseReader feeds every line of r to p, flushes it at the end, and calls
// emit for each event p returns. It checks ctx between chunks. When
// p.Timings is set, its buckets are emitted as the log moves 30 s past
// them and at the end.
func ParseReader(ctx context.Context, r io.Reader, p *Parser, emit func(stampede.Evidence)) error {
	buf := make([]byte, readChunk)
	carry := 0 // bytes of an unfinished line at the start of buf
	lineNo := 0
	// skipping is set while the rest of a line longer than the buffer is
	// read and dropped: the parser keeps the first maxLineLen bytes of a
	// line only, so a 50 MB line costs one buffer, not 50 MB.
	skipping := false
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := io.ReadFull(r, buf[carry:])
		n += carry
		if skipping {
			i := bytes.IndexByte(buf[:n], '\n')
			if i < 0 {
				if err != nil {
					n = 0 // the file ends inside the long line
				} else {
					carry = 0
					continue
				}
			} else {
				skipping = false
				n = copy(buf, buf[i+1:n])
			}
		}
		end := n
		if err == nil {
			// Only whole lines now; the tail waits for the next chunk.
			if i := lastNewline(buf[:n]); i >= 0 {
				end = i + 1
			} else if n == len(buf) {
				// A line longer than the buffer: its start goes to the
				// parser as a line of its own, the rest is dropped.
				lineNo++
				for _, ev := range p.Feed(string(buf[:maxLineLen]), lineNo) {
					emit(ev)
				}
				skipping, carry = true, 0
				continue
			}
		}
		// The chunk becomes a string without a copy: buf is never written
		// again (the next chunk gets a fresh buffer), and the lines, cut
		// out of it as substrings, may live on in a pending event.
		s := unsafe.String(unsafe.SliceData(buf), end)
		for len(s) > 0 {
			i := strings.IndexByte(s, '\n')
			var line string
			if i < 0 {
				line, s = s, ""
			} else {
				line, s = s[:i+1], s[i+1:]
			}
			lineNo++
			for _, ev := range p.Feed(line, lineNo) {
				emit(ev)
			}
		}
		if p.Timings != nil {
			for _, ev := range p.Timings.expire() {
				emit(ev)
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				for _, ev := range p.Flush() {
					emit(ev)
				}
				if p.Timings != nil {
					for _, ev := range p.Timings.Flush() {
						emit(ev)
					}
				}
				return nil
			}
			return err
		}
		next := make([]byte, max(readChunk, 2*(n-end)))
		carry = copy(next, buf[end:n])
		buf = next
	}
}

func lastNewline(b []byte) int { return bytes.LastIndexByte(b, '\n') }

// ParseText parses a whole log held in a string (handy in tests and for
// short texts such as a client's error message), with access timings as
// ParseFile.
func ParseText(source, file, text string, catalog *Catalog, loc *time.Location) []stampede.Evidence {
	p := NewParser(source, file, catalog, loc)
	p.Timings = NewTimings(source, file)
	var out []stampede.Evidence
	_ = ParseReader(context.Background(), strings.NewReader(text), p, func(ev stampede.Evidence) { out = append(out, ev) })
	return out
}
