package session

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/netip"
	"net/textproto"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stampede-load/stampede/internal/testserver"
)

func newUT(t testing.TB, o UserTransportOptions) *UserTransport {
	t.Helper()
	ut := NewUserTransport(o)
	t.Cleanup(ut.CloseIdleConnections)
	return ut
}

// idleConns returns the transport's idle connections.
func idleConns(ut *UserTransport) []*userConn {
	ut.mu.Lock()
	defer ut.mu.Unlock()
	return append([]*userConn(nil), ut.conns...)
}

// traceLog records the httptrace callbacks of requests.
type traceLog struct {
	mu                                 sync.Mutex
	connectStarts, connectDones        int
	tlsStarts, tlsDones                int
	wrote, firstByte, got1xx, putIdles int
	gotConns                           []httptrace.GotConnInfo
}

func (l *traceLog) with(ctx context.Context) context.Context {
	count := func(n *int) {
		l.mu.Lock()
		*n++
		l.mu.Unlock()
	}
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		ConnectStart:      func(_, _ string) { count(&l.connectStarts) },
		ConnectDone:       func(_, _ string, _ error) { count(&l.connectDones) },
		TLSHandshakeStart: func() { count(&l.tlsStarts) },
		TLSHandshakeDone:  func(tls.ConnectionState, error) { count(&l.tlsDones) },
		GotConn: func(i httptrace.GotConnInfo) {
			l.mu.Lock()
			l.gotConns = append(l.gotConns, i)
			l.mu.Unlock()
		},
		WroteRequest:         func(httptrace.WroteRequestInfo) { count(&l.wrote) },
		GotFirstResponseByte: func() { count(&l.firstByte) },
		Got1xxResponse:       func(int, textproto.MIMEHeader) error { count(&l.got1xx); return nil },
		PutIdleConn:          func(error) { count(&l.putIdles) },
	})
}

// reused lists GotConnInfo.Reused of the connections got.
func (l *traceLog) reused() []bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	var r []bool
	for _, i := range l.gotConns {
		r = append(r, i.Reused)
	}
	return r
}

