package har

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// Small served applications, each with one framework's way of handing out
// tokens and checking them as the framework does: a fresh instance has
// fresh secrets, so a scenario that sends a recorded token is refused.
// The accounts are alice (recorded) and bob (the users file of a check).

var appUsers = map[string]string{"alice@example.test": "pw-Alice-1!", "bob@example.test": "pw-Bob-2!"}

func token(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

func uuid() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// sessions is a server-side session store keyed by a cookie.
type sessions struct {
	mu   sync.Mutex
	data map[string]map[string]string
}

func (s *sessions) get(r *http.Request, cookie string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, err := r.Cookie(cookie); err == nil {
		if d := s.data[c.Value]; d != nil {
			return d
		}
	}
	return nil
}

// start makes a new session and sets its cookie.
func (s *sessions) start(w http.ResponseWriter, cookie string, d map[string]string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.data == nil {
		s.data = map[string]map[string]string{}
	}
	id := token(32)
	s.data[id] = d
	http.SetCookie(w, &http.Cookie{Name: cookie, Value: id, Path: "/", HttpOnly: true})
	return id
}

func (s *sessions) set(d map[string]string, k, v string) {
	s.mu.Lock()
	d[k] = v
	s.mu.Unlock()
}

func (s *sessions) val(d map[string]string, k string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return d[k]
}

func page(w http.ResponseWriter, status int, title, body string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!DOCTYPE html>\n<html><head><title>%s</title>%s</head><body>%s</body></html>\n", title, "", body)
}

func pageHead(w http.ResponseWriter, status int, title, head, body string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!DOCTYPE html>\n<html><head><title>%s</title>\n%s\n</head><body>%s</body></html>\n", title, head, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// djangoApp: the csrftoken cookie holds a secret, forms carry it masked
// (a new mask each render), the X-CSRFToken header carries the cookie's
// value as the page's script read it; the login rotates the secret.
func djangoApp() http.Handler {
	const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	mask := func(secret string) string {
		m := make([]byte, 32)
		_, _ = rand.Read(m)
		out := make([]byte, 64)
		for i := range 32 {
			m[i] = chars[int(m[i])%len(chars)]
			out[i] = m[i]
			out[32+i] = chars[(strings.IndexByte(chars, secret[i])+strings.IndexByte(chars, m[i]))%len(chars)]
		}
		return string(out)
	}
	unmask := func(tok string) string {
		if len(tok) != 64 {
			return tok
		}
		out := make([]byte, 32)
		for i := range 32 {
			out[i] = chars[(strings.IndexByte(chars, tok[32+i])-strings.IndexByte(chars, tok[i])+len(chars))%len(chars)]
		}
		return string(out)
	}
	newSecret := func() string {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		for i := range b {
			b[i] = chars[int(b[i])%len(chars)]
		}
		return string(b)
	}
	var ss sessions
	forbidden := func(w http.ResponseWriter) {
		page(w, 403, "403 Forbidden", `<h1>Forbidden <span>(403)</span></h1><p>CSRF verification failed. Request aborted.</p>`)
	}
	csrfOK := func(r *http.Request) bool {
		c, err := r.Cookie("csrftoken")
		if err != nil || len(c.Value) != 32 {
			return false
		}
		tok := r.PostFormValue("csrfmiddlewaretoken")
		if tok == "" {
			tok = r.Header.Get("X-CSRFToken")
		}
		return tok != "" && unmask(tok) == c.Value
	}
	secretOf := func(w http.ResponseWriter, r *http.Request) string {
		if c, err := r.Cookie("csrftoken"); err == nil && len(c.Value) == 32 {
			return c.Value
		}
		s := newSecret()
		http.SetCookie(w, &http.Cookie{Name: "csrftoken", Value: s, Path: "/", SameSite: http.SameSiteLaxMode})
		return s
	}
	loginForm := func(w http.ResponseWriter, r *http.Request, errText string) {
		s := secretOf(w, r)
		page(w, 200, "Sign in", errText+`<form method="post" action="/accounts/login/"><input type="hidden" name="csrfmiddlewaretoken" value="`+mask(s)+`">
<input type="text" name="login"><input type="password" name="password"><input type="hidden" name="next" value="/"><button>Sign in</button></form>`)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /accounts/login/", func(w http.ResponseWriter, r *http.Request) { loginForm(w, r, "") })
	mux.HandleFunc("POST /accounts/login/", func(w http.ResponseWriter, r *http.Request) {
		if !csrfOK(r) {
			forbidden(w)
			return
		}
		if appUsers[r.PostFormValue("login")] != r.PostFormValue("password") || r.PostFormValue("password") == "" {
			loginForm(w, r, `<ul class="errorlist nonfield"><li>The e-mail address and/or password you specified are not correct.</li></ul>`)
			return
		}
		ss.start(w, "sessionid", map[string]string{"user": r.PostFormValue("login")})
		http.SetCookie(w, &http.Cookie{Name: "csrftoken", Value: newSecret(), Path: "/", SameSite: http.SameSiteLaxMode})
		http.Redirect(w, r, "/", http.StatusFound)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		if ss.get(r, "sessionid") == nil {
			http.Redirect(w, r, "/accounts/login/?next=/", http.StatusFound)
			return
		}
		page(w, 200, "Items", `<h1>Items</h1><a href="/items/4711/">4711</a> <script>fetch("/api/items/", {method: "POST", headers: {"X-CSRFToken": getCookie("csrftoken")}})</script>`)
	})
	mux.HandleFunc("POST /api/items/", func(w http.ResponseWriter, r *http.Request) {
		if ss.get(r, "sessionid") == nil {
			writeJSON(w, 403, map[string]string{"detail": "Authentication credentials were not provided."})
			return
		}
		if !csrfOK(r) {
			forbidden(w)
			return
		}
		writeJSON(w, 201, map[string]any{"id": 4712})
	})
	return mux
}

// railsApp: the session holds the CSRF secret; the csrf-token meta tag and
// each form's authenticity_token carry it masked (base64 of a one-time
// pad and the secret under it), a new mask each render; a bad token is
// 422 InvalidAuthenticityToken; the login resets the session.
func railsApp() http.Handler {
	var ss sessions
	maskR := func(secret string) string {
		s := []byte(secret)
		pad := make([]byte, len(s))
		_, _ = rand.Read(pad)
		out := append([]byte(nil), pad...)
		for i := range s {
			out = append(out, s[i]^pad[i])
		}
		return base64.StdEncoding.EncodeToString(out)
	}
	unmaskR := func(tok string) string {
		b, err := base64.StdEncoding.DecodeString(tok)
		if err != nil || len(b)%2 != 0 {
			return ""
		}
		n := len(b) / 2
		out := make([]byte, n)
		for i := range n {
			out[i] = b[i] ^ b[n+i]
		}
		return string(out)
	}
	sess := func(w http.ResponseWriter, r *http.Request) map[string]string {
		if d := ss.get(r, "_app_session"); d != nil {
			return d
		}
		d := map[string]string{"csrf": token(32)}
		ss.start(w, "_app_session", d)
		return d
	}
	rejected := func(w http.ResponseWriter) {
		page(w, 422, "The change you wanted was rejected (422)", `<div class="dialog"><h1>The change you wanted was rejected.</h1><p>Maybe you tried to change something you didn't have access to.</p></div>`)
	}
	meta := func(d map[string]string) string {
		return `<meta name="csrf-param" content="authenticity_token" />` + "\n" + `<meta name="csrf-token" content="` + maskR(ss.val(d, "csrf")) + `" />`
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/sign_in", func(w http.ResponseWriter, r *http.Request) {
		d := sess(w, r)
		pageHead(w, 200, "Log in", meta(d), `<form class="new_user" id="new_user" action="/users/sign_in" accept-charset="UTF-8" method="post"><input type="hidden" name="authenticity_token" value="`+
			html.EscapeString(maskR(ss.val(d, "csrf")))+`" autocomplete="off" /><input type="email" name="user[email]" /><input type="password" name="user[password]" /><input type="submit" name="commit" value="Log in" /></form>`)
	})
	mux.HandleFunc("POST /users/sign_in", func(w http.ResponseWriter, r *http.Request) {
		d := ss.get(r, "_app_session")
		if d == nil || unmaskR(r.PostFormValue("authenticity_token")) != ss.val(d, "csrf") {
			rejected(w)
			return
		}
		email := r.PostFormValue("user[email]")
		if appUsers[email] != r.PostFormValue("user[password]") || email == "" {
			page(w, 422, "Log in", `<div class="alert">Invalid Email or password.</div><form action="/users/sign_in" method="post"><input type="password" name="user[password]"></form>`)
			return
		}
		ss.start(w, "_app_session", map[string]string{"csrf": token(32), "user": email})
		http.Redirect(w, r, "/", http.StatusFound)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		d := ss.get(r, "_app_session")
		if d == nil || ss.val(d, "user") == "" {
			http.Redirect(w, r, "/users/sign_in", http.StatusFound)
			return
		}
		pageHead(w, 200, "Todos", meta(d), `<ul><li><a href="/todos/1">Buy milk</a></li></ul>`)
	})
	mux.HandleFunc("PATCH /todos/{id}", func(w http.ResponseWriter, r *http.Request) {
		d := ss.get(r, "_app_session")
		if d == nil || ss.val(d, "user") == "" || unmaskR(r.Header.Get("X-CSRF-Token")) != ss.val(d, "csrf") {
			rejected(w)
			return
		}
		writeJSON(w, 200, map[string]any{"id": r.PathValue("id"), "done": true})
	})
	return mux
}

// laravelApp: the session's token is in the csrf-token meta tag and each
// form's _token; the XSRF-TOKEN cookie holds it encrypted (base64 JSON,
// URL-encoded in the cookie), which axios sends back, URL-decoded, in
// X-XSRF-TOKEN; X-CSRF-TOKEN takes the plain token. A bad token is 419.
func laravelApp() http.Handler {
	var ss sessions
	key := token(16)
	encrypt := func(tok string) string {
		b, _ := json.Marshal(map[string]string{"iv": token(16), "value": tok, "mac": key})
		return base64.StdEncoding.EncodeToString(b)
	}
	decrypt := func(s string) string {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return ""
		}
		var v map[string]string
		if json.Unmarshal(b, &v) != nil || v["mac"] != key {
			return ""
		}
		return v["value"]
	}
	sess := func(w http.ResponseWriter, r *http.Request) map[string]string {
		d := ss.get(r, "laravel_session")
		if d == nil {
			d = map[string]string{"token": token(40)}
			ss.start(w, "laravel_session", d)
		}
		w.Header().Add("Set-Cookie", "XSRF-TOKEN="+url.QueryEscape(encrypt(ss.val(d, "token")))+"; Path=/; SameSite=Lax")
		return d
	}
	expired := func(w http.ResponseWriter) { page(w, 419, "Page Expired", `<div class="message">Page Expired</div>`) }
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		d := sess(w, r)
		t := ss.val(d, "token")
		pageHead(w, 200, "Login", `<meta name="csrf-token" content="`+t+`">`, `<form method="POST" action="/login"><input type="hidden" name="_token" value="`+t+`"><input type="email" name="email"><input type="password" name="password"><button type="submit">Log in</button></form>`)
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		d := ss.get(r, "laravel_session")
		if d == nil || r.PostFormValue("_token") != ss.val(d, "token") {
			expired(w)
			return
		}
		if appUsers[r.PostFormValue("email")] != r.PostFormValue("password") {
			http.Redirect(w, r, "/login", http.StatusFound)
			return
		}
		nd := map[string]string{"token": ss.val(d, "token"), "user": r.PostFormValue("email")}
		ss.start(w, "laravel_session", nd)
		http.Redirect(w, r, "/dashboard", http.StatusFound)
	})
	mux.HandleFunc("GET /dashboard", func(w http.ResponseWriter, r *http.Request) {
		d := ss.get(r, "laravel_session")
		if d == nil || ss.val(d, "user") == "" {
			http.Redirect(w, r, "/login", http.StatusFound)
			return
		}
		w.Header().Add("Set-Cookie", "XSRF-TOKEN="+url.QueryEscape(encrypt(ss.val(d, "token")))+"; Path=/; SameSite=Lax")
		pageHead(w, 200, "Dashboard", `<meta name="csrf-token" content="`+ss.val(d, "token")+`">`, `<div id="app"></div>`)
	})
	mux.HandleFunc("POST /api/notes", func(w http.ResponseWriter, r *http.Request) {
		d := ss.get(r, "laravel_session")
		t := r.Header.Get("X-CSRF-TOKEN")
		if t == "" {
			t = decrypt(r.Header.Get("X-XSRF-TOKEN"))
		}
		if d == nil || ss.val(d, "user") == "" || t != ss.val(d, "token") {
			writeJSON(w, 419, map[string]string{"message": "CSRF token mismatch."})
			return
		}
		writeJSON(w, 201, map[string]any{"id": 9})
	})
	return mux
}

