package evidence

import (
	"strconv"
	"strings"
	"time"

	"github.com/stampede-load/stampede"
)

// Structured logs: a line that is one JSON object is one event. The names
// read (see the package doc for the loggers that write them) are:
var (
	jsonTimeKeys  = []string{"time", "ts", "timestamp", "@timestamp", "@t", "asctime", "Timestamp", "date"}
	jsonLevelKeys = []string{"level", "severity", "lvl", "@l", "log.level", "levelname", "Level", "loglevel"}
	// Messages, best first; "@mt" and "MessageTemplate" are Serilog's
	// templates, rendered with the event's properties.
	jsonMsgKeys    = []string{"msg", "message", "@m", "RenderedMessage", "event", "@mt", "MessageTemplate", "Message"}
	jsonLoggerKeys = []string{"logger", "logger_name", "log.logger", "name", "SourceContext", "Properties.SourceContext", "loggerName"}
	// Objects holding an error: {"type"|..., "message"|..., "stack"|...}.
	jsonErrObjects = []string{"err", "error", "exception", "exc", "thrown", "Exception", "@x"}
	// Top-level strings holding an error's text or a whole trace.
	jsonErrTexts = []string{"stack", "stack_trace", "stacktrace", "backtrace", "exception", "exc_info", "exc_text",
		"@x", "Exception", "errorVerbose", "error", "err", "error_message", "stack_info"}

	jsonMethodKeys = []string{"method", "req.method", "request.method", "http.request.method", "http.method",
		"request_method", "RequestMethod", "Properties.RequestMethod", "httpRequest.requestMethod"}
	jsonPathKeys = []string{"path", "req.url", "request.url", "url.path", "url.original", "request_uri", "uri", "url",
		"RequestPath", "Properties.RequestPath", "request_path", "httpRequest.requestUrl"}
	jsonStatusKeys = []string{"status", "status_code", "statusCode", "res.statusCode", "response.statusCode",
		"response.status", "http.response.status_code", "StatusCode", "Properties.StatusCode", "httpRequest.status"}
	// Server time in milliseconds ("duration" is seconds in zap's lines).
	jsonMSKeys = []string{"responseTime", "response-time", "response_time_ms", "duration_ms", "elapsed_ms",
		"Elapsed", "Properties.Elapsed", "duration", "response_time"}

	// Fields not copied: a logger's bookkeeping.
	jsonSkipKeys = []string{"v", "pid", "hostname", "@version", "ecs.version", "@i", "@r", "process.pid",
		"host.hostname", "log.origin.file.line", "log.origin.file.name", "log.origin.function"}
)

// Error fields of an error object, by role.
var (
	jsonErrTypeKeys  = []string{"type", "name", "class", "kind", "exc_type", "className"}
	jsonErrMsgKeys   = []string{"message", "msg", "exc_value", "localizedMessage", "reason"}
	jsonErrStackKeys = []string{"stack", "stack_trace", "stacktrace", "backtrace", "trace", "extendedStackTrace"}
)

// maxJSONValue bounds a field's value copied into Evidence.Fields: a
// longer one (a payload, a dump) is left out.
const maxJSONValue = 1024

// feedJSON reads a line that is one JSON object as one event of its own,
// and ends the pending one. ok is false when the line is not such an
// object: it is then read as text.
func (p *Parser) feedJSON(line string, lineNo int) ([]stampede.Evidence, bool) {
	fields, ok := scanJSON(line, p.jf)
	p.jf = fields
	if !ok || len(fields) == 0 {
		return nil, false
	}
	out := p.flush()
	p.startJSON(lineNo)
	return append(out, p.flush()...), true
}

// feedPrefixedJSON reads a text line whose message is a JSON object —
// Ruby's Logger around lograge ("I, [2026-12-06T06:18:09.630269 #29809]
// INFO -- : {"method":"GET",...}"), Python's logging with a JSON message
// ("2026-12-06 06:18:09,630 INFO {...}") — as the JSON event it holds, the
// line's own time and level standing in for fields the object lacks.
func (p *Parser) feedPrefixedJSON(msg string, lineNo int, t time.Time, level string) ([]stampede.Evidence, bool) {
	if rest, ok := strings.CutPrefix(msg, "-- "); ok {
		// Ruby's Logger: "-- progname: message".
		if i := strings.Index(rest, ": "); i >= 0 && !strings.ContainsAny(rest[:i], " {") {
			rest = rest[i+2:]
		} else {
			rest = strings.TrimPrefix(rest, ":")
		}
		msg = rest
	}
	msg = strings.TrimSpace(msg)
	if len(msg) < 2 || msg[0] != '{' || msg[len(msg)-1] != '}' {
		return nil, false
	}
	fields, ok := scanJSON(msg, p.jf)
	p.jf = fields
	if !ok || len(fields) == 0 {
		return nil, false
	}
	out := p.flush()
	p.startJSON(lineNo)
	if !p.cur.timed {
		p.cur.t, p.cur.timed = t, true
	}
	if p.cur.level == "" {
		p.cur.level = level
	}
	return append(out, p.flush()...), true
}

