package evidence

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/secret"
)

// Limits that keep one pathological event from eating memory.
const (
	maxLineLen     = 64 << 10 // longer lines are cut
	maxEventLines  = 2000     // further continuation lines: the middle of the event is dropped
	maxFrames      = 100      // frames kept per event
	maxBodyClassed = 200      // body lines classified per event
)

// kinds of event, as far as grouping needs to know.
const (
	kindPlain = iota
	kindPython
	kindGo
	kindNode
)

// Parser turns the lines of one log into Evidence: it reads timestamps and
// levels, groups multi-line events (stack traces, PostgreSQL DETAIL lines),
// extracts the exception and frames, parses fields and classifies each
// event against a Catalog. Feed it the lines in order and call Flush at the
// end (or when the log has been quiet for a while). A Parser is not safe for
// concurrent use; use one per log.
type Parser struct {
	// KeepAll makes Feed and Flush return every event. By default only the
	// events worth keeping are returned: those a signature matched, those
	// with an exception or a stack, those of level WARNING or worse, and
	// access-log lines with status 403, 429 or 5xx.
	KeepAll bool
	// Timings, when set, receives the server time of every timed request
	// line that carries one (see accessTime and the package doc), whether
	// or not the line is worth keeping: the access log of a healthy run
	// becomes a few access-timing Evidence per second instead of nothing.
	// ParseReader emits what it holds at the end of the input.
	Timings *Timings
	// Secrets masks the texts of every event the parser returns (message,
	// exception, frames, fields): server logs print passwords, cookies and
	// tokens in tracebacks and error reports. Nil masks by pattern only
	// (see package secret); give it the run's known secret values.
	Secrets *secret.Masker

	source, file string
	cat          *Catalog
	loc          *time.Location

	has bool
	cur event

	// Scratch space reused from event to event.
	m      matcher
	kv     []kv
	frames []frame
	excs   []string
	body   []string
	pg     []kv
	rt     reqTiming // server time of the current request line
	jf     []jfield  // the fields of a JSON line
	jexc   string    // a JSON event's error text, when its lines show no exception
	jtype  string    // a JSON event's error type
}

// event is the pending, not yet complete, event.
type event struct {
	t      time.Time
	timed  bool
	level  string
	msg    string // headline message, after stamp and level
	pre    string // text before the stamp (access-log client)
	rest   string // text after the stamp
	lineNo int
	kind   int
	lines  []string
	// over counts the lines past maxEventLines. The middle of such an
	// event goes: its first half of lines stays, and lines[half:] holds
	// the last ones as a ring, over%half being the oldest, so that the
	// final exception of a 10,000-line traceback is still read.
	over int

	inTB, pyDone, lastMarker, afterBlank bool
	goDone                               bool // "exit status N" seen
	// worker is the pid a cluster's worker put before its line ("[31653]
	// 127.0.0.1 - - [...] ..." from Puma's workers), "" when none.
	worker string
	json   bool // a JSON line: its fields are in Parser.jf
}

// frame is one stack frame: a function and its location.
type frame struct{ fn, loc string }

// NewParser returns a parser for the log named source (as the user named
// it: "app-errors"), read from file (used in each Evidence's Ref as
// "file:line"). A nil catalog means DefaultCatalog; a nil loc means
// time.Local, used for timestamps that carry no zone.
func NewParser(source, file string, catalog *Catalog, loc *time.Location) *Parser {
	if catalog == nil {
		catalog = defaultCatalog()
	}
	if loc == nil {
		loc = time.Local
	}
	p := &Parser{source: source, file: file, cat: catalog, loc: loc}
	p.m.reset(catalog)
	return p
}

// Feed reads the next line of the log (with or without its line ending)
// and returns the events it completed, usually none or one: an event ends
// when a line that cannot continue it arrives. lineNo is the line's number
// in the file, from 1.
func (p *Parser) Feed(line string, lineNo int) []stampede.Evidence {
	if len(line) >= 3 && line[0] == 0xEF && line[1] == 0xBB && line[2] == 0xBF {
		line = line[3:] // a byte-order mark: a file's first line, or files joined
	}
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
		if n > 1 && line[n-2] == '\r' {
			line = line[:n-2]
		}
	} else if n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if len(line) > maxLineLen {
		// A copy: the rest of a long line (a piece of megabytes from a
		// tailer) is not kept alive by a pending event.
		line = strings.Clone(line[:maxLineLen])
	}
	if len(line) > 1 && line[0] == '{' {
		if out, ok := p.feedJSON(line, lineNo); ok {
			return out
		}
	}
	worker := ""
	if w, rest, ok := workerPrefix(line); ok {
		worker, line = w, rest
	}
	if len(line) > 0 && line[0] != ' ' && line[0] != '\t' {
		if t, pre, rest, ok := parseStamp(line, p.loc); ok {
			level, msg, lvAt := splitLevel(rest, pre)
			if p.has && p.cur.timed && isPGSub(level) && isPGMain(p.cur.level) {
				// PostgreSQL writes DETAIL, HINT, CONTEXT, STATEMENT as
				// lines of their own; they belong to the event above.
				p.add(rest[lvAt:])
				return nil
			}
			if out, ok := p.feedPrefixedJSON(msg, lineNo, t, level); ok {
				return out
			}
			out := p.flush()
			p.start(line, lineNo, t, true, level, msg, pre, rest)
			p.cur.worker = worker
			return out
		}
	}
	if p.has && p.continues(line) {
		p.add(line)
		return nil
	}
	out := p.flush()
	if isBlank(line) {
		return out
	}
	level, msg, _ := splitLevel(line, "")
	p.start(line, lineNo, time.Time{}, false, level, msg, "", line)
	p.cur.worker = worker
	return out
}

