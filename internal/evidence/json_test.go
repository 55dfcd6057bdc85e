package evidence

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stampede-load/stampede"
)

// TestScanJSON checks the reader against encoding/json: it accepts the
// objects encoding/json accepts and flattens their leaves.
func TestScanJSON(t *testing.T) {
	tests := []struct {
		in   string
		ok   bool
		want map[string]string // key → decoded value
	}{
		{`{"a":1,"b":"x\ny","c":{"d":true,"e":null},"f":["s","t"],"g":[{"h":"i"}],"j":[1,"k"]}`, true,
			map[string]string{"a": "1", "b": "x\ny", "c.d": "true", "c.e": "null", "f": `["s","t"]`, "g.0.h": "i"}},
		{`  {"log.level":"error","error":{"stack_trace":"E: x"}}  `, true, map[string]string{"log.level": "error", "error.stack_trace": "E: x"}},
		{`{"u":"\u00e9\ud83d\ude00\ud800"}`, true, map[string]string{"u": "é😀\uFFFD"}},
		{`{}`, true, map[string]string{}},
		{`{"a":1`, false, nil},
		{`{"a":1}x`, false, nil},
		{`{"a":01}`, false, nil},
		{`{"a":"\x"}`, false, nil},
		{`{a:1}`, false, nil},
		{`[1,2]`, false, nil},
		{`{"a":` + strings.Repeat(`{"b":`, maxJSONDepth) + `1` + strings.Repeat(`}`, maxJSONDepth) + `}`, false, nil},
	}
	for _, tt := range tests {
		fields, ok := scanJSON(tt.in, nil)
		if ok != tt.ok {
			t.Errorf("scanJSON(%q) ok = %v, want %v", tt.in, ok, tt.ok)
			continue
		}
		if !ok {
			continue
		}
		got := map[string]string{}
		for i := range fields {
			got[fields[i].key] = fields[i].text()
		}
		for k, v := range tt.want {
			if got[k] != v {
				t.Errorf("scanJSON(%q)[%q] = %q, want %q", tt.in, k, got[k], v)
			}
		}
		if len(got) != len(tt.want) {
			t.Errorf("scanJSON(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestJSONTimeAndLevel: the time and level fields of the common loggers.
func TestJSONTimeAndLevel(t *testing.T) {
	want := time.Date(2026, 12, 6, 10, 0, 0, 123000000, time.UTC)
	for _, tt := range []struct{ line, level string }{
		{`{"level":50,"time":1796551200123,"msg":"pino"}`, "ERROR"},
		{`{"level":60,"time":"2026-12-06T10:00:00.123Z","msg":"bunyan"}`, "FATAL"},
		{`{"level":"dpanic","ts":1796551200.123,"msg":"zap"}`, "ERROR"},
		{`{"level":"error","ts":"2026-12-06T10:00:00.123Z","msg":"zap iso"}`, "ERROR"},
		{`{"level":"warning","time":"2026-12-06T11:00:00.123+01:00","msg":"logrus"}`, "WARNING"},
		{`{"event":"structlog","level":"critical","timestamp":"2026-12-06T10:00:00.123000Z"}`, "CRITICAL"},
		{`{"asctime":"2026-12-06 10:00:00,123","levelname":"ERROR","message":"python-json-logger"}`, "ERROR"},
		{`{"@t":"2026-12-06T10:00:00.1230000Z","@mt":"serilog","@l":"Warning"}`, "WARNING"},
		{`{"@t":"2026-12-06T10:00:00.1230000Z","@mt":"serilog info"}`, "INFO"},
		{`{"@timestamp":"2026-12-06T10:00:00.123Z","log.level":"error","message":"ecs"}`, "ERROR"},
		{`{"@timestamp":"2026-12-06T10:00:00.123Z","log":{"level":"error"},"message":"ecs nested"}`, "ERROR"},
		{`{"timestamp":"2026-12-06T10:00:00.123Z","level":"\u001b[31merror\u001b[39m","message":"winston colour"}`, "ERROR"},
		{`{"ts":1796551200123000,"severity":"ERROR","message":"microseconds"}`, "ERROR"},
		{`{"ts":1796551200123000000,"lvl":"eror","msg":"nanoseconds"}`, ""},
		{`{"time":"06/Dec/2026:10:00:00.123 +0000","level":"Error","msg":"nginx time_local"}`, "ERROR"},
	} {
		p := NewParser("app", "app.log", nil, time.UTC)
		p.KeepAll = true
		evs := append(p.Feed(tt.line, 1), p.Flush()...)
		if len(evs) != 1 {
			t.Errorf("%s: %d events", tt.line, len(evs))
			continue
		}
		ev := evs[0]
		if !ev.Time.Equal(want) || ev.Level != tt.level {
			t.Errorf("%s: time %v level %q, want %v %q", tt.line, ev.Time, ev.Level, want, tt.level)
		}
	}
}

// TestJSONTextTwin: a JSON error classifies as its text twin, the same
// traceback in a text log: same signature, class, exception and frames.
func TestJSONTextTwin(t *testing.T) {
	tb := "Traceback (most recent call last):\n  File \"/app/db.py\", line 10, in get\n    conn = engine.connect()\n" +
		"  File \"/usr/lib/python3/dist-packages/sqlalchemy/pool/impl.py\", line 134, in _do_get\n    raise exc.TimeoutError(\n" +
		"sqlalchemy.exc.TimeoutError: QueuePool limit of size 2 overflow 0 reached, connection timed out, timeout 0.10"
	node := "Error: timeout exceeded when trying to connect\n    at /app/node_modules/pg-pool/index.js:45:11\n    at async login (/app/routes.js:9:9)"
	java := "java.sql.SQLTransientConnectionException: HikariPool-1 - Connection is not available, request timed out after 30000ms (total=2, active=2, idle=0, waiting=1)\n" +
		"\tat com.zaxxer.hikari.pool.HikariPool.createTimeoutException(HikariPool.java:710)\n\tat com.example.Login.post(Login.java:20)"
	for _, tt := range []struct{ name, text, json string }{
		{"structlog", "2026-12-06 10:00:00,123 ERROR login failed\n" + tb,
			mustJSON(map[string]any{"event": "login failed", "level": "error", "timestamp": "2026-12-06T10:00:00.123Z", "exception": tb})},
		{"pino", "2026-12-06 10:00:00,123 ERROR login failed\n" + node,
			mustJSON(map[string]any{"level": 50, "time": 1796551200123, "msg": "login failed", "err": map[string]any{"type": "Error", "message": "timeout exceeded when trying to connect", "stack": node}})},
		{"ecs", "2026-12-06 10:00:00,123 ERROR login failed\n" + java,
			mustJSON(map[string]any{"@timestamp": "2026-12-06T10:00:00.123Z", "log.level": "error", "message": "login failed", "error.type": "java.sql.SQLTransientConnectionException", "error.stack_trace": java})},
	} {
		text := ParseText("app", "app.log", tt.text+"\n", nil, time.UTC)
		js := ParseText("app", "app.log", tt.json+"\n", nil, time.UTC)
		if len(text) != 1 || len(js) != 1 {
			t.Fatalf("%s: %d text events, %d JSON events", tt.name, len(text), len(js))
		}
		a, b := text[0], js[0]
		if a.Signature == "" || a.Signature != b.Signature || a.Class != b.Class || a.Exception != b.Exception ||
			strings.Join(a.Stack, "|") != strings.Join(b.Stack, "|") || a.Message != b.Message || !a.Time.Equal(b.Time) {
			t.Errorf("%s: JSON event differs from its text twin:\ntext %+v\njson %+v", tt.name, a, b)
		}
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// TestJSONSecrets: the fields of a JSON line are masked like a text
// line's: by key, by pattern and by known value.
func TestJSONSecrets(t *testing.T) {
	line := `{"level":"error","msg":"login failed for alice with password=s3cr3t-pw","password":"s3cr3t-pw","db":"postgres://app:dbpass99@db/app",` +
		`"err":{"type":"Error","message":"auth failed: token=abcdef123456","stack":"Error: auth failed\n    at login (/app/a.js:1:1)"},` +
		`"req":{"headers":{"cookie":"sessionid=zzzzzzzz"}},"sessionid":"zzzzzzzz"}`
	evs := ParseText("app", "app.log", line+"\n", nil, time.UTC)
	if len(evs) != 1 {
		t.Fatalf("%d events", len(evs))
	}
	b, _ := json.Marshal(evs[0])
	for _, secret := range []string{"s3cr3t-pw", "dbpass99", "abcdef123456", "zzzzzzzz"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("secret %q in %s", secret, b)
		}
	}
}

// TestJSONNotJSON: lines that only look like JSON are read as text.
func TestJSONNotJSON(t *testing.T) {
	for _, line := range []string{
		`{"level":"error","msg":"cut`,
		`{not json} ERROR something`,
		`{"a":1} trailing ERROR`,
	} {
		evs := parseAll(line + "\n")
		if len(evs) > 1 {
			t.Errorf("%s: %d events", line, len(evs))
		}
		for _, ev := range evs {
			if ev.Message != line {
				t.Errorf("%s: message %q, want the line as text", line, ev.Message)
			}
		}
	}
}

// FuzzJSONLine feeds arbitrary lines that start like JSON objects: no
// panic, events within the limits, valid UTF-8 JSON out.
func FuzzJSONLine(f *testing.F) {
	f.Add(`{"level":50,"time":1796551200123,"msg":"x","err":{"type":"Error","message":"m","stack":"Error: m\n    at f (a.js:1:1)"}}`)
	f.Add(`{"event":"e","level":"error","exception":[{"exc_type":"T","exc_value":"v","is_cause":false,"frames":[{"filename":"a.py","lineno":1,"name":"f"}]}]}`)
	f.Add(`{"@t":"2026-12-06T10:00:00Z","@mt":"{A:0.0} {{x}} {B}","@r":["1.0"],"A":1,"@x":"System.Exception: x\n ---> Inner: y\n   at Z"}`)
	f.Add(`{"req":{"method":"GET","url":"/a?b=1"},"res":{"statusCode":500},"responseTime":12,"level":30,"time":"2026-12-06T10:00:00Z"}`)
	f.Add(`{"level":"error","ts":1.5,"caller":"a.go:1","msg":"m","error":"e","stacktrace":"main.f\n\t/a.go:1\nmain.main\n\t/a.go:2","duration":0.5,"method":"GET","path":"/"}`)
	f.Add(`{"a":"\ud800\udc00\u0000","b":[[[["x"]]]],"c":-1.5e300,"time":1e30}`)
	f.Fuzz(func(t *testing.T, line string) {
		if len(line) == 0 || line[0] != '{' {
			line = "{" + line
		}
		p := NewParser("fuzz", "f.log", nil, time.UTC)
		p.KeepAll = true
		p.Timings = NewTimings("fuzz", "f.log")
		var evs []stampede.Evidence
		evs = append(evs, p.Feed(line, 1)...)
		evs = append(evs, p.Flush()...)
		evs = append(evs, p.Timings.Flush()...)
		for _, ev := range evs {
			if len(ev.Stack) > maxFrames || len(ev.Fields) > maxFields+8 {
				t.Fatalf("%d frames, %d fields", len(ev.Stack), len(ev.Fields))
			}
			b, err := json.Marshal(ev)
			if err != nil || !utf8.Valid(b) {
				t.Fatalf("evidence does not encode: %v", err)
			}
		}
		if fields, ok := scanJSON(line, nil); ok {
			// Loggers write raw control bytes and invalid UTF-8, which
			// scanJSON keeps; anything else must be JSON's syntax.
			if !json.Valid([]byte(line)) && utf8.ValidString(line) && !hasControl(line) {
				t.Fatalf("scanJSON accepts what encoding/json rejects: %q", line)
			}
			if len(fields) > maxJSONFields {
				t.Fatalf("%d fields", len(fields))
			}
		}
	})
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 {
			return true
		}
	}
	return false
}
