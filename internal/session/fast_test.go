package session

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// raceEnabled reports a -race build, in which sync.Pool drops items at
// random and memory figures are inflated.
var raceEnabled = func() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}()

// rawServer accepts TCP connections on loopback and hands each to serve,
// closing it when serve returns. It counts the connections accepted.
func rawServer(t testing.TB, serve func(net.Conn)) (*url.URL, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		conns atomic.Int32
		wg    sync.WaitGroup
		mu    sync.Mutex
		open  = map[net.Conn]bool{}
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			mu.Lock()
			open[c] = true
			mu.Unlock()
			wg.Go(func() {
				serve(c)
				c.Close()
				mu.Lock()
				delete(open, c)
				mu.Unlock()
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return &url.URL{Scheme: "http", Host: ln.Addr().String(), Path: "/"}, &conns
}

// readRequest reads one request's header section (GETs have no body).
func readRequest(br *bufio.Reader) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 && strings.TrimRight(string(line), "\r\n") == "" {
			return nil
		}
	}
}

// canned serves resp to up to max requests per connection (0: no limit),
// then closes it. It allocates nothing per request.
func canned(resp string, max int) func(net.Conn) {
	b := []byte(resp)
	return func(c net.Conn) {
		br := bufio.NewReader(c)
		for n := 0; max <= 0 || n < max; n++ {
			if readRequest(br) != nil {
				return
			}
			if _, err := c.Write(b); err != nil {
				return
			}
		}
	}
}

const helloResp = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world"

func newFast(t testing.TB, u *url.URL, timeout time.Duration) *FastClient {
	t.Helper()
	c, err := NewFastClient(u, timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestNewFastClient(t *testing.T) {
	c, err := NewFastClient(mustURL(t, "http://user:pw@example.com:/a%20b/c?q=1&r=%2F#frag"), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := "GET /a%20b/c?q=1&r=%2F HTTP/1.1\r\nHost: example.com\r\nUser-Agent: " + UserAgent +
		"\r\nAuthorization: Basic dXNlcjpwdw==\r\n\r\n"
	if string(c.req) != want || c.addr != "example.com:80" || c.timeout != 60*time.Second {
		t.Errorf("req %q addr %q timeout %v", c.req, c.addr, c.timeout)
	}
	c, err = NewFastClient(&url.URL{Scheme: "http", Host: "h", Path: "rel"}, time.Second)
	if err != nil || !strings.HasPrefix(string(c.req), "GET /rel HTTP/1.1\r\n") {
		t.Errorf("path without slash: %v %q", err, c.req)
	}
	c, err = NewFastClient(mustURL(t, "http://[::1]:8080"), time.Second)
	if err != nil || c.addr != "[::1]:8080" || !strings.HasPrefix(string(c.req), "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n") {
		t.Errorf("IPv6: %v %q %q", err, c.addr, c.req)
	}
	for _, bad := range []*url.URL{
		mustURL(t, "https://example.com/"),
		mustURL(t, "ftp://example.com/"),
		mustURL(t, "/relative"),
		{Scheme: "http", Host: "example.com", Path: "/a", RawQuery: "x=1\r\nX-Injected: 1"},
		{Scheme: "http", Host: "exämple.com"},
	} {
		if _, err := NewFastClient(bad, time.Second); err == nil || !strings.HasPrefix(err.Error(), "session: ") {
			t.Errorf("%v: err = %v", bad, err)
		}
	}
}

// TestFastHTTPServer runs the client against net/http's server: statuses,
// lengths, chunked bodies, Connection: close, and keep-alive reuse.
func TestFastHTTPServer(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/status/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.PathValue("code"))
		w.WriteHeader(code)
		if code != 204 && code != 304 {
			io.WriteString(w, "status body")
		}
	})
	mux.HandleFunc("/len/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.PathValue("n"))
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Write(bytes.Repeat([]byte("x"), n))
	})
	mux.HandleFunc("/chunked/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.PathValue("n"))
		for i := range n {
			fmt.Fprintf(w, "chunk %d;", i)
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/bigchunks", func(w http.ResponseWriter, r *http.Request) {
		for range 3 {
			w.Write(bytes.Repeat([]byte("y"), 20000))
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/close", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "GET" || r.Header.Get("User-Agent") != UserAgent || r.Header.Get("Accept") != "" ||
			r.Host != r.URL.Query().Get("host") || r.URL.RawQuery == "" {
			http.Error(w, fmt.Sprintf("%s %s %v", r.Method, r.Host, r.Header), 400)
		}
	})
	ts := httptest.NewServer(mux)
	defer ts.Close()
	chunked := 0
	for i := range 50 {
		chunked += len(fmt.Sprintf("chunk %d;", i))
	}
	host := strings.TrimPrefix(ts.URL, "http://")
	for _, tc := range []struct {
		path   string
		status int
		size   int64
		keep   bool
	}{
		{"/status/200", 200, 11, true},
		{"/status/404", 404, 11, true},
		{"/status/500", 500, 11, true},
		{"/status/204", 204, 0, true},
		{"/status/304", 304, 0, true},
		{"/len/0", 200, 0, true},
		{"/len/100000", 200, 100000, true},
		{"/chunked/50", 200, int64(chunked), true},
		{"/bigchunks", 200, 60000, true},
		{"/close", 200, 3, false},
		{"/echo?host=" + host, 200, 0, true},
	} {
		c := newFast(t, mustURL(t, ts.URL+tc.path), 5*time.Second)
		for i := range 3 {
			st, size, tm, err := c.Get(context.Background())
			if err != nil || st != tc.status || size != tc.size {
				t.Fatalf("%s #%d: %d %d %v, want %d %d", tc.path, i, st, size, err, tc.status, tc.size)
			}
			if reused := i > 0 && tc.keep; tm.Reused != reused || (tm.Connect > 0) == reused || tm.TTFB <= 0 {
				t.Errorf("%s #%d: timing %+v, want reused %v", tc.path, i, tm, reused)
			}
			if (c.conn != nil) != tc.keep {
				t.Errorf("%s #%d: connection kept = %v", tc.path, i, c.conn != nil)
			}
		}
	}
}

