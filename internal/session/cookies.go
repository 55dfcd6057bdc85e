package session

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/publicsuffix"
)

// The reasons a browser refuses a cookie, as CookieRefusal.Reason names
// them. Each is a rule of RFC 6265bis that browsers (and, for some, Go's
// net/http/cookiejar) apply when a response sets a cookie: the cookie is
// then ignored entirely, as if the Set-Cookie line had not been sent.
const (
	// RefusedSecureOverHTTP: a Secure cookie set by a plain-HTTP response
	// from a host that is not a secure origin (localhost, *.localhost and
	// loopback addresses are, as browsers and Go's jar treat them). Go's
	// jar would store it and never send it over HTTP; this browser does not
	// store it.
	RefusedSecureOverHTTP = "secure-over-http"
	// RefusedDomainMismatch: a Domain attribute the response's host does
	// not domain-match (www.a.test setting Domain=b.test), a public suffix
	// (Domain=test, Domain=co.uk), any other domain on an IP-address host,
	// or a malformed one (Domain=..a.test, a trailing dot, non-ASCII).
	RefusedDomainMismatch = "domain-mismatch"
	// RefusedSameSiteNoneInsecure: SameSite=None without Secure.
	RefusedSameSiteNoneInsecure = "samesite-none-insecure"
	// RefusedTooLarge: a name and value longer than MaxCookieSize bytes.
	RefusedTooLarge = "too-large"
	// RefusedPrefix: a __Secure- cookie without Secure, or a __Host- cookie
	// without Secure, with a Domain, or without Path=/.
	RefusedPrefix = "prefix-violation"
	// RefusedInvalid: a Set-Cookie line net/http cannot parse (no '=', a
	// name that is not a token, a value with a quote, backslash or control
	// byte): Go's client drops it without a word.
	RefusedInvalid = "invalid"
)

// MaxCookieSize is the most bytes of name and value together a browser
// keeps (RFC 6265bis 5.6, step 4: longer cookies are ignored entirely).
const MaxCookieSize = 4096

// CookieRefusal is one Set-Cookie a response carried and the browser
// refused. It never holds the cookie's value.
type CookieRefusal struct {
	// Time is when the response set it.
	Time time.Time
	// Name is the cookie's name (at most 128 bytes); empty when the line
	// has none that could be read.
	Name string
	// Attribute is what the refusal is about: "Secure", "Domain=VALUE",
	// "SameSite=None", "size", the prefix "__Secure-" or "__Host-", or for
	// an unparsable line "name", "value" or "line".
	Attribute string
	// Reason is one of the Refused… codes.
	Reason string
	// URL is the URL of the response that set it, scheme://host/path,
	// without its query (which may carry a secret).
	URL string
	// Detail says why in words, to be followed by " by " and the URL:
	// "Secure cookie set over plain HTTP".
	Detail string
}

// jar is a browser's cookie jar: a cookieStore (what Go's
// net/http/cookiejar with the public suffix list keeps and sends, in less
// memory), behind a check of every cookie a response sets against the
// rules of RFC 6265bis. A refused cookie is not stored, so it is never sent,
// and it is reported to refused.
type jar struct {
	inner   *cookieStore
	refused func(CookieRefusal) // nil: refusals are enforced, not reported
	// psDomain and psSuffix are the last Domain attribute looked up in the
	// public suffix list and its suffix: a server sends the same one again
	// and again, and the list's look-up allocates. mu guards them (a
	// CookieJar must be safe for concurrent use).
	mu                 sync.Mutex
	psDomain, psSuffix string
}

var _ http.CookieJar = (*jar)(nil)

func newJar(refused func(CookieRefusal)) *jar {
	return &jar{inner: new(cookieStore), refused: refused}
}

// Cookies returns the cookies to send to u.
func (j *jar) Cookies(u *url.URL) []*http.Cookie { return j.inner.cookies(u, time.Now()) }

// SetCookies stores the cookies a response from u set, except those a
// browser refuses. It is called only for a response with cookies; when
// none is refused it allocates nothing of its own.
func (j *jar) SetCookies(u *url.URL, cookies []*http.Cookie) {
	j.setCookies(u, cookies, time.Now())
}

