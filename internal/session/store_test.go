package session

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/net/publicsuffix"
)

// storeHosts are the hosts the differential test sets cookies from and
// asks cookies for: a site and its subdomains, in mixed case and with a
// trailing dot; IP addresses and localhost (secure origins over plain
// http); a host under a public suffix and the suffix itself; hosts whose
// cookiejar keys differ although one domain-matches the other
// (s3.amazonaws.com is a public suffix, amazonaws.com is not); a
// non-ASCII host and its punycode.
var storeHosts = []string{
	"www.a.test", "a.test", "b.a.test", "WWW.A.Test", "www.a.test.", "other.test",
	"127.0.0.1", "[::1]", "localhost", "app.localhost",
	"foo.co.uk", "www.foo.co.uk", "co.uk",
	"amazonaws.com", "www.amazonaws.com", "x.s3.amazonaws.com",
	"bücher.a.test", "xn--bcher-kva.a.test",
}

var storePaths = []string{"", "/", "/a", "/a/", "/a/b", "/a/b/c", "/ab", "/b/x", "/A"}

// storeDomains are Domain attributes: parents, the host itself, public
// suffixes, IP addresses, mixed case, leading and trailing dots,
// non-ASCII.
var storeDomains = []string{
	"a.test", ".a.test", "A.TEST", "www.a.test", "b.a.test", "test", "other.test", "..a.test", "a.test.",
	"127.0.0.1", ".127.0.0.1", "::1", "localhost", "app.localhost",
	"co.uk", "foo.co.uk", ".foo.co.uk", "amazonaws.com", "s3.amazonaws.com", "x.s3.amazonaws.com",
	"xn--bcher-kva.a.test", "bücher.a.test",
}

// storeURL is a random URL of the differential test: a host of
// storeHosts, perhaps with a port, over http or https (or, seldom, a
// scheme the jars ignore).
func storeURL(r *rand.Rand) *url.URL {
	u := &url.URL{Scheme: "http", Host: storeHosts[r.IntN(len(storeHosts))], Path: storePaths[r.IntN(len(storePaths))]}
	switch r.IntN(10) {
	case 0:
		u.Scheme = "ftp"
	case 1, 2, 3, 4:
		u.Scheme = "https"
	}
	if r.IntN(3) == 0 {
		u.Host += []string{":8080", ":443", ":80"}[r.IntN(3)]
	}
	return u
}

// storeCookie is a cookie as a line names it: its name, and its Domain
// and Path attributes (scope), from the URL that sets it.
type storeCookie struct {
	u           *url.URL
	name, scope string
}

// newStoreCookie is a random cookie of a line from u.
func newStoreCookie(r *rand.Rand, u *url.URL) storeCookie {
	c := storeCookie{u: u, name: []string{"a", "b", "A", "sessionid", "csrftoken", "__Secure-s", "__Host-h"}[r.IntN(7)]}
	if r.IntN(5) < 2 {
		c.scope += "; Domain=" + storeDomains[r.IntN(len(storeDomains))]
	}
	if r.IntN(2) == 0 {
		c.scope += "; Path=" + []string{"/", "/a", "/a/", "/a/b", "a", "/b", "", "/A"}[r.IntN(8)]
	}
	return c
}

// storeLine is a random Set-Cookie line for c with the n-th value, a
// deletion when del. Times are an hour or more from now, or far in the
// past or future, so that the two jars, which read the clock a few
// microseconds apart, decide alike.
func storeLine(r *rand.Rand, now time.Time, n int, c storeCookie, del bool) string {
	value := fmt.Sprintf("v%d", n)
	switch r.IntN(6) {
	case 0:
		value = `"` + value + `"` // Quoted
	case 1:
		value = ""
	}
	line := c.name + "=" + value + c.scope
	past := now.Add(-48 * time.Hour).UTC().Format(http.TimeFormat)
	if del {
		line += []string{"; Max-Age=0", "; Max-Age=-1", "; Expires=" + past, "; Max-Age=-5; Expires=" + past}[r.IntN(4)]
	} else {
		if r.IntN(10) < 3 {
			// A leading zero is ignored; 9223372037 seconds overflows
			// a Duration and wraps to a time in the past.
			line += "; Max-Age=" + []string{"0", "-1", "3600", "34560000", "9223372037", "07"}[r.IntN(6)]
		}
		if r.IntN(10) < 3 {
			t := []time.Time{now.Add(-48 * time.Hour), now.Add(48 * time.Hour),
				time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), time.Unix(0, 0)}[r.IntN(4)]
			line += "; Expires=" + t.UTC().Format(http.TimeFormat)
		}
	}
	if r.IntN(20) < 7 {
		line += "; Secure"
	}
	if r.IntN(5) == 0 {
		line += "; HttpOnly"
	}
	if r.IntN(5) == 0 {
		line += "; SameSite=" + []string{"Lax", "Strict", "None"}[r.IntN(3)]
	}
	return line
}

