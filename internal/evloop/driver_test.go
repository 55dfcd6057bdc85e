//go:build linux

package evloop

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Tests of Config.Driver and Config.IdleClose, against real loopback
// servers.

// step is what a recDriver's Next returns: the request for path, or, when
// path is "", no request and pause.
type step struct {
	path  string
	pause time.Duration
}

// hold is the pause until the end of the run.
var hold = step{pause: -1}

// field is a header field as told to Field.
type field struct{ name, value string }

// devent is something a recDriver was told or asked.
type devent struct {
	at       time.Time
	kind     string // "next", "done" or "stop"
	user     int
	path     string        // next: the path sent ("" for a pause); done: the hop sent, if any
	pause    time.Duration // next, when path is ""
	stopping bool          // next: Next's stopping
	// For a done: the request's result, and the header fields and body
	// bytes told while it was under way.
	r      Result
	fields []field
	body   []byte
	nexts  int // for a done: the user's Next calls so far
}

// recDriver is a Driver that records what it is told and asked. Its Next
// returns steps(user, i) at a user's i-th call (from 0), or when stopping
// onStop(user, i) (nil onStop: no request, the user stops); its Done
// returns the request for hop(r, fields), when hop is set and that is not
// "". Requests go to Config.Addr.
// Each user's requests are written into one buffer of its own, rewritten
// at every request: the loop must not keep a request's bytes past its
// Done.
type recDriver struct {
	steps  func(user, i int) step
	onStop func(user, i int) step
	hop    func(r Result, fields []field) string
	// dest, when set, gives where the request for a path goes (nil:
	// Config.Addr).
	dest func(path string) *Dest

	mu     sync.Mutex
	events []devent
	nexts  map[int]int
	bufs   map[int][]byte
	fields map[int][]field
	bodies map[int][]byte
}

func newRecDriver(steps func(user, i int) step, hop func(r Result, fields []field) string) *recDriver {
	return &recDriver{steps: steps, hop: hop, nexts: map[int]int{}, bufs: map[int][]byte{},
		fields: map[int][]field{}, bodies: map[int][]byte{}}
}

// reqBytes writes the request for path into user's buffer.
func (d *recDriver) reqBytes(user int, path string) []byte {
	b := append(d.bufs[user][:0], "GET "...)
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: test\r\nUser-Agent: evloop-driver-test\r\n\r\n"...)
	d.bufs[user] = b
	return b
}

func (d *recDriver) Next(user int, stopping bool) ([]byte, *Dest, time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	i := d.nexts[user]
	d.nexts[user]++
	var s step
	switch {
	case !stopping:
		s = d.steps(user, i)
	case d.onStop != nil:
		s = d.onStop(user, i)
	}
	d.events = append(d.events, devent{at: time.Now(), kind: "next", user: user, path: s.path, pause: s.pause, stopping: stopping})
	if s.path == "" {
		return nil, nil, s.pause
	}
	return d.reqBytes(user, s.path), d.to(s.path), 0
}

// to returns where the request for path goes.
func (d *recDriver) to(path string) *Dest {
	if d.dest == nil {
		return nil
	}
	return d.dest(path)
}

func (d *recDriver) Field(user int, name, value []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fields[user] = append(d.fields[user], field{string(name), string(value)})
}

func (d *recDriver) Body(user int, p []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.bodies[user] = append(d.bodies[user], p...)
}

func (d *recDriver) Done(r Result) ([]byte, *Dest) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ev := devent{at: time.Now(), kind: "done", user: r.User, r: r, fields: d.fields[r.User],
		body: d.bodies[r.User], nexts: d.nexts[r.User]}
	delete(d.fields, r.User)
	delete(d.bodies, r.User)
	var req []byte
	var to *Dest
	if d.hop != nil {
		if ev.path = d.hop(r, ev.fields); ev.path != "" {
			req, to = d.reqBytes(r.User, ev.path), d.to(ev.path)
		}
	}
	d.events = append(d.events, ev)
	return req, to
}

func (d *recDriver) Stop(user int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.events = append(d.events, devent{at: time.Now(), kind: "stop", user: user})
}

// list returns the events of kind ("": any) for user (0: any).
func (d *recDriver) list(kind string, user int) []devent {
	d.mu.Lock()
	defer d.mu.Unlock()
	var evs []devent
	for _, ev := range d.events {
		if (kind == "" || ev.kind == kind) && (user == 0 || ev.user == user) {
			evs = append(evs, ev)
		}
	}
	return evs
}

func (d *recDriver) count(kind string, user int) int { return len(d.list(kind, user)) }

// hopTo follows a 3xx response's Location field, as a browser would.
func hopTo(r Result, fields []field) string {
	if r.Err != nil || r.Status/100 != 3 {
		return ""
	}
	for _, f := range fields {
		if strings.EqualFold(f.name, "location") {
			return f.value
		}
	}
	return ""
}

// reply is how a recServer answers a request.
type reply struct {
	resp  string        // written after delay; "" closes the connection without a response
	delay time.Duration // before the response (or the close)
	close bool          // close the connection after the response
	reset bool          // close it abortively, with a reset
}