// TestFastResponses covers parsing with hand-written responses.
func TestFastResponses(t *testing.T) {
	long := strings.Repeat("a", 10000)
	for _, tc := range []struct {
		name   string
		resp   string
		status int
		size   int64
		keep   bool
		err    string // substring of the error; "" for none
	}{
		{"http10 until EOF", "HTTP/1.0 200 OK\r\n\r\nabc", 200, 3, false, ""},
		{"http11 until EOF", "HTTP/1.1 200 OK\r\nX: y\r\n\r\n" + long, 200, 10000, false, ""},
		{"http10 keep-alive", "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nhi", 200, 2, true, ""},
		{"http10 length", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi", 200, 2, false, ""},
		{"no reason", "HTTP/1.1 201\r\nContent-Length: 0\r\n\r\n", 201, 0, true, ""},
		{"empty reason", "HTTP/1.1 202 \r\nContent-Length: 0\r\n\r\n", 202, 0, true, ""},
		{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 1\n\nx", 200, 1, true, ""},
		{"case", "HTTP/1.1 200 OK\r\ncontent-LENGTH:3\r\nCONNECTION: Close\r\n\r\nabc", 200, 3, false, ""},
		{"connection list", "HTTP/1.1 200 OK\r\nConnection: keep-alive, \tclose \r\nContent-Length: 0\r\n\r\n", 200, 0, false, ""},
		{"same length twice", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 200, 1, true, ""},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n3;ext=1\r\nabc\r\nA \r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n", 200, 13, true, ""},
		{"chunked no trailer", "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n", 200, 0, true, ""},
		{"chunked and length", "HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n", 200, 1, false, ""},
		{"chunked http10", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n1\r\nx\r\n0\r\n\r\n", 200, 1, false, ""},
		{"interim", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, 5, true, ""},
		{"204 with length", "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", 204, 0, true, ""},
		{"long header ignored", "HTTP/1.1 200 OK\r\nContent-Security-Policy: " + long + "\r\nContent-Length: 1\r\n\r\nx", 200, 1, true, ""},
		{"fold ignored", "HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 1\r\n\r\nx", 200, 1, true, ""},
		{"long trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: " + long + "\r\n\r\n", 200, 0, true, ""},

		{"http2", "HTTP/2 200 OK\r\n\r\n", 0, 0, false, "malformed status line"},
		{"garbage", "hello\r\n\r\n", 0, 0, false, "malformed status line"},
		{"two-digit code", "HTTP/1.1 20 OK\r\n\r\n", 0, 0, false, "malformed status line"},
		{"code glued", "HTTP/1.1 200OK\r\n\r\n", 0, 0, false, "malformed status line"},
		{"code zero", "HTTP/1.1 099 X\r\n\r\n", 0, 0, false, "malformed status line"},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", 0, 0, false, "bad Content-Length"},
		{"negative length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 0, 0, false, "bad Content-Length"},
		{"huge length", "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", 0, 0, false, "bad Content-Length"},
		{"length list", "HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\nx", 0, 0, false, "bad Content-Length"},
		{"two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx", 0, 0, false, "conflicting Content-Length"},
		{"gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 0, 0, false, "unsupported Transfer-Encoding"},
		{"no colon", "HTTP/1.1 200 OK\r\nContent-Length 1\r\n\r\nx", 0, 0, false, "malformed header line"},
		{"space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\nx", 0, 0, false, "malformed header line"},
		{"first line folded", "HTTP/1.1 200 OK\r\n Content-Length: 1\r\n\r\nx", 0, 0, false, "malformed header line"},
		{"connection folded", "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n close\r\nContent-Length: 1\r\n\r\nx", 0, 0, false, "malformed header line"},
		{"101", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", 0, 0, false, "unexpected 101"},
		{"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0, 0, false, "bad chunk size"},
		{"chunk size overflow", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n", 0, 0, false, "bad chunk size"},
		{"chunk without CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n0\r\n\r\n", 0, 0, false, "malformed chunked encoding"},
		{"chunk size line too long", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;" + long + "\r\nx\r\n0\r\n\r\n", 0, 0, false, "line too long"},
		{"long Content-Length line", "HTTP/1.1 200 OK\r\nContent-Length: " + long + "\r\n\r\n", 0, 0, false, "line too long"},
		{"long status line", "HTTP/1.1 200 " + long + "\r\n\r\n", 0, 0, false, "line too long"},
		{"huge header", "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Pad: "+long+"\r\n", 7) + "\r\n", 0, 0, false, "header too large"},
		{"endless interim", strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 3000), 0, 0, false, "header too large"},
		{"huge trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + strings.Repeat("T: "+long+"\r\n", 7) + "\r\n", 0, 0, false, "trailer too large"},
		{"short body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 0, 0, false, "unexpected EOF"},
		{"short chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc", 0, 0, false, "unexpected EOF"},
		{"short header", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n", 0, 0, false, "unexpected EOF"},
		{"nothing", "", 0, 0, false, "EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// One response per connection, then the server closes it: a
			// kept connection is reused by the second Get and found closed.
			u, conns := rawServer(t, canned(tc.resp, 1))
			c := newFast(t, u, 5*time.Second)
			st, size, _, err := c.Get(context.Background())
			if st != tc.status || size != tc.size || (err == nil) != (tc.err == "") ||
				(err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("got %d %d %v, want %d %d %q", st, size, err, tc.status, tc.size, tc.err)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "session: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if (c.conn != nil) != tc.keep {
				t.Errorf("connection kept = %v, want %v", c.conn != nil, tc.keep)
			}
			if tc.err != "" {
				return
			}
			st2, size2, tm, err := c.Get(context.Background())
			if err != nil || st2 != st || size2 != size || tm.Reused || tm.Connect <= 0 || conns.Load() != 2 {
				t.Errorf("second Get: %d %d %+v %v after %d connections", st2, size2, tm, err, conns.Load())
			}
		})
	}
}

// TestFastIdleClose checks the transparent redial when the server has
// closed a kept connection, and that it is tried once only.
func TestFastIdleClose(t *testing.T) {
	t.Run("after N requests", func(t *testing.T) {
		u, conns := rawServer(t, canned(helloResp, 2))
		c := newFast(t, u, 5*time.Second)
		for i := range 7 {
			st, size, tm, err := c.Get(context.Background())
			if err != nil || st != 200 || size != 11 {
				t.Fatalf("#%d: %d %d %v", i, st, size, err)
			}
			if tm.Reused != (i%2 == 1) {
				t.Errorf("#%d: %+v", i, tm)
			}
		}
		if n := conns.Load(); n != 4 {
			t.Errorf("%d connections, want 4", n)
		}
	})
	t.Run("idle timeout", func(t *testing.T) {
		ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "ok")
		}))
		ts.Config.IdleTimeout = 20 * time.Millisecond
		ts.Start()
		defer ts.Close()
		c := newFast(t, mustURL(t, ts.URL), 5*time.Second)
		for i := range 3 {
			if st, size, tm, err := c.Get(context.Background()); err != nil || st != 200 || size != 2 || tm.Reused {
				t.Fatalf("#%d: %d %d %+v %v", i, st, size, tm, err)
			}
			time.Sleep(100 * time.Millisecond) // the server closes the idle connection meanwhile
		}
	})
	t.Run("reset", func(t *testing.T) {
		var n atomic.Int32
		u, conns := rawServer(t, func(c net.Conn) {
			if n.Add(1) == 1 {
				canned(helloResp, 1)(c)
			}
			// Abortive close: the client sees a reset, not EOF.
			c.(*net.TCPConn).SetLinger(0)
		})
		c := newFast(t, u, 5*time.Second)
		if _, _, _, err := c.Get(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		// The kept connection is dead, and so is the one redialled: the
		// error is reported after a single retry.
		st, _, _, err := c.Get(context.Background())
		if st != 0 || err == nil || conns.Load() != 2 {
			t.Fatalf("%d %v after %d connections, want an error after 2", st, err, conns.Load())
		}
		if d := Describe(err); d != "connection reset by peer" && d != "EOF" {
			t.Errorf("Describe = %q (%v)", d, err)
		}
	})
	t.Run("fresh connection not retried", func(t *testing.T) {
		// Reading the request first makes the close a FIN (EOF), not a reset.
		u, conns := rawServer(t, func(c net.Conn) { readRequest(bufio.NewReader(c)) })
		c := newFast(t, u, 5*time.Second)
		if st, _, _, err := c.Get(context.Background()); st != 0 || Describe(err) != "EOF" || conns.Load() != 1 {
			t.Fatalf("%d %v after %d connections", st, err, conns.Load())
		}
	})
	t.Run("refused", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := ln.Addr().String()
		ln.Close()
		c := newFast(t, mustURL(t, "http://"+addr+"/"), 5*time.Second)
		if _, _, _, err := c.Get(context.Background()); Describe(err) != "connection refused" {
			t.Fatalf("%v", err)
		}
	})
}

// blockingServer answers nothing until the test ends.
func blockingServer(t *testing.T) *url.URL {
	stop := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/quick" {
			return
		}
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(stop); ts.Close() })
	return mustURL(t, ts.URL)
}

func TestFastTimeout(t *testing.T) {
	c := newFast(t, blockingServer(t), 100*time.Millisecond)
	start := time.Now()
	st, _, _, err := c.Get(context.Background())
	if el := time.Since(start); st != 0 || !IsTimeout(err) || Describe(err) != "timeout" || el > 2*time.Second {
		t.Fatalf("%d %v after %v", st, err, el)
	}
	if c.conn != nil {
		t.Error("timed-out connection kept")
	}
}

func TestFastCancel(t *testing.T) {
	u := blockingServer(t)
	c := newFast(t, u, 30*time.Second)
	quick := newFast(t, mustURL(t, u.String()+"/quick"), 30*time.Second)

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	st, _, _, err := c.Get(ctx)
	if el := time.Since(start); st != 0 || !errors.Is(err, ctx.Err()) || !errors.Is(err, context.Canceled) || el > 2*time.Second {
		t.Fatalf("%d %v after %v", st, err, el)
	}
	if _, _, _, err := c.Get(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("already cancelled: %v", err)
	}

	// A context ending at a deadline (the end of a run) is told apart from
	// the client's own timeout by errors.Is.
	dctx, dcancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer dcancel()
	if _, _, _, err := c.Get(dctx); !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, dctx.Err()) {
		t.Errorf("deadline: %v", err)
	}

	// A cancellation while the connection is idle does not spoil it for
	// the next context.
	ctx2, cancel2 := context.WithCancel(context.Background())
	if st, _, _, err := quick.Get(ctx2); err != nil || st != 200 {
		t.Fatal(st, err)
	}
	cancel2()
	time.Sleep(10 * time.Millisecond) // let the callback run
	if st, _, tm, err := quick.Get(context.Background()); err != nil || st != 200 || !tm.Reused {
		t.Fatalf("after idle cancel: %d %+v %v", st, tm, err)
	}
	ctx3, cancel3 := context.WithCancel(context.Background())
	defer cancel3()
	if st, _, tm, err := quick.Get(ctx3); err != nil || st != 200 || !tm.Reused {
		t.Fatalf("new context: %d %+v %v", st, tm, err)
	}
	quick.Close()
	if quick.stopWatch != nil || quick.conn != nil {
		t.Error("Close left the watch or the connection")
	}
}

// TestFastZeroAllocs checks that a request on a kept connection allocates
// nothing, with a cancellable context as the engine passes. The server
// allocates nothing either, since AllocsPerRun counts the whole process.
func TestFastZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under -race")
	}
	for _, resp := range []string{
		helloResp,
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + strings.Repeat("x", 5000),
	} {
		u, _ := rawServer(t, canned(resp, 0))
		for _, own := range []bool{false, true} {
			c := newFast(t, u, 5*time.Second)
			c.ownBuf = own
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var failed error
			get := func() {
				if _, _, _, err := c.Get(ctx); err != nil {
					failed = err
				}
			}
			get()
			if n := testing.AllocsPerRun(1000, get); n != 0 || failed != nil {
				t.Errorf("%.40q ownBuf=%v: %v allocs per Get (%v)", resp, own, n, failed)
			}
		}
	}
}

