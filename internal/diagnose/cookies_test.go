package diagnose

import (
	"strings"
	"testing"
	"time"

	"github.com/stampede-load/stampede"
)

// cookieRefused adds the client's cookie-refused evidence, as the engine
// writes it once a second.
func (s *sim) cookieRefused(sec float64, name, url, endpoint string, count int) {
	s.ev = append(s.ev, stampede.Evidence{Time: s.at(sec), Source: "client", Signature: "cookie-refused", Level: "WARNING",
		Message: `cookie "` + name + `" refused by stampede's cookie jar: Secure cookie set over plain HTTP by ` + url,
		Fields:  map[string]string{"name": name, "attribute": "Secure", "reason": "secure-over-http", "url": url, "endpoint": endpoint, "count": "4"},
		Ref:     "client:cookie-jar"})
}

// A session cookie marked Secure over plain HTTP at a named host: the
// client drops it, so the login's CSRF token (kept in the session) cannot
// be verified and the server answers its CSRF status — 422 from Rails, 400
// from a Flask app — with no CSRF words the rule knew, or with them. The
// finding names the cookie and the attribute, from the client itself.
func TestCSRFFromRefusedCookie(t *testing.T) {
	for _, tc := range []struct {
		status            int
		reason, framework string
	}{
		{422, "HTTP 422 (The change you wanted was rejected (422))", "rails"},
		{400, "HTTP 400 (Bad Request)", ""},
		{403, "HTTP 403 (CSRF verification failed. Request aborted.)", "django"},
	} {
		s := newSim(30 * time.Second)
		s.reqs(0, 30, 4, "GET", "[AUTH] Login GET", constLat(ms(15)), nil)
		s.reqs(0, 30, 4, "POST", "[AUTH] Login POST", constLat(ms(20)), func(int) (int, stampede.Outcome, string) {
			return tc.status, stampede.FailStatus, tc.reason
		})
		for sec := 0; sec < 30; sec++ {
			s.cookieRefused(float64(sec), "_app_session", "http://app.test:3000/users/sign_in", "[AUTH] Login GET", 4)
		}
		d := Diagnose(s.input())
		t.Log(describe(d))
		if len(d.Findings) == 0 || d.Findings[0].ID != IDCSRFFailure || d.Findings[0].Status != stampede.Confirmed {
			t.Fatalf("HTTP %d: want csrf-failure confirmed on top; got %s", tc.status, describe(d))
		}
		top := d.Findings[0]
		if !strings.Contains(top.Title, `"_app_session"`) || !strings.Contains(top.Title, "Secure cookie set over plain HTTP") {
			t.Errorf("HTTP %d: the title should name the cookie and the attribute: %q", tc.status, top.Title)
		}
		if !hasEvidence(&top, `the client itself: stampede's cookie jar refused the cookie "_app_session"`) {
			t.Errorf("HTTP %d: no evidence from the client: %+v", tc.status, top.Evidence)
		}
		if top.Explains.Failures != 120 {
			t.Errorf("HTTP %d: explains %d failures, want 120", tc.status, top.Explains.Failures)
		}
		if !strings.Contains(top.Fix, "HTTPS") {
			t.Errorf("HTTP %d: the fix should say to load over HTTPS or drop Secure: %q", tc.status, top.Fix)
		}
	}
}

// The session cookie set by the login's answer is refused: every page
// after the login goes back to the login page; the finding says which
// cookie the client dropped and why.
func TestSessionLostFromRefusedCookie(t *testing.T) {
	s := newSim(30 * time.Second)
	s.reqs(0, 30, 4, "POST", "[AUTH] Login POST", constLat(ms(20)), nil)
	s.reqs(0, 30, 4, "GET", "GET /dashboard/", constLat(ms(15)), func(int) (int, stampede.Outcome, string) {
		return 302, stampede.FailContent, "redirected to login page: session lost"
	})
	for sec := 0; sec < 30; sec++ {
		s.cookieRefused(float64(sec), "sessionid", "http://django.test:8000/accounts/login/", "[AUTH] Login POST", 4)
	}
	d := Diagnose(s.input())
	t.Log(describe(d))
	f := findingOf(d, IDSessionLost)
	if f == nil || f.Status != stampede.Confirmed || !strings.Contains(f.Title, `"sessionid"`) {
		t.Fatalf("want session-lost naming the cookie; got %s (%+v)", describe(d), f)
	}
}
