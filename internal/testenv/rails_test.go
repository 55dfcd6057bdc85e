package testenv

import (
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

// TestRailsModes: every mode names a finding of DESIGN.md's vocabulary
// (healthy none), exactly one is representative, and its load stays within
// what the e2e test affords on 2 cores: at most 100 users for at most 30 s.
func TestRailsModes(t *testing.T) {
	ids := map[string]bool{}
	for _, id := range strings.Fields(`db-pool-wait-timeout db-connection-limit login-rate-limit password-hash-cpu
		cpu-saturation db-lock-contention slow-query redis-connection-limit redis-unavailable app-worker-saturation
		csrf-failure session-lost target-down`) {
		ids[id] = true
	}
	ms, err := Modes("rails")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	reps := 0
	for i, m := range ms {
		if seen[m.Name] {
			t.Errorf("%s: twice", m.Name)
		}
		seen[m.Name] = true
		if m.Stack != "rails" {
			t.Errorf("%s: stack %q", m.Name, m.Stack)
		}
		if m.Representative {
			reps++
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
	if _, err := LookupMode("rails", "nope"); err == nil || !strings.Contains(err.Error(), `unknown mode "nope"`) {
		t.Errorf("LookupMode(rails, nope): %v", err)
	}
	if m, err := LookupMode("rails", ""); err != nil || m.Name != "healthy" {
		t.Errorf("LookupMode(rails, \"\"): %+v, %v", m, err)
	}
}

// TestRailsModeEnv: each mode's settings are names the application reads
// (config/, app/), so a typo cannot turn a fault mode into a healthy one.
func TestRailsModeEnv(t *testing.T) {
	var src strings.Builder
	for _, dir := range []string{"config", "app", "db"} {
		err := walkRails(dir, func(name string, b []byte) {
			if strings.HasSuffix(name, ".rb") || strings.HasSuffix(name, ".yml") {
				src.Write(b)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range railsModes {
		for k := range m.Env {
			if !strings.Contains(src.String(), `"`+k+`"`) {
				t.Errorf("%s: %s is read nowhere in the application", m.Name, k)
			}
		}
	}
}

func walkRails(dir string, f func(name string, b []byte)) error {
	entries, err := railsFiles.ReadDir("testdata/rails/" + dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := dir + "/" + e.Name()
		if e.IsDir() {
			if err := walkRails(p, f); err != nil {
				return err
			}
			continue
		}
		b, err := RailsFile(p)
		if err != nil {
			return err
		}
		f(p, b)
	}
	return nil
}

func TestRailsWriteScenario(t *testing.T) {
	for _, tc := range []struct {
		mode      string
		threshold bool
	}{
		{"healthy", false},
		{"db-pool-wait-timeout-app", true},
	} {
		m, err := lookupRailsMode(tc.mode)
		if err != nil {
			t.Fatal(err)
		}
		r := &Rails{Config: m, DB: &RailsDB{Users: 200}}
		dir := t.TempDir()
		path, err := r.WriteScenario(dir)
		if err != nil {
			t.Fatal(err)
		}
		sc, _ := os.ReadFile(path)
		if !strings.Contains(string(sc), "\nuser_assignment: unique\n") || !strings.Contains(string(sc), "users_file: users.csv") {
			t.Errorf("%s: scenario lacks its users:\n%s", tc.mode, sc)
		}
		if got := strings.Contains(string(sc), `"p95 < 500ms"`); got != tc.threshold {
			t.Errorf("%s: login latency threshold %v, want %v", tc.mode, got, tc.threshold)
		}
		users, _ := os.ReadFile(filepath.Join(dir, "users.csv"))
		lines := strings.Split(strings.TrimSpace(string(users)), "\n")
		// One account per user: no mode shares them.
		if len(lines) != m.Load.Users+1 || lines[0] != "username,password" || lines[1] != "user001,"+RailsPassword {
			t.Errorf("%s: users.csv has %d rows, want %d:\n%.200s", tc.mode, len(lines)-1, m.Load.Users, users)
		}
	}
}

// TestRailsProject: the embedded application has what StartRails runs,
// and the scenario and the locustfile name the same endpoints.
func TestRailsProject(t *testing.T) {
	for _, f := range []string{"config.ru", "config/application.rb", "config/puma.rb", "config/database.yml",
		"config/routes.rb", "db/setup.rb", "app/views/devise/sessions/new.html.erb", "scenario.yaml", "locustfile.py"} {
		if _, err := RailsFile(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	sc, _ := RailsFile("scenario.yaml")
	lf, _ := RailsFile("locustfile.py")
	names := regexp.MustCompile(`name: "([^"]+)"`).FindAllStringSubmatch(string(sc), -1)
	if len(names) < 6 {
		t.Fatalf("scenario.yaml names %d steps", len(names))
	}
	for _, n := range names {
		if !strings.Contains(string(lf), `"`+n[1]+`"`) {
			t.Errorf("locustfile.py has no endpoint named %q", n[1])
		}
	}
	dir, err := extractRails()
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	for _, d := range []string{"tmp", "log", "db/migrate"} {
		if st, err := os.Stat(filepath.Join(dir, d)); err != nil || !st.IsDir() {
			t.Errorf("extracted application lacks %s/: %v", d, err)
		}
	}
}

// TestRailsLogin starts the healthy target and signs in through Devise's
// own form as a browser would: the form's authenticity_token, a 302 to the
// dashboard, the session kept in Redis; a wrong password gets the form
// again with Devise's message, and lograge logs both POSTs.
func TestRailsLogin(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL, PgBouncer, Redis and Puma")
	}
	r := RailsTarget(t, RailsOptions{Dir: t.TempDir()})
	if r.PID <= 0 || !strings.HasPrefix(r.NamedURL, "http://"+RailsHost+":") {
		t.Fatalf("PID %d, NamedURL %s", r.PID, r.NamedURL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		password   string
		status     int
		location   string
		page, body string
	}{
		{RailsPassword, http.StatusFound, r.URL + "/", "/dashboard", "<h1>Dashboard</h1>"},
		{"wrong-password", http.StatusOK, "", "/users/sign_in", "Invalid Login or password."},
	} {
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		status, _, form := railsGet(ctx, t, c, r.URL+"/users/sign_in")
		m := regexp.MustCompile(`name="authenticity_token" value="([^"]+)"`).FindStringSubmatch(form)
		if status != http.StatusOK || m == nil || !strings.Contains(form, `name="user[login]"`) {
			t.Fatalf("sign-in form: HTTP %d, token %v:\n%.500s", status, m != nil, form)
		}
		v := url.Values{"authenticity_token": {m[1]}, "user[login]": {"user007"}, "user[password]": {tc.password}}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, r.URL+"/users/sign_in", strings.NewReader(v.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("Location") != tc.location {
			t.Fatalf("POST (password %s): HTTP %d to %q, want %d to %q:\n%.500s", tc.password[:5], resp.StatusCode, resp.Header.Get("Location"), tc.status, tc.location, body)
		}
		page := string(body)
		if tc.status == http.StatusFound {
			status, _, page = railsGet(ctx, t, c, r.URL+tc.page)
			if status != http.StatusOK {
				t.Fatalf("GET %s after sign-in: HTTP %d", tc.page, status)
			}
		}
		if !strings.Contains(page, tc.body) {
			t.Errorf("password %s…: page lacks %q:\n%.800s", tc.password[:5], tc.body, page)
		}
	}
	// Another page, then lograge's lines: one JSON object per request.
	jar, _ := cookiejar.New(nil)
	if status, _, _ := railsGet(ctx, t, &http.Client{Jar: jar}, r.URL+"/recap"); status != http.StatusOK {
		t.Errorf("GET /recap logged out: HTTP %d after redirects, want the sign-in form", status)
	}
	time.Sleep(200 * time.Millisecond)
	posts := map[int]int{}
	for _, l := range strings.Split(strings.TrimSpace(Tail(r.LogrageLog, 100)), "\n") {
		var e struct {
			Method, Path string
			Status       int
			Duration     float64
			Time         time.Time
		}
		if err := json.Unmarshal([]byte(l), &e); err != nil || e.Time.IsZero() || e.Duration <= 0 {
			t.Fatalf("lograge line %q: want JSON with a time and a duration (%v)", l, err)
		}
		if e.Method == "POST" && e.Path == "/users/sign_in" {
			posts[e.Status]++
		}
	}
	if posts[302] != 1 || posts[200] != 1 {
		t.Errorf("lograge logged the sign-in POSTs with statuses %v, want one 302 and one 200", posts)
	}
	if b, _ := os.ReadFile(r.RailsLog); strings.Contains(string(b), "FATAL") {
		t.Errorf("Rails' log has an error:\n%s", Tail(r.RailsLog, 20))
	}
}

func railsGet(ctx context.Context, t *testing.T, c *http.Client, u string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}