// get sends a GET (or method) through ut and reads the whole body.
func get(t testing.TB, ctx context.Context, ut *UserTransport, method, u string) (*http.Response, string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ut.RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

func TestUserTransportKeepAlive(t *testing.T) {
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s ae=%q", r.Method, r.URL.Path, r.Header.Get("Accept-Encoding"))
	}))
	var conns atomic.Int32
	ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	ts.Start()
	defer ts.Close()
	ut := newUT(t, UserTransportOptions{})
	c := &http.Client{Transport: ut}
	for i := range 5 {
		var l traceLog
		req, _ := http.NewRequestWithContext(l.with(context.Background()), "GET", ts.URL+"/p"+strconv.Itoa(i), nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf(`GET /p%d ae=""`, i); err != nil || string(body) != want || resp.StatusCode != 200 || resp.Request != req {
			t.Fatalf("#%d: %d %q %v, want %q", i, resp.StatusCode, body, err, want)
		}
		if got := l.reused(); len(got) != 1 || got[0] != (i > 0) {
			t.Errorf("#%d: GotConn reused %v", i, got)
		}
		wantDials := 0
		if i == 0 {
			wantDials = 1
		}
		if l.connectStarts != wantDials || l.connectDones != wantDials || l.wrote != 1 || l.firstByte != 1 || l.putIdles != 1 {
			t.Errorf("#%d: trace %+v", i, &l)
		}
		if l.gotConns[0].WasIdle != (i > 0) || (i > 0 && l.gotConns[0].IdleTime <= 0) {
			t.Errorf("#%d: GotConn %+v", i, l.gotConns[0])
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 5 requests, want 1", n)
	}
}

// TestUserTransportBrowser runs session.Browser over the transport: a
// login with its cookies, and POSTs redirected by 302 (becomes a GET) and
// 307 (keeps its method and body).
func TestUserTransportBrowser(t *testing.T) {
	srv := testserver.New("s3cret")
	mux := http.NewServeMux()
	mux.Handle("/", srv)
	mux.HandleFunc("/r/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.PathValue("code"))
		io.Copy(io.Discard, r.Body)
		http.Redirect(w, r, "/echo", code)
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s", r.Method, b)
	})
	ts := httptest.NewUnstartedServer(mux)
	var conns atomic.Int32
	ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	ts.Start()
	defer ts.Close()
	ctx := context.Background()
	b := New(Options{Transport: newUT(t, UserTransportOptions{}), CookieRefused: func(CookieRefusal) {}})

	p, tm, err := b.Do(ctx, &Request{Method: "GET", URL: ts.URL + "/accounts/login/", KeepBody: true})
	if err != nil || p.Status != 200 || tm.Reused || tm.Connect <= 0 || tm.TTFB <= 0 {
		t.Fatalf("GET login: %d %+v %v", p.Status, tm, err)
	}
	f, err := FindForm(p.Body, p.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	v := f.Values(map[string]string{"login": "alice", "password": "s3cret"})
	p, tm, err = b.Do(ctx, &Request{Method: f.Method, URL: f.Action, Body: []byte(v.Encode()),
		ContentType: "application/x-www-form-urlencoded", KeepBody: true})
	if err != nil || p.URL.Path != "/dashboard/" || p.Status != 200 || len(p.Redirects) != 1 || !tm.Reused {
		t.Fatalf("POST login: %v %d %v %+v %v", p.URL, p.Status, p.Redirects, tm, err)
	}
	if _, ok := b.Cookie(p.URL, "sessionid"); !ok || srv.LoginOK.Load() != 1 || srv.Dashboards.Load() != 1 {
		t.Errorf("no session cookie, or the server saw %d logins and %d dashboards", srv.LoginOK.Load(), srv.Dashboards.Load())
	}

	for _, tc := range []struct{ code, want string }{
		{"302", "GET "},
		{"303", "GET "},
		{"307", "POST a=1&b=2"},
		{"308", "POST a=1&b=2"},
	} {
		p, _, err := b.Do(ctx, &Request{Method: "POST", URL: ts.URL + "/r/" + tc.code, Body: []byte("a=1&b=2"),
			ContentType: "application/x-www-form-urlencoded", KeepBody: true})
		if err != nil || p.Status != 200 || string(p.Body) != tc.want {
			t.Errorf("POST → %s: %d %q %v, want %q", tc.code, p.Status, p.Body, err, tc.want)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// TestUserTransportResponses checks the framings of responses and when
// the connection is kept, against a raw server. Each case sends two
// requests on one transport.
func TestUserTransportResponses(t *testing.T) {
	for _, tc := range []struct {
		name     string
		method   string
		reqClose bool
		resp     string
		max      int // responses per server connection, 0: no limit
		status   int
		body     string
		kept     bool
	}{
		{name: "content-length", resp: helloResp, status: 200, body: "hello world", kept: true},
		{name: "chunked", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
			status: 200, body: "hello world", kept: true},
		{name: "chunked trailer", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n",
			status: 200, body: "abc", kept: true},
		{name: "close-delimited", resp: "HTTP/1.1 200 OK\r\n\r\nhello world", max: 1, status: 200, body: "hello world"},
		{name: "empty", resp: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", status: 200, kept: true},
		{name: "HEAD", method: "HEAD", resp: "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n", status: 200, kept: true},
		{name: "204", resp: "HTTP/1.1 204 No Content\r\n\r\n", status: 204, kept: true},
		{name: "304", resp: "HTTP/1.1 304 Not Modified\r\nContent-Length: 11\r\n\r\n", status: 304, kept: true},
		{name: "100 continue", resp: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
			status: 200, body: "ok", kept: true},
		{name: "103 early hints", resp: "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n" + helloResp,
			status: 200, body: "hello world", kept: true},
		{name: "server close", resp: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbye", max: 1, status: 200, body: "bye"},
		{name: "HTTP/1.0", resp: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", max: 1, status: 200, body: "ok"},
		{name: "HTTP/1.0 keep-alive", resp: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
			status: 200, body: "ok", kept: true},
		{name: "request close", reqClose: true, resp: helloResp, status: 200, body: "hello world"},
		{name: "out of step", resp: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 200 OK\r\n\r\n", status: 200, body: "x"},
		{name: "404 with body", resp: "HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope", status: 404, body: "nope", kept: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, conns := rawServer(t, canned(tc.resp, tc.max))
			ut := newUT(t, UserTransportOptions{})
			method := tc.method
			if method == "" {
				method = "GET"
			}
			for i := range 2 {
				var l traceLog
				req, _ := http.NewRequestWithContext(l.with(context.Background()), method, u.String(), nil)
				req.Close = tc.reqClose
				resp, err := ut.RoundTrip(req)
				if err != nil {
					t.Fatalf("#%d: %v", i, err)
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != tc.status || string(body) != tc.body {
					t.Fatalf("#%d: %d %q %v, want %d %q", i, resp.StatusCode, body, err, tc.status, tc.body)
				}
				if got := l.reused(); len(got) != 1 || got[0] != (i == 1 && tc.kept) {
					t.Errorf("#%d: GotConn reused %v", i, got)
				}
				if n := len(idleConns(ut)); n != b2i(tc.kept) {
					t.Errorf("#%d: %d idle connections, kept %v", i, n, tc.kept)
				}
			}
			if want := 2 - b2i(tc.kept); int(conns.Load()) != want {
				t.Errorf("%d connections, want %d", conns.Load(), want)
			}
		})
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestUserTransportMalformed(t *testing.T) {
	for _, tc := range []struct{ name, resp, want string }{
		{"101", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", "unexpected 101"},
		{"too many 1xx", strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", 6) + helloResp, "too many 1xx"},
		{"status line", "HTTP/1.1 2x0 OK\r\n\r\n", "malformed HTTP status code"},
		{"huge header", "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Big: "+strings.Repeat("b", 1000)+"\r\n", 1100) + "\r\n", "response header too large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, _ := rawServer(t, canned(tc.resp, 0))
			ut := newUT(t, UserTransportOptions{})
			_, _, err := get(t, context.Background(), ut, "GET", u.String())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if n := len(idleConns(ut)); n != 0 {
				t.Errorf("%d connections kept after a malformed response", n)
			}
		})
	}
}

// dropSecond is a raw server that answers the first request of each
// connection and closes it, unanswered, at the second (read whole). It
// counts the requests it read by method.
func dropSecond(t *testing.T) (*url.URL, *atomic.Int32, func(method string) int) {
	var mu sync.Mutex
	seen := map[string]int{}
	u, conns := rawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for n := 0; ; n++ {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			mu.Lock()
			seen[req.Method]++
			mu.Unlock()
			if n == 1 {
				return
			}
			if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
				return
			}
		}
	})
	return u, conns, func(m string) int {
		mu.Lock()
		defer mu.Unlock()
		return seen[m]
	}
}

// onlyReader hides a reader's type so that http.NewRequest sets no GetBody.
type onlyReader struct{ io.Reader }

// TestUserTransportStale covers kept connections the server has closed.
func TestUserTransportStale(t *testing.T) {
	t.Run("closed while idle, checked", func(t *testing.T) {
		ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "ok")
		}))
		ts.Config.IdleTimeout = 50 * time.Millisecond
		var reqs atomic.Int32
		ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateActive {
				reqs.Add(1)
			}
		}
		ts.Start()
		defer ts.Close()
		ut := newUT(t, UserTransportOptions{})
		for i := range 2 {
			var l traceLog
			if _, body, err := get(t, l.with(context.Background()), ut, "GET", ts.URL); err != nil || body != "ok" {
				t.Fatalf("#%d: %q %v", i, body, err)
			}
			// The check found the connection closed: a single GotConn, a
			// new connection, and no request written into the dead one.
			if got := l.reused(); len(got) != 1 || got[0] {
				t.Errorf("#%d: GotConn reused %v", i, got)
			}
			time.Sleep(userStaleAfter + 200*time.Millisecond)
		}
		if n := reqs.Load(); n != 2 {
			t.Errorf("the server saw %d requests, want 2", n)
		}
	})
	t.Run("unasked bytes while idle", func(t *testing.T) {
		u, conns := rawServer(t, func(c net.Conn) {
			canned(helloResp, 1)(c)
			time.Sleep(100 * time.Millisecond) // the client has put the connection back to idle
			io.WriteString(c, "HTTP/1.1 200 OK\r\n")
			io.Copy(io.Discard, c) // until the client closes it
		})
		ut := newUT(t, UserTransportOptions{})
		for i := range 2 {
			var l traceLog
			// Were the connection reused, the request would wait for the
			// rest of a response that never comes.
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			if _, body, err := get(t, l.with(ctx), ut, "GET", u.String()); err != nil || body != "hello world" {
				t.Fatalf("#%d: %q %v", i, body, err)
			}
			if got := l.reused(); len(got) != 1 || got[0] {
				t.Errorf("#%d: GotConn reused %v", i, got)
			}
			time.Sleep(userStaleAfter + 200*time.Millisecond)
		}
		if n := conns.Load(); n != 2 {
			t.Errorf("%d connections, want 2", n)
		}
	})
	t.Run("closed after the response, retried", func(t *testing.T) {
		// Too soon for the check: the request goes out on the closed
		// connection, fails before any response byte, and is sent again.
		u, conns := rawServer(t, canned(helloResp, 1))
		ut := newUT(t, UserTransportOptions{})
		for i := range 3 {
			var l traceLog
			if _, body, err := get(t, l.with(context.Background()), ut, "GET", u.String()); err != nil || body != "hello world" {
				t.Fatalf("#%d: %q %v", i, body, err)
			}
			want := []bool{false}
			if i > 0 {
				want = []bool{true, false}
			}
			if got := l.reused(); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("#%d: GotConn reused %v, want %v", i, got, want)
			}
		}
		if n := conns.Load(); n != 3 {
			t.Errorf("%d connections, want 3", n)
		}
	})
	t.Run("replay rule", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			method  string
			body    func() io.Reader // nil: no body
			header  string
			replays bool
		}{
			{"GET", "GET", nil, "", true},
			{"HEAD", "HEAD", nil, "", true},
			{"DELETE", "DELETE", nil, "", false},
			{"POST without GetBody", "POST", func() io.Reader { return onlyReader{strings.NewReader("a=1")} }, "", false},
			{"POST with GetBody", "POST", func() io.Reader { return strings.NewReader("a=1") }, "", false},
			{"POST with Idempotency-Key", "POST", func() io.Reader { return strings.NewReader("a=1") }, "Idempotency-Key", true},
			{"POST without GetBody, Idempotency-Key", "POST", func() io.Reader { return onlyReader{strings.NewReader("a=1")} }, "Idempotency-Key", false},
			{"PUT with GetBody", "PUT", func() io.Reader { return strings.NewReader("a=1") }, "", false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				u, conns, seen := dropSecond(t)
				ut := newUT(t, UserTransportOptions{})
				if _, _, err := get(t, context.Background(), ut, "GET", u.String()); err != nil {
					t.Fatal(err)
				}
				var body io.Reader
				if tc.body != nil {
					body = tc.body()
				}
				req, _ := http.NewRequest(tc.method, u.String(), body)
				req.ContentLength = int64(b2i(body != nil) * 3)
				if tc.header != "" {
					req.Header.Set(tc.header, "k1")
				}
				resp, err := ut.RoundTrip(req)
				if resp != nil {
					resp.Body.Close()
				}
				before := b2i(tc.method == "GET") // the first GET
				if tc.replays {
					if err != nil || resp.StatusCode != 200 || seen(tc.method)-before != 2 || conns.Load() != 2 {
						t.Errorf("got %v, the server saw %d %s and %d connections, want a response after 2 and 2",
							err, seen(tc.method)-before, tc.method, conns.Load())
					}
					return
				}
				if err == nil || seen(tc.method)-before != 1 || conns.Load() != 1 {
					t.Errorf("got %v, the server saw %d %s and %d connections, want an error after 1 and 1",
						err, seen(tc.method)-before, tc.method, conns.Load())
				}
				if d := Describe(err); d != "EOF" && d != "connection reset by peer" {
					t.Errorf("Describe = %q (%v)", d, err)
				}
			})
		}
	})
	t.Run("fresh connection not retried", func(t *testing.T) {
		u, conns := rawServer(t, func(c net.Conn) { readRequest(bufio.NewReader(c)) })
		ut := newUT(t, UserTransportOptions{})
		if _, _, err := get(t, context.Background(), ut, "GET", u.String()); Describe(err) != "EOF" || conns.Load() != 1 {
			t.Fatalf("%v after %d connections", err, conns.Load())
		}
	})
	t.Run("reset twice", func(t *testing.T) {
		var n atomic.Int32
		u, conns := rawServer(t, func(c net.Conn) {
			if n.Add(1) == 1 {
				canned(helloResp, 1)(c)
			}
			c.(*net.TCPConn).SetLinger(0) // abortive close: a reset, not EOF
		})
		ut := newUT(t, UserTransportOptions{})
		if _, _, err := get(t, context.Background(), ut, "GET", u.String()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		_, _, err := get(t, context.Background(), ut, "GET", u.String())
		if err == nil || conns.Load() != 2 {
			t.Fatalf("%v after %d connections, want an error after 2", err, conns.Load())
		}
		if d := Describe(err); d != "connection reset by peer" && d != "EOF" {
			t.Errorf("Describe = %q (%v)", d, err)
		}
	})
}