// Flush ends the pending event, if any, and returns it when worth keeping.
func (p *Parser) Flush() []stampede.Evidence { return p.flush() }

func (p *Parser) start(line string, lineNo int, t time.Time, timed bool, level, msg, pre, rest string) {
	p.has = true
	e := &p.cur
	*e = event{t: t, timed: timed, level: level, msg: msg, pre: pre, rest: rest, lineNo: lineNo, lines: e.lines[:0]}
	switch {
	case isTracebackStart(msg) || isGroupStart(msg):
		e.kind, e.inTB = kindPython, true
	case isGoPanic(msg):
		e.kind = kindGo
	case !timed && isNodeHead(line):
		e.kind = kindNode
	}
}

func (p *Parser) add(line string) {
	e := &p.cur
	if len(e.lines) < maxEventLines {
		e.lines = append(e.lines, line)
		return
	}
	const half = maxEventLines / 2
	e.lines[half+e.over%half] = line
	e.over++
}

// ordered puts the ring of an event past maxEventLines back in order: the
// first lines, then the last ones, oldest first.
func (e *event) ordered() {
	const half = maxEventLines / 2
	if e.over == 0 {
		return
	}
	tail := e.lines[half:]
	k := e.over % half
	slices.Reverse(tail[:k])
	slices.Reverse(tail[k:])
	slices.Reverse(tail)
	e.over = 0
}

// continues says whether a line without a timestamp belongs to the pending
// event, and updates the grouping state. Under a timestamped headline every
// line does, except a new traceback after a finished one; under a headline
// without a time only lines that look like the rest of a stack trace do.
func (p *Parser) continues(line string) bool {
	e := &p.cur
	if isBlank(line) {
		if e.timed || e.kind != kindPlain {
			e.afterBlank = true
			return true
		}
		return false
	}
	afterBlank := e.afterBlank
	e.afterBlank = false
	c := line[0]
	indented := c == ' ' || c == '\t'
	if !indented {
		switch {
		case isTracebackStart(line):
			if e.kind == kindPython && e.pyDone && !e.lastMarker {
				return false
			}
			if e.kind != kindPython && !e.timed && len(e.lines) > 0 {
				return false // after another language's trace: a new event
			}
			e.kind, e.inTB, e.pyDone, e.lastMarker = kindPython, true, false, false
			return true
		case isChainMarker(line):
			e.lastMarker = true
			return e.timed || e.kind == kindPython
		case e.goDone || startsOwnEvent(line, e.msg):
			return false
		case e.kind == kindGo && strings.HasPrefix(line, "exit status "):
			e.goDone = true
			return true
		}
		if e.kind == kindPython && e.inTB {
			e.pyDone, e.lastMarker = true, false
		}
	} else if e.kind == kindPython && e.inTB {
		// An exception group's own exception line ("  | ExceptionGroup:
		// ...") ends its traceback like a column-0 exception line does.
		if inner, _ := stripGroup(line); inner != line && len(inner) > 0 && inner[0] != ' ' &&
			!isTracebackStart(inner) && !strings.HasPrefix(inner, "File \"") {
			e.pyDone, e.lastMarker = true, false
		}
	}
	if e.timed || indented {
		if !indented && e.kind == kindPlain && isGoroutine(line) && isGoPanic(e.msg) {
			e.kind = kindGo
		}
		return true
	}
	switch e.kind {
	case kindPython:
		return e.inTB && !afterBlank
	case kindGo:
		if afterBlank {
			return isGoroutine(line) || strings.HasPrefix(line, "exit status ")
		}
		return true
	case kindNode:
		return looksLikeException(line) || strings.HasPrefix(line, "Node.js v")
	}
	return strings.HasPrefix(line, "Caused by: ")
}

