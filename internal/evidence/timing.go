package evidence

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/secret"
)

// SignatureAccessTiming is the Signature of the Evidence that Timings
// makes: the server times of one second of one endpoint's access-log
// lines. It is not a catalog entry and has no Class.
const SignatureAccessTiming = "access-timing"

// Limits of the access-timing aggregation.
const (
	// MaxTimingPaths is how many distinct (method, path) a log may have in
	// one second; the lines of further paths are counted under the path
	// "other".
	MaxTimingPaths = 50
	// maxTimingSamples is how many server times a bucket keeps for its
	// percentiles; beyond it a uniform reservoir sample is kept (count,
	// sum and max stay exact).
	maxTimingSamples = 10000
	// timingWindow is how far, in log time, a second may lag behind the
	// newest line of its log before its buckets are emitted regardless.
	timingWindow = 30
	// maxTimingPath bounds a normalized path, in bytes.
	maxTimingPath = 200
	// maxServerMS rejects absurd server times (more than a day).
	maxServerMS = 86400e3
)

// reqTiming is the server time of one request line.
type reqTiming struct {
	server, upstream float64 // milliseconds
	hasServer, hasUp bool
}

// accessTime finds the server's own time of a request line: in the fields
// rt= or request_time= (seconds), urt= or upstream_response_time= (seconds,
// nginx; a list "0.1, 0.2" of attempts is summed), duration_ms= or
// response_time_ms= (milliseconds); else in the last field of tail (the
// text after the request line, status and bytes): "0.123" (seconds, a
// decimal point required: an integer has no unit), "12.3 ms" or "12.3ms"
// (milliseconds).
func accessTime(fields []kv, tail string) reqTiming {
	var t reqTiming
	for _, f := range fields {
		switch f.k {
		case "rt", "request_time":
			if !t.hasServer {
				t.server, t.hasServer = secondsList(f.value())
			}
		case "duration_ms", "response_time_ms":
			if !t.hasServer {
				if v, ok := parseMS(f.value()); ok {
					t.server, t.hasServer = v, true
				}
			}
		case "urt", "upstream_response_time":
			if !t.hasUp {
				t.upstream, t.hasUp = secondsList(f.value())
			}
		}
	}
	if !t.hasServer {
		t.server, t.hasServer = trailingTime(tail)
	}
	return t
}

// trailingTime reads the server time written as the last field of an
// access-log line.
func trailingTime(tail string) (float64, bool) {
	s := strings.TrimRight(tail, " \t")
	if s == "" {
		return 0, false
	}
	i := strings.LastIndexAny(s, " \t")
	last := s[i+1:]
	if (last == "ms" || last == "msecs" || last == "micros") && i > 0 {
		// "12.3 ms"; uWSGI's "56 msecs", "56000 micros".
		s = strings.TrimRight(s[:i], " \t")
		j := strings.LastIndexAny(s, " \t")
		v, ok := parseMS(s[j+1:])
		if last == "micros" {
			v /= 1000
		}
		return v, ok
	}
	if v, ok := strings.CutSuffix(last, "ms"); ok {
		return parseMS(v)
	}
	if strings.IndexByte(last, '.') < 0 {
		return 0, false
	}
	return parseSeconds(last)
}

