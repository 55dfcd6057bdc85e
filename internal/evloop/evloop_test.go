//go:build linux

package evloop

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stampede-load/stampede/internal/session"
)

// rawServer accepts TCP connections on loopback and hands each to serve,
// closing it when serve returns. It counts the connections accepted. The
// returned function stops it and waits for its connections to close
// (also done at the end of the test).
func rawServer(t testing.TB, serve func(net.Conn)) (string, *atomic.Int32, func()) {
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
		once  sync.Once
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
	stop := func() {
		once.Do(func() {
			ln.Close()
			mu.Lock()
			for c := range open {
				c.Close()
			}
			mu.Unlock()
			wg.Wait()
		})
	}
	t.Cleanup(stop)
	return ln.Addr().String(), &conns, stop
}

// readRequest reads one request's header section (GETs have no body),
// returning its request line.
func readRequest(br *bufio.Reader) (string, error) {
	var first string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return first, err
		}
		if first == "" {
			first = line
			continue
		}
		if strings.TrimRight(line, "\r\n") == "" {
			return first, nil
		}
	}
}

// writer writes a response in pieces.
type writer func(c net.Conn, resp []byte) error

func writeWhole(c net.Conn, resp []byte) error {
	_, err := c.Write(resp)
	return err
}

// writeBytewise writes the first 400 bytes one at a time, pausing after
// each so that they arrive apart, then the rest at once.
func writeBytewise(c net.Conn, resp []byte) error {
	for i := range resp {
		if i == 400 {
			_, err := c.Write(resp[i:])
			return err
		}
		if _, err := c.Write(resp[i : i+1]); err != nil {
			return err
		}
		time.Sleep(100 * time.Microsecond)
	}
	return nil
}

// writeRandom writes in random pieces, mostly small.
func writeRandom(seed uint64) writer {
	return func(c net.Conn, resp []byte) error {
		split := randomSplit(seed)
		for len(resp) > 0 {
			k := min(split(len(resp)), len(resp))
			if _, err := c.Write(resp[:k]); err != nil {
				return err
			}
			resp = resp[k:]
			if k < 40 {
				time.Sleep(20 * time.Microsecond)
			}
		}
		return nil
	}
}

// canned answers up to max requests per connection (0: no limit) with
// resp, written by w, then closes the connection.
func canned(resp string, max int, w writer) func(net.Conn) {
	b := []byte(resp)
	return func(c net.Conn) {
		br := bufio.NewReader(c)
		for n := 0; max <= 0 || n < max; n++ {
			if _, err := readRequest(br); err != nil {
				return
			}
			if w(c, b) != nil {
				return
			}
		}
	}
}

func request(path string) []byte {
	return []byte("GET " + path + " HTTP/1.1\r\nHost: test\r\nUser-Agent: evloop-test\r\n\r\n")
}