// TestFastHelperServer is the server of TestFastIdleFootprint, run in a
// child process so that its connections do not weigh in the figures.
func TestFastHelperServer(t *testing.T) {
	if os.Getenv("STAMPEDE_FAST_HELPER") != "1" {
		t.Skip("helper process only")
	}
	u, _ := rawServer(t, canned(helloResp, 0))
	fmt.Println(u.Host)
	io.Copy(io.Discard, os.Stdin) // until the parent closes it
}

// helperServer starts TestFastHelperServer in a child process, stopped at
// the end of the test, and returns its URL.
func helperServer(t testing.TB) *url.URL {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFastHelperServer$")
	cmd.Env = append(os.Environ(), "STAMPEDE_FAST_HELPER=1")
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
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return mustURL(t, "http://"+strings.TrimSpace(addr)+"/")
}

// TestFastIdleFootprint measures the memory of virtual users in think time:
// each a goroutine blocked after a request, holding its client and its
// kept connection. The budget is 32 KB a user.
func TestFastIdleFootprint(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("slow; skewed by -race")
	}
	users := 2000
	if s := os.Getenv("STAMPEDE_FAST_USERS"); s != "" {
		users, _ = strconv.Atoi(s)
	}
	u := helperServer(t)

	measure := func(get func() (func(), error)) float64 {
		var ready, done sync.WaitGroup
		release := make(chan struct{})
		sem := make(chan struct{}, 4) // a few requests at a time, as in a run
		var failed atomic.Value
		before := inUse()
		for range users {
			ready.Add(1)
			done.Go(func() {
				sem <- struct{}{}
				closer, err := get()
				<-sem
				if err != nil {
					failed.Store(err)
				}
				ready.Done()
				<-release // think time
				closer()
			})
		}
		ready.Wait()
		per := float64(inUse()-before) / float64(users)
		close(release)
		done.Wait()
		if err := failed.Load(); err != nil {
			t.Fatal(err)
		}
		return per
	}
	fast := func(own bool) func() (func(), error) {
		return func() (func(), error) {
			c, err := NewFastClient(u, 10*time.Second)
			if err != nil {
				return func() {}, err
			}
			c.ownBuf = own
			_, _, _, err = c.Get(context.Background())
			return func() { c.Close() }, err
		}
	}
	// A transport per user, so that each keeps its own idle connection as
	// a FastClient does (with a shared one, users in think time would
	// share the few connections of the requests in flight).
	nethttp := func() (func(), error) {
		tr := NewTransport(2, false, nil)
		b := New(Options{Transport: tr, Timeout: 10 * time.Second})
		_, _, err := b.Do(context.Background(), &Request{Method: "GET", URL: u.String()})
		return func() { tr.CloseIdleConnections() }, err
	}
	bare := measure(func() (func(), error) { return func() {}, nil })
	pooled := measure(fast(false))
	owned := measure(fast(true))
	viaNetHTTP := measure(nethttp)
	t.Logf("per idle user: goroutine alone %.1f KB; with FastClient and its connection %.1f KB (%.1f KB keeping its read buffer); with net/http %.1f KB",
		bare/1024, pooled/1024, owned/1024, viaNetHTTP/1024)
	if pooled > 32<<10 {
		t.Errorf("%.1f KB per idle user, budget 32 KB", pooled/1024)
	}
}

