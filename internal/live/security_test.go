package live

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stampede-load/stampede/internal/runner"
)

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8089": true, "127.3.2.1:1": true, "[::1]:8089": true, "localhost:8089": true, "LOCALHOST:1": true,
		"0.0.0.0:8089": false, ":8089": false, "[::]:8089": false, "10.0.0.5:8089": false, "example.com:8089": false,
		"127.0.0.1": false, // no port
	} {
		if got := Loopback(addr); got != want {
			t.Errorf("Loopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestValidateRefusesControlsWithoutToken(t *testing.T) {
	ctl := runner.NewControl()
	for _, tc := range []struct {
		name string
		o    Options
		ok   bool
	}{
		{"loopback, controls, no token", Options{Addr: "127.0.0.1:0", Control: ctl}, true},
		{"default address", Options{Control: ctl}, true},
		{"every interface, controls, no token", Options{Addr: "0.0.0.0:0", Control: ctl}, false},
		{"no host, controls, no token", Options{Addr: ":0", Control: ctl}, false},
		{"every interface, token", Options{Addr: "0.0.0.0:0", Control: ctl, Token: "t"}, true},
		{"every interface, read-only", Options{Addr: "0.0.0.0:0", Control: ctl, ReadOnly: true}, true},
		{"every interface, no control", Options{Addr: "0.0.0.0:0"}, true},
		{"bad address", Options{Addr: "8089"}, false},
		{"negative keep", Options{KeepEvidence: -1}, false},
	} {
		if err := tc.o.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

// control is a request to a control endpoint of a page served at
// 127.0.0.1:8089 (or host), with the headers a browser or a script sends.
type control struct {
	name    string
	opts    Options // Control is set unless noControl
	method  string
	path    string
	host    string
	headers map[string]string
	body    string
	// want is the status code; wantErr a part of the error message.
	want    int
	wantErr string
}

func (c control) request() *http.Request {
	method, path, body := c.method, c.path, c.body
	if method == "" {
		method = http.MethodPost
	}
	if path == "" {
		path = "/api/load"
	}
	if body == "" && path == "/api/load" {
		body = `{"users": 5}`
	}
	r := httptest.NewRequest(method, "http://127.0.0.1:8089"+path, strings.NewReader(body))
	r.Host = "127.0.0.1:8089"
	if c.host != "" {
		r.Host = c.host
	}
	for k, v := range c.headers {
		r.Header.Set(k, v)
	}
	return r
}

// fromPage returns the headers of a same-origin fetch() from the page.
func fromPage(extra ...string) map[string]string {
	h := map[string]string{"Content-Type": "application/json", "Origin": "http://127.0.0.1:8089", "Sec-Fetch-Site": "same-origin"}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "" {
			delete(h, extra[i])
			continue
		}
		h[extra[i]] = extra[i+1]
	}
	return h
}

// TestControlRefusals: each way a control request is refused, and the
// requests that get through to the Control. A Control not attached to a
// run refuses every change (409, "the run has not started"): reaching it
// is what "allowed" means here.
func TestControlRefusals(t *testing.T) {
	const notStarted = "has not started"
	for _, tc := range []control{
		{name: "same-origin fetch from the page", headers: fromPage(), want: 409, wantErr: notStarted},
		{name: "script without Origin (curl)", headers: map[string]string{"Content-Type": "application/json"}, want: 409, wantErr: notStarted},
		{name: "content type with charset", headers: fromPage("Content-Type", "application/json; charset=utf-8"), want: 409, wantErr: notStarted},
		{name: "stop from the page", path: "/api/stop", body: `{"by": "ui"}`, headers: fromPage(), want: 202},
		{name: "stop, empty body", path: "/api/stop", headers: fromPage(), want: 202},

		{name: "cross-site Origin", headers: fromPage("Origin", "http://evil.example"), want: 403, wantErr: "cross-site"},
		{name: "Origin of another port", headers: fromPage("Origin", "http://127.0.0.1:9999"), want: 403, wantErr: "cross-site"},
		{name: "Origin null (sandboxed frame)", headers: fromPage("Origin", "null"), want: 403, wantErr: "cross-site"},
		{name: "Sec-Fetch-Site cross-site", headers: fromPage("Origin", "", "Sec-Fetch-Site", "cross-site"), want: 403, wantErr: "cross-site"},
		{name: "Sec-Fetch-Site same-site", headers: fromPage("Sec-Fetch-Site", "same-site"), want: 403, wantErr: "cross-site"},
		{name: "cross-site Referer without Origin", headers: fromPage("Origin", "", "Sec-Fetch-Site", "", "Referer", "http://evil.example/page"), want: 403, wantErr: "cross-site"},
		{name: "cross-site stop", path: "/api/stop", headers: fromPage("Origin", "http://evil.example"), want: 403, wantErr: "cross-site"},
		{name: "form post (urlencoded)", headers: fromPage("Content-Type", "application/x-www-form-urlencoded"), body: "users=5", want: 415},
		{name: "text/plain (a no-preflight fetch)", headers: fromPage("Content-Type", "text/plain"), want: 415},
		{name: "no content type", headers: fromPage("Content-Type", ""), want: 415},
		{name: "stop as text/plain", path: "/api/stop", headers: fromPage("Content-Type", "text/plain"), want: 415},
		{name: "GET on a control", method: http.MethodGet, path: "/api/stop", want: 405},
		{name: "read-only", opts: Options{ReadOnly: true}, headers: fromPage(), want: 403, wantErr: "--ui-readonly"},
		{name: "read-only stop", opts: Options{ReadOnly: true}, path: "/api/stop", headers: fromPage(), want: 403, wantErr: "--ui-readonly"},
		{name: "no control", opts: Options{Addr: "none"}, headers: fromPage(), want: 403, wantErr: "no control"},
		{name: "unknown field", headers: fromPage(), body: `{"users": 5, "ramp": 1}`, want: 400, wantErr: "unknown field"},
		{name: "not JSON", headers: fromPage(), body: `users=5`, want: 400},
		{name: "bad by", headers: fromPage(), body: `{"users": 5, "by": "plan"}`, want: 400, wantErr: "by:"},
		{name: "DNS rebinding: another name for the loopback", host: "evil.example:8089",
			headers: fromPage("Origin", "http://evil.example:8089"), want: 421},

		{name: "token: none sent", opts: Options{Token: "s3cret-token"}, headers: fromPage(), want: 401},
		{name: "token: wrong", opts: Options{Token: "s3cret-token"}, headers: fromPage("Authorization", "Bearer nope"), want: 401},
		{name: "token: not Bearer", opts: Options{Token: "s3cret-token"}, headers: fromPage("Authorization", "Basic s3cret-token"), want: 401},
		{name: "token: right", opts: Options{Token: "s3cret-token"}, headers: fromPage("Authorization", "Bearer s3cret-token"), want: 409, wantErr: notStarted},
		{name: "token: right, cross-site", opts: Options{Token: "s3cret-token"}, headers: fromPage("Authorization", "Bearer s3cret-token", "Origin", "http://evil.example"), want: 403},
		{name: "non-loopback bind, token, any Host", opts: Options{Addr: "0.0.0.0:8089", Token: "s3cret-token"}, host: "stampede.internal:8089",
			headers: fromPage("Authorization", "Bearer s3cret-token", "Origin", "http://stampede.internal:8089"), want: 409, wantErr: notStarted},
		{name: "non-loopback bind, no token", opts: Options{Addr: "0.0.0.0:8089", Token: "s3cret-token"}, host: "stampede.internal:8089",
			headers: fromPage("Origin", "http://stampede.internal:8089"), want: 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts
			if o.Addr == "none" {
				o.Addr = ""
			} else {
				o.Control = runner.NewControl()
			}
			s := newServer(o)
			w := httptest.NewRecorder()
			s.ServeHTTP(w, tc.request())
			if w.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.want, w.Body.String())
			}
			if tc.wantErr != "" && !strings.Contains(w.Body.String(), tc.wantErr) {
				t.Errorf("body %s lacks %q", w.Body.String(), tc.wantErr)
			}
			if w.Code == 401 && w.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if w.Code >= 400 {
				var e struct{ Error string }
				if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
					t.Errorf("refusal is not {\"error\": ...}: %s", w.Body.String())
				}
			}
		})
	}
}

