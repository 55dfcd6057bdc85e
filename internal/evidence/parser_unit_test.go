package evidence

import (
	"strings"
	"testing"
	"time"

	"github.com/stampede-load/stampede"
)

func parseAll(text string) []stampede.Evidence {
	return ParseText("app", "app.log", text, nil, time.UTC)
}

// TestGrouping checks where multi-line events start and end, for each
// language.
func TestGrouping(t *testing.T) {
	tests := []struct {
		name string
		text string
		refs []string // Ref of each event, in order
		exc  []string // Exception of each event
	}{
		{"python timed, chained", `2026-01-11 12:59:17,123 ERROR x
Traceback (most recent call last):
  File "a.py", line 1, in f
ValueError: a

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "a.py", line 2, in g
KeyError: 'b'
2026-01-11 12:59:18,000 ERROR y
`, []string{"app.log:1", "app.log:11"}, []string{"KeyError: 'b'", ""}},
		{"python bare tracebacks back to back", `Traceback (most recent call last):
  File "a.py", line 1, in f
ValueError: a
Traceback (most recent call last):
  File "a.py", line 2, in g
KeyError: 'b'
`, []string{"app.log:1", "app.log:4"}, []string{"ValueError: a", "KeyError: 'b'"}},
		{"python message continues", `Traceback (most recent call last):
  File "a.py", line 1, in f
psycopg2.OperationalError: query_wait_timeout
server closed the connection unexpectedly
	This probably means the server terminated abnormally

plain line
`, []string{"app.log:1", "app.log:7"}, []string{"psycopg2.OperationalError: query_wait_timeout", ""}},
		{"go panic", `panic: boom

goroutine 1 [running]:
main.main()
	/app/main.go:5 +0x25
exit status 2
something else
`, []string{"app.log:1", "app.log:7"}, []string{"panic: boom", ""}},
		{"go log.Panic", `2026/01/11 12:59:17 boom
panic: boom

goroutine 1 [running]:
main.main()
	/app/main.go:5 +0x25
`, []string{"app.log:1"}, []string{"panic: boom"}},
		{"go panic under another line", `2026/01/11 12:59:17 serving
panic: boom

goroutine 1 [running]:
main.main()
	/app/main.go:5 +0x25
`, []string{"app.log:1", "app.log:2"}, []string{"", "panic: boom"}},
		{"go error chain", `2026/01/11 12:59:17 ERROR save failed
write: disk full
2026/01/11 12:59:18 ERROR next
`, []string{"app.log:1", "app.log:3"}, []string{"", ""}},
		{"java", `2026-01-11 12:59:17,123 ERROR [main] c.e.App - failed
java.lang.IllegalStateException: outer
	at c.e.App.run(App.java:3)
Caused by: java.io.IOException: inner
	at c.e.Io.read(Io.java:9)
	... 3 more
`, []string{"app.log:1"}, []string{"java.lang.IllegalStateException: outer"}},
		{"node", `/app/x.js:3
    throw new Error("boom");
    ^

Error: boom
    at Object.<anonymous> (/app/x.js:3:11)

Node.js v20.11.0
`, []string{"app.log:1"}, []string{"Error: boom"}},
		{"ruby", `app.rb:3:in 'f': boom (RuntimeError)
	from app.rb:7:in '<main>'
`, []string{"app.log:1"}, []string{"boom (RuntimeError)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewParser("app", "app.log", nil, time.UTC)
			p.KeepAll = true
			var got []stampede.Evidence
			for i, line := range strings.SplitAfter(tt.text, "\n") {
				if line != "" {
					got = append(got, p.Feed(line, i+1)...)
				}
			}
			got = append(got, p.Flush()...)
			var refs, excs []string
			for _, ev := range got {
				refs = append(refs, ev.Ref)
				excs = append(excs, ev.Exception)
			}
			if strings.Join(refs, " ") != strings.Join(tt.refs, " ") {
				t.Errorf("refs = %q, want %q", refs, tt.refs)
			}
			if strings.Join(excs, "|") != strings.Join(tt.exc, "|") {
				t.Errorf("exceptions = %q, want %q", excs, tt.exc)
			}
		})
	}
}