func TestUserTransportBrokenBody(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reset bool
		want  []string // Describe
	}{
		{"reset", true, []string{"connection reset by peer", "EOF"}},
		{"short", false, []string{"EOF"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, _ := rawServer(t, func(c net.Conn) {
				readRequest(bufio.NewReader(c))
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n0123456789")
				time.Sleep(20 * time.Millisecond)
				if tc.reset {
					c.(*net.TCPConn).SetLinger(0)
				}
			})
			ut := newUT(t, UserTransportOptions{})
			resp, body, err := get(t, context.Background(), ut, "GET", u.String())
			if resp == nil || err == nil || !strings.HasPrefix(body, "0123456789"[:len(body)]) {
				t.Fatalf("%v %q %v", resp, body, err)
			}
			if d := Describe(err); !strings.Contains(strings.Join(tc.want, "|"), d) {
				t.Errorf("Describe = %q (%v), want one of %q", d, err, tc.want)
			}
			if n := len(idleConns(ut)); n != 0 {
				t.Errorf("%d connections kept", n)
			}
		})
	}
}

// stallServer answers /header with a header and 10 of 100 bytes of body,
// anything else with nothing, then waits for the test's end.
func stallServer(t *testing.T) string {
	stop := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/quick" {
			io.WriteString(w, "ok")
			return
		}
		if r.URL.Path == "/header" {
			w.Header().Set("Content-Length", "100")
			io.WriteString(w, "0123456789")
			w.(http.Flusher).Flush()
		}
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(stop); ts.Close() })
	return ts.URL
}