// TestPageHeaders: the page cannot be framed, runs only its own script,
// and refuses a Host that is not the loopback's when bound to it.
func TestPageHeaders(t *testing.T) {
	s := newServer(Options{})
	for _, path := range []string{"/", "/api/state", "/assets/live.js"} {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest("GET", "http://127.0.0.1:8089"+path, nil))
		if w.Code != 200 {
			t.Fatalf("%s: %d %s", path, w.Code, w.Body.String())
		}
		h := w.Header()
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		if h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: headers %v", path, h)
		}
		if h.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s: CORS allowed", path)
		}
	}
	for _, host := range []string{"evil.example:8089", "127.0.0.1.nip.io:8089"} {
		r := httptest.NewRequest("GET", "http://127.0.0.1:8089/api/state", nil)
		r.Host = host
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code != http.StatusMisdirectedRequest {
			t.Errorf("Host %s: %d, want 421", host, w.Code)
		}
	}
	for _, host := range []string{"localhost:8089", "[::1]:8089", "127.0.0.1:8089"} {
		r := httptest.NewRequest("GET", "http://127.0.0.1:8089/api/state", nil)
		r.Host = host
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code != 200 {
			t.Errorf("Host %s: %d, want 200", host, w.Code)
		}
	}
	// The report is there once the run is over only.
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest("GET", "http://127.0.0.1:8089/report.html", nil))
	if w.Code != 404 {
		t.Errorf("report.html before the end: %d", w.Code)
	}
}

// TestMetricsMounted: Options.Metrics is served at /metrics, and only then.
func TestMetricsMounted(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("stampede_requests_total 3\n")) })
	for _, tc := range []struct {
		h    http.Handler
		want int
	}{{h, 200}, {nil, 404}} {
		s := newServer(Options{Metrics: tc.h})
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest("GET", "http://127.0.0.1:8089/metrics", nil))
		if w.Code != tc.want {
			t.Errorf("metrics handler %v: %d, want %d", tc.h != nil, w.Code, tc.want)
		}
	}
}
