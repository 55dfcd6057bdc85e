package evidence

import (
	"strings"
	"testing"
)

// TestClassifyPoolTimeouts checks the application-side pools' acquire
// timeouts on each library's own text (read from its source at the tag
// cited in the signature's description, or written by the library itself:
// the node-postgres, Knex, SQLAlchemy and ActiveRecord texts were captured
// from real pools held full), and the shape entry on texts of no known
// library, with the texts it must leave alone.
func TestClassifyPoolTimeouts(t *testing.T) {
	c := DefaultCatalog()
	tests := []struct{ text, sig, class string }{
		// node-postgres 8 / pg-pool 3.14.0, captured.
		{"Error: timeout exceeded when trying to connect", "node-postgres-pool-timeout", "db-pool-wait-timeout"},
		// Knex 3.3.0 and tarn 3.1.2, captured.
		{"KnexTimeoutError: Knex: Timeout acquiring a connection. The pool is probably full. Are you missing a .transacting(trx) call?", "knex-pool-timeout", "db-pool-wait-timeout"},
		{"Acquire connection error: Error: operation timed out for an unknown reason", "tarn-pool-timeout", "db-pool-wait-timeout"},
		// Sequelize 6: the name, and sequelize-pool's message.
		{"SequelizeConnectionAcquireTimeoutError: Operation timeout", "sequelize-pool-timeout", "db-pool-wait-timeout"},
		// Prisma P2024.
		{"Timed out fetching a new connection from the connection pool. More info: http://pris.ly/d/connection-pool (Current connection pool timeout: 10, connection limit: 5)", "prisma-pool-timeout", "db-pool-wait-timeout"},
		// HikariCP 6.0.0, the default pool name and a pool named by the app.
		{"java.sql.SQLTransientConnectionException: HikariPool-1 - Connection is not available, request timed out after 30005ms (total=10, active=10, idle=0, waiting=3)", "hikaricp-pool-timeout", "db-pool-wait-timeout"},
		{"orders-db - Connection is not available, request timed out after 250ms.", "hikaricp-pool-timeout", "db-pool-wait-timeout"},
		// SQLAlchemy 1.4.46, captured.
		{"TimeoutError: QueuePool limit of size 2 overflow 0 reached, connection timed out, timeout 0.10 (Background on this error at: https://sqlalche.me/e/14/3o7r)", "sqlalchemy-pool-timeout", "db-pool-wait-timeout"},
		{"psycopg_pool.PoolTimeout: couldn't get a connection after 30.00 sec", "psycopg-pool-timeout", "db-pool-wait-timeout"},
		// ActiveRecord 6.1.7, captured through lograge.
		{"ActiveRecord::ConnectionTimeoutError: could not obtain a connection from the pool within 0.100 seconds (waited 0.100 seconds); all pooled connections were in use", "activerecord-pool-timeout", "db-pool-wait-timeout"},
		// Npgsql 10 and before 8.
		{"Npgsql.NpgsqlException (0x80004005): The connection pool has been exhausted, either raise 'Max Pool Size' (currently 100) or 'Timeout' (currently 15 seconds) in your connection string.", "npgsql-pool-timeout", "db-pool-wait-timeout"},
		{"The connection pool has been exhausted, either raise MaxPoolSize (currently 2) or Timeout (currently 5 seconds)", "npgsql-pool-timeout", "db-pool-wait-timeout"},
		// SqlClient, with its two blanks after each full stop.
		{"System.InvalidOperationException: Timeout expired.  The timeout period elapsed prior to obtaining a connection from the pool.  This may have occurred because all pooled connections were in use and max pool size was reached.", "sqlclient-pool-timeout", "db-pool-wait-timeout"},
		{"RuntimeException: Connection pool exhausted. Cannot establish new connection before wait_timeout.", "hyperf-pool-timeout", "db-pool-wait-timeout"},
		// Go: pgxpool and database/sql say only "context deadline
		// exceeded" (captured); the app's wrapper names the acquire.
		{"acquire connection: context deadline exceeded", "go-acquire-pool-timeout", "db-pool-wait-timeout"},
		{"failed to acquire conn from pool: context deadline exceeded", "go-acquire-pool-timeout", "db-pool-wait-timeout"},
		{"context deadline exceeded", "", ""},
		{"query failed: timeout: context deadline exceeded", "", ""},

		// The shape: an unknown library's pool timeout.
		{"PoolError: timed out acquiring a connection from pool 'main' after 5000ms", "app-pool-timeout-shape", "db-pool-wait-timeout"},
		{"Timeout while obtaining a database connection from the pool", "app-pool-timeout-shape", "db-pool-wait-timeout"},
		{"could not check out a connection from the pool: timed out after 5s", "app-pool-timeout-shape", "db-pool-wait-timeout"},
		{"pool.Get: timed out getting a connection", "app-pool-timeout-shape", "db-pool-wait-timeout"},
		{"Timeout: retrieving a connection from the connection pool took longer than 3s", "app-pool-timeout-shape", "db-pool-wait-timeout"},
		// ...and what it must leave alone.
		{"redis: connection pool timeout", "go-redis-pool-timeout", "redis-connection-limit"},
		{"redis.exceptions.ConnectionError: No connection available.", "redis-py-no-connection-available", "redis-connection-limit"},
		{"Timed out waiting to acquire a connection from the Redis pool", "redis-pool-timeout-shape", "redis-connection-limit"},
		{"redis.clients.jedis.exceptions.JedisConnectionException: Could not get a resource from the pool", "redis-pool-timeout-shape", "redis-connection-limit"},
		{"ERROR:  canceling statement due to statement timeout", "pg-statement-timeout", "slow-query"},
		{"org.apache.http.conn.ConnectionPoolTimeoutException: Timeout waiting for connection from pool", "", ""},
		{`Get "http://api.internal:8080/v1/items": dial tcp 10.0.0.5:8080: connect: connection timed out`, "", ""},
		{"requests.exceptions.ConnectTimeout: HTTPConnectionPool(host='api.internal', port=8080): Max retries exceeded with url: /v1/x (Caused by ConnectTimeoutError(<urllib3.connection.HTTPConnection object at 0x7f>, 'Connection to api.internal timed out. (connect timeout=5)'))", "", ""},
		{"urllib3.connectionpool: Connection pool is full, discarding connection: api.internal", "", ""},
	}
	for _, tt := range tests {
		s, ok := c.Classify(tt.text)
		if ok != (tt.sig != "") || s.ID != tt.sig || s.Class != tt.class {
			t.Errorf("Classify(%q) = %s/%s, want %s/%s", tt.text, s.ID, s.Class, tt.sig, tt.class)
		}
	}
	// The app's own pools end in "-pool-timeout"; PgBouncer's do not.
	for _, s := range c.Signatures() {
		app := strings.HasSuffix(s.ID, "-pool-timeout") && s.ID != "go-redis-pool-timeout"
		if app && s.Class != "db-pool-wait-timeout" {
			t.Errorf("%s: class %s, want db-pool-wait-timeout", s.ID, s.Class)
		}
		if strings.HasPrefix(s.ID, "pgbouncer-") && strings.HasSuffix(s.ID, "-pool-timeout") {
			t.Errorf("%s: a PgBouncer entry named like an app pool", s.ID)
		}
	}
}