// secondsList reads "0.120" or nginx's list of upstream attempts
// ("0.120, 0.050", "0.1 : 0.2") into their sum in milliseconds. "-" (no
// upstream) gives false.
func secondsList(s string) (float64, bool) {
	if !strings.ContainsAny(s, ",:") {
		return parseSeconds(s)
	}
	sum, any := 0.0, false
	for s != "" {
		i := strings.IndexAny(s, ",:")
		part := s
		if i >= 0 {
			part, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		if v, ok := parseSeconds(strings.TrimSpace(part)); ok {
			sum, any = sum+v, true
		}
	}
	return sum, any && sum <= maxServerMS
}

// parseSeconds reads a decimal number of seconds into milliseconds.
func parseSeconds(s string) (float64, bool) {
	if !isDecimal(s) {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v*1000 > maxServerMS {
		return 0, false
	}
	return v * 1000, true
}

// parseMS reads a decimal number of milliseconds.
func parseMS(s string) (float64, bool) {
	if !isDecimal(s) {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v > maxServerMS {
		return 0, false
	}
	return v, true
}

// isDecimal accepts "12" and "12.345": no sign, exponent or blank.
func isDecimal(s string) bool {
	n := decimalLen(s)
	return n > 0 && n == len(s)
}

// fmtMS writes milliseconds with at most three decimals (microseconds).
func fmtMS(v float64) string {
	return strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64)
}

// normPath prepares a request path for grouping: the query string and
// fragment are cut, an absolute URL loses its scheme and host, path
// segments made only of digits or shaped like a UUID (with or without
// dashes) become ":id", and the result is cut to maxTimingPath bytes.
func normPath(path string) string { return string(appendNormPath(nil, path)) }

// appendNormPath appends normPath(path) to dst without allocating when dst
// has room.
func appendNormPath(dst []byte, path string) []byte {
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	if rest, ok := strings.CutPrefix(path, "http://"); ok {
		path = rest
	} else if rest, ok := strings.CutPrefix(path, "https://"); ok {
		path = rest
	}
	if path != "" && path[0] != '/' && path != "*" {
		if i := strings.IndexByte(path, '/'); i >= 0 {
			path = path[i:]
		} else {
			path = "/"
		}
	}
	if path == "" {
		path = "/"
	}
	// Bound the work; the result is cut again below.
	if len(path) > 4*maxTimingPath {
		path = path[:4*maxTimingPath]
	}
	start := len(dst)
	for i := 0; ; i++ {
		j := strings.IndexByte(path, '/')
		seg := path
		if j >= 0 {
			seg = path[:j]
		}
		if i > 0 {
			dst = append(dst, '/')
		}
		if isIDSegment(seg) {
			dst = append(dst, ":id"...)
		} else {
			dst = append(dst, seg...)
		}
		if j < 0 || len(dst)-start > maxTimingPath {
			break
		}
		path = path[j+1:]
	}
	if len(dst)-start > maxTimingPath {
		dst = dst[:start+maxTimingPath]
	}
	return dst
}

// isIDSegment recognises a path segment that names one object: all
// digits, or a UUID (8-4-4-4-12 hex digits, or 32 without dashes).
func isIDSegment(s string) bool {
	if s == "" {
		return false
	}
	digits := true
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			digits = false
			break
		}
	}
	if digits {
		return true
	}
	switch len(s) {
	case 36:
		for i := 0; i < 36; i++ {
			if i == 8 || i == 13 || i == 18 || i == 23 {
				if s[i] != '-' {
					return false
				}
			} else if !isHex(s[i]) {
				return false
			}
		}
		return true
	case 32:
		for i := 0; i < 32; i++ {
			if !isHex(s[i]) {
				return false
			}
		}
		return true
	}
	return false
}

func isHex(c byte) bool { return isDigit(c) || isHexLetter(c) }

// methodName returns the canonical constant for an HTTP method, so that a
// bucket keeps no reference to the log line.
func methodName(m string) string {
	for _, c := range [...]string{"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE"} {
		if m == c {
			return c
		}
	}
	return strings.Clone(m)
}

// Timings aggregates the server times that a log's access lines carry
// (see Parser.Timings) into one Evidence per second per (method,
// normalized path), with Signature SignatureAccessTiming, an empty Class
// and these Fields:
//
//	method, path        path without its query string, ids replaced by ":id"
//	                    (see the package doc); "other" beyond MaxTimingPaths
//	                    distinct paths in the second
//	count               lines aggregated
//	server_ms_p50, server_ms_p95, server_ms_max, server_ms_sum
//	                    the server's own time, milliseconds (nearest-rank
//	                    percentiles)
//	status_2xx, status_3xx, status_4xx, status_5xx
//	                    lines with such a status (a login answered 200
//	                    instead of 302, pages redirected to the login)
//	upstream_count, upstream_ms_p50, upstream_ms_p95, upstream_ms_max,
//	upstream_ms_sum     nginx's upstream time, when lines carry one
//
// Time is the second (in the zone of its first line) and Ref the file:line
// of the first line of that second and endpoint. A second's buckets are
// emitted by Due once their log has moved on (see Due); lines that arrive
// for a second already emitted start a new bucket, so a consumer must sum
// the counts of the Evidence with equal time, method and path.
//
// Timings is safe for concurrent use.
type Timings struct {
	// Secrets masks the events' messages and fields: their paths lose the
	// query string, but a path may still hold a known secret value. Nil
	// masks by pattern only.
	Secrets *secret.Masker

	source, file string

	mu      sync.Mutex
	seconds map[int64]*timingSecond
	tick    uint64
	newest  int64
	rng     uint64
	key     []byte // scratch: "METHOD path" of the line being added
}

