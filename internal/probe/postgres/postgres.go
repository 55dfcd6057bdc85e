// Package postgres is the probe of a PostgreSQL server: client backends by
// state and wait event, blocked sessions and their blockers, what the
// active backends are doing (an Active Session History sample), the oldest
// transaction and query, connection slots, pg_stat_database counters, and
// per-statement time from pg_stat_statements when the database has it.
//
// The probe should connect as a superuser or a member of pg_monitor:
// other roles see only their own sessions' state and query. It keeps one
// connection and excludes its own backend from every count.
//
// Metric keys (source "postgres"), as in docs/run-directory.md:
//
//	backends                      client backends (the probe's excluded)
//	max_connections, superuser_reserved_connections
//	state:STATE                   client backends by state; active, idle,
//	                              "idle in transaction" and "idle in
//	                              transaction (aborted)" are always present
//	wait:TYPE                     client backends by wait_event_type (Lock,
//	                              LWLock, IO, Client always present)
//	wait:Lock:EVENT               backends waiting on a heavyweight lock, by
//	                              lock tag (transactionid, tuple, relation, ...)
//	wait:CPU                      active backends with no wait event (on CPU,
//	                              or in a wait PostgreSQL does not report)
//	blocked                       sessions with a non-empty pg_blocking_pids
//	blockers                      distinct pids blocking them
//	oldest_xact_s, oldest_query_s age of the oldest open transaction and of
//	                              the oldest active query, seconds
//	deadlocks, temp_files, temp_bytes, xact_rollback, xact_commit
//	                              pg_stat_database deltas for the current
//	                              database since the previous reading
//	stmt_exec_ms_delta            pg_stat_statements: execution time of
//	                              every statement since the previous reading,
//	                              milliseconds (the probe's own excluded once
//	                              recognised)
//	stmt_calls_delta              pg_stat_statements: calls since then
//	seq_scan_delta, seq_tup_read_delta, idx_scan_delta
//	                              pg_stat_user_tables: sequential scans, the
//	                              rows they read and index scans since the
//	                              previous reading (tables.go)
//
// Info keys:
//
//	blocked     one line per blocked session, in pid order:
//	            "pid P (WAIT_EVENT) blocked by Q (STATE, xact AGE: QUERY), ...: QUERY",
//	            e.g. "pid 10 (tuple) blocked by 12 (idle in transaction,
//	            xact 5.2s: SELECT * FROM t WHERE id = ? FOR UPDATE): UPDATE t
//	            SET n = n + ? WHERE id = ?". A blocker's QUERY is its
//	            current query, or its last one when idle in transaction:
//	            a holder idle in transaction waits on the application.
//	            A blocker that is not a client backend reads
//	            "Q (not a client backend)".
//	active      what the active client backends are doing, one line per
//	            (wait, query), most backends first, at most 10 lines:
//	            "COUNT\tWAIT\tQUERY" where WAIT is "TYPE:EVENT"
//	            ("Lock:transactionid", "IO:DataFileRead") or "CPU" when
//	            there is no wait event. Summed over samples, the counts are
//	            database time by wait and query (the ASH model).
//	statements  pg_stat_statements: the 5 statements that took the most
//	            execution time since the previous reading, one per line,
//	            "CALLS\tTOTAL_MS\tMEAN_MS\tQUERY".
//	statements_error  why pg_stat_statements could not be read (e.g. not in
//	            shared_preload_libraries); the sample is good otherwise.
//	seq_scans   the 3 tables whose sequential scans read the most rows since
//	            the previous reading, "TABLE\tSEQ_SCANS\tROWS_READ\tIDX_SCANS".
//	tables_error  why pg_stat_user_tables could not be read.
//
// Every QUERY is normalized: whitespace collapsed, string and numeric
// literals replaced by "?", at most 160 characters. pg_stat_statements is
// used when the extension exists in the probe's database: it is looked
// for on each new connection and, while absent, once a minute.
package postgres

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/probe"
	"github.com/stampede-load/stampede/internal/probe/pgconn"
)

var _ probe.Probe = (*Probe)(nil)

// Probe reads a PostgreSQL server. Create it with New.
type Probe struct {
	mu     sync.Mutex
	conn   *pgconn.Conn
	prev   map[string]float64 // pg_stat_database counters of the last reading
	stmts  statements
	tables tables
}

