package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a running lab: its store seeded, its logs open. Serve it, or
// mount Handler in a test server; Close it when done.
type Server struct {
	cfg       Config
	logs      *logs
	store     *store
	sess      sessions
	rdb       *redis.Client
	lim       *limiter
	hasher    hasher
	dummyHash string
	workers   *workers
	m         *metrics
	handler   http.Handler

	closeOnce sync.Once
}

// New validates cfg, creates the log files, opens and seeds the store and
// connects to Redis when configured.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	l, err := openLogs(cfg.LogDir)
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	s := &Server{cfg: cfg, logs: l, hasher: newHasher(cfg), m: &metrics{}}
	fail := func(err error) (*Server, error) {
		s.Close()
		return nil, fmt.Errorf("lab: %w", err)
	}
	if s.store, err = openStore(ctx, cfg, l); err != nil {
		return fail(err)
	}
	if err := s.store.migrate(ctx, cfg.MissingIndex); err != nil {
		return fail(err)
	}
	if err := s.store.seed(ctx, cfg, s.hasher); err != nil {
		return fail(err)
	}
	// Unknown users are checked against a dummy hash so that timing does not
	// tell which accounts exist (Django's ModelBackend does the same).
	if s.dummyHash, err = s.hasher.make(randomString(20)); err != nil {
		return fail(err)
	}
	rates := map[string][]rate{}
	rates["login"], _ = parseRates(cfg.RateLimitLogin)
	rates["login_failed"], _ = parseRates(cfg.RateLimitLoginFailed)
	if cfg.Redis != "" {
		opt, err := redis.ParseURL(cfg.Redis)
		if err != nil {
			return fail(fmt.Errorf("redis: %w", err))
		}
		if cfg.RedisPoolSize > 0 {
			opt.PoolSize = cfg.RedisPoolSize
		}
		if cfg.RedisPoolTimeout > 0 {
			opt.PoolTimeout = cfg.RedisPoolTimeout
		}
		if cfg.RedisDialTimeout > 0 {
			opt.DialTimeout = cfg.RedisDialTimeout
		}
		if cfg.RedisReadTimeout > 0 {
			opt.ReadTimeout = cfg.RedisReadTimeout
		}
		if cfg.RedisWriteTimeout > 0 {
			opt.WriteTimeout = cfg.RedisWriteTimeout
		}
		opt.Dialer = redisDialer(opt.DialTimeout)
		s.rdb = redis.NewClient(opt)
		if err := s.rdb.Ping(ctx).Err(); err != nil {
			return fail(fmt.Errorf("redis: %w", err))
		}
		s.sess = redisSessions{rdb: s.rdb, ttl: cfg.SessionTTL}
		s.lim = &limiter{h: redisHistory{rdb: s.rdb}, rates: rates}
	} else {
		s.sess = newMemSessions(cfg.SessionTTL)
		s.lim = &limiter{h: newMemHistory(), rates: rates}
	}
	s.workers = newWorkers(cfg, l, s.m)
	s.logs.gunicornf(os.Getpid(), "INFO", "Starting stampede lab (%s store)", cfg.Store)
	s.workers.boot()
	s.handler = s.routes()
	return s, nil
}

// redisDialer dials Redis and reads what the server says at accept. Redis
// refuses a client beyond maxclients by writing "-ERR max number of clients
// reached" and closing; go-redis writes its HELLO first and then sees only
// the reset, losing Redis's text. Reading first keeps it, as redis-py does.
func redisDialer(timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	d := &net.Dialer{Timeout: timeout, KeepAlive: 5 * time.Minute}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		buf := make([]byte, 128)
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Millisecond))
		n, rerr := c.Read(buf)
		_ = c.SetReadDeadline(time.Time{})
		if n > 0 {
			_ = c.Close()
			msg := strings.TrimSpace(string(buf[:n]))
			return nil, errors.New(strings.TrimPrefix(msg, "-"))
		}
		var ne net.Error
		if rerr != nil && !(errors.As(rerr, &ne) && ne.Timeout()) {
			_ = c.Close()
			return nil, rerr
		}
		return c, nil
	}
}

// Config returns the effective configuration, defaults filled in.
func (s *Server) Config() Config { return s.cfg }

// Handler returns the lab's HTTP handler, logging and worker cap included.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves on ln until ctx ends, then shuts down gracefully (five
// seconds at most). It returns nil after a shutdown caused by ctx.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) }}
	s.logs.gunicornf(os.Getpid(), "INFO", "Listening at: http://%s (%d)", ln.Addr(), os.Getpid())
	s.logs.gunicornf(os.Getpid(), "INFO", "Using worker: sync")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("lab: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.logs.gunicornf(os.Getpid(), "INFO", "Handling signal: term")
	err := srv.Shutdown(sctx)
	<-errc
	if err != nil {
		return fmt.Errorf("lab: shutdown: %w", err)
	}
	return nil
}

