package diagnose

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// What a statement's words say (latency-attribution.md §5). A statement
// that locks rows — SELECT … FOR UPDATE/FOR SHARE, an UPDATE or DELETE of
// one row by its key, an upsert — and that PostgreSQL logged as slow
// while other sessions ran the same statement at the same moments spent
// its time waiting for the row's lock, not working: its plan is one index
// lookup. Such statements are lock contention even when log_lock_waits
// said nothing; slow-query keeps the statements that are slow by their own
// plan.

// rowLock is what a row-locking statement locks.
type rowLock struct {
	kind  string // "SELECT … FOR UPDATE", "UPDATE", "DELETE", "INSERT … ON CONFLICT"
	table string
	row   string // the WHERE clause (or the conflict target), as logged
}

// lockingStatement reads a statement's words: whether it locks rows, which
// table and which rows. A FOR UPDATE … SKIP LOCKED never waits, and an
// UPDATE or DELETE over a range (IN, <, >, BETWEEN, LIKE) or without a
// WHERE is not a one-row lock.
func lockingStatement(sql string) (rowLock, bool) {
	s := strings.Join(strings.Fields(sql), " ")
	low := strings.ToLower(s)
	if strings.Contains(low, "skip locked") {
		return rowLock{}, false
	}
	for _, lk := range []string{" for update", " for no key update", " for share", " for key share"} {
		i := strings.Index(low, lk)
		if i < 0 || !strings.HasPrefix(strings.TrimLeft(low, "( "), "select") && !strings.HasPrefix(low, "with") {
			continue
		}
		rl := rowLock{kind: "SELECT …" + strings.ToUpper(lk), table: identAfter(s, low, " from ")}
		rl.row = clauseAfter(s[:i], low[:i], " where ")
		return rl, rl.table != ""
	}
	switch {
	case strings.HasPrefix(low, "update "):
		rl := rowLock{kind: "UPDATE", table: identAfter(s, low, "update ")}
		rl.row = clauseAfter(s, low, " where ")
		return rl, rl.table != "" && oneRow(strings.ToLower(rl.row))
	case strings.HasPrefix(low, "delete from "):
		rl := rowLock{kind: "DELETE", table: identAfter(s, low, "delete from ")}
		rl.row = clauseAfter(s, low, " where ")
		return rl, rl.table != "" && oneRow(strings.ToLower(rl.row))
	case strings.HasPrefix(low, "insert into ") && strings.Contains(low, " on conflict ") && strings.Contains(low, " do update"):
		rl := rowLock{kind: "INSERT … ON CONFLICT DO UPDATE", table: identAfter(s, low, "insert into ")}
		rl.row = clauseAfter(s, low, " on conflict ")
		return rl, rl.table != ""
	}
	return rowLock{}, false
}

// oneRow reports whether a WHERE clause (lower case) selects rows by
// equality only: a key, not a range.
func oneRow(where string) bool {
	if where == "" || !strings.Contains(where, "=") {
		return false
	}
	for _, r := range []string{" in (", " in(", "<", ">", " between ", " like ", " ilike ", " any(", " any (", " or "} {
		if strings.Contains(where, r) {
			return false
		}
	}
	return true
}

// identAfter returns the identifier after marker in s (low is s in lower
// case), without quotes: "public.work_counter".
func identAfter(s, low, marker string) string {
	i := strings.Index(low, marker)
	if i < 0 {
		return ""
	}
	rest := strings.TrimLeft(s[i+len(marker):], " ")
	j := 0
	for j < len(rest) && (isWordByte(rest[j]) || rest[j] == '.' || rest[j] == '"' || rest[j] == '`') {
		j++
	}
	return strings.NewReplacer(`"`, "", "`", "").Replace(rest[:j])
}