// srvConn is what a recServer saw of one connection.
type srvConn struct {
	paths    []string
	reqAt    []time.Time // when each request was read
	sentAt   []time.Time // when each response was written
	closedAt time.Time   // when the client closed it; zero while open
}

// recServer answers requests as answer says, written by w, and records
// them per connection.
type recServer struct {
	addr  string
	conns *atomic.Int32
	mu    sync.Mutex
	log   []*srvConn
}

func newRecServer(t *testing.T, w writer, answer func(path string) reply) *recServer {
	t.Helper()
	s := &recServer{}
	quit := make(chan struct{})
	s.addr, s.conns, _ = rawServer(t, func(c net.Conn) {
		sc := &srvConn{}
		s.mu.Lock()
		s.log = append(s.log, sc)
		s.mu.Unlock()
		br := bufio.NewReader(c)
		for {
			line, err := readRequest(br)
			if err != nil {
				if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
					s.mu.Lock()
					sc.closedAt = time.Now()
					s.mu.Unlock()
				}
				return
			}
			var path string
			if f := strings.Fields(line); len(f) >= 2 {
				path = f[1]
			}
			s.mu.Lock()
			sc.paths = append(sc.paths, path)
			sc.reqAt = append(sc.reqAt, time.Now())
			s.mu.Unlock()
			rp := answer(path)
			if rp.delay > 0 {
				select {
				case <-time.After(rp.delay):
				case <-quit:
					return
				}
			}
			if rp.reset {
				c.(*net.TCPConn).SetLinger(0)
			}
			if rp.resp == "" {
				return
			}
			if w(c, []byte(rp.resp)) != nil {
				return
			}
			s.mu.Lock()
			sc.sentAt = append(sc.sentAt, time.Now())
			s.mu.Unlock()
			if rp.close {
				return
			}
		}
	})
	t.Cleanup(func() { close(quit) }) // before rawServer's own cleanup
	return s
}

// snap returns a copy of the connections seen, in the order accepted.
func (s *recServer) snap() []srvConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := make([]srvConn, len(s.log))
	for i, sc := range s.log {
		cs[i] = srvConn{slices.Clone(sc.paths), slices.Clone(sc.reqAt), slices.Clone(sc.sentAt), sc.closedAt}
	}
	return cs
}

// paths returns the paths requested on every connection, in the order
// accepted.
func (s *recServer) paths() [][]string {
	var ps [][]string
	for _, c := range s.snap() {
		ps = append(ps, c.paths)
	}
	return ps
}

// startDriver runs a loop for cfg with users in a goroutine. The returned
// function ends the run and waits for Run to return (also done at the end
// of the test).
func startDriver(t *testing.T, cfg Config, users int) (*Loop, func()) {
	t.Helper()
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l, runDriver(t, l, users)
}

// runDriver is startDriver for a loop already made.
func runDriver(t *testing.T, l *Loop, users int) func() {
	t.Helper()
	l.SetUsers(users)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Error(err)
				}
			case <-time.After(2 * time.Second):
				t.Error("Run did not return within 2 s of the cancellation")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitFor waits up to limit for cond to hold.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: still waiting for %s", limit, what)
		}
	}
}

// TestDriverRequests runs users sending requests of their own, different
// at each turn: each user's arrive in order on its own kept connection.
func TestDriverRequests(t *testing.T) {
	const users, turns = 3, 5
	srv := newRecServer(t, writeWhole, func(string) reply { return reply{resp: helloResp} })
	d := newRecDriver(func(user, i int) step {
		if i < turns {
			return step{path: fmt.Sprintf("/u%d/%d", user, i)}
		}
		return hold
	}, nil)
	_, stop := startDriver(t, Config{Addr: srv.addr, Driver: d, Timeout: 2 * time.Second}, users)
	waitFor(t, 2*time.Second, "every user to hold", func() bool { return d.count("next", 0) == users*(turns+1) })
	time.Sleep(50 * time.Millisecond) // no more Next for users holding
	if n := d.count("next", 0); n != users*(turns+1) {
		t.Errorf("%d Next calls, want %d", n, users*(turns+1))
	}
	stop()

	conns := srv.snap()
	if len(conns) != users {
		t.Fatalf("%d connections for %d users", len(conns), users)
	}
	seen := map[int]bool{}
	for _, c := range conns {
		var u int
		if len(c.paths) > 0 {
			fmt.Sscanf(c.paths[0], "/u%d/", &u)
		}
		var want []string
		for k := range turns {
			want = append(want, fmt.Sprintf("/u%d/%d", u, k))
		}
		if u < 1 || u > users || seen[u] || !slices.Equal(c.paths, want) {
			t.Errorf("connection with %q", c.paths)
		}
		seen[u] = true
	}
	for u := 1; u <= users; u++ {
		dones := d.list("done", u)
		if len(dones) != turns {
			t.Errorf("user %d: %d Done calls, want %d", u, len(dones), turns)
			continue
		}
		for k, ev := range dones {
			r := ev.r
			if r.Err != nil || r.Status != 200 || r.Size != 11 || r.User != u || r.Reused != (k > 0) || (r.Connect > 0) == r.Reused ||
				string(ev.body) != "hello world" || ev.nexts != k+1 {
				t.Errorf("user %d request %d: %+v, body %q after %d Next", u, k, r, ev.body, ev.nexts)
			}
			if k > 0 && !r.Start.After(dones[k-1].r.Start) {
				t.Errorf("user %d request %d started at %v, before the previous one", u, k, r.Start)
			}
		}
	}
}

