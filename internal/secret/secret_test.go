package secret

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stampede-load/stampede"
)

func TestMaskPatterns(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		// key=value: query strings, form bodies, logfmt, DSNs.
		{"GET /accounts/login/?next=/x&password=hunter2 HTTP/1.1", "GET /accounts/login/?next=/x&password=xxxxx HTTP/1.1"},
		{"csrfmiddlewaretoken=abc123&login=user1&password=p%40ss", "csrfmiddlewaretoken=xxxxx&login=user1&password=xxxxx"},
		{"level=ERROR msg=\"login\" user=u1 session=9f8e7d token=\"a b\"", "level=ERROR msg=\"login\" user=u1 session=xxxxx token=\"xxxxx\""},
		{"host=db port=5432 user=app password='p w\\'x' dbname=app", "host=db port=5432 user=app password='xxxxx' dbname=app"},
		{"X-Amz-Security-Token=FQoG==&X-Amz-Date=2026", "X-Amz-Security-Token=xxxxx&X-Amz-Date=2026"},
		// Django's error report: key = 'value'.
		{"password = 'USERPASS-4'", "password = 'xxxxx'"},
		{"HTTP_COOKIE = 'csrftoken=C5; sessionid=S6'", "HTTP_COOKIE = 'xxxxx'"},
		{"HTTP_X_CSRFTOKEN = '********************'", "HTTP_X_CSRFTOKEN = '********************'"},
		{"CSRF_COOKIE_HTTPONLY = False", "CSRF_COOKIE_HTTPONLY = False"},
		// JSON, Python dicts and QueryDicts.
		{`{"login": "u1", "password": "p4ss"}`, `{"login": "u1", "password": "xxxxx"}`},
		{`{"password":"p4ss","token":12345}`, `{"password":"xxxxx","token":xxxxx}`},
		{`<QueryDict: {'csrfmiddlewaretoken': ['T0K'], 'login': ['u1'], 'password': ['p4ss']}>`, `<QueryDict: {'csrfmiddlewaretoken': [xxxxx], 'login': ['u1'], 'password': [xxxxx]}>`},
		{`{'HTTP_AUTHORIZATION': 'Bearer abc.def'}`, `{'HTTP_AUTHORIZATION': 'xxxxx'}`},
		{`{'password': ['a]b', 'c,d'], 'login': ['u1']}`, `{'password': [xxxxx], 'login': ['u1']}`},
		{`password=['a\'b`, `password=[xxxxx`},
		{`"body": "{\"password\": \"p4ss\"}"`, `"body": "{\"password\": \"xxxxx\"}"`},
		// Headers.
		{"Cookie: csrftoken=C5; sessionid=S6", "Cookie: xxxxx"},
		{"Set-Cookie: sessionid=S6; expires=Thu, 01 Jan 2026 00:00:00 GMT; HttpOnly; Path=/", "Set-Cookie: xxxxx"},
		{"Authorization: Bearer eyJhbGciOi.J9.x\nnext line", "Authorization: Bearer xxxxx\nnext line"},
		{"authorization: Basic dXNlcjpwYXNz", "authorization: Basic xxxxx"},
		{"X-CSRFToken: T0K3N", "X-CSRFToken: xxxxx"},
		{"password: hunter2", "password: xxxxx"},
		{"Password: This field is required.", "Password: This field is required."},
		// Bearer tokens anywhere.
		{"rejected token Bearer abc.def.ghi from 10.0.0.1", "rejected token Bearer xxxxx from 10.0.0.1"},
		// URL userinfo.
		{"could not connect to postgres://app:s3cr@t@127.0.0.1:6432/app?sslmode=disable", "could not connect to postgres://app:xxxxx@127.0.0.1:6432/app?sslmode=disable"},
		{"redis://:rpw@127.0.0.1:6379/0 and http://127.0.0.1:8000/x", "redis://:xxxxx@127.0.0.1:6379/0 and http://127.0.0.1:8000/x"},
		// SQL.
		{"ALTER ROLE app PASSWORD 'it''s'", "ALTER ROLE app PASSWORD 'xxxxx'"},
		// Left alone: the texts the diagnosis reads.
		{"FATAL:  password authentication failed for user \"app\"", "FATAL:  password authentication failed for user \"app\""},
		{"Forbidden (CSRF token missing or incorrect.): /accounts/login/", "Forbidden (CSRF token missing or incorrect.): /accounts/login/"},
		{"login page returned: Too many failed login attempts. Try again later.", "login page returned: Too many failed login attempts. Try again later."},
		{"auth_request method=POST path=/accounts/login/ csrf_cookie=True csrf_header=False session=None", "auth_request method=POST path=/accounts/login/ csrf_cookie=True csrf_header=False session=None"},
		{"duration: 1.2 ms  statement: SELECT 1 WHERE a == b", "duration: 1.2 ms  statement: SELECT 1 WHERE a == b"},
		{"psycopg.errors.ProtocolViolation: query_wait_timeout", "psycopg.errors.ProtocolViolation: query_wait_timeout"},
		{"", ""},
		{"password=", "password="},
		{"=password", "=password"},
		{"token=abc", "token=xxxxx"},
		{"login= password= csrfmiddlewaretoken= sessionid=S6", "login= password= csrfmiddlewaretoken= sessionid=xxxxx"},
		{"lost session_key= of  (cookie csrftoken=C5)", "lost session_key= of  (cookie csrftoken=xxxxx)"},
	} {
		if got := Mask(tc.in); got != tc.want {
			t.Errorf("Mask(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
		if got := Mask(Mask(tc.in)); got != tc.want {
			t.Errorf("Mask(Mask(%q)) = %q: masking twice changed it", tc.in, got)
		}
	}
}

func TestIsKey(t *testing.T) {
	for _, k := range []string{"password", "PASSWORD", "passwd", "new_password1", "pwd", "csrfmiddlewaretoken", "csrftoken",
		"sessionid", "SESSION_KEY", "JSESSIONID", "PHPSESSID", "HTTP_COOKIE", "Set-Cookie", "Authorization", "X-CSRFToken",
		"X-Api-Key", "api_key", "apikey", "access_token", "client_secret", "DATABASE_PASSWORD", "credentials"} {
		if !IsKey(k) {
			t.Errorf("IsKey(%q) = false, want true", k)
		}
	}
	for _, k := range []string{"", "username", "login", "next", "user", "path", "status", "method", "statement", "pid", "api", "key", "host"} {
		if IsKey(k) {
			t.Errorf("IsKey(%q) = true, want false", k)
		}
	}
}

func TestMaskValues(t *testing.T) {
	m := New("kayu-ahsp-2005", "p@ss w0rd!", "dbpw", "ab", "", "kayu-ahsp-2005")
	for _, tc := range []struct{ in, want string }{
		{"Wrong password kayu-ahsp-2005 for user0001", "Wrong password xxxxx for user0001"},
		{"login=user0001&pw=p%40ss+w0rd%21", "login=user0001&pw=xxxxx"},
		{"echo: p@ss%20w0rd%21 and p@ss w0rd!", "echo: xxxxx and xxxxx"},
		{"<b>p@ss w0rd!</b> <i>p@ss w0rd&#39;</i>", "<b>xxxxx</b> <i>p@ss w0rd&#39;</i>"},
		{"dbpwdbpw-kayu-ahsp-2005kayu-ahsp-200", "xxxxxxxxxx-xxxxxkayu-ahsp-200"},
		{"about ab, not short values", "about ab, not short values"},
		{"pass=dbpw and password=other", "pass=xxxxx and password=xxxxx"},
	} {
		if got := m.Mask(tc.in); got != tc.want {
			t.Errorf("Mask(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
	if n := New().Len(); n != 0 {
		t.Errorf("New().Len() = %d", n)
	}
	var nilM *Masker
	if got := nilM.Mask("password=x1"); got != "password=xxxxx" {
		t.Errorf("nil Masker: %q", got)
	}
}

// TestDjangoErrorReport masks the text of a real Django 3.2 error report
// (ExceptionReporter.get_traceback_text of a POST to the login with a
// password in the query and the form, cookies, a Bearer token and a CSRF
// header, DEBUG=True): no secret of the request is left.
func TestDjangoErrorReport(t *testing.T) {
	b, err := os.ReadFile("testdata/django-error-report.txt")
	if err != nil {
		t.Fatal(err)
	}
	got := Mask(string(b))
	for _, s := range []string{"QSPASS-2", "CSRFFORM-3", "USERPASS-4", "CSRFCOOKIE-5", "SESSION-6", "BEARER-7"} {
		if strings.Contains(got, s) {
			t.Errorf("%s survives masking:\n%s", s, got)
		}
	}
	// What is not a secret stays.
	for _, s := range []string{"login = 'user0001'", "Request Method: POST", "Exception Value: boom", "next = '/dashboard/'"} {
		if !strings.Contains(got, s) {
			t.Errorf("%q was lost", s)
		}
	}
}

func TestDSNPassword(t *testing.T) {
	for _, tc := range []struct{ dsn, want string }{
		{"postgres://app:s3cret@127.0.0.1:5432/app", "s3cret"},
		{"postgres://app:p%40ss@h/db", "p@ss"},
		{"redis://:rpw@127.0.0.1:6379/0", "rpw"},
		{"postgres://app@h/db?password=qpw&sslmode=disable", "qpw"},
		{"host=h user=app password=kvpw dbname=app", "kvpw"},
		{"host=h password='a b\\'c' dbname=app", "a b'c"},
		{"postgres://app@h/db", ""},
		{"host=h user=app", ""},
		{"", ""},
	} {
		if got := DSNPassword(tc.dsn); got != tc.want {
			t.Errorf("DSNPassword(%q) = %q, want %q", tc.dsn, got, tc.want)
		}
	}
}

func TestEvidenceAndSample(t *testing.T) {
	m := New("kayu-ahsp-2005")
	ev := stampede.Evidence{Message: "POST /login?password=x1 kayu-ahsp-2005", Exception: "ValueError: 'kayu-ahsp-2005'",
		Stack: []string{"login (views.py:3)"}, Fields: map[string]string{"path": "/login?password=x1", "csrftoken": "abc", "session": "True"}}
	m.Evidence(&ev)
	want := stampede.Evidence{Message: "POST /login?password=xxxxx xxxxx", Exception: "ValueError: 'xxxxx'",
		Stack: []string{"login (views.py:3)"}, Fields: map[string]string{"path": "/login?password=xxxxx", "csrftoken": "xxxxx", "session": "True"}}
	if ev.Message != want.Message || ev.Exception != want.Exception || ev.Stack[0] != want.Stack[0] {
		t.Errorf("got %+v\nwant %+v", ev, want)
	}
	for k, v := range want.Fields {
		if ev.Fields[k] != v {
			t.Errorf("field %s = %q, want %q", k, ev.Fields[k], v)
		}
	}
	s := stampede.Sample{Err: "dial postgres://app:pw@h/db: refused", Info: map[string]string{"q": "kayu-ahsp-2005"}}
	m.Sample(&s)
	if s.Err != "dial postgres://app:xxxxx@h/db: refused" || s.Info["q"] != "xxxxx" {
		t.Errorf("sample: %+v", s)
	}
}

// FuzzMask: masking never panics, keeps valid UTF-8 valid, and leaves no
// value of the Masker in its output; masking again changes nothing. Both
// hold for values without an 'x': the marker is made of x's, so such a
// value may be found again across a marker's edge (masked once more, never
// revealed).
func FuzzMask(f *testing.F) {
	f.Add("GET /x?password=hunter2 HTTP/1.1", "hunter2")
	f.Add(`{"password": "p4ss", "Cookie": "a=b"}`, "p4ss")
	f.Add("Authorization: Bearer abc\nCookie: sessionid=S6", "S6S6")
	f.Add("postgres://app:pw@h:1/db password='q' PASSWORD 'r'", "dbpw")
	f.Add("password = 'USERPASS-4'\nHTTP_COOKIE = 'csrftoken=C5'", "USERPASS-4")
	f.Add(`\"password\": \"x\"`, "aaaa")
	f.Fuzz(func(t *testing.T, s, v string) {
		m := New(v)
		for _, in := range []string{s, s + v + s, v + s} {
			out := m.Mask(in)
			if utf8.ValidString(in) && !utf8.ValidString(out) {
				t.Fatalf("Mask(%q) = %q: invalid UTF-8", in, out)
			}
			if strings.Contains(v, "x") {
				continue
			}
			if again := m.Mask(out); again != out {
				t.Fatalf("Mask(%q) = %q, masked again %q", in, out, again)
			}
			if len(v) >= MinValue && strings.Contains(out, v) {
				t.Fatalf("Mask(%q) = %q: value %q survives", in, out, v)
			}
		}
	})
}

// benchTexts are the texts of a typical Python error event: its headline,
// exception and frames.
var benchTexts = []string{
	"Internal Server Error: /accounts/login/",
	"django.db.utils.OperationalError: query_wait_timeout",
	"psycopg.errors.ProtocolViolation: query_wait_timeout",
	"ensure_connection (/usr/lib/python3/dist-packages/django/db/backends/base/base.py:219)",
	"inner (/usr/lib/python3/dist-packages/django/utils/asyncio.py:26)",
	"connect (/usr/lib/python3/dist-packages/django/db/backends/base/base.py:200)",
	"connect (/usr/lib/python3/dist-packages/psycopg/connection.py:728)",
	"inner (/usr/lib/python3/dist-packages/django/core/handlers/exception.py:47)",
	"authenticate (/usr/lib/python3/dist-packages/django/contrib/auth/__init__.py:77)",
	"__exit__ (/usr/lib/python3/dist-packages/django/db/utils.py:90)",
	"Forbidden (CSRF cookie not set.): /accounts/login/",
}

func benchMask(b *testing.B, m *Masker) {
	n := 0
	for _, s := range benchTexts {
		n += len(s)
	}
	b.SetBytes(int64(n))
	b.ReportAllocs()
	start := cpuTime()
	for b.Loop() {
		for _, s := range benchTexts {
			_ = m.Mask(s)
		}
	}
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the process's user and system time: unlike ns/op it does not
// grow when the benchmark waits for a core of a shared machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkMaskPatterns masks texts without secrets by pattern only.
func BenchmarkMaskPatterns(b *testing.B) { benchMask(b, nil) }

// BenchmarkMaskValues masks them with the passwords of 1,000 users
// (8 distinct, as the lab seeds them) and a DSN password.
func BenchmarkMaskValues(b *testing.B) {
	var vs []string
	for i := range 1000 {
		vs = append(vs, []string{"semen", "pasir", "kerikil", "besi", "bata", "kayu", "genteng", "keramik"}[i%8]+"-ahsp-"+string(rune('0'+i%8)))
	}
	benchMask(b, New(append(vs, "dbpw-s3cret")...))
}

// BenchmarkMaskManyValues masks them with 10,000 distinct passwords.
func BenchmarkMaskManyValues(b *testing.B) {
	var vs []string
	for i := range 10000 {
		vs = append(vs, "pw-"+strconv.Itoa(i*7919))
	}
	benchMask(b, New(vs...))
}

func TestMaskValuesFunc(t *testing.T) {
	got := MaskValues("session S3SS10N and token T0K and S3SS10N", "S3SS10N", "T0K", "")
	if want := "session xxxxx and token T0K and xxxxx"; got != want {
		t.Errorf("MaskValues = %q, want %q", got, want)
	}
}
