package locust

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// addSeeds adds every CSV file under testdata (Locust's own shapes and our
// golden output) as a seed.
func addSeeds(f *testing.F) {
	for _, pattern := range []string{"testdata/*.csv", "testdata/golden/*.csv", "testdata/hostile/*.csv"} {
		files, _ := filepath.Glob(pattern)
		for _, name := range files {
			b, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
}

// FuzzRead feeds the same bytes to each reader: none may panic, and what
// one accepts must carry as many percentiles per row as its header has;
// cutting a torn last line keeps a prefix.
func FuzzRead(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if s, err := ReadStats(bytes.NewReader(b), "f"); err == nil {
			for _, r := range s.Rows {
				if len(r.Percentiles) != len(s.Quantiles) {
					t.Fatalf("row %+v: %d percentiles, header has %d", r, len(r.Percentiles), len(s.Quantiles))
				}
			}
			_ = s.Aggregated()
		}
		if h, err := ReadHistory(bytes.NewReader(b), "f"); err == nil {
			for _, r := range h.Rows {
				if len(r.Percentiles) != len(h.Quantiles) {
					t.Fatalf("row %+v: %d percentiles, header has %d", r, len(r.Percentiles), len(h.Quantiles))
				}
			}
		}
		if fs, err := ReadFailures(bytes.NewReader(b), "f"); err == nil {
			for _, x := range fs {
				_ = x.Reason()
			}
		}
		_, _ = ReadExceptions(bytes.NewReader(b), "f")
		if w := wholeLines(b); !bytes.HasPrefix(b, w) {
			t.Fatalf("wholeLines(%q) = %q: not a prefix", b, w)
		}
	})
}
