package report

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/rundir"
)

// writeBigRun writes a requests.csv of n requests over d, spread evenly,
// one in fifty failed.
func writeBigRun(b testing.TB, dir string, n int, d time.Duration) {
	b.Helper()
	w, err := rundir.NewRequestWriter(dir)
	if err != nil {
		b.Fatal(err)
	}
	names := []string{"GET /dashboard/", "[AUTH] Login GET", "[AUTH] Login POST", "GET /recap/"}
	for i := range n {
		r := stampede.Result{
			Start: fixtureStart.Add(time.Duration(int64(d) * int64(i) / int64(n))), Name: names[i%len(names)], Method: "GET",
			Status: 200, Latency: time.Duration(5+i%300) * time.Millisecond, Bytes: 1024, User: 1 + i%500,
		}
		if i%50 == 0 {
			r.Status, r.Outcome, r.Reason = 500, stampede.FailStatus, "HTTP 500"
		}
		if err := w.Write(&r); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkWriteHTML1M renders the report of a ten-minute run of a million
// requests (no summary.json: the tables are computed too, the worst case).
func BenchmarkWriteHTML1M(b *testing.B) {
	dir := b.TempDir()
	writeBigRun(b, dir, 1_000_000, 10*time.Minute)
	b.ResetTimer()
	for range b.N {
		if err := WriteHTML(dir); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	st, err := os.Stat(filepath.Join(dir, HTMLFile))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(st.Size())/1024, "KiB/page")
}
