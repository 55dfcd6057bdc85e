package evidence

import (
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Limits of the JSON reader: a line over them is read as text.
const (
	maxJSONDepth  = 20  // nesting of objects and arrays
	maxJSONFields = 512 // leaves kept; further ones are parsed and dropped
	maxJSONIndex  = 100 // array elements flattened into "key.N"
)

// Kinds of a flattened JSON leaf.
const (
	jStr  = iota + 1 // a string
	jNum             // a number
	jBool            // true or false
	jNull            // null
	jStrs            // an array whose elements are all strings
)

// jfield is one leaf of a JSON object, flattened: the key is the dotted
// path from the top ("err.type", "exception.0.frames.2.lineno"). raw points
// into the line: a string's text between its quotes with its escapes still
// in, an array's whole text, a number's or literal's token.
type jfield struct {
	key   string
	raw   string
	kind  uint8
	depth uint8 // 0 for the members of the top object
	esc   bool  // a string holding backslash escapes
	used  bool  // read into the Evidence by name (not copied as a field)
}

// text returns a string or literal leaf's value, decoded.
func (f *jfield) text() string {
	if f.kind == jStr && f.esc {
		return jsonUnescape(f.raw)
	}
	return f.raw
}

// strings returns the elements of an array of strings, decoded.
func (f *jfield) strings() []string {
	if f.kind != jStrs {
		if f.kind == jStr {
			return []string{f.text()}
		}
		return nil
	}
	var out []string
	s := f.raw[1:] // after '['
	for {
		i := strings.IndexByte(s, '"')
		if i < 0 {
			return out
		}
		s = s[i+1:]
		end, esc := jsonStringEnd(s)
		if end < 0 {
			return out
		}
		v := s[:end]
		if esc {
			v = jsonUnescape(v)
		}
		out = append(out, v)
		s = s[end+1:]
	}
}

// jscan reads one JSON object into flattened leaves. It accepts what
// encoding/json accepts, but for control bytes in strings and invalid
// UTF-8, which loggers write and which are kept as they are.
type jscan struct {
	s      string
	i      int
	fields []jfield
	key    []byte // the dotted prefix being built
}

// scanJSON reads s, which must hold one JSON object and nothing else but
// blanks, into dst. ok is false for anything else (then s is text).
func scanJSON(s string, dst []jfield) ([]jfield, bool) {
	js := jscan{s: s, fields: dst[:0]}
	js.blank()
	if js.i >= len(s) || s[js.i] != '{' {
		return dst[:0], false
	}
	if !js.object(0) {
		return js.fields[:0], false
	}
	js.blank()
	if js.i != len(s) {
		return js.fields[:0], false
	}
	return js.fields, true
}

func (js *jscan) blank() {
	for js.i < len(js.s) {
		switch js.s[js.i] {
		case ' ', '\t', '\r', '\n':
			js.i++
		default:
			return
		}
	}
}

// object reads an object at js.i ('{'); its members' keys are prefixed
// by js.key.
func (js *jscan) object(depth int) bool {
	if depth >= maxJSONDepth {
		return false
	}
	js.i++ // '{'
	js.blank()
	if js.i < len(js.s) && js.s[js.i] == '}' {
		js.i++
		return true
	}
	base := len(js.key)
	for {
		js.blank()
		if js.i >= len(js.s) || js.s[js.i] != '"' {
			return false
		}
		js.i++
		end, esc := jsonStringEnd(js.s[js.i:])
		if end < 0 {
			return false
		}
		k := js.s[js.i : js.i+end]
		js.i += end + 1
		if esc {
			k = jsonUnescape(k)
		}
		js.blank()
		if js.i >= len(js.s) || js.s[js.i] != ':' {
			return false
		}
		js.i++
		js.blank()
		js.key = append(js.key[:base], k...)
		var key string
		if base == 0 {
			key = k // a member of the top object: no copy
		}
		if !js.value(key, depth) {
			return false
		}
		js.key = js.key[:base]
		js.blank()
		if js.i >= len(js.s) {
			return false
		}
		switch js.s[js.i] {
		case ',':
			js.i++
		case '}':
			js.i++
			return true
		default:
			return false
		}
	}
}

// value reads the value at js.i, named by js.key (key when already a
// string).
func (js *jscan) value(key string, depth int) bool {
	if js.i >= len(js.s) {
		return false
	}
	c := js.s[js.i]
	switch {
	case c == '{':
		js.key = append(js.key, '.')
		return js.object(depth + 1)
	case c == '[':
		return js.array(key, depth)
	case c == '"':
		js.i++
		end, esc := jsonStringEnd(js.s[js.i:])
		if end < 0 {
			return false
		}
		js.leaf(key, js.s[js.i:js.i+end], jStr, depth, esc)
		js.i += end + 1
		return true
	case c == 't' && strings.HasPrefix(js.s[js.i:], "true"),
		c == 'f' && strings.HasPrefix(js.s[js.i:], "false"):
		n := 4
		if c == 'f' {
			n = 5
		}
		js.leaf(key, js.s[js.i:js.i+n], jBool, depth, false)
		js.i += n
		return true
	case c == 'n' && strings.HasPrefix(js.s[js.i:], "null"):
		js.leaf(key, "null", jNull, depth, false)
		js.i += 4
		return true
	case c == '-' || isDigit(c):
		n := jsonNumberLen(js.s[js.i:])
		if n == 0 {
			return false
		}
		js.leaf(key, js.s[js.i:js.i+n], jNum, depth, false)
		js.i += n
		return true
	}
	return false
}

// array reads an array. One of strings only is a leaf of kind jStrs; the
// objects of an array are flattened under "key.N".
func (js *jscan) array(key string, depth int) bool {
	if depth+1 >= maxJSONDepth {
		return false
	}
	start := js.i
	js.i++ // '['
	base := len(js.key)
	allStr, n := true, 0
	js.blank()
	if js.i < len(js.s) && js.s[js.i] == ']' {
		js.i++
		return true
	}
	for {
		js.blank()
		if js.i >= len(js.s) {
			return false
		}
		c := js.s[js.i]
		switch {
		case c == '"':
			js.i++
			end, _ := jsonStringEnd(js.s[js.i:])
			if end < 0 {
				return false
			}
			js.i += end + 1
		case c == '{' || c == '[':
			allStr = false
			if n < maxJSONIndex {
				js.key = appendIndex(append(js.key, '.'), n)
			} else {
				js.key = append(js.key, ".more"...)
			}
			var ok bool
			if c == '{' {
				js.key = append(js.key, '.')
				ok = js.object(depth + 2)
			} else {
				ok = js.array("", depth+1)
			}
			if !ok {
				return false
			}
			js.key = js.key[:base]
		default:
			allStr = false
			mark := len(js.fields)
			if !js.value("", depth+1) {
				return false
			}
			js.fields = js.fields[:mark] // scalars of a mixed array are not kept
		}
		n++
		js.blank()
		if js.i >= len(js.s) {
			return false
		}
		switch js.s[js.i] {
		case ',':
			js.i++
		case ']':
			js.i++
			if allStr {
				js.leaf(key, js.s[start:js.i], jStrs, depth, false)
			}
			return true
		default:
			return false
		}
	}
}

func appendIndex(b []byte, n int) []byte {
	if n >= 10 {
		b = appendIndex(b, n/10)
	}
	return append(b, byte('0'+n%10))
}

// leaf records a value; key is "" when js.key holds the name.
func (js *jscan) leaf(key, raw string, kind uint8, depth int, esc bool) {
	if len(js.fields) >= maxJSONFields {
		return
	}
	if key == "" {
		if len(js.key) == 0 {
			return
		}
		key = string(js.key)
	}
	js.fields = append(js.fields, jfield{key: key, raw: raw, kind: kind, depth: uint8(min(depth, 255)), esc: esc})
}

// jsonStringEnd returns the index of the closing quote of the string that
// s starts inside of, and whether it holds escapes; -1 if it has none or
// an escape is malformed.
func jsonStringEnd(s string) (int, bool) {
	esc := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			return i, esc
		case '\\':
			esc = true
			if i+1 >= len(s) {
				return -1, esc
			}
			switch s[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if i+6 > len(s) || !isHex(s[i+2]) || !isHex(s[i+3]) || !isHex(s[i+4]) || !isHex(s[i+5]) {
					return -1, esc
				}
				i += 5
			default:
				return -1, esc
			}
		}
	}
	return -1, esc
}

// jsonNumberLen returns the length of the JSON number s starts with, 0 if
// none.
func jsonNumberLen(s string) int {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	d := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	if i == d || s[d] == '0' && i-d > 1 {
		return 0 // no digit, or a leading zero
	}
	if i < len(s) && s[i] == '.' {
		i++
		f := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == f {
			return 0
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		e := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == e {
			return 0
		}
	}
	return i
}

// jsonUnescape decodes the escapes of a JSON string's text (checked by
// jsonStringEnd). Unpaired surrogates become U+FFFD.
func jsonUnescape(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'u':
			if i+4 >= len(s) {
				return b.String()
			}
			r := rune(hex4(s[i+1 : i+5]))
			i += 4
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if i+6 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
					r2 = rune(hex4(s[i+3 : i+7]))
				}
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					r = d
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			b.WriteRune(r)
		default: // '"', '\\', '/'
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func hex4(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isDigit(c):
			n = n<<4 | int(c-'0')
		case c >= 'a' && c <= 'f':
			n = n<<4 | int(c-'a'+10)
		case c >= 'A' && c <= 'F':
			n = n<<4 | int(c-'A'+10)
		}
	}
	return n
}
