package load

import (
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stampede-load/stampede/internal/secret"
)

// TestPlanSecrets: a plan knows the users file's passwords, the target's
// password and the scenario's literal secrets, not its templates.
func TestPlanSecrets(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "users.csv"), []byte("username,password,api_token\nu1,pw-one,tok-1\nu2,pw-two,tok-2\n"), 0o600)
	yml := `target: http://admin:target-pw@127.0.0.1:1
load: {users: 2, duration: 1s}
users_file: users.csv
headers: {Authorization: "Bearer literal-bearer"}
on_start:
  - get: /accounts/login/
  - submit_form: {fields: {login: "{{user.username}}", password: "{{user.password}}"}}
tasks:
  - steps:
      - {post: /api, json: {auth: {client_secret: json-secret, name: x}}}
      - {get: "/reset?token=query-token&next=/x"}
      - {post: /form, form: {passwd: form-pw, user: bob}}
`
	path := filepath.Join(dir, "s.yaml")
	os.WriteFile(path, []byte(yml), 0o600)
	sc, err := ReadScenario(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := sc.Compile()
	if err != nil {
		t.Fatal(err)
	}
	got := p.Secrets()
	slices.Sort(got)
	want := []string{"Bearer literal-bearer", "form-pw", "json-secret", "pw-one", "pw-two", "query-token", "target-pw", "tok-1", "tok-2"}
	if !slices.Equal(got, want) {
		t.Errorf("Secrets() = %q, want %q", got, want)
	}
}

// TestReasonsMasked: pages that echo the submitted password, CSRF token
// and session cookie in their error text, and a redirect with a token in
// its query, leave no secret in the results' reasons.
func TestReasonsMasked(t *testing.T) {
	const pw = "kayu-ahsp-2005"
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/accounts/login/":
			errs := ""
			if r.Method == http.MethodPost {
				r.ParseForm()
				if r.PostForm.Get("login") == "user0007" {
					http.SetCookie(w, &http.Cookie{Name: "sessionid", Value: "S3SS10N-C00K13", Path: "/"})
					http.Redirect(w, r, "/", http.StatusFound)
					return
				}
				// An app that echoes what it was sent.
				errs = `<ul class="errorlist"><li>` + html.EscapeString(fmt.Sprintf("Wrong password %s for %s (token %s)",
					r.PostForm.Get("password"), r.PostForm.Get("login"), r.PostForm.Get("csrfmiddlewaretoken"))) + `</li></ul>`
			}
			fmt.Fprintf(w, `<html><body>%s<form method="post"><input type="hidden" name="csrfmiddlewaretoken" value="CSRF-T0K3N">
<input name="login"><input type="password" name="password"></form></body></html>`, errs)
		case "/error":
			w.WriteHeader(500)
			sess := ""
			if c, err := r.Cookie("sessionid"); err == nil {
				sess = c.Value
			}
			fmt.Fprintf(w, `<html><head><title>OperationalError: password=%s, session %s</title></head></html>`, pw, sess)
		case "/moved":
			http.Redirect(w, r, "/landing?token=R3D1R3CT", http.StatusFound)
		}
	}))
	defer ts.Close()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "users.csv"), []byte("username,password\nuser0006,"+pw+"\nuser0007,"+pw+"\n"), 0o600)
	yml := fmt.Sprintf(`target: %s
load: {users: 2, duration: 2s}
think: 50ms
users_file: users.csv
on_start:
  - get: /accounts/login/
  - submit_form: {fields: {login: "{{user.username}}", password: "{{user.password}}"}}
    expect: {not_login_page: true}
tasks:
  - steps:
      - {get: /error}
  - steps:
      - {get: /moved, expect: {redirect_not_to: /landing}, follow_redirects: false}
  - steps:
      - {get: "http://u:url-pw@127.0.0.1:1/x"}
`, ts.URL)
	path := filepath.Join(dir, "s.yaml")
	os.WriteFile(path, []byte(yml), 0o600)
	sc, err := ReadScenario(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := sc.Compile()
	if err != nil {
		t.Fatal(err)
	}
	p.Duration = 2 * time.Second
	e := New(p)
	e.Secrets = secret.New(p.Secrets()...)
	rs, _ := collectWith(t, e)
	var reasons []string
	for _, r := range rs {
		if r.Reason != "" && !slices.Contains(reasons, r.Reason) {
			reasons = append(reasons, r.Reason)
		}
	}
	all := strings.Join(reasons, "\n")
	for _, s := range []string{pw, "CSRF-T0K3N", "S3SS10N-C00K13", "R3D1R3CT", "url-pw"} {
		if strings.Contains(all, s) {
			t.Errorf("%q in the reasons:\n%s", s, all)
		}
	}
	// Each reason is there, masked.
	for _, want := range []string{"login page returned: Wrong password xxxxx for user0006 (token xxxxx)",
		"HTTP 500 (OperationalError: password=xxxxx, session xxxxx)", "redirected to /landing?token=xxxxx", "connection refused"} {
		if !strings.Contains(all, want) {
			t.Errorf("no %q in:\n%s", want, all)
		}
	}
}
