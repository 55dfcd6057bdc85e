package diagnose

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stampede-load/stampede"
)

// hostSplit adds host samples with the CPU of each process group.
func (s *sim) hostSplit(from, to int, busy float64, groups map[string]float64, info map[string]string) {
	for sec := from; sec < to; sec++ {
		v := map[string]float64{"cores": 2, "cpu_busy_pct": busy, "load1": 3}
		for g, x := range groups {
			v["cpu_pct:"+g] = x
		}
		s.sample(sec, "host", v, info, "")
	}
}

// A dropped index: the recap's statements become sequential scans and
// PostgreSQL burns the CPU; logins and every page slow down with it. The
// machine is busy, but the root is what PostgreSQL does — the statement
// its sessions run on the CPU — not the CPU, and not password hashing.
func TestCPUBurnedByPostgres(t *testing.T) {
	s := newSim(60 * time.Second)
	slowAfter := func(fast, slow time.Duration) func(int) time.Duration {
		return func(sec int) time.Duration {
			if sec < 8 {
				return fast
			}
			return slow + time.Duration(sec%5)*ms(40)
		}
	}
	s.reqs(0, 60, 2, "GET", "[AUTH] Login GET", slowAfter(ms(15), ms(900)), nil)
	s.reqs(0, 60, 2, "POST", "[AUTH] Login POST", slowAfter(ms(60), ms(1400)), nil)
	s.reqs(0, 60, 3, "GET", "GET /dashboard/", slowAfter(ms(25), ms(1100)), nil)
	s.reqs(0, 60, 2, "GET", "GET /recap/", slowAfter(ms(150), ms(4200)), nil)
	const q = "SELECT sum(a.cost) FROM work_analysis a WHERE a.work_item_id = $1"
	for sec := 0; sec < 62; sec++ {
		info := map[string]string{"active": "1\tCPU\tSELECT ? FROM django_session WHERE session_key = $1"}
		busy, groups := 30.0, map[string]float64{"postgres": 20, "app": 25, "stampede": 10}
		if sec >= 8 {
			info = map[string]string{"active": "6\tCPU\t" + q + "\n1\tIO:DataFileRead\t" + q,
				"seq_scans": "public.work_analysis\t12\t3600000\t0\npublic.work_item\t2\t4000\t80"}
			busy, groups = 97, map[string]float64{"postgres": 150, "app": 28, "stampede": 14, "other": 2}
		}
		s.sample(sec, "postgres", map[string]float64{"backends": 12, "state:active": 7, "wait:Lock": 0, "wait:CPU": 6, "oldest_query_s": 0.6}, info, "")
		s.hostSplit(sec, sec+1, busy, groups, map[string]string{"cpu_app": "gunicorn", "cpu_top": "4242\tpostgres\tpostgres\t49.5\n4243\tpostgres\tpostgres\t48.0"})
	}
	d := Diagnose(s.input())
	t.Log(describe(d))
	if len(d.Findings) == 0 || d.Findings[0].ID != IDSlowQuery || d.Findings[0].Status != stampede.Confirmed {
		t.Fatalf("want slow-query confirmed on top; got %s", describe(d))
	}
	top := d.Findings[0]
	if !strings.Contains(top.Title, "work_analysis") {
		t.Errorf("the title should name the statement: %q", top.Title)
	}
	if !hasEvidence(&top, "of 2 cores, app ") || !hasEvidence(&top, "host CPU by consumer while requests were slow") {
		t.Errorf("the evidence should print the split: %+v", top.Evidence)
	}
	if !hasEvidence(&top, "sequential scans of public.work_analysis read") {
		t.Errorf("the evidence should name the table read whole: %+v", top.Evidence)
	}
	if top.Explains.Slow < 400 {
		t.Errorf("slow-query explains %d slow requests: want every page slowed while PostgreSQL held the CPU", top.Explains.Slow)
	}
	if f := findingOf(d, IDPasswordHashCPU); f != nil && f.CausedBy == "" && f.Explains.Total() > 0 {
		t.Errorf("password-hash-cpu stands as a root: %s", describe(d))
	}
	if f := findingOf(d, IDCPUSaturation); f != nil && f.CausedBy == "" && f.Explains.Total() > 0 {
		t.Errorf("cpu-saturation stands as a root beside the query that burns the CPU: %s", describe(d))
	}
}

