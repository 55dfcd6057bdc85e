package diagnose

import (
	"sort"
	"strings"
)

// The stack that was seen. Fixes and next steps name the settings and logs
// of the software the evidence shows — its framework, its app server, its
// proxy — never one framework's logger on another framework. The stack is
// read from the evidence: exception classes and stack frames, the servers'
// own lines, the signatures matched, the failure reasons' page texts.

// stackInfo is the software seen; empty fields are unknown.
type stackInfo struct {
	framework string // django, rails, flask, fastapi, express, spring, laravel, aspnet, go
	server    string // gunicorn, uwsgi, puma, passenger, php-fpm, node
	proxy     string // nginx, haproxy, envoy
}

// stackClues maps lower-case texts to what they reveal. The texts are the
// software's own: module paths in frames, exception namespaces, log
// headlines, signature id prefixes.
var stackClues = []struct {
	part, name string
	texts      []string
}{
	{"framework", "django", []string{"django.", "django/", "allauth", "csrfmiddlewaretoken", "internal server error: /", "django-", "axes-"}},
	{"framework", "rails", []string{"actioncontroller", "activerecord", "actionview", "actionpack", "activesupport", "railties", "processing by ", "rack-attack", "devise"}},
	{"framework", "flask", []string{"flask", "werkzeug"}},
	{"framework", "fastapi", []string{"fastapi", "starlette", "uvicorn"}},
	{"framework", "express", []string{"node_modules", "express", "node:internal", "pino", "knex", "sequelize", "prisma"}},
	{"framework", "spring", []string{"org.springframework", "hikaripool", "com.zaxxer.hikari"}},
	{"framework", "laravel", []string{"illuminate\\", "laravel"}},
	{"framework", "aspnet", []string{"microsoft.aspnetcore", "npgsql", "microsoft.data.sqlclient"}},
	{"framework", "go", []string{"goroutine ", "net/http", "pgxpool", "database/sql"}},
	{"server", "gunicorn", []string{"gunicorn", "booting worker", "worker timeout"}},
	{"server", "uwsgi", []string{"uwsgi", "[pid: ", "harakiri"}},
	{"server", "puma", []string{"puma"}},
	{"server", "passenger", []string{"passenger"}},
	{"server", "php-fpm", []string{"php-fpm", "pm.max_children"}},
	{"proxy", "nginx", []string{"nginx", "limiting requests", "upstream timed out", "upstream prematurely closed", "while connecting to upstream"}},
	{"proxy", "haproxy", []string{"haproxy"}},
	{"proxy", "envoy", []string{"envoy", "upstream connect error or disconnect/reset before headers"}},
}

// stack returns the software the evidence shows, read once.
func (c *ctx) stack() stackInfo {
	if c.stk != nil {
		return *c.stk
	}
	votes := map[string]map[string]int{"framework": {}, "server": {}, "proxy": {}}
	see := func(text string) {
		low := strings.ToLower(text)
		for _, cl := range stackClues {
			for _, t := range cl.texts {
				if strings.Contains(low, t) {
					votes[cl.part][cl.name]++
					break
				}
			}
		}
	}
	for i := range c.events {
		e := &c.events[i]
		if i >= 5000 {
			break // enough to tell
		}
		parts := []string{e.Source, e.Signature, e.Message, e.Exception}
		for j, f := range e.Stack {
			if j == 10 {
				break
			}
			parts = append(parts, f)
		}
		see(strings.Join(parts, "\n"))
	}
	for _, g := range c.groups {
		see(g.Reason)
	}
	best := func(part string) string {
		var names []string
		for n := range votes[part] {
			names = append(names, n)
		}
		sort.Slice(names, func(i, j int) bool {
			if votes[part][names[i]] != votes[part][names[j]] {
				return votes[part][names[i]] > votes[part][names[j]]
			}
			return names[i] < names[j]
		})
		if len(names) == 0 {
			return ""
		}
		return names[0]
	}
	s := stackInfo{framework: best("framework"), server: best("server"), proxy: best("proxy")}
	if s.server == "puma" && s.framework == "" {
		s.framework = "rails"
	}
	c.stk = &s
	return s
}

