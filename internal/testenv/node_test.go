package testenv

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
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

// TestNodeModes: every mode names a finding of DESIGN.md's vocabulary
// (healthy none), exactly one is representative, and its load stays within
// what the e2e test affords on 2 cores: at most 100 users for at most 30 s.
func TestNodeModes(t *testing.T) {
	ids := map[string]bool{}
	for _, id := range strings.Fields(`db-pool-wait-timeout db-connection-limit login-rate-limit password-hash-cpu
		cpu-saturation db-lock-contention slow-query redis-connection-limit redis-unavailable app-worker-saturation
		csrf-failure session-lost target-down`) {
		ids[id] = true
	}
	ms, err := Modes("node")
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
		if m.Stack != "node" {
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
	if _, err := LookupMode("node", "nope"); err == nil || !strings.Contains(err.Error(), `unknown mode "nope"`) {
		t.Errorf("LookupMode(node, nope): %v", err)
	}
	if m, err := LookupMode("node", ""); err != nil || m.Name != "healthy" {
		t.Errorf("LookupMode(node, \"\"): %+v, %v", m, err)
	}
}

// TestNodeModeEnv: each mode's settings are variables config.js reads, so
// a typo cannot turn a fault mode into a healthy one.
func TestNodeModeEnv(t *testing.T) {
	cfg, err := NodeFile("config.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range nodeModes {
		for _, env := range []map[string]string{nodeBaseEnv, m.Env} {
			for k := range env {
				if !strings.Contains(string(cfg), "'"+k+"'") {
					t.Errorf("%s: %s is read nowhere in config.js", m.Name, k)
				}
			}
		}
	}
}

// TestNodePackages: package.json pins every dependency to one version, and
// the lock file holds exactly those versions.
func TestNodePackages(t *testing.T) {
	var pkg struct {
		Dependencies    map[string]string
		DevDependencies map[string]string
	}
	var lock struct {
		LockfileVersion int
		Packages        map[string]struct {
			Version      string
			Dependencies map[string]string
		}
	}
	for name, v := range map[string]any{"package.json": &pkg, "package-lock.json": &lock} {
		b, err := NodeFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	exact := regexp.MustCompile(`^\d+\.\d+\.\d+$`)
	if len(pkg.Dependencies) == 0 || len(pkg.DevDependencies) > 0 {
		t.Errorf("package.json: dependencies %v, devDependencies %v", pkg.Dependencies, pkg.DevDependencies)
	}
	for name, v := range pkg.Dependencies {
		if !exact.MatchString(v) {
			t.Errorf("package.json: %s %q is not an exact version", name, v)
		}
		if got := lock.Packages["node_modules/"+name].Version; got != v {
			t.Errorf("package-lock.json: %s is %q, package.json pins %q (run npm install --package-lock-only)", name, got, v)
		}
		if lock.Packages[""].Dependencies[name] != v {
			t.Errorf("package-lock.json: the root's %s is %q, package.json pins %q", name, lock.Packages[""].Dependencies[name], v)
		}
	}
	if lock.LockfileVersion < 2 {
		t.Errorf("package-lock.json: lockfileVersion %d", lock.LockfileVersion)
	}
	dir, err := NodeModulesDir()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dir, filepath.Join("stampede", "node-target")) || filepath.Base(dir) != "node_modules" || len(filepath.Base(filepath.Dir(dir))) != 64 {
		t.Errorf("NodeModulesDir() = %s", dir)
	}
}

func TestNodeWriteScenario(t *testing.T) {
	for _, tc := range []struct {
		mode      string
		rows      int
		assign    string
		threshold bool
	}{
		{"healthy", 10, "user_assignment: unique", false},
		{"login-rate-limit", 30, "user_assignment: unique", true},
	} {
		m, err := lookupNodeMode(tc.mode)
		if err != nil {
			t.Fatal(err)
		}
		n := &Node{Config: m, DB: &NodeDB{Users: 200}}
		dir := t.TempDir()
		path, err := n.WriteScenario(dir)
		if err != nil {
			t.Fatal(err)
		}
		sc, _ := os.ReadFile(path)
		if !strings.Contains(string(sc), "\n"+tc.assign+"\n") || !strings.Contains(string(sc), "users_file: users.csv") {
			t.Errorf("%s: scenario lacks %q:\n%s", tc.mode, tc.assign, sc)
		}
		if got := strings.Contains(string(sc), `"p95 < 500ms"`); got != tc.threshold {
			t.Errorf("%s: p95 threshold kept %v, want %v", tc.mode, got, tc.threshold)
		}
		users, _ := os.ReadFile(filepath.Join(dir, "users.csv"))
		lines := strings.Split(strings.TrimSpace(string(users)), "\n")
		if len(lines) != tc.rows+1 || lines[0] != "username,password" || lines[1] != "user001,"+NodePassword {
			t.Errorf("%s: users.csv has %d rows, want %d:\n%.200s", tc.mode, len(lines)-1, tc.rows, users)
		}
	}
}

// TestNodeRunArgs: the run gets every probe, the node process's PID, the
// name resolved and every log.
func TestNodeRunArgs(t *testing.T) {
	m, _ := lookupNodeMode("slow-query")
	n := &Node{Config: m, NamedURL: "http://node.test:4000", PID: 4242, PostgresDSN: "pg", PgBouncerDSN: "pgb", RedisURL: "redis",
		AppLog: "/l/app.log", NodeLog: "/l/node.log", PgBouncerLog: "/l/pgbouncer.log", RedisLog: "/l/redis.log", PostgresLog: "/l/postgresql.log"}
	got := strings.Join(n.RunArgs("sc.yaml"), " ")
	for _, want := range []string{"run sc.yaml ", "--url http://node.test:4000", "--resolve node.test=127.0.0.1", "-u 20 -r 5 -t 25s",
		"--probe-postgres pg", "--probe-pgbouncer pgb", "--probe-redis redis", "--pid 4242",
		"--log app=/l/app.log", "--log node=/l/node.log", "--log pgbouncer=/l/pgbouncer.log", "--log redis=/l/redis.log", "--log postgres=/l/postgresql.log"} {
		if !strings.Contains(got, want) {
			t.Errorf("RunArgs lacks %q: %s", want, got)
		}
	}
}

var nodeCSRF = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

// TestNodeLogin starts the healthy target (installing its npm packages on
// first use), logs in through the form with its CSRF token, browses every
// page, and checks what the app logs: a pino-http line per request, a
// refused login shown as the form with its alert, a POST without the
// session's token refused with 403 "invalid csrf token".
func TestNodeLogin(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL, PgBouncer, Redis and node")
	}
	n := NodeTarget(t, NodeOptions{})
	if n.Workers != 2 {
		t.Errorf("healthy runs %d processes, want 2", n.Workers)
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string) (int, string, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.URL+path, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Location"), string(b)
	}
	post := func(form url.Values) (int, string, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, n.URL+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Location"), string(b)
	}
	token := func() string {
		t.Helper()
		st, _, body := get("/login")
		m := nodeCSRF.FindStringSubmatch(body)
		if st != 200 || m == nil || !strings.Contains(body, `type="password"`) {
			t.Fatalf("GET /login: %d, no form with a _csrf input:\n%.500s", st, body)
		}
		return m[1]
	}

	if st, loc, _ := get("/dashboard"); st != 302 || loc != "/login" {
		t.Errorf("GET /dashboard before login: %d → %q, want 302 → /login", st, loc)
	}
	if st, _, body := post(url.Values{"_csrf": {"forged"}, "username": {"user001"}, "password": {NodePassword}}); st != 403 || !strings.Contains(body, "invalid csrf token") {
		t.Errorf("POST /login with a forged token: %d\n%.300s", st, body)
	}
	if st, _, body := post(url.Values{"_csrf": {token()}, "username": {"user001"}, "password": {"wrong"}}); st != 200 || !strings.Contains(body, "Invalid username or password.") {
		t.Errorf("POST /login with a wrong password: %d\n%.300s", st, body)
	}
	if st, loc, body := post(url.Values{"_csrf": {token()}, "username": {"user001"}, "password": {NodePassword}}); st != 302 || loc != "/dashboard" {
		t.Fatalf("POST /login: %d → %q\n%.300s", st, loc, body)
	}
	for _, p := range []struct{ path, want string }{
		{"/dashboard", "Value in other currencies"},
		{"/items", "WI-0001"},
		{"/items?page=2", "WI-0011"},
		{"/recap", "Total:"},
		{"/report", "1500 lines"},
	} {
		st, _, body := get(p.path)
		if st != 200 || !strings.Contains(body, p.want) {
			t.Errorf("GET %s: %d, want 200 with %q:\n%.300s", p.path, st, p.want, body)
		}
	}
	if _, _, body := get("/dashboard"); strings.Contains(body, "exchange rates unavailable") {
		t.Errorf("the dashboard did not get the rates API's answer")
	}

	// pino-http's lines: one per request with method, url, statusCode and
	// responseTime; the refused POST with its err.
	time.Sleep(200 * time.Millisecond)
	f, err := os.Open(n.AppLog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var requests, csrfErr int
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l struct {
			Level        int
			Time         int64
			Msg          string
			ResponseTime *float64
			Req          struct{ Method, URL string }
			Res          struct{ StatusCode int }
			Err          struct{ Type, Message, Stack string }
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Errorf("app.log: not a JSON line: %v: %.200s", err, sc.Text())
			continue
		}
		if strings.Contains(sc.Text(), NodePassword) || strings.Contains(sc.Text(), "sid=") {
			t.Errorf("app.log: a secret in %.300s", sc.Text())
		}
		if l.ResponseTime != nil && l.Req.Method != "" && l.Req.URL != "" && l.Res.StatusCode > 0 && l.Time > 0 {
			requests++
		}
		if l.Res.StatusCode == 403 && l.Err.Message == "invalid csrf token" && l.Err.Type == "ForbiddenError" && strings.Contains(l.Err.Stack, "csrf.js") && l.Level == 40 {
			csrfErr++
		}
	}
	if requests < 10 {
		t.Errorf("app.log: %d request lines, want one per request", requests)
	}
	if csrfErr != 1 {
		t.Errorf("app.log: %d lines of the 403 with err invalid csrf token at warn, want 1", csrfErr)
	}
}

