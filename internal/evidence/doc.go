// Package evidence turns server logs into stampede.Evidence: it reads the
// timestamps and levels of the common log formats, groups multi-line events
// (Python tracebacks with chained exceptions and 3.11 exception groups, Go
// panics, Java, Node and Ruby stack traces, PostgreSQL DETAIL/HINT lines),
// extracts the exception and stack frames, parses key=value and access-log
// fields, and classifies each event against a catalog of known error
// signatures (signatures.yaml, extendable by the user's own file).
//
// Timestamps read: Python logging ("2026-01-11 12:59:17,123"), PostgreSQL
// and PgBouncer ("2026-01-11 12:59:17.123 UTC [123] LOG: ..."), Redis
// ("1234:M 11 Jan 2026 12:59:17.123 * ..."), gunicorn
// ("[2025-07-05 12:18:55 +0000] [105] [CRITICAL] ..."), nginx's error log
// and Go's log ("2026/01/11 12:59:17 [error] ..."), access logs
// ("[11/Jan/2026:12:59:17 +0000]"), RFC 3339, slog/logfmt ("time=..."),
// Ruby's Logger ("E, [2026-01-11T12:59:17.123456 #1]"), Django runserver
// ("[27/Nov/2025 09:26:00]"), uWSGI ("Sun Dec  6 10:00:00 2026 - ..." and
// its request lines), php-fpm ("[06-Dec-2026 10:00:00] WARNING: ..."),
// Passenger ("[ E 2026-12-06 10:00:12.1234 1021/T8 file.cpp:248 ]: ..."),
// HAProxy's log line after a syslog prefix. Times without a zone are read
// in the parser's location. A syslog line without a year ("Dec  6
// 10:00:06 host prog[12]: ...") is an event of its own, without a time.
//
// Structured logs: a line that is one JSON object is one event, complete
// in itself (a log may interleave plain text lines; they are read as
// above). Its fields are read by the names the common loggers write:
//
//   - time: "time" (pino and bunyan, epoch ms or ISO; logrus; lograge),
//     "ts" (zap, epoch seconds or ISO), "timestamp" (structlog, winston),
//     "asctime" (python-json-logger), "@t" (Serilog CLEF), "@timestamp"
//     (ECS, logstash), "Timestamp" (Serilog's JsonFormatter), "date". A
//     number is seconds, milliseconds, microseconds or nanoseconds since
//     1970 by its size.
//   - level: "level" (pino/bunyan numbers 10-60, or a word in any case),
//     "severity", "lvl", "@l", "log.level", "levelname", "Level".
//   - message: "msg", "message", "@m", "RenderedMessage", "event"
//     (structlog), "@mt" and "MessageTemplate" (rendered with the event's
//     properties and CLEF's "@r").
//   - logger (Field logger): "logger", "logger_name", "log.logger", "name",
//     "SourceContext".
//   - the error: an object "err", "error", "exception", "exc" or "thrown"
//     holding a type ("type", "name", "class", "kind"), a message
//     ("message", "msg") and a stack ("stack", "stack_trace",
//     "stacktrace", "backtrace": a string, or an array of frames);
//     structlog's dict_tracebacks ("exception": [{"exc_type", "exc_value",
//     "is_cause", "frames"}]); the strings "stack", "stack_trace",
//     "stacktrace", "exception", "exc_info", "@x", "Exception",
//     "errorVerbose", "error", "err". ECS's dotted keys and nested
//     objects are the same key ("error.stack_trace"). A trace held in a
//     string (a Python traceback, a Node, Java, .NET or Ruby trace, a Go
//     stack from zap or pkg/errors) is read line by line by the same code
//     as a text log's, so that a JSON error gets the Exception, Stack and
//     Signature of its text twin; Field error_type is the error's type, or
//     the class of its exception line.
//   - a request: method ("method", "req.method", "http.request.method",
//     "RequestMethod", or "request": "GET /path"), path ("path",
//     "req.url", "url.path", "url.original", "uri", "url", "RequestPath"),
//     status ("status", "status_code", "statusCode", "res.statusCode",
//     "http.response.status_code", "StatusCode") and the server's time:
//     milliseconds in "responseTime" (pino-http, morgan-json's
//     "response-time"), "duration" (lograge; seconds in zap's lines),
//     "duration_ms", "response_time_ms", "elapsed_ms", "Elapsed"
//     (Serilog); seconds in "request_time" (nginx); nanoseconds in
//     "event.duration" (ECS). Such a line is a timed request line, as an
//     access log's (Fields method, path, status, server_ms).
//   - the other top-level values become Fields as a logfmt line's do
//     (not "v", "pid", "hostname" and the like).
//
// A line that is not such an object (bad JSON, an array, nesting deeper
// than 20, a line cut at 64 KiB) is read as text.
//
// A line with a timestamp starts an event; the lines without one that
// follow belong to it. A line without a timestamp that does not look like
// part of a stack trace starts an event of its own, with a zero time.
// PostgreSQL lines are read after any log_line_prefix that starts with a
// timestamp ('%m [%p] %q%u@%d ', '%t [%p]: [%l-1] user=%u,db=%d,...'): the
// level is found as "LEVEL:  ", and DETAIL, HINT, CONTEXT and STATEMENT
// lines join the event above them.
//
// Time spent, for the diagnosis of slow requests:
//
//   - PostgreSQL's "duration: 1234.567 ms  statement: SELECT ..." (also
//     "execute <unnamed>:", "execute S_1:", "parse", "bind", auto_explain's
//     "plan:" and log_duration's bare "duration: 12.3 ms") is signature
//     pg-slow-statement with Fields duration_ms ("1234.567"), phase
//     (statement, execute, parse, bind, plan; absent for a bare duration),
//     statement (the SQL, whitespace collapsed, at most 1000 bytes, a
//     PASSWORD literal hidden) and pid (from "[%p]" in the prefix). The
//     statement ran from Time − duration_ms to Time.
//   - log_lock_waits' "process 123 still waiting for ShareLock on
//     transaction 456 after 1000.052 ms" (pg-lock-wait), "process 123
//     acquired ..." (pg-lock-acquired-late, Field acquired "true"),
//     "process 123 detected deadlock while waiting for ..." (pg-deadlock-wait),
//     "... failed to acquire ..." and "... avoided deadlock for ..." carry
//     Fields pid ("123"), lock_mode ("ShareLock"), lock_object
//     ("transaction 456", "relation 16386 of database 16385"), wait_ms
//     ("1000.052"), holders ("789", or "1,2" from "Processes holding the
//     lock: 1, 2.") and wait_queue from the DETAIL line, and statement from
//     the STATEMENT line.
//   - Every PostgreSQL event's statement field is the collapsed STATEMENT
//     text. A DETAIL "parameters: $1 = '...'" line (bind values) is never
//     copied into an event.
//   - A request line with the server's own time gets Fields server_ms and,
//     from nginx, upstream_ms (milliseconds, as text): from rt= or
//     request_time= (seconds), urt= or upstream_response_time= (seconds, a
//     list of attempts summed), duration_ms= or response_time_ms=
//     (milliseconds), or else the line's last field after the request,
//     status and bytes: "0.123" (seconds, a '.' required: an integer has no
//     unit and is ignored), "12.3 ms" or "12.3ms". Request lines are access
//     logs (common, combined, gunicorn with %(L)s, nginx, morgan), uWSGI's
//     request log ("GET /p => generated 1234 bytes in 56 msecs (HTTP/1.1
//     200)"), Envoy's default access log (its %DURATION%; Field
//     response_flags holds %RESPONSE_FLAGS%, "UO", "UT,URX"), JSON request
//     lines (see above) and logfmt/slog lines with method= and path=.
//   - With Parser.Timings set (Watch, ParseFile and ParseText set it), the
//     timed request lines of a log, kept or not, are aggregated into one
//     Evidence per second per (method, normalized path), signature
//     access-timing: see Timings for its fields. Paths lose their query
//     string; segments of digits or UUIDs become ":id".
//
// Secrets: every event a Parser or Timings returns has its texts masked by
// package secret (Parser.Secrets, WatchOptions.Secrets): the values of
// password=, csrfmiddlewaretoken=, sessionid= and the like, Cookie,
// Set-Cookie and Authorization headers, Bearer tokens, DSN passwords, and
// the run's known secret values wherever they appear. Classification runs
// before masking, on the log's own text.
//
// Use a Parser per log (Feed, Flush), ParseFile for a whole file, or a
// Watcher to follow logs while a run goes on.
//
// Fuzzing: each parser has a native fuzz test; run them one at a time:
//
//	go test -run='^$' -fuzz=FuzzParseStamp -fuzztime=60s ./internal/evidence
//	go test -run='^$' -fuzz=FuzzParser -fuzztime=60s ./internal/evidence
//	go test -run='^$' -fuzz=FuzzParseKV -fuzztime=60s ./internal/evidence
//	go test -run='^$' -fuzz=FuzzParseCatalog -fuzztime=60s ./internal/evidence
//	go test -run='^$' -fuzz=FuzzKeywordSet -fuzztime=60s ./internal/evidence
//	go test -run='^$' -fuzz=FuzzPGHead -fuzztime=60s ./internal/evidence
//	go test -run='^$' -fuzz=FuzzAccessTiming -fuzztime=60s ./internal/evidence
//	go test -run='^$' -fuzz=FuzzJSONLine -fuzztime=60s ./internal/evidence
//
// Seed corpora and any crashers found are kept in testdata/fuzz. The
// fixtures in testdata/parse hold a log excerpt above a "=== want ===" line
// and the expected evidence.jsonl below it; TestFixtures -update rewrites
// the expectations (go test ./internal/evidence -run TestFixtures -update).
// The real-*.log fixtures were written by real servers: run TestRealServers
// with EVIDENCE_CAPTURE=testdata/parse to capture them again (the
// PostgreSQL ones, real-postgres-latency*.log included).
// real-gunicorn-access.log was written by gunicorn 20.1 with
// --access-logformat '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(L)s'.
// The json-*.log fixtures were written by the loggers themselves, around
// real pool timeouts against PostgreSQL 15 (pino 9.14 with pino-http 10.5,
// bunyan 1.8, winston 3.19, @elastic/ecs-pino-format 1.5, each logging
// pg-pool 3.14 and Knex 3.3 errors; structlog 22.3 and python-json-logger
// 2.0 logging SQLAlchemy 1.4's QueuePool timeout; zap 1.28 and logrus 1.10
// logging pgxpool's; lograge 0.10 logging ActiveRecord 6.1's), but for
// json-serilog.log and json-mixed.log, written to Serilog's documented
// layouts and by hand; uwsgi-captured.log was written by uWSGI 2.0.21 with
// harakiri = 2.
//
// Benchmarks (MB per CPU-second of the process, steady on a shared machine):
//
//	go test -run='^$' -bench=BenchmarkParsePythonErrorLog -benchmem -cpu=1 ./internal/evidence
//	go test -run='^$' -bench=BenchmarkParseAccessLog -benchmem -cpu=1 ./internal/evidence
//
// The share of the parse that masking takes (parse MB/cpu-s ÷ mask MB/cpu-s;
// about 6% of the Python log's parse, 2% of the access log's):
//
//	go test -run='^$' -bench='BenchmarkMask(Python|Access)Events' -cpu=1 ./internal/evidence
package evidence