func TestUserTransportCancel(t *testing.T) {
	base := stallServer(t)
	for _, path := range []string{"/", "/header"} {
		t.Run(path, func(t *testing.T) {
			ut := newUT(t, UserTransportOptions{})
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(50*time.Millisecond, cancel)
			start := time.Now()
			_, _, err := get(t, ctx, ut, "GET", base+path)
			if el := time.Since(start); !errors.Is(err, context.Canceled) || !errors.Is(err, ctx.Err()) || el > 2*time.Second {
				t.Fatalf("%v after %v", err, el)
			}
			if n := len(idleConns(ut)); n != 0 {
				t.Errorf("%d connections kept", n)
			}
		})
	}
	t.Run("before", func(t *testing.T) {
		ut := newUT(t, UserTransportOptions{})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		closed := false
		req, _ := http.NewRequestWithContext(ctx, "POST", base+"/quick", &closeRecorder{Reader: strings.NewReader("x"), closed: &closed})
		if _, err := ut.RoundTrip(req); !errors.Is(err, context.Canceled) || !closed {
			t.Errorf("%v, body closed %v", err, closed)
		}
	})
	t.Run("while idle", func(t *testing.T) {
		// A cancellation after the request does not spoil the connection.
		ut := newUT(t, UserTransportOptions{})
		ctx, cancel := context.WithCancel(context.Background())
		if _, body, err := get(t, ctx, ut, "GET", base+"/quick"); err != nil || body != "ok" {
			t.Fatal(body, err)
		}
		cancel()
		time.Sleep(10 * time.Millisecond)
		var l traceLog
		if _, body, err := get(t, l.with(context.Background()), ut, "GET", base+"/quick"); err != nil || body != "ok" || fmt.Sprint(l.reused()) != "[true]" {
			t.Fatalf("%q %v reused %v", body, err, l.reused())
		}
	})
	t.Run("client timeout on the body", func(t *testing.T) {
		ut := newUT(t, UserTransportOptions{})
		c := &http.Client{Transport: ut, Timeout: 100 * time.Millisecond}
		resp, err := c.Get(base + "/header")
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if el := time.Since(start); !IsTimeout(err) || Describe(err) != "timeout" || el > 2*time.Second {
			t.Fatalf("%v after %v", err, el)
		}
	})
}

