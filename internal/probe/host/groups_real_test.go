package host

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/testenv"
)

// sampleUntil reads p every 200 ms until ok accepts a sample, for at most
// 10 s, and returns the last sample.
func sampleUntil(t *testing.T, p *Probe, ok func(stampede.Sample) bool) stampede.Sample {
	t.Helper()
	var s stampede.Sample
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		if s, err = p.Sample(context.Background(), time.Now()); err != nil {
			t.Fatal(err)
		}
		if ok(s) || time.Now().After(deadline) {
			return s
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestCPUGroupsRealStampede reads this machine's /proc with this test as
// stampede: a busy shell it started is stampede's CPU, listed in cpu_top
// under its pid; once it is killed, its file is no longer held open and
// the groups still add up to no more than the machine has.
func TestCPUGroupsRealStampede(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	cmd := exec.Command("/bin/sh", "-c", "while :; do :; done")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	busy := cmd.Process.Pid
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	p := New(Options{})
	defer p.Close()
	s := sampleUntil(t, p, func(s stampede.Sample) bool {
		return s.Values["cpu_pct:stampede"] > 5 && strings.Contains(s.Info["cpu_top"], strconv.Itoa(busy)+"\tsh\tstampede\t")
	})
	t.Logf("groups %v\ntop:\n%s", s.Values, s.Info["cpu_top"])
	if s.Values["cpu_pct:stampede"] <= 5 || !strings.Contains(s.Info["cpu_top"], strconv.Itoa(busy)+"\tsh\tstampede\t") {
		t.Fatalf("a busy child of stampede: cpu_pct:stampede %v, cpu_top\n%s", s.Values["cpu_pct:stampede"], s.Info["cpu_top"])
	}
	if _, ok := s.Values["cpu_pct:other"]; !ok {
		t.Errorf("no cpu_pct:other on a real machine: %v", s.Values)
	}
	sum := 0.0
	for k, v := range s.Values {
		if strings.HasPrefix(k, "cpu_pct:") {
			sum += v
		}
	}
	// A reading's interval is measured by the caller's clock, the ticks by
	// the kernel's: allow a few percent, and one tick per process.
	if limit := 100*s.Values["cores"]*1.05 + 100*float64(len(p.groups.cur))/clockTicks/0.2; sum > limit {
		t.Errorf("groups sum to %v%%, more than %v cores", sum, s.Values["cores"])
	}
	if p.groups.held[busy] == [2]int{} {
		t.Errorf("the busy child's stat is not held open")
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if _, err := p.Sample(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, ok := p.groups.cur[busy]; ok || p.groups.held[busy] != [2]int{} {
		t.Errorf("killed child: still read %v, held %v", ok, p.groups.held[busy])
	}
	n := 0
	for _, fds := range p.groups.held {
		for _, fd := range fds {
			if fd > 0 {
				n++
			}
		}
	}
	if n != p.groups.nheld || n > p.groups.maxHeld {
		t.Errorf("%d files held, %d counted, at most %d", n, p.groups.nheld, p.groups.maxHeld)
	}
	p.Close()
	if p.groups.nheld != 0 || len(p.groups.held) != 0 {
		t.Errorf("Close left %d files open", p.groups.nheld)
	}
}

// TestCPUGroupsRealPostgres starts PostgreSQL and keeps one backend busy
// computing while three idle ones wait: the CPU is PostgreSQL's, the busy
// backend is in cpu_top, and the process titles tell the busy backend from
// the idle ones. (Other PostgreSQL servers of a shared machine may add to
// the counts.)
func TestCPUGroupsRealPostgres(t *testing.T) {
	pg := testenv.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var pids []int
	var conns []*pgx.Conn
	for range 4 {
		c, err := pgx.Connect(ctx, pg.DSN())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background())
		var pid int
		if err := c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
			t.Fatal(err)
		}
		conns, pids = append(conns, c), append(pids, pid)
	}
	done := make(chan error, 1)
	go func() {
		// Seconds of CPU, cancelled at the end of the test.
		_, err := conns[0].Exec(ctx, "SELECT count(*) FROM generate_series(1, 1000000000)")
		done <- err
	}()
	p := New(Options{})
	defer p.Close()
	busyLine := strconv.Itoa(pids[0]) + "\tpostgres\tpostgres\t"
	s := sampleUntil(t, p, func(s stampede.Sample) bool {
		return s.Values["cpu_pct:postgres"] > 20 && strings.Contains(s.Info["cpu_top"], busyLine) &&
			p.groups.cur[pids[0]].title == BackendBusy
	})
	t.Logf("groups %v\ntop:\n%s", s.Values, s.Info["cpu_top"])
	if s.Values["cpu_pct:postgres"] <= 20 {
		t.Errorf("cpu_pct:postgres = %v with a backend computing", s.Values["cpu_pct:postgres"])
	}
	if !strings.Contains(s.Info["cpu_top"], busyLine) {
		t.Errorf("cpu_top does not list the busy backend %q:\n%s", busyLine, s.Info["cpu_top"])
	}
	for i, pid := range pids {
		want := BackendIdle
		if i == 0 {
			want = BackendBusy
		}
		if c := p.groups.cur[pid]; c.group != "postgres" || c.title != want {
			t.Errorf("backend %d: group %q, title %v; want postgres, %v", pid, c.group, c.title, want)
		}
	}
	if s.Values["pg_backends"] < 4 || s.Values["pg_backends_busy"] < 1 {
		t.Errorf("pg_backends %v, pg_backends_busy %v; want at least 4 and 1", s.Values["pg_backends"], s.Values["pg_backends_busy"])
	}
	cancel()
	<-done
}
