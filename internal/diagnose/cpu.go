package diagnose

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/stampede-load/stampede"
)

// Who burns the CPU. The host probe reads the CPU of every process group
// ("cpu_pct:postgres", "cpu_pct:app", "cpu_pct:stampede", …; 100 = one
// core), as the Prometheus probe does from process-exporter. A busy
// machine is a symptom; the root is what its main consumer is doing:
// database backends on expensive plans (slow-query), the app's workers
// hashing passwords (password-hash-cpu) or doing their own work, the
// generator itself (load-generator-saturation). cpu-saturation is a root
// only when no single consumer explains it.

// groupNames are how the evidence names the groups.
var groupNames = map[string]string{
	"postgres": "PostgreSQL", "pgbouncer": "PgBouncer", "redis": "Redis", "nginx": "nginx",
	"haproxy": "HAProxy", "envoy": "Envoy", "app": "app", "stampede": "stampede", "other": "other processes",
	"background": "background processes (nice)",
}

// cpuShare is one group's CPU over some samples: 100 = one core.
type cpuShare struct {
	group string
	pct   float64
}

// cpuSplit is the CPU of the host by consumer over some windows: the mean
// of each group over the host samples in them (all samples when ws is nil).
type cpuSplit struct {
	shares []cpuShare // largest first
	cores  float64
	busy   float64 // the host's busy CPU but the background's, 100 = one core
	// background is the CPU of processes at a lower priority (nice > 0).
	background float64
	n          int    // samples read
	app        string // the app group's commands (Info cpu_app)
	peak       *stampede.Sample
}

// cpuSplitIn reads the split from the host samples inside ws that keep
// says are relevant (nil: all of them).
func (c *ctx) cpuSplitIn(ws []window, keep func(*stampede.Sample) bool) cpuSplit {
	var sp cpuSplit
	sum := map[string]float64{}
	busy := 0.0
	for _, s := range c.samples["host"] {
		if s.Err != "" || (ws != nil && !inWindows(s.Time, ws)) || (keep != nil && !keep(s)) {
			continue
		}
		has := false
		for k, v := range s.Values {
			if g, ok := strings.CutPrefix(k, "cpu_pct:"); ok {
				if g == "stampede" && c.sharedTarget() {
					// The target runs inside stampede's process (the
					// demo's lab): its CPU is the app's.
					g = "app"
				}
				sum[g] += v
				has = true
			}
		}
		if !has {
			continue
		}
		sp.n++
		cores := s.Values["cores"]
		sp.cores = max(sp.cores, cores)
		busy += s.Values["cpu_busy_pct"] * cores
		if a := s.Info["cpu_app"]; a != "" {
			sp.app = a
		}
		if sp.peak == nil || s.Values["cpu_busy_pct"] > sp.peak.Values["cpu_busy_pct"] {
			sp.peak = s
		}
	}
	if sp.n == 0 {
		return sp
	}
	// Processes at a lower priority run on the cycles the others leave:
	// they compete with nobody, so they are not a consumer, and the
	// host's busy CPU read here already leaves them out (see
	// withoutBackground).
	sp.background = sum["background"] / float64(sp.n)
	sp.busy = busy / float64(sp.n)
	for g, v := range sum {
		if g == "background" {
			continue
		}
		// Raw process-exporter groups come as well as the mapped ones;
		// the mapped ones are the known names.
		if _, known := groupNames[g]; !known {
			continue
		}
		if m := v / float64(sp.n); m >= 0.5 {
			sp.shares = append(sp.shares, cpuShare{g, m})
		}
	}
	sort.Slice(sp.shares, func(i, j int) bool {
		if sp.shares[i].pct != sp.shares[j].pct {
			return sp.shares[i].pct > sp.shares[j].pct
		}
		return sp.shares[i].group < sp.shares[j].group
	})
	return sp
}

// of returns a group's CPU, 100 = one core.
func (sp cpuSplit) of(group string) float64 {
	for _, s := range sp.shares {
		if s.group == group {
			return s.pct
		}
	}
	return 0
}

// total is the CPU of every group read.
func (sp cpuSplit) total() float64 {
	t := 0.0
	for _, s := range sp.shares {
		t += s.pct
	}
	return t
}

// dominantShare is the part of the busy CPU one consumer must hold to
// explain the host's saturation by itself.
const dominantShare = 0.5

// dominant returns the group that burns most of the CPU, when it holds
// dominantShare or more of it and is not "other".
func (sp cpuSplit) dominant() (string, bool) {
	if len(sp.shares) == 0 {
		return "", false
	}
	top := sp.shares[0]
	tot := max(sp.total(), sp.busy)
	if tot <= 0 || top.pct < dominantShare*tot || top.group == "other" {
		return "", false
	}
	return top.group, true
}

// text is the split as the evidence prints it: "PostgreSQL 71% of 2
// cores, app 18% (puma), stampede 9%".
func (sp cpuSplit) text() string {
	if len(sp.shares) == 0 {
		return ""
	}
	capacity := max(sp.cores, 1) * 100
	var parts []string
	for i, s := range sp.shares {
		if i == 5 {
			break
		}
		p := fmt.Sprintf("%s %.0f%%", groupNames[s.group], 100*s.pct/capacity)
		if i == 0 {
			p += fmt.Sprintf(" of %s cores", strconv.FormatFloat(sp.cores, 'f', -1, 64))
		}
		if s.group == "app" && sp.app != "" {
			p += " (" + sp.app + ")"
		}
		parts = append(parts, p)
	}
	if sp.background >= 5 {
		parts = append(parts, fmt.Sprintf("left out: background processes at a lower priority %.0f%% (they take only spare cycles)", 100*sp.background/capacity))
	}
	return strings.Join(parts, ", ")
}