// closeRecorder is a request body that records its Close.
type closeRecorder struct {
	io.Reader
	closed *bool
}

func (c *closeRecorder) Close() error { *c.closed = true; return nil }

func TestUserTransportDeadline(t *testing.T) {
	base := stallServer(t)
	for _, path := range []string{"/", "/header"} {
		ut := newUT(t, UserTransportOptions{})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		start := time.Now()
		_, _, err := get(t, ctx, ut, "GET", base+path)
		cancel()
		if el := time.Since(start); !IsTimeout(err) || Describe(err) != "timeout" || !errors.Is(err, context.DeadlineExceeded) || el > 2*time.Second {
			t.Errorf("%s: %v after %v", path, err, el)
		}
	}
	// The browser's timeout is the requestCtx's deadline, held by the
	// connection's: the header's wait and the body's both end there, as a
	// context's deadline.
	b := New(Options{Transport: newUT(t, UserTransportOptions{}), Timeout: 100 * time.Millisecond})
	for _, path := range []string{"/", "/header"} {
		start := time.Now()
		_, _, err := b.Do(context.Background(), &Request{Method: "GET", URL: base + path, KeepBody: true})
		if el := time.Since(start); !IsTimeout(err) || Describe(err) != "timeout" || !errors.Is(err, context.DeadlineExceeded) || el < 90*time.Millisecond || el > 2*time.Second {
			t.Errorf("browser %s: %v after %v", path, err, el)
		}
	}
}