// startJSON makes the pending event of the JSON line in p.jf: its time,
// level and message, and as its continuation lines the error's text and
// trace, written as a text log would hold them, for analyse to read.
func (p *Parser) startJSON(lineNo int) {
	p.has = true
	e := &p.cur
	*e = event{lineNo: lineNo, lines: e.lines[:0], json: true}
	if f := p.jget(jsonTimeKeys); f != nil {
		e.t, e.timed = jsonTime(f, p.loc)
		f.used = true
	}
	if f := p.jget(jsonLevelKeys); f != nil {
		e.level = jsonLevel(f)
		f.used = true
	}
	if e.level == "" && p.jget([]string{"@t"}) != nil {
		e.level = "INFO" // CLEF: no "@l" means Information
	}
	for _, k := range jsonMsgKeys {
		f := p.jget1(k)
		if f == nil || f.kind == jStrs {
			continue
		}
		f.used = true
		e.msg = f.text()
		if k == "@mt" || k == "MessageTemplate" {
			e.msg = p.renderTemplate(e.msg)
		}
		break
	}
	for _, k := range []string{"@mt", "MessageTemplate"} {
		if f := p.jget1(k); f != nil {
			f.used = true // the template of a rendered message
		}
	}
	p.jexc = p.jsonError(e)
}

// jget returns the first field named by one of names, or nil.
func (p *Parser) jget(names []string) *jfield {
	for _, n := range names {
		if f := p.jget1(n); f != nil {
			return f
		}
	}
	return nil
}

func (p *Parser) jget1(name string) *jfield {
	for i := range p.jf {
		if p.jf[i].key == name {
			return &p.jf[i]
		}
	}
	return nil
}

// jsonError finds the error of the JSON event and adds its lines to e:
// an error object's stack (or its "type: message" line when its stack
// does not say it), the structured traceback of structlog's
// dict_tracebacks, and the top-level error strings. It returns the text to
// use as the event's exception when the lines show none, and records the
// error's type in p.jtype.
func (p *Parser) jsonError(e *event) string {
	var typ, msg, exc string
	var stacks []string
	p.jtype = ""
	for _, obj := range jsonErrObjects {
		for i := range p.jf {
			f := &p.jf[i]
			rest, ok := strings.CutPrefix(f.key, obj)
			if !ok || len(rest) < 2 || rest[0] != '.' || f.kind == jNull {
				continue
			}
			leaf := rest[1:]
			switch {
			case has(jsonErrTypeKeys, leaf):
				if typ == "" && f.kind == jStr {
					typ = f.text()
				}
				f.used = true
			case has(jsonErrMsgKeys, leaf):
				if msg == "" && f.kind != jStrs {
					msg = f.text()
				}
				f.used = true
			case has(jsonErrStackKeys, leaf):
				if t := stackText(f); t != "" {
					stacks = append(stacks, t)
				}
				f.used = true
			}
		}
	}
	typ, msg = strings.TrimSpace(typ), strings.TrimSpace(msg)
	head := msg
	if typ != "" && msg != "" {
		head = typ + ": " + msg
	} else if typ != "" {
		head = typ
	}
	said := false // the stacks say the error themselves
	for _, s := range stacks {
		first, _, _ := strings.Cut(s, "\n")
		if msg != "" && strings.Contains(s, msg) || typ != "" && strings.Contains(s, typ+": ") ||
			looksLikeException(first) || isTracebackStart(first) {
			said = true
		}
	}
	if head != "" && !said {
		p.traceLines(e, head)
		exc = head
	}
	for _, s := range stacks {
		p.traceLines(e, s)
	}
	p.dictTraceback(e)
	for _, k := range jsonErrTexts {
		f := p.jget1(k)
		if f == nil || f.depth != 0 || f.used || (f.kind != jStr && f.kind != jStrs) {
			continue
		}
		f.used = true
		t := stackText(f)
		if t == "" || t == head {
			continue
		}
		p.traceLines(e, t)
		if exc == "" && strings.IndexByte(t, '\n') < 0 {
			exc = strings.TrimSpace(t)
		}
	}
	if f := p.jget1("name"); f != nil && typ == "" && f.kind == jStr && !f.used && p.jget1("stack") != nil &&
		looksLikeException(f.text()) {
		// winston's errors format: the error's name beside its stack.
		typ = f.text()
		f.used = true
	}
	p.jtype = typ
	return exc
}