// inUse returns the heap and stack memory in use after a full collection
// (two, so that sync.Pool's victim cache is dropped too).
func inUse() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse + ms.StackInuse)
}

// pipeDial returns a dial function whose connections are in-memory pipes
// answering every request with resp and then closing. The server side
// drains what the client writes while it answers, as a kernel buffer would
// (net.Pipe has none).
func pipeDial(resp []byte, wg *sync.WaitGroup) func(context.Context, string, string) (net.Conn, error) {
	return func(context.Context, string, string) (net.Conn, error) {
		cli, srv := net.Pipe()
		wg.Go(func() {
			defer srv.Close()
			if readRequest(bufio.NewReader(srv)) != nil {
				return
			}
			wg.Go(func() { io.Copy(io.Discard, srv) })
			srv.Write(resp)
		})
		return cli, nil
	}
}

func FuzzFastResponse(f *testing.F) {
	for _, s := range []string{
		helloResp,
		"HTTP/1.0 200 OK\r\n\r\nabc",
		"HTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 200 OK\r\n\r\n",
		"HTTP/1.1 200 OK\nX: 1\n 2\nContent-Length: 0\n\n",
		"HTTP/1.1 101 Switching\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffff\r\n",
	} {
		f.Add([]byte(s))
	}
	u := &url.URL{Scheme: "http", Host: "fuzz.invalid", Path: "/"}
	f.Fuzz(func(t *testing.T, resp []byte) {
		var wg sync.WaitGroup
		defer wg.Wait()
		c, err := NewFastClient(u, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.dial = pipeDial(resp, &wg)
		// Twice: the second Get reuses a kept connection (reading what the
		// first left) or, having found it closed, dials again.
		for range 2 {
			start := time.Now()
			st, size, _, err := c.Get(context.Background())
			// The server closes after its answer: nothing may wait for the
			// deadline.
			if el := time.Since(start); el > time.Second {
				t.Fatalf("hung for %v: %v", el, err)
			}
			if err != nil {
				if st != 0 || size != 0 || c.conn != nil || !strings.HasPrefix(err.Error(), "session: ") {
					t.Fatalf("error %v with status %d size %d, connection kept %v", err, st, size, c.conn != nil)
				}
				return
			}
			if st < 200 || st > 999 || size < 0 || size > int64(len(resp)) {
				t.Fatalf("status %d size %d from %d bytes", st, size, len(resp))
			}
		}
	})
}

// benchServers runs a benchmark against net/http's server, against a raw
// server that allocates nothing, so that allocs/op are the client's alone,
// and against that raw server in a child process, so that cpu-ns/op is the
// client's alone too. All answer "hello world".
func benchServers(b *testing.B, run func(b *testing.B, u *url.URL)) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "hello world")
	}))
	defer ts.Close()
	raw, _ := rawServer(b, canned(helloResp, 0))
	for _, s := range []struct {
		name string
		u    *url.URL
	}{{"httptest", mustURL(b, ts.URL+"/")}, {"raw", raw}, {"external", helperServer(b)}} {
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := cpuTime()
			run(b, s.u)
			// Process CPU per request: client and server, or the client's
			// alone with the external server (the figure to compare with
			// wrk's).
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime returns the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkFastGet(b *testing.B) {
	benchServers(b, func(b *testing.B, u *url.URL) {
		c := newFast(b, u, 10*time.Second)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		for b.Loop() {
			if st, _, _, err := c.Get(ctx); err != nil || st != 200 {
				b.Fatal(st, err)
			}
		}
	})
}

func BenchmarkNetHTTPGet(b *testing.B) {
	benchServers(b, func(b *testing.B, u *url.URL) {
		tr := NewTransport(2, false, nil)
		defer tr.CloseIdleConnections()
		br := New(Options{Transport: tr, Timeout: 10 * time.Second})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req := &Request{Method: "GET", URL: u.String()}
		for b.Loop() {
			if p, _, err := br.Do(ctx, req); err != nil || p.Status != 200 {
				b.Fatal(p.Status, err)
			}
		}
	})
}

// TestFastTrailerLineAtBufferEnd checks a chunked trailer whose line fills
// the read buffer exactly, so that what is left of it is a bare CRLF (or
// LF): that remainder ends the long line, not the trailer, and the next
// response on the kept connection starts where it should.
func TestFastTrailerLineAtBufferEnd(t *testing.T) {
	for _, n := range []int{fastBufSize - 1, fastBufSize, fastBufSize + 1} {
		field := "T: " + strings.Repeat("x", n-3)
		resp := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n" + field + "\r\n\r\n"
		u, conns := rawServer(t, canned(resp, 0))
		c := newFast(t, u, 5*time.Second)
		for i := range 3 {
			st, size, tm, err := c.Get(context.Background())
			if err != nil || st != 200 || size != 2 || tm.Reused != (i > 0) {
				t.Fatalf("line of %d bytes, #%d: %d %d %+v %v", n, i, st, size, tm, err)
			}
		}
		if conns.Load() != 1 {
			t.Errorf("line of %d bytes: %d connections, want 1", n, conns.Load())
		}
	}
}