// TestClassifyWorkersAndProxies checks the app servers', process
// managers' and proxies' saturation texts, as their sources write them
// (uWSGI's were captured from uwsgi 2.0.21 with harakiri = 2).
func TestClassifyWorkersAndProxies(t *testing.T) {
	c := DefaultCatalog()
	tests := []struct{ text, sig, class string }{
		{"WORKER TIMEOUT (pid:106)", "gunicorn-worker-timeout", "app-worker-saturation"},
		{"Worker (pid:106) was sent SIGKILL! Perhaps out of memory?", "gunicorn-sigkill", "app-worker-saturation"},
		{"Worker with pid 106 was terminated due to signal 9", "gunicorn-worker-signal", "app-worker-saturation"},
		{"Worker exiting (pid: 106)", "gunicorn-worker-exiting", "app-worker-saturation"},
		{"Worker failed to boot.", "gunicorn-worker-boot-failed", "target-down"},
		{"*** HARAKIRI ON WORKER 1 (pid: 4684, try: 1) ***", "uwsgi-harakiri", "app-worker-saturation"},
		{"*** HARAKIRI ON WORKER 1 (pid: 4684, try: 1, graceful: yes) ***", "uwsgi-harakiri", "app-worker-saturation"},
		{"HARAKIRI [core 0] 127.0.0.1 - GET /slow since 1796535272", "uwsgi-harakiri", "app-worker-saturation"},
		{"DAMN ! worker 1 (pid: 4684) died, killed by signal 9 :( trying respawn ...", "uwsgi-worker-died", "app-worker-saturation"},
		{"DAMN ! worker 1 (pid: 4684) MISTERIOUSLY killed by signal 9 :( trying respawn ...", "uwsgi-worker-died", "app-worker-saturation"},
		{"worker respawning too fast !!! i have to sleep a bit (2 seconds)...", "uwsgi-respawn-too-fast", "target-down"},
		{`*** uWSGI listen queue of socket "127.0.0.1:8000" (fd: 3) full !!! (101/100) ***`, "uwsgi-listen-queue-full", "app-worker-saturation"},
		{"! Terminating timed out worker (worker failed to check in within 60 seconds): 1234", "puma-worker-timeout", "app-worker-saturation"},
		{"! Terminating timed out worker (worker failed to boot within 60 seconds): 1234", "puma-worker-boot-timeout", "target-down"},
		{"Rack::Timeout::RequestTimeoutException: Request ran for longer than 15000ms", "rack-timeout-request-timeout", "app-worker-saturation"},
		{"Rack::Timeout::RequestTimeoutError: Request waited 120ms, then ran for longer than 14880ms", "rack-timeout-request-timeout", "app-worker-saturation"},
		{"Rack::Timeout::RequestExpiryError: Request older than 30000ms.", "rack-timeout-request-expired", "app-worker-saturation"},
		{"Request queue is full. Returning an error", "passenger-queue-full", "app-worker-saturation"},
		{"Returning HTTP 503 due to: Request queue full (configured max. size: 100)", "passenger-queue-full", "app-worker-saturation"},
		{"<h2>This website is under heavy load (queue full)</h2>", "passenger-queue-full", "app-worker-saturation"},
		{"[pool www] server reached pm.max_children setting (5), consider raising it", "php-fpm-max-children", "app-worker-saturation"},
		{"[pool www] server reached max_children setting (5), consider raising it", "php-fpm-max-children", "app-worker-saturation"},
		{`[pool www] child 123, script '/var/www/index.php' (request: "POST /login") execution timed out (30.001234 sec), terminating`, "php-fpm-execution-timeout", "app-worker-saturation"},
		{"upstream timed out (110: Connection timed out) while reading response header from upstream", "nginx-upstream-timed-out", "app-worker-saturation"},
		{"upstream timed out (110: Connection timed out) while connecting to upstream", "nginx-upstream-timed-out", "app-worker-saturation"},
		{"upstream prematurely closed connection while reading response header from upstream", "nginx-upstream-prematurely-closed", "app-worker-saturation"},
		{"connect() to unix:/run/gunicorn.sock failed (11: Resource temporarily unavailable) while connecting to upstream", "nginx-upstream-eagain", "app-worker-saturation"},
		{`http-in app/app1 0/5001/-1/-1/5001 503 217 - - sQ-- 12/12/11/0/0 0/6 "GET /login HTTP/1.1"`, "haproxy-queue-timeout", "app-worker-saturation"},
		{`http-in app/app1 0/0/-1/-1/5000 503 217 - - sC-- 3/3/2/2/3 0/0 "GET / HTTP/1.1"`, "haproxy-connect-timeout", "app-worker-saturation"},
		{`http-in app/app1 0/0/1/-1/30001 504 194 - - sH-- 5/5/4/4/0 0/0 "POST /login HTTP/1.1"`, "haproxy-server-timeout", "app-worker-saturation"},
		{`http-in app/app1 0/0/1/12/13 200 2750 - - ---- 1/1/1/1/0 0/0 "GET /sq-- HTTP/1.1"`, "", ""},
		{`Server app/app1 is DOWN, reason: Layer4 connection problem, info: "Connection refused", check duration: 0ms. 0 active and 0 backup servers left.`, "haproxy-server-down", "target-down"},
		{"backend app has no server available!", "haproxy-no-server-available", "target-down"},
		{"<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this request.\n</body></html>", "haproxy-503-no-server", "app-worker-saturation"},
		{"upstream connect error or disconnect/reset before headers. reset reason: overflow", "envoy-upstream-overflow", "app-worker-saturation"},
		{"upstream connect error or disconnect/reset before headers. reset reason: connection failure", "envoy-connection-failure", "target-down"},
		{"upstream connect error or disconnect/reset before headers. reset reason: connection termination", "envoy-upstream-reset", "app-worker-saturation"},
		{"no healthy upstream", "envoy-no-healthy-upstream", "target-down"},
		{"upstream request timeout", "envoy-upstream-timeout", "app-worker-saturation"},
	}
	for _, tt := range tests {
		s, ok := c.Classify(tt.text)
		if ok != (tt.sig != "") || s.ID != tt.sig || s.Class != tt.class {
			t.Errorf("Classify(%q) = %s/%s, want %s/%s", tt.text, s.ID, s.Class, tt.sig, tt.class)
		}
	}
}

