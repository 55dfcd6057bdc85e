package evidence

import (
	"strconv"
	"strings"
)

// kv is one parsed field. The strings point into the log line; quoted
// values keep their quotes until the event is built (see value).
type kv struct {
	k, v   string
	quoted bool
}

// value returns the field's value, unquoted.
func (f kv) value() string {
	if !f.quoted {
		return f.v
	}
	if strings.IndexByte(f.v, '\\') < 0 {
		return f.v[1 : len(f.v)-1]
	}
	if u, err := strconv.Unquote(f.v); err == nil {
		return u
	}
	return f.v[1 : len(f.v)-1]
}

// maxFields bounds the fields taken from one event.
const maxFields = 32

// parseKV appends the key=value pairs of s (auth_debug, logfmt and slog
// style: status=500 user=- msg="a b") to dst. A key starts with a letter or
// underscore and holds letters, digits, '_', '.', '-'; a value runs to the
// next blank, or is a double-quoted string with backslash escapes. Tokens
// that are not pairs are skipped.
func parseKV(s string, dst []kv) []kv {
	i := 0
	for i < len(s) && len(dst) < maxFields {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i < len(s) && (s[i] == '`' || s[i] == '(') {
			i++
		}
		start := i
		for i < len(s) && isKeyByte(s[i], i == start) {
			i++
		}
		if i == start || i >= len(s) || s[i] != '=' {
			// Not a pair: skip the token (a quoted string as a whole).
			i = skipToken(s, i)
			continue
		}
		key := s[start:i]
		i++ // '='
		if i < len(s) && s[i] == '"' {
			j := i + 1
			for j < len(s) && s[j] != '"' {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(s) {
				dst = append(dst, kv{k: key, v: s[i:]})
				return dst
			}
			dst = append(dst, kv{k: key, v: s[i : j+1], quoted: true})
			i = j + 1
			continue
		}
		j := i
		for j < len(s) && s[j] != ' ' && s[j] != '\t' {
			j++
		}
		v := s[i:j]
		for len(v) > 1 && strings.IndexByte(",;:`)", v[len(v)-1]) >= 0 {
			v = v[:len(v)-1]
		}
		dst = append(dst, kv{k: key, v: v})
		i = j
	}
	return dst
}

func skipToken(s string, i int) int {
	if i < len(s) && s[i] == '"' {
		j := i + 1
		for j < len(s) && s[j] != '"' {
			if s[j] == '\\' {
				j++
			}
			j++
		}
		return min(j+1, len(s))
	}
	for i < len(s) && s[i] != ' ' && s[i] != '\t' {
		i++
	}
	return i
}

func isKeyByte(c byte, first bool) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		return true
	case first:
		return false
	}
	return c >= '0' && c <= '9' || c == '.' || c == '-'
}

// parseRequestLine reads `"POST /path HTTP/1.1" 500 145 ...` (access logs,
// Django runserver) into method, path, status and bytes.
func parseRequestLine(s string, dst []kv) ([]kv, bool) {
	dst, _, ok := parseRequestTail(s, dst)
	return dst, ok
}

// parseRequestTail is parseRequestLine that also returns the text after
// the request line, status and bytes (the referer, user agent and any
// further fields of a combined log).
func parseRequestTail(s string, dst []kv) ([]kv, string, bool) {
	if len(s) < 3 || s[0] != '"' {
		return dst, "", false
	}
	end := strings.IndexByte(s[1:], '"')
	if end < 0 {
		return dst, "", false
	}
	req := s[1 : end+1]
	method, rest, ok := strings.Cut(req, " ")
	if !ok || !isMethod(method) {
		return dst, "", false
	}
	path, _, _ := strings.Cut(rest, " ")
	dst = append(dst, kv{k: "method", v: method}, kv{k: "path", v: path})
	tail := trimBlank(s[end+2:])
	status, after, _ := strings.Cut(tail, " ")
	if len(status) == 3 && isDigit(status[0]) && isDigit(status[1]) && isDigit(status[2]) {
		dst = append(dst, kv{k: "status", v: status})
		tail = trimBlank(after)
		b, after, _ := strings.Cut(tail, " ")
		if b == "-" || (b != "" && decimalLen(b) == len(b) && strings.IndexByte(b, '.') < 0) {
			dst = append(dst, kv{k: "bytes", v: b})
			tail = after
		}
	}
	return dst, tail, true
}

func isMethod(m string) bool {
	switch m {
	case "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE":
		return true
	}
	return false
}

// parseNginxTail splits an nginx error message at ", client: " and reads the
// ", key: value" pairs after it (client, server, request, upstream, host);
// request also yields method and path. It returns the message without them.
func parseNginxTail(msg string, dst []kv) (string, []kv) {
	i := strings.Index(msg, ", client: ")
	if i < 0 {
		return msg, dst
	}
	head, s := msg[:i], msg[i+2:]
	for s != "" && len(dst) < maxFields {
		key, rest, ok := strings.Cut(s, ": ")
		if !ok || strings.ContainsAny(key, " ,\"") {
			break
		}
		var val string
		if rest != "" && rest[0] == '"' {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				val, s = rest, ""
			} else {
				val, s = rest[:end+2], rest[end+2:]
			}
			if key == "request" {
				if m, r, ok := strings.Cut(val[1:], " "); ok && isMethod(m) {
					p, _, _ := strings.Cut(r, " ")
					dst = append(dst, kv{k: "method", v: m}, kv{k: "path", v: strings.TrimSuffix(p, "\"")})
				}
			}
			dst = append(dst, kv{k: key, v: val, quoted: len(val) >= 2 && val[len(val)-1] == '"'})
		} else {
			val, s, _ = strings.Cut(rest, ", ")
			dst = append(dst, kv{k: key, v: val})
			if s == "" {
				break
			}
			continue
		}
		s = strings.TrimPrefix(s, ", ")
	}
	return head, dst
}

