// Package host is the probe of the machine the target runs on, read from
// /proc: CPU use, load, memory, the target process' CPU and TCP listen
// queue overflows. The parsers take file contents, so they are tested from
// testdata and fuzzed.
//
// Metric keys (source "host"), as in docs/run-directory.md:
//
//	cpu_busy_pct, cpu_iowait_pct, cpu_steal_pct   percent of all cores,
//	                                              since the previous reading
//	cores, load1, mem_used_pct, mem_available_bytes
//	proc_cpu_pct           the target pid's CPU, 100 = one core (only
//	                       when Options.PID is set)
//	listen_overflows_delta, listen_drops_delta    TcpExt counters
//
// Rates and deltas start with the second reading.
package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/probe"
)

var _ probe.Probe = (*Probe)(nil)

// clockTicks is USER_HZ, the unit of /proc CPU times: 100 on every Linux
// architecture Go supports.
const clockTicks = 100

// Options configures a Probe. The zero value is valid.
type Options struct {
	// Proc is the proc filesystem's mount point; empty means "/proc".
	Proc string
	// PID is the target's process id; 0 means none.
	PID int
}

// Probe reads /proc. Create it with New.
type Probe struct {
	opts Options

	mu       sync.Mutex
	prevAt   time.Time
	prevCPU  CPU
	prevProc float64 // utime+stime ticks
	prevNet  Netstat
	hasPrev  bool
	procPrev bool
}

// New returns a host probe.
func New(opts Options) *Probe {
	if opts.Proc == "" {
		opts.Proc = "/proc"
	}
	return &Probe{opts: opts}
}

// Name returns "host".
func (p *Probe) Name() string { return "host" }

// Close does nothing: the probe holds no resources between readings.
func (p *Probe) Close() error { return nil }

func (p *Probe) read(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(p.opts.Proc, name))
}

// Sample reads /proc/stat, /proc/loadavg, /proc/meminfo, /proc/net/netstat
// and, with a PID, /proc/PID/stat. A target process that is gone or
// unreadable leaves out proc_cpu_pct and says why in Info["pid_error"].
func (p *Probe) Sample(_ context.Context, now time.Time) (stampede.Sample, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, err := p.read("stat")
	if err != nil {
		return stampede.Sample{}, fmt.Errorf("host probe: %w", err)
	}
	cpu, err := ParseStat(b)
	if err != nil {
		return stampede.Sample{}, fmt.Errorf("host probe: /proc/stat: %w", err)
	}
	v := map[string]float64{"cores": float64(cpu.Cores)}
	var info map[string]string
	if b, err := p.read("loadavg"); err == nil {
		if l, err := ParseLoadavg(b); err == nil {
			v["load1"] = l
		}
	}
	if b, err := p.read("meminfo"); err == nil {
		if m, err := ParseMeminfo(b); err == nil && m.Total > 0 {
			v["mem_used_pct"] = 100 * float64(m.Total-m.Available) / float64(m.Total)
			v["mem_available_bytes"] = float64(m.Available)
		}
	}
	var net Netstat
	if b, err := p.read("net/netstat"); err == nil {
		net, _ = ParseNetstat(b)
	}
	if p.hasPrev {
		// Counters only grow; if one went back (a fake or odd /proc), skip.
		if d := float64(cpu.Total()) - float64(p.prevCPU.Total()); d > 0 &&
			cpu.Busy() >= p.prevCPU.Busy() && cpu.IOWait >= p.prevCPU.IOWait && cpu.Steal >= p.prevCPU.Steal {
			v["cpu_busy_pct"] = 100 * float64(cpu.Busy()-p.prevCPU.Busy()) / d
			v["cpu_iowait_pct"] = 100 * float64(cpu.IOWait-p.prevCPU.IOWait) / d
			v["cpu_steal_pct"] = 100 * float64(cpu.Steal-p.prevCPU.Steal) / d
		}
		if net.TcpExt != nil && p.prevNet.TcpExt != nil {
			v["listen_overflows_delta"] = probe.Delta(float64(net.TcpExt["ListenOverflows"]), float64(p.prevNet.TcpExt["ListenOverflows"]))
			v["listen_drops_delta"] = probe.Delta(float64(net.TcpExt["ListenDrops"]), float64(p.prevNet.TcpExt["ListenDrops"]))
		}
	}
	if p.opts.PID > 0 {
		ticks, err := p.procTicks()
		switch {
		case err != nil:
			info = map[string]string{"pid_error": err.Error()}
			p.procPrev = false
		case p.procPrev && now.After(p.prevAt):
			cpuSeconds := probe.Delta(ticks, p.prevProc) / clockTicks
			v["proc_cpu_pct"] = 100 * cpuSeconds / now.Sub(p.prevAt).Seconds()
			fallthrough
		default:
			p.prevProc, p.procPrev = ticks, true
		}
	}
	p.prevAt, p.prevCPU, p.prevNet, p.hasPrev = now, cpu, net, true
	return stampede.Sample{Time: now, Source: "host", Values: v, Info: info}, nil
}

func (p *Probe) procTicks() (float64, error) {
	b, err := p.read(strconv.Itoa(p.opts.PID) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("pid %d: %w", p.opts.PID, err)
	}
	ps, err := ParsePidStat(b)
	if err != nil {
		return 0, fmt.Errorf("pid %d: %w", p.opts.PID, err)
	}
	return float64(ps.UTime + ps.STime), nil
}

