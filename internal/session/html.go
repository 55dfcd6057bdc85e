package session

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/PuerkitoBio/goquery"
	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// Form is an HTML form as a browser would submit it: its action resolved
// against the page, its method, and every successful control with its
// current value (hidden inputs such as Django's csrfmiddlewaretoken, Rails'
// authenticity_token, Laravel's _token or ASP.NET's
// __RequestVerificationToken included).
type Form struct {
	Action string
	Method string
	// Fields holds the controls in document order; names may repeat.
	Fields []Field
	// HasPassword reports whether the form has a password input.
	HasPassword bool
}

// Field is one name/value pair of a form.
type Field struct{ Name, Value string }

// ErrNoForm is returned when a page has no form to submit.
var ErrNoForm = errors.New("session: no form on the page")

// Values returns the form's fields with overrides applied: an override
// replaces the first field of that name, or is added when the form has none.
func (f *Form) Values(overrides map[string]string) url.Values {
	v := make(url.Values, len(f.Fields)+len(overrides))
	done := make(map[string]bool, len(overrides))
	for _, fl := range f.Fields {
		if o, ok := overrides[fl.Name]; ok {
			if !done[fl.Name] {
				v.Add(fl.Name, o)
				done[fl.Name] = true
			}
			continue
		}
		v.Add(fl.Name, fl.Value)
	}
	for k, o := range overrides {
		if !done[k] {
			v.Add(k, o)
		}
	}
	return v
}

// Pairs appends to dst the fields Values(overrides) holds, with overrides
// given as pairs of distinct names, in the order url.Values.Encode writes
// them: sorted by name, a name's values in document order. It is Values
// without the maps, for the hot path of a login (AppendQuery encodes the
// result).
func (f *Form) Pairs(dst []Field, overrides []Field) []Field {
	start := len(dst)
	override := func(name string) (string, bool) {
		for _, o := range overrides {
			if o.Name == name {
				return o.Value, true
			}
		}
		return "", false
	}
	for i, fl := range f.Fields {
		o, ok := override(fl.Name)
		if !ok {
			dst = append(dst, fl)
			continue
		}
		// An override takes the place of the first field of its name; the
		// others of that name are left out.
		first := true
		for _, e := range f.Fields[:i] {
			if e.Name == fl.Name {
				first = false
				break
			}
		}
		if first {
			dst = append(dst, Field{fl.Name, o})
		}
	}
	for _, o := range overrides {
		if !slices.ContainsFunc(f.Fields, func(fl Field) bool { return fl.Name == o.Name }) {
			dst = append(dst, o)
		}
	}
	slices.SortStableFunc(dst[start:], func(a, b Field) int { return strings.Compare(a.Name, b.Name) })
	return dst
}

// AppendQuery appends pairs to dst URL-encoded, "name=value" joined by
// "&", each escaped as url.QueryEscape does: the bytes url.Values.Encode
// writes for the same pairs in the same order.
func AppendQuery(dst []byte, pairs []Field) []byte {
	for i, p := range pairs {
		if i > 0 {
			dst = append(dst, '&')
		}
		dst = appendQueryEscape(dst, p.Name)
		dst = append(dst, '=')
		dst = appendQueryEscape(dst, p.Value)
	}
	return dst
}

// appendQueryEscape appends s escaped as url.QueryEscape does: letters,
// digits and "-_.~" as they are, a space as "+", every other byte as %XX.
func appendQueryEscape(dst []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	for i := range len(s) {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == '~':
			dst = append(dst, c)
		case c == ' ':
			dst = append(dst, '+')
		default:
			dst = append(dst, '%', hex[c>>4], hex[c&15])
		}
	}
	return dst
}

// FindForm returns the form to submit from body, a page at pageURL. With an
// empty selector it picks the form that has a password field (a login form),
// else the only form, else the first. A selector is a CSS selector matched
// against the page (e.g. "form#signup", "form[action$='/login/']").
func FindForm(body []byte, pageURL *url.URL, selector string) (*Form, error) {
	var forms []*Form
	var err error
	if selector != "" && selector != "form" {
		forms, err = formsBySelector(body, selector)
	} else if fs, ok := scanFormsFast(body); ok {
		forms = fs
	} else {
		forms = scanForms(body)
	}
	if err != nil {
		return nil, err
	}
	if len(forms) == 0 {
		if selector != "" {
			return nil, fmt.Errorf("%w matching %q", ErrNoForm, selector)
		}
		return nil, ErrNoForm
	}
	pick := forms[0]
	if selector == "" || selector == "form" {
		for _, f := range forms {
			if f.HasPassword {
				pick = f
				break
			}
		}
	}
	pick.Action = resolve(pageURL, pick.Action)
	return pick, nil
}

