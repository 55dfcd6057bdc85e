package load

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/session"
)

// Cookie refusals are evidence from the client itself: the cookies the
// virtual users' browsers refused (session.CookieRefusal), aggregated per
// (cookie, attribute, reason, URL, endpoint) over the run, and reported as
// stampede.Evidence by CookieEvidence.
const (
	// CookieSource is the Source of the events: the client.
	CookieSource = "client"
	// CookieSignature is their Signature.
	CookieSignature = "cookie-refused"
	// CookieRef is their Ref.
	CookieRef = "client:cookie-jar"
)

// maxCookieAggregates bounds the aggregates of a run: past it, a refusal
// on a new path counts under its host ("http://h/…"); past it by a quarter
// more, a new refusal counts under its reason alone. A server setting a
// cookie of a new name or on a new path with every response cannot grow
// the engine's memory.
const maxCookieAggregates = 256

type cookieKey struct{ name, attribute, reason, url, endpoint string }

// cookieAgg is the count of one kind of refusal: over the run, and since
// the last report.
type cookieAgg struct {
	key    cookieKey
	detail string // the latest words (a size may change)
	total  int64
	// n refusals since the last report, the first at since.
	n     int64
	since time.Time
}

// cookieRefusals collects the refusals of every virtual user.
type cookieRefusals struct {
	mu   sync.Mutex
	aggs map[cookieKey]*cookieAgg
	// dirty are the aggregates with refusals since the last report, in
	// the order of their first.
	dirty []*cookieAgg
}

// add counts refusal r of a response to the step named endpoint.
func (c *cookieRefusals) add(r *session.CookieRefusal, endpoint string) {
	k := cookieKey{name: r.Name, attribute: r.Attribute, reason: r.Reason, url: r.URL, endpoint: endpoint}
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.aggs[k]
	if a == nil && len(c.aggs) >= maxCookieAggregates {
		k.url = hostOf(k.url) + "/…"
		if a = c.aggs[k]; a == nil && len(c.aggs) >= maxCookieAggregates*5/4 {
			k = cookieKey{name: "…", attribute: "…", reason: r.Reason, url: "…"}
			a = c.aggs[k]
		}
	}
	if a == nil {
		if c.aggs == nil {
			c.aggs = make(map[cookieKey]*cookieAgg)
		}
		a = &cookieAgg{key: k}
		c.aggs[k] = a
	}
	a.detail = r.Detail
	if k.url == "…" {
		a.detail = r.Reason + " refusal of one of too many cookies and URLs to list each, set"
	}
	a.total++
	if a.n == 0 {
		a.since = r.Time
		c.dirty = append(c.dirty, a)
	}
	a.n++
}

// hostOf is scheme://host of u (scheme://host/path).
func hostOf(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		if j := strings.IndexByte(u[i+3:], '/'); j >= 0 {
			return u[:i+3+j]
		}
	}
	return u
}

// CookieEvidence returns one event for each kind of cookie refusal that
// happened since the previous call (nil when none did): what the virtual
// users' browsers refused, the way a browser refuses it (see
// session.CookieRefusal). The runner calls it every second and once the
// load is over. Each event has
//
//   - Time: the second of the first of those refusals;
//   - Source "client", Signature "cookie-refused", Level "WARNING", Ref
//     "client:cookie-jar";
//   - Message: cookie "csrftoken" refused by stampede's cookie jar: Secure
//     cookie set over plain HTTP by http://django.test:8000/accounts/login/
//     (3 times);
//   - Fields: name (the cookie's name; never its value), attribute
//     ("Secure", "Domain=VALUE", "SameSite=None", "size", "__Secure-",
//     "__Host-"; "name", "value" or "line" for an unparsable line), reason
//     (secure-over-http, domain-mismatch, samesite-none-insecure,
//     too-large, prefix-violation, invalid), url (scheme://host/path of the
//     response that set it, no query), count (refusals since the previous
//     event of this kind), total (since the run started), endpoint (the
//     name of the step whose response, or a redirect on its way, set it).
//
// The texts are not masked: the caller masks them with the run's secrets.
func (e *Engine) CookieEvidence() []stampede.Evidence { return e.cookies.report() }

// report returns the events of the refusals since its previous call.
func (c *cookieRefusals) report() []stampede.Evidence {
	c.mu.Lock()
	if len(c.dirty) == 0 {
		c.mu.Unlock()
		return nil
	}
	type report struct {
		key      cookieKey
		detail   string
		n, total int64
		since    time.Time
	}
	rs := make([]report, len(c.dirty))
	for i, a := range c.dirty {
		rs[i] = report{a.key, a.detail, a.n, a.total, a.since}
		a.n = 0
	}
	c.dirty = c.dirty[:0]
	c.mu.Unlock()

	out := make([]stampede.Evidence, len(rs))
	for i, r := range rs {
		who := "a cookie"
		if r.key.name != "" {
			who = "cookie " + strconv.Quote(r.key.name)
		}
		times := "1 time"
		if r.n != 1 {
			times = strconv.FormatInt(r.n, 10) + " times"
		}
		f := map[string]string{
			"name":      r.key.name,
			"attribute": r.key.attribute,
			"reason":    r.key.reason,
			"url":       r.key.url,
			"count":     strconv.FormatInt(r.n, 10),
			"total":     strconv.FormatInt(r.total, 10),
		}
		if r.key.endpoint != "" {
			f["endpoint"] = r.key.endpoint
		}
		out[i] = stampede.Evidence{
			Time:      r.since.Truncate(time.Second),
			Source:    CookieSource,
			Signature: CookieSignature,
			Level:     "WARNING",
			Message:   fmt.Sprintf("%s refused by stampede's cookie jar: %s by %s (%s)", who, r.detail, r.key.url, times),
			Fields:    f,
			Ref:       CookieRef,
		}
	}
	return out
}
