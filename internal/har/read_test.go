package har

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestHostile reads every file of testdata/hostile: each is read as far as
// it is valid, or is an error naming where (line, column and JSON path);
// none crashes or hangs.
func TestHARHostile(t *testing.T) {
	cases := []struct {
		file string
		// want is a part of the error; "" means it reads, with warn a part
		// of a warning when set.
		want    string
		pos     string // "line:col" the error names, when the file has one to name
		warn    string
		entries int
	}{
		{file: "empty.har", want: "empty: want a HAR recording"},
		{file: "html-page.har", want: "not JSON, so not a HAR recording", pos: "1:1"},
		{file: "truncated.har", want: "log.entries[1]: the file ends in the middle of the recording"},
		{file: "url-number.har", want: "log.entries[1].request.url: want a string, got number", pos: "15:47"},
		{file: "header-value-object.har", want: "log.entries[0].request.headers[1].value: want a string, got object"},
		{file: "status-string.har", want: "log.entries[0].response.status: want a number, got string"},
		{file: "entries-object.har", want: "log.entries: want an array, got an object"},
		{file: "log-array.har", want: "log: want an object, got an array", pos: "1:9"},
		{file: "no-log.har", want: `not a HAR recording: the object has no "log"`},
		{file: "no-entries.har", want: `log: no "entries"`},
		{file: "top-array.har", want: "want a HAR recording (a JSON object with log.entries), got an array"},
		{file: "bad-url.har", want: `log.entries[0].request.url: "::not a url::" is not a URL`},
		{file: "missing-url.har", want: "log.entries[0].request.url: missing"},
		{file: "trailing-garbage.har", want: "more data after the recording's closing brace", pos: "2:1"},
		{file: "deep-nesting.har", want: "log.entries[0]"},
		{file: "invalid-base64.har", entries: 2, warn: "log.entries[0].response.content.text: invalid base64: body left out"},
		{file: "odd-strings.har", want: "not valid JSON"},
		{file: "bom.har", entries: 1},
		{file: "nulls.har", entries: 1},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", "hostile", tc.file)
			done := make(chan struct{})
			var l *Log
			var err error
			go func() {
				defer close(done)
				l, err = ReadFile(path, nil)
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("ReadFile hangs")
			}
			if tc.want == "" {
				if err != nil {
					t.Fatalf("ReadFile: %v", err)
				}
				if len(l.Entries) != tc.entries {
					t.Errorf("entries = %d, want %d", len(l.Entries), tc.entries)
				}
				if tc.warn != "" && !strings.Contains(strings.Join(l.Warnings, "\n"), tc.warn) {
					t.Errorf("warnings %q, want one containing %q", l.Warnings, tc.warn)
				}
				return
			}
			if err == nil {
				t.Fatalf("ReadFile: no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), path+":") {
				t.Errorf("error %q does not start with the file's name", err)
			}
			var he *Error
			if !errors.As(err, &he) {
				t.Fatalf("error %T, want *har.Error", err)
			}
			if tc.pos != "" {
				if got := fmt.Sprintf("%d:%d", he.Line, he.Col); got != tc.pos {
					t.Errorf("position %s, want %s (%v)", got, tc.pos, err)
				}
			}
		})
	}
}

// TestReadDirectory: a directory is named as such, not read.
func TestHARReadDirectory(t *testing.T) {
	_, err := ReadFile(t.TempDir(), nil)
	if err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("error %v, want is a directory", err)
	}
}