func resolve(base *url.URL, ref string) string {
	if base == nil {
		return ref
	}
	if ref == "" {
		return base.String()
	}
	if s, ok := resolvePlainPath(base, ref); ok {
		return s
	}
	u, err := base.Parse(strings.TrimSpace(ref))
	if err != nil {
		return base.String()
	}
	return u.String()
}

// resolvePlainPath resolves the common action, an absolute path of plain
// characters ("/accounts/login/") on an http or https page, to what
// base.Parse(ref).String() gives, without parsing: ok is false for any
// other ref or base (TestResolvePlainPath and FuzzResolve hold the two to
// the same strings).
func resolvePlainPath(base *url.URL, ref string) (string, bool) {
	if !plainPath(ref) || base.User != nil || base.Opaque != "" || base.Host == "" || base.Scheme != "http" && base.Scheme != "https" {
		return "", false
	}
	for i := range len(base.Host) {
		c := base.Host[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == ':' || c == '[' || c == ']') {
			return "", false
		}
	}
	return base.Scheme + "://" + base.Host + ref, true
}

// plainPath reports whether ref is an absolute path of plain characters
// (letters, digits, "-_~./"), with no empty or dot segment and no "//":
// one that url.Parse cannot fail on and ResolveReference leaves as it is.
func plainPath(ref string) bool {
	if ref == "" || ref[0] != '/' {
		return false
	}
	for i := range len(ref) {
		c := ref[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '~' {
			continue
		}
		// A "/" or "." after a "/" is left to ResolveReference: "//host",
		// an empty segment, a dot segment.
		if (c == '/' || c == '.') && (i == 0 || ref[i-1] != '/') {
			continue
		}
		return false
	}
	return true
}

// scanForms tokenizes the page once and collects every form and its
// controls. It is the hot path of a login flow, so it avoids building a DOM.
func scanForms(body []byte) []*Form {
	z := html.NewTokenizer(bytes.NewReader(body))
	var forms []*Form
	var cur *Form
	var inTextarea, inSelect, inOption bool
	var taName string
	var ta strings.Builder
	var selName, selFirst, selChosen string
	var selHasFirst, selHasChosen bool
	var optVal string
	var optHasVal, optSelected bool
	var optText strings.Builder
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			return forms
		case html.TextToken:
			if inTextarea {
				ta.Write(z.Text())
			} else if inOption {
				optText.Write(z.Text())
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			a := atom.Lookup(name)
			switch a {
			case atom.Form:
				attrs := readAttrs(z, hasAttr)
				cur = &Form{Action: attrs["action"], Method: strings.ToUpper(attrs["method"])}
				if cur.Method == "" {
					cur.Method = "GET"
				}
				forms = append(forms, cur)
			case atom.Input:
				if cur == nil {
					continue
				}
				attrs := readAttrs(z, hasAttr)
				typ := strings.ToLower(attrs["type"])
				if typ == "password" {
					cur.HasPassword = true
				}
				n, ok := attrs["name"]
				if !ok || n == "" {
					continue
				}
				switch typ {
				case "submit", "button", "image", "reset", "file":
					continue
				case "checkbox", "radio":
					if _, checked := attrs["checked"]; !checked {
						continue
					}
					v, has := attrs["value"]
					if !has {
						v = "on"
					}
					cur.Fields = append(cur.Fields, Field{n, v})
					continue
				}
				cur.Fields = append(cur.Fields, Field{n, attrs["value"]})
			case atom.Textarea:
				if cur == nil {
					continue
				}
				attrs := readAttrs(z, hasAttr)
				inTextarea, taName = true, attrs["name"]
				ta.Reset()
			case atom.Select:
				if cur == nil {
					continue
				}
				attrs := readAttrs(z, hasAttr)
				inSelect, selName = true, attrs["name"]
				selHasFirst, selHasChosen = false, false
			case atom.Option:
				if !inSelect {
					continue
				}
				attrs := readAttrs(z, hasAttr)
				inOption = true
				optVal, optHasVal = attrs["value"]
				_, optSelected = attrs["selected"]
				optText.Reset()
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			switch atom.Lookup(name) {
			case atom.Form:
				cur = nil
			case atom.Textarea:
				if inTextarea && cur != nil && taName != "" {
					cur.Fields = append(cur.Fields, Field{taName, ta.String()})
				}
				inTextarea = false
			case atom.Option:
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
			case atom.Select:
				if inSelect && cur != nil && selName != "" {
					if selHasChosen {
						cur.Fields = append(cur.Fields, Field{selName, selChosen})
					} else if selHasFirst {
						cur.Fields = append(cur.Fields, Field{selName, selFirst})
					}
				}
				inSelect, inOption = false, false
			}
		}
	}
}

func readAttrs(z *html.Tokenizer, more bool) map[string]string {
	m := make(map[string]string, 4)
	for more {
		var k, v []byte
		k, v, more = z.TagAttr()
		m[string(k)] = string(v)
	}
	return m
}

func formsBySelector(body []byte, selector string) ([]*Form, error) {
	doc, err := goquery.NewDocumentFromReader(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("session: parse page: %w", err)
	}
	var forms []*Form
	var selErr error
	func() {
		defer func() {
			if r := recover(); r != nil { // goquery panics on an invalid selector
				selErr = fmt.Errorf("session: invalid CSS selector %q: %v", selector, r)
			}
		}()
		doc.Find(selector).Each(func(_ int, s *goquery.Selection) {
			if goquery.NodeName(s) != "form" {
				s = s.Closest("form")
				if s.Length() == 0 {
					return
				}
			}
			h, err := goquery.OuterHtml(s)
			if err != nil {
				return
			}
			forms = append(forms, scanForms([]byte(h))...)
		})
	}()
	return forms, selErr
}

// IsLoginPage reports whether a page shows a password input: a login form
// shown again after a login POST means the login did not happen, whatever
// the status code says.
func IsLoginPage(body []byte) bool {
	i := 0
	for {
		j := indexFold(body[i:], []byte("type="))
		if j < 0 {
			return false
		}
		i += j + len("type=")
		rest := body[i:]
		if len(rest) > 0 && (rest[0] == '"' || rest[0] == '\'') {
			rest = rest[1:]
		}
		if len(rest) >= 8 && bytes.EqualFold(rest[:8], []byte("password")) {
			return true
		}
	}
}

// indexFold is bytes.Index ignoring ASCII case of sub, which must be lower case.
func indexFold(s, sub []byte) int {
	n := len(sub)
	if n == 0 {
		return 0
	}
	first := sub[0]
	upper := first
	if first >= 'a' && first <= 'z' {
		upper = first - 'a' + 'A'
	}
	for i := 0; i+n <= len(s); i++ {
		c := s[i]
		if c != first && c != upper {
			continue
		}
		if bytes.EqualFold(s[i:i+n], sub) {
			return i
		}
	}
	return -1
}

// errorClasses are the class names frameworks give the elements that carry a
// form's error message: Django's errorlist, Bootstrap's alert-danger and
// invalid-feedback, Rails' flash/alert, ASP.NET's validation-summary-errors.
var errorClasses = []string{"errorlist", "alert-danger", "alert-error", "alert-warning", "invalid-feedback",
	"error", "errors", "flash-error", "flash-alert", "notification is-danger", "validation-summary-errors", "field-validation-error", "text-danger"}

// ErrorText returns the visible error text of a page, e.g. the items of
// Django's <ul class="errorlist">, joined with "; ". It returns "" when the
// page shows no recognisable error.
func ErrorText(body []byte) string {
	z := html.NewTokenizer(bytes.NewReader(body))
	depth := 0 // >0 while inside an error element
	var parts []string
	var cur strings.Builder
	flush := func() {
		t := strings.Join(strings.Fields(cur.String()), " ")
		if t != "" {
			dup := false
			for _, p := range parts {
				if p == t {
					dup = true
				}
			}
			if !dup {
				parts = append(parts, t)
			}
		}
		cur.Reset()
	}
	skip := 0 // inside <script>/<style>
	for {
		switch z.Next() {
		case html.ErrorToken:
			flush()
			return strings.Join(parts, "; ")
		case html.TextToken:
			if depth > 0 && skip == 0 {
				cur.Write(z.Text())
				cur.WriteByte(' ')
			}
		case html.StartTagToken:
			name, hasAttr := z.TagName()
			a := atom.Lookup(name)
			if a == atom.Script || a == atom.Style {
				skip++
				continue
			}
			if depth > 0 {
				depth++
				if a == atom.Li || a == atom.P || a == atom.Div || a == atom.Span {
					flush()
				}
				continue
			}
			if !hasAttr {
				continue
			}
			attrs := readAttrs(z, hasAttr)
			if isErrorElement(attrs) {
				depth = 1
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			a := atom.Lookup(name)
			if a == atom.Script || a == atom.Style {
				if skip > 0 {
					skip--
				}
				continue
			}
			if depth > 0 {
				depth--
				if depth == 0 || a == atom.Li || a == atom.P {
					flush()
				}
			}
		}
	}
}

func isErrorElement(attrs map[string]string) bool {
	if attrs["role"] == "alert" {
		return true
	}
	cls := " " + strings.ToLower(attrs["class"]) + " "
	if cls == "  " {
		return false
	}
	for _, c := range errorClasses {
		if strings.Contains(cls, " "+c+" ") {
			return true
		}
	}
	return false
}
