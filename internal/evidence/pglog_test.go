package evidence

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParsePGHead(t *testing.T) {
	tests := []struct {
		msg  string
		want pgHead // headLen is checked as the length of head
		head string
		ok   bool
	}{
		{"duration: 1234.567 ms  statement: SELECT 1", pgHead{kind: pgDuration, durationMS: "1234.567", phase: "statement", stmt: "SELECT 1"}, "duration: 1234.567 ms", true},
		{"duration: 12.3 ms", pgHead{kind: pgDuration, durationMS: "12.3"}, "duration: 12.3 ms", true},
		{"duration: 0.050 ms  execute <unnamed>: SELECT $1", pgHead{kind: pgDuration, durationMS: "0.050", phase: "execute", stmt: "SELECT $1"}, "duration: 0.050 ms", true},
		{"duration: 1.000 ms  execute S_1: UPDATE t SET a = $1", pgHead{kind: pgDuration, durationMS: "1.000", phase: "execute", stmt: "UPDATE t SET a = $1"}, "duration: 1.000 ms", true},
		{"duration: 1.000 ms  bind <unnamed>/C_1: SELECT 1", pgHead{kind: pgDuration, durationMS: "1.000", phase: "bind", stmt: "SELECT 1"}, "duration: 1.000 ms", true},
		{"duration: 1.000 ms  parse S_2: SELECT 1", pgHead{kind: pgDuration, durationMS: "1.000", phase: "parse", stmt: "SELECT 1"}, "duration: 1.000 ms", true},
		{"duration: 20.314 ms  plan:", pgHead{kind: pgDuration, durationMS: "20.314", phase: "plan"}, "duration: 20.314 ms", true},
		{"duration: 5 s", pgHead{}, "", false},
		{"duration: ms", pgHead{}, "", false},
		{"duration: 1.0 ms statement: x", pgHead{}, "", false}, // one blank: not PostgreSQL's
		{"duration: 1.0 ms  vacuum: x", pgHead{}, "", false},
		{"process 123 still waiting for ShareLock on transaction 456 after 1000.052 ms",
			pgHead{kind: pgLock, pid: "123", mode: "ShareLock", object: "transaction 456", waitMS: "1000.052", lockEvent: "waiting"}, "*", true},
		{"process 9 acquired ExclusiveLock on relation 16386 of database 16385 after 401.418 ms",
			pgHead{kind: pgLock, pid: "9", mode: "ExclusiveLock", object: "relation 16386 of database 16385", waitMS: "401.418", lockEvent: "acquired"}, "*", true},
		{"process 30522 detected deadlock while waiting for ShareLock on transaction 731 after 100.103 ms",
			pgHead{kind: pgLock, pid: "30522", mode: "ShareLock", object: "transaction 731", waitMS: "100.103", lockEvent: "deadlock"}, "*", true},
		{"process 7 avoided deadlock for AccessExclusiveLock on relation 1 of database 2 by rearranging queue order after 1000.000 ms",
			pgHead{kind: pgLock, pid: "7", mode: "AccessExclusiveLock", object: "relation 1 of database 2", waitMS: "1000.000", lockEvent: "avoided"}, "*", true},
		{"process 7 failed to acquire ShareLock on tuple (0,1) of relation 16390 of database 16384 after 1000.1 ms",
			pgHead{kind: pgLock, pid: "7", mode: "ShareLock", object: "tuple (0,1) of relation 16390 of database 16384", waitMS: "1000.1", lockEvent: "failed"}, "*", true},
		{"process 7 still waiting for ShareLock on transaction 1 after soon", pgHead{}, "", false},
		{"process x still waiting for ShareLock on transaction 1 after 1.0 ms", pgHead{}, "", false},
		{"process 1 exited with exit code 1", pgHead{}, "", false},
		{"checkpoint starting: time", pgHead{}, "", false},
	}
	for _, tt := range tests {
		got, ok := parsePGHead(tt.msg)
		if ok != tt.ok {
			t.Errorf("%q: ok = %v, want %v", tt.msg, ok, tt.ok)
			continue
		}
		if !ok {
			continue
		}
		head := tt.head
		if head == "*" {
			head = tt.msg
		}
		if tt.msg[:got.headLen] != head {
			t.Errorf("%q: head %q, want %q", tt.msg, tt.msg[:got.headLen], head)
		}
		got.headLen = 0
		if got != tt.want {
			t.Errorf("%q:\ngot  %+v\nwant %+v", tt.msg, got, tt.want)
		}
	}
}

func TestPGHolders(t *testing.T) {
	tests := []struct{ in, holders, queue string }{
		{"Process holding the lock: 789. Wait queue: 123.", "789", "123"},
		{"Processes holding the lock: 1, 2. Wait queue: 3, 4.", "1,2", "3,4"},
		{"Process holding the lock: 30523. Wait queue: .", "30523", ""},
		{"Process 1 waits for ShareLock on transaction 2; blocked by process 3.", "", ""},
	}
	for _, tt := range tests {
		h, q, _ := pgHolders(tt.in)
		if h != tt.holders || q != tt.queue {
			t.Errorf("%q: got %q %q, want %q %q", tt.in, h, q, tt.holders, tt.queue)
		}
	}
}

