package lab

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// loggedIn returns n virtual users logged in as user0001..user000n.
func loggedIn(t *testing.T, base string, n int) []*vu {
	t.Helper()
	vus := make([]*vu, n)
	for i := range vus {
		vus[i] = newVU(base)
		u, p := seedUser(i + 1)
		if r := vus[i].login(u, p); !loginOK(r) {
			t.Fatalf("login %s: %d %v %.200s", u, r.status, r.err, r.body)
		}
	}
	return vus
}

// all runs f for every virtual user at once and collects the results.
func all(vus []*vu, f func(i int, v *vu) result) []result {
	out := make([]result, len(vus))
	var wg sync.WaitGroup
	for i, v := range vus {
		wg.Go(func() { out[i] = f(i, v) })
	}
	wg.Wait()
	return out
}

// processCPU returns the user and system CPU time this process has used.
func processCPU(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func get(path string) func(int, *vu) result {
	return func(_ int, v *vu) result { return v.do("GET "+path, "GET", path, nil) }
}

func TestLoginSecurity(t *testing.T) {
	cfg := testConfig(t)
	_, base := startLab(t, cfg)
	v := newVU(base)

	r := v.do("dash", "GET", "/dashboard/", nil)
	if r.status != 302 || r.loc != "/accounts/login/?next=/dashboard/" {
		t.Errorf("anonymous /dashboard/: %d %q, want 302 to the login page with next", r.status, r.loc)
	}
	u, p := seedUser(3)
	for _, bad := range [][2]string{{u, "salah"}, {"nobody", p}} {
		r = v.login(bad[0], bad[1])
		if r.status != 200 || !strings.Contains(r.body, `<ul class="errorlist nonfield"><li>The username and/or password you specified are not correct.</li></ul>`) {
			t.Errorf("login %s/%s: %d %.300s, want the form with allauth's mismatch error", bad[0], bad[1], r.status, r.body)
		}
	}
	// A session cookie from before the login must not survive it (cycle_key).
	base1, _ := url.Parse(base)
	v.c.Jar.SetCookies(base1, []*http.Cookie{{Name: "sessionid", Value: "fixatedsessionkey0000000000000000"}})
	r = v.login(u, p)
	if !loginOK(r) {
		t.Fatalf("login: %d %v", r.status, r.err)
	}
	var sid string
	for _, c := range v.c.Jar.Cookies(base1) {
		if c.Name == "sessionid" {
			sid = c.Value
		}
	}
	if sid == "" || sid == "fixatedsessionkey0000000000000000" {
		t.Errorf("session key not rotated at login: %q", sid)
	}
	if r = v.do("dash", "GET", "/dashboard/", nil); r.status != 200 || !strings.Contains(r.body, "Jumlah pekerjaan") {
		t.Errorf("/dashboard/ after login: %d", r.status)
	}
	// Logout needs the CSRF token and ends the session.
	tok := tokenRE.FindStringSubmatch(r.body)
	if r = v.do("logout", "POST", "/accounts/logout/", url.Values{"csrfmiddlewaretoken": {tok[1]}}); r.status != 302 {
		t.Errorf("logout: %d", r.status)
	}
	if r = v.do("dash", "GET", "/dashboard/", nil); r.status != 302 {
		t.Errorf("/dashboard/ after logout: %d, want 302", r.status)
	}
	// A POST without the CSRF cookie is refused as Django does.
	r = newVU(base).do("login POST", "POST", "/accounts/login/", url.Values{"login": {u}, "password": {p}})
	if r.status != 403 || !strings.Contains(r.body, "CSRF verification failed. Request aborted.") {
		t.Errorf("POST without cookie: %d %.200s", r.status, r.body)
	}
	errs := readLog(t, cfg.LogDir, ErrorsLog)
	if !strings.Contains(errs, "WARNING django.security.csrf Forbidden (CSRF cookie not set.): /accounts/login/") {
		t.Errorf("errors.log lacks Django's CSRF warning:\n%s", errs)
	}
	// No password or session key in any log.
	for _, name := range []string{AccessLog, AuthDebugLog, ErrorsLog, GunicornLog} {
		l := readLog(t, cfg.LogDir, name)
		if strings.Contains(l, p) || strings.Contains(l, sid) {
			t.Errorf("%s leaks a password or session key", name)
		}
	}
	auth := readLog(t, cfg.LogDir, AuthDebugLog)
	if !strings.Contains(auth, "INFO auth_request method=POST path=/accounts/login/ status=302 user="+u+" csrf_cookie=True csrf_header=False session=None") {
		t.Errorf("auth_debug.log lacks the login line:\n%s", auth)
	}
	access := readLog(t, cfg.LogDir, AccessLog)
	if !strings.Contains(access, `"POST /accounts/login/ HTTP/1.1" 302 0 "-" "Go-http-client/1.1"`) {
		t.Errorf("access.log lacks the login line:\n%s", access)
	}
}

// The pool knob: too few servers and a short query_wait_timeout make
// requests fail with PgBouncer's error while /export/ holds connections.
func TestPoolQueryWaitTimeoutUnderLoad(t *testing.T) {
	for _, tc := range []struct {
		name      string
		pool      int
		want500At int // at least this many 500s out of 16
	}{{"pool 2, wait 300ms", 2, 8}, {"unlimited", 0, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.PoolSize, cfg.QueryWaitTimeout, cfg.ExportHold = tc.pool, 300*time.Millisecond, time.Second
			_, base := startLab(t, cfg)
			res := all(loggedIn(t, base, 16), get("/export/"))
			n := count(res, status5xx)
			t.Logf("16 concurrent /export/: statuses %v", statusHistogram(res))
			if tc.want500At == 0 {
				if n != 0 {
					t.Fatalf("%d 500s with an unlimited pool", n)
				}
				return
			}
			if n < tc.want500At {
				t.Fatalf("%d 500s, want at least %d", n, tc.want500At)
			}
			errs := readLog(t, cfg.LogDir, ErrorsLog)
			for _, want := range []string{"ERROR django.request Internal Server Error: /export/", "Traceback (most recent call last):",
				"lab.ServerError: FATAL: query_wait_timeout (SQLSTATE 08P01)"} {
				if !strings.Contains(errs, want) {
					t.Errorf("errors.log lacks %q:\n%.2000s", want, errs)
				}
			}
			pgb := readLog(t, cfg.LogDir, PgBouncerLog)
			for _, want := range []string{"LOG C-0x", "closing because: query_wait_timeout (age=0s)", "WARNING C-0x", "pooler error: query_wait_timeout"} {
				if !strings.Contains(pgb, want) {
					t.Errorf("pgbouncer.log lacks %q:\n%.1000s", want, pgb)
				}
			}
		})
	}
}

