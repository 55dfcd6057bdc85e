package evidence

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the expected output of the testdata fixtures")

// fixtureSep separates a fixture's log excerpt (above) from the expected
// evidence (below, one JSON object per line, as in evidence.jsonl).
const fixtureSep = "=== want ===\n"

// TestFixtures parses each testdata/parse/*.log fixture and compares the
// evidence with the expected lines below its separator. Times without a zone
// are read in UTC. Run with -update to rewrite the expectations.
func TestFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/parse/*.log")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			input, want, found := strings.Cut(string(data), fixtureSep)
			if !found && !*update {
				t.Fatalf("%s: no %q separator", file, strings.TrimSpace(fixtureSep))
			}
			evs := ParseText("test", filepath.Base(file), input, nil, time.UTC)
			var got bytes.Buffer
			for _, ev := range evs {
				b, err := json.Marshal(ev)
				if err != nil {
					t.Fatal(err)
				}
				got.Write(b)
				got.WriteByte('\n')
			}
			if *update {
				if err := os.WriteFile(file, []byte(input+fixtureSep+got.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got.String() != want {
				t.Errorf("%s: evidence differs (run with -update to accept)\ngot:\n%s\nwant:\n%s", file, got.String(), want)
			}
		})
	}
}
