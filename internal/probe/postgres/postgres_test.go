package postgres

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestActivity(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	got := Activity(now, []Backend{
		{PID: 10, State: "idle in transaction", WaitType: "Client", WaitEvent: "ClientRead", XactAge: 12.5, QueryAge: 12.4, Query: "SELECT * FROM auth_user\n  WHERE id = 1 FOR UPDATE"},
		{PID: 11, State: "active", WaitType: "Lock", WaitEvent: "transactionid", BlockedBy: []int32{10}, XactAge: 3, QueryAge: 3, Query: "UPDATE auth_user SET last_login = now() WHERE id = 1"},
		{PID: 12, State: "active", WaitType: "Lock", WaitEvent: "tuple", BlockedBy: []int32{11, 99}, XactAge: 2, QueryAge: 2, Query: "UPDATE auth_user SET last_login = now() WHERE id = 1"},
		{PID: 13, State: "idle", WaitType: "Client", WaitEvent: "ClientRead", XactAge: -1, QueryAge: 40},
		{PID: 14, State: "active", XactAge: 0.1, QueryAge: 0.1, Query: "SELECT 1"},
		{PID: 15, State: "active", WaitType: "Lock", WaitEvent: "tuple", BlockedBy: []int32{11}, XactAge: 1, QueryAge: 1, Query: "UPDATE auth_user\n SET last_login = now() WHERE id = 7"},
	})
	want := map[string]float64{
		"backends": 6, "state:active": 4, "state:idle": 1, "state:idle in transaction": 1,
		"state:idle in transaction (aborted)": 0, "wait:Lock": 3, "wait:Lock:transactionid": 1,
		"wait:Lock:tuple": 2, "wait:Client": 2, "wait:LWLock": 0, "wait:IO": 0, "wait:CPU": 1,
		"blocked": 3, "blockers": 3, "oldest_xact_s": 12.5, "oldest_query_s": 3,
	}
	for k, w := range want {
		if g, ok := got.Values[k]; !ok || g != w {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, w)
		}
	}
	wantInfo := "pid 11 (transactionid) blocked by 10 (idle in transaction, xact 12.5s: SELECT * FROM auth_user WHERE id = ? FOR UPDATE): UPDATE auth_user SET last_login = now() WHERE id = ?\n" +
		"pid 12 (tuple) blocked by 11 (active, xact 3.0s: UPDATE auth_user SET last_login = now() WHERE id = ?), 99 (not a client backend): UPDATE auth_user SET last_login = now() WHERE id = ?\n" +
		"pid 15 (tuple) blocked by 11 (active, xact 3.0s: UPDATE auth_user SET last_login = now() WHERE id = ?): UPDATE auth_user SET last_login = now() WHERE id = ?"
	if got.Info["blocked"] != wantInfo {
		t.Errorf("Info[blocked] =\n%s\nwant\n%s", got.Info["blocked"], wantInfo)
	}
	wantActive := "2\tLock:tuple\tUPDATE auth_user SET last_login = now() WHERE id = ?\n" +
		"1\tCPU\tSELECT ?\n" +
		"1\tLock:transactionid\tUPDATE auth_user SET last_login = now() WHERE id = ?"
	if got.Info["active"] != wantActive {
		t.Errorf("Info[active] =\n%s\nwant\n%s", got.Info["active"], wantActive)
	}
	if got.Source != "postgres" || !got.Time.Equal(now) {
		t.Errorf("source/time = %q %v", got.Source, got.Time)
	}

	idle := Activity(now, nil)
	if idle.Info != nil || idle.Values["backends"] != 0 || idle.Values["blocked"] != 0 {
		t.Errorf("no backends: %+v", idle)
	}
}

func TestActiveLinesLimit(t *testing.T) {
	var bs []Backend
	for i := range 30 {
		// Query i%12 is run by i%12+1 backends per i: 12 groups, t11 the largest (2 × 12).
		for range i%12 + 1 {
			bs = append(bs, Backend{State: "active", WaitType: "IO", WaitEvent: "DataFileRead", Query: fmt.Sprintf("SELECT * FROM t%d WHERE a = %d", i%12, i)})
		}
	}
	lines := activeLines(bs)
	if len(lines) != maxActiveLines {
		t.Fatalf("%d lines, want %d", len(lines), maxActiveLines)
	}
	if !strings.HasPrefix(lines[0], "24\tIO:DataFileRead\tSELECT * FROM t11 WHERE a = ?") {
		t.Errorf("first line %q", lines[0])
	}
}

