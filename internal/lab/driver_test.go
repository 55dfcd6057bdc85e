package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// This file is a small load driver for the tests: virtual users with their
// own cookie jars, logging in like a browser and browsing by weight.

// testConfig is a small, fast lab for tests.
func testConfig(t *testing.T) Config {
	t.Helper()
	return Config{LogDir: t.TempDir(), Users: 50, Items: 200, RowsPerItem: 20, PBKDF2Iterations: 1000, ExportHold: 300 * time.Millisecond}
}

// startLab serves a lab on a real loopback listener.
func startLab(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln := listen(t)
	sctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(sctx, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		s.Close()
	})
	return s, "http://" + ln.Addr().String()
}

type vu struct {
	c      *http.Client
	base   string
	header http.Header // added to every request
}

func newVU(base string) *vu {
	jar, _ := cookiejar.New(nil)
	return &vu{base: base, c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		Transport:     &http.Transport{MaxIdleConnsPerHost: 2},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// newVUByName reaches the lab at base through the host name "ahsp.lab.test"
// instead of its loopback address: browsers and Go's cookie jar treat
// loopback HTTP as a secure origin, so Secure cookies are dropped only for
// a named (or non-loopback) plain-HTTP target, as in the deployments the
// cookie knobs mirror.
func newVUByName(base string) *vu {
	u, _ := url.Parse(base)
	addr := u.Host
	v := newVU("http://ahsp.lab.test:" + u.Port())
	d := &net.Dialer{}
	v.c.Transport = &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}}
	return v
}

type result struct {
	name   string
	status int
	dur    time.Duration
	body   string
	loc    string
	err    error
	at     time.Time
}

var tokenRE = regexp.MustCompile(`name="csrfmiddlewaretoken" value="([^"]+)"`)

func (v *vu) do(name, method, path string, form url.Values) result {
	start := time.Now()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(context.Background(), method, v.base+path, body)
	if err != nil {
		return result{name: name, err: err, at: start}
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, vs := range v.header {
		req.Header[k] = vs
	}
	resp, err := v.c.Do(req)
	if err != nil {
		return result{name: name, err: err, dur: time.Since(start), at: start}
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return result{name: name, status: resp.StatusCode, dur: time.Since(start), body: string(b), loc: resp.Header.Get("Location"), at: start}
}

// login does the login GET then POST; the POST's result is returned.
func (v *vu) login(user, password string) result {
	g := v.do("login GET", "GET", "/accounts/login/", nil)
	if g.err != nil || g.status != 200 {
		g.name = "login POST"
		return g
	}
	m := tokenRE.FindStringSubmatch(g.body)
	if m == nil {
		return result{name: "login POST", err: errors.New("no csrf token in the login page")}
	}
	return v.do("login POST", "POST", "/accounts/login/", url.Values{"csrfmiddlewaretoken": {m[1]}, "login": {user}, "password": {password}})
}

// loginOK tells whether a login POST result is a real success.
func loginOK(r result) bool { return r.err == nil && r.status == 302 && r.loc == "/dashboard/" }

func rateLimitedPage(r result) bool {
	return r.status == 200 && strings.Contains(r.body, `<ul class="errorlist nonfield"><li>Too many failed login attempts. Try again later.</li></ul>`)
}

type task struct {
	weight int
	path   func(rng *rand.Rand) string
}

// scenario mirrors the seed's locustfile: log in, then browse by weight.
var seedTasks = []task{
	{5, func(*rand.Rand) string { return "/dashboard/" }},
	{3, func(*rand.Rand) string { return "/pekerjaan/" }},
	{3, func(r *rand.Rand) string { return fmt.Sprintf("/rincian-ahsp/%d/", r.IntN(200)+1) }},
	{2, func(*rand.Rand) string { return "/rekap-rab/" }},
	{2, func(*rand.Rand) string { return "/audit-trail/" }},
	{1, func(*rand.Rand) string { return "/export/" }},
}

type load struct {
	users     int
	spawnRate float64
	duration  time.Duration // from the first spawn
	think     [2]time.Duration
	tasks     []task
	userName  func(i int) (string, string)
}

type collector struct {
	mu  sync.Mutex
	res []result
}

func (c *collector) add(r result) {
	c.mu.Lock()
	c.res = append(c.res, r)
	c.mu.Unlock()
}

func (c *collector) named(name string) []result {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []result
	for _, r := range c.res {
		if r.name == name {
			out = append(out, r)
		}
	}
	return out
}

func run(base string, l load) *collector {
	c := &collector{}
	deadline := time.Now().Add(l.duration)
	var wg sync.WaitGroup
	total := 0
	for _, tk := range l.tasks {
		total += tk.weight
	}
	for i := 1; i <= l.users; i++ {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			v := newVU(base)
			u, p := seedUser(i)
			if l.userName != nil {
				u, p = l.userName(i)
			}
			c.add(v.login(u, p))
			for len(l.tasks) > 0 && time.Now().Before(deadline) {
				think := l.think[0]
				if l.think[1] > l.think[0] {
					think += time.Duration(rng.Int64N(int64(l.think[1] - l.think[0])))
				}
				time.Sleep(think)
				if !time.Now().Before(deadline) {
					break
				}
				n := rng.IntN(total)
				for _, tk := range l.tasks {
					if n < tk.weight {
						path := tk.path(rng)
						r := v.do("GET "+path, "GET", path, nil)
						r.name = "browse"
						c.add(r)
						break
					}
					n -= tk.weight
				}
			}
		})
		if l.spawnRate > 0 && i < l.users {
			time.Sleep(time.Duration(float64(time.Second) / l.spawnRate))
		}
	}
	wg.Wait()
	return c
}

func count(rs []result, f func(result) bool) int {
	n := 0
	for _, r := range rs {
		if f(r) {
			n++
		}
	}
	return n
}

func p95(rs []result) time.Duration { return percentile(rs, 95) }

func percentile(rs []result, p int) time.Duration {
	if len(rs) == 0 {
		return 0
	}
	d := make([]time.Duration, len(rs))
	for i, r := range rs {
		d[i] = r.dur
	}
	slices.Sort(d)
	return d[(len(d)*p+99)/100-1]
}

func status5xx(r result) bool { return r.status >= 500 }

func readLog(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return string(b)
}

func statusHistogram(rs []result) map[int]int {
	h := map[int]int{}
	for _, r := range rs {
		h[r.status]++
	}
	return h
}
