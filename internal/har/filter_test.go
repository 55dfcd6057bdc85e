package har

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// TestHARFilter: the target's origin, chosen or refused, and what is kept.
func TestHARFilter(t *testing.T) {
	const pages = `{"log": {"version": "1.2", "entries": [
	{"startedDateTime": "2026-11-20T10:00:00Z", "_resourceType": "document", "request": {"method": "GET", "url": "https://search.test/?q=shop"}, "response": {"status": 200, "content": {"mimeType": "text/html"}}},
	{"startedDateTime": "2026-11-20T10:00:01Z", "_resourceType": "document", "request": {"method": "GET", "url": "https://shop.test/"}, "response": {"status": 200, "content": {"mimeType": "text/html"}}},
	{"startedDateTime": "2026-11-20T10:00:02Z", "_resourceType": "xhr", "request": {"method": "GET", "url": "https://shop.test/api/cart"}, "response": {"status": 200, "content": {"mimeType": "application/json"}}},
	{"startedDateTime": "2026-11-20T10:00:03Z", "_resourceType": "script", "request": {"method": "GET", "url": "https://shop.test/app.js"}, "response": {"status": 200, "content": {"mimeType": "application/javascript"}}}
	]}}`
	const api = `{"log": {"version": "1.2", "entries": [
	{"startedDateTime": "2026-11-20T10:00:00Z", "request": {"method": "POST", "url": "http://api.test:8080/v1/login", "headers": [{"name": "Content-Type", "value": "application/json"}], "postData": {"mimeType": "application/json", "text": "{\"user\": \"a\", \"password\": \"b\"}"}}, "response": {"status": 200, "content": {"mimeType": "application/json", "text": "{\"token\": \"t0k3n-abc-123\"}"}}},
	{"startedDateTime": "2026-11-20T10:00:01Z", "request": {"method": "GET", "url": "http://api.test:8080/v1/me", "headers": [{"name": "Authorization", "value": "Bearer t0k3n-abc-123"}]}, "response": {"status": 200, "content": {"mimeType": "application/json"}}},
	{"startedDateTime": "2026-11-20T10:00:02Z", "request": {"method": "GET", "url": "https://cdn.test/logo.png"}, "response": {"status": 200, "content": {"mimeType": "image/png"}}}
	]}}`
	cases := []struct {
		name, doc string
		opts      FilterOptions
		origin    string
		kept      []string
		err       string
	}{
		{name: "several origins", doc: pages,
			err: "the recording's pages come from several origins: https://shop.test (3 requests), https://search.test (1 requests); say which is the target with --origin"},
		{name: "--origin", doc: pages, opts: FilterOptions{Origin: "https://SHOP.test:443"}, origin: "https://shop.test", kept: []string{"/", "/api/cart"}},
		{name: "--keep-static", doc: pages, opts: FilterOptions{Origin: "https://shop.test", KeepStatic: true}, origin: "https://shop.test", kept: []string{"/", "/api/cart", "/app.js"}},
		{name: "bad --origin", doc: pages, opts: FilterOptions{Origin: "shop.test"}, err: `origin "shop.test": want scheme://host[:port]`},
		{name: "API without pages", doc: api, origin: "http://api.test:8080", kept: []string{"/v1/login", "/v1/me"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, err := Read(strings.NewReader(tc.doc), nil)
			if err != nil {
				t.Fatal(err)
			}
			f, err := Filter(l, tc.opts)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				var oe *OriginsError
				if tc.name == "several origins" && !errors.As(err, &oe) {
					t.Errorf("error %T, want *OriginsError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var kept []string
			for _, e := range f.Kept {
				kept = append(kept, e.Request.URL.Path)
			}
			if f.Origin != tc.origin || strings.Join(kept, " ") != strings.Join(tc.kept, " ") {
				t.Errorf("origin %s kept %v, want %s %v", f.Origin, kept, tc.origin, tc.kept)
			}
		})
	}
}

// TestHARKeepStatic: with the target's assets kept, the login page is no
// longer just before the login, so the login posts its form's fields
// itself, its token extracted from the login page.
func TestHARKeepStatic(t *testing.T) {
	l, err := ReadFile(filepath.Join("testdata", "tools", "chromium.har"), nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Convert(l, Options{FilterOptions: FilterOptions{KeepStatic: true}})
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	for _, s := range res.Steps {
		steps = append(steps, s.Name)
	}
	if got := strings.Join(steps, " | "); !strings.Contains(got, "GET /accounts/login/ | GET /static/app.css | POST /accounts/login/") {
		t.Errorf("steps %s: want the stylesheet between the login page and the login", got)
	}
	if res.Login == nil || res.Login.SubmitForm || res.LeftOut[LeftStatic] != 0 {
		t.Errorf("login %+v, left out %v", res.Login, res.LeftOut)
	}
	checkCorrelations(t, res, []correlation{
		{"csrfmiddlewaretoken", "GET /accounts/login/", 1, "hidden input csrfmiddlewaretoken", "POST /accounts/login/ form field csrfmiddlewaretoken"},
	})
	if !strings.Contains(string(res.Scenario), "post: /accounts/login/\n") {
		t.Errorf("the login is not a post:\n%s", res.Scenario)
	}
	compiles(t, res)
}

// TestHARUserTemplated: wherever else the recorded username was sent (a
// path, a JSON field, inside a text) it comes from the users file too;
// Basic credentials built from the password are left out with a warning;
// neither the username nor the password is left in the scenario.
func TestHARUserTemplated(t *testing.T) {
	const doc = `{"log": {"version": "1.2", "entries": [
	{"startedDateTime": "2026-11-20T10:00:00Z", "_resourceType": "document", "request": {"method": "GET", "url": "https://app.test/login"}, "response": {"status": 200, "content": {"mimeType": "text/html", "text": "<form method=post action=/login><input name=user><input type=password name=pass></form>"}}},
	{"startedDateTime": "2026-11-20T10:00:05Z", "_resourceType": "document", "request": {"method": "POST", "url": "https://app.test/login", "headers": [{"name": "Content-Type", "value": "application/x-www-form-urlencoded"}], "postData": {"mimeType": "application/x-www-form-urlencoded", "text": "user=alice.smith&pass=Tr0ub4dor%263"}}, "response": {"status": 302, "headers": [{"name": "Location", "value": "/profile/alice.smith/"}], "content": {"mimeType": "text/html"}}},
	{"startedDateTime": "2026-11-20T10:00:06Z", "_resourceType": "document", "request": {"method": "GET", "url": "https://app.test/profile/alice.smith/"}, "response": {"status": 200, "content": {"mimeType": "text/html", "text": "<h1>alice.smith</h1>"}}},
	{"startedDateTime": "2026-11-20T10:00:09Z", "_resourceType": "fetch", "request": {"method": "PUT", "url": "https://app.test/api/notes/1", "headers": [{"name": "Content-Type", "value": "application/json"}, {"name": "Authorization", "value": "Basic YWxpY2Uuc21pdGg6VHIwdWI0ZG9yJjM="}], "postData": {"mimeType": "application/json", "text": "{\"owner\": \"alice.smith\", \"note\": \"hi alice.smith\"}"}}, "response": {"status": 200, "content": {"mimeType": "application/json", "text": "{}"}}}
	]}}`
	l, err := Read(strings.NewReader(doc), nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Convert(l, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := string(res.Scenario)
	for _, want := range []string{`get: "/profile/{{user.username}}/"`, `"owner": "{{user.username}}"`, `"note": "hi {{user.username}}"`, "name: GET /profile/:user/"} {
		if !strings.Contains(s, want) {
			t.Errorf("scenario lacks %q:\n%s", want, s)
		}
	}
	for _, secret := range []string{"alice.smith", "Tr0ub4dor", "YWxpY2Uu"} {
		if strings.Contains(s, secret) {
			t.Errorf("scenario holds %q:\n%s", secret, s)
		}
	}
	for _, st := range res.Steps {
		if st.Login && st.Location != "https://app.test/profile/{{user.username}}/" {
			t.Errorf("login's redirect %q, want the user's profile templated", st.Location)
		}
	}
	if !strings.Contains(strings.Join(res.Warnings, "\n"), "header Authorization is HTTP Basic credentials") {
		t.Errorf("warnings %q", res.Warnings)
	}
	compiles(t, res)
}

// TestHARPromote: a token that only a left-out response carried (a
// script that sets the page's API key) keeps that response as a step, so
// the value is extracted where it comes from.
func TestHARPromote(t *testing.T) {
	const doc = `{"log": {"version": "1.2", "entries": [
	{"startedDateTime": "2026-11-20T10:00:00Z", "_resourceType": "document", "request": {"method": "GET", "url": "https://app.test/"}, "response": {"status": 200, "content": {"mimeType": "text/html", "text": "<script src=/config.js></script>"}}},
	{"startedDateTime": "2026-11-20T10:00:01Z", "_resourceType": "script", "request": {"method": "GET", "url": "https://app.test/config.js"}, "response": {"status": 200, "content": {"mimeType": "application/javascript", "text": "window.API_KEY = \"k3y-9f8e7d6c5b\";"}}},
	{"startedDateTime": "2026-11-20T10:00:02Z", "_resourceType": "fetch", "request": {"method": "GET", "url": "https://app.test/api/data", "headers": [{"name": "X-Api-Key", "value": "k3y-9f8e7d6c5b"}]}, "response": {"status": 200, "content": {"mimeType": "application/json", "text": "[]"}}}
	]}}`
	l, err := Read(strings.NewReader(doc), nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Convert(l, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	for _, s := range res.Steps {
		steps = append(steps, s.Name)
	}
	if got := strings.Join(steps, " | "); got != "GET / | GET /config.js | GET /api/data" {
		t.Errorf("steps %s", got)
	}
	checkCorrelations(t, res, []correlation{{"api_key", "GET /config.js", 1, "text of the page, after", "GET /api/data header X-Api-Key"}})
	if res.LeftOut[LeftStatic] != 0 {
		t.Errorf("left out %v: the script is a step now", res.LeftOut)
	}
	compiles(t, res)
}
