package har

import (
	"bytes"
	"encoding/json"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"

	"github.com/stampede-load/stampede/internal/session"
)

// Extract is where a scenario's step takes a value from its response:
// exactly one of Regex, Cookie, JSON, CSS, Header is set (the scenario's
// extract); Decode "url" URL-decodes what was found.
type Extract struct {
	Regex  string
	Cookie string
	JSON   string
	CSS    string
	Attr   string
	Header string
	Decode string
}

// finding is a response that handed out a value, and how to take it.
type finding struct {
	from *step
	ext  Extract
	// rule says in words what carried the value: "hidden input
	// csrfmiddlewaretoken", "cookie csrftoken", "meta tag csrf-token",
	// "JSON field token", "script text", "link /orders/…".
	rule string
	// inexpressible says why a scenario cannot take the value, though it
	// was found ("" when it can).
	inexpressible string
	// approx marks an extract that finds a value of the same kind (the
	// first such link), not the recorded one.
	approx bool
	// rename, when set, sends the value under this header name instead.
	rename string
	// name is the name the value has where it was found (the input's,
	// the meta tag's, the cookie's, the JSON key's), for its variable.
	name string
}

// pageIndex is what a response offers to the correlation, parsed once.
type pageIndex struct {
	html   bool
	inputs []htmlInput
	metas  []htmlMeta
	json   []jsonLeaf
	isJSON bool
}

type htmlInput struct{ name, value, typ string }

type htmlMeta struct{ attr, key, content string }

type jsonLeaf struct{ path, value string }

func indexPage(e *Entry) *pageIndex {
	p := &pageIndex{}
	body := e.Response.Body
	if len(body) == 0 {
		return p
	}
	trim := bytes.TrimSpace(body)
	mt := e.Response.MimeType
	if strings.Contains(mt, "json") || (len(trim) > 0 && (trim[0] == '{' || trim[0] == '[')) {
		d := json.NewDecoder(bytes.NewReader(body))
		d.UseNumber()
		var v any
		if d.Decode(&v) == nil {
			p.isJSON = true
			walkJSON("", v, func(path, val string) { p.json = append(p.json, jsonLeaf{path, val}) })
			return p
		}
	}
	if mt != "text/html" && mt != "application/xhtml+xml" && (len(trim) == 0 || trim[0] != '<') {
		return p
	}
	p.html = true
	z := html.NewTokenizer(bytes.NewReader(body))
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			return p
		}
		if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
			continue
		}
		name, has := z.TagName()
		switch atom.Lookup(name) {
		case atom.Input:
			a := attrs(z, has)
			if a["name"] != "" {
				p.inputs = append(p.inputs, htmlInput{a["name"], a["value"], strings.ToLower(a["type"])})
			}
		case atom.Meta:
			a := attrs(z, has)
			for _, k := range []string{"name", "property", "http-equiv", "id"} {
				if a[k] != "" {
					p.metas = append(p.metas, htmlMeta{k, a[k], a["content"]})
					break
				}
			}
		}
	}
}

func attrs(z *html.Tokenizer, more bool) map[string]string {
	m := map[string]string{}
	for more {
		var k, v []byte
		k, v, more = z.TagAttr()
		m[strings.ToLower(string(k))] = string(v)
	}
	return m
}

