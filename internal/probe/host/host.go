// Package host is the probe of the machine the target runs on, read from
// /proc: CPU use, load, memory, who uses the CPU (by process group), the
// CPU of the target process and its descendants, the accept queue of the
// target's listening port, and TCP listen queue overflows. The parsers take
// file contents, so they are tested from testdata and fuzzed.
//
// Metric keys (source "host"), as in docs/run-directory.md:
//
//	cpu_busy_pct, cpu_iowait_pct, cpu_steal_pct   percent of all cores,
//	                                              since the previous reading
//	cores, load1, mem_used_pct, mem_available_bytes
//	cpu_pct:GROUP          CPU of each process group since the previous
//	                       reading, 100 = one core: postgres, pgbouncer,
//	                       redis, nginx, haproxy, envoy, app, stampede,
//	                       other (see below); a group with no process is
//	                       absent
//	pg_backends            PostgreSQL client backends, by process title
//	pg_backends_busy       those whose title is not idle ("SELECT",
//	                       "UPDATE waiting"); both absent when the titles
//	                       show no activity (update_process_title off)
//	proc_cpu_pct           CPU of the target pid and all its descendants,
//	                       100 = one core (only when Options.PID is set)
//	proc_count             processes in that tree
//	listen_queue           connections waiting in the accept queue of the
//	                       sockets listening on Options.Port (summed over
//	                       IPv4 and IPv6 and SO_REUSEPORT sockets)
//	listen_backlog         the limit of that queue (listen's backlog, capped
//	                       by net.core.somaxconn), summed likewise
//	listen_overflows_delta, listen_drops_delta    TcpExt counters
//
// Info keys: cpu_app (the app group's command names, sorted, ", "
// between them), cpu_top (up to 5 processes that used the most CPU since
// the previous reading, heaviest first, one line each
// "PID<TAB>COMM<TAB>GROUP<TAB>CPU_PCT", command names only: a command line
// may carry secrets), cpu_groups_error, pid_error, port_error.
//
// Rates and deltas start with the second reading.
//
// The groups: every process of /proc is read once a reading (its
// /proc/PID/stat, and a PostgreSQL process's title in /proc/PID/cmdline)
// and put in exactly one group, the first that fits: the target
// (Options.PID) and its descendants are app; stampede's own process
// (Options.Self) is stampede; PostgreSQL, PgBouncer, Redis and the proxies
// by command name (probe.CommGroup); stampede's other descendants are
// stampede; without a target pid, application servers and runtimes by
// command name are app; anything else is other. A process new since the
// previous reading counts in full; one that exited counts through what
// its parent's cutime and cstime gained beyond what was already counted
// of it (TreeTicks does the same for the target's tree).
//
// The process tree: servers that fork workers (gunicorn, uWSGI, PHP-FPM,
// Apache) do the work in the children, so the target's CPU is the sum over
// the pid and its descendants, found from the parent pid of every process
// the groups read (or, when /proc cannot be listed, through
// /proc/PID/task/TID/children). A process that appeared since the previous
// reading counts in full; one that exited counts through its parent's
// cutime and cstime (the CPU of reaped children), less what was already
// counted of it.
//
// The listen queue is what "ss -ltn" shows as Recv-Q (the accept queue)
// and Send-Q (its limit) of the listening sockets, read from the kernel's
// sock_diag netlink interface. When the target is in another network
// namespace, or sock_diag is not allowed, the queue is read from
// /proc/PID/net/tcp and tcp6 instead (rx_queue of a LISTEN socket),
// listen_backlog is left out and Info["port_error"] says why. A full queue
// (listen_queue = listen_backlog) means the server does not accept fast
// enough: new connections wait unanswered or are dropped
// (listen_overflows_delta).
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
	// Port is the target's TCP port (its listening socket); 0 means none.
	Port int
	// Self is stampede's own process id, whose CPU (and its descendants')
	// is cpu_pct:stampede; 0 means this process.
	Self int
}

// Probe reads /proc. Create it with New.
type Probe struct {
	opts Options

	mu       sync.Mutex
	prevAt   time.Time
	prevCPU  CPU
	prevTree map[int]PidStat // the target's process tree
	prevNet  Netstat
	hasPrev  bool
	procPrev bool
	scan     bool // no children files: find children by scanning /proc
	groups   *cpuGroups
	treeBuf  map[int]PidStat // a spare tree map to reuse, never prevTree
}

// New returns a host probe.
func New(opts Options) *Probe {
	if opts.Proc == "" {
		opts.Proc = "/proc"
	}
	if opts.Self == 0 {
		opts.Self = os.Getpid()
	}
	return &Probe{opts: opts, groups: newCPUGroups(opts.Self)}
}

