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