// stackText returns a trace held in a field: a string as it is, an array
// of frames as the lines a text log would hold (Ruby's backtrace as
// "\tfrom" lines, other frames as "\tat" lines), an array of chunks
// (Python's format_exception) joined.
func stackText(f *jfield) string {
	switch f.kind {
	case jStr:
		return strings.TrimRight(f.text(), "\n")
	case jStrs:
	default:
		return ""
	}
	elems := f.strings()
	for _, s := range elems {
		if strings.IndexByte(s, '\n') >= 0 {
			return strings.TrimRight(strings.Join(elems, ""), "\n")
		}
	}
	var b strings.Builder
	for _, s := range elems {
		t := trimBlank(s)
		switch {
		case t == "":
			continue
		case strings.HasPrefix(t, "at "), strings.HasPrefix(t, "from "), strings.HasPrefix(t, "File \""),
			strings.HasPrefix(t, "Traceback ("), strings.HasPrefix(t, "Caused by: "), strings.HasPrefix(t, "..."):
			if t != s {
				b.WriteString(s)
			} else if strings.HasPrefix(t, "at ") || strings.HasPrefix(t, "from ") {
				b.WriteString("\t" + t)
			} else {
				b.WriteString(t)
			}
		case strings.Contains(t, ":in "):
			b.WriteString("\tfrom " + t) // Ruby: "app.rb:3:in 'm'"
		default:
			b.WriteString("\tat " + t)
		}
		b.WriteByte('\n')
	}
	return strings.TrimRight(b.String(), "\n")
}

// traceLines adds the lines of a text to the event, as continuation lines.
// A Go stack (function lines, each followed by a tab-indented file line:
// zap's "stacktrace", pkg/errors' "%+v") gets the goroutine line that
// heads it in a panic, so that analyse reads it as Go.
func (p *Parser) traceLines(e *event, text string) {
	goAt := goStackStart(text)
	for n := 0; text != ""; n++ {
		line, rest, _ := strings.Cut(text, "\n")
		text = rest
		line = strings.TrimSuffix(line, "\r")
		if n == goAt {
			p.add("goroutine 1 [running]:")
		}
		if isBlank(line) {
			continue
		}
		if len(line) > maxLineLen {
			line = line[:maxLineLen]
		}
		p.add(line)
	}
}

// goStackStart returns the number of the line where a Go stack starts in
// text: a line not indented, followed by a tab-indented "file.go:line";
// -1 when there is none, or when text already has a goroutine line.
func goStackStart(text string) int {
	if !strings.Contains(text, ".go:") || strings.Contains(text, "goroutine ") {
		return -1
	}
	prev, n := "", 0
	for text != "" {
		line, rest, _ := strings.Cut(text, "\n")
		text = rest
		if strings.HasPrefix(line, "\t") && !strings.HasPrefix(line, "\tat ") && strings.Contains(line, ".go:") &&
			prev != "" && prev[0] != '\t' && prev[0] != ' ' {
			return n - 1
		}
		prev = line
		n++
		if n > 50 {
			break
		}
	}
	return -1
}

