// Package secret masks secrets in text on its way into a run directory or
// onto the terminal: the failure reasons of requests, the evidence read from
// server logs, the probes' readings. It is the one place that decides what a
// secret looks like; every writer calls it.
//
// Text is masked two ways, both replacing the secret with Marker:
//
//   - By pattern, whatever the value: the value of a key that names a secret
//     (see IsKey) in key=value and key = 'value' (query strings, form
//     bodies, logfmt, DSNs, Django's error reports), in "key": "value" and
//     'key': ['value'] (JSON, Python dicts and QueryDicts), and in a
//     "key: value" line when the value is one word; the whole value of the
//     Cookie, Set-Cookie, Authorization and X-…-Token headers; a token
//     after "Bearer " (or "BEARER "); the password of a URL's userinfo
//     (postgres://u:pw@h/db); the literal after SQL's PASSWORD keyword.
//   - By value: the exact strings given to New (the users file's passwords,
//     the probes' DSN passwords), and their URL-, HTML- and JSON-escaped
//     forms, wherever they appear (a password echoed in an error page).
//     Values shorter than MinValue bytes are masked by pattern only: masking
//     every "abc" of a text would leave nothing to read.
//
// Masking is built for the hot path of the log parser: a text in which no
// pattern's trigger leads to a secret's key and, for a Masker with values,
// no sampled 4-byte gram is a value's is returned as is, without
// allocating; an event's texts are looked at in one pass.
package secret

import (
	"html"
	"maps"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/stampede-load/stampede"
)

// Marker replaces a secret, as stampede.Redact does in a DSN.
const Marker = "xxxxx"

// MinValue is the length, in bytes, of the shortest value masked by value.
const MinValue = 4

// forms returns v and the forms it takes once escaped into a URL, HTML or
// a JSON string.
func forms(v string) []string {
	q := strconv.Quote(v)
	return []string{v, url.QueryEscape(v), url.PathEscape(v), html.EscapeString(v), q[1 : len(q)-1]}
}

// Len returns the number of values (escaped forms included) m masks.
func (m *Masker) Len() int {
	if m == nil {
		return 0
	}
	return m.n
}

// Mask returns s with its secrets replaced by Marker: m's values, then the
// patterns (in this order a masked value cannot make a pattern's value
// that masking again would change). Masking a masked text changes nothing,
// unless a value holds an 'x' (Marker's letter) and is found again across
// a marker's edge: it is then masked once more, never revealed.
func (m *Masker) Mask(s string) string {
	if m != nil && m.n > 0 {
		s = m.maskValues(s)
	}
	return maskPatterns(s)
}

// MaskValues returns s with every occurrence of each value (of MinValue
// bytes or more) replaced by Marker: for the few secrets of one session
// (its cookies, a CSRF token), found at run time, where a Masker is not
// worth building.
func MaskValues(s string, values ...string) string {
	for _, v := range values {
		if len(v) >= MinValue && strings.Contains(s, v) {
			s = strings.ReplaceAll(s, v, Marker)
		}
	}
	return s
}

// Mask returns s masked by pattern only: (*Masker)(nil).Mask(s).
func Mask(s string) string { return maskPatterns(s) }

// Evidence masks the texts of ev in place: its message, exception, stack
// frames and fields. A field whose name is a secret's key loses its whole
// value. An event with nothing to mask, the usual case, is checked in one
// pass over all its texts.
func (m *Masker) Evidence(ev *stampede.Evidence) {
	if !m.eventMayHold(ev) {
		return
	}
	ev.Message = m.Mask(ev.Message)
	ev.Exception = m.Mask(ev.Exception)
	for i, f := range ev.Stack {
		ev.Stack[i] = m.Mask(f)
	}
	for k, v := range ev.Fields {
		if IsKey(k) && !harmless(v) {
			ev.Fields[k] = Marker
		} else if mv := m.Mask(v); mv != v {
			ev.Fields[k] = mv
		}
	}
}

