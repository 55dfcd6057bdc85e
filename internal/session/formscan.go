package session

import (
	"bytes"
	"strings"

	"golang.org/x/net/html"
)

// Why a scanner of its own: x/net/html's Tokenizer (v0.62) allocates a
// 4 KB buffer per page, a copy of every tag name and of every attribute's
// key and value of every tag, and a string per attribute for its
// duplicate check: 159 allocations and 15 µs for a 562-byte login page, a
// quarter of the CPU a login flow costs stampede outside the kernel.
// scanFormsFast walks the page with the Tokenizer's rules (the same tag,
// attribute, comment, raw-text and RCDATA states: see readTag, readComment,
// readRawOrRCDATA in x/net/html/token.go) without copying, and allocates
// only the forms it returns. What it does not reproduce exactly it does not
// try: it reports !ok and FindForm tokenizes the page with x/net/html as
// before. FuzzScanFormsFast holds the two to the same result.

// rawTags are the elements whose content the Tokenizer reads as raw text
// (or RCDATA: textarea, title) up to their end tag.
var rawTags = [...]string{"iframe", "noembed", "noframes", "noscript", "plaintext", "script", "style", "textarea", "title", "xmp"}

// fspan is a byte range of the page.
type fspan struct{ start, end int }

// fattr is one attribute of a tag: key and value as they are in the page.
type fattr struct{ key, val fspan }

// fscan is the state of one scan of a page.
type fscan struct {
	b     []byte
	i     int     // the next byte
	name  fspan   // the tag's name
	attrs []fattr // the tag's attributes, first of each key only, non-empty keys
	bail  bool    // the page needs the Tokenizer
}

func isHTMLSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\f' }

func isASCIILetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// eqLower reports whether s equals lower, ignoring the ASCII case of s.
func eqLower(s []byte, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// eqFoldASCII reports whether a and b are equal ignoring ASCII case only,
// as the Tokenizer's lower does.
func eqFoldASCII(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func (s *fscan) skipSpace() {
	for s.i < len(s.b) && isHTMLSpace(s.b[s.i]) {
		s.i++
	}
}

// tag reads a tag after its "<" and first letter (s.i is at that letter),
// as the Tokenizer's readTag does. It returns false when the page ends
// before the tag does (the Tokenizer emits no such tag).
func (s *fscan) tag(save bool) bool {
	b := s.b
	s.attrs = s.attrs[:0]
	s.name.start = s.i
	s.i++
	for s.i < len(b) && !isHTMLSpace(b[s.i]) && b[s.i] != '/' && b[s.i] != '>' {
		s.i++
	}
	if s.i >= len(b) {
		return false
	}
	s.name.end = s.i
	if isHTMLSpace(b[s.i]) {
		s.i++
	}
	s.skipSpace()
	for {
		if s.i >= len(b) {
			return false
		}
		if b[s.i] == '>' {
			s.i++
			return true
		}
		// The key: up to a space, "/", ">" or "=", a leading "=" being part of it.
		var a fattr
		a.key.start = s.i
		for s.i < len(b) {
			c := b[s.i]
			if c == '=' && s.i == a.key.start {
				s.i++
				continue
			}
			if c == '=' || c == '/' || c == '>' || isHTMLSpace(c) {
				break
			}
			s.i++
		}
		if s.i >= len(b) {
			return false
		}
		a.key.end = s.i
		// The value, as readTagAttrVal reads it.
		a.val = fspan{s.i, s.i}
		s.skipSpace()
		if s.i >= len(b) {
			return false
		}
		switch b[s.i] {
		case '/':
			s.i++
		case '=':
			s.i++
			s.skipSpace()
			if s.i >= len(b) {
				return false
			}
			switch q := b[s.i]; q {
			case '>':
			case '\'', '"':
				s.i++
				j := bytes.IndexByte(b[s.i:], q)
				if j < 0 {
					return false
				}
				a.val = fspan{s.i, s.i + j}
				s.i += j + 1
			default:
				a.val.start = s.i
				for s.i < len(b) && !isHTMLSpace(b[s.i]) && b[s.i] != '>' {
					s.i++
				}
				if s.i >= len(b) {
					return false
				}
				a.val.end = s.i
				if b[s.i] != '>' {
					s.i++
				}
			}
		}
		if save && a.key.end > a.key.start && !s.hasKey(b[a.key.start:a.key.end]) {
			if bytes.IndexByte(b[a.key.start:a.key.end], 0) >= 0 {
				s.bail = true // the Tokenizer turns NUL into U+FFFD
			}
			s.attrs = append(s.attrs, a)
		}
		s.skipSpace()
	}
}

// hasKey reports whether the tag already has an attribute of key (ASCII
// case ignored, as the Tokenizer lower-cases keys).
func (s *fscan) hasKey(key []byte) bool {
	for _, a := range s.attrs {
		if eqFoldASCII(s.b[a.key.start:a.key.end], key) {
			return true
		}
	}
	return false
}

// attr returns the value of the tag's attribute named lower, unescaped as
// the Tokenizer's TagAttr does, and whether the tag has it. A value the
// Tokenizer would change beyond new lines (a character reference, a NUL)
// is read from the tag by the Tokenizer itself.
func (s *fscan) attr(lower string, tagStart int) (string, bool) {
	for _, a := range s.attrs {
		if !eqLower(s.b[a.key.start:a.key.end], lower) {
			continue
		}
		v := s.b[a.val.start:a.val.end]
		if bytes.IndexByte(v, '&') >= 0 || bytes.IndexByte(v, 0) >= 0 {
			return tagAttr(s.b[tagStart:s.i], lower)
		}
		if bytes.IndexByte(v, '\r') >= 0 {
			return string(convertNewlines(bytes.Clone(v))), true
		}
		return string(v), true
	}
	return "", false
}

// add appends a field to the form, room for a login form's few made with
// the first.
func (f *Form) add(fl Field) {
	if f.Fields == nil {
		f.Fields = make([]Field, 0, 8)
	}
	f.Fields = append(f.Fields, fl)
}

// plainAttr returns the value of the tag's attribute named lower as it is
// in the page, when the Tokenizer would give it unchanged (no character
// reference, NUL or carriage return in it).
func (s *fscan) plainAttr(lower string) (v []byte, has, plain bool) {
	for _, a := range s.attrs {
		if !eqLower(s.b[a.key.start:a.key.end], lower) {
			continue
		}
		v = s.b[a.val.start:a.val.end]
		return v, true, bytes.IndexByte(v, '&') < 0 && bytes.IndexByte(v, 0) < 0 && bytes.IndexByte(v, '\r') < 0
	}
	return nil, false, false
}

// method returns the form's method upper-cased, "GET" when it has none:
// the common ones without a copy of the page's bytes.
func (s *fscan) method(tagStart int) string {
	v, has, plain := s.plainAttr("method")
	switch {
	case !has:
		return "GET"
	case plain && eqLower(v, "post"):
		return "POST"
	case plain && eqLower(v, "get"):
		return "GET"
	}
	m, _ := s.attr("method", tagStart)
	if m = strings.ToUpper(m); m == "" {
		return "GET"
	}
	return m
}

// inputTypes are the input types the scan tells apart, and the common others.
var inputTypes = [...]string{"hidden", "text", "password", "email", "submit", "checkbox", "radio", "button", "image", "reset", "file"}

// inputType returns the input's type lower-cased: the common ones without
// a copy of the page's bytes.
func (s *fscan) inputType(tagStart int) string {
	v, has, plain := s.plainAttr("type")
	if !has {
		return ""
	}
	if plain {
		for _, t := range inputTypes {
			if eqLower(v, t) {
				return t
			}
		}
	}
	t, _ := s.attr("type", tagStart)
	return strings.ToLower(t)
}

// tagAttr reads the attribute named lower of the one start tag in raw with
// the Tokenizer.
func tagAttr(raw []byte, lower string) (string, bool) {
	z := html.NewTokenizer(bytes.NewReader(raw))
	if tt := z.Next(); tt != html.StartTagToken && tt != html.SelfClosingTagToken {
		return "", false
	}
	_, more := z.TagName()
	for more {
		var k, v []byte
		k, v, more = z.TagAttr()
		if string(k) == lower {
			return string(v), true
		}
	}
	return "", false
}

// convertNewlines turns "\r\n" and "\r" into "\n", in place, as the
// Tokenizer does to text and attribute values.
func convertNewlines(s []byte) []byte {
	w := 0
	for r := 0; r < len(s); r++ {
		c := s[r]
		if c == '\r' {
			c = '\n'
			if r+1 < len(s) && s[r+1] == '\n' {
				r++
			}
		}
		s[w] = c
		w++
	}
	return s[:w]
}

// text returns the text of b as the Tokenizer's Text gives a text token of
// the data state (NUL kept) or of RCDATA (NUL replaced): new lines
// converted, character references unescaped.
func text(b []byte, rcdata bool) string {
	if bytes.IndexByte(b, '\r') >= 0 || rcdata && bytes.IndexByte(b, 0) >= 0 {
		b = convertNewlines(bytes.Clone(b))
		if rcdata {
			b = bytes.ReplaceAll(b, []byte{0}, []byte("\ufffd"))
		}
	}
	return html.UnescapeString(string(b))
}

// rawEnd returns the index of the end tag "</name" (followed by a space,
// "/" or ">", ASCII case ignored) in b from i, or -1.
func rawEnd(b []byte, i int, name string) int {
	for {
		j := bytes.Index(b[i:], []byte("</"))
		if j < 0 {
			return -1
		}
		k := i + j + 2
		if k+len(name) < len(b) && eqLower(b[k:k+len(name)], name) {
			if c := b[k+len(name)]; isHTMLSpace(c) || c == '/' || c == '>' {
				return i + j
			}
		}
		i = k
	}
}

// commentEnd returns the index after the comment whose "<!--" ends at i,
// by the Tokenizer's readComment, or len(b) when the page ends first.
func commentEnd(b []byte, i int) int {
	dashes, beginning := 0, true
	for i < len(b) {
		c := b[i]
		i++
		switch c {
		case '-':
			dashes++
			continue
		case '>':
			if dashes >= 2 || beginning {
				return i
			}
		case '!':
			if dashes >= 2 {
				if i >= len(b) {
					return i
				}
				c = b[i]
				i++
				if c == '>' {
					return i
				}
				if c == '-' {
					dashes, beginning = 1, false
					continue
				}
			}
		}
		dashes, beginning = 0, false
	}
	return len(b)
}

// scanFormsFast is scanForms without x/net/html's Tokenizer, for the pages
// whose forms it reads as the Tokenizer would: ok is false for a page it
// leaves to scanForms (a <plaintext>, a script holding "<!--").
func scanFormsFast(body []byte) (forms []*Form, ok bool) {
	var attrBuf [12]fattr
	s := &fscan{b: body, attrs: attrBuf[:0]}
	var cur *Form
	var inTextarea, inSelect, inOption bool
	var taName string
	var ta strings.Builder
	var selName, selFirst, selChosen string
	var selHasFirst, selHasChosen bool
	var optVal string
	var optHasVal, optSelected bool
	var optText strings.Builder
	b := body
	for s.i < len(b) {
		// Text up to the next token.
		textStart := s.i
		j := s.i
		for {
			k := bytes.IndexByte(b[j:], '<')
			if k < 0 || j+k+1 >= len(b) {
				j = len(b)
				break
			}
			j += k
			if c := b[j+1]; isASCIILetter(c) || c == '/' || c == '!' || c == '?' {
				break
			}
			j++
		}
		if j > textStart && !inTextarea && inOption {
			optText.WriteString(text(b[textStart:j], false))
		}
		if j >= len(b) {
			break
		}
		tagStart := j
		s.i = j + 2
		switch c := b[j+1]; {
		case c == '!':
			if s.i+2 <= len(b) && b[s.i] == '-' && b[s.i+1] == '-' {
				s.i = commentEnd(b, s.i+2)
				continue
			}
			if s.i+2 > len(b) {
				return forms, true // "<!" and less than two bytes: a comment to the end
			}
			// A doctype, or a bogus comment: up to the next ">".
			k := bytes.IndexByte(b[s.i:], '>')
			if k < 0 {
				return forms, true
			}
			s.i += k + 1
			continue
		case c == '?':
			k := bytes.IndexByte(b[s.i:], '>')
			if k < 0 {
				return forms, true
			}
			s.i += k + 1
			continue
		case c == '/':
			if s.i >= len(b) {
				return forms, true
			}
			if b[s.i] == '>' {
				s.i++ // "</>": no token
				continue
			}
			if !isASCIILetter(b[s.i]) {
				k := bytes.IndexByte(b[s.i:], '>')
				if k < 0 {
					return forms, true
				}
				s.i += k + 1
				continue
			}
			if !s.tag(false) {
				return forms, true
			}
			name := b[s.name.start:s.name.end]
			switch {
			case eqLower(name, "form"):
				cur = nil
			case eqLower(name, "textarea"):
				if inTextarea && cur != nil && taName != "" {
					cur.add(Field{taName, ta.String()})
				}
				inTextarea = false
			case eqLower(name, "option"):
				if inOption {
					v := optVal
					if !optHasVal {
						v = strings.TrimSpace(optText.String())
					}
					if !selHasFirst {
						selFirst, selHasFirst = v, true
					}
					if optSelected && !selHasChosen {
						selChosen, selHasChosen = v, true
					}
				}
				inOption = false
			case eqLower(name, "select"):
				if inSelect && cur != nil && selName != "" {
					if selHasChosen {
						cur.add(Field{selName, selChosen})
					} else if selHasFirst {
						cur.add(Field{selName, selFirst})
					}
				}
				inSelect, inOption = false, false
			}
			continue
		}
		// A start tag.
		s.i = j + 1
		if !s.tag(true) {
			return forms, true
		}
		if s.bail {
			return nil, false
		}
		name := b[s.name.start:s.name.end]
		switch {
		case eqLower(name, "form"):
			action, _ := s.attr("action", tagStart)
			cur = &Form{Action: action, Method: s.method(tagStart)}
			forms = append(forms, cur)
		case eqLower(name, "input"):
			if cur == nil {
				break
			}
			typ := s.inputType(tagStart)
			if typ == "password" {
				cur.HasPassword = true
			}
			n, has := s.attr("name", tagStart)
			if !has || n == "" {
				break
			}
			switch typ {
			case "submit", "button", "image", "reset", "file":
				continue
			case "checkbox", "radio":
				if _, checked := s.attr("checked", tagStart); !checked {
					continue
				}
				v, has := s.attr("value", tagStart)
				if !has {
					v = "on"
				}
				cur.add(Field{n, v})
				continue
			}
			v, _ := s.attr("value", tagStart)
			cur.add(Field{n, v})
		case eqLower(name, "textarea"):
			if cur == nil {
				break
			}
			inTextarea = true
			taName, _ = s.attr("name", tagStart)
			ta.Reset()
		case eqLower(name, "select"):
			if cur == nil {
				break
			}
			inSelect = true
			selName, _ = s.attr("name", tagStart)
			selHasFirst, selHasChosen = false, false
		case eqLower(name, "option"):
			if !inSelect {
				break
			}
			inOption = true
			optVal, optHasVal = s.attr("value", tagStart)
			_, optSelected = s.attr("selected", tagStart)
			optText.Reset()
		}
		// The content of a raw-text element, up to its end tag.
		for _, rt := range rawTags {
			if !eqLower(name, rt) {
				continue
			}
			if rt == "plaintext" {
				return nil, false
			}
			end := rawEnd(b, s.i, rt)
			if end < 0 {
				end = len(b)
			}
			content := b[s.i:end]
			if rt == "script" && bytes.Contains(content, []byte("<!--")) {
				return nil, false // the script-data escape states
			}
			if len(content) > 0 {
				rcdata := rt == "textarea" || rt == "title"
				if inTextarea {
					if rcdata {
						ta.WriteString(text(content, true))
					} else {
						ta.Write(bytes.ReplaceAll(convertNewlines(bytes.Clone(content)), []byte{0}, []byte("\ufffd")))
					}
				} else if inOption {
					if rcdata {
						optText.WriteString(text(content, true))
					} else {
						optText.Write(bytes.ReplaceAll(convertNewlines(bytes.Clone(content)), []byte{0}, []byte("\ufffd")))
					}
				}
			}
			s.i = end
			break
		}
	}
	return forms, true
}