func TestNormalizeQuery(t *testing.T) {
	tests := []struct{ in, want string }{
		{"SELECT * FROM t WHERE id = 42 AND name = 'O''Brien'", "SELECT * FROM t WHERE id = ? AND name = ?"},
		{"select  a1,\n\tb_2 from t3 where x > -1.5e3 and y = .5", "select a1, b_2 from t3 where x > -? and y = ?"},
		{"SELECT E'a\\'b', B'101', X'ff', N'x', U&'d\\0061'", "SELECT ?, ?, ?, ?, ?"},
		{"SELECT $1, $2::int, $$body$$, $f$ x $f$", "SELECT $1, $2::int, ?, ?"},
		{`SELECT "col 1", "a""1" FROM "T2"`, `SELECT "col 1", "a""1" FROM "T2"`},
		{"INSERT INTO t VALUES (1, 'unterminated", "INSERT INTO t VALUES (?, ?"},
		{"UPDATE auth_user SET password = 'pbkdf2_sha256$600000$x$y' WHERE id = 3", "UPDATE auth_user SET password = ? WHERE id = ?"},
		{"SELECT café, 'é'", "SELECT café, ?"},
		{"", ""},
		{strings.Repeat("abc ", 100), strings.Repeat("abc ", 39) + "abc…"},
	}
	for _, tt := range tests {
		if got := normalizeQuery(tt.in, maxQueryText); got != tt.want {
			t.Errorf("normalizeQuery(%q) =\n%q, want\n%q", tt.in, got, tt.want)
		}
	}
}

// FuzzNormalizeQuery checks that no literal survives normalization, that
// the result is valid UTF-8 without newlines, and that it fits the limit.
func FuzzNormalizeQuery(f *testing.F) {
	f.Add("SELECT * FROM t WHERE id = 42 AND name = 'O''Brien'")
	f.Add("SELECT $1, $$x$$, E'\\'' , \"q\"\"\" FROM t")
	f.Add("UPDATE t SET a = 'secret-literal' WHERE b = 12345")
	f.Fuzz(func(t *testing.T, s string) {
		got := normalizeQuery(s, maxQueryText)
		if !utf8.ValidString(got) || strings.ContainsAny(got, "\n\t\r") || utf8.RuneCountInString(got) > maxQueryText {
			t.Fatalf("normalizeQuery(%q) = %q", s, got)
		}
		// A quoted literal in a plain query never comes through.
		q := "SELECT a FROM t WHERE b = 'zq" + strings.ReplaceAll(strings.ReplaceAll(s, "'", ""), "\\", "") + "qz'"
		if got := normalizeQuery(q, 4096); strings.Contains(got, "zq") {
			t.Fatalf("literal survived: %q", got)
		}
	})
}

// A long blocker's query keeps its head and its tail: the table and the
// FOR UPDATE.
func TestShortQuery(t *testing.T) {
	q := `SELECT "work_dailylogins"."day", "work_dailylogins"."attempts", "work_dailylogins"."last_user_id" FROM "work_dailylogins" WHERE "work_dailylogins"."day" = '2026-11-29'::date LIMIT 21 FOR UPDATE`
	got := shortQuery(q, 80)
	if n := len([]rune(got)); n > 80 {
		t.Errorf("%d characters, want at most 80: %q", n, got)
	}
	if !strings.HasPrefix(got, `SELECT "work_dailylogins"."day"`) || !strings.HasSuffix(got, "LIMIT ? FOR UPDATE") || !strings.Contains(got, " … ") || strings.Contains(got, "2026") {
		t.Errorf("shortQuery = %q", got)
	}
	if got := shortQuery("SELECT 1  FROM t", 80); got != "SELECT ? FROM t" {
		t.Errorf("a short query: %q", got)
	}
}