// eventMayHold reports whether some text of ev may hold a secret: the texts
// are joined with newlines, which no pattern crosses and no trigger reads
// differently from the end of a text, and looked at once. It never says no
// where masking the texts one by one would change one.
func (m *Masker) eventMayHold(ev *stampede.Evidence) bool {
	bp := joinPool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 1<<20 { // a huge event's buffer is not kept
			joinPool.Put(bp)
		}
	}()
	b := append((*bp)[:0], ev.Message...)
	b = append(append(b, '\n'), ev.Exception...)
	for _, f := range ev.Stack {
		b = append(append(b, '\n'), f...)
	}
	for k, v := range ev.Fields {
		if IsKey(k) && !harmless(v) {
			*bp = b
			return true
		}
		b = append(append(b, '\n'), v...)
	}
	*bp = b
	s := unsafe.String(unsafe.SliceData(b), len(b))
	return mayHold(s) || (m != nil && m.n > 0 && len(m.find(s, nil)) > 0)
}

var joinPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// Sample masks the texts of s: its error and its textual readings. Info
// is copied before a reading changes, never written: a probe may keep it.
func (m *Masker) Sample(s *stampede.Sample) {
	s.Err = m.Mask(s.Err)
	copied := false
	for k, v := range s.Info {
		mv := m.Mask(v)
		if mv == v {
			continue
		}
		if !copied {
			s.Info, copied = maps.Clone(s.Info), true
		}
		s.Info[k] = mv
	}
}

// IsKey reports whether a key (a form field, query parameter, header,
// cookie, JSON key, setting or users-file column) names a secret: it
// contains, in any case, pass, pwd, secret, token, csrf, session, cookie,
// authorization, api_key (or apikey, api-key), credential or sessid.
// "password", "csrfmiddlewaretoken", "sessionid", "HTTP_COOKIE",
// "X-CSRFToken" and "DATABASE_PASSWORD" do; "username" and "next" do not.
func IsKey(key string) bool {
	if len(key) < 3 || len(key) > 64 {
		return false
	}
	for i := 0; i+3 <= len(key); i++ {
		rest := key[i:]
		switch lower(key[i]) {
		case 'p':
			if hasFold(rest, "pass") || hasFold(rest, "pwd") {
				return true
			}
		case 's':
			if hasFold(rest, "secret") || hasFold(rest, "session") || hasFold(rest, "sessid") {
				return true
			}
		case 't':
			if hasFold(rest, "token") {
				return true
			}
		case 'c':
			if hasFold(rest, "csrf") || hasFold(rest, "cookie") || hasFold(rest, "credential") {
				return true
			}
		case 'a':
			if hasFold(rest, "authorization") || hasFold(rest, "apikey") ||
				(hasFold(rest, "api") && len(rest) >= 7 && (rest[3] == '_' || rest[3] == '-') && hasFold(rest[4:], "key")) {
				return true
			}
		}
	}
	return false
}

// hasFold reports whether s starts with lowerWord, ignoring ASCII case.
func hasFold(s, lowerWord string) bool {
	return len(s) >= len(lowerWord) && foldEqual(s[:len(lowerWord)], lowerWord)
}

// DSNPassword returns the password a DSN or URL carries, in its userinfo
// (postgres://u:pw@h/db, redis://:pw@h), its query (?password=pw) or as a
// key=value connection string (host=h password=pw); "" when it has none.
func DSNPassword(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		if pw, ok := u.User.Password(); ok && pw != "" {
			return pw
		}
		if pw := u.Query().Get("password"); pw != "" {
			return pw
		}
		return ""
	}
	// key=value: a value may be single-quoted with \' and \\ escapes.
	s := dsn
	for s != "" {
		s = strings.TrimLeft(s, " \t\n")
		k, rest, ok := strings.Cut(s, "=")
		if !ok {
			return ""
		}
		rest = strings.TrimLeft(rest, " ")
		var v string
		if strings.HasPrefix(rest, "'") {
			var b strings.Builder
			i := 1
			for ; i < len(rest) && rest[i] != '\''; i++ {
				if rest[i] == '\\' && i+1 < len(rest) {
					i++
				}
				b.WriteByte(rest[i])
			}
			v, s = b.String(), rest[min(i+1, len(rest)):]
		} else {
			v, s, _ = strings.Cut(rest, " ")
		}
		if strings.TrimSpace(k) == "password" {
			return v
		}
	}
	return ""
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
