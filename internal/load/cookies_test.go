package load

import (
	"fmt"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stampede-load/stampede/internal/session"
	"github.com/stampede-load/stampede/internal/testserver"
)

// TestCookieEvidenceSessionLost: the session cookie set Secure over plain
// HTTP on a name (not a loopback address) is refused by every user's
// browser; the engine counts each refusal once, under the login POST that
// set it, and says so in its evidence.
func TestCookieEvidenceSessionLost(t *testing.T) {
	srv := testserver.New("pw-ok")
	srv.SecureSession = true
	ts := httptest.NewServer(srv)
	defer ts.Close()
	target := strings.Replace(ts.URL, "127.0.0.1", "app.test", 1)
	p := loginScenario(t, target, "pw-ok")
	p.Hosts = session.Hosts{"app.test": "127.0.0.1"}
	e := New(p)
	collectWith(t, e)
	evs := e.CookieEvidence()
	if len(evs) == 0 {
		t.Fatal("no cookie evidence")
	}
	var count int64
	for _, ev := range evs {
		want := map[string]string{"name": "sessionid", "attribute": "Secure", "reason": "secure-over-http",
			"url": target + "/accounts/login/", "endpoint": "[AUTH] Login POST"}
		for k, v := range want {
			if ev.Fields[k] != v {
				t.Errorf("field %s = %q, want %q (%+v)", k, ev.Fields[k], v, ev)
			}
		}
		n, err := strconv.ParseInt(ev.Fields["count"], 10, 64)
		if err != nil || n < 1 {
			t.Errorf("count %q", ev.Fields["count"])
		}
		count += n
		wantMsg := fmt.Sprintf(`cookie "sessionid" refused by stampede's cookie jar: Secure cookie set over plain HTTP by %s/accounts/login/ (%d time`, target, n)
		if ev.Source != "client" || ev.Signature != "cookie-refused" || ev.Level != "WARNING" || ev.Ref != "client:cookie-jar" ||
			!strings.HasPrefix(ev.Message, wantMsg) || ev.Time.IsZero() || ev.Time.Nanosecond() != 0 {
			t.Errorf("event %+v, want message %q…", ev, wantMsg)
		}
	}
	// Each login the server accepted set the cookie once; the responses of
	// those cut off by the end of the run (at most one per user) never
	// reached a browser.
	if ok := srv.LoginOK.Load(); count > ok || ok-count > int64(p.Users) {
		t.Errorf("%d refusals counted, %d logins set the cookie (%d users)", count, ok, p.Users)
	}
	if evs := e.CookieEvidence(); evs != nil {
		t.Errorf("a second call without new refusals: %+v", evs)
	}
}

// TestCookieEvidenceLoopbackAccepted: the same server on the loopback
// address, a secure origin as in browsers: no refusal.
func TestCookieEvidenceLoopbackAccepted(t *testing.T) {
	srv := testserver.New("pw-ok")
	srv.SecureSession = true
	ts := httptest.NewServer(srv)
	defer ts.Close()
	e := New(loginScenario(t, ts.URL, "pw-ok"))
	collectWith(t, e)
	if srv.LoginOK.Load() == 0 {
		t.Fatal("no login")
	}
	if evs := e.CookieEvidence(); evs != nil {
		t.Errorf("cookie evidence on a loopback address: %+v", evs)
	}
}

func TestCookieAggregates(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 700e6, time.UTC)
	refusal := func(name, path string, at time.Duration) *session.CookieRefusal {
		return &session.CookieRefusal{Time: t0.Add(at), Name: name, Attribute: "Secure", Reason: session.RefusedSecureOverHTTP,
			URL: "http://app.test" + path, Detail: "Secure cookie set over plain HTTP"}
	}
	var c cookieRefusals
	for _, tc := range []struct {
		name string
		add  func()
		want []string // "name url endpoint count total time" per event
	}{
		{"none", func() {}, nil},
		{"two kinds", func() {
			c.add(refusal("csrftoken", "/login/", 0), "login page")
			c.add(refusal("csrftoken", "/login/", 100*time.Millisecond), "login page")
			c.add(refusal("csrftoken", "/login/", 200*time.Millisecond), "login")
			c.add(refusal("sessionid", "/login/", 900*time.Millisecond), "login")
		}, []string{
			"csrftoken http://app.test/login/ login page 2 2 12:00:00",
			"csrftoken http://app.test/login/ login 1 1 12:00:00",
			"sessionid http://app.test/login/ login 1 1 12:00:01",
		}},
		{"again", func() {
			c.add(refusal("sessionid", "/login/", 2*time.Second), "login")
		}, []string{"sessionid http://app.test/login/ login 1 2 12:00:02"}},
	} {
		tc.add()
		var got []string
		for _, ev := range c.report() {
			got = append(got, fmt.Sprintf("%s %s %s %s %s %s", ev.Fields["name"], ev.Fields["url"], ev.Fields["endpoint"],
				ev.Fields["count"], ev.Fields["total"], ev.Time.UTC().Format("15:04:05")))
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestCookieAggregatesBounded: a server that sets a cookie on a new path,
// then of a new name, with every response cannot grow the aggregates past
// their bound, and no refusal goes uncounted.
func TestCookieAggregatesBounded(t *testing.T) {
	var c cookieRefusals
	const n = 10 * maxCookieAggregates
	for i := range n {
		c.add(&session.CookieRefusal{Time: time.Now(), Name: "c" + strconv.Itoa(i), Attribute: "Secure",
			Reason: session.RefusedSecureOverHTTP, URL: "http://app.test/u/" + strconv.Itoa(i) + "/"}, "step")
	}
	if len(c.aggs) > maxCookieAggregates*5/4+1 {
		t.Errorf("%d aggregates for %d refusals, bound %d", len(c.aggs), n, maxCookieAggregates*5/4+1)
	}
	var total int
	for _, ev := range c.report() {
		k, _ := strconv.Atoi(ev.Fields["count"])
		total += k
		if _, err := url.Parse(ev.Fields["url"]); err != nil && ev.Fields["url"] != "…" {
			t.Errorf("url %q: %v", ev.Fields["url"], err)
		}
	}
	if total != n {
		t.Errorf("%d refusals reported, want %d", total, n)
	}
}