// CPU holds the aggregate "cpu" line of /proc/stat, in clock ticks, and
// the number of per-core lines.
type CPU struct {
	User, Nice, System, Idle, IOWait, IRQ, SoftIRQ, Steal uint64
	Cores                                                 int
}

// Total returns the ticks of every state. Guest time is already counted
// in User and Nice, so it is not added again.
func (c CPU) Total() uint64 {
	return c.User + c.Nice + c.System + c.Idle + c.IOWait + c.IRQ + c.SoftIRQ + c.Steal
}

// Busy returns the ticks spent neither idle nor waiting for I/O.
func (c CPU) Busy() uint64 { return c.Total() - c.Idle - c.IOWait }

var errFormat = errors.New("unexpected format")

// ParseStat parses /proc/stat. Fields missing on old kernels (iowait,
// steal) are zero.
func ParseStat(b []byte) (CPU, error) {
	var c CPU
	found := false
	for line := range bytes.Lines(b) {
		f := strings.Fields(string(line))
		if len(f) == 0 || !strings.HasPrefix(f[0], "cpu") {
			continue
		}
		if f[0] != "cpu" {
			if _, err := strconv.Atoi(f[0][3:]); err == nil {
				c.Cores++
			}
			continue
		}
		if len(f) < 5 {
			return CPU{}, fmt.Errorf("cpu line: %w", errFormat)
		}
		dst := []*uint64{&c.User, &c.Nice, &c.System, &c.Idle, &c.IOWait, &c.IRQ, &c.SoftIRQ, &c.Steal}
		for i, p := range dst {
			if i+1 >= len(f) {
				break
			}
			n, err := strconv.ParseUint(f[i+1], 10, 64)
			if err != nil {
				return CPU{}, fmt.Errorf("cpu line: %w", err)
			}
			// Real tick counts are far below 2^53 (28 million years at
			// 100 Hz); a larger one is not a real line, and could make the
			// sums overflow.
			if n > 1<<53 {
				return CPU{}, fmt.Errorf("cpu line: %w", errFormat)
			}
			*p = n
		}
		found = true
	}
	if !found {
		return CPU{}, fmt.Errorf("no cpu line: %w", errFormat)
	}
	return c, nil
}

// ParseLoadavg returns the one-minute load average of /proc/loadavg.
func ParseLoadavg(b []byte) (float64, error) {
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, fmt.Errorf("loadavg: %w", errFormat)
	}
	l, err := strconv.ParseFloat(f[0], 64)
	if err != nil || l < 0 || math.IsNaN(l) || math.IsInf(l, 0) {
		return 0, fmt.Errorf("loadavg: %w", errFormat)
	}
	return l, nil
}

// Mem holds /proc/meminfo's totals, in bytes.
type Mem struct {
	Total, Available uint64
}

// ParseMeminfo parses /proc/meminfo ("MemTotal:  16314480 kB"). Kernels
// before 3.14 have no MemAvailable; MemFree+Buffers+Cached stands in.
func ParseMeminfo(b []byte) (Mem, error) {
	kv := map[string]uint64{}
	for line := range bytes.Lines(b) {
		k, rest, ok := strings.Cut(string(line), ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil || n > 1<<53 {
			continue
		}
		if len(f) > 1 && f[1] == "kB" {
			n *= 1024
		}
		kv[k] = n
	}
	total, ok := kv["MemTotal"]
	if !ok {
		return Mem{}, fmt.Errorf("meminfo: no MemTotal: %w", errFormat)
	}
	avail, ok := kv["MemAvailable"]
	if !ok {
		avail = kv["MemFree"] + kv["Buffers"] + kv["Cached"]
	}
	return Mem{Total: total, Available: min(avail, total)}, nil
}

// PidStat holds the CPU times of /proc/PID/stat, in clock ticks.
type PidStat struct {
	UTime, STime uint64
}

// ParsePidStat parses /proc/PID/stat. The command name (field 2) is in
// parentheses and may itself contain spaces and parentheses, so fields are
// counted from the last ')'.
func ParsePidStat(b []byte) (PidStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return PidStat{}, fmt.Errorf("pid stat: %w", errFormat)
	}
	f := strings.Fields(string(b[i+1:]))
	// After ')': state is field 3, utime field 14, stime field 15.
	if len(f) < 13 {
		return PidStat{}, fmt.Errorf("pid stat: %w", errFormat)
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return PidStat{}, fmt.Errorf("pid stat: %w", err)
	}
	return PidStat{UTime: u, STime: s}, nil
}

// Netstat holds /proc/net/netstat's counters by protocol line ("TcpExt")
// and name ("ListenOverflows").
type Netstat struct {
	TcpExt map[string]uint64
}

// ParseNetstat parses /proc/net/netstat: pairs of lines, a header
// ("TcpExt: SyncookiesSent ...") then values ("TcpExt: 0 ...").
func ParseNetstat(b []byte) (Netstat, error) {
	var n Netstat
	var header []string
	for line := range bytes.Lines(b) {
		f := strings.Fields(string(line))
		if len(f) == 0 || f[0] != "TcpExt:" {
			continue
		}
		if header == nil {
			header = f[1:]
			continue
		}
		n.TcpExt = map[string]uint64{}
		for i, name := range header {
			if i+1 < len(f) {
				if v, err := strconv.ParseUint(f[i+1], 10, 64); err == nil {
					n.TcpExt[name] = v
				}
			}
		}
		return n, nil
	}
	return n, fmt.Errorf("netstat: no TcpExt values: %w", errFormat)
}
