package postgres

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/probe"
)

// Sequential scans, from pg_stat_user_tables: a query without the index it
// needs reads its whole table every time it runs, and the rows read by
// sequential scans between two readings say which table that is, even when
// no statement was logged. The keys (source "postgres"):
//
//	seq_scan_delta       sequential scans started since the previous reading,
//	                     over the user tables
//	seq_tup_read_delta   rows they read
//	idx_scan_delta       index scans started
//
// and Info["seq_scans"]: the 3 tables whose sequential scans read the most
// rows since the previous reading, "TABLE\tSEQ_SCANS\tROWS_READ\tIDX_SCANS"
// a line, most rows first (tables whose scans read nothing left out).

// tablesQuery reads the counters of the user tables with the most rows read
// by sequential scans, bounded so that a database of thousands of tables
// costs the same.
const tablesQuery = probeMark + `
SELECT schemaname || '.' || relname, coalesce(seq_scan, 0)::float8, coalesce(seq_tup_read, 0)::float8,
       coalesce(idx_scan, 0)::float8
FROM pg_stat_user_tables ORDER BY seq_tup_read DESC NULLS LAST LIMIT 200`

// topTables is the number of lines of Info["seq_scans"].
const topTables = 3

// tableStat is one table's cumulative counters.
type tableStat struct{ seqScan, seqRead, idxScan float64 }

// tables keeps the previous reading of pg_stat_user_tables.
type tables struct {
	prev map[string]tableStat
}

// sample adds the sequential-scan keys to smp. A failure leaves them out
// and is noted in Info["tables_error"]: the sample is good otherwise.
func (t *tables) sample(ctx context.Context, conn *pgx.Conn, smp *stampede.Sample) {
	rows, err := conn.Query(ctx, tablesQuery)
	if err != nil {
		t.fail(smp, err)
		return
	}
	cur := make(map[string]tableStat, 64)
	for rows.Next() {
		var name string
		var s tableStat
		if err := rows.Scan(&name, &s.seqScan, &s.seqRead, &s.idxScan); err != nil {
			rows.Close()
			t.fail(smp, err)
			return
		}
		cur[name] = s
	}
	if err := rows.Err(); err != nil {
		t.fail(smp, err)
		return
	}
	prev := t.prev
	t.prev = cur
	if prev == nil {
		return // deltas from the next reading on
	}
	seqScans(prev, cur, smp)
}

func (t *tables) fail(smp *stampede.Sample, err error) {
	t.prev = nil
	if smp.Info == nil {
		smp.Info = map[string]string{}
	}
	smp.Info["tables_error"] = probe.ErrText(err)
}

// seqScans adds to smp the deltas between two readings of the tables'
// counters: the summed keys and the Info["seq_scans"] lines. A table new in
// cur counts from zero; a counter that went back (statistics reset) counts
// from its new value.
func seqScans(prev, cur map[string]tableStat, smp *stampede.Sample) {
	type row struct {
		name string
		d    tableStat
	}
	var rs []row
	var sum tableStat
	for name, c := range cur {
		p := prev[name]
		d := tableStat{probe.Delta(c.seqScan, p.seqScan), probe.Delta(c.seqRead, p.seqRead), probe.Delta(c.idxScan, p.idxScan)}
		sum.seqScan += d.seqScan
		sum.seqRead += d.seqRead
		sum.idxScan += d.idxScan
		if d.seqRead > 0 {
			rs = append(rs, row{name, d})
		}
	}
	if smp.Values == nil {
		smp.Values = map[string]float64{}
	}
	smp.Values["seq_scan_delta"] = sum.seqScan
	smp.Values["seq_tup_read_delta"] = sum.seqRead
	smp.Values["idx_scan_delta"] = sum.idxScan
	if len(rs) == 0 {
		return
	}
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].d.seqRead != rs[j].d.seqRead {
			return rs[i].d.seqRead > rs[j].d.seqRead
		}
		return rs[i].name < rs[j].name
	})
	var lines []string
	for i, r := range rs {
		if i == topTables {
			break
		}
		lines = append(lines, fmt.Sprintf("%s\t%.0f\t%.0f\t%.0f", r.name, r.d.seqScan, r.d.seqRead, r.d.idxScan))
	}
	if smp.Info == nil {
		smp.Info = map[string]string{}
	}
	smp.Info["seq_scans"] = strings.Join(lines, "\n")
}
