package evidence

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBuiltinCatalog(t *testing.T) {
	c := DefaultCatalog()
	classes := map[string]bool{}
	for _, s := range c.Signatures() {
		classes[s.Class] = true
	}
	// Every finding of DESIGN.md that a log line can show has a signature.
	for _, class := range []string{
		"db-pool-wait-timeout", "db-connection-limit", "login-rate-limit", "password-hash-cpu",
		"db-lock-contention", "slow-query", "redis-connection-limit", "app-worker-saturation",
		"csrf-failure", "target-down", "unexplained-server-error",
	} {
		if !classes[class] {
			t.Errorf("no signature for class %s", class)
		}
	}
}

// TestClassify checks the texts of fault-signatures.md, one per row.
func TestClassify(t *testing.T) {
	c := DefaultCatalog()
	tests := []struct{ text, sig, class string }{
		{"closing because: query_wait_timeout (age=10s)", "pgbouncer-query-wait-timeout", "db-pool-wait-timeout"},
		{"pooler error: query_wait_timeout", "pgbouncer-pooler-error-query-wait-timeout", "db-pool-wait-timeout"},
		{"Pooler Error: query_wait_timeout", "pgbouncer-pooler-error-query-wait-timeout", "db-pool-wait-timeout"},
		{"psycopg.errors.ProtocolViolation: query_wait_timeout", "psycopg-query-wait-timeout", "db-pool-wait-timeout"},
		{"sqlalchemy.exc.OperationalError: (psycopg.errors.ProtocolViolation) query_wait_timeout", "psycopg-query-wait-timeout", "db-pool-wait-timeout"},
		{"FATAL: query_wait_timeout (SQLSTATE 08P01)", "pgx-query-wait-timeout", "db-pool-wait-timeout"},
		{"org.postgresql.util.PSQLException: FATAL: query_wait_timeout", "pgjdbc-query-wait-timeout", "db-pool-wait-timeout"},
		{"no more connections allowed (max_client_conn)", "pgbouncer-max-client-conn", "db-connection-limit"},
		{"server login has been failing, try again later (server_login_retry)", "pgbouncer-server-login-failing", "db-unavailable"},
		{"FATAL:  sorry, too many clients already", "pg-too-many-clients", "db-connection-limit"},
		{"FATAL:  remaining connection slots are reserved for roles with the SUPERUSER attribute", "pg-reserved-slots", "db-connection-limit"},
		{"ERROR:  canceling statement due to statement timeout", "pg-statement-timeout", "slow-query"},
		{"ERROR:  canceling statement due to lock timeout", "pg-lock-timeout", "db-lock-contention"},
		{"ERROR:  deadlock detected", "pg-deadlock", "db-lock-contention"},
		{"LOG:  process 42 still waiting for ShareLock on transaction 7 after 1000.072 ms", "pg-lock-wait", "db-lock-contention"},
		{"redis.exceptions.ConnectionError: max number of clients reached", "redis-max-clients", "redis-connection-limit"},
		{"redis.exceptions.ConnectionError: Too many connections", "redis-py-too-many-connections", "redis-connection-limit"},
		{"redis.exceptions.ConnectionError: No connection available.", "redis-py-no-connection-available", "redis-connection-limit"},
		{"redis: connection pool timeout", "go-redis-pool-timeout", "redis-connection-limit"},
		{"Error 111 connecting to localhost:6379. Connection refused.", "redis-connection-refused", "redis-unavailable"},
		{"redis.exceptions.TimeoutError: Timeout reading from socket", "redis-timeout", "redis-unavailable"},
		{"Too many failed login attempts. Try again later.", "allauth-too-many-login-attempts", "login-rate-limit"},
		{"Terlalu banyak percobaan masuk yang gagal. Coba lagi nanti.", "allauth-too-many-login-attempts-id", "login-rate-limit"},
		{"<h1>429 Too Many Requests</h1><p>You have sent too many requests.", "http-429-body", "login-rate-limit"},
		{"Account locked: too many login attempts. Contact an admin to unlock your account.", "axes-account-locked", "login-rate-limit"},
		{"AXES: Locking out {username: \"u\"} after repeated login failures.", "axes-lockout", "login-rate-limit"},
		{"django.template.exceptions.TemplateDoesNotExist: 429.html", "allauth-429-template-missing", "login-rate-limit"},
		{"Forbidden (CSRF cookie not set.): /accounts/login/", "django-csrf-forbidden", "csrf-failure"},
		{"Forbidden (Origin checking failed - https://a does not match any trusted origins.): /x", "django-csrf-forbidden", "csrf-failure"},
		{"CSRF verification failed. Request aborted.", "django-csrf-verification-failed", "csrf-failure"},
		{"WORKER TIMEOUT (pid:106)", "gunicorn-worker-timeout", "app-worker-saturation"},
		{"Worker (pid:106) was sent SIGKILL! Perhaps out of memory?", "gunicorn-sigkill", "app-worker-saturation"},
		{`*** uWSGI listen queue of socket "127.0.0.1:8000" (fd: 3) full !!! (101/100) ***`, "uwsgi-listen-queue-full", "app-worker-saturation"},
		{"*** HARAKIRI ON WORKER 2 (pid: 57, try: 1) ***", "uwsgi-harakiri", "app-worker-saturation"},
		{"upstream timed out (110: Connection timed out) while reading response header from upstream", "nginx-upstream-timed-out", "app-worker-saturation"},
		{"connect() failed (111: Connection refused) while connecting to upstream", "nginx-upstream-refused", "target-down"},
		{"connect() to unix:/run/gunicorn.sock failed (11: Resource temporarily unavailable) while connecting to upstream", "nginx-upstream-eagain", "app-worker-saturation"},
		{"upstream prematurely closed connection while reading response header from upstream", "nginx-upstream-prematurely-closed", "app-worker-saturation"},
		{`limiting requests, excess: 10.500 by zone "login"`, "nginx-limit-req", "login-rate-limit"},
		{"sqlalchemy.exc.TimeoutError: QueuePool limit of size 5 overflow 10 reached, connection timed out, timeout 30.00", "sqlalchemy-pool-timeout", "db-pool-wait-timeout"},
		{"psycopg_pool.PoolTimeout: couldn't get a connection after 30.00 sec", "psycopg-pool-timeout", "db-pool-wait-timeout"},
		{"HikariPool-1 - Connection is not available, request timed out after 30000ms", "hikaricp-pool-timeout", "db-pool-wait-timeout"},
		{"could not obtain a connection from the pool within 5.000 seconds (waited 5.000 seconds)", "activerecord-pool-timeout", "db-pool-wait-timeout"},
		{"Internal Server Error: /accounts/login/", "django-internal-server-error", "unexplained-server-error"},
		{"ERROR: something (SQLSTATE 53300)", "sqlstate-53300", "db-connection-limit"},
		{"ERROR: something (SQLSTATE 57014)", "sqlstate-57014", "slow-query"},
		{"ERROR: something (SQLSTATE 55P03)", "sqlstate-55P03", "db-lock-contention"},
		{"ERROR: something (SQLSTATE 40P01)", "sqlstate-40P01", "db-lock-contention"},
		{"ERROR: something (SQLSTATE 08P01)", "sqlstate-08P01", "db-pool-wait-timeout"},
		{"GET /dashboard/ 200", "", ""},
	}
	for _, tt := range tests {
		s, ok := c.Classify(tt.text)
		if ok != (tt.sig != "") || s.ID != tt.sig || s.Class != tt.class {
			t.Errorf("Classify(%q) = %s/%s, want %s/%s", tt.text, s.ID, s.Class, tt.sig, tt.class)
		}
	}
}

