package har

import (
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode"
)

// Think time is read from the recorded gaps between pages, each clamped to
// [thinkFloor, thinkCeil]: a person who left the tab open for ten minutes
// does not make a ten-minute think time, and one who clicked twice in
// 100 ms does not make a load with none.
const (
	thinkFloor = time.Second
	thinkCeil  = 15 * time.Second
)

// passwordField matches the names of password fields: "password",
// "passwd", "pwd", "pass", "user[password]", "session[pass]",
// "j_password", "Password"; not "password_reset_token" style fields of
// other forms, which hold no user's secret, since those are not sent
// with a password-typed value next to a username.
var passwordField = regexp.MustCompile(`(?i)(^|[^a-z])(pass(word|wd)?|pwd|passphrase)($|[^a-z])`)

// usernameField matches the names of the fields that carry the account
// beside a password.
var usernameField = regexp.MustCompile(`(?i)(^|[^a-z])(login|username|user_?name|user|email|e-?mail|userid|user_?id|account|identifier|identity|name|j_username|uid|phone|mobile|log)($|[^a-z])`)

// logoutPath matches the paths of logouts.
var logoutPath = regexp.MustCompile(`(?i)(^|/)(log-?out|sign-?out|sign_out|log_out|signoff|exit-session|session/end)(/|$|\.)`)

// isLogout reports whether an entry logs out.
func isLogout(e *Entry) bool {
	return logoutPath.MatchString(e.Request.URL.Path)
}

// loginFields finds the password field of a request and the field that
// names the account, as sent (a form field or a JSON path). ok is false
// when the request carries no password-like field with a value.
func loginFields(e *Entry) (user, pass Sent, ok bool) {
	if e.Request.Method != "POST" && e.Request.Method != "PUT" {
		return user, pass, false
	}
	var cands []Sent
	for _, s := range e.SentValues() {
		if s.Where == InForm || s.Where == InJSON {
			cands = append(cands, s)
		}
	}
	for _, s := range cands {
		if passwordField.MatchString(lastName(s.Name)) && s.Value != "" && !strings.Contains(strings.ToLower(s.Name), "confirm") &&
			!strings.Contains(strings.ToLower(s.Name), "token") {
			pass, ok = s, true
			break
		}
	}
	if !ok {
		return user, pass, false
	}
	best := -1
	for i, s := range cands {
		if s == pass || s.Value == "" || secretName(s.Name) {
			continue
		}
		if usernameField.MatchString(lastName(s.Name)) {
			best = i
			break
		}
	}
	if best >= 0 {
		user = cands[best]
	}
	return user, pass, true
}

// lastName is the last part of a field name or JSON path: "user[email]" →
// "email", "credentials.password" → "password".
func lastName(name string) string {
	name = strings.TrimRight(name, "]")
	if i := strings.LastIndexAny(name, ".["); i >= 0 {
		return name[i+1:]
	}
	return name
}

// secretName reports whether a field's name says it holds a token or
// another secret that is not the user's.
func secretName(name string) bool {
	n := strings.ToLower(name)
	for _, k := range []string{"token", "csrf", "nonce", "xsrf", "secret", "viewstate", "eventvalidation", "verification", "captcha", "otp"} {
		if strings.Contains(n, k) {
			return true
		}
	}
	return false
}

// idSegment reports whether a path segment is an id to collapse in a
// route: a number, a UUID, a long hex string, or a long token with digits.
func idSegment(s string) bool {
	if s == "" {
		return false
	}
	if isDigits(s) {
		return true
	}
	if uuidRe.MatchString(s) {
		return true
	}
	if len(s) >= 12 && isHex(s) {
		return true
	}
	if len(s) >= 16 && hasDigit(s) && hasLetter(s) {
		return true
	}
	return false
}

var uuidRe = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func isHex(s string) bool {
	for _, r := range s {
		if !unicode.Is(unicode.ASCII_Hex_Digit, r) {
			return false
		}
	}
	return s != ""
}

func hasDigit(s string) bool { return strings.IndexFunc(s, unicode.IsDigit) >= 0 }

func hasLetter(s string) bool { return strings.IndexFunc(s, unicode.IsLetter) >= 0 }

// Route is the request's method and path with its ids collapsed:
// "GET /orders/:id". templated lists the path segments (by index) that a
// scenario fills from a variable; they collapse too, as ":name".
func Route(method string, u *url.URL, templated map[int]string) string {
	segs := strings.Split(strings.Trim(u.EscapedPath(), "/"), "/")
	for i, s := range segs {
		v, _ := url.PathUnescape(s)
		switch {
		case templated[i] != "":
			segs[i] = ":" + templated[i]
		case idSegment(v):
			segs[i] = ":id"
		}
	}
	p := "/" + strings.Join(segs, "/")
	if strings.HasSuffix(u.Path, "/") && p != "/" {
		p += "/"
	}
	if p == "//" {
		p = "/"
	}
	return method + " " + p
}

