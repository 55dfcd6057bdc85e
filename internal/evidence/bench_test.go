package evidence

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/secret"
)

// pythonErrorLog generates a Django-style error log of about size bytes:
// mostly plain INFO/WARNING lines, with a 500 and its ~20-line chained
// traceback every tenth event.
func pythonErrorLog(size int) string {
	var b strings.Builder
	t := time.Date(2026, 1, 11, 12, 0, 0, 0, time.UTC)
	for i := 0; b.Len() < size; i++ {
		ts := t.Add(time.Duration(i) * 37 * time.Millisecond).Format("2006-01-02 15:04:05,000")
		switch i % 10 {
		case 9:
			fmt.Fprintf(&b, "%s ERROR django.request Internal Server Error: /accounts/login/\n", ts)
			b.WriteString(`Traceback (most recent call last):
  File "/usr/lib/python3/dist-packages/django/db/backends/base/base.py", line 219, in ensure_connection
    self.connect()
  File "/usr/lib/python3/dist-packages/django/utils/asyncio.py", line 26, in inner
    return func(*args, **kwargs)
  File "/usr/lib/python3/dist-packages/django/db/backends/base/base.py", line 200, in connect
    self.connection = self.get_new_connection(conn_params)
  File "/usr/lib/python3/dist-packages/psycopg/connection.py", line 728, in connect
    raise ex.with_traceback(None)
psycopg.errors.ProtocolViolation: query_wait_timeout

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/usr/lib/python3/dist-packages/django/core/handlers/exception.py", line 47, in inner
    response = get_response(request)
  File "/usr/lib/python3/dist-packages/django/contrib/auth/__init__.py", line 77, in authenticate
    user = backend.authenticate(request, **credentials)
  File "/usr/lib/python3/dist-packages/django/db/utils.py", line 90, in __exit__
    raise dj_exc_value.with_traceback(traceback) from exc_value
django.db.utils.OperationalError: query_wait_timeout
`)
		case 4:
			fmt.Fprintf(&b, "%s WARNING django.security.csrf Forbidden (CSRF cookie not set.): /accounts/login/\n", ts)
		default:
			fmt.Fprintf(&b, "%s INFO django.server \"GET /dashboard/?page=%d HTTP/1.1\" 200 %d\n", ts, i%50, 4000+i%977)
		}
	}
	return b.String()
}

// cpuMeter reports MB per CPU-second of the process (user+system time from
// getrusage), which, unlike MB/s, does not drop when the machine is shared
// and the benchmark waits for a core.
type cpuMeter struct{ start time.Duration }

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU(b *testing.B) *cpuMeter {
	b.ResetTimer()
	return &cpuMeter{start: cpuTime()}
}

func (m *cpuMeter) report(b *testing.B, bytes int) {
	cpu := cpuTime() - m.start
	if cpu > 0 {
		b.ReportMetric(float64(bytes)*float64(b.N)/1e6/cpu.Seconds(), "MB/cpu-s")
	}
}

// BenchmarkParsePythonErrorLog parses and classifies a generated Python
// error log. Run with -cpu=1 for the per-core figure:
//
//	go test -run='^$' -bench=BenchmarkParsePythonErrorLog -benchmem -cpu=1 ./internal/evidence
func BenchmarkParsePythonErrorLog(b *testing.B) {
	text := pythonErrorLog(4 << 20)
	cat := DefaultCatalog()
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	n := 0
	m := startCPU(b)
	for b.Loop() {
		p := NewParser("app", "errors.log", cat, time.UTC)
		if err := ParseReader(context.Background(), strings.NewReader(text), p, func(stampede.Evidence) { n++ }); err != nil {
			b.Fatal(err)
		}
	}
	m.report(b, len(text))
	if n == 0 {
		b.Fatal("no evidence")
	}
}

// BenchmarkParsePgBouncerLog parses a PgBouncer log where every line is a
// headline to classify (the worst case for the keyword scan).
func BenchmarkParsePgBouncerLog(b *testing.B) {
	var sb strings.Builder
	for i := 0; sb.Len() < 4<<20; i++ {
		switch i % 4 {
		case 0:
			fmt.Fprintf(&sb, "2026-01-11 12:59:%02d.%03d UTC [1] LOG C-0x55d%06x: app/app@127.0.0.1:%d closing because: query_wait_timeout (age=10s)\n", i%60, i%1000, i, 40000+i%20000)
		case 1:
			fmt.Fprintf(&sb, "2026-01-11 12:59:%02d.%03d UTC [1] WARNING C-0x55d%06x: app/app@127.0.0.1:%d pooler error: query_wait_timeout\n", i%60, i%1000, i, 40000+i%20000)
		default:
			fmt.Fprintf(&sb, "2026-01-11 12:59:%02d.%03d UTC [1] LOG C-0x55d%06x: app/app@127.0.0.1:%d login attempt: db=app user=app tls=no\n", i%60, i%1000, i, 40000+i%20000)
		}
	}
	text := sb.String()
	cat := DefaultCatalog()
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	m := startCPU(b)
	defer m.report(b, len(text))
	for b.Loop() {
		p := NewParser("pgbouncer", "pgbouncer.log", cat, time.UTC)
		if err := ParseReader(context.Background(), strings.NewReader(text), p, func(stampede.Evidence) {}); err != nil {
			b.Fatal(err)
		}
	}
}