// refSet is what the jar did with cookiejar: the cookies the jar keeps,
// given to ref.
func refSet(j *jar, ref *cookiejar.Jar, u *url.URL, cookies []*http.Cookie) {
	kept := cookies
	if host, ok := jarHost(u); ok {
		kept = nil
		for _, c := range cookies {
			if reason, _ := j.check(c, host, u.Scheme == "https"); reason == "" {
				kept = append(kept, c)
			}
		}
	}
	ref.SetCookies(u, kept)
}

// storeIDs are the cookies of s: their values by key, domain, path and
// name.
func storeIDs(s *cookieStore) map[string]string {
	ids := map[string]string{}
	for i := range s.entries {
		e := &s.entries[i]
		ids[e.key()+" "+e.domain()+" "+e.path+" "+e.name()] = e.value()
	}
	return ids
}

// cookieList is what a jar sends, as one comparable string: the order,
// names, values and quotes.
func cookieList(cs []*http.Cookie) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "%s=%q/%v ", c.Name, c.Value, c.Quoted)
	}
	return b.String()
}

// storeDiff is a jar and Go's cookiejar behind the same refusal checks,
// fed the same cookies.
type storeDiff struct {
	t        *testing.T
	name     string
	j        *jar
	ref      *cookiejar.Jar
	history  []string // the URLs and lines so far
	expired  int      // entries removed by requests
	compared int      // requests compared
}

func newStoreDiff(t *testing.T, name string) *storeDiff {
	ref, _ := cookiejar.New(&cookiejar.Options{PublicSuffixList: publicsuffix.List})
	return &storeDiff{t: t, name: name, j: newJar(nil), ref: ref}
}

// set gives both jars the lines a response from u set, less those net/http
// cannot parse.
func (d *storeDiff) set(u *url.URL, lines ...string) {
	var cookies []*http.Cookie
	for _, line := range lines {
		c, err := http.ParseSetCookie(line)
		if err != nil {
			continue // Go's client drops it
		}
		cookies = append(cookies, c)
		d.history = append(d.history, u.String()+"  "+line)
	}
	refSet(d.j, d.ref, u, cookies)
	d.j.SetCookies(u, cookies)
}

// compare returns the cookies both jars send to u, failing if they
// differ.
func (d *storeDiff) compare(u *url.URL) []*http.Cookie {
	d.t.Helper()
	n := len(d.j.inner.entries)
	got, want := d.j.Cookies(u), d.ref.Cookies(u)
	d.expired += n - len(d.j.inner.entries)
	d.compared++
	if g, w := cookieList(got), cookieList(want); g != w {
		d.t.Fatalf("%s, after\n\t%s\n%s gets\n\t%s\nwant (cookiejar)\n\t%s",
			d.name, strings.Join(d.history, "\n\t"), u, g, w)
	}
	return got
}

// sweep compares what both jars send to every URL of the test, with and
// without a port.
func (d *storeDiff) sweep() {
	d.t.Helper()
	for _, h := range storeHosts {
		for _, port := range []string{"", ":8080"} {
			if strings.HasSuffix(h, ".") && port != "" {
				continue
			}
			for _, p := range storePaths {
				for _, s := range []string{"http", "https"} {
					d.compare(&url.URL{Scheme: s, Host: h + port, Path: p})
				}
			}
		}
	}
}