// TestNodeModules installs the npm packages into a new cache directory
// twice at once: one npm ci, both callers get the same complete directory,
// nothing half-made is left beside it. With the registry unreachable and
// npm's own cache empty, the install fails with ErrNotInstalled and leaves
// nothing behind.
func TestNodeModules(t *testing.T) {
	if testing.Short() {
		t.Skip("runs npm ci")
	}
	if err := NodeInstalled(); err != nil {
		check(t, err)
	}
	t.Run("concurrent", func(t *testing.T) {
		cache := t.TempDir()
		t.Setenv("XDG_CACHE_HOME", cache)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		dirs := make([]string, 2)
		errs := make([]error, 2)
		done := make(chan int)
		for i := range dirs {
			go func() {
				dirs[i], errs[i] = NodeModules(ctx)
				done <- i
			}()
		}
		<-done
		<-done
		want, _ := NodeModulesDir()
		for i := range dirs {
			if errs[i] != nil || dirs[i] != want {
				t.Fatalf("NodeModules #%d: %q, %v; want %q", i, dirs[i], errs[i], want)
			}
		}
		for _, p := range []string{"express", "pg", "pino-http", "connect-redis", "bcrypt/prebuilds"} {
			if _, err := os.Stat(filepath.Join(want, p)); err != nil {
				t.Errorf("%s missing: %v", p, err)
			}
		}
		left, _ := filepath.Glob(filepath.Join(filepath.Dir(filepath.Dir(want)), "*.tmp-*"))
		if len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
	})
	t.Run("offline", func(t *testing.T) {
		cache := t.TempDir()
		t.Setenv("XDG_CACHE_HOME", cache)
		t.Setenv("npm_config_cache", filepath.Join(cache, "npm"))
		t.Setenv("npm_config_registry", "http://127.0.0.1:9/")
		t.Setenv("npm_config_fetch_retries", "0")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		dir, err := NodeModules(ctx)
		if !errors.Is(err, ErrNotInstalled) {
			t.Fatalf("NodeModules offline: %q, %v; want ErrNotInstalled", dir, err)
		}
		want, _ := NodeModulesDir()
		left, _ := filepath.Glob(filepath.Join(filepath.Dir(filepath.Dir(want)), "*"))
		for _, p := range left {
			if !strings.HasSuffix(p, ".lock") {
				t.Errorf("left behind: %s", p)
			}
		}
	})
}
