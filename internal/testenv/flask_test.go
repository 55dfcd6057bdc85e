package testenv

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestFlaskModes: every mode names a finding of DESIGN.md's vocabulary
// (healthy none), one is representative, and its load stays within what
// the e2e test affords on 2 cores: at most 100 users for at most 30 s.
func TestFlaskModes(t *testing.T) {
	ids := map[string]bool{}
	for _, id := range strings.Fields(`db-pool-wait-timeout db-connection-limit login-rate-limit password-hash-cpu
		cpu-saturation db-lock-contention slow-query redis-connection-limit redis-unavailable app-worker-saturation
		csrf-failure session-lost target-down`) {
		ids[id] = true
	}
	ms, err := Modes("flask")
	if err != nil {
		t.Fatal(err)
	}
	seen, reps := map[string]bool{}, 0
	for i, m := range ms {
		if seen[m.Name] {
			t.Errorf("%s: twice", m.Name)
		}
		seen[m.Name] = true
		if m.Stack != "flask" {
			t.Errorf("%s: stack %q", m.Name, m.Stack)
		}
		if i == 0 && (m.Name != "healthy" || m.Want != "") {
			t.Errorf("first mode %s (want %q): want healthy, expecting no finding", m.Name, m.Want)
		}
		if i > 0 && !ids[m.Want] {
			t.Errorf("%s: want %q is not a finding id", m.Name, m.Want)
		}
		if m.Want != "" && !strings.HasPrefix(m.Name, m.Want) {
			t.Errorf("%s: named after %q?", m.Name, m.Want)
		}
		if m.Representative {
			reps++
		}
		l := m.Load
		if l.Users < 1 || l.Users > 100 || l.SpawnRate <= 0 || l.Duration <= 0 || l.Duration > 30*time.Second || l.Accounts > l.Users {
			t.Errorf("%s: load %+v", m.Name, l)
		}
		if m.About == "" {
			t.Errorf("%s: no About", m.Name)
		}
	}
	if reps != 1 {
		t.Errorf("%d representative modes, want 1", reps)
	}
	for _, name := range []string{"", "healthy", "slow-query", "db-pool-wait-timeout-app"} {
		if _, err := LookupMode("flask", name); err != nil {
			t.Errorf("LookupMode(flask, %q): %v", name, err)
		}
	}
	if _, err := LookupFlaskMode("nope"); err == nil || !strings.Contains(err.Error(), `unknown mode "nope"`) {
		t.Errorf("LookupFlaskMode(nope): %v", err)
	}
}

func TestFlaskWriteScenario(t *testing.T) {
	for _, tc := range []struct {
		mode   string
		rows   int
		p95    bool
		assign string
	}{
		{"healthy", 10, false, "user_assignment: unique"},
		{"slow-query", 20, true, "user_assignment: unique"},
	} {
		m, err := LookupFlaskMode(tc.mode)
		if err != nil {
			t.Fatal(err)
		}
		f := &Flask{Config: m, DB: &FlaskDB{Users: 200}}
		dir := t.TempDir()
		path, err := f.WriteScenario(dir)
		if err != nil {
			t.Fatal(err)
		}
		sc, _ := os.ReadFile(path)
		if !strings.Contains(string(sc), "\n"+tc.assign+"\n") || !strings.Contains(string(sc), "users_file: users.csv") {
			t.Errorf("%s: scenario lacks %q:\n%s", tc.mode, tc.assign, sc)
		}
		if got := strings.Contains(string(sc), `"p95 < 500ms"`); got != tc.p95 {
			t.Errorf("%s: p95 threshold kept %v, want %v", tc.mode, got, tc.p95)
		}
		users, _ := os.ReadFile(filepath.Join(dir, "users.csv"))
		lines := strings.Split(strings.TrimSpace(string(users)), "\n")
		if len(lines) != tc.rows+1 || lines[0] != "username,password" || lines[1] != "user001,"+FlaskPassword {
			t.Errorf("%s: users.csv has %d rows, want %d", tc.mode, len(lines)-1, tc.rows)
		}
	}
}