// flush analyses, classifies and (when worth keeping) builds the pending
// event.
func (p *Parser) flush() []stampede.Evidence {
	if !p.has {
		return nil
	}
	p.has = false
	e := &p.cur
	e.ordered()
	msg := e.msg
	p.kv = p.kv[:0]
	p.pg = p.pg[:0]
	p.rt = reqTiming{}
	if e.worker != "" {
		p.kv = append(p.kv, kv{k: "worker", v: e.worker})
	}

	var pgh pgHead
	if e.json {
		msg = p.jsonHead(e)
	} else {
		msg, pgh = p.textHead(e, msg)
	}

	// Stack trace and continuation lines.
	final, root := p.analyse(e, pgh.kind == pgDuration)
	headline := e.msg
	if pgh.kind != pgNone {
		p.pgFields(e, &pgh)
		headline = msg[:pgh.headLen] // without the SQL text
	} else if p.hasPG("STATEMENT") {
		p.kv = append(p.kv, kv{k: "statement", v: p.pgText("STATEMENT")})
	}
	if e.json {
		if final == "" && p.jexc != "" {
			final, root = p.jexc, p.jexc
			p.excs = append(p.excs, final)
		}
		if t := p.jtype; t != "" || final != "" {
			if t == "" {
				t = errorType(final)
			}
			if t != "" && len(p.kv) < maxFields {
				p.kv = append(p.kv, kv{k: "error_type", v: t})
			}
		}
		p.body = p.jsonBody(p.body)
	}
	if final == "" {
		final, root = headException(msg)
	}
	if (isTracebackStart(msg) || isGroupStart(msg) || e.kind == kindNode || (e.json && msg == "")) && final != "" {
		// A bare traceback: its exception is the better headline.
		msg = final
	}
	return p.classify(e, msg, headline, final, root)
}

// textHead reads the fields of a text event's headline into p.kv (access
// logs, Ruby's Logger, PgBouncer's and nginx's prefixes and tails,
// key=value pairs), hands a timed request line to p.Timings, and returns
// the message and what a PostgreSQL headline says of time spent.
func (p *Parser) textHead(e *event, msg string) (string, pgHead) {
	// Fields of the headline.
	var tail string // after an access line's request, status and bytes
	request := false
	switch {
	case e.pre != "" && e.level == "":
		// Access log: client ident user [time] "request" status bytes.
		if p.kv, tail, request = parseRequestTail(e.rest, p.kv); request {
			if client, _, _ := strings.Cut(e.pre, " "); client != "" {
				p.kv = append(p.kv, kv{k: "client", v: client})
			}
		}
	case len(msg) > 0 && msg[0] == '"':
		p.kv, tail, request = parseRequestTail(msg, p.kv) // Django runserver, Envoy
		if request {
			if flags, dur, ok := envoyTail(tail); ok {
				if flags != "" {
					p.kv = append(p.kv, kv{k: "response_flags", v: flags})
				}
				tail = dur + "ms"
			} else if n := len(p.kv); p.kv[n-1].k == "bytes" && p.kv[n-1].v == "-" {
				// Envoy's "-" (no flags) was read as the bytes.
				if dur, ok := envoyCounts(tail); ok {
					p.kv = p.kv[:n-1]
					tail = dur + "ms"
				}
			}
		}
	}
	if !request && e.pre != "" && e.level == "" && strings.Contains(e.rest, " => generated ") {
		// uWSGI's request log.
		if p.kv, tail, request = parseUWSGIRequestTail(e.rest, p.kv); request {
			p.kv = append(p.kv, kv{k: "client", v: e.pre})
		}
	}
	if rest, ok := strings.CutPrefix(msg, "-- "); ok {
		// Ruby's Logger: "-- progname: message".
		if _, after, ok := strings.Cut(rest, ": "); ok {
			msg = after
		} else if strings.HasPrefix(rest, ":") {
			msg = trimBlank(rest[1:])
		}
	}
	msg, p.kv = parsePgBouncerPrefix(msg, p.kv)
	if e.level != "" && strings.IndexByte(msg, '#') > 0 {
		msg = stripNginxIDs(msg)
		msg, p.kv = parseNginxTail(msg, p.kv)
	}
	if strings.IndexByte(msg, '=') >= 0 {
		p.kv = parseKV(msg, p.kv)
		if strings.HasPrefix(e.rest, "level=") || strings.HasPrefix(e.rest, "msg=") {
			// slog/logfmt: the level and message are fields.
			for _, f := range p.kv {
				switch f.k {
				case "level":
					if lv := levelWord(strings.ToUpper(f.value())); lv != "" && e.level == "" {
						e.level = lv
					}
				case "msg":
					msg = f.value()
				}
			}
		}
		request = true // a logfmt request line: method=GET path=/x duration_ms=12
	}
	if request {
		p.requestTiming(e, tail)
	}

	// PostgreSQL's statement durations and lock waits.
	var pgh pgHead
	if e.timed && isPGMain(e.level) {
		pgh, _ = parsePGHead(msg)
	}
	return msg, pgh
}

