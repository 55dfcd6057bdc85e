package k8s

import (
	"fmt"
	"math"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/stampede-load/stampede/internal/load"
)

// The measured costs the sizing starts from, taken on this project's
// 2-core machine (README "Running on Kubernetes"; scripts/bench-peers).
// Nothing here was measured on a cluster.
const (
	// cpuPerRequest is the generator's CPU per request: a login flow (GET
	// the form, POST it with its CSRF token, GET the dashboard) cost
	// 0.08–0.12 CPU-ms, so at most 0.04 ms a request, plain HTTP on
	// loopback with small pages. The pods get twice that (cpuHeadroom)
	// for TLS, larger pages and a busier node, which were not measured.
	cpuPerRequest = 40 * time.Microsecond
	cpuHeadroom   = 2
	// cpuBase is what a segment spends besides its requests: the
	// recorder's second ticks, the self-watch, segment 0's probes.
	cpuBase = 100 // millicores

	// memPerUser is the peak RSS per logged-in browser user in think time
	// (login by form, two cookies, one kept-alive connection each, no
	// goroutine while it thinks): 4.3 KB a user from 1,000 to 19,000 users
	// of the seed scenario against the lab at GOGC=50 (stampede's own from
	// 5,000 users in think time), 5.4 KB at Go's default (scripts/bench-
	// peers), plain HTTP. An idle TLS connection also keeps its record
	// buffers, not measured here: the sizing counts about six times the
	// default's figure.
	memPerUser = 32 << 10
	// memBase is a segment's RSS besides its users and its history: 23 MB
	// were measured with one user; the rest is room for the final files.
	memBase = 64 << 20
	// memPerSecond is what a second of the run adds (the per-second
	// history, the percentiles' keys): peak RSS grew 3.3 MB from a 10 s to
	// a 150 s run at one endpoint, 23 KB a second.
	memPerSecond = 32 << 10
	// memPerRequest is what the merge's diagnosis holds per request: it
	// loads every request, and "stampede diagnose" peaked 380 to 414
	// bytes a request higher for 78,000–144,000 requests than for
	// 11,000–28,000.
	memPerRequest = 512
	// bytesPerRequest is the results volume's share of one request:
	// requests.csv took 65 bytes a row; a request is written by its
	// segment and again by the merge, with the Locust CSVs, timeline
	// and report around them.
	bytesPerRequest = 200

	// assumedLatency bounds a user's rate when the scenario has no think
	// time: then the server's speed, which no scenario states, sets the
	// rate, and 10 ms a response is assumed.
	assumedLatency = 10 * time.Millisecond
)

// maxPodRate is the most requests a second a one-core pod was measured to
// make: 1 s / cpuPerRequest.
var maxPodRate = float64(time.Second / cpuPerRequest)

// Floors and ratios of the pods' resources.
var (
	minCPU         = resource.MustParse("250m")
	minMemory      = resource.MustParse("128Mi")
	minCPULimit    = resource.MustParse("1")
	minMergeMemory = resource.MustParse("256Mi")
	mergeCPU       = resource.MustParse("500m")
	mergeCPULimit  = resource.MustParse("2")
	minResults     = resource.MustParse("1Gi")
	waitResources  = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
	}
)

// Sizing is the estimate a run's pods are sized from. The formula:
//
//	users per pod   = ceil(users / N)                     (open model: max_users)
//	requests/s/pod  = closed, think T > 0: users/pod × steps per task / mean T
//	                                       + spawn_rate/N × on_start steps
//	                  closed, no think:    users/pod × 100/s (10 ms a response
//	                                       assumed), at most 25,000/s
//	                  open:                arrival_rate/N × (steps per task + on_start steps)
//	CPU request     = 100m + requests/s/pod × 0.04 ms × 2, at least 250m;
//	                  limit twice that, at least 1 core
//	memory request  = 64 MiB + users/pod × 32 KiB + duration in s × 32 KiB,
//	                  at least 128 MiB; limit twice that
//	merge memory    = 128 MiB + requests of the run × 512 B, at least 256 MiB; limit twice that
//	results volume  = requests of the run × 200 B, at least 1 GiB
//
// where steps per task is the weighted mean of the tasks' steps and the
// requests of the run are requests/s/pod × N × duration. Each estimate is
// an upper bound: it counts no time for the responses.
type Sizing struct {
	UsersPerPod int
	// RatePerPod is the estimated requests a second of the busiest pod.
	RatePerPod float64
	// Requests is the estimated requests of the whole run.
	Requests float64
	// Assumed says what the estimate had to assume ("" when nothing).
	Assumed string
	// Pod, Merge are the resources of a segment's pod and of the merge.
	Pod, Merge corev1.ResourceRequirements
	// Results is the size of the results volume created when none is given.
	Results resource.Quantity
}

