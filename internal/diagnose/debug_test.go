package diagnose

import (
	"encoding/json"
	"os"
	"testing"
)

// TestShowFixture prints the anatomy and the diagnosis of the fixture named
// by $FIX, and writes the diagnosis to $OUT when set:
//
//	FIX=seed go test ./internal/diagnose -run ShowFixture -v
func TestShowFixture(t *testing.T) {
	name := os.Getenv("FIX")
	if name == "" {
		t.Skip("set FIX to a fixture name")
	}
	in := loadRun(t, readTxtar(t, "testdata/"+name+".txtar"))
	js, _ := json.MarshalIndent(BuildAnatomy(in), "", " ")
	t.Logf("anatomy: %s", js)
	js, _ = json.MarshalIndent(Diagnose(in), "", "  ")
	t.Logf("diagnosis: %s", js)
	if out := os.Getenv("OUT"); out != "" {
		if err := os.WriteFile(out, append(js, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
