package diagnose

import (
	"strings"

	"github.com/stampede-load/stampede"
)

// Outcome classes of the anatomy: how a failed request ended, as a person
// would sort them.
const (
	Class5xx       = "5xx"
	Class4xx       = "4xx"
	Class429       = "429"
	ClassContent   = "content"   // a 2xx/3xx whose page was wrong: a soft failure
	ClassTransport = "transport" // no response: refused, reset, EOF
	ClassTimeout   = "timeout"   // the client gave up waiting
)

// The finding ids of DESIGN.md.
const (
	IDPoolWaitTimeout  = "db-pool-wait-timeout"
	IDConnLimit        = "db-connection-limit"
	IDLoginRateLimit   = "login-rate-limit"
	IDPasswordHashCPU  = "password-hash-cpu"
	IDCPUSaturation    = "cpu-saturation"
	IDLockContention   = "db-lock-contention"
	IDSlowQuery        = "slow-query"
	IDRedisConnLimit   = "redis-connection-limit"
	IDWorkerSaturation = "app-worker-saturation"
	IDCSRFFailure      = "csrf-failure"
	IDSessionLost      = "session-lost"
	IDTargetDown       = "target-down"
	IDGeneratorSat     = "load-generator-saturation"
	IDRedisUnavailable = "redis-unavailable"
	IDDBUnavailable    = "db-unavailable"
	IDUnexplained      = "unexplained-server-error"
	IDUnexplainedSlow  = "unexplained-slowness"
)

