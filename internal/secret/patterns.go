package secret

import "strings"

// The pattern scan looks at the bytes that can end a key or start a
// secret, found through a table; every other byte costs one lookup.
const (
	trigEq    = 1 + iota // key=value
	trigColon            // "key": value, Header: value, scheme://user:pw@
	trigQuote            // PASSWORD 'literal'
	trigSpace            // Bearer token
)

var trig = func() (t [256]uint8) {
	t['='] = trigEq
	t[':'] = trigColon
	t['\''] = trigQuote
	t[' '] = trigSpace
	return t
}()

// masker accumulates the masked text: nil until the first mask, so a text
// without secrets is returned as is.
type masker struct {
	s    string
	b    []byte
	last int // s[last:] is not yet in b
}

// cover replaces s[i:j] with Marker, unless it is already masked or harmless.
func (w *masker) cover(i, j int) {
	if i < w.last || j <= i || harmless(w.s[i:j]) {
		return
	}
	if w.b == nil {
		w.b = make([]byte, 0, len(w.s))
	}
	w.b = append(w.b, w.s[w.last:i]...)
	w.b = append(w.b, Marker...)
	w.last = j
}

func (w *masker) result() string {
	if w.b == nil {
		return w.s
	}
	return string(append(w.b, w.s[w.last:]...))
}

func maskPatterns(s string) string {
	if !mayHold(s) {
		return s
	}
	w := masker{s: s}
	for i := 0; i < len(s); i++ {
		t := trig[s[i]]
		if t == 0 {
			continue
		}
		end := -1
		switch t {
		case trigEq:
			end = w.keyValue(i)
		case trigColon:
			end = w.colon(i)
		case trigQuote:
			end = w.sqlPassword(i)
		case trigSpace:
			end = w.bearer(i)
		}
		if end > i {
			i = end - 1
		}
	}
	return w.result()
}

// keyValue handles the '=' at i: key=value, key = 'value', key=[...]. It
// returns where the value ends, or -1.
func (w *masker) keyValue(i int) int {
	s := w.s
	if i+1 < len(s) && (s[i+1] == '=' || s[i+1] == '>') {
		return i + 2 // == and =>: operators
	}
	if i > 0 && (s[i-1] == '=' || s[i-1] == '!' || s[i-1] == '<' || s[i-1] == '>') {
		return -1
	}
	j := i
	for j > 0 && i-j < 2 && s[j-1] == ' ' {
		j--
	}
	if !IsKey(keyBefore(s, j)) {
		return -1
	}
	v := i + 1
	// "key = 'value'" (Django's reports) has blanks on both sides; in
	// "password= next=x" the value is empty.
	for j < i && v < len(s) && v-i <= 2 && s[v] == ' ' {
		v++
	}
	vs, ve, end := valueAt(s, v, false)
	w.cover(vs, ve)
	return end
}

// keyBefore returns the key that ends at j: letters, digits, '_', '-', '.'.
func keyBefore(s string, j int) string {
	k := j
	for k > 0 && j-k < 64 && isKeyByte(s[k-1]) {
		k--
	}
	return s[k:j]
}

func isKeyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
}

// valueAt reads the value that starts at v: a quoted string (its content),
// a bracketed list (its content), or a bare word that ends at a blank or
// punctuation. With line, a bare value runs to the end of the line instead
// (a header's value). It returns the span to mask and where the value ends.
func valueAt(s string, v int, line bool) (start, stop, end int) {
	if v >= len(s) {
		return v, v, v
	}
	if s[v] == '\\' && v+1 < len(s) && (s[v+1] == '"' || s[v+1] == '\'') {
		// An escaped quoted string inside another: \"password\": \"x\".
		q := s[v : v+2]
		k := strings.Index(s[v+2:], q)
		if k < 0 {
			k = len(s) - v - 2
		}
		return v + 2, v + 2 + k, min(v+4+k, len(s))
	}
	switch c := s[v]; c {
	case '"', '\'':
		k := v + 1
		for k < len(s) && s[k] != c && s[k] != '\n' {
			if s[k] == '\\' && k+1 < len(s) {
				k++
			}
			k++
		}
		k = min(k, len(s))
		return v + 1, k, min(k+1, len(s))
	case '[':
		// A list, its quoted items skipped whole: ['a]b', 'c'].
		k := v + 1
		for k < len(s) && s[k] != ']' && s[k] != '\n' {
			if q := s[k]; q == '"' || q == '\'' {
				for k++; k < len(s) && s[k] != q && s[k] != '\n'; k++ {
					if s[k] == '\\' {
						k++
					}
				}
			}
			k++
		}
		k = min(k, len(s))
		return v + 1, k, min(k+1, len(s))
	}
	k := v
	for k < len(s) && !endsValue(s[k], line) {
		k++
	}
	return v, k, k
}