// TestHugeBodies reads a recording of 100 MB whose bodies are large
// images, scripts and HTML pages, in bounded memory: the live heap stays
// far under the file's size, and the text bodies past the budget are
// left out with a warning.
func TestHARHugeBodies(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 100 MB file")
	}
	path := filepath.Join(t.TempDir(), "huge.har")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	img := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x89, 'P', 'N', 'G', 0, 1, 2, 3}, 96<<10)) // 1 MB of base64
	page := strings.Repeat("<p>row</p>", 100<<10)                                                           // 1 MB of HTML
	fmt.Fprint(w, `{"log": {"version": "1.2", "creator": {"name": "test", "version": "1"}, "entries": [`)
	n := 0
	for size := 0; size < 100<<20; n++ {
		if n > 0 {
			w.WriteString(",\n")
		}
		mt, text, enc := "image/png", img, "base64"
		if n%3 == 0 {
			mt, text, enc = "text/html", page, ""
		}
		e := fmt.Sprintf(`{"startedDateTime": "2026-11-20T10:%02d:%02d.000Z", "time": 5, "request": {"method": "GET", "url": "https://shop.example.test/p/%d", "headers": []}, "response": {"status": 200, "headers": [], "content": {"size": %d, "mimeType": %q, "text": %q, "encoding": %q}}}`,
			(n/60)%60, n%60, n, len(text), mt, text, enc)
		size += len(e)
		w.WriteString(e)
	}
	w.WriteString("]}}\n")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()

	runtime.GC()
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	l, err := ReadFile(path, &ReadOptions{MaxBody: 1 << 20, MaxBodies: 16 << 20})
	close(stop)
	<-sampled
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Entries) != n {
		t.Fatalf("entries = %d, want %d", len(l.Entries), n)
	}
	kept := 0
	for _, e := range l.Entries {
		kept += len(e.Response.Body)
		if e.Response.MimeType == "image/png" && (e.Response.Body != nil || e.Response.BodyLeftOut != "binary") {
			t.Fatalf("%s: an image's body kept (%q)", e.Path(), e.Response.BodyLeftOut)
		}
	}
	if kept > 16<<20 {
		t.Errorf("kept %d bytes of bodies, over the 16 MiB budget", kept)
	}
	if !strings.Contains(strings.Join(l.Warnings, "\n"), "this and later bodies left out") {
		t.Errorf("no warning about the budget: %q", l.Warnings)
	}
	t.Logf("%d entries, %d MB of bodies kept, peak heap in use %d MB", n, kept>>20, peak.Load()>>20)
	if peak.Load() > 60<<20 {
		t.Errorf("peak heap %d MB reading a 100 MB recording: want under 60 MB", peak.Load()>>20)
	}
}