// aspnetApp: WebForms' __VIEWSTATE and __EVENTVALIDATION and MVC's
// anti-forgery pair: the __RequestVerificationToken cookie and the form's
// field of the same name, checked together.
func aspnetApp() http.Handler {
	var ss sessions
	mux := http.NewServeMux()
	mux.HandleFunc("GET /Account/Login", func(w http.ResponseWriter, r *http.Request) {
		d := ss.get(r, "ASP.NET_SessionId")
		if d == nil {
			d = map[string]string{}
			ss.start(w, "ASP.NET_SessionId", d)
		}
		cookieTok, formTok := token(24), token(24)
		vs := base64.StdEncoding.EncodeToString([]byte("/wEPDwUKLTI2NjY4ODQ3NQ9kFgJmD2QWAgIDD2QWAgIBDw8WAh4EVGV4dAUFTG9naW5kZGQ=" + token(20)))
		ev := base64.StdEncoding.EncodeToString([]byte("/wEdAASm" + token(24)))
		ss.set(d, "vs", vs)
		ss.set(d, "ev", ev)
		ss.set(d, "pair", cookieTok+"|"+formTok)
		http.SetCookie(w, &http.Cookie{Name: "__RequestVerificationToken", Value: cookieTok, Path: "/", HttpOnly: true})
		page(w, 200, "Log in", `<form method="post" action="./Login" id="form1">
<input type="hidden" name="__VIEWSTATE" id="__VIEWSTATE" value="`+vs+`" />
<input type="hidden" name="__VIEWSTATEGENERATOR" id="__VIEWSTATEGENERATOR" value="C2EE9ABB" />
<input type="hidden" name="__EVENTVALIDATION" id="__EVENTVALIDATION" value="`+ev+`" />
<input name="__RequestVerificationToken" type="hidden" value="`+formTok+`" />
<input name="UserName" type="text" id="UserName" /><input name="Password" type="password" id="Password" />
<input type="submit" name="LoginButton" value="Log in" id="LoginButton" /></form>`)
	})
	mux.HandleFunc("POST /Account/Login", func(w http.ResponseWriter, r *http.Request) {
		d := ss.get(r, "ASP.NET_SessionId")
		c, err := r.Cookie("__RequestVerificationToken")
		switch {
		case d == nil || err != nil || c.Value+"|"+r.PostFormValue("__RequestVerificationToken") != ss.val(d, "pair"):
			page(w, 500, "The anti-forgery token could not be decrypted.", `<h2><i>The anti-forgery token could not be decrypted.</i></h2>`)
			return
		case r.PostFormValue("__VIEWSTATE") != ss.val(d, "vs") || r.PostFormValue("__EVENTVALIDATION") != ss.val(d, "ev"):
			page(w, 500, "Validation of viewstate MAC failed.", `<h2><i>Validation of viewstate MAC failed.</i></h2>`)
			return
		}
		if appUsers[r.PostFormValue("UserName")] != r.PostFormValue("Password") {
			page(w, 200, "Log in", `<span class="field-validation-error">Invalid login attempt.</span><form method="post"><input name="Password" type="password"></form>`)
			return
		}
		ss.start(w, ".ASPXAUTH", map[string]string{"user": r.PostFormValue("UserName")})
		http.Redirect(w, r, "/Home", http.StatusFound)
	})
	mux.HandleFunc("GET /Home", func(w http.ResponseWriter, r *http.Request) {
		if ss.get(r, ".ASPXAUTH") == nil {
			http.Redirect(w, r, "/Account/Login?ReturnUrl=%2fHome", http.StatusFound)
			return
		}
		page(w, 200, "Home", `<h1>Welcome</h1>`)
	})
	return mux
}

