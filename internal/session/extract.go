package session

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/PuerkitoBio/goquery"
)

// Extractor pulls one value out of a page. Exactly one of its sources is set.
type Extractor struct {
	// Regex is matched against the body; the first capture group (or the
	// whole match when there is none) is the value.
	Regex *regexp.Regexp
	// Cookie names a cookie the browser now holds for the page's URL.
	Cookie string
	// JSON is a path into a JSON body: "data.items[0].id".
	JSON string
	// CSS selects an element; its text is the value, or the attribute Attr.
	CSS  string
	Attr string
	// Header names a header of the final response.
	Header string
	// URLDecode URL-decodes the value found (%XX escapes; '+' stays).
	URLDecode bool
}

// Extract returns the value, or an error saying what was not found.
func (e *Extractor) Extract(b *Browser, p *Page) (string, error) {
	v, err := e.extract(b, p)
	if err != nil || !e.URLDecode {
		return v, err
	}
	d, err := url.PathUnescape(v)
	if err != nil {
		return "", fmt.Errorf("decode url: %w", err)
	}
	return d, nil
}

func (e *Extractor) extract(b *Browser, p *Page) (string, error) {
	switch {
	case e.Header != "":
		if v := p.Header.Get(e.Header); v != "" {
			return v, nil
		}
		return "", fmt.Errorf("no response header %q", e.Header)
	case e.Regex != nil:
		m := e.Regex.FindSubmatch(p.Body)
		if m == nil {
			return "", fmt.Errorf("regex %q matched nothing", e.Regex.String())
		}
		if len(m) > 1 {
			return string(m[1]), nil
		}
		return string(m[0]), nil
	case e.Cookie != "":
		if p.URL != nil {
			if v, ok := b.Cookie(p.URL, e.Cookie); ok {
				return v, nil
			}
		}
		return "", fmt.Errorf("no cookie %q", e.Cookie)
	case e.JSON != "":
		var v any
		d := json.NewDecoder(bytes.NewReader(p.Body))
		d.UseNumber()
		if err := d.Decode(&v); err != nil {
			return "", fmt.Errorf("body is not JSON: %w", err)
		}
		return JSONPath(v, e.JSON)
	case e.CSS != "":
		doc, err := goquery.NewDocumentFromReader(bytes.NewReader(p.Body))
		if err != nil {
			return "", fmt.Errorf("parse page: %w", err)
		}
		var sel *goquery.Selection
		func() {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("invalid CSS selector %q", e.CSS)
				}
			}()
			sel = doc.Find(e.CSS).First()
		}()
		if err != nil {
			return "", err
		}
		if sel.Length() == 0 {
			return "", fmt.Errorf("CSS %q matched nothing", e.CSS)
		}
		if e.Attr != "" {
			v, ok := sel.Attr(e.Attr)
			if !ok {
				return "", fmt.Errorf("CSS %q has no attribute %q", e.CSS, e.Attr)
			}
			return v, nil
		}
		return strings.TrimSpace(sel.Text()), nil
	}
	return "", fmt.Errorf("extractor has no source")
}

// JSONPath walks a decoded JSON value along a dotted path with [i] indexes
// ("data.items[0].id", "[2].name") and returns the value as text.
func JSONPath(v any, path string) (string, error) {
	cur := v
	rest := path
	for rest != "" {
		switch {
		case rest[0] == '.':
			rest = rest[1:]
		case rest[0] == '[':
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				return "", fmt.Errorf("json path %q: missing ]", path)
			}
			i, err := strconv.Atoi(rest[1:end])
			if err != nil {
				return "", fmt.Errorf("json path %q: bad index %q", path, rest[1:end])
			}
			arr, ok := cur.([]any)
			if !ok || i < 0 || i >= len(arr) {
				return "", fmt.Errorf("json path %q: no element [%d]", path, i)
			}
			cur, rest = arr[i], rest[end+1:]
		default:
			end := strings.IndexAny(rest, ".[")
			if end < 0 {
				end = len(rest)
			}
			key := rest[:end]
			obj, ok := cur.(map[string]any)
			if !ok {
				return "", fmt.Errorf("json path %q: %q is not in an object", path, key)
			}
			next, ok := obj[key]
			if !ok {
				return "", fmt.Errorf("json path %q: no key %q", path, key)
			}
			cur, rest = next, rest[end:]
		}
	}
	switch x := cur.(type) {
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case nil:
		return "", nil
	case bool:
		return strconv.FormatBool(x), nil
	default:
		b, err := json.Marshal(x)
		return string(b), err
	}
}