// endsValue reports a byte that ends a bare value; a header's value ends
// only at the end of its line or of a quoted string holding it.
func endsValue(c byte, line bool) bool {
	switch c {
	case '\n', '\r', '"', '\'', '\\':
		return true
	case ' ', '\t', '&', ';', ',', ')', ']', '}', '>', '<':
		return !line
	}
	return false
}

// colon handles the ':' at i: a URL's userinfo password, a quoted key's
// value ("password": "x", 'password': ['x']), a secret header's value
// (Cookie: ..., Authorization: Bearer ...), or a secret key's one-word
// value (password: x).
func (w *masker) colon(i int) int {
	s := w.s
	if i+2 < len(s) && s[i+1] == '/' && s[i+2] == '/' {
		return w.userinfo(i + 3)
	}
	if i == 0 || i+1 >= len(s) {
		return -1
	}
	next := s[i+1]
	if q := s[i-1]; q == '"' || q == '\'' {
		// A quoted key: "password": "x", 'password': ['x'], "token":123.
		open := -1
		for k := i - 2; k >= 0 && i-k <= 66; k-- {
			if s[k] == q {
				open = k
				break
			}
		}
		if open < 0 || !IsKey(s[open+1:i-1]) {
			return -1
		}
		v := i + 1
		for v < len(s) && v-i <= 2 && s[v] == ' ' {
			v++
		}
		vs, ve, end := valueAt(s, v, false)
		w.cover(vs, ve)
		return end
	}
	if next != ' ' {
		return -1
	}
	key := keyBefore(s, i)
	if key == "" || !IsKey(key) {
		return -1
	}
	v := i + 1
	for v < len(s) && v-i <= 2 && s[v] == ' ' {
		v++
	}
	if isHeader(key) {
		// The whole value, to the end of the line; an Authorization keeps
		// its scheme.
		if sp := schemeLen(s[v:]); sp > 0 {
			v += sp
		}
		vs, ve, end := valueAt(s, v, true)
		w.cover(vs, ve)
		return end
	}
	// "password: x" masks a one-word value; "Password: This field is
	// required." is a message, not a secret.
	vs, ve, end := valueAt(s, v, false)
	if ve < len(s) && s[ve] == ' ' && ve+1 < len(s) && s[ve+1] != ' ' && s[vs] != '"' && s[vs] != '\'' {
		return -1
	}
	w.cover(vs, ve)
	return end
}

// isHeader reports an HTTP header whose whole value is a secret: Cookie,
// Set-Cookie, Authorization, Proxy-Authorization, and the X-…-Token,
// X-…-Key and X-CSRF… kind.
func isHeader(key string) bool {
	var buf [64]byte
	k := buf[:len(key)]
	for i := 0; i < len(key); i++ {
		k[i] = lower(key[i])
	}
	switch string(k) {
	case "cookie", "set-cookie", "authorization", "proxy-authorization":
		return true
	}
	return len(k) > 2 && k[0] == 'x' && k[1] == '-'
}

// schemeLen returns the length of an authorization scheme and its blank
// at the start of s ("Bearer ", "Basic "), or 0.
func schemeLen(s string) int {
	k := 0
	for k < len(s) && k < 16 && (s[k] >= 'a' && s[k] <= 'z' || s[k] >= 'A' && s[k] <= 'Z') {
		k++
	}
	if k == 0 || k >= len(s) || s[k] != ' ' {
		return 0
	}
	switch strings.ToLower(s[:k]) {
	case "bearer", "basic", "digest", "token", "negotiate", "jwt":
		return k + 1
	}
	return 0
}