// driverChunked is a chunked response after a 100 Continue with a field
// of its own; its fields' values have whitespace to trim.
const driverChunked = "HTTP/1.1 100 Continue\r\nX-Interim: yes\r\n\r\n" +
	"HTTP/1.1 200 OK\r\n" +
	"Set-Cookie: a=1; Path=/\r\n" +
	"Set-Cookie:   b=2  \r\n" +
	"Location:\t/next \r\n" +
	"X-Thing: some  value\r\n" +
	"X-Empty:\r\n" +
	"Transfer-Encoding: chunked\r\n" +
	"\r\n" +
	"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n"

// TestDriverFieldBody checks that Field sees every field of the final
// response once, trimmed, and not those of a 1xx; and that Body's bytes
// make the body, de-chunked, however the response is split.
func TestDriverFieldBody(t *testing.T) {
	big := make([]byte, 150000)
	for i := range big {
		big[i] = byte('a' + i%23)
	}
	cases := []struct {
		name   string
		resp   string
		keep   bool // the connection is kept
		fields []field
		body   string
	}{
		{"chunked", driverChunked, true, []field{
			{"Set-Cookie", "a=1; Path=/"},
			{"Set-Cookie", "b=2"},
			{"Location", "/next"},
			{"X-Thing", "some  value"},
			{"X-Empty", ""},
			{"Transfer-Encoding", "chunked"},
		}, "hello, world"},
		{"length", "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" +
			"HTTP/1.1 200 OK\r\nContent-Length: 150000\r\nX-Thing:  x \r\n\r\n" + string(big), true, []field{
			{"Content-Length", "150000"},
			{"X-Thing", "x"},
		}, string(big)},
		{"until EOF", "HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nbody to eof", false, []field{{"X-A", "1"}}, "body to eof"},
		// A field line longer than 4 KiB is skipped unseen.
		{"long field", "HTTP/1.1 200 OK\r\nX-Long: " + strings.Repeat("l", 5000) + "\r\nX-After: 2\r\nContent-Length: 2\r\n\r\nok", true,
			[]field{{"X-After", "2"}, {"Content-Length", "2"}}, "ok"},
	}
	writers := []struct {
		name string
		w    writer
	}{{"whole", writeWhole}, {"bytewise", writeBytewise}, {"random", writeRandom(11)}}
	for _, tc := range cases {
		for _, w := range writers {
			t.Run(tc.name+"/"+w.name, func(t *testing.T) {
				srv := newRecServer(t, w.w, func(string) reply { return reply{resp: tc.resp, close: !tc.keep} })
				d := newRecDriver(func(user, i int) step {
					if i < 2 {
						return step{path: "/"}
					}
					return hold
				}, nil)
				_, stop := startDriver(t, Config{Addr: srv.addr, Driver: d, Timeout: 2 * time.Second}, 1)
				waitFor(t, 2*time.Second, "two responses", func() bool { return d.count("next", 1) == 3 })
				stop()
				dones := d.list("done", 1)
				if len(dones) != 2 {
					t.Fatalf("%d Done calls", len(dones))
				}
				for k, ev := range dones {
					r := ev.r
					if r.Err != nil || r.Status != 200 || r.Size != int64(len(tc.body)) || r.Reused != (k > 0 && tc.keep) {
						t.Errorf("request %d: %+v", k, r)
					}
					if !slices.Equal(ev.fields, tc.fields) {
						t.Errorf("request %d: fields %q, want %q", k, ev.fields, tc.fields)
					}
					if string(ev.body) != tc.body {
						t.Errorf("request %d: body of %d bytes %.40q, want %d bytes %.40q", k, len(ev.body), ev.body, len(tc.body), tc.body)
					}
				}
				wantConns := int32(1)
				if !tc.keep {
					wantConns = 2
				}
				if n := srv.conns.Load(); n != wantConns {
					t.Errorf("%d connections, want %d", n, wantConns)
				}
			})
		}
	}
}

