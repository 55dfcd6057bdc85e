//go:build linux

package evloop

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stampede-load/stampede/internal/session"
)

// helperEnv makes the test binary a raw HTTP server (see TestMain).
const helperEnv = "STAMPEDE_EVLOOP_SERVER"

// TestMain runs the tests, or, in the child process of externalServer, a
// raw server answering helloResp to every request, printing its address
// and serving until its standard input closes.
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "1" {
		os.Exit(m.Run())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go func() {
		serve := cannedNoAlloc(helloResp)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				serve(c)
				c.Close()
			}()
		}
	}()
	fmt.Println(ln.Addr())
	io.Copy(io.Discard, os.Stdin)
}

// externalServer starts the raw server in a child process, so that the
// process's CPU time is the client's alone, and returns its address.
func externalServer(b *testing.B) string {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	return strings.TrimSpace(addr)
}

// benchServers runs a benchmark against the raw server in this process and
// in a child process. cpu-ns/op is the process's CPU per request: client
// and server in the first case, the client's alone in the second (the
// figure to compare between BenchmarkLoop and BenchmarkFastClient; wrk's is
// measured by scripts/bench-peers).
func benchServers(b *testing.B, run func(b *testing.B, addr string, users int)) {
	inproc, _, _ := rawServer(b, cannedNoAlloc(helloResp))
	external := externalServer(b)
	for _, s := range []struct{ name, addr string }{{"inproc", inproc}, {"external", external}} {
		for _, users := range benchUsers {
			b.Run(fmt.Sprintf("%s/users=%d", s.name, users), func(b *testing.B) {
				b.ReportAllocs()
				cpu0 := cpuTime()
				run(b, s.addr, users)
				b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// cpuTime returns the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchUsers are the users of the benchmarks.
var benchUsers = []int{1, 16, 256}

// BenchmarkLoop runs b.N requests through a loop against a raw server that
// allocates nothing per request, so that allocs/op are the loop's.
func BenchmarkLoop(b *testing.B) {
	benchServers(b, func(b *testing.B, addr string, users int) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		n := 0
		var failed error
		l, err := New(Config{Addr: addr, Request: request("/"), Timeout: 10 * time.Second,
			OnResult: func(r Result) {
				if r.Err != nil || r.Status != 200 {
					failed = fmt.Errorf("%d %v", r.Status, r.Err)
					cancel()
				}
				if n++; n == b.N {
					cancel()
				}
			}})
		if err != nil {
			b.Fatal(err)
		}
		l.SetUsers(users)
		b.ResetTimer()
		if err := l.Run(ctx); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if failed != nil {
			b.Fatal(failed)
		}
	})
}

// BenchmarkFastClient is BenchmarkLoop's load run the engine's way before
// the loop: a goroutine per user, each looping over FastClient.Get.
func BenchmarkFastClient(b *testing.B) {
	benchServers(b, func(b *testing.B, addr string, users int) {
		u := &url.URL{Scheme: "http", Host: addr, Path: "/"}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var left atomic.Int64
		left.Store(int64(b.N))
		var wg sync.WaitGroup
		var failed atomic.Value
		b.ResetTimer()
		for range users {
			c, err := session.NewFastClient(u, 10*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			wg.Go(func() {
				defer c.Close()
				for left.Add(-1) >= 0 {
					if st, _, _, err := c.Get(ctx); err != nil || st != 200 {
						failed.Store(fmt.Errorf("%d %v", st, err))
						return
					}
				}
			})
		}
		wg.Wait()
		b.StopTimer()
		if err := failed.Load(); err != nil {
			b.Fatal(err)
		}
	})
}