// parsePgBouncerPrefix reads PgBouncer's socket prefix
// "C-0x55d…: db/user@10.0.0.5:50574 " (or S-) into conn, db, user and
// client (or server), returning the message after it.
func parsePgBouncerPrefix(msg string, dst []kv) (string, []kv) {
	if len(msg) < 5 || (msg[0] != 'C' && msg[0] != 'S') || msg[1] != '-' || msg[2] != '0' || msg[3] != 'x' {
		return msg, dst
	}
	colon := strings.Index(msg, ": ")
	if colon < 0 {
		return msg, dst
	}
	dst = append(dst, kv{k: "conn", v: msg[:colon]})
	rest := msg[colon+2:]
	tok, after, _ := strings.Cut(rest, " ")
	slash := strings.IndexByte(tok, '/')
	at := strings.LastIndexByte(tok, '@')
	if slash <= 0 || at < slash {
		return rest, dst
	}
	peer := "client"
	if msg[0] == 'S' {
		peer = "server"
	}
	dst = append(dst, kv{k: "db", v: tok[:slash]}, kv{k: "user", v: tok[slash+1 : at]}, kv{k: peer, v: tok[at+1:]})
	return after, dst
}

// parseUWSGIRequestTail reads the rest of a uWSGI request line,
// "GET /p?q=1 => generated 1234 bytes in 56 msecs (HTTP/1.1 200) 2 headers in 79 bytes (1 switches on core 0)"
// (also "... in 56 msecs via sendfile() (HTTP/1.1 200) ..." and
// "micros" with --log-micros), into method, path, status and bytes; the
// tail is its time, "56 msecs".
func parseUWSGIRequestTail(s string, dst []kv) ([]kv, string, bool) {
	method, rest, ok := strings.Cut(s, " ")
	if !ok || !isMethod(method) {
		return dst, "", false
	}
	path, rest, ok := strings.Cut(rest, " => generated ")
	if !ok {
		return dst, "", false
	}
	bytes, rest, ok := strings.Cut(rest, " bytes in ")
	if !ok {
		return dst, "", false
	}
	n, rest, _ := strings.Cut(rest, " ")
	unit, rest, _ := strings.Cut(rest, " ")
	dst = append(dst, kv{k: "method", v: method}, kv{k: "path", v: path})
	open := strings.IndexByte(rest, '(')
	for open >= 0 && open+1 < len(rest) && rest[open+1] == ')' {
		// " via sendfile() ": not the protocol's parenthesis.
		next := strings.IndexByte(rest[open+2:], '(')
		if next < 0 {
			open = -1
			break
		}
		open += 2 + next
	}
	if open >= 0 {
		if cl := strings.IndexByte(rest[open:], ')'); cl > 0 {
			proto := rest[open+1 : open+cl]
			if sp := strings.LastIndexByte(proto, ' '); sp >= 0 && len(proto)-sp-1 == 3 {
				dst = append(dst, kv{k: "status", v: proto[sp+1:]})
			}
		}
	}
	if isDecimal(bytes) {
		dst = append(dst, kv{k: "bytes", v: bytes})
	}
	return dst, n + " " + unit, true
}

// envoyTail reads what Envoy's default access log writes after the
// request line and status: %RESPONSE_FLAGS% ("UO", "UT,URX" or "-"), then
// (after Istio's %RESPONSE_CODE_DETAILS% and the like) %BYTES_RECEIVED%
// %BYTES_SENT% %DURATION% (milliseconds). It returns the flags ("" for
// "-") and the duration.
func envoyTail(tail string) (flags, durationMS string, ok bool) {
	tok, rest, _ := strings.Cut(tail, " ")
	if !isEnvoyFlags(tok) {
		return "", "", false
	}
	if tok != "-" {
		flags = tok
	}
	durationMS, ok = envoyCounts(rest)
	if !ok {
		return "", "", false
	}
	return flags, durationMS, true
}

// envoyCounts finds, in the text after Envoy's response flags, the first
// run of three integers (bytes received, bytes sent, duration) and
// returns the duration.
func envoyCounts(rest string) (string, bool) {
	var ints [3]string
	n := 0
	for k := 0; k < 8 && rest != ""; k++ {
		var t string
		t, rest, _ = strings.Cut(rest, " ")
		if t != "" && decimalLen(t) == len(t) && strings.IndexByte(t, '.') < 0 {
			ints[n] = t
			n++
			if n == 3 {
				return ints[2], true
			}
		} else {
			n = 0
		}
	}
	return "", false
}

// isEnvoyFlags recognises Envoy's response flags: "-", or short
// upper-case codes joined by commas ("UO", "UT,URX", "UAEX").
func isEnvoyFlags(s string) bool {
	if s == "-" {
		return true
	}
	if s == "" || len(s) > 40 {
		return false
	}
	for _, part := range strings.Split(s, ",") {
		if len(part) < 2 || len(part) > 5 {
			return false
		}
		for i := 0; i < len(part); i++ {
			if part[i] < 'A' || part[i] > 'Z' {
				return false
			}
		}
	}
	return true
}
