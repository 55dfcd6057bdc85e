package diagnose

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stampede-load/stampede"
)

func TestLockingStatement(t *testing.T) {
	for _, tc := range []struct {
		sql         string
		ok          bool
		table, kind string
	}{
		{`SELECT "work_logincounter"."id", "work_logincounter"."n" FROM "work_logincounter" WHERE "work_logincounter"."name" = 'global' LIMIT 21 FOR UPDATE`, true, "work_logincounter", "SELECT … FOR UPDATE"},
		{`SELECT * FROM counters WHERE name = $1 FOR NO KEY UPDATE`, true, "counters", "SELECT … FOR NO KEY UPDATE"},
		{`SELECT id FROM jobs WHERE state = 'new' LIMIT 1 FOR UPDATE SKIP LOCKED`, false, "", ""},
		{`UPDATE "login_counters" SET "count" = "count" + 1 WHERE "login_counters"."id" = $1`, true, "login_counters", "UPDATE"},
		{`UPDATE accounts SET flag = true WHERE id IN (1, 2, 3)`, false, "", ""},
		{`UPDATE accounts SET flag = true`, false, "", ""},
		{`DELETE FROM sessions WHERE session_key = 'abc'`, true, "sessions", "DELETE"},
		{`DELETE FROM sessions WHERE expires < now()`, false, "", ""},
		{`INSERT INTO stats (day, n) VALUES ('2026-12-06', 1) ON CONFLICT (day) DO UPDATE SET n = stats.n + 1`, true, "stats", "INSERT … ON CONFLICT DO UPDATE"},
		{`SELECT sum(amount) FROM work_analysis WHERE work_item_id = 12`, false, "", ""},
	} {
		rl, ok := lockingStatement(tc.sql)
		if ok != tc.ok || (ok && (rl.table != tc.table || rl.kind != tc.kind)) {
			t.Errorf("%s: got %+v %v, want table %q kind %q %v", tc.sql, rl, ok, tc.table, tc.kind, tc.ok)
		}
	}
}

// A hot row taken FOR UPDATE by every login, with log_lock_waits off and
// no PostgreSQL probe: all there is are PostgreSQL's duration lines of the
// SELECT … FOR UPDATE, seconds each, overlapping one another. The words
// say it: lock contention on that row, not a slow query needing an index.
func TestRowLockFromDurationLines(t *testing.T) {
	s := newSim(60 * time.Second)
	s.reqs(0, 60, 1, "GET", "[AUTH] Login GET", constLat(ms(30)), nil)
	s.reqs(0, 5, 1, "POST", "[AUTH] Login POST", constLat(ms(120)), nil)
	s.reqs(5, 60, 2, "POST", "[AUTH] Login POST", func(sec int) time.Duration { return ms(2400 + 100*(sec%4)) }, nil)
	s.reqs(0, 60, 3, "GET", "GET /dashboard/", constLat(ms(25)), nil)
	const q = `SELECT "work_logincounter"."id", "work_logincounter"."n" FROM "work_logincounter" WHERE "work_logincounter"."name" = 'global' FOR UPDATE`
	for sec := 6; sec < 60; sec++ {
		for k := 0; k < 3; k++ {
			d := 1800 + 300*k
			s.event(float64(sec)+0.4+0.1*float64(k), "postgres", "slow-query", fmt.Sprintf("duration: %d.000 ms  statement: %s", d, q),
				map[string]string{"duration_ms": fmt.Sprintf("%d.000", d), "statement": q, "pid": fmt.Sprint(300 + (sec*3+k)%9)})
		}
	}
	d := Diagnose(s.input())
	t.Log(describe(d))
	if len(d.Findings) == 0 || d.Findings[0].ID != IDLockContention || d.Findings[0].Status != stampede.Confirmed {
		t.Fatalf("want db-lock-contention confirmed on top; got %s", describe(d))
	}
	top := d.Findings[0]
	if !strings.Contains(top.Title, "work_logincounter") || !strings.Contains(top.Title, "global") {
		t.Errorf("the title should name the table and the row: %q", top.Title)
	}
	if top.Explains.Slow == 0 {
		t.Errorf("lock contention explains no slow login: %+v", top.Explains)
	}
	if f := findingOf(d, IDSlowQuery); f != nil && f.Explains.Total() > 0 {
		t.Errorf("slow-query claims the lock's requests: %s", describe(d))
	}
}

// The same statement words, one run at a time (no overlap): a slow
// FOR UPDATE alone is not waiting on its peers, and a heavy aggregate
// stays a slow query.
func TestRowLockNeedsQueue(t *testing.T) {
	s := newSim(60 * time.Second)
	const q = `SELECT * FROM report WHERE id = 1 FOR UPDATE`
	for sec := 5; sec < 55; sec += 5 {
		s.event(float64(sec), "postgres", "slow-query", "duration: 900.000 ms  statement: "+q,
			map[string]string{"duration_ms": "900.000", "statement": q, "pid": "77"})
	}
	c := newCtx(s.input())
	if gs := c.rowLockWaits(); len(gs) != 0 {
		t.Errorf("runs one at a time read as a queue: %+v", gs)
	}
}