// accessLog generates an access log of about size bytes in the shapes
// that carry the server's time: gunicorn's %(L)s, nginx's rt=/urt= pairs
// and a morgan-style "N ms", over 40 endpoints with ids in their paths, 1%
// of them 5xx, 250 lines per second.
func accessLog(size int) string {
	var b strings.Builder
	t := time.Date(2026, 1, 11, 12, 0, 0, 0, time.UTC)
	paths := []string{"/dashboard/", "/items/%d", "/items/%d/edit", "/api/orders/%d?full=1", "/accounts/login/"}
	for i := 0; b.Len() < size; i++ {
		ts := t.Add(time.Duration(i) * 4 * time.Millisecond).Format("02/Jan/2006:15:04:05 -0700")
		path := paths[i%len(paths)]
		if strings.Contains(path, "%d") {
			path = fmt.Sprintf(path, i%8)
		}
		status := 200
		if i%100 == 99 {
			status = 502
		}
		switch i % 3 {
		case 0:
			fmt.Fprintf(&b, "10.0.%d.%d - - [%s] \"GET %s HTTP/1.1\" %d %d \"-\" \"python-requests/2.31\" 0.%06d\n", i%4, i%200, ts, path, status, 4000+i%977, 1000+i%90000)
		case 1:
			fmt.Fprintf(&b, "10.0.%d.%d - - [%s] \"GET %s HTTP/1.1\" %d %d \"https://app.example/\" \"Mozilla/5.0 (X11; Linux x86_64)\" rt=0.%03d uct=\"0.000\" uht=\"0.%03d\" urt=\"0.%03d\"\n", i%4, i%200, ts, path, status, 4000+i%977, 10+i%900, 9+i%900, 9+i%900)
		default:
			fmt.Fprintf(&b, "::ffff:10.0.0.%d - - [%s] \"POST %s HTTP/1.1\" %d %d \"-\" \"k6/0.50\" %d.%03d ms\n", i%200, ts, path, status, 120, i%300, i%1000)
		}
	}
	return b.String()
}

// BenchmarkParseAccessLog parses a generated access log whose every line
// carries a server time, aggregating the timings as the Watcher does (the
// hot path of a healthy run's access log):
//
//	go test -run='^$' -bench=BenchmarkParseAccessLog -benchmem -cpu=1 ./internal/evidence
func BenchmarkParseAccessLog(b *testing.B) {
	text := accessLog(4 << 20)
	cat := DefaultCatalog()
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	timings, lines := 0, 0
	m := startCPU(b)
	for b.Loop() {
		p := NewParser("access", "access.log", cat, time.UTC)
		p.Timings = NewTimings("access", "access.log")
		err := ParseReader(context.Background(), strings.NewReader(text), p, func(ev stampede.Evidence) {
			if ev.Signature == SignatureAccessTiming {
				timings++
				n, _ := strconv.Atoi(ev.Fields["count"])
				lines += n
			}
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	m.report(b, len(text))
	if timings == 0 || lines != strings.Count(text, "\n")*b.N {
		b.Fatalf("%d lines in %d access-timing events, want %d lines", lines, timings, strings.Count(text, "\n")*b.N)
	}
	b.ReportMetric(float64(strings.Count(text, "\n"))/float64(timings/b.N), "lines/event")
}

// benchMaskEvents masks the events the parser returns for text, as
// Parser.build does, and reports MB of log per CPU-second: against the
// parse benchmark of the same log, the share of the parse that masking
// costs (parse MB/cpu-s ÷ mask MB/cpu-s), measured on a machine too busy
// to compare two runs of the parse itself.
func benchMaskEvents(b *testing.B, text string, timings bool, secrets *secret.Masker) {
	p := NewParser("app", "app.log", DefaultCatalog(), time.UTC)
	if timings {
		p.Timings = NewTimings("app", "app.log")
	}
	var evs []stampede.Evidence
	if err := ParseReader(context.Background(), strings.NewReader(text), p, func(ev stampede.Evidence) { evs = append(evs, ev) }); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(text)))
	m := startCPU(b)
	for b.Loop() {
		for i := range evs {
			secrets.Evidence(&evs[i])
		}
	}
	m.report(b, len(text))
	b.ReportMetric(float64(len(evs)), "events/op")
}

// BenchmarkMaskPythonEvents: the masking share of BenchmarkParsePythonErrorLog,
// by pattern only (as there) and with the passwords of 1,000 users.
func BenchmarkMaskPythonEvents(b *testing.B) {
	text := pythonErrorLog(4 << 20)
	b.Run("patterns", func(b *testing.B) { benchMaskEvents(b, text, false, nil) })
	b.Run("values", func(b *testing.B) { benchMaskEvents(b, text, false, benchSecrets()) })
}

// BenchmarkMaskAccessEvents: the masking share of BenchmarkParseAccessLog.
func BenchmarkMaskAccessEvents(b *testing.B) {
	text := accessLog(4 << 20)
	b.Run("patterns", func(b *testing.B) { benchMaskEvents(b, text, true, nil) })
	b.Run("values", func(b *testing.B) { benchMaskEvents(b, text, true, benchSecrets()) })
}

// benchSecrets are the passwords of 1,000 lab users (8 distinct) and a DSN's.
func benchSecrets() *secret.Masker {
	var vs []string
	for i := range 1000 {
		vs = append(vs, fmt.Sprintf("pw-%d-ahsp", 2000+i%8))
	}
	return secret.New(append(vs, "dbpw-s3cret")...)
}
