package evidence

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stampede-load/stampede"
)

func TestAccessTime(t *testing.T) {
	tests := []struct {
		name, line       string // the text after the stamp
		server, upstream string // "" when absent
	}{
		{"gunicorn %(L)s", `"GET / HTTP/1.1" 200 6 "-" "curl/7.88.1" 0.005863`, "5.863", ""},
		{"nginx request_time last", `"GET / HTTP/1.1" 200 6 "-" "k6" 0.052`, "52", ""},
		{"nginx pairs", `"GET / HTTP/1.1" 200 6 "-" "k6" rt=0.231 uct="0.000" uht="0.229" urt="0.229"`, "231", "229"},
		{"nginx long names", `"GET / HTTP/1.1" 200 6 request_time=1.5 upstream_response_time=1.25`, "1500", "1250"},
		{"nginx upstream attempts", `"GET / HTTP/1.1" 502 6 rt=0.2 urt="0.100, 0.050 : 0.025"`, "200", "175"},
		{"nginx no upstream", `"GET / HTTP/1.1" 499 0 rt=0.2 urt="-"`, "200", ""},
		{"unquoted upstream list", `"GET / HTTP/1.1" 200 6 rt=0.2 urt=0.1, 0.05`, "200", "100"},
		{"morgan ms", `"GET / HTTP/1.1" 200 6 "-" "curl" 4.567 ms`, "4.567", ""},
		{"ms suffix", `"GET / HTTP/1.1" 200 6 "-" "curl" 12.3ms`, "12.3", ""},
		{"integer ms", `"GET / HTTP/1.1" 200 6 "-" "curl" 12 ms`, "12", ""},
		{"duration_ms", `"GET / HTTP/1.1" 200 6 duration_ms=87.5`, "87.5", ""},
		{"response_time_ms", `"GET / HTTP/1.1" 200 6 response_time_ms="3"`, "3", ""},
		{"integer without unit", `"GET / HTTP/1.1" 200 6 "-" "curl" 153`, "", ""},
		{"inside the user agent", `"GET / HTTP/1.1" 200 6 "-" "curl 1.5"`, "", ""},
		{"no tail", `"GET / HTTP/1.1" 200 6`, "", ""},
		{"bytes are not a time", `"GET / HTTP/1.1" 200 0.5`, "500", ""},
		{"signed", `"GET / HTTP/1.1" 200 6 -0.5`, "", ""},
		{"exponent", `"GET / HTTP/1.1" 200 6 1e3`, "", ""},
		{"absurd", `"GET / HTTP/1.1" 200 6 rt=999999999.0`, "", ""},
		{"rt beats the last field", `"GET / HTTP/1.1" 200 6 rt=0.1 0.9`, "100", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fields, tail, ok := parseRequestTail(tt.line, nil)
			if !ok {
				t.Fatalf("not a request line")
			}
			if i := strings.IndexByte(tt.line, '='); i >= 0 {
				fields = parseKV(tt.line, fields)
			}
			rt := accessTime(fields, tail)
			got := func(v float64, ok bool) string {
				if !ok {
					return ""
				}
				return fmtMS(v)
			}
			if s := got(rt.server, rt.hasServer); s != tt.server {
				t.Errorf("server = %q, want %q", s, tt.server)
			}
			if s := got(rt.upstream, rt.hasUp); s != tt.upstream {
				t.Errorf("upstream = %q, want %q", s, tt.upstream)
			}
		})
	}
}