// Hashing: the app's workers hold the CPU while logins are in flight.
func TestCPUBurnedByTheAppHashing(t *testing.T) {
	s := newSim(60 * time.Second)
	s.reqs(0, 60, 2, "POST", "[AUTH] Login POST", func(sec int) time.Duration {
		if sec < 5 {
			return ms(600)
		}
		return ms(3000 + 100*(sec%6))
	}, nil)
	s.reqs(0, 60, 3, "GET", "GET /dashboard/", func(sec int) time.Duration {
		if sec < 5 {
			return ms(20)
		}
		return ms(700)
	}, nil)
	s.hostSplit(0, 62, 98, map[string]float64{"app": 180, "postgres": 6, "stampede": 8}, map[string]string{"cpu_app": "gunicorn"})
	d := Diagnose(s.input())
	t.Log(describe(d))
	if len(d.Findings) == 0 || d.Findings[0].ID != IDPasswordHashCPU {
		t.Fatalf("want password-hash-cpu on top; got %s", describe(d))
	}
	if !hasEvidence(&d.Findings[0], "app 90% of 2 cores (gunicorn)") {
		t.Errorf("the evidence should print the split: %+v", d.Findings[0].Evidence)
	}
}

// Hashing beside a build running at nice 19: the build takes the cycles
// the app leaves and competes with nobody, so the app still burns the CPU
// that counts; the split says the background was left out.
func TestCPUBesideABackgroundBuild(t *testing.T) {
	s := newSim(60 * time.Second)
	s.reqs(0, 60, 2, "POST", "[AUTH] Login POST", func(sec int) time.Duration {
		if sec < 5 {
			return ms(600)
		}
		return ms(3000 + 100*(sec%6))
	}, nil)
	s.reqs(0, 60, 3, "GET", "GET /dashboard/", func(sec int) time.Duration {
		if sec < 5 {
			return ms(20)
		}
		return ms(700)
	}, nil)
	s.hostSplit(0, 62, 99, map[string]float64{"app": 110, "postgres": 6, "stampede": 8, "background": 74}, map[string]string{"cpu_app": "gunicorn"})
	d := Diagnose(s.input())
	t.Log(describe(d))
	if len(d.Findings) == 0 || d.Findings[0].ID != IDPasswordHashCPU {
		t.Fatalf("want password-hash-cpu on top; got %s", describe(d))
	}
	if !hasEvidence(&d.Findings[0], "left out: background processes at a lower priority 37%") {
		t.Errorf("the evidence should say the background was left out: %+v", d.Findings[0].Evidence)
	}
}

// No single consumer: the CPU itself is the root, and says so.
func TestCPUSharedByMany(t *testing.T) {
	s := newSim(60 * time.Second)
	s.reqs(0, 60, 3, "GET", "GET /dashboard/", func(sec int) time.Duration {
		if sec < 5 {
			return ms(20)
		}
		return ms(900)
	}, nil)
	s.hostSplit(0, 62, 97, map[string]float64{"app": 70, "postgres": 60, "stampede": 30, "other": 34}, nil)
	d := Diagnose(s.input())
	t.Log(describe(d))
	f := findingOf(d, IDCPUSaturation)
	if f == nil || f.CausedBy != "" {
		t.Fatalf("want cpu-saturation as a root; got %s", describe(d))
	}
	if !hasEvidence(f, "no single consumer") {
		t.Errorf("the evidence should say no single consumer holds it: %+v", f.Evidence)
	}
}

