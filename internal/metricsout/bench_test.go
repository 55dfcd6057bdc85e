package metricsout

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configgrpc"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/runner"
	"github.com/stampede-load/stampede/internal/testserver"
)

// benchTargetEnv makes the test binary the benchmark's target instead: a
// testserver and an OTLP receiver in a process of their own, so that the
// benchmark's CPU is the generator's alone.
const benchTargetEnv = "STAMPEDE_METRICSOUT_BENCH_TARGET"

func TestMain(m *testing.M) {
	if os.Getenv(benchTargetEnv) == "1" {
		serveBenchTarget()
		return
	}
	os.Exit(m.Run())
}

// serveBenchTarget serves the target and an OTLP receiver on loopback,
// prints "TARGET_URL OTLP_URL" and serves until its stdin closes.
func serveBenchTarget() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go func() { _ = http.Serve(ln, testserver.New("pw")) }()
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	otlpAddr := pl.Addr().String()
	pl.Close()
	f := otlpreceiver.NewFactory()
	cfg := f.CreateDefaultConfig().(*otlpreceiver.Config)
	cfg.Protocols.GRPC = configoptional.None[configgrpc.ServerConfig]()
	cfg.Protocols.HTTP.GetOrInsertDefault().ServerConfig.NetAddr.Endpoint = otlpAddr
	r, err := f.CreateMetrics(context.Background(), receivertest.NewNopSettings(f.Type()), cfg, consumertest.NewNop())
	if err == nil {
		err = r.Start(context.Background(), componenttest.NewNopHost())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("http://%s/ http://%s\n", ln.Addr(), otlpAddr)
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = r.Shutdown(context.Background())
}

// BenchmarkExporterCost measures what sending the metrics out costs the
// generator: its CPU per request in a quick-form run at its maximum rate
// (no think time) against a target in another process, without metrics
// out ("plain"), with the Exporter ("exporter"), with the Exporter and
// /metrics scraped every second ("scraped"), and with the OTLP push every
// second as well ("otlp"). Each iteration runs every variant once, in a
// rotating order; it reports each variant's CPU µs per request over all
// the iterations and the median over the iterations of its ratio to
// plain's in the same iteration. Run it alone on the machine:
//
//	flock /tmp/stampede-live.lock go test -run '^$' -bench ExporterCost -benchtime 10x ./internal/metricsout
//
// STAMPEDE_BENCH_RUN sets each run's length (default 4s), STAMPEDE_BENCH_USERS
// the users (default 16).
func BenchmarkExporterCost(b *testing.B) {
	runFor := 4 * time.Second
	if v := os.Getenv("STAMPEDE_BENCH_RUN"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatal(err)
		}
		runFor = d
	}
	users := 16
	if v := os.Getenv("STAMPEDE_BENCH_USERS"); v != "" {
		if _, err := fmt.Sscan(v, &users); err != nil {
			b.Fatal(err)
		}
	}
	target, otlpURL := startBenchTarget(b)
	variants := []string{"plain", "exporter", "scraped", "otlp"}
	cpu := map[string]time.Duration{}
	reqs := map[string]int64{}
	ratios := map[string][]float64{} // per iteration, to plain's of the same iteration
	dir := b.TempDir()
	// A first run, not counted, warms up the target, the connections and
	// the page cache.
	benchRun(b, "plain", target, otlpURL, users, min(runFor, 2*time.Second), filepath.Join(dir, "warm-up"))
	b.ResetTimer()
	for i := range b.N {
		per := map[string]float64{}
		for j := range variants {
			v := variants[(i+j)%len(variants)]
			c, n := benchRun(b, v, target, otlpURL, users, runFor, filepath.Join(dir, fmt.Sprintf("%s-%d", v, i)))
			cpu[v] += c
			reqs[v] += n
			per[v] = float64(c.Microseconds()) / float64(max(n, 1))
		}
		for _, v := range variants[1:] {
			ratios[v] = append(ratios[v], per[v]/per["plain"])
		}
	}
	b.StopTimer()
	for _, v := range variants {
		b.ReportMetric(float64(cpu[v].Microseconds())/float64(max(reqs[v], 1)), v+"-cpu-µs/req")
		b.ReportMetric(float64(reqs[v])/float64(b.N)/runFor.Seconds(), v+"-req/s")
		if v != "plain" {
			// The median of the iterations' ratios: a run disturbed by
			// something else on the machine moves it least.
			b.ReportMetric(median(ratios[v]), v+"-ratio")
		}
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkResult measures what the exporter adds to each request on the
// recorder goroutine (Result): Prometheus's counters and histogram, and
// with OTLP the SDK's too, over 8 endpoints and a few statuses. It never
// allocates once the endpoints were seen.
//
//	go test -run '^$' -bench 'Result$' -benchmem ./internal/metricsout
func BenchmarkResult(b *testing.B) {
	var rs []stampede.Result
	for i := range 8 {
		name := fmt.Sprintf("GET /page/%d/", i)
		rs = append(rs, stampede.Result{Method: "GET", Name: name, Status: 200, Latency: time.Duration(i+1) * 7 * time.Millisecond},
			stampede.Result{Method: "GET", Name: name, Status: 302, Latency: 3 * time.Millisecond},
			stampede.Result{Method: "GET", Name: name, Status: 500, Outcome: stampede.FailStatus, Latency: 40 * time.Millisecond},
			stampede.Result{Method: "GET", Name: name, Outcome: stampede.FailTimeout, Latency: 30 * time.Second})
	}
	for _, v := range []struct {
		name string
		otlp bool
	}{{"prometheus", false}, {"prometheus+otlp", true}} {
		b.Run(v.name, func(b *testing.B) {
			o := Options{Run: "r"}
			if v.otlp {
				// Nothing listens: the push never comes within the
				// benchmark (its interval is an hour), the last one fails.
				o.OTLP, o.OTLPInterval, o.OTLPTimeout = "http://127.0.0.1:1", time.Hour, 100*time.Millisecond
			}
			e, err := New(o)
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			for i := range rs {
				e.Result(&rs[i])
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				e.Result(&rs[i%len(rs)])
			}
		})
	}
}

// startBenchTarget starts the test binary as the target process.
func startBenchTarget(b *testing.B) (target, otlpURL string) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchTargetEnv+"=1")
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
		stdin.Close() // the target exits when its stdin closes
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	f := strings.Fields(line)
	if err != nil || len(f) != 2 {
		b.Fatalf("the target printed %q: %v", line, err)
	}
	return f[0], f[1]
}

