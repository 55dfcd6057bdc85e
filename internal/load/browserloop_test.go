package load

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	stampede "github.com/stampede-load/stampede"
)

// A scenario's users on the event loops do what the goroutine users do
// (STAMPEDE_BROWSER_LOOP=off): a login through a form with its CSRF token
// and cookies, a wrong password seen on a 200, a redirect followed to a
// page, values extracted from a header and a body and sent back, a
// redirect to another host (another connection) and an error status. The
// server sees the same kinds of requests (method, path, the cookies' names,
// Referer, Content-Type, the extracted header) from both, and each step
// ends with the same outcomes and reasons.
func TestBrowserLoopAsGoroutines(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the event loop is Linux's")
	}
	var mu sync.Mutex
	seen := map[string]map[string]bool{} // mode -> request shapes
	mode := ""
	record := func(r *http.Request) {
		var names []string
		for _, c := range r.Cookies() {
			names = append(names, c.Name)
		}
		slices.Sort(names)
		shape := fmt.Sprintf("%s %s cookies=%v referer=%s type=%s token=%s", r.Method, r.URL.RequestURI(), names,
			r.Referer(), r.Header.Get("Content-Type"), r.Header.Get("X-Token"))
		mu.Lock()
		if seen[mode] == nil {
			seen[mode] = map[string]bool{}
		}
		seen[mode][shape] = true
		mu.Unlock()
	}
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		record(r)
		fmt.Fprint(w, "elsewhere")
	}))
	defer other.Close()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		record(r)
		switch r.URL.Path {
		case "/accounts/login/":
			if r.Method == http.MethodPost {
				_ = r.ParseForm()
				c, err := r.Cookie("csrftoken")
				if err != nil || c.Value != r.PostForm.Get("csrfmiddlewaretoken") {
					http.Error(w, "CSRF verification failed", http.StatusForbidden)
					return
				}
				if r.PostForm.Get("password") == "right" {
					http.SetCookie(w, &http.Cookie{Name: "sessionid", Value: "s-" + r.PostForm.Get("login"), Path: "/", HttpOnly: true})
					http.Redirect(w, r, "/dashboard/", http.StatusFound)
					return
				}
				fmt.Fprint(w, `<ul class="errorlist"><li>The username and/or password you specified are not correct.</li></ul>`)
			}
			http.SetCookie(w, &http.Cookie{Name: "csrftoken", Value: "tok123", Path: "/"})
			fmt.Fprint(w, `<html><form method="post" action="/accounts/login/"><input type="hidden" name="csrfmiddlewaretoken" value="tok123">
<input name="login"><input type="password" name="password"></form></html>`)
		case "/dashboard/":
			if _, err := r.Cookie("sessionid"); err != nil {
				http.Redirect(w, r, "/accounts/login/?next=/dashboard/", http.StatusFound)
				return
			}
			fmt.Fprint(w, "<h1>Dashboard</h1>")
		case "/items/":
			w.Header().Set("X-Next", "n-42")
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"id": 7}`)
		case "/items/7":
			if r.Header.Get("X-Token") != "n-42" {
				http.Error(w, "no token", http.StatusBadRequest)
				return
			}
			w.Header().Set("Transfer-Encoding", "chunked")
			fmt.Fprint(w, strings.Repeat("item ", 2000))
		case "/away":
			http.Redirect(w, r, other.URL+"/there", http.StatusSeeOther)
		case "/broken":
			http.Error(w, "boom", http.StatusInternalServerError)
		default:
			http.NotFound(w, r)
		}
	}))
	defer ts.Close()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "users.csv"), []byte("username,password\nann,right\nbob,wrong\ncid,right\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yml := fmt.Sprintf(`target: %s
load: {users: 3, spawn_rate: 100, duration: 1s}
think: 5ms
users_file: users.csv
on_start:
  - {name: login page, get: /accounts/login/}
  - name: login
    submit_form: {fields: {login: "{{user.username}}", password: "{{user.password}}"}}
    expect: {not_login_page: true}
tasks:
  - name: dashboard
    steps:
      - {name: dashboard, get: /dashboard/, expect: {body_contains: Dashboard}}
  - name: items
    steps:
      - name: items
        get: /items/
        extract: {next: {header: X-Next}, id: {regex: '"id": (\d+)'}}
      - {name: item, get: "/items/{{id}}", headers: {X-Token: "{{next}}"}}
  - name: away
    steps:
      - {name: away, get: /away}
      - {name: broken, get: /broken}
`, ts.URL)
	path := filepath.Join(dir, "s.yaml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	outcomes := map[string]map[string]bool{}
	for _, m := range []string{"loop", "off"} {
		mu.Lock()
		mode = m
		mu.Unlock()
		if m == "off" {
			t.Setenv(EnvBrowserLoop, "off")
		}
		sc, err := ReadScenario(path)
		if err != nil {
			t.Fatal(err)
		}
		p, err := sc.Compile()
		if err != nil {
			t.Fatal(err)
		}
		p.Duration = time.Second
		e := New(p)
		rs, _ := collectWith(t, e)
		if (e.loops.Load() != nil) != (m == "loop") {
			t.Fatalf("%s: event loops in use: %v", m, e.loops.Load() != nil)
		}
		outcomes[m] = map[string]bool{}
		for _, r := range rs {
			outcomes[m][fmt.Sprintf("%s %s %s %d %q", r.Name, r.Method, r.Outcome, r.Status, r.Reason)] = true
		}
	}
	for _, pair := range [][2]map[string]bool{{outcomes["loop"], outcomes["off"]}, {seen["loop"], seen["off"]}} {
		var only []string
		for k := range pair[0] {
			if !pair[1][k] {
				only = append(only, "loop only: "+k)
			}
		}
		for k := range pair[1] {
			if !pair[0][k] {
				only = append(only, "goroutines only: "+k)
			}
		}
		slices.Sort(only)
		if len(only) > 0 {
			t.Errorf("the two differ:\n%s", strings.Join(only, "\n"))
		}
	}
	// What the test is about happened.
	for _, want := range []string{`login POST ok 200 ""`, `login POST content 200 "login page returned: The username and/or password you specified are not correct."`,
		`item GET ok 200 ""`, `away GET ok 200 ""`, `broken GET status 500 "HTTP 500"`} {
		if !outcomes["loop"][want] {
			t.Errorf("no %s among the loop's outcomes: %v", want, outcomes["loop"])
		}
	}
}

// A redirect to https, which the event loop does not speak, fails its
// request with a reason that says so and how to run it (the goroutine
// users follow it).
func TestBrowserLoopHTTPSRedirect(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the event loop is Linux's")
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://127.0.0.1:1/secure", http.StatusFound)
	}))
	defer ts.Close()
	sc, err := ParseScenario("s.yaml", []byte(fmt.Sprintf("target: %s\nload: {users: 1, duration: 1s}\nthink: 50ms\ntasks:\n  - steps:\n      - {name: tls, get: /go}\n", ts.URL)))
	if err != nil {
		t.Fatal(err)
	}
	p, err := sc.Compile()
	if err != nil {
		t.Fatal(err)
	}
	p.Duration = 300 * time.Millisecond
	e := New(p)
	rs, _ := collectWith(t, e)
	if e.loops.Load() == nil || len(rs) == 0 {
		t.Fatalf("loops %v, %d results", e.loops.Load() != nil, len(rs))
	}
	for _, r := range rs {
		if r.Outcome != stampede.FailTransport || r.Reason != errLoopHTTPS.Error() {
			t.Fatalf("result %s %q, want a transport failure %q", r.Outcome, r.Reason, errLoopHTTPS)
		}
	}
}