// classify matches the event's parts against the catalog and, when the
// event is worth keeping, builds its Evidence.
func (p *Parser) classify(e *event, msg, headline, final, root string) []stampede.Evidence {
	// Classification.
	m := &p.m
	m.reset(p.cat)
	m.fields = p.kv
	for _, x := range p.excs {
		m.scanPart(x, rankException, false)
	}
	for i, b := range p.body {
		if i >= maxBodyClassed {
			break
		}
		m.scanPart(b, rankBody, false)
	}
	if p.cat.hasStackSig {
		for _, f := range p.frames {
			m.scanPart(f.fn, rankStack, true)
			m.scanPart(f.loc, rankStack, true)
		}
	}
	m.scanPart(headline, rankHeadline, false)
	m.scanFieldOnly()

	if !p.KeepAll && m.best < 0 && final == "" && len(p.frames) == 0 && !severe(e.level) && !notableStatus(p.kv) {
		return nil
	}
	ev := p.build(e, msg, final, root)
	p.Secrets.Evidence(&ev)
	return []stampede.Evidence{ev}
}

// analyse walks the continuation lines once, filling p.frames, p.excs
// (exception lines and their continuations), p.body (other text) and p.pg
// (PostgreSQL DETAIL/HINT/...), and returns the final and root exception.
// With sqlFirst the lines before the first DETAIL & co. are the rest of the
// headline's SQL (a logged statement): they are left to pgFields.
func (p *Parser) analyse(e *event, sqlFirst bool) (final, root string) {
	p.frames, p.excs, p.body = p.frames[:0], p.excs[:0], p.body[:0]
	mode := e.kind
	const (
		pyNone = iota
		pyFrames
		pyExc
		pyAfter
	)
	py := pyNone
	if mode == kindPython {
		py = pyFrames
	}
	segStart := 0       // first frame of the current segment, for reversal
	goroutines := 0     // goroutine sections seen
	pendingFn := ""     // a Go function line waiting for its file line
	lastPG := false     // the previous line was a PostgreSQL DETAIL & co.
	skipping := false   // in a DETAIL "parameters: ..." (bind values)
	reverse := func() { // innermost-first languages: make outermost first
		f := p.frames[segStart:]
		for i, j := 0, len(f)-1; i < j; i, j = i+1, j-1 {
			f[i], f[j] = f[j], f[i]
		}
		segStart = len(p.frames)
	}
	addFrame := func(fn, loc string) {
		if len(p.frames) < maxFrames {
			p.frames = append(p.frames, frame{fn, loc})
		}
	}
	if mode == kindGo {
		final = goPanicText(e.msg)
		root = final
		p.excs = append(p.excs, final)
	}
	if x, ok := strings.CutPrefix(e.msg, "Exception in thread \""); ok {
		if q := strings.Index(x, "\" "); q >= 0 {
			final, root = x[q+2:], x[q+2:]
			p.excs = append(p.excs, final)
		}
	}
	for _, line := range e.lines {
		if isBlank(line) {
			if py == pyExc {
				py = pyAfter
			}
			continue
		}
		if lv, rest := pgSub(line); lv != "" {
			sqlFirst = false
			if lv == "DETAIL" && strings.HasPrefix(rest, "parameters: ") {
				// The values bound to a statement's parameters may be
				// anything, passwords included: never copied.
				skipping, lastPG = true, false
				continue
			}
			skipping = false
			p.pg = append(p.pg, kv{k: lv, v: rest})
			p.body = append(p.body, rest)
			lastPG = true
			continue
		}
		if sqlFirst || (skipping && line[0] == '\t') {
			continue
		}
		skipping = false
		if lastPG && line[0] == '\t' {
			// A multi-line DETAIL (the processes of a deadlock).
			p.pg = append(p.pg, kv{k: p.pg[len(p.pg)-1].k, v: line[1:]})
			p.body = append(p.body, line[1:])
			continue
		}
		lastPG = false
		// Python, including 3.11 exception groups ("  | " prefixes).
		inner, grouped := stripGroup(line)
		if isTracebackStart(inner) || isGroupStart(inner) {
			mode, py = kindPython, pyFrames
			continue
		}
		if mode == kindPython {
			t := trimBlank(inner)
			switch {
			case isChainMarker(inner):
				py = pyNone
			case strings.HasPrefix(t, "+-") || strings.HasPrefix(t, "+--"):
				// group separator
			case inner != t: // indented
				if py == pyFrames && strings.HasPrefix(t, "File \"") {
					addFrame(pythonFrame(t))
				} else if py == pyExc {
					p.excs = append(p.excs, t)
				}
			case py == pyFrames:
				py = pyExc
				p.excs = append(p.excs, inner)
				if !grouped {
					if root == "" {
						root = inner
					}
					final = inner
				}
			case py == pyExc:
				p.excs = append(p.excs, inner)
			default:
				p.body = append(p.body, inner)
			}
			continue
		}
		if mode != kindGo && (strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ")) {
			// A Go panic under a logged line (log.Panic).
			mode = kindGo
			p.excs = append(p.excs, line)
			final, root = line, line
			continue
		}
		if isGoroutine(line) {
			if mode != kindGo {
				mode = kindGo
				if final == "" {
					if x := goPanicText(e.msg); x != "" {
						final, root = x, x
						p.excs = append(p.excs, x)
					}
				}
			}
			goroutines++
			continue
		}
		if mode == kindGo {
			switch {
			case line[0] == '\t':
				if goroutines <= 1 && pendingFn != "" {
					addFrame(pendingFn, goFileLine(line[1:]))
				}
				pendingFn = ""
			case strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: "):
				p.excs = append(p.excs, line)
				final = line
			case strings.HasPrefix(line, "[signal ") || strings.HasPrefix(line, "exit status"):
				p.body = append(p.body, line)
			default:
				pendingFn = goFunc(line)
			}
			continue
		}
		// Java, Node, Ruby and plain continuation lines.
		t := trimBlank(line)
		switch {
		case strings.HasPrefix(t, "at "):
			addFrame(t[3:], "")
		case strings.HasPrefix(t, "from ") && line != t:
			addFrame(t[5:], "")
		case strings.HasPrefix(t, "... ") && strings.HasSuffix(t, " more"),
			strings.HasPrefix(t, "--- End of inner exception stack trace ---"):
		case strings.HasPrefix(t, "---> ") && looksLikeException(t[len("---> "):]):
			// .NET: an inner exception, the cause of the one above.
			x := t[len("---> "):]
			p.excs = append(p.excs, x)
			root = x
			if final == "" {
				final = x
			}
		case strings.HasPrefix(t, "Caused by: ") || strings.HasPrefix(t, "caused by: "):
			// Java's cause; pino's serialized err.cause.
			reverse()
			x := t[len("Caused by: "):]
			p.excs = append(p.excs, x)
			root = x
			if final == "" {
				final = x
			}
		case strings.HasPrefix(t, "Exception in thread "):
			x := t
			if q := strings.Index(t, "\" "); q > 0 {
				x = t[q+2:]
			}
			p.excs = append(p.excs, x)
			if final == "" {
				final, root = x, x
			}
		case line == t && looksLikeException(t):
			p.excs = append(p.excs, t)
			if final == "" {
				final, root = t, t
			}
		default:
			p.body = append(p.body, t)
		}
	}
	if mode != kindPython {
		reverse()
	}
	return final, root
}