// TestStoreMatchesCookiejar feeds random sequences of Set-Cookie lines
// from random URLs to the jar and to Go's cookiejar behind the same
// refusal checks, and compares what each sends to many URLs after every
// step.
func TestStoreMatchesCookiejar(t *testing.T) {
	sequences, steps, probes := 200, 30, 16
	if testing.Short() {
		sequences = 60
	}
	var stats struct {
		lines, stored, replaced, removed, expired, compared, sent, sentMany, sentPaths, domainSent, secureHTTP int
	}
	for seq := range sequences {
		r := rand.New(rand.NewPCG(uint64(seq), 18))
		d := newStoreDiff(t, fmt.Sprintf("sequence %d", seq))
		compare := func(u *url.URL) {
			t.Helper()
			got := d.compare(u)
			if len(got) == 0 {
				return
			}
			stats.sent++
			if len(got) > 1 {
				stats.sentMany++
			}
			// The entries sent (values are unique but for empty ones).
			host, _ := canonicalHost(u.Host)
			paths := map[string]bool{}
			domain, secure := false, false
			for _, c := range got {
				for i := range d.j.inner.entries {
					e := &d.j.inner.entries[i]
					if e.name() != c.Name || e.value() != c.Value || c.Value == "" {
						continue
					}
					paths[e.path] = true
					domain = domain || !e.hostOnly && e.domain() != host
					secure = secure || e.secure && u.Scheme == "http"
				}
			}
			if len(paths) > 1 {
				stats.sentPaths++
			}
			if domain {
				stats.domainSent++
			}
			if secure {
				stats.secureHTTP++
			}
		}
		var earlier []storeCookie
		for range steps {
			// A new URL with new cookies, or a cookie set earlier set
			// again (a new value, a deletion) from the same URL.
			var batch []storeCookie
			del := false
			if len(earlier) > 0 && r.IntN(10) < 3 {
				batch = []storeCookie{earlier[r.IntN(len(earlier))]}
				del = r.IntN(2) == 0
			} else {
				u := storeURL(r)
				for range 1 + r.IntN(3) {
					batch = append(batch, newStoreCookie(r, u))
				}
				earlier = append(earlier, batch...)
			}
			u := batch[0].u
			now := time.Now()
			var lines []string
			for _, sc := range batch {
				lines = append(lines, storeLine(r, now, stats.lines, sc, del))
				stats.lines++
			}
			before := storeIDs(d.j.inner)
			d.set(u, lines...)
			after := storeIDs(d.j.inner)
			for id, v := range after {
				if w, ok := before[id]; !ok {
					stats.stored++
				} else if v != w {
					stats.replaced++
				}
			}
			for id := range before {
				if _, ok := after[id]; !ok {
					stats.removed++
				}
			}
			compare(u)
			for range probes {
				compare(storeURL(r))
			}
		}
		d.sweep()
		stats.expired += d.expired
		stats.compared += d.compared
	}
	t.Logf("%d sequences, %d lines: %d cookies stored, %d replaced, %d removed, %d expired and removed by a request; %d comparisons, sweeps of every URL after each sequence included; after steps: %d with cookies, %d with several, %d with several paths, %d with a domain cookie for a subdomain, %d with a Secure cookie over http",
		sequences, stats.lines, stats.stored, stats.replaced, stats.removed, stats.expired, stats.compared, stats.sent, stats.sentMany, stats.sentPaths, stats.domainSent, stats.secureHTTP)
	// The test is worth something only if the sequences reach every
	// branch: a change to the generator must not leave them untested.
	for name, n := range map[string]int{"stored": stats.stored, "replaced": stats.replaced, "removed": stats.removed,
		"expired": stats.expired,
		"sent":    stats.sent, "sent several": stats.sentMany, "several paths": stats.sentPaths,
		"domain cookie to a subdomain": stats.domainSent, "Secure over http": stats.secureHTTP} {
		if n < sequences/10 {
			t.Errorf("%s: only %d cases in %d sequences", name, n, sequences)
		}
	}
}