// ReopenLogs opens the log files again by name, as gunicorn does on USR1:
// after a rotation that renamed them, new lines go to new files at the
// configured paths. It is safe to call while serving.
func (s *Server) ReopenLogs() error {
	if err := s.logs.reopen(); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	s.logs.gunicornf(os.Getpid(), "INFO", "Handling signal: usr1")
	return nil
}

// Close releases the store, Redis and the log files.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		if s.rdb != nil {
			_ = s.rdb.Close()
		}
		if s.store != nil {
			s.store.close()
		}
		s.logs.close()
	})
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /accounts/login/", s.loginGet)
	mux.HandleFunc("POST /accounts/login/", s.loginPost)
	mux.HandleFunc("GET /accounts/logout/", s.logoutGet)
	mux.HandleFunc("POST /accounts/logout/", s.logoutPost)
	mux.HandleFunc("GET /dashboard/", s.page(s.dashboard))
	mux.HandleFunc("GET /pekerjaan/", s.page(s.pekerjaan))
	mux.HandleFunc("GET /rincian-ahsp/{id}/", s.page(s.rincian))
	mux.HandleFunc("GET /rekap-rab/", s.page(s.rekap))
	mux.HandleFunc("GET /audit-trail/", s.page(s.audit))
	mux.HandleFunc("GET /export/", s.export)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /metrics", s.metricsPage)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/dashboard/", http.StatusFound)
	})
	var h http.Handler = mux
	h = s.recoverer(h)
	h = s.workers.wrap(h)
	return s.logRequests(h)
}

// reqState carries what the logs need to know about a request.
type reqState struct {
	user    string
	session bool
	dropped bool // the connection was closed unanswered
}

type stateKey struct{}

func state(r *http.Request) *reqState {
	if st, ok := r.Context().Value(stateKey{}).(*reqState); ok {
		return st
	}
	return &reqState{}
}

type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logRequests writes the access log and auth_debug.log lines of every request.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		st := &reqState{}
		r = r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
		_, errCookie := r.Cookie(csrfCookieName)
		csrfCookie := errCookie == nil
		csrfHdr := r.Header.Get(csrfHeader) != ""
		sw := &statusWriter{ResponseWriter: w}
		s.m.inFlight.Add(1)
		next.ServeHTTP(sw, r)
		s.m.inFlight.Add(-1)
		if st.dropped {
			return
		}
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		s.m.countStatus(sw.status)
		user := st.user
		if user == "" {
			user = "-"
		}
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		ref := r.Referer()
		if ref == "" {
			ref = "-"
		}
		ua := r.UserAgent()
		if ua == "" {
			ua = "-"
		}
		s.logs.access.write(fmt.Sprintf("%s - %s [%s] %q %d %d %q %q %.3f\n", host, user,
			start.Format("02/Jan/2006:15:04:05 -0700"), r.Method+" "+r.URL.RequestURI()+" "+r.Proto,
			sw.status, sw.bytes, ref, ua, time.Since(start).Seconds()))
		sess := "None"
		if st.session {
			sess = "True"
		}
		s.logs.auth.write(fmt.Sprintf("%s INFO auth_request method=%s path=%s status=%d user=%s csrf_cookie=%s csrf_header=%s session=%s\n",
			pyTime(time.Now()), r.Method, r.URL.Path, sw.status, user, pyBool(csrfCookie), pyBool(csrfHdr), sess))
	})
}

func pyBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// recoverer turns a handler panic into a 500, as Django's exception
// middleware does, and lets net/http's own logging stay quiet.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil && v != http.ErrAbortHandler {
				s.serverError(w, r, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// serverError answers 500 and writes Django's error-log entry with err's chain.
func (s *Server) serverError(w http.ResponseWriter, r *http.Request, err error) {
	pcs := make([]uintptr, 32)
	n := runtime.Callers(2, pcs)
	s.logs.internalError(r.URL.Path, err, pcs[:n])
	s.m.serverErrors.Add(1)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = w.Write([]byte("\n<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Server Error (500)</title>\n</head>\n<body>\n  <h1>Server Error (500)</h1><p></p>\n</body>\n</html>\n"))
}

// forbiddenCSRF answers Django's CSRF failure page and logs its warning.
func (s *Server) forbiddenCSRF(w http.ResponseWriter, r *http.Request, reason string) {
	s.logs.django("WARNING", "django.security.csrf", fmt.Sprintf("Forbidden (%s): %s", reason, r.URL.Path))
	s.m.csrfFailures.Add(1)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusForbidden)
	_, _ = fmt.Fprintf(w, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n  <meta http-equiv=\"content-type\" content=\"text/html; charset=utf-8\">\n  <meta name=\"robots\" content=\"NONE,NOARCHIVE\">\n  <title>403 Forbidden</title>\n</head>\n<body>\n<div id=\"summary\">\n  <h1>Forbidden <span>(403)</span></h1>\n  <p>CSRF verification failed. Request aborted.</p>\n</div>\n</body>\n</html>\n")
}