// build makes the Evidence of an event, copying every string out of the
// log buffer.
func (p *Parser) build(e *event, msg, final, root string) stampede.Evidence {
	ev := stampede.Evidence{
		Time:      e.t,
		Source:    p.source,
		Level:     e.level,
		Message:   strings.Clone(strings.TrimSpace(msg)),
		Exception: strings.Clone(final),
		Ref:       p.file + ":" + strconv.Itoa(e.lineNo),
	}
	if !e.timed {
		ev.Time = time.Time{}
	}
	if m := &p.m; m.best >= 0 {
		s := p.cat.sigs[m.best]
		ev.Signature, ev.Class = s.ID, s.Class
	}
	if len(p.frames) > 0 {
		ev.Stack = make([]string, len(p.frames))
		for i, f := range p.frames {
			switch {
			case f.loc == "":
				ev.Stack[i] = strings.Clone(f.fn)
			case f.fn == "":
				ev.Stack[i] = strings.Clone(f.loc)
			default:
				ev.Stack[i] = f.fn + " (" + f.loc + ")"
			}
		}
	}
	n := len(p.kv) + len(p.pg)
	if p.rt.hasServer {
		n++
	}
	if p.rt.hasUp {
		n++
	}
	also := p.m.also(p.cat)
	if root != "" && root != final {
		n++
	}
	if also != "" {
		n++
	}
	if n > 0 {
		ev.Fields = make(map[string]string, n)
		for _, f := range p.pg {
			k := strings.ToLower(f.k)
			if old, ok := ev.Fields[k]; ok {
				ev.Fields[k] = old + "\n" + f.v
			} else {
				ev.Fields[k] = strings.Clone(f.v)
			}
		}
		// Fields of the headline win over DETAIL & co. of the same name:
		// "statement" is the collapsed text of the STATEMENT lines.
		for _, f := range p.kv {
			ev.Fields[strings.Clone(f.k)] = strings.Clone(f.value())
		}
		if p.rt.hasServer {
			ev.Fields["server_ms"] = fmtMS(p.rt.server)
		}
		if p.rt.hasUp {
			ev.Fields["upstream_ms"] = fmtMS(p.rt.upstream)
		}
		if root != "" && root != final {
			ev.Fields["root_exception"] = strings.Clone(root)
		}
		if also != "" {
			ev.Fields["also"] = also
		}
	}
	return ev
}