func TestParseCatalogErrors(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"yaml", "signatures:\n  - id: x\n    class: [\n", "signatures user.yaml: line"},
		{"unknown key", "signatures:\n  - id: x\n    klass: y\n", "signatures user.yaml: line 3"},
		{"missing class", "signatures:\n  - id: a\n    class: c\n    side: server\n    literal: x y\n    description: d\n  - id: b\n    side: server\n    literal: zz\n    description: d\n", "signatures user.yaml:7 (b): missing class"},
		{"bad regex", "signatures:\n  - id: a\n    class: c\n    side: server\n    regex: 'a('\n    description: d\n", "signatures user.yaml:2 (a): regex:"},
		{"no keyword", "signatures:\n  - id: a\n    class: c\n    side: server\n    regex: 'a.b'\n    description: d\n", "give keywords"},
		{"bad side", "signatures:\n  - id: a\n    class: c\n    side: both\n    literal: abc\n    description: d\n", `side "both"`},
		{"duplicate", "signatures:\n  - {id: a, class: c, side: server, literal: abc, description: d}\n  - {id: a, class: c, side: server, literal: abd, description: d}\n", "duplicate id"},
		{"exclusive", "signatures:\n  - {id: a, class: c, side: server, literal: abc, regex: abc, description: d}\n", "exclusive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCatalog("user.yaml", []byte(tt.text))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestUserCatalogFirst(t *testing.T) {
	dir := t.TempDir()
	user := filepath.Join(dir, "mine.yaml")
	// A user's entry overrides a built-in text, and one replaces a built-in id.
	err := os.WriteFile(user, []byte(`signatures:
  - id: my-login-throttle
    class: login-rate-limit
    side: client
    regex: 'Terlalu banyak (percobaan|upaya)'
    description: our own translation
  - id: pg-deadlock
    class: my-deadlock
    side: server
    literal: deadlock detected
    description: replaced
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	c, err := LoadCatalog([]string{user})
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := c.Classify("Terlalu banyak percobaan masuk yang gagal"); s.ID != "my-login-throttle" {
		t.Errorf("user entry did not win: %s", s.ID)
	}
	if s, _ := c.Classify("ERROR:  deadlock detected"); s.Class != "my-deadlock" {
		t.Errorf("user entry did not replace the built-in id: %s/%s", s.ID, s.Class)
	}
	if _, err := LoadCatalog([]string{filepath.Join(dir, "missing.yaml")}); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: err = %v", err)
	}
}

func TestRegexKeywords(t *testing.T) {
	tests := []struct {
		re   string
		want []string
	}{
		{`still waiting for \S+ on .+ after [0-9.]+ ms`, []string{"still waiting for "}},
		{`(foo|barbaz) qux`, []string{" qux"}},
		{`(fooo|barbaz)`, []string{"fooo", "barbaz"}},
		{`(?i)Abc\d+`, []string{"abc"}},
		{`a.b`, nil},
	}
	for _, tt := range tests {
		got := regexKeywords(tt.re)
		if strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("regexKeywords(%q) = %q, want %q", tt.re, got, tt.want)
		}
	}
}

func TestKeywordSet(t *testing.T) {
	keys := []string{"he", "she", "his", "hers", "Query_Wait_Timeout", "x"}
	ks := newKeywordSet(keys)
	check := func(text string) {
		t.Helper()
		got := map[int]bool{}
		ks.scan(text, func(id int) { got[id] = true })
		for id, k := range keys {
			want := strings.Contains(strings.ToLower(text), strings.ToLower(k))
			if got[id] != want {
				t.Errorf("scan(%q): keyword %q found=%v, want %v", text, k, got[id], want)
			}
		}
	}
	for _, s := range []string{"", "ushers", "QUERY_WAIT_TIMEOUT!", "hiS", "a\xffx", "shis"} {
		check(s)
	}
}

func FuzzKeywordSet(f *testing.F) {
	f.Add("ushers", "he", "hers")
	f.Add("QUERY_wait_timeout", "query_wait", "wait_timeout")
	f.Fuzz(func(t *testing.T, text, k1, k2 string) {
		keys := []string{k1, k2}
		ks := newKeywordSet(keys)
		got := map[int]bool{}
		ks.scan(text, func(id int) { got[id] = true })
		lt := asciiLower(text)
		for id, k := range keys {
			want := k != "" && strings.Contains(lt, asciiLower(k))
			if got[id] != want {
				t.Errorf("scan(%q): keyword %q found=%v, want %v", text, k, got[id], want)
			}
		}
	})
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		b[i] = lower(c)
	}
	return string(b)
}

func FuzzParseCatalog(f *testing.F) {
	// Small catalogs: the built-in one is checked by TestBuiltinCatalog and
	// would make every execution slow.
	f.Add("signatures:\n  - id: pgbouncer-query-wait-timeout\n    class: db-pool-wait-timeout\n    side: server\n    literal: \"closing because: query_wait_timeout\"\n    description: d\n")
	f.Add("signatures:\n  - {id: a, class: c, side: client, any: [abc, 'd e f'], generic: true, description: d}\n")
	f.Add(`{"signatures": [{"id": "a", "class": "c", "side": "server", "scope": "stack", "regex": "pbkdf2|bcrypt", "description": "d"}]}`)
	f.Add("signatures:\n  - {id: a, class: c, side: server, regex: 'x(y|z)+w', description: d}\n")
	f.Add("signatures:\n  - {id: a, class: c, side: client, fields: {status: '5..'}, description: d}\n")
	f.Fuzz(func(t *testing.T, text string) {
		sigs, err := ParseCatalog("fuzz.yaml", []byte(text))
		if err != nil {
			return
		}
		c, err := NewCatalog(sigs)
		if err != nil {
			return
		}
		c.Classify(text)
	})
}