// timingSecond holds the buckets of one second of log time.
type timingSecond struct {
	byKey map[string]*timingBucket // by "METHOD path"
	paths int                      // buckets other than "other"
}

type timingBucket struct {
	sec     int64
	t       time.Time
	line    int
	touched uint64

	n            int
	ms           []float64
	sum, max     float64
	s5xx, s4xx   int
	s2xx, s3xx   int
	upN          int
	up           []float64
	upSum, upMax float64
	method, path string
}

// NewTimings returns an aggregator for the log named source (Evidence.Source)
// read from file (used in Ref).
func NewTimings(source, file string) *Timings {
	return &Timings{
		source: source, file: file,
		seconds: map[int64]*timingSecond{},
		rng:     0x9e3779b97f4a7c15,
	}
}

// add records one line. method and path may point into the log buffer:
// they are copied when kept. Adding to an existing bucket does not
// allocate (but to grow its samples).
func (a *Timings) add(t time.Time, line int, method, path, status string, rt reqTiming) {
	sec := t.Unix()
	a.mu.Lock()
	defer a.mu.Unlock()
	if sec > a.newest {
		a.newest = sec
	}
	ts := a.seconds[sec]
	if ts == nil {
		ts = &timingSecond{byKey: map[string]*timingBucket{}}
		a.seconds[sec] = ts
	}
	a.key = append(append(a.key[:0], method...), ' ')
	a.key = appendNormPath(a.key, path)
	b := ts.byKey[string(a.key)] // no allocation: the compiler sees the conversion
	if b == nil {
		if ts.paths >= MaxTimingPaths {
			a.key = append(append(a.key[:0], method...), " other"...)
			b = ts.byKey[string(a.key)]
		}
		if b == nil {
			m := methodName(method)
			b = &timingBucket{
				sec: sec, t: time.Unix(sec, 0).In(t.Location()),
				line: line, method: m, path: string(a.key[len(method)+1:]),
			}
			if b.path != "other" {
				ts.paths++
			}
			ts.byKey[m+" "+b.path] = b
		}
	}
	b.touched = a.tick
	b.n++
	b.sum += rt.server
	b.max = max(b.max, rt.server)
	b.ms = a.sample(b.ms, b.n, rt.server)
	if len(status) == 3 {
		switch status[0] {
		case '5':
			b.s5xx++
		case '4':
			b.s4xx++
		case '3':
			b.s3xx++
		case '2':
			b.s2xx++
		}
	}
	if rt.hasUp {
		b.upN++
		b.upSum += rt.upstream
		b.upMax = max(b.upMax, rt.upstream)
		b.up = a.sample(b.up, b.upN, rt.upstream)
	}
}

// sample adds the n-th value v to a reservoir of at most maxTimingSamples.
func (a *Timings) sample(s []float64, n int, v float64) []float64 {
	if len(s) < maxTimingSamples {
		return append(s, v)
	}
	// xorshift64: deterministic, so runs are reproducible.
	a.rng ^= a.rng << 13
	a.rng ^= a.rng >> 7
	a.rng ^= a.rng << 17
	if j := a.rng % uint64(n); j < maxTimingSamples {
		s[j] = v
	}
	return s
}

// Due returns the buckets that are complete: those that received no line
// since the previous call of Due, and those more than 30 s of log time
// older than the log's newest line. Call it at a steady pace (the Watcher
// does, every second): a bucket is emitted one to two calls after its
// last line.
func (a *Timings) Due() []stampede.Evidence {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tick++
	return a.take(func(b *timingBucket) bool {
		return b.touched+2 <= a.tick || b.sec < a.newest-timingWindow
	})
}