// TestStoreMatchesCookiejarCases compares the jar with cookiejar on the
// cases random sequences seldom reach: "URL | line | line" sets cookies,
// "URL" alone asks for them.
func TestStoreMatchesCookiejarCases(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []string
	}{
		{"one domain under two keys", []string{ // s3.amazonaws.com is a public suffix
			"http://www.amazonaws.com/ | a=1; Domain=amazonaws.com",
			"http://x.s3.amazonaws.com/ | a=2; Domain=amazonaws.com | b=1; Domain=AMAZONAWS.com"}},
		{"an expired cookie set again keeps its place until its site is asked", []string{
			"http://www.a.test/ | first=1; Max-Age=9223372037 | second=1",
			"http://other.test/",
			"http://www.a.test/ | first=2"}},
		{"an expired cookie is removed when its site is asked", []string{
			"http://www.a.test/ | first=1; Max-Age=9223372037 | second=1",
			"http://b.a.test/",
			"http://www.a.test/ | first=2"}},
		{"a public suffix as a host", []string{"http://co.uk/ | a=1; Domain=co.uk | b=1; Domain=.CO.UK"}},
		{"host-only and domain cookies replace each other", []string{
			"http://a.test/ | a=1", "http://a.test/x | a=2; Domain=a.test | b=1; Path=/", "http://a.test/ | b=2; Domain=.a.test"}},
		{"IPv6 with and without a port", []string{"http://[::1]:8080/ | a=1; Secure", "http://[::1]/ | b=1 | c=1; Domain=::1"}},
		{"punycode", []string{"http://bücher.a.test/ | a=1", "http://xn--bcher-kva.a.test/ | b=1; Domain=xn--bcher-kva.a.test",
			"http://BÜCHER.a.test/ | c=1", "http://a\ufffd.a.test/ | d=1", "http://xn--a-q10i.a.test/", "http://a\ufffd.a.test/"}},
		{"trailing dot and case", []string{"http://WWW.A.Test./ | a=1", "http://www.a.test:8080/ | b=1; Domain=WWW.a.test"}},
		{"default and relative paths", []string{"http://www.a.test/a/b/c | x=1", "http://www.a.test/a/b/ | y=1; Path=relative",
			"http://www.a.test/a | z=1; Path=", "http://www.a.test/a/b/c | w=1; Path=/a/b/c/"}},
		{"secure origins", []string{"http://app.localhost/ | a=1; Secure", "https://www.a.test/ | b=1; Secure",
			"http://127.0.0.1/ | c=1; Secure", "https://localhost/ | d=1; Secure; Domain=localhost"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newStoreDiff(t, tc.name)
			for _, step := range tc.steps {
				parts := strings.Split(step, " | ")
				u, err := url.Parse(parts[0])
				if err != nil {
					t.Fatal(err)
				}
				if len(parts) == 1 {
					d.compare(u)
					continue
				}
				d.set(u, parts[1:]...)
			}
			if len(d.j.inner.entries) == 0 {
				t.Fatal("no cookie stored")
			}
			d.sweep()
		})
	}
}

// TestStoreExpiryMatchesCookiejar sets cookies that expire a few
// milliseconds later and compares the two jars on either side of the
// expiry, with real sleeps (cookiejar reads the clock itself). A
// comparison whose calls straddle an expiry is made again.
func TestStoreExpiryMatchesCookiejar(t *testing.T) {
	u := &url.URL{Scheme: "http", Host: "www.a.test", Path: "/"}
	j := newJar(nil)
	ref, _ := cookiejar.New(&cookiejar.Options{PublicSuffixList: publicsuffix.List})
	set := func(cs ...*http.Cookie) {
		refSet(j, ref, u, cs)
		j.SetCookies(u, cs)
	}
	// compare returns what both jars send, failing if they differ.
	compare := func(boundaries ...time.Time) string {
		t.Helper()
		for {
			t1 := time.Now()
			got, want := cookieList(j.Cookies(u)), cookieList(ref.Cookies(u))
			t2 := time.Now()
			straddles := false
			for _, b := range boundaries {
				straddles = straddles || !b.Before(t1) && !b.After(t2)
			}
			if straddles {
				continue
			}
			if got != want {
				t.Fatalf("sends %s, want (cookiejar) %s", got, want)
			}
			return got
		}
	}
	sleepUntil := func(t time.Time) { time.Sleep(time.Until(t) + time.Millisecond) }

	start := time.Now()
	soon, later := start.Add(15*time.Millisecond), start.Add(40*time.Millisecond)
	set(&http.Cookie{Name: "soon", Value: "1", Expires: soon}, &http.Cookie{Name: "later", Value: "2", Expires: later},
		&http.Cookie{Name: "session", Value: "3"})
	if got := compare(soon, later); time.Now().Before(soon) && got != `soon="1"/false later="2"/false session="3"/false ` {
		t.Errorf("before the expiries: %s", got)
	}
	sleepUntil(soon)
	if got := compare(soon, later); time.Now().Before(later) && got != `later="2"/false session="3"/false ` {
		t.Errorf("between the expiries: %s", got)
	}
	sleepUntil(later)
	if got := compare(later); got != `session="3"/false ` {
		t.Errorf("after the expiries: %s", got)
	}

	// An expired cookie set again before any request removed it keeps
	// its place (cookiejar removes expired cookies only when asked for
	// cookies); once removed, it is a new cookie and comes last.
	for _, asked := range []bool{false, true} {
		j = newJar(nil)
		ref, _ = cookiejar.New(&cookiejar.Options{PublicSuffixList: publicsuffix.List})
		gone := time.Now().Add(5 * time.Millisecond)
		set(&http.Cookie{Name: "first", Value: "1", Expires: gone}, &http.Cookie{Name: "second", Value: "2"})
		sleepUntil(gone)
		if asked {
			compare()
		}
		set(&http.Cookie{Name: "first", Value: "again"})
		want := `first="again"/false second="2"/false `
		if asked {
			want = `second="2"/false first="again"/false `
		}
		if got := compare(); got != want {
			t.Errorf("asked for cookies in between: %v: %s, want %s", asked, got, want)
		}
	}
}