// navigation is a page of the visit: a top-level document (and the
// documents its redirects led to) with the requests its script made.
type navigation struct {
	steps []*step
}

// navigations splits the kept entries into pages. A document that a
// redirect of the previous document led to belongs to the same page.
func navigations(steps []*step) []*navigation {
	var navs []*navigation
	var cur *navigation
	var lastDoc *Entry
	for _, s := range steps {
		e := s.e
		if IsDocument(e) {
			redirected := lastDoc != nil && lastDoc.Response.RedirectURL != "" && sameURL(lastDoc.Response.RedirectURL, e.Request.URL)
			if cur == nil || !redirected {
				cur = &navigation{}
				navs = append(navs, cur)
			}
			lastDoc = e
		} else if cur == nil {
			cur = &navigation{}
			navs = append(navs, cur)
		}
		s.nav = len(navs) - 1
		cur.steps = append(cur.steps, s)
	}
	return navs
}

func sameURL(a string, b *url.URL) bool {
	ua, err := url.Parse(a)
	if err != nil {
		return false
	}
	return ua.Path == b.Path && ua.RawQuery == b.RawQuery
}

// splitIdle splits the requests a page's script made after the login (a
// single-page app that never navigates again) into user actions, by the
// idle gaps between them.
func splitIdle(steps []*step, gap time.Duration) [][]*step {
	var out [][]*step
	var cur []*step
	var lastEnd time.Time
	for _, s := range steps {
		if len(cur) > 0 && !s.e.Started.IsZero() && !lastEnd.IsZero() && s.e.Started.Sub(lastEnd) >= gap {
			out = append(out, cur)
			cur = nil
		}
		cur = append(cur, s)
		if end := entryEnd(s.e); end.After(lastEnd) {
			lastEnd = end
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func entryEnd(e *Entry) time.Time {
	if e.Started.IsZero() {
		return time.Time{}
	}
	if e.Time > 0 {
		return e.Started.Add(e.Time)
	}
	return e.Started
}

// thinkRange reads the think time from the gaps between the starts of the
// flows (pages) and the end of the one before, each clamped.
func thinkRange(flows [][]*step) (lo, hi time.Duration, ok bool) {
	var prevEnd time.Time
	for _, f := range flows {
		if len(f) == 0 {
			continue
		}
		start := f[0].e.Started
		if !prevEnd.IsZero() && !start.IsZero() {
			g := min(max(start.Sub(prevEnd), thinkFloor), thinkCeil)
			if !ok || g < lo {
				lo = g
			}
			if !ok || g > hi {
				hi = g
			}
			ok = true
		}
		for _, s := range f {
			if end := entryEnd(s.e); end.After(prevEnd) {
				prevEnd = end
			}
		}
	}
	return lo.Round(100 * time.Millisecond), hi.Round(100 * time.Millisecond), ok
}

// clientMade reports whether a value the server never sent looks made by
// the page's script: a timestamp near the request's time, or a random
// UUID. It says which.
func clientMade(v string, at time.Time) string {
	if isDigits(v) && (len(v) == 10 || len(v) == 13) {
		var n int64
		for _, r := range v {
			n = n*10 + int64(r-'0')
		}
		t := time.Unix(n, 0)
		if len(v) == 13 {
			t = time.UnixMilli(n)
		}
		ref := at
		if ref.IsZero() {
			ref = time.Now()
		}
		if d := t.Sub(ref); d < 48*time.Hour && d > -48*time.Hour {
			return "a timestamp the page made"
		}
		if at.IsZero() && t.Year() >= 2000 && t.Year() < 2100 {
			return "a timestamp the page made"
		}
	}
	if uuidRe.MatchString(v) {
		return "a random id the page made (UUID)"
	}
	return ""
}

// tokenLike reports whether a value is specific enough to be looked for
// anywhere in the responses: letters mixed with digits, or long and made
// of a token's characters. A word, a number or a sentence would be found
// by chance.
func tokenLike(v string) bool {
	if isCommonText(v) {
		return false
	}
	if len(v) >= 6 && hasDigit(v) && hasLetter(v) {
		return true
	}
	return len(v) >= 20 && onlyChars(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+/=.:~")
}

// isCommonText reports whether a value reads as text rather than a token:
// it has spaces, or is a plain lower-case word, a path or a URL.
func isCommonText(v string) bool {
	if strings.ContainsAny(v, " \t\n") || strings.HasPrefix(v, "/") || strings.Contains(v, "://") {
		return true
	}
	if v == "true" || v == "false" || v == "null" {
		return true
	}
	lower := true
	for _, r := range v {
		if !(r >= 'a' && r <= 'z') && r != '-' && r != '_' {
			lower = false
			break
		}
	}
	return lower && len(v) < 20
}