// clientIP returns the client's address as allauth's get_client_ip does:
// the peer address, or with trusted proxies the X-Forwarded-For entry that
// many hops from the right.
func (s *Server) clientIP(r *http.Request) string {
	if n := s.cfg.TrustedProxyCount; n > 0 {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			parts := strings.Split(xff, ",")
			if len(parts) >= n {
				if ip := strings.TrimSpace(parts[len(parts)-n]); net.ParseIP(ip) != nil {
					return ip
				}
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// csrfSecret returns the request's CSRF secret, setting the cookie when the
// request has none (as rendering {% csrf_token %} does).
func (s *Server) csrfSecret(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookieName); err == nil && len(c.Value) == csrfSecretLen && validCSRFChars(c.Value) {
		return c.Value
	}
	return s.setCSRFCookie(w)
}

func (s *Server) setCSRFCookie(w http.ResponseWriter) string {
	secret := randomString(csrfSecretLen)
	http.SetCookie(w, &http.Cookie{Name: csrfCookieName, Value: secret, Path: "/", MaxAge: 31449600,
		SameSite: http.SameSiteLaxMode, Secure: s.cfg.CSRFCookieSecure})
	return secret
}

const sessionCookieName = "sessionid"

// currentUser loads the request's session. A session store error is returned
// (and becomes a 500, as with Django's cache session backend).
func (s *Server) currentUser(r *http.Request) (*sessionData, error) {
	c, err := r.Cookie(sessionCookieName)
	if err != nil || c.Value == "" {
		return nil, nil
	}
	d, err := s.sess.get(r.Context(), c.Value)
	if err != nil {
		return nil, err
	}
	if d != nil {
		st := state(r)
		st.session, st.user = true, d.Username
	}
	return d, nil
}

// redirectToLogin answers like Django's login_required.
func redirectToLogin(w http.ResponseWriter, r *http.Request) {
	// Django quotes next with "/" kept safe: ?next=/dashboard/
	next := strings.ReplaceAll(url.QueryEscape(r.URL.RequestURI()), "%2F", "/")
	http.Redirect(w, r, "/accounts/login/?next="+next, http.StatusFound)
}

// safeNext keeps only same-site relative paths.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return ""
	}
	return next
}

type view struct {
	Title, CSRF, User, Login, Next string
	Errors                         []string
	Data                           any
}

func (s *Server) render(w http.ResponseWriter, status int, name string, v view) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = pages.ExecuteTemplate(w, name, v)
}

// Allauth's messages.
const (
	msgTooManyAttempts = "Too many failed login attempts. Try again later."
	msgMismatch        = "The username and/or password you specified are not correct."
	msgRequired        = "This field is required."
)

func (s *Server) loginGet(w http.ResponseWriter, r *http.Request) {
	secret := s.csrfSecret(w, r)
	s.render(w, http.StatusOK, "login", view{Title: "Sign In", CSRF: maskCSRF(secret), Next: safeNext(r.URL.Query().Get("next"))})
}

func (s *Server) loginForm(w http.ResponseWriter, r *http.Request, login string, errs ...string) {
	secret := s.csrfSecret(w, r)
	s.render(w, http.StatusOK, "login", view{Title: "Sign In", CSRF: maskCSRF(secret), Login: login,
		Next: safeNext(r.PostFormValue("next")), Errors: errs})
}

// rateLimited answers a throttled login: allauth's form error (200) or 429.
func (s *Server) rateLimited(w http.ResponseWriter, r *http.Request, action, login string) {
	s.m.rateLimited(action)
	if s.cfg.RateLimitResponse == http.StatusTooManyRequests {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte("<h1>429 Too Many Requests</h1><p>You have sent too many requests. Please try again later.</p>"))
		return
	}
	s.loginForm(w, r, login, msgTooManyAttempts)
}

