package main

import (
	"context"
	"io"
	"os"
	"sync"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/evidence"
	"github.com/stampede-load/stampede/internal/load"
)

// startLogs follows each log from the run's start (lines already there are
// skipped; a file created or truncated during the run is read from its
// start), parses what is appended and emits the evidence.
func startLogs(ctx context.Context, logs []load.LogSpec, emit func(stampede.Evidence), stderr io.Writer) (func(), error) {
	if len(logs) == 0 {
		return func() {}, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, l := range logs {
		var off int64
		if st, err := os.Stat(l.Path); err == nil {
			off = st.Size()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			followLog(ctx, l, off, emit)
		}()
	}
	return func() { cancel(); wg.Wait() }, nil
}

// followLog polls one file every 200 ms from offset off.
func followLog(ctx context.Context, l load.LogSpec, off int64, emit func(stampede.Evidence)) {
	p := evidence.NewParser(l.Name, l.Path, nil, nil)
	lineNo := 0
	if off > 0 {
		lineNo = countLines(l.Path, off)
	}
	var carry []byte
	buf := make([]byte, 256<<10)
	read := func() {
		f, err := os.Open(l.Path)
		if err != nil {
			return
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil && st.Size() < off {
			off, lineNo, carry = 0, 0, nil // truncated: read again from the start
		}
		for {
			n, err := f.ReadAt(buf, off)
			if n > 0 {
				off += int64(n)
				data := append(carry, buf[:n]...)
				start := 0
				for i, c := range data {
					if c == '\n' {
						lineNo++
						for _, ev := range p.Feed(string(data[start:i+1]), lineNo) {
							emit(ev)
						}
						start = i + 1
					}
				}
				carry = append([]byte(nil), data[start:]...)
			}
			if err != nil || n == 0 {
				return
			}
		}
	}
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			read()
			for _, ev := range p.Flush() {
				emit(ev)
			}
			return
		case <-t.C:
			read()
		}
	}
}

func countLines(path string, upTo int64) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	b := make([]byte, 64<<10)
	n, lines := int64(0), 0
	for n < upTo {
		m, err := f.Read(b[:min(int64(len(b)), upTo-n)])
		for _, c := range b[:m] {
			if c == '\n' {
				lines++
			}
		}
		n += int64(m)
		if err != nil {
			break
		}
	}
	return lines
}