// New returns a probe of the server at dsn (a URL or key=value string). It
// only parses dsn: the connection is made by the first Sample, and made
// again after any failure.
func New(dsn string) (*Probe, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors may quote the DSN.
		return nil, fmt.Errorf("postgres probe: invalid DSN %s", stampede.Redact(dsn))
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = "stampede-probe"
	// A probe must never wait on the locks it is watching.
	cfg.RuntimeParams["statement_timeout"] = "2000"
	cfg.RuntimeParams["lock_timeout"] = "1000"
	return &Probe{conn: pgconn.New(cfg), stmts: statements{recheck: time.Minute}}, nil
}

// Name returns "postgres".
func (p *Probe) Name() string { return "postgres" }

// Close closes the probe's connection.
func (p *Probe) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conn.Close()
}

// probeMark starts every query of the probe, so that pg_stat_statements'
// entries for them can be told from the application's.
const probeMark = "/* stampede-probe */ "

// activityQuery lists client backends other than the probe's own. Ages are
// seconds, -1 when the timestamp is null.
const activityQuery = probeMark + `
SELECT pid, coalesce(state, ''), coalesce(wait_event_type, ''), coalesce(wait_event, ''),
       pg_blocking_pids(pid),
       coalesce(extract(epoch FROM now() - xact_start), -1)::float8,
       coalesce(extract(epoch FROM now() - query_start), -1)::float8,
       left(coalesce(query, ''), 400)
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()`

const databaseQuery = probeMark + `
SELECT current_setting('max_connections')::float8,
       current_setting('superuser_reserved_connections')::float8,
       xact_commit::float8, xact_rollback::float8, deadlocks::float8,
       temp_files::float8, temp_bytes::float8
FROM pg_stat_database WHERE datname = current_database()`

// Backend is one client backend as pg_stat_activity shows it.
type Backend struct {
	PID       int32
	State     string
	WaitType  string
	WaitEvent string
	BlockedBy []int32
	XactAge   float64 // seconds; -1 when no transaction is open
	QueryAge  float64 // seconds; -1 when no query ever ran
	Query     string
}

// Sample reads pg_stat_activity and pg_stat_database.
func (p *Probe) Sample(ctx context.Context, now time.Time) (stampede.Sample, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	smp, err := p.sample(ctx, now)
	if err != nil {
		// Whatever went wrong, start from a fresh connection next time.
		p.conn.Reset()
		return stampede.Sample{}, fmt.Errorf("postgres probe: %w", probe.Redacted(err, p.conn.Config().Password))
	}
	return smp, nil
}

func (p *Probe) sample(ctx context.Context, now time.Time) (stampede.Sample, error) {
	conn, err := p.conn.Get(ctx)
	if err != nil {
		return stampede.Sample{}, err
	}
	rows, err := conn.Query(ctx, activityQuery)
	if err != nil {
		return stampede.Sample{}, err
	}
	var backends []Backend
	for rows.Next() {
		var b Backend
		if err := rows.Scan(&b.PID, &b.State, &b.WaitType, &b.WaitEvent, &b.BlockedBy, &b.XactAge, &b.QueryAge, &b.Query); err != nil {
			rows.Close()
			return stampede.Sample{}, err
		}
		backends = append(backends, b)
	}
	if err := rows.Err(); err != nil {
		return stampede.Sample{}, err
	}
	var db [7]float64
	if err := conn.QueryRow(ctx, databaseQuery).Scan(&db[0], &db[1], &db[2], &db[3], &db[4], &db[5], &db[6]); err != nil {
		return stampede.Sample{}, err
	}
	smp := Activity(now, backends)
	smp.Values["max_connections"] = db[0]
	smp.Values["superuser_reserved_connections"] = db[1]
	cur := map[string]float64{
		"xact_commit": db[2], "xact_rollback": db[3], "deadlocks": db[4],
		"temp_files": db[5], "temp_bytes": db[6],
	}
	if p.prev != nil {
		for k, v := range cur {
			smp.Values[k] = probe.Delta(v, p.prev[k])
		}
	}
	p.prev = cur
	p.stmts.sample(ctx, conn, now, &smp)
	p.tables.sample(ctx, conn, &smp)
	return smp, nil
}