// find looks for the sent value s in the response of step j and returns
// how a scenario takes it from there; nil when the response does not
// carry it.
func (c *converter) find(j *step, s Sent, at *step) *finding {
	v := s.Value
	e := j.e
	named := lastName(s.Name)
	cookie := func() *finding {
		for _, ck := range e.Response.Cookies {
			if ck.Value == "" {
				continue
			}
			if ck.Value == v && (tokenLike(v) || strings.EqualFold(ck.Name, named) || s.Where == InHeader) {
				return &finding{from: j, ext: Extract{Cookie: ck.Name}, rule: "cookie " + ck.Name + " (the page's script copies it into the request)", name: ck.Name}
			}
			if dec, err := url.PathUnescape(ck.Value); err == nil && dec != ck.Value && dec == v && tokenLike(v) {
				// Laravel's XSRF-TOKEN, Angular's: the page's script
				// decodes the cookie before sending it.
				return &finding{from: j, ext: Extract{Cookie: ck.Name, Decode: "url"},
					rule: "cookie " + ck.Name + ", URL-decoded (the page's script copies it into the request)", name: ck.Name}
			}
		}
		return nil
	}
	if s.Where == InHeader || s.Where == InCookie {
		if f := cookie(); f != nil {
			return f
		}
	}
	if len(e.Response.Body) > 0 {
		idx := c.index(j)
		if f := c.findInBody(j, idx, s, named, at); f != nil {
			return f
		}
	}
	if s.Where != InHeader && s.Where != InCookie {
		if f := cookie(); f != nil {
			return f
		}
	}
	if tokenLike(v) {
		for name, vals := range e.Response.Headers {
			if name == "Set-Cookie" {
				continue
			}
			for _, hv := range vals {
				if hv == v {
					return &finding{from: j, ext: Extract{Header: name}, rule: "response header " + name, name: name}
				}
				if strings.HasSuffix(hv, " "+v) {
					// "Bearer TOKEN": the value after the scheme.
					return &finding{from: j, ext: Extract{Header: name}, rule: "response header " + name + " (its scheme is sent as recorded)",
						inexpressible: "the scenario format takes a response header whole, not the part after its scheme"}
				}
			}
		}
	}
	return nil
}

func (c *converter) index(j *step) *pageIndex {
	if j.idx == nil {
		j.idx = indexPage(j.e)
	}
	return j.idx
}

// findInBody looks for the value in a response body: an input, a meta tag,
// a JSON field, a link, then (for a token) anywhere, by its context.
func (c *converter) findInBody(j *step, idx *pageIndex, s Sent, named string, at *step) *finding {
	v := s.Value
	body := j.e.Response.Body
	if !bytes.Contains(body, []byte(v)) && !(idx.isJSON && c.jsonHas(idx, v)) {
		return nil
	}
	// An input of the page: by its name when it is the field sent, else
	// any input holding a token.
	for pass := 0; pass < 2; pass++ {
		for _, in := range idx.inputs {
			if in.value != v {
				continue
			}
			switch in.typ {
			case "submit", "button", "image", "reset":
				continue // a button's label is the page's constant
			}
			// By name: a hidden input that holds a token or an id (a
			// constant such as action=editpost stays as sent). Else any
			// input that holds a token.
			sameName := in.name == s.Name || in.name == named
			if pass == 0 && !(sameName && in.typ == "hidden" && (tokenLike(v) || idSegment(v) || secretName(in.name))) {
				continue
			}
			if pass == 1 && !tokenLike(v) {
				continue
			}
			ext := Extract{CSS: `input[name="` + cssEscape(in.name) + `"]`, Attr: "value"}
			if c.verify(j, ext) == v {
				what := "input "
				if in.typ == "hidden" {
					what = "hidden input "
				}
				return &finding{from: j, ext: ext, rule: what + in.name, name: in.name}
			}
		}
	}
	for _, m := range idx.metas {
		if m.content != v || (!tokenLike(v) && !strings.EqualFold(m.key, named)) {
			continue
		}
		ext := Extract{CSS: `meta[` + m.attr + `="` + cssEscape(m.key) + `"]`, Attr: "content"}
		if c.verify(j, ext) == v {
			return &finding{from: j, ext: ext, rule: "meta tag " + m.key, name: m.key}
		}
	}
	if idx.isJSON {
		// An id in a path or a query: the JSON field of that value named
		// id (or *_id, *Id), or under the name of the path's collection.
		idName := strings.HasSuffix(strings.ToLower(named), "id")
		if (s.Where == InPath || s.Where == InQuery || (s.Where == InForm && idName) || (s.Where == InJSON && idName)) && idSegment(v) {
			coll := ""
			if s.Where == InPath {
				if k, err := strconv.Atoi(s.Name); err == nil && k > 0 {
					segs := strings.Split(strings.Trim(at.e.Request.URL.Path, "/"), "/")
					if k <= len(segs) {
						coll = strings.ToLower(segs[k-1])
					}
				}
			}
			for _, l := range idx.json {
				key := lastName(l.path)
				lk := strings.ToLower(key)
				if l.value != v || !jsonPathSafe(l.path) {
					continue
				}
				if lk == "id" || strings.HasSuffix(lk, "_id") || strings.HasSuffix(key, "Id") || strings.EqualFold(key, named) ||
					(coll != "" && strings.Contains(strings.ToLower(l.path), coll)) {
					return &finding{from: j, ext: Extract{JSON: l.path}, rule: "JSON field " + l.path, name: key}
				}
			}
		}
		for pass := 0; pass < 2; pass++ {
			for _, l := range idx.json {
				if l.value != v || (pass == 0 && !strings.EqualFold(lastName(l.path), named)) || (pass == 1 && !tokenLike(v)) {
					continue
				}
				if !jsonPathSafe(l.path) {
					continue
				}
				return &finding{from: j, ext: Extract{JSON: l.path}, rule: "JSON field " + l.path, name: lastName(l.path)}
			}
		}
	}
	switch s.Where {
	case InPath:
		if !idSegment(v) && !tokenLike(v) {
			return nil
		}
		if f := c.findLink(j, s, at); f != nil {
			return f
		}
	case InQuery, InForm:
		if !idSegment(v) && !tokenLike(v) {
			return nil
		}
		if f := c.findParam(j, s); f != nil {
			return f
		}
	}
	if !tokenLike(v) {
		return nil
	}
	if re, left := contextRegex(body, v); re != "" {
		f := &finding{from: j, ext: Extract{Regex: re}, rule: "text of the page, after " + describeContext(left)}
		if m := lastIdent.FindStringSubmatch(left); m != nil {
			f.name = m[1]
		}
		return f
	}
	return nil
}

