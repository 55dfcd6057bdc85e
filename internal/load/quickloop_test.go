package load

import (
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	stampede "github.com/stampede-load/stampede"
)

// The quick form's users run on the event loop (Linux): every user's
// requests recorded under its number (a segment's users under theirs in
// the whole load), statuses checked as by the goroutines (a 500 is a
// failure "HTTP 500"), the load followed up and down, and the loop's
// requests in flight seen by InFlight. STAMPEDE_QUICK_LOOP=off runs them
// as goroutines, with the same records.
func TestQuickLoop(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the event loop is Linux's")
	}
	var n atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%10 == 0 {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	defer ts.Close()
	for _, mode := range []string{"loop", "off"} {
		t.Run(mode, func(t *testing.T) {
			if mode == "off" {
				t.Setenv(EnvQuickLoop, "off")
			}
			p, err := QuickPlan(ts.URL+"/q", 6, 1000, 2500*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			p.ThinkMin, p.ThinkMax = 20*time.Millisecond, 40*time.Millisecond
			seg, err := p.ForSegment(Segment{Index: 1, Count: 2})
			if err != nil {
				t.Fatal(err)
			}
			e := New(seg)
			wait := running(e)
			if _, ok := waitUsers(e, seg.Users, time.Second); !ok {
				t.Fatalf("users %d, want %d", e.Users(), seg.Users)
			}
			if (e.loops.Load() != nil) != (mode == "loop") {
				t.Fatalf("event loop in use: %v, mode %s", e.loops.Load() != nil, mode)
			}
			time.Sleep(300 * time.Millisecond) // each user makes a few requests
			if err := e.SetUsers(1, 1000); err != nil {
				t.Fatal(err)
			}
			if _, ok := waitUsers(e, 1, time.Second); !ok {
				t.Errorf("down to 1 user: %d", e.Users())
			}
			rs := wait()
			users := map[int]int{}
			var fails, oks int
			for _, r := range rs {
				users[r.User]++
				if r.Name != "/q" || r.Method != "GET" {
					t.Fatalf("result %+v: want GET /q", r)
				}
				switch {
				case r.Outcome == stampede.OK && r.Status == 200 && r.Bytes == 2:
					oks++
				case r.Outcome == stampede.FailStatus && r.Status == 500 && r.Reason == "HTTP 500":
					fails++
				default:
					t.Errorf("result %+v", r)
				}
			}
			// Segment 2 of 2 of 6 users: users 2, 4 and 6 of the whole load.
			if len(users) != 3 || users[2] == 0 || users[4] == 0 || users[6] == 0 {
				t.Errorf("requests per user %v: want users 2, 4 and 6", users)
			}
			if users[2] < 2*users[6] {
				t.Errorf("requests per user %v: user 2, kept, should have made far more than user 6, stopped early", users)
			}
			if oks == 0 || fails == 0 {
				t.Errorf("%d ok, %d HTTP 500: want both", oks, fails)
			}
			if e.InFlight() != 0 || e.Users() != 0 {
				t.Errorf("after the run: %d in flight, %d users", e.InFlight(), e.Users())
			}
		})
	}
}

// TestLoopProcs: loops keep their Ps only with a P left for the process's
// other goroutines: one added while they run (given back after) unless
// GOMAXPROCS was set, which is kept: a loop a P, waiting as the scheduler
// sees, unless fewer users than Ps leave one.
func TestLoopProcs(t *testing.T) {
	t.Setenv("GOMAXPROCS", "") // the test's own setting, if any, comes back after
	os.Unsetenv("GOMAXPROCS")
	procs := runtime.GOMAXPROCS(0)
	n, keep, release := loopProcs(1000)
	if n != procs || !keep || runtime.GOMAXPROCS(0) != procs+1 {
		t.Errorf("default: %d loops (keep %v) on GOMAXPROCS %d; want %d loops keeping their Ps on %d", n, keep, runtime.GOMAXPROCS(0), procs, procs+1)
	}
	// A second run at once shares the added P.
	n2, _, release2 := loopProcs(1000)
	if n2 != procs || runtime.GOMAXPROCS(0) != procs+1 {
		t.Errorf("a second run: %d loops on GOMAXPROCS %d", n2, runtime.GOMAXPROCS(0))
	}
	release()
	release() // once only
	if runtime.GOMAXPROCS(0) != procs+1 {
		t.Errorf("GOMAXPROCS %d while a run still has its loops", runtime.GOMAXPROCS(0))
	}
	release2()
	if runtime.GOMAXPROCS(0) != procs {
		t.Errorf("GOMAXPROCS %d after the runs, %d before", runtime.GOMAXPROCS(0), procs)
	}
	// Fewer users than Ps: a P is left without adding one.
	if procs > 1 {
		n, keep, release := loopProcs(1)
		if n != 1 || !keep || runtime.GOMAXPROCS(0) != procs {
			t.Errorf("one user: %d loops (keep %v) on GOMAXPROCS %d", n, keep, runtime.GOMAXPROCS(0))
		}
		release()
	}
	// GOMAXPROCS set: kept, a loop a P, waiting as the scheduler sees;
	// fewer users than Ps leave one, and the loops keep theirs.
	t.Setenv("GOMAXPROCS", "1")
	runtime.GOMAXPROCS(1)
	defer runtime.SetDefaultGOMAXPROCS()
	if n, keep, release := loopProcs(1000); n != 1 || keep || runtime.GOMAXPROCS(0) != 1 {
		t.Errorf("GOMAXPROCS=1: %d loops (keep %v) on %d", n, keep, runtime.GOMAXPROCS(0))
	} else {
		release()
	}
	t.Setenv("GOMAXPROCS", "3")
	runtime.GOMAXPROCS(3)
	if n, keep, release := loopProcs(1000); n != 3 || keep || runtime.GOMAXPROCS(0) != 3 {
		t.Errorf("GOMAXPROCS=3: %d loops (keep %v) on %d", n, keep, runtime.GOMAXPROCS(0))
	} else {
		release()
	}
	if n, keep, release := loopProcs(2); n != 2 || !keep || runtime.GOMAXPROCS(0) != 3 {
		t.Errorf("GOMAXPROCS=3, 2 users: %d loops (keep %v) on %d", n, keep, runtime.GOMAXPROCS(0))
	} else {
		release()
	}
}
