package locust

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHostileFiles reads each run of testdata/hostile (PREFIX_stats.csv
// and its companions): as far as it is valid, or an error naming the file,
// the line and the column, never a crash or a hang.
func TestHostileFiles(t *testing.T) {
	for _, tc := range []struct {
		prefix, want            string
		stats, history, failure int // rows read when there is no error
	}{
		{prefix: "crlf", stats: 4, history: 3, failure: 1},
		{prefix: "lf", stats: 4, history: 3, failure: 2},
		{prefix: "locust1", stats: 2},                       // "# requests", "Requests Failed/s"
		{prefix: "truncated", stats: 3},                     // a torn last line is left out
		{prefix: "truncated-history", stats: 4, history: 2}, // likewise the history's
		{prefix: "locust0", want: `locust0_stats.csv: line 1: no column "Failures/s" in the header "Method,Name,# requests,`},
		{prefix: "locust0h", want: `locust0h_stats.csv: line 1: no column "Failures/s"`},
		{prefix: "wrong-header", want: `wrong-header_stats.csv: line 1: no column "Type" in the header "a,b,c": is it a Locust CSV`},
		{prefix: "binary", want: `binary_stats.csv: line 1: no column "Type" in the header "\x00\x01\x02`},
		{prefix: "empty", want: "empty_stats.csv: empty file, want a header row"},
		{prefix: "nan", want: `nan_stats.csv: line 2, column 7 (Request Count): invalid integer "NaN"`},
		{prefix: "open-quote", want: `open-quote_stats.csv: line 2, column 9: extraneous or missing " in quoted-field`},
		{prefix: "missing", want: "missing_stats.csv: no such file"},
	} {
		t.Run(tc.prefix, func(t *testing.T) {
			done := make(chan struct{})
			var run *Run
			var err error
			go func() {
				defer close(done)
				run, err = Read(filepath.Join("testdata/hostile", tc.prefix))
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Read did not return in 10s")
			}
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v\nwant it to contain %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			h := 0
			if run.History != nil {
				h = len(run.History.Rows)
			}
			if len(run.Stats.Rows) != tc.stats || h != tc.history || len(run.Failures) != tc.failure {
				t.Errorf("read %d stats rows, %d history rows, %d failures; want %d, %d, %d",
					len(run.Stats.Rows), h, len(run.Failures), tc.stats, tc.history, tc.failure)
			}
		})
	}
}

func TestWholeLines(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a,b\n1,2\n", "a,b\n1,2\n"},
		{"a,b\n1,2", "a,b\n1,2"},          // whole, no newline
		{"a,b\n1,2\n3", "a,b\n1,2\n"},     // torn
		{"a,b\n1,2\n3,\"4", "a,b\n1,2\n"}, // torn in a quote
		{"a,b", "a,b"},
		{"", ""},
	} {
		if got := string(wholeLines([]byte(tc.in))); got != tc.want {
			t.Errorf("wholeLines(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
