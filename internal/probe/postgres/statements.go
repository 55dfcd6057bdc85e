package postgres

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stampede-load/stampede"
)

// Limits of the pg_stat_statements reading.
const (
	topStatements   = 5    // lines of Info["statements"]
	maxCachedTexts  = 2000 // query texts kept between readings
	statementsError = "statements_error"
)

// stmtKey identifies a pg_stat_statements entry; its top-level and nested
// rows (PostgreSQL 14+) are summed.
type stmtKey struct {
	user, db uint32
	id       int64
}

type stmtStat struct{ calls, ms float64 }

// statements reads pg_stat_statements between readings, when the probe's
// database has the extension.
type statements struct {
	recheck time.Duration // how often to look again for a missing extension

	conn    *pgx.Conn // the connection the extension was looked for on
	checked time.Time
	schema  string // the extension's schema, quoted; "" when absent
	prev    map[stmtKey]stmtStat
	texts   map[stmtKey]string // normalized query texts
	own     map[stmtKey]bool   // the probe's own queries
}

// findQuery finds the pg_stat_statements extension in the current database.
const findQuery = probeMark + `
SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'pg_stat_statements'`

// sample adds the statement keys to smp. It never fails the sample: a
// missing extension leaves the keys out, an error is noted in
// Info["statements_error"] and the extension is looked for again later.
func (s *statements) sample(ctx context.Context, conn *pgx.Conn, now time.Time, smp *stampede.Sample) {
	if conn != s.conn || (s.schema == "" && now.Sub(s.checked) >= s.recheck) {
		s.conn, s.checked, s.schema, s.prev = conn, now, "", nil
		var schema string
		err := conn.QueryRow(ctx, findQuery).Scan(&schema)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return
		case err != nil:
			s.fail(smp, err)
			return
		}
		s.schema = pgx.Identifier{schema}.Sanitize()
	}
	if s.schema == "" {
		return
	}
	cur, err := s.read(ctx, conn)
	if err != nil {
		s.fail(smp, err)
		return
	}
	prev := s.prev
	s.prev = cur
	if prev == nil {
		return // deltas from the next reading on
	}
	type delta struct {
		k     stmtKey
		calls float64
		ms    float64
	}
	var deltas []delta
	var sumMS, sumCalls float64
	for k, c := range cur {
		if s.own[k] {
			continue
		}
		p, ok := prev[k]
		d := delta{k: k, calls: c.calls, ms: c.ms}
		if ok && c.calls >= p.calls && c.ms >= p.ms {
			d.calls, d.ms = c.calls-p.calls, c.ms-p.ms
		}
		// An entry new since the last reading (or reset, or evicted and
		// back) counts in full: it ran since then.
		if d.calls <= 0 && d.ms <= 0 {
			continue
		}
		sumMS += d.ms
		sumCalls += d.calls
		deltas = append(deltas, d)
	}
	smp.Values["stmt_exec_ms_delta"] = sumMS
	smp.Values["stmt_calls_delta"] = sumCalls
	sort.Slice(deltas, func(i, j int) bool {
		if deltas[i].ms != deltas[j].ms {
			return deltas[i].ms > deltas[j].ms
		}
		return deltas[i].k.id < deltas[j].k.id
	})
	// Texts of the leaders, fetched once each; the probe's own queries
	// are recognised by their mark and left out.
	cand := deltas[:min(len(deltas), 2*topStatements)]
	var missing []int64
	for _, d := range cand {
		if !s.known(d.k) {
			missing = append(missing, d.k.id)
		}
	}
	if len(missing) > 0 {
		if err := s.fetchTexts(ctx, conn, missing); err != nil {
			s.fail(smp, err)
			return
		}
	}
	var lines []string
	for _, d := range cand {
		if s.own[d.k] {
			continue
		}
		text, ok := s.texts[d.k]
		if !ok {
			text = "(query text not available)"
		}
		mean := 0.0
		if d.calls > 0 {
			mean = d.ms / d.calls
		}
		lines = append(lines, strconv.FormatFloat(d.calls, 'f', 0, 64)+"\t"+
			strconv.FormatFloat(d.ms, 'f', 3, 64)+"\t"+strconv.FormatFloat(mean, 'f', 3, 64)+"\t"+text)
		if len(lines) == topStatements {
			break
		}
	}
	if len(lines) > 0 {
		if smp.Info == nil {
			smp.Info = map[string]string{}
		}
		smp.Info["statements"] = strings.Join(lines, "\n")
	}
}

func (s *statements) known(k stmtKey) bool {
	_, ok := s.texts[k]
	return ok || s.own[k]
}

// fail notes err and forgets the extension, to look for it again at the
// next recheck.
func (s *statements) fail(smp *stampede.Sample, err error) {
	if smp.Info == nil {
		smp.Info = map[string]string{}
	}
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200]
	}
	smp.Info[statementsError] = msg
	s.schema, s.prev = "", nil
}

// read returns the counters of every entry, without the query texts
// (pg_stat_statements(false) does not read the texts file).
func (s *statements) read(ctx context.Context, conn *pgx.Conn) (map[stmtKey]stmtStat, error) {
	rows, err := conn.Query(ctx, probeMark+`SELECT userid, dbid, coalesce(queryid, 0), calls::float8, total_exec_time
		FROM `+s.schema+`.pg_stat_statements(false)`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cur := map[stmtKey]stmtStat{}
	for rows.Next() {
		var k stmtKey
		var c stmtStat
		if err := rows.Scan(&k.user, &k.db, &k.id, &c.calls, &c.ms); err != nil {
			return nil, err
		}
		old := cur[k]
		cur[k] = stmtStat{old.calls + c.calls, old.ms + c.ms}
	}
	return cur, rows.Err()
}

// fetchTexts caches the normalized texts of the entries with these query
// ids, and which of them are the probe's own.
func (s *statements) fetchTexts(ctx context.Context, conn *pgx.Conn, ids []int64) error {
	rows, err := conn.Query(ctx, probeMark+`SELECT userid, dbid, coalesce(queryid, 0), left(query, 2000)
		FROM `+s.schema+`.pg_stat_statements(true) WHERE coalesce(queryid, 0) = ANY($1)`, ids)
	if err != nil {
		return err
	}
	defer rows.Close()
	if s.texts == nil || len(s.texts) > maxCachedTexts {
		s.texts = map[stmtKey]string{}
	}
	if s.own == nil {
		s.own = map[stmtKey]bool{}
	}
	for rows.Next() {
		var k stmtKey
		var q string
		if err := rows.Scan(&k.user, &k.db, &k.id, &q); err != nil {
			return err
		}
		if strings.Contains(q, strings.TrimSpace(probeMark)) {
			s.own[k] = true
		} else {
			s.texts[k] = normalizeQuery(q, maxQueryText)
		}
	}
	return rows.Err()
}