// dictTraceback writes structlog's dict_tracebacks ("exception": a list of
// {"exc_type", "exc_value", "is_cause", "frames": [{"filename", "lineno",
// "name"}]}, the last exception raised first) as the traceback Python
// prints, causes first.
func (p *Parser) dictTraceback(e *event) {
	type stack struct {
		typ, val string
		cause    bool
		frames   []string
	}
	var stacks []stack
	var fn, ln, name string
	flushFrame := func() {
		if len(stacks) > 0 && (fn != "" || name != "") {
			s := &stacks[len(stacks)-1]
			s.frames = append(s.frames, `  File "`+fn+`", line `+ln+`, in `+name)
		}
		fn, ln, name = "", "", ""
	}
	last := -1
	for i := range p.jf {
		f := &p.jf[i]
		rest, ok := strings.CutPrefix(f.key, "exception.")
		if !ok || rest == "" || !isDigit(rest[0]) {
			continue
		}
		f.used = true
		j := 0
		for j < len(rest) && isDigit(rest[j]) {
			j++
		}
		idx, _ := atoi(rest[:j])
		leaf := strings.TrimPrefix(rest[j:], ".")
		if idx != last {
			flushFrame()
			if len(stacks) >= maxJSONIndex {
				break
			}
			stacks = append(stacks, stack{})
			last = idx
		}
		s := &stacks[len(stacks)-1]
		switch {
		case leaf == "exc_type":
			s.typ = f.text()
		case leaf == "exc_value":
			s.val = f.text()
		case leaf == "is_cause":
			s.cause = f.raw == "true"
		case strings.HasPrefix(leaf, "frames."):
			fr := leaf[len("frames."):]
			k := strings.IndexByte(fr, '.')
			if k < 0 {
				continue
			}
			switch fr[k+1:] {
			case "filename":
				if fn != "" {
					flushFrame()
				}
				fn = f.text()
			case "lineno":
				ln = f.raw
			case "name":
				name = f.text()
			}
		}
	}
	flushFrame()
	for i := len(stacks) - 1; i >= 0; i-- {
		s := stacks[i]
		if s.typ == "" {
			continue
		}
		if i < len(stacks)-1 {
			if stacks[i+1].cause {
				p.add("The above exception was the direct cause of the following exception:")
			} else {
				p.add("During handling of the above exception, another exception occurred:")
			}
		}
		p.add("Traceback (most recent call last):")
		for _, fr := range s.frames {
			p.add(fr)
		}
		x := s.typ
		if s.val != "" {
			x += ": " + s.val
		}
		p.traceLines(e, x)
	}
}

// jsonHead reads the fields of the pending JSON event into p.kv (a
// request's method, path and status, the logger, the error's type, the
// other top-level values) and its server time into p.rt, hands a timed
// request to p.Timings, and returns the event's message.
func (p *Parser) jsonHead(e *event) string {
	msg := e.msg
	// A request.
	var method, path, status string
	mf, pf := p.jget(jsonMethodKeys), p.jget(jsonPathKeys)
	if mf != nil && mf.kind == jStr && pf != nil && pf.kind == jStr {
		method, path = strings.ToUpper(mf.text()), pf.text()
		if isMethod(method) && path != "" {
			mf.used, pf.used = true, true
		}
	}
	if !isMethod(method) || path == "" {
		// nginx's $request, django-structlog's "request": "GET /path".
		if f := p.jget1("request"); f != nil && f.kind == jStr {
			if m, r, ok := strings.Cut(f.text(), " "); ok && isMethod(m) {
				method = m
				path, _, _ = strings.Cut(r, " ")
				f.used = true
			}
		}
	}
	if f := p.jget(jsonStatusKeys); f != nil && (f.kind == jNum || f.kind == jStr) {
		if s := f.text(); len(s) == 3 && isDigit(s[0]) && isDigit(s[1]) && isDigit(s[2]) {
			status = s
			f.used = true
		}
	}
	if isMethod(method) && path != "" {
		p.kv = append(p.kv, kv{k: "method", v: method}, kv{k: "path", v: path})
		if status != "" {
			p.kv = append(p.kv, kv{k: "status", v: status})
		}
		p.rt = p.jsonTiming()
		if p.rt.hasServer && p.Timings != nil && e.timed {
			p.Timings.add(e.t, e.lineNo, method, path, status, p.rt)
		}
		if msg == "" {
			msg = method + " " + path
			if status != "" {
				msg += " " + status
			}
		}
	} else if status != "" {
		p.kv = append(p.kv, kv{k: "status", v: status})
	}
	if f := p.jget(jsonLoggerKeys); f != nil && !f.used && f.kind == jStr && len(f.raw) <= maxJSONValue {
		p.kv = append(p.kv, kv{k: "logger", v: f.text()})
		f.used = true
	}
	// The other top-level values, as a logfmt line's fields.
	for i := range p.jf {
		f := &p.jf[i]
		if f.used || f.depth != 0 || len(p.kv) >= maxFields {
			continue
		}
		switch f.kind {
		case jStr, jNum, jBool:
		default:
			continue
		}
		if len(f.key) == 0 || len(f.key) > 64 || len(f.raw) > maxJSONValue || has(jsonSkipKeys, f.key) {
			continue
		}
		p.kv = append(p.kv, kv{k: f.key, v: f.text()})
	}
	return msg
}

