package har

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stampede-load/stampede/internal/check"
	"github.com/stampede-load/stampede/internal/load"
)

const (
	alice, alicePW = "alice@example.test", "pw-Alice-1!"
	bobUsers       = "username,password\nbob@example.test,pw-Bob-2!\n"
)

var metaCSRF = regexp.MustCompile(`<meta name="(?:csrf-token|_csrf)" content="([^"]+)"`)

// TestFrameworks records a visit of a served application of each
// framework's token pattern through a browser, makes the scenario, and
// checks that each token is traced to the response that handed it out, by
// the framework's rule; that the scenario passes --check against a fresh
// instance of the application (new secrets) as another user; and that the
// same recording with correlation switched off fails --check at the step
// whose token is frozen, naming it.
func TestHARFrameworks(t *testing.T) {
	cases := []struct {
		name   string
		app    func() http.Handler
		visit  func(b *browser, base string)
		corr   []correlation
		frozen string // the failing step and the token it names, with --no-correlate
		token  string
	}{
		{
			name: "django", app: djangoApp,
			visit: func(b *browser, base string) {
				b.open("GET", base+"/", nil)
				b.think(2 * time.Second)
				b.submit("", map[string]string{"login": alice, "password": alicePW})
				b.think(time.Second)
				b.xhr("POST", "/api/items/", "application/json", `{"name": "bolt"}`, map[string]string{"X-CSRFToken": b.cookie("csrftoken")})
			},
			corr: []correlation{
				{"", "GET /accounts/login/", 1, "hidden input csrfmiddlewaretoken", "POST /accounts/login/ form field csrfmiddlewaretoken"},
				{"csrftoken", "POST /accounts/login/", 2, "cookie csrftoken", "POST /api/items/ header X-Csrftoken"},
			},
			frozen: "POST /accounts/login/", token: "csrfmiddlewaretoken",
		},
		{
			name: "rails", app: railsApp,
			visit: func(b *browser, base string) {
				b.open("GET", base+"/users/sign_in", nil)
				b.think(2 * time.Second)
				b.submit("", map[string]string{"user[email]": alice, "user[password]": alicePW, "commit": "Log in"})
				b.think(time.Second)
				tok := metaCSRF.FindSubmatch(b.body)[1]
				b.xhr("PATCH", "/todos/1", "application/json", `{"todo": {"done": true}}`, map[string]string{"X-CSRF-Token": string(tok)})
			},
			corr: []correlation{
				{"", "GET /users/sign_in", 0, "hidden input authenticity_token", "POST /users/sign_in form field authenticity_token"},
				{"csrf_token", "GET /", 2, "meta tag csrf-token", "PATCH /todos/:id header X-Csrf-Token"},
				{"todos_id", "GET /", 2, "link /todos/", "PATCH /todos/:id path segment 1"},
			},
			frozen: "POST /users/sign_in", token: "authenticity_token",
		},
		{
			name: "laravel", app: laravelApp,
			visit: func(b *browser, base string) {
				b.open("GET", base+"/login", nil)
				b.think(2 * time.Second)
				b.submit("", map[string]string{"email": alice, "password": alicePW})
				b.think(time.Second)
				x, _ := url.QueryUnescape(b.cookie("XSRF-TOKEN")) // axios' cookie read
				b.xhr("POST", "/api/notes", "application/json", `{"text": "hi"}`, map[string]string{"X-XSRF-TOKEN": x, "X-Requested-With": "XMLHttpRequest"})
			},
			corr: []correlation{
				{"", "GET /login", 0, "hidden input _token", "POST /login form field _token"},
				{"xsrf_token", "GET /dashboard", 2, "cookie XSRF-TOKEN, URL-decoded (the page's script copies it into the request)", "POST /api/notes header X-Xsrf-Token"},
			},
			frozen: "POST /login", token: "_token",
		},
		{
			name: "aspnet", app: aspnetApp,
			visit: func(b *browser, base string) {
				b.open("GET", base+"/Account/Login", nil)
				b.think(2 * time.Second)
				b.submit("", map[string]string{"UserName": alice, "Password": alicePW, "LoginButton": "Log in"})
			},
			corr: []correlation{
				{"", "GET /Account/Login", 0, "hidden input __RequestVerificationToken", "POST /Account/Login form field __RequestVerificationToken"},
				{"", "GET /Account/Login", 0, "hidden input __VIEWSTATE", "POST /Account/Login form field __VIEWSTATE"},
				{"", "GET /Account/Login", 0, "hidden input __EVENTVALIDATION", "POST /Account/Login form field __EVENTVALIDATION"},
			},
			frozen: "POST /Account/Login", token: "__RequestVerificationToken",
		},
		{
			name: "wordpress", app: wordpressApp,
			visit: func(b *browser, base string) {
				b.open("GET", base+"/wp-login.php", nil)
				b.think(2 * time.Second)
				b.submit("", map[string]string{"log": alice, "pwd": alicePW, "wp-submit": "Log In"})
				b.think(2 * time.Second)
				b.open("GET", "/wp-admin/post-new.php", nil)
				nonce := regexp.MustCompile(`"nonce":"(\w+)"`).FindSubmatch(b.body)[1]
				b.xhr("POST", "/wp-json/wp/v2/posts", "application/json", `{"title": "Hello", "status": "auto-draft"}`, map[string]string{"X-WP-Nonce": string(nonce)})
				b.think(3 * time.Second)
				b.submit("form#post", map[string]string{"post_title": "Hello", "post_ID": "55"})
			},
			corr: []correlation{
				{"nonce", "GET /wp-admin/post-new.php", 3, "text of the page", "POST /wp-json/wp/v2/posts header X-Wp-Nonce"},
				{"wpnonce", "GET /wp-admin/post-new.php", 3, "hidden input _wpnonce", "POST /wp-admin/post.php form field _wpnonce"},
				{"id", "POST /wp-json/wp/v2/posts", 4, "JSON field id", "POST /wp-admin/post.php form field post_ID"},
				{"id", "POST /wp-json/wp/v2/posts", 4, "JSON field id", "GET /wp-admin/post.php query parameter post"},
			},
			frozen: "POST /wp-json/wp/v2/posts", token: "X-Wp-Nonce",
		},
		{
			name: "spring", app: springApp,
			visit: func(b *browser, base string) {
				b.open("GET", base+"/login", nil)
				b.think(2 * time.Second)
				b.submit("", map[string]string{"username": alice, "password": alicePW})
				b.think(time.Second)
				tok := metaCSRF.FindSubmatch(b.body)[1]
				b.xhr("POST", "/api/todos", "application/json", `{"title": "x"}`, map[string]string{"X-CSRF-TOKEN": string(tok)})
			},
			corr: []correlation{
				{"", "GET /login", 0, "hidden input _csrf", "POST /login form field _csrf"},
				{"csrf", "GET /", 2, "meta tag _csrf", "POST /api/todos header X-Csrf-Token"},
			},
			frozen: "POST /login", token: "_csrf",
		},
		{
			name: "angular", app: angularApp,
			visit: func(b *browser, base string) {
				b.open("GET", base+"/", nil)
				b.think(3 * time.Second)
				b.xhr("POST", "/api/login", "application/json", `{"username": "`+alice+`", "password": "`+alicePW+`"}`, map[string]string{"X-XSRF-TOKEN": b.cookie("XSRF-TOKEN")})
				b.think(3 * time.Second)
				b.xhr("GET", "/api/orders", "", "", nil)
				b.think(3 * time.Second)
				b.xhr("POST", "/api/orders/31/cancel", "application/json", `{}`, map[string]string{"X-XSRF-TOKEN": b.cookie("XSRF-TOKEN")})
			},
			corr: []correlation{
				{"xsrf_token", "GET /", 0, "cookie XSRF-TOKEN", "POST /api/login header X-Xsrf-Token"},
				{"xsrf_token_2", "POST /api/login", 1, "cookie XSRF-TOKEN", "POST /api/orders/:id/cancel header X-Xsrf-Token"},
				{"orders_id", "GET /api/orders", 2, "JSON field [0].id", "POST /api/orders/:id/cancel path segment 2"},
			},
			frozen: "POST /api/login", token: "X-Xsrf-Token",
		},
		{
			name: "json-bearer", app: bearerApp,
			visit: func(b *browser, base string) {
				b.open("GET", base+"/app", nil)
				b.think(3 * time.Second)
				body := b.xhr("POST", "/api/auth/login", "application/json", `{"email": "`+alice+`", "password": "`+alicePW+`"}`, nil)
				tok := regexp.MustCompile(`"token":"([^"]+)"`).FindSubmatch(body)[1]
				b.think(2 * time.Second)
				auth := map[string]string{"Authorization": "Bearer " + string(tok)}
				b.xhr("GET", "/api/projects", "", "", auth)
				b.xhr("GET", "/api/projects/17/tasks", "", "", auth)
			},
			corr: []correlation{
				{"token", "POST /api/auth/login", 1, "JSON field data.token", "GET /api/projects header Authorization"},
				{"token", "POST /api/auth/login", 1, "JSON field data.token", "GET /api/projects/:id/tasks header Authorization"},
				{"projects_id", "GET /api/projects", 2, "JSON field [0].id", "GET /api/projects/:id/tasks path segment 2"},
			},
			frozen: "GET /api/projects", token: "Authorization",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewServer(tc.app())
			defer rec.Close()
			b := newBrowser(t)
			tc.visit(b, rec.URL)
			l := b.recording()

			fresh := httptest.NewServer(tc.app())
			defer fresh.Close()
			res, err := Convert(l, Options{Source: tc.name, Target: fresh.URL})
			if err != nil {
				t.Fatal(err)
			}
			checkCorrelations(t, res, tc.corr)
			for _, u := range res.Unresolved {
				if u.Kind == NotTraced {
					t.Errorf("not traced: %s %s", u.Step, u.Sent)
				}
			}
			for _, s := range []string{alice, alicePW, url.QueryEscape(alice), url.QueryEscape(alicePW)} {
				if bytes.Contains(res.Scenario, []byte(s)) {
					t.Errorf("the scenario holds the recorded %q", s)
				}
			}
			rep := runCheck(t, res, bobUsers)
			if rep.Failed != nil {
				t.Errorf("check against a fresh instance failed at %s: %s\n%s", rep.Failed.Name, rep.Failed.Problem, res.Scenario)
			}

			frozen, err := Convert(l, Options{Source: tc.name, Target: fresh.URL, NoCorrelate: true})
			if err != nil {
				t.Fatal(err)
			}
			rep = runCheck(t, frozen, bobUsers)
			switch {
			case rep.Failed == nil:
				t.Errorf("check of the frozen scenario passed\n%s", frozen.Scenario)
			case rep.Failed.Name != tc.frozen || !strings.Contains(rep.Failed.Problem, tc.token+")") || !strings.Contains(rep.Failed.Problem, "frozen"):
				t.Errorf("check of the frozen scenario failed at %s: %s; want %s naming %s", rep.Failed.Name, rep.Failed.Problem, tc.frozen, tc.token)
			default:
				t.Logf("frozen: %s: %s", rep.Failed.Name, rep.Failed.Problem)
			}
		})
	}
}

// runCheck writes the scenario and its users file, and runs --check's
// comparison with the recording.
func runCheck(t *testing.T, res *Result, users string) *check.Report {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "scenario.yaml")
	if err := os.WriteFile(path, res.Scenario, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.csv"), []byte(users), 0o644); err != nil {
		t.Fatal(err)
	}
	sc, err := load.ReadScenario(path)
	if err != nil {
		t.Fatalf("%v\n%s", err, res.Scenario)
	}
	plan, err := sc.Compile()
	if err != nil {
		t.Fatalf("%v\n%s", err, res.Scenario)
	}
	recorded := map[[2]int]*check.Recorded{}
	for _, s := range res.Steps {
		r := &check.Recorded{Status: s.Entry.Response.Status, Location: s.Location,
			ContentType: s.Entry.Response.MimeType, Size: s.Entry.Response.Size, LoginPage: IsLoginPage(s.Entry)}
		for _, x := range s.Sources {
			r.Sources = append(r.Sources, check.Source(x))
		}
		recorded[[2]int{s.Task, s.Index}] = r
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := check.Run(ctx, plan, check.Options{Recorded: func(task, i int) *check.Recorded { return recorded[[2]int{task, i}] }})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}
