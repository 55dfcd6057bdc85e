package diagnose

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stampede-load/stampede"
)

// Fixtures are txtar archives, one run each, in the caddy style: a comment
// saying what the run shows, the run's files (meta.json, requests.csv in the
// run-directory format or Locust's CSVs, timeline.jsonl, evidence.jsonl),
// and "want": the expected diagnosis, one assertion a line:
//
//	verdict pass|fail
//	top ID [STATUS]        the first finding
//	finding ID STATUS      a finding with that status
//	explains ID N          the failures the finding explains
//	slow ID N              the slow requests the finding explains
//	slow-at-least ID N     at least N slow requests explained
//	caused_by ID ROOT      the finding is attached to ROOT
//	root ID                the finding is a root cause
//	absent ID              no such finding
//	ruled_out ID           listed under ruled_out
//	no-confirmed           no finding is confirmed
//	findings N             the number of findings
//	evidence ID TEXT       some evidence line of the finding contains TEXT

func TestFixtures(t *testing.T) {
	paths, err := filepath.Glob("testdata/*.txtar")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".txtar")
		t.Run(name, func(t *testing.T) {
			files := readTxtar(t, p)
			in := loadRun(t, files)
			d := Diagnose(in)
			if t.Failed() {
				return
			}
			js, _ := json.MarshalIndent(d, "", "  ")
			for _, line := range strings.Split(strings.TrimSpace(files["want"]), "\n") {
				if msg := check(d, strings.Fields(line)); msg != "" {
					t.Errorf("%s: %s", line, msg)
				}
			}
			if t.Failed() {
				t.Logf("diagnosis:\n%s", js)
			}
		})
	}
}

func check(d stampede.Diagnosis, f []string) string {
	find := func(id string) *stampede.Finding {
		for i := range d.Findings {
			if d.Findings[i].ID == id {
				return &d.Findings[i]
			}
		}
		return nil
	}
	ids := func() string {
		var s []string
		for _, x := range d.Findings {
			id := x.ID
			if x.CausedBy != "" {
				id = x.CausedBy + ">" + id
			}
			s = append(s, fmt.Sprintf("%s(%s,%d+%d slow)", id, x.Status, x.Explains.Failures, x.Explains.Slow))
		}
		return strings.Join(s, " ")
	}
	switch f[0] {
	case "verdict":
		if d.Verdict != f[1] {
			return "got " + d.Verdict + "; findings: " + ids()
		}
	case "top":
		if len(d.Findings) == 0 {
			return "no findings"
		}
		top := d.Findings[0]
		if top.ID != f[1] || (len(f) > 2 && top.Status != f[2]) {
			return "got " + ids()
		}
	case "finding":
		x := find(f[1])
		if x == nil || x.Status != f[2] {
			return "got " + ids()
		}
	case "explains":
		x := find(f[1])
		want, _ := strconv.Atoi(f[2])
		if x == nil || x.Explains.Failures != want {
			return "got " + ids()
		}
	case "slow":
		x := find(f[1])
		want, _ := strconv.Atoi(f[2])
		if x == nil || x.Explains.Slow != want {
			return "got " + ids()
		}
	case "slow-at-least":
		x := find(f[1])
		want, _ := strconv.Atoi(f[2])
		if x == nil || x.Explains.Slow < want {
			return "got " + ids()
		}
	case "caused_by":
		x := find(f[1])
		if x == nil || x.CausedBy != f[2] {
			return "got " + ids()
		}
	case "root":
		x := find(f[1])
		if x == nil || x.CausedBy != "" {
			return "got " + ids()
		}
	case "absent":
		if find(f[1]) != nil {
			return "got " + ids()
		}
	case "ruled_out":
		for _, r := range d.RuledOut {
			if r.ID == f[1] {
				return ""
			}
		}
		return fmt.Sprintf("ruled out: %+v", d.RuledOut)
	case "no-confirmed":
		for _, x := range d.Findings {
			if x.Status == stampede.Confirmed {
				return "got " + ids()
			}
		}
	case "findings":
		if n, _ := strconv.Atoi(f[1]); len(d.Findings) != n {
			return "got " + ids()
		}
	case "evidence":
		x := find(f[1])
		if x == nil {
			return "no finding; got " + ids()
		}
		want := strings.ToLower(strings.Join(f[2:], " "))
		for _, e := range x.Evidence {
			if strings.Contains(strings.ToLower(e.Text), want) {
				return ""
			}
		}
		return "no evidence line contains it"
	default:
		return "unknown assertion"
	}
	return ""
}

// readTxtar splits a txtar archive into its files; the comment is "".
func readTxtar(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	name := ""
	var b strings.Builder
	for _, line := range strings.SplitAfter(string(data), "\n") {
		l := strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(l, "-- ") && strings.HasSuffix(l, " --") && len(l) > 6 {
			files[name] = b.String()
			b.Reset()
			name = strings.TrimSpace(l[3 : len(l)-3])
			continue
		}
		b.WriteString(line)
	}
	files[name] = b.String()
	return files
}