func (c *converter) jsonHas(idx *pageIndex, v string) bool {
	for _, l := range idx.json {
		if l.value == v {
			return true
		}
	}
	return false
}

// findLink finds a path segment in a link of the page: the path up to the
// segment, then the value.
func (c *converter) findLink(j *step, s Sent, at *step) *finding {
	k, err := strconv.Atoi(s.Name)
	if err != nil {
		return nil
	}
	segs := strings.Split(strings.Trim(at.e.Request.URL.EscapedPath(), "/"), "/")
	if k >= len(segs) || k == 0 {
		return nil
	}
	prefix := "/" + strings.Join(segs[:k], "/") + "/"
	class := valueClass(s.Value)
	re := regexp.QuoteMeta(prefix) + "(" + class + ")"
	after := ""
	if k+1 < len(segs) {
		after = "/"
	}
	full := re
	if after != "" {
		full += regexp.QuoteMeta(after)
	}
	got, ok := firstMatch(full, j.e.Response.Body)
	if !ok {
		return nil
	}
	f := &finding{from: j, ext: Extract{Regex: full}, rule: "link " + prefix + "…"}
	if got != s.Value {
		if !idSegment(s.Value) {
			return nil
		}
		f.approx = true
	}
	return f
}

// findParam finds a query or form value in a link or form of the page:
// name=value.
func (c *converter) findParam(j *step, s Sent) *finding {
	if s.Name == "" {
		return nil
	}
	class := valueClass(s.Value)
	re := `[?&;]` + regexp.QuoteMeta(url.QueryEscape(s.Name)) + "=(" + class + ")"
	got, ok := firstMatch(re, j.e.Response.Body)
	if !ok {
		return nil
	}
	f := &finding{from: j, ext: Extract{Regex: re}, rule: "link parameter " + s.Name}
	if got != s.Value {
		if !idSegment(s.Value) {
			return nil
		}
		f.approx = true
	}
	return f
}

