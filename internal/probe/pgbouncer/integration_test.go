package pgbouncer

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/probe"
	"github.com/stampede-load/stampede/internal/testenv"
)

// TestPoolSaturation drives a pool of 2 server connections with 10 clients
// each running SELECT pg_sleep(1) at once, while a Sampler reads the probe
// (as the read-only stats user) every 300 ms: the probe must show clients
// queued (cl_waiting > 0, sv_active = 2, sv_idle = 0) and maxwait_s rising
// from one sample to a later one, then the traffic in the SHOW STATS deltas
// and the settings from SHOW CONFIG.
func TestPoolSaturation(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	b := testenv.PgBouncer(t, pg, testenv.BouncerOptions{DefaultPoolSize: 2, QueryWaitTimeout: 20 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()

	p, err := New(b.StatsDSN())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var samples []stampede.Sample
	s := probe.Start(ctx, probe.Options{Interval: 300 * time.Millisecond}, func(smp stampede.Sample) {
		mu.Lock()
		samples = append(samples, smp)
		mu.Unlock()
	}, p)
	time.Sleep(400 * time.Millisecond) // a baseline for the SHOW STATS deltas

	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := pgx.Connect(ctx, b.DSN())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close(ctx)
			if _, err := c.Exec(ctx, "SELECT pg_sleep(1)"); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("client: %v", err)
	}
	time.Sleep(700 * time.Millisecond) // let SHOW STATS catch up
	if err := s.Close(); err != nil {
		t.Errorf("close: %v", err)
	}

	var (
		maxWaiting, maxXact, maxWaitUS float64
		rising                         bool
		saturated                      bool
		lowest                         = -1.0
	)
	for _, smp := range samples {
		if smp.Err != "" {
			t.Errorf("sample error: %s", smp.Err)
			continue
		}
		v := smp.Values
		maxWaiting = max(maxWaiting, v["cl_waiting"])
		maxXact = max(maxXact, v["xact_count"])
		maxWaitUS = max(maxWaitUS, v["wait_time_us"])
		if v["cl_waiting"] > 0 {
			if v["sv_active"] == 2 && v["sv_idle"] == 0 {
				saturated = true
			}
			if lowest >= 0 && v["maxwait_s"] > lowest {
				rising = true
			}
			if lowest < 0 || v["maxwait_s"] < lowest {
				lowest = v["maxwait_s"]
			}
		}
		if v["pool:app/app:cl_waiting"] != v["cl_waiting"] {
			t.Errorf("pool:app/app:cl_waiting = %v, total %v: one pool only", v["pool:app/app:cl_waiting"], v["cl_waiting"])
		}
		if v["default_pool_size"] != 2 || v["query_wait_timeout_s"] != 20 || smp.Info["pool_mode"] != "session" {
			t.Errorf("config: %v %v", v, smp.Info)
		}
	}
	if maxWaiting == 0 {
		t.Errorf("cl_waiting never > 0 in %d samples", len(samples))
	}
	if !saturated {
		t.Error("no sample showed sv_active = 2 and sv_idle = 0 while clients waited")
	}
	if !rising {
		t.Errorf("maxwait_s did not rise across samples: %v", series(samples, "maxwait_s"))
	}
	if maxXact == 0 || maxWaitUS == 0 {
		t.Errorf("SHOW STATS deltas: xact_count %v, wait_time_us %v; want > 0", series(samples, "xact_count"), series(samples, "wait_time_us"))
	}
	t.Logf("cl_waiting %v", series(samples, "cl_waiting"))
	t.Logf("maxwait_s  %v", series(samples, "maxwait_s"))
}

func series(samples []stampede.Sample, key string) []float64 {
	var s []float64
	for _, smp := range samples {
		s = append(s, smp.Values[key])
	}
	return s
}

// TestUnreachable checks that a console that refuses the probe yields an
// error without the password, and that the next reading tries again.
func TestUnreachable(t *testing.T) {
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	p, err := New("postgres://stats:hunter2@127.0.0.1:" + strconv.Itoa(port) + "/pgbouncer?connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for range 2 {
		_, err := p.Sample(context.Background(), time.Now())
		if err == nil {
			t.Fatal("no error from a closed port")
		}
		if s := err.Error(); strings.Contains(s, "hunter2") {
			t.Errorf("error leaks the password: %s", s)
		}
	}
}