// TestStoreExpiry follows expiry on the store's own clock: Max-Age from
// the time set, Expires, deletions, the precedence of Max-Age, times past
// int64 nanoseconds.
func TestStoreExpiry(t *testing.T) {
	t0 := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	date := func(d time.Duration) string { return at(d).Format(http.TimeFormat) }
	const year = 365 * 24 * time.Hour
	type step struct {
		at   time.Duration
		line string // set when not ""
		want string // else: the cookies sent, by name
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"max-age counts from when set", []step{{at: 10 * time.Second, line: "c=1; Max-Age=60"},
			{at: 69 * time.Second, want: "c"}, {at: 70 * time.Second, want: ""}}},
		{"expires", []step{{line: "c=1; Expires=" + date(60*time.Second)},
			{at: 59 * time.Second, want: "c"}, {at: 60 * time.Second, want: ""}}},
		{"max-age before expires", []step{{line: "c=1; Max-Age=60; Expires=" + date(-time.Hour)},
			{at: 30 * time.Second, want: "c"}}},
		{"expires in the past deletes", []step{{line: "c=1"}, {line: "d=1"}, {at: time.Second, line: "c=2; Expires=" + date(0)},
			{at: time.Second, want: "d"}}},
		{"max-age=0 deletes", []step{{line: "c=1"}, {line: "c=2; Max-Age=0"}, {want: ""}}},
		{"a session cookie lasts", []step{{line: "c=1"}, {at: 290 * year, want: "c"}}},
		{"after 2262", []step{{line: "c=1; Expires=Fri, 31 Dec 9999 23:59:59 GMT"}, {at: 280 * year, want: "c"}}},
		{"max-age overflowing a duration", []step{{line: "c=1; Max-Age=9223372037"}, {want: ""}}},
		{"set again keeps its place", []step{{line: "c=1"}, {line: "d=1"}, {line: "c=2; Max-Age=60"}, {want: "c d"},
			{at: time.Minute, want: "d"}, {line: "c=3"}, {want: "d c"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := new(cookieStore)
			u := &url.URL{Scheme: "https", Host: "www.a.test", Path: "/"}
			for i, st := range tc.steps {
				if st.line != "" {
					c, err := http.ParseSetCookie(st.line)
					if err != nil {
						t.Fatal(err)
					}
					s.setCookies(u, []*http.Cookie{c}, at(st.at), publicsuffix.List.PublicSuffix)
					continue
				}
				var names []string
				for _, c := range s.cookies(u, at(st.at)) {
					names = append(names, c.Name)
				}
				if got := strings.Join(names, " "); got != st.want {
					t.Errorf("step %d, at %v: got %q, want %q", i, st.at, got, st.want)
				}
			}
		})
	}
}

