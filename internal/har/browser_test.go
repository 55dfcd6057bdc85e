package har

import (
	"bytes"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stampede-load/stampede/internal/session"
)

// browser drives a served application as a person's browser would, through
// a Recorder: pages are documents, the page's script makes xhr requests,
// and forms are submitted with their hidden fields. Time is advanced by
// hand so the recording has think time between pages.
type browser struct {
	t      *testing.T
	rec    *Recorder
	client *http.Client
	last   *http.Response
	body   []byte
	url    *url.URL
	clock  time.Time
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	rec := &Recorder{}
	return &browser{t: t, rec: rec, client: &http.Client{Jar: jar, Transport: rec, Timeout: 10 * time.Second}}
}

// open loads a page (following redirects, as a browser does).
func (b *browser) open(method, raw string, form url.Values) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.resolve(raw), body)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	req.Header.Set("Sec-Fetch-Dest", "document")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) test")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	b.do(req)
}

// submit fills the page's form (the one with a password field, else the
// only one, else selector's) and submits it.
func (b *browser) submit(selector string, fill map[string]string) {
	b.t.Helper()
	f, err := session.FindForm(b.body, b.url, selector)
	if err != nil {
		b.t.Fatalf("submit on %s: %v", b.url, err)
	}
	b.open(f.Method, f.Action, f.Values(fill))
}

// xhr makes a request from the page's script.
func (b *browser) xhr(method, raw, contentType, body string, header map[string]string) []byte {
	b.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, b.resolve(raw), rd)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json, text/plain, */*")
	req.Header.Set("Sec-Fetch-Dest", "empty")
	req.Header.Set("Sec-Fetch-Mode", "cors")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	saveBody, saveURL := b.body, b.url
	b.do(req)
	got := b.body
	b.body, b.url = saveBody, saveURL
	return got
}

// think waits, on the recording's clock.
func (b *browser) think(d time.Duration) { b.clock = b.clock.Add(d) }

func (b *browser) do(req *http.Request) {
	b.t.Helper()
	n := len(b.rec.Log().Entries)
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b.body, _ = io.ReadAll(resp.Body)
	b.url = resp.Request.URL
	b.last = resp
	// Stamp the new entries on the browser's clock: 50 ms apart.
	for _, e := range b.rec.Log().Entries[n:] {
		if b.clock.IsZero() {
			b.clock = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
		}
		e.Started = b.clock
		e.Time = 40 * time.Millisecond
		b.clock = b.clock.Add(50 * time.Millisecond)
	}
}

func (b *browser) resolve(raw string) string {
	if b.url == nil {
		return raw
	}
	u, err := b.url.Parse(raw)
	if err != nil {
		b.t.Fatal(err)
	}
	return u.String()
}

// cookie returns a cookie's value as the page's script reads it.
func (b *browser) cookie(name string) string {
	for _, c := range b.client.Jar.Cookies(b.url) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// recording writes the recording as HAR and reads it back, as stampede
// har would read a file.
func (b *browser) recording() *Log {
	b.t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, b.rec.Log()); err != nil {
		b.t.Fatal(err)
	}
	l, err := Read(bytes.NewReader(buf.Bytes()), nil)
	if err != nil {
		b.t.Fatalf("read back: %v\n%s", err, buf.String())
	}
	return l
}
