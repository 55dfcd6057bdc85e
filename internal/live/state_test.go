package live

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/metrics"
	"github.com/stampede-load/stampede/internal/runner"
)

// start of the synthetic run: second 0 of the columns is 10:00:00.
var start = time.Date(2026, 1, 2, 10, 0, 0, 400e6, time.UTC)

func result(name string, end time.Duration, latency time.Duration, outcome stampede.Outcome, status int) stampede.Result {
	return stampede.Result{Start: start.Truncate(time.Second).Add(end - latency), Method: "GET", Name: name,
		Latency: latency, Status: status, Outcome: outcome}
}

// feeder plays a run into a Server as runner.Run would: every result into
// the recorder's metrics and the Server, a Second at each tick.
type feeder struct {
	s *Server
	m *metrics.Metrics
}

func (f *feeder) add(rs ...stampede.Result) {
	for i := range rs {
		f.m.Add(&rs[i])
		f.s.Result(&rs[i])
	}
}

func (f *feeder) tick(at time.Duration, users int) {
	sec := f.m.Tick(start.Add(at), users)
	f.s.Second(&runner.SecondView{Second: sec, Failures: f.m.Failures(), Users: users, InFlight: 2, Start: start})
}

func getState(t *testing.T, s *Server) Message {
	t.Helper()
	resp, err := http.Get(s.URL() + "api/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m Message
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// stream reads server-sent events.
type stream struct {
	r    *bufio.Reader
	body io.Closer
}

func openStream(t *testing.T, s *Server) *stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL()+"api/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	return &stream{r: bufio.NewReader(resp.Body), body: resp.Body}
}

// next returns the next event's name and message.
func (st *stream) next(t *testing.T) (string, Message, string) {
	t.Helper()
	var event, data string
	for {
		line, err := st.r.ReadString('\n')
		if err != nil {
			t.Fatalf("event stream: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "" && data != "":
			var m Message
			if err := json.Unmarshal([]byte(data), &m); err != nil {
				t.Fatalf("event %s: %v\n%s", event, err, data)
			}
			return event, m, data
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data += strings.TrimPrefix(line, "data: ")
		}
	}
}

// waitPushed waits until the pusher has sent every change of the columns.
func waitPushed(t *testing.T, s *Server) {
	t.Helper()
	for range 500 {
		s.mu.Lock()
		dirty := false
		for _, c := range s.st.cols {
			dirty = dirty || c.dirty != math.MaxInt
		}
		s.mu.Unlock()
		if !dirty {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the pusher did not push")
}

func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol*math.Abs(want) }

func values(t *testing.T, m Message, col string) ([]float64, int) {
	t.Helper()
	c, ok := m.Columns[col]
	if !ok {
		return nil, -1
	}
	return c.Values, c.From
}

// TestSnapshotAndUpdates plays a short run into a Server and reads it as a
// page does: the snapshot of /api/state and of the event stream, then the
// updates, which carry what changed only, then the end.
func TestSnapshotAndUpdates(t *testing.T) {
	dir := t.TempDir()
	s, err := Start(Options{Addr: "127.0.0.1:0", Dir: dir, NoDiagnose: true, KeepEvidence: 3,
		Run: RunFacts{Target: "http://app.test/", Model: "closed", Duration: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f := &feeder{s: s, m: metrics.New(start)}
	s.LoadChanged(runner.LoadChange{Time: start, Users: 10, SpawnRate: 5, By: "plan"})

	// Second 0: three requests, one a 500; second 1: a timeout, counted
	// before the first tick but published with its own second.
	f.add(result("/a", 600*time.Millisecond, 100*time.Millisecond, stampede.OK, 200),
		result("/a", 700*time.Millisecond, 200*time.Millisecond, stampede.OK, 200),
		result("/b", 800*time.Millisecond, 300*time.Millisecond, stampede.FailStatus, 500),
		result("/b", 1200*time.Millisecond, 900*time.Millisecond, stampede.FailTimeout, 0))
	at := start.Truncate(time.Second)
	s.Sample(stampede.Sample{Time: at.Add(900 * time.Millisecond), Source: "pgbouncer", Values: map[string]float64{"cl_waiting": 7, "maxwait_s": 1}})
	s.Sample(stampede.Sample{Time: at.Add(950 * time.Millisecond), Source: "pgbouncer", Values: map[string]float64{"cl_waiting": 9}})
	s.Sample(stampede.Sample{Time: at.Add(300 * time.Millisecond), Source: "redis", Values: map[string]float64{"rejected_connections_delta": 2}})
	s.Sample(stampede.Sample{Time: at.Add(800 * time.Millisecond), Source: "redis", Values: map[string]float64{"rejected_connections_delta": 3}})
	s.Sample(stampede.Sample{Time: at.Add(500 * time.Millisecond), Source: "postgres", Err: "dial tcp 127.0.0.1:1: connection refused"})
	for i := range 5 {
		s.Evidence(stampede.Evidence{Time: at.Add(time.Duration(i) * 100 * time.Millisecond), Source: "app-errors", Class: "db-pool-wait-timeout",
			Message: "query_wait_timeout " + itoa(i), Ref: "errors.log:" + itoa(10+i), Stack: []string{"a.py:1", "b.py:2"}})
	}
	f.tick(time.Second, 10)
	sum := f.m.Summary(start.Add(time.Second))
	waitPushed(t, s)

	sse := openStream(t, s)
	event, snap, _ := sse.next(t)
	if event != "snapshot" || !snap.Snapshot {
		t.Fatalf("first event %q snapshot=%v, want the snapshot", event, snap.Snapshot)
	}
	state := getState(t, s)
	for name, m := range map[string]Message{"/api/state": state, "event stream": snap} {
		t.Run(name, func(t *testing.T) {
			checkFirstSecond(t, m, sum)
		})
	}

	// Second 1 closes: the update carries second 1 only, the new log event
	// only, and no chart (the charts did not change).
	s.Evidence(stampede.Evidence{Time: at.Add(1100 * time.Millisecond), Source: "pgbouncer", Message: "closing because: query_wait_timeout", Ref: "pgbouncer.log:7"})
	f.tick(2*time.Second, 12)
	var up Message
	for {
		event, up, _ = sse.next(t)
		if event != "update" {
			t.Fatalf("event %q after the snapshot, want update", event)
		}
		if up.Seq > snap.Seq && len(up.Columns) > 0 {
			break // a LoadChanged push may come first, without columns
		}
	}
	if v, from := values(t, up, "requests"); from != 1 || len(v) != 1 || v[0] != 1 {
		t.Errorf("update requests = from %d %v, want from 1 [1]", from, v)
	}
	if v, _ := values(t, up, "f:timeout"); len(v) == 0 || v[len(v)-1] != 1 {
		t.Errorf("update f:timeout = %v, want a timeout in second 1", v)
	}
	if len(up.Evidence.Events) != 1 || up.Evidence.Events[0].Ref != "pgbouncer.log:7" || up.Evidence.Total != 6 {
		t.Errorf("update evidence = %+v, want the one new event of 6", up.Evidence)
	}
	if up.Run != nil || up.Snapshot {
		t.Error("an update carries the run's facts or says it is a snapshot")
	}
	if up.Now.Users != 12 {
		t.Errorf("users now = %d, want 12", up.Now.Users)
	}

	// The end: summary.json's table, the run's end, the report link once
	// report.html is there.
	f.m.Close()
	final := f.m.Summary(start.Add(2 * time.Second))
	if err := os.WriteFile(filepath.Join(dir, "report.html"), []byte("<!doctype html><title>stampede report</title>"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.End(&runner.Result{Dir: dir, Summary: final, Partial: true})
	var end Message
	for end.Status != "ended" {
		_, end, _ = sse.next(t)
	}
	if end.End == nil || !end.End.Partial || end.End.Report != "report.html" || end.End.Dir != dir {
		t.Errorf("end = %+v", end.End)
	}
	checkTable(t, end, final)
	resp, err := http.Get(s.URL() + "report.html")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "stampede report") {
		t.Errorf("report.html: %d %s", resp.StatusCode, body)
	}
	// A page opened now gets the whole run, ended.
	last := getState(t, s)
	if v, _ := values(t, last, "requests"); len(v) != 2 || v[0] != 3 || v[1] != 1 {
		t.Errorf("requests after the end = %v, want [3 1]", v)
	}
	if last.Status != "ended" || len(last.Evidence.Events) != 3 || last.Evidence.Events[2].Ref != "pgbouncer.log:7" {
		t.Errorf("state after the end: status %s, events %+v", last.Status, last.Evidence.Events)
	}
}

// checkFirstSecond checks the state after second 0 of TestSnapshotAndUpdates.
func checkFirstSecond(t *testing.T, m Message, sum *metrics.Summary) {
	t.Helper()
	if m.Status != "running" || m.T0 != 1767348000 || m.Run == nil || m.Run.Target != "http://app.test/" || m.Run.Duration != 60 {
		t.Errorf("status %s t0 %v run %+v", m.Status, m.T0, m.Run)
	}
	for col, want := range map[string][]float64{
		"requests": {3}, "failures": {1}, "f:5xx": {1}, "f:timeout": {0},
		"o:pgbouncer:cl_waiting": {9}, "o:pgbouncer:maxwait_s": {1}, "o:redis:rejected_connections_delta": {5},
	} {
		got, from := values(t, m, col)
		if from != 0 || len(got) != len(want) || got[0] != want[0] {
			t.Errorf("column %s = from %d %v, want %v", col, from, got, want)
		}
	}
	if p50, _ := values(t, m, "p50"); len(p50) != 1 || !near(p50[0], 200, 0.01) {
		t.Errorf("p50 = %v, want 200 ms within 1%%", p50)
	}
	ids := []string{}
	for _, c := range m.Charts {
		ids = append(ids, c.ID)
	}
	if got := strings.Join(ids, " "); got != "throughput failures latency pool redis" {
		t.Errorf("charts %q", got)
	}
	checkTable(t, m, sum)
	if len(m.Evidence.Events) != 3 || m.Evidence.Total != 5 || m.Evidence.Events[0].Message != "query_wait_timeout 2" || m.Evidence.ByClass["db-pool-wait-timeout"] != 5 {
		t.Errorf("evidence = %+v, want the last 3 of 5", m.Evidence)
	}
	if len(m.Probes) != 3 || m.Probes[2].Source != "postgres" || m.Probes[2].Errors != 1 || !strings.Contains(m.Probes[2].LastError, "refused") {
		t.Errorf("probes = %+v", m.Probes)
	}
	if len(m.LoadChanges) != 1 || m.LoadChanges[0].By != "plan" || m.Load.Current == nil || m.Load.Current.Users != 10 || m.Load.Controls {
		t.Errorf("load %+v, changes %+v", m.Load, m.LoadChanges)
	}
	if m.Now.Users != 10 || m.Now.InFlight != 2 {
		t.Errorf("now = %+v", m.Now)
	}
	if len(m.Failures.Groups) != 1 || m.Failures.Groups[0].Reason != "" && m.Failures.Groups[0].Occurrences != 1 {
		t.Errorf("failures = %+v", m.Failures)
	}
}

// checkTable checks the endpoint table against a summary: the counts and
// latencies equal, to the microsecond.
func checkTable(t *testing.T, m Message, sum *metrics.Summary) {
	t.Helper()
	if len(m.Endpoints) != len(sum.Endpoints) {
		t.Fatalf("%d endpoint rows, summary has %d", len(m.Endpoints), len(sum.Endpoints))
	}
	rows := append([]EndpointRow{*m.Total}, m.Endpoints...)
	want := append([]metrics.EndpointSummary{sum.Aggregated}, sum.Endpoints...)
	for i, r := range rows {
		w := want[i]
		l := w.Latency
		if r.Name != w.Name || r.Method != w.Method || r.Requests != w.Requests || r.Failures != w.Failures ||
			r.Median != ms(l.Percentiles[0]) || r.P95 != ms(l.Percentiles[5]) || r.P99 != ms(l.Percentiles[7]) || r.Max != ms(l.Max) || r.Avg != ms(l.Avg) {
			t.Errorf("row %d = %+v\nwant %s %s requests %d failures %d p50 %v p95 %v p99 %v max %v avg %v", i, r,
				w.Method, w.Name, w.Requests, w.Failures, l.Percentiles[0], l.Percentiles[5], l.Percentiles[7], l.Max, l.Avg)
		}
	}
}

// TestDiagnosisFirstSeen: each finding keeps the second it first held, and
// the second its present status first held; one that no longer holds
// stays, marked.
func TestDiagnosisFirstSeen(t *testing.T) {
	var st state
	st.init(Options{})
	d := func(fs ...stampede.Finding) *stampede.Diagnosis {
		return &stampede.Diagnosis{Verdict: "fail", Findings: fs}
	}
	pool := func(status string) stampede.Finding {
		return stampede.Finding{ID: "db-pool-wait-timeout", Status: status, Confidence: 0.9, Title: "pool"}
	}
	limit := stampede.Finding{ID: "login-rate-limit", Status: stampede.Likely}
	steps := []struct {
		d       *stampede.Diagnosis
		err     string
		at      float64
		want    map[string][3]float64 // id → first seen, status since, current (1/0)
		wantErr string
	}{
		{d: d(pool(stampede.Likely)), at: 12, want: map[string][3]float64{"db-pool-wait-timeout": {12, 12, 1}}},
		{d: d(pool(stampede.Likely), limit), at: 20, want: map[string][3]float64{"db-pool-wait-timeout": {12, 12, 1}, "login-rate-limit": {20, 20, 1}}},
		{d: d(pool(stampede.Confirmed)), at: 41, want: map[string][3]float64{"db-pool-wait-timeout": {12, 41, 1}, "login-rate-limit": {20, 20, 0}}},
		{err: "diagnose: requests.csv: torn", at: 47, want: map[string][3]float64{"db-pool-wait-timeout": {12, 41, 0}, "login-rate-limit": {20, 20, 0}}, wantErr: "torn"},
		{d: d(pool(stampede.Confirmed), limit), at: 52, want: map[string][3]float64{"db-pool-wait-timeout": {12, 41, 1}, "login-rate-limit": {20, 20, 1}}},
	}
	for i, s := range steps {
		st.setDiagnosis(s.d, s.err, s.at, 30*time.Millisecond, false)
		got := map[string][3]float64{}
		for _, f := range st.diag.Findings {
			cur := 0.0
			if f.Current {
				cur = 1
			}
			got[f.ID] = [3]float64{f.FirstSeen, f.StatusSince, cur}
		}
		if len(got) != len(s.want) {
			t.Errorf("step %d: findings %v, want %v", i, got, s.want)
		}
		for id, w := range s.want {
			if got[id] != w {
				t.Errorf("step %d: %s = %v, want %v", i, id, got[id], w)
			}
		}
		if st.diag.Error != s.wantErr && !strings.Contains(st.diag.Error, s.wantErr) || (s.wantErr == "") != (st.diag.Error == "") {
			t.Errorf("step %d: error %q, want %q", i, st.diag.Error, s.wantErr)
		}
	}
}

// TestEvidenceBounded: a flood of log lines keeps the latest KeepEvidence
// events, counts them all, and sends each page only the new ones.
func TestEvidenceBounded(t *testing.T) {
	var st state
	st.init(Options{KeepEvidence: 3})
	add := func(n int) {
		for range n {
			st.evidence(&stampede.Evidence{Source: "app", Message: "boom", Ref: "app.log:1"})
			if len(st.events) >= 6 {
				t.Fatalf("%d events held, keep 3", len(st.events))
			}
		}
	}
	seqs := func(m *Message) []int64 {
		var out []int64
		for _, e := range m.Evidence.Events {
			out = append(out, e.Seq)
		}
		return out
	}
	add(100)
	now := time.Now()
	if m := st.message(true, now, runner.LoadChange{}, ""); fmt.Sprint(seqs(m)) != "[98 99 100]" || m.Evidence.Total != 100 {
		t.Errorf("snapshot events %v total %d", seqs(m), m.Evidence.Total)
	}
	st.message(false, now, runner.LoadChange{}, "")
	add(2)
	if m := st.message(false, now, runner.LoadChange{}, ""); fmt.Sprint(seqs(m)) != "[101 102]" {
		t.Errorf("update events %v, want the 2 new ones", seqs(m))
	}
	if m := st.message(false, now, runner.LoadChange{}, ""); len(m.Evidence.Events) != 0 || m.Evidence.Total != 102 {
		t.Errorf("update with no new event: %v, total %d", seqs(m), m.Evidence.Total)
	}
}