// wordpressApp: wp-login.php's test cookie; a _wpnonce hidden input in the
// editor's form and the REST nonce in a script variable (X-WP-Nonce), each
// tied to the session.
func wordpressApp() http.Handler {
	var ss sessions
	mux := http.NewServeMux()
	mux.HandleFunc("GET /wp-login.php", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "wordpress_test_cookie", Value: "WP%20Cookie%20check", Path: "/"})
		page(w, 200, "Log In", `<form name="loginform" id="loginform" action="/wp-login.php" method="post"><input type="text" name="log" id="user_login"><input type="password" name="pwd" id="user_pass"><input type="submit" name="wp-submit" id="wp-submit" value="Log In"><input type="hidden" name="redirect_to" value="/wp-admin/"><input type="hidden" name="testcookie" value="1"></form>`)
	})
	mux.HandleFunc("POST /wp-login.php", func(w http.ResponseWriter, r *http.Request) {
		if _, err := r.Cookie("wordpress_test_cookie"); err != nil {
			page(w, 200, "Log In", `<div id="login_error">Cookies are blocked or not supported by your browser.</div><form><input type="password" name="pwd"></form>`)
			return
		}
		if appUsers[r.PostFormValue("log")] != r.PostFormValue("pwd") {
			page(w, 200, "Log In", `<div id="login_error"><strong>Error:</strong> The password you entered is incorrect.</div><form><input type="password" name="pwd"></form>`)
			return
		}
		ss.start(w, "wordpress_logged_in_5c1a", map[string]string{"user": r.PostFormValue("log"), "nonce": token(10), "rest": token(10)})
		http.Redirect(w, r, "/wp-admin/", http.StatusFound)
	})
	auth := func(w http.ResponseWriter, r *http.Request) map[string]string {
		d := ss.get(r, "wordpress_logged_in_5c1a")
		if d == nil {
			http.Redirect(w, r, "/wp-login.php?redirect_to=%2Fwp-admin%2F&reauth=1", http.StatusFound)
		}
		return d
	}
	mux.HandleFunc("GET /wp-admin/{$}", func(w http.ResponseWriter, r *http.Request) {
		if auth(w, r) != nil {
			page(w, 200, "Dashboard", `<a href="post-new.php">Add New</a>`)
		}
	})
	mux.HandleFunc("GET /wp-admin/post-new.php", func(w http.ResponseWriter, r *http.Request) {
		d := auth(w, r)
		if d == nil {
			return
		}
		pageHead(w, 200, "Add New Post", `<script id="wp-api-request-js-extra">
var wpApiSettings = {"root":"http:\/\/127.0.0.1\/wp-json\/","nonce":"`+ss.val(d, "rest")+`","versionString":"wp\/v2\/"};
</script>`, `<form name="post" action="post.php" method="post" id="post"><input type="hidden" id="_wpnonce" name="_wpnonce" value="`+ss.val(d, "nonce")+`" /><input type="hidden" name="_wp_http_referer" value="/wp-admin/post-new.php" /><input type="hidden" id="hiddenaction" name="action" value="editpost" /><input type="text" name="post_title" id="title" value="" /><input type="hidden" id="post_ID" name="post_ID" value="" /></form>`)
	})
	mux.HandleFunc("POST /wp-json/wp/v2/posts", func(w http.ResponseWriter, r *http.Request) {
		d := ss.get(r, "wordpress_logged_in_5c1a")
		if d == nil || r.Header.Get("X-WP-Nonce") != ss.val(d, "rest") {
			writeJSON(w, 403, map[string]any{"code": "rest_cookie_invalid_nonce", "message": "Cookie check failed", "data": map[string]int{"status": 403}})
			return
		}
		writeJSON(w, 201, map[string]any{"id": 55, "status": "auto-draft"})
	})
	mux.HandleFunc("POST /wp-admin/post.php", func(w http.ResponseWriter, r *http.Request) {
		d := auth(w, r)
		if d == nil {
			return
		}
		if r.PostFormValue("_wpnonce") != ss.val(d, "nonce") {
			page(w, 403, "WordPress &rsaquo; Error", `<div class="wp-die-message">The link you followed has expired.</div>`)
			return
		}
		http.Redirect(w, r, "/wp-admin/post.php?post="+r.PostFormValue("post_ID")+"&action=edit", http.StatusFound)
	})
	mux.HandleFunc("GET /wp-admin/post.php", func(w http.ResponseWriter, r *http.Request) {
		if auth(w, r) != nil {
			page(w, 200, "Edit Post", `<h1>Edit Post</h1>`)
		}
	})
	return mux
}

// springApp: Spring Security's synchronizer token in the session: the
// login form's _csrf, then (a new token after the login) the _csrf meta
// tag that the page's script sends in X-CSRF-TOKEN.
func springApp() http.Handler {
	var ss sessions
	sess := func(w http.ResponseWriter, r *http.Request) map[string]string {
		if d := ss.get(r, "JSESSIONID"); d != nil {
			return d
		}
		d := map[string]string{"csrf": uuid()}
		ss.start(w, "JSESSIONID", d)
		return d
	}
	forbidden := func(w http.ResponseWriter) {
		page(w, 403, "Error", `<h1>Whitelabel Error Page</h1><div>There was an unexpected error (type=Forbidden, status=403).</div><div>Invalid CSRF Token 'x' was found on the request parameter '_csrf' or header 'X-CSRF-TOKEN'.</div>`)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		d := sess(w, r)
		page(w, 200, "Please sign in", `<form class="form-signin" method="post" action="/login"><input type="text" id="username" name="username"><input type="password" id="password" name="password"><input name="_csrf" type="hidden" value="`+ss.val(d, "csrf")+`" /><button type="submit">Sign in</button></form>`)
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		d := ss.get(r, "JSESSIONID")
		if d == nil || r.PostFormValue("_csrf") != ss.val(d, "csrf") {
			forbidden(w)
			return
		}
		if appUsers[r.PostFormValue("username")] != r.PostFormValue("password") {
			http.Redirect(w, r, "/login?error", http.StatusFound)
			return
		}
		ss.start(w, "JSESSIONID", map[string]string{"csrf": uuid(), "user": r.PostFormValue("username")})
		http.Redirect(w, r, "/", http.StatusFound)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		d := ss.get(r, "JSESSIONID")
		if d == nil || ss.val(d, "user") == "" {
			http.Redirect(w, r, "/login", http.StatusFound)
			return
		}
		pageHead(w, 200, "Todos", `<meta name="_csrf" content="`+ss.val(d, "csrf")+`"/>`+"\n"+`<meta name="_csrf_header" content="X-CSRF-TOKEN"/>`, `<div id="todos"></div>`)
	})
	mux.HandleFunc("POST /api/todos", func(w http.ResponseWriter, r *http.Request) {
		d := ss.get(r, "JSESSIONID")
		if d == nil || ss.val(d, "user") == "" || r.Header.Get("X-CSRF-TOKEN") != ss.val(d, "csrf") {
			forbidden(w)
			return
		}
		writeJSON(w, 201, map[string]any{"id": 3})
	})
	return mux
}