// TestUserTransportIdleTimer checks that an idle connection is closed by
// the timer, and that the next request dials.
func TestUserTransportIdleTimer(t *testing.T) {
	closed := make(chan time.Time, 4)
	u, conns := rawServer(t, func(c net.Conn) {
		canned(helloResp, 0)(c) // returns when the client closes
		closed <- time.Now()
	})
	const idle = 150 * time.Millisecond
	ut := newUT(t, UserTransportOptions{IdleTimeout: idle})
	for i := range 2 {
		var l traceLog
		start := time.Now() // the timer starts when the body ends, before get returns
		if _, _, err := get(t, l.with(context.Background()), ut, "GET", u.String()); err != nil {
			t.Fatal(err)
		}
		if got := l.reused(); fmt.Sprint(got) != "[false]" {
			t.Errorf("#%d: GotConn reused %v", i, got)
		}
		select {
		case at := <-closed:
			if el := at.Sub(start); el < idle {
				t.Errorf("#%d: closed after %v, idle timeout %v", i, el, idle)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("#%d: the server never saw the close", i)
		}
		if n := len(idleConns(ut)); n != 0 {
			t.Errorf("#%d: %d idle connections after the timeout", i, n)
		}
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}

	// A reused connection's timer starts afresh at each request.
	ut = newUT(t, UserTransportOptions{IdleTimeout: idle})
	for range 4 {
		if _, _, err := get(t, context.Background(), ut, "GET", u.String()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(idle / 2)
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections, want 3", n)
	}

	// Negative: no timer at all.
	ut = newUT(t, UserTransportOptions{IdleTimeout: -1})
	if _, _, err := get(t, context.Background(), ut, "GET", u.String()); err != nil {
		t.Fatal(err)
	}
	if cs := idleConns(ut); len(cs) != 1 || cs[0].timer != nil {
		t.Errorf("IdleTimeout -1: %d connections, timer %v", len(cs), cs[0].timer)
	}
	ut.CloseIdleConnections()
	if n := len(idleConns(ut)); n != 0 {
		t.Errorf("%d idle connections after CloseIdleConnections", n)
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("CloseIdleConnections: the server never saw the close")
	}
}

// waitGoroutines waits up to 5 s for at most n goroutines and returns the
// count.
func waitGoroutines(n int) int {
	deadline := time.Now().Add(5 * time.Second)
	for {
		g := runtime.NumGoroutine()
		if g <= n || time.Now().After(deadline) {
			return g
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestUserTransportGoroutines checks that the transport runs no goroutine
// of its own: a user with an idle connection adds none (the server's
// goroutine for the connection is the one added), and none is left after
// many requests or after the idle timer.
func TestUserTransportGoroutines(t *testing.T) {
	u, _ := rawServer(t, canned(helloResp, 0))
	const idle = 300 * time.Millisecond
	ut := newUT(t, UserTransportOptions{IdleTimeout: idle})
	b := New(Options{Transport: ut})
	g0 := runtime.NumGoroutine()
	do := func() {
		if p, _, err := b.Do(context.Background(), &Request{Method: "GET", URL: u.String()}); err != nil || p.Status != 200 {
			t.Fatal(p.Status, err)
		}
	}
	do()
	if g := waitGoroutines(g0 + 1); g > g0+1 {
		t.Errorf("%d goroutines after a request, want at most %d (one the server's)", g, g0+1)
	}
	for range 300 {
		do()
	}
	if g := waitGoroutines(g0 + 1); g > g0+1 {
		t.Errorf("%d goroutines after 300 requests, want at most %d", g, g0+1)
	}
	time.Sleep(idle)
	if g := waitGoroutines(g0); g > g0 {
		t.Errorf("%d goroutines after the idle timeout, want at most %d", g, g0)
	}
}

// TestUserTransportBuffers checks that the buffers are held during a
// request only.
func TestUserTransportBuffers(t *testing.T) {
	u, _ := rawServer(t, canned(helloResp, 0))
	ut := newUT(t, UserTransportOptions{})
	for _, early := range []bool{false, true} {
		req, _ := http.NewRequest("GET", u.String(), nil)
		resp, err := ut.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		ub, ok := resp.Body.(*userBody)
		if !ok || ub.uc.br == nil || ub.uc.bw != nil {
			t.Fatalf("body %T: want the read buffer held while the body is read, not the write buffer", resp.Body)
		}
		if early {
			resp.Body.Close() // before the end: the connection is closed
			if _, err := resp.Body.Read(make([]byte, 1)); err == nil {
				t.Error("read after Close succeeded")
			}
		} else if b, err := io.ReadAll(resp.Body); err != nil || string(b) != "hello world" {
			t.Fatal(string(b), err)
		}
		if ub.uc.br != nil || ub.uc.bw != nil || ub.uc.stop != nil {
			t.Errorf("early close %v: buffers or context watch kept after the body", early)
		}
		cs := idleConns(ut)
		if len(cs) != b2i(!early) {
			t.Errorf("early close %v: %d idle connections", early, len(cs))
		}
		for _, c := range cs {
			if c.br != nil || c.bw != nil {
				t.Error("an idle connection holds buffers")
			}
		}
		resp.Body.Close()
	}
}

func TestUserTransportBind(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("127.0.0.2 is a local address on Linux only")
	}
	ts, seen := remoteIPs(t)
	ut := newUT(t, UserTransportOptions{From: netip.MustParseAddr("127.0.0.2")})
	for range 2 {
		if _, _, err := get(t, context.Background(), ut, "GET", ts.URL); err != nil {
			t.Fatal(err)
		}
		ut.CloseIdleConnections() // the next request dials again
	}
	if got := seen(); len(got) != 2 || got[0] != "127.0.0.2" || got[1] != "127.0.0.2" {
		t.Errorf("the server saw %v, want 127.0.0.2 twice", got)
	}
}

func TestUserTransportHosts(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Host)
	}))
	defer ts.Close()
	_, port, _ := net.SplitHostPort(ts.Listener.Addr().String())
	ut := newUT(t, UserTransportOptions{Hosts: Hosts{"app.test": "127.0.0.1"}})
	for _, host := range []string{"app.test:" + port, "APP.test:" + port} {
		var l traceLog
		if _, body, err := get(t, l.with(context.Background()), ut, "GET", "http://"+host+"/"); err != nil || body != host {
			t.Fatalf("%q %v, want %q", body, err, host)
		}
		if host != "app.test:"+port && fmt.Sprint(l.reused()) != "[true]" {
			t.Errorf("%s: GotConn reused %v: host names differing in case share the connection", host, l.reused())
		}
	}
	if _, _, err := get(t, context.Background(), ut, "GET", "http://unmapped.invalid:"+port+"/"); err == nil {
		t.Error("an unmapped .invalid host was reached")
	}
}

func TestUserTransportTLS(t *testing.T) {
	var sni atomic.Value
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %v", r.Proto, r.TLS != nil)
	}))
	ts.TLS = &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		sni.Store(h.ServerName)
		return nil, nil
	}}
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshakes refused on purpose
	ts.StartTLS()
	defer ts.Close()
	_, port, _ := net.SplitHostPort(ts.Listener.Addr().String())
	u := "https://example.com:" + port + "/"
	hosts := Hosts{"example.com": "127.0.0.1"}

	ut := newUT(t, UserTransportOptions{Hosts: hosts, Insecure: true})
	for i := range 2 {
		var l traceLog
		if _, body, err := get(t, l.with(context.Background()), ut, "GET", u); err != nil || body != "HTTP/1.1 true" {
			t.Fatalf("#%d: %q %v", i, body, err)
		}
		if got := l.reused(); len(got) != 1 || got[0] != (i == 1) || l.tlsStarts != 1-i || l.tlsDones != 1-i {
			t.Errorf("#%d: reused %v, %d handshakes", i, got, l.tlsStarts)
		}
	}
	if got, _ := sni.Load().(string); got != "example.com" {
		t.Errorf("SNI %q, want example.com", got)
	}

	_, _, err := get(t, context.Background(), newUT(t, UserTransportOptions{Hosts: hosts}), "GET", u)
	var ue *tls.CertificateVerificationError
	if !errors.As(err, &ue) {
		t.Errorf("verification: %v", err)
	}

	// The scheme is part of the key: http to the TLS port does not reuse
	// the https connection (Go's server answers 400 to plain HTTP).
	var l traceLog
	if resp, _, err := get(t, l.with(context.Background()), ut, "GET", "http://example.com:"+port+"/"); err != nil || resp.StatusCode != 400 || fmt.Sprint(l.reused()) != "[false]" {
		t.Errorf("plain http to the TLS port: %v, reused %v", err, l.reused())
	}
}

