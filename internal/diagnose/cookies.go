package diagnose

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/stampede-load/stampede"
)

// What the client knows. stampede's cookie jar records the cookies it
// refused and why (evidence of source "client", signature
// "cookie-refused": a Secure cookie over plain HTTP, a Domain the host
// does not match, SameSite=None without Secure, a cookie too large, a
// broken __Secure-/__Host- prefix). A CSRF failure or a lost session that
// follows a refused cookie is explained by the client itself: the cookie
// never went back to the server.

// cookieSignature is the Signature of the client's cookie refusals.
const cookieSignature = "cookie-refused"

// refusedCookie is one cookie the client refused, summed over the run.
type refusedCookie struct {
	name, attribute, reason, url, endpoint string
	count                                  int
	first                                  *event
}

// refusedCookies returns the cookies the client refused, most refused
// first.
func (c *ctx) refusedCookies() []*refusedCookie {
	by := map[string]*refusedCookie{}
	var out []*refusedCookie
	for i := range c.events {
		e := &c.events[i]
		if e.Signature != cookieSignature {
			continue
		}
		name := e.Fields["name"]
		if name == "" {
			name = e.Fields["cookie"]
		}
		k := name + "\x00" + e.Fields["reason"] + "\x00" + e.Fields["url"]
		r := by[k]
		if r == nil {
			r = &refusedCookie{name: name, attribute: e.Fields["attribute"], reason: e.Fields["reason"], url: e.Fields["url"], endpoint: e.Fields["endpoint"], first: e}
			by[k] = r
			out = append(out, r)
		}
		n, err := strconv.Atoi(e.Fields["count"])
		if err != nil || n < 1 {
			n = 1
		}
		r.count += n
		if !e.Time.IsZero() && (r.first.Time.IsZero() || e.Time.Before(r.first.Time)) {
			r.first = e
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].count > out[j].count })
	return out
}

// why says in words why the client refused the cookie.
func (r *refusedCookie) why() string {
	switch r.reason {
	case "secure-over-http":
		return "a Secure cookie set over plain HTTP"
	case "domain-mismatch":
		return fmt.Sprintf("its %s does not match the host", r.attribute)
	case "samesite-none-insecure":
		return "SameSite=None without Secure"
	case "too-large":
		return "larger than a browser keeps (4096 bytes)"
	case "prefix-violation":
		return fmt.Sprintf("its %s prefix's rules are broken", r.attribute)
	case "invalid":
		return "its Set-Cookie line cannot be parsed"
	}
	return r.reason
}

// ref quotes the refusal as confirmed evidence from the client.
func (r *refusedCookie) ref() stampede.EvidenceRef {
	by := r.url
	if r.endpoint != "" {
		by += " (" + r.endpoint + ")"
	}
	ref := eventRef(r.first)
	ref.Text = fmt.Sprintf("the client itself: stampede's cookie jar refused the cookie %q %d times — %s, set by %s — as a browser does: it was never sent back", r.name, r.count, r.why(), by)
	return ref
}

// cookieFix is the fix for a refused cookie, in the words of the stack
// seen.
func cookieFix(r *refusedCookie, st stackInfo) string {
	switch r.reason {
	case "secure-over-http":
		setting := "the cookie's Secure flag"
		switch st.framework {
		case "django":
			setting = "SESSION_COOKIE_SECURE / CSRF_COOKIE_SECURE"
		case "rails":
			setting = "the session store's secure: option (and config.force_ssl)"
		case "flask":
			setting = "SESSION_COOKIE_SECURE"
		case "express":
			setting = "the session cookie's secure option (express-session cookie.secure)"
		case "laravel":
			setting = "SESSION_SECURE_COOKIE"
		case "spring":
			setting = "server.servlet.session.cookie.secure"
		case "aspnet":
			setting = "CookieSecurePolicy"
		}
		return fmt.Sprintf("The cookie %q is Secure and the target is plain HTTP on a host name that is not a secure origin: load the target over HTTPS, as production serves it, or turn off %s in the test environment only (browsers treat only localhost and loopback addresses as secure over HTTP).", r.name, setting)
	case "domain-mismatch":
		return fmt.Sprintf("The cookie %q names a Domain (%s) that the tested host does not match: test at the host name the cookie is made for, or set the cookie domain for the test host (or leave Domain out).", r.name, r.attribute)
	case "samesite-none-insecure":
		return fmt.Sprintf("The cookie %q is SameSite=None without Secure: browsers refuse it; add Secure (and serve HTTPS) or use SameSite=Lax.", r.name)
	case "too-large":
		return fmt.Sprintf("The cookie %q is larger than browsers keep (4096 bytes): store the session server-side and keep only its id in the cookie.", r.name)
	case "prefix-violation":
		return fmt.Sprintf("The cookie %q breaks its name prefix's rules (%s): __Secure- needs Secure, __Host- needs Secure, Path=/ and no Domain.", r.name, r.attribute)
	}
	return fmt.Sprintf("The client could not keep the cookie %q (%s): fix how the server sets it.", r.name, r.why())
}

// cookieNext is the experiment that confirms a refused cookie's part.
func cookieNext(r *refusedCookie) string {
	if r.reason == "secure-over-http" {
		return fmt.Sprintf("Rerun over HTTPS (or with the cookie's Secure flag off in the test settings): the cookie %q is kept, sent back, and these failures should vanish.", r.name)
	}
	return fmt.Sprintf("Fix how %q is set and rerun: the client's cookie-refused evidence should be gone, and these failures with it.", r.name)
}

// csrfStatus reports whether a status is one that CSRF protection answers
// with: Django 403, Rails 422, Laravel 419, Flask-WTF and others 400.
func csrfStatus(s int) bool { return s == 400 || s == 403 || s == 419 || s == 422 }

// cookieCauses returns the refused cookies that can explain failures on
// endpoint names: a cookie refused before or while they failed.
func (c *ctx) cookieCauses(gs []*group) []*refusedCookie {
	rc := c.refusedCookies()
	if len(rc) == 0 || len(gs) == 0 {
		return nil
	}
	var first = gs[0].First
	for _, g := range gs {
		if !g.First.IsZero() && (first.IsZero() || g.First.Before(first)) {
			first = g.First
		}
	}
	var out []*refusedCookie
	for _, r := range rc {
		if first.IsZero() || r.first.Time.IsZero() || !r.first.Time.After(first.Add(c.pad)) {
			out = append(out, r)
		}
	}
	return out
}

// loginLike reports whether a group is on the login form's endpoints (its
// GET or its POST).
func loginLike(g *group) bool {
	return g.ep.login || isLoginName(g.Name) || strings.Contains(strings.ToLower(g.Name), "session")
}