func TestPGPrefixPID(t *testing.T) {
	for in, want := range map[string]string{
		"[123] app@app ":                  "123",
		"[123]: [1-1] user=app,db=app ":   "123",
		"app@app [77] ":                   "77",
		"[1-1] ":                          "",
		"x[5] ":                           "",
		"":                                "",
		"C-0x55d: app/app@127.0.0.1:5 [":  "",
		"[2026-01-11 12:59:17 UTC] [42] ": "42",
	} {
		if got := pgPrefixPID(in); got != want {
			t.Errorf("pgPrefixPID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCollapseSQL(t *testing.T) {
	tests := []struct {
		parts []string
		want  string
	}{
		{[]string{"UPDATE accounts", "\t   SET n = n + 1", "\t WHERE id = 1"}, "UPDATE accounts SET n = n + 1 WHERE id = 1"},
		{[]string{"  SELECT\t1 \n"}, "SELECT 1"},
		{[]string{"ALTER ROLE app PASSWORD 'it''s secret' VALID UNTIL 'x'"}, "ALTER ROLE app PASSWORD 'xxxxx' VALID UNTIL 'x'"},
		{[]string{"create role a login password 'p1'; alter role b password 'p2'"}, "create role a login password 'xxxxx'; alter role b password 'xxxxx'"},
		{[]string{"SELECT password FROM t WHERE password = 'x'"}, "SELECT password FROM t WHERE password = 'x'"},
		{[]string{"ALTER ROLE a PASSWORD 'unterminated"}, "ALTER ROLE a PASSWORD 'xxxxx'"},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := collapseSQL(tt.parts...); got != tt.want {
			t.Errorf("collapseSQL(%q) = %q, want %q", tt.parts, got, tt.want)
		}
	}
	long := collapseSQL("SELECT '" + strings.Repeat("é", 2000) + "'")
	if len(long) > maxStatement || !utf8.ValidString(long) {
		t.Errorf("long statement: %d bytes, valid UTF-8 %v", len(long), utf8.ValidString(long))
	}
}

func TestPGLevel(t *testing.T) {
	tests := []struct{ in, level, msg string }{
		{"[123]: [1-1] user=app,db=app,app=psql,client=127.0.0.1 LOG:  duration: 1.000 ms", "LOG", "duration: 1.000 ms"},
		{"[123]: [2-1] user=app,db=app,app=psql,client=127.0.0.1 DETAIL:  parameters: $1 = 'x'", "DETAIL", "parameters: $1 = 'x'"},
		{"[9] db=x DEBUG2:  starting", "DEBUG", "starting"},
		{"something ERROR: one blank", "", ""},
		{"see: LOG:  x", "LOG", "x"},
		{"notaLOG:  x", "", ""},
		{"[1] lower:  x", "", ""},
	}
	for _, tt := range tests {
		lv, msg, at, ok := pgLevel(tt.in)
		if lv != tt.level || msg != tt.msg || ok != (tt.level != "") {
			t.Errorf("pgLevel(%q) = %q %q %v, want %q %q", tt.in, lv, msg, ok, tt.level, tt.msg)
		}
		if ok && !strings.HasPrefix(tt.in[at:], tt.level) && tt.level != "DEBUG" {
			t.Errorf("pgLevel(%q): at %d points at %q", tt.in, at, tt.in[at:])
		}
	}
}

// FuzzPGHead checks the PostgreSQL headline parsers on arbitrary text: no
// panic, every field a piece of the input, the statement bounded.
func FuzzPGHead(f *testing.F) {
	f.Add("duration: 1234.567 ms  statement: SELECT 1")
	f.Add("duration: 0.050 ms  execute <unnamed>/C_1: SELECT $1")
	f.Add("process 123 still waiting for ShareLock on transaction 456 after 1000.052 ms")
	f.Add("process 7 avoided deadlock for AccessExclusiveLock on relation 1 of database 2 by rearranging queue order after 1000.000 ms")
	f.Add("Processes holding the lock: 1, 2. Wait queue: 3, 4.")
	f.Add("[123]: [1-1] user=app,db=app LOG:  duration: 1.000 ms")
	f.Add("ALTER ROLE a PASSWORD 'x''y'")
	f.Fuzz(func(t *testing.T, s string) {
		if h, ok := parsePGHead(s); ok {
			if h.headLen < 0 || h.headLen > len(s) {
				t.Fatalf("headLen %d of %d bytes", h.headLen, len(s))
			}
			for _, v := range []string{h.durationMS, h.stmt, h.pid, h.mode, h.object, h.waitMS} {
				if !strings.Contains(s, v) {
					t.Fatalf("field %q not in input", v)
				}
			}
			if h.kind == pgDuration && !isDecimal(h.durationMS) || h.kind == pgLock && (!isDecimal(h.waitMS) || !isDecimal(h.pid)) {
				t.Fatalf("not a number: %+v", h)
			}
		}
		if hs, q, ok := pgHolders(s); ok {
			for _, v := range []string{hs, q} {
				if strings.ContainsAny(v, " .") {
					t.Fatalf("pid list %q", v)
				}
			}
		}
		_ = pgPrefixPID(s)
		if lv, msg, at, ok := pgLevel(s); ok && (lv == "" || at < 0 || at > len(s) || !strings.HasSuffix(s, msg)) {
			t.Fatalf("pgLevel: %q %q %d", lv, msg, at)
		}
		c := collapseSQL(s, s)
		if len(c) > maxStatement || strings.Contains(c, "  ") || strings.ContainsAny(c, "\n\t") {
			t.Fatalf("collapseSQL: %q", c)
		}
		if utf8.ValidString(s) && !utf8.ValidString(c) {
			t.Fatalf("collapseSQL broke UTF-8: %q", c)
		}
	})
}
