package redis

import (
	"bufio"
	"context"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/testenv"
)

func TestParseInfo(t *testing.T) {
	for _, tc := range []struct {
		file string
		want map[string]string
	}{
		{"testdata/info-7.0.txt", map[string]string{
			"connected_clients": "1", "maxclients": "10000", "rejected_connections": "0",
			"redis_version": "7.0.15", "maxmemory_policy": "noeviction",
		}},
		{"testdata/info-lf.txt", map[string]string{
			"connected_clients": "3", "rejected_connections": "7", "used_memory": "1048576",
		}},
	} {
		b, err := os.ReadFile(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		got := ParseInfo(string(b))
		for k, w := range tc.want {
			if got[k] != w {
				t.Errorf("%s: %s = %q, want %q", tc.file, k, got[k], w)
			}
		}
		if _, ok := got[""]; ok {
			t.Errorf("%s: empty key parsed", tc.file)
		}
	}
}

func FuzzParseInfo(f *testing.F) {
	for _, name := range []string{"testdata/info-7.0.txt", "testdata/info-lf.txt"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, s string) {
		for k, v := range ParseInfo(s) {
			if k == "" || strings.ContainsAny(k, "\n") || strings.ContainsAny(v, "\n") {
				t.Errorf("bad pair %q=%q", k, v)
			}
		}
	})
}

// TestMaxClients fills a Redis with maxclients=10 beyond its cap: the
// probe, whose connection was opened first, still reads INFO and shows
// connected_clients at the cap and the refusals as rejected_connections
// and rejected_connections_delta; a probe opened after the server filled
// up reports the refusal as its error.
func TestMaxClients(t *testing.T) {
	t.Parallel()
	r := testenv.Redis(t, testenv.RedisOptions{MaxClients: 10})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	p, err := New(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s0, err := p.Sample(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if s0.Values["maxclients"] != 10 || s0.Values["connected_clients"] < 1 {
		t.Fatalf("before: %v", s0.Values)
	}
	if _, ok := s0.Values["rejected_connections_delta"]; ok {
		t.Errorf("first sample has a delta: %v", s0.Values)
	}

	var refused int
	for range 20 {
		c, err := net.DialTimeout("tcp", r.Addr(), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte("PING\r\n")); err != nil {
			t.Fatal(err)
		}
		line, _ := bufio.NewReader(c).ReadString('\n')
		if strings.Contains(line, "max number of clients reached") {
			refused++
		} else if !strings.HasPrefix(line, "+PONG") {
			t.Fatalf("PING: %q", line)
		}
	}
	if refused == 0 {
		t.Fatal("no connection was refused; maxclients not enforced?")
	}

	s1, err := p.Sample(ctx, time.Now())
	if err != nil {
		t.Fatalf("probe at the cap: %v", err)
	}
	if got := s1.Values["connected_clients"]; got != 10 {
		t.Errorf("connected_clients = %v, want 10 (the cap)", got)
	}
	if got := s1.Values["rejected_connections_delta"]; got != float64(refused) {
		t.Errorf("rejected_connections_delta = %v, want %d", got, refused)
	}
	if got := s1.Values["rejected_connections"]; got < float64(refused) {
		t.Errorf("rejected_connections = %v, want ≥ %d", got, refused)
	}
	// Redis 7.0 counts accepted connections only.
	if got := s1.Values["total_connections_received_delta"]; got != float64(20-refused) {
		t.Errorf("total_connections_received_delta = %v, want %d", got, 20-refused)
	}

	late, err := New(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	if _, err := late.Sample(ctx, time.Now()); err == nil || !strings.Contains(err.Error(), "max number of clients reached") {
		t.Errorf("late probe: err = %v, want the refusal", err)
	}
}

// TestUnavailable makes a real Redis stop answering in three ways and
// checks that each reading fails within its deadline (rather than waiting
// for the server) and that the probe reads again once the server is back:
// CLIENT PAUSE ALL for longer than the deadline, SIGSTOP, and a server
// killed and started again on the same port.
func TestUnavailable(t *testing.T) {
	t.Parallel()
	r := testenv.Redis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := New(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// read takes one reading with the deadline a Sampler would give it.
	read := func() (stampede.Sample, error) {
		ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		return p.Sample(ctx, time.Now())
	}
	// recover reads until a reading succeeds, as the Sampler retries.
	recover := func(what string) stampede.Sample {
		t.Helper()
		for ctx.Err() == nil {
			s, err := read()
			if err == nil {
				return s
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("%s: the probe never read again", what)
		return stampede.Sample{}
	}
	s, err := read()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first reading: %v", s.Values)
	if v, ok := s.Values["ping_ms"]; !ok || v <= 0 {
		t.Errorf("ping_ms = %v (present %v)", v, ok)
	}

	// CLIENT PAUSE: commands wait for 3 s (CLIENT UNPAUSE included: ALL
	// pauses every client but replicas); the reading must not wait.
	ctl := goredis.NewClient(&goredis.Options{Addr: r.Addr(), MaxRetries: -1, DisableIdentity: true, Protocol: 2})
	defer ctl.Close()
	if err := ctl.Do(ctx, "CLIENT", "PAUSE", "3000", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := read(); err == nil {
		t.Error("reading during CLIENT PAUSE ALL succeeded: it waited the pause out")
	} else {
		t.Logf("paused: %v", err)
	}
	recover("after the pause")

	// SIGSTOP: the kernel still accepts connections, nobody answers.
	if err := syscall.Kill(r.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			syscall.Kill(r.PID, syscall.SIGCONT)
		}
	}()
	for i := range 2 { // on the open connection, then on a new one
		if _, err := read(); err == nil {
			t.Errorf("reading %d of a stopped server succeeded", i)
		} else {
			t.Logf("stopped: %v", err)
		}
	}
	if err := syscall.Kill(r.PID, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	recover("after SIGCONT")

	// Down, then up again on the same port.
	port := r.Port
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := read(); err == nil || !strings.Contains(err.Error(), "refused") {
			t.Errorf("reading %d of a stopped server: %v, want connection refused", i, err)
		}
	}
	testenv.Redis(t, testenv.RedisOptions{Port: port})
	s = recover("after the restart")
	if s.Values["ping_ms"] <= 0 || s.Values["connected_clients"] < 1 {
		t.Errorf("after the restart: %v", s.Values)
	}
	// The probe holds its one connection, under its name, and no other.
	ctl2 := goredis.NewClient(&goredis.Options{Addr: r.Addr(), MaxRetries: -1, DisableIdentity: true, Protocol: 2})
	defer ctl2.Close()
	list, err := ctl2.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(list, " name=stampede-probe "); n != 1 {
		t.Errorf("CLIENT LIST has %d connections named stampede-probe, want 1:\n%s", n, list)
	}
}