// TestEnvoyFlags: Envoy's access-log response flags are a field, and the
// flag entries match on it.
func TestEnvoyFlags(t *testing.T) {
	for _, tt := range []struct{ line, sig, flags, ms string }{
		{`[2026-12-06T10:00:00.123Z] "GET /items/9 HTTP/1.1" 503 UO 0 81 0 - "-" "k6/0.52" "5b2f" "app" "-"`, "envoy-flag-upstream-overflow", "UO", "0"},
		{`[2026-12-06T10:00:01.000Z] "POST /login HTTP/1.1" 504 UT 12 24 15001 - "-" "k6/0.52" "5b30" "app" "10.0.0.5:8000"`, "envoy-flag-upstream-timeout", "UT", "15001"},
		{`[2026-12-06T10:00:02.000Z] "GET / HTTP/1.1" 503 UF,URX 0 91 52 - "-" "k6/0.52" "5b31" "app" "10.0.0.5:8000"`, "envoy-flag-connection-failure", "UF,URX", "52"},
		{`[2026-12-06T10:00:03.000Z] "GET /wrong HTTP/1.1" 502 UPE upstream_reset_before_response_started{protocol_error} - "-" 0 87 1001 - "-" "curl/7.80.0" "3987" "app" "10.0.0.5:8000"`, "http-502-504", "UPE", "1001"},
		{`[2026-12-06T10:00:04.000Z] "GET /ok HTTP/1.1" 200 - 0 12 7 6 "-" "k6/0.52" "5b32" "app" "10.0.0.5:8000"`, "", "", "7"},
	} {
		evs := ParseText("envoy", "envoy.log", tt.line+"\n", nil, nil)
		var ev *struct{ sig, flags, ms string }
		for _, e := range evs {
			if e.Signature != SignatureAccessTiming {
				ev = &struct{ sig, flags, ms string }{e.Signature, e.Fields["response_flags"], e.Fields["server_ms"]}
			}
		}
		if tt.sig == "" {
			if ev != nil {
				t.Errorf("%s: kept as %+v, want a quiet line", tt.line, *ev)
			}
			continue
		}
		if ev == nil || ev.sig != tt.sig || ev.flags != tt.flags || ev.ms != tt.ms {
			t.Errorf("%s: got %+v, want %s flags %s server_ms %s", tt.line, ev, tt.sig, tt.flags, tt.ms)
		}
	}
}

