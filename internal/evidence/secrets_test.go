package evidence

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/secret"
)

// TestParserMasksSecrets: the events of testdata/parse/secrets.log (POST
// data, cookies, Bearer tokens, DSNs, a PASSWORD literal in a log written
// as servers write them) hold none of its secrets, by pattern; and a
// password echoed with no key before it is masked when the parser knows
// it. Every event, kept or not (KeepAll), is masked.
func TestParserMasksSecrets(t *testing.T) {
	data, err := os.ReadFile("testdata/parse/secrets.log")
	if err != nil {
		t.Fatal(err)
	}
	input, _, _ := strings.Cut(string(data), fixtureSep)
	input += "2026-11-28 21:15:04,100 INFO app.auth user0006 typed kayu-ahsp-2005 twice\n" +
		"user0006 typed kayu-ahsp-2005 again, with cookie Q1NSRg\n"
	secrets := []string{"kayu-ahsp-2005", "Zk9vT0tFTg", "4f2a9c", "Q1NSRg", "eyJhbGciOiJIUzI1NiJ9", "dbpw-s3cret", "cmVzZXQ"}
	for _, keepAll := range []bool{false, true} {
		p := NewParser("app", "secrets.log", nil, time.UTC)
		p.KeepAll = keepAll
		p.Timings = NewTimings("app", "secrets.log")
		p.Secrets = secret.New("kayu-ahsp-2005", "dbpw-s3cret", "Q1NSRg")
		p.Timings.Secrets = p.Secrets
		var evs []stampede.Evidence
		if err := ParseReader(context.Background(), strings.NewReader(input), p, func(ev stampede.Evidence) { evs = append(evs, ev) }); err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(evs)
		if err != nil {
			t.Fatal(err)
		}
		out := string(b)
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("KeepAll %v: secret %q in the evidence:\n%s", keepAll, s, out)
			}
		}
		if n := strings.Count(out, secret.Marker); n < 20 {
			t.Errorf("KeepAll %v: %d masks, want at least 20:\n%s", keepAll, n, out)
		}
		// What the diagnosis reads is left alone.
		for _, s := range []string{"password authentication failed for user", "Forbidden (CSRF token missing or incorrect.)", "login=user0006"} {
			if !strings.Contains(out, s) {
				t.Errorf("KeepAll %v: %q lost", keepAll, s)
			}
		}
	}
}
