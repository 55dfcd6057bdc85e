// Package pgbouncer is the probe of a PgBouncer admin console: SHOW POOLS,
// SHOW STATS and SHOW CONFIG, read over the simple query protocol (the
// console rejects the extended one). Columns are read by name, so PgBouncer
// 1.18 through 1.25 work alike; values arrive as text and are parsed.
//
// Metric keys (source "pgbouncer"), as in docs/run-directory.md. Summed
// over every pool but the admin database "pgbouncer":
//
//	cl_active, cl_waiting, sv_active, sv_idle, sv_used, sv_login
//	maxwait_s                 the longest wait of a queued client, max
//	                          over pools, seconds (maxwait + maxwait_us)
//	pool:DB/USER:KEY          the same keys per pool
//
// SHOW STATS, deltas since the previous reading summed over databases:
//
//	xact_count, query_count, wait_time_us, query_time_us, xact_time_us
//	avg_wait_us               wait_time_us / xact_count, 0 without
//	                          transactions
//
// SHOW CONFIG: default_pool_size, reserve_pool_size, max_client_conn,
// query_wait_timeout_s, and Info "pool_mode".
package pgbouncer

import (
	"context"
	"fmt"
	"math"
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

// Probe reads a PgBouncer admin console. Create it with New.
type Probe struct {
	mu   sync.Mutex
	conn *pgconn.Conn
	prev map[string]Totals // SHOW STATS totals of the last reading, by database
}

// New returns a probe of the admin console at dsn (database "pgbouncer", a
// user in admin_users or stats_users). It only parses dsn and forces the
// simple query protocol; the first Sample connects, and any failure makes
// the next one connect again.
func New(dsn string) (*Probe, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgbouncer probe: invalid DSN %s", stampede.Redact(dsn))
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	return &Probe{conn: pgconn.New(cfg)}, nil
}

// Name returns "pgbouncer".
func (p *Probe) Name() string { return "pgbouncer" }

// Close closes the console connection.
func (p *Probe) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conn.Close()
}

// Sample runs SHOW POOLS, SHOW STATS and SHOW CONFIG.
func (p *Probe) Sample(ctx context.Context, now time.Time) (stampede.Sample, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	smp, err := p.sample(ctx, now)
	if err != nil {
		// Whatever went wrong, start from a fresh connection next time.
		p.conn.Reset()
		return stampede.Sample{}, fmt.Errorf("pgbouncer probe: %w", probe.Redacted(err, p.conn.Config().Password))
	}
	return smp, nil
}

func (p *Probe) sample(ctx context.Context, now time.Time) (stampede.Sample, error) {
	conn, err := p.conn.Get(ctx)
	if err != nil {
		return stampede.Sample{}, err
	}
	smp := stampede.Sample{Time: now, Source: "pgbouncer", Values: map[string]float64{}, Info: map[string]string{}}
	pools, err := show(ctx, conn, "POOLS")
	if err != nil {
		return stampede.Sample{}, err
	}
	Pools(smp.Values, pools)
	st, err := show(ctx, conn, "STATS")
	if err != nil {
		return stampede.Sample{}, err
	}
	cur := Stats(st)
	if p.prev != nil {
		StatsDeltas(smp.Values, cur, p.prev)
	}
	p.prev = cur
	cfg, err := show(ctx, conn, "CONFIG")
	if err != nil {
		return stampede.Sample{}, err
	}
	Config(smp.Values, smp.Info, cfg)
	return smp, nil
}

// Table is the text result of a SHOW command: column names and rows, in
// the order the console sent them.
type Table struct {
	Cols []string
	Rows [][]string
}

// Col returns the index of the named column, or -1.
func (t Table) Col(name string) int {
	for i, c := range t.Cols {
		if c == name {
			return i
		}
	}
	return -1
}

// get returns row's value of the named column, "" when absent.
func (t Table) get(row []string, name string) string {
	if i := t.Col(name); i >= 0 && i < len(row) {
		return row[i]
	}
	return ""
}

// show runs SHOW what and returns its text. Raw values are used because
// the simple protocol returns text and the console's type OIDs vary.
func show(ctx context.Context, c *pgx.Conn, what string) (Table, error) {
	rows, err := c.Query(ctx, "SHOW "+what)
	if err != nil {
		return Table{}, fmt.Errorf("SHOW %s: %w", what, err)
	}
	defer rows.Close()
	var t Table
	for _, fd := range rows.FieldDescriptions() {
		t.Cols = append(t.Cols, fd.Name)
	}
	for rows.Next() {
		raw := rows.RawValues()
		row := make([]string, len(raw))
		for i, b := range raw {
			row[i] = string(b)
		}
		t.Rows = append(t.Rows, row)
	}
	if err := rows.Err(); err != nil {
		return Table{}, fmt.Errorf("SHOW %s: %w", what, err)
	}
	return t, nil
}