func (s *Server) loginPost(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "Bad Request (400)", http.StatusBadRequest)
		return
	}
	if reason := checkCSRF(r); reason != "" {
		s.forbiddenCSRF(w, r, reason)
		return
	}
	login := strings.TrimSpace(r.PostFormValue("login"))
	password := r.PostFormValue("password")
	ip := s.clientIP(r)
	// allauth's rate_limit(action="login") on the view: every POST counts.
	if _, ok, err := s.lim.consume(ctx, "login", ip, ""); err != nil {
		s.m.logins("error")
		s.serverError(w, r, fmt.Errorf("login: %w", err))
		return
	} else if !ok {
		s.m.logins("ratelimited")
		s.rateLimited(w, r, "login", login)
		return
	}
	if login == "" || password == "" {
		s.m.logins("failure")
		s.loginForm(w, r, login, msgRequired)
		return
	}
	// pre_authenticate: login_failed is charged before the password is
	// checked, and rolled back only after a successful login.
	use, ok, err := s.lim.consume(ctx, "login_failed", ip, strings.ToLower(login))
	if err != nil {
		s.m.logins("error")
		s.serverError(w, r, fmt.Errorf("login: pre_authenticate: %w", err))
		return
	}
	if !ok {
		s.m.logins("ratelimited")
		s.rateLimited(w, r, "login_failed", login)
		return
	}
	user, err := s.authenticate(ctx, w, r, login, password)
	if err != nil {
		s.m.logins("error")
		s.serverError(w, r, fmt.Errorf("login: %w", err))
		return
	}
	if user == nil {
		s.m.logins("failure")
		s.loginForm(w, r, login, msgMismatch)
		return
	}
	if err := use.rollback(ctx); err != nil {
		s.m.logins("error")
		s.serverError(w, r, fmt.Errorf("login: %w", err))
		return
	}
	s.m.logins("success")
	next := safeNext(r.PostFormValue("next"))
	if next == "" {
		next = "/dashboard/"
	}
	http.Redirect(w, r, next, http.StatusFound)
}

// authenticate checks the password and logs the user in, holding one DB
// connection throughout as Django's request does: user lookup, password
// hash, hot row, last_login, session save. It returns nil, nil for wrong
// credentials.
func (s *Server) authenticate(ctx context.Context, w http.ResponseWriter, r *http.Request, login, password string) (*sessionData, error) {
	c, err := s.store.conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("authenticate: connect: %w", err)
	}
	defer c.release()
	var (
		id     int64
		hash   string
		active bool
	)
	err = c.queryRow(ctx, "SELECT id, password, is_active FROM auth_user WHERE username = ?", login).Scan(&id, &hash, &active)
	known := err == nil
	if err != nil && !errors.Is(err, errNoRows) {
		return nil, fmt.Errorf("authenticate: query auth_user: %w", err)
	}
	if !known {
		hash = s.dummyHash
	}
	start := time.Now()
	ok, err := verify(password, hash)
	s.m.hashed(time.Since(start))
	if err != nil {
		return nil, fmt.Errorf("authenticate: check_password: %w", err)
	}
	if !known || !ok || !active {
		return nil, nil
	}
	if s.cfg.HotRowHold > 0 {
		if err := c.holdHotRow(ctx, s.cfg.HotRowHold); err != nil {
			return nil, fmt.Errorf("authenticate: user_logged_in: %w", err)
		}
	}
	if err := c.exec(ctx, "UPDATE auth_user SET last_login = ? WHERE id = ?", time.Now().UnixMilli(), id); err != nil {
		return nil, fmt.Errorf("authenticate: update_last_login: %w", err)
	}
	// Rotate the session key (cycle_key) and the CSRF secret (rotate_token).
	if old, err := r.Cookie(sessionCookieName); err == nil && old.Value != "" {
		if err := s.sess.delete(ctx, old.Value); err != nil {
			return nil, fmt.Errorf("authenticate: cycle_key: %w", err)
		}
	}
	d := sessionData{UserID: id, Username: login}
	key, err := s.sess.create(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	s.m.sessionsCreated.Add(1)
	http.SetCookie(w, &http.Cookie{Name: sessionCookieName, Value: key, Path: "/", MaxAge: int(s.cfg.SessionTTL.Seconds()),
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: s.cfg.SessionCookieSecure})
	s.setCSRFCookie(w)
	st := state(r)
	st.user = login
	return &d, nil
}

func (s *Server) logoutGet(w http.ResponseWriter, r *http.Request) {
	u, err := s.currentUser(r)
	if err != nil {
		s.serverError(w, r, fmt.Errorf("logout: %w", err))
		return
	}
	if u == nil {
		http.Redirect(w, r, "/accounts/login/", http.StatusFound)
		return
	}
	s.render(w, http.StatusOK, "logout", view{Title: "Sign Out", CSRF: maskCSRF(s.csrfSecret(w, r)), User: u.Username})
}

func (s *Server) logoutPost(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "Bad Request (400)", http.StatusBadRequest)
		return
	}
	if reason := checkCSRF(r); reason != "" {
		s.forbiddenCSRF(w, r, reason)
		return
	}
	if c, err := r.Cookie(sessionCookieName); err == nil && c.Value != "" {
		if err := s.sess.delete(r.Context(), c.Value); err != nil {
			s.serverError(w, r, fmt.Errorf("logout: %w", err))
			return
		}
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookieName, Value: "", Path: "/", MaxAge: -1})
	http.Redirect(w, r, "/accounts/login/", http.StatusFound)
}