// TestDriverHop follows redirects as next hops of the same exchange: over
// the kept connection, or over a new one after "Connection: close"; the
// hops share the exchange's start, and Next is not called between them.
func TestDriverHop(t *testing.T) {
	const delay = 30 * time.Millisecond
	for _, closing := range []bool{false, true} {
		t.Run(fmt.Sprintf("close=%v", closing), func(t *testing.T) {
			srv := newRecServer(t, writeWhole, func(path string) reply {
				switch path {
				case "/start":
					if closing {
						return reply{resp: "HTTP/1.1 302 Found\r\nLocation: /mid\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", delay: delay, close: true}
					}
					return reply{resp: "HTTP/1.1 302 Found\r\nLocation: /mid\r\nContent-Length: 0\r\n\r\n", delay: delay}
				case "/mid":
					return reply{resp: "HTTP/1.1 301 Moved\r\nLocation:  /final \r\nContent-Length: 3\r\n\r\nabc", delay: delay}
				case "/final":
					return reply{resp: helloResp, delay: delay}
				}
				return reply{resp: "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"}
			})
			d := newRecDriver(func(user, i int) step {
				if i == 0 {
					return step{path: "/start"}
				}
				return hold
			}, hopTo)
			_, stop := startDriver(t, Config{Addr: srv.addr, Driver: d, Timeout: 2 * time.Second}, 1)
			waitFor(t, 2*time.Second, "the exchange's end", func() bool { return d.count("next", 1) == 2 })
			stop()

			dones := d.list("done", 1)
			if len(dones) != 3 {
				t.Fatalf("%d Done calls, want 3", len(dones))
			}
			for k, want := range []struct {
				status int
				size   int64
				hop    string
			}{{302, 0, "/mid"}, {301, 3, "/final"}, {200, 11, ""}} {
				ev := dones[k]
				r := ev.r
				if r.Err != nil || r.Status != want.status || r.Size != want.size || ev.path != want.hop || ev.nexts != 1 {
					t.Errorf("hop %d: %+v, hop %q, after %d Next", k, r, ev.path, ev.nexts)
				}
				if !r.Start.Equal(dones[0].r.Start) {
					t.Errorf("hop %d: start %v, the exchange's %v", k, r.Start, dones[0].r.Start)
				}
				if r.Latency < time.Duration(k+1)*delay || (k > 0 && r.Latency <= dones[k-1].r.Latency) {
					t.Errorf("hop %d: latency %v, not covering the hops before (%v) and its own %v", k, r.Latency, dones[max(k-1, 0)].r.Latency, delay)
				}
			}
			// Each hop's fields and body are its own.
			for k, want := range []struct {
				loc, body string
			}{{"/mid", ""}, {"/final", "abc"}, {"", "hello world"}} {
				if loc := hopTo(dones[k].r, dones[k].fields); loc != want.loc || string(dones[k].body) != want.body {
					t.Errorf("hop %d: fields %q body %q", k, dones[k].fields, dones[k].body)
				}
			}
			r0, r1, r2 := dones[0].r, dones[1].r, dones[2].r
			if r0.Reused || r0.Connect <= 0 {
				t.Errorf("first hop: %+v", r0)
			}
			if r2.Reused != true || r2.Connect != 0 {
				t.Errorf("last hop: %+v, want reused", r2)
			}
			if closing {
				if r1.Reused || r1.Connect <= 0 {
					t.Errorf("hop after Connection: close: %+v, want a new connection", r1)
				}
				if ps := srv.paths(); len(ps) != 2 || !slices.Equal(ps[0], []string{"/start"}) || !slices.Equal(ps[1], []string{"/mid", "/final"}) {
					t.Errorf("server saw %q", ps)
				}
			} else {
				if !r1.Reused || r1.Connect != 0 {
					t.Errorf("second hop: %+v, want reused", r1)
				}
				if ps := srv.paths(); len(ps) != 1 || !slices.Equal(ps[0], []string{"/start", "/mid", "/final"}) {
					t.Errorf("server saw %q", ps)
				}
			}
		})
	}
}

// TestDriverHopDeadline checks that the hops of an exchange share its
// deadline: a slow second hop times out at the exchange's start plus
// Timeout, not its own start plus Timeout.
func TestDriverHopDeadline(t *testing.T) {
	const timeout = 300 * time.Millisecond
	srv := newRecServer(t, writeWhole, func(path string) reply {
		if path == "/start" {
			return reply{resp: "HTTP/1.1 302 Found\r\nLocation: /final\r\nContent-Length: 0\r\n\r\n", delay: 150 * time.Millisecond}
		}
		return reply{resp: helloResp, delay: 500 * time.Millisecond}
	})
	d := newRecDriver(func(user, i int) step {
		if i == 0 {
			return step{path: "/start"}
		}
		return hold
	}, hopTo)
	_, stop := startDriver(t, Config{Addr: srv.addr, Driver: d, Timeout: timeout}, 1)
	waitFor(t, 2*time.Second, "the exchange's end", func() bool { return d.count("next", 1) == 2 })
	stop()
	dones := d.list("done", 1)
	if len(dones) != 2 {
		t.Fatalf("%d Done calls, want 2", len(dones))
	}
	r0, r1 := dones[0].r, dones[1].r
	if r0.Err != nil || r0.Status != 302 || dones[0].path != "/final" {
		t.Fatalf("first hop: %+v", r0)
	}
	if r1.Err == nil || !errors.Is(r1.Err, os.ErrDeadlineExceeded) || r1.Status != 0 || !r1.Start.Equal(r0.Start) || !r1.Reused {
		t.Errorf("second hop: %+v, want a timeout of the same exchange", r1)
	}
	if r1.Latency < timeout || r1.Latency > 430*time.Millisecond {
		t.Errorf("second hop failed %v after the exchange's start, want %v", r1.Latency, timeout)
	}
	if ps := srv.paths(); len(ps) != 1 || !slices.Equal(ps[0], []string{"/start", "/final"}) {
		t.Errorf("server saw %q", ps)
	}
}

