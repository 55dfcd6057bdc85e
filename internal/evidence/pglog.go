package evidence

import (
	"strings"
	"unicode/utf8"
)

// Kinds of PostgreSQL headline that carry timing fields.
const (
	pgNone = iota
	// pgDuration: "duration: 12.345 ms  statement: ..." (log_min_duration_statement,
	// log_duration, auto_explain's "plan:").
	pgDuration
	// pgLock: log_lock_waits' "process N still waiting for ...",
	// "acquired ...", "detected deadlock while waiting for ...".
	pgLock
)

// maxStatement bounds the statement field, in bytes.
const maxStatement = 1000

// pgHead is what a PostgreSQL duration or lock-wait headline says.
type pgHead struct {
	kind int
	// headLen is the length of the headline's own part: "duration: 1.000
	// ms" without the statement after it, so that the SQL text is not
	// matched against the catalog.
	headLen int

	durationMS string // "1234.567"
	phase      string // statement, execute, parse, bind, plan; empty for a bare duration
	stmt       string // the statement's first line, after "statement: "

	pid, mode, object, waitMS string
	lockEvent                 string // waiting, acquired, deadlock, avoided, failed
}

// parsePGHead reads the headlines PostgreSQL writes about time spent:
//
//	duration: 1234.567 ms
//	duration: 1234.567 ms  statement: SELECT ...
//	duration: 1234.567 ms  execute <unnamed>: SELECT ...   (also parse, bind)
//	duration: 1234.567 ms  plan:                           (auto_explain)
//	process 123 still waiting for ShareLock on transaction 456 after 1000.052 ms
//	process 123 acquired ShareLock on transaction 456 after 1500.000 ms
//	process 123 detected deadlock while waiting for ShareLock on ... after 1000.000 ms
//	process 123 avoided deadlock for AccessExclusiveLock on ... by rearranging queue order after 1000.000 ms
//	process 123 failed to acquire ShareLock on ... after 1000.000 ms
//
// It returns ok false for any other text.
func parsePGHead(msg string) (h pgHead, ok bool) {
	if rest, found := strings.CutPrefix(msg, "duration: "); found {
		return parsePGDuration(msg, rest)
	}
	if rest, found := strings.CutPrefix(msg, "process "); found {
		return parsePGLock(rest)
	}
	return h, false
}

func parsePGDuration(msg, rest string) (h pgHead, ok bool) {
	n := decimalLen(rest)
	if n == 0 || !strings.HasPrefix(rest[n:], " ms") {
		return h, false
	}
	h.kind, h.durationMS = pgDuration, rest[:n]
	after := rest[n+3:]
	h.headLen = len(msg) - len(after)
	if after == "" {
		return h, true
	}
	// PostgreSQL separates the statement with two spaces.
	s, found := strings.CutPrefix(after, "  ")
	if !found {
		return h, false
	}
	verb, text, found := strings.Cut(s, ":")
	if !found {
		return h, false
	}
	switch {
	case verb == "statement" || verb == "plan":
		h.phase = verb
	case strings.HasPrefix(verb, "execute "), strings.HasPrefix(verb, "parse "), strings.HasPrefix(verb, "bind "):
		// "execute <unnamed>", "execute S_1", "bind <unnamed>/C_1".
		h.phase, _, _ = strings.Cut(verb, " ")
	default:
		return h, false
	}
	h.stmt = trimBlank(text)
	return h, true
}

func parsePGLock(rest string) (h pgHead, ok bool) {
	i := 0
	for i < len(rest) && isDigit(rest[i]) {
		i++
	}
	if i == 0 || i >= len(rest) || rest[i] != ' ' {
		return h, false
	}
	h.pid = rest[:i]
	s := rest[i+1:]
	var body string
	for _, v := range [...]struct{ prefix, event string }{
		{"still waiting for ", "waiting"},
		{"acquired ", "acquired"},
		{"detected deadlock while waiting for ", "deadlock"},
		{"avoided deadlock for ", "avoided"},
		{"failed to acquire ", "failed"},
	} {
		if b, found := strings.CutPrefix(s, v.prefix); found {
			body, h.lockEvent = b, v.event
			break
		}
	}
	if h.lockEvent == "" {
		return h, false
	}
	// MODE on OBJECT [by rearranging queue order] after N ms
	mode, obj, found := strings.Cut(body, " on ")
	if !found || mode == "" || strings.IndexByte(mode, ' ') >= 0 {
		return h, false
	}
	a := strings.LastIndex(obj, " after ")
	if a <= 0 {
		return h, false
	}
	ms := obj[a+len(" after "):]
	n := decimalLen(ms)
	if n == 0 || ms[n:] != " ms" {
		return h, false
	}
	obj = strings.TrimSuffix(obj[:a], " by rearranging queue order")
	h.kind, h.mode, h.object, h.waitMS = pgLock, mode, obj, ms[:n]
	h.headLen = len("process ") + len(rest)
	return h, true
}

