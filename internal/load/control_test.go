package load

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	stampede "github.com/stampede-load/stampede"
)

// countingServer answers /a and /b after delay and counts, by path and by
// the vu query parameter, the requests it answered.
type countingServer struct {
	delay time.Duration
	mu    sync.Mutex
	seen  map[string]int // "a 4": requests to /a of user 4
}

func (s *countingServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	time.Sleep(s.delay)
	s.mu.Lock()
	s.seen[strings.TrimPrefix(r.URL.Path, "/")+" "+r.URL.Query().Get("vu")]++
	s.mu.Unlock()
	_, _ = w.Write([]byte("ok"))
}

func (s *countingServer) count(path string, vu int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[fmt.Sprintf("%s %d", path, vu)]
}

func compileYAML(t *testing.T, yml string) *Plan {
	t.Helper()
	sc, err := ParseScenario("s.yaml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	p, err := sc.Compile()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// running runs e in the background; wait returns its results once the run
// is over.
func running(e *Engine) (wait func() []stampede.Result) {
	out := make(chan stampede.Result, 1024)
	var rs []stampede.Result
	done := make(chan struct{})
	go func() {
		defer close(done)
		for r := range out {
			rs = append(rs, r)
		}
	}()
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		_ = e.Run(context.Background(), out)
		close(out)
	}()
	return func() []stampede.Result {
		<-ran
		<-done
		return rs
	}
}

// waitUsers polls e.Users until it is n or within is over; it returns the
// time it took and whether n was reached.
func waitUsers(e *Engine, n int, within time.Duration) (time.Duration, bool) {
	start := time.Now()
	for time.Since(start) < within {
		if e.Users() == n {
			return time.Since(start), true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start), false
}

// The closed model follows SetUsers up and down at the spawn rate; a user
// stopped on the way down finishes its task: every request it sent was
// answered and recorded, its two-step tasks are whole.
func TestSetUsersRampsUpAndDown(t *testing.T) {
	srv := &countingServer{delay: 40 * time.Millisecond, seen: map[string]int{}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	e := New(compileYAML(t, `target: `+ts.URL+`
load: {users: 2, spawn_rate: 100, duration: 6s}
tasks:
  - name: flow
    steps:
      - {name: a, get: "/a?vu={{vu}}"}
      - {name: b, get: "/b?vu={{vu}}"}
`))
	wait := running(e)
	if _, ok := waitUsers(e, 2, 2*time.Second); !ok {
		t.Fatalf("users %d: the plan's 2 never ran", e.Users())
	}

	// Up from 2 to 12 at 20 users/s: the 10th new user starts 9/20 s
	// after the change (the first at once).
	if err := e.SetUsers(12, 20); err != nil {
		t.Fatal(err)
	}
	took, ok := waitUsers(e, 12, 3*time.Second)
	if !ok || took < 440*time.Millisecond {
		t.Errorf("up to 12 users at 20/s: reached %v after %v, want after 0.45 s", ok, took)
	}
	if u, r := e.Target(); u != 12 || r != 20 {
		t.Errorf("target %d users at %v/s, want 12 at 20/s", u, r)
	}

	// Down to 3 at 10 users/s: the 9th user is told to stop 8/10 s after
	// the change, and leaves at the end of its task.
	if err := e.SetUsers(3, 10); err != nil {
		t.Fatal(err)
	}
	took, ok = waitUsers(e, 3, 3*time.Second)
	if !ok || took < 790*time.Millisecond {
		t.Errorf("down to 3 users at 10/s: reached %v after %v, want after 0.8 s", ok, took)
	}
	rs := wait()

	rec := map[string]int{}
	for _, r := range rs {
		if r.Failed() {
			t.Errorf("%s of user %d failed: %s", r.Name, r.User, r.Reason)
		}
		rec[fmt.Sprintf("%s %d", r.Name, r.User)]++
	}
	// Users 4 to 12 were stopped mid-run (the highest numbers first):
	// nothing of theirs was cut off. User 12, told to stop the moment the
	// ramp up reached it, may have been stopped before its first task.
	for vu := 4; vu <= 12; vu++ {
		a, b := rec[fmt.Sprintf("a %d", vu)], rec[fmt.Sprintf("b %d", vu)]
		sa, sb := srv.count("a", vu), srv.count("b", vu)
		if (a == 0 && vu < 12) || a != b || a != sa || b != sb {
			t.Errorf("stopped user %d: recorded a %d, b %d; server answered a %d, b %d: want equal, not 0", vu, a, b, sa, sb)
		}
	}
	for vu := 1; vu <= 3; vu++ {
		if rec[fmt.Sprintf("a %d", vu)] == 0 {
			t.Errorf("user %d, kept, made no request", vu)
		}
	}
	if n := rec["a 13"]; n != 0 {
		t.Errorf("user 13 made %d requests: the load never asked for 13 users", n)
	}
}

// A user stopped while its request is in flight finishes it: the request
// is answered and recorded, never aborted.
func TestSetUsersLetsInFlightFinish(t *testing.T) {
	srv := &countingServer{delay: 400 * time.Millisecond, seen: map[string]int{}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	e := New(compileYAML(t, `target: `+ts.URL+`
load: {users: 4, spawn_rate: 100, duration: 3s}
tasks:
  - {name: slow, steps: [{name: a, get: "/a?vu={{vu}}"}]}
`))
	wait := running(e)
	if _, ok := waitUsers(e, 4, 2*time.Second); !ok {
		t.Fatal("the plan's 4 users never ran")
	}
	for deadline := time.Now().Add(2 * time.Second); e.InFlight() != 4; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests in flight, want the 4 users' first", e.InFlight())
		}
	}
	if err := e.SetUsers(1, 1000); err != nil {
		t.Fatal(err)
	}
	if _, ok := waitUsers(e, 1, 2*time.Second); !ok {
		t.Fatalf("users %d, want 1", e.Users())
	}
	rs := wait()
	for vu := 2; vu <= 4; vu++ {
		n := 0
		for _, r := range rs {
			if r.User == vu {
				n++
				if r.Failed() || r.Latency < 350*time.Millisecond {
					t.Errorf("user %d: %s %v %s: want the whole slow request", vu, r.Outcome, r.Latency, r.Reason)
				}
			}
		}
		if n != 1 || srv.count("a", vu) != 1 {
			t.Errorf("stopped user %d: %d recorded, %d answered: want the 1 in flight", vu, n, srv.count("a", vu))
		}
	}
}

// The open model follows SetArrivalRate: the flows started per second
// before and after the change are the two rates.
func TestSetArrivalRate(t *testing.T) {
	srv := &countingServer{seen: map[string]int{}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	e := New(compileYAML(t, `target: `+ts.URL+`
load: {arrival_rate: 20/s, max_users: 50, duration: 4s}
tasks:
  - {name: one, steps: [{name: a, get: /a}]}
`))
	start := time.Now()
	wait := running(e)
	time.Sleep(2 * time.Second)
	changed := time.Now()
	if err := e.SetArrivalRate(60, 50); err != nil {
		t.Fatal(err)
	}
	rs := wait()
	rate := func(from, to time.Time) float64 {
		n := 0
		for _, r := range rs {
			if !r.Start.Before(from) && r.Start.Before(to) {
				n++
			}
		}
		return float64(n) / to.Sub(from).Seconds()
	}
	before := rate(start.Add(300*time.Millisecond), changed.Add(-100*time.Millisecond))
	after := rate(changed.Add(200*time.Millisecond), start.Add(3900*time.Millisecond))
	if math.Abs(before-20) > 4 || math.Abs(after-60) > 9 {
		t.Errorf("flows per second: %.1f before the change, %.1f after: want 20 then 60", before, after)
	}
	if e.Dropped() != 0 {
		t.Errorf("%d dropped with 50 users for fast flows", e.Dropped())
	}
}

// Lowering the open model's max users sends the users beyond it away once
// their flow is over; the starts that find no user are dropped.
func TestSetArrivalRateMaxUsers(t *testing.T) {
	srv := &countingServer{delay: 200 * time.Millisecond, seen: map[string]int{}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	e := New(compileYAML(t, `target: `+ts.URL+`
load: {arrival_rate: 30/s, max_users: 20, duration: 3s}
tasks:
  - {name: one, steps: [{name: a, get: /a}]}
`))
	wait := running(e)
	time.Sleep(time.Second)
	if n := e.Users(); n < 4 {
		t.Fatalf("%d users for 30 flows/s of 0.2 s: want about 6", n)
	}
	if err := e.SetArrivalRate(30, 2); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond)
	if n := e.Users(); n > 2 {
		t.Errorf("%d users after max_users went down to 2", n)
	}
	rs := wait()
	if e.Dropped() == 0 {
		t.Errorf("no start dropped at 30/s with 2 users for flows of 0.2 s")
	}
	for _, r := range rs {
		if r.Failed() {
			t.Errorf("%s failed: %s", r.Name, r.Reason)
		}
	}
}

// A change that does not fit the model or the users file is refused,
// naming the field.
func TestSetLoadErrors(t *testing.T) {
	closed, err := QuickPlan("http://127.0.0.1:1/", 2, 2, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rows := *closed
	rows.Rows, rows.Header = [][]string{{"a"}, {"b"}, {"c"}}, []string{"name"}
	open := *closed
	open.Model, open.ArrivalRate = Open, 5
	cases := []struct {
		name string
		set  func() error
		want string
	}{
		{"arrival rate of a closed load", func() error { return New(closed).SetArrivalRate(5, 10) }, "arrival_rate: the load has a closed model"},
		{"users of an open load", func() error { return New(&open).SetUsers(5, 5) }, "users: the load has an open model"},
		{"zero spawn rate", func() error { return New(closed).SetUsers(5, 0) }, "spawn_rate: 0: want a rate above 0"},
		{"NaN spawn rate", func() error { return New(closed).SetUsers(5, math.NaN()) }, "spawn_rate: NaN"},
		{"infinite arrival rate", func() error { return New(&open).SetArrivalRate(math.Inf(1), 5) }, "arrival_rate: +Inf"},
		{"negative users", func() error { return New(closed).SetUsers(-1, 5) }, "users: -1"},
		{"no max users", func() error { return New(&open).SetArrivalRate(5, 0) }, "max_users: 0"},
		{"more users than unique rows", func() error { return New(&rows).SetUsers(4, 5) }, "users: 4: the users file has 3 rows"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.set()
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("got %v, want %q...", err, c.want)
			}
		})
	}
	if err := New(&rows).SetUsers(3, 5); err != nil {
		t.Errorf("3 users for 3 unique rows: %v", err)
	}
}

// Users in think time wait on timers, not goroutines: 300 users thinking
// for an hour hold no goroutine each; told to stop (SetUsers down) they end
// at once, not after their think time; the end of the run ends the rest at
// once; a slot freed by a user that left is taken again by the next one,
// lowest first.
func TestThinkingUsersHoldNoGoroutine(t *testing.T) { bothUserModes(t, thinkingUsersHoldNoGoroutine) }

// bothUserModes runs f with a scenario's users on the event loops (Linux)
// and as goroutines (STAMPEDE_BROWSER_LOOP=off).
func bothUserModes(t *testing.T, f func(t *testing.T)) {
	for _, mode := range []string{"loop", "goroutines"} {
		t.Run(mode, func(t *testing.T) {
			if mode == "goroutines" {
				t.Setenv(EnvBrowserLoop, "off")
			}
			f(t)
		})
	}
}

func thinkingUsersHoldNoGoroutine(t *testing.T) {
	srv := &countingServer{seen: map[string]int{}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	e := New(compileYAML(t, `target: `+ts.URL+`
load: {users: 300, spawn_rate: 3000, duration: 4s}
think: 1h
tasks:
  - {name: a, steps: [{name: a, get: "/a?vu={{vu}}"}]}
`))
	start := time.Now()
	wait := running(e)
	if _, ok := waitUsers(e, 300, 3*time.Second); !ok {
		t.Fatalf("users %d: the plan's 300 never ran", e.Users())
	}
	// Every user has made its request and thinks.
	for deadline := time.Now().Add(3 * time.Second); e.InFlight() > 0 || srvTotal(srv) < 300; {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests answered, %d in flight: want 300 and 0", srvTotal(srv), e.InFlight())
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // the users' goroutines end after their request
	if g := userGoroutines(); g > 0 {
		t.Errorf("%d goroutines of users with 300 users in think time: want none", g)
	}
	if err := e.SetUsers(100, 100000); err != nil {
		t.Fatal(err)
	}
	if took, ok := waitUsers(e, 100, time.Second); !ok {
		t.Errorf("down to 100 users in think time: %d users after %v, want 100 at once", e.Users(), took)
	}
	if err := e.SetUsers(101, 100); err != nil {
		t.Fatal(err)
	}
	if _, ok := waitUsers(e, 101, time.Second); !ok {
		t.Errorf("up to 101 users: %d", e.Users())
	}
	rs := wait()
	if took := time.Since(start); took > 6*time.Second {
		t.Errorf("the run of 4 s ended after %v: users in think time held it", took)
	}
	if e.Users() != 0 {
		t.Errorf("%d users left after the run", e.Users())
	}
	users := map[int]bool{}
	for _, r := range rs {
		if r.Failed() {
			t.Errorf("user %d: %s", r.User, r.Reason)
		}
		users[r.User] = true
	}
	// The 101st user took the lowest free slot: number 101 again.
	if len(users) != 300 || !users[101] || users[301] {
		t.Errorf("%d users made requests (101: %v, 301: %v): want users 1 to 300, the one added later numbered 101", len(users), users[101], users[301])
	}
}

func srvTotal(s *countingServer) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.seen {
		n += c
	}
	return n
}

// userGoroutines counts the goroutines running a virtual user's code.
func userGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	k := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "internal/load.(*vu)") {
			k++
		}
	}
	return k
}