// TestFlaskProject: the embedded project has what StartFlask runs, and it
// extracts whole.
func TestFlaskProject(t *testing.T) {
	for _, f := range []string{"wsgi.py", "manage.py", "schema.sql", "seed.sql", "scenario.yaml", "locustfile.py",
		"estimates/__init__.py", "estimates/templates/login.html"} {
		if _, err := FlaskFile(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	dir, err := extractFlask()
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if _, err := os.Stat(filepath.Join(dir, "estimates", "auth.py")); err != nil {
		t.Errorf("extracted project lacks a module: %v", err)
	}
}

var csrfInput = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// TestFlaskLogin starts the healthy Flask target (PostgreSQL, PgBouncer,
// Redis, uWSGI behind nginx) and logs in as a browser does: GET the form,
// POST it with its CSRF token, follow to the dashboard. A POST without the
// token is refused with Flask-WTF's words. Every request is in the app's
// JSON log and in nginx's access log with its times.
func TestFlaskLogin(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL, PgBouncer, Redis, uWSGI and nginx")
	}
	f := FlaskTarget(t, FlaskOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	get := func(path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.URL+path, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	post := func(form url.Values) (int, string, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.URL+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultTransport.RoundTrip(withCookies(req, jar))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if u, _ := url.Parse(f.URL); resp.Cookies() != nil {
			jar.SetCookies(u, resp.Cookies())
		}
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Location"), string(b)
	}

	code, body := get("/dashboard")
	if code != 200 || !strings.Contains(body, `type="password"`) {
		t.Fatalf("GET /dashboard before login: %d, want the login form", code)
	}
	code, body = get("/login")
	m := csrfInput.FindStringSubmatch(body)
	if code != 200 || m == nil {
		t.Fatalf("GET /login: %d, csrf_token %v", code, m)
	}
	code, _, body = post(url.Values{"username": {"user001"}, "password": {FlaskPassword}})
	if code != 400 || !strings.Contains(body, "The CSRF token is missing.") {
		t.Errorf("POST /login without the token: %d %q, want 400 The CSRF token is missing.", code, body)
	}
	code, loc, body := post(url.Values{"csrf_token": {m[1]}, "username": {"user001"}, "password": {"wrong"}})
	if code != 200 || loc != "" || !strings.Contains(body, "Invalid username or password.") {
		t.Errorf("POST /login with a wrong password: %d → %q, want 200 with the form and its error", code, loc)
	}
	m = csrfInput.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no csrf_token in the login form")
	}
	code, loc, _ = post(url.Values{"csrf_token": {m[1]}, "username": {"user001"}, "password": {FlaskPassword}})
	if code != 302 || loc != "/dashboard" {
		t.Fatalf("POST /login: %d → %q, want 302 → /dashboard", code, loc)
	}
	for _, tc := range []struct{ path, want string }{
		{"/dashboard", "Exchange rates: EUR"},
		{"/items?page=2", "Page 2 of 2"},
		{"/recap", "Cost recap"},
	} {
		if code, body := get(tc.path); code != 200 || !strings.Contains(body, tc.want) {
			t.Errorf("GET %s: %d, body lacks %q", tc.path, code, tc.want)
		}
	}

	time.Sleep(200 * time.Millisecond) // the log lines of the last request
	requests, warnings := 0, 0
	for _, rec := range jsonLines(t, f.AppLog) {
		switch {
		case rec["message"] == "request":
			if _, ok := rec["duration_ms"].(float64); !ok || rec["method"] == nil || rec["path"] == nil || rec["status"] == nil || rec["timestamp"] == nil {
				t.Errorf("request record lacks a field: %v", rec)
			}
			requests++
		case rec["name"] == "estimates.csrf":
			if rec["reason"] != "The CSRF token is missing." || rec["levelname"] != "WARNING" {
				t.Errorf("csrf record: %v", rec)
			}
			warnings++
		}
	}
	if requests < 9 || warnings != 1 {
		t.Errorf("app log: %d request records (want 9 or more), %d CSRF warnings (want 1)", requests, warnings)
	}
	access, _ := os.ReadFile(f.AccessLog)
	if n := strings.Count(string(access), `"POST /login HTTP/1.1" 302`); n != 1 || !strings.Contains(string(access), " rt=0.") {
		t.Errorf("access log: %d login 302s, want 1, and rt= times:\n%s", n, access)
	}
}

// withCookies adds the jar's cookies for req's URL (a RoundTrip that does
// not follow the login's redirect skips the client's jar).
func withCookies(req *http.Request, jar http.CookieJar) *http.Request {
	for _, c := range jar.Cookies(req.URL) {
		req.AddCookie(c)
	}
	return req
}

// jsonLines reads a JSON-lines log; a line that is not a JSON object fails
// the test.
func jsonLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var out []map[string]any
	sc := bufio.NewScanner(fh)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Errorf("%s: not a JSON object: %q", filepath.Base(path), sc.Text())
			continue
		}
		out = append(out, rec)
	}
	return out
}