// jsonBody returns the top-level strings of the JSON event not read as
// its message, error or request, for classification.
func (p *Parser) jsonBody(dst []string) []string {
	for i := range p.jf {
		f := &p.jf[i]
		if f.depth != 0 || f.kind != jStr || f.used || len(f.raw) > maxJSONValue || has(jsonSkipKeys, f.key) {
			continue
		}
		dst = append(dst, f.text())
	}
	return dst
}

// jsonTiming reads a request's server time: milliseconds (pino-http's
// responseTime, lograge's duration, duration_ms, Serilog's Elapsed, and
// morgan's "12.3 ms"), seconds (nginx's request_time, zap's duration),
// nanoseconds (ECS event.duration); nginx's upstream_response_time.
func (p *Parser) jsonTiming() reqTiming {
	var t reqTiming
	zap := p.jget1("ts") != nil && p.jget1("caller") != nil
	for _, k := range jsonMSKeys {
		f := p.jget1(k)
		if f == nil || (f.kind != jNum && f.kind != jStr) {
			continue
		}
		v, ok := jsonNumber(f)
		if !ok {
			continue
		}
		if zap && k == "duration" {
			v *= 1000 // zap's SecondsDurationEncoder
		}
		if v >= 0 && v <= maxServerMS {
			t.server, t.hasServer = v, true
			f.used = true
			break
		}
	}
	if !t.hasServer {
		if f := p.jget([]string{"request_time", "rt"}); f != nil {
			if v, ok := jsonNumber(f); ok && v >= 0 && v*1000 <= maxServerMS {
				t.server, t.hasServer = v*1000, true
				f.used = true
			}
		}
	}
	if !t.hasServer {
		if f := p.jget1("event.duration"); f != nil {
			if v, ok := jsonNumber(f); ok && v >= 0 && v/1e6 <= maxServerMS {
				t.server, t.hasServer = v/1e6, true
				f.used = true
			}
		}
	}
	if f := p.jget1("upstream_response_time"); f != nil && (f.kind == jStr || f.kind == jNum) {
		t.upstream, t.hasUp = secondsList(f.text())
		f.used = t.hasUp
	}
	return t
}

// jsonNumber reads a number, or a string holding one with an optional
// " ms" or "ms" after it.
func jsonNumber(f *jfield) (float64, bool) {
	s := f.text()
	if f.kind == jStr {
		s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "ms"))
		if !isDecimal(s) {
			return 0, false
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil
}

// jsonTime reads a time: a string in the formats of the text logs (RFC
// 3339, "2026-01-11 12:59:17,123", nginx's "11/Jan/2026:12:59:17 +0000"),
// or a number of seconds, milliseconds, microseconds or nanoseconds since
// the epoch (told apart by their size), which is read as UTC.
func jsonTime(f *jfield, loc *time.Location) (time.Time, bool) {
	switch f.kind {
	case jStr:
		s := f.text()
		if t, _, ok := parseISOish(s, loc); ok {
			return t, true
		}
		if t, _, ok := parseDayMonYear(s, '/', ':', loc); ok {
			return t, true
		}
		if isDecimal(s) {
			return epochTime(s)
		}
	case jNum:
		return epochTime(f.raw)
	}
	return time.Time{}, false
}

// epochTime reads a decimal number of seconds (up to 11 integer digits),
// milliseconds (12 to 14), microseconds (15 to 17) or nanoseconds (18,
// 19) since 1970.
func epochTime(raw string) (time.Time, bool) {
	if strings.ContainsAny(raw, "eE-+") {
		v, err := strconv.ParseFloat(raw, 64)
		if err != nil || v < 1e8 || v > 1e19 {
			return time.Time{}, false
		}
		raw = strconv.FormatFloat(v, 'f', -1, 64)
	}
	ip, fp, _ := strings.Cut(raw, ".")
	n, err := strconv.ParseInt(ip, 10, 64)
	if err != nil || len(ip) < 9 || len(ip) > 19 {
		return time.Time{}, false
	}
	var unit int64 // nanoseconds per unit
	switch {
	case len(ip) <= 11:
		unit = 1e9
	case len(ip) <= 14:
		unit = 1e6
	case len(ip) <= 17:
		unit = 1e3
	default:
		unit = 1
	}
	perSec := 1e9 / unit
	sec, rem := n/perSec, n%perSec
	ns := rem * unit
	// The fraction, in the unit: at most 9 digits matter.
	scale := unit / 10
	for i := 0; i < len(fp) && scale > 0; i++ {
		if !isDigit(fp[i]) {
			return time.Time{}, false
		}
		ns += int64(fp[i]-'0') * scale
		scale /= 10
	}
	return time.Unix(sec, ns).UTC(), true
}