// verify runs an extract on the recorded response, as the scenario will.
func (c *converter) verify(j *step, ext Extract) string {
	x := &session.Extractor{CSS: ext.CSS, Attr: ext.Attr, JSON: ext.JSON, Cookie: ext.Cookie, Header: ext.Header, URLDecode: ext.Decode == "url"}
	if ext.Regex != "" {
		re, err := regexp.Compile(ext.Regex)
		if err != nil {
			return ""
		}
		x.Regex = re
	}
	got, err := x.Extract(nil, &session.Page{Body: j.e.Response.Body, URL: j.e.Request.URL})
	if err != nil {
		return ""
	}
	return got
}

func firstMatch(re string, body []byte) (string, bool) {
	r, err := regexp.Compile(re)
	if err != nil {
		return "", false
	}
	m := r.FindSubmatch(body)
	if len(m) < 2 {
		return "", false
	}
	return string(m[1]), true
}

// valueClass is the regular expression class of the characters a value of
// this kind is made of.
func valueClass(v string) string {
	switch {
	case isDigits(v):
		return `\d+`
	case onlyChars(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"):
		return `[A-Za-z0-9]+`
	case onlyChars(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"):
		return `[\w-]+`
	case onlyChars(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+/=."):
		return `[\w+/=.-]+`
	}
	return `[^"'<>\s&;,]+`
}

func onlyChars(v, set string) bool {
	for _, r := range v {
		if !strings.ContainsRune(set, r) {
			return false
		}
	}
	return v != ""
}

// contextRegex builds a regular expression that finds v in body by the
// text before it: the shortest left context, from a word's start, whose
// first match is v; left is that context. "" when none is found within 64
// bytes.
func contextRegex(body []byte, v string) (re, left string) {
	class := valueClass(v)
	cls := regexp.MustCompile("^" + class + "$")
	for from := 0; from < len(body); {
		k := bytes.Index(body[from:], []byte(v))
		if k < 0 {
			return "", ""
		}
		k += from
		from = k + 1
		end := k + len(v)
		// The value must be whole: not part of a longer run of its class.
		if k > 0 && cls.MatchString(v+string(body[k-1])) && cls.MatchString(string(body[k-1])) {
			continue
		}
		if end < len(body) && cls.MatchString(string(body[end])) {
			continue
		}
		for n := 4; n <= 64 && n <= k; n++ {
			start := k - n
			if bytes.IndexByte(body[start:k], '\n') >= 0 {
				break
			}
			// Start at a word's start, and hold a word (the key before
			// the value), so the expression reads: `API_KEY = "`, not ` = "`.
			if start > 0 && isWordByte(body[start]) && isWordByte(body[start-1]) {
				continue
			}
			if !hasLetter(string(body[start:k])) {
				continue
			}
			re := regexp.QuoteMeta(string(body[start:k])) + "(" + class + ")"
			if got, ok := firstMatch(re, body); ok && got == v {
				return re, string(body[start:k])
			}
		}
	}
	return "", ""
}

// lastIdent is the last identifier of a text: the key before a value in
// `"nonce":"`, `var csrf = '`, `data-token="`.
var lastIdent = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_-]*)[^A-Za-z0-9_]*$`)

func isWordByte(b byte) bool {
	return b == '_' || (b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z')
}

// describeContext shows the text before a value, from its last word: `"nonce":"`.
func describeContext(left string) string {
	if i := strings.LastIndexAny(left, " ,;{("); i >= 0 && i < len(left)-1 {
		left = left[i+1:]
	}
	return "`" + left + "`"
}

func cssEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}

// jsonPathSafe reports whether a JSON path can be written as a scenario's
// json extract (keys without dots or brackets).
func jsonPathSafe(p string) bool {
	for _, part := range strings.Split(p, ".") {
		key := part
		if i := strings.IndexByte(part, '['); i >= 0 {
			key = part[:i]
		}
		if key == "" && !strings.HasPrefix(part, "[") {
			return false
		}
	}
	return p != ""
}
