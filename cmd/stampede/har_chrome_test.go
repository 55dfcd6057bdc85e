package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/stampede-load/stampede/internal/har"
)

// chromiumPath finds the Chromium the recordings are made with:
// $STAMPEDE_CHROMIUM, else chromium on the PATH.
func chromiumPath() string {
	if p := os.Getenv("STAMPEDE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// chromeRecording records what a real Chromium sends and gets through the
// DevTools protocol, as its network panel does (Network.requestWillBeSent,
// responseReceived, loadingFinished, the ExtraInfo events with the headers
// as sent and received, Cookie and Set-Cookie included, and
// getResponseBody), and writes it as HAR 1.2.
type chromeRecording struct {
	ctx context.Context

	mu    sync.Mutex
	hops  map[network.RequestID][]*chromeHop
	order []network.RequestID
	// The ExtraInfo events of a request, one per hop (a redirect is a
	// hop), in the order they came: matched to the hops by position.
	reqExtra  map[network.RequestID][]network.Headers
	respExtra map[network.RequestID][]network.Headers
	bodies    sync.WaitGroup
}

type chromeHop struct {
	sent     *network.EventRequestWillBeSent
	resp     *network.Response
	typ      network.ResourceType
	finished float64 // monotonic seconds; 0 until the hop ends
	failed   bool
	body     []byte
	postData []byte
}

// startChromeRecording listens to the network events of ctx's tab.
func startChromeRecording(ctx context.Context) (*chromeRecording, error) {
	r := &chromeRecording{ctx: ctx, hops: map[network.RequestID][]*chromeHop{},
		reqExtra: map[network.RequestID][]network.Headers{}, respExtra: map[network.RequestID][]network.Headers{}}
	err := chromedp.Listen(ctx, func(ev any) {
		r.mu.Lock()
		defer r.mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			hs := r.hops[e.RequestID]
			if e.RedirectResponse != nil && len(hs) > 0 {
				last := hs[len(hs)-1]
				last.resp, last.finished = e.RedirectResponse, float64(e.Timestamp)
			}
			if len(hs) == 0 {
				r.order = append(r.order, e.RequestID)
			}
			h := &chromeHop{sent: e, typ: e.Type}
			for _, p := range e.Request.PostDataEntries {
				h.postData = append(h.postData, p.Bytes...)
			}
			r.hops[e.RequestID] = append(hs, h)
		case *network.EventResponseReceived:
			if h := r.last(e.RequestID); h != nil {
				h.resp, h.typ = e.Response, e.Type
			}
		case *network.EventLoadingFinished:
			if h := r.last(e.RequestID); h != nil {
				h.finished = float64(e.Timestamp)
				id := e.RequestID
				// The body is asked for on another goroutine: a command
				// may not run in the listener.
				r.bodies.Add(1)
				go func() {
					defer r.bodies.Done()
					res, err := chromedp.Call(ctx, network.GetResponseBody, network.GetResponseBodyParams{RequestID: id})
					if err == nil {
						r.mu.Lock()
						h.body = res.Body
						r.mu.Unlock()
					}
				}()
			}
		case *network.EventLoadingFailed:
			if h := r.last(e.RequestID); h != nil {
				h.failed = true
			}
		case *network.EventRequestWillBeSentExtraInfo:
			r.reqExtra[e.RequestID] = append(r.reqExtra[e.RequestID], e.Headers)
		case *network.EventResponseReceivedExtraInfo:
			r.respExtra[e.RequestID] = append(r.respExtra[e.RequestID], e.Headers)
		}
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (r *chromeRecording) last(id network.RequestID) *chromeHop {
	hs := r.hops[id]
	if len(hs) == 0 {
		return nil
	}
	return hs[len(hs)-1]
}

// log waits for the bodies asked for and returns the recording.
func (r *chromeRecording) log(browserVersion string) *har.Log {
	r.bodies.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	l := &har.Log{Version: "1.2", Creator: har.Creator{Name: "stampede chromedp recorder", Version: "1"},
		Browser: har.Creator{Name: "Chromium", Version: browserVersion}}
	for _, id := range r.order {
		for i, h := range r.hops[id] {
			if h.resp == nil || h.failed {
				continue
			}
			e := r.entry(id, i, h)
			if e != nil {
				l.Entries = append(l.Entries, e)
			}
		}
	}
	sort.SliceStable(l.Entries, func(i, j int) bool { return l.Entries[i].Started.Before(l.Entries[j].Started) })
	for i, e := range l.Entries {
		e.Index = i
	}
	return l
}

func (r *chromeRecording) entry(id network.RequestID, i int, h *chromeHop) *har.Entry {
	rq := h.sent.Request
	u, err := url.Parse(rq.URL)
	if err != nil {
		return nil
	}
	reqH := h.sent.Request.Headers
	if ex := r.reqExtra[id]; i < len(ex) {
		reqH = ex[i]
	}
	respH := h.resp.Headers
	if ex := r.respExtra[id]; i < len(ex) {
		respH = ex[i]
	}
	e := &har.Entry{Started: wallTime(h.sent.WallTime), Time: -1, ResourceType: strings.ToLower(string(h.typ)), ServerIP: h.resp.RemoteIPAddress}
	if h.finished > 0 {
		start := float64(h.sent.Timestamp)
		e.Time = time.Duration((h.finished - start) * float64(time.Second))
	}
	if in := h.sent.Initiator; in != nil {
		e.Initiator, e.InitiatorURL = string(in.Type), in.URL
	}
	e.Request = har.Request{Method: rq.Method, URL: u, HTTPVersion: "HTTP/1.1", Headers: headerOf(reqH)}
	for _, line := range e.Request.Headers.Values("Cookie") {
		if cs, err := http.ParseCookie(line); err == nil {
			for _, c := range cs {
				e.Request.Cookies = append(e.Request.Cookies, har.Cookie{Name: c.Name, Value: c.Value})
			}
		}
	}
	if len(h.postData) > 0 {
		e.Request.Body = &har.Body{MimeType: e.Request.Headers.Get("Content-Type"), Text: string(h.postData)}
	}
	rs := h.resp
	e.Response = har.Response{Status: int(rs.Status), StatusText: rs.StatusText, HTTPVersion: "HTTP/1.1", Headers: headerOf(respH),
		MimeType: rs.MimeType, Body: h.body, Size: int64(len(h.body))}
	for _, line := range e.Response.Headers.Values("Set-Cookie") {
		if c, err := http.ParseSetCookie(line); err == nil {
			e.Response.Cookies = append(e.Response.Cookies, har.Cookie{Name: c.Name, Value: c.Value, Path: c.Path, Domain: c.Domain, HTTPOnly: c.HttpOnly, Secure: c.Secure})
		}
	}
	if loc := e.Response.Headers.Get("Location"); loc != "" {
		if lu, err := u.Parse(loc); err == nil {
			e.Response.RedirectURL = lu.String()
		}
	}
	return e
}

// headerOf converts DevTools' headers (a duplicate header's values joined
// with newlines) to an http.Header.
func headerOf(h network.Headers) http.Header {
	out := http.Header{}
	for k, v := range h {
		for _, line := range strings.Split(fmt.Sprint(v), "\n") {
			out.Add(k, line)
		}
	}
	return out
}

// recordVisit starts a headless Chromium, runs the visit in its tab with
// the network recorded, and writes the recording to path.
func recordVisit(t *testing.T, path string, visit func(ctx context.Context) error) *har.Log {
	t.Helper()
	bin := chromiumPath()
	if bin == "" {
		t.Fatal("chromium not found (apt-get install chromium, or set STAMPEDE_CHROMIUM)")
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.WindowSize(1280, 900))...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	ctx, cancel := context.WithTimeout(bctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	rec, err := startChromeRecording(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := visit(ctx); err != nil {
		t.Fatalf("visit: %v", err)
	}
	// Let the last responses' events and bodies arrive.
	if err := chromedp.Do(ctx, chromedp.Sleep(time.Second)); err != nil {
		t.Fatal(err)
	}
	version := ""
	if out, err := exec.Command(bin, "--version").Output(); err == nil {
		version = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "Chromium"))
	}
	l := rec.log(version)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := har.Write(f, l); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %d entries to %s", len(l.Entries), path)
	return l
}

func wallTime(t cdp.TimeSinceEpoch) time.Time {
	sec := float64(t)
	return time.Unix(0, int64(sec*1e9)).UTC()
}
