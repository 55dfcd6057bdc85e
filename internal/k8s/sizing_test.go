package k8s

import (
	"math"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/stampede-load/stampede/internal/load"
)

func readPlan(t *testing.T, scenario string) *load.Plan {
	t.Helper()
	in, err := Read(filepath.Join("testdata", scenario), "")
	if err != nil {
		t.Fatal(err)
	}
	return in.Plan
}

func TestSize(t *testing.T) {
	tests := []struct {
		name      string
		scenario  string
		users     int // replaces the scenario's when not 0
		segments  int
		cpu, mem  string
		usersPod  int
		rate      float64 // requests/s per pod
		assumed   bool
		cpuReq    string
		cpuLim    string
		memReq    string
		memLim    string
		mergeMem  string
		resultsGB int64
	}{
		// 25 users × 1.375 steps per task / 2 s of think + 2.5 spawned a
		// second × 2 login steps; everything at its floor.
		{name: "seed in 4", scenario: "seed.yaml", segments: 4, usersPod: 25, rate: 22.1875,
			cpuReq: "250m", cpuLim: "1", memReq: "128Mi", memLim: "256Mi", mergeMem: "256Mi", resultsGB: 1},
		// 5,000 users a pod: 64 MiB + 5,000 × 32 KiB + 60 s × 32 KiB = 223 MiB;
		// 3,447.5 requests/s × 0.08 ms + 100m = 376m, rounded to 400m.
		{name: "10,000 users in 2", scenario: "seed.yaml", users: 10000, segments: 2, usersPod: 5000, rate: 3447.5,
			cpuReq: "400m", cpuLim: "1", memReq: "223Mi", memLim: "446Mi", mergeMem: "331Mi", resultsGB: 1},
		// The README's table: one pod of 1,000, 5,000 and 20,000 users.
		{name: "1,000 users in 1", scenario: "seed.yaml", users: 1000, segments: 1, usersPod: 1000, rate: 707.5,
			cpuReq: "250m", cpuLim: "1", memReq: "128Mi", memLim: "256Mi", mergeMem: "256Mi", resultsGB: 1},
		{name: "5,000 users in 1", scenario: "seed.yaml", users: 5000, segments: 1, usersPod: 5000, rate: 3457.5,
			cpuReq: "400m", cpuLim: "1", memReq: "223Mi", memLim: "446Mi", mergeMem: "256Mi", resultsGB: 1},
		// 20,000 users in one pod: 13,770 requests/s need 1.25 cores.
		{name: "20,000 users in 1", scenario: "seed.yaml", users: 20000, segments: 1, usersPod: 20000, rate: 13770,
			cpuReq: "1250m", cpuLim: "2500m", memReq: "691Mi", memLim: "1382Mi", mergeMem: "532Mi", resultsGB: 1},
		// 200 flows/s over 3 pods × (1.75 task steps + 0 login steps).
		{name: "open in 3", scenario: "open.yaml", segments: 3, usersPod: 667, rate: 116.6667,
			cpuReq: "250m", cpuLim: "1", memReq: "128Mi", memLim: "256Mi", mergeMem: "256Mi", resultsGB: 1},
		// No think: 150 users at an assumed 10 ms a response.
		{name: "no think", scenario: "nothink.yaml", segments: 2, usersPod: 150, rate: 15000, assumed: true,
			cpuReq: "1300m", cpuLim: "2600m", memReq: "128Mi", memLim: "256Mi", mergeMem: "4523Mi", resultsGB: 2},
		{name: "no think, one user a pod", scenario: "nothink.yaml", users: 2, segments: 2, usersPod: 1, rate: 100, assumed: true,
			cpuReq: "250m", cpuLim: "1", memReq: "128Mi", memLim: "256Mi", mergeMem: "256Mi", resultsGB: 1},
		{name: "no think, capped at a core's rate", scenario: "nothink.yaml", users: 1000, segments: 1, usersPod: 1000, rate: 25000, assumed: true,
			cpuReq: "2100m", cpuLim: "4200m", memReq: "128Mi", memLim: "256Mi", mergeMem: "3791Mi", resultsGB: 2},
		{name: "overrides", scenario: "seed.yaml", segments: 4, cpu: "1500m", mem: "3Gi", usersPod: 25, rate: 22.1875,
			cpuReq: "1500m", cpuLim: "3", memReq: "3Gi", memLim: "6Gi", mergeMem: "256Mi", resultsGB: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := readPlan(t, tt.scenario)
			if tt.users != 0 {
				p.Users = tt.users
			}
			s, err := size(p, tt.segments, tt.cpu, tt.mem)
			if err != nil {
				t.Fatal(err)
			}
			if s.UsersPerPod != tt.usersPod || math.Abs(s.RatePerPod-tt.rate) > 0.001 || (s.Assumed != "") != tt.assumed {
				t.Errorf("users/pod %d, rate/pod %.4f, assumed %q; want %d, %.4f, assumed %v", s.UsersPerPod, s.RatePerPod, s.Assumed, tt.usersPod, tt.rate, tt.assumed)
			}
			if want := s.RatePerPod * float64(tt.segments) * p.Duration.Seconds(); s.Requests != want {
				t.Errorf("requests = %.0f, want %.0f", s.Requests, want)
			}
			for _, q := range []struct{ what, got, want string }{
				{"cpu request", quantity(s.Pod.Requests, corev1.ResourceCPU), tt.cpuReq},
				{"cpu limit", quantity(s.Pod.Limits, corev1.ResourceCPU), tt.cpuLim},
				{"memory request", quantity(s.Pod.Requests, corev1.ResourceMemory), tt.memReq},
				{"memory limit", quantity(s.Pod.Limits, corev1.ResourceMemory), tt.memLim},
				{"merge memory", quantity(s.Merge.Requests, corev1.ResourceMemory), tt.mergeMem},
			} {
				if q.got != q.want {
					t.Errorf("%s = %s, want %s", q.what, q.got, q.want)
				}
			}
			if got := s.Results.Value() >> 30; got != tt.resultsGB {
				t.Errorf("results volume = %s, want %dGi", s.Results.String(), tt.resultsGB)
			}
		})
	}
}

func quantity(l corev1.ResourceList, name corev1.ResourceName) string {
	q := l[name]
	return q.String()
}