// loadRun builds an Input from a fixture's files, as cmd/stampede does from
// a run directory or from Locust's CSVs.
func loadRun(t *testing.T, files map[string]string) *Input {
	t.Helper()
	var meta struct {
		Run   string    `json:"run"`
		Start time.Time `json:"start"`
		End   time.Time `json:"end"`
		Load  LoadFacts `json:"load"`
		// LoadChanges is meta.json's load_changes: the plan's load, then
		// the steps (as runner.LoadInput reads them).
		LoadChanges []LoadStep `json:"load_changes"`
	}
	if err := json.Unmarshal([]byte(files["meta.json"]), &meta); err != nil {
		t.Fatalf("meta.json: %v", err)
	}
	var in *Input
	if s, ok := files["requests.csv"]; ok {
		in = NewInput(meta.Run, meta.Start, meta.End, parseRequests(t, s))
	} else {
		in = &Input{Run: meta.Run, Start: meta.Start, End: meta.End}
		parseLocust(t, in, files)
	}
	in.Load = meta.Load
	for _, st := range meta.LoadChanges {
		if st.By != "plan" {
			in.Load.Steps = append(in.Load.Steps, st)
		}
	}
	sc := bufio.NewScanner(strings.NewReader(files["timeline.jsonl"]))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var s stampede.Sample
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("timeline.jsonl: %v", err)
		}
		in.Timeline = append(in.Timeline, s)
	}
	sc = bufio.NewScanner(strings.NewReader(files["evidence.jsonl"]))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var e stampede.Evidence
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("evidence.jsonl: %v", err)
		}
		in.Evidence = append(in.Evidence, e)
	}
	return in
}

// parseRequests reads requests.csv (docs/run-directory.md).
func parseRequests(t *testing.T, s string) []stampede.Result {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(s)).ReadAll()
	if err != nil {
		t.Fatalf("requests.csv: %v", err)
	}
	var rs []stampede.Result
	for i, r := range recs {
		if i == 0 {
			continue
		}
		n := func(j int) int64 { v, _ := strconv.ParseInt(r[j], 10, 64); return v }
		out, ok := stampede.ParseOutcome(r[9])
		if !ok {
			t.Fatalf("requests.csv:%d: outcome %q", i+1, r[9])
		}
		rs = append(rs, stampede.Result{
			Start: time.UnixMicro(n(0)).UTC(), User: int(n(1)), Name: r[2], Method: r[3], Status: int(n(4)),
			Latency: time.Duration(n(5)) * time.Microsecond, Connect: time.Duration(n(6)) * time.Microsecond,
			TTFB: time.Duration(n(7)) * time.Microsecond, Bytes: n(8), Outcome: out, Reason: r[10],
		})
	}
	return rs
}

// parseLocust reads Locust's stats, failures and stats_history CSVs.
func parseLocust(t *testing.T, in *Input, files map[string]string) {
	t.Helper()
	ms := func(s string) time.Duration {
		f, _ := strconv.ParseFloat(s, 64)
		return time.Duration(f * float64(time.Millisecond))
	}
	read := func(name string) []map[string]string {
		recs, err := csv.NewReader(strings.NewReader(files[name])).ReadAll()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var out []map[string]string
		for _, r := range recs[1:] {
			m := map[string]string{}
			for j, h := range recs[0] {
				m[h] = r[j]
			}
			out = append(out, m)
		}
		return out
	}
	for _, r := range read("locust_stats.csv") {
		if r["Name"] == "Aggregated" {
			continue
		}
		n, _ := strconv.Atoi(r["Request Count"])
		f, _ := strconv.Atoi(r["Failure Count"])
		in.Endpoints = append(in.Endpoints, EndpointTotals{Method: r["Type"], Name: r["Name"], Requests: n, Failures: f,
			Min: ms(r["Min Response Time"]), Median: ms(r["Median Response Time"]), Mean: ms(r["Average Response Time"]),
			P95: ms(r["95%"]), P99: ms(r["99%"]), Max: ms(r["Max Response Time"])})
	}
	for _, r := range read("locust_failures.csv") {
		n, _ := strconv.Atoi(r["Occurrences"])
		in.Failures = append(in.Failures, FailureGroup{Method: r["Method"], Name: r["Name"], Reason: r["Error"], Count: n})
	}
	if _, ok := files["locust_stats_history.csv"]; ok {
		for _, r := range read("locust_stats_history.csv") {
			ts, _ := strconv.ParseInt(r["Timestamp"], 10, 64)
			users, _ := strconv.Atoi(r["User Count"])
			rps, _ := strconv.ParseFloat(r["Requests/s"], 64)
			fps, _ := strconv.ParseFloat(r["Failures/s"], 64)
			in.History = append(in.History, Point{Time: time.Unix(ts, 0).UTC(), Method: r["Type"], Name: r["Name"],
				Users: users, Requests: rps, Failures: fps, Median: ms(r["50%"])})
		}
	}
}