// idle_timeout closes a thinking user's connection once idle that long:
// the server sees every connection closed while the users think, and none
// before (a user browsing keeps its connection).
func TestIdleTimeoutClosesThinkingUsersConnections(t *testing.T) {
	bothUserModes(t, idleTimeoutClosesThinkingUsersConnections)
}

func idleTimeoutClosesThinkingUsersConnections(t *testing.T) {
	var mu sync.Mutex
	open := 0
	ts := httptest.NewUnstartedServer(&countingServer{seen: map[string]int{}})
	ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		switch s {
		case http.StateNew:
			open++
		case http.StateClosed, http.StateHijacked:
			open--
		}
	}
	ts.Start()
	defer ts.Close()
	opened := func() int {
		mu.Lock()
		defer mu.Unlock()
		return open
	}
	e := New(compileYAML(t, `target: `+ts.URL+`
load: {users: 20, spawn_rate: 1000, duration: 3s}
think: 1h
idle_timeout: 300ms
tasks:
  - {name: a, steps: [{name: a, get: "/a?vu={{vu}}"}, {name: b, get: "/b?vu={{vu}}"}]}
`))
	wait := running(e)
	deadline := time.Now().Add(2 * time.Second)
	for opened() < 20 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := opened(); n != 20 {
		t.Fatalf("%d connections open after the users' first requests, want 20 (one each, kept for both steps)", n)
	}
	deadline = time.Now().Add(2 * time.Second)
	for opened() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := opened(); n != 0 {
		t.Errorf("%d connections still open 2 s into a think time of an hour with idle_timeout 300ms, want 0", n)
	}
	for _, r := range wait() {
		if r.Failed() {
			t.Errorf("user %d %s: %s", r.User, r.Name, r.Reason)
		}
	}
}