// TestClassifyCSRF checks the CSRF rejections of other frameworks than
// Django, on each one's own words.
func TestClassifyCSRF(t *testing.T) {
	c := DefaultCatalog()
	for _, tc := range []struct{ text, sig string }{
		{"ActionController::InvalidAuthenticityToken (ActionController::InvalidAuthenticityToken):", "rails-invalid-authenticity-token"},
		{"Can't verify CSRF token authenticity.", "rails-invalid-authenticity-token"},
		{"400 Bad Request: The CSRF token is missing.", "flask-wtf-csrf"},
		{"Bad Request: The CSRF tokens do not match.", "flask-wtf-csrf"},
		{"Illuminate\\Session\\TokenMismatchException: CSRF token mismatch.", "laravel-csrf-mismatch"},
		{"ForbiddenError: invalid csrf token", "express-csurf-invalid"},
		{"org.springframework.security.web.csrf.InvalidCsrfTokenException: Invalid CSRF Token 'null' was found on the request parameter '_csrf' or header 'X-CSRF-TOKEN'.", "spring-invalid-csrf"},
		{"Microsoft.AspNetCore.Antiforgery.AntiforgeryValidationException: The required antiforgery cookie \".AspNetCore.Antiforgery.x\" is not present.", "aspnet-antiforgery"},
	} {
		s, _ := c.Classify(tc.text)
		if s.ID != tc.sig || s.Class != "csrf-failure" {
			t.Errorf("%q: got %s (%s), want %s (csrf-failure)", tc.text, s.ID, s.Class, tc.sig)
		}
	}
}