// Activity turns the client backends of one pg_stat_activity snapshot into
// a sample with the state, wait, blocking and age keys.
func Activity(now time.Time, backends []Backend) stampede.Sample {
	v := map[string]float64{
		"backends":                            float64(len(backends)),
		"state:active":                        0,
		"state:idle":                          0,
		"state:idle in transaction":           0,
		"state:idle in transaction (aborted)": 0,
		"wait:Lock":                           0,
		"wait:LWLock":                         0,
		"wait:IO":                             0,
		"wait:Client":                         0,
		"wait:CPU":                            0,
		"blocked":                             0,
		"blockers":                            0,
		"oldest_xact_s":                       0,
		"oldest_query_s":                      0,
	}
	byPID := make(map[int32]*Backend, len(backends))
	blockers := map[int32]bool{}
	for i := range backends {
		b := &backends[i]
		byPID[b.PID] = b
		if b.State != "" {
			v["state:"+b.State]++
		}
		if b.WaitType != "" {
			v["wait:"+b.WaitType]++
			if b.WaitType == "Lock" && b.WaitEvent != "" {
				v["wait:Lock:"+b.WaitEvent]++
			}
		} else if b.State == "active" {
			v["wait:CPU"]++
		}
		if len(b.BlockedBy) > 0 {
			v["blocked"]++
			for _, q := range b.BlockedBy {
				blockers[q] = true
			}
		}
		if b.XactAge > v["oldest_xact_s"] {
			v["oldest_xact_s"] = b.XactAge
		}
		if b.State == "active" && b.QueryAge > v["oldest_query_s"] {
			v["oldest_query_s"] = b.QueryAge
		}
	}
	v["blockers"] = float64(len(blockers))
	smp := stampede.Sample{Time: now, Source: "postgres", Values: v}
	if lines := blockedLines(backends, byPID); len(lines) > 0 {
		smp.Info = map[string]string{"blocked": strings.Join(lines, "\n")}
	}
	if lines := activeLines(backends); len(lines) > 0 {
		if smp.Info == nil {
			smp.Info = map[string]string{}
		}
		smp.Info["active"] = strings.Join(lines, "\n")
	}
	return smp
}

// maxActiveLines bounds Info["active"].
const maxActiveLines = 10

// activeLines groups the active backends by wait and normalized query:
// "COUNT\tWAIT\tQUERY", most backends first, then by wait and query.
func activeLines(backends []Backend) []string {
	type group struct {
		wait, query string
		n           int
	}
	idx := map[[2]string]int{}
	var groups []group
	for _, b := range backends {
		if b.State != "active" {
			continue
		}
		wait := "CPU"
		if b.WaitType != "" {
			wait = b.WaitType + ":" + b.WaitEvent
		}
		q := normalizeQuery(b.Query, maxQueryText)
		k := [2]string{wait, q}
		i, ok := idx[k]
		if !ok {
			i = len(groups)
			idx[k] = i
			groups = append(groups, group{wait: wait, query: q})
		}
		groups[i].n++
	}
	sort.Slice(groups, func(i, j int) bool {
		a, b := groups[i], groups[j]
		if a.n != b.n {
			return a.n > b.n
		}
		if a.wait != b.wait {
			return a.wait < b.wait
		}
		return a.query < b.query
	})
	lines := make([]string, 0, min(len(groups), maxActiveLines))
	for _, g := range groups[:min(len(groups), maxActiveLines)] {
		lines = append(lines, strconv.Itoa(g.n)+"\t"+g.wait+"\t"+g.query)
	}
	return lines
}

// blockedLines describes each blocked session and its blockers, in pid
// order.
func blockedLines(backends []Backend, byPID map[int32]*Backend) []string {
	var blocked []Backend
	for _, b := range backends {
		if len(b.BlockedBy) > 0 {
			blocked = append(blocked, b)
		}
	}
	sort.Slice(blocked, func(i, j int) bool { return blocked[i].PID < blocked[j].PID })
	var lines []string
	for _, b := range blocked {
		var by []string
		for _, q := range b.BlockedBy {
			if bb, ok := byPID[q]; ok {
				by = append(by, fmt.Sprintf("%d (%s, xact %s: %s)", q, or(bb.State, "unknown state"), age(bb.XactAge),
					or(shortQuery(bb.Query, blockerQueryText), "no query")))
			} else {
				by = append(by, fmt.Sprintf("%d (not a client backend)", q))
			}
		}
		lines = append(lines, fmt.Sprintf("pid %d (%s) blocked by %s: %s",
			b.PID, or(b.WaitEvent, "no wait event"), strings.Join(by, ", "), normalizeQuery(b.Query, maxQueryText)))
	}
	return lines
}

// blockerQueryText bounds a blocker's query in Info["blocked"] (its head
// and its tail, see shortQuery).
const blockerQueryText = 80

func age(s float64) string {
	if s < 0 {
		return "none"
	}
	return strconv.FormatFloat(s, 'f', 1, 64) + "s"
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
