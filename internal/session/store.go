package session

import (
	"cmp"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// cookieStore keeps a browser's cookies and says which to send: the
// results of Go's net/http/cookiejar with the public suffix list, whose
// rules (jar.go) it follows step for step, in a fraction of its memory.
// cookiejar files each cookie in a map of maps, in an entry with times of
// its own and with strings that keep the whole Set-Cookie line alive; a
// store holds one slice of small entries whose strings are copies, shared
// between entries where they can be. An empty store allocates nothing.
//
// What it does not mirror, on purpose:
//   - Entries are ordered by when the store took them, not by their
//     Creation time: the two differ only when the clock goes back or when
//     two goroutines set cookies at once.
//   - Expiry compares wall-clock times, where cookiejar compares the
//     monotonic readings of a Max-Age expiry and of the time now: they
//     differ only when the wall clock is stepped.
//   - A non-ASCII host is converted to punycode by golang.org/x/net/idna,
//     label by label, where cookiejar has its own encoder (the same
//     algorithm): the store ignores the cookies of, and sends none to, a
//     host with a label that idna refuses and cookiejar encodes, a
//     non-ASCII label that starts with "xn--".
//   - A cookie whose name is longer than 65535 bytes, or from a host name
//     longer than that, is ignored (the jar refuses names over 4 KiB).
//
// It is safe for concurrent use, as http.CookieJar requires.
type cookieStore struct {
	mu sync.Mutex
	// entries are in the order they were first stored: cookiejar's
	// seqNum order. A cookie set again keeps its place (RFC 6265 5.3,
	// step 11: it keeps its creation time).
	entries []storeEntry
}

var _ http.CookieJar = (*cookieStore)(nil)

// storeEntry is one cookie: 72 bytes where cookiejar's entry takes 176,
// and its map key (domain;path;name) more.
// The fields cookiejar keeps for itself only (LastAccess, Creation, the
// SameSite attribute as text) are left out; the flags it never sends
// (HttpOnly, SameSite) are kept in a byte each.
type storeEntry struct {
	// nv is the name then the value, in one allocation of the store's own.
	nv string
	// dk is the cookie's domain or its key, whichever is longer: the other
	// is a suffix of it, as both are of the host that set the cookie. The
	// key is that host's cookiejar key (jarKey): cookiejar files the cookie
	// under it and sends it only to hosts with the same key.
	dk   string
	path string
	// expires and expiresNsec are when a persistent cookie expires: Unix
	// seconds and nanoseconds (a time.Time would take 24 bytes).
	expires     int64
	expiresNsec int32
	nameLen     uint16
	domainAt    uint16 // the domain is dk[domainAt:]
	keyAt       uint16 // the key is dk[keyAt:]

	quoted, secure, httpOnly, hostOnly, persistent bool
	sameSite                                       uint8 // an http.SameSite
}

func (e *storeEntry) name() string   { return e.nv[:e.nameLen] }
func (e *storeEntry) value() string  { return e.nv[e.nameLen:] }
func (e *storeEntry) domain() string { return e.dk[e.domainAt:] }
func (e *storeEntry) key() string    { return e.dk[e.keyAt:] }

// SetCookies stores the cookies a response from u set, with no check of
// its own beyond cookiejar's.
func (s *cookieStore) SetCookies(u *url.URL, cookies []*http.Cookie) {
	s.setCookies(u, cookies, time.Now(), publicsuffix.List.PublicSuffix)
}

// Cookies returns the cookies to send to u.
func (s *cookieStore) Cookies(u *url.URL) []*http.Cookie { return s.cookies(u, time.Now()) }

// setCookies is SetCookies at time now; ps returns the public suffix of
// a Domain attribute (publicsuffix.List's, or the jar's cache of it). ps
// is called with the store locked: it may take a lock of its own, never
// one held while the store's is taken.
func (s *cookieStore) setCookies(u *url.URL, cookies []*http.Cookie, now time.Time, ps func(string) string) {
	if len(cookies) == 0 || u.Scheme != "http" && u.Scheme != "https" {
		return
	}
	host, ok := canonicalHost(u.Host)
	if !ok || len(host) > math.MaxUint16 {
		return
	}
	key := jarKey(host)
	defPath := defaultPath(u.Path)

	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range cookies {
		path := c.Path
		if path == "" || path[0] != '/' {
			path = defPath
		}
		domain, hostOnly, ok := domainAndType(host, c.Domain, ps)
		if !ok || len(c.Name) > math.MaxUint16 {
			continue
		}
		i := s.find(key, domain, path, c.Name)
		expires, persistent, remove := expiry(c, now)
		if remove {
			if i >= 0 {
				s.entries = slices.Delete(s.entries, i, i+1)
			}
			continue
		}
		e := storeEntry{
			nv: joinNameValue(c.Name, c.Value), nameLen: uint16(len(c.Name)), path: s.internPath(path),
			expires: expires.Unix(), expiresNsec: int32(expires.Nanosecond()), persistent: persistent,
			hostOnly: hostOnly, quoted: c.Quoted, secure: c.Secure, httpOnly: c.HttpOnly, sameSite: uint8(c.SameSite),
		}
		// domain and key are both suffixes of host: dk is the longer.
		dk := host[len(host)-max(len(domain), len(key)):]
		e.dk = s.internDK(dk)
		e.domainAt, e.keyAt = uint16(len(dk)-len(domain)), uint16(len(dk)-len(key))
		if i >= 0 {
			s.entries[i] = e
		} else {
			s.entries = append(s.entries, e)
		}
	}
	if len(s.entries) == 0 {
		s.entries = nil
	}
}

// find returns the index of the entry cookiejar would replace with a
// cookie of this key, domain, path and name, or -1.
func (s *cookieStore) find(key, domain, path, name string) int {
	for i := range s.entries {
		e := &s.entries[i]
		if e.name() == name && e.path == path && e.domain() == domain && e.key() == key {
			return i
		}
	}
	return -1
}

// internDK returns dk as a string of the store's own: a suffix of one an
// entry holds already, or a copy.
func (s *cookieStore) internDK(dk string) string {
	for i := range s.entries {
		if have := s.entries[i].dk; strings.HasSuffix(have, dk) {
			return have[len(have)-len(dk):]
		}
	}
	return strings.Clone(dk)
}

// internPath returns path as a string of the store's own.
func (s *cookieStore) internPath(path string) string {
	if path == "/" {
		return "/"
	}
	for i := range s.entries {
		if s.entries[i].path == path {
			return s.entries[i].path
		}
	}
	return strings.Clone(path)
}

// joinNameValue returns name+value in memory of its own, never one of
// its arguments (which are parts of the Set-Cookie line).
func joinNameValue(name, value string) string {
	switch {
	case name == "":
		return strings.Clone(value)
	case value == "":
		return strings.Clone(name)
	}
	return name + value
}

// expiry is cookiejar's newEntry on times: Max-Age first (negative:
// delete; positive: from now), then Expires (past: delete), else a
// session cookie.
func expiry(c *http.Cookie, now time.Time) (expires time.Time, persistent, remove bool) {
	switch {
	case c.MaxAge < 0:
		return time.Time{}, false, true
	case c.MaxAge > 0:
		// As cookiejar computes it, overflow included (a huge Max-Age
		// wraps to a time in the past: stored, and expired).
		return now.Add(time.Duration(c.MaxAge) * time.Second), true, false
	case c.Expires.IsZero():
		return time.Time{}, false, false
	case !c.Expires.After(now):
		return time.Time{}, false, true
	}
	return c.Expires, true, false
}

// expired reports whether e is a persistent cookie whose time is not
// after now (Unix seconds and nanoseconds).
func (e *storeEntry) expired(sec int64, nsec int32) bool {
	return e.persistent && (e.expires < sec || e.expires == sec && e.expiresNsec <= nsec)
}

// cookies is Cookies at time now. As cookiejar, it looks only at the
// entries filed under the key of u's host: it removes those that have
// expired and returns those that match, the longer path first, then the
// first stored.
func (s *cookieStore) cookies(u *url.URL, now time.Time) []*http.Cookie {
	var selBuf [16]int
	s.mu.Lock()
	defer s.mu.Unlock()
	sel := s.selectLocked(u, now, selBuf[:0])
	if len(sel) == 0 {
		return nil
	}
	cs := make([]http.Cookie, len(sel))
	out := make([]*http.Cookie, len(sel))
	for i, k := range sel {
		e := &s.entries[k]
		cs[i] = http.Cookie{Name: e.name(), Value: e.value(), Quoted: e.quoted}
		out[i] = &cs[i]
	}
	return out
}

// header returns the Cookie header a request to u carries, with prefix
// (a Cookie header set by hand, or "") first: the line net/http's client
// writes by adding Cookies(u) to the request one by one (AddCookie), built
// without the cookies and the copies.
func (s *cookieStore) header(u *url.URL, now time.Time, prefix string) string {
	var buf [256]byte
	h := s.appendHeader(buf[:0], u, now, prefix)
	if len(h) == len(prefix) {
		return prefix
	}
	return string(h)
}

// appendHeader appends to dst the Cookie header header returns.
func (s *cookieStore) appendHeader(dst []byte, u *url.URL, now time.Time, prefix string) []byte {
	var selBuf [16]int
	s.mu.Lock()
	defer s.mu.Unlock()
	dst = append(dst, prefix...)
	start := len(dst) - len(prefix)
	for _, k := range s.selectLocked(u, now, selBuf[:0]) {
		e := &s.entries[k]
		if len(dst) > start {
			dst = append(dst, "; "...)
		}
		dst = appendCookiePair(dst, e.name(), e.value(), e.quoted)
	}
	return dst
}

// appendCookiePair appends name=value as AddCookie writes it: a new line
// in the name as "-", the bytes not allowed in a value left out, a value
// with a space or a comma (or one that came quoted) in quotes. The store's
// names and values came through ParseSetCookie, so only the quotes ever
// apply.
func appendCookiePair(b []byte, name, value string, quoted bool) []byte {
	if strings.IndexByte(name, '\n') >= 0 || strings.IndexByte(name, '\r') >= 0 {
		for i := range len(name) {
			c := name[i]
			if c == '\n' || c == '\r' {
				c = '-'
			}
			b = append(b, c)
		}
	} else {
		b = append(b, name...)
	}
	b = append(b, '=')
	q, clean := quoted, true
	for i := range len(value) {
		switch c := value[i]; {
		case c == ' ' || c == ',':
			q = true
		case c < 0x20 || c >= 0x7f || c == '"' || c == ';' || c == '\\':
			clean = false
		}
	}
	if q {
		b = append(b, '"')
	}
	if clean {
		b = append(b, value...)
	} else {
		for i := range len(value) {
			if c := value[i]; 0x20 <= c && c < 0x7f && c != '"' && c != ';' && c != '\\' {
				b = append(b, c)
			}
		}
	}
	if q {
		b = append(b, '"')
	}
	return b
}

// selectLocked removes the expired cookies of u's key and returns, in sel,
// the indexes in s.entries of the cookies to send to u in the order to
// send them. s.mu is held.
func (s *cookieStore) selectLocked(u *url.URL, now time.Time, sel []int) []int {
	if u.Scheme != "http" && u.Scheme != "https" {
		return sel
	}
	host, ok := canonicalHost(u.Host)
	if !ok {
		return sel
	}
	https := u.Scheme == "https"
	path := u.Path
	if path == "" {
		path = "/"
	}
	nowSec, nowNsec := now.Unix(), int32(now.Nanosecond())
	if len(s.entries) == 0 {
		return sel
	}
	// key is host's cookiejar key, looked up only when an entry needs it
	// (the look-up allocates): a host-only cookie of host itself was set
	// by host, so it has host's key.
	key, keyKnown := "", false
	kept := s.entries[:0]
	for _, e := range s.entries {
		inKey := e.hostOnly && e.domain() == host
		if k := e.key(); !inKey && (k == host || hasDotSuffix(host, k)) {
			if !keyKnown {
				key, keyKnown = jarKey(host), true
			}
			inKey = k == key
		}
		if inKey {
			if e.expired(nowSec, nowNsec) {
				continue // expired: removed
			}
			if e.shouldSend(https, host, path) {
				sel = append(sel, len(kept))
			}
		}
		kept = append(kept, e)
	}
	clear(s.entries[len(kept):])
	s.entries = kept
	if len(kept) == 0 {
		s.entries = nil
	}
	// RFC 6265 5.4, step 2, as cookiejar sorts: the longer path (of two
	// that match one request path, one is a prefix of the other) first,
	// then the earlier stored (a stable sort keeps the store's order).
	slices.SortStableFunc(sel, func(a, b int) int { return cmp.Compare(kept[b].path, kept[a].path) })
	return sel
}

// shouldSend is cookiejar's: e is sent to host and path, over https or
// not. Expiry is the caller's.
func (e *storeEntry) shouldSend(https bool, host, path string) bool {
	return e.domainMatch(host) && e.pathMatch(path) && e.secureMatch(https)
}

// domainMatch is cookiejar's: an IP address in Domain is always a host
// cookie.
func (e *storeEntry) domainMatch(host string) bool {
	d := e.domain()
	return d == host || !e.hostOnly && hasDotSuffix(host, d)
}

// pathMatch is RFC 6265 5.1.4's path-match, as cookiejar has it.
func (e *storeEntry) pathMatch(requestPath string) bool {
	if requestPath == e.path {
		return true
	}
	if strings.HasPrefix(requestPath, e.path) {
		if e.path[len(e.path)-1] == '/' {
			return true // "/any/" matches "/any/path"
		} else if requestPath[len(e.path)] == '/' {
			return true // "/any" matches "/any/path"
		}
	}
	return false
}

// secureMatch is cookiejar's: a Secure cookie goes over https only, or
// to a secure origin (localhost, a name under .localhost, a loopback
// address) over plain http too.
func (e *storeEntry) secureMatch(https bool) bool {
	if !e.secure || https {
		return true
	}
	d := e.domain()
	if isLocalhost(d) {
		return true
	}
	ip, err := netip.ParseAddr(d)
	return err == nil && ip.IsLoopback()
}

// isLocalhost is cookiejar's: the last label of host, less a trailing
// dot, is localhost in any case.
func isLocalhost(host string) bool {
	host = strings.TrimSuffix(host, ".")
	if i := strings.LastIndexByte(host, '.'); i >= 0 {
		host = host[i+1:]
	}
	return strings.EqualFold(host, "localhost")
}

// canonicalHost is cookiejar's: host without its port or a trailing dot,
// in punycode, lower case; false when cookiejar ignores it (a port that
// does not split, or, here, a label idna cannot encode).
func canonicalHost(host string) (string, bool) {
	if hasPort(host) {
		h, _, err := net.SplitHostPort(host)
		if err != nil {
			return "", false
		}
		host = h
	}
	host = strings.TrimSuffix(host, ".")
	if !isASCII(host) {
		labels := strings.Split(host, ".")
		for i, l := range labels {
			if isASCII(l) {
				continue
			}
			// Raw punycode, no mapping: what cookiejar's toASCII does.
			a, err := idna.Punycode.ToASCII(l)
			if err != nil {
				return "", false
			}
			labels[i] = a
		}
		host = strings.Join(labels, ".")
	}
	return strings.ToLower(host), true // ASCII: ToLower is cookiejar's ascii.ToLower
}

// hasPort is cookiejar's: whether host (a name, an IPv4 or an IPv6
// address) has a port.
func hasPort(host string) bool {
	colons := strings.Count(host, ":")
	if colons == 0 {
		return false
	}
	if colons == 1 {
		return true
	}
	return host[0] == '[' && strings.Contains(host, "]:")
}

// jarKey is cookiejar's key for host with publicsuffix.List: its
// registrable domain (eTLD+1), or host itself when it is an IP address
// or a public suffix.
func jarKey(host string) string {
	if isIP(host) {
		return host
	}
	suffix := publicsuffix.List.PublicSuffix(host)
	if suffix == host {
		return host
	}
	i := len(host) - len(suffix)
	if i <= 0 || host[i-1] != '.' {
		return host // a broken list: cookiejar's stopgap
	}
	return host[strings.LastIndexByte(host[:i-1], '.')+1:]
}

// defaultPath is cookiejar's: the directory of a URL's path (RFC 6265
// 5.1.4).
func defaultPath(path string) string {
	if len(path) == 0 || path[0] != '/' {
		return "/" // empty or malformed
	}
	i := strings.LastIndexByte(path, '/')
	if i == 0 {
		return "/" // "/abc"
	}
	return path[:i] // "/abc/xyz" or "/abc/xyz/"
}

// domainAndType is cookiejar's: the domain a cookie with Domain
// attribute domain set by host belongs to, whether it is host-only, and
// false when cookiejar drops the cookie. ps gives public suffixes.
func domainAndType(host, domain string, ps func(string) string) (string, bool, bool) {
	if domain == "" {
		return host, true, true // no Domain: a host cookie
	}
	if isIP(host) {
		// Only the address itself, as a host cookie (no leading dot).
		return host, true, host == domain
	}
	domain = strings.TrimPrefix(domain, ".")
	if domain == "" || domain[0] == '.' || !isASCII(domain) {
		return "", false, false // "Domain=.", "Domain=..a.test", non-ASCII
	}
	domain = strings.ToLower(domain)
	if domain[len(domain)-1] == '.' {
		return "", false, false // "Domain=a.test."
	}
	if p := ps(domain); p != "" && !hasDotSuffix(domain, p) {
		// A public suffix: allowed only as host itself, and then a host
		// cookie.
		return host, true, host == domain
	}
	if host != domain && !hasDotSuffix(host, domain) {
		return "", false, false
	}
	return domain, false, true
}