// Name returns "host".
func (p *Probe) Name() string { return "host" }

// Close closes the /proc files the probe holds open between readings.
func (p *Probe) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.groups.close()
	return nil
}

func (p *Probe) read(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(p.opts.Proc, name))
}

// Sample reads /proc/stat, /proc/loadavg, /proc/meminfo, /proc/net/netstat,
// every process's stat (and PostgreSQL's titles) for the groups and the
// target's process tree, and with a Port
// /proc/PID/net/tcp and tcp6. A target process that is gone or unreadable
// leaves out proc_cpu_pct and says why in Info["pid_error"]; a port that
// nothing listens on leaves out the listen keys and says so in
// Info["port_error"].
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
	setInfo := func(k, val string) {
		if info == nil {
			info = map[string]string{}
		}
		info[k] = val
	}
	scanned := p.sampleGroups(now, cpu.Cores, v, setInfo)
	if p.opts.PID > 0 {
		var tree map[int]PidStat
		var err error
		if scanned {
			// The scan read every process: the tree is its app group.
			tree = p.groups.tree(p.treeBuf)
			if _, ok := tree[p.opts.PID]; !ok {
				err = fmt.Errorf("pid %d: no such process in %s", p.opts.PID, p.opts.Proc)
			}
		} else {
			tree, err = p.tree()
		}
		switch {
		case err != nil:
			setInfo("pid_error", err.Error())
			p.procPrev = false
		case p.procPrev && now.After(p.prevAt):
			v["proc_cpu_pct"] = 100 * TreeTicks(p.prevTree, tree) / clockTicks / now.Sub(p.prevAt).Seconds()
			fallthrough
		default:
			v["proc_count"] = float64(len(tree))
			p.prevTree, p.treeBuf, p.procPrev = tree, p.prevTree, true
		}
	}
	if p.opts.Port > 0 {
		q, withBacklog, note, err := p.listenQueue()
		switch {
		case err != nil:
			setInfo("port_error", err.Error())
		case withBacklog:
			v["listen_queue"] = float64(q.Queue)
			v["listen_backlog"] = float64(q.Backlog)
		default:
			setInfo("port_error", note)
			v["listen_queue"] = float64(q.Queue)
		}
	}
	p.prevAt, p.prevCPU, p.prevNet, p.hasPrev = now, cpu, net, true
	return stampede.Sample{Time: now, Source: "host", Values: v, Info: info}, nil
}

// cpuKeys are the metric keys of the groups, by group.
var cpuKeys = func() map[string]string {
	m := map[string]string{}
	for _, g := range probe.Groups {
		m[g] = "cpu_pct:" + g
	}
	return m
}()

// sampleGroups reads every process's CPU into v by group (cpu_pct:GROUP,
// from the second reading on, bounded by the cores), Info["cpu_top"] and
// Info["cpu_app"], and PostgreSQL's client backends by process title. It
// reports whether the scan of /proc succeeded; when it did not,
// Info["cpu_groups_error"] says why.
func (p *Probe) sampleGroups(now time.Time, cores int, v map[string]float64, setInfo func(k, val string)) bool {
	g := p.groups
	if err := g.scan(p.opts.Proc); err != nil {
		setInfo("cpu_groups_error", err.Error())
		g.hasPrev = false
		return false
	}
	g.classify(p.opts.PID)
	secs := now.Sub(g.prevAt).Seconds()
	// The most CPU the interval holds, with room for the caller's clock
	// and the kernel's ticks to disagree a little.
	limit := math.Inf(1)
	if cores > 0 {
		limit = secs*clockTicks*float64(cores)*1.1 + clockTicks/10
	}
	gt := g.ticks(limit)
	if g.hasPrev && secs > 0 {
		for group, t := range gt.ticks {
			v[cpuKeys[group]] = pct(t, secs)
		}
		if top := g.topLines(gt, secs); top != "" {
			setInfo("cpu_top", top)
		}
	}
	if len(gt.app) > 0 {
		setInfo("cpu_app", strings.Join(gt.app, ", "))
	}
	// With update_process_title off no title shows an activity: the
	// counts would read "all idle", so they are left out.
	if gt.pg > 0 && (gt.pgTitle[BackendNoActivity] == 0 || gt.pgTitle[BackendIdle]+gt.pgTitle[BackendBusy] > 0) {
		v["pg_backends"] = float64(gt.pgTitle[BackendIdle] + gt.pgTitle[BackendBusy] + gt.pgTitle[BackendNoActivity])
		v["pg_backends_busy"] = float64(gt.pgTitle[BackendBusy])
	}
	g.hasPrev, g.prevAt = true, now
	return true
}