// TestSpecificity: the exception of a stack beats its headline, and a
// generic signature loses to any other.
func TestSpecificity(t *testing.T) {
	tests := []struct{ name, text, sig string }{
		{"exception beats headline", `2026-01-11 12:59:17,123 ERROR django.request Internal Server Error: /accounts/login/
Traceback (most recent call last):
  File "a.py", line 1, in f
redis.exceptions.ConnectionError: max number of clients reached
`, "redis-max-clients"},
		{"unexplained 500", `2026-01-11 12:59:17,123 ERROR django.request Internal Server Error: /accounts/login/
Traceback (most recent call last):
  File "a.py", line 1, in f
KeyError: 'x'
`, "django-internal-server-error"},
		{"sqlstate is generic", "2026/01/11 12:59:17 ERROR: canceling statement due to lock timeout (SQLSTATE 55P03)\n", "pg-lock-timeout"},
		{"stack beats headline", `[2025-07-05 12:18:55 +0000] [106] [ERROR] WORKER TIMEOUT (pid:106)
Traceback (most recent call last):
  File "/usr/lib/python3/dist-packages/django/contrib/auth/hashers.py", line 297, in encode
    hash = pbkdf2(password, salt, iterations, digest=self.digest)
SystemExit: 1
`, "password-hash-frame"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs := parseAll(tt.text)
			if len(evs) != 1 || evs[0].Signature != tt.sig {
				t.Fatalf("got %+v, want one event with signature %s", evs, tt.sig)
			}
		})
	}
}

func TestKeepAll(t *testing.T) {
	text := "2026-01-11 12:59:17,123 INFO quiet line\n2026-01-11 12:59:17,124 ERROR loud line\n"
	if evs := parseAll(text); len(evs) != 1 || evs[0].Level != "ERROR" {
		t.Errorf("default: got %+v, want the ERROR line only", evs)
	}
	p := NewParser("app", "app.log", nil, time.UTC)
	p.KeepAll = true
	var n int
	for i, l := range strings.SplitAfter(text, "\n") {
		n += len(p.Feed(l, i+1))
	}
	n += len(p.Flush())
	if n != 2 {
		t.Errorf("KeepAll: %d events, want 2", n)
	}
}

func TestParseKV(t *testing.T) {
	got := parseKV(`auth_debug status=500 user=- csrf_cookie=True msg="a \"b\" c" (age=10s) bad= =x`, nil)
	want := map[string]string{"status": "500", "user": "-", "csrf_cookie": "True", "msg": `a "b" c`, "age": "10s", "bad": ""}
	if len(got) != len(want) {
		t.Errorf("got %d fields %v, want %d", len(got), got, len(want))
	}
	for _, f := range got {
		if want[f.k] != f.value() {
			t.Errorf("%s = %q, want %q", f.k, f.value(), want[f.k])
		}
	}
}

func FuzzParseKV(f *testing.F) {
	f.Add(`status=500 user=- csrf_cookie=True`)
	f.Add(`msg="a \"b\"" x=`)
	f.Add(`time=2026-01-11T12:59:17Z level=ERROR err="unterminated`)
	f.Fuzz(func(t *testing.T, s string) {
		fields := parseKV(s, nil)
		if len(fields) > maxFields {
			t.Fatalf("%d fields", len(fields))
		}
		for _, f := range fields {
			if f.k == "" || !strings.Contains(s, f.k+"=") {
				t.Fatalf("field %q not in input", f.k)
			}
			_ = f.value()
		}
		fields, _ = parseRequestLine(s, fields[:0])
		_, _ = parseNginxTail(s, fields)
		_, _ = parsePgBouncerPrefix(s, fields)
	})
}

