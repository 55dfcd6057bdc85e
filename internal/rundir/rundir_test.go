package rundir

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/secret"
)

func TestRequestsRoundTripAndTornLine(t *testing.T) {
	dir := t.TempDir()
	w, err := NewRequestWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	start := time.UnixMicro(1_800_000_000_123_456)
	in := []stampede.Result{
		{Start: start, User: 1, Name: "[AUTH] Login POST", Method: "POST", Status: 200, Latency: 1234 * time.Microsecond,
			TTFB: time.Millisecond, Bytes: 900, Outcome: stampede.FailContent, Reason: `login page returned: Too many, "failed" attempts`},
		{Start: start.Add(time.Second), User: 2, Name: "/", Method: "GET", Status: 0, Outcome: stampede.FailTransport, Reason: "connection refused"},
		{Start: start, User: 3, Name: " lead", Method: "GET", Status: 200, Latency: time.Second, Connect: 3 * time.Microsecond},
		{Start: start, User: 4, Name: "[AUTH] Login POST", Method: "POST", Status: 302, Latency: time.Second, Relogin: true},
	}
	for i := range in {
		if err := w.Write(&in[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// A torn last line, as kill -9 in mid-write leaves it.
	f, _ := os.OpenFile(filepath.Join(dir, RequestsFile), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("1800000000,4,/x,GE")
	f.Close()
	var got []stampede.Result
	if err := ReadRequests(dir, func(r *stampede.Result) error { got = append(got, *r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(in) {
		t.Fatalf("read %d results, want %d", len(got), len(in))
	}
	for i := range in {
		if got[i] != in[i] {
			t.Errorf("result %d:\n got %+v\nwant %+v", i, got[i], in[i])
		}
	}
}

func TestMalformedLineNamesIt(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, RequestsFile), []byte(RequestsHeader+"\n1,1,/,GET,200,5,0,0,2,ok,,\n1,x,/,GET,200,5,0,0,2,ok,,\n"), 0o644)
	err := ReadRequests(dir, func(*stampede.Result) error { return nil })
	if err == nil || !contains(err.Error(), "requests.csv:3") {
		t.Fatalf("err = %v, want it to name requests.csv:3", err)
	}
}

// Run directories written before the relogin column are read as they are.
func TestRequestsWithoutReloginColumn(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, RequestsFile), []byte(requestsHeader11+"\n1,1,/,GET,200,5,0,0,2,ok,\n2,1,\"a,b\",GET,500,5,0,0,2,status,HTTP 500\n"), 0o644)
	var got []stampede.Result
	if err := ReadRequests(dir, func(r *stampede.Result) error { got = append(got, *r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].Name != "a,b" || got[1].Reason != "HTTP 500" || got[0].Relogin {
		t.Fatalf("got %+v", got)
	}
	// A line of the new width under the old header is an error.
	os.WriteFile(filepath.Join(dir, RequestsFile), []byte(requestsHeader11+"\n1,1,/,GET,200,5,0,0,2,ok,,1\n"), 0o644)
	if err := ReadRequests(dir, func(*stampede.Result) error { return nil }); err == nil || !contains(err.Error(), "requests.csv:2") {
		t.Fatalf("err = %v, want requests.csv:2", err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func FuzzDecodeRequests(f *testing.F) {
	f.Add([]byte(RequestsHeader + "\n1,1,/,GET,200,5,0,0,2,ok,,\n"))
	f.Add([]byte(RequestsHeader + "\n1,1,\"a,b\",GET,200,5,0,0,2,content,\"x \"\"y\"\"\"\",1\n"))
	f.Add([]byte(requestsHeader11 + "\n1,1,/,GET,200,5,0,0,2,ok,\n"))
	f.Add([]byte(RequestsHeader + "\n1,1,/,GET,200,5,0,0,2,ok,,\n1,1,/,GE"))
	f.Add([]byte(RequestsHeader + "\n1,1,/,GET,200,5,0,0,2,ok,,\n\x00\x00\x00\x00"))
	// What is read is written back the same: a reader that accepted a
	// line it cannot represent would show in the round trip.
	f.Fuzz(func(t *testing.T, data []byte) {
		var rs []stampede.Result
		err := DecodeRequests(bytesReader(data), "f", func(r *stampede.Result) error { rs = append(rs, *r); return nil })
		if err != nil && !strings.HasPrefix(err.Error(), "f:") {
			t.Fatalf("error %q does not name the file", err)
		}
		b := []byte(RequestsHeader + "\n")
		for i := range rs {
			b = AppendResult(b, &rs[i])
		}
		var back []stampede.Result
		if err := DecodeRequests(bytesReader(b), "g", func(r *stampede.Result) error { back = append(back, *r); return nil }); err != nil {
			t.Fatalf("written back, not read: %v\n%q", err, b)
		}
		if len(back) != len(rs) {
			t.Fatalf("%d results read back, want %d", len(back), len(rs))
		}
		for i := range rs {
			if !back[i].Start.Equal(rs[i].Start) || back[i].Name != rs[i].Name || back[i].Reason != rs[i].Reason || back[i].Latency != rs[i].Latency {
				t.Fatalf("result %d: read back %+v, want %+v", i, back[i], rs[i])
			}
		}
	})
}

// FuzzReadRecords puts any bytes in meta.json, evidence.jsonl and
// timeline.jsonl: each reader returns records or an error naming its file,
// never a panic.
func FuzzReadRecords(f *testing.F) {
	f.Add([]byte(`{"tool":"stampede","run":"r","load":{"users":2}}`))
	f.Add([]byte(`{"t":"2026-11-28T21:15:00Z","source":"app","message":"x","fields":{"password":"p"}}` + "\n" + `{"t":`))
	f.Add([]byte("\x00\x01\n\n[1,2]\n"))
	f.Add([]byte(""))
	dir := f.TempDir() // one per worker process: the files are written over
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, name := range []string{MetaFile, EvidenceFile, TimelineFile} {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := ReadMeta(dir); err != nil && !strings.Contains(err.Error(), MetaFile) {
			t.Fatalf("meta.json: error %q does not name the file", err)
		}
		if _, err := ReadEvidence(dir); err != nil && !strings.Contains(err.Error(), EvidenceFile) {
			t.Fatalf("evidence.jsonl: error %q does not name the file", err)
		}
		if _, err := ReadTimeline(dir); err != nil && !strings.Contains(err.Error(), TimelineFile) {
			t.Fatalf("timeline.jsonl: error %q does not name the file", err)
		}
	})
}

func bytesReader(b []byte) io.Reader { return strings.NewReader(string(b)) }

func TestParseRequestsMode(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want "" for an error
		all      bool
	}{
		{"", "all", true},
		{"all", "all", true},
		{" off ", "off", false},
		{"sample:0.01", "sample:0.01", false},
		{"sample:1%", "sample:0.01", false},
		{"sample:25%", "sample:0.25", false},
		{"sample:1", "all", true},
		{"sample:0", "", false},
		{"sample:1.5", "", false},
		{"sample:-0.1", "", false},
		{"sample:NaN", "", false},
		{"sample:", "", false},
		{"some", "", false},
		{"ALL", "", false},
	} {
		m, err := ParseRequestsMode(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("ParseRequestsMode(%q) = %v, want an error", tc.in, m)
			} else if !strings.Contains(err.Error(), "requests.csv") {
				t.Errorf("ParseRequestsMode(%q): error %q does not name requests.csv", tc.in, err)
			}
			continue
		}
		if err != nil || m.String() != tc.want || m.All() != tc.all {
			t.Errorf("ParseRequestsMode(%q) = %v (all %v), %v; want %s (all %v)", tc.in, m, m.All(), err, tc.want, tc.all)
		}
		if back, err := ParseRequestsMode(m.String()); err != nil || back != m {
			t.Errorf("%q does not read back: %v, %v", m.String(), back, err)
		}
	}
}

// TestSecretsMasked: the request writer masks reasons (by pattern and by
// its values), and the readers mask what a run directory written otherwise
// holds: reasons, evidence and samples.
func TestSecretsMasked(t *testing.T) {
	dir := t.TempDir()
	w, err := NewRequestWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	w.Secrets = secret.New("kayu-ahsp-2005")
	r := stampede.Result{Start: time.UnixMicro(1), User: 1, Name: "login", Method: "POST", Status: 200, Outcome: stampede.FailContent,
		Reason: "login page returned: Wrong password kayu-ahsp-2005"}
	for range 2 { // the second write takes the cached mask
		if err := w.Write(&r); err != nil {
			t.Fatal(err)
		}
	}
	if r.Reason != "login page returned: Wrong password kayu-ahsp-2005" {
		t.Errorf("Write changed its argument: %q", r.Reason)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(filepath.Join(dir, RequestsFile), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("1,1,/,GET,0,5,0,0,0,transport,\"Get \"\"http://h/?token=abc123\"\": connection refused\",\n")
	f.Close()
	os.WriteFile(filepath.Join(dir, EvidenceFile), []byte(`{"t":"2026-01-01T00:00:00Z","source":"app","message":"Cookie: sessionid=S6","fields":{"csrftoken":"C5"},"ref":"a.log:1"}`+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, TimelineFile), []byte(`{"t":"2026-01-01T00:00:00Z","source":"postgres","error":"dial postgres://app:dbpw@h/db: refused","info":{"x":"password=dbpw"}}`+"\n"), 0o644)
	var reasons []string
	if err := ReadRequests(dir, func(r *stampede.Result) error { reasons = append(reasons, r.Reason); return nil }); err != nil {
		t.Fatal(err)
	}
	evs, err := ReadEvidence(dir)
	if err != nil {
		t.Fatal(err)
	}
	tl, err := ReadTimeline(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(reasons, "\n") + "\n" + evs[0].Message + " " + evs[0].Fields["csrftoken"] + "\n" + tl[0].Err + " " + tl[0].Info["x"]
	for _, s := range []string{"kayu-ahsp-2005", "abc123", "S6", "C5", "dbpw"} {
		if strings.Contains(got, s) {
			t.Errorf("%q read back:\n%s", s, got)
		}
	}
	if want := "login page returned: Wrong password xxxxx"; reasons[0] != want || reasons[1] != want {
		t.Errorf("reasons %q, want %q twice", reasons, want)
	}
}
