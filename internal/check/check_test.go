package check

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/testserver"
)

// plan writes a scenario (and its users file) for a served target and
// compiles it.
func plan(t *testing.T, target, scenario, users string) *load.Plan {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "s.yaml")
	if err := os.WriteFile(path, []byte("target: "+target+"\nload: {users: 1}\n"+scenario), 0o644); err != nil {
		t.Fatal(err)
	}
	if users != "" {
		if err := os.WriteFile(filepath.Join(dir, "users.csv"), []byte(users), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sc, err := load.ReadScenario(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := sc.Compile()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const login = `users_file: users.csv
on_start:
  - {name: "GET /accounts/login/", get: /accounts/login/}
  - name: "POST /accounts/login/"
    submit_form: {fields: {login: "{{user.username}}", password: "{{user.password}}"}}
    expect: {status: [302], not_login_page: true}
tasks:
  - name: dashboard
    steps:
      - {name: "GET /dashboard/", get: /dashboard/, expect: {status: [200]}}
`

// TestCheckExpect is stampede run --check: each step against its own
// expect, the login against the pages after it.
func TestCheckExpect(t *testing.T) {
	srv := httptest.NewServer(testserver.New("s3cret-pw"))
	defer srv.Close()
	cases := []struct {
		name, scenario, users string
		failed, problem       string // "" when the check passes
		steps                 int
	}{
		{name: "passes", scenario: login, users: "username,password\nann,s3cret-pw\n", steps: 3},
		{name: "wrong password", scenario: login, users: "username,password\nann,nope\n", failed: "POST /accounts/login/",
			problem: "login page returned: The username and/or password you specified are not correct.", steps: 2},
		{name: "status", scenario: "tasks:\n  - {name: t, steps: [{name: root, get: /, expect: {status: [201]}}]}\n",
			failed: "root", problem: "200 OK (expected 201)", steps: 1},
		{name: "no login held", scenario: "tasks:\n  - {name: t, steps: [{name: login page, get: /accounts/login/}]}\n", steps: 1},
		{name: "frozen token", scenario: "on_start:\n  - {name: login, post: /accounts/login/, form: {csrfmiddlewaretoken: abc, login: ann, password: s3cret-pw}, expect: {status: [302]}}\n",
			failed: "login", problem: "403 CSRF verification failed. Request aborted. (expected 302)", steps: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := plan(t, srv.URL, tc.scenario, tc.users)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			r, err := Run(ctx, p, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Steps) != tc.steps {
				t.Errorf("%d steps run, want %d", len(r.Steps), tc.steps)
			}
			switch {
			case tc.failed == "" && r.Failed != nil:
				t.Errorf("failed at %s: %s", r.Failed.Name, r.Failed.Problem)
			case tc.failed != "" && r.Failed == nil:
				t.Errorf("passed, want a failure at %s", tc.failed)
			case tc.failed != "" && (r.Failed.Name != tc.failed || r.Failed.Problem != tc.problem):
				t.Errorf("failed at %s: %q, want %s: %q", r.Failed.Name, r.Failed.Problem, tc.failed, tc.problem)
			}
		})
	}
}

// TestCheckRecorded is stampede har --check: each step compared with what
// the recording got.
func TestCheckRecorded(t *testing.T) {
	srv := httptest.NewServer(testserver.New("s3cret-pw"))
	defer srv.Close()
	frozen := []Source{{Sent: "form field csrfmiddlewaretoken", From: "GET /accounts/login/ (hidden input csrfmiddlewaretoken)", Frozen: true, Token: true}}
	cases := []struct {
		name, step string
		rec        Recorded
		problem    string
	}{
		{name: "same", step: "{name: root, get: /}", rec: Recorded{Status: 200, ContentType: "text/plain", Size: 2}},
		{name: "304 is a 200", step: "{name: root, get: /}", rec: Recorded{Status: 304, ContentType: "text/plain", Size: -1}},
		{name: "status", step: "{name: root, get: /}", rec: Recorded{Status: 404, ContentType: "text/plain", Size: 2}, problem: "200 OK (recorded 404)"},
		{name: "content type", step: "{name: root, get: /}", rec: Recorded{Status: 200, ContentType: "application/json", Size: 2}, problem: "content type text/plain, recorded application/json"},
		{name: "size", step: "{name: root, get: /}", rec: Recorded{Status: 200, ContentType: "text/plain", Size: 48000}, problem: "2 bytes, recorded 48000 (more than 5× apart)"},
		{name: "small sizes", step: "{name: root, get: /}", rec: Recorded{Status: 200, ContentType: "text/plain", Size: 900}},
		{name: "redirect", step: "{name: dash, get: /dashboard/, expect: {status: [302]}}", rec: Recorded{Status: 302, Location: srv.URL + "/dashboard/", Size: -1},
			problem: "redirected to /accounts/login/?next=/dashboard/, recorded /dashboard/"},
		{name: "redirect ids", step: "{name: dash, get: /dashboard/, expect: {status: [302]}}", rec: Recorded{Status: 302, Location: "/accounts/login/?next=/dashboard/", Size: -1}},
		{name: "login page", step: "{name: login, get: /accounts/login/}", rec: Recorded{Status: 200, ContentType: "text/html", Size: 600},
			problem: "the login page was shown again"},
		{name: "frozen token", step: "{name: login, post: /accounts/login/, form: {csrfmiddlewaretoken: abc, login: ann, password: s3cret-pw}, expect: {status: [302]}}",
			rec:     Recorded{Status: 302, Location: "/dashboard/", Size: 0, Sources: frozen},
			problem: "403 CSRF verification failed. Request aborted. (recorded 302) — the token sent (form field csrfmiddlewaretoken) is the recording's, frozen: the server hands out a fresh one in GET /accounts/login/ (hidden input csrfmiddlewaretoken)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := plan(t, srv.URL, "tasks:\n  - {name: t, steps: ["+tc.step+"]}\n", "")
			rec := tc.rec
			r, err := Run(context.Background(), p, Options{Recorded: func(task, i int) *Recorded {
				if task == 0 && i == 0 {
					return &rec
				}
				return nil
			}})
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if r.Failed != nil {
				got = r.Failed.Problem
			}
			if got != tc.problem {
				t.Errorf("problem %q, want %q", got, tc.problem)
			}
		})
	}
}

// TestCheckMasks: a step's URL and problem never show the users file's
// password, even when the page echoes it.
func TestCheckMasks(t *testing.T) {
	srv := httptest.NewServer(testserver.New("s3cret-pw"))
	defer srv.Close()
	p := plan(t, srv.URL, "users_file: users.csv\ntasks:\n  - {name: t, steps: [{name: q, get: \"/?password={{user.password}}\", expect: {status: [201]}}]}\n",
		"username,password\nann,s3cret-pw\n")
	r, err := Run(context.Background(), p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Failed == nil {
		t.Fatal("passed, want the 201 to fail")
	}
	for _, s := range r.Steps {
		if strings.Contains(s.URL+s.Problem, "s3cret-pw") {
			t.Errorf("step %q shows the password: %s %s", s.Name, s.URL, s.Problem)
		}
	}
}

// TestCheckUserTemplate: a recorded redirect to the recorded user's own
// page is compared with the page of the user the check logs in as.
func TestCheckUserTemplate(t *testing.T) {
	p := plan(t, "http://127.0.0.1:1", "users_file: users.csv\ntasks:\n  - {name: t, steps: [{name: root, get: /}]}\n", "username,password\nann,x\nbob b,y\n")
	for _, tc := range []struct {
		user     int
		in, want string
	}{
		{1, "/profile/{{user.username}}/", "/profile/ann/"},
		{2, "http://h/u/{{user.username}}?x=1", "http://h/u/bob%20b?x=1"},
		{3, "/profile/{{user.username}}/", "/profile/ann/"},
		{1, "/dashboard/", "/dashboard/"},
	} {
		if got := userTemplate(p, tc.user, tc.in); got != tc.want {
			t.Errorf("user %d %q: got %q, want %q", tc.user, tc.in, got, tc.want)
		}
	}
}