func TestNormPath(t *testing.T) {
	for in, want := range map[string]string{
		"/items/42?page=2": "/items/:id",
		"/items/0b9f1c2e-6d1a-4c1e-9f3a-2b7c8d9e0f11/edit": "/items/:id/edit",
		"/items/0B9F1C2E6D1A4C1E9F3A2B7C8D9E0F11":          "/items/:id",
		"/items/0b9f1c2e-6d1a-4c1e-9f3a-2b7c8d9e0f1x":      "/items/0b9f1c2e-6d1a-4c1e-9f3a-2b7c8d9e0f1x",
		"/v2/users/7/orders/2026":                          "/v2/users/:id/orders/:id",
		"/accounts/login/":                                 "/accounts/login/",
		"/a/b#frag":                                        "/a/b",
		"":                                                 "/",
		"?x=1":                                             "/",
		"http://example.com/x/1?y":                         "/x/:id",
		"https://example.com":                              "/",
		"*":                                                "*",
		"/" + strings.Repeat("a", 300):                     "/" + strings.Repeat("a", maxTimingPath-1),
		"/" + strings.Repeat("a", maxTimingPath-6) + "/123456789": "/" + strings.Repeat("a", maxTimingPath-6) + "/:id",
	} {
		if got := normPath(in); got != want {
			t.Errorf("normPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func buckets(a *Timings) []*timingBucket {
	var out []*timingBucket
	for _, ts := range a.seconds {
		for _, b := range ts.byKey {
			out = append(out, b)
		}
	}
	return out
}

func addLine(a *Timings, sec int64, line int, method, path, status string, ms float64) {
	a.add(time.Unix(sec, 0).UTC(), line, method, path, status, reqTiming{server: ms, hasServer: true})
}

// TestTimingsDue: a bucket is emitted by the second Due without new lines,
// or at once when the log has moved 30 s past it; a late line starts a new
// bucket; Flush empties the rest.
func TestTimingsDue(t *testing.T) {
	a := NewTimings("access", "access.log")
	addLine(a, 100, 1, "GET", "/a/1", "200", 10)
	addLine(a, 100, 2, "GET", "/a/2", "503", 30)
	addLine(a, 100, 3, "POST", "/a/2", "200", 5)
	if evs := a.Due(); len(evs) != 0 {
		t.Fatalf("first Due: %v", evs)
	}
	addLine(a, 101, 4, "GET", "/b", "200", 1)
	evs := a.Due()
	if len(evs) != 2 {
		t.Fatalf("second Due: got %d events, want the 2 buckets of second 100: %v", len(evs), evs)
	}
	get := evs[0]
	want := map[string]string{
		"method": "GET", "path": "/a/:id", "count": "2", "server_ms_p50": "10", "server_ms_p95": "30",
		"server_ms_max": "30", "server_ms_sum": "40", "status_5xx": "1", "status_4xx": "0",
	}
	for k, w := range want {
		if get.Fields[k] != w {
			t.Errorf("%s = %q, want %q (%v)", k, get.Fields[k], w, get.Fields)
		}
	}
	if get.Signature != SignatureAccessTiming || get.Class != "" || get.Ref != "access.log:1" || !get.Time.Equal(time.Unix(100, 0)) || get.Source != "access" {
		t.Errorf("event: %+v", get)
	}
	if evs[1].Fields["method"] != "POST" || evs[1].Ref != "access.log:3" {
		t.Errorf("second event: %+v", evs[1])
	}
	// A late line for second 100 and a line 31 s later: the new bucket
	// of second 100 is due at once (window), 101 by the quiet rule.
	addLine(a, 100, 5, "GET", "/a/3", "200", 7)
	addLine(a, 131, 6, "GET", "/b", "200", 1)
	evs = a.Due()
	if len(evs) != 2 || evs[0].Fields["count"] != "1" || evs[0].Ref != "access.log:5" || evs[1].Ref != "access.log:4" {
		t.Fatalf("late line: %v", evs)
	}
	if evs := a.Flush(); len(evs) != 1 || evs[0].Ref != "access.log:6" {
		t.Fatalf("Flush: %v", evs)
	}
	if evs := a.Flush(); evs != nil {
		t.Fatalf("second Flush: %v", evs)
	}
}

// TestTimingsCap: beyond MaxTimingPaths distinct paths in a second, lines
// are counted under "other"; the next second has its own cap.
func TestTimingsCap(t *testing.T) {
	a := NewTimings("access", "access.log")
	for i := range MaxTimingPaths + 10 {
		addLine(a, 100, i+1, "GET", fmt.Sprintf("/p%d", i), "200", 1)
	}
	addLine(a, 100, 100, "GET", "/p0", "200", 1) // a known path still has its bucket
	addLine(a, 101, 101, "GET", "/p99", "200", 1)
	evs := a.Flush()
	counts := map[string]int{}
	for _, ev := range evs {
		n, _ := strconv.Atoi(ev.Fields["count"])
		counts[ev.Time.Format("05")+" "+ev.Fields["path"]] += n
	}
	if len(evs) != MaxTimingPaths+2 || counts["40 other"] != 10 || counts["40 /p0"] != 2 || counts["41 /p99"] != 1 {
		t.Errorf("%d events, counts %v", len(evs), counts)
	}
}

// TestTimingsReservoir: past maxTimingSamples the count, sum and max stay
// exact and the percentiles come from a uniform sample.
func TestTimingsReservoir(t *testing.T) {
	a := NewTimings("access", "access.log")
	n := 3 * maxTimingSamples
	for i := 1; i <= n; i++ {
		addLine(a, 100, i, "GET", "/", "200", float64(i))
	}
	for _, b := range buckets(a) {
		if len(b.ms) != maxTimingSamples {
			t.Errorf("kept %d samples", len(b.ms))
		}
	}
	ev := a.Flush()[0]
	p50, _ := strconv.ParseFloat(ev.Fields["server_ms_p50"], 64)
	p95, _ := strconv.ParseFloat(ev.Fields["server_ms_p95"], 64)
	if ev.Fields["count"] != strconv.Itoa(n) || ev.Fields["server_ms_max"] != strconv.Itoa(n) ||
		ev.Fields["server_ms_sum"] != strconv.Itoa(n*(n+1)/2) {
		t.Errorf("exact fields: %v", ev.Fields)
	}
	// A uniform sample of 10000 out of 1..30000: p50 near 15000, p95 near 28500.
	if p50 < 14000 || p50 > 16000 || p95 < 27500 || p95 > 29500 {
		t.Errorf("p50 %v, p95 %v: not a uniform sample", p50, p95)
	}
}

func TestRank(t *testing.T) {
	s := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for p, want := range map[int]float64{50: 5, 95: 10, 90: 9, 10: 1, 1: 1, 100: 10} {
		if got := rank(s, p); got != want {
			t.Errorf("rank(%d) = %v, want %v", p, got, want)
		}
	}
	if rank(nil, 50) != 0 || rank([]float64{3}, 95) != 3 {
		t.Error("rank of short lists")
	}
}

// TestWatchTimings: a busy access log becomes a few access-timing events,
// not one per line, and its 5xx lines are still emitted one by one.
func TestWatchTimings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []stampede.Evidence
	w, err := Watch(context.Background(), []Log{{"access", path}},
		WatchOptions{Poll: 10 * time.Millisecond, TimingInterval: 20 * time.Millisecond, Location: time.UTC},
		func(ev stampede.Evidence) {
			mu.Lock()
			got = append(got, ev)
			mu.Unlock()
		})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i := range 300 {
		status := 200
		if i%100 == 99 {
			status = 500
		}
		fmt.Fprintf(&b, "10.0.0.%d - - [11/Jan/2026:12:59:%02d +0000] \"GET /items/%d?x=1 HTTP/1.1\" %d 512 \"-\" \"k6\" 0.%03d\n",
			i%7, 17+i/100, i, status, 10+i%50)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		t.Fatal(err)
	}
	f.Close()
	count := func() (lines, timing, errs int) {
		mu.Lock()
		defer mu.Unlock()
		for _, ev := range got {
			if ev.Signature == SignatureAccessTiming {
				n, _ := strconv.Atoi(ev.Fields["count"])
				lines += n
				timing++
			} else {
				errs++
			}
		}
		return
	}
	// All three seconds come out without Close: the log has gone quiet.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if n, _, _ := count(); n == 300 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	lines, timing, errs := count()
	w.Close()
	if lines != 300 || timing != 3 || errs != 3 {
		t.Errorf("%d lines in %d access-timing events and %d others; want 300 in 3, and the 3 500s", lines, timing, errs)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, ev := range got {
		if ev.Signature == SignatureAccessTiming && (ev.Fields["path"] != "/items/:id" || ev.Fields["status_5xx"] != "1") {
			t.Errorf("timing: %+v", ev)
		}
		if ev.Signature != SignatureAccessTiming && ev.Fields["server_ms"] == "" {
			t.Errorf("5xx line without server_ms: %+v", ev)
		}
	}
}

// TestTimingFeedAllocs: with Timings set, a successful access line whose
// bucket exists costs no allocation (amortised).
func TestTimingFeedAllocs(t *testing.T) {
	p := NewParser("access", "access.log", nil, time.UTC)
	p.Timings = NewTimings("access", "access.log")
	lines := []string{
		"10.0.0.1 - - [11/Jan/2026:12:59:17 +0000] \"GET /items/42?page=2 HTTP/1.1\" 200 5120 \"-\" \"k6\" 0.012\n",
		"10.0.0.1 - - [11/Jan/2026:12:59:17 +0000] \"GET /items/43 HTTP/1.1\" 200 5120 \"-\" \"k6\" rt=0.231 urt=\"0.229\"\n",
		"10.0.0.1 - - [11/Jan/2026:12:59:17 +0000] \"GET /dashboard/ HTTP/1.1\" 200 5120 \"-\" \"k6\" 4.5 ms\n",
	}
	for i, l := range lines {
		p.Feed(l, i+1)
	}
	i := 0
	n := testing.AllocsPerRun(300, func() {
		p.Feed(lines[i%len(lines)], i)
		i++
	})
	if n != 0 {
		t.Errorf("Feed allocates %v times per access line", n)
	}
	if n := len(buckets(p.Timings)); n != 2 {
		t.Errorf("%d buckets, want 2", n)
	}
}

// FuzzAccessTiming checks the request-line, server-time and path parsers
// on arbitrary text.
func FuzzAccessTiming(f *testing.F) {
	f.Add(`"GET /items/42?page=2 HTTP/1.1" 200 6 "-" "curl/7.88.1" 0.005863`)
	f.Add(`"GET / HTTP/1.1" 502 6 rt=0.2 urt="0.100, 0.050 : 0.025"`)
	f.Add(`"POST /a/0b9f1c2e-6d1a-4c1e-9f3a-2b7c8d9e0f11 HTTP/1.1" 200 12 "-" "curl" 4.567 ms`)
	f.Add(`method=GET path=/x status=200 duration_ms=12.5`)
	f.Fuzz(func(t *testing.T, s string) {
		fields, tail, _ := parseRequestTail(s, nil)
		if !strings.HasSuffix(s, tail) {
			t.Fatalf("tail %q not a suffix", tail)
		}
		fields = parseKV(s, fields)
		rt := accessTime(fields, tail)
		for _, v := range []float64{rt.server, rt.upstream} {
			if v < 0 || v > 2*maxServerMS || v != v {
				t.Fatalf("time %v", v)
			}
		}
		p := normPath(s)
		if p == "" || len(p) > maxTimingPath+len(":id")*maxTimingPath || strings.ContainsAny(p, "?#") {
			t.Fatalf("normPath(%q) = %q", s, p)
		}
		a := NewTimings("f", "f.log")
		a.add(time.Unix(1, 0), 1, "GET", s, "500", reqTiming{server: rt.server, hasServer: true})
		if evs := a.Flush(); len(evs) != 1 || evs[0].Fields["count"] != "1" || evs[0].Fields["status_5xx"] != "1" {
			t.Fatalf("one line: %v", evs)
		}
	})
}