// size estimates the resources of a plan run in n segments. cpu and memory,
// when not empty, replace the segment pods' estimated requests.
func size(p *load.Plan, n int, cpu, memory string) (Sizing, error) {
	var s Sizing
	taskSteps, weights := 0.0, 0
	for _, t := range p.Tasks {
		taskSteps += float64(t.Weight * len(t.Steps))
		weights += t.Weight
	}
	if weights > 0 {
		taskSteps /= float64(weights)
	}
	loginSteps := float64(len(p.OnStart))
	s.UsersPerPod = ceilDiv(p.Users, n)
	if p.Model == load.Open {
		s.RatePerPod = p.ArrivalRate / float64(n) * (taskSteps + loginSteps)
	} else if think := (p.ThinkMin + p.ThinkMax) / 2; think > 0 {
		s.RatePerPod = float64(s.UsersPerPod)*taskSteps/think.Seconds() + p.SpawnRate/float64(n)*loginSteps
	} else {
		s.RatePerPod = min(float64(s.UsersPerPod)/assumedLatency.Seconds(), maxPodRate)
		s.Assumed = fmt.Sprintf("the scenario has no think time, so the server sets the rate: %v a response assumed, at most %.0f requests/s a pod", assumedLatency, maxPodRate)
	}
	s.Requests = s.RatePerPod * float64(n) * p.Duration.Seconds()

	cpuReq := atLeast(milli(cpuBase+s.RatePerPod*cpuPerRequest.Seconds()*1000*cpuHeadroom), minCPU)
	memReq := atLeast(mebi(memBase+float64(s.UsersPerPod)*memPerUser+p.Duration.Seconds()*memPerSecond), minMemory)
	var err error
	if cpu != "" {
		if cpuReq, err = resource.ParseQuantity(cpu); err != nil || cpuReq.Sign() <= 0 {
			return s, fmt.Errorf("cpu %q: want a CPU quantity such as 500m or 2", cpu)
		}
	}
	if memory != "" {
		if memReq, err = resource.ParseQuantity(memory); err != nil || memReq.Sign() <= 0 {
			return s, fmt.Errorf("memory %q: want a memory quantity such as 512Mi or 2Gi", memory)
		}
	}
	s.Pod = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: cpuReq, corev1.ResourceMemory: memReq},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: atLeast(times(cpuReq, 2), minCPULimit), corev1.ResourceMemory: times(memReq, 2)},
	}
	mergeMem := atLeast(mebi(128<<20+s.Requests*memPerRequest), minMergeMemory)
	s.Merge = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: mergeCPU, corev1.ResourceMemory: mergeMem},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: mergeCPULimit, corev1.ResourceMemory: times(mergeMem, 2)},
	}
	s.Results = atLeast(gibi(s.Requests*bytesPerRequest), minResults)
	return s, nil
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// milli rounds millicores up to a multiple of 50m; a float's last bit
// (1200.0000000000002) does not round up.
func milli(m float64) resource.Quantity {
	return *resource.NewMilliQuantity(int64(math.Ceil(m/50-1e-9))*50, resource.DecimalSI)
}

// mebi rounds bytes up to whole MiB.
func mebi(b float64) resource.Quantity {
	return *resource.NewQuantity(int64(math.Ceil(b/(1<<20)))<<20, resource.BinarySI)
}

// gibi rounds bytes up to whole GiB.
func gibi(b float64) resource.Quantity {
	return *resource.NewQuantity(int64(math.Ceil(b/(1<<30)))<<30, resource.BinarySI)
}

func times(q resource.Quantity, k int64) resource.Quantity {
	if q.Format == resource.DecimalSI && q.MilliValue() < 1000*1000 {
		return *resource.NewMilliQuantity(q.MilliValue()*k, q.Format)
	}
	return *resource.NewQuantity(q.Value()*k, q.Format)
}

// atLeast returns q, or floor when q is smaller.
func atLeast(q, floor resource.Quantity) resource.Quantity {
	if q.Cmp(floor) >= 0 {
		return q
	}
	return floor
}