// statusOf returns the HTTP status a failure reason names: "HTTP 500",
// "CatchResponseError('login POST HTTP 500')",
// "HTTPError('500 Server Error: …')", "login server error: 500". It
// returns 0 when the reason names none.
func statusOf(reason string) int {
	if i := strings.Index(reason, "HTTP "); i >= 0 {
		if n := threeDigits(reason[i+5:]); n != 0 {
			return n
		}
	}
	// The first free-standing three-digit number from 400 to 599.
	for i := 0; i+3 <= len(reason); i++ {
		if i > 0 && isDigit(reason[i-1]) {
			continue
		}
		if n := threeDigits(reason[i:]); n >= 400 && n <= 599 {
			return n
		}
	}
	return 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func threeDigits(s string) int {
	if len(s) < 3 || !isDigit(s[0]) || !isDigit(s[1]) || !isDigit(s[2]) {
		return 0
	}
	if len(s) > 3 && isDigit(s[3]) {
		return 0
	}
	return int(s[0]-'0')*100 + int(s[1]-'0')*10 + int(s[2]-'0')
}

// containsAny reports whether s (lower case) contains one of the needles.
func containsAny(s string, needles []string) bool {
	for _, n := range needles {
		if strings.Contains(s, n) {
			return true
		}
	}
	return false
}

// Texts the server puts in a page or a 4xx body when it throttles logins
// (fault-signatures.md §4): allauth (English and Indonesian), django-axes,
// rack-attack, Laravel, allauth ≥65.13's built-in 429 page.
var throttleTexts = []string{
	"too many failed login attempts",
	"terlalu banyak percobaan masuk",
	"account locked: too many login attempts",
	"too many login attempts",
	"too many attempts",
	"too many requests",
	"you have sent too many requests",
	"retry later",
}

// Texts of Django's CSRF failure page and its log reasons (§7).
// Other frameworks' words: Rails (InvalidAuthenticityToken, "Can't
// verify CSRF token authenticity", its 422 page), Flask-WTF ("The CSRF
// token is missing.", "The CSRF tokens do not match."), Laravel ("CSRF
// token mismatch.", its 419 "Page Expired"), Express csurf ("invalid csrf
// token"), Spring Security ("Invalid CSRF Token"), ASP.NET Core
// (antiforgery).
var csrfTexts = []string{
	"csrf verification failed",
	"csrf cookie not set",
	"csrf token missing",
	"csrf token from",
	"csrf token incorrect",
	"csrf cookie has",
	"origin checking failed",
	"referer checking failed",
	"invalidauthenticitytoken",
	"can't verify csrf token authenticity",
	"the change you wanted was rejected",
	"the csrf token is missing",
	"the csrf tokens do not match",
	"the csrf session token is missing",
	"the csrf token has expired",
	"csrf token mismatch",
	"invalid csrf token",
	"ebadcsrftoken",
	"antiforgery token",
	"antiforgery cookie",
}

// Texts of a request sent back to the login page after a login (the
// engine's not_login_page and redirect checks).
var loginPageTexts = []string{
	"redirected to login",
	"redirected to the login",
	"login page returned",
	"login page shown",
	"login form returned",
	"bounced to login",
	"bounced to the login",
	"back to login",
	"back to the login",
	"session not honoured",
	"session not honored",
	"session lost",
	"session expired",
	"not logged in",
	"logged out",
}

// Texts of a failure that got no response at all.
var refusedTexts = []string{"connection refused", "errno 111", "no such host", "name or service not known", "failed to establish a new connection"}
var resetTexts = []string{"connection reset", "remotedisconnected", "remote end closed", "eof", "broken pipe", "connection aborted", "server closed the connection"}
var timeoutTexts = []string{"timeout", "timed out"}

// classify fills the derived fields of a failure group: its outcome class,
// its lower-case reason and, for a soft failure, the page's message.
func classify(g *group) {
	g.text = strings.ToLower(g.Reason)
	if g.Status == 0 {
		g.Status = statusOf(g.Reason)
	}
	out := g.Outcome
	if out == stampede.OK { // unknown: infer
		switch {
		case g.Status >= 400:
			out = stampede.FailStatus
		case containsAny(g.text, timeoutTexts) && !containsAny(g.text, throttleTexts):
			out = stampede.FailTimeout
		case containsAny(g.text, refusedTexts) || containsAny(g.text, resetTexts):
			out = stampede.FailTransport
		default:
			out = stampede.FailContent
		}
		g.Outcome = out
	}
	switch out {
	case stampede.FailStatus:
		switch {
		case g.Status == 429:
			g.class = Class429
		case g.Status >= 500:
			g.class = Class5xx
		case g.Status >= 400:
			g.class = Class4xx
		default:
			g.class = ClassContent
		}
	case stampede.FailContent:
		g.class = ClassContent
	case stampede.FailTransport:
		g.class = ClassTransport
	case stampede.FailTimeout:
		g.class = ClassTimeout
	}
	g.message = g.Reason
	for _, p := range []string{"login page returned: ", "redirected to login page: "} {
		if i := strings.Index(g.text, p); i >= 0 {
			g.message = strings.TrimRight(g.Reason[i+len(p):], "')\"")
		}
	}
	g.throttle = containsAny(g.text, throttleTexts) || g.Status == 429
	g.csrf = containsAny(g.text, csrfTexts)
	g.loginPage = containsAny(g.text, loginPageTexts)
	g.refused = containsAny(g.text, refusedTexts)
}

// isLoginName reports whether an endpoint name looks like the login form's.
func isLoginName(name string) bool {
	n := strings.ToLower(name)
	return containsAny(n, []string{"login", "signin", "sign-in", "sign_in", "log-in", "log_in"})
}

// evPattern maps log texts to finding ids. Texts come from the real
// software (fault-signatures.md); they are matched, lower-cased, against an
// event's message, exception and stack when the evidence parser left Class
// empty. Order matters: the first match wins.
var evPatterns = []struct {
	id    string
	texts []string
}{
	{IDPoolWaitTimeout, []string{"query_wait_timeout", "queuepool limit of size", "pooltimeout", "couldn't get a connection after",
		"connection is not available, request timed out", "could not obtain a connection from the pool", "no server connection available",
		"timeout exceeded when trying to connect", "timeout acquiring a connection", "connectionacquiretimeouterror",
		"timed out fetching a new connection from the connection pool", "the connection pool has been exhausted",
		"prior to obtaining a connection from the pool"}},
	{IDDBUnavailable, dbDownTexts},
	{IDConnLimit, []string{"too many clients already", "remaining connection slots are reserved", "no more connections allowed",
		"client connections exceeded", "too many connections for role", "too many connections for database"}},
	{IDRedisConnLimit, []string{"max number of clients reached", "too many connections", "no connection available.",
		"redis: connection pool timeout", "redis: connection pool exhausted"}},
	{IDRedisUnavailable, []string{"connecting to redis", "redis.exceptions.connectionerror", "redis.exceptions.timeouterror",
		"timeout reading from socket", "timeout connecting to server", "loading redis is loading", "redis is loading the dataset",
		"redis: read tcp", "redis: dial tcp", "redis: write tcp", "redis: i/o timeout", "redis: eof", "redis: connection reset"}},
	{IDLockContention, []string{"still waiting for", "deadlock detected", "due to lock timeout", "lock wait timeout", "lock_timeout"}},
	{IDSlowQuery, []string{"due to statement timeout", "closing because: query_timeout", "pooler error: query_timeout",
		" ms  statement: ", " ms  execute "}},
	{IDLoginRateLimit, []string{"too many failed login attempts", "terlalu banyak percobaan masuk", "axes: locking out",
		"account locked: too many login attempts", "429.html", "limiting requests, excess"}},
	{IDCSRFFailure, csrfTexts},
	{IDWorkerSaturation, []string{"worker timeout", "upstream timed out", "upstream prematurely closed", "resource temporarily unavailable",
		"listen queue of socket", "harakiri", "worker_connections are not enough", "was sent sigkill", "damn ! worker",
		"reached pm.max_children", "request queue full", "request queue is full", "request ran for longer than"}},
	{IDTargetDown, []string{"connect() failed (111", "oom-kill", "out of memory: killed process", "no live upstreams",
		"worker respawning too fast", "worker failed to boot", "app failed to load"}},
	{IDPasswordHashCPU, hashTexts},
	{IDGeneratorSat, []string{"cpu usage above 90%"}},
}

// classifyEvent returns the finding id an evidence event points at: the
// parser's Class when set, else the first matching pattern, else "".
//
// A Class the rules do not act on ("unexplained-server-error" for a bare
// "Internal Server Error: /path", "redis-unavailable") gives way to a
// pattern that matches the event's exception: the headline of a Django
// error says nothing, its traceback's last line says everything.
func classifyEvent(e *stampede.Evidence) string {
	if e.Class != "" && e.Class != IDUnexplained && ruleIDs[e.Class] {
		return e.Class
	}
	if id := matchEvent(e); id != "" {
		return id
	}
	return e.Class
}

// ruleIDs are the finding ids a rule acts on.
var ruleIDs = map[string]bool{
	IDPoolWaitTimeout: true, IDConnLimit: true, IDLoginRateLimit: true, IDPasswordHashCPU: true,
	IDCPUSaturation: true, IDLockContention: true, IDSlowQuery: true, IDRedisConnLimit: true,
	IDWorkerSaturation: true, IDCSRFFailure: true, IDSessionLost: true, IDTargetDown: true,
	IDGeneratorSat: true, IDRedisUnavailable: true, IDDBUnavailable: true,
}

func matchEvent(e *stampede.Evidence) string {
	text := strings.ToLower(e.Message + "\n" + e.Exception)
	for _, p := range evPatterns {
		if p.id == IDPasswordHashCPU {
			continue // hashing shows in stacks only, below
		}
		if containsAny(text, p.texts) {
			return p.id
		}
	}
	for _, f := range e.Stack {
		if containsAny(strings.ToLower(f), hashTexts) {
			return IDPasswordHashCPU
		}
	}
	return ""
}

// hashTexts are the frames of a password hash in a stack (py-spy, a
// traceback cut by a worker timeout).
var hashTexts = []string{"pbkdf2", "argon2", "bcrypt", "make_password", "check_password", "hashers.py"}

// isErrorEvent reports whether an unclassified event looks like a server
// error (the "Internal Server Error: /path" line, a traceback, an ERROR).
func isErrorEvent(e *stampede.Evidence) bool {
	switch strings.ToUpper(e.Level) {
	case "ERROR", "CRITICAL", "FATAL", "PANIC":
		return true
	}
	if e.Exception != "" || len(e.Stack) > 0 {
		return true
	}
	m := strings.ToLower(e.Message)
	return strings.Contains(m, "internal server error") || strings.Contains(m, " 500 ") || strings.Contains(m, "status=500")
}