// run runs a loop for cfg with users until stop, given the results so far,
// says so or limit passes. It returns the results and the loop.
func run(t testing.TB, cfg Config, users int, limit time.Duration, stop func([]Result) bool) ([]Result, *Loop) {
	t.Helper()
	if cfg.Request == nil {
		cfg.Request = request("/")
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var rs []Result
	cfg.OnResult = func(r Result) {
		rs = append(rs, r)
		if stop(rs) {
			cancel()
		}
	}
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l.SetUsers(users)
	if err := l.Run(ctx); err != nil {
		t.Fatal(err)
	}
	return rs, l
}

// atLeast stops a run after n results.
func atLeast(n int) func([]Result) bool { return func(rs []Result) bool { return len(rs) >= n } }

// TestResponses runs the parser's cases over real connections, written in
// one piece, byte by byte and in random pieces. The server answers one
// request per connection, so the second request finds the kept
// connection closed (or has none) and dials again.
func TestResponses(t *testing.T) {
	writers := []struct {
		name string
		w    writer
	}{{"whole", writeWhole}, {"bytewise", writeBytewise}, {"random", writeRandom(7)}}
	for _, tc := range parseCases {
		for _, w := range writers {
			t.Run(tc.name+"/"+w.name, func(t *testing.T) {
				t.Parallel()
				addr, conns, _ := rawServer(t, canned(tc.resp, 1, w.w))
				rs, _ := run(t, Config{Addr: addr, Timeout: 5 * time.Second}, 1, 10*time.Second, atLeast(2))
				if len(rs) < 2 {
					t.Fatalf("%d results", len(rs))
				}
				r := rs[0]
				if tc.err != "" {
					if r.Err == nil || !strings.Contains(r.Err.Error(), tc.err) || r.Status != 0 {
						t.Fatalf("got %d %d %v, want error %q", r.Status, r.Size, r.Err, tc.err)
					}
				} else if r.Err != nil || r.Status != tc.status || r.Size != tc.size || r.TTFB <= 0 || r.Reused || r.Connect <= 0 {
					t.Fatalf("got %+v, want %d %d", r, tc.status, tc.size)
				}
				if tc.used != 0 {
					return // what follows depends on how the extra bytes arrived
				}
				r = rs[1]
				if r.Reused || r.Connect <= 0 || (r.Err == nil) != (tc.err == "") || r.Status != rs[0].Status || conns.Load() != 2 {
					t.Errorf("second request: %+v after %d connections", r, conns.Load())
				}
			})
		}
	}
}

// TestTwoResponses sends two responses to each request, in one write: the
// connection is out of step and must not be reused.
func TestTwoResponses(t *testing.T) {
	addr, conns, _ := rawServer(t, canned(helloResp+helloResp, 0, writeWhole))
	rs, _ := run(t, Config{Addr: addr, Timeout: 5 * time.Second}, 1, 10*time.Second, atLeast(5))
	for i, r := range rs {
		if r.Err != nil || r.Status != 200 || r.Size != 11 || r.Reused {
			t.Errorf("#%d: %+v", i, r)
		}
	}
	if n := int(conns.Load()); n < len(rs) {
		t.Errorf("%d results over %d connections", len(rs), n)
	}
}

// TestKeepAlive checks that connections are reused, with and without
// think time.
func TestKeepAlive(t *testing.T) {
	for _, think := range []time.Duration{0, 5 * time.Millisecond} {
		addr, conns, _ := rawServer(t, canned(helloResp, 0, writeWhole))
		cfg := Config{Addr: addr, Timeout: 5 * time.Second}
		if think > 0 {
			cfg.Think = func() time.Duration { return think }
		}
		rs, _ := run(t, cfg, 3, 10*time.Second, atLeast(60))
		seen := map[int]bool{}
		for i, r := range rs {
			if r.Err != nil || r.Status != 200 || r.Size != 11 || r.Reused == !seen[r.User] || (r.Connect > 0) == r.Reused {
				t.Errorf("think %v #%d: %+v", think, i, r)
			}
			seen[r.User] = true
		}
		if n := conns.Load(); n != 3 {
			t.Errorf("think %v: %d connections for 3 users", think, n)
		}
	}
}

// TestIdleClose checks the redial when the server has closed a kept
// connection, and that it is tried once only.
func TestIdleClose(t *testing.T) {
	t.Run("after N requests", func(t *testing.T) {
		addr, conns, _ := rawServer(t, canned(helloResp, 2, writeWhole))
		rs, _ := run(t, Config{Addr: addr, Timeout: 5 * time.Second}, 1, 10*time.Second, atLeast(7))
		for i, r := range rs {
			if r.Err != nil || r.Status != 200 || r.Size != 11 || r.Reused != (i%2 == 1) || (r.Connect > 0) == r.Reused {
				t.Errorf("#%d: %+v", i, r)
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
		cfg := Config{Addr: ts.Listener.Addr().String(), Timeout: 5 * time.Second,
			Think: func() time.Duration { return 100 * time.Millisecond }}
		rs, _ := run(t, cfg, 1, 10*time.Second, atLeast(3))
		for i, r := range rs {
			if r.Err != nil || r.Status != 200 || r.Size != 2 || r.Reused {
				t.Errorf("#%d: %+v", i, r)
			}
		}
	})
	for _, think := range []time.Duration{0, 20 * time.Millisecond} {
		t.Run(fmt.Sprintf("reset think=%v", think), func(t *testing.T) {
			var n atomic.Int32
			addr, conns, _ := rawServer(t, func(c net.Conn) {
				if n.Add(1) == 1 {
					canned(helloResp, 1, writeWhole)(c)
				}
				// Abortive close: the client sees a reset, not EOF.
				c.(*net.TCPConn).SetLinger(0)
			})
			cfg := Config{Addr: addr, Timeout: 5 * time.Second}
			if think > 0 {
				cfg.Think = func() time.Duration { return think }
			}
			rs, _ := run(t, cfg, 1, 10*time.Second, atLeast(2))
			if rs[0].Err != nil {
				t.Fatal(rs[0].Err)
			}
			// The kept connection is dead, and so is the one dialled next:
			// the error is reported after a single new connection.
			r := rs[1]
			if r.Status != 0 || r.Err == nil || r.Reused || conns.Load() != 2 {
				t.Fatalf("%+v after %d connections, want an error after 2", r, conns.Load())
			}
			if d := session.Describe(r.Err); d != "connection reset by peer" && d != "EOF" {
				t.Errorf("Describe = %q (%v)", d, r.Err)
			}
		})
	}
	t.Run("fresh connection not retried", func(t *testing.T) {
		// Reading the request first makes the close a FIN (EOF), not a reset.
		addr, conns, _ := rawServer(t, func(c net.Conn) { readRequest(bufio.NewReader(c)) })
		rs, _ := run(t, Config{Addr: addr, Timeout: 5 * time.Second}, 1, 10*time.Second, atLeast(1))
		if r := rs[0]; r.Status != 0 || session.Describe(r.Err) != "EOF" || !errors.Is(r.Err, io.EOF) || conns.Load() != 1 {
			t.Fatalf("%+v after %d connections", r, conns.Load())
		}
	})
}

// TestReset cuts a response in the middle with a reset.
func TestReset(t *testing.T) {
	addr, _, _ := rawServer(t, func(c net.Conn) {
		readRequest(bufio.NewReader(c))
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhalf")
		time.Sleep(10 * time.Millisecond)
		c.(*net.TCPConn).SetLinger(0)
	})
	rs, _ := run(t, Config{Addr: addr, Timeout: 5 * time.Second}, 1, 10*time.Second, atLeast(3))
	for i, r := range rs {
		if r.Status != 0 || session.Describe(r.Err) != "connection reset by peer" || session.IsTimeout(r.Err) {
			t.Errorf("#%d: %+v", i, r)
		}
	}
}

func TestRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	rs, _ := run(t, Config{Addr: addr, Timeout: 5 * time.Second}, 2, 10*time.Second, atLeast(10))
	for i, r := range rs {
		if r.Status != 0 || session.Describe(r.Err) != "connection refused" || r.Reused {
			t.Errorf("#%d: %+v", i, r)
		}
	}
}

// stallServer reads requests and answers with prefix only, never more, on
// connections it holds until the test ends.
func stallServer(t *testing.T, prefix string) (string, *atomic.Int32, func()) {
	stop := make(chan struct{})
	addr, conns, closeAll := rawServer(t, func(c net.Conn) {
		if _, err := readRequest(bufio.NewReader(c)); err != nil {
			return
		}
		io.WriteString(c, prefix)
		<-stop
	})
	var once sync.Once
	end := func() {
		once.Do(func() { close(stop) })
		closeAll()
	}
	t.Cleanup(end)
	return addr, conns, end
}

func TestTimeout(t *testing.T) {
	for _, tc := range []struct {
		name, prefix, want string
	}{
		{"no answer", "", "evloop: read response: i/o timeout"},
		{"header", "HTTP/1.1 200 OK\r\nContent-", "evloop: read response: i/o timeout"},
		{"body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "evloop: read body: i/o timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, _, _ := stallServer(t, tc.prefix)
			start := time.Now()
			rs, _ := run(t, Config{Addr: addr, Timeout: 100 * time.Millisecond}, 1, 10*time.Second, atLeast(2))
			el := time.Since(start)
			for i, r := range rs {
				if r.Status != 0 || !session.IsTimeout(r.Err) || session.Describe(r.Err) != "timeout" ||
					!errors.Is(r.Err, os.ErrDeadlineExceeded) || r.Err.Error() != tc.want ||
					r.Latency < 100*time.Millisecond || r.Latency > time.Second {
					t.Errorf("#%d: %+v", i, r)
				}
			}
			if el > 2*time.Second {
				t.Errorf("two timeouts of 100 ms took %v", el)
			}
		})
	}
}

// TestThink checks that a user's requests are spaced by its think time.
func TestThink(t *testing.T) {
	addr, _, _ := rawServer(t, canned(helloResp, 0, writeWhole))
	const think = 40 * time.Millisecond
	var calls int
	cfg := Config{Addr: addr, Timeout: 5 * time.Second, Think: func() time.Duration { calls++; return think }}
	rs, _ := run(t, cfg, 2, 10*time.Second, atLeast(10))
	last := map[int]Result{}
	gaps := 0
	for _, r := range rs {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		if p, ok := last[r.User]; ok {
			gap := r.Start.Sub(p.Start.Add(p.Latency))
			if gap < think || gap > think+500*time.Millisecond {
				t.Errorf("user %d: %v between requests, think time %v", r.User, gap, think)
			}
			gaps++
		}
		last[r.User] = r
	}
	if gaps < 8 || calls < len(rs) {
		t.Errorf("%d gaps, %d Think calls for %d results", gaps, calls, len(rs))
	}
}

// TestSetUsers raises and lowers the users while the loop runs: users
// mostly thinking (stopped at once), and users mostly waiting for a slow
// response (stopped after it).
func TestSetUsers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		think time.Duration
		delay time.Duration
	}{{"thinking", 2 * time.Millisecond, 0}, {"in flight", 0, 2 * time.Millisecond}} {
		t.Run(tc.name, func(t *testing.T) {
			testSetUsers(t, tc.think, tc.delay)
		})
	}
}