// djangoLogin sets on j the cookies of a Django login: csrftoken with the
// login page, then sessionid and a new csrftoken with the login's
// redirect, each line of its own (the values are those of one user).
func djangoLogin(t testing.TB, j http.CookieJar, r *rand.Rand) {
	token := func() string {
		const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
		b := make([]byte, 32)
		for i := range b {
			b[i] = alnum[r.IntN(len(alnum))]
		}
		return string(b)
	}
	parse := func(line string) *http.Cookie {
		c, err := http.ParseSetCookie(line)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	now := time.Now()
	csrf := func() *http.Cookie {
		return parse("csrftoken=" + token() + "; expires=" + now.Add(364*24*time.Hour).UTC().Format(http.TimeFormat) +
			"; Max-Age=31449600; Path=/; SameSite=Lax")
	}
	j.SetCookies(&url.URL{Scheme: "https", Host: "app.example.com", Path: "/accounts/login/"}, []*http.Cookie{csrf()})
	j.SetCookies(&url.URL{Scheme: "https", Host: "app.example.com", Path: "/accounts/login/"}, []*http.Cookie{
		csrf(), parse("sessionid=" + token() + "; expires=" + now.Add(14*24*time.Hour).UTC().Format(http.TimeFormat) +
			"; HttpOnly; Max-Age=1209600; Path=/; SameSite=Lax")})
}

// heapPerJar is the heap n jars made by newJar and given a Django login
// hold, per jar, measured after a collection.
func heapPerJar(t *testing.T, n int, newJar func() http.CookieJar) float64 {
	jars := make([]http.CookieJar, n)
	r := rand.New(rand.NewPCG(1, 2))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range jars {
		jars[i] = newJar()
		djangoLogin(t, jars[i], r)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	u := &url.URL{Scheme: "https", Host: "app.example.com", Path: "/dashboard/"}
	for _, j := range jars {
		if cs := j.Cookies(u); len(cs) != 2 {
			t.Fatalf("a jar sends %d cookies, want 2", len(cs))
		}
	}
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
}

// TestStoreMemory: a logged-in user's jar stays small. The bound is what
// the layout takes, with room for a size class: the jar (64 bytes), its
// store (32), two entries (144), each name and value in one allocation
// (48 for a 9-byte name and a 32-byte value), the host once (16): 352.
func TestStoreMemory(t *testing.T) {
	const n, bound = 2000, 400
	if s := unsafe.Sizeof(storeEntry{}); s != 72 {
		t.Errorf("an entry takes %d bytes, want 72", s)
	}
	ours := heapPerJar(t, n, func() http.CookieJar { return newJar(nil) })
	theirs := heapPerJar(t, n, func() http.CookieJar {
		j, _ := cookiejar.New(&cookiejar.Options{PublicSuffixList: publicsuffix.List})
		return j
	})
	t.Logf("a jar with a Django login's two cookies: %.0f bytes; Go's cookiejar: %.0f bytes (and the 64-byte jar around it)", ours, theirs)
	if ours > bound {
		t.Errorf("a jar takes %.0f bytes, want at most %d", ours, bound)
	}
	if empty := testing.AllocsPerRun(100, func() { newJar(nil) }); empty > 2 {
		t.Errorf("an empty jar takes %v allocations, want at most 2 (the jar and its store)", empty)
	}
}

// within reports whether s lies in the memory of line.
func within(s, line string) bool {
	if len(s) == 0 || len(line) == 0 {
		return false
	}
	p, l := uintptr(unsafe.Pointer(unsafe.StringData(s))), uintptr(unsafe.Pointer(unsafe.StringData(line)))
	return p >= l && p < l+uintptr(len(line))
}

// TestStoreCopiesStrings: no string the store keeps lies in a
// Set-Cookie line (or it would keep the whole line alive), whatever is
// empty and whatever the case.
func TestStoreCopiesStrings(t *testing.T) {
	for _, line := range []string{
		"sessionid=abc; Path=/x/y; Domain=a.test; Max-Age=60",
		"sessionid=; Path=/x",
		`q="quoted"; Domain=.A.TEST`,
	} {
		c, err := http.ParseSetCookie(line)
		if err != nil {
			t.Fatal(err)
		}
		raw := "https://www.a.test:8080/p/q"
		u, _ := url.Parse(raw)
		s := new(cookieStore)
		s.setCookies(u, []*http.Cookie{c}, time.Now(), publicsuffix.List.PublicSuffix)
		if len(s.entries) != 1 {
			t.Fatalf("%s: %d entries, want 1", line, len(s.entries))
		}
		e := s.entries[0]
		for _, str := range []string{e.nv, e.dk, e.path} {
			if within(str, line) || within(str, raw) {
				t.Errorf("%s: the store keeps %q of the line or the URL", line, str)
			}
		}
		if e.name() != c.Name || e.value() != c.Value {
			t.Errorf("%s: stored %q=%q", line, e.name(), e.value())
		}
	}
}

// TestStoreCookiesAllocs: asking a jar of host-only cookies for its own
// host's cookies costs the result only (no public suffix look-up).
func TestStoreCookiesAllocs(t *testing.T) {
	j := newJar(nil)
	djangoLogin(t, j, rand.New(rand.NewPCG(3, 4)))
	u := &url.URL{Scheme: "https", Host: "app.example.com", Path: "/dashboard/"}
	if n := testing.AllocsPerRun(100, func() { j.Cookies(u) }); n != 2 {
		t.Errorf("Cookies takes %v allocations, want 2 (the slice and the cookies)", n)
	}
	other := &url.URL{Scheme: "https", Host: "other.test", Path: "/"}
	if n := testing.AllocsPerRun(100, func() { j.Cookies(other) }); n != 0 {
		t.Errorf("Cookies with none to send takes %v allocations, want 0", n)
	}
}

// TestStoreConcurrent: a jar is used from several goroutines at once
// (run with -race).
func TestStoreConcurrent(t *testing.T) {
	j := newJar(nil)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			u := &url.URL{Scheme: "https", Host: "www.a.test", Path: "/"}
			for i := range 200 {
				j.SetCookies(u, []*http.Cookie{{Name: fmt.Sprintf("c%d", g), Value: fmt.Sprint(i), Domain: "a.test"}})
				j.Cookies(u)
			}
		})
	}
	wg.Wait()
	if got := j.Cookies(&url.URL{Scheme: "http", Host: "b.a.test"}); len(got) != 4 {
		t.Errorf("%d cookies, want 4", len(got))
	}
}