// TestReadOrderAndTimes: entries are sorted by their start, stably; an
// entry without a start stays after the one before it in the file; -1
// timings and sizes are unknown, not negative.
func TestHARReadOrderAndTimes(t *testing.T) {
	const doc = `{"log": {"version": "1.2", "entries": [
	{"startedDateTime": "2026-11-20T10:00:02.000Z", "time": 5, "request": {"method": "GET", "url": "https://a.test/c"}, "response": {"status": 200, "content": {"size": -1}}},
	{"startedDateTime": "2026-11-20T11:00:00.5+01:00", "time": -1, "request": {"method": "GET", "url": "https://a.test/a"}, "response": {"status": 200}},
	{"startedDateTime": "", "request": {"method": "GET", "url": "https://a.test/a2"}, "response": {"status": 200}},
	{"startedDateTime": "2026-11-20T10:00:01.0000001Z", "request": {"method": "GET", "url": "https://a.test/b"}, "response": {"status": 200}}
	]}}`
	l, err := Read(strings.NewReader(doc), nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range l.Entries {
		got = append(got, e.Request.URL.Path)
	}
	if want := "/a /a2 /b /c"; strings.Join(got, " ") != want {
		t.Errorf("order %q, want %q", strings.Join(got, " "), want)
	}
	if l.Entries[0].Time != -1 {
		t.Errorf("time -1 read as %v", l.Entries[0].Time)
	}
	if l.Entries[3].Response.Size != -1 || l.Entries[3].Time != 5*time.Millisecond {
		t.Errorf("size %d time %v, want -1 and 5ms", l.Entries[3].Response.Size, l.Entries[3].Time)
	}
}

// TestReadHeadersAndBodies: HTTP/2 pseudo-headers are dropped, joined
// Set-Cookie lines split, base64 bodies decoded, multipart and JSON bodies
// read.
func TestHARReadHeadersAndBodies(t *testing.T) {
	const doc = `{"log": {"version": "1.2", "entries": [
	{"startedDateTime": "2026-11-20T10:00:00Z", "_resourceType": "Document", "_initiator": {"type": "other"},
	 "request": {"method": "POST", "url": "https://a.test/upload", "headers": [{"name": ":method", "value": "POST"}, {"name": ":authority", "value": "a.test"}, {"name": "content-type", "value": "multipart/form-data; boundary=XYZ"}],
	   "postData": {"mimeType": "multipart/form-data; boundary=XYZ", "text": "--XYZ\r\nContent-Disposition: form-data; name=\"token\"\r\n\r\nabc123\r\n--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--XYZ--\r\n"}},
	 "response": {"status": 302, "headers": [{"name": "set-cookie", "value": "a=1; Path=/\nb=2; HttpOnly"}, {"name": "location", "value": "/done/"}],
	   "content": {"size": 11, "mimeType": "text/html; charset=utf-8", "text": "PGI+b2s8L2I+", "encoding": "base64"}, "redirectURL": ""}},
	{"startedDateTime": "2026-11-20T10:00:01Z", "_resourceType": "fetch", "_initiator": "script",
	 "request": {"method": "POST", "url": "https://a.test/api", "headers": [{"name": "Content-Type", "value": "application/json"}], "postData": {"mimeType": "application/json", "text": "{\"user\": {\"id\": 7, \"tags\": [\"x\"]}, \"ok\": true}"}},
	 "response": {"status": 200, "content": {"mimeType": "image/png", "text": "iVBORw0KGgo=", "encoding": "base64"}}}
	]}}`
	l, err := Read(strings.NewReader(doc), nil)
	if err != nil {
		t.Fatal(err)
	}
	e := l.Entries[0]
	if e.Request.Headers.Get(":method") != "" || e.Request.Headers.Get(":authority") != "" || len(e.Request.Headers) != 1 {
		t.Errorf("headers %v: pseudo-headers kept", e.Request.Headers)
	}
	if e.ResourceType != "document" || e.Initiator != "other" {
		t.Errorf("resource type %q initiator %q", e.ResourceType, e.Initiator)
	}
	if len(e.Response.Cookies) != 2 || e.Response.Cookies[1].Name != "b" || !e.Response.Cookies[1].HTTPOnly {
		t.Errorf("cookies %+v", e.Response.Cookies)
	}
	if string(e.Response.Body) != "<b>ok</b>" || e.Response.MimeType != "text/html" {
		t.Errorf("body %q type %q", e.Response.Body, e.Response.MimeType)
	}
	if e.Response.RedirectURL != "https://a.test/done/" {
		t.Errorf("redirect %q", e.Response.RedirectURL)
	}
	got := fmt.Sprint(e.Request.Body.Fields())
	if want := "[{token abc123  } {file hello a.txt text/plain}]"; got != want {
		t.Errorf("multipart fields %s, want %s", got, want)
	}
	var sent []string
	for _, s := range l.Entries[1].SentValues() {
		if s.Where == InJSON {
			sent = append(sent, s.Name+"="+s.Value)
		}
	}
	if got, want := strings.Join(sent, " "), "ok=true user.id=7 user.tags[0]=x"; got != want {
		t.Errorf("JSON values %q, want %q", got, want)
	}
	if l.Entries[1].Initiator != "script" || l.Entries[1].Response.Body != nil || l.Entries[1].Response.BodyLeftOut != "binary" {
		t.Errorf("entry 1: initiator %q body %q (%s)", l.Entries[1].Initiator, l.Entries[1].Response.Body, l.Entries[1].Response.BodyLeftOut)
	}
}

// FuzzReadHAR feeds the reader anything: it returns a log or an error,
// never panics, and an error names a position in the input.
func FuzzReadHAR(f *testing.F) {
	for _, dir := range []string{"testdata/hostile", "testdata/tools"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.har"))
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil && len(b) < 64<<10 {
				f.Add(b)
			}
		}
	}
	f.Add([]byte(`{"log":{"entries":[{"request":{"url":"http://a/","postData":{"mimeType":"multipart/form-data; boundary=b","text":"--b\r\n"}},"response":{"content":{"text":"=","encoding":"base64"}}}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := Read(bytes.NewReader(data), &ReadOptions{MaxBody: 1 << 16, MaxBodies: 1 << 20})
		if err != nil {
			var he *Error
			if !errors.As(err, &he) {
				t.Fatalf("error %T (%v), want *har.Error", err, err)
			}
			if he.Offset > int64(len(data))+3 {
				t.Fatalf("error at byte %d of %d: %v", he.Offset, len(data), err)
			}
			return
		}
		for _, e := range l.Entries {
			_ = e.SentValues()
			_ = IsDocument(e)
			_ = e.Request.Body.Fields()
		}
		_, _ = Convert(l, Options{})
	})
}