// errorLogAdvice says how to get an exception's traceback into the app's
// log on the stack seen.
func (s stackInfo) errorLogAdvice() string {
	switch s.framework {
	case "django":
		return "add a LOGGING handler writing django.request at ERROR with tracebacks to a file (with DEBUG=False Django sends them only to mail_admins) and tail it (--log app-errors=PATH)"
	case "rails":
		return "tail Rails' production log (log/production.log, or STDOUT under RAILS_LOG_TO_STDOUT), where each 500 is written with its exception class and backtrace (--log rails=PATH)"
	case "flask":
		return "log unhandled exceptions with their traceback (Flask's app.logger at ERROR, or a got_request_exception handler calling logger.exception) to a file and tail it (--log app=PATH)"
	case "fastapi":
		return "log unhandled exceptions with their traceback (uvicorn's error logger, or an exception handler calling logger.exception) and tail it (--log app=PATH)"
	case "express":
		return "log errors with their stack (an error-handling middleware logging err with pino/winston, err.stack included) and tail the app's log (--log app=PATH)"
	case "spring":
		return "log exceptions with their stack traces (logging.level.org.springframework.web=DEBUG, or an @ControllerAdvice that logs them) and tail the app's log (--log app=PATH)"
	case "laravel":
		return "tail storage/logs/laravel.log, where Laravel writes each exception with its stack trace (--log app=PATH)"
	case "aspnet":
		return "log unhandled exceptions (UseExceptionHandler with ILogger, Serilog's request logging) and tail the app's log (--log app=PATH)"
	case "go":
		return "log each handler error with its cause (and panics: net/http logs 'http: panic serving' to the server's ErrorLog) and tail that log (--log app=PATH)"
	}
	return "log each server error with its exception and stack trace in the app's log and tail it (--log app=PATH)"
}

// serverTimeAdvice says how to log the app server's own request time on
// the stack seen.
func (s stackInfo) serverTimeAdvice() string {
	switch {
	case s.proxy == "nginx":
		return "log nginx's $request_time and $upstream_response_time in its access log and tail it (--log access=PATH): client time minus server time is the queue before the app"
	case s.server == "gunicorn":
		return "log gunicorn's own request time (access_log_format ending in %(L)s) and tail the access log (--log access=PATH): client time minus server time is the queue before the app"
	case s.server == "uwsgi":
		return "tail uWSGI's request log (its 'generated … in N msecs' lines; --log uwsgi=PATH): client time minus server time is the queue before the app"
	case s.framework == "rails":
		return "log each request's duration (lograge, or Rails' 'Completed 200 OK in N ms' lines) and tail it (--log rails=PATH): client time minus server time is the queue before the app"
	case s.framework == "express":
		return "log each request's responseTime (pino-http, morgan :response-time) and tail it (--log app=PATH): client time minus server time is the queue before the app"
	}
	return "log the app server's own request time (nginx $request_time, gunicorn %(L)s, uWSGI's request log, pino-http responseTime, lograge duration) and tail it (--log access=PATH): client time minus server time is the queue before the app"
}

// profileAdvice names a profiler for the stack seen.
func (s stackInfo) profileAdvice() string {
	switch s.framework {
	case "django", "flask", "fastapi":
		return "profile the app's workers during the load (py-spy top --pid / py-spy record)"
	case "rails":
		return "profile the Puma workers during the load (rbspy record --pid, or stackprof)"
	case "express":
		return "profile the Node process during the load (node --cpu-prof, or 0x / clinic flame)"
	case "spring":
		return "profile the JVM during the load (async-profiler, or JFR)"
	case "go":
		return "profile the server during the load (net/http/pprof: go tool pprof http://HOST/debug/pprof/profile)"
	}
	return "profile the app process during the load (py-spy, rbspy, async-profiler, pprof, perf) to see where a slow request spends its time"
}