// jsonLevel reads a level: a pino/bunyan number (10 trace … 60 fatal), or
// a word in any case (Serilog's "Information", zap's "dpanic", Google's
// "EMERGENCY", a winston level coloured with ANSI escapes).
func jsonLevel(f *jfield) string {
	if f.kind == jNum {
		n, ok := atoi(f.raw)
		switch {
		case !ok || n < 10:
			return ""
		case n >= 60:
			return "FATAL"
		case n >= 50:
			return "ERROR"
		case n >= 40:
			return "WARNING"
		case n >= 30:
			return "INFO"
		}
		return "DEBUG"
	}
	if f.kind != jStr {
		return ""
	}
	s := stripANSI(f.text())
	if len(s) > 16 {
		return ""
	}
	var buf [16]byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		buf[i] = c
	}
	u := string(buf[:len(s)])
	switch u {
	case "INFORMATION":
		return "INFO"
	case "VERBOSE":
		return "DEBUG"
	case "DPANIC":
		return "ERROR"
	case "EMERGENCY":
		return "EMERG"
	case "LOG", "DETAIL", "HINT", "CONTEXT", "STATEMENT", "QUERY", "LOCATION":
		return ""
	}
	return levelWord(u)
}

// stripANSI removes colour escapes ("\x1b[31merror\x1b[39m").
func stripANSI(s string) string {
	if strings.IndexByte(s, 0x1b) < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '[' {
			j := i + 2
			for j < len(s) && (isDigit(s[j]) || s[j] == ';') {
				j++
			}
			i = j // the final letter
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// renderTemplate fills a Serilog message template's holes ({Name},
// {@Name}, {$Name}, {Name:format}, {Name,width}) with the event's
// top-level values (CLEF) or its Properties (Serilog's JsonFormatter).
// "{{" and "}}" are braces.
func (p *Parser) renderTemplate(tpl string) string {
	if strings.IndexByte(tpl, '{') < 0 && strings.IndexByte(tpl, '}') < 0 {
		return tpl
	}
	var renderings []string // CLEF's "@r": the formatted holes, in order
	if f := p.jget1("@r"); f != nil {
		renderings = f.strings()
	}
	var b strings.Builder
	for i := 0; i < len(tpl); i++ {
		c := tpl[i]
		if (c == '{' || c == '}') && i+1 < len(tpl) && tpl[i+1] == c {
			b.WriteByte(c)
			i++
			continue
		}
		if c != '{' {
			b.WriteByte(c)
			continue
		}
		end := strings.IndexByte(tpl[i:], '}')
		if end < 0 {
			b.WriteString(tpl[i:])
			break
		}
		hole := tpl[i+1 : i+end]
		name := strings.TrimLeft(hole, "@$")
		formatted := false
		if k := strings.IndexAny(name, ":,"); k >= 0 {
			formatted = name[k] == ':'
			name = name[:k]
		}
		f := p.jget1(name)
		if f == nil {
			f = p.jget1("Properties." + name)
		}
		if formatted && len(renderings) > 0 {
			b.WriteString(renderings[0])
			renderings = renderings[1:]
		} else if f != nil && f.kind != jNull {
			b.WriteString(f.text())
		} else {
			b.WriteString(tpl[i : i+end+1])
		}
		i += end
		if b.Len() > maxLineLen {
			break
		}
	}
	return b.String()
}

// errorType returns the class of an exception line
// ("sqlalchemy.exc.TimeoutError" of "sqlalchemy.exc.TimeoutError: ...").
func errorType(exc string) string {
	if !looksLikeException(exc) {
		return ""
	}
	name, _, _ := strings.Cut(exc, ": ")
	name, _, _ = strings.Cut(name, " (")
	if strings.IndexByte(name, ' ') >= 0 {
		return ""
	}
	return name
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