func TestParseIdleTimeout(t *testing.T) {
	for in, want := range map[string]time.Duration{"15s": 15 * time.Second, "2m": 2 * time.Minute, "0": -1, "never": -1} {
		if got, err := ParseIdleTimeout(in); err != nil || got != want {
			t.Errorf("%q: %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1s", "soon", "0s"} {
		if _, err := ParseIdleTimeout(in); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
	if p := (&Plan{}); p.ConnIdleTimeout() != DefaultIdleTimeout {
		t.Errorf("default idle timeout %v", p.ConnIdleTimeout())
	}
	_, err := ParseScenario("s.yaml", []byte("target: http://127.0.0.1:1\nload: {users: 1}\nidle_timeout: soon\ntasks: [{name: a, steps: [{get: /}]}]\n"))
	if err == nil {
		sc, _ := ParseScenario("s.yaml", []byte("target: http://127.0.0.1:1\nload: {users: 1}\nidle_timeout: soon\ntasks: [{name: a, steps: [{get: /}]}]\n"))
		_, err = sc.Compile()
	}
	if err == nil || !strings.Contains(err.Error(), "s.yaml:3") || !strings.Contains(err.Error(), "idle_timeout") {
		t.Errorf("bad idle_timeout: %v, want an error at s.yaml:3 naming idle_timeout", err)
	}
}

// --auth-only users hold their session until the end: past the idle
// timeout their connections close, and the end of the run still ends them.
func TestAuthOnlyPastIdleTimeout(t *testing.T) {
	ts := httptest.NewServer(&countingServer{seen: map[string]int{}})
	defer ts.Close()
	p := compileYAML(t, `target: `+ts.URL+`
load: {users: 5, spawn_rate: 1000, duration: 1s}
idle_timeout: 200ms
on_start: [{name: a, get: /a}]
tasks: [{name: b, steps: [{name: b, get: /b}]}]
`)
	p.AuthOnly = true
	e := New(p)
	start := time.Now()
	rs := running(e)()
	if took := time.Since(start); took > 2500*time.Millisecond {
		t.Errorf("a 1 s --auth-only run ended after %v", took)
	}
	if len(rs) != 5 || e.Users() != 0 {
		t.Errorf("%d results, %d users left: want 5 logins, 0 users", len(rs), e.Users())
	}
}
