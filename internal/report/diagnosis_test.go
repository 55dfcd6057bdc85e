package report

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stampede-load/stampede"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestDiagnosisGolden renders each testdata/diagnosis-*.json as text and
// Markdown and compares with the .txt and .md golden files next to it.
func TestDiagnosisGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/diagnosis-*.json")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	for _, path := range inputs {
		base := strings.TrimSuffix(path, ".json")
		t.Run(filepath.Base(base), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var d stampede.Diagnosis
			if err := json.Unmarshal(data, &d); err != nil {
				t.Fatal(err)
			}
			for _, r := range []struct {
				ext    string
				render func(*bytes.Buffer, stampede.Diagnosis) error
			}{
				{".txt", func(b *bytes.Buffer, d stampede.Diagnosis) error { return DiagnosisText(b, d) }},
				{".md", func(b *bytes.Buffer, d stampede.Diagnosis) error { return DiagnosisMarkdown(b, d) }},
			} {
				var got bytes.Buffer
				if err := r.render(&got, d); err != nil {
					t.Fatal(err)
				}
				golden := base + r.ext
				if *update {
					if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run with -update to create it)", err)
				}
				if !bytes.Equal(got.Bytes(), want) {
					t.Errorf("%s differs from the golden file (run with -update after checking):\n%s", golden, got.String())
				}
			}
		})
	}
}

// TestDiagnosisJSONRoundTrip checks diagnosis.json decodes to what was
// encoded.
func TestDiagnosisJSONRoundTrip(t *testing.T) {
	data, err := os.ReadFile("testdata/diagnosis-seed.json")
	if err != nil {
		t.Fatal(err)
	}
	var d stampede.Diagnosis
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := DiagnosisJSON(&b, d); err != nil {
		t.Fatal(err)
	}
	var back stampede.Diagnosis
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Findings) != len(d.Findings) || back.Verdict != d.Verdict || len(back.RuledOut) != len(d.RuledOut) {
		t.Errorf("round trip changed the diagnosis: %+v", back)
	}
	if !strings.Contains(b.String(), `"next_experiment"`) || strings.Contains(b.String(), `\u003e`) {
		t.Errorf("unexpected encoding:\n%s", b.String())
	}
}

func TestWrap(t *testing.T) {
	var b strings.Builder
	wrap(&b, "   fix:  ", "         ", strings.Repeat("word ", 40))
	for _, line := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		if len(line) > textWidth {
			t.Errorf("line longer than %d: %q", textWidth, line)
		}
	}
}