// TestDriverFailure checks that a failure ends the exchange: a hop Done
// returns for it is not sent, and Next is called.
func TestDriverFailure(t *testing.T) {
	hopAlways := func(r Result, fields []field) string {
		if r.Err != nil {
			return "/ignored"
		}
		return hopTo(r, fields)
	}
	for _, tc := range []struct {
		name  string
		first string // the first request's path
		reset bool
		// the paths the server must see, per connection
		want [][]string
	}{
		{"eof", "/a", false, [][]string{{"/a"}, {"/b"}}},
		{"reset", "/a", true, [][]string{{"/a"}, {"/b"}}},
		// The hop dials, as the redirect closed its connection, and the
		// new connection is closed before any response.
		{"hop eof", "/redirect", false, [][]string{{"/redirect"}, {"/a"}, {"/b"}}},
		{"hop reset", "/redirect", true, [][]string{{"/redirect"}, {"/a"}, {"/b"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newRecServer(t, writeWhole, func(path string) reply {
				switch path {
				case "/a":
					return reply{reset: tc.reset}
				case "/redirect":
					return reply{resp: "HTTP/1.1 302 Found\r\nLocation: /a\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", close: true}
				}
				return reply{resp: helloResp}
			})
			d := newRecDriver(func(user, i int) step {
				switch i {
				case 0:
					return step{path: tc.first}
				case 1:
					return step{path: "/b"}
				}
				return hold
			}, hopAlways)
			_, stop := startDriver(t, Config{Addr: srv.addr, Driver: d, Timeout: 2 * time.Second}, 1)
			waitFor(t, 2*time.Second, "the user to hold", func() bool { return d.count("next", 1) == 3 })
			time.Sleep(50 * time.Millisecond) // an /ignored request would arrive
			stop()

			dones := d.list("done", 1)
			hops := len(tc.want) - 2
			if len(dones) != 2+hops {
				t.Fatalf("%d Done calls, want %d", len(dones), 2+hops)
			}
			failed := dones[hops]
			if r := failed.r; r.Err == nil || r.Status != 0 || failed.nexts != 1 || r.Reused || !r.Start.Equal(dones[0].r.Start) {
				t.Errorf("failed request: %+v after %d Next", r, failed.nexts)
			} else {
				t.Logf("failure: %v", r.Err)
			}
			if r := dones[hops+1].r; r.Err != nil || r.Status != 200 || dones[hops+1].nexts != 2 || r.Reused {
				t.Errorf("request after the failure: %+v after %d Next", r, dones[hops+1].nexts)
			}
			if ps := srv.paths(); !slices.EqualFunc(ps, tc.want, slices.Equal) {
				t.Errorf("server saw %q, want %q", ps, tc.want)
			}
		})
	}
}

// TestDriverPauses checks Next's pauses: 0 calls Next again in the next
// pass, above 0 after that time, below 0 never until the end of the run;
// lowering the users stops a holding user at once.
func TestDriverPauses(t *testing.T) {
	t.Run("zero", func(t *testing.T) {
		srv := newRecServer(t, writeWhole, func(string) reply { return reply{resp: helloResp} })
		script := []step{{}, {}, {}, {path: "/a"}, {}, {}, {path: "/b"}, hold}
		d := newRecDriver(func(user, i int) step { return script[min(i, len(script)-1)] }, nil)
		_, stop := startDriver(t, Config{Addr: srv.addr, Driver: d, Timeout: 2 * time.Second}, 1)
		waitFor(t, time.Second, "the hold", func() bool { return d.count("next", 1) == len(script) })
		time.Sleep(100 * time.Millisecond)
		stop()
		nexts := d.list("next", 1)
		if len(nexts) != len(script) {
			t.Errorf("%d Next calls, want %d", len(nexts), len(script))
		}
		if el := nexts[len(script)-1].at.Sub(nexts[0].at); el > 300*time.Millisecond {
			t.Errorf("%v from the first Next to the hold, with pauses of 0", el)
		}
		if ps := srv.paths(); len(ps) != 1 || !slices.Equal(ps[0], []string{"/a", "/b"}) {
			t.Errorf("server saw %q", ps)
		}
	})

	t.Run("think", func(t *testing.T) {
		const think = 50 * time.Millisecond
		srv := newRecServer(t, writeWhole, func(string) reply { return reply{resp: helloResp} })
		script := []step{{path: "/a"}, {pause: think}, {path: "/b"}, {pause: think}, {path: "/c"}, hold}
		d := newRecDriver(func(user, i int) step { return script[min(i, len(script)-1)] }, nil)
		_, stop := startDriver(t, Config{Addr: srv.addr, Driver: d, Timeout: 2 * time.Second}, 1)
		waitFor(t, 2*time.Second, "the hold", func() bool { return d.count("next", 1) == len(script) })
		stop()
		nexts := d.list("next", 1)
		for _, i := range []int{2, 4} {
			if gap := nexts[i].at.Sub(nexts[i-1].at); gap < think || gap > think+250*time.Millisecond {
				t.Errorf("Next #%d %v after the pause of %v", i, gap, think)
			}
		}
		conns := srv.snap()
		if len(conns) != 1 || !slices.Equal(conns[0].paths, []string{"/a", "/b", "/c"}) {
			t.Fatalf("server saw %+v", conns)
		}
		for i := 1; i < 3; i++ {
			if gap := conns[0].reqAt[i].Sub(conns[0].sentAt[i-1]); gap < think {
				t.Errorf("request %d %v after the previous response, think %v", i, gap, think)
			}
		}
		for k, ev := range d.list("done", 1) {
			if r := ev.r; r.Err != nil || r.Reused != (k > 0) {
				t.Errorf("request %d: %+v", k, r)
			}
		}
	})

	t.Run("hold", func(t *testing.T) {
		srv := newRecServer(t, writeWhole, func(string) reply { return reply{resp: helloResp} })
		d := newRecDriver(func(user, i int) step {
			switch i {
			case 0:
				return step{path: fmt.Sprintf("/u%d/a", user)}
			case 2:
				return step{path: fmt.Sprintf("/u%d/b", user)}
			}
			return hold
		}, nil)
		l, stop := startDriver(t, Config{Addr: srv.addr, Driver: d, Timeout: 2 * time.Second}, 2)
		waitFor(t, time.Second, "both users to hold", func() bool { return d.count("next", 0) == 4 })
		time.Sleep(200 * time.Millisecond)
		if n := d.count("next", 0); n != 4 {
			t.Errorf("%d Next calls while holding, want 4", n)
		}
		conns := srv.snap()
		if len(conns) != 2 || !conns[0].closedAt.IsZero() || !conns[1].closedAt.IsZero() {
			t.Fatalf("connections while holding: %+v", conns)
		}

		// Lowering the users stops user 2 at once, and closes its connection.
		lowered := time.Now()
		l.SetUsers(1)
		waitFor(t, time.Second, "Stop(2)", func() bool { return d.count("stop", 2) == 1 })
		if el := d.list("stop", 2)[0].at.Sub(lowered); el > 250*time.Millisecond {
			t.Errorf("Stop(2) %v after SetUsers(1)", el)
		}
		closed := func(path string) func() bool {
			return func() bool {
				for _, c := range srv.snap() {
					if len(c.paths) > 0 && c.paths[0] == path {
						return !c.closedAt.IsZero()
					}
				}
				return false
			}
		}
		waitFor(t, time.Second, "user 2's connection to close", closed("/u2/a"))
		if d.count("stop", 1) != 0 || closed("/u1/a")() {
			t.Errorf("user 1 stopped too: %d Stop calls, connection closed %v", d.count("stop", 1), closed("/u1/a")())
		}

		// Raised again, user 2 starts afresh: Next is called.
		l.SetUsers(2)
		waitFor(t, time.Second, "user 2's next request", func() bool { return d.count("done", 2) == 2 })
		waitFor(t, time.Second, "user 2 to hold again", func() bool { return d.count("next", 2) == 4 })
		stop()
		if n1, n2 := d.count("stop", 1), d.count("stop", 2); n1 != 1 || n2 != 2 {
			t.Errorf("Stop called %d times for user 1, %d for user 2; want 1 and 2", n1, n2)
		}
		if n := d.count("next", 1); n != 2 {
			t.Errorf("%d Next calls for user 1, holding", n)
		}
		// User 2's request after its restart came on a connection of its own.
		if ps := srv.paths(); len(ps) != 3 || !slices.ContainsFunc(ps, func(p []string) bool { return slices.Equal(p, []string{"/u2/b"}) }) {
			t.Errorf("server saw %q", ps)
		}
	})
}

// TestDriverIdleClose checks that a pause longer than IdleClose closes the
// connection once idle that long, and the next request dials; a shorter
// pause keeps it; a hold closes it too and stays held.
func TestDriverIdleClose(t *testing.T) {
	const idle = 100 * time.Millisecond
	const long = 400 * time.Millisecond
	srv := newRecServer(t, writeWhole, func(string) reply { return reply{resp: helloResp} })
	script := []step{{path: "/a"}, {pause: 50 * time.Millisecond}, {path: "/b"}, {pause: long}, {path: "/c"}, hold}
	d := newRecDriver(func(user, i int) step { return script[min(i, len(script)-1)] }, nil)
	_, stop := startDriver(t, Config{Addr: srv.addr, Driver: d, Timeout: 2 * time.Second, IdleClose: idle}, 1)
	waitFor(t, 2*time.Second, "the hold", func() bool { return d.count("next", 1) == len(script) })
	waitFor(t, time.Second, "the held connection to close", func() bool {
		cs := srv.snap()
		return len(cs) == 2 && !cs[1].closedAt.IsZero()
	})
	time.Sleep(150 * time.Millisecond)
	if n := d.count("next", 1); n != len(script) {
		t.Errorf("%d Next calls, want %d: held after the idle close", n, len(script))
	}
	if d.count("stop", 1) != 0 {
		t.Error("Stop called before the end of the run")
	}
	stop()

	conns := srv.snap()
	if len(conns) != 2 || !slices.Equal(conns[0].paths, []string{"/a", "/b"}) || !slices.Equal(conns[1].paths, []string{"/c"}) ||
		len(conns[0].sentAt) != 2 || len(conns[1].sentAt) != 1 {
		t.Fatalf("server saw %+v", conns)
	}
	if el := conns[0].closedAt.Sub(conns[0].sentAt[1]); el < 80*time.Millisecond || el > 350*time.Millisecond {
		t.Errorf("connection closed %v after its last response, IdleClose %v", el, idle)
	}
	if el := conns[1].reqAt[0].Sub(conns[0].sentAt[1]); el < long {
		t.Errorf("request after the pause of %v came %v after the response", long, el)
	}
	if el := conns[1].closedAt.Sub(conns[1].sentAt[0]); el < 80*time.Millisecond || el > 350*time.Millisecond {
		t.Errorf("held connection closed %v after its last response, IdleClose %v", el, idle)
	}
	dones := d.list("done", 1)
	if len(dones) != 3 {
		t.Fatalf("%d Done calls", len(dones))
	}
	for k, reused := range []bool{false, true, false} {
		if r := dones[k].r; r.Err != nil || r.Status != 200 || r.Reused != reused || (r.Connect > 0) == reused {
			t.Errorf("request %d: %+v, want reused %v", k, r, reused)
		}
	}
	if n := d.count("stop", 1); n != 1 {
		t.Errorf("%d Stop calls at the end of the run", n)
	}
}

// TestDriverStopAtEnd checks that the end of Run calls Stop once for every
// user not already stopped, whatever it is doing: waiting for a response,
// thinking, holding, between requests, pausing 0; and not again for a user
// SetUsers stopped.
func TestDriverStopAtEnd(t *testing.T) {
	srv := newRecServer(t, writeWhole, func(path string) reply {
		if path == "/stall" {
			return reply{resp: helloResp, delay: time.Hour} // until the end of the test
		}
		return reply{resp: helloResp}
	})
	d := newRecDriver(func(user, i int) step {
		switch user {
		case 1:
			if i == 0 {
				return step{path: "/stall"}
			}
		case 2:
			if i == 0 {
				return step{path: "/think"}
			}
			return step{pause: 10 * time.Second}
		case 4:
			return step{path: "/busy"}
		case 5:
			return step{} // pause 0, again and again
		}
		if i == 0 {
			return step{path: "/hold"}
		}
		return hold // users 3 and 6
	}, nil)
	l, stop := startDriver(t, Config{Addr: srv.addr, Driver: d, Timeout: 5 * time.Second}, 6)
	waitFor(t, 2*time.Second, "every user to be under way", func() bool {
		return d.count("next", 1) == 1 && d.count("next", 2) == 2 && d.count("next", 3) == 2 &&
			d.count("done", 4) >= 3 && d.count("next", 5) >= 10 && d.count("next", 6) == 2
	})
	l.SetUsers(5)
	waitFor(t, time.Second, "Stop(6)", func() bool { return d.count("stop", 6) == 1 })
	if n := len(d.list("stop", 0)); n != 1 {
		t.Errorf("%d Stop calls before the end of the run, want 1", n)
	}
	stop()
	stops := map[int]int{}
	for _, ev := range d.list("stop", 0) {
		stops[ev.user]++
	}
	for u := 1; u <= 6; u++ {
		if stops[u] != 1 {
			t.Errorf("user %d: %d Stop calls, want 1", u, stops[u])
		}
	}
	if l.Aborted() < 1 {
		t.Errorf("%d requests aborted, want user 1's at least", l.Aborted())
	}
	// Nothing is called after Run returned.
	n := len(d.list("next", 0)) + len(d.list("done", 0)) + len(d.list("stop", 0))
	time.Sleep(50 * time.Millisecond)
	if m := len(d.list("next", 0)) + len(d.list("done", 0)) + len(d.list("stop", 0)); m != n {
		t.Errorf("%d calls after Run returned", m-n)
	}
}

// TestDriverStopping lowers the users while one has a request under way:
// at its end Next is called with stopping, and the user stops unless Next
// returns a request, which is sent.
func TestDriverStopping(t *testing.T) {
	for _, finish := range []bool{false, true} {
		t.Run(fmt.Sprintf("finish=%v", finish), func(t *testing.T) {
			srv := newRecServer(t, writeWhole, func(path string) reply {
				if path == "/slow" {
					return reply{resp: helloResp, delay: 150 * time.Millisecond}
				}
				return reply{resp: helloResp}
			})
			d := newRecDriver(func(user, i int) step {
				switch {
				case i > 0:
					return hold
				case user == 2:
					return step{path: "/slow"}
				}
				return step{path: "/u1"}
			}, nil)
			if finish {
				d.onStop = func(user, i int) step {
					if i == 1 {
						return step{path: "/finish"}
					}
					return step{pause: time.Hour} // ignored: the user stops
				}
			}
			l, stop := startDriver(t, Config{Addr: srv.addr, Driver: d, Timeout: 2 * time.Second}, 2)
			waitFor(t, time.Second, "user 2's request", func() bool {
				return slices.ContainsFunc(srv.paths(), func(p []string) bool { return slices.Contains(p, "/slow") })
			})
			l.SetUsers(1)
			waitFor(t, time.Second, "Stop(2)", func() bool { return d.count("stop", 2) == 1 })
			time.Sleep(50 * time.Millisecond)
			stop()

			var got []string
			for _, ev := range d.list("", 2) {
				s := ev.kind
				if ev.kind == "next" {
					s += fmt.Sprintf(" %q stopping=%v", ev.path, ev.stopping)
				}
				if ev.kind == "done" {
					s += fmt.Sprintf(" %d", ev.r.Status)
				}
				got = append(got, s)
			}
			want := []string{`next "/slow" stopping=false`, "done 200", `next "" stopping=true`, "stop"}
			if finish {
				want = []string{`next "/slow" stopping=false`, "done 200", `next "/finish" stopping=true`, "done 200", `next "" stopping=true`, "stop"}
			}
			if !slices.Equal(got, want) {
				t.Errorf("user 2: %q, want %q", got, want)
			}
			if n := d.count("stop", 1); n != 1 { // at the end of the run only
				t.Errorf("user 1: %d Stop calls, want 1", n)
			}
			for _, c := range srv.snap() {
				if c.paths[0] == "/slow" {
					if want := []string{"/slow"}; finish {
						want = append(want, "/finish")
						if !slices.Equal(c.paths, want) {
							t.Errorf("user 2's connection: %q", c.paths)
						}
					} else if !slices.Equal(c.paths, want) {
						t.Errorf("user 2's connection: %q", c.paths)
					}
					if c.closedAt.IsZero() {
						t.Error("user 2's connection still open after its stop")
					}
				}
			}
		})
	}
}

// TestDriverDest sends requests and hops to a Dest other than Config.Addr:
// a user's connection goes to one place at a time, so changing place
// dials.
func TestDriverDest(t *testing.T) {
	a := newRecServer(t, writeWhole, func(path string) reply {
		if path == "/a" {
			return reply{resp: "HTTP/1.1 302 Found\r\nLocation: /b\r\nContent-Length: 0\r\n\r\n"}
		}
		return reply{resp: helloResp}
	})
	b := newRecServer(t, writeWhole, func(path string) reply {
		if path == "/b" {
			return reply{resp: "HTTP/1.1 302 Found\r\nLocation: /b2\r\nContent-Length: 0\r\n\r\n"}
		}
		return reply{resp: helloResp}
	})
	d := newRecDriver(func(user, i int) step {
		switch i {
		case 0:
			return step{path: "/a"} // to A, redirected to B twice
		case 1:
			return step{path: "/c"} // to A
		case 2:
			return step{path: "/d"} // to B
		}
		return hold
	}, hopTo)
	l, err := New(Config{Addr: a.addr, Driver: d, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	toB, err := l.Dest(b.addr)
	if err != nil {
		t.Fatal(err)
	}
	toA, err := l.Dest(a.addr)
	if err != nil {
		t.Fatal(err)
	}
	d.dest = func(path string) *Dest {
		switch path {
		case "/b", "/b2", "/d":
			return toB
		case "/c":
			return toA // Config.Addr's own, as nil
		}
		return nil
	}
	stop := runDriver(t, l, 1)
	waitFor(t, 2*time.Second, "the hold", func() bool { return d.count("next", 1) == 4 })
	stop()

	if pa, pb := a.paths(), b.paths(); !slices.EqualFunc(pa, [][]string{{"/a"}, {"/c"}}, slices.Equal) ||
		!slices.EqualFunc(pb, [][]string{{"/b", "/b2"}, {"/d"}}, slices.Equal) {
		t.Errorf("A saw %q, B saw %q", pa, pb)
	}
	dones := d.list("done", 1)
	if len(dones) != 5 {
		t.Fatalf("%d Done calls, want 5", len(dones))
	}
	for k, want := range []struct {
		status int
		reused bool
	}{{302, false}, {302, false}, {200, true}, {200, false}, {200, false}} {
		r := dones[k].r
		if r.Err != nil || r.Status != want.status || r.Reused != want.reused || (r.Connect > 0) == r.Reused {
			t.Errorf("request %d: %+v, want %d reused %v", k, r, want.status, want.reused)
		}
	}
	if !dones[1].r.Start.Equal(dones[0].r.Start) || !dones[2].r.Start.Equal(dones[0].r.Start) {
		t.Errorf("the hops did not share the exchange's start: %v %v %v", dones[0].r.Start, dones[1].r.Start, dones[2].r.Start)
	}
}