// splitRef quotes the split for a finding's evidence.
func (sp cpuSplit) ref(what string) stampede.EvidenceRef {
	text := fmt.Sprintf("host CPU by consumer %s (mean of %d samples, host %.0f%% busy): %s", what, sp.n, sp.busy/max(sp.cores, 1), sp.text())
	if sp.peak != nil {
		if top := sp.peak.Info["cpu_top"]; top != "" {
			var procs []string
			for _, l := range strings.Split(top, "\n") {
				f := strings.Split(l, "\t")
				if len(f) >= 4 {
					procs = append(procs, fmt.Sprintf("%s %s (%s) %s%%", f[1], f[0], f[2], f[3]))
				}
				if len(procs) == 3 {
					break
				}
			}
			if len(procs) > 0 {
				text += "; heaviest processes: " + strings.Join(procs, ", ")
			}
		}
		return probeRef(sp.peak, text)
	}
	return noteRef("host", text)
}

// appCPU returns the app's CPU in a host sample, 100 = one core: the
// target's process tree when its pid was given, else the app group.
func appCPU(s *stampede.Sample) float64 {
	return max(s.Values["proc_cpu_pct"], s.Values["cpu_pct:app"])
}

// ashCPU sums the PostgreSQL probe's Active Session History over the
// samples in ws: for each query, the samples of backends running it on the
// CPU (no wait event). The heaviest first.
func (c *ctx) ashCPU(ws []window) []stmtLoad {
	by := map[string]*stmtLoad{}
	var out []*stmtLoad
	for _, s := range c.samples["postgres"] {
		if s.Err != "" || !inWindows(s.Time, ws) || s.Info["active"] == "" {
			continue
		}
		for _, l := range strings.Split(s.Info["active"], "\n") {
			f := strings.SplitN(l, "\t", 3)
			if len(f) != 3 || f[1] != "CPU" {
				continue
			}
			n, err := strconv.ParseFloat(f[0], 64)
			if err != nil || n <= 0 {
				continue
			}
			x := by[f[2]]
			if x == nil {
				x = &stmtLoad{query: f[2], sample: s}
				by[f[2]] = x
				out = append(out, x)
			}
			x.backendSeconds += n
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].backendSeconds > out[j].backendSeconds })
	res := make([]stmtLoad, len(out))
	for i, x := range out {
		res[i] = *x
	}
	return res
}

// stmtLoad is a query's database time on the CPU, from ASH samples.
type stmtLoad struct {
	query          string
	backendSeconds float64
	sample         *stampede.Sample
}

// seqScanRef sums the PostgreSQL probe's sequential scans by table over
// the samples in ws (pg_stat_user_tables: the tables whose scans read the
// most rows) and quotes the heaviest: a table read whole, again and again,
// is the mark of a missing index.
func (c *ctx) seqScanRef(ws []window) (stampede.EvidenceRef, bool) {
	type tab struct{ scans, rows, idx float64 }
	by := map[string]*tab{}
	var at *stampede.Sample
	for _, s := range c.samples["postgres"] {
		if s.Err != "" || !inWindows(s.Time, ws) || s.Info["seq_scans"] == "" {
			continue
		}
		for _, l := range strings.Split(s.Info["seq_scans"], "\n") {
			f := strings.Split(l, "\t")
			if len(f) != 4 {
				continue
			}
			n, _ := strconv.ParseFloat(f[1], 64)
			r, _ := strconv.ParseFloat(f[2], 64)
			x, _ := strconv.ParseFloat(f[3], 64)
			t := by[f[0]]
			if t == nil {
				t = &tab{}
				by[f[0]] = t
			}
			t.scans, t.rows, t.idx = t.scans+n, t.rows+r, t.idx+x
			if at == nil {
				at = s
			}
		}
	}
	best, bestRows := "", 0.0
	for name, t := range by {
		if t.rows > bestRows || (t.rows == bestRows && name < best) {
			best, bestRows = name, t.rows
		}
	}
	if best == "" || bestRows < 100000 {
		return stampede.EvidenceRef{}, false
	}
	t := by[best]
	return probeRef(at, fmt.Sprintf("pg_stat_user_tables: %.0f sequential scans of %s read %.0f rows in these seconds (%.0f rows a scan, %.0f index scans): the table is read whole again and again — the mark of a missing index", t.scans, best, t.rows, t.rows/max(t.scans, 1), t.idx)), true
}

// sharedTarget reports whether the target ran inside the generator's own
// process (the generator's samples say so: the demo's embedded lab).
func (c *ctx) sharedTarget() bool {
	if c.shared == nil {
		v := false
		for _, s := range c.samples["generator"] {
			if s.Info["shared_with_target"] == "true" {
				v = true
				break
			}
		}
		c.shared = &v
	}
	return *c.shared
}