// splitLevel finds the level among the first tokens of s (after the
// stamp): "LOG:", "[CRITICAL]", "[error]", "ERROR", Redis's "*" and "#",
// "ERROR:logger:msg"; a level written before the stamp comes as pre. It
// returns the canonical level, the message after it, and the offset of the
// level token in s.
func splitLevel(s, pre string) (level, msg string, at int) {
	if pre != "" {
		if lv := levelWord(pre); lv != "" {
			return lv, s, 0
		}
	}
	i := 0
	for tok := 0; tok < 4 && i < len(s); tok++ {
		j := i
		for j < len(s) && s[j] != ' ' {
			j++
		}
		w := s[i:j]
		next := j
		for next < len(s) && s[next] == ' ' {
			next++
		}
		if tok == 0 && len(w) == 1 {
			switch w[0] {
			case '#':
				return "WARNING", s[next:], i
			case '*':
				return "NOTICE", s[next:], i
			case '-':
				return "VERBOSE", s[next:], i
			case '.':
				return "DEBUG", s[next:], i
			}
		}
		bracketed := len(w) > 2 && w[0] == '[' && w[len(w)-1] == ']'
		core := w
		if bracketed {
			core = w[1 : len(w)-1]
		}
		if k := strings.IndexByte(core, ':'); k > 0 {
			if lv := bareLevel(core[:k], bracketed); lv != "" {
				if k == len(core)-1 {
					return lv, s[next:], i
				}
				// "ERROR:django.request:msg"
				return lv, s[i+k+1:], i
			}
		} else if lv := bareLevel(core, bracketed); lv != "" {
			return lv, s[next:], i
		}
		if len(w) > 0 && w[0] != '[' && tok > 0 && !strings.Contains(w, "@") {
			break // a word of the message: stop looking
		}
		i = next
	}
	if pre == "" {
		if lv, msg, at, ok := pgLevel(s); ok {
			return lv, msg, at
		}
	}
	return "", s, 0
}

// bareLevel accepts upper-case level words, and lower-case ones only in
// brackets (nginx's "[error]").
func bareLevel(w string, bracketed bool) string {
	if len(w) < 3 || len(w) > 9 {
		return ""
	}
	if !bracketed && (w[0] < 'A' || w[0] > 'Z' || w[1] < 'A' || w[1] > 'Z') {
		return ""
	}
	return levelWord(w)
}

// levelWord returns the canonical name of a log level word, or "".
func levelWord(w string) string {
	switch w {
	case "DEBUG", "debug", "TRACE", "trace":
		return "DEBUG"
	case "INFO", "info":
		return "INFO"
	case "NOTICE", "notice":
		return "NOTICE"
	case "WARNING", "WARN", "warn", "warning":
		return "WARNING"
	case "ERROR", "ERR", "error", "err":
		return "ERROR"
	case "CRITICAL", "CRIT", "crit", "critical":
		return "CRITICAL"
	case "FATAL", "fatal", "SEVERE":
		return "FATAL"
	case "PANIC", "panic":
		return "PANIC"
	case "ALERT", "alert":
		return "ALERT"
	case "EMERG", "emerg":
		return "EMERG"
	case "LOG":
		return "LOG"
	case "DETAIL", "HINT", "CONTEXT", "STATEMENT", "QUERY", "LOCATION":
		return w
	}
	return ""
}

// severe reports whether a level is WARNING or worse.
func severe(level string) bool {
	switch level {
	case "WARNING", "ERROR", "CRITICAL", "FATAL", "PANIC", "ALERT", "EMERG":
		return true
	}
	return false
}

// notableStatus reports an HTTP status worth keeping: 403, 429, 5xx.
func notableStatus(fields []kv) bool {
	for _, f := range fields {
		if f.k == "status" && len(f.v) == 3 {
			return f.v[0] == '5' || f.v == "403" || f.v == "429"
		}
	}
	return false
}

func isPGMain(level string) bool {
	switch level {
	case "LOG", "ERROR", "FATAL", "PANIC", "WARNING", "NOTICE", "INFO", "DEBUG":
		return true
	}
	return false
}

