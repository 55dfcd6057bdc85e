package testenv

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

func TestNginxConf(t *testing.T) {
	n := &Nginx{Host: "127.0.0.1", Port: 8080, AccessLog: "/l/access.log", ErrorLog: "/l/nginx-error.log"}
	for _, tc := range []struct {
		name      string
		opts      NginxOptions
		want, not []string
	}{
		{"http", NginxOptions{Upstream: "127.0.0.1:9000"},
			[]string{"listen 127.0.0.1:8080;", "proxy_pass http://app;", "server 127.0.0.1:9000;", "rt=$request_time", "urt=$upstream_response_time", "error_log /l/nginx-error.log warn;"},
			[]string{"uwsgi_pass", "limit_req"}},
		{"uwsgi with timeouts", NginxOptions{Upstream: "127.0.0.1:9000", Protocol: "uwsgi", ConnectTimeout: 3 * time.Second, ReadTimeout: 20 * time.Second},
			[]string{"uwsgi_pass app;", "uwsgi_param PATH_INFO $document_uri;", "uwsgi_connect_timeout 3000ms;", "uwsgi_read_timeout 20000ms;"},
			[]string{"proxy_pass"}},
		{"limit_req", NginxOptions{Upstream: "127.0.0.1:9000", LimitReq: &NginxLimitReq{Path: "/login", Method: "POST", Rate: "2r/s", Burst: 4}},
			[]string{"map $request_method $limited_addr { POST $binary_remote_addr; default \"\"; }", "limit_req_zone $limited_addr zone=login:1m rate=2r/s;",
				"location = /login {", "limit_req zone=login burst=4 nodelay;"},
			nil},
	} {
		conf := nginxConf(n, "/p", tc.opts)
		for _, w := range tc.want {
			if !strings.Contains(conf, w) {
				t.Errorf("%s: config lacks %q:\n%s", tc.name, w, conf)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(conf, w) {
				t.Errorf("%s: config has %q:\n%s", tc.name, w, conf)
			}
		}
	}
}

// TestNginx starts Debian's nginx in front of a test server: requests pass
// through with their times in the access log; a limit_req on POST /login
// answers 503 with nginx's own error-log line, GETs pass; a dead upstream
// is a 502 with nginx's connect() error.
func TestNginx(t *testing.T) {
	check(t, NginxInstalled())
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "app "+r.Method+" "+r.URL.Path)
	}))
	defer app.Close()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	dir := t.TempDir()
	n, err := StartNginx(ctx, NginxOptions{
		Upstream: strings.TrimPrefix(app.URL, "http://"), Dir: dir,
		LimitReq: &NginxLimitReq{Path: "/login", Method: "POST", Rate: "1r/m", Burst: 1},
	})
	check(t, err)
	cleanup(t, n.Close, n.ErrorLog)

	do := func(method, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, n.URL()+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for i, tc := range []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/dashboard", 200, "app GET /dashboard"},
		{"POST", "/login", 200, "app POST /login"},
		{"POST", "/login", 200, "app POST /login"}, // the burst
		{"POST", "/login", 503, "503 Service Temporarily Unavailable"},
		{"GET", "/login", 200, "app GET /login"},
	} {
		if code, body := do(tc.method, tc.path); code != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("%d: %s %s: %d %q, want %d %q", i, tc.method, tc.path, code, body, tc.code, tc.body)
		}
	}
	app.Close()
	if code, _ := do("GET", "/dashboard"); code != 502 {
		t.Errorf("GET with the upstream down: %d, want 502", code)
	}
	time.Sleep(100 * time.Millisecond) // nginx writes its logs as it goes
	access, _ := os.ReadFile(n.AccessLog)
	errs, _ := os.ReadFile(n.ErrorLog)
	for _, w := range []string{`"GET /dashboard HTTP/1.1" 200`, " rt=0.", " urt=0.", `"POST /login HTTP/1.1" 503`} {
		if !strings.Contains(string(access), w) {
			t.Errorf("access log lacks %q:\n%s", w, access)
		}
	}
	for _, w := range []string{`limiting requests, excess: 2.000 by zone "login"`, `by zone "login"`, "connect() failed (111: Connection refused) while connecting to upstream"} {
		if !strings.Contains(string(errs), w) {
			t.Errorf("error log lacks %q:\n%s", w, errs)
		}
	}
}
