package runner_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/rundir"
	"github.com/stampede-load/stampede/internal/runner"
)

// secureCSRFServer is a login form like Django's with
// CSRF_COOKIE_SECURE = True served over plain HTTP: the form's GET sets a
// Secure csrftoken, and the POST, which a browser sends without it, is
// refused with Django's 403.
type secureCSRFServer struct {
	mu     sync.Mutex
	tokens []string // every token set, none of which may reach a file
}

func (s *secureCSRFServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/accounts/login/" {
		fmt.Fprint(w, "<h1>Home</h1>")
		return
	}
	if r.Method == http.MethodGet {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		tok := hex.EncodeToString(b)
		s.mu.Lock()
		s.tokens = append(s.tokens, tok)
		s.mu.Unlock()
		w.Header().Add("Set-Cookie", "csrftoken="+tok+"; Path=/; SameSite=Lax; Secure")
		fmt.Fprintf(w, `<!doctype html><title>Sign In</title><form method="post" action="/accounts/login/">
<input type="hidden" name="csrfmiddlewaretoken" value="%s">
<input name="login"><input type="password" name="password"><button>Sign In</button></form>`, html.EscapeString(tok))
		return
	}
	c, err := r.Cookie("csrftoken")
	if err != nil || c.Value != r.PostFormValue("csrfmiddlewaretoken") {
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `<h1>Forbidden <span>(403)</span></h1><p>CSRF verification failed. Request aborted.</p>`)
		return
	}
	http.Redirect(w, r, "/", http.StatusFound)
}

// TestCookieRefusedEvidence: the login fails with a 403 and evidence.jsonl
// says why, from the client: the Secure csrftoken the login page set over
// plain HTTP was refused. The events are in the file while the run goes
// (a killed run keeps them), masked, and never hold the cookie's value.
func TestCookieRefusedEvidence(t *testing.T) {
	srv := &secureCSRFServer{}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	target := strings.Replace(ts.URL, "127.0.0.1", "app.test", 1)
	scen := fmt.Sprintf(`target: %s
hosts: {app.test: 127.0.0.1}
load: {users: 3, spawn_rate: 30, duration: 3s}
think: 50ms
on_start:
  - name: "[AUTH] Login GET"
    get: /accounts/login/
  - name: "[AUTH] Login POST"
    submit_form:
      fields: {login: user1, password: pw-secret}
    expect: {status: [302]}
tasks:
  - {name: home, steps: [{name: "GET /", get: /}]}
`, target)
	path := filepath.Join(t.TempDir(), "scenario.yaml")
	if err := os.WriteFile(path, []byte(scen), 0o644); err != nil {
		t.Fatal(err)
	}
	sc, err := load.ReadScenario(path)
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
	dir := filepath.Join(t.TempDir(), "run")
	o.Dir = dir
	start := time.Now()
	var seenWhileRunning atomic.Bool
	o.ProgressEvery = 250 * time.Millisecond
	o.Progress = func(runner.Status) {
		if time.Since(start) < 2500*time.Millisecond {
			if b, err := os.ReadFile(filepath.Join(dir, rundir.EvidenceFile)); err == nil && bytes.Contains(b, []byte(`"cookie-refused"`)) {
				seenWhileRunning.Store(true)
			}
		}
	}
	res, err := runner.Run(context.Background(), plan, o)
	if err != nil {
		t.Fatal(err)
	}
	if !seenWhileRunning.Load() {
		t.Error("no cookie-refused evidence in evidence.jsonl while the run went")
	}

	var logins, forbidden int64
	for _, r := range readRecords(t, dir) {
		if r.Name == "[AUTH] Login GET" && !r.Failed() {
			logins++
		}
		if r.Name == "[AUTH] Login POST" && r.Status == http.StatusForbidden {
			forbidden++
		}
	}
	if logins == 0 || forbidden == 0 {
		t.Fatalf("%d login pages, %d logins refused with a 403; want both", logins, forbidden)
	}

	evs, err := rundir.ReadEvidence(dir)
	if err != nil {
		t.Fatal(err)
	}
	var count int64
	for _, ev := range evs {
		if ev.Signature != "cookie-refused" {
			continue
		}
		want := map[string]string{"name": "csrftoken", "attribute": "Secure", "reason": "secure-over-http",
			"url": target + "/accounts/login/", "endpoint": "[AUTH] Login GET"}
		for k, v := range want {
			if ev.Fields[k] != v {
				t.Errorf("field %s = %q, want %q", k, ev.Fields[k], v)
			}
		}
		n, err := strconv.ParseInt(ev.Fields["count"], 10, 64)
		if err != nil || n < 1 {
			t.Errorf("count %q", ev.Fields["count"])
		}
		count += n
		wantMsg := `cookie "csrftoken" refused by stampede's cookie jar: Secure cookie set over plain HTTP by ` + target + "/accounts/login/ ("
		if ev.Source != "client" || ev.Level != "WARNING" || ev.Ref != "client:cookie-jar" || !strings.HasPrefix(ev.Message, wantMsg) ||
			ev.Time.Before(start.Truncate(time.Second)) || ev.Time.After(res.Summary.End) {
			t.Errorf("event %+v: want source client, level WARNING, ref client:cookie-jar, a time in the run, message %q…", ev, wantMsg)
		}
	}
	// Every login page the users saw set the cookie once; only the
	// responses cut off by the end of the run went unseen.
	if count < logins || count > logins+int64(plan.Users) {
		t.Errorf("%d refusals in the evidence, %d login pages", count, logins)
	}

	b := readFile(t, filepath.Join(dir, rundir.EvidenceFile))
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for _, tok := range srv.tokens {
		if bytes.Contains(b, []byte(tok)) {
			t.Fatalf("evidence.jsonl holds a csrftoken value")
		}
	}
}