// maxTree bounds the processes of a tree.
const maxTree = 4096

// tree reads the stat of the target and of its descendants, by pid.
func (p *Probe) tree() (map[int]PidStat, error) {
	root := p.opts.PID
	st, err := p.pidStat(root)
	if err != nil {
		return nil, fmt.Errorf("pid %d: %w", root, err)
	}
	tree := map[int]PidStat{root: st}
	var byParent map[int][]int
	queue := []int{root}
	for len(queue) > 0 && len(tree) < maxTree {
		pid := queue[0]
		queue = queue[1:]
		var kids []int
		if !p.scan {
			kids, err = p.children(pid)
			if errors.Is(err, os.ErrNotExist) && pid == root {
				p.scan = true // a kernel without CONFIG_PROC_CHILDREN
			}
		}
		if p.scan {
			if byParent == nil {
				byParent = p.scanParents()
			}
			kids = byParent[pid]
		}
		for _, k := range kids {
			if _, seen := tree[k]; seen || len(tree) >= maxTree {
				continue
			}
			// A child may exit between the listing and the read.
			if st, err := p.pidStat(k); err == nil {
				tree[k] = st
				queue = append(queue, k)
			}
		}
	}
	return tree, nil
}

func (p *Probe) pidStat(pid int) (PidStat, error) {
	b, err := p.read(strconv.Itoa(pid) + "/stat")
	if err != nil {
		return PidStat{}, err
	}
	return ParsePidStat(b)
}

// children lists the children of every thread of pid.
func (p *Probe) children(pid int) ([]int, error) {
	dir := filepath.Join(p.opts.Proc, strconv.Itoa(pid), "task")
	tids, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var kids []int
	for _, tid := range tids {
		b, err := os.ReadFile(filepath.Join(dir, tid.Name(), "children"))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && len(kids) == 0 && tid.Name() == strconv.Itoa(pid) {
				return nil, err // no children files on this kernel
			}
			continue // the thread exited
		}
		kids = ParseChildren(b, kids)
	}
	return kids, nil
}

// scanParents maps every process of /proc to its children, from the
// parent pid in each /proc/N/stat.
func (p *Probe) scanParents() map[int][]int {
	ents, err := os.ReadDir(p.opts.Proc)
	if err != nil {
		return nil
	}
	m := map[int][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		if st, err := p.pidStat(pid); err == nil && st.PPid > 0 {
			m[st.PPid] = append(m[st.PPid], pid)
		}
	}
	return m
}

// TreeTicks returns the CPU ticks a process tree used between two readings,
// by pid: for a process in both (same start time) the growth of its own
// time, for a new one all of it, and for those that exited what their
// parents' cutime and cstime gained beyond what was already counted of
// them (never less than nothing: a child reaped outside the tree is lost).
func TreeTicks(prev, cur map[int]PidStat) float64 {
	var own, reaped, counted float64
	for pid, c := range cur {
		if p, ok := prev[pid]; ok && p.StartTime == c.StartTime {
			own += float64(c.UTime+c.STime) - float64(p.UTime+p.STime)
			reaped += float64(c.CUTime+c.CSTime) - float64(p.CUTime+p.CSTime)
		} else {
			own += float64(c.UTime + c.STime)
			reaped += float64(c.CUTime + c.CSTime)
		}
	}
	for pid, p := range prev {
		if c, ok := cur[pid]; !ok || c.StartTime != p.StartTime {
			counted += float64(p.UTime + p.STime + p.CUTime + p.CSTime)
		}
	}
	return max(own, 0) + max(reaped-counted, 0)
}

// listenQueue sums the LISTEN sockets on the target's port: from the
// kernel's sock_diag when the probe shares the target's network namespace
// (queue and backlog: withBacklog), else from /proc/PID/net/tcp and tcp6
// (the queue only: their tx_queue is not a listener's backlog), with a
// note saying why.
func (p *Probe) listenQueue() (q ListenQueue, withBacklog bool, note string, err error) {
	switch {
	case p.opts.Proc != "/proc":
		note = "listen_backlog unknown: read from " + p.opts.Proc
	case p.opts.PID > 0 && !sameNetns(p.opts.Proc, p.opts.PID):
		note = "listen_backlog unknown: the target is in another network namespace"
	default:
		q, err := listenDiag(p.opts.Port)
		if err == nil {
			if q.Sockets == 0 {
				return q, false, "", fmt.Errorf("port %d: no socket listens on it", p.opts.Port)
			}
			return q, true, "", nil
		}
		note = "listen_backlog unknown: " + err.Error()
	}
	q, err = p.netTCP()
	return q, false, note, err
}

// netTCP sums the LISTEN sockets on the port in /proc/PID/net/tcp and tcp6
// (the target's network namespace; /proc/net/* without a pid).
func (p *Probe) netTCP() (ListenQueue, error) {
	dir := "net"
	if p.opts.PID > 0 {
		if _, err := os.Stat(filepath.Join(p.opts.Proc, strconv.Itoa(p.opts.PID), "net")); err == nil {
			dir = filepath.Join(strconv.Itoa(p.opts.PID), "net")
		}
	}
	var sum ListenQueue
	read := 0
	for _, name := range []string{"tcp", "tcp6"} {
		b, err := p.read(filepath.Join(dir, name))
		if err != nil {
			continue // no IPv6
		}
		q, err := ParseNetTCP(b, p.opts.Port)
		if err != nil {
			return ListenQueue{}, fmt.Errorf("%s: %w", name, err)
		}
		read++
		sum.Sockets += q.Sockets
		sum.Queue += q.Queue
	}
	switch {
	case read == 0:
		return ListenQueue{}, fmt.Errorf("port %d: cannot read %s/tcp", p.opts.Port, filepath.Join(p.opts.Proc, dir))
	case sum.Sockets == 0:
		return ListenQueue{}, fmt.Errorf("port %d: no socket listens on it", p.opts.Port)
	}
	return sum, nil
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

// PidStat holds what the probe reads of /proc/PID/stat: the parent, the
// CPU times in clock ticks (its own, and its reaped children's), and the
// start time that tells a reused pid from the process that had it.
type PidStat struct {
	PPid           int
	UTime, STime   uint64
	CUTime, CSTime uint64
	StartTime      uint64
	// Nice is the process's nice value (-20…19; 0 when missing).
	Nice int
}

// ParsePidStat parses /proc/PID/stat: ParseProcStat without the command
// name.
func ParsePidStat(b []byte) (PidStat, error) {
	_, ps, err := ParseProcStat(b)
	return ps, err
}

// ParseChildren appends the pids of a /proc/PID/task/TID/children file
// ("123 456 ") to dst; anything but a positive number is skipped.
func ParseChildren(b []byte, dst []int) []int {
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil && n > 0 {
			dst = append(dst, n)
		}
	}
	return dst
}

// ListenQueue is the accept queue of the sockets listening on a port.
type ListenQueue struct {
	// Sockets counts the LISTEN sockets on the port.
	Sockets int
	// Queue is the connections waiting to be accepted, summed.
	Queue uint64
	// Backlog is the limit of the queue, summed (from sock_diag only).
	Backlog uint64
}

// tcpListen is the state number of a listening socket in /proc/net/tcp.
const tcpListen = 0x0A

// ParseNetTCP reads the LISTEN sockets on port from /proc/net/tcp or tcp6:
// "sl local_address rem_address st tx_queue:rx_queue ..." with the address
// and port, the state and the queues in hexadecimal. For a listening
// socket rx_queue is the accept queue's length; tx_queue is not its limit
// (the kernel writes the send queue there, 0 for a listener), so Backlog
// stays 0.
func ParseNetTCP(b []byte, port int) (ListenQueue, error) {
	var q ListenQueue
	header := false
	for line := range bytes.Lines(b) {
		f := bytes.Fields(line)
		if len(f) < 5 {
			continue
		}
		if !header {
			if string(f[0]) != "sl" || string(f[1]) != "local_address" {
				return ListenQueue{}, fmt.Errorf("net tcp: no header: %w", errFormat)
			}
			header = true
			continue
		}
		c := bytes.LastIndexByte(f[1], ':')
		if c < 0 {
			continue
		}
		lp, err1 := strconv.ParseUint(string(f[1][c+1:]), 16, 16)
		st, err2 := strconv.ParseUint(string(f[3]), 16, 8)
		if err1 != nil || err2 != nil || int(lp) != port || st != tcpListen {
			continue
		}
		_, rx, ok := bytes.Cut(f[4], []byte{':'})
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(string(rx), 16, 32)
		if err != nil {
			continue
		}
		q.Sockets++
		q.Queue += n
	}
	if !header {
		return ListenQueue{}, fmt.Errorf("net tcp: no header: %w", errFormat)
	}
	return q, nil
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
