package faults

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRowsRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rows.jsonl")
	t.Setenv(RowsEnv, path)
	for _, r := range []Row{
		{Section: SectionFault, Name: "B fault", Injected: "at 7 s", Recorded: "3 | 4\nfailed", Diagnosis: "db-unavailable (confirmed): down", Held: true},
		{Section: SectionMemory, Name: "soak", Recorded: "flat", Held: true},
		{Section: SectionFault, Name: "A fault", Recorded: "x", Open: "a rule claims too much"},
		{Section: SectionFault, Name: "B fault", Recorded: "again", Held: true}, // replaces the first
	} {
		if err := AppendRow(r); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := ReadRows(bytes.NewReader(b), path)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[0].Recorded != "again" {
		t.Fatalf("rows %+v: want 3, the first replaced by the last", rows)
	}
	var md strings.Builder
	if err := Markdown(&md, rows); err != nil {
		t.Fatal(err)
	}
	out := md.String()
	for _, want := range []string{
		"| A fault |  | x |  | no; open point: a rule claims too much |",
		"| B fault |  | again |  | yes |",
		"| soak | flat | yes |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}
	if strings.Index(out, "A fault") > strings.Index(out, "B fault") {
		t.Errorf("faults not in name order:\n%s", out)
	}
	if got := cell("a|b\nc"); got != `a\|b<br>c` {
		t.Errorf("cell = %q", got)
	}

	for _, bad := range []string{"{", `{"section":"fault"}`} {
		if _, err := ReadRows(strings.NewReader("\n"+bad+"\n"), "rows.jsonl"); err == nil || !strings.Contains(err.Error(), "rows.jsonl:2") {
			t.Errorf("ReadRows(%q): %v, want an error at rows.jsonl:2", bad, err)
		}
	}
	if err := Markdown(&md, []Row{{Section: "other", Name: "x"}}); err == nil {
		t.Error("an unknown section rendered")
	}
	t.Setenv(RowsEnv, "")
	if err := AppendRow(Row{Section: SectionFault, Name: "ignored"}); err != nil {
		t.Error(err)
	}
}