// FuzzParser feeds arbitrary text, line by line, and checks that every
// event points at a line that was fed and stays within the size limits.
func FuzzParser(f *testing.F) {
	f.Add("2026-01-11 12:59:17,123 ERROR x\nTraceback (most recent call last):\n  File \"a.py\", line 1, in f\nValueError: a\n")
	f.Add("panic: x\n\ngoroutine 1 [running]:\nmain.main()\n\t/a.go:1 +0x1\n")
	f.Add("2026-01-11 12:59:17.1 UTC [1] ERROR:  deadlock detected\n2026-01-11 12:59:17.1 UTC [1] DETAIL:  a\n\tb\n")
	f.Add("  + Exception Group Traceback (most recent call last):\n  | ExceptionGroup: g (1 sub-exception)\n  +-+---- 1 ----\n    | ValueError: 1\n")
	f.Add("2026-01-11 12:59:17.100 UTC [7] app@app LOG:  duration: 12.500 ms  statement: UPDATE a\n\t SET b = 1\n2026-01-11 12:59:17.100 UTC [7] app@app DETAIL:  parameters: $1 = 'x'\n\tmore\n")
	f.Add("2026-01-11 12:59:17 UTC [7]: [2-1] user=a,db=b LOG:  process 7 still waiting for ShareLock on transaction 9 after 100.0 ms\n2026-01-11 12:59:17 UTC [7]: [3-1] user=a,db=b DETAIL:  Processes holding the lock: 1, 2. Wait queue: 7.\n")
	f.Add("10.0.0.1 - - [11/Jan/2026:12:59:17 +0000] \"GET /items/42?x=1 HTTP/1.1\" 502 5 \"-\" \"k6\" rt=0.2 urt=\"0.1, 0.05\"\n")
	f.Add("{\"level\":50,\"time\":1796551200123,\"msg\":\"x\",\"err\":{\"type\":\"Error\",\"message\":\"m\",\"stack\":\"Error: m\\n    at f (a.js:1:1)\"}}\nplain text\n{\"req\":{\"method\":\"GET\",\"url\":\"/a\"},\"res\":{\"statusCode\":502},\"responseTime\":3,\"time\":\"2026-12-06T10:00:00Z\"}\n")
	f.Add("[pid: 1|app: 0|req: 1/1] 127.0.0.1 () {2 vars in 2 bytes} [Sun Dec  6 05:34:32 2026] POST /l => generated 5 bytes in 7 msecs via sendfile() (HTTP/1.1 502) 1 headers in 4 bytes (1 switches on core 0)\nDAMN ! worker 1 (pid: 2) died\n")
	f.Add("[2026-12-06T10:00:08.123Z] \"GET /i HTTP/1.1\" 503 UO 0 81 0 - \"-\" \"k6\"\n[2026-12-06T10:00:08.123Z] \"GET /i HTTP/1.1\" 200 - 0 81 4 3 \"-\"\n")
	f.Fuzz(func(t *testing.T, text string) {
		p := NewParser("fuzz", "f.log", nil, time.UTC)
		p.KeepAll = true
		p.Timings = NewTimings("fuzz", "f.log")
		lines := strings.SplitAfter(text, "\n")
		var evs []stampede.Evidence
		for i, l := range lines {
			evs = append(evs, p.Feed(l, i+1)...)
		}
		evs = append(evs, p.Flush()...)
		for _, ev := range p.Timings.Flush() {
			if n, ok := atoi(ev.Fields["count"]); !ok || n < 1 || n > len(lines) || ev.Time.IsZero() {
				t.Fatalf("timing event %+v", ev)
			}
			if _, err := fmtSscan(strings.TrimPrefix(ev.Ref, "f.log:"), new(int)); err != nil {
				t.Fatalf("timing ref %q", ev.Ref)
			}
		}
		last := 0
		for _, ev := range evs {
			var n int
			if _, err := fmtSscan(strings.TrimPrefix(ev.Ref, "f.log:"), &n); err != nil || n < 1 || n > len(lines) || n <= last {
				t.Fatalf("ref %q out of order or range (%d lines, last %d)", ev.Ref, len(lines), last)
			}
			last = n
			if len(ev.Stack) > maxFrames {
				t.Fatalf("%d frames", len(ev.Stack))
			}
		}
		if len(evs) > len(lines) {
			t.Fatalf("%d events from %d lines", len(evs), len(lines))
		}
	})
}

func fmtSscan(s string, n *int) (int, error) {
	v, ok := atoi(s)
	if !ok {
		return 0, errBadInt
	}
	*n = v
	return 1, nil
}

var errBadInt = errorString("not an int")

type errorString string

func (e errorString) Error() string { return string(e) }

// TestFeedAllocs: a line that does not become evidence costs no allocation.
func TestFeedAllocs(t *testing.T) {
	p := NewParser("app", "app.log", nil, time.UTC)
	lines := []string{
		"2026-01-11 12:59:17,123 INFO django.server \"GET /dashboard/?page=2 HTTP/1.1\" 200 4120\n",
		"2026-01-11 12:59:17.123 UTC [1] LOG C-0x1: app/app@127.0.0.1:5 login attempt: db=app user=app tls=no\n",
		"1234:M 11 Jan 2026 12:59:17.123 * Background saving started\n",
	}
	for _, l := range lines {
		p.Feed(l, 1)
	}
	i := 0
	n := testing.AllocsPerRun(200, func() {
		p.Feed(lines[i%len(lines)], i)
		i++
	})
	if n != 0 {
		t.Errorf("Feed allocates %v times per quiet line", n)
	}
}