// num parses a numeric text value; empty, malformed or absurd text (beyond
// the uint64 counters the console prints) gives 0.
func num(s string) float64 {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.Abs(f) > 1e20 {
		return 0
	}
	return f
}

// poolKeys are the SHOW POOLS counters summed over pools.
var poolKeys = []string{"cl_active", "cl_waiting", "sv_active", "sv_idle", "sv_used", "sv_login"}

// Pools adds the SHOW POOLS keys to v: totals over every pool except the
// admin database's, maxwait_s as the maximum, and the per-pool keys.
func Pools(v map[string]float64, t Table) {
	for _, k := range poolKeys {
		v[k] = 0
	}
	v["maxwait_s"] = 0
	for _, row := range t.Rows {
		db := t.get(row, "database")
		if db == "pgbouncer" {
			continue
		}
		prefix := "pool:" + db + "/" + t.get(row, "user") + ":"
		for _, k := range poolKeys {
			n := num(t.get(row, k))
			v[k] += n
			v[prefix+k] = n
		}
		// maxwait is whole seconds and maxwait_us the microsecond part
		// (1.18+); older versions have maxwait only.
		w := num(t.get(row, "maxwait")) + num(t.get(row, "maxwait_us"))/1e6
		v[prefix+"maxwait_s"] = w
		v["maxwait_s"] = max(v["maxwait_s"], w)
	}
}

// Totals holds one database's SHOW STATS totals: counts, and times in
// microseconds.
type Totals struct {
	Xact, Query, Wait, QueryTime, XactTime float64
}

// Stats returns the SHOW STATS totals by database, the admin database
// excepted.
func Stats(t Table) map[string]Totals {
	m := map[string]Totals{}
	for _, row := range t.Rows {
		db := t.get(row, "database")
		if db == "pgbouncer" {
			continue
		}
		m[db] = Totals{
			Xact:      num(t.get(row, "total_xact_count")),
			Query:     num(t.get(row, "total_query_count")),
			Wait:      num(t.get(row, "total_wait_time")),
			QueryTime: num(t.get(row, "total_query_time")),
			XactTime:  num(t.get(row, "total_xact_time")),
		}
	}
	return m
}

// StatsDeltas adds the SHOW STATS deltas from prev to cur to v. A database
// absent from prev counts from zero.
func StatsDeltas(v map[string]float64, cur, prev map[string]Totals) {
	var d Totals
	for db, c := range cur {
		p := prev[db]
		d.Xact += probe.Delta(c.Xact, p.Xact)
		d.Query += probe.Delta(c.Query, p.Query)
		d.Wait += probe.Delta(c.Wait, p.Wait)
		d.QueryTime += probe.Delta(c.QueryTime, p.QueryTime)
		d.XactTime += probe.Delta(c.XactTime, p.XactTime)
	}
	v["xact_count"] = d.Xact
	v["query_count"] = d.Query
	v["wait_time_us"] = d.Wait
	v["query_time_us"] = d.QueryTime
	v["xact_time_us"] = d.XactTime
	v["avg_wait_us"] = 0
	if d.Xact > 0 {
		v["avg_wait_us"] = d.Wait / d.Xact
	}
}

// Config adds the SHOW CONFIG settings the diagnosis uses to v and info.
func Config(v map[string]float64, info map[string]string, t Table) {
	for _, row := range t.Rows {
		key, val := t.get(row, "key"), t.get(row, "value")
		switch key {
		case "default_pool_size", "reserve_pool_size", "max_client_conn":
			v[key] = num(val)
		case "query_wait_timeout":
			if s, ok := ParseSeconds(val); ok {
				v["query_wait_timeout_s"] = s
			}
		case "pool_mode":
			info["pool_mode"] = val
		}
	}
}

// ParseSeconds parses a time setting as SHOW CONFIG prints it: a bare
// number of seconds ("120", "0.5"), or a number with a unit (us, ms, s,
// min, h, d), as newer versions may print.
func ParseSeconds(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.' || (i == 0 && (s[i] == '-' || s[i] == '+'))) {
		i++
	}
	n, err := strconv.ParseFloat(s[:i], 64)
	if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
		return 0, false
	}
	unit := map[string]float64{"": 1, "s": 1, "us": 1e-6, "ms": 1e-3, "min": 60, "h": 3600, "d": 86400}
	f, ok := unit[strings.TrimSpace(s[i:])]
	if !ok {
		return 0, false
	}
	return n * f, true
}