// angularApp: a single-page app behind Spring's CookieCsrfTokenRepository:
// the XSRF-TOKEN cookie, which Angular's HttpClient copies into
// X-XSRF-TOKEN; the login answers with a new one.
func angularApp() http.Handler {
	var ss sessions
	xsrf := func(w http.ResponseWriter) {
		http.SetCookie(w, &http.Cookie{Name: "XSRF-TOKEN", Value: uuid(), Path: "/"})
	}
	ok := func(r *http.Request) bool {
		c, err := r.Cookie("XSRF-TOKEN")
		return err == nil && c.Value != "" && r.Header.Get("X-XSRF-TOKEN") == c.Value
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		xsrf(w)
		page(w, 200, "Shop", `<app-root></app-root><script src="/main.js"></script>`)
	})
	mux.HandleFunc("POST /api/login", func(w http.ResponseWriter, r *http.Request) {
		if !ok(r) {
			writeJSON(w, 403, map[string]string{"error": "Forbidden", "message": "Invalid CSRF token"})
			return
		}
		var c struct{ Username, Password string }
		_ = json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&c)
		if appUsers[c.Username] != c.Password {
			writeJSON(w, 401, map[string]string{"error": "Unauthorized"})
			return
		}
		ss.start(w, "SESSION", map[string]string{"user": c.Username})
		xsrf(w)
		writeJSON(w, 200, map[string]string{"name": c.Username})
	})
	mux.HandleFunc("GET /api/orders", func(w http.ResponseWriter, r *http.Request) {
		if ss.get(r, "SESSION") == nil {
			writeJSON(w, 401, map[string]string{"error": "Unauthorized"})
			return
		}
		writeJSON(w, 200, []map[string]any{{"id": 31, "total": 12.5}, {"id": 32, "total": 3}})
	})
	mux.HandleFunc("POST /api/orders/{id}/cancel", func(w http.ResponseWriter, r *http.Request) {
		if ss.get(r, "SESSION") == nil || !ok(r) {
			writeJSON(w, 403, map[string]string{"error": "Forbidden", "message": "Invalid CSRF token"})
			return
		}
		writeJSON(w, 200, map[string]string{"status": "cancelled"})
	})
	return mux
}