func testSetUsers(t *testing.T, think, delay time.Duration) {
	addr, _, _ := rawServer(t, canned(helloResp, 0, func(c net.Conn, resp []byte) error {
		time.Sleep(delay)
		return writeWhole(c, resp)
	}))
	var mu sync.Mutex
	counts := map[int]int{}
	cfg := Config{Addr: addr, Request: request("/"), Timeout: 5 * time.Second,
		OnResult: func(r Result) {
			if r.Err != nil {
				t.Error(r.Err)
			}
			mu.Lock()
			counts[r.User]++
			mu.Unlock()
		}}
	if think > 0 {
		cfg.Think = func() time.Duration { return think }
	}
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l.SetUsers(2) // before Run
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.Run(ctx) }()

	// users returns who has made requests in the next d.
	users := func(d time.Duration) []int {
		time.Sleep(50 * time.Millisecond) // the users stopped end their request
		mu.Lock()
		clear(counts)
		mu.Unlock()
		time.Sleep(d)
		mu.Lock()
		defer mu.Unlock()
		var us []int
		for u, n := range counts {
			if n > 0 {
				us = append(us, u)
			}
		}
		slices.Sort(us)
		return us
	}
	for _, n := range []int{2, 5, 1, 0, 3, 3, 7, 4} {
		l.SetUsers(n)
		got := users(150 * time.Millisecond)
		var want []int
		for u := 1; u <= n; u++ {
			want = append(want, u)
		}
		if !slices.Equal(got, want) {
			t.Errorf("SetUsers(%d): users %v made requests", n, got)
		}
		if f := l.InFlight(); f > n {
			t.Errorf("SetUsers(%d): %d in flight", n, f)
		}
	}
	// Quick changes, the last one counting.
	for _, n := range []int{10, 0, 6, 1, 2} {
		l.SetUsers(n)
	}
	if got := users(150 * time.Millisecond); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("after quick changes to 2: users %v", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// openFDs counts the process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestCancel ends a run with every request in flight: Run returns at once,
// reports none of them, counts them as aborted, and leaves no descriptor
// or goroutine behind.
func TestCancel(t *testing.T) {
	addr, conns, stopServer := stallServer(t, "")
	fds, goroutines := openFDs(t), runtime.NumGoroutine()

	const users = 20
	var reported atomic.Int32
	l, err := New(Config{Addr: addr, Request: request("/"), Timeout: 30 * time.Second,
		OnResult: func(Result) { reported.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUsers(users)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.Run(ctx) }()
	for deadline := time.Now().Add(5 * time.Second); conns.Load() < users || l.InFlight() < users; {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections, %d in flight", conns.Load(), l.InFlight())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancelRun(t, cancel, done)
	if n := l.Aborted(); n != users || reported.Load() != 0 || l.InFlight() != 0 {
		t.Errorf("%d aborted, %d reported, %d in flight; want %d, 0, 0", n, reported.Load(), l.InFlight(), users)
	}
	stopServer()
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		f, g := openFDs(t), runtime.NumGoroutine()
		if f <= fds && g <= goroutines {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d descriptors and %d goroutines open, %d and %d before", f, g, fds, goroutines)
		}
	}

	// A cancelled context before Run: it returns at once.
	if err := l.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestRunTwice checks that overlapping Runs are refused and that a loop
// runs again after its Run returned.
func TestRunTwice(t *testing.T) {
	addr, _, _ := rawServer(t, canned(helloResp, 0, writeWhole))
	var n atomic.Int32
	l, err := New(Config{Addr: addr, Request: request("/"), OnResult: func(Result) { n.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUsers(1)
	for range 2 {
		n.Store(0)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- l.Run(ctx) }()
		for l.InFlight() == 0 && n.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		if err := l.Run(ctx); !errors.Is(err, errRunning) {
			t.Errorf("second Run: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
		cancel()
		if err := <-done; err != nil || n.Load() == 0 {
			t.Fatalf("%v after %d results", err, n.Load())
		}
	}
}

// TestLargeRequest writes a request larger than the socket's buffer, so
// that the write is partial and completes when the socket is writable.
func TestLargeRequest(t *testing.T) {
	addr, _, _ := rawServer(t, func(c net.Conn) {
		br := bufio.NewReaderSize(c, 64<<10)
		for {
			if _, err := readRequest(br); err != nil {
				return
			}
			time.Sleep(5 * time.Millisecond) // let the client's buffer fill
			io.WriteString(c, helloResp)
		}
	})
	var b strings.Builder
	b.WriteString("GET / HTTP/1.1\r\nHost: test\r\n")
	for range 8000 {
		b.WriteString("X-Pad: " + strings.Repeat("p", 1000) + "\r\n")
	}
	b.WriteString("\r\n")
	rs, _ := run(t, Config{Addr: addr, Request: []byte(b.String()), Timeout: 10 * time.Second}, 2, 20*time.Second, atLeast(4))
	for i, r := range rs {
		if r.Err != nil || r.Status != 200 || r.Size != 11 {
			t.Errorf("#%d: %+v", i, r)
		}
	}
}

// TestFrom dials from the source address of each user.
func TestFrom(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]bool{}
	addr, _, _ := rawServer(t, func(c net.Conn) {
		mu.Lock()
		seen[c.RemoteAddr().(*net.TCPAddr).IP.String()] = true
		mu.Unlock()
		canned(helloResp, 0, writeWhole)(c)
	})
	from := func(u int) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 0, byte(1 + u)}) }
	// Until every user has had a response: 30 results may all be one
	// user's while the server has yet to run the others' handlers.
	everyUser := func(rs []Result) bool {
		users := map[int]bool{}
		for _, r := range rs {
			users[r.User] = true
		}
		return len(rs) >= 30 && len(users) == 3
	}
	rs, _ := run(t, Config{Addr: addr, From: from, Timeout: 5 * time.Second}, 3, 10*time.Second, everyUser)
	for i, r := range rs {
		if r.Err != nil || r.Status != 200 {
			t.Fatalf("#%d: %+v", i, r)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 || !seen["127.0.0.2"] || !seen["127.0.0.3"] || !seen["127.0.0.4"] {
		t.Errorf("connections from %v", seen)
	}

	// A source address of the other family has nothing to dial.
	v6 := func(int) netip.Addr { return netip.IPv6Loopback() }
	rs, _ = run(t, Config{Addr: addr, From: v6, Timeout: 5 * time.Second}, 1, 10*time.Second, atLeast(1))
	if rs[0].Err == nil || !strings.Contains(rs[0].Err.Error(), "family") {
		t.Errorf("IPv6 source to IPv4 target: %+v", rs[0])
	}
}

// TestResolve dials a host name, resolved by New.
func TestResolve(t *testing.T) {
	addr, _, _ := rawServer(t, canned(helloResp, 0, writeWhole))
	_, port, _ := net.SplitHostPort(addr)
	rs, _ := run(t, Config{Addr: "localhost:" + port, Timeout: 5 * time.Second}, 1, 10*time.Second, atLeast(3))
	for i, r := range rs {
		if r.Err != nil || r.Status != 200 {
			t.Errorf("#%d: %+v", i, r)
		}
	}
	for _, bad := range []Config{
		{Addr: "", Request: request("/")},
		{Addr: "127.0.0.1:80"},
		{Addr: "no-port", Request: request("/")},
	} {
		if _, err := New(bad); err == nil || !strings.HasPrefix(err.Error(), "evloop: ") {
			t.Errorf("New(%q, %q): %v", bad.Addr, bad.Request, err)
		}
	}
}

// TestFallback dials the addresses of a name in turn when one refuses, and
// starts with the one that answered at the next dial.
func TestFallback(t *testing.T) {
	addr, conns, _ := rawServer(t, canned(helloResp, 1, writeWhole))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	var rs []Result
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, err := New(Config{Addr: addr, Request: request("/"), Timeout: 5 * time.Second, OnResult: func(r Result) {
		if rs = append(rs, r); len(rs) == 3 {
			cancel()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	sa, family, _ := sockaddr(closed.Addr(), closed.Port())
	l.dest.sys.addrs = append([]target{{sa, family}}, l.dest.sys.addrs...) // as if the name had both
	l.SetUsers(1)
	if err := l.Run(ctx); err != nil {
		t.Fatal(err)
	}
	for i, r := range rs {
		if r.Err != nil || r.Status != 200 || r.Reused {
			t.Errorf("#%d: %+v", i, r)
		}
	}
	if l.dest.sys.primary != 1 || conns.Load() != 3 {
		t.Errorf("primary address %d after %d connections", l.dest.sys.primary, conns.Load())
	}
}

// parityServer serves /case/N with the response cases() gives for N, then
// closes the connection.
func parityServer(t testing.TB, cases func(n int) (string, bool)) string {
	addr, _, _ := rawServer(t, func(c net.Conn) {
		line, err := readRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		var n int
		if _, err := fmt.Sscanf(line, "GET /case/%d ", &n); err != nil {
			return
		}
		if resp, ok := cases(n); ok {
			io.WriteString(c, resp)
		}
	})
	return addr
}

// parity reads /case/n with session.FastClient and with a loop, and
// describes how their results differ ("" if they agree on status, size
// and the failure's description).
func parity(t testing.TB, addr string, n int) string {
	path := fmt.Sprintf("/case/%d", n)
	fc, err := session.NewFastClient(&url.URL{Scheme: "http", Host: addr, Path: path}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	st, size, _, ferr := fc.Get(context.Background())
	fc.Close()
	rs, _ := run(t, Config{Addr: addr, Request: request(path), Timeout: 5 * time.Second}, 1, 10*time.Second, atLeast(1))
	r := rs[0]
	if r.Status != st || r.Size != size || (r.Err == nil) != (ferr == nil) || session.Describe(r.Err) != session.Describe(ferr) {
		return fmt.Sprintf("fast   %d %d %v\nevloop %d %d %v", st, size, ferr, r.Status, r.Size, r.Err)
	}
	return ""
}

// TestParity reads the same responses with session.FastClient and with the
// loop, from one raw server: the parser's cases, then random mutations of
// them. Status, size and the failure's description must agree.
func TestParity(t *testing.T) {
	cases := []string{}
	for _, tc := range parseCases {
		cases = append(cases, tc.resp)
	}
	rng := rand.New(rand.NewPCG(18, 3))
	const alphabet = "\r\n :;\t0aA1-,"
	for _, tc := range parseCases {
		if len(tc.resp) > 3000 {
			continue
		}
		for range 8 {
			b := []byte(tc.resp)
			for range 1 + rng.IntN(3) {
				i := rng.IntN(len(b) + 1)
				switch rng.IntN(4) {
				case 0: // delete
					if i < len(b) {
						b = slices.Delete(b, i, i+1)
					}
				case 1: // insert
					b = slices.Insert(b, i, alphabet[rng.IntN(len(alphabet))])
				case 2: // replace
					if i < len(b) {
						b[i] = alphabet[rng.IntN(len(alphabet))]
					}
				case 3: // cut
					b = b[:i]
				}
			}
			cases = append(cases, string(b))
		}
	}
	addr := parityServer(t, func(n int) (string, bool) {
		if n >= len(cases) {
			return "", false
		}
		return cases[n], true
	})
	mismatches := 0
	for n, resp := range cases {
		if d := parity(t, addr, n); d != "" {
			t.Errorf("case %d %.80q:\n%s", n, resp, d)
			if mismatches++; mismatches > 10 {
				t.FailNow()
			}
		}
	}
	t.Logf("%d responses compared", len(cases))
}

// FuzzParity compares session.FastClient and the loop on any response.
func FuzzParity(f *testing.F) {
	for _, tc := range parseCases {
		if len(tc.resp) < 5000 {
			f.Add([]byte(tc.resp))
		}
	}
	var (
		mu    sync.Mutex
		cases = map[int]string{}
		next  int
	)
	addr := parityServer(f, func(n int) (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		resp, ok := cases[n]
		return resp, ok
	})
	f.Fuzz(func(t *testing.T, resp []byte) {
		mu.Lock()
		n := next
		next++
		cases[n] = string(resp)
		mu.Unlock()
		defer func() {
			mu.Lock()
			delete(cases, n)
			mu.Unlock()
		}()
		if d := parity(t, addr, n); d != "" {
			t.Fatalf("%q:\n%s", resp, d)
		}
	})
}

// TestZeroAllocs checks that requests over kept connections allocate
// nothing, with and without think time, for bodies by length and chunked.
// The server allocates nothing per request either: the count is the
// process's.
func TestZeroAllocs(t *testing.T) {
	for _, resp := range []string{
		helloResp,
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n6\r\n world\r\n0\r\nT: 1\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + strings.Repeat("x", 5000),
	} {
		for _, think := range []time.Duration{0, time.Microsecond} {
			addr, _, _ := rawServer(t, cannedNoAlloc(resp))
			cfg := Config{Addr: addr, Timeout: 5 * time.Second}
			if think > 0 {
				cfg.Think = func() time.Duration { return think }
			}
			const warm, measured = 200, 3000
			var before, after runtime.MemStats
			rs, _ := run(t, cfg, 4, 20*time.Second, func(rs []Result) bool {
				switch len(rs) {
				case warm:
					runtime.ReadMemStats(&before)
				case warm + measured:
					runtime.ReadMemStats(&after)
					return true
				}
				return false
			})
			for _, r := range rs {
				if r.Err != nil {
					t.Fatal(r.Err)
				}
			}
			// rs grows by appending: a doubling now and then.
			if n := after.Mallocs - before.Mallocs; n > 20 {
				t.Errorf("%.30q think %v: %d allocations in %d requests", resp, think, n, measured)
			}
		}
	}
}

// cannedNoAlloc answers every request with resp without allocating per
// request: it looks for the blank line ending each request in a fixed
// buffer.
func cannedNoAlloc(resp string) func(net.Conn) {
	b := []byte(resp)
	crlf2 := []byte("\r\n\r\n")
	return func(c net.Conn) {
		buf := make([]byte, 4096)
		have := 0
		for {
			n, err := c.Read(buf[have:])
			if err != nil {
				return
			}
			have += n
			for {
				i := bytes.Index(buf[:have], crlf2)
				if i < 0 {
					break
				}
				copy(buf, buf[i+4:have])
				have -= i + 4
				if _, err := c.Write(b); err != nil {
					return
				}
			}
		}
	}
}

// TestOnPassAfterResults checks that every result given to OnResult is
// followed by an OnPass before the loop waits or returns: a caller batching
// results at OnPass loses none, the last pass's included, and is not called
// once a request (several users' responses arrive in one pass).
func TestOnPassAfterResults(t *testing.T) {
	addr, _, _ := rawServer(t, canned(helloResp, 0, writeWhole))
	var results, passes, pending int // on the loop's goroutine only
	l, err := New(Config{Addr: addr, Request: request("/"),
		OnResult: func(Result) { results++; pending++ },
		OnPass: func() {
			passes++
			pending = 0
		}})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUsers(20)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := l.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if results == 0 {
		t.Fatal("no results")
	}
	if pending != 0 {
		t.Errorf("%d results of %d not followed by an OnPass", pending, results)
	}
	if passes >= results {
		t.Errorf("%d passes for %d results: one pass per request or more", passes, results)
	}
}

// Turn is the loop's longest turn since the last call: a pass held up by
// what it does (here the handler of a pass's results, sleeping 40 ms once) shows in
// it, and the next measure starts afresh.
func TestTurn(t *testing.T) {
	addr, _, stop := rawServer(t, canned("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0, writeWhole))
	defer stop()
	passes := 0
	_, l := run(t, Config{Addr: addr, OnPass: func() {
		if passes++; passes == 5 {
			time.Sleep(40 * time.Millisecond)
		}
	}}, 1, 2*time.Second, atLeast(20))
	if turn := l.Turn(); turn < 40*time.Millisecond {
		t.Errorf("longest turn %v, want at least the 40 ms a pass slept", turn)
	}
	if turn := l.Turn(); turn != 0 {
		t.Errorf("turn %v right after a measure, want 0 (a new measure)", turn)
	}
}

// TestKeepP runs a loop that keeps its P while it waits (Config.KeepP):
// its users think, answer and time out as in a loop that does not; the
// world stops for the collector while it waits (the runtime signals its
// thread out of the wait); another goroutine's timers fire meanwhile on the
// process's other P; a change of users wakes it; Run returns at once when
// cancelled.
func TestKeepP(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("KeepP is for a process with a P besides the loop's")
	}
	addr, _, _ := rawServer(t, canned(helloResp, 0, writeWhole))
	var results atomic.Int32
	l, err := New(Config{Addr: addr, Request: request("/"), Timeout: 5 * time.Second, KeepP: true,
		Think: func() time.Duration { return 25 * time.Millisecond },
		OnResult: func(r Result) {
			if r.Err != nil {
				t.Error(r.Err)
			}
			results.Add(1)
		}})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUsers(4)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()

	// Timers of another goroutine keep time while the loop waits.
	var late atomic.Int64
	tick := make(chan struct{})
	go func() {
		defer close(tick)
		for range 100 {
			at := time.Now()
			time.Sleep(2 * time.Millisecond)
			if d := time.Since(at) - 2*time.Millisecond; d > time.Duration(late.Load()) {
				late.Store(int64(d))
			}
		}
	}()
	for range 10 {
		start := time.Now()
		runtime.GC() // stops the world: the loop's thread must come out of its wait
		if d := time.Since(start); d > time.Second {
			t.Errorf("a collection took %v with the loop waiting", d)
		}
		time.Sleep(5 * time.Millisecond)
	}
	<-tick
	// The process has another P, so the others' timers fire within a few ms
	// on a quiet machine; half a second late means they were starved (a
	// busy CI machine delays them by tens of ms, which is not the loop's).
	if d := time.Duration(late.Load()); d > 500*time.Millisecond {
		t.Errorf("another goroutine's 2 ms timer fired up to %v late while the loop waited", d)
	}
	before := results.Load()
	l.SetUsers(8) // wakes the loop out of its wait
	for deadline := time.Now().Add(5 * time.Second); results.Load() < before+40; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d results after raising the users, %d before", results.Load(), before)
		}
	}
	cancelRun(t, cancel, done)
}

// cancelRun cancels a loop's Run and checks that it returns at once and
// without an error.
func cancelRun(t *testing.T, cancel func(), done <-chan error) {
	t.Helper()
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return")
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("Run returned %v after the cancellation", d)
	}
}