// userinfo handles a URL whose authority starts at a: the password of
// user:password@host, up to the authority's last '@'.
func (w *masker) userinfo(a int) int {
	s := w.s
	k := a
	at := -1
	for k < len(s) {
		c := s[k]
		if c == '/' || c == '?' || c == '#' || c == ' ' || c == '\t' || c == '\n' || c == '"' || c == '\'' || c == '<' || c == '>' || c == '\\' {
			break
		}
		if c == '@' {
			at = k
		}
		k++
	}
	if at < 0 {
		return a
	}
	for c := a; c < at; c++ {
		if s[c] == ':' {
			w.cover(c+1, at)
			break
		}
	}
	return at
}

// sqlPassword handles the quote at i: the literal after SQL's PASSWORD
// keyword (CREATE ROLE app PASSWORD '...').
func (w *masker) sqlPassword(i int) int {
	s := w.s
	if i < 9 || s[i-1] != ' ' || !foldEqual(s[i-9:i-1], "password") || (i > 9 && isKeyByte(s[i-10])) {
		return -1
	}
	k := i + 1
	for k < len(s) {
		if s[k] == '\'' {
			if k+1 < len(s) && s[k+1] == '\'' {
				k += 2
				continue
			}
			break
		}
		k++
	}
	w.cover(i+1, min(k, len(s)))
	return min(k+1, len(s))
}

// bearer handles the blank at i: the token after "Bearer ".
func (w *masker) bearer(i int) int {
	s := w.s
	if i < 6 || (s[i-1] != 'r' && s[i-1] != 'R') || !isBearer(s, i-6) {
		return -1
	}
	vs, ve, end := valueAt(s, i+1, false)
	w.cover(vs, ve)
	return end
}

// foldEqual reports s == lowerWord ignoring ASCII case.
func foldEqual(s, lowerWord string) bool {
	if len(s) != len(lowerWord) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if lower(s[i]) != lowerWord[i] {
			return false
		}
	}
	return true
}

// harmless reports a value that holds no secret: empty, a flag, a blank
// placeholder, or already masked (by us, or by Django's "*****").
func harmless(v string) bool {
	switch v {
	case "", "-", "True", "False", "None", "true", "false", "null", "nil", "NULL":
		return true
	}
	for i := 0; i < len(v); i++ {
		if v[i] != '*' && v[i] != 'x' {
			return false
		}
	}
	return true
}

// mayHold reports whether some pattern may find a secret in s. It looks for
// each pattern's trigger with the vectorized byte search of package strings
// and rejects most triggers at a glance, so a text without secrets costs a
// few searches instead of the byte-by-byte scan of maskPatterns. It never
// says no where the scan would mask.
func mayHold(s string) bool {
	for i := 0; ; {
		k := strings.IndexByte(s[i:], '=')
		if k < 0 {
			break
		}
		i += k
		j := i
		for j > 0 && i-j < 2 && s[j-1] == ' ' {
			j--
		}
		if IsKey(keyBefore(s, j)) {
			return true
		}
		i++
	}
	for i := 0; ; {
		k := strings.IndexByte(s[i:], ':')
		if k < 0 {
			break
		}
		i += k
		if i+1 < len(s) {
			switch c := s[i+1]; {
			case c == '/':
				if i+2 < len(s) && s[i+2] == '/' && strings.IndexByte(s[i:], '@') > 0 {
					return true
				}
			case i > 0 && (s[i-1] == '"' || s[i-1] == '\''):
				return true // a quoted key: the scan reads it
			case c == ' ':
				if IsKey(keyBefore(s, i)) {
					return true
				}
			}
		}
		i++
	}
	for i := 0; ; {
		k := strings.IndexByte(s[i:], '\'')
		if k < 0 {
			break
		}
		i += k
		if i >= 9 && s[i-1] == ' ' && foldEqual(s[i-9:i-1], "password") {
			return true
		}
		i++
	}
	for i := 0; ; {
		k := strings.IndexByte(s[i:], 'B')
		if k < 0 {
			return false
		}
		i += k
		if isBearer(s, i) {
			return true
		}
		i++
	}
}

// isBearer reports "Bearer " or "BEARER " at i, as a word: RFC 6750's
// spelling and its shout. (After an Authorization key any spelling is
// masked by the key's rule.)
func isBearer(s string, i int) bool {
	if i+7 > len(s) || (s[i+1:i+7] != "earer " && s[i+1:i+7] != "EARER ") {
		return false
	}
	return i == 0 || !isKeyByte(s[i-1])
}