// decimalLen returns the length of the "123" or "123.456" at the start of
// s, 0 when there is none.
func decimalLen(s string) int {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	if i == 0 {
		return 0
	}
	if i+1 < len(s) && s[i] == '.' && isDigit(s[i+1]) {
		i++
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	return i
}

// pgHolders reads the holders and the wait queue of log_lock_waits' DETAIL:
// "Process holding the lock: 789. Wait queue: 123." or "Processes holding
// the lock: 1, 2. Wait queue: 3, 4." into "789" and "123" (lists joined by
// commas without blanks).
func pgHolders(detail string) (holders, queue string, ok bool) {
	rest, found := strings.CutPrefix(detail, "Process holding the lock: ")
	if !found {
		if rest, found = strings.CutPrefix(detail, "Processes holding the lock: "); !found {
			return "", "", false
		}
	}
	h, q, found := strings.Cut(rest, ". Wait queue: ")
	if !found {
		return "", "", false
	}
	q = strings.TrimSuffix(q, ".")
	return pidList(h), pidList(q), true
}

// pidList turns "1, 2" into "1,2"; anything but digits, commas and blanks
// makes it empty.
func pidList(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isDigit(c) && c != ',' && c != ' ' {
			return ""
		}
	}
	if strings.IndexByte(s, ' ') < 0 {
		return s
	}
	return strings.ReplaceAll(s, " ", "")
}

// pgPrefixPID finds the process id a log_line_prefix wrote as "[%p]" in
// the text before the level ("[123] app@app ", "[123]: [1-1] user=...").
func pgPrefixPID(prefix string) string {
	for i := 0; i+2 < len(prefix); i++ {
		if prefix[i] != '[' || (i > 0 && prefix[i-1] != ' ') {
			continue
		}
		j := i + 1
		for j < len(prefix) && isDigit(prefix[j]) {
			j++
		}
		if j > i+1 && j < len(prefix) && prefix[j] == ']' {
			return prefix[i+1 : j]
		}
	}
	return ""
}

// collapseSQL joins parts with single blanks, collapsing every run of
// whitespace, hides the literal after PASSWORD (CREATE/ALTER ROLE), and
// cuts the result to maxStatement bytes on a character boundary.
func collapseSQL(parts ...string) string {
	var b strings.Builder
	space := false
	for _, p := range parts {
		for i := 0; i < len(p); i++ {
			c := p[i]
			if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
				space = b.Len() > 0
				continue
			}
			if space {
				b.WriteByte(' ')
				space = false
			}
			b.WriteByte(c)
			if b.Len() >= maxStatement+4 {
				break
			}
		}
		space = b.Len() > 0
		if b.Len() >= maxStatement+4 {
			break
		}
	}
	s := hidePasswords(b.String())
	if len(s) > maxStatement {
		cut := maxStatement
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

// hidePasswords replaces the string literal after each PASSWORD keyword
// with 'xxxxx': a slow "ALTER ROLE app PASSWORD '...'" must not put the
// password in the evidence.
func hidePasswords(s string) string {
	if !containsFold(s, "password") {
		return s
	}
	var b strings.Builder
	for {
		i := indexFold(s, "password")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		j := i + len("password")
		k := j
		for k < len(s) && s[k] == ' ' {
			k++
		}
		if k == j || k >= len(s) || s[k] != '\'' {
			b.WriteString(s[:j])
			s = s[j:]
			continue
		}
		end := k + 1
		for end < len(s) {
			if s[end] == '\'' {
				if end+1 < len(s) && s[end+1] == '\'' {
					end += 2
					continue
				}
				break
			}
			end++
		}
		b.WriteString(s[:k])
		b.WriteString("'xxxxx'")
		if end >= len(s) {
			return b.String()
		}
		s = s[end+1:]
	}
}

func containsFold(s, sub string) bool { return indexFold(s, sub) >= 0 }

// indexFold is strings.Index ignoring ASCII case; sub is lower case.
func indexFold(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		match := true
		for j := 0; j < len(sub); j++ {
			if lower(s[i+j]) != sub[j] {
				match = false
				break
			}
		}
		if match {
			return i
		}
	}
	return -1
}

