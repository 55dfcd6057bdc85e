package evidence

import (
	"strings"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	evs := ParseText("pgbouncer", "pgbouncer.log", `2023-12-18 18:58:03.882 UTC [1] LOG C-0x1: a/a@1.2.3.4:5 closing because: query_wait_timeout (age=10s)
2023-12-18 18:58:03.882 UTC [1] WARNING C-0x1: a/a@1.2.3.4:5 pooler error: query_wait_timeout
2023-12-18 18:58:09.000 UTC [1] LOG C-0x2: a/a@1.2.3.4:6 closing because: query_wait_timeout (age=10s)
2023-12-18 18:58:10.000 UTC [1] WARNING something odd
`, nil, time.UTC)
	s := Summarize(evs, 1)
	if len(s.Sources) != 1 || s.Sources[0].Events != 4 || s.Sources[0].Classified != 3 {
		t.Errorf("sources = %+v", s.Sources)
	}
	if len(s.Classes) != 1 || s.Classes[0].Class != "db-pool-wait-timeout" || s.Classes[0].Count != 3 {
		t.Errorf("classes = %+v", s.Classes)
	}
	if len(s.Signatures) != 2 || s.Signatures[0].Signature != "pgbouncer-query-wait-timeout" || s.Signatures[0].Count != 2 ||
		len(s.Signatures[0].Examples) != 1 || !s.Signatures[0].Last.After(s.Signatures[0].First) {
		t.Errorf("signatures = %+v", s.Signatures)
	}
	if s.Unclassified.Count != 1 {
		t.Errorf("unclassified = %+v", s.Unclassified)
	}
	var b strings.Builder
	if err := s.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"db-pool-wait-timeout: 3 event(s)  from 2023-12-18 18:58:03.882 to 2023-12-18 18:58:09.000",
		"pgbouncer.log:1  closing because: query_wait_timeout (age=10s)",
		"unclassified (warnings, errors, stack traces): 1 event(s)",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, b.String())
		}
	}
}
