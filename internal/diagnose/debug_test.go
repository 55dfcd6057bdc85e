package diagnose

import (
	"encoding/json"
	"os"
	"testing"
)

func TestDebugAnatomy(t *testing.T) {
	name := os.Getenv("FIX")
	if name == "" {
		t.Skip()
	}
	in := loadRun(t, readTxtar(t, "testdata/"+name+".txtar"))
	a := BuildAnatomy(in)
	js, _ := json.MarshalIndent(a, "", " ")
	t.Logf("%s", js)
	d := Diagnose(in)
	js, _ = json.MarshalIndent(d, "", " ")
	t.Logf("%s", js)
}
