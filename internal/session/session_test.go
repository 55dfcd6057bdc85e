package session

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stampede-load/stampede/internal/testserver"
)

func TestLoginFlow(t *testing.T) {
	srv := testserver.New("s3cret")
	ts := httptest.NewServer(srv)
	defer ts.Close()
	ctx := context.Background()

	for _, tc := range []struct {
		password  string
		wantFinal string
		wantErr   string
	}{
		{"s3cret", "/dashboard/", ""},
		{"wrong", "/accounts/login/", "The username and/or password you specified are not correct."},
	} {
		b := New(Options{})
		p, _, err := b.Do(ctx, &Request{Method: "GET", URL: ts.URL + "/accounts/login/", KeepBody: true})
		if err != nil || p.Status != 200 {
			t.Fatalf("GET login: %v %d", err, p.Status)
		}
		f, err := FindForm(p.Body, p.URL, "")
		if err != nil {
			t.Fatal(err)
		}
		if !f.HasPassword || f.Method != "POST" || f.Action != ts.URL+"/accounts/login/" {
			t.Fatalf("form = %+v", f)
		}
		tok, _ := b.Cookie(p.URL, "csrftoken")
		v := f.Values(map[string]string{"login": "alice", "password": tc.password})
		if v.Get("csrfmiddlewaretoken") != tok || tok == "" || v.Get("next") != "/dashboard/" {
			t.Fatalf("hidden inputs not carried: %v (cookie %q)", v, tok)
		}
		p, _, err = b.Do(ctx, &Request{Method: f.Method, URL: f.Action, Body: []byte(v.Encode()),
			ContentType: "application/x-www-form-urlencoded", KeepBody: true})
		if err != nil {
			t.Fatal(err)
		}
		if p.URL.Path != tc.wantFinal || p.Status != 200 {
			t.Errorf("password %q: final %s %d, want %s 200", tc.password, p.URL.Path, p.Status, tc.wantFinal)
		}
		if got := IsLoginPage(p.Body); got != (tc.wantErr != "") {
			t.Errorf("IsLoginPage = %v", got)
		}
		if got := ErrorText(p.Body); got != tc.wantErr {
			t.Errorf("ErrorText = %q, want %q", got, tc.wantErr)
		}
	}
}

func TestNoRedirect(t *testing.T) {
	srv := testserver.New("pw")
	ts := httptest.NewServer(srv)
	defer ts.Close()
	b := New(Options{})
	p, _, err := b.Do(context.Background(), &Request{Method: "GET", URL: ts.URL + "/dashboard/", NoRedirect: true})
	if err != nil || p.Status != 302 {
		t.Fatalf("got %d %v, want 302", p.Status, err)
	}
	p, tm, err := b.Do(context.Background(), &Request{Method: "GET", URL: ts.URL + "/dashboard/", KeepBody: true})
	if err != nil || p.Status != 200 || len(p.Redirects) != 1 || !IsLoginPage(p.Body) {
		t.Fatalf("got %d %v %v", p.Status, p.Redirects, err)
	}
	if !tm.Reused || tm.TTFB <= 0 {
		t.Errorf("timing %+v: want a reused connection and a TTFB", tm)
	}
}

func TestFindFormFrameworks(t *testing.T) {
	base, _ := url.Parse("http://h/app/login")
	pages := map[string]struct{ page, hidden string }{
		"rails":     {`<form action="/session" method="post"><input type="hidden" name="authenticity_token" value="R1"><input name="user[email]"><input type="password" name="user[password]"></form>`, "authenticity_token"},
		"laravel":   {`<form method="POST" action="https://h/login"><input type="hidden" name="_token" value="L1"><input type=email name=email><input type=password name=password><input type=checkbox name=remember></form>`, "_token"},
		"aspnet":    {`<form id="account" method="post"><input name="Input.Email"><input type="password" name="Input.Password"><input name="__RequestVerificationToken" type="hidden" value="A1" /></form>`, "__RequestVerificationToken"},
		"two forms": {`<form action="/search"><input name=q value=x></form><form action="login/" method=post><input type=hidden name=csrf value=C1><input type=password name=pw></form>`, "csrf"},
	}
	for name, tc := range pages {
		t.Run(name, func(t *testing.T) {
			f, err := FindForm([]byte(tc.page), base, "")
			if err != nil {
				t.Fatal(err)
			}
			v := f.Values(nil)
			if v.Get(tc.hidden) == "" || !f.HasPassword || f.Method != "POST" {
				t.Fatalf("form %+v lost %s", f, tc.hidden)
			}
			if v.Has("remember") {
				t.Error("unchecked checkbox submitted")
			}
		})
	}
	f, err := FindForm([]byte(pages["two forms"].page), base, "form[action='/search']")
	if err != nil || f.Action != "http://h/search" || f.Method != "GET" {
		t.Fatalf("selector: %+v %v", f, err)
	}
	if _, err := FindForm([]byte(`<p>no form</p>`), base, ""); err == nil {
		t.Fatal("want an error for a page without a form")
	}
}

func TestErrorText(t *testing.T) {
	for _, tc := range []struct{ page, want string }{
		{`<ul class="errorlist nonfield"><li>Too many failed login attempts. Try again later.</li></ul>`, "Too many failed login attempts. Try again later."},
		{`<div class="alert alert-danger" role="alert">Invalid email or password.</div>`, "Invalid email or password."},
		{`<div class="validation-summary-errors"><ul><li>Invalid login attempt.</li></ul></div>`, "Invalid login attempt."},
		{`<p>Welcome</p>`, ""},
	} {
		if got := ErrorText([]byte(tc.page)); got != tc.want {
			t.Errorf("ErrorText(%q) = %q, want %q", tc.page, got, tc.want)
		}
	}
}

func TestExtract(t *testing.T) {
	b := New(Options{})
	u, _ := url.Parse("http://h/")
	p := &Page{URL: u, Body: []byte(`{"data":{"items":[{"id":42,"name":"x"}]}}`)}
	for _, tc := range []struct {
		e    Extractor
		want string
	}{
		{Extractor{JSON: "data.items[0].id"}, "42"},
		{Extractor{Regex: regexp.MustCompile(`"name":"(\w+)"`)}, "x"},
	} {
		got, err := tc.e.Extract(b, p)
		if err != nil || got != tc.want {
			t.Errorf("%+v: %q %v", tc.e, got, err)
		}
	}
	hp := &Page{URL: u, Body: []byte(`<meta name="csrf-token" content="T9"><h1 class=t> Hi </h1>`)}
	if got, err := (&Extractor{CSS: `meta[name="csrf-token"]`, Attr: "content"}).Extract(b, hp); got != "T9" || err != nil {
		t.Errorf("css attr: %q %v", got, err)
	}
	if got, _ := (&Extractor{CSS: "h1.t"}).Extract(b, hp); got != "Hi" {
		t.Errorf("css text: %q", got)
	}
	if _, err := (&Extractor{JSON: "data.nope"}).Extract(b, p); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("missing key error: %v", err)
	}
	// A response header (a token handed out in X-Csrf-Token, an
	// Authorization on a login's answer), and a value URL-decoded as the
	// page's script does with Laravel's XSRF-TOKEN cookie.
	rp := &Page{URL: u, Header: http.Header{"X-Csrf-Token": {"abc%3D"}}}
	for _, tc := range []struct {
		e       Extractor
		want    string
		wantErr string
	}{
		{Extractor{Header: "x-csrf-token"}, "abc%3D", ""},
		{Extractor{Header: "X-CSRF-Token", URLDecode: true}, "abc=", ""},
		{Extractor{Header: "X-Other"}, "", `no response header "X-Other"`},
		{Extractor{Regex: regexp.MustCompile(`.*`), URLDecode: true}, "", ""},
	} {
		got, err := tc.e.Extract(b, rp)
		if got != tc.want || (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%+v: %q %v; want %q %q", tc.e, got, err, tc.want, tc.wantErr)
		}
	}
	bad := &Page{URL: u, Header: http.Header{"X-T": {"%zz"}}}
	if _, err := (&Extractor{Header: "X-T", URLDecode: true}).Extract(b, bad); err == nil || !strings.Contains(err.Error(), "decode url") {
		t.Errorf("bad escape: %v", err)
	}
}

func FuzzForms(f *testing.F) {
	f.Add([]byte(`<form method=post><input type=hidden name=a value=b><input type=password name=p><select name=s><option>1</option></select><textarea name=t>x</textarea></form>`))
	f.Add([]byte(`<ul class="errorlist"><li>bad</li></ul><script>x</script>`))
	base, _ := url.Parse("http://h/")
	f.Fuzz(func(t *testing.T, page []byte) {
		_, _ = FindForm(page, base, "")
		_ = ErrorText(page)
		_ = IsLoginPage(page)
	})
}

// TestBrowserRedirectChain checks the browser's redirect hook: the hops of
// a chain in order, none carried over to the next request, the timing of
// the last hop only, net/http's limit of 10 redirects with its error, and
// NoRedirect's first response; over a UserTransport (the run's) and over
// an http.Transport.
func TestBrowserRedirectChain(t *testing.T) {
	var hits atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch {
		case r.URL.Path == "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case strings.HasPrefix(r.URL.Path, "/r/"):
			n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/r/"))
			if n == 0 {
				time.Sleep(20 * time.Millisecond) // the last hop's TTFB
				io.WriteString(w, "done")
				return
			}
			http.Redirect(w, r, "/r/"+strconv.Itoa(n-1), http.StatusFound)
		default:
			io.WriteString(w, "plain")
		}
	}))
	defer ts.Close()
	for _, name := range []string{"user transport", "http transport"} {
		t.Run(name, func(t *testing.T) {
			o := Options{}
			if name == "user transport" {
				o.Transport = NewUserTransport(UserTransportOptions{})
			}
			b := New(o)
			ctx := context.Background()
			p, tm, err := b.Do(ctx, &Request{Method: "GET", URL: ts.URL + "/r/3", KeepBody: true})
			want := []string{ts.URL + "/r/2", ts.URL + "/r/1", ts.URL + "/r/0"}
			if err != nil || p.Status != 200 || string(p.Body) != "done" || !slices.Equal(p.Redirects, want) || p.URL.Path != "/r/0" {
				t.Fatalf("chain: %d %q %v %v %v", p.Status, p.Body, p.Redirects, p.URL, err)
			}
			if tm.TTFB < 20*time.Millisecond || tm.TTFB > 5*time.Second {
				t.Errorf("chain: TTFB %v, want the last hop's (20 ms and more)", tm.TTFB)
			}
			p, _, err = b.Do(ctx, &Request{Method: "GET", URL: ts.URL + "/plain"})
			if err != nil || p.Status != 200 || p.Redirects != nil {
				t.Errorf("after the chain: %d %v %v", p.Status, p.Redirects, err)
			}
			hits.Store(0)
			_, _, err = b.Do(ctx, &Request{Method: "GET", URL: ts.URL + "/loop"})
			if err == nil || !strings.Contains(err.Error(), "stopped after 10 redirects") || hits.Load() != 10 {
				t.Errorf("loop: %v after %d requests, want net/http's error after 10", err, hits.Load())
			}
			p, _, err = b.Do(ctx, &Request{Method: "GET", URL: ts.URL + "/r/3", NoRedirect: true})
			if err != nil || p.Status != 302 || p.Redirects != nil || p.URL.Path != "/r/3" {
				t.Errorf("no redirect: %d %v %v %v", p.Status, p.Redirects, p.URL, err)
			}
		})
	}
}
