package live

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/rundir"
	"github.com/stampede-load/stampede/internal/runner"
	"github.com/stampede-load/stampede/internal/testserver"
)

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// leakyApp is a target that prints its secrets: it logs each session
// cookie and the login's password in an error log the run follows, and
// answers some pages with a 500 whose title echoes them. It remembers
// every cookie value it issued or saw.
type leakyApp struct {
	next http.Handler
	pw   string
	log  *os.File

	mu      sync.Mutex
	cookies map[string]bool
	n       int
}

func (a *leakyApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	a.next.ServeHTTP(rec, r)
	a.mu.Lock()
	defer a.mu.Unlock()
	var sent []string
	for _, c := range r.Cookies() {
		a.cookies[c.Value] = true
		sent = append(sent, c.Name+"="+c.Value)
	}
	for _, c := range rec.Result().Cookies() {
		a.cookies[c.Value] = true
	}
	now := time.Now().Format("2006-01-02 15:04:05") + fmt.Sprintf(",%03d", time.Now().Nanosecond()/1e6)
	cookie := strings.Join(sent, "; ")
	if r.URL.Path == "/dashboard/" && cookie != "" {
		a.n++
		fmt.Fprintf(a.log, "%s ERROR app Request failed: password=%s Cookie: %s\n", now, a.pw, cookie)
		fmt.Fprintf(a.log, "%s ERROR django.request Internal Server Error: /dashboard/\nTraceback (most recent call last):\n  File \"/app/views.py\", line 10, in dashboard\n"+
			"psycopg.errors.ProtocolViolation: query_wait_timeout\nCOOKIES:\nsessionid = '%s'\n", now, strings.TrimPrefix(cookie, "sessionid="))
		if a.n%3 == 0 {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, "<html><head><title>Server Error (Cookie: %s password=%s)</title></head><body>error</body></html>", cookie, a.pw)
			return
		}
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

const leakyScenario = `target: %[1]s
load: {users: 4, spawn_rate: 8, duration: 20s}
think: 50ms
users_file: users.csv
on_start:
  - name: "[AUTH] Login GET"
    get: /accounts/login/
  - name: "[AUTH] Login POST"
    submit_form:
      fields: {login: "{{user.username}}", password: "{{user.password}}"}
    expect: {status: [302], not_login_page: true}
tasks:
  - {name: dashboard, steps: [{name: "GET /dashboard/", get: /dashboard/}]}
probes:
  postgres: "postgres://app:%[2]s@127.0.0.1:1/app"
  redis: "redis://:%[3]s@127.0.0.1:1/0"
logs:
  - {name: app-errors, path: %[4]s}
`

// TestLiveRunSecretsAndControl runs a real (small) load with the page
// following it, changes its load and stops it through the HTTP API as a
// script would, and looks for the run's secrets in everything the page was
// sent: the users file's password, the DSNs' passwords and the session
// cookies the server printed in its log and echoed in its error pages
// appear nowhere in /api/state or the event stream.
func TestLiveRunSecretsAndControl(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a load for a few seconds")
	}
	dir := t.TempDir()
	pw, dsnPW, redisPW := "pw-"+randHex(8), "dsn-"+randHex(8), "redis-"+randHex(8)
	logPath := filepath.Join(dir, "app-errors.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	app := &leakyApp{next: testserver.New(pw), pw: pw, log: logf, cookies: map[string]bool{}}
	ts := httptest.NewServer(app)
	defer ts.Close()
	var users strings.Builder
	users.WriteString("username,password\n")
	for i := range 4 {
		fmt.Fprintf(&users, "user%d,%s\n", i+1, pw)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.csv"), []byte(users.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	scPath := filepath.Join(dir, "scenario.yaml")
	if err := os.WriteFile(scPath, fmt.Appendf(nil, leakyScenario, ts.URL, dsnPW, redisPW, logPath), 0o644); err != nil {
		t.Fatal(err)
	}
	sc, err := load.ReadScenario(scPath)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := sc.Compile()
	if err != nil {
		t.Fatal(err)
	}
	o, err := runner.ScenarioOptions(sc)
	if err != nil {
		t.Fatal(err)
	}
	o.Dir = filepath.Join(dir, "run")
	o.Control = runner.NewControl()
	srv, err := Start(Options{Addr: "127.0.0.1:0", Control: o.Control, DiagnoseEvery: time.Second,
		Run: RunFacts{Target: plan.Target.Redacted(), Model: plan.Model.String(), Duration: plan.Duration}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	o.Observers = []runner.Observer{srv}

	// A page follows the run from its start: every byte it is sent.
	var stream bytes.Buffer
	streamDone := make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL()+"api/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(streamDone)
		_, _ = io.Copy(&stream, resp.Body)
	}()

	type ran struct {
		res *runner.Result
		err error
	}
	done := make(chan ran, 1)
	go func() {
		res, err := runner.Run(context.Background(), plan, o)
		done <- ran{res, err}
	}()
	post := func(path, body string) (int, string) {
		t.Helper()
		r, err := http.Post(srv.URL()+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, string(b)
	}
	time.Sleep(2500 * time.Millisecond)
	if code, body := post("api/load", `{"users": 2, "spawn_rate": 4}`); code != 200 || !strings.Contains(body, `"users":2`) {
		t.Errorf("POST /api/load: %d %s", code, body)
	}
	if code, body := post("api/load", `{"arrival_rate": 5}`); code != 400 || !strings.Contains(body, "arrival_rate") {
		t.Errorf("POST /api/load with an open model's field on a closed run: %d %s, want 400 naming the field", code, body)
	}
	time.Sleep(2500 * time.Millisecond)
	if code, body := post("api/stop", `{}`); code != 202 {
		t.Errorf("POST /api/stop: %d %s", code, body)
	}
	var r ran
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the run did not stop within 30 s of POST /api/stop")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !r.res.Partial {
		t.Error("a stopped run is not partial")
	}
	state := getState(t, srv)
	raw, _ := json.Marshal(state)
	pageHTML := httpGet(t, srv.URL())
	_ = srv.Close()
	<-streamDone

	// What the page was sent is the run: it saw the log lines, the probes'
	// errors, the failures, the load change, the stop, a diagnosis.
	if state.Status != "ended" || state.End == nil || !state.End.Partial || !strings.Contains(state.End.Reason, "stop") {
		t.Errorf("end: status %s %+v", state.Status, state.End)
	}
	if state.Evidence.Total == 0 {
		t.Error("no log event reached the page")
	}
	masked := false
	for _, e := range state.Evidence.Events {
		masked = masked || strings.Contains(e.Message, "xxxxx")
	}
	if !masked {
		t.Errorf("no log event shows a masked secret: %+v", state.Evidence.Events)
	}
	probeErrs := 0
	for _, p := range state.Probes {
		if p.Source == "postgres" || p.Source == "redis" {
			probeErrs += int(p.Errors)
		}
	}
	if probeErrs == 0 {
		t.Errorf("the probes' errors did not reach the page: %+v", state.Probes)
	}
	if state.Total == nil || state.Total.Failures == 0 || len(state.Failures.Groups) == 0 {
		t.Errorf("no failure reached the page: %+v %+v", state.Total, state.Failures)
	}
	changed := false
	for _, c := range state.LoadChanges {
		changed = changed || c.By == "api" && c.Users == 2
	}
	if !changed {
		t.Errorf("load changes %+v lack users 2 by api", state.LoadChanges)
	}
	if state.Diagnosis == nil {
		t.Error("no diagnosis on the page")
	}
	meta, err := rundir.ReadMeta(o.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if !meta.Partial || len(meta.LoadChanges) < 2 {
		t.Errorf("meta.json: partial %v, load_changes %+v", meta.Partial, meta.LoadChanges)
	}

	app.mu.Lock()
	secrets := map[string]string{"users file password": pw, "postgres DSN password": dsnPW, "redis URL password": redisPW}
	n := 0
	for c := range app.cookies {
		if len(c) >= 16 { // the session ids and CSRF tokens
			secrets[fmt.Sprintf("cookie %d", n)] = c
			n++
		}
	}
	app.mu.Unlock()
	if n < 2 {
		t.Fatalf("the server issued %d cookies: the test did not exercise them", n)
	}
	for where, text := range map[string]string{"/api/state": string(raw), "the event stream": stream.String(), "the page": pageHTML} {
		for kind, v := range secrets {
			if strings.Contains(text, v) {
				i := strings.Index(text, v)
				t.Errorf("%s holds the %s: …%s…", where, kind, text[max(0, i-120):min(len(text), i+len(v)+40)])
			}
		}
	}
	if stream.Len() == 0 || !strings.Contains(stream.String(), "event: snapshot") || !strings.Contains(stream.String(), `"status":"ended"`) {
		t.Errorf("the event stream (%d bytes) lacks the snapshot or the end", stream.Len())
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	r, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return string(b)
}
