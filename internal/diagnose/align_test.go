package diagnose

import (
	"strings"
	"testing"
	"time"

	"github.com/stampede-load/stampede"
)

// A proxy's rate limit on the login answers 503: nginx's limit_req logs a
// "limiting requests" line for each request it refuses, on POST /login, in
// the same seconds as the client's 503s, while the host's CPU is busy. The
// failures are the throttle's — live (with the host probe) and from a
// recording — not the CPU's and not unexplained.
func TestProxyRateLimit503(t *testing.T) {
	s := newSim(40 * time.Second)
	s.reqs(0, 40, 4, "GET", "[AUTH] Login GET", constLat(ms(20)), nil)
	s.reqs(0, 40, 4, "POST", "[AUTH] Login POST", constLat(ms(60)), func(sec int) (int, stampede.Outcome, string) {
		if sec >= 10 && sec%2 == 0 {
			return 503, stampede.FailStatus, "HTTP 503 (503 Service Temporarily Unavailable)"
		}
		return 0, stampede.OK, ""
	})
	s.reqs(0, 40, 4, "GET", "GET /dashboard/", constLat(ms(25)), nil)
	for sec := 10; sec < 40; sec += 2 {
		for k := 0; k < 4; k++ {
			s.event(float64(sec)+0.1*float64(k), "nginx-error", "login-rate-limit",
				`*12 limiting requests, excess: 0.520 by zone "login", client: 127.0.0.1, server: _, request: "POST /login HTTP/1.1", host: "127.0.0.1:8080"`,
				map[string]string{"method": "POST", "path": "/login", "client": "127.0.0.1"})
		}
	}
	for sec := 0; sec < 42; sec++ {
		s.sample(sec, "host", map[string]float64{"cores": 2, "cpu_busy_pct": 96, "proc_cpu_pct": 190, "load1": 3}, nil, "")
	}
	for _, in := range []*Input{s.input(), s.locustInput()} {
		d := Diagnose(in)
		t.Log(describe(d))
		if len(d.Findings) == 0 || d.Findings[0].ID != IDLoginRateLimit || d.Findings[0].Status != stampede.Confirmed {
			t.Fatalf("%s: want login-rate-limit confirmed on top; got %s", in.Run, describe(d))
		}
		top := d.Findings[0]
		if top.Explains.Failures != 60 {
			t.Errorf("%s: login-rate-limit explains %d failures, want the 60 503s", in.Run, top.Explains.Failures)
		}
		if !strings.Contains(top.Title, "503") {
			t.Errorf("%s: the title should say the throttle answered 503: %q", in.Run, top.Title)
		}
		if !strings.Contains(top.Fix, "limit_req") || strings.Contains(top.Fix, "ACCOUNT_RATE_LIMITS") {
			t.Errorf("%s: the fix should name nginx's limit_req, not allauth's settings: %q", in.Run, top.Fix)
		}
		for _, f := range d.Findings[1:] {
			if f.Explains.Failures > 0 {
				t.Errorf("%s: %s claims failures the throttle explains: %s", in.Run, f.ID, describe(d))
			}
		}
	}
}

// Unrelated log lines on another path, or far fewer than the failures, do
// not take the failures.
func TestAlignNeedsSameEndpointAndCounts(t *testing.T) {
	s := newSim(40 * time.Second)
	s.reqs(0, 40, 4, "POST", "[AUTH] Login POST", constLat(ms(60)), func(sec int) (int, stampede.Outcome, string) {
		if sec >= 10 {
			return 503, stampede.FailStatus, "HTTP 503"
		}
		return 0, stampede.OK, ""
	})
	s.reqs(0, 40, 2, "GET", "GET /api/items", constLat(ms(30)), nil)
	for sec := 10; sec < 40; sec += 2 {
		s.event(float64(sec), "nginx-error", "login-rate-limit", `limiting requests, excess: 1.000 by zone "api", client: 127.0.0.1, request: "GET /api/items HTTP/1.1"`,
			map[string]string{"method": "GET", "path": "/api/items"})
	}
	s.event(20, "nginx-error", "login-rate-limit", `limiting requests, excess: 1.000 by zone "login", client: 127.0.0.1, request: "POST /login HTTP/1.1"`,
		map[string]string{"method": "POST", "path": "/login"})
	c := newCtx(s.input())
	login := c.failing(func(g *group) bool { return g.ep.login })
	evs := c.eventsOf(IDLoginRateLimit, nil)
	if got := c.alignedGroups(evs, login); len(got) != 0 {
		t.Errorf("120 login 503s taken by one login line and lines on another path: %v", got)
	}
}