func isPGSub(level string) bool {
	switch level {
	case "DETAIL", "HINT", "CONTEXT", "STATEMENT", "QUERY", "LOCATION":
		return true
	}
	return false
}

// pgSub splits "DETAIL:  text" into its level and text.
func pgSub(line string) (string, string) {
	c := line[0]
	if c != 'D' && c != 'H' && c != 'C' && c != 'S' && c != 'Q' && c != 'L' {
		return "", ""
	}
	k := strings.IndexByte(line, ':')
	if k < 4 || k > 9 || !isPGSub(line[:k]) {
		return "", ""
	}
	return line[:k], trimBlank(line[k+1:])
}

func isBlank(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != ' ' && s[i] != '\t' {
			return false
		}
	}
	return true
}

func isTracebackStart(s string) bool {
	return strings.HasPrefix(s, "Traceback (most recent call last):")
}

// isGroupStart recognises the first line of a Python 3.11 exception group
// traceback, "  + Exception Group Traceback (most recent call last):".
func isGroupStart(s string) bool {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] == '+') {
		i++
	}
	return strings.HasPrefix(s[i:], "Exception Group Traceback")
}

// startsOwnEvent recognises, under a timestamped headline, a line without
// a time that starts an event of its own: a Go panic (unless it repeats the
// headline, as log.Panic does), a Java uncaught exception, Node's or
// Ruby's uncaught-exception headline.
func startsOwnEvent(line, headMsg string) bool {
	switch {
	case strings.HasPrefix(line, "panic: "):
		return line[len("panic: "):] != headMsg
	case strings.HasPrefix(line, "fatal error: "), strings.HasPrefix(line, "Exception in thread \""):
		return true
	case isNodeHead(line):
		return true
	case strings.HasPrefix(line, "DAMN ! worker "):
		return true // uWSGI writes it without a time, after timed lines
	}
	return isRubyHead(line) || isSyslogHead(line)
}

// isSyslogHead recognises a line with a syslog prefix and no year,
// "Dec  6 10:00:06 host prog[12]: ": an event of its own, though its time
// cannot be read.
func isSyslogHead(s string) bool {
	if len(s) < 17 || s[3] != ' ' || month(s[:3]) == 0 || s[6] != ' ' || s[9] != ':' || s[12] != ':' || s[15] != ' ' {
		return false
	}
	host, rest, ok := strings.Cut(s[16:], " ")
	if !ok || host == "" {
		return false
	}
	tag, _, ok := strings.Cut(rest, ": ")
	return ok && tag != "" && strings.IndexByte(tag, ' ') < 0
}

// isRubyHead recognises "app.rb:3:in 'connect': message (Class)".
func isRubyHead(s string) bool {
	i := strings.Index(s, ":in ")
	if i <= 0 || i+5 > len(s) || (s[i+4] != '`' && s[i+4] != '\'') || strings.IndexByte(s[:i], ' ') >= 0 {
		return false
	}
	c := strings.LastIndexByte(s[:i], ':')
	if c < 0 {
		return false
	}
	_, ok := atoi(s[c+1 : i])
	return ok
}

func isChainMarker(s string) bool {
	return strings.HasPrefix(s, "The above exception was the direct cause of the following exception") ||
		strings.HasPrefix(s, "During handling of the above exception, another exception occurred")
}

func isGoPanic(msg string) bool {
	return strings.HasPrefix(msg, "panic: ") || strings.HasPrefix(msg, "fatal error: ") ||
		strings.HasPrefix(msg, "http: panic serving ")
}

// goPanicText returns the panic value of a Go panic headline.
func goPanicText(msg string) string {
	if rest, ok := strings.CutPrefix(msg, "http: panic serving "); ok {
		// "http: panic serving 127.0.0.1:5555: runtime error: ..."
		if _, after, ok := strings.Cut(rest, ": "); ok {
			return after
		}
		return rest
	}
	if isGoPanic(msg) {
		return msg
	}
	return ""
}

func isGoroutine(s string) bool {
	return strings.HasPrefix(s, "goroutine ") && strings.HasSuffix(s, ":") && strings.IndexByte(s, '[') > 0
}

// goFunc trims the arguments of a Go frame's function line:
// "main.handler(0xc000010000, 0x1)" → "main.handler".
func goFunc(s string) string {
	if i := strings.LastIndexByte(s, '('); i > 0 && strings.HasSuffix(s, ")") {
		return s[:i]
	}
	return s
}

// goFileLine trims the pc offset of a Go frame's file line:
// "/app/main.go:12 +0x1d" → "/app/main.go:12".
func goFileLine(s string) string {
	if i := strings.LastIndex(s, " +0x"); i > 0 {
		return s[:i]
	}
	return s
}

