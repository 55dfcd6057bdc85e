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
// ("[27/Nov/2025 09:26:00]"). Times without a zone are read in the
// parser's location.
//
// A line with a timestamp starts an event; the lines without one that
// follow belong to it. A line without a timestamp that does not look like
// part of a stack trace starts an event of its own, with a zero time.
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
//
// Seed corpora and any crashers found are kept in testdata/fuzz. The
// fixtures in testdata/parse hold a log excerpt above a "=== want ===" line
// and the expected evidence.jsonl below it; TestFixtures -update rewrites
// the expectations (go test ./internal/evidence -run TestFixtures -update).
// The real-*.log fixtures were written by real servers: run TestRealServers
// with EVIDENCE_CAPTURE=testdata/parse to capture them again.
//
// Benchmark:
//
//	go test -run='^$' -bench=BenchmarkParsePythonErrorLog -benchmem -cpu=1 ./internal/evidence
package evidence
