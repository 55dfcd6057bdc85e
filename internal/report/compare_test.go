package report

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stampede-load/stampede"
)

// updateGolden reports whether golden files are to be rewritten: with the
// package's -update flag (declared by diagnosis_test.go), or with
// STAMPEDE_UPDATE_GOLDEN=1.
func updateGolden() bool {
	if f := flag.Lookup("update"); f != nil && f.Value.String() == "true" {
		return true
	}
	return os.Getenv("STAMPEDE_UPDATE_GOLDEN") == "1"
}

// checkGolden compares got with the file at path, or rewrites it.
func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if updateGolden() {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run with -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func finding(id, status string, failures int, title string) stampede.Finding {
	return stampede.Finding{ID: id, Status: status, Confidence: 0.8, Title: title, Explains: stampede.Explains{Failures: failures}}
}

// compareFixtures are pairs of runs made in a temporary directory, named a
// and b so that the text does not depend on where it is.
var compareFixtures = []struct {
	name string
	a, b func() runSpec
}{
	{
		// The seed's run, then the same load with the pool fixed.
		name: "compare-fixed.txt",
		a: func() runSpec {
			s := fixtureRun()
			s.diagnosis.Findings = append(s.diagnosis.Findings, finding("login-rate-limit", stampede.Likely, 30, "Logins throttled by the per-IP rate limit"))
			return s
		},
		b: func() runSpec {
			s := fixtureRun()
			s.burstFrom, s.burstTo, s.softFrom, s.softTo = 0, 0, 0, 0
			s.diagnosis = &stampede.Diagnosis{Run: "b", Verdict: "pass", Findings: []stampede.Finding{
				finding("password-hash-cpu", stampede.Possible, 0, "Login latency dominated by password hashing"),
				finding("login-rate-limit", stampede.Possible, 0, "Logins throttled by the per-IP rate limit"),
			}}
			return s
		},
	},
	{
		// A healthy run, then a slower one without the dashboard, not diagnosed.
		name: "compare-regressed.txt",
		a: func() runSpec {
			s := fixtureRun()
			s.burstFrom, s.burstTo, s.softFrom, s.softTo = 0, 0, 0, 0
			s.diagnosis = &stampede.Diagnosis{Run: "a", Verdict: "pass"}
			return s
		},
		b: func() runSpec {
			s := fixtureRun()
			s.burstFrom, s.burstTo, s.softFrom, s.softTo = 0, 0, 0, 0
			s.slow, s.noDashboard, s.diagnosis, s.seconds = 30*time.Millisecond, true, nil, 30
			return s
		},
	},
}

func TestCompareText(t *testing.T) {
	testdata, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	for _, fx := range compareFixtures {
		t.Run(fx.name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			writeRunDir(t, "a", fx.a())
			writeRunDir(t, "b", fx.b())
			c, err := Compare("a", "b")
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := c.WriteText(&buf); err != nil {
				t.Fatal(err)
			}
			cwd, _ := os.Getwd()
			checkGolden(t, filepath.Join(testdata, fx.name), bytes.ReplaceAll(buf.Bytes(), []byte(cwd), []byte("TMP")))
		})
	}
}

func TestCompareJSON(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	writeRunDir(t, a, compareFixtures[0].a())
	writeRunDir(t, b, compareFixtures[0].b())
	c, err := Compare(a, b)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := c.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var got Comparison
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if !got.Verdict.Changed || got.Verdict.A != "fail" || got.Verdict.B != "pass" {
		t.Errorf("verdict = %+v", got.Verdict)
	}
	var login *EndpointChange
	for i, e := range got.Endpoints {
		if e.Name == "[AUTH] Login POST" {
			login = &got.Endpoints[i]
		}
	}
	if login == nil || login.Latency == nil {
		t.Fatalf("login POST: %+v", login)
	}
	if !login.Latency.Significant || login.Latency.BSlower || login.SuccessRateDelta < 0.29 {
		t.Errorf("login POST: %+v, test %+v; want significantly faster and +30 points of success", login, login.Latency)
	}
	if last := got.Endpoints[len(got.Endpoints)-1]; last.Name != "Aggregated" {
		t.Errorf("last endpoint %q, want Aggregated", last.Name)
	}
	changes := map[string]string{}
	for _, f := range got.Findings {
		changes[f.ID] = f.Change
	}
	want := map[string]string{"db-pool-wait-timeout": "disappeared", "password-hash-cpu": "appeared", "login-rate-limit": "changed"}
	for id, ch := range want {
		if changes[id] != ch {
			t.Errorf("finding %s: %q, want %q", id, changes[id], ch)
		}
	}
}

func TestComparePartialIsNotTested(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	writeRunDir(t, a, fixtureRun())
	s := fixtureRun()
	s.partial = true
	writeRunDir(t, b, s)
	c, err := Compare(a, b)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range c.Endpoints {
		if e.Latency != nil || !strings.Contains(e.NotTested, "no latency histogram in B") {
			t.Errorf("%s: test %+v, not tested %q", e.Name, e.Latency, e.NotTested)
		}
	}
	if !c.B.Partial {
		t.Error("B not partial")
	}
}

func TestCompareBadInput(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	writeRunDir(t, good, fixtureRun())
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	badSummary := filepath.Join(dir, "bad-summary")
	writeRunDir(t, badSummary, fixtureRun())
	if err := os.WriteFile(filepath.Join(badSummary, "summary.json"), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	badDiag := filepath.Join(dir, "bad-diagnosis")
	writeRunDir(t, badDiag, fixtureRun())
	if err := os.WriteFile(filepath.Join(badDiag, diagnosisFile), []byte("["), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		a, b, want string
	}{
		{filepath.Join(dir, "missing"), good, filepath.Join(dir, "missing") + " does not exist"},
		{good, empty, filepath.Join(empty, "summary.json") + " is missing"},
		{good, badSummary, filepath.Join(badSummary, "summary.json")},
		{badDiag, good, filepath.Join(badDiag, diagnosisFile)},
		{good, filepath.Join(good, "summary.json"), "is not a run directory"},
	} {
		_, err := Compare(tc.a, tc.b)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Compare(%s, %s) = %v, want an error containing %q", tc.a, tc.b, err, tc.want)
		}
	}
}

func TestCompareHTML(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	writeRunDir(t, a, compareFixtures[0].a())
	writeRunDir(t, b, compareFixtures[0].b())
	c, err := Compare(a, b)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := c.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	d := pageDataOf(t, page)
	if !d.Relative || len(d.Charts) != 3 || d.N != 60 {
		t.Fatalf("data: relative %v, %d charts, n %d", d.Relative, len(d.Charts), d.N)
	}
	if s := seriesByLabel(chartByID(d, "failures"), "A failures/s"); s == nil || s[20] != 5 {
		t.Errorf("A failures/s at 20 s = %v, want 5", s)
	}
	if s := seriesByLabel(chartByID(d, "failures"), "B failures/s"); s == nil || s[20] != 0 {
		t.Errorf("B failures/s at 20 s = %v, want 0", s)
	}
	for _, want := range []string{"[AUTH] Login POST", "significant at 0.05: B faster", "disappeared", "db-pool-wait-timeout", "delta-better"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, bad := range []string{`<script src=`, `<link `, "ZgotmplZ"} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
}