func TestUserTransportErrors(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	ut := newUT(t, UserTransportOptions{})
	for _, tc := range []struct{ url, want string }{
		{"ftp://" + addr + "/", `session: unsupported protocol scheme "ftp"`},
		{"http:///path", "session: request URL has no host"},
		{"http://" + addr + "/", "connection refused"},
	} {
		closed := false
		req, _ := http.NewRequest("POST", tc.url, &closeRecorder{Reader: strings.NewReader("x"), closed: &closed})
		_, err := ut.RoundTrip(req)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !closed {
			t.Errorf("%s: %v, body closed %v, want %q", tc.url, err, closed, tc.want)
		}
	}
	if _, _, err := get(t, context.Background(), ut, "GET", "http://"+addr+"/"); Describe(err) != "connection refused" {
		t.Errorf("Describe(%v) = %q", err, Describe(err))
	}
}

// TestUserTransportConcurrent shares one transport between goroutines,
// which it allows though a virtual user does not: requests that find the
// connection busy dial their own.
func TestUserTransportConcurrent(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path)
	}))
	defer ts.Close()
	ut := newUT(t, UserTransportOptions{IdleTimeout: 5 * time.Millisecond})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 30 {
				path := fmt.Sprintf("/%d/%d", g, i)
				if _, body, err := get(t, context.Background(), ut, "GET", ts.URL+path); err != nil || body != path {
					t.Errorf("%q %v", body, err)
					return
				}
				if i%10 == 0 {
					time.Sleep(10 * time.Millisecond) // let the idle timer fire now and then
				}
			}
		})
	}
	wg.Wait()
	if n := len(idleConns(ut)); n > 1 {
		t.Errorf("%d idle connections, want at most one per address", n)
	}
}

func TestSameAddr(t *testing.T) {
	for _, tc := range []struct {
		host, port string
	}{
		{"example.com", "80"}, {"Example.COM", "443"}, {"127.0.0.1", "8080"}, {"::1", "80"}, {"fe80::1%eth0", "443"}, {"a", ""},
	} {
		addr := net.JoinHostPort(tc.host, tc.port)
		if !sameAddr(addr, tc.host, tc.port) || !sameAddr(strings.ToLower(addr), tc.host, tc.port) {
			t.Errorf("sameAddr(%q, %q, %q) = false", addr, tc.host, tc.port)
		}
		for _, other := range []string{"x" + addr, addr + "0", net.JoinHostPort(tc.host+"x", tc.port), net.JoinHostPort(tc.host, tc.port+"1"), ""} {
			if sameAddr(other, tc.host, tc.port) {
				t.Errorf("sameAddr(%q, %q, %q) = true", other, tc.host, tc.port)
			}
		}
	}
}

func TestWantsClose(t *testing.T) {
	for _, tc := range []struct {
		close bool
		conn  []string
		want  bool
	}{
		{false, nil, false},
		{true, nil, true},
		{false, []string{"keep-alive"}, false},
		{false, []string{"Keep-Alive, Close"}, true},
		{false, []string{"upgrade", " close "}, true},
		{false, []string{"closed"}, false},
	} {
		req := &http.Request{Close: tc.close, Header: http.Header{}}
		if tc.conn != nil {
			req.Header["Connection"] = tc.conn
		}
		if got := wantsClose(req); got != tc.want {
			t.Errorf("Close %v Connection %q: %v, want %v", tc.close, tc.conn, got, tc.want)
		}
	}
}

// TestUserTransportLoginServer is the server of the login benchmarks and
// of TestUserTransportIdleFootprint, run in a child process so that its
// CPU and memory do not weigh in the figures.
func TestUserTransportLoginServer(t *testing.T) {
	if os.Getenv("STAMPEDE_UT_LOGIN_SERVER") != "1" {
		t.Skip("helper process only")
	}
	ts := httptest.NewServer(testserver.New("pw"))
	defer ts.Close()
	fmt.Println(ts.URL)
	io.Copy(io.Discard, os.Stdin) // until the parent closes it
}

// loginServer starts TestUserTransportLoginServer in a child process,
// stopped at the end of the test, and returns its base URL.
func loginServer(t testing.TB) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestUserTransportLoginServer$")
	cmd.Env = append(os.Environ(), "STAMPEDE_UT_LOGIN_SERVER=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(line)
}

