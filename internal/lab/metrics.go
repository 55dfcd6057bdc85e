package lab

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// metrics are the lab's own counters, served at /metrics in Prometheus's
// text format. The diagnosis must not need them; they are there to check it.
type metrics struct {
	inFlight, serverErrors, csrfFailures, sessionsCreated atomic.Int64
	hashCount, hashNanos                                  atomic.Int64
	workersBusy, workerTimeouts, workerQueueTimeouts      atomic.Int64
	workerDropped                                         atomic.Int64

	mu       sync.Mutex
	statuses map[int]int64
	limited  map[string]int64
	loginRes map[string]int64
}

func (m *metrics) countStatus(code int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.statuses == nil {
		m.statuses = map[int]int64{}
	}
	m.statuses[code]++
}

func (m *metrics) rateLimited(action string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.limited == nil {
		m.limited = map[string]int64{}
	}
	m.limited[action]++
}

func (m *metrics) logins(result string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.loginRes == nil {
		m.loginRes = map[string]int64{}
	}
	m.loginRes[result]++
}

func (m *metrics) hashed(d time.Duration) {
	m.hashCount.Add(1)
	m.hashNanos.Add(int64(d))
}

func (s *Server) metricsPage(w http.ResponseWriter, r *http.Request) {
	var b strings.Builder
	metric := func(name, typ, help string, lines ...string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		for _, l := range lines {
			b.WriteString(name + l + "\n")
		}
	}
	v := func(x int64) string { return fmt.Sprintf(" %d", x) }
	m := s.m
	if bo := s.store.bouncer; bo != nil {
		active, waiting := bo.stats()
		metric("lab_db_pool_active", "gauge", "Server connections linked to a client (embedded PgBouncer).", v(int64(active)))
		metric("lab_db_pool_waiting", "gauge", "Clients waiting for a server connection.", v(int64(waiting)))
		metric("lab_db_pool_waits_total", "counter", "Clients that had to wait for a server connection.", v(bo.waits.Load()))
		metric("lab_db_pool_wait_seconds_total", "counter", "Time clients spent waiting for a server connection.", fmt.Sprintf(" %.6f", time.Duration(bo.waitNanos.Load()).Seconds()))
		metric("lab_db_pool_timeouts_total", "counter", "Clients disconnected with query_wait_timeout.", v(bo.timeouts.Load()))
		metric("lab_db_pool_refused_total", "counter", "Clients refused by max_client_conn.", v(bo.refused.Load()))
		// The same pool as prometheus-community/pgbouncer_exporter names
		// PgBouncer's SHOW POOLS, so tools that read the exporter read this.
		act, wait, maxwait := bo.poolStats(time.Now())
		idle := 0
		if bo.size > 0 {
			idle = max(bo.size-act, 0)
		}
		lbl := fmt.Sprintf(`{database=%q,user=%q}`, bo.db, bo.user)
		metric("pgbouncer_pools_client_active_connections", "gauge", "Client connections linked to server connection and able to process queries.", lbl+v(int64(act)))
		metric("pgbouncer_pools_client_waiting_connections", "gauge", "Client connections waiting on a server connection.", lbl+v(int64(wait)))
		metric("pgbouncer_pools_server_active_connections", "gauge", "Server connections linked to a client connection.", lbl+v(int64(act)))
		metric("pgbouncer_pools_server_idle_connections", "gauge", "Server connections idle and ready for a client query.", lbl+v(int64(idle)))
		metric("pgbouncer_pools_client_maxwait_seconds", "gauge", "Age of oldest unserved client connection.", lbl+fmt.Sprintf(" %.6f", maxwait.Seconds()))
		if bo.maxClients > 0 {
			metric("pgbouncer_config_max_client_connections", "gauge", "Config maximum number of client connections.", v(int64(bo.maxClients)))
		}
		if bo.size > 0 {
			metric("pgbouncer_databases_pool_size", "gauge", "Maximum number of server connections.", fmt.Sprintf(`{database=%q}`, bo.db)+v(int64(bo.size)))
			metric("pgbouncer_databases_reserve_pool", "gauge", "Maximum number of additional connections for this database.", fmt.Sprintf(`{database=%q}`, bo.db)+v(int64(bo.reserve)))
		}
	}
	m.mu.Lock()
	var codes []int
	for c := range m.statuses {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	var lines []string
	for _, c := range codes {
		lines = append(lines, fmt.Sprintf("{code=\"%d\"} %d", c, m.statuses[c]))
	}
	metric("lab_http_requests_total", "counter", "Requests answered, by status.", lines...)
	lines = nil
	for _, a := range []string{"login", "login_failed"} {
		lines = append(lines, fmt.Sprintf("{action=%q} %d", a, m.limited[a]))
	}
	metric("lab_ratelimit_hits_total", "counter", "Login attempts refused by an allauth rate limit.", lines...)
	lines = nil
	for _, res := range []string{"success", "failure", "ratelimited", "error"} {
		lines = append(lines, fmt.Sprintf("{result=%q} %d", res, m.loginRes[res]))
	}
	metric("lab_logins_total", "counter", "Login POSTs by result.", lines...)
	m.mu.Unlock()
	metric("lab_password_hashes_total", "counter", "Password checks.", v(m.hashCount.Load()))
	metric("lab_password_hash_seconds_total", "counter", "Time spent checking passwords.", fmt.Sprintf(" %.6f", time.Duration(m.hashNanos.Load()).Seconds()))
	metric("lab_sessions_created_total", "counter", "Sessions created at login.", v(m.sessionsCreated.Load()))
	if n := s.sess.count(); n >= 0 {
		metric("lab_sessions_active", "gauge", "Sessions held in memory.", v(int64(n)))
	}
	metric("lab_requests_in_flight", "gauge", "Requests being handled or queued.", v(m.inFlight.Load()))
	metric("lab_server_errors_total", "counter", "Requests answered 500.", v(m.serverErrors.Load()))
	metric("lab_csrf_failures_total", "counter", "Requests refused by CSRF checks.", v(m.csrfFailures.Load()))
	metric("lab_workers_busy", "gauge", "Workers running a request.", v(m.workersBusy.Load()))
	metric("lab_worker_timeouts_total", "counter", "Requests killed by the worker timeout (502).", v(m.workerTimeouts.Load()))
	metric("lab_worker_queue_timeouts_total", "counter", "Requests that timed out queued for a worker (504).", v(m.workerQueueTimeouts.Load()))
	metric("lab_worker_dropped_total", "counter", "Connections dropped because the backlog was full.", v(m.workerDropped.Load()))
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write([]byte(b.String()))
}