// A remote target read through exporters: node_exporter's and
// process-exporter's samples of one second make one host reading, and the
// generator's own /proc readings do not mix with them.
func TestRemoteHostSamples(t *testing.T) {
	s := newSim(30 * time.Second)
	s.reqs(0, 30, 2, "GET", "GET /dashboard/", constLat(ms(20)), nil)
	for sec := 0; sec < 30; sec++ {
		s.sample(sec, "host", map[string]float64{"cores": 8, "cpu_busy_pct": 12, "cpu_pct:stampede": 90}, nil, "")
		s.sample(sec, "host", map[string]float64{"cores": 2, "cpu_busy_pct": 97}, map[string]string{"via": "prometheus", "instance": "db:9100"}, "")
		s.tl = append(s.tl, stampede.Sample{Time: s.at(float64(sec) + 0.2), Source: "host",
			Values: map[string]float64{"cpu_pct:postgres": 170, "cpu_pct:app": 20}, Info: map[string]string{"via": "prometheus", "instance": "db:9256"}})
	}
	c := newCtx(s.input())
	if n := len(c.samples["host"]); n != 30 {
		t.Fatalf("%d host samples, want the 30 merged remote ones", n)
	}
	if n := len(c.samples["generator-host"]); n != 30 {
		t.Errorf("%d generator-host samples, want the 30 local ones", n)
	}
	sp := c.cpuSplitIn(nil, nil)
	if dom, ok := sp.dominant(); !ok || dom != "postgres" || sp.cores != 2 {
		t.Errorf("split %+v: want PostgreSQL dominant on the target's 2 cores", sp)
	}
}

// Hashing so heavy that users rarely get past the login: the other pages
// are reached a few times, every time with the CPU already taken, and
// their few latencies read seconds. They are not the pages' cost: the
// login is compared with the pages that have enough requests to have a
// floor of their own (the login form, 1 ms alone). The lab's
// password-hash-cpu fault on a machine with a build running at nice 19.
func TestHashWhenOtherPagesWereBarelyReached(t *testing.T) {
	s := newSim(50 * time.Second)
	s.reqs(0, 50, 2, "GET", "[AUTH] Login GET", func(sec int) time.Duration {
		if sec < 3 {
			return ms(1)
		}
		return ms(1200 + 20*(sec%5))
	}, nil)
	for i, lat := range []int{2000, 6000, 8000, 9000, 10000, 12000} {
		s.rs = append(s.rs, stampede.Result{Start: s.at(float64(3 + 7*i)), Name: "[AUTH] Login POST", Method: "POST", Status: 302, Latency: ms(lat), TTFB: ms(lat)})
	}
	for i, p := range []struct {
		name string
		lat  int
	}{{"GET /dashboard/", 1800}, {"GET /rekap-rab/", 3500}, {"GET /pekerjaan/", 2200}, {"GET /pekerjaan/", 2300}, {"GET /pekerjaan/", 460}} {
		s.rs = append(s.rs, stampede.Result{Start: s.at(float64(30 + 3*i)), Name: p.name, Method: "GET", Status: 200, Latency: ms(p.lat), TTFB: ms(p.lat)})
	}
	s.hostSplit(0, 52, 100, map[string]float64{"app": 92, "other": 5, "background": 105}, map[string]string{"cpu_app": "lab"})
	d := Diagnose(s.input())
	t.Log(describe(d))
	if len(d.Findings) == 0 || d.Findings[0].ID != IDPasswordHashCPU {
		t.Fatalf("want password-hash-cpu on top; got %s", describe(d))
	}
	if f := d.Findings[0]; f.Status == stampede.Possible || !hasEvidence(&f, "takes 2.0 s even alone") {
		t.Errorf("want the login's floor against the login form's in the evidence, confirmed or likely: %+v", f)
	}
}