// loginFlow logs in as a browser does: the form page, then the POST of
// the form with its hidden csrf input, redirected to the dashboard.
func loginFlow(ctx context.Context, b *Browser, base string) error {
	p, _, err := b.Do(ctx, &Request{Method: "GET", URL: base + "/accounts/login/", KeepBody: true})
	if err != nil {
		return err
	}
	f, err := FindForm(p.Body, p.URL, "")
	if err != nil {
		return err
	}
	v := f.Values(map[string]string{"login": "alice", "password": "pw"})
	p, _, err = b.Do(ctx, &Request{Method: f.Method, URL: f.Action, Body: []byte(v.Encode()),
		ContentType: "application/x-www-form-urlencoded", KeepBody: true})
	if err != nil {
		return err
	}
	if p.Status != 200 || p.URL.Path != "/dashboard/" {
		return fmt.Errorf("login ended at %d %s", p.Status, p.URL)
	}
	return nil
}

// benchLogin runs the login flow of one warm browser (its connection kept
// alive) against the login server in process and in a child process (there
// cpu-ns/op is the client's alone).
func benchLogin(b *testing.B, rt func() http.RoundTripper) {
	ts := httptest.NewServer(testserver.New("pw"))
	defer ts.Close()
	for _, s := range []struct{ name, base string }{{"httptest", ts.URL}, {"external", loginServer(b)}} {
		b.Run(s.name, func(b *testing.B) {
			br := New(Options{Transport: rt()})
			ctx := context.Background()
			if err := loginFlow(ctx, br, s.base); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				if err := loginFlow(ctx, br, s.base); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}

func BenchmarkUserTransportLoginFlow(b *testing.B) {
	benchLogin(b, func() http.RoundTripper { return newUT(b, UserTransportOptions{}) })
}

func BenchmarkHTTPTransportLoginFlow(b *testing.B) {
	benchLogin(b, func() http.RoundTripper {
		tr := NewTransport(2, false, nil)
		b.Cleanup(tr.CloseIdleConnections)
		return tr
	})
}

// footprint is memory in use after a full collection.
type footprint struct {
	inUse int64 // HeapInuse + StackInuse: what the process holds
	live  int64 // heap objects marked live, without the fragmentation of spans
	stack int64 // StackInuse
	gs    int   // goroutines
}

// takeFootprint collects garbage (twice, so that sync.Pool's victim cache
// is dropped too) and reads the memory in use.
func takeFootprint() footprint {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(live)
	return footprint{inUse: int64(ms.HeapInuse + ms.StackInuse), live: int64(live[0].Value.Uint64()),
		stack: int64(ms.StackInuse), gs: runtime.NumGoroutine()}
}

// TestUserTransportIdleFootprint measures the memory of logged-in users in
// think time: each a goroutine blocked after its login, holding its browser
// (cookie jar, last page) and a kept connection, through a UserTransport of
// its own, through one http.Transport shared by all, or through an
// http.Transport each. It logs the figures and asserts none.
func TestUserTransportIdleFootprint(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("slow; skewed by -race")
	}
	users := 2000
	if s := os.Getenv("STAMPEDE_UT_USERS"); s != "" {
		users, _ = strconv.Atoi(s)
	}
	base := loginServer(t)

	// measure returns what users in think time add, per user. newUser
	// returns nil for a user that only waits.
	measure := func(name string, newUser func() (*Browser, func())) {
		var ready, done, dialled sync.WaitGroup
		dialled.Add(users)
		allDialled := make(chan struct{})
		go func() { dialled.Wait(); close(allDialled) }()
		release := make(chan struct{})
		var failed atomic.Value
		before := takeFootprint()
		for range users {
			ready.Add(1)
			done.Go(func() {
				b, closer := newUser()
				var once sync.Once
				if b != nil {
					// Every user holds its first connection until all
					// have one: the shared transport then has one per
					// user too.
					ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
						GotConn: func(httptrace.GotConnInfo) {
							once.Do(func() {
								dialled.Done()
								select {
								case <-allDialled:
								case <-time.After(30 * time.Second):
								}
							})
						},
					})
					if err := loginFlow(ctx, b, base); err != nil {
						failed.Store(err)
					}
				}
				once.Do(dialled.Done) // a user that waits only, or failed before its connection
				ready.Done()
				<-release // think time
				closer()
			})
		}
		ready.Wait()
		after := takeFootprint()
		close(release)
		done.Wait()
		if err := failed.Load(); err != nil {
			t.Fatal(err)
		}
		per := func(a, b int64) float64 { return float64(a-b) / float64(users) }
		t.Logf("  %-28s %7.0f B  %7.0f B  %7.0f B  %5.2f", name, per(after.inUse, before.inUse),
			per(after.live, before.live), per(after.stack, before.stack), float64(after.gs-before.gs)/float64(users))
	}

	t.Logf("%d logged-in users in think time, per user:", users)
	t.Logf("  %-28s %9s  %9s  %9s  %5s", "", "heap+stack", "live heap", "stack", "goroutines")
	measure("goroutine alone", func() (*Browser, func()) { return nil, func() {} })
	measure("UserTransport each", func() (*Browser, func()) {
		ut := NewUserTransport(UserTransportOptions{})
		return New(Options{Transport: ut}), ut.CloseIdleConnections
	})
	shared := NewTransport(users+16, false, nil)
	measure("one http.Transport shared", func() (*Browser, func()) {
		return New(Options{Transport: shared}), shared.CloseIdleConnections
	})
	measure("an http.Transport each", func() (*Browser, func()) {
		tr := NewTransport(2, false, nil)
		return New(Options{Transport: tr}), tr.CloseIdleConnections
	})
}
