package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/stampede-load/stampede/internal/lab"
	"github.com/stampede-load/stampede/internal/testenv"
)

// TestSecretsNeverLeave seeds every kind of secret into the lab's logs and
// responses, runs "stampede run" with probes whose DSNs carry passwords,
// then "stampede diagnose" in every format, and looks for every secret in
// every file of the run directory and in everything printed: none may be
// there.
//
// The secrets: the users file's passwords and API tokens (sent as
// "Authorization: Bearer"), the session and CSRF cookies the lab issues,
// the CSRF tokens of its forms, the passwords of the PostgreSQL, PgBouncer
// and Redis DSNs (the lab's own Redis too), and a password in an SQL
// statement PostgreSQL logs.
//
// Where they are seeded: an app log (app-debug.log) in which a middleware
// in front of the lab writes, for the requests it sees, a Django error
// report with the request's real POST data, cookies and headers (the
// format of Django 3.2's ExceptionReporter, internal/secret's fixture),
// key=value lines, header dumps, JSON bodies, DSNs and a bare password
// echoed in an exception; an access log with passwords and tokens in query
// strings on 500 lines; PostgreSQL's own log; and pages that echo the
// password, the CSRF token, the session cookie and the Bearer token in
// their error text, a redirect with a token in its query and a 400 that
// echoes a JSON body.
func TestSecretsNeverLeave(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: real PostgreSQL, PgBouncer, Redis and the lab")
	}
	const (
		redisPW = "redis-Secr3t-pw"
		alterPW = "alter-Secr3t-pw" // in an ALTER ROLE that PostgreSQL logs
	)
	pg := testenv.Postgres(t, testenv.PGOptions{Settings: map[string]string{"log_statement": "ddl"}})
	bouncer := testenv.PgBouncer(t, pg)
	rds := testenv.Redis(t)
	// A user with a password, for the probe and the lab (the server's
	// default user stays open for testenv's readiness check).
	rc := redis.NewClient(&redis.Options{Addr: rds.Addr()})
	if err := rc.Do(context.Background(), "ACL", "SETUSER", "app", "on", ">"+redisPW, "~*", "&*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	_ = rc.Close()
	redisURL := fmt.Sprintf("redis://app:%s@%s/0", redisPW, rds.Addr())

	sec := &seen{vals: map[string]string{}}
	for kind, v := range map[string]string{"postgres DSN password": pg.SuperPassword, "pgbouncer DSN password": bouncer.StatsPassword,
		"redis URL password": redisPW, "password in an SQL statement": alterPW} {
		sec.add(kind, v)
	}

	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	cfg := lab.Config{LogDir: logs, Users: 24, Items: 200, Redis: redisURL}
	if err := cfg.Preset("healthy"); err != nil {
		t.Fatal(err)
	}
	cfg.PBKDF2Iterations = 2000 // logins cheap enough for a test
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lb, err := lab.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()
	appLog, err := os.OpenFile(filepath.Join(logs, "app-debug.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer appLog.Close()
	accessLog, err := os.OpenFile(filepath.Join(logs, "leaky-access.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer accessLog.Close()
	// The app's database DSN is the PostgreSQL probe's: its password is
	// one the run knows, and masks wherever the app echoes it.
	lk := &leaky{next: lb.Handler(), seen: sec, app: appLog, access: accessLog, dbPW: pg.SuperPassword, dsn: pg.SuperDSN()}
	ts := httptest.NewServer(lk)
	defer ts.Close()

	// The users file: the lab's accounts with an API token each; every
	// fifth has a wrong password (its logins fail), every seventh is
	// answered by a login page that echoes what it sent.
	var ub bytes.Buffer
	if err := lab.WriteUsersCSV(&ub, 24); err != nil {
		t.Fatal(err)
	}
	var users strings.Builder
	for i, line := range strings.Split(strings.TrimSpace(ub.String()), "\n") {
		line = strings.TrimSpace(line)
		if i == 0 {
			users.WriteString(line + ",api_token\n")
			continue
		}
		name, pw, _ := strings.Cut(line, ",")
		if i%5 == 0 {
			pw += "-Wr0ng"
		}
		tok := randHex(12)
		sec.add("users-file password", pw)
		sec.add("users-file API token", tok)
		fmt.Fprintf(&users, "%s,%s,%s\n", name, pw, tok)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.csv"), []byte(users.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	scenario := fmt.Sprintf(`target: %s
load: {users: 24, spawn_rate: 12, duration: 12s}
think: 100ms..300ms
users_file: users.csv
headers: {Authorization: "Bearer {{user.api_token}}"}
on_start:
  - name: "[AUTH] Login GET"
    get: /accounts/login/
  - name: "[AUTH] Login POST"
    submit_form:
      fields: {login: "{{user.username}}", password: "{{user.password}}"}
    expect: {status: [302], not_login_page: true}
tasks:
  - {name: dashboard, weight: 3, steps: [{name: "GET /dashboard/", get: /dashboard/}]}
  - {name: leak, weight: 1, steps: [{name: "GET /leak/", get: "/leak/?token={{user.api_token}}"}]}
  - {name: go, weight: 1, steps: [{name: "GET /go/", get: /go/, follow_redirects: false, expect: {redirect_not_to: /accounts/login/}}]}
  - name: api
    weight: 1
    steps:
      - {name: "POST /api/echo/", post: /api/echo/, json: {login: "{{user.username}}", password: "{{user.password}}"}}
thresholds:
  all: ["failure_rate < 1%%"]
`, ts.URL)
	scPath := filepath.Join(dir, "secrets.yaml")
	if err := os.WriteFile(scPath, []byte(scenario), 0o600); err != nil {
		t.Fatal(err)
	}

	// PostgreSQL logs a statement with a password while the run goes.
	go func() {
		for range 3 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(3 * time.Second):
			}
			if c, err := pgx.Connect(ctx, pg.SuperDSN()); err == nil {
				_, _ = c.Exec(ctx, "ALTER ROLE nosuchrole PASSWORD '"+alterPW+"'")
				_ = c.Close(ctx)
			}
		}
	}()

	run := filepath.Join(dir, "run")
	var term bytes.Buffer
	args := []string{"run", scPath, "--out", run,
		"--probe-postgres", pg.SuperDSN(), "--probe-pgbouncer", bouncer.StatsDSN(), "--probe-redis", redisURL,
		"--log", "app-debug=" + filepath.Join(logs, "app-debug.log"), "--log", "access=" + filepath.Join(logs, "leaky-access.log"),
		"--log", "lab-errors=" + filepath.Join(logs, lab.ErrorsLog), "--log", "lab-access=" + filepath.Join(logs, lab.AccessLog),
		"--log", "postgres=" + pg.LogPath, "--log", "pgbouncer=" + bouncer.LogPath}
	runCmd(t, &term, 2*time.Minute, args...)
	for _, format := range []string{"text", "md", "json", "html"} {
		runCmd(t, &term, time.Minute, "diagnose", "--format", format, run)
	}

	// The seeds went through: masked reasons and evidence are there.
	reqs := readAll(t, filepath.Join(run, "requests.csv"))
	for _, want := range []string{"login page returned: Wrong password xxxxx", "HTTP 500 (session xxxxx csrf xxxxx: could not connect (password xxxxx)", "redirected to /accounts/login/?next=/go/&token=xxxxx", "HTTP 400 (bad JSON"} {
		if !strings.Contains(reqs, want) {
			t.Errorf("requests.csv has no %q: the seed did not reach it", want)
		}
	}
	evs := readAll(t, filepath.Join(run, "evidence.jsonl"))
	for _, want := range []string{"ValueError: invalid literal for int() with base 10: 'xxxxx'", "response Set-Cookie: xxxxx", "PASSWORD 'xxxxx'",
		"postgres://postgres:xxxxx@", "{'Cookie': 'xxxxx', 'Authorization': 'xxxxx'}", `?csrftoken=xxxxx\u0026next=%2Fdashboard%2F\u0026password=xxxxx\u0026token=xxxxx`} {
		if !strings.Contains(evs, want) {
			t.Errorf("evidence.jsonl has no %q: the seed did not reach it", want)
		}
	}
	if keep := os.Getenv("SECRETS_KEEP"); keep != "" {
		// To look at what was written: SECRETS_KEEP=DIR copies the run
		// directory there.
		t.Cleanup(func() { _ = os.CopyFS(keep, os.DirFS(run)) })
	}
	if n := strings.Count(evs, "xxxxx"); n < 50 {
		t.Errorf("evidence.jsonl masks %d secrets, want at least 50: the seeded logs did not reach it", n)
	}
	for _, kind := range []string{"session cookie", "CSRF cookie", "CSRF form token", "users-file password", "users-file API token"} {
		if sec.count(kind) == 0 {
			t.Errorf("no %s seen: the seed is incomplete", kind)
		}
	}

	// Not one secret anywhere.
	texts := map[string]string{"terminal": term.String()}
	err = filepath.Walk(run, func(path string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		texts[path] = readAll(t, path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(texts))
	for n := range texts {
		names = append(names, n)
	}
	sort.Strings(names)
	leaks := 0
	for v, kind := range sec.all() {
		for _, n := range names {
			for _, form := range []string{v, url.QueryEscape(v), html.EscapeString(v)} {
				if i := strings.Index(texts[n], form); i >= 0 && leaks < 20 {
					leaks++
					t.Errorf("%s %q in %s: …%s…", kind, v, n, texts[n][max(0, i-80):min(len(texts[n]), i+len(form)+40)])
				}
			}
		}
	}
	t.Logf("%d secrets (%s) looked for in %d files and the terminal", len(sec.vals), sec.summary(), len(names)-1)
}

// runCmd runs the stampede binary with args, appending what it prints to
// out; exit 0 or 3 (a threshold failed) is success.
func runCmd(t *testing.T, out *bytes.Buffer, limit time.Duration, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	out.Write(b.Bytes())
	if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() != 3) {
		t.Fatalf("stampede %s: %v\n%s", args[0], err, b.String())
	}
}

func readAll(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// seen is the set of secret values of the test, by value, with their kind.
type seen struct {
	mu   sync.Mutex
	vals map[string]string
}

func (s *seen) add(kind, v string) {
	if len(v) < 8 { // the lab's values are long; a short one would be a bug here
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.vals[v]; !ok {
		s.vals[v] = kind
	}
}

func (s *seen) count(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, k := range s.vals {
		if k == kind {
			n++
		}
	}
	return n
}

func (s *seen) all() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.vals))
	for v, k := range s.vals {
		out[v] = k
	}
	return out
}

func (s *seen) summary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	by := map[string]int{}
	for _, k := range s.vals {
		by[k]++
	}
	var parts []string
	for k, n := range by {
		parts = append(parts, fmt.Sprintf("%d %s", n, k))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// leaky stands in front of the lab as a careless app would: it logs what
// it is sent, secrets and all, and its error pages echo them. It records
// every cookie, CSRF token and secret field it sees, for the test to look
// for.
type leaky struct {
	next        http.Handler
	seen        *seen
	mu          sync.Mutex // the logs
	app, access io.Writer
	dbPW, dsn   string
	n           int
}

var hiddenCSRF = regexp.MustCompile(`name="csrfmiddlewaretoken" value="([^"]+)"`)

func (l *leaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for _, c := range r.Cookies() {
		l.seen.add(cookieKind(c.Name), c.Value)
	}
	bearer, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	form, _ := url.ParseQuery(string(body))
	if tok := form.Get("csrfmiddlewaretoken"); tok != "" {
		l.seen.add("CSRF form token", tok)
	}
	sid, csrf := cookieValue(r, "sessionid"), cookieValue(r, "csrftoken")
	l.logRequest(r, form, body, bearer)

	switch {
	case r.URL.Path == "/accounts/login/" && r.Method == http.MethodPost && loginNumber(form.Get("login"))%7 == 0:
		// The login page again, echoing what was sent.
		fmt.Fprintf(w, `<html><body><ul class="errorlist"><li>%s</li></ul><form method="post">
<input type="hidden" name="csrfmiddlewaretoken" value="%s"><input name="login"><input type="password" name="password"></form></body></html>`,
			html.EscapeString(fmt.Sprintf("Wrong password %s for %s (csrfmiddlewaretoken %s, session %s)", form.Get("password"), form.Get("login"), form.Get("csrfmiddlewaretoken"), sid)),
			html.EscapeString(form.Get("csrfmiddlewaretoken")))
		return
	case r.URL.Path == "/leak/":
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, `<html><head><title>OperationalError at /leak/</title></head><body><ul class="errorlist"><li>%s</li></ul></body></html>`,
			html.EscapeString(fmt.Sprintf("session %s csrf %s: could not connect (password %s) Authorization: Bearer %s %s", sid, csrf, l.dbPW, bearer, l.dsn)))
		return
	case r.URL.Path == "/go/":
		http.Redirect(w, r, "/accounts/login/?next=/go/&token="+csrf, http.StatusFound)
		return
	case r.URL.Path == "/api/echo/":
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `<html><body><ul class="errorlist"><li>%s</li></ul></body></html>`, html.EscapeString("bad JSON "+string(body)+" with token "+bearer))
		return
	}
	rec := &recorder{ResponseWriter: w}
	l.next.ServeHTTP(rec, r)
	for _, c := range (&http.Response{Header: rec.Header()}).Cookies() {
		l.seen.add(cookieKind(c.Name), c.Value)
	}
	for _, m := range hiddenCSRF.FindAllSubmatch(rec.body.Bytes(), -1) {
		l.seen.add("CSRF form token", string(m[1]))
	}
}

// logRequest writes what a careless app logs of a request: every fourth
// request a Django error report, and lines of the other shapes.
func (l *leaky) logRequest(r *http.Request, form url.Values, body []byte, bearer string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	now := time.Now()
	ts := now.Format("2006-01-02 15:04:05,000")
	pw, tok := form.Get("password"), form.Get("csrfmiddlewaretoken")
	sid, cookie := cookieValue(r, "sessionid"), r.Header.Get("Cookie")
	var b strings.Builder
	if r.Method == http.MethodPost && r.URL.Path == "/accounts/login/" && l.n%4 == 0 {
		fmt.Fprintf(&b, "%s ERROR django.request Internal Server Error: %s\n", ts, r.URL.Path)
		b.WriteString("Traceback (most recent call last):\n")
		b.WriteString("  File \"/usr/lib/python3/dist-packages/django/core/handlers/exception.py\", line 47, in inner\n    response = get_response(request)\n")
		b.WriteString("  File \"/app/accounts/views.py\", line 12, in login\n    attempts = int(request.POST['password'])\n")
		fmt.Fprintf(&b, "ValueError: invalid literal for int() with base 10: '%s'\n\n", pw)
		b.WriteString("Request information:\nUSER: AnonymousUser\n\nGET:\n")
		for k, vs := range r.URL.Query() {
			fmt.Fprintf(&b, "%s = '%s'\n", k, vs[0])
		}
		b.WriteString("\nPOST:\n")
		for _, k := range []string{"csrfmiddlewaretoken", "login", "password"} {
			fmt.Fprintf(&b, "%s = '%s'\n", k, form.Get(k))
		}
		b.WriteString("\nFILES: No FILES data\n\nCOOKIES:\n")
		for _, c := range r.Cookies() {
			fmt.Fprintf(&b, "%s = '%s'\n", c.Name, c.Value)
		}
		fmt.Fprintf(&b, "\nMETA:\nHTTP_AUTHORIZATION = 'Bearer %s'\nHTTP_COOKIE = '%s'\nQUERY_STRING = '%s'\nREQUEST_METHOD = 'POST'\n\n", bearer, cookie, r.URL.RawQuery)
	}
	switch l.n % 6 {
	case 0:
		fmt.Fprintf(&b, "%s WARNING app.auth rejected login=%s password=%s csrfmiddlewaretoken=%s sessionid=%s\n", ts, form.Get("login"), pw, tok, sid)
	case 1:
		fmt.Fprintf(&b, "%s ERROR app.http request headers: {'Cookie': '%s', 'Authorization': 'Bearer %s'}\n", ts, cookie, bearer)
	case 2:
		fmt.Fprintf(&b, "%s ERROR app.http bad body %s from Authorization: Bearer %s\n", ts, strings.TrimSpace(string(body)), bearer)
		fmt.Fprintf(&b, "%s ERROR app.http response Set-Cookie: sessionid=%s; HttpOnly; Path=/\n", ts, sid)
	case 3:
		fmt.Fprintf(&b, "%s ERROR app.db could not connect to %s: connection refused\n", ts, l.dsn)
		fmt.Fprintf(&b, "%s ERROR app.db OperationalError: FATAL:  password authentication failed for user \"app\" (tried %s)\n", ts, l.dbPW)
	case 4:
		fmt.Fprintf(&b, "time=%s level=ERROR msg=\"login failed\" user=%s password=%s token=%s\n", now.UTC().Format(time.RFC3339Nano), form.Get("login"), pw, bearer)
	case 5:
		fmt.Fprintf(&b, "%s CRITICAL app.session lost session_key=%s of %s (cookie %s)\n", ts, sid, form.Get("login"), cookie)
	}
	_, _ = io.WriteString(l.app, b.String())
	q := url.Values{"next": {"/dashboard/"}, "password": {pw}, "token": {bearer}, "csrftoken": {cookieValue(r, "csrftoken")}}
	fmt.Fprintf(l.access, "127.0.0.1 - - [%s] \"%s %s?%s HTTP/1.1\" 500 145 \"-\" \"stampede\" 0.012\n",
		now.Format("02/Jan/2006:15:04:05 -0700"), r.Method, r.URL.Path, q.Encode())
}

func cookieKind(name string) string {
	switch name {
	case "sessionid":
		return "session cookie"
	case "csrftoken":
		return "CSRF cookie"
	}
	return "cookie " + name
}

func cookieValue(r *http.Request, name string) string {
	if c, err := r.Cookie(name); err == nil {
		return c.Value
	}
	return ""
}

// loginNumber reads 7 from "user0007"; -1 when there is none.
func loginNumber(login string) int {
	n := -1
	if _, err := fmt.Sscanf(login, "user%d", &n); err != nil {
		return -1
	}
	return n
}

// recorder keeps a copy of the body the lab writes.
type recorder struct {
	http.ResponseWriter
	body bytes.Buffer
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.body.Len() < 1<<20 {
		r.body.Write(b)
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