// expire returns the buckets more than 30 s of log time older than the
// log's newest line (for a whole file read at once).
func (a *Timings) expire() []stampede.Evidence {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.take(func(b *timingBucket) bool { return b.sec < a.newest-timingWindow })
}

// Flush returns every bucket still held.
func (a *Timings) Flush() []stampede.Evidence {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.take(func(*timingBucket) bool { return true })
}

// take removes the buckets done says are done and returns their Evidence,
// by time, then line. A second keeps counting its distinct paths until all
// its buckets are gone.
func (a *Timings) take(done func(*timingBucket) bool) []stampede.Evidence {
	var out []*timingBucket
	for sec, ts := range a.seconds {
		for k, b := range ts.byKey {
			if done(b) {
				out = append(out, b)
				delete(ts.byKey, k)
			}
		}
		if len(ts.byKey) == 0 {
			delete(a.seconds, sec)
		}
	}
	if len(out) == 0 {
		return nil
	}
	slices.SortFunc(out, func(x, y *timingBucket) int {
		if x.sec != y.sec {
			return cmpInt64(x.sec, y.sec)
		}
		return x.line - y.line
	})
	evs := make([]stampede.Evidence, len(out))
	for i, b := range out {
		evs[i] = a.evidence(b)
	}
	return evs
}

func cmpInt64(x, y int64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

func (a *Timings) evidence(b *timingBucket) stampede.Evidence {
	slices.Sort(b.ms)
	f := map[string]string{
		"method":        b.method,
		"path":          b.path,
		"count":         strconv.Itoa(b.n),
		"server_ms_p50": fmtMS(rank(b.ms, 50)),
		"server_ms_p95": fmtMS(rank(b.ms, 95)),
		"server_ms_max": fmtMS(b.max),
		"server_ms_sum": fmtMS(b.sum),
		"status_5xx":    strconv.Itoa(b.s5xx),
		"status_4xx":    strconv.Itoa(b.s4xx),
		"status_3xx":    strconv.Itoa(b.s3xx),
		"status_2xx":    strconv.Itoa(b.s2xx),
	}
	if b.upN > 0 {
		slices.Sort(b.up)
		f["upstream_count"] = strconv.Itoa(b.upN)
		f["upstream_ms_p50"] = fmtMS(rank(b.up, 50))
		f["upstream_ms_p95"] = fmtMS(rank(b.up, 95))
		f["upstream_ms_max"] = fmtMS(b.upMax)
		f["upstream_ms_sum"] = fmtMS(b.upSum)
	}
	ev := stampede.Evidence{
		Time:      b.t,
		Source:    a.source,
		Signature: SignatureAccessTiming,
		Message: b.method + " " + b.path + ": " + plural(b.n, "request") + ", server p50 " +
			f["server_ms_p50"] + " ms, p95 " + f["server_ms_p95"] + " ms, max " + f["server_ms_max"] + " ms",
		Fields: f,
		Ref:    a.file + ":" + strconv.Itoa(b.line),
	}
	a.Secrets.Evidence(&ev)
	return ev
}

// rank returns the p-th percentile of sorted by the nearest-rank method.
func rank(sorted []float64, p int) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := (p*len(sorted) + 99) / 100 // ceil(p/100 × n)
	return sorted[max(i, 1)-1]
}

// requestTiming reads the server time of a request line (an access-log
// line, or a logfmt line with method= and path=) into p.rt, and hands it
// to p.Timings.
func (p *Parser) requestTiming(e *event, tail string) {
	var method, path, status string
	for _, f := range p.kv {
		switch f.k {
		case "method":
			if method == "" {
				method = f.value()
			}
		case "path":
			if path == "" {
				path = f.value()
			}
		case "status":
			if status == "" {
				status = f.value()
			}
		}
	}
	if path == "" || !isMethod(method) {
		return
	}
	p.rt = accessTime(p.kv, tail)
	if p.rt.hasServer && p.Timings != nil && e.timed {
		p.Timings.add(e.t, e.lineNo, method, path, status, p.rt)
	}
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