// The reserve knob: clients that waited reserve_pool_timeout get reserve servers.
func TestPoolReserveUnderLoad(t *testing.T) {
	cfg := testConfig(t)
	cfg.PoolSize, cfg.ReservePoolSize, cfg.ReservePoolTimeout = 2, 6, 100*time.Millisecond
	cfg.QueryWaitTimeout, cfg.ExportHold = 600*time.Millisecond, time.Second
	_, base := startLab(t, cfg)
	res := all(loggedIn(t, base, 8), get("/export/"))
	if n := count(res, status5xx); n != 0 {
		t.Fatalf("%d 500s with 2+6 servers for 8 clients: %v", n, statusHistogram(res))
	}
}

func TestPoolMaxClientConnUnderLoad(t *testing.T) {
	cfg := testConfig(t)
	cfg.PoolSize, cfg.MaxClientConn, cfg.ExportHold = 2, 4, 500*time.Millisecond
	_, base := startLab(t, cfg)
	res := all(loggedIn(t, base, 12), get("/export/"))
	if n := count(res, status5xx); n < 6 {
		t.Fatalf("%d 500s, want at least 6: %v", n, statusHistogram(res))
	}
	if errs := readLog(t, cfg.LogDir, ErrorsLog); !strings.Contains(errs, "FATAL: no more connections allowed (max_client_conn) (SQLSTATE 08P01)") {
		t.Errorf("errors.log lacks max_client_conn:\n%.1500s", errs)
	}
}

// allauth's "login" rate: every login POST per IP counts, success or not.
func TestLoginRateLimitPerIP(t *testing.T) {
	for _, tc := range []struct {
		name    string
		resp    int
		proxy   int
		limited int
	}{{"form error", 200, 0, 7}, {"429", 429, 0, 7}, {"trusted proxy, distinct clients", 200, 1, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.RateLimitLogin, cfg.RateLimitResponse, cfg.TrustedProxyCount = "5/m/ip", tc.resp, tc.proxy
			s, base := startLab(t, cfg)
			vus := make([]*vu, 12)
			for i := range vus {
				vus[i] = newVU(base)
				vus[i].header = http.Header{"X-Forwarded-For": {fmt.Sprintf("10.0.0.%d", i+1)}}
			}
			res := all(vus, func(i int, v *vu) result { u, p := seedUser(i + 1); return v.login(u, p) })
			var limited int
			if tc.resp == 429 {
				limited = count(res, func(r result) bool {
					return r.status == 429 && strings.Contains(r.body, "<h1>429 Too Many Requests</h1>")
				})
			} else {
				limited = count(res, rateLimitedPage)
			}
			if limited != tc.limited || count(res, loginOK) != 12-tc.limited {
				t.Errorf("12 logins from one IP at 5/m/ip: %d limited, %d ok; want %d limited: %v", limited, count(res, loginOK), tc.limited, statusHistogram(res))
			}
			_ = s
		})
	}
}

// allauth's "login_failed" per-key rate is charged before the password is
// checked: concurrent logins to one account with the right password trip it
// while hashes are in flight; after success the charge is rolled back, so
// sequential successful logins never trip it.
func TestLoginFailedChargedBeforePasswordCheck(t *testing.T) {
	cfg := testConfig(t)
	cfg.RateLimitLoginFailed = "5/300s/key"
	cfg.PBKDF2Iterations = 300000
	if raceEnabled {
		cfg.PBKDF2Iterations = 60000
	}
	_, base := startLab(t, cfg)
	u, p := seedUser(1)
	vus := make([]*vu, 12)
	for i := range vus {
		vus[i] = newVU(base)
	}
	res := all(vus, func(_ int, v *vu) result { return v.login(u, p) })
	limited := count(res, rateLimitedPage)
	t.Logf("12 concurrent correct logins to one account: %d ok, %d rate-limited", count(res, loginOK), limited)
	if limited == 0 {
		t.Errorf("no login rate-limited though 12 attempts were in flight for one key (limit 5)")
	}
	for i := range 8 {
		if r := newVU(base).login(u, p); !loginOK(r) {
			t.Fatalf("sequential correct login %d failed: %d %.200s", i+1, r.status, r.body)
		}
	}
	// Wrong passwords are not rolled back: the sixth is refused.
	v := newVU(base)
	u2, _ := seedUser(2)
	var last result
	for range 6 {
		last = v.login(u2, "salah")
	}
	if !rateLimitedPage(last) {
		t.Errorf("sixth wrong password: %d %.300s, want the rate-limit form error", last.status, last.body)
	}
}

// The hasher knob: the work of a login follows the work factor, and
// argon2id works. The work is the CPU time the process spent on 16
// concurrent logins (the lab and its clients run in this process), which a
// busy machine delays but does not grow, unlike their latency.
func TestPasswordHashCostUnderLoad(t *testing.T) {
	heavy := 200000
	if raceEnabled {
		heavy = 40000
	}
	cpuAt := map[int]time.Duration{}
	for _, iter := range []int{1000, heavy} {
		cfg := testConfig(t)
		cfg.PBKDF2Iterations, cfg.Users = iter, 16
		_, base := startLab(t, cfg)
		vus := make([]*vu, 16)
		for i := range vus {
			vus[i] = newVU(base)
		}
		before := processCPU(t)
		res := all(vus, func(i int, v *vu) result { u, p := seedUser(i + 1); return v.login(u, p) })
		cpuAt[iter] = (processCPU(t) - before) / 16
		if n := count(res, loginOK); n != 16 {
			t.Fatalf("%d iterations: %d/16 logins ok", iter, n)
		}
	}
	// What the extra iterations cost when this process hashes one password
	// itself: a login must cost at least half of that more, unless the
	// knob stopped reaching the hasher (the rest of a login, the same at
	// both work factors, cancels out).
	hashCPU := func(iter int) time.Duration {
		const n = 4
		before := processCPU(t)
		for range n {
			if _, err := pbkdf2Encode("s3cret-password", salt(), iter); err != nil {
				t.Fatal(err)
			}
		}
		return (processCPU(t) - before) / n
	}
	extra, want := cpuAt[heavy]-cpuAt[1000], hashCPU(heavy)-hashCPU(1000)
	t.Logf("16 concurrent logins: %v of CPU a login at 1000 iterations, %v at %d; one hash costs %v more at %d",
		cpuAt[1000], cpuAt[heavy], heavy, want, heavy)
	if extra < want/2 {
		t.Errorf("login CPU time did not follow the hash cost: a login costs %v more at %d iterations than at 1000, a hash %v more",
			extra, heavy, want)
	}

	cfg := testConfig(t)
	cfg.Hasher, cfg.Argon2Time, cfg.Argon2MemoryKiB, cfg.Argon2Parallelism = HasherArgon2, 1, 4096, 2
	_, base := startLab(t, cfg)
	u, p := seedUser(5)
	if r := newVU(base).login(u, p); !loginOK(r) {
		t.Errorf("argon2id login: %d %.200s", r.status, r.body)
	}
}

// The hot-row knob: each login holds site_counter row 1; with a lock
// timeout, concurrent logins fail with PostgreSQL's lock_timeout error.
func TestHotRowLockUnderLoad(t *testing.T) {
	cfg := testConfig(t)
	cfg.HotRowHold, cfg.LockTimeout = 400*time.Millisecond, 250*time.Millisecond
	_, base := startLab(t, cfg)
	vus := make([]*vu, 6)
	for i := range vus {
		vus[i] = newVU(base)
	}
	res := all(vus, func(i int, v *vu) result { u, p := seedUser(i + 1); return v.login(u, p) })
	n := count(res, status5xx)
	t.Logf("6 concurrent logins, row held 400ms, lock_timeout 250ms: %v", statusHistogram(res))
	if n < 3 {
		t.Fatalf("%d 500s, want at least 3", n)
	}
	if errs := readLog(t, cfg.LogDir, ErrorsLog); !strings.Contains(errs, "ERROR: canceling statement due to lock timeout (SQLSTATE 55P03)") {
		t.Errorf("errors.log lacks the lock timeout:\n%.1500s", errs)
	}
}

// The worker knobs: gunicorn's timeout kills slow requests (502 and
// WORKER TIMEOUT), queued requests time out at the proxy (504), and a full
// backlog drops connections.
func TestWorkersUnderLoad(t *testing.T) {
	t.Run("worker timeout", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.Workers, cfg.WorkerTimeout, cfg.ExportHold = 4, 400*time.Millisecond, time.Second
		_, base := startLab(t, cfg)
		res := all(loggedIn(t, base, 4), get("/export/"))
		if n := count(res, func(r result) bool { return r.status == 502 }); n != 4 {
			t.Errorf("%d 502s, want 4: %v", n, statusHistogram(res))
		}
		g := readLog(t, cfg.LogDir, GunicornLog)
		for _, want := range []string{"[CRITICAL] WORKER TIMEOUT (pid:", "[INFO] Worker exiting (pid:", "[INFO] Booting worker with pid:"} {
			if !strings.Contains(g, want) {
				t.Errorf("gunicorn.log lacks %q:\n%s", want, g)
			}
		}
	})
	t.Run("queue timeout", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.Workers, cfg.WorkerQueueTimeout, cfg.ExportHold = 1, 300*time.Millisecond, time.Second
		_, base := startLab(t, cfg)
		res := all(loggedIn(t, base, 4), get("/export/"))
		if n := count(res, func(r result) bool { return r.status == 504 }); n != 3 {
			t.Errorf("%d 504s, want 3: %v", n, statusHistogram(res))
		}
	})
	t.Run("backlog", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.Workers, cfg.Backlog, cfg.ExportHold = 1, 1, 500*time.Millisecond
		_, base := startLab(t, cfg)
		res := all(loggedIn(t, base, 6), get("/export/"))
		if n := count(res, func(r result) bool { return r.err != nil }); n < 3 {
			t.Errorf("%d dropped connections, want at least 3: %v", n, statusHistogram(res))
		}
	})
}

// The missing-index knob: /rincian-ahsp/ scans the whole table.
func TestMissingIndexUnderLoad(t *testing.T) {
	median := map[bool]time.Duration{}
	rows := 250 // per item: 100000 rows
	if raceEnabled {
		rows = 150 // the instrumented SQLite scans about ten times slower
	}
	for _, missing := range []bool{false, true} {
		cfg := testConfig(t)
		cfg.Items, cfg.RowsPerItem, cfg.MissingIndex = 400, rows, missing
		_, base := startLab(t, cfg)
		vus := loggedIn(t, base, 4)
		var all4 []result
		for round := range 5 {
			res := all(vus, func(i int, v *vu) result {
				p := fmt.Sprintf("/rincian-ahsp/%d/", (round*4+i)%400+1)
				return v.do("GET", "GET", p, nil)
			})
			for _, r := range res {
				if r.status != 200 {
					t.Fatalf("rincian: %d", r.status)
				}
			}
			all4 = append(all4, res...)
		}
		median[missing] = percentile(all4, 50)
	}
	t.Logf("/rincian-ahsp/ median at concurrency 4 over %d rows: %v indexed, %v without the index", 400*rows, median[false], median[true])
	if median[true] < 2*median[false] {
		t.Errorf("missing index not slower enough: %v vs %v", median[true], median[false])
	}
}

// The cookie knobs: Secure cookies over plain HTTP are dropped by the
// client, giving CSRF failures or a login forgotten on the next page.
func TestSecureCookiesOverHTTP(t *testing.T) {
	t.Run("csrf cookie", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.CSRFCookieSecure = true
		_, base := startLab(t, cfg)
		u, p := seedUser(1)
		r := newVUByName(base).login(u, p)
		if r.status != 403 {
			t.Errorf("login with a Secure csrftoken over HTTP: %d, want 403", r.status)
		}
		if errs := readLog(t, cfg.LogDir, ErrorsLog); !strings.Contains(errs, "Forbidden (CSRF cookie not set.): /accounts/login/") {
			t.Errorf("errors.log:\n%s", errs)
		}
	})
	t.Run("session cookie", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.SessionCookieSecure = true
		_, base := startLab(t, cfg)
		u, p := seedUser(1)
		v := newVUByName(base)
		if r := v.login(u, p); !loginOK(r) {
			t.Fatalf("login: %d", r.status)
		}
		if r := v.do("dash", "GET", "/dashboard/", nil); r.status != 302 || !strings.HasPrefix(r.loc, "/accounts/login/") {
			t.Errorf("/dashboard/ after login with a Secure sessionid over HTTP: %d %q, want 302 to login", r.status, r.loc)
		}
	})
}
