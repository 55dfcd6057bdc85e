// Package testserver is a small target for stampede's own tests and
// benchmarks: a plain "ok" page, a Django-style login (hidden
// csrfmiddlewaretoken plus a csrftoken cookie, fields login/password, 302 on
// success, 200 with the form and an error list on failure), a cookie-protected
// dashboard, and a switch that stalls every request for a while.
package testserver

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"html"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server is the test target. Its zero value is not usable; call New.
type Server struct {
	// Password is the password every account accepts.
	Password string
	// SecureSession marks the session cookie Secure even over plain HTTP
	// (SESSION_COOKIE_SECURE behind a test's http://): browsers then drop
	// it and the login is forgotten on the next page.
	SecureSession bool

	mu       sync.Mutex
	sessions map[string]string // session id → user
	stallEnd atomic.Int64      // unix nanos until which requests stall

	// Counters of what the server saw, for tests.
	LoginOK, LoginFailed, Dashboards, Requests atomic.Int64
}

// New returns a server whose accounts all take password.
func New(password string) *Server {
	return &Server{Password: password, sessions: map[string]string{}}
}

// ForgetSessions drops every session, as an app that keeps sessions in
// memory does when it restarts: the next page of every logged-in user
// redirects to the login form.
func (s *Server) ForgetSessions() {
	s.mu.Lock()
	s.sessions = map[string]string{}
	s.mu.Unlock()
}

// Stall makes every request that arrives in the next d wait until d has passed.
func (s *Server) Stall(d time.Duration) { s.stallEnd.Store(time.Now().Add(d).UnixNano()) }

func (s *Server) waitStall() {
	if end := s.stallEnd.Load(); end > 0 {
		if d := time.Until(time.Unix(0, end)); d > 0 {
			time.Sleep(d)
		}
	}
}

func token() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ServeHTTP routes: / (ok), /accounts/login/, /dashboard/, /accounts/logout/.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.Requests.Add(1)
	s.waitStall()
	switch r.URL.Path {
	case "/accounts/login/":
		s.login(w, r)
	case "/dashboard/":
		s.dashboard(w, r)
	case "/accounts/logout/":
		if c, err := r.Cookie("sessionid"); err == nil {
			s.mu.Lock()
			delete(s.sessions, c.Value)
			s.mu.Unlock()
		}
		http.Redirect(w, r, "/accounts/login/", http.StatusFound)
	default:
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok"))
	}
}

func (s *Server) loginPage(w http.ResponseWriter, csrf string, errText string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	var errs string
	if errText != "" {
		errs = `<ul class="errorlist nonfield"><li>` + html.EscapeString(errText) + `</li></ul>`
	}
	fmt.Fprintf(w, `<!doctype html><html><head><title>Sign In</title></head><body>
<h1>Sign In</h1>
<form class="login" method="post" action="/accounts/login/">
<input type="hidden" name="csrfmiddlewaretoken" value="%s">
%s
<p><label for="id_login">Login:</label> <input type="text" name="login" id="id_login" required></p>
<p><label for="id_password">Password:</label> <input type="password" name="password" id="id_password" required></p>
<input type="hidden" name="next" value="/dashboard/">
<button type="submit">Sign In</button>
</form></body></html>`, csrf, errs)
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie("csrftoken")
	csrf := ""
	if err == nil {
		csrf = c.Value
	}
	if r.Method == http.MethodGet {
		if csrf == "" {
			csrf = token()
			http.SetCookie(w, &http.Cookie{Name: "csrftoken", Value: csrf, Path: "/", SameSite: http.SameSiteLaxMode})
		}
		s.loginPage(w, csrf, "")
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	if csrf == "" || r.PostForm.Get("csrfmiddlewaretoken") != csrf {
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`<h1>Forbidden <span>(403)</span></h1><p>CSRF verification failed. Request aborted.</p>`))
		return
	}
	user := r.PostForm.Get("login")
	if user == "" || r.PostForm.Get("password") != s.Password {
		s.LoginFailed.Add(1)
		s.loginPage(w, csrf, "The username and/or password you specified are not correct.")
		return
	}
	s.LoginOK.Add(1)
	sid := token()
	s.mu.Lock()
	s.sessions[sid] = user
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: "sessionid", Value: sid, Path: "/", HttpOnly: true, Secure: s.SecureSession})
	next := r.PostForm.Get("next")
	if !strings.HasPrefix(next, "/") {
		next = "/dashboard/"
	}
	http.Redirect(w, r, next, http.StatusFound)
}

func (s *Server) dashboard(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie("sessionid")
	var user string
	if err == nil {
		s.mu.Lock()
		user = s.sessions[c.Value]
		s.mu.Unlock()
	}
	if user == "" {
		http.Redirect(w, r, "/accounts/login/?next=/dashboard/", http.StatusFound)
		return
	}
	s.Dashboards.Add(1)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, `<!doctype html><html><body><h1>Dashboard</h1><p id="user">%s</p><a href="/accounts/logout/">Sign out</a></body></html>`, html.EscapeString(user))
}
