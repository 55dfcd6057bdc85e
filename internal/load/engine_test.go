package load

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/session"
	"github.com/stampede-load/stampede/internal/testserver"
)

// collect runs the plan and returns every result.
func collect(t *testing.T, p *Plan) ([]stampede.Result, *Engine) {
	t.Helper()
	return collectWith(t, New(p))
}

// collectWith runs engine e and returns every result.
func collectWith(t *testing.T, e *Engine) ([]stampede.Result, *Engine) {
	t.Helper()
	out := make(chan stampede.Result, 1024)
	var rs []stampede.Result
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for r := range out {
			rs = append(rs, r)
		}
	}()
	if err := e.Run(context.Background(), out); err != nil {
		t.Fatal(err)
	}
	close(out)
	wg.Wait()
	return rs, e
}

func loginScenario(t *testing.T, target, password string) *Plan {
	t.Helper()
	dir := t.TempDir()
	var users strings.Builder
	users.WriteString("username,password\n")
	for i := 1; i <= 50; i++ {
		fmt.Fprintf(&users, "user%d,%s\n", i, password)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.csv"), []byte(users.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	yml := fmt.Sprintf(`target: %s
load: {users: 50, spawn_rate: 100, duration: 3s}
think: 100ms..200ms
users_file: users.csv
on_start:
  - name: "[AUTH] Login GET"
    get: /accounts/login/
  - name: "[AUTH] Login POST"
    submit_form:
      fields: {login: "{{user.username}}", password: "{{user.password}}"}
    expect: {status: [302], not_login_page: true}
tasks:
  - name: dashboard
    weight: 3
    steps:
      - {name: "GET /dashboard/", get: /dashboard/, expect: {body_contains: Dashboard}}
  - name: home
    weight: 1
    steps:
      - {get: /}
`, target)
	path := filepath.Join(dir, "s.yaml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	sc, err := ReadScenario(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := sc.Compile()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func count(rs []stampede.Result, name string) (n, failed int, reasons map[string]int) {
	reasons = map[string]int{}
	for _, r := range rs {
		if r.Name != name {
			continue
		}
		n++
		if r.Failed() {
			failed++
			reasons[r.Reason]++
		}
	}
	return
}

func TestLoginAndBrowse(t *testing.T) {
	srv := testserver.New("pw-ok")
	ts := httptest.NewServer(srv)
	defer ts.Close()

	rs, e := collect(t, loginScenario(t, ts.URL, "pw-ok"))
	n, failed, reasons := count(rs, "[AUTH] Login POST")
	if n != 50 || failed != 0 {
		t.Fatalf("login POST: %d requests, %d failed (%v); want 50, 0", n, failed, reasons)
	}
	if got := srv.LoginOK.Load(); got != 50 {
		t.Errorf("server saw %d good logins, want 50", got)
	}
	dn, dfailed, _ := count(rs, "GET /dashboard/")
	if dn == 0 || dfailed != 0 {
		t.Errorf("dashboard: %d requests, %d failed", dn, dfailed)
	}
	// A page served while the run was ending may be cut off on the client
	// side (aborted, not recorded).
	if served := srv.Dashboards.Load(); served < int64(dn) || served > int64(dn)+e.Aborted() {
		t.Errorf("recorded %d dashboards, server served %d, %d requests aborted at the end", dn, served, e.Aborted())
	}
	for _, r := range rs {
		if r.Name == "[AUTH] Login POST" && (r.Status != 302 || r.Method != "POST") {
			t.Fatalf("login POST recorded as %s %d", r.Method, r.Status)
		}
	}
}

func TestWrongPasswordIsAFailureDespite200(t *testing.T) {
	srv := testserver.New("pw-ok")
	ts := httptest.NewServer(srv)
	defer ts.Close()

	p := loginScenario(t, ts.URL, "wrong")
	// Expect the status the server really gives to a failed login (200),
	// so only the login-page rule can catch it.
	p.OnStart[1].Status = nil
	p.OnStart[1].NoRedirect = false
	rs, e := collect(t, p)
	n, failed, reasons := count(rs, "[AUTH] Login POST")
	if n < 50 || failed != n {
		t.Fatalf("login POST: %d requests, %d failed; want every one of at least 50 to fail", n, failed)
	}
	want := "login page returned: The username and/or password you specified are not correct."
	if reasons[want] != n {
		t.Fatalf("reasons = %v, want %d × %q", reasons, n, want)
	}
	// Logins the server answered while the run was ending were cut off on
	// the client side (counted as aborted, not recorded).
	if seen := srv.LoginFailed.Load(); seen < int64(n) || seen > int64(n)+e.Aborted() {
		t.Fatalf("server saw %d failed logins; recorded %d, aborted at the end %d", seen, n, e.Aborted())
	}
	for _, r := range rs {
		if r.Name == "[AUTH] Login POST" && r.Status != 200 {
			t.Fatalf("status %d, want 200", r.Status)
		}
	}
	if dn, _, _ := count(rs, "GET /dashboard/"); dn != 0 {
		t.Errorf("%d dashboard requests after failed logins: a failed on_start must stop the user's flow", dn)
	}
}

// TestStall shows both models against a server that stalls for 2 s
// mid-run: the open model keeps its schedule, shows the stall in its
// latencies and counts dropped starts; the closed model slows down.
func TestStall(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 10 s")
	}
	run := func(t *testing.T, p *Plan) ([]stampede.Result, *Engine) {
		srv := testserver.New("x")
		ts := httptest.NewServer(srv)
		defer ts.Close()
		p.Target.Host = strings.TrimPrefix(ts.URL, "http://")
		p.Tasks[0].Steps[0].URL = parseTmpl(ts.URL + "/")
		go func() {
			time.Sleep(2 * time.Second)
			srv.Stall(2 * time.Second)
		}()
		return collect(t, p)
	}
	// perSecond counts requests by the second of their intended start.
	perSecond := func(rs []stampede.Result, t0 time.Time) []int {
		c := make([]int, 6)
		for _, r := range rs {
			if s := int(r.Start.Sub(t0) / time.Second); s >= 0 && s < len(c) {
				c[s]++
			}
		}
		return c
	}

	t.Run("open", func(t *testing.T) {
		p, _ := QuickPlan("http://127.0.0.1:1/", 20, 0, 5*time.Second)
		p.Model, p.ArrivalRate, p.Users = Open, 50, 20
		t0 := time.Now()
		rs, e := run(t, p)
		c := perSecond(rs, t0)
		var worst time.Duration
		for _, r := range rs {
			worst = max(worst, r.Latency)
		}
		t.Logf("open: starts per second %v, dropped %d, worst latency %v", c, e.Dropped(), worst)
		// 20 users at 50/s: the stall holds every user, the schedule goes
		// on, the rest of the 100 starts of the stall are dropped.
		if e.Dropped() < 50 {
			t.Errorf("dropped %d starts during a 2 s stall at 50/s with 20 users; want ≥ 50", e.Dropped())
		}
		if worst < 1500*time.Millisecond {
			t.Errorf("worst latency %v: the stall does not show", worst)
		}
		if c[0] < 40 || c[4] < 40 {
			t.Errorf("starts per second %v: the schedule was not kept outside the stall", c)
		}
	})
	t.Run("closed", func(t *testing.T) {
		p, _ := QuickPlan("http://127.0.0.1:1/", 20, 0, 5*time.Second)
		p.ThinkMin, p.ThinkMax = 400*time.Millisecond, 400*time.Millisecond // 50/s when the server is fast
		t0 := time.Now()
		rs, _ := run(t, p)
		c := perSecond(rs, t0)
		t.Logf("closed: requests per second %v", c)
		// Second 3 lies wholly inside the stall (2 s to 4 s).
		if c[3] > c[1]/2 {
			t.Errorf("requests per second %v: the closed model should send far fewer during the stall", c)
		}
	})
}

func TestScenarioErrors(t *testing.T) {
	for _, tc := range []struct{ yml, want string }{
		{"target: http://h\nload: {users: 1}\ntasks:\n  - steps: [{get: /}]\n    wieght: 2\n", "s.yaml:5:5"},
		{"target: http://h\nload: {users: 1, duration: 6x}\ntasks: [{steps: [{get: /}]}]\n", "s.yaml:2:28: load.duration"},
		{"target: http://h\nload: {users: 1}\ntasks: [{steps: [{get: /, post: /}]}]\n", "exactly one of get"},
		{"target: http://h\nload: {users: 1}\ntasks: [{steps: [{get: '/x/{{id}}'}]}]\n", "{{id}} is neither"},
		{"target: ftp://h\nload: {users: 1}\ntasks: [{steps: [{get: /}]}]\n", "s.yaml:1:9: target"},
		{"target: http://h\nload: {users: 2, arrival_rate: 5/s}\ntasks: [{steps: [{get: /}]}]\n", "max_users"},
	} {
		sc, err := ParseScenario("s.yaml", []byte(tc.yml))
		if err == nil {
			_, err = sc.Compile()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant it to contain %q", tc.yml, err, tc.want)
		}
	}
}

func TestParseRateAndThink(t *testing.T) {
	for in, want := range map[string]float64{"50/s": 50, "120/m": 2, "10": 10, "5/2s": 2.5} {
		if got, err := ParseRate(in); err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v", in, got, err)
		}
	}
	if a, b, err := ParseThink("1s..3s"); err != nil || a != time.Second || b != 3*time.Second {
		t.Errorf("ParseThink: %v %v %v", a, b, err)
	}
	if _, _, err := ParseThink("3s..1s"); err == nil {
		t.Error("want an error for a reversed range")
	}
}

// TestSessionLost: with hosts mapping a name to the loopback address, a
// Secure session cookie over plain HTTP is dropped as a browser drops it
// (loopback addresses and localhost count as secure origins, names do not),
// and the next page, redirected to the login form, is a failure.
func TestSessionLost(t *testing.T) {
	srv := testserver.New("pw-ok")
	srv.SecureSession = true
	ts := httptest.NewServer(srv)
	defer ts.Close()
	p := loginScenario(t, strings.Replace(ts.URL, "127.0.0.1", "app.test", 1), "pw-ok")
	p.Hosts = session.Hosts{"app.test": "127.0.0.1"}
	rs, _ := collect(t, p)
	if n, failed, _ := count(rs, "[AUTH] Login POST"); n == 0 || failed != 0 {
		t.Fatalf("login POST: %d requests, %d failed; the login itself succeeds", n, failed)
	}
	n, failed, reasons := count(rs, "GET /dashboard/")
	if n == 0 || failed != n || reasons["redirected to login page: session lost"] != n {
		t.Fatalf("dashboard: %d requests, %d failed, reasons %v; want every one lost", n, failed, reasons)
	}
}

func TestUserAssignment(t *testing.T) {
	rows := [][]string{{"a", "1"}, {"b", "2"}, {"c", "3"}}
	for _, tc := range []struct {
		a        Assignment
		users    int
		want     []string // username of users 1..n
		accounts int
	}{
		{Unique, 3, []string{"a", "b", "c"}, 3},
		{Shared, 4, []string{"a", "a", "a", "a"}, 1},
		{RoundRobin, 5, []string{"a", "b", "c", "a", "b"}, 3},
	} {
		p := &Plan{Rows: rows, Header: []string{"username", "password"}, Assignment: tc.a, Users: tc.users}
		for i, w := range tc.want {
			if got := p.row(i + 1)[0]; got != w {
				t.Errorf("%s: user %d got row %q, want %q", tc.a, i+1, got, w)
			}
		}
		if got := p.Accounts(); got != tc.accounts {
			t.Errorf("%s: Accounts() = %d, want %d", tc.a, got, tc.accounts)
		}
	}
	sc, err := ParseScenario("s.yaml", []byte("target: http://h\nload: {users: 5}\nusers_file: u.csv\ntasks: [{steps: [{get: /}]}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "u.csv"), []byte("username,password\na,1\nb,2\n"), 0o600)
	sc.file = filepath.Join(dir, "s.yaml")
	if _, err := sc.Compile(); err == nil || !strings.Contains(err.Error(), "fewer than the 5 virtual users") {
		t.Errorf("unique with too few rows: %v", err)
	}
}

// TestReloginAfterSessionLost: the server forgets every session halfway
// (a restart of an app with in-memory sessions). Each user is bounced to
// the login page once, logs in again on its next iteration (those requests
// marked Relogin) and browses successfully afterwards. With relogin off,
// users keep getting bounced.
func TestReloginAfterSessionLost(t *testing.T) {
	for _, relogin := range []bool{true, false} {
		t.Run(fmt.Sprintf("relogin=%v", relogin), func(t *testing.T) {
			srv := testserver.New("pw-ok")
			ts := httptest.NewServer(srv)
			defer ts.Close()
			p := loginScenario(t, ts.URL, "pw-ok")
			p.NoRelogin = !relogin
			time.AfterFunc(1500*time.Millisecond, srv.ForgetSessions)
			rs, e := collect(t, p)
			forgot := rs[0].Start.Add(1500 * time.Millisecond)
			lostAt := map[int]time.Time{} // user → first lost page
			var relogins, okAfter int
			for _, r := range rs {
				if r.Reason == "redirected to login page: session lost" {
					if _, ok := lostAt[r.User]; !ok {
						lostAt[r.User] = r.Start
					}
				}
				if r.Relogin {
					relogins++
					if r.Name == "[AUTH] Login POST" && r.Failed() {
						t.Errorf("re-login failed: %+v", r)
					}
				}
				if r.Name == "GET /dashboard/" && !r.Failed() && r.Start.After(forgot.Add(500*time.Millisecond)) {
					if _, ok := lostAt[r.User]; ok {
						okAfter++
					}
				}
			}
			if len(lostAt) < 40 {
				t.Fatalf("%d users lost their session, want nearly all 50", len(lostAt))
			}
			if got := e.SessionsLost(); got < int64(len(lostAt)) {
				t.Errorf("SessionsLost() = %d, want at least %d", got, len(lostAt))
			}
			if relogin {
				if e.Relogins() < int64(len(lostAt))*9/10 || relogins == 0 {
					t.Errorf("Relogins() = %d, %d requests marked, for %d users who lost their session", e.Relogins(), relogins, len(lostAt))
				}
				if okAfter == 0 {
					t.Errorf("no dashboard succeeded after the re-logins")
				}
				return
			}
			if e.Relogins() != 0 || relogins != 0 || okAfter != 0 {
				t.Errorf("relogin off: %d relogins, %d marked requests, %d dashboards ok after the loss", e.Relogins(), relogins, okAfter)
			}
		})
	}
}

func TestReloginKey(t *testing.T) {
	for yml, want := range map[string]bool{
		"target: http://h\nload: {users: 1}\ntasks: [{steps: [{get: /}]}]\n":                 false,
		"target: http://h\nload: {users: 1}\nrelogin: false\ntasks: [{steps: [{get: /}]}]\n": true,
		"target: http://h\nload: {users: 1}\nrelogin: true\ntasks: [{steps: [{get: /}]}]\n":  false,
	} {
		sc, err := ParseScenario("s.yaml", []byte(yml))
		if err != nil {
			t.Fatal(err)
		}
		p, err := sc.Compile()
		if err != nil {
			t.Fatal(err)
		}
		if p.NoRelogin != want {
			t.Errorf("%q: NoRelogin = %v, want %v", yml, p.NoRelogin, want)
		}
	}
}

// lateCtx is a context whose deadline passes before it is done, as the
// run's context is on a CPU kept busy by its users: its timer has not run
// yet when the connections' deadlines, set from it, already fire.
type lateCtx struct {
	context.Context
	deadline time.Time
}

func (c lateCtx) Deadline() (time.Time, bool) { return c.deadline, true }

// TestNoRoundsAfterTheDeadline checks that users past the run's deadline
// stop, rather than going round again while its context is not yet done:
// each round's request failed at once (its deadline past) and was counted
// as cut off by the end, tens of thousands of them in a second.
func TestNoRoundsAfterTheDeadline(t *testing.T) {
	srv := testserver.New("pw-ok")
	ts := httptest.NewServer(srv)
	defer ts.Close()
	users := 5
	for _, load := range []LoadSpec{
		{Users: users, SpawnRate: 1000, Duration: "10s"},
		{ArrivalRate: "2000/s", MaxUsers: users, Duration: "10s"},
	} {
		model := "closed"
		if load.ArrivalRate != "" {
			model = "open"
		}
		t.Run(model, func(t *testing.T) {
			sc := &Scenario{Target: ts.URL, Load: load, Tasks: []TaskSpec{{Name: "home", Steps: []StepSpec{{Get: "/"}}}}}
			p, err := sc.Compile()
			if err != nil {
				t.Fatal(err)
			}
			parent, cancel := context.WithTimeout(context.Background(), 800*time.Millisecond)
			defer cancel()
			ctx := lateCtx{Context: parent, deadline: time.Now().Add(300 * time.Millisecond)}
			e := New(p)
			out := make(chan stampede.Result, 1024)
			n := make(chan int)
			go func() {
				c := 0
				for range out {
					c++
				}
				n <- c
			}()
			if err := e.Run(ctx, out); err != nil {
				t.Fatal(err)
			}
			close(out)
			if got := <-n; got == 0 {
				t.Fatal("no request recorded before the deadline")
			}
			if got := e.Aborted(); got > int64(users) {
				t.Errorf("%d requests cut off by the end for %d users: users went round again past the deadline", got, users)
			}
		})
	}
}