func (j *jar) setCookies(u *url.URL, cookies []*http.Cookie, now time.Time) {
	host, ok := jarHost(u)
	if !ok {
		// Not http(s) or no host: Go's jar ignores the cookies too.
		j.inner.setCookies(u, cookies, now, j.publicSuffix)
		return
	}
	https := u.Scheme == "https"
	kept := cookies
	for i, c := range cookies {
		reason, attr := j.check(c, host, https)
		if reason == "" {
			if len(kept) < len(cookies) {
				kept = append(kept, c)
			}
			continue
		}
		if len(kept) == len(cookies) {
			// The first refusal: keep the cookies before it in a copy
			// (the caller's slice is not ours to change).
			kept = append(make([]*http.Cookie, 0, len(cookies)-1), cookies[:i]...)
		}
		if j.refused != nil {
			j.refused(CookieRefusal{Time: now, Name: clipName(c.Name), Attribute: attr, Reason: reason,
				URL: responseURL(u), Detail: detail(c, reason, attr, host)})
		}
	}
	if len(kept) > 0 {
		j.inner.setCookies(u, kept, now, j.publicSuffix)
	}
}

// jarHost is u's host as Go's jar canonicalises it (no port, no trailing
// dot, lower case); false when the jar ignores u.
func jarHost(u *url.URL) (string, bool) {
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", false
	}
	h := strings.TrimSuffix(u.Hostname(), ".")
	if h == "" {
		return "", false
	}
	return strings.ToLower(h), true // ToLower returns h itself when it has no upper case
}

// check returns the reason a browser refuses c from host ("" when it
// does not) and the attribute at fault. The rules are RFC 6265bis 5.6 in
// its order: size, domain, Secure, SameSite, prefixes.
func (j *jar) check(c *http.Cookie, host string, https bool) (reason, attr string) {
	size := len(c.Name) + len(c.Value)
	if c.Quoted {
		size += 2
	}
	if size > MaxCookieSize {
		return RefusedTooLarge, "size"
	}
	domain, ok := j.cookieDomain(host, c.Domain)
	if !ok {
		return RefusedDomainMismatch, "Domain=" + clipName(c.Domain)
	}
	if c.Secure && !https && !secureHost(domain) {
		return RefusedSecureOverHTTP, "Secure"
	}
	if c.SameSite == http.SameSiteNoneMode && !c.Secure {
		return RefusedSameSiteNoneInsecure, "SameSite=None"
	}
	if hasPrefixFold(c.Name, "__Secure-") && !c.Secure {
		return RefusedPrefix, "__Secure-"
	}
	if hasPrefixFold(c.Name, "__Host-") && (!c.Secure || c.Domain != "" || c.Path != "/") {
		return RefusedPrefix, "__Host-"
	}
	return "", ""
}

// cookieDomain returns the domain a cookie with Domain attribute attr set
// by host belongs to, and false when browsers and Go's jar refuse it: Go's
// domainAndType with the public suffix list. A non-ASCII host is left to
// Go's jar (which compares its punycode form).
func (j *jar) cookieDomain(host, attr string) (string, bool) {
	if attr == "" {
		return host, true
	}
	if isIP(host) {
		// An IP address has no subdomains: only itself is allowed.
		return host, host == attr
	}
	if !isASCII(host) {
		return host, true
	}
	d := strings.TrimPrefix(attr, ".")
	if d == "" || d[0] == '.' || d[len(d)-1] == '.' || !isASCII(d) {
		return "", false
	}
	d = strings.ToLower(d)
	if ps := j.publicSuffix(d); ps != "" && !hasDotSuffix(d, ps) {
		// Domain is a public suffix: allowed only as the host itself, and
		// then a host cookie.
		return host, host == d
	}
	return d, host == d || hasDotSuffix(host, d)
}

