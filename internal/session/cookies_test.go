package session

import (
	"context"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/publicsuffix"
)

// cookieServer sets the Set-Cookie lines of lines[i] on /set?i=N (and on
// /redirect?i=N, a 302 to /echo), and echoes on /echo the names of the
// cookies it was sent, space-separated.
func cookieServer(lines [][]string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/set", "/redirect":
			i, _ := strconv.Atoi(r.URL.Query().Get("i"))
			w.Header()["Set-Cookie"] = lines[i]
			if r.URL.Path == "/redirect" {
				http.Redirect(w, r, "/echo", http.StatusFound)
				return
			}
			fmt.Fprint(w, "set")
		case "/echo":
			var names []string
			for _, c := range r.Cookies() {
				names = append(names, c.Name)
			}
			fmt.Fprint(w, strings.Join(names, " "))
		}
	})
}

func TestCookieRefusals(t *testing.T) {
	const value = "VALUE-never-in-a-record"
	big := strings.Repeat("x", MaxCookieSize)
	for _, tc := range []struct {
		name   string
		tls    bool
		host   string // the name the URL uses, dialled at 127.0.0.1
		path   string // "/set" unless "/redirect"
		lines  []string
		cookie string // the cookie whose fate is checked ("" for none)
		sent   bool   // whether it is sent back
		want   string // "reason attribute name", "" for no refusal
	}{
		{name: "secure over http", host: "app.test", lines: []string{"csrftoken=" + value + "; Path=/; Secure"},
			cookie: "csrftoken", want: "secure-over-http Secure csrftoken"},
		{name: "secure over http set by a redirect", host: "app.test", path: "/redirect",
			lines: []string{"csrftoken=" + value + "; Path=/; Secure"}, cookie: "csrftoken", want: "secure-over-http Secure csrftoken"},
		{name: "secure over http on a loopback address", host: "127.0.0.1", lines: []string{"csrftoken=" + value + "; Secure"},
			cookie: "csrftoken", sent: true},
		{name: "secure over http on localhost", host: "localhost", lines: []string{"csrftoken=" + value + "; Secure"},
			cookie: "csrftoken", sent: true},
		{name: "secure over http under .localhost", host: "app.localhost", lines: []string{"csrftoken=" + value + "; Secure"},
			cookie: "csrftoken", sent: true},
		{name: "secure over https", tls: true, host: "app.test", lines: []string{"csrftoken=" + value + "; Secure"},
			cookie: "csrftoken", sent: true},
		{name: "domain of another site", host: "app.test", lines: []string{"sessionid=" + value + "; Domain=other.test; Path=/"},
			cookie: "sessionid", want: "domain-mismatch Domain=other.test sessionid"},
		{name: "domain is a public suffix", host: "app.test", lines: []string{"sessionid=" + value + "; Domain=test"},
			cookie: "sessionid", want: "domain-mismatch Domain=test sessionid"},
		{name: "domain is a multi-label public suffix", host: "www.example.co.uk", lines: []string{"sessionid=" + value + "; Domain=.co.uk"},
			cookie: "sessionid", want: "domain-mismatch Domain=.co.uk sessionid"},
		{name: "domain on an IP address", host: "127.0.0.1", lines: []string{"sessionid=" + value + "; Domain=example.com"},
			cookie: "sessionid", want: "domain-mismatch Domain=example.com sessionid"},
		{name: "malformed domain", host: "app.test", lines: []string{"sessionid=" + value + "; Domain=..app.test"},
			cookie: "sessionid", want: "domain-mismatch Domain=..app.test sessionid"},
		{name: "parent domain", host: "www.app.test", lines: []string{"sessionid=" + value + "; Domain=.App.test"},
			cookie: "sessionid", sent: true},
		{name: "own IP address as domain", host: "127.0.0.1", lines: []string{"sessionid=" + value + "; Domain=127.0.0.1"},
			cookie: "sessionid", sent: true},
		{name: "samesite none without secure", host: "127.0.0.1", lines: []string{"sessionid=" + value + "; SameSite=None"},
			cookie: "sessionid", want: "samesite-none-insecure SameSite=None sessionid"},
		{name: "samesite none with secure", tls: true, host: "app.test", lines: []string{"sessionid=" + value + "; SameSite=None; Secure"},
			cookie: "sessionid", sent: true},
		{name: "too large", host: "127.0.0.1", lines: []string{"big=" + big}, cookie: "big", want: "too-large size big"},
		{name: "largest kept", host: "127.0.0.1", lines: []string{"big=" + big[:MaxCookieSize-3]}, cookie: "big", sent: true},
		{name: "secure prefix without secure", host: "127.0.0.1", lines: []string{"__Secure-id=" + value},
			cookie: "__Secure-id", want: "prefix-violation __Secure- __Secure-id"},
		{name: "host prefix without path", host: "127.0.0.1", lines: []string{"__Host-id=" + value + "; Secure"},
			cookie: "__Host-id", want: "prefix-violation __Host- __Host-id"},
		{name: "host prefix with a domain", tls: true, host: "www.app.test", lines: []string{"__Host-id=" + value + "; Secure; Path=/; Domain=app.test"},
			cookie: "__Host-id", want: "prefix-violation __Host- __Host-id"},
		{name: "host prefix kept", host: "127.0.0.1", lines: []string{"__Host-id=" + value + "; Secure; Path=/"}, cookie: "__Host-id", sent: true},
		{name: "name not a token", host: "127.0.0.1", lines: []string{"bad name=" + value, "ok=1"},
			cookie: "ok", sent: true, want: "invalid name bad name"},
		{name: "value with quotes", host: "127.0.0.1", lines: []string{`prefs={"a":1}`}, want: "invalid value prefs"},
		{name: "no equals sign", host: "127.0.0.1", lines: []string{value}, want: "invalid line "},
		{name: "path the next request does not match", host: "app.test", lines: []string{"p=" + value + "; Path=/other/"}, cookie: "p"},
		{name: "one refused among kept", host: "app.test", lines: []string{"a=1", "csrftoken=" + value + "; Secure", "b=2"},
			cookie: "b", sent: true, want: "secure-over-http Secure csrftoken"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ts *httptest.Server
			if tc.tls {
				ts = httptest.NewTLSServer(cookieServer([][]string{tc.lines}))
			} else {
				ts = httptest.NewServer(cookieServer([][]string{tc.lines}))
			}
			defer ts.Close()
			addr, _ := url.Parse(ts.URL)
			base := strings.Replace(ts.URL, "127.0.0.1", tc.host, 1)
			var got []CookieRefusal
			b := New(Options{Transport: NewTransport(2, true, Hosts{tc.host: "127.0.0.1"}), CookieRefused: func(r CookieRefusal) { got = append(got, r) }})
			path := tc.path
			if path == "" {
				path = "/set"
			}
			ctx := context.Background()
			before := time.Now()
			if _, _, err := b.Do(ctx, &Request{Method: "GET", URL: base + path + "?i=0&secret=" + value}); err != nil {
				t.Fatal(err)
			}
			p, _, err := b.Do(ctx, &Request{Method: "GET", URL: base + "/echo", KeepBody: true})
			if err != nil {
				t.Fatal(err)
			}
			if tc.cookie != "" {
				sent := strings.Contains(" "+string(p.Body)+" ", " "+tc.cookie+" ")
				if sent != tc.sent {
					t.Errorf("cookie %s sent back %v, want %v (cookies sent: %q)", tc.cookie, sent, tc.sent, p.Body)
				}
				if _, held := b.Cookie(p.URL, tc.cookie); held != tc.sent {
					t.Errorf("Browser.Cookie(%s) held %v, want %v", tc.cookie, held, tc.sent)
				}
			}
			if tc.want == "" {
				if len(got) != 0 {
					t.Fatalf("refusals %+v, want none", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("%d refusals %+v, want 1: %s", len(got), got, tc.want)
			}
			r := got[0]
			if s := r.Reason + " " + r.Attribute + " " + r.Name; s != tc.want {
				t.Errorf("refusal %q, want %q", s, tc.want)
			}
			if wantURL := "http://" + tc.host + ":" + addr.Port() + path; strings.Replace(r.URL, "https:", "http:", 1) != wantURL {
				t.Errorf("URL %q, want %q", r.URL, wantURL)
			}
			if r.Time.Before(before) || r.Time.After(time.Now()) || r.Detail == "" {
				t.Errorf("time %v (run from %v), detail %q", r.Time, before, r.Detail)
			}
			if s := fmt.Sprintf("%+v", r); strings.Contains(s, value) {
				t.Errorf("the record holds the cookie's value or the query: %s", s)
			}
		})
	}
}

// TestCookieRefusalDetail checks the words of each refusal.
func TestCookieRefusalDetail(t *testing.T) {
	for _, tc := range []struct {
		host, line, want string
	}{
		{"django.test", "csrftoken=a; Secure", "Secure cookie set over plain HTTP"},
		{"app.test", "s=a; Domain=other.test", "cookie with Domain=other.test, which app.test does not domain-match, set"},
		{"app.test", "s=a; Domain=test", "cookie with Domain=test, a public suffix, set"},
		{"10.0.0.1", "s=a; Domain=example.com", "cookie with Domain=example.com on the IP address 10.0.0.1 set"},
		{"app.test", "s=a; Domain=app.test.", "cookie with a malformed Domain=app.test. set"},
		{"app.test", "s=a; SameSite=None", "SameSite=None cookie without Secure set"},
		{"app.test", "s=" + strings.Repeat("a", 5000), "cookie of 5001 bytes (name and value; browsers keep at most 4096) set"},
		{"localhost", "__Secure-s=a", "__Secure- cookie without Secure set"},
		{"localhost", "__Host-s=a; Path=/x", "__Host- cookie without Secure, without Path=/ set"},
		{"localhost", "__host-s=a; Secure; Domain=localhost; Path=/", "__Host- cookie with a Domain set"},
	} {
		c, err := http.ParseSetCookie(tc.line)
		if err != nil {
			t.Fatal(err)
		}
		var got []CookieRefusal
		j := newJar(func(r CookieRefusal) { got = append(got, r) })
		j.setCookies(&url.URL{Scheme: "http", Host: tc.host + ":8000", Path: "/login/"}, []*http.Cookie{c}, time.Now())
		if len(got) != 1 || got[0].Detail != tc.want {
			t.Errorf("%s from %s: %+v, want %q", tc.line, tc.host, got, tc.want)
		}
	}
}

// TestCookieCheckAllocs: a response whose cookies are all kept costs no
// allocation beyond Go's jar's own; lines that parse cost none.
func TestCookieCheckAllocs(t *testing.T) {
	var cs []*http.Cookie
	for _, line := range []string{"csrftoken=abcdef; Path=/; SameSite=Lax", "sessionid=x; Domain=.app.test; HttpOnly; Secure", "__Host-a=1; Secure; Path=/"} {
		c, err := http.ParseSetCookie(line)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	j := newJar(nil)
	if n := testing.AllocsPerRun(100, func() {
		for _, c := range cs {
			if r, _ := j.check(c, "www.app.test", true); r != "" {
				t.Fatal(r)
			}
		}
		if h, ok := jarHost(&url.URL{Scheme: "https", Host: "www.app.test:8443"}); !ok || h != "www.app.test" {
			t.Fatal(h)
		}
		if _, _, why := parseSetCookieError(` csrftoken="abc def"; Path=/ `); why != "" {
			t.Fatal(why)
		}
	}); n != 0 {
		t.Errorf("%v allocations per response with nothing refused, want 0", n)
	}
}

// FuzzParseSetCookieError: the line check refuses exactly the lines
// net/http cannot parse.
func FuzzParseSetCookieError(f *testing.F) {
	for _, s := range []string{"a=1", "", " ; ", "a", "=1", "a b=1", `a="1"`, `a="1`, `a=1"`, "a=\x7f", "a=1; Secure",
		"\t a = b ;x", `a=""`, `a="`, "a=é", "a\u00e9=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		_, err := http.ParseSetCookie(line)
		_, _, why := parseSetCookieError(line)
		if (err != nil) != (why != "") {
			t.Errorf("%q: net/http says %v, the check says %q", line, err, why)
		}
	})
}

// BenchmarkSetCookies compares the jar with Go's own (net/http/cookiejar)
// and with its store alone, on a Django login page's cookie.
func BenchmarkSetCookies(b *testing.B) {
	c, err := http.ParseSetCookie("csrftoken=Yq8bT0l3Ukx3yFGcM2e4eLqHpJ1rC9tZ; expires=Sat, 05 Dec 2027 05:40:50 GMT; Max-Age=31449600; Path=/; SameSite=Lax")
	if err != nil {
		b.Fatal(err)
	}
	u := &url.URL{Scheme: "http", Host: "django.test:8000", Path: "/accounts/login/"}
	cs := []*http.Cookie{c}
	b.Run("cookiejar", func(b *testing.B) {
		j, _ := cookiejar.New(&cookiejar.Options{PublicSuffixList: publicsuffix.List})
		b.ReportAllocs()
		for b.Loop() {
			j.SetCookies(u, cs)
		}
	})
	b.Run("store", func(b *testing.B) {
		j := newJar(nil)
		b.ReportAllocs()
		for b.Loop() {
			j.inner.setCookies(u, cs, time.Now(), j.publicSuffix)
		}
	})
	b.Run("checked", func(b *testing.B) {
		j := newJar(func(CookieRefusal) {})
		b.ReportAllocs()
		for b.Loop() {
			j.SetCookies(u, cs)
		}
	})
}

// TestBrowserCookieHeaderAsGoClient: the Cookie header each hop of a
// request carries is the one net/http's client with Go's cookiejar sends:
// a hand-set Cookie header first, then the jar's cookies (quoted where
// AddCookie quotes); on a same-host redirect the hand-set cookies minus
// those a response set since, sorted; on a redirect to another host no
// hand-set cookie.
func TestBrowserCookieHeaderAsGoClient(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	var other string // the same server under another host name
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Host[:strings.IndexByte(r.Host, ':')]+r.URL.Path+" "+strings.Join(r.Header["Cookie"], "|"))
		mu.Unlock()
		switch r.URL.Path {
		case "/set":
			w.Header()["Set-Cookie"] = []string{`sid=abc; Path=/`, `q="a b"; Path=/`, `sp=x y; Path=/`, `deep=1; Path=/a/b`}
		case "/hop1":
			w.Header()["Set-Cookie"] = []string{`hand1=fromserver; Path=/`}
			http.Redirect(w, r, "/hop2", http.StatusFound)
		case "/hop2":
			http.Redirect(w, r, "/a/b/hop3", http.StatusTemporaryRedirect)
		case "/a/b/hop3":
			http.Redirect(w, r, other+"/away", http.StatusFound)
		}
	}))
	defer srv.Close()
	other = strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)

	run := func(do func(method, u, cookie string)) []string {
		mu.Lock()
		seen = nil
		mu.Unlock()
		do("GET", srv.URL+"/set", "")
		do("GET", srv.URL+"/set", "hand2=2; hand1=1")
		do("POST", srv.URL+"/hop1", "hand2=2; hand1=1; z=9")
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}

	j, _ := cookiejar.New(&cookiejar.Options{PublicSuffixList: publicsuffix.List})
	goClient := &http.Client{Jar: j}
	want := run(func(method, u, cookie string) {
		req, _ := http.NewRequest(method, u, strings.NewReader("k=v"))
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := goClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	})
	b := New(Options{Transport: NewUserTransport(UserTransportOptions{})})
	got := run(func(method, u, cookie string) {
		r := &Request{Method: method, URL: u, Body: []byte("k=v"), ContentType: "text/plain"}
		if cookie != "" {
			r.Header = http.Header{"Cookie": {cookie}}
		}
		if _, _, err := b.Do(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	})
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("cookies sent\n got: %q\nwant: %q", got, want)
	}
	if len(want) != 6 || !strings.Contains(want[5], "localhost/away") {
		t.Fatalf("the server saw %q: not the hops the test means", want)
	}
}