// BenchmarkCookies compares the jar with Go's own on what a logged-in
// Django user sends with each request.
func BenchmarkCookies(b *testing.B) {
	u := &url.URL{Scheme: "https", Host: "app.example.com", Path: "/dashboard/"}
	for _, bc := range []struct {
		name string
		jar  http.CookieJar
	}{{"cookiejar", func() http.CookieJar {
		j, _ := cookiejar.New(&cookiejar.Options{PublicSuffixList: publicsuffix.List})
		return j
	}()}, {"store", newJar(nil)}} {
		b.Run(bc.name, func(b *testing.B) {
			djangoLogin(b, bc.jar, rand.New(rand.NewPCG(5, 6)))
			b.ReportAllocs()
			for b.Loop() {
				if len(bc.jar.Cookies(u)) != 2 {
					b.Fatal("not logged in")
				}
			}
		})
	}
}

// TestWriteCookiePairAsAddCookie: a pair is appended as net/http's
// AddCookie writes it, clean or not.
func TestWriteCookiePairAsAddCookie(t *testing.T) {
	for _, c := range []http.Cookie{
		{Name: "sessionid", Value: "abc123"},
		{Name: "q", Value: "a b"},
		{Name: "c", Value: "x,y"},
		{Name: "quoted", Value: "v", Quoted: true},
		{Name: "empty", Value: ""},
		{Name: "dirty", Value: "a;b\"c\\d\x01e\x7ff"},
		{Name: "new\nline\r", Value: "v"},
	} {
		r, _ := http.NewRequest("GET", "http://h/", nil)
		r.AddCookie(&c)
		if got, want := string(appendCookiePair(nil, c.Name, c.Value, c.Quoted)), r.Header.Get("Cookie"); got != want {
			t.Errorf("%q=%q: %q, want %q", c.Name, c.Value, got, want)
		}
	}
}