// clauseAfter returns the text after marker up to the next clause
// keyword (ORDER BY, LIMIT, RETURNING, FOR, DO), clipped.
func clauseAfter(s, low, marker string) string {
	i := strings.Index(low, marker)
	if i < 0 {
		return ""
	}
	rest, lrest := s[i+len(marker):], low[i+len(marker):]
	end := len(rest)
	for _, k := range []string{" order by ", " limit ", " returning ", " for ", " do ", " offset "} {
		if j := strings.Index(lrest, k); j >= 0 && j < end {
			end = j
		}
	}
	return clipText(strings.TrimSpace(rest[:end]), 120)
}

// rowLockGroup is the logged slow runs of one row-locking statement.
type rowLockGroup struct {
	lock    rowLock
	text    string
	ivs     []interval
	overlap int // runs that overlap another run of the same statement
}

// minLockOverlap is the share of a row-locking statement's slow runs that
// must overlap another run of it for their time to be read as a queue on
// the row: one at a time, a slow FOR UPDATE is not waiting on its peers.
const minLockOverlap = 0.5

// rowLockWaits returns the slow runs of row-locking statements that queued
// on their rows (see minLockOverlap), grouped by statement, heaviest first.
// Runs that log_lock_waits or the probe already show waiting are included
// too: the words and the waits agree.
func (c *ctx) rowLockWaits() []*rowLockGroup {
	if c.rowLocks != nil {
		return *c.rowLocks
	}
	by := map[string]*rowLockGroup{}
	var out []*rowLockGroup
	for _, iv := range c.slowStatements() {
		text := statementOf(iv.ev)
		rl, ok := lockingStatement(text)
		if !ok {
			continue
		}
		k := normalizeSQL(text)
		g := by[k]
		if g == nil {
			g = &rowLockGroup{lock: rl, text: text}
			by[k] = g
			out = append(out, g)
		}
		g.ivs = append(g.ivs, iv)
	}
	kept := out[:0]
	for _, g := range out {
		sort.Slice(g.ivs, func(i, j int) bool { return g.ivs[i].from.Before(g.ivs[j].from) })
		// A run overlaps another when it starts before the latest end
		// of the runs before it, or the next one starts before it ends.
		var latest time.Time
		for i, iv := range g.ivs {
			over := i > 0 && iv.from.Before(latest)
			if !over && i+1 < len(g.ivs) && g.ivs[i+1].from.Before(iv.to) {
				over = true
			}
			if over {
				g.overlap++
			}
			if iv.to.After(latest) {
				latest = iv.to
			}
		}
		if len(g.ivs) >= 2 && float64(g.overlap) >= minLockOverlap*float64(len(g.ivs)) {
			kept = append(kept, g)
		}
	}
	sort.SliceStable(kept, func(i, j int) bool { return totalMs(kept[i].ivs) > totalMs(kept[j].ivs) })
	c.rowLocks = &kept
	return kept
}

// isRowLockWait reports whether a logged statement is one of the queued
// row-locking runs.
func (c *ctx) isRowLockWait(iv interval) bool {
	for _, g := range c.rowLockWaits() {
		for _, x := range g.ivs {
			if x.ev == iv.ev {
				return true
			}
		}
	}
	return false
}

func totalMs(ivs []interval) float64 {
	t := 0.0
	for _, iv := range ivs {
		t += iv.ms
	}
	return t
}

// describe says what the statement's words and runs show, for the
// evidence.
func (g *rowLockGroup) describe() string {
	where := ""
	if g.lock.row != "" {
		where = fmt.Sprintf(", row %s", g.lock.row)
	}
	return fmt.Sprintf("PostgreSQL logged %d slow runs of a row-locking statement (%s on %s%s), median %s, longest %s, %d of them while another session ran the same statement: it locks one row by its key, a lookup that takes milliseconds alone, so its seconds were spent waiting for that row's lock, not working: %s",
		len(g.ivs), g.lock.kind, g.lock.table, where, secs(medianMs(g.ivs)), secs(maxMs(g.ivs)), g.overlap, clipText(g.text, 200))
}
