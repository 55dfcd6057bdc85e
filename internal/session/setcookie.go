package session

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// parseSetCookie parses a Set-Cookie line into c as http.ParseSetCookie
// does (ok is its err == nil; c then holds what its *Cookie holds), without
// the copies: ParseSetCookie splits the line into a new slice and
// lower-cases each attribute's name into a new string, the largest cost of
// a response's cookies to a user on the event loop. FuzzParseSetCookie
// holds the two to the same cookies.
func parseSetCookie(line string, c *http.Cookie) bool {
	s := trimSpace(line)
	first, rest, more := strings.Cut(s, ";")
	if !more && first == "" {
		return false // blank
	}
	name, value, ok := strings.Cut(trimSpace(first), "=")
	if !ok {
		return false
	}
	name = trimSpace(name)
	if !httpguts.ValidHeaderFieldName(name) {
		return false
	}
	value, quoted, ok := cookieValue(value, true)
	if !ok {
		return false
	}
	*c = http.Cookie{Name: name, Value: value, Quoted: quoted, Raw: line}
	for more {
		var part string
		part, rest, more = strings.Cut(rest, ";")
		part = trimSpace(part)
		if part == "" {
			continue
		}
		attr, val, _ := strings.Cut(part, "=")
		if !isPrint(attr) {
			continue // ParseSetCookie's ascii.ToLower refuses it: left out
		}
		val, _, ok = cookieValue(val, false)
		if !ok {
			c.Unparsed = append(c.Unparsed, part)
			continue
		}
		switch {
		case strings.EqualFold(attr, "samesite"):
			switch {
			case !isPrint(val):
				c.SameSite = http.SameSiteDefaultMode
			case strings.EqualFold(val, "lax"):
				c.SameSite = http.SameSiteLaxMode
			case strings.EqualFold(val, "strict"):
				c.SameSite = http.SameSiteStrictMode
			case strings.EqualFold(val, "none"):
				c.SameSite = http.SameSiteNoneMode
			default:
				c.SameSite = http.SameSiteDefaultMode
			}
			continue
		case strings.EqualFold(attr, "secure"):
			c.Secure = true
			continue
		case strings.EqualFold(attr, "httponly"):
			c.HttpOnly = true
			continue
		case strings.EqualFold(attr, "domain"):
			c.Domain = val
			continue
		case strings.EqualFold(attr, "max-age"):
			secs, err := strconv.Atoi(val)
			if err != nil || secs != 0 && val[0] == '0' {
				break
			}
			if secs <= 0 {
				secs = -1
			}
			c.MaxAge = secs
			continue
		case strings.EqualFold(attr, "expires"):
			c.RawExpires = val
			t, err := time.Parse(time.RFC1123, val)
			if err != nil {
				if t, err = time.Parse("Mon, 02-Jan-2006 15:04:05 MST", val); err != nil {
					c.Expires = time.Time{}
					break
				}
			}
			c.Expires = t.UTC()
			continue
		case strings.EqualFold(attr, "path"):
			c.Path = val
			continue
		case strings.EqualFold(attr, "partitioned"):
			c.Partitioned = true
			continue
		}
		c.Unparsed = append(c.Unparsed, part)
	}
	return true
}

// cookieValue is net/http's parseCookieValue: the value without its
// quotes (when allowed), and whether every byte is one a cookie value may
// hold.
func cookieValue(raw string, allowQuote bool) (value string, quoted, ok bool) {
	if allowQuote && len(raw) > 1 && raw[0] == '"' && raw[len(raw)-1] == '"' {
		raw, quoted = raw[1:len(raw)-1], true
	}
	for i := range len(raw) {
		if b := raw[i]; b < 0x20 || b >= 0x7f || b == '"' || b == ';' || b == '\\' {
			return "", quoted, false
		}
	}
	return raw, quoted, true
}

// isPrint reports whether s is printable ASCII only (net/http's
// ascii.IsPrint).
func isPrint(s string) bool {
	for i := range len(s) {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