// pgFields adds the fields of a duration or lock-wait headline to p.kv.
func (p *Parser) pgFields(e *event, h *pgHead) {
	switch h.kind {
	case pgDuration:
		p.kv = append(p.kv, kv{k: "duration_ms", v: h.durationMS})
		if h.phase != "" {
			p.kv = append(p.kv, kv{k: "phase", v: h.phase})
		}
		if strings.HasSuffix(e.rest, e.msg) {
			if pid := pgPrefixPID(e.rest[:len(e.rest)-len(e.msg)]); pid != "" {
				p.kv = append(p.kv, kv{k: "pid", v: pid})
			}
		}
		if stmt := durationSQL(e, h); stmt != "" {
			p.kv = append(p.kv, kv{k: "statement", v: stmt})
		}
		// The statement's text says nothing about why it was slow; it must
		// not be matched against the catalog either.
		p.body = p.body[:0]
	case pgLock:
		p.kv = append(p.kv, kv{k: "pid", v: h.pid}, kv{k: "lock_mode", v: h.mode},
			kv{k: "lock_object", v: h.object}, kv{k: "wait_ms", v: h.waitMS})
		if h.lockEvent == "acquired" {
			p.kv = append(p.kv, kv{k: "acquired", v: "true"})
		}
		for _, f := range p.pg {
			if f.k != "DETAIL" {
				continue
			}
			if holders, queue, ok := pgHolders(f.v); ok {
				if holders != "" {
					p.kv = append(p.kv, kv{k: "holders", v: holders})
				}
				if queue != "" {
					p.kv = append(p.kv, kv{k: "wait_queue", v: queue})
				}
				break
			}
		}
		if p.hasPG("STATEMENT") {
			p.kv = append(p.kv, kv{k: "statement", v: p.pgText("STATEMENT")})
		}
	}
}

// durationSQL returns the statement of a duration headline: its text after
// "statement: " (or "execute NAME: "...) and the lines that continue it up
// to the first DETAIL & co.; for auto_explain's "plan:", the Query Text
// line of the plan.
func durationSQL(e *event, h *pgHead) string {
	if h.phase == "plan" {
		for _, l := range e.lines {
			if q, ok := strings.CutPrefix(trimBlank(l), "Query Text: "); ok {
				return collapseSQL(q)
			}
		}
		return ""
	}
	if h.phase == "" {
		return ""
	}
	k := 0
	for k < len(e.lines) && !isPGSubLine(e.lines[k]) {
		k++
	}
	if k == 0 {
		return collapseSQL(h.stmt)
	}
	parts := make([]string, 0, k+1)
	parts = append(parts, h.stmt)
	return collapseSQL(append(parts, e.lines[:k]...)...)
}

func isPGSubLine(line string) bool {
	if line == "" {
		return false
	}
	lv, _ := pgSub(line)
	return lv != ""
}

// hasPG reports whether the event has a DETAIL & co. line of level key.
func (p *Parser) hasPG(key string) bool {
	for _, f := range p.pg {
		if f.k == key {
			return true
		}
	}
	return false
}

// pgText returns the collapsed text of the event's key lines (STATEMENT
// and the lines that continue it).
func (p *Parser) pgText(key string) string {
	var parts []string
	for _, f := range p.pg {
		if f.k == key {
			parts = append(parts, f.v)
		}
	}
	return collapseSQL(parts...)
}

// pgLevel finds PostgreSQL's "LEVEL:  " (two blanks) after any
// log_line_prefix ("[123]: [1-1] user=app,db=app,client=10.0.0.1 LOG:  ")
// in the first bytes of s, when the usual token scan found no level.
func pgLevel(s string) (level, msg string, at int, ok bool) {
	lim := s
	if len(lim) > 512 {
		lim = lim[:512]
	}
	from := 0
	for {
		i := strings.Index(lim[from:], ":  ")
		if i < 0 {
			return "", "", 0, false
		}
		i += from
		j := i
		for j > 0 && (lim[j-1] >= 'A' && lim[j-1] <= 'Z' || isDigit(lim[j-1])) {
			j--
		}
		if j < i && (j == 0 || lim[j-1] == ' ') {
			w := lim[j:i]
			lv := levelWord(w)
			if lv == "" && len(w) == 6 && strings.HasPrefix(w, "DEBUG") && w[5] >= '1' && w[5] <= '5' {
				lv = "DEBUG"
			}
			if lv != "" && (isPGMain(lv) || isPGSub(lv)) {
				return lv, trimBlank(s[i+1:]), j, true
			}
		}
		from = i + 1
	}
}