// Hashing holds the host's cores from the first second and a recap page,
// reached a dozen times, runs its statement meanwhile: the statement's
// logged runs (wall time, waits for a core included) add up to most of the
// cores' time, and the page was never read on a quiet CPU. The lab's
// password-hash-cpu fault, where slow-query came out on top in one run of
// four: the statement is a victim of the hashes' CPU, not a cause.
func TestQueryStarvedByHashing(t *testing.T) {
	d := Diagnose(starvedRecap(false).input())
	t.Log(describe(d))
	if len(d.Findings) == 0 || d.Findings[0].ID != IDPasswordHashCPU {
		t.Fatalf("want password-hash-cpu on top; got %s", describe(d))
	}
	f := findingOf(d, IDSlowQuery)
	if f == nil {
		t.Fatalf("the statements were logged: want slow-query named, as the hashes' consequence; got %s", describe(d))
	}
	if f.CausedBy != IDPasswordHashCPU || !hasEvidence(f, "wall time on cores the hashes held") {
		t.Errorf("want slow-query caused by password-hash-cpu, why in its evidence: %+v", f)
	}
	if hasEvidence(f, "is slow by itself") || !hasEvidence(f, "not a clean reading of its own cost") {
		t.Errorf("GET /recap/ was only read on a saturated CPU: it cannot be called slow by itself: %+v", f.Evidence)
	}

	// The same recap read at 4 s in the first seconds, before the hashes
	// took the CPU: its cost is its own, a root beside the hashes.
	d = Diagnose(starvedRecap(true).input())
	t.Log(describe(d))
	f = findingOf(d, IDSlowQuery)
	if f == nil || f.CausedBy != "" || f.Status != stampede.Confirmed || !hasEvidence(f, "GET /recap/ is slow by itself") {
		t.Fatalf("want slow-query a confirmed root, GET /recap/ slow by itself; got %s", describe(d))
	}
	if h := findingOf(d, IDPasswordHashCPU); h == nil || h.CausedBy != "" {
		t.Errorf("want password-hash-cpu a root too; got %s", describe(d))
	}
}

// starvedRecap is TestQueryStarvedByHashing's run; early adds recap
// requests in the first four seconds, while the CPU was 30% busy.
func starvedRecap(early bool) *sim {
	s := newSim(32 * time.Second)
	s.reqs(0, 32, 3, "GET", "[AUTH] Login GET", func(sec int) time.Duration {
		if sec < 2 {
			return ms(5)
		}
		return ms(1000 + 40*(sec%5))
	}, nil)
	s.reqs(0, 32, 3, "POST", "[AUTH] Login POST", func(sec int) time.Duration {
		if sec < 2 {
			return ms(600)
		}
		return ms(5000 + 150*(sec%6))
	}, nil)
	s.reqs(3, 32, 2, "GET", "GET /dashboard/", constLat(ms(1000)), nil)
	const q = "SELECT k.name, sum(a.cost) FROM work_analysis a JOIN category k ON k.id = a.category_id GROUP BY k.name"
	for sec := 4; sec < 28; sec += 2 {
		lat := ms(4000 + 100*(sec%3))
		s.rs = append(s.rs, stampede.Result{Start: s.at(float64(sec)), Name: "GET /recap/", Method: "GET", Status: 200, Latency: lat, TTFB: lat})
		d := float64(lat/time.Millisecond) - 150
		s.event(float64(sec)+lat.Seconds()-0.05, "postgres", "slow-query", fmt.Sprintf("duration: %.3f ms  statement: %s", d, q),
			map[string]string{"duration_ms": fmt.Sprintf("%.3f", d), "statement": q, "pid": fmt.Sprint(300 + sec%4)})
	}
	if !early {
		s.hostSplit(0, 34, 99, map[string]float64{"app": 198}, map[string]string{"cpu_app": "lab"})
		return s
	}
	for sec := 0; sec < 4; sec++ {
		lat := ms(4000)
		s.rs = append(s.rs, stampede.Result{Start: s.at(float64(sec) + 0.5), Name: "GET /recap/", Method: "GET", Status: 200, Latency: lat, TTFB: lat})
		s.event(float64(sec)+4.4, "postgres", "slow-query", fmt.Sprintf("duration: %.3f ms  statement: %s", 3850.0, q),
			map[string]string{"duration_ms": "3850.000", "statement": q, "pid": fmt.Sprint(310 + sec)})
	}
	s.hostSplit(0, 4, 30, map[string]float64{"app": 60}, map[string]string{"cpu_app": "lab"})
	s.hostSplit(4, 34, 99, map[string]float64{"app": 198}, map[string]string{"cpu_app": "lab"})
	return s
}