// bearerApp: a JSON API whose login returns a Bearer token.
func bearerApp() http.Handler {
	var mu sync.Mutex
	tokens := map[string]string{}
	user := func(r *http.Request) string {
		mu.Lock()
		defer mu.Unlock()
		return tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /app", func(w http.ResponseWriter, r *http.Request) {
		page(w, 200, "App", `<div id="root"></div>`)
	})
	mux.HandleFunc("POST /api/auth/login", func(w http.ResponseWriter, r *http.Request) {
		var c struct{ Email, Password string }
		_ = json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&c)
		if appUsers[c.Email] != c.Password || c.Email == "" {
			writeJSON(w, 401, map[string]string{"error": "invalid credentials"})
			return
		}
		t := "eyJhbGciOiJIUzI1NiJ9." + token(40)
		mu.Lock()
		tokens[t] = c.Email
		mu.Unlock()
		writeJSON(w, 200, map[string]any{"data": map[string]any{"token": t, "user": map[string]string{"email": c.Email}}})
	})
	mux.HandleFunc("GET /api/projects", func(w http.ResponseWriter, r *http.Request) {
		if user(r) == "" {
			writeJSON(w, 401, map[string]string{"error": "invalid token"})
			return
		}
		writeJSON(w, 200, []map[string]any{{"id": 17, "name": "Bridge"}, {"id": 18, "name": "Tunnel"}})
	})
	mux.HandleFunc("GET /api/projects/{id}/tasks", func(w http.ResponseWriter, r *http.Request) {
		if user(r) == "" {
			writeJSON(w, 401, map[string]string{"error": "invalid token"})
			return
		}
		writeJSON(w, 200, []map[string]any{{"id": 1, "title": "Survey"}})
	})
	return mux
}
