package main

import (
	"bytes"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stampede-load/stampede/internal/testserver"
)

// runBinary runs the built stampede and returns its output and exit code.
func runBinary(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := stampedeCmd(args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// TestHARCommand makes a scenario from a recording of each tool: the
// scenario file and the users file's header are written, the report names
// what was left out, the login and each correlation, and no output holds
// the recorded username or password.
func TestHARCommand(t *testing.T) {
	for _, tool := range []string{"chromium", "firefox", "safari", "mitmproxy", "charles", "fiddler", "proxyman"} {
		t.Run(tool, func(t *testing.T) {
			dir := t.TempDir()
			rec := filepath.Join("..", "..", "internal", "har", "testdata", "tools", tool+".har")
			out := filepath.Join(dir, "scenario.yaml")
			stdout, stderr, code := runBinary(t, "har", rec, "-o", out)
			if code != 0 {
				t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
			}
			scenario, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			users, err := os.ReadFile(filepath.Join(dir, "users.csv"))
			if err != nil {
				t.Fatal(err)
			}
			if string(users) != "username,password\n" {
				t.Errorf("users.csv = %q, want its header only", users)
			}
			for _, want := range []string{"Read " + rec + ": ", "; target https://shop.example.test.", "Left out: ", "Login: POST /", "in on_start",
				"Correlated (", "Wrote " + out + ".", "Wrote " + filepath.Join(dir, "users.csv") + " with its header only (username,password)", "Next: stampede har"} {
				if !strings.Contains(stdout, want) {
					t.Errorf("output lacks %q:\n%s", want, stdout)
				}
			}
			for _, secret := range []string{"Tr0ub4dor", "alice@example.test", "alice%40example.test"} {
				for name, text := range map[string]string{"stdout": stdout, "stderr": stderr, "scenario": string(scenario), "users.csv": string(users)} {
					if strings.Contains(text, secret) {
						t.Errorf("%s holds the recorded %q", name, secret)
					}
				}
			}
			// A second run keeps the users file the user filled.
			if err := os.WriteFile(filepath.Join(dir, "users.csv"), []byte("username,password\nbob,pw\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			stdout, _, code = runBinary(t, "har", rec, "-o", out)
			if code != 0 || !strings.Contains(stdout, "1 accounts (columns username,password)") {
				t.Errorf("second run: exit %d\n%s", code, stdout)
			}
		})
	}
}

// TestHARCommandErrors: a damaged recording, several candidate origins and
// a check without an account are errors (exit 1) that say where and what
// to do.
func TestHARCommandErrors(t *testing.T) {
	dir := t.TempDir()
	two := filepath.Join(dir, "two.har")
	doc := `{"log": {"version": "1.2", "entries": [
	{"startedDateTime": "2026-11-20T10:00:00Z", "_resourceType": "document", "request": {"method": "GET", "url": "https://www.search.test/?q=shop"}, "response": {"status": 200, "content": {"mimeType": "text/html"}}},
	{"startedDateTime": "2026-11-20T10:00:01Z", "_resourceType": "document", "request": {"method": "GET", "url": "https://shop.example.test/"}, "response": {"status": 200, "content": {"mimeType": "text/html"}}},
	{"startedDateTime": "2026-11-20T10:00:02Z", "_resourceType": "xhr", "request": {"method": "GET", "url": "https://shop.example.test/api/cart"}, "response": {"status": 200, "content": {"mimeType": "application/json"}}}
	]}}`
	if err := os.WriteFile(two, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	hostile := filepath.Join("..", "..", "internal", "har", "testdata", "hostile", "url-number.har")
	chromium := filepath.Join("..", "..", "internal", "har", "testdata", "tools", "chromium.har")
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"har", hostile}, []string{"Error: har: " + hostile + ":15:47: log.entries[1].request.url: want a string, got number", "Try: export the recording"}},
		{[]string{"har", two}, []string{"Error: har: the recording's pages come from several origins: https://shop.example.test (2 requests), https://www.search.test (1 requests); say which is the target with --origin",
			"Try: stampede har " + two + " --origin https://shop.example.test"}},
		{[]string{"har", chromium, "-o", filepath.Join(dir, "s.yaml"), "--check"}, []string{"has no account to log in with", "Try: add a row of a real account under the header username,password"}},
		{[]string{"har"}, []string{"Error: har: want one recording, got 0"}},
	}
	for _, tc := range cases {
		stdout, stderr, code := runBinary(t, tc.args...)
		if code != 1 {
			t.Errorf("%v: exit %d, want 1\n%s%s", tc.args, code, stdout, stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%v: stderr lacks %q:\n%s", tc.args, w, stderr)
			}
		}
	}
	// With --origin the same recording is read.
	if stdout, stderr, code := runBinary(t, "har", two, "--origin", "https://shop.example.test"); code != 0 || !strings.Contains(stdout, "get: /api/cart") {
		t.Errorf("--origin: exit %d\n%s%s", code, stdout, stderr)
	}
}

// TestRunCheck is stampede run --check: the scenario once, each step
// against its expect; the first that fails is printed and exits 1.
func TestRunCheck(t *testing.T) {
	srv := httptest.NewServer(testserver.New("s3cret-pw"))
	defer srv.Close()
	dir := t.TempDir()
	scenario := filepath.Join(dir, "s.yaml")
	if err := os.WriteFile(scenario, []byte(`target: `+srv.URL+`
load: {users: 1}
users_file: users.csv
on_start:
  - {name: "GET /accounts/login/", get: /accounts/login/}
  - name: "POST /accounts/login/"
    submit_form: {fields: {login: "{{user.username}}", password: "{{user.password}}"}}
    expect: {status: [302], not_login_page: true}
tasks:
  - {name: dashboard, steps: [{name: "GET /dashboard/", get: /dashboard/, expect: {status: [200]}}]}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	users := filepath.Join(dir, "users.csv")
	for _, tc := range []struct {
		password string
		code     int
		want     string
	}{
		{"s3cret-pw", 0, "Check passed: 3 steps did as expected."},
		{"wrong-pw", 1, "POST /accounts/login/: login page returned: The username and/or password you specified are not correct."},
	} {
		if err := os.WriteFile(users, []byte("username,password\nann,"+tc.password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, code := runBinary(t, "run", scenario, "--check", "--out", filepath.Join(dir, "run"))
		if code != tc.code || !strings.Contains(stdout, tc.want) {
			t.Errorf("password %s: exit %d, want %d with %q\n%s%s", tc.password, code, tc.code, tc.want, stdout, stderr)
		}
		if strings.Contains(stdout+stderr, tc.password) {
			t.Errorf("the output holds the password")
		}
		if _, err := os.Stat(filepath.Join(dir, "run")); err == nil {
			t.Errorf("--check wrote a run directory")
		}
	}
}