// publicSuffix returns the public suffix of domain.
func (j *jar) publicSuffix(domain string) string {
	j.mu.Lock()
	defer j.mu.Unlock()
	if domain != j.psDomain {
		// A copy: domain is a piece of the Set-Cookie line, which the
		// cache would otherwise keep alive.
		j.psDomain = strings.Clone(domain)
		j.psSuffix = publicsuffix.List.PublicSuffix(j.psDomain)
	}
	return j.psSuffix
}

// secureHost reports whether a cookie of domain counts as set and sent
// over a secure channel even on plain HTTP, as Go's jar (secureMatch) and
// browsers decide: localhost, a name under .localhost, a loopback address.
func secureHost(domain string) bool {
	last := domain
	if i := strings.LastIndexByte(domain, '.'); i >= 0 {
		last = domain[i+1:]
	}
	if strings.EqualFold(last, "localhost") {
		return true
	}
	if !isIP(domain) {
		return false
	}
	ip, err := netip.ParseAddr(domain)
	return err == nil && ip.IsLoopback()
}

// isIP reports whether host is an IP address, as Go's jar decides. A name
// with a letter is not one: it is told without parsing it (which allocates
// an error).
func isIP(host string) bool {
	if strings.ContainsAny(host, ":%") {
		return true
	}
	for i := 0; i < len(host); i++ {
		if c := host[i]; c != '.' && (c < '0' || c > '9') {
			return false
		}
	}
	return net.ParseIP(host) != nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// hasDotSuffix reports whether s ends in "."+suffix.
func hasDotSuffix(s, suffix string) bool {
	return len(s) > len(suffix) && s[len(s)-len(suffix)-1] == '.' && s[len(s)-len(suffix):] == suffix
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// detail is the refusal's reason in words.
func detail(c *http.Cookie, reason, attr, host string) string {
	switch reason {
	case RefusedTooLarge:
		return "cookie of " + strconv.Itoa(len(c.Name)+len(c.Value)) + " bytes (name and value; browsers keep at most 4096) set"
	case RefusedDomainMismatch:
		d := strings.TrimPrefix(strings.ToLower(c.Domain), ".")
		switch {
		case isIP(host):
			return "cookie with " + attr + " on the IP address " + host + " set"
		case d == "" || d[0] == '.' || d[len(d)-1] == '.' || !isASCII(d):
			return "cookie with a malformed " + attr + " set"
		case publicsuffix.List.PublicSuffix(d) == d:
			return "cookie with " + attr + ", a public suffix, set"
		}
		return "cookie with " + attr + ", which " + host + " does not domain-match, set"
	case RefusedSecureOverHTTP:
		return "Secure cookie set over plain HTTP"
	case RefusedSameSiteNoneInsecure:
		return "SameSite=None cookie without Secure set"
	case RefusedPrefix:
		if attr == "__Secure-" {
			return "__Secure- cookie without Secure set"
		}
		var broken []string
		if !c.Secure {
			broken = append(broken, "without Secure")
		}
		if c.Domain != "" {
			broken = append(broken, "with a Domain")
		}
		if c.Path != "/" {
			broken = append(broken, "without Path=/")
		}
		return "__Host- cookie " + strings.Join(broken, ", ") + " set"
	}
	return reason
}

// responseURL is u without userinfo, query and fragment:
// scheme://host/path.
func responseURL(u *url.URL) string {
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	return u.Scheme + "://" + u.Host + p
}

// clipName cuts a cookie name (or a Domain attribute) to 128 bytes of
// valid UTF-8: a record must stay small whatever a server sends.
func clipName(s string) string {
	if len(s) > 128 {
		s = s[:128]
	}
	return strings.ToValidUTF8(s, "")
}

// cookieTransport is the browser's cookie handling, in place of
// http.Client's Jar: it puts the Cookie header on each request the client
// sends (the first and each redirect), built from the store in one
// string, where the client would make the cookies and add them one by one
// (AddCookie); and it stores the cookies each response sets, reporting the
// Set-Cookie lines net/http cannot parse (its ParseSetCookie rules), which
// the client would drop before the jar saw them. What it sends is what the
// client with the Jar sends: a Cookie header set by hand first, then the
// jar's; on a redirect, the hand-set cookies that a response has set since
// are left out, the rest sorted (net/http's makeHeadersCopier).
type cookieTransport struct {
	rt  http.RoundTripper
	jar *jar
	// hand is the Cookie header the request being sent was given by hand
	// ("" when none); Browser.Do sets it. Redirects carry it while their
	// host matches (the client drops it, a sensitive header, elsewhere).
	hand string
	// handChanged says a response replaced cookies of hand since.
	handChanged bool
}

// RoundTrip sends req with the browser's cookies and stores those of the
// response.
func (t *cookieTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	hand := ""
	_, handSet := req.Header["Cookie"]
	if handSet {
		hand = t.hand
	}
	// A redirect's copy of a hand-set Cookie header whose cookies its
	// responses all replaced is left empty, as net/http's client with a
	// Jar leaves it (its header copier rewrites it; this client has none).
	if h := t.jar.inner.header(req.URL, time.Now(), hand); h != "" || handSet && t.handChanged {
		req.Header["Cookie"] = []string{h}
	}
	resp, err := t.rt.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	lines := resp.Header["Set-Cookie"]
	if len(lines) == 0 {
		return resp, nil
	}
	if _, ok := jarHost(req.URL); ok && t.jar.refused != nil {
		var now time.Time
		for _, line := range lines {
			name, attr, why := parseSetCookieError(line)
			if why == "" {
				continue
			}
			if now.IsZero() {
				now = time.Now()
			}
			t.jar.refused(CookieRefusal{Time: now, Name: clipName(name), Attribute: attr, Reason: RefusedInvalid,
				URL: responseURL(req.URL), Detail: "unparsable Set-Cookie line (" + why + ") sent"})
		}
	}
	if rc := resp.Cookies(); len(rc) > 0 {
		t.jar.SetCookies(req.URL, rc)
		if t.hand != "" {
			if h := withoutCookies(t.hand, rc); h != t.hand {
				t.hand, t.handChanged = h, true
			}
		}
	}
	return resp, nil
}

// withoutCookies returns the Cookie header hand without the cookies named
// in set, the rest sorted as name=value pairs, or hand itself when set
// names none of them.
func withoutCookies(hand string, set []*http.Cookie) string {
	have := (&http.Request{Header: http.Header{"Cookie": {hand}}}).Cookies()
	var keep []string
	changed := false
	for _, c := range have {
		if slices.ContainsFunc(set, func(s *http.Cookie) bool { return s.Name == c.Name }) {
			changed = true
			continue
		}
		keep = append(keep, c.Name+"="+c.Value)
	}
	if !changed {
		return hand
	}
	slices.Sort(keep)
	return strings.Join(keep, "; ")
}

// CloseIdleConnections closes the idle connections of the transport.
func (t *cookieTransport) CloseIdleConnections() {
	if c, ok := t.rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// parseSetCookieError applies the checks of net/http's ParseSetCookie to a
// Set-Cookie line and says why it fails ("" when it parses), with the
// name when one could be read and the part at fault.
func parseSetCookieError(line string) (name, attr, why string) {
	line = trimSpace(line)
	if line == "" {
		return "", "line", "blank"
	}
	first, _, _ := strings.Cut(line, ";")
	name, value, ok := strings.Cut(trimSpace(first), "=")
	if !ok {
		return "", "line", "no '=' in its name=value"
	}
	name = trimSpace(name)
	if !httpguts.ValidHeaderFieldName(name) {
		return name, "name", "invalid cookie name"
	}
	if len(value) > 1 && value[0] == '"' && value[len(value)-1] == '"' {
		value = value[1 : len(value)-1]
	}
	for i := 0; i < len(value); i++ {
		if b := value[i]; b < 0x20 || b >= 0x7f || b == '"' || b == ';' || b == '\\' {
			return name, "value", "invalid cookie value"
		}
	}
	return "", "", ""
}

// trimSpace trims ASCII spaces, tabs and line ends, as
// net/textproto.TrimString does.
func trimSpace(s string) string {
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }
