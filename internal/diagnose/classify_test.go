package diagnose

import (
	"testing"
	"time"

	"github.com/stampede-load/stampede"
)

func TestStatusOf(t *testing.T) {
	for _, tt := range []struct {
		reason string
		want   int
	}{
		{"HTTP 500", 500},
		{"CatchResponseError('login POST HTTP 500')", 500},
		{"HTTPError('500 Server Error: Internal Server Error for url: http://127.0.0.1:8000/rekap/')", 500},
		{"login server error: 500", 500},
		{"HTTP 429", 429},
		{"ConnectionRefusedError(111, 'Connection refused')", 0},
		{"dial tcp 127.0.0.1:8000: connect: connection refused", 0},
		{"login page returned: Too many failed login attempts. Try again later.", 0},
		{"status 5000", 0},
	} {
		if got := statusOf(tt.reason); got != tt.want {
			t.Errorf("statusOf(%q) = %d, want %d", tt.reason, got, tt.want)
		}
	}
}

func TestClassify(t *testing.T) {
	for _, tt := range []struct {
		g         FailureGroup
		class     string
		throttle  bool
		loginPage bool
		message   string
	}{
		{FailureGroup{Reason: "CatchResponseError('login POST HTTP 500')"}, Class5xx, false, false, ""},
		{FailureGroup{Reason: "HTTP 429", Status: 429, Outcome: stampede.FailStatus}, Class429, true, false, ""},
		{FailureGroup{Reason: "login page returned: Too many failed login attempts. Try again later.", Status: 200, Outcome: stampede.FailContent},
			ClassContent, true, true, "Too many failed login attempts. Try again later."},
		{FailureGroup{Reason: "CatchResponseError('login page returned: Terlalu banyak percobaan masuk yang gagal. Coba lagi nanti.')"},
			ClassContent, true, true, "Terlalu banyak percobaan masuk yang gagal. Coba lagi nanti."},
		{FailureGroup{Reason: "ConnectionRefusedError(111, 'Connection refused')"}, ClassTransport, false, false, ""},
		{FailureGroup{Reason: "RemoteDisconnected('Remote end closed connection without response')"}, ClassTransport, false, false, ""},
		{FailureGroup{Reason: "ReadTimeout(\"HTTPConnectionPool(host='127.0.0.1', port=8000): Read timed out. (read timeout=30)\")"}, ClassTimeout, false, false, ""},
		{FailureGroup{Reason: "redirected to login page: /accounts/login/?next=/dashboard/", Outcome: stampede.FailContent}, ClassContent, false, true, ""},
	} {
		g := &group{FailureGroup: tt.g}
		classify(g)
		if g.class != tt.class || g.throttle != tt.throttle || g.loginPage != tt.loginPage {
			t.Errorf("%q: class %s throttle %v loginPage %v, want %s %v %v", tt.g.Reason, g.class, g.throttle, g.loginPage, tt.class, tt.throttle, tt.loginPage)
		}
		if tt.message != "" && g.message != tt.message {
			t.Errorf("%q: message %q, want %q", tt.g.Reason, g.message, tt.message)
		}
	}
}

func TestClassifyEvent(t *testing.T) {
	for _, tt := range []struct {
		e    stampede.Evidence
		want string
	}{
		{stampede.Evidence{Message: "C-0x7fbcc4faabe0: racetrack/racetrack@172.27.0.8:50574 closing because: query_wait_timeout (age=10s)"}, IDPoolWaitTimeout},
		{stampede.Evidence{Message: "Internal Server Error: /accounts/login/", Class: IDUnexplained, Exception: "psycopg.errors.ProtocolViolation: query_wait_timeout"}, IDPoolWaitTimeout},
		{stampede.Evidence{Message: "Internal Server Error: /accounts/login/", Class: IDUnexplained}, IDUnexplained},
		{stampede.Evidence{Message: "FATAL:  sorry, too many clients already"}, IDConnLimit},
		{stampede.Evidence{Message: "Exception", Exception: "redis.exceptions.ConnectionError: Too many connections"}, IDRedisConnLimit},
		{stampede.Evidence{Message: "process 4242 still waiting for ShareLock on transaction 5678 after 1000.123 ms"}, IDLockContention},
		{stampede.Evidence{Message: "canceling statement due to statement timeout"}, IDSlowQuery},
		{stampede.Evidence{Message: "[CRITICAL] WORKER TIMEOUT (pid:106)"}, IDWorkerSaturation},
		{stampede.Evidence{Message: "Forbidden (CSRF cookie not set.): /accounts/login/"}, IDCSRFFailure},
		{stampede.Evidence{Message: "WORKER TIMEOUT", Stack: []string{"django/contrib/auth/hashers.py:297 in encode", "hashlib.pbkdf2_hmac"}}, IDWorkerSaturation},
		{stampede.Evidence{Message: "sampled stack", Stack: []string{"django/contrib/auth/hashers.py:297 in encode"}}, IDPasswordHashCPU},
		{stampede.Evidence{Message: "CPU usage above 90%! This may constrain your throughput and may even give inconsistent response time measurements!"}, IDGeneratorSat},
		{stampede.Evidence{Message: "GET /dashboard/ 200"}, ""},
	} {
		if got := classifyEvent(&tt.e); got != tt.want {
			t.Errorf("classifyEvent(%q) = %q, want %q", tt.e.Message, got, tt.want)
		}
	}
}

func TestNormalizeReason(t *testing.T) {
	a := normalizeReason("read tcp 127.0.0.1:53122->127.0.0.1:8000: read: connection reset by peer")
	b := normalizeReason("read tcp 127.0.0.1:40017->127.0.0.1:8000: read: connection reset by peer")
	if a != b {
		t.Errorf("%q != %q", a, b)
	}
	if got := normalizeReason("HTTP 500"); got != "HTTP 500" {
		t.Errorf("normalizeReason(HTTP 500) = %q", got)
	}
}

func TestHistogram(t *testing.T) {
	var h Histogram
	for i := 0; i < 80; i++ {
		h.Add(120*time.Second + time.Duration(i)*10*time.Millisecond)
	}
	for i := 0; i < 20; i++ {
		h.Add(time.Duration(50+i) * time.Millisecond)
	}
	at, share := h.Cluster(0.5)
	if !near(at, 120*time.Second) || share < 0.79 {
		t.Errorf("Cluster = %v, %.2f; want about 120s, 0.80", at, share)
	}
	if q := h.Quantile(0.1); q < 45*time.Millisecond || q > 75*time.Millisecond {
		t.Errorf("Quantile(0.1) = %v", q)
	}
	if q := h.Quantile(0.5); !near(q, 120*time.Second) {
		t.Errorf("Quantile(0.5) = %v", q)
	}
	var spread Histogram
	for i := 1; i <= 100; i++ {
		spread.Add(time.Duration(i) * 100 * time.Millisecond)
	}
	if at, _ := spread.Cluster(0.5); at != 0 {
		t.Errorf("spread latencies clustered at %v", at)
	}
}

func TestBursts(t *testing.T) {
	start := time.Date(2026, 1, 11, 11, 40, 0, 0, time.UTC)
	c := &ctx{start: start, nsec: 20}
	series := make([]float64, 20)
	for _, s := range []int{2, 3, 5, 12, 13} { // 3→5 is a gap of 1 s: one burst
		series[s] = 2
	}
	got := c.bursts(series)
	if len(got) != 2 || got[0].Failures != 6 || got[1].Failures != 4 ||
		!got[0].Start.Equal(start.Add(2*time.Second)) || !got[0].End.Equal(start.Add(6*time.Second)) {
		t.Errorf("bursts = %+v", got)
	}
}