// pythonFrame reads `File "x.py", line 10, in f` into ("f", "x.py:10").
func pythonFrame(t string) (string, string) {
	rest := t[len(`File "`):]
	q := strings.IndexByte(rest, '"')
	if q < 0 {
		return t, ""
	}
	path := rest[:q]
	rest = rest[q+1:]
	line, fn := "", ""
	if s, ok := strings.CutPrefix(rest, ", line "); ok {
		line, rest, _ = strings.Cut(s, ",")
		fn, _ = strings.CutPrefix(trimBlank(rest), "in ")
	}
	if line == "" {
		return fn, path
	}
	return fn, path + ":" + line
}

// stripGroup removes the "  | " prefix of a Python 3.11 exception group
// line. grouped reports a nested exception's line: the group's own lines
// carry the prefix at indent 2, nested ones deeper.
func stripGroup(line string) (inner string, grouped bool) {
	t := trimBlank(line)
	if len(t) < len(line) && len(t) > 0 && t[0] == '|' {
		indent := len(line) - len(t)
		t = t[1:]
		if len(t) > 0 && t[0] == ' ' {
			t = t[1:]
		}
		return t, indent > 2
	}
	return line, false
}

// stripNginxIDs removes nginx's "123#0: *45 " from the start of a message.
func stripNginxIDs(msg string) string {
	i := 0
	for i < len(msg) && isDigit(msg[i]) {
		i++
	}
	if i == 0 || i >= len(msg) || msg[i] != '#' {
		return msg
	}
	j := strings.Index(msg[i:], ": ")
	if j < 0 {
		return msg
	}
	msg = msg[i+j+2:]
	if len(msg) > 1 && msg[0] == '*' {
		k := 1
		for k < len(msg) && isDigit(msg[k]) {
			k++
		}
		msg = trimBlank(msg[k:])
	}
	return msg
}

// isNodeHead recognises the "file.js:line" line Node prints above an
// uncaught exception.
func isNodeHead(s string) bool {
	c := strings.LastIndexByte(s, ':')
	if c <= 0 || c == len(s)-1 || strings.IndexByte(s, ' ') >= 0 {
		return false
	}
	if _, ok := atoi(s[c+1:]); !ok {
		return false
	}
	f := s[:c]
	return strings.HasSuffix(f, ".js") || strings.HasSuffix(f, ".mjs") || strings.HasSuffix(f, ".cjs") ||
		strings.HasSuffix(f, ".ts") || strings.HasPrefix(f, "node:")
}

// looksLikeException recognises "pkg.SomeError: message", "TypeError",
// "ActiveRecord::ConnectionTimeoutError (message):".
func looksLikeException(s string) bool {
	end := len(s)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ':' && (i+1 == len(s) || s[i+1] == ' ') || c == ' ' {
			end = i
			break
		}
		if !(isKeyByte(c, i == 0) || c == ':' || c == '$') {
			return false
		}
	}
	name := s[:end]
	if name == "" {
		return false
	}
	if end < len(s) && s[end] == ' ' && !strings.HasPrefix(s[end:], " (") {
		return false
	}
	return strings.HasSuffix(name, "Error") || strings.HasSuffix(name, "Exception") ||
		strings.HasSuffix(name, "Throwable") || strings.Contains(name, "Exception") ||
		strings.HasSuffix(name, "Timeout") || strings.HasSuffix(name, "Failure")
}

// headException reads an exception from a headline without a trace:
// Ruby's "app.rb:3:in 'f': message (RuntimeError)", Rails'
// "ActiveRecord::ConnectionTimeoutError (message):", Node's "TypeError: x".
func headException(msg string) (string, string) {
	if i := strings.Index(msg, ":in "); i > 0 && strings.HasSuffix(msg, ")") {
		if j := strings.Index(msg[i:], ": "); j > 0 {
			return msg[i+j+2:], ""
		}
	}
	if looksLikeException(msg) {
		return msg, ""
	}
	return "", ""
}

// workerPrefix splits off the "[PID] " a pre-forking server's worker puts
// before its lines (Puma in cluster mode before each request-log line):
// only digits between the brackets, then a blank and a line that goes on.
func workerPrefix(line string) (pid, rest string, ok bool) {
	if len(line) < 4 || line[0] != '[' {
		return "", line, false
	}
	end := strings.IndexByte(line, ']')
	if end < 2 || end > 11 || end+2 > len(line) || line[end+1] != ' ' {
		return "", line, false
	}
	for i := 1; i < end; i++ {
		if line[i] < '0' || line[i] > '9' {
			return "", line, false
		}
	}
	return line[1:end], line[end+2:], true
}