// benchRun runs one variant and returns the process's CPU time during the
// run and the requests it made.
func benchRun(b *testing.B, variant, target, otlpURL string, users int, d time.Duration, dir string) (time.Duration, int64) {
	plan, err := load.QuickPlan(target, users, float64(users), d)
	if err != nil {
		b.Fatal(err)
	}
	w := &cpuWatch{}
	o := runner.Options{Dir: dir, NoDiagnose: true, Observers: []runner.Observer{w}}
	var e *Exporter
	if variant != "plain" {
		mo := Options{Run: variant, Target: plan.Target}
		if variant == "otlp" {
			mo.OTLP = otlpURL
		}
		if e, err = New(mo); err != nil {
			b.Fatal(err)
		}
		o.Observers = append(o.Observers, e)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if variant == "scraped" || variant == "otlp" {
		srv := httptest.NewServer(e.Handler())
		defer srv.Close()
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if resp, err := http.Get(srv.URL); err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				}
			}
		}()
	}
	if _, err := runner.Run(ctx, plan, o); err != nil {
		b.Fatal(err)
	}
	if e != nil {
		if err := e.Close(); err != nil {
			b.Fatal(err)
		}
	}
	return w.last - w.start, w.reqs
}

// cpuWatch reads the process's CPU time when the load starts and at each
// second the recorder closes, with the requests made by then: the cost of
// the load alone, without the run's setup and its final files.
type cpuWatch struct {
	start, last time.Duration
	reqs        int64
}

func (w *cpuWatch) Result(*stampede.Result) {}
func (w *cpuWatch) Second(s *runner.SecondView) {
	w.last, w.reqs = cpuTime(), s.Total.TotalRequests
}
func (w *cpuWatch) Sample(stampede.Sample)     {}
func (w *cpuWatch) Evidence(stampede.Evidence) {}
func (w *cpuWatch) LoadChanged(c runner.LoadChange) {
	if c.By == "plan" {
		w.start = cpuTime()
	}
}
func (w *cpuWatch) End(*runner.Result) {}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
